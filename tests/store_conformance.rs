//! One conformance suite for both stores: every test runs against the in-memory store and against
//! a real `redis-server` of its own.

mod support {
    pub mod cluster;
    pub mod ports;
    pub mod redis_server;
    pub mod sentinel;
}

use std::sync::Arc;
use std::time::Duration;

use callrouter::routing::partition::{Partition, QueueRef};
use callrouter::routing::urgency::Urgency;
use callrouter::store::memory::MemoryStore;
use callrouter::store::redis::{RedisStore, RedisTarget, RedisTls};
use callrouter::store::{
    Action, AgentStatus, EventKind, Hold, NewTicket, NextClaim, Presence, ReapReport, StoreError,
    StoreSettings, Ticket, TicketState, TicketStore,
};
use support::redis_server::RedisServer;

type Store = Arc<dyn TicketStore>;

fn settings() -> StoreSettings {
    StoreSettings {
        namespace: "callrouter:test".to_owned(),
        max_attempts: 2,
        retention: Duration::from_millis(1500),
        presence_ttl: Duration::from_millis(400),
        ..StoreSettings::default()
    }
}

fn new_ticket(call: &str, partition: &str, team: &str, urgency: Urgency) -> NewTicket {
    NewTicket {
        call_id: call.to_owned(),
        partition: Partition::parse(partition),
        cooperator_id: Some(partition.to_owned()),
        team_id: team.to_owned(),
        urgency,
        issue_type: "technical.plumbing.leak".to_owned(),
        building_id: Some("TL-00001".to_owned()),
        address: None,
        incident_id: None,
        sla_due_at: 1_900_000_000_000,
        escalation_team: format!("{partition}.supervisor"),
        details: "{}".to_owned(),
        within: std::time::Duration::from_secs(60),
    }
}

fn q(partition: &str, team: &str) -> QueueRef {
    QueueRef::new(partition, team)
}

fn hold(t: &Ticket) -> Hold {
    Hold {
        agent_id: t.agent_id.clone().expect("held ticket has an agent"),
        lease_token: t.lease_token,
    }
}

const LONG: Duration = Duration::from_secs(60);
const P: &str = "touraine-logement";

async fn create(store: &Store, call: &str, team: &str, urgency: Urgency) -> Ticket {
    store
        .create(new_ticket(call, P, team, urgency))
        .await
        .expect("create")
        .ticket
}

async fn idempotent_create(store: Store) {
    let first = store
        .create(new_ticket("call-1", P, "tl.front", Urgency::U2))
        .await
        .expect("create");
    assert!(!first.duplicate);
    assert_eq!(first.ticket.state, TicketState::Queued);
    assert!(first.ticket.ticket_id.starts_with("touraine-logement-"));
    let again = store
        .create(new_ticket("call-1", P, "tl.other", Urgency::U1))
        .await
        .expect("retry");
    assert!(again.duplicate);
    assert_eq!(again.ticket.ticket_id, first.ticket.ticket_id);
    assert_eq!(
        again.ticket.team_id, "tl.front",
        "the retry returns the ticket as first created"
    );
    let list = store
        .list_queued(&q(P, "tl.front"), 10)
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    assert!(
        store
            .list_queued(&q(P, "tl.other"), 10)
            .await
            .expect("list")
            .is_empty()
    );
    // The ticket a creation answers with is the ticket as stored, field for field; with every
    // optional field given too.
    assert_eq!(
        store.get(&first.ticket.ticket_id).await.expect("get"),
        Some(first.ticket.clone())
    );
    let full = NewTicket {
        address: Some("2 rue du 8 mai 1945 22000 saint brieuc".to_owned()),
        incident_id: Some("TL-00001/heating".to_owned()),
        ..new_ticket("call-full", P, "tl.front", Urgency::U1)
    };
    let created = store.create(full).await.expect("create");
    assert_eq!(
        store.get(&created.ticket.ticket_id).await.expect("get"),
        Some(created.ticket.clone())
    );
    assert_eq!(created.position.map(|p| p.position), Some(1));
}

async fn order_is_urgency_then_waiting_time(store: Store) {
    let u3 = create(&store, "c-u3", "tl.a", Urgency::U3).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let u2_old = create(&store, "c-u2-old", "tl.b", Urgency::U2).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let u1 = create(&store, "c-u1", "tl.a", Urgency::U1).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let u2_new = create(&store, "c-u2-new", "tl.a", Urgency::U2).await;
    let queues = [q(P, "tl.a"), q(P, "tl.b")];
    let mut order = Vec::new();
    while let Some(t) = store
        .claim_next("agent-1", &queues, LONG, None)
        .await
        .expect("claim")
    {
        order.push(t.ticket_id);
    }
    assert_eq!(
        order,
        [
            u1.ticket_id,
            u2_old.ticket_id,
            u2_new.ticket_id,
            u3.ticket_id
        ]
    );
    assert!(
        store
            .claim_next("agent-1", &queues, LONG, None)
            .await
            .expect("claim")
            .is_none()
    );
}

async fn lifecycle_with_history_and_counts(store: Store) {
    let t = create(&store, "c1", "tl.tech", Urgency::U2).await;
    let held = claimed(&store, "ana", &q(P, "tl.tech"), LONG).await;
    assert_eq!(held.ticket_id, t.ticket_id);
    assert_eq!(held.state, TicketState::Reserved);
    assert_eq!(held.agent_id.as_deref(), Some("ana"));
    assert!(held.lease_token > 0);
    let accepted = store
        .accept(&t.ticket_id, &hold(&held), LONG)
        .await
        .expect("accept");
    assert_eq!(accepted.state, TicketState::InProgress);
    let again = store
        .accept(&t.ticket_id, &hold(&held), LONG)
        .await
        .expect("accepting twice renews");
    assert_eq!(again.state, TicketState::InProgress);
    let done = store
        .complete(&t.ticket_id, &hold(&held), "fixed")
        .await
        .expect("complete");
    assert_eq!(done.state, TicketState::Completed);
    assert_eq!(done.resolution.as_deref(), Some("fixed"));
    assert!(done.closed_at.is_some());
    let history = store.history(&t.ticket_id).await.expect("history");
    assert_eq!(history.len(), 4, "{history:?}");
    assert!(history[0].contains("created in tl.tech"));
    assert!(history[3].contains("completed by ana: fixed"));
    let (_, counts) = store.queue_stats(&[q(P, "tl.tech")]).await.expect("stats");
    let c = &counts[0].1;
    assert_eq!(
        (c.queued, c.reserved, c.in_progress, c.completed),
        (0, 0, 0, 1)
    );
    // The holder's retry is answered as done, with the first resolution; another action is not.
    let again = store
        .complete(&t.ticket_id, &hold(&held), "twice")
        .await
        .expect("the holder's retry");
    assert_eq!(again.resolution.as_deref(), Some("fixed"));
    let err = store
        .release(&t.ticket_id, &hold(&held))
        .await
        .expect_err("already completed");
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                state: TicketState::Completed,
                ..
            }
        ),
        "{err}"
    );
}

