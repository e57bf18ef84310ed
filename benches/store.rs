//! Queue store throughput against a local `redis-server` started for the run (AOF on,
//! `appendfsync everysec` as in production), and the in-memory store for comparison.
//!
//! Run: `cargo bench --bench store`. Prints, per store: create throughput, claim → complete cycles
//! per second (64 concurrent agents), single-operation latency percentiles, and for Redis the round
//! trips per operation counted by Redis itself (`INFO commandstats`). Targets: one round trip per
//! transition; claim → complete over 5,000 per second.

#[path = "../tests/support/ports.rs"]
mod ports;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use callrouter::routing::partition::{Partition, QueueRef};
use callrouter::routing::urgency::Urgency;
use callrouter::store::memory::MemoryStore;
use callrouter::store::redis::RedisStore;
use callrouter::store::{Hold, NewTicket, StoreSettings, TicketStore};

const PARTITION: &str = "touraine-logement";
const TICKETS: usize = 20_000;
const CONCURRENCY: usize = 64;

fn new_ticket(i: usize, run: &str) -> NewTicket {
    NewTicket {
        call_id: format!("{run}-{i}"),
        partition: Partition::parse(PARTITION),
        cooperator_id: Some(PARTITION.to_owned()),
        team_id: format!("team-{}", i % 5),
        urgency: Urgency::ALL[i % 3],
        issue_type: "technical.plumbing.leak".to_owned(),
        building_id: Some("TL-00001".to_owned()),
        address: None,
        incident_id: None,
        sla_due_at: 0,
        escalation_team: format!("{PARTITION}.supervisor"),
        details: r#"{"rule_id":"technical"}"#.to_owned(),
        within: std::time::Duration::from_secs(60),
    }
}

fn queues() -> Vec<QueueRef> {
    (0..5)
        .map(|i| QueueRef::new(PARTITION, &format!("team-{i}")))
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Round trips Redis has served through scripts, counted by Redis itself.
fn script_calls(server: &redis_server::RedisServer) -> u64 {
    callrouter::loadgen::script_stats_in(&server.command(&["INFO", "commandstats"])).calls
}

async fn run(name: &str, store: Arc<dyn TicketStore>, server: Option<&redis_server::RedisServer>) {
    let lease = Duration::from_secs(60);
    // Create, 64 at a time.
    let scripts_before = server.map(script_calls);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..TICKETS).step_by(CONCURRENCY) {
                store.create(new_ticket(i, "bench")).await.expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let create_rate = TICKETS as f64 / started.elapsed().as_secs_f64();
    let create_trips =
        server.map(|s| (script_calls(s) - scripts_before.unwrap_or(0)) as f64 / TICKETS as f64);

    // Claim -> complete cycles, 64 agents.
    let scripts_before = server.map(script_calls);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for agent in 0..CONCURRENCY {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let agent_id = format!("agent-{agent}");
            let mut done = 0u64;
            while let Some(t) = store
                .claim_next(&agent_id, &queues(), lease, None)
                .await
                .expect("claim")
            {
                let hold = Hold {
                    agent_id: agent_id.clone(),
                    lease_token: t.lease_token,
                };
                store
                    .complete(&t.ticket_id, &hold, "done")
                    .await
                    .expect("complete");
                done += 1;
            }
            done
        }));
    }
    let mut cycles = 0;
    for t in tasks {
        cycles += t.await.expect("task");
    }
    let cycle_rate = cycles as f64 / started.elapsed().as_secs_f64();
    let cycle_trips =
        server.map(|s| (script_calls(s) - scripts_before.unwrap_or(0)) as f64 / cycles as f64);
    assert_eq!(cycles as usize, TICKETS, "every ticket completed once");

    // Latency of single operations, one at a time.
    let mut create = Vec::new();
    let mut claim = Vec::new();
    let mut complete = Vec::new();
    let calls_before = server.map(script_calls);
    for i in 0..2000 {
        let t0 = Instant::now();
        store
            .create(new_ticket(i, "latency"))
            .await
            .expect("create");
        create.push(t0.elapsed());
        let t0 = Instant::now();
        let t = store
            .claim_next("solo", &queues(), lease, None)
            .await
            .expect("claim")
            .expect("ticket");
        claim.push(t0.elapsed());
        let hold = Hold {
            agent_id: "solo".to_owned(),
            lease_token: t.lease_token,
        };
        let t0 = Instant::now();
        store
            .complete(&t.ticket_id, &hold, "done")
            .await
            .expect("complete");
        complete.push(t0.elapsed());
    }
    let single_trips =
        server.map(|s| (script_calls(s) - calls_before.unwrap_or(0)) as f64 / 6000.0);
    for v in [&mut create, &mut claim, &mut complete] {
        v.sort();
    }
    println!("\n{name}");
    println!("  create:            {create_rate:>9.0} tickets/s  ({CONCURRENCY} concurrent)");
    println!(
        "  claim -> complete: {cycle_rate:>9.0} cycles/s   ({CONCURRENCY} concurrent agents; target > 5,000)"
    );
    for (op, v) in [
        ("create", &create),
        ("claim", &claim),
        ("complete", &complete),
    ] {
        println!(
            "  {op:<9} latency, one at a time: p50 {:>6.0} µs  p99 {:>6.0} µs",
            percentile(v, 0.5),
            percentile(v, 0.99)
        );
    }
    if let (Some(c), Some(k), Some(a)) = (create_trips, cycle_trips, single_trips) {
        println!(
            "  round trips counted by Redis: {c:.2} per create, {k:.2} per claim+complete cycle (target 2.00),"
        );
        println!("  {a:.2} per operation one at a time (target 1.00)");
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let settings = StoreSettings {
            namespace: "callrouter:bench".to_owned(),
            operation_timeout: Duration::from_secs(10),
            ..StoreSettings::default()
        };
        let server = redis_server::RedisServer::start_with_fsync("everysec")
            .expect("the store benchmark needs redis-server (apt-get install redis-server)");
        let redis = RedisStore::connect(&server.url(), settings.clone()).expect("connect");
        run(
            "redis (local redis-server, AOF everysec)",
            Arc::new(redis),
            Some(&server),
        )
        .await;
        run("in-memory", Arc::new(MemoryStore::new(settings)), None).await;
    });
}
