//! The ticket state machine, declared once: the states a ticket passes through, the kinds of event
//! each transition appends to its team's feed, the actions a refusal names, and the codes with which
//! the Redis scripts refuse. Both stores and the scripts speak these words; a test below holds every
//! word the scripts write against this declaration.

use std::fmt;

use serde::Serialize;

/// Where a ticket is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketState {
    Queued,
    Reserved,
    InProgress,
    Completed,
    Cancelled,
    /// Being moved to another partition (not claimable; finished by the mover or the reaper).
    Moving,
    /// Moved to another partition: `moved_to` names the ticket there.
    Moved,
}

impl TicketState {
    pub const ALL: [TicketState; 7] = [
        TicketState::Queued,
        TicketState::Reserved,
        TicketState::InProgress,
        TicketState::Completed,
        TicketState::Cancelled,
        TicketState::Moving,
        TicketState::Moved,
    ];

    /// States counted per team in queue statistics.
    pub const COUNTED: [TicketState; 5] = [
        TicketState::Queued,
        TicketState::Reserved,
        TicketState::InProgress,
        TicketState::Completed,
        TicketState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Queued => "QUEUED",
            TicketState::Reserved => "RESERVED",
            TicketState::InProgress => "IN_PROGRESS",
            TicketState::Completed => "COMPLETED",
            TicketState::Cancelled => "CANCELLED",
            TicketState::Moving => "MOVING",
            TicketState::Moved => "MOVED",
        }
    }

    pub fn parse(text: &str) -> Option<TicketState> {
        TicketState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_held(self) -> bool {
        matches!(self, TicketState::Reserved | TicketState::InProgress)
    }

    pub fn is_closed(self) -> bool {
        matches!(
            self,
            TicketState::Completed | TicketState::Cancelled | TicketState::Moved
        )
    }
}

