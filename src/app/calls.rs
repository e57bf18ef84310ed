//! The telephony platform's use-cases: route a call (decide, then queue its ticket within the store
//! deadline), explain a route (the same decision, nothing queued), cancel a call whose caller hung
//! up before pickup.
//!
//! A caller waits on the line while `route_call` runs, so the store gets a deadline: past it the
//! answer is the decision alone with `queued = false`, and the platform transfers the call.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::policy::UseCase;
use super::principal::Principal;
use super::{App, AppError, allow};
use crate::metrics::RoutedCall;
use crate::routing::address::MatchLevel;
use crate::routing::calendar;
use crate::routing::model::category_of;
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::request::{RouteRequest, required_text};
use crate::routing::urgency::Urgency;
use crate::routing::{AddressMatch, Candidate, Router, RoutingDecision};
use crate::store::{NewTicket, QueuePosition, StoreError, Ticket, TicketState};

/// What became of a routed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// A new ticket waits in its team's queue.
    Queued,
    /// A retry: the ticket created for this call before.
    Duplicate,
    /// The call joined the open ticket of the same building-wide incident.
    Incident,
    /// The store did not answer in time: the decision alone, nothing queued.
    Degraded,
}

impl CallOutcome {
    /// The metrics label of the outcome.
    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Queued => "queued",
            CallOutcome::Duplicate => "duplicate",
            CallOutcome::Incident => "incident",
            CallOutcome::Degraded => "degraded",
        }
    }
}

/// The answer to a routed call.
#[derive(Debug, Clone)]
pub struct Routed {
    pub decision: RoutingDecision,
    pub outcome: CallOutcome,
    /// The call's ticket (where it went, if it moved since); `None` when degraded.
    pub ticket: Option<Ticket>,
    pub position: Option<QueuePosition>,
}

impl Routed {
    /// Whether the call's ticket is in the store.
    pub fn queued(&self) -> bool {
        self.outcome != CallOutcome::Degraded
    }
}

impl App {
    /// Decides where a call goes and queues its ticket, idempotently by `call_id`.
    pub async fn route_call(
        &self,
        principal: &Principal,
        request: RouteRequest,
    ) -> Result<Routed, AppError> {
        allow(principal, UseCase::RouteCall)?;
        required_text("call_id", &request.call_id)?;
        let snapshot = self.current();
        let now = Utc::now();
        let deciding = std::time::Instant::now();
        let decision = snapshot.router.decide(&request, now)?;
        let decision_time = deciding.elapsed();
        let new = NewTicket {
            within: self.settings.store_deadline,
            ..new_ticket(&snapshot.router, &request, &decision, now)
        };
        let partition = new.partition.clone();
        let stored =
            tokio::time::timeout(self.settings.store_deadline, self.store.create(new)).await;
        let (outcome, created) = match stored {
            Ok(Ok(created)) if created.duplicate => (CallOutcome::Duplicate, Some(created)),
            Ok(Ok(created)) if created.joined_incident => (CallOutcome::Incident, Some(created)),
            Ok(Ok(created)) => (CallOutcome::Queued, Some(created)),
            Ok(Err(StoreError::TooLate)) => {
                tracing::warn!("RouteCall answered without queueing: the store ran it too late");
                (CallOutcome::Degraded, None)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "RouteCall answered without queueing: store error");
                (CallOutcome::Degraded, None)
            }
            Err(_) => {
                tracing::warn!("RouteCall answered without queueing: store deadline passed");
                (CallOutcome::Degraded, None)
            }
        };
        self.metrics.routed(&RoutedCall {
            partition: &partition,
            team: &decision.team_id,
            category: &decision.issue_category,
            urgency: decision.urgency,
            on_call: decision.transfer_to.is_some(),
            outcome: outcome.label(),
            level: decision.address_match.level.as_str(),
            decision: decision_time,
        });
        let (ticket, position) = match created {
            Some(created) => (
                Some(self.follow_move(created.ticket).await),
                created.position,
            ),
            None => (None, None),
        };
        Ok(Routed {
            decision,
            outcome,
            ticket,
            position,
        })
    }

    /// The ticket a moved one became, when it can be read; else the ticket as it is.
    async fn follow_move(&self, ticket: Ticket) -> Ticket {
        match &ticket.moved_to {
            Some(moved_to) => match self.store.get(moved_to).await {
                Ok(Some(moved)) => moved,
                _ => ticket,
            },
            None => ticket,
        }
    }

    /// The decision for a request at `at`, nothing queued.
    pub fn explain_route(
        &self,
        principal: &Principal,
        request: &RouteRequest,
        at: DateTime<Utc>,
    ) -> Result<RoutingDecision, AppError> {
        allow(principal, UseCase::ExplainRoute)?;
        Ok(self.current().router.decide(request, at)?)
    }

    /// A caller hung up before pickup: withdraws its call from the ticket `RouteCall` gave it
    /// (the ticket's own call when `call_id` is `None`), and cancels the ticket once no caller of
    /// it is left. Each caller of a building-wide incident counts on its own, as an abandoned
    /// call.
    pub async fn cancel_call(
        &self,
        principal: &Principal,
        ticket_id: &str,
        call_id: Option<&str>,
    ) -> Result<Ticket, AppError> {
        allow(principal, UseCase::CancelCall)?;
        let ticket_id = required_text("ticket_id", ticket_id)?;
        let ticket = self.store.cancel(&ticket_id, call_id).await?;
        let cancelled_after = match (ticket.state, ticket.closed_at) {
            (TicketState::Cancelled, Some(closed)) => Some(closed - ticket.created_at),
            _ => None,
        };
        self.metrics
            .abandoned(&queue_of(&ticket), ticket.urgency, cancelled_after);
        Ok(ticket)
    }
}