async fn release_returns_to_the_original_place(store: Store) {
    let first = create(&store, "c1", "tl.q", Urgency::U2).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let second = create(&store, "c2", "tl.q", Urgency::U2).await;
    let held = claimed(&store, "ana", &q(P, "tl.q"), LONG).await;
    assert_eq!(held.ticket_id, first.ticket_id);
    let released = store
        .release(&first.ticket_id, &hold(&held))
        .await
        .expect("release");
    assert_eq!(released.state, TicketState::Queued);
    assert_eq!(released.agent_id, None);
    let list = store.list_queued(&q(P, "tl.q"), 10).await.expect("list");
    let ids: Vec<&str> = list.iter().map(|t| t.ticket_id.as_str()).collect();
    assert_eq!(
        ids,
        [first.ticket_id.as_str(), second.ticket_id.as_str()],
        "back in front"
    );
    let again = claimed(&store, "bob", &q(P, "tl.q"), LONG).await;
    assert_eq!(again.ticket_id, first.ticket_id);
    assert!(
        again.lease_token > held.lease_token,
        "a new claim has a newer token"
    );
}

async fn fencing_refuses_stale_and_foreign_holders(store: Store) {
    let t = create(&store, "c1", "tl.q", Urgency::U2).await;
    let held = claimed(&store, "ana", &q(P, "tl.q"), LONG).await;
    let foreign = Hold {
        agent_id: "bob".to_owned(),
        lease_token: held.lease_token,
    };
    let stale = Hold {
        agent_id: "ana".to_owned(),
        lease_token: held.lease_token - 1,
    };
    for h in [&foreign, &stale] {
        assert!(matches!(
            store.accept(&t.ticket_id, h, LONG).await,
            Err(StoreError::NotHolder(_))
        ));
        assert!(matches!(
            store.complete(&t.ticket_id, h, "x").await,
            Err(StoreError::NotHolder(_))
        ));
        assert!(matches!(
            store.release(&t.ticket_id, h).await,
            Err(StoreError::NotHolder(_))
        ));
        assert!(matches!(
            store.transfer(&t.ticket_id, h, &q(P, "tl.r"), None).await,
            Err(StoreError::NotHolder(_))
        ));
    }
    store
        .release(&t.ticket_id, &hold(&held))
        .await
        .expect("release");
    let after_release = store
        .complete(&t.ticket_id, &hold(&held), "late")
        .await
        .expect_err("released");
    assert!(
        matches!(after_release, StoreError::WrongState { .. }),
        "{after_release}"
    );
    let unchanged = store.get(&t.ticket_id).await.expect("get").expect("ticket");
    assert_eq!(unchanged.state, TicketState::Queued);
    // The same agent holding the ticket again: its earlier hold stays fenced out.
    let again = claimed(&store, "ana", &q(P, "tl.q"), LONG).await;
    assert_eq!(again.ticket_id, t.ticket_id);
    assert_ne!(again.lease_token, held.lease_token);
    assert!(matches!(
        store.complete(&t.ticket_id, &hold(&held), "late").await,
        Err(StoreError::NotHolder(_))
    ));
    assert!(matches!(
        store.accept(&t.ticket_id, &hold(&held), LONG).await,
        Err(StoreError::NotHolder(_))
    ));
    store
        .complete(&t.ticket_id, &hold(&again), "fixed")
        .await
        .expect("the current holder");
    assert!(matches!(
        store
            .complete("touraine-logement-ffff", &foreign, "x")
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.cancel("no-partition-in-this-id}{", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.get("garbage").await.expect("get"), None);
}

async fn a_holders_retry_of_a_done_action_is_answered_as_done(store: Store) {
    let claim = |agent: &'static str, team: &'static str| {
        let store = store.clone();
        async move { claimed(&store, agent, &q(P, team), LONG).await }
    };
    // Complete, then the same holder again: done, the ticket as it is.
    create(&store, "c1", "tl.q", Urgency::U2).await;
    let held = claim("ana", "tl.q").await;
    let done = store
        .complete(&held.ticket_id, &hold(&held), "fixed")
        .await
        .expect("complete");
    let again = store
        .complete(&held.ticket_id, &hold(&held), "fixed")
        .await
        .expect("the holder's retry");
    assert_eq!((again.state, again.closed_at), (done.state, done.closed_at));
    let foreign = Hold {
        agent_id: "bob".to_owned(),
        ..hold(&held)
    };
    assert!(
        store
            .complete(&held.ticket_id, &foreign, "x")
            .await
            .is_err()
    );
    assert!(
        store.release(&held.ticket_id, &hold(&held)).await.is_err(),
        "another action of the ended hold is still refused"
    );
    // Release, another agent claims, then the first holder's retry: done, not taken back.
    create(&store, "c2", "tl.r", Urgency::U2).await;
    let first = claim("ana", "tl.r").await;
    store
        .release(&first.ticket_id, &hold(&first))
        .await
        .expect("release");
    let second = claim("bob", "tl.r").await;
    let retried = store
        .release(&first.ticket_id, &hold(&first))
        .await
        .expect("the holder's retry");
    assert_eq!(retried.agent_id.as_deref(), Some("bob"), "bob keeps it");
    assert_eq!(retried.lease_token, second.lease_token);
    // A transfer to another partition, retried: the same moved ticket, once.
    create(&store, "c3", "tl.s", Urgency::U2).await;
    let held = claim("ana", "tl.s").await;
    let to = q("platform", "platform.triage");
    let moved = store
        .transfer(&held.ticket_id, &hold(&held), &to, None)
        .await
        .expect("transfer");
    let again = store
        .transfer(&held.ticket_id, &hold(&held), &to, None)
        .await
        .expect("the holder's retry");
    assert_eq!(again.ticket_id, moved.ticket_id);
    let waiting = store.list_queued(&to, 10).await.expect("list");
    assert_eq!(waiting.len(), 1, "moved once");
}

async fn a_claim_id_finds_its_hold_again(store: Store) {
    create(&store, "c1", "tl.q", Urgency::U2).await;
    create(&store, "c2", "tl.q", Urgency::U2).await;
    let queues = [q(P, "tl.q")];
    let first = store
        .claim_next("ana", &queues, LONG, Some("k1"))
        .await
        .expect("claim")
        .expect("a ticket");
    let retried = store
        .claim_next("ana", &queues, LONG, Some("k1"))
        .await
        .expect("retry")
        .expect("the same hold");
    assert_eq!(
        (retried.ticket_id.as_str(), retried.lease_token),
        (first.ticket_id.as_str(), first.lease_token)
    );
    let other = store
        .claim_next("bob", &queues, LONG, Some("k1"))
        .await
        .expect("claim")
        .expect("another ticket");
    assert_ne!(
        other.ticket_id, first.ticket_id,
        "claim ids are the agent's own"
    );
    let held = store
        .held_by(&Partition::parse(P), "ana")
        .await
        .expect("held");
    assert_eq!(
        held.iter().map(|t| t.lease_token).collect::<Vec<_>>(),
        [first.lease_token]
    );
    // Once the hold ends, the claim id makes a new claim.
    store
        .release(&first.ticket_id, &hold(&first))
        .await
        .expect("release");
    let fresh = store
        .claim_next("ana", &queues, LONG, Some("k1"))
        .await
        .expect("claim")
        .expect("a ticket");
    assert_ne!(fresh.lease_token, first.lease_token);
}

/// Done, next counts the completion as CompleteTicket does, whether the ticket was accepted or
/// not, and whether the next ticket is of its team or of another.
async fn done_next_counts_the_completion_whatever_state_and_team(store: Store) {
    create(&store, "a1", "tl.a", Urgency::U1).await;
    create(&store, "a2", "tl.a", Urgency::U2).await;
    create(&store, "b1", "tl.b", Urgency::U2).await;
    let (a, b) = ([q(P, "tl.a")], [q(P, "tl.b")]);
    let first = store
        .claim_next("ana", &a, LONG, None)
        .await
        .expect("claim")
        .expect("a ticket");
    let accepted = store
        .accept(&first.ticket_id, &hold(&first), LONG)
        .await
        .expect("accept");
    let next = |queues| NextClaim {
        queues,
        lease: LONG,
        claim_id: None,
    };
    // In progress, and the next ticket of the same team.
    let (_, second) = store
        .complete_and_claim(&first.ticket_id, &hold(&accepted), "fixed", &next(&a))
        .await
        .expect("done, next");
    let second = second.expect("the team's second ticket");
    assert_eq!(second.call_id, "a2");
    // Reserved, and the next ticket of another team.
    let (_, third) = store
        .complete_and_claim(&second.ticket_id, &hold(&second), "fixed", &next(&b))
        .await
        .expect("done, next");
    assert_eq!(third.expect("the other team's").call_id, "b1");
    let (_, counts) = store
        .queue_stats(&[a[0].clone(), b[0].clone()])
        .await
        .expect("stats");
    let figures = |team: &str| {
        let c = &counts
            .iter()
            .find(|(queue, _)| queue.team == team)
            .expect("the team's counts")
            .1;
        (c.queued, c.reserved, c.in_progress, c.completed)
    };
    assert_eq!(figures("tl.a"), (0, 0, 0, 2));
    assert_eq!(figures("tl.b"), (0, 1, 0, 0));
}

async fn done_next_completes_then_claims_in_one_step(store: Store) {
    for call in ["c1", "c2", "c3"] {
        create(&store, call, "tl.q", Urgency::U2).await;
    }
    let queues = [q(P, "tl.q")];
    let first = store
        .claim_next("ana", &queues, LONG, None)
        .await
        .expect("claim")
        .expect("a ticket");
    let next = NextClaim {
        queues: &queues,
        lease: LONG,
        claim_id: Some("k2"),
    };
    let (done, second) = store
        .complete_and_claim(&first.ticket_id, &hold(&first), "fixed", &next)
        .await
        .expect("done, next");
    assert_eq!(done.ticket_id, first.ticket_id);
    assert_eq!(
        (done.state, done.resolution.as_deref()),
        (TicketState::Completed, Some("fixed"))
    );
    assert!(done.closed_at.is_some() && done.claimed_at.is_some());
    let second = second.expect("the next ticket");
    assert_ne!(second.ticket_id, first.ticket_id);
    assert_eq!(
        (second.state, second.agent_id.as_deref()),
        (TicketState::Reserved, Some("ana"))
    );
    assert!(second.lease_token > 0, "a hold has a fencing token");
    // The retry of a call whose answer was lost: the completion is done, the hold the same.
    let (again, same) = store
        .complete_and_claim(&first.ticket_id, &hold(&first), "fixed", &next)
        .await
        .expect("the retry");
    assert_eq!((again.state, again.closed_at), (done.state, done.closed_at));
    let same = same.expect("the same hold");
    assert_eq!(
        (same.ticket_id.as_str(), same.lease_token),
        (second.ticket_id.as_str(), second.lease_token)
    );
    // A refused completion claims nothing.
    let stale = Hold {
        lease_token: second.lease_token + 1000,
        ..hold(&second)
    };
    let fresh = NextClaim {
        claim_id: None,
        ..next
    };
    let err = store
        .complete_and_claim(&second.ticket_id, &stale, "x", &fresh)
        .await
        .expect_err("a stale hold");
    assert!(matches!(err, StoreError::NotHolder(_)), "{err}");
    let waiting = store.list_queued(&queues[0], 10).await.expect("list");
    assert_eq!(waiting.len(), 1, "the third still waits");
    // The last ones: the second's completion claims the third, the third's finds the queue empty.
    let (_, third) = store
        .complete_and_claim(&second.ticket_id, &hold(&second), "fixed", &fresh)
        .await
        .expect("done, next");
    let third = third.expect("the last one");
    let mut calls = [&first, &second, &third].map(|t| t.call_id.as_str());
    calls.sort_unstable();
    assert_eq!(calls, ["c1", "c2", "c3"], "each ticket claimed once");
    let (last, none) = store
        .complete_and_claim(&third.ticket_id, &hold(&third), "fixed", &fresh)
        .await
        .expect("done, nothing next");
    assert_eq!(last.state, TicketState::Completed);
    assert!(none.is_none());
    // Each step is in the history and the counts, as the separate actions put it.
    let history = store.history(&second.ticket_id).await.expect("history");
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(history[1].contains("claimed by ana"), "{history:?}");
    assert!(
        history[2].contains("completed by ana: fixed"),
        "{history:?}"
    );
    let (_, counts) = store.queue_stats(&queues).await.expect("stats");
    let c = &counts[0].1;
    assert_eq!(
        (c.queued, c.reserved, c.in_progress, c.completed),
        (0, 0, 0, 3)
    );
    // Queues in another partition: the completion, then the claim there.
    let elsewhere = store
        .create(new_ticket(
            "c4",
            "lb-habitat",
            "contractor.lifts",
            Urgency::U2,
        ))
        .await
        .expect("create")
        .ticket;
    create(&store, "c5", "tl.q", Urgency::U2).await;
    let held = store
        .claim_next("ana", &queues, LONG, None)
        .await
        .expect("claim")
        .expect("c5");
    let across = [q("lb-habitat", "contractor.lifts")];
    let (done, moved_on) = store
        .complete_and_claim(
            &held.ticket_id,
            &hold(&held),
            "fixed",
            &NextClaim {
                queues: &across,
                ..fresh
            },
        )
        .await
        .expect("done, next elsewhere");
    assert_eq!(done.state, TicketState::Completed);
    assert_eq!(
        moved_on.map(|t| t.ticket_id),
        Some(elsewhere.ticket_id),
        "claimed in the other partition"
    );
    // Queues in both partitions: the next is the most urgent across them, wherever it waits.
    let both = [q(P, "tl.q"), q("lb-habitat", "contractor.lifts")];
    let spanning = NextClaim {
        queues: &both,
        ..fresh
    };
    create(&store, "c6", "tl.q", Urgency::U3).await;
    let held = store
        .claim_next("ana", &queues, LONG, None)
        .await
        .expect("claim")
        .expect("c6");
    create(&store, "c7", "tl.q", Urgency::U2).await;
    store
        .create(new_ticket(
            "c8",
            "lb-habitat",
            "contractor.lifts",
            Urgency::U1,
        ))
        .await
        .expect("create");
    let (_, first) = store
        .complete_and_claim(&held.ticket_id, &hold(&held), "fixed", &spanning)
        .await
        .expect("done, next across partitions");
    let first = first.expect("c8");
    assert_eq!(first.call_id, "c8", "U1 in the other partition first");
    create(&store, "c9", "tl.q", Urgency::U1).await;
    let (_, second) = store
        .complete_and_claim(&first.ticket_id, &hold(&first), "fixed", &spanning)
        .await
        .expect("done, next across partitions");
    let second = second.expect("c9");
    assert_eq!(
        second.call_id, "c9",
        "U1 in the ticket's own partition before c7's U2"
    );
    let (_, third) = store
        .complete_and_claim(&second.ticket_id, &hold(&second), "fixed", &spanning)
        .await
        .expect("done, next across partitions");
    assert_eq!(third.map(|t| t.call_id).as_deref(), Some("c7"));
}

async fn lease_expiry_requeues_then_escalates(store: Store) {
    let t = create(&store, "c1", "tl.q", Urgency::U2).await;
    let short = Duration::from_millis(80);
    let first = claimed(&store, "ana", &q(P, "tl.q"), short).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let late = store
        .complete(&t.ticket_id, &hold(&first), "late")
        .await
        .expect_err("expired lease");
    assert!(
        matches!(late, StoreError::NotHolder(_)),
        "an expired lease is stale: {late}"
    );
    let report = reaped(&store).await;
    assert_eq!((report.expired, report.escalated), (1, 0));
    let back = store.get(&t.ticket_id).await.expect("get").expect("ticket");
    assert_eq!(
        (back.state, back.attempts, back.team_id.as_str()),
        (TicketState::Queued, 1, "tl.q")
    );
    assert_eq!(back.enqueued_at, t.enqueued_at, "original place kept");

    let second = claimed(&store, "bob", &q(P, "tl.q"), short).await;
    assert!(second.lease_token > first.lease_token);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let report = reaped(&store).await;
    assert_eq!((report.expired, report.escalated), (1, 1));
    let escalated = store.get(&t.ticket_id).await.expect("get").expect("ticket");
    assert_eq!(escalated.team_id, "touraine-logement.supervisor");
    assert!(escalated.escalated);
    assert_eq!(escalated.attempts, 2);
    assert!(
        store
            .claim_next("bob", &[q(P, "tl.q")], LONG, None)
            .await
            .expect("claim")
            .is_none()
    );
    let sup = store
        .claim_next("sue", &[q(P, "touraine-logement.supervisor")], LONG, None)
        .await
        .expect("claim");
    assert_eq!(sup.map(|t| t.ticket_id), Some(t.ticket_id));
    assert_eq!(reaped(&store).await.expired, 0, "nothing else expired");
}

/// A ticket's history without the times: what each line says.
async fn said(store: &Store, ticket_id: &str) -> Vec<String> {
    store
        .history(ticket_id)
        .await
        .expect("history")
        .into_iter()
        .map(|line| {
            line.split_once(' ')
                .map_or(line.clone(), |(_, s)| s.to_owned())
        })
        .collect()
}

async fn claimed(store: &Store, agent: &str, queue: &QueueRef, lease: Duration) -> Ticket {
    store
        .claim_next(agent, std::slice::from_ref(queue), lease, None)
        .await
        .expect("claim")
        .expect("a waiting ticket")
}

/// The partition's expired leases, reaped now.
async fn reaped(store: &Store) -> ReapReport {
    store.reap(&Partition::parse(P)).await.expect("reap")
}

/// A held ticket transferred by its holder to the platform's triage (another partition): the
/// ticket as moved in there.
async fn to_platform_triage(store: &Store, held: &Ticket) -> Ticket {
    store
        .transfer(
            &held.ticket_id,
            &hold(held),
            &q("platform", "platform.triage"),
            None,
        )
        .await
        .expect("transfer to the platform's triage")
}

/// Each claim has its line in the history, in its place, whatever ends its hold (a release, a
/// completion, a transfer within or across partitions, an expired lease) and while it holds the
/// ticket, with other lines written meanwhile (a caller joining an incident) after it.
async fn every_claim_keeps_its_place_in_the_history(store: Store) {
    let queue = q(P, "tl.hist");
    let mut roof = new_ticket("c-hist-1", P, "tl.hist", Urgency::U2);
    roof.incident_id = Some("TL-00009/roof".to_owned());
    let t = store.create(roof.clone()).await.expect("create").ticket;
    let ana = claimed(&store, "ana", &queue, LONG).await;
    let ana_line = format!("claimed by ana lease {}", ana.lease_token);
    assert_eq!(
        said(&store, &t.ticket_id).await,
        ["created in tl.hist", &ana_line]
    );
    roof.call_id = "c-hist-2".to_owned();
    assert!(store.create(roof).await.expect("join").joined_incident);
    store
        .release(&t.ticket_id, &hold(&ana))
        .await
        .expect("release");
    let bob = claimed(&store, "bob", &queue, LONG).await;
    let bob_line = format!("claimed by bob lease {}", bob.lease_token);
    store
        .complete(&t.ticket_id, &hold(&bob), "fixed")
        .await
        .expect("complete");
    assert_eq!(
        said(&store, &t.ticket_id).await,
        [
            "created in tl.hist",
            &ana_line,
            "incident call c-hist-2",
            "released by ana",
            &bob_line,
            "completed by bob: fixed"
        ]
    );

    let t = create(&store, "c-hist-3", "tl.hist", Urgency::U2).await;
    let short = claimed(&store, "ana", &queue, Duration::from_millis(80)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(reaped(&store).await.expired, 1);
    let held = claimed(&store, "bob", &queue, LONG).await;
    store
        .transfer(&t.ticket_id, &hold(&held), &q(P, "tl.hist2"), None)
        .await
        .expect("transfer");
    let moved = claimed(&store, "cat", &q(P, "tl.hist2"), LONG).await;
    let handed = to_platform_triage(&store, &moved).await;
    let expected = [
        "created in tl.hist".to_owned(),
        format!("claimed by ana lease {}", short.lease_token),
        "lease of ana expired, attempt 1".to_owned(),
        format!("claimed by bob lease {}", held.lease_token),
        "transferred by bob from tl.hist to tl.hist2".to_owned(),
        format!("claimed by cat lease {}", moved.lease_token),
    ];
    let across = said(&store, &handed.ticket_id).await;
    assert_eq!(across[..expected.len()], expected, "{across:?}");
    assert!(across[expected.len()].starts_with("transfer by cat to platform/platform.triage"));
}

async fn transfer_keeps_place_and_history(store: Store) {
    let older = create(&store, "c-old", "tl.front", Urgency::U2).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let waiting = create(&store, "c-wait", "tl.tech", Urgency::U2).await;
    let reserved = claimed(&store, "ana", &q(P, "tl.front"), LONG).await;
    let moved = store
        .transfer(
            &older.ticket_id,
            &hold(&reserved),
            &q(P, "tl.tech"),
            Some(Urgency::U3),
        )
        .await
        .expect("transfer");
    assert_eq!(moved.ticket_id, older.ticket_id, "same ticket");
    assert_eq!(
        (moved.state, moved.team_id.as_str()),
        (TicketState::Queued, "tl.tech")
    );
    assert_eq!(
        moved.urgency,
        Urgency::U2,
        "a transfer may raise urgency, never lower it"
    );
    let ids: Vec<String> = store
        .list_queued(&q(P, "tl.tech"), 10)
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.ticket_id)
        .collect();
    assert_eq!(
        ids,
        [older.ticket_id.clone(), waiting.ticket_id.clone()],
        "it kept its waiting time"
    );
    assert!(
        store
            .history(&older.ticket_id)
            .await
            .expect("history")
            .iter()
            .any(|h| h.contains("from tl.front to tl.tech"))
    );

    // To another partition: platform triage hands the call to a cooperator.
    let triage = store
        .create(new_ticket(
            "c-triage",
            "platform",
            "platform.triage",
            Urgency::U2,
        ))
        .await
        .expect("create")
        .ticket;
    let held = claimed(&store, "tri", &q("platform", "platform.triage"), LONG).await;
    let handed = store
        .transfer(
            &triage.ticket_id,
            &hold(&held),
            &q(P, "tl.tech"),
            Some(Urgency::U1),
        )
        .await
        .expect("transfer");
    assert!(handed.ticket_id.starts_with("touraine-logement-"));
    assert_eq!(handed.call_id, "c-triage");
    assert_eq!(handed.urgency, Urgency::U1);
    assert_eq!(handed.created_at, triage.created_at);
    assert_eq!(
        handed.transferred_from.as_deref(),
        Some(triage.ticket_id.as_str())
    );
    let stub = store
        .get(&triage.ticket_id)
        .await
        .expect("get")
        .expect("stub");
    assert_eq!(stub.state, TicketState::Moved);
    assert_eq!(stub.moved_to.as_deref(), Some(handed.ticket_id.as_str()));
    let history = store.history(&handed.ticket_id).await.expect("history");
    assert!(
        history[0].contains("created in platform.triage"),
        "{history:?}"
    );
    let first = claimed(&store, "ana", &q(P, "tl.tech"), LONG).await;
    assert_eq!(first.ticket_id, handed.ticket_id, "U1 first");
    assert!(
        store
            .claim_next("tri", &[q("platform", "platform.triage")], LONG, None)
            .await
            .expect("claim")
            .is_none()
    );
    let retry = store
        .create(new_ticket(
            "c-triage",
            "platform",
            "platform.triage",
            Urgency::U2,
        ))
        .await
        .expect("retry");
    assert!(retry.duplicate);
    assert_eq!(
        retry.ticket.moved_to.as_deref(),
        Some(handed.ticket_id.as_str())
    );
}

async fn cancel_only_while_queued(store: Store) {
    let t = create(&store, "c1", "tl.q", Urgency::U2).await;
    let cancelled = store.cancel(&t.ticket_id, None).await.expect("cancel");
    assert_eq!(cancelled.state, TicketState::Cancelled);
    assert_eq!(
        store.cancel(&t.ticket_id, None).await.expect("twice").state,
        TicketState::Cancelled
    );
    assert!(
        store
            .claim_next("ana", &[q(P, "tl.q")], LONG, None)
            .await
            .expect("claim")
            .is_none()
    );
    let u = create(&store, "c2", "tl.q", Urgency::U2).await;
    claimed(&store, "ana", &q(P, "tl.q"), LONG).await;
    let err = store
        .cancel(&u.ticket_id, None)
        .await
        .expect_err("picked up");
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                state: TicketState::Reserved,
                action: Action::Cancel,
                ..
            }
        ),
        "{err}"
    );
    let (_, counts) = store.queue_stats(&[q(P, "tl.q")]).await.expect("stats");
    assert_eq!(
        (
            counts[0].1.cancelled,
            counts[0].1.reserved,
            counts[0].1.queued
        ),
        (1, 1, 0)
    );
}