impl fmt::Display for TicketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a ticket, as its team's feed records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    /// Another call joined the ticket's building-wide incident.
    IncidentCall,
    /// One caller of an incident hung up; others still wait.
    CallerLeft,
    Claimed,
    Accepted,
    Completed,
    Released,
    Cancelled,
    /// Left this team's queue for another team (or partition).
    TransferredOut,
    /// Arrived in this team's queue from another team (or partition).
    TransferredIn,
    LeaseExpired,
    Escalated,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::Created,
        EventKind::IncidentCall,
        EventKind::CallerLeft,
        EventKind::Claimed,
        EventKind::Accepted,
        EventKind::Completed,
        EventKind::Released,
        EventKind::Cancelled,
        EventKind::TransferredOut,
        EventKind::TransferredIn,
        EventKind::LeaseExpired,
        EventKind::Escalated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::IncidentCall => "incident_call",
            EventKind::CallerLeft => "caller_left",
            EventKind::Claimed => "claimed",
            EventKind::Accepted => "accepted",
            EventKind::Completed => "completed",
            EventKind::Released => "released",
            EventKind::Cancelled => "cancelled",
            EventKind::TransferredOut => "transferred_out",
            EventKind::TransferredIn => "transferred_in",
            EventKind::LeaseExpired => "lease_expired",
            EventKind::Escalated => "escalated",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// An action on a ticket that the store may refuse because of the ticket's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Accept,
    Complete,
    Release,
    Transfer,
    Cancel,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Accept,
        Action::Complete,
        Action::Release,
        Action::Transfer,
        Action::Cancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Complete => "complete",
            Action::Release => "release",
            Action::Transfer => "transfer",
            Action::Cancel => "cancel",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a script refused a transition: the error code its reply starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `CR_NOT_FOUND <ticket>`: no such ticket.
    NotFound,
    /// `CR_NOT_HOLDER <ticket>`: a stale or foreign hold (fencing).
    NotHolder,
    /// `CR_WRONG_STATE <state> <action>`: the ticket's state does not allow the action.
    WrongState,
    /// `CR_TOO_LATE`: a creation ran past its cut-off and created nothing.
    TooLate,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::NotFound,
        Refusal::NotHolder,
        Refusal::WrongState,
        Refusal::TooLate,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotFound => "CR_NOT_FOUND",
            Refusal::NotHolder => "CR_NOT_HOLDER",
            Refusal::WrongState => "CR_WRONG_STATE",
            Refusal::TooLate => "CR_TOO_LATE",
        }
    }

    pub fn parse(code: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::redis::prelude::{PRELUDE, SCRIPTS};

    /// Every script, with the prelude they share.
    fn scripts() -> impl Iterator<Item = (&'static str, &'static str)> {
        std::iter::once(("common", PRELUDE)).chain(SCRIPTS)
    }

    /// Redis command words and arguments the scripts quote, which are not lifecycle words.
    const REDIS_WORDS: [&str; 6] = ["LIMIT", "WITHSCORES", "MAXLEN", "PX", "PXAT", "NX"];

    /// The single-quoted literals of a script's code (comments left out), each with the code
    /// before it on its line and whether it is the line's last.
    fn literals(script: &str) -> Vec<(String, String, bool)> {
        let mut found = Vec::new();
        for line in script.lines() {
            let first = found.len();
            let code = line.split("--").next().unwrap_or_default();
            let mut rest = code;
            let mut consumed = 0;
            while let Some(start) = rest.find('\'') {
                let Some(len) = rest[start + 1..].find('\'') else {
                    break;
                };
                let before = code[..consumed + start].trim_end().to_owned();
                found.push((before, rest[start + 1..start + 1 + len].to_owned(), false));
                consumed += start + len + 2;
                rest = &code[consumed..];
            }
            if found.len() > first
                && let Some(last) = found.last_mut()
            {
                last.2 = true;
            }
        }
        found
    }

    #[test]
    fn the_scripts_write_only_declared_states_events_actions_and_refusals() {
        let mut seen_states = Vec::new();
        let mut seen_kinds = Vec::new();
        let mut seen_refusals = Vec::new();
        let mut seen_actions = Vec::new();
        for (name, script) in scripts() {
            for (before, literal, last) in literals(script) {
                let word = literal.trim();
                if before.ends_with("redis.call(") || REDIS_WORDS.contains(&word) {
                    continue;
                }
                if before.ends_with("error_reply(") {
                    let code = word.split_whitespace().next().unwrap_or_default();
                    let refusal = Refusal::parse(code);
                    assert!(refusal.is_some(), "{name}: undeclared refusal '{code}'");
                    seen_refusals.extend(refusal);
                } else if (before.contains("error_reply('CR_WRONG_STATE") && !word.is_empty())
                    || before.contains("check_hold(")
                    || before.contains("hold_refusal(")
                    || before.contains("held_row(")
                    || before.contains("end_hold(")
                    || before.contains("hold_end(")
                {
                    let action = Action::parse(word);
                    assert!(action.is_some(), "{name}: undeclared action '{word}'");
                    seen_actions.extend(action);
                } else if ((before.contains("emit(")
                    || before.contains("emit_text(")
                    || before.contains("emit_row("))
                    && last)
                    || before.ends_with("kind ==")
                {
                    let kind = EventKind::parse(word);
                    assert!(kind.is_some(), "{name}: undeclared event kind '{word}'");
                    seen_kinds.extend(kind);
                } else if word.len() > 1
                    && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                {
                    let state = TicketState::parse(word);
                    assert!(state.is_some(), "{name}: undeclared state '{word}'");
                    seen_states.extend(state);
                }
            }
        }
        // The scan is not vacuous: it found the words the scripts are known to write.
        for state in TicketState::ALL {
            assert!(seen_states.contains(&state), "{state} never seen");
        }
        for action in Action::ALL {
            assert!(seen_actions.contains(&action), "{action} never refused");
        }
        for kind in EventKind::ALL {
            assert!(seen_kinds.contains(&kind), "{kind:?} never emitted");
        }
        for refusal in Refusal::ALL {
            assert!(seen_refusals.contains(&refusal), "{refusal:?} never used");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in TicketState::ALL {
            assert_eq!(TicketState::parse(s.as_str()), Some(s));
        }
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        for r in Refusal::ALL {
            assert_eq!(Refusal::parse(r.code()), Some(r));
        }
    }
}
