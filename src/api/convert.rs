//! Conversions at the edge: proto messages become domain types here and only here, and bad input
//! becomes `INVALID_ARGUMENT` naming the field (with `BadRequest` details). Domain errors map to
//! gRPC codes in [`store_status`] and [`field_status`], nowhere else.

use std::time::Duration;

use prost_types::Timestamp;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::pb;
use crate::routing::RoutingDecision;
use crate::routing::address::{AddressInput, MatchLevel};
use crate::routing::request::{FieldError, RouteRequest, check_request, required_text};
use crate::routing::urgency::Urgency;
use crate::store::{Presence, StoreError, Ticket, TicketState};

/// Shortest and longest lease an agent may ask for.
pub const LEASE_RANGE: std::ops::RangeInclusive<u32> = 5..=4 * 3600;

/// `INVALID_ARGUMENT` naming the field, with a `BadRequest` detail.
pub fn field_status(error: FieldError) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{}: {}", error.field, error.message),
        ErrorDetails::with_bad_request_violation(error.field, error.message),
    )
}

fn invalid(field: &str, message: impl Into<String>) -> Status {
    field_status(FieldError::new(field, message))
}

/// The one mapping of store errors to gRPC codes.
pub fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::NotFound(_) => Status::not_found("no such ticket"),
        StoreError::NotHolder(_) => Status::failed_precondition(
            "the ticket is not held by you under this lease token (released, expired or claimed by someone else)",
        ),
        e @ StoreError::WrongState { .. } => Status::failed_precondition(e.to_string()),
        StoreError::Invalid(message) => Status::invalid_argument(message),
        StoreError::Unavailable(_) => Status::unavailable("the queue store is unavailable"),
        StoreError::Timeout => Status::deadline_exceeded("the queue store did not answer in time"),
        StoreError::Corrupt(_) => Status::internal("the queue store answered unexpectedly"),
    }
}

/// A required, bounded identifier field.
pub fn required_id(field: &str, value: &str) -> Result<String, Status> {
    required_text(field, value).map_err(field_status)
}

/// A lease duration, within [`LEASE_RANGE`]: a lease of 0 would expire before the agent can act.
pub fn lease(field: &str, seconds: u32) -> Result<Duration, Status> {
    if !LEASE_RANGE.contains(&seconds) {
        return Err(invalid(
            field,
            format!(
                "{seconds} s is out of range: from {} s to {} s",
                LEASE_RANGE.start(),
                LEASE_RANGE.end()
            ),
        ));
    }
    Ok(Duration::from_secs(u64::from(seconds)))
}

/// A routing request from the wire; `call_id` is required when the ticket is to be queued.
pub fn route_request(
    request: pb::RouteCallRequest,
    need_call_id: bool,
) -> Result<RouteRequest, Status> {
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
    check_request(&domain).map_err(field_status)?;
    if need_call_id && domain.call_id.trim().is_empty() {
        return Err(invalid("call_id", "is required"));
    }
    Ok(domain)
}

/// A transfer's urgency: unspecified keeps the ticket's.
pub fn optional_urgency(field: &str, value: i32) -> Result<Option<Urgency>, Status> {
    match pb::Urgency::try_from(value) {
        Ok(pb::Urgency::Unspecified) => Ok(None),
        Ok(pb::Urgency::U1) => Ok(Some(Urgency::U1)),
        Ok(pb::Urgency::U2) => Ok(Some(Urgency::U2)),
        Ok(pb::Urgency::U3) => Ok(Some(Urgency::U3)),
        Err(_) => Err(invalid(field, format!("{value} is not an urgency"))),
    }
}

pub fn presence(value: i32) -> Result<Presence, Status> {
    Ok(match pb::Presence::try_from(value) {
        Ok(pb::Presence::Available) => Presence::Available,
        Ok(pb::Presence::Busy) => Presence::Busy,
        Ok(pb::Presence::WrapUp) => Presence::WrapUp,
        Ok(pb::Presence::Break) => Presence::Break,
        Ok(pb::Presence::Offline) => Presence::Offline,
        Ok(pb::Presence::Unspecified) | Err(_) => {
            return Err(invalid(
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

/// A stored ticket on the wire.
pub fn ticket_to_pb(t: Ticket) -> pb::Ticket {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fields_are_named_in_details() {
        let status = route_request(
            pb::RouteCallRequest {
                issue_type: "other".into(),
                ..Default::default()
            },
            true,
        )
        .expect_err("call_id is required");
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violations = details
            .bad_request()
            .expect("bad request details")
            .field_violations
            .clone();
        assert_eq!(violations[0].field, "call_id");
        assert!(lease("lease_seconds", 86_400).is_err());
        assert!(lease("lease_seconds", 0).is_err());
        assert_eq!(
            lease("lease_seconds", 60).ok(),
            Some(Duration::from_secs(60))
        );
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
