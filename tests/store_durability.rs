//! The Redis store through Redis failures: killed and restarted (AOF, `appendfsync always`),
//! forgotten scripts, and no Redis at all; what it keeps from growing: closed tickets' keys,
//! team feeds; what it takes over from older servers' data; and a ticket whose packed fields are
//! not as written.

mod support {
    pub mod ports;
    pub mod redis_server;
}

use std::time::{Duration, Instant};

use callrouter::routing::partition::{Partition, QueueRef};
use callrouter::routing::urgency::Urgency;
use callrouter::store::redis::RedisStore;
use callrouter::store::{
    Hold, NewTicket, NextClaim, StoreError, StoreSettings, Ticket, TicketState, TicketStore,
};
use support::redis_server::RedisServer;

const P: &str = "lb-habitat";

fn settings() -> StoreSettings {
    StoreSettings {
        namespace: "callrouter:dur".to_owned(),
        operation_timeout: Duration::from_millis(500),
        ..StoreSettings::default()
    }
}

fn ticket(call: String, team: &str, urgency: Urgency) -> NewTicket {
    NewTicket {
        call_id: call,
        partition: Partition::parse(P),
        cooperator_id: Some(P.to_owned()),
        team_id: team.to_owned(),
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

/// The next ticket of `queue` claimed by `agent` (60 s lease), with its hold.
async fn claim(store: &RedisStore, agent: &str, queue: QueueRef) -> (Ticket, Hold) {
    let held = store
        .claim_next(agent, &[queue], Duration::from_secs(60), None)
        .await
        .expect("claim")
        .expect("a waiting ticket");
    let hold = Hold {
        agent_id: agent.to_owned(),
        lease_token: held.lease_token,
    };
    (held, hold)
}

async fn until_answering(store: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the store did not reconnect within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn acknowledged_tickets_survive_sigkill_and_the_client_reconnects() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), settings()).expect("connect");
    let queues: Vec<QueueRef> = ["a", "b", "c"]
        .iter()
        .map(|t| QueueRef::new(P, t))
        .collect();
    let mut acknowledged = Vec::new();
    for i in 0..300 {
        let urgency = Urgency::ALL[i % 3];
        let team = &queues[i % 3].team;
        acknowledged.push(
            store
                .create(ticket(format!("call-{i}"), team, urgency))
                .await
                .expect("create")
                .ticket,
        );
    }
    let held = store
        .claim_next("ana", &queues[..1], Duration::from_secs(60), None)
        .await
        .expect("claim")
        .expect("t");
    let mut before = Vec::new();
    for q in &queues {
        before.push(store.list_queued(q, 1000).await.expect("list"));
    }

    server.kill();
    match store
        .create(ticket("during-outage".to_owned(), "a", Urgency::U1))
        .await
    {
        Err(StoreError::Unavailable(_)) | Err(StoreError::Timeout) => {}
        other => panic!("with Redis gone, create must fail with a typed error, got {other:?}"),
    }
    server.restart();
    until_answering(&store).await;

    for (q, expected) in queues.iter().zip(&before) {
        let after = store
            .list_queued(q, 1000)
            .await
            .expect("list after restart");
        let ids: Vec<&str> = after.iter().map(|t| t.ticket_id.as_str()).collect();
        let expected: Vec<&str> = expected.iter().map(|t| t.ticket_id.as_str()).collect();
        assert_eq!(ids, expected, "queue {} is back, in order", q.team);
    }
    for t in &acknowledged {
        let found = store
            .get(&t.ticket_id)
            .await
            .expect("get")
            .expect("every acknowledged ticket is back");
        assert_eq!(found.call_id, t.call_id);
    }
    let still_held = store
        .get(&held.ticket_id)
        .await
        .expect("get")
        .expect("held ticket");
    assert_eq!(still_held.state, TicketState::Reserved);
    let hold = Hold {
        agent_id: "ana".to_owned(),
        lease_token: held.lease_token,
    };
    store
        .complete(&held.ticket_id, &hold, "done")
        .await
        .expect("its holder completes it after the restart");
    let retry = store
        .create(ticket("call-5".to_owned(), "c", Urgency::U3))
        .await
        .expect("retry");
    assert!(retry.duplicate, "idempotency keys survived too");
    let outage = store
        .create(ticket("during-outage".to_owned(), "a", Urgency::U1))
        .await
        .expect("create");
    assert!(!outage.duplicate, "the refused create wrote nothing");
}

