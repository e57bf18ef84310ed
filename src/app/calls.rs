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
use crate::routing::calendar;
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::request::{RouteRequest, required_text};
use crate::routing::{Router, RoutingDecision};
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
    TicketDetails::read(&ticket.details)
}

impl TicketDetails {
    /// The decision and the call are read in two passes over the same object, each straight into
    /// its own struct (unknown keys skipped): one pass with serde's `flatten` would first buffer
    /// every value, which costs more than both.
    fn read(details: &str) -> Option<TicketDetails> {
        #[derive(Deserialize)]
        struct Call {
            caller_number: Option<String>,
            description: Option<String>,
        }
        let decision = serde_json::from_str(details).ok()?;
        let call: Call = serde_json::from_str(details).ok()?;
        Some(TicketDetails {
            decision,
            caller_number: call.caller_number,
            description: call.description,
        })
    }
}

/// [`TicketDetails`] as a routed call writes them, borrowed from the decision and the request.
#[derive(Serialize)]
struct DetailsOf<'a> {
    #[serde(flatten)]
    decision: &'a RoutingDecision,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

impl<'a> DetailsOf<'a> {
    fn new(decision: &'a RoutingDecision, request: &'a RouteRequest) -> DetailsOf<'a> {
        let given = |text: &'a str| Some(text).filter(|t| !t.is_empty());
        DetailsOf {
            decision,
            caller_number: given(&request.caller_number),
            description: given(&request.description),
        }
    }

    /// The details as JSON, written into room for a usual decision's (about 600 bytes) from the
    /// start rather than grown as it is written.
    fn json(&self) -> String {
        let mut json = Vec::with_capacity(1024);
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
    use crate::routing::AddressMatch;
    use crate::routing::address::MatchLevel;
    use crate::routing::urgency::Urgency;

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

    #[test]
    fn details_keep_the_call_beside_the_decision_and_read_the_decision_alone() {
        let request = RouteRequest {
            caller_number: "+33 2 47 00 00 00".to_owned(),
            description: "fuite".to_owned(),
            ..RouteRequest::default()
        };
        let json = DetailsOf::new(&decision(), &request).json();
        assert_eq!(
            TicketDetails::read(&json),
            Some(TicketDetails {
                decision: decision(),
                caller_number: Some("+33 2 47 00 00 00".to_owned()),
                description: Some("fuite".to_owned()),
            })
        );
        let silent = DetailsOf::new(&decision(), &RouteRequest::default()).json();
        assert!(!silent.contains("caller_number") && !silent.contains("description"));
        let before = serde_json::to_string(&decision()).expect("json");
        let read = TicketDetails::read(&before).expect("a decision alone reads");
        assert_eq!(
            (read.decision, read.caller_number, read.description),
            (decision(), None, None)
        );
        assert_eq!(TicketDetails::read(""), None);
    }
}