async fn building_wide_incidents_group_calls(store: Store) {
    let mut first = new_ticket("lift-1", P, "contractor.lifts", Urgency::U2);
    first.incident_id = Some("TL-00001/lift".to_owned());
    let a = store.create(first.clone()).await.expect("create");
    assert!(!a.joined_incident);
    let mut second = first.clone();
    second.call_id = "lift-2".to_owned();
    let b = store.create(second).await.expect("create");
    assert!(b.joined_incident && !b.duplicate);
    assert_eq!(b.ticket.ticket_id, a.ticket.ticket_id);
    assert_eq!(b.ticket.incident_calls, 2);
    let mut retry = first.clone();
    retry.call_id = "lift-2".to_owned();
    assert!(
        store.create(retry).await.expect("retry").duplicate,
        "a retry of a grouped call is a duplicate"
    );
    assert_eq!(
        store
            .list_queued(&q(P, "contractor.lifts"), 10)
            .await
            .expect("list")
            .len(),
        1
    );
    let held = claimed(&store, "lifter", &q(P, "contractor.lifts"), LONG).await;
    store
        .complete(&held.ticket_id, &hold(&held), "repaired")
        .await
        .expect("complete");
    let mut later = first.clone();
    later.call_id = "lift-3".to_owned();
    let c = store.create(later).await.expect("create");
    assert!(!c.joined_incident, "the incident closed: a new one opens");
    assert_ne!(c.ticket.ticket_id, a.ticket.ticket_id);
}

