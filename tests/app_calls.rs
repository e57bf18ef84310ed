//! The telephony platform's use-cases, on the in-memory store with no server: route, explain and
//! cancel calls. One behaviour per test.

mod support {
    pub mod app;
}

use std::time::Duration;

use callrouter::app::AppError;
use callrouter::app::calls::CallOutcome;
use callrouter::store::{StoreError, TicketState};
use support::app::{TL_TECH, demo_app, leak, principal, routed};

#[tokio::test]
async fn a_routed_call_is_queued_with_its_decision_and_place() {
    let app = demo_app();
    let telephony = principal(&app, "telephony-ivr");
    let routed = app
        .route_call(&telephony, leak("c-1"))
        .await
        .expect("route");
    assert_eq!(routed.outcome, CallOutcome::Queued);
    assert_eq!(routed.decision.team_id, TL_TECH);
    assert_eq!(
        routed.decision.cooperator_id.as_deref(),
        Some("touraine-logement")
    );
    let ticket = routed.ticket.expect("queued");
    assert_eq!(
        (ticket.state, ticket.team_id.as_str()),
        (TicketState::Queued, TL_TECH)
    );
    assert!(ticket.ticket_id.starts_with("touraine-logement-"));
    assert!(ticket.sla_due_at > ticket.created_at, "a due time is set");
    assert!(
        ticket.details.contains(&routed.decision.rule_id),
        "the decision is kept with the ticket"
    );
    let position = routed.position.expect("a place in the queue");
    assert_eq!(position.position, 1);
    assert!(position.estimated_wait_seconds > 0);
}

#[tokio::test]
async fn a_retried_call_answers_its_first_ticket() {
    let app = demo_app();
    let telephony = principal(&app, "telephony-ivr");
    let first = routed(&app, "c-1").await;
    let retry = app
        .route_call(&telephony, leak("c-1"))
        .await
        .expect("retry");
    assert_eq!(retry.outcome, CallOutcome::Duplicate);
    assert_eq!(
        retry.ticket.map(|t| t.ticket_id),
        Some(first.ticket_id.clone())
    );
}

#[tokio::test]
async fn a_second_call_about_a_building_wide_fault_joins_the_incident() {
    let app = demo_app();
    let telephony = principal(&app, "telephony-ivr");
    let lift = |call: &str| {
        let mut request = leak(call);
        request.issue_type = "technical.lift.breakdown".to_owned();
        request
    };
    let first = app
        .route_call(&telephony, lift("l-1"))
        .await
        .expect("first");
    let second = app
        .route_call(&telephony, lift("l-2"))
        .await
        .expect("second");
    assert_eq!(
        (first.outcome, second.outcome),
        (CallOutcome::Queued, CallOutcome::Incident)
    );
    let (first, second) = (first.ticket.expect("t"), second.ticket.expect("t"));
    assert_eq!(
        first.ticket_id, second.ticket_id,
        "one ticket for the fault"
    );
    assert_eq!(second.incident_calls, 2);
}

#[tokio::test]
async fn a_route_needs_a_call_id_and_a_known_issue_type() {
    let app = demo_app();
    let telephony = principal(&app, "telephony-ivr");
    let field = |e: AppError| match e {
        AppError::Field(f) => f.field,
        other => panic!("not a field error: {other:?}"),
    };
    let refused = app
        .route_call(&telephony, leak(" "))
        .await
        .expect_err("no call id");
    assert_eq!(field(refused), "call_id");
    let mut unknown = leak("c-2");
    unknown.issue_type = "technical.unicorn".to_owned();
    let refused = app
        .route_call(&telephony, unknown)
        .await
        .expect_err("unknown issue type");
    assert_eq!(field(refused), "issue_type");
}

#[tokio::test]
async fn an_explained_route_queues_nothing() {
    let app = demo_app();
    let telephony = principal(&app, "telephony-ivr");
    let decision = app
        .explain_route(&telephony, &leak("c-1"), chrono::Utc::now())
        .expect("explain");
    assert_eq!(decision.team_id, TL_TECH);
    let agent = principal(&app, "tl-agent-1");
    let listed = app.list_tickets(&agent, TL_TECH, 10).await.expect("list");
    assert!(listed.is_empty());
}

#[tokio::test]
async fn a_hung_up_call_is_cancelled_while_it_waits() {
    let app = demo_app();
    let telephony = principal(&app, "telephony-ivr");
    let ticket = routed(&app, "c-1").await;
    let cancelled = app
        .cancel_call(&telephony, &ticket.ticket_id, Some("c-1"))
        .await
        .expect("cancel");
    assert_eq!(cancelled.state, TicketState::Cancelled);
    let again = app
        .cancel_call(&telephony, &ticket.ticket_id, None)
        .await
        .expect("cancelling twice is not an error");
    assert_eq!(again.state, TicketState::Cancelled);
}

#[tokio::test]
async fn a_cancel_naming_another_call_finds_nothing() {
    let app = demo_app();
    let telephony = principal(&app, "telephony-ivr");
    let ticket = routed(&app, "c-1").await;
    let refused = app
        .cancel_call(&telephony, &ticket.ticket_id, Some("c-2"))
        .await;
    assert_eq!(refused.map(|t| t.state), Err(AppError::NotFound));
    let unknown = app
        .cancel_call(&telephony, "touraine-logement-0000", None)
        .await;
    assert_eq!(unknown.map(|t| t.state), Err(AppError::NotFound));
}

#[tokio::test]
async fn a_picked_up_call_is_not_cancelled() {
    let app = demo_app();
    let telephony = principal(&app, "telephony-ivr");
    let ticket = routed(&app, "c-1").await;
    let agent = principal(&app, "tl-agent-1");
    app.claim_next_ticket(&agent, &[], Duration::from_secs(60), None)
        .await
        .expect("claim")
        .expect("the call");
    let refused = app
        .cancel_call(&telephony, &ticket.ticket_id, None)
        .await
        .expect_err("picked up");
    assert!(
        matches!(
            refused,
            AppError::Store(StoreError::WrongState {
                state: TicketState::Reserved,
                ..
            })
        ),
        "{refused:?}"
    );
}