#[tokio::test]
async fn forgotten_scripts_are_reloaded_transparently() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), settings()).expect("connect");
    store
        .create(ticket("one".to_owned(), "a", Urgency::U2))
        .await
        .expect("create");
    assert_eq!(server.command(&["SCRIPT", "FLUSH"]), "OK");
    let t = store
        .create(ticket("two".to_owned(), "a", Urgency::U2))
        .await
        .expect("create after SCRIPT FLUSH");
    assert_eq!(t.ticket.state, TicketState::Queued);
    assert_eq!(
        store
            .list_queued(&QueueRef::new(P, "a"), 10)
            .await
            .expect("list")
            .len(),
        2
    );
}

#[tokio::test]
async fn no_redis_gives_a_typed_error_within_the_timeout() {
    let port = support::ports::free_port();
    let store = RedisStore::connect(&format!("redis://127.0.0.1:{port}/"), settings())
        .expect("a lazy store is created");
    let started = Instant::now();
    let err = store.ping().await.expect_err("nothing listens");
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Timeout),
        "{err}"
    );
    let err = store
        .create(ticket("x".to_owned(), "a", Urgency::U1))
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Timeout),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed fast: {:?}",
        started.elapsed()
    );
    assert!(matches!(
        RedisStore::connect("not a url", settings()),
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn keys_share_one_hash_tag_per_partition() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), settings()).expect("connect");
    let mut incident = ticket("k1".to_owned(), "a", Urgency::U2);
    incident.incident_id = Some("LB-00001/roof".to_owned());
    store.create(incident).await.expect("create");
    let (t, hold) = claim(&store, "ana", QueueRef::new(P, "a")).await;
    store
        .transfer(&t.ticket_id, &hold, &QueueRef::new(P, "b"), None)
        .await
        .expect("transfer");
    let keys = server.command(&["KEYS", "*"]);
    let keys: Vec<&str> = keys.lines().collect();
    for kind in [":t:", ":call:", ":inc:", ":q:", ":s:", ":ev:"] {
        assert!(
            keys.iter().any(|k| k.contains(kind)),
            "no {kind} key: {keys:?}"
        );
    }
    for key in keys {
        assert!(
            key.starts_with("callrouter:dur:{lb-habitat}:"),
            "key {key} is outside the partition's slot"
        );
    }
}

#[tokio::test]
async fn a_move_between_partitions_leaves_no_key_without_expiry() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), settings()).expect("connect");
    let mut lost = ticket("lost-1".to_owned(), "platform.triage", Urgency::U2);
    lost.partition = Partition::Platform;
    lost.cooperator_id = None;
    lost.incident_id = Some("unlocated/door_entry".to_owned());
    store.create(lost).await.expect("create");
    let (held, hold) = claim(
        &store,
        "triage",
        QueueRef::new("platform", "platform.triage"),
    )
    .await;
    let moved = store
        .transfer(&held.ticket_id, &hold, &QueueRef::new(P, "a"), None)
        .await
        .expect("move");
    let keys = server.command(&["KEYS", "*"]);
    let marker = keys
        .lines()
        .find(|k| k.contains(":moved:"))
        .expect("a moved-from marker");
    let ttl: i64 = server.command(&["PTTL", marker]).parse().expect("PTTL");
    assert!(ttl > 0, "{marker} expires (PTTL {ttl})");
    assert!(
        !keys.lines().any(|k| k.contains(":inc:")),
        "the moved ticket's incident key went with it: {keys}"
    );
    for id in [
        &held.ticket_id,
        &moved.transferred_from.clone().expect("source"),
    ] {
        let stub = format!("callrouter:dur:{{platform}}:t:{id}");
        let ttl: i64 = server.command(&["PTTL", &stub]).parse().expect("PTTL");
        assert!(ttl > 0, "the MOVED stub {stub} expires (PTTL {ttl})");
    }
}