async fn each_caller_of_an_incident_hangs_up_on_its_own(store: Store) {
    let mut first = new_ticket("lift-1", P, "contractor.lifts", Urgency::U2);
    first.incident_id = Some("TL-00001/lift".to_owned());
    let ticket = store.create(first.clone()).await.expect("create").ticket;
    for call in ["lift-2", "lift-3"] {
        let joined = NewTicket {
            call_id: call.to_owned(),
            ..first.clone()
        };
        store.create(joined).await.expect("join");
    }
    let id = ticket.ticket_id.as_str();
    let after = |t: Ticket| (t.state, t.incident_calls);
    let first_gone = store.cancel(id, Some("lift-1")).await.expect("hang-up");
    assert_eq!(
        after(first_gone),
        (TicketState::Queued, 2),
        "two still wait"
    );
    let again = store.cancel(id, Some("lift-1")).await.expect("twice");
    assert_eq!(after(again), (TicketState::Queued, 2), "withdrawn once");
    assert!(matches!(
        store.cancel(id, Some("not-a-caller")).await,
        Err(StoreError::NotFound(_))
    ));
    let third_gone = store.cancel(id, Some("lift-3")).await.expect("hang-up");
    assert_eq!(after(third_gone), (TicketState::Queued, 1));
    let last_gone = store.cancel(id, Some("lift-2")).await.expect("hang-up");
    assert_eq!(
        after(last_gone),
        (TicketState::Cancelled, 0),
        "no caller left"
    );
    let history = store.history(id).await.expect("history").join("\n");
    assert!(history.contains("caller lift-1 hung up"), "{history}");
}

