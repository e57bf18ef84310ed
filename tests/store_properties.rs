//! Property: random sequences of operations (including stale holds) give the same outcomes on the
//! in-memory store and on Redis, and after every step each ticket is in exactly one queue when
//! queued and in none otherwise, a held ticket has its holder and token, a queued one has none.

mod support {
    pub mod ports;
    pub mod redis_server;
}

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use callrouter::routing::partition::{Partition, QueueRef};
use callrouter::routing::urgency::Urgency;
use callrouter::store::memory::MemoryStore;
use callrouter::store::redis::RedisStore;
use callrouter::store::{
    Hold, NewTicket, StoreError, StoreSettings, Ticket, TicketState, TicketStore,
};
use proptest::prelude::*;
use support::redis_server::RedisServer;

const P: &str = "guingamp-habitat";
const TEAMS: [&str; 3] = ["t0", "t1", "t2"];
const LEASE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
enum Op {
    Create {
        call: usize,
        team: usize,
        urgency: usize,
    },
    Claim {
        agent: usize,
        teams: Vec<usize>,
    },
    Accept {
        agent: usize,
        stale: bool,
    },
    Complete {
        agent: usize,
        stale: bool,
    },
    Release {
        agent: usize,
        stale: bool,
    },
    Transfer {
        agent: usize,
        team: usize,
        stale: bool,
    },
    Cancel {
        call: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..8usize, 0..3usize, 0..3usize).prop_map(|(call, team, urgency)| Op::Create { call, team, urgency }),
        3 => (0..3usize, prop::collection::vec(0..3usize, 1..3)).prop_map(|(agent, teams)| Op::Claim { agent, teams }),
        1 => (0..3usize, any::<bool>()).prop_map(|(agent, stale)| Op::Accept { agent, stale }),
        2 => (0..3usize, any::<bool>()).prop_map(|(agent, stale)| Op::Complete { agent, stale }),
        1 => (0..3usize, any::<bool>()).prop_map(|(agent, stale)| Op::Release { agent, stale }),
        1 => (0..3usize, 0..3usize, any::<bool>()).prop_map(|(agent, team, stale)| Op::Transfer { agent, team, stale }),
        1 => (0..8usize).prop_map(|call| Op::Cancel { call }),
    ]
}

/// One store and what its agents hold: (call id, hold) now and before.
struct Side {
    store: Arc<dyn TicketStore>,
    ids: HashMap<String, String>,
    holds: HashMap<usize, (String, Hold)>,
    previous: HashMap<usize, (String, Hold)>,
}

/// The comparable outcome of an operation: no ids, which differ between stores.
fn outcome(result: Result<Option<Ticket>, StoreError>) -> String {
    match result {
        Ok(Some(t)) => format!(
            "ok {} {} {} {:?} {}",
            t.call_id,
            t.state.as_str(),
            t.team_id,
            t.urgency,
            t.attempts
        ),
        Ok(None) => "ok none".to_owned(),
        Err(StoreError::NotFound(_)) => "not found".to_owned(),
        Err(StoreError::NotHolder(_)) => "not holder".to_owned(),
        Err(StoreError::WrongState { state, action, .. }) => {
            format!("wrong state {state} {action}")
        }
        Err(other) => panic!("unexpected store error: {other}"),
    }
}

