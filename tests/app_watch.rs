//! Watching tickets live, on the in-memory store with no server. One behaviour per test.

mod support {
    pub mod app;
}

use std::collections::HashMap;
use std::time::Duration;

use callrouter::app::watch::{Watch, WatchEvent};
use callrouter::app::{App, AppError};
use callrouter::routing::partition::QueueRef;
use callrouter::store::{EventKind, TicketState};
use support::app::{TL_TECH, demo_app, principal, routed};

async fn next(watch: &mut Watch) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("an event within 5 s")
        .expect("the watch is open")
        .expect("no error")
}

async fn watch(app: &App, agent: &str, resume_from: &HashMap<String, String>) -> Watch {
    let who = principal(app, agent);
    app.watch_tickets(&who, &[TL_TECH.to_owned()], resume_from)
        .await
        .expect("watch")
}

async fn claim(app: &App) {
    let agent = principal(app, "tl-agent-1");
    app.claim_next_ticket(&agent, &[], Duration::from_secs(60), None)
        .await
        .expect("claim")
        .expect("a ticket");
}

#[tokio::test]
async fn a_watch_starts_with_the_waiting_tickets_then_follows_changes() {
    let app = demo_app();
    let ticket = routed(&app, "c-1").await;
    let mut watch = watch(&app, "tl-agent-1", &HashMap::new()).await;
    let WatchEvent::Snapshot {
        queue,
        ticket: seen,
    } = next(&mut watch).await
    else {
        panic!("a snapshot first");
    };
    assert_eq!(queue, QueueRef::new("touraine-logement", TL_TECH));
    assert_eq!(seen.ticket_id, ticket.ticket_id);
    claim(&app).await;
    let WatchEvent::Change { event, .. } = next(&mut watch).await else {
        panic!("then the change");
    };
    assert_eq!(
        (event.kind, event.state, event.agent_id.as_deref()),
        (
            EventKind::Claimed,
            TicketState::Reserved,
            Some("tl-agent-1")
        )
    );
}

/// The watch notes where the feed is before it answers: a call routed at once, before any of the
/// watch's tasks has run, is an event, not a snapshot of a ticket that was not waiting yet.
#[tokio::test]
async fn a_call_routed_once_the_watch_has_answered_arrives_as_an_event() {
    let app = demo_app();
    let mut watch = watch(&app, "tl-agent-1", &HashMap::new()).await;
    let ticket = routed(&app, "c-1").await;
    let WatchEvent::Change { event, .. } = next(&mut watch).await else {
        panic!("the new ticket as a change, not in the snapshot");
    };
    assert_eq!(
        (event.kind, event.ticket_id),
        (EventKind::Created, ticket.ticket_id)
    );
}

#[tokio::test]
async fn a_watch_resumes_after_the_last_position_it_saw() {
    let app = demo_app();
    routed(&app, "c-1").await;
    let mut first = watch(&app, "tl-agent-1", &HashMap::new()).await;
    next(&mut first).await;
    claim(&app).await;
    let WatchEvent::Change { queue, event } = next(&mut first).await else {
        panic!("the claim");
    };
    drop(first);
    routed(&app, "c-2").await;
    let resume = HashMap::from([(queue.feed_key(), event.event_id.clone())]);
    let mut resumed = watch(&app, "tl-agent-1", &resume).await;
    let WatchEvent::Change { event: after, .. } = next(&mut resumed).await else {
        panic!("no snapshot when resuming");
    };
    assert_eq!(
        after.kind,
        EventKind::Created,
        "only what came after the claim"
    );
}

#[tokio::test]
async fn a_malformed_resume_position_is_refused() {
    let app = demo_app();
    let resume = HashMap::from([(
        QueueRef::new("touraine-logement", TL_TECH).feed_key(),
        "yesterday".to_owned(),
    )]);
    let mut watch = watch(&app, "tl-agent-1", &resume).await;
    let refused = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("an answer")
        .expect("open");
    assert!(matches!(refused, Err(AppError::Field(f)) if f.field == "resume_from"));
}

#[tokio::test]
async fn a_watch_on_a_team_not_ones_own_is_refused() {
    let app = demo_app();
    let outsider = principal(&app, "lb-agent-1");
    assert!(matches!(
        app.watch_tickets(&outsider, &[TL_TECH.to_owned()], &HashMap::new())
            .await,
        Err(AppError::Refused(_))
    ));
}
