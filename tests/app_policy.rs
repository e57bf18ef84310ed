//! The access matrix at the application layer, with no server: every principal of the demo
//! deployment against every use-case, on the in-memory store, held to the table of
//! `support/access.rs` (the gRPC test holds the wire to the same table).

mod support {
    pub mod access;
    pub mod app;
}

use std::collections::HashMap;
use std::time::Duration;

use callrouter::app::tickets::TransferTo;
use callrouter::app::{App, AppError};
use callrouter::store::StoreError;
use support::access::{Expect, cells, needs_held_ticket};
use support::app::{TL_TECH, demo_app, hold_of, leak, principal, routed};

/// The outcome class of a use-case's result.
fn outcome<T>(result: Result<T, AppError>) -> Expect {
    match result {
        Ok(_) => Expect::Ok,
        Err(AppError::Unauthenticated(_)) => Expect::Unauthenticated,
        Err(AppError::Refused(_)) => Expect::Denied,
        Err(AppError::NotFound) => Expect::NotFound,
        Err(AppError::Store(StoreError::NotHolder(_) | StoreError::WrongState { .. })) => {
            Expect::NotHeld
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

/// A queued Touraine ticket, claimed by `tl-agent-1` when `held`.
async fn ticket(app: &App, held: bool) -> callrouter::store::Ticket {
    let queued = routed(app, "cell").await;
    if !held {
        return queued;
    }
    let agent = principal(app, "tl-agent-1");
    let claimed = app
        .claim_next_ticket(
            &agent,
            &[TL_TECH.to_owned()],
            Duration::from_secs(600),
            None,
        )
        .await
        .expect("claim")
        .expect("the fresh ticket waits");
    assert_eq!(claimed.ticket_id, queued.ticket_id, "one ticket per cell");
    claimed
}

/// Runs one cell on a fresh application (so cells cannot disturb each other) and classifies it.
async fn run(rpc: &str, who: Option<&str>) -> Expect {
    let app = demo_app();
    // The caller authenticates as the edge would; without a token it never reaches a use-case.
    let Some(who) = who else {
        return outcome(app.authenticate(None));
    };
    let caller = principal(&app, who);
    let ticket = ticket(&app, needs_held_ticket(rpc)).await;
    let action = || hold_of(&ticket);
    let teams = [TL_TECH.to_owned()];
    let lease = Duration::from_secs(60);
    match rpc {
        "RouteCall" => outcome(app.route_call(&caller, leak("another")).await),
        "ExplainRoute" => outcome(app.explain_route(&caller, &leak("x"), chrono::Utc::now())),
        "CancelCall" => outcome(app.cancel_call(&caller, &ticket.ticket_id, None).await),
        "ClaimAny" => outcome(app.claim_next_ticket(&caller, &[], lease, None).await),
        "ClaimTeam" => outcome(app.claim_next_ticket(&caller, &teams, lease, None).await),
        "Accept" => outcome(app.accept_ticket(&caller, &action(), None).await),
        "Complete" => outcome(app.complete_ticket(&caller, &action(), "done").await),
        "Release" => outcome(app.release_ticket(&caller, &action()).await),
        "Transfer" => {
            let to = TransferTo {
                team_id: "touraine-logement.front-desk".to_owned(),
                cooperator_id: None,
                urgency: None,
            };
            outcome(app.transfer_ticket(&caller, &action(), &to).await)
        }
        "GetTicket" => outcome(app.get_ticket(&caller, &ticket.ticket_id).await),
        "ListTickets" => outcome(app.list_tickets(&caller, TL_TECH, 10).await),
        "WatchTickets" => outcome(app.watch_tickets(&caller, &teams, &HashMap::new()).await),
        "SetAgentStatus" => outcome(
            app.set_agent_status(&caller, callrouter::store::Presence::Available)
                .await,
        ),
        "GetQueueStats" => outcome(app.get_queue_stats(&caller, &teams).await),
        "ListAgents" => outcome(app.list_agents(&caller).await),
        "ReloadConfig" => outcome(app.reload_config(&caller).await),
        other => panic!("unknown use-case {other}"),
    }
}

#[tokio::test]
async fn every_principal_against_every_use_case() {
    let mut mismatches = Vec::new();
    let all = cells();
    assert_eq!(all.len(), 160);
    for (rpc, who, expect) in all {
        let got = run(rpc, who).await;
        if got != expect {
            mismatches.push(format!(
                "{rpc:<14} {:<16} got {got:?}, expected {expect:?}",
                who.unwrap_or("(no token)")
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "access matrix mismatches:\n{}",
        mismatches.join("\n")
    );
}

#[tokio::test]
async fn an_unknown_token_is_unauthenticated() {
    let app = demo_app();
    assert!(matches!(
        app.authenticate(Some("not-a-token")),
        Err(AppError::Unauthenticated(_))
    ));
}