impl Side {
    async fn apply(&mut self, op: &Op) -> String {
        let agent_name = |a: usize| format!("agent-{a}");
        let pick = |side: &Side, agent: usize, stale: bool| {
            if stale {
                side.previous.get(&agent).cloned()
            } else {
                side.holds.get(&agent).cloned()
            }
        };
        match op {
            Op::Create {
                call,
                team,
                urgency,
            } => {
                let new = NewTicket {
                    call_id: format!("call-{call}"),
                    partition: Partition::parse(P),
                    cooperator_id: Some(P.to_owned()),
                    team_id: TEAMS[*team].to_owned(),
                    urgency: Urgency::ALL[*urgency],
                    issue_type: "other".to_owned(),
                    building_id: None,
                    address: None,
                    incident_id: None,
                    sla_due_at: 0,
                    escalation_team: format!("{P}.supervisor"),
                    details: String::new(),
                    within: std::time::Duration::from_secs(60),
                };
                let created = self.store.create(new).await.expect("create");
                self.ids.insert(
                    created.ticket.call_id.clone(),
                    created.ticket.ticket_id.clone(),
                );
                format!(
                    "created dup={} {}",
                    created.duplicate,
                    outcome(Ok(Some(created.ticket)))
                )
            }
            Op::Claim { agent, teams } => {
                let queues: Vec<QueueRef> =
                    teams.iter().map(|t| QueueRef::new(P, TEAMS[*t])).collect();
                let claimed = self
                    .store
                    .claim_next(&agent_name(*agent), &queues, LEASE, None)
                    .await;
                if let Ok(Some(t)) = &claimed {
                    let hold = Hold {
                        agent_id: agent_name(*agent),
                        lease_token: t.lease_token,
                    };
                    if let Some(old) = self.holds.insert(*agent, (t.call_id.clone(), hold)) {
                        self.previous.insert(*agent, old);
                    }
                }
                outcome(claimed)
            }
            Op::Accept { agent, stale }
            | Op::Complete { agent, stale }
            | Op::Release { agent, stale }
            | Op::Transfer { agent, stale, .. } => {
                let Some((call, hold)) = pick(self, *agent, *stale) else {
                    return "no hold".to_owned();
                };
                let id = self.ids[&call].clone();
                let result = match op {
                    Op::Accept { .. } => self.store.accept(&id, &hold, LEASE).await,
                    Op::Complete { .. } => self.store.complete(&id, &hold, "done").await,
                    Op::Release { .. } => self.store.release(&id, &hold).await,
                    Op::Transfer { team, .. } => {
                        self.store
                            .transfer(&id, &hold, &QueueRef::new(P, TEAMS[*team]), None)
                            .await
                    }
                    _ => unreachable!("matched above"),
                };
                outcome(result.map(Some))
            }
            Op::Cancel { call } => match self.ids.get(&format!("call-{call}")).cloned() {
                Some(id) => outcome(self.store.cancel(&id, None).await.map(Some)),
                None => "unknown call".to_owned(),
            },
        }
    }

    /// Checks the invariants and returns a comparable picture of every ticket.
    async fn check(&self) -> Vec<String> {
        let mut in_queues: HashMap<String, usize> = HashMap::new();
        for team in TEAMS.iter().chain([&"guingamp-habitat.supervisor"]) {
            for t in self
                .store
                .list_queued(&QueueRef::new(P, team), 100)
                .await
                .expect("list")
            {
                assert_eq!(
                    t.state,
                    TicketState::Queued,
                    "only queued tickets wait in a queue"
                );
                assert_eq!(t.team_id, *team, "a ticket waits in its own team's queue");
                *in_queues.entry(t.ticket_id).or_default() += 1;
            }
        }
        let mut picture = Vec::new();
        let mut calls: Vec<&String> = self.ids.keys().collect();
        calls.sort();
        for call in calls {
            let id = &self.ids[call];
            let t = self
                .store
                .get(id)
                .await
                .expect("get")
                .expect("tickets are never lost");
            let queued_times = in_queues.get(id).copied().unwrap_or(0);
            assert_eq!(
                queued_times,
                usize::from(t.state == TicketState::Queued),
                "{call} is in {queued_times} queues while {:?}",
                t.state
            );
            if t.state.is_held() {
                assert!(
                    t.agent_id.is_some() && t.lease_token > 0,
                    "{call}: a held ticket has its holder and token"
                );
            }
            if t.state == TicketState::Queued {
                assert!(
                    t.agent_id.is_none() && t.lease_token == 0,
                    "{call}: a queued ticket has no holder"
                );
            }
            picture.push(format!(
                "{call} {} {} {:?} {:?}",
                t.state.as_str(),
                t.team_id,
                t.agent_id,
                t.urgency
            ));
        }
        picture
    }
}

fn settings(namespace: String) -> StoreSettings {
    StoreSettings {
        namespace,
        ..StoreSettings::default()
    }
}

#[test]
fn memory_and_redis_agree_on_random_histories() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in prop::collection::vec(op(), 1..40))| {
        let case = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(async {
            let redis = RedisStore::connect(&server.url(), settings(format!("callrouter:prop{case}"))).expect("connect");
            let mut sides = [
                Side { store: Arc::new(MemoryStore::new(settings("m".to_owned()))), ids: HashMap::new(), holds: HashMap::new(), previous: HashMap::new() },
                Side { store: Arc::new(redis), ids: HashMap::new(), holds: HashMap::new(), previous: HashMap::new() },
            ];
            for (step, op) in ops.iter().enumerate() {
                let memory = sides[0].apply(op).await;
                let redis = sides[1].apply(op).await;
                assert_eq!(memory, redis, "step {step}: {op:?}");
                let (m, r) = (sides[0].check().await, sides[1].check().await);
                assert_eq!(m, r, "step {step}: the stores disagree after {op:?}");
            }
        });
    });
}
