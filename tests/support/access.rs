//! The access matrix: what each principal of the demo deployment gets from each use-case, as one
//! table that the application-level test (`tests/app_policy.rs`, no server) and the end-to-end gRPC
//! test (`tests/access_matrix.rs`) both hold the service to.
//!
//! The situation of every cell: a Touraine Logement ticket in `TL_TECH`, held by `tl-agent-1` for
//! the holder's actions and `GetTicket`, queued for `CancelCall`.

#![allow(dead_code)]

/// The principals, by development token agent id; `None` is a request without a token.
pub const PRINCIPALS: [Option<&str>; 10] = [
    None,
    Some("telephony-ivr"),
    Some("ops-1"),
    Some("tl-agent-1"),
    Some("tl-sup-1"),
    Some("lb-agent-1"),
    Some("lb-sup-1"),
    Some("triage-1"),
    Some("platform-sup-1"),
    Some("lifts-1"),
];

/// What a cell expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Done.
    Ok,
    /// No or an unknown token (`UNAUTHENTICATED`).
    Unauthenticated,
    /// Outside the role's remit (`PERMISSION_DENIED`).
    Denied,
    /// A ticket of another cooperator, hidden (`NOT_FOUND`).
    NotFound,
    /// A ticket the caller may act on but does not hold (`FAILED_PRECONDITION`).
    NotHeld,
}

/// One row per use-case (`ClaimNextTicket` twice: for all the caller's teams, and for `TL_TECH`),
/// one column per principal, in the order of [`PRINCIPALS`]:
/// `.` ok, `u` unauthenticated, `d` denied, `n` not found, `h` not held.
pub const MATRIX: [(&str, &str); 16] = [
    //                  none tel ops tla tls lba lbs tri psu lif
    ("RouteCall", "u . d d d d d d d d"),
    ("ExplainRoute", "u . . d d d d d d d"),
    ("CancelCall", "u . d d d d d d d d"),
    ("ClaimAny", "u d d . . . . . . ."),
    ("ClaimTeam", "u d d . d d d d d d"),
    ("Accept", "u d d . h n n h h h"),
    ("Complete", "u d d . h n n h h h"),
    ("Release", "u d d . h n n h h h"),
    ("Transfer", "u d d . h n n h h h"),
    ("GetTicket", "u d d . . n n n n n"),
    ("ListTickets", "u d d . . d d d d d"),
    ("WatchTickets", "u d d . . d d d d d"),
    ("SetAgentStatus", "u d d . . . . . . ."),
    ("GetQueueStats", "u d . d . d d d d d"),
    ("ListAgents", "u d . d . d . d . d"),
    ("ReloadConfig", "u d . d d d d d d d"),
];

/// The use-cases that act on a held ticket (the cell first makes one).
pub fn needs_held_ticket(rpc: &str) -> bool {
    matches!(
        rpc,
        "Accept" | "Complete" | "Release" | "Transfer" | "GetTicket"
    )
}

/// Every cell: (use-case, principal, expected outcome).
pub fn cells() -> Vec<(&'static str, Option<&'static str>, Expect)> {
    MATRIX
        .iter()
        .flat_map(|(rpc, row)| {
            let marks: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(marks.len(), PRINCIPALS.len(), "row {rpc}");
            PRINCIPALS.iter().zip(marks).map(move |(who, mark)| {
                let expect = match mark {
                    "." => Expect::Ok,
                    "u" => Expect::Unauthenticated,
                    "d" => Expect::Denied,
                    "n" => Expect::NotFound,
                    "h" => Expect::NotHeld,
                    other => panic!("unknown mark {other} in row {rpc}"),
                };
                (*rpc, *who, expect)
            })
        })
        .collect()
}