async fn a_picked_up_incident_is_not_cancelled_by_its_callers(store: Store) {
    let mut first = new_ticket("lift-1", P, "contractor.lifts", Urgency::U2);
    first.incident_id = Some("TL-00002/lift".to_owned());
    let ticket = store.create(first.clone()).await.expect("create").ticket;
    let joined = NewTicket {
        call_id: "lift-2".to_owned(),
        ..first
    };
    store.create(joined).await.expect("join");
    claimed(&store, "lifter", &q(P, "contractor.lifts"), LONG).await;
    for call in ["lift-1", "lift-2"] {
        assert!(matches!(
            store.cancel(&ticket.ticket_id, Some(call)).await,
            Err(StoreError::WrongState {
                state: TicketState::Reserved,
                ..
            })
        ));
    }
}

async fn position_and_estimated_wait(store: Store) {
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            create(&store, &format!("c{i}"), "tl.q", Urgency::U3)
                .await
                .ticket_id,
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let urgent = store
        .create(new_ticket("c-u1", P, "tl.q", Urgency::U1))
        .await
        .expect("create");
    let position = urgent.position.expect("queued tickets have a position");
    assert_eq!(position.position, 1);
    assert_eq!(
        store
            .position(&ids[2])
            .await
            .expect("position")
            .expect("queued")
            .position,
        4
    );
    let wait_last = store
        .position(&ids[2])
        .await
        .expect("position")
        .expect("queued")
        .estimated_wait_seconds;
    let wait_first = store
        .position(&ids[0])
        .await
        .expect("position")
        .expect("queued")
        .estimated_wait_seconds;
    assert!(
        wait_last > wait_first && wait_first > 0,
        "{wait_first} < {wait_last}"
    );
    let held = claimed(&store, "ana", &q(P, "tl.q"), LONG).await;
    assert_eq!(
        store.position(&held.ticket_id).await.expect("position"),
        None,
        "held tickets do not wait"
    );
    let (stats, _) = store.queue_stats(&[q(P, "tl.q")]).await.expect("stats");
    let u3 = stats
        .iter()
        .find(|s| s.urgency == Urgency::U3)
        .expect("U3 row");
    assert_eq!(u3.depth, 3);
    assert!(u3.oldest_wait_ms.expect("waiting") >= 4);
    let u1 = stats
        .iter()
        .find(|s| s.urgency == Urgency::U1)
        .expect("U1 row");
    assert_eq!((u1.depth, u1.oldest_wait_ms), (0, None));
}

