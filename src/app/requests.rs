//! The agent desk's requests as the use-cases take them, and the limits every edge holds them to:
//! lease lengths, the hold an action presents, list sizes. Each check names the contract's field.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::routing::request::{FieldError, required_text};

/// Shortest and longest lease an agent may ask for (seconds): a lease of 0 would expire before the
/// agent can act, and a day would keep a vanished desk's ticket from everyone.
pub const LEASE_RANGE: RangeInclusive<u32> = 5..=4 * 3600;

/// The most team ids a request may name (after removing repeats), and resume positions a watch
/// may give: far above the teams of a deployment, far below what would cost the store.
pub const MAX_TEAMS_PER_REQUEST: usize = 128;
pub const MAX_RESUME_POSITIONS: usize = 256;

/// Tickets a list returns when the request names no limit, and the most it may ask for.
pub const DEFAULT_LIST_LIMIT: usize = 50;
pub const MAX_LIST_LIMIT: usize = 1000;

/// A lease duration, within [`LEASE_RANGE`].
pub fn lease(field: &str, seconds: u32) -> Result<Duration, FieldError> {
    if !LEASE_RANGE.contains(&seconds) {
        return Err(FieldError::new(
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

/// A list size: 0 for the default, at most [`MAX_LIST_LIMIT`].
pub fn list_limit(field: &str, requested: u32) -> Result<usize, FieldError> {
    match requested as usize {
        0 => Ok(DEFAULT_LIST_LIMIT),
        n if n <= MAX_LIST_LIMIT => Ok(n),
        n => Err(FieldError::new(
            field,
            format!("{n} is more than {MAX_LIST_LIMIT}"),
        )),
    }
}

/// An action by a ticket's holder: the ticket, and the lease token its claim returned (fencing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldAction {
    pub ticket_id: String,
    pub lease_token: u64,
}

impl HeldAction {
    pub fn new(ticket_id: &str, lease_token: u64) -> Result<HeldAction, FieldError> {
        let ticket_id = required_text("ticket_id", ticket_id)?;
        if lease_token == 0 {
            return Err(FieldError::new(
                "lease_token",
                "is required (from the claimed ticket)",
            ));
        }
        Ok(HeldAction {
            ticket_id,
            lease_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_their_field() {
        assert_eq!(
            lease("lease_seconds", 0).map_err(|e| e.field),
            Err("lease_seconds".to_owned())
        );
        assert!(lease("lease_seconds", 86_400).is_err());
        assert_eq!(lease("lease_seconds", 60), Ok(Duration::from_secs(60)));
        assert_eq!(list_limit("limit", 0), Ok(DEFAULT_LIST_LIMIT));
        assert!(list_limit("limit", 1001).is_err());
        assert_eq!(
            HeldAction::new("t-1", 0).map_err(|e| e.field),
            Err("lease_token".to_owned())
        );
        assert_eq!(
            HeldAction::new(" ", 3).map_err(|e| e.field),
            Err("ticket_id".to_owned())
        );
    }
}