#[tokio::test]
async fn closed_tickets_leave_no_key_without_expiry() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), settings()).expect("connect");
    let team = format!("{P}.roofs");
    let mut roof = ticket("roof-1".to_owned(), &team, Urgency::U1);
    roof.incident_id = Some("B-1/roof".to_owned());
    store.create(roof.clone()).await.expect("create");
    roof.call_id = "roof-2".to_owned();
    assert!(store.create(roof).await.expect("join").joined_incident);
    let plain = store
        .create(ticket("plain-1".to_owned(), &team, Urgency::U2))
        .await
        .expect("create")
        .ticket;
    let gone = store
        .create(ticket("gone-1".to_owned(), &team, Urgency::U3))
        .await
        .expect("create");
    store
        .cancel(&gone.ticket.ticket_id, None)
        .await
        .expect("cancel");
    for _ in 0..2 {
        let (held, hold) = claim(&store, "a1", QueueRef::new(P, &team)).await;
        store
            .complete(&held.ticket_id, &hold, "done")
            .await
            .expect("complete");
    }
    let keys = server.command(&["KEYS", "*"]);
    let of_tickets: Vec<&str> = keys
        .lines()
        .filter(|k| {
            [":t:", ":h:", ":call:", ":callers:"]
                .iter()
                .any(|p| k.contains(p))
        })
        .collect();
    assert!(
        of_tickets.iter().any(|k| k.contains(":callers:")),
        "the incident kept its callers: {keys}"
    );
    // Three tickets, four calls and the incident's callers.
    assert_eq!(of_tickets.len(), 8, "{keys}");
    for key in of_tickets {
        let ttl: i64 = server.command(&["PTTL", key]).parse().expect("PTTL");
        assert!(ttl > 0, "{key} expires (PTTL {ttl})");
    }
    let history = store.history(&plain.ticket_id).await.expect("history");
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(
        history[0].ends_with(&format!("created in {team}")),
        "{history:?}"
    );
    // Its first hold: tokens count a ticket's holds.
    assert!(history[1].ends_with("claimed by a1 lease 1"), "{history:?}");
    assert!(history[2].ends_with("completed by a1: done"), "{history:?}");
}

#[tokio::test]
async fn a_stalled_redis_gives_a_timeout_and_a_retry_is_safe() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), settings()).expect("connect");
    store.ping().await.expect("up");
    // Redis holds every client's commands for 1.5 s; the operation timeout is 500 ms.
    assert_eq!(server.command(&["CLIENT", "PAUSE", "1500", "ALL"]), "OK");
    let started = Instant::now();
    let err = store
        .create(ticket("stalled".to_owned(), "a", Urgency::U1))
        .await
        .expect_err("stalled");
    assert_eq!(err, StoreError::Timeout);
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let queued = store
        .list_queued(&QueueRef::new(P, "a"), 10)
        .await
        .expect("list after the pause");
    // The paused command ran once Redis resumed, past its cut-off: it created nothing.
    assert!(queued.is_empty(), "{queued:?}");
    let again = store
        .create(ticket("stalled".to_owned(), "a", Urgency::U1))
        .await
        .expect("create");
    assert!(!again.duplicate, "the retry creates the ticket, once");
    assert_eq!(
        store
            .list_queued(&QueueRef::new(P, "a"), 10)
            .await
            .expect("list")
            .len(),
        1
    );
}