/// The queue a ticket is (or was last) in.
pub fn queue_of(ticket: &Ticket) -> QueueRef {
    QueueRef::new(ticket.partition.as_str(), &ticket.team_id)
}

/// What a ticket keeps beyond its queue fields, as its details: the routing decision, and the call
/// as the telephony platform reported it (the number to call back, what the caller said) for the
/// agent who works it. Tickets routed before the call was kept hold the decision alone, which
/// reads the same.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketDetails {
    pub decision: RoutingDecision,
    pub caller_number: Option<String>,
    pub description: Option<String>,
}

/// The details recorded with a ticket when its call was routed (absent for a ticket whose details
/// do not hold them).
pub fn recorded_details(ticket: &Ticket) -> Option<TicketDetails> {
    TicketDetails::read(&ticket.details, ticket)
}

impl TicketDetails {
    /// The details as written ([`DetailsOf`]), the parts of the decision the ticket holds taken
    /// from the ticket; details written whole, as earlier versions did, read the same.
    fn read(details: &str, ticket: &Ticket) -> Option<TicketDetails> {
        let written: Written = serde_json::from_str(details).ok()?;
        let place = written.address_match;
        let decision = RoutingDecision {
            cooperator_id: written.cooperator_id,
            team_id: written.team_id,
            urgency: written.urgency,
            rule_id: written.rule_id,
            transfer_to: written.transfer_to,
            reasons: written.reasons,
            incident_id: written.incident_id,
            address_match: AddressMatch {
                building_id: place.building_id.or_else(|| ticket.building_id.clone()),
                level: place.level,
                confidence: place.confidence,
                normalized: place
                    .normalized
                    .or_else(|| ticket.address.clone())
                    .unwrap_or_default(),
                candidates: place.candidates,
                insee_code: place.insee_code,
            },
            issue_category: written
                .issue_category
                .unwrap_or_else(|| category_of(&ticket.issue_type).to_owned()),
        };
        Some(TicketDetails {
            decision,
            caller_number: written.caller_number,
            description: written.description,
        })
    }
}

/// Details as [`TicketDetails::read`] finds them: what [`DetailsOf`] writes, or the whole decision.
#[derive(Deserialize)]
struct Written {
    cooperator_id: Option<String>,
    team_id: String,
    urgency: Urgency,
    rule_id: String,
    #[serde(default)]
    transfer_to: Option<String>,
    reasons: Vec<String>,
    #[serde(default)]
    incident_id: Option<String>,
    address_match: WrittenMatch,
    #[serde(default)]
    issue_category: Option<String>,
    #[serde(default)]
    caller_number: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct WrittenMatch {
    #[serde(default)]
    building_id: Option<String>,
    level: MatchLevel,
    confidence: f32,
    #[serde(default)]
    normalized: Option<String>,
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    insee_code: Option<String>,
}

/// [`TicketDetails`] as a routed call writes them, borrowed from the decision and the request:
/// the decision without what the ticket made of it holds (its building, its address normalised,
/// the category of its issue type) and without what is absent or empty (a JSON `null` or `[]`),
/// then the call. Details are most of a ticket's bytes in Redis, and each byte is kept, written to
/// the append-only file and rewritten with it.
#[derive(Serialize)]
struct DetailsOf<'a> {
    cooperator_id: Option<&'a str>,
    team_id: &'a str,
    urgency: Urgency,
    rule_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    transfer_to: Option<&'a str>,
    reasons: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    incident_id: Option<&'a str>,
    address_match: MatchOf<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

/// The address match as [`DetailsOf`] writes it.
#[derive(Serialize)]
struct MatchOf<'a> {
    level: MatchLevel,
    confidence: f32,
    #[serde(skip_serializing_if = "<[Candidate]>::is_empty")]
    candidates: &'a [Candidate],
    #[serde(skip_serializing_if = "Option::is_none")]
    insee_code: Option<&'a str>,
}

