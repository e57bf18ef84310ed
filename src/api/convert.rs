//! Conversions at the edge: proto messages become domain types here and only here (bad input is a
//! [`FieldError`] naming the contract's field), and domain results become proto messages.

use std::collections::HashMap;

use prost_types::Timestamp;

use super::pb;
use crate::app::calls::recorded_details;
use crate::app::operations::{QueueOverview, Reloaded};
use crate::app::requests;
use crate::app::tickets::{HistoryEntry, TransferTo};
use crate::app::watch::WatchEvent;
use crate::routing::RoutingDecision;
use crate::routing::address::{AddressInput, MatchLevel};
use crate::routing::request::{FieldError, RouteRequest, check_request};
use crate::routing::urgency::Urgency;
use crate::store::{AgentStatus, Presence, Ticket, TicketState};

/// A routing request from the wire, within the limits every edge holds it to.
pub fn route_request(request: pb::RouteCallRequest) -> Result<RouteRequest, FieldError> {
    let address = request.address.unwrap_or_default();
    let domain = RouteRequest {
        call_id: request.call_id,
        caller_number: request.caller_number,
        dialed_number: request.dialed_number,
        tenant_reference: request.tenant_reference,
        address: AddressInput {
            street_number: address.street_number,
            street: address.street,
            postcode: address.postcode,
            city: address.city,
            free_text: address.free_text,
        },
        issue_type: request.issue_type,
        description: request.description,
    };
    check_request(&domain)?;
    Ok(domain)
}

/// A transfer's urgency: unspecified keeps the ticket's.
pub fn optional_urgency(field: &str, value: i32) -> Result<Option<Urgency>, FieldError> {
    match pb::Urgency::try_from(value) {
        Ok(pb::Urgency::Unspecified) => Ok(None),
        Ok(pb::Urgency::U1) => Ok(Some(Urgency::U1)),
        Ok(pb::Urgency::U2) => Ok(Some(Urgency::U2)),
        Ok(pb::Urgency::U3) => Ok(Some(Urgency::U3)),
        Err(_) => Err(FieldError::new(field, format!("{value} is not an urgency"))),
    }
}

pub fn presence(value: i32) -> Result<Presence, FieldError> {
    Ok(match pb::Presence::try_from(value) {
        Ok(pb::Presence::Available) => Presence::Available,
        Ok(pb::Presence::Busy) => Presence::Busy,
        Ok(pb::Presence::WrapUp) => Presence::WrapUp,
        Ok(pb::Presence::Break) => Presence::Break,
        Ok(pb::Presence::Offline) => Presence::Offline,
        Ok(pb::Presence::Unspecified) | Err(_) => {
            return Err(FieldError::new(
                "presence",
                "must be AVAILABLE, BUSY, WRAP_UP, BREAK or OFFLINE",
            ));
        }
    })
}

pub fn presence_to_pb(presence: Presence) -> pb::Presence {
    match presence {
        Presence::Available => pb::Presence::Available,
        Presence::Busy => pb::Presence::Busy,
        Presence::WrapUp => pb::Presence::WrapUp,
        Presence::Break => pb::Presence::Break,
        Presence::Offline => pb::Presence::Offline,
    }
}

pub fn urgency_to_pb(urgency: Urgency) -> pb::Urgency {
    match urgency {
        Urgency::U1 => pb::Urgency::U1,
        Urgency::U2 => pb::Urgency::U2,
        Urgency::U3 => pb::Urgency::U3,
    }
}

