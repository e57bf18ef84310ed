//! The queue invariants under concurrency: no ticket lost or worked twice, never two holders, one
//! ticket per call id — against a real `redis-server` and against the in-memory store.

mod support {
    pub mod cluster;
    pub mod ports;
    pub mod redis_server;
}

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callrouter::datagen::Rng;
use callrouter::routing::partition::{Partition, QueueRef};
use callrouter::routing::urgency::Urgency;
use callrouter::store::memory::MemoryStore;
use callrouter::store::redis::{RedisStore, RedisTarget, RedisTls};
use callrouter::store::{
    Hold, NewTicket, NextClaim, StoreError, StoreSettings, TicketState, TicketStore,
};
use support::redis_server::RedisServer;

type Store = Arc<dyn TicketStore>;
const P: &str = "meduane-habitat";

fn settings() -> StoreSettings {
    StoreSettings {
        namespace: "callrouter:conc".to_owned(),
        max_attempts: 1000,
        operation_timeout: Duration::from_secs(10),
        ..StoreSettings::default()
    }
}

fn ticket(call: String, team: String, urgency: Urgency) -> NewTicket {
    NewTicket {
        call_id: call,
        partition: Partition::parse(P),
        cooperator_id: Some(P.to_owned()),
        team_id: team,
        urgency,
        issue_type: "other".to_owned(),
        building_id: None,
        address: None,
        incident_id: None,
        sla_due_at: 0,
        escalation_team: format!("{P}.supervisor"),
        details: String::new(),
        within: std::time::Duration::from_secs(60),
    }
}

fn teams() -> Vec<QueueRef> {
    (0..5)
        .map(|i| QueueRef::new(P, &format!("team-{i}")))
        .collect()
}