impl<'a> DetailsOf<'a> {
    fn new(decision: &'a RoutingDecision, request: &'a RouteRequest) -> DetailsOf<'a> {
        let given = |text: &'a str| Some(text).filter(|t| !t.is_empty());
        let place = &decision.address_match;
        DetailsOf {
            cooperator_id: decision.cooperator_id.as_deref(),
            team_id: &decision.team_id,
            urgency: decision.urgency,
            rule_id: &decision.rule_id,
            transfer_to: decision.transfer_to.as_deref(),
            reasons: &decision.reasons,
            incident_id: decision.incident_id.as_deref(),
            address_match: MatchOf {
                level: place.level,
                confidence: place.confidence,
                candidates: &place.candidates,
                insee_code: place.insee_code.as_deref(),
            },
            caller_number: given(&request.caller_number),
            description: given(&request.description),
        }
    }

    /// The details as JSON, written into room for a usual decision's (about 500 bytes) from the
    /// start rather than grown as it is written.
    fn json(&self) -> String {
        let mut json = Vec::with_capacity(768);
        match serde_json::to_writer(&mut json, self) {
            Ok(()) => String::from_utf8(json).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

/// The ticket a decision makes: in the decided cooperator's partition (or the platform's), with
/// its due time from the urgency and the calendar, and the decision kept with it as JSON. Its
/// deadline is the caller's to set.
fn new_ticket(
    router: &Router,
    request: &RouteRequest,
    decision: &RoutingDecision,
    now: DateTime<Utc>,
) -> NewTicket {
    let partition = Partition::of_cooperator(decision.cooperator_id.as_deref());
    NewTicket {
        call_id: request.call_id.clone(),
        escalation_team: partition.supervisor_team(),
        partition,
        cooperator_id: decision.cooperator_id.clone(),
        team_id: decision.team_id.clone(),
        urgency: decision.urgency,
        issue_type: request.issue_type.clone(),
        building_id: decision.address_match.building_id.clone(),
        address: Some(decision.address_match.normalized.clone()).filter(|a| !a.is_empty()),
        incident_id: decision.incident_id.clone(),
        sla_due_at: calendar::sla_due(decision.urgency, router.platform.timezone, now)
            .timestamp_millis(),
        details: DetailsOf::new(decision, request).json(),
        within: std::time::Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::address::AddressInput;

    fn decision() -> RoutingDecision {
        RoutingDecision {
            cooperator_id: Some("touraine-logement".to_owned()),
            team_id: "touraine-logement.front-desk".to_owned(),
            urgency: Urgency::U3,
            rule_id: "rent".to_owned(),
            transfer_to: None,
            reasons: vec!["rule rent".to_owned()],
            incident_id: None,
            address_match: AddressMatch {
                building_id: Some("TL-00214".to_owned()),
                level: MatchLevel::Building,
                confidence: 1.0,
                normalized: "32 rue saint exupere 37100".to_owned(),
                candidates: Vec::new(),
                insee_code: None,
            },
            issue_category: "administrative".to_owned(),
        }
    }

    fn ticket_of(decision: &RoutingDecision, request: &RouteRequest) -> Ticket {
        let router = demo_router();
        let new = new_ticket(&router, request, decision, Utc::now());
        Ticket::queued("touraine-logement-1".to_owned(), new, 1)
    }

    fn demo_router() -> Router {
        crate::config::load(std::path::Path::new(crate::config::DEMO_CONFIG))
            .expect("the demo loads")
    }

    #[test]
    fn details_keep_the_call_beside_the_decision_and_leave_out_what_the_ticket_holds() {
        let request = RouteRequest {
            caller_number: "+33 2 47 00 00 00".to_owned(),
            description: "fuite".to_owned(),
            issue_type: "administrative.rent.payment".to_owned(),
            ..RouteRequest::default()
        };
        let ticket = ticket_of(&decision(), &request);
        assert_eq!(
            recorded_details(&ticket),
            Some(TicketDetails {
                decision: decision(),
                caller_number: Some("+33 2 47 00 00 00".to_owned()),
                description: Some("fuite".to_owned()),
            })
        );
        for held in [
            "TL-00214",
            "32 rue saint exupere",
            "administrative",
            "null",
            "[]",
        ] {
            assert!(
                !ticket.details.contains(held),
                "{held} in {}",
                ticket.details
            );
        }
        let silent = DetailsOf::new(&decision(), &RouteRequest::default()).json();
        assert!(!silent.contains("caller_number") && !silent.contains("description"));
    }

    #[test]
    fn details_written_whole_read_as_written() {
        let whole = serde_json::to_string(&decision()).expect("json");
        let other = Ticket {
            building_id: Some("TL-00001".to_owned()),
            address: Some("1 rue ailleurs 37000".to_owned()),
            issue_type: "technical.plumbing.leak".to_owned(),
            details: whole,
            ..ticket_of(&decision(), &RouteRequest::default())
        };
        let read = recorded_details(&other).expect("a decision alone reads");
        assert_eq!(
            (read.decision, read.caller_number, read.description),
            (decision(), None, None)
        );
        let none = Ticket {
            details: String::new(),
            ..other
        };
        assert_eq!(recorded_details(&none), None);
    }

    /// Every kind of decision the demo makes (located by building, tenant or commune, ambiguous,
    /// not located; open and closed hours; building-wide incidents) reads back from its ticket as
    /// it was decided.
    #[test]
    fn details_read_back_every_decision_the_demo_makes() {
        let router = demo_router();
        let mut requests = Vec::new();
        for (i, place) in router.buildings.iter().enumerate() {
            let b = &place.building;
            let issue = &router.issue_types[i % router.issue_types.len()];
            let address = match i % 4 {
                0 => AddressInput {
                    street_number: b.street_number.clone(),
                    street: b.street_name.clone(),
                    postcode: b.postcode.clone(),
                    city: b.city.clone(),
                    free_text: String::new(),
                },
                1 => AddressInput {
                    city: b.city.clone(),
                    ..AddressInput::default()
                },
                2 => AddressInput {
                    free_text: format!("{} {}", b.street_name, b.city),
                    ..AddressInput::default()
                },
                _ => AddressInput {
                    free_text: "quelque part".to_owned(),
                    ..AddressInput::default()
                },
            };
            requests.push(RouteRequest {
                call_id: format!("call-{i}"),
                caller_number: ["", "+33 2 47 00 00 00"][i % 2].to_owned(),
                tenant_reference: match i % 9 {
                    0 => "AH-L0000001".to_owned(),
                    _ => String::new(),
                },
                address,
                issue_type: issue.code.clone(),
                description: ["", "l'eau coule"][i % 3 / 2].to_owned(),
                ..RouteRequest::default()
            });
        }
        let open = DateTime::parse_from_rfc3339("2026-11-25T10:00:00+01:00").expect("time");
        let closed = DateTime::parse_from_rfc3339("2026-11-29T03:00:00+01:00").expect("time");
        let mut seen = [0usize; 5];
        for (i, request) in requests.iter().enumerate() {
            let at = [open, closed][i % 2].with_timezone(&Utc);
            let decision = router.decide(request, at).expect("a demo issue type");
            let ticket = Ticket::queued(
                "t-1".to_owned(),
                new_ticket(&router, request, &decision, at),
                1,
            );
            let read = recorded_details(&ticket).expect("details read");
            let given = |text: &str| Some(text.to_owned()).filter(|t| !t.is_empty());
            assert_eq!(read.caller_number, given(&request.caller_number));
            assert_eq!(read.description, given(&request.description));
            let place = &decision.address_match;
            for (i, kind) in [
                place.building_id.is_some(),
                place.building_id.is_none(),
                !place.candidates.is_empty(),
                decision.incident_id.is_some(),
                decision.transfer_to.is_some(),
            ]
            .into_iter()
            .enumerate()
            {
                seen[i] += usize::from(kind);
            }
            assert_eq!(read.decision, decision);
        }
        assert!(
            seen.iter().all(|&n| n > 0),
            "kinds of decisions seen: {seen:?}"
        );
    }
}