/// A timestamp from milliseconds since the epoch.
pub fn timestamp(ms: i64) -> Option<Timestamp> {
    (ms > 0).then(|| Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

fn state_to_pb(state: TicketState) -> pb::TicketState {
    match state {
        TicketState::Queued | TicketState::Moving => pb::TicketState::Queued,
        TicketState::Reserved => pb::TicketState::Reserved,
        TicketState::InProgress => pb::TicketState::InProgress,
        TicketState::Completed => pb::TicketState::Completed,
        TicketState::Cancelled => pb::TicketState::Cancelled,
        TicketState::Moved => pb::TicketState::Moved,
    }
}

/// A stored ticket on the wire, with the routing decision recorded with it.
pub fn ticket_to_pb(t: Ticket) -> pb::Ticket {
    match recorded_details(&t) {
        Some(details) => pb::Ticket {
            caller_number: details.caller_number.unwrap_or_default(),
            description: details.description.unwrap_or_default(),
            ..ticket_with_decision(t, Some(decision_to_pb(details.decision)))
        },
        None => ticket_with_decision(t, None),
    }
}

/// A stored ticket on the wire with its history (`GetTicket`).
pub fn ticket_with_history(t: Ticket, history: Vec<HistoryEntry>) -> pb::Ticket {
    pb::Ticket {
        history: history
            .into_iter()
            .map(|entry| pb::TicketHistoryEntry {
                at: timestamp(entry.at),
                what: entry.what,
            })
            .collect(),
        ..ticket_to_pb(t)
    }
}

/// A stored ticket on the wire, with a decision already at hand.
fn ticket_with_decision(t: Ticket, decision: Option<pb::RoutingDecision>) -> pb::Ticket {
    pb::Ticket {
        ticket_id: t.ticket_id,
        call_id: t.call_id,
        state: state_to_pb(t.state) as i32,
        cooperator_id: t.cooperator_id.unwrap_or_default(),
        team_id: t.team_id,
        urgency: urgency_to_pb(t.urgency) as i32,
        issue_type: t.issue_type,
        building_id: t.building_id.unwrap_or_default(),
        agent_id: t.agent_id.unwrap_or_default(),
        attempts: t.attempts,
        created_at: timestamp(t.created_at),
        sla_due_at: timestamp(t.sla_due_at),
        lease_token: t.lease_token,
        lease_expires_at: t.lease_expires_at.and_then(timestamp),
        incident_id: t.incident_id.unwrap_or_default(),
        incident_calls: t.incident_calls,
        resolution: t.resolution.unwrap_or_default(),
        moved_to: t.moved_to.unwrap_or_default(),
        transferred_from: t.transferred_from.unwrap_or_default(),
        escalated: t.escalated,
        decision,
        address: t.address.unwrap_or_default(),
        caller_number: String::new(),
        description: String::new(),
        history: Vec::new(),
        issue_label: String::new(),
    }
}

/// A routing decision on the wire.
pub fn decision_to_pb(d: RoutingDecision) -> pb::RoutingDecision {
    let level = match d.address_match.level {
        MatchLevel::None => pb::MatchLevel::None,
        MatchLevel::Commune => pb::MatchLevel::Commune,
        MatchLevel::Street => pb::MatchLevel::Street,
        MatchLevel::Building => pb::MatchLevel::Building,
    };
    pb::RoutingDecision {
        cooperator_id: d.cooperator_id.unwrap_or_default(),
        team_id: d.team_id,
        urgency: urgency_to_pb(d.urgency) as i32,
        rule_id: d.rule_id,
        transfer_to: d.transfer_to.unwrap_or_default(),
        reasons: d.reasons,
        incident_id: d.incident_id.unwrap_or_default(),
        address_match: Some(pb::AddressMatch {
            building_id: d.address_match.building_id.unwrap_or_default(),
            level: level as i32,
            confidence: d.address_match.confidence,
            normalized: d.address_match.normalized,
            candidates: d
                .address_match
                .candidates
                .into_iter()
                .map(|c| pb::AddressCandidate {
                    building_id: c.building_id.unwrap_or_default(),
                    cooperator_id: c.cooperator_id.unwrap_or_default(),
                    insee_code: c.insee_code,
                    normalized: c.normalized,
                })
                .collect(),
            insee_code: d.address_match.insee_code.unwrap_or_default(),
        }),
        issue_category: d.issue_category,
    }
}

/// The time a request to explain was received at, now when it carries none; a time outside the
/// years 1970 to 9999 (the calendar's range) is refused.
pub fn received_at(
    request: &pb::RouteCallRequest,
) -> Result<chrono::DateTime<chrono::Utc>, FieldError> {
    const LAST_SECOND: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let Some(t) = &request.received_at else {
        return Ok(chrono::Utc::now());
    };
    let in_range = (0..=LAST_SECOND).contains(&t.seconds) && (0..1_000_000_000).contains(&t.nanos);
    in_range
        .then(|| chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32))
        .flatten()
        .ok_or_else(|| {
            FieldError::new(
                "received_at",
                format!("{} s is outside the years 1970 to 9999", t.seconds),
            )
        })
}

/// The answer to `RouteCall`.
pub fn routed_to_pb(routed: crate::app::calls::Routed) -> pb::RouteCallResponse {
    use crate::app::calls::CallOutcome;
    let queued = routed.queued();
    let position = routed.position.unwrap_or_default();
    let decision = decision_to_pb(routed.decision);
    // A new ticket was made by this decision; a duplicate's or an incident's by its first call's.
    let ticket = routed.ticket.map(|t| match routed.outcome {
        CallOutcome::Queued => ticket_with_decision(t, Some(decision.clone())),
        _ => ticket_to_pb(t),
    });
    pb::RouteCallResponse {
        decision: Some(decision),
        duplicate: routed.outcome == CallOutcome::Duplicate,
        joined_incident: routed.outcome == CallOutcome::Incident,
        queued,
        queue_position: position.position,
        estimated_wait_seconds: position.estimated_wait_seconds,
        ticket,
    }
}

/// The lease a claim asks for.
pub fn lease(seconds: u32) -> Result<std::time::Duration, FieldError> {
    requests::lease("lease_seconds", seconds)
}

/// The lease an acceptance asks for; 0 keeps the server's default.
pub fn optional_lease(seconds: u32) -> Result<Option<std::time::Duration>, FieldError> {
    match seconds {
        0 => Ok(None),
        seconds => lease(seconds).map(Some),
    }
}

/// Where a transfer sends a ticket.
pub fn transfer_to(request: &pb::TransferTicketRequest) -> Result<TransferTo, FieldError> {
    Ok(TransferTo {
        team_id: request.team_id.clone(),
        cooperator_id: Some(request.cooperator_id.clone()).filter(|c| !c.is_empty()),
        urgency: optional_urgency("urgency", request.urgency)?,
    })
}

/// A watch event on the wire. A change carries its position in the queue's feed
/// (`<partition>/<team>@<event id>`) and the ticket's state as the event recorded it.
pub fn watch_event_to_pb(event: WatchEvent) -> pb::TicketEvent {
    match event {
        WatchEvent::Snapshot { queue, ticket } => pb::TicketEvent {
            kind: "snapshot".to_owned(),
            team_id: queue.team,
            position: String::new(),
            at: timestamp(ticket.enqueued_at),
            ticket: Some(ticket_to_pb(*ticket)),
        },
        WatchEvent::Change { queue, event } => pb::TicketEvent {
            kind: event.kind.as_str().to_owned(),
            team_id: event.team_id.clone(),
            position: format!("{}@{}", queue.feed_key(), event.event_id),
            at: timestamp(event.at),
            ticket: Some(pb::Ticket {
                ticket_id: event.ticket_id,
                state: state_to_pb(event.state) as i32,
                cooperator_id: event.cooperator_id.unwrap_or_default(),
                team_id: event.team_id,
                urgency: urgency_to_pb(event.urgency) as i32,
                issue_type: event.issue_type,
                building_id: event.building_id.unwrap_or_default(),
                agent_id: event.agent_id.unwrap_or_default(),
                created_at: timestamp(event.created_at),
                sla_due_at: timestamp(event.sla_due_at),
                incident_calls: event.incident_calls,
                address: event.address.unwrap_or_default(),
                ..Default::default()
            }),
        },
    }
}

/// An agent's presence on the wire.
pub fn agent_to_pb(a: AgentStatus) -> pb::AgentStatus {
    pb::AgentStatus {
        agent_id: a.agent_id,
        cooperator_id: a.partition.as_str().to_owned(),
        team_ids: a.teams,
        presence: presence_to_pb(a.presence) as i32,
        last_seen: timestamp(a.last_seen),
    }
}

/// Queue statistics on the wire; the platform's queues have no cooperator id.
pub fn overview_to_pb(overview: QueueOverview) -> pb::GetQueueStatsResponse {
    let cooperator =
        |p: &crate::routing::partition::Partition| p.cooperator_id().unwrap_or_default().to_owned();
    pb::GetQueueStatsResponse {
        queues: overview
            .queues
            .into_iter()
            .map(|s| pb::QueueStats {
                cooperator_id: cooperator(&s.queue.partition),
                team_id: s.queue.team,
                urgency: urgency_to_pb(s.urgency) as i32,
                depth: s.depth,
                oldest_wait_seconds: s.oldest_wait_ms.map_or(0, |ms| (ms.max(0) / 1000) as u64),
            })
            .collect(),
        teams: overview
            .teams
            .into_iter()
            .map(|t| pb::TeamCounts {
                cooperator_id: cooperator(&t.queue.partition),
                team_id: t.queue.team,
                queued: t.counts.queued,
                reserved: t.counts.reserved,
                in_progress: t.counts.in_progress,
                completed: t.counts.completed,
                cancelled: t.counts.cancelled,
                agents_by_presence: t
                    .agents_by_presence
                    .into_iter()
                    .map(|(p, n)| (p.as_str().to_owned(), n))
                    .collect::<HashMap<_, _>>(),
            })
            .collect(),
    }
}

/// A reload's outcome on the wire.
pub fn reloaded_to_pb(reloaded: Reloaded) -> pb::ReloadConfigResponse {
    pb::ReloadConfigResponse {
        generation: reloaded.generation,
        summary: reloaded.summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fields_are_named() {
        let long = "x".repeat(crate::routing::request::MAX_FIELD_LEN + 1);
        let refused = route_request(pb::RouteCallRequest {
            issue_type: "other".into(),
            caller_number: long,
            ..Default::default()
        });
        assert_eq!(
            refused.map_err(|e| e.field),
            Err("caller_number".to_owned())
        );
        assert_eq!(
            lease(86_400).map_err(|e| e.field),
            Err("lease_seconds".to_owned())
        );
        assert_eq!(optional_lease(0), Ok(None));
        assert!(lease(0).is_err());
        assert!(optional_urgency("urgency", 9).is_err());
        assert!(presence(0).is_err());
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        let t = timestamp(1_700_000_000_123).expect("positive");
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
        assert_eq!(timestamp(0), None);
    }
}