/// The expected wait follows the pace of claims: before any, a queue assumes the default interval
/// between claims (minutes per place); once claims come a fraction of a second apart, places wait
/// about a second each, and the claims are counted as reserved tickets.
async fn the_expected_wait_follows_the_pace_of_claims(store: Store) {
    let queue = q(P, "tl.pace");
    for i in 0..4 {
        create(&store, &format!("c-pace-{i}"), "tl.pace", Urgency::U3).await;
        // Apart in time, so that the queue's order is the order of creation.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let queued = |call: &'static str| {
        let store = store.clone();
        async move {
            store
                .create(new_ticket(call, P, "tl.pace", Urgency::U3))
                .await
                .expect("create")
                .position
                .expect("queued")
        }
    };
    let before = queued("c-pace-4").await;
    assert_eq!(before.position, 5);
    assert!(before.estimated_wait_seconds >= 600, "{before:?}");
    for _ in 0..3 {
        claimed(&store, "ana", &queue, LONG).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let after = queued("c-pace-5").await;
    assert_eq!(after.position, 3);
    assert!(
        (1..=3).contains(&after.estimated_wait_seconds),
        "three places at claims about 150 ms apart: {after:?}"
    );
    let (_, counts) = store
        .queue_stats(std::slice::from_ref(&queue))
        .await
        .expect("stats");
    assert_eq!(counts[0].1.reserved, 3);
}

async fn team_feeds_record_every_transition(store: Store) {
    let queue = q(P, "tl.feed");
    let t = create(&store, "c1", "tl.feed", Urgency::U2).await;
    let held = store
        .claim_next("ana", std::slice::from_ref(&queue), LONG, None)
        .await
        .expect("claim")
        .expect("t");
    store
        .accept(&t.ticket_id, &hold(&held), LONG)
        .await
        .expect("accept");
    let all = store
        .read_events(&queue, None, 100, None)
        .await
        .expect("events");
    let kinds: Vec<&str> = all.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "claimed", "accepted"]);
    assert!(
        all.iter()
            .all(|e| e.ticket_id == t.ticket_id && e.team_id == "tl.feed")
    );
    assert_eq!(all[1].agent_id.as_deref(), Some("ana"));
    let resume = all[1].event_id.clone();
    let rest = store
        .read_events(&queue, Some(&resume), 100, None)
        .await
        .expect("resume");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].kind, EventKind::Accepted);
    // A reader waiting at the end sees the next transition as it happens.
    let waiter = {
        let store = store.clone();
        let queue = queue.clone();
        let after = rest[0].event_id.clone();
        tokio::spawn(async move {
            store
                .read_events(&queue, Some(&after), 10, Some(Duration::from_secs(5)))
                .await
        })
    };
    // Longer than a client's default response timeout: the wait must hold for its whole length.
    tokio::time::sleep(Duration::from_millis(900)).await;
    store
        .complete(&t.ticket_id, &hold(&held), "done")
        .await
        .expect("complete");
    let next = waiter.await.expect("join").expect("events");
    assert_eq!(next.first().map(|e| e.kind.as_str()), Some("completed"));
    let quiet = store
        .read_events(
            &queue,
            Some(&next[0].event_id),
            10,
            Some(Duration::from_millis(700)),
        )
        .await
        .expect("read");
    assert!(quiet.is_empty());
    assert!(matches!(
        store
            .read_events(&queue, Some("not-a-position"), 10, None)
            .await,
        Err(StoreError::Invalid(_))
    ));
}