/// Retries an operation through a stalled store's timeouts, counting them; any other error is a
/// broken promise (a retried action must be answered as done).
macro_rules! through_stall {
    ($retries:expr, $operation:expr) => {
        loop {
            match $operation.await {
                Ok(value) => break value,
                Err(StoreError::Timeout | StoreError::Unavailable(_)) => {
                    $retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(other) => panic!("a retried operation must be answered as done: {other}"),
            }
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_working_through_a_stall_complete_every_ticket_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = Arc::new(RedisStore::connect(&server.url(), settings()).expect("connect"));
    store.ping().await.expect("up");
    const TICKETS: usize = 200;
    for i in 0..TICKETS {
        store
            .create(ticket(format!("stall-{i}"), "s", Urgency::U2))
            .await
            .expect("create");
    }
    let queues = [QueueRef::new(P, "s")];
    let retries = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let agents: Vec<_> = (0..8)
        .map(|a| {
            let (store, queues) = (store.clone(), queues.clone());
            let (retries, completed) = (retries.clone(), completed.clone());
            tokio::spawn(async move {
                let agent = format!("agent-{a}");
                for n in 0.. {
                    // A fresh claim id per claim: a claim retried through the stall finds its hold.
                    let claim_id = format!("{agent}-{n}");
                    let lease = Duration::from_secs(30);
                    let claimed = through_stall!(
                        retries,
                        store.claim_next(&agent, &queues, lease, Some(&claim_id))
                    );
                    let Some(held) = claimed else { break };
                    let hold = Hold {
                        agent_id: agent.clone(),
                        lease_token: held.lease_token,
                    };
                    // Working the call: long enough for the stall to fall in the middle.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    let done =
                        through_stall!(retries, store.complete(&held.ticket_id, &hold, "done"));
                    assert_eq!(done.state, TicketState::Completed);
                    completed.lock().expect("lock").push(held.ticket_id);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.pause();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server.resume();
    for agent in agents {
        agent.await.expect("agent");
    }
    let completed = completed.lock().expect("lock").clone();
    let unique: std::collections::BTreeSet<&String> = completed.iter().collect();
    println!(
        "stall: {} completions, {} retried operations",
        completed.len(),
        retries.load(Ordering::Relaxed)
    );
    assert_eq!(unique.len(), completed.len(), "no ticket completed twice");
    assert_eq!(completed.len(), TICKETS, "every ticket completed");
    let (_, counts) = store.queue_stats(&queues).await.expect("stats");
    assert_eq!(counts[0].1.completed, TICKETS as u64);
    assert_eq!((counts[0].1.queued, counts[0].1.reserved), (0, 0));
    assert!(
        retries.load(Ordering::Relaxed) > 0,
        "the stall was met by some operation"
    );
}

/// A team feed stays near its length, though only the transitions that bring a ticket into it or
/// claim one cut it: the others (accepted, completed) each follow one of those.
#[tokio::test]
async fn team_feeds_stay_near_their_length() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let settings = StoreSettings {
        feed_length: 100,
        ..settings()
    };
    let store = RedisStore::connect(&server.url(), settings).expect("connect");
    let team = format!("{P}.feeds");
    for n in 0..300 {
        store
            .create(ticket(format!("feed-{n}"), &team, Urgency::U2))
            .await
            .expect("create");
    }
    let queues = [QueueRef::new(P, &team)];
    let next = NextClaim {
        queues: &queues,
        lease: Duration::from_secs(60),
        claim_id: None,
    };
    let (mut held, mut hold) = claim(&store, "a1", queues[0].clone()).await;
    let mut done = 0;
    loop {
        if done % 2 == 0 {
            held = store
                .accept(&held.ticket_id, &hold, Duration::from_secs(60))
                .await
                .expect("accept");
        }
        let (_, following) = store
            .complete_and_claim(&held.ticket_id, &hold, "done", &next)
            .await
            .expect("done, next");
        done += 1;
        let Some(following) = following else {
            break;
        };
        hold.lease_token = following.lease_token;
        held = following;
    }
    assert_eq!(done, 300);
    // 300 created, 300 claimed, 150 accepted, 300 completed: 1,050 entries written.
    let feed = format!("callrouter:dur:{{{P}}}:ev:{team}");
    let length: u64 = server.command(&["XLEN", &feed]).parse().expect("XLEN");
    // Cut "about" its length: Redis drops whole nodes of 100 entries.
    assert!(
        (100..=203).contains(&length),
        "{feed} holds {length} entries"
    );
}

/// A team's claim figures as older servers kept them (a count of reserved tickets, the last claim's
/// time and the interval between claims, each a field of its own) are carried on by the next
/// claim: the count goes on from theirs and the expected wait from their interval.
#[tokio::test]
async fn claims_carry_on_from_the_figures_older_servers_kept() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), settings()).expect("connect");
    let team = format!("{P}.older");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let stats = format!("callrouter:dur:{{{P}}}:s:{team}");
    let last = (now - 1000).to_string();
    let fields = [
        "RESERVED",
        "2",
        "last_claim_at",
        &last,
        "claim_interval",
        "400",
    ];
    server.command(&[&["HSET", stats.as_str()][..], &fields[..]].concat());
    for n in 0..3 {
        store
            .create(ticket(format!("older-{n}"), &team, Urgency::U2))
            .await
            .expect("create");
        // Apart in time, so that the queue's order is the order of creation.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let queue = QueueRef::new(P, &team);
    claim(&store, "a1", queue.clone()).await;
    let position = store
        .create(ticket("older-3".to_owned(), &team, Urgency::U2))
        .await
        .expect("create")
        .position
        .expect("queued");
    // Three places at about 0.8 * 400 + 0.2 * 1000 ms each; a first claim would leave the
    // default of minutes.
    assert_eq!(position.position, 3);
    assert!(
        (1..=3).contains(&position.estimated_wait_seconds),
        "{position:?}"
    );
    let (_, counts) = store.queue_stats(&[queue]).await.expect("stats");
    assert_eq!(counts[0].1.reserved, 3);
}

/// Tickets older servers wrote field by field (before the fields that never change were packed)
/// read as they were written, and go through every transition as tickets written now do: claim
/// and completion (their call key, which older servers wrote without expiry, and the history
/// lines they kept in a list given the retention), a building-wide incident joined and
/// cancelled caller by caller, escalation by the reaper, and a move to another partition.
#[tokio::test]
async fn tickets_older_servers_wrote_field_by_field_go_through_their_lifecycle() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(
        &server.url(),
        StoreSettings {
            max_attempts: 2,
            ..settings()
        },
    )
    .expect("connect");
    let team = format!("{P}.older");
    let supervisor = format!("{P}.supervisor");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let key = |what: &str| format!("callrouter:dur:{{{P}}}:{what}");
    // As the create script of older servers wrote a ticket: no building, incident or attempts
    // field when it had none.
    let older = |n: i64, incident: Option<&str>, attempts: Option<&str>| {
        let id = format!("{P}-00000000000000{n:02x}");
        let created = (now - 60_000 + n).to_string();
        let call = format!("older-call-{n}");
        let mut fields = vec![
            ("ticket_id", id.clone()),
            ("call_id", call.clone()),
            ("partition", P.to_owned()),
            ("state", "QUEUED".to_owned()),
            ("cooperator_id", P.to_owned()),
            ("team_id", team.clone()),
            ("urgency", "2".to_owned()),
            ("issue_type", "technical.plumbing.leak".to_owned()),
            ("created_at", created.clone()),
            ("enqueued_at", created.clone()),
            ("sla_due_at", "1800000000000".to_owned()),
            ("escalation_team", supervisor.clone()),
            ("details", "{\"rule_id\":\"older\"}".to_owned()),
            ("address", "12 rue Nationale, 37000 Tours".to_owned()),
            ("created_in", team.clone()),
            ("building_id", "B-12".to_owned()),
        ];
        if let Some(incident) = incident {
            fields.push(("incident_id", incident.to_owned()));
            server.command(&["SET", &key(&format!("inc:{incident}")), &id]);
        }
        if let Some(attempts) = attempts {
            fields.push(("attempts", attempts.to_owned()));
        }
        let ticket_key = key(&format!("t:{id}"));
        let mut args = vec!["HSET", ticket_key.as_str()];
        for (name, value) in &fields {
            args.extend([*name, value.as_str()]);
        }
        server.command(&args);
        let score = format!("2{created}");
        server.command(&["ZADD", &key(&format!("q:{team}")), &score, &id]);
        server.command(&["SET", &key(&format!("call:{call}")), &id]);
        id
    };
    // The partition's counter, which gave older servers' holds their tokens.
    server.command(&["SET", &key("fence"), "41"]);
    let plain = older(1, None, None);
    // Lines written before tickets had a log are in a list: they read before the log's.
    let list = key(&format!("h:{plain}"));
    server.command(&["RPUSH", &list, "1700000000001 a line from before the log"]);
    let incident = older(2, Some("B-12/water"), None);
    let escalating = older(3, None, Some("1"));
    let moving = older(4, None, None);

    // Read as written, by id and by a retry of its call.
    let read = store.get(&plain).await.expect("get").expect("held");
    assert_eq!(
        (
            read.call_id.as_str(),
            read.cooperator_id.as_deref(),
            read.issue_type.as_str(),
            read.building_id.as_deref(),
            read.address.as_deref(),
            read.sla_due_at,
            read.created_at,
            read.escalation_team.as_str(),
            read.details.as_str(),
            read.state,
        ),
        (
            "older-call-1",
            Some(P),
            "technical.plumbing.leak",
            Some("B-12"),
            Some("12 rue Nationale, 37000 Tours"),
            1_800_000_000_000,
            now - 59_999,
            supervisor.as_str(),
            "{\"rule_id\":\"older\"}",
            TicketState::Queued,
        )
    );
    let mut retry = ticket("older-call-1".to_owned(), &team, Urgency::U2);
    retry.address = Some("elsewhere".to_owned());
    let again = store.create(retry).await.expect("retry");
    assert!(again.duplicate);
    assert_eq!(again.ticket, read);

    // Claimed (the oldest first) and completed: the row carries the fields, the call is kept for
    // the retention, the history starts with the creation line made from the ticket.
    let queue = QueueRef::new(P, &team);
    let (held, hold) = claim(&store, "a1", queue.clone()).await;
    assert_eq!(held.ticket_id, plain);
    // Above every token an older hold of the ticket had.
    assert_eq!(held.lease_token, 42);
    assert_eq!(
        (held.address.as_deref(), held.call_id.as_str()),
        (read.address.as_deref(), "older-call-1")
    );
    let done = store
        .complete(&plain, &hold, "fixed")
        .await
        .expect("complete");
    assert_eq!(
        (done.state, done.building_id.as_deref()),
        (TicketState::Completed, Some("B-12"))
    );
    for key in [key("call:older-call-1"), list, key(&format!("t:{plain}"))] {
        let ttl: i64 = server.command(&["PTTL", &key]).parse().expect("PTTL");
        assert!(ttl > 0, "{key} expires (PTTL {ttl})");
    }
    let history = store.history(&plain).await.expect("history");
    assert_eq!(history.len(), 4, "{history:?}");
    assert_eq!(history[0], format!("{} created in {team}", now - 59_999));
    assert_eq!(history[1], "1700000000001 a line from before the log");
    assert!(
        history[3].ends_with("completed by a1: fixed"),
        "{history:?}"
    );

    // A call from the same building joins the older incident; each caller hangs up in turn.
    let mut joining = ticket("older-call-9".to_owned(), &team, Urgency::U2);
    joining.incident_id = Some("B-12/water".to_owned());
    let joined = store.create(joining).await.expect("join");
    assert!(joined.joined_incident);
    assert_eq!(
        (
            joined.ticket.ticket_id.as_str(),
            joined.ticket.incident_calls
        ),
        (incident.as_str(), 2)
    );
    let left = store.cancel(&incident, None).await.expect("own call");
    assert_eq!((left.state, left.incident_calls), (TicketState::Queued, 1));
    let cancelled = store
        .cancel(&incident, Some("older-call-9"))
        .await
        .expect("joined call");
    assert_eq!(cancelled.state, TicketState::Cancelled);
    assert_eq!(server.command(&["EXISTS", &key("inc:B-12/water")]), "0");

    // At the attempt limit, an expired lease sends it to its escalation team.
    let held = store
        .claim_next(
            "a2",
            std::slice::from_ref(&queue),
            Duration::from_millis(1),
            None,
        )
        .await
        .expect("claim")
        .expect("waiting");
    assert_eq!(
        (held.ticket_id.as_str(), held.lease_token),
        (escalating.as_str(), 43)
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = store.reap(&Partition::parse(P)).await.expect("reap");
    assert_eq!((report.expired, report.escalated), (1, 1));
    let escalated = store.get(&escalating).await.expect("get").expect("held");
    assert_eq!(
        (escalated.team_id.as_str(), escalated.escalated),
        (supervisor.as_str(), true)
    );
    // Its next hold counts on from its last token.
    let (again, _) = claim(&store, "s1", QueueRef::new(P, &supervisor)).await;
    assert_eq!((again.ticket_id, again.lease_token), (escalating, 44));

    // Moved to another partition: the new ticket keeps the call, the address and the history.
    let (held, hold) = claim(&store, "a3", queue.clone()).await;
    assert_eq!(held.ticket_id, moving);
    let moved = store
        .transfer(
            &moving,
            &hold,
            &QueueRef::new("platform", "platform.triage"),
            None,
        )
        .await
        .expect("move");
    assert_eq!(moved.transferred_from.as_deref(), Some(moving.as_str()));
    assert_eq!(
        (moved.call_id.as_str(), moved.address.as_deref()),
        ("older-call-4", Some("12 rue Nationale, 37000 Tours"))
    );
    let history = store.history(&moved.ticket_id).await.expect("history");
    assert_eq!(history[0], format!("{} created in {team}", now - 59_996));

    // The team's feed shows each older ticket's address and due time.
    let events = store
        .read_events(&queue, None, 100, None)
        .await
        .expect("events");
    assert!(events.len() >= 8, "{events:?}");
    for event in &events {
        assert_eq!(
            (event.address.as_deref(), event.sla_due_at),
            (Some("12 rue Nationale, 37000 Tours"), 1_800_000_000_000),
            "{event:?}"
        );
    }
}

/// A ticket whose packed `kept` field is not as written (fewer values) still goes through its
/// transitions whole or not at all: Redis keeps what a script wrote before it failed, so a script
/// must not fail partway on a field it reads. Its completion is closed, out of the leases, counted
/// in the feed and given the retention (the answer says the ticket cannot be read back); its
/// cancellation, which cannot tell its call, is refused with nothing written.
#[tokio::test]
async fn a_ticket_with_a_kept_field_not_as_written_goes_through_transitions_whole() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), settings()).expect("connect");
    let team = format!("{P}.kept");
    let queue = QueueRef::new(P, &team);
    let key = |what: &str| format!("callrouter:dur:{{{P}}}:{what}");
    for call in ["kept-1", "kept-2"] {
        store
            .create(ticket(call.to_owned(), &team, Urgency::U2))
            .await
            .expect("create");
    }
    let (held, hold) = claim(&store, "agent-k", queue.clone()).await;
    let held_key = key(&format!("t:{}", held.ticket_id));
    server.command(&["HSET", &held_key, "kept", "a-call-id-alone"]);
    let completed = store.complete(&held.ticket_id, &hold, "done").await;
    assert!(
        matches!(completed, Err(StoreError::Corrupt(_))),
        "{completed:?}"
    );
    assert_eq!(server.command(&["HGET", &held_key, "state"]), "COMPLETED");
    assert_eq!(
        server.command(&["ZSCORE", &key("leases"), &held.ticket_id]),
        ""
    );
    let ttl: i64 = server
        .command(&["PTTL", &held_key])
        .parse()
        .expect("a number");
    assert!(ttl > 0, "the completed ticket expires: {ttl}");
    let last = server.command(&[
        "XREVRANGE",
        &key(&format!("ev:{team}")),
        "+",
        "-",
        "COUNT",
        "1",
    ]);
    assert!(last.contains("completed"), "{last}");

    let waiting = store
        .list_queued(&queue, 10)
        .await
        .expect("list")
        .pop()
        .expect("the second ticket waits");
    let waiting_key = key(&format!("t:{}", waiting.ticket_id));
    server.command(&["HSET", &waiting_key, "kept", "a-call-id-alone"]);
    let cancelled = store.cancel(&waiting.ticket_id, None).await;
    assert!(
        matches!(cancelled, Err(StoreError::NotFound(_))),
        "{cancelled:?}"
    );
    assert_eq!(server.command(&["HGET", &waiting_key, "state"]), "QUEUED");
    assert_eq!(
        server.command(&["ZSCORE", &key(&format!("q:{team}")), &waiting.ticket_id]),
        format!("2{}", waiting.enqueued_at)
    );
}
