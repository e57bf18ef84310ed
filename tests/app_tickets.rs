//! The agents' use-cases on tickets, on the in-memory store with no server: claim, the holder's
//! actions under its lease token, transfers and who may make them, reading tickets and queues.
//! One behaviour per test.

mod support {
    pub mod app;
}

use std::time::Duration;

use callrouter::app::policy::Refusal;
use callrouter::app::requests::HeldAction;
use callrouter::app::tickets::TransferTo;
use callrouter::app::{App, AppError};
use callrouter::routing::request::RouteRequest;
use callrouter::store::{StoreError, Ticket, TicketState};
use support::app::{TL_TECH, demo_app, hold_of, principal, routed};

const LEASE: Duration = Duration::from_secs(60);
const TL_FRONT: &str = "touraine-logement.front-desk";

async fn claim(app: &App, agent: &str, teams: &[&str]) -> Option<Ticket> {
    let who = principal(app, agent);
    let teams: Vec<String> = teams.iter().map(|t| (*t).to_owned()).collect();
    app.claim_next_ticket(&who, &teams, LEASE, None)
        .await
        .expect("claim")
}

fn to(team: &str) -> TransferTo {
    TransferTo {
        team_id: team.to_owned(),
        cooperator_id: None,
        urgency: None,
    }
}

#[tokio::test]
async fn claims_take_the_longest_waiting_first() {
    let app = demo_app();
    let first = routed(&app, "c-1").await;
    let second = routed(&app, "c-2").await;
    let claimed = claim(&app, "tl-agent-1", &[]).await.expect("a ticket");
    assert_eq!(claimed.ticket_id, first.ticket_id);
    assert_eq!(
        (claimed.state, claimed.agent_id.as_deref()),
        (TicketState::Reserved, Some("tl-agent-1"))
    );
    let next = claim(&app, "tl-agent-1", &[TL_TECH]).await.expect("next");
    assert_eq!(next.ticket_id, second.ticket_id);
    assert!(
        claim(&app, "tl-agent-1", &[]).await.is_none(),
        "nothing left"
    );
}

#[tokio::test]
async fn a_claim_for_a_team_not_ones_own_is_refused() {
    let app = demo_app();
    let agent = principal(&app, "lb-agent-1");
    let refused = app
        .claim_next_ticket(&agent, &[TL_TECH.to_owned()], LEASE, None)
        .await;
    assert_eq!(
        refused.map(|t| t.is_some()),
        Err(AppError::Refused(Refusal::NotYourTeam(TL_TECH.to_owned())))
    );
}

#[tokio::test]
async fn the_holder_accepts_and_completes_under_its_lease_token() {
    let app = demo_app();
    routed(&app, "c-1").await;
    let held = claim(&app, "tl-agent-1", &[]).await.expect("held");
    let agent = principal(&app, "tl-agent-1");
    let accepted = app
        .accept_ticket(&agent, &hold_of(&held), None)
        .await
        .expect("accept");
    assert_eq!(accepted.state, TicketState::InProgress);
    let done = app
        .complete_ticket(&agent, &hold_of(&held), "plumber sent")
        .await
        .expect("complete");
    assert_eq!(
        (done.state, done.resolution.as_deref()),
        (TicketState::Completed, Some("plumber sent"))
    );
}

#[tokio::test]
async fn a_stale_lease_token_changes_nothing() {
    let app = demo_app();
    routed(&app, "c-1").await;
    let held = claim(&app, "tl-agent-1", &[]).await.expect("held");
    let agent = principal(&app, "tl-agent-1");
    let stale = HeldAction::new(&held.ticket_id, held.lease_token + 7).expect("action");
    let refused = app.complete_ticket(&agent, &stale, "x").await;
    assert!(matches!(
        refused,
        Err(AppError::Store(StoreError::NotHolder(_)))
    ));
    let released = app
        .release_ticket(&agent, &hold_of(&held))
        .await
        .expect("the real holder still holds it");
    assert_eq!(released.state, TicketState::Queued);
}

#[tokio::test]
async fn a_completion_needs_a_resolution() {
    let app = demo_app();
    routed(&app, "c-1").await;
    let held = claim(&app, "tl-agent-1", &[]).await.expect("held");
    let agent = principal(&app, "tl-agent-1");
    let refused = app.complete_ticket(&agent, &hold_of(&held), "  ").await;
    assert!(matches!(refused, Err(AppError::Field(f)) if f.field == "resolution"));
}