async fn presence_goes_offline_without_heartbeats(store: Store) {
    let agent = AgentStatus {
        agent_id: "ana".to_owned(),
        partition: Partition::parse(P),
        teams: vec!["tl.front".to_owned()],
        presence: Presence::Available,
        last_seen: 0,
    };
    store.heartbeat(&agent).await.expect("heartbeat");
    let agents = store.agents().await.expect("agents");
    assert_eq!(agents.len(), 1);
    assert_eq!(
        (agents[0].presence, agents[0].teams.as_slice()),
        (Presence::Available, ["tl.front".to_owned()].as_slice())
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        store.agents().await.expect("agents")[0].presence,
        Presence::Offline
    );
    store
        .heartbeat(&AgentStatus {
            presence: Presence::Break,
            ..agent
        })
        .await
        .expect("heartbeat");
    assert_eq!(
        store.agents().await.expect("agents")[0].presence,
        Presence::Break
    );
}

async fn closed_tickets_are_purged_after_retention(store: Store) {
    let t = create(&store, "c-retained", "tl.q", Urgency::U2).await;
    let open = create(&store, "c-open", "tl.q", Urgency::U3).await;
    store.cancel(&t.ticket_id, None).await.expect("cancel");
    assert!(store.get(&t.ticket_id).await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(store.get(&t.ticket_id).await.expect("get"), None, "purged");
    assert!(
        store
            .history(&t.ticket_id)
            .await
            .expect("history")
            .is_empty()
    );
    assert!(
        store.get(&open.ticket_id).await.expect("get").is_some(),
        "open tickets are kept"
    );
    let again = store
        .create(new_ticket("c-retained", P, "tl.q", Urgency::U2))
        .await
        .expect("create");
    assert!(!again.duplicate, "the call key went with the ticket");
}

async fn joined_calls_are_forgotten_after_retention(store: Store) {
    let mut first = new_ticket("roof-1", P, "contractor.roofs", Urgency::U2);
    first.incident_id = Some("TL-00002/roof".to_owned());
    let opened = store.create(first.clone()).await.expect("create").ticket;
    let mut joined = first.clone();
    joined.call_id = "roof-2".to_owned();
    assert!(
        store
            .create(joined.clone())
            .await
            .expect("join")
            .joined_incident
    );
    let held = claimed(&store, "roofer", &q(P, "contractor.roofs"), LONG).await;
    assert_eq!(held.ticket_id, opened.ticket_id);
    store
        .complete(&held.ticket_id, &hold(&held), "patched")
        .await
        .expect("complete");
    let retry = store.create(joined.clone()).await.expect("retry");
    assert!(
        retry.duplicate,
        "within the retention a retry is a duplicate"
    );
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(
        store.get(&opened.ticket_id).await.expect("get"),
        None,
        "purged"
    );
    let later = store.create(joined).await.expect("create");
    assert!(
        !later.duplicate && !later.joined_incident,
        "the joined call was forgotten with its incident"
    );
}

async fn claims_span_partitions_by_urgency(store: Store) {
    let coop = store
        .create(new_ticket("c-coop", P, "contractor.lifts", Urgency::U2))
        .await
        .expect("c")
        .ticket;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let other = store
        .create(new_ticket(
            "c-other",
            "lb-habitat",
            "contractor.lifts",
            Urgency::U1,
        ))
        .await
        .expect("c")
        .ticket;
    let queues = [
        q(P, "contractor.lifts"),
        q("lb-habitat", "contractor.lifts"),
    ];
    let first = store
        .claim_next("lifter", &queues, LONG, None)
        .await
        .expect("claim")
        .expect("t");
    assert_eq!(
        first.ticket_id, other.ticket_id,
        "U1 in another partition comes first"
    );
    let second = store
        .claim_next("lifter", &queues, LONG, None)
        .await
        .expect("claim")
        .expect("t");
    assert_eq!(second.ticket_id, coop.ticket_id);
    assert!(
        store
            .claim_next("lifter", &queues, LONG, None)
            .await
            .expect("claim")
            .is_none()
    );
    assert!(matches!(
        store
            .claim_next("x", &[q("bad}{tag", "t")], LONG, None)
            .await,
        Err(StoreError::Invalid(_)) | Ok(None)
    ));
}

async fn a_creation_past_its_deadline_creates_nothing(store: Store) {
    let late = NewTicket {
        within: Duration::ZERO,
        ..new_ticket("late-1", P, "tl.q", Urgency::U2)
    };
    assert_eq!(
        store.create(late.clone()).await.map(|c| c.duplicate),
        Err(StoreError::TooLate)
    );
    let queued = store.list_queued(&q(P, "tl.q"), 10).await.expect("list");
    assert!(queued.is_empty(), "nothing was created: {queued:?}");
    // The same call on time is created, once.
    let created = store
        .create(new_ticket("late-1", P, "tl.q", Urgency::U2))
        .await
        .expect("on time");
    assert!(!created.duplicate);
    // A late retry of a call that has its ticket is answered with it: it is queued.
    let retried = store.create(late).await.expect("a late retry");
    assert!(retried.duplicate);
    assert_eq!(retried.ticket.ticket_id, created.ticket.ticket_id);
}

/// What the metrics of the whole store read: one holder of a store-wide job's lease at a time
/// (taken over once it lapses), waiting tickets by the time they entered their queue, the move
/// outboxes.
async fn store_wide_figures(store: Store) {
    let ttl = Duration::from_millis(300);
    assert!(store.lease("metrics", "a", ttl).await.expect("lease"));
    assert!(!store.lease("metrics", "b", ttl).await.expect("lease"));
    assert!(store.lease("metrics", "a", ttl).await.expect("renewed"));
    assert!(
        store
            .lease("other-job", "b", ttl)
            .await
            .expect("another job's lease")
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(store.lease("metrics", "b", ttl).await.expect("taken over"));
    assert!(!store.lease("metrics", "a", ttl).await.expect("lease"));

    let first = create(&store, "since-1", "tl.since", Urgency::U2).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = create(&store, "since-2", "tl.since", Urgency::U2).await;
    create(&store, "since-3", "tl.since", Urgency::U1).await;
    let queue = q(P, "tl.since");
    let counts = store
        .waiting_between(&[
            (queue.clone(), Urgency::U2, 0, first.enqueued_at - 1),
            (queue.clone(), Urgency::U2, 0, first.enqueued_at),
            (queue.clone(), Urgency::U2, 0, second.enqueued_at),
            (
                queue.clone(),
                Urgency::U2,
                first.enqueued_at + 1,
                second.enqueued_at,
            ),
            (
                queue.clone(),
                Urgency::U2,
                second.enqueued_at + 1,
                i64::MAX / 4,
            ),
            (queue.clone(), Urgency::U1, 0, second.enqueued_at + 60_000),
            (queue.clone(), Urgency::U3, 0, second.enqueued_at + 60_000),
            (q(P, "tl.empty"), Urgency::U2, 0, second.enqueued_at),
        ])
        .await
        .expect("counts");
    assert_eq!(counts, vec![0, 1, 2, 1, 0, 1, 0, 0]);

    let partitions = [Partition::parse(P), Partition::parse("platform")];
    assert_eq!(
        store.move_backlog(&partitions).await.expect("backlog"),
        vec![0, 0]
    );
    let claimed = store
        .claim_next("agent-since", std::slice::from_ref(&queue), LONG, None)
        .await
        .expect("claim")
        .expect("a ticket");
    to_platform_triage(&store, &claimed).await;
    assert_eq!(
        store.move_backlog(&partitions).await.expect("backlog"),
        vec![0, 0],
        "a finished move leaves nothing in the outbox"
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(std::sync::Arc::new(super::MemoryStore::new(super::settings()))).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(server) = super::RedisServer::start() else { return };
                    let store = super::RedisStore::connect(&server.url(), super::settings()).expect("connect");
                    super::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
        /// Every test of the suite, by name, for topologies started once for all of them.
        const SUITE: &[(&str, Suite)] = &[$((stringify!($name), |store| Box::pin($name(store)))),*];
    };
}

/// A test of the suite, as a function a topology started once can run.
type Suite = fn(Store) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The whole suite on a Redis Cluster (three primaries, three replicas), every acknowledged
/// transition waiting for one replica: partitions spread over the shards, claims and moves across
/// them. The cluster starts once; each test has a namespace of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes_on_a_redis_cluster_waiting_for_a_replica() {
    let Some(cluster) = tokio::task::block_in_place(support::cluster::Cluster::start) else {
        return;
    };
    for (name, test) in SUITE {
        let target = RedisTarget::Cluster {
            nodes: cluster.seeds(),
            url: cluster.url(),
        };
        let store = RedisStore::connect_to(
            target,
            &RedisTls::default(),
            StoreSettings {
                namespace: format!("callrouter:cluster-{name}"),
                wait_replicas: 1,
                ..settings()
            },
        )
        .expect("connect to the cluster");
        test(Arc::new(store)).await;
    }
    // The partitions' keys went to more than one shard.
    let shards = cluster
        .nodes
        .iter()
        .filter(|n| n.command(&["ROLE"]).starts_with("master"))
        .filter(|n| n.command(&["DBSIZE"]).trim() != "0")
        .count();
    assert!(shards >= 2, "keys on {shards} shard(s)");
}

/// The whole suite through Redis Sentinel (a primary, two replicas, three sentinels), every
/// acknowledged transition waiting for one replica: the topology starts once, each test has a
/// namespace of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes_through_sentinel_waiting_for_a_replica() {
    let Some(topology) = support::sentinel::Sentinels::start() else {
        return;
    };
    for (name, test) in SUITE {
        let target = RedisTarget::Sentinel {
            sentinels: topology.addresses().split(',').map(str::to_owned).collect(),
            master: support::sentinel::MASTER.to_owned(),
            url: topology.primary.url(),
        };
        let store = RedisStore::connect_to(
            target,
            &RedisTls::default(),
            StoreSettings {
                namespace: format!("callrouter:sentinel-{name}"),
                wait_replicas: 1,
                ..settings()
            },
        )
        .expect("connect through Sentinel");
        test(Arc::new(store.clone())).await;
        assert_eq!(
            store.primary_address(),
            Some(format!("127.0.0.1:{}", topology.primary.port)),
            "{name} ran on the primary Sentinel names"
        );
    }
    let stats = topology.primary.command(&["INFO", "commandstats"]);
    let waits: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_wait:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        waits > 100,
        "acknowledged transitions waited for replicas: {waits} WAITs"
    );
}

conformance!(
    idempotent_create,
    order_is_urgency_then_waiting_time,
    lifecycle_with_history_and_counts,
    release_returns_to_the_original_place,
    fencing_refuses_stale_and_foreign_holders,
    lease_expiry_requeues_then_escalates,
    every_claim_keeps_its_place_in_the_history,
    transfer_keeps_place_and_history,
    cancel_only_while_queued,
    building_wide_incidents_group_calls,
    position_and_estimated_wait,
    the_expected_wait_follows_the_pace_of_claims,
    team_feeds_record_every_transition,
    presence_goes_offline_without_heartbeats,
    closed_tickets_are_purged_after_retention,
    claims_span_partitions_by_urgency,
    joined_calls_are_forgotten_after_retention,
    a_creation_past_its_deadline_creates_nothing,
    each_caller_of_an_incident_hangs_up_on_its_own,
    a_holders_retry_of_a_done_action_is_answered_as_done,
    a_claim_id_finds_its_hold_again,
    done_next_completes_then_claims_in_one_step,
    done_next_counts_the_completion_whatever_state_and_team,
    a_picked_up_incident_is_not_cancelled_by_its_callers,
    store_wide_figures,
);