/// Twenty agents empty five queues, half of them completing each ticket with the next claim.
async fn twenty_claimers_complete_every_ticket_exactly_once(store: Store) {
    let queues = teams();
    let mut rng = Rng::new(7);
    let mut created = HashSet::new();
    for i in 0..2000 {
        let urgency = Urgency::ALL[rng.below(3)];
        let team = queues[rng.below(5)].team.clone();
        let t = store
            .create(ticket(format!("call-{i}"), team, urgency))
            .await
            .expect("create");
        created.insert(t.ticket.ticket_id);
    }
    assert_eq!(created.len(), 2000);
    let completed = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for a in 0..20 {
        let store = store.clone();
        let queues = queues.clone();
        let completed = completed.clone();
        workers.push(tokio::spawn(async move {
            let agent = format!("agent-{a}");
            let next = NextClaim {
                queues: &queues,
                lease: Duration::from_secs(60),
                claim_id: None,
            };
            let claim = || store.claim_next(&agent, &queues, next.lease, None);
            let mut held = claim().await.expect("claim");
            while let Some(t) = held {
                let hold = Hold {
                    agent_id: agent.clone(),
                    lease_token: t.lease_token,
                };
                // Half the agents complete each ticket with the next claim ("done, next").
                held = if a % 2 == 0 {
                    let (done, claimed) = store
                        .complete_and_claim(&t.ticket_id, &hold, "done", &next)
                        .await
                        .expect("the holder completes and claims");
                    assert_eq!(done.state, TicketState::Completed);
                    claimed
                } else {
                    store
                        .complete(&t.ticket_id, &hold, "done")
                        .await
                        .expect("the holder completes");
                    claim().await.expect("claim")
                };
                completed.lock().expect("lock").push(t.ticket_id);
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let completed = completed.lock().expect("lock").clone();
    let unique: HashSet<&String> = completed.iter().collect();
    assert_eq!(completed.len(), 2000, "every ticket completed once");
    assert_eq!(unique.len(), 2000, "no ticket completed twice");
    assert!(unique.iter().all(|id| created.contains(*id)));
    let (stats, counts) = store.queue_stats(&queues).await.expect("stats");
    assert!(stats.iter().all(|s| s.depth == 0), "queues are empty");
    assert_eq!(counts.iter().map(|(_, c)| c.completed).sum::<u64>(), 2000);
    assert!(
        counts
            .iter()
            .all(|(_, c)| c.queued == 0 && c.reserved == 0 && c.in_progress == 0)
    );
}

/// Agents race each other, their own leases (40 ms) and a reaper: a ticket is completed exactly
/// once, and a hold once refused stays refused (a stale holder never comes back).
async fn racing_release_expiry_and_complete_never_yield_two_holders(store: Store) {
    let queue = QueueRef::new(P, "race");
    for i in 0..150 {
        store
            .create(ticket(format!("race-{i}"), "race".to_owned(), Urgency::U2))
            .await
            .expect("create");
    }
    let completions: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reaper = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut expired = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                expired += store
                    .reap(&Partition::parse(P))
                    .await
                    .expect("reap")
                    .expired;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            expired
        })
    };
    let mut agents = Vec::new();
    for a in 0..12u64 {
        let store = store.clone();
        let queue = queue.clone();
        let completions = completions.clone();
        agents.push(tokio::spawn(async move {
            let agent = format!("agent-{a}");
            let mut rng = Rng::new(a + 100);
            let mut idle = 0;
            while idle < 20 {
                let Some(t) = store
                    .claim_next(
                        &agent,
                        std::slice::from_ref(&queue),
                        Duration::from_millis(40),
                        None,
                    )
                    .await
                    .expect("claim")
                else {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                idle = 0;
                let hold = Hold {
                    agent_id: agent.clone(),
                    lease_token: t.lease_token,
                };
                tokio::time::sleep(Duration::from_millis(rng.below(70) as u64)).await;
                let outcome = match rng.below(4) {
                    0 => store.release(&t.ticket_id, &hold).await.map(|_| false),
                    1 => match store
                        .accept(&t.ticket_id, &hold, Duration::from_millis(40))
                        .await
                    {
                        Ok(_) => {
                            tokio::time::sleep(Duration::from_millis(rng.below(50) as u64)).await;
                            store
                                .complete(&t.ticket_id, &hold, "done")
                                .await
                                .map(|_| true)
                        }
                        Err(e) => Err(e),
                    },
                    _ => store
                        .complete(&t.ticket_id, &hold, "done")
                        .await
                        .map(|_| true),
                };
                match outcome {
                    Ok(completed) => {
                        if completed {
                            *completions
                                .lock()
                                .expect("lock")
                                .entry(t.ticket_id.clone())
                                .or_default() += 1;
                        }
                    }
                    Err(StoreError::NotHolder(_)) | Err(StoreError::WrongState { .. }) => {
                        let retry = store.complete(&t.ticket_id, &hold, "stale retry").await;
                        assert!(
                            matches!(
                                retry,
                                Err(StoreError::NotHolder(_)) | Err(StoreError::WrongState { .. })
                            ),
                            "a refused hold succeeded on retry: {retry:?}"
                        );
                    }
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
        }));
    }
    for a in agents {
        a.await.expect("agent");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let expired = reaper.await.expect("reaper");
    // Whatever is left (released or expired at the very end) is finished here, once each.
    while let Some(t) = store
        .claim_next(
            "closer",
            std::slice::from_ref(&queue),
            Duration::from_secs(60),
            None,
        )
        .await
        .expect("claim")
    {
        let hold = Hold {
            agent_id: "closer".to_owned(),
            lease_token: t.lease_token,
        };
        store
            .complete(&t.ticket_id, &hold, "done")
            .await
            .expect("complete");
        *completions
            .lock()
            .expect("lock")
            .entry(t.ticket_id)
            .or_default() += 1;
    }
    let completions = completions.lock().expect("lock").clone();
    assert_eq!(completions.len(), 150, "every ticket completed");
    assert!(
        completions.values().all(|&n| n == 1),
        "no ticket completed twice: {completions:?}"
    );
    assert!(
        expired > 0,
        "the race did expire leases (the test exercised expiry)"
    );
    let left = store.list_queued(&queue, 10).await.expect("list");
    assert!(left.is_empty(), "tickets still queued: {left:?}");
}

async fn twenty_concurrent_retries_of_a_call_make_one_ticket(store: Store) {
    for call in 0..30 {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .create(ticket(
                        format!("retried-{call}"),
                        "retry".to_owned(),
                        Urgency::U2,
                    ))
                    .await
                    .expect("create")
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.expect("task"));
        }
        let ids: HashSet<&str> = outcomes
            .iter()
            .map(|c| c.ticket.ticket_id.as_str())
            .collect();
        assert_eq!(ids.len(), 1, "one ticket for call {call}");
        assert_eq!(
            outcomes.iter().filter(|c| !c.duplicate).count(),
            1,
            "one first creation"
        );
    }
    let queued = store
        .list_queued(&QueueRef::new(P, "retry"), 100)
        .await
        .expect("list");
    assert_eq!(queued.len(), 30);
    assert!(queued.iter().all(|t| t.state == TicketState::Queued));
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(server) = super::RedisServer::start() else { return };
                    let store = super::RedisStore::connect(&server.url(), super::settings()).expect("connect");
                    super::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(std::sync::Arc::new(super::MemoryStore::new(super::settings()))).await;
                }
            )*
        }

        /// The same on a Redis Cluster (three primaries, three replicas), started once.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn on_a_redis_cluster() {
            let Some(cluster) = tokio::task::block_in_place(support::cluster::Cluster::start) else {
                return;
            };
            $(
                let target = RedisTarget::Cluster { nodes: cluster.seeds(), url: cluster.url() };
                let own = StoreSettings {
                    namespace: format!("callrouter:conc-{}", stringify!($name)),
                    ..settings()
                };
                let store = RedisStore::connect_to(target, &RedisTls::default(), own).expect("connect");
                $name(Arc::new(store)).await;
            )*
        }
    };
}

both_stores!(
    twenty_claimers_complete_every_ticket_exactly_once,
    racing_release_expiry_and_complete_never_yield_two_holders,
    twenty_concurrent_retries_of_a_call_make_one_ticket,
);