#[tokio::test]
async fn a_transfer_within_the_cooperator_keeps_the_ticket() {
    let app = demo_app();
    let ticket = routed(&app, "c-1").await;
    let held = claim(&app, "tl-agent-1", &[]).await.expect("held");
    let agent = principal(&app, "tl-agent-1");
    let moved = app
        .transfer_ticket(&agent, &hold_of(&held), &to(TL_FRONT))
        .await
        .expect("transfer");
    assert_eq!(
        (
            moved.ticket_id.as_str(),
            moved.team_id.as_str(),
            moved.state
        ),
        (ticket.ticket_id.as_str(), TL_FRONT, TicketState::Queued)
    );
    let again = claim(&app, "tl-agent-1", &[TL_FRONT]).await.expect("again");
    assert_eq!(again.ticket_id, ticket.ticket_id);
    assert!(again.lease_token > held.lease_token, "a new fencing token");
}

#[tokio::test]
async fn a_cooperators_agent_may_not_hand_a_ticket_to_another_cooperator() {
    let app = demo_app();
    routed(&app, "c-1").await;
    let held = claim(&app, "tl-agent-1", &[]).await.expect("held");
    let agent = principal(&app, "tl-agent-1");
    let refused = app
        .transfer_ticket(&agent, &hold_of(&held), &to("lb-habitat.front-desk"))
        .await;
    assert_eq!(
        refused.map(|t| t.ticket_id),
        Err(AppError::Refused(Refusal::CrossCooperatorTransfer))
    );
    let unknown = app
        .transfer_ticket(&agent, &hold_of(&held), &to("nowhere"))
        .await;
    assert!(matches!(unknown, Err(AppError::Field(f)) if f.field == "team_id"));
}

#[tokio::test]
async fn any_agent_may_send_a_call_back_to_triage() {
    let app = demo_app();
    routed(&app, "c-1").await;
    let held = claim(&app, "tl-agent-1", &[]).await.expect("held");
    let agent = principal(&app, "tl-agent-1");
    let back = app
        .transfer_ticket(&agent, &hold_of(&held), &to("platform.triage"))
        .await
        .expect("back to triage");
    assert_eq!(
        (back.team_id.as_str(), back.cooperator_id.as_deref()),
        ("platform.triage", None)
    );
    assert_eq!(
        back.transferred_from.as_deref(),
        Some(held.ticket_id.as_str())
    );
}

#[tokio::test]
async fn triage_hands_an_unlocated_call_to_a_cooperator() {
    let app = demo_app();
    let telephony = principal(&app, "telephony-ivr");
    let unlocated = RouteRequest {
        call_id: "u-1".to_owned(),
        issue_type: "technical.plumbing.leak".to_owned(),
        ..RouteRequest::default()
    };
    let routed = app.route_call(&telephony, unlocated).await.expect("route");
    assert_eq!(routed.decision.team_id, "platform.triage");
    let held = claim(&app, "triage-1", &[]).await.expect("the triage call");
    let triage = principal(&app, "triage-1");
    let handed = app
        .transfer_ticket(&triage, &hold_of(&held), &to(TL_FRONT))
        .await
        .expect("hand over");
    assert!(handed.ticket_id.starts_with("touraine-logement-"));
    assert_eq!(handed.call_id, "u-1", "the same call, in its cooperator");
    let taken = claim(&app, "tl-agent-1", &[TL_FRONT]).await.expect("taken");
    assert_eq!(taken.ticket_id, handed.ticket_id);
}

#[tokio::test]
async fn another_cooperators_ticket_is_not_found() {
    let app = demo_app();
    let ticket = routed(&app, "c-1").await;
    let outsider = principal(&app, "lb-agent-1");
    assert_eq!(
        app.get_ticket(&outsider, &ticket.ticket_id)
            .await
            .map(|t| t.ticket_id),
        Err(AppError::NotFound)
    );
    let insider = principal(&app, "tl-agent-1");
    let seen = app
        .get_ticket(&insider, &ticket.ticket_id)
        .await
        .expect("its own cooperator's");
    assert_eq!(seen.ticket_id, ticket.ticket_id);
}

#[tokio::test]
async fn a_list_shows_waiting_tickets_oldest_first_within_its_limit() {
    let app = demo_app();
    let first = routed(&app, "c-1").await;
    routed(&app, "c-2").await;
    routed(&app, "c-3").await;
    let agent = principal(&app, "tl-agent-1");
    let listed = app.list_tickets(&agent, TL_TECH, 2).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].ticket_id, first.ticket_id);
    let outsider = principal(&app, "lb-agent-1");
    assert_eq!(
        app.list_tickets(&outsider, TL_TECH, 2)
            .await
            .map(|l| l.len()),
        Err(AppError::Refused(Refusal::NotYourTeam(TL_TECH.to_owned())))
    );
}
