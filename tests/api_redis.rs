//! What only Redis does, end to end over gRPC: a store that goes away and comes back, and several
//! instances over one Redis (one of them killed). Each test starts its own `redis-server`; when none
//! can start the tests fail under `CI` and are skipped otherwise.

mod support {
    pub mod api;
    pub mod app;
    pub mod ports;
    pub mod proxy;
    pub mod redis_server;
}

use std::time::{Duration, Instant};

use callrouter::api::pb;
use support::api::{TestServer, leak_call, next_event};
use support::proxy::Proxy;
use support::redis_server::RedisServer;
use tonic::Code;

#[tokio::test]
async fn without_the_store_route_call_still_answers_with_the_decision() {
    let Some(mut server) = TestServer::start_redis().await else {
        return;
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let serving = |r: tonic_health::pb::HealthCheckResponse| {
        r.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    };
    let check = tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !serving(
        health
            .check(check.clone())
            .await
            .expect("health")
            .into_inner(),
    ) {
        assert!(Instant::now() < deadline, "SERVING once the store answers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    server.redis_mut().kill();
    let mut telephony = server.routing(Some("telephony-ivr"));
    let started = Instant::now();
    let answer = telephony
        .route_call(leak_call("outage-1"))
        .await
        .expect("an answer all the same")
        .into_inner();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "within the deadline: {:?}",
        started.elapsed()
    );
    assert!(!answer.queued);
    assert!(answer.ticket.is_none());
    assert_eq!(
        answer.decision.map(|d| d.cooperator_id),
        Some("touraine-logement".to_owned())
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while serving(
        health
            .check(check.clone())
            .await
            .expect("health")
            .into_inner(),
    ) {
        assert!(
            Instant::now() < deadline,
            "NOT_SERVING while the store is away"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    server.redis_mut().restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = telephony
            .route_call(leak_call("outage-2"))
            .await
            .expect("answer")
            .into_inner();
        if answer.queued {
            break;
        }
        assert!(Instant::now() < deadline, "queued again once Redis is back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_instance_loses_nothing_and_another_serves_its_work() {
    let Some(first) = TestServer::start_redis().await else {
        return;
    };
    let second = first.another_instance().await;
    let mut watch = second
        .desk(Some("tl-agent-1"))
        .watch_tickets(pb::WatchTicketsRequest {
            team_ids: vec![],
            ..Default::default()
        })
        .await
        .expect("watch on the second instance")
        .into_inner();
    let mut routed = std::collections::BTreeSet::new();
    for i in 0..30 {
        let ticket = first
            .routing(Some("telephony-ivr"))
            .route_call(leak_call(&format!("kill-{i}")))
            .await
            .expect("route")
            .into_inner()
            .ticket
            .expect("ticket");
        routed.insert(ticket.ticket_id);
    }
    // Depending on when the watch's reader started, a ticket shows as part of the snapshot or as
    // created: either way the second instance reports the first one's tickets.
    let event = next_event(&mut watch).await;
    assert!(
        matches!(event.kind.as_str(), "snapshot" | "created"),
        "{}",
        event.kind
    );
    assert!(routed.contains(&event.ticket.expect("ticket").ticket_id));

    // Ten tickets held through the first instance, which then dies with them.
    let mut on_first = first.desk(Some("tl-agent-1"));
    for _ in 0..10 {
        on_first
            .claim_next_ticket(pb::ClaimNextTicketRequest {
                team_ids: vec![],
                lease_seconds: 5,
                ..Default::default()
            })
            .await
            .expect("claim")
            .into_inner()
            .ticket
            .expect("ticket");
    }
    kill_first_then_finish_on_second(first, second, routed).await;
}

/// Kills the first instance; the second completes every ticket exactly once, the held ones after
/// their leases expire and its own reaper returns them.
async fn kill_first_then_finish_on_second(
    first: TestServer,
    second: TestServer,
    routed: std::collections::BTreeSet<String>,
) {
    let redis = {
        let mut first = first;
        let redis = first.redis.take();
        first.kill();
        redis
    };
    let mut desk = second.desk(Some("tl-agent-1"));
    let mut completed = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while completed.len() < routed.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} completed",
            completed.len(),
            routed.len()
        );
        let claimed = desk
            .claim_next_ticket(pb::ClaimNextTicketRequest {
                team_ids: vec![],
                lease_seconds: 60,
                ..Default::default()
            })
            .await
            .expect("claim")
            .into_inner()
            .ticket;
        let Some(ticket) = claimed else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        support::api::complete(&mut desk, &ticket, "done").await;
        assert!(
            completed.insert(ticket.ticket_id.clone()),
            "{} completed twice",
            ticket.ticket_id
        );
    }
    assert_eq!(
        completed, routed,
        "every routed ticket completed once, none lost"
    );
    second.stop().await;
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_answered_not_queued_during_a_stall_are_never_queued() {
    let Some(mut server) = TestServer::start_redis().await else {
        return;
    };
    let mut telephony = server.routing(Some("telephony-ivr"));
    telephony
        .route_call(leak_call("warm-up"))
        .await
        .expect("the store answers before the stall");
    // Half the stalled calls find the script cached, half find it forgotten (a NOSCRIPT answer
    // after the stall makes the client load and run it again, late).
    const CALLS: usize = 40;
    let mut answered_not_queued = Vec::new();
    for half in 0..2 {
        if half == 1 {
            server.redis_mut().command(&["SCRIPT", "FLUSH"]);
        }
        server.redis_mut().pause();
        let calls: Vec<_> = (0..CALLS / 2)
            .map(|i| {
                let mut telephony = telephony.clone();
                let call_id = format!("stall-{half}-{i}");
                tokio::spawn(async move {
                    let started = Instant::now();
                    let answer = telephony
                        .route_call(leak_call(&call_id))
                        .await
                        .expect("an answer all the same")
                        .into_inner();
                    (call_id, answer.queued, started.elapsed())
                })
            })
            .collect();
        for call in calls {
            let (call_id, queued, took) = call.await.expect("join");
            assert!(!queued, "{call_id} cannot be queued while Redis is stopped");
            assert!(took < Duration::from_secs(2), "{call_id} waited {took:?}");
            answered_not_queued.push(call_id);
        }
        // Past the deadline and the store's own timeout, Redis goes on with what it was sent.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        server.redis_mut().resume();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A promise kept: none of those calls has a ticket, so each retry creates one, once.
    let mut queued_later = 0;
    for call_id in &answered_not_queued {
        let retry = telephony
            .route_call(leak_call(call_id))
            .await
            .expect("retry")
            .into_inner();
        assert!(retry.queued, "{call_id} is queued on retry");
        if retry.duplicate {
            queued_later += 1;
        }
    }
    println!(
        "stall: {} calls answered queued = false, {queued_later} of them queued later",
        answered_not_queued.len()
    );
    assert_eq!(
        queued_later, 0,
        "calls told 'not queued' were queued after all"
    );
    server.stop().await;
}

#[tokio::test]
async fn callers_of_one_incident_hang_up_one_by_one() {
    let Some(server) = TestServer::start_redis().await else {
        return;
    };
    let mut telephony = server.routing(Some("telephony-ivr"));
    let lift = |call_id: &str| pb::RouteCallRequest {
        issue_type: "technical.lift.breakdown".to_owned(),
        ..leak_call(call_id)
    };
    let mut tickets = Vec::new();
    for call in ["lift-1", "lift-2", "lift-3"] {
        let routed = telephony
            .route_call(lift(call))
            .await
            .expect("route")
            .into_inner();
        tickets.push(routed.ticket.expect("queued"));
    }
    let ticket_id = tickets[0].ticket_id.clone();
    assert!(
        tickets.iter().all(|t| t.ticket_id == ticket_id),
        "one incident"
    );
    assert_eq!(tickets[2].incident_calls, 3);
    // Each caller hangs up with the ids RouteCall gave it; the others keep the ticket alive.
    let cancelling = telephony.clone();
    let hang_up = |call_id: &str| {
        let request = pb::CancelCallRequest {
            call_id: call_id.to_owned(),
            ticket_id: ticket_id.clone(),
        };
        let mut telephony = cancelling.clone();
        async move {
            telephony
                .cancel_call(request)
                .await
                .expect("cancel")
                .into_inner()
        }
    };
    let after_first = hang_up("lift-1").await;
    assert_eq!(
        (after_first.state, after_first.incident_calls),
        (pb::TicketState::Queued as i32, 2)
    );
    let retry = telephony
        .route_call(lift("lift-2"))
        .await
        .expect("a retry of a caller still waiting")
        .into_inner();
    assert!(retry.duplicate && retry.queued);
    assert_eq!(
        retry.ticket.map(|t| t.state),
        Some(pb::TicketState::Queued as i32)
    );
    let after_second = hang_up("lift-2").await;
    assert_eq!(after_second.incident_calls, 1);
    let after_last = hang_up("lift-3").await;
    assert_eq!(
        (after_last.state, after_last.incident_calls),
        (pb::TicketState::Cancelled as i32, 0),
        "cancelled once no caller is left"
    );
    server.stop().await;
}

/// A server whose Redis answers go through a proxy that can hold them back.
async fn behind_proxy() -> Option<(TestServer, Proxy)> {
    let redis = RedisServer::start()?;
    let proxy = Proxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let server = TestServer::over_redis(&redis.url_at(proxy.addr), redis).await;
    Some((server, proxy))
}

/// Works one ticket through claim and completion, so that Redis has every script of the desk
/// cached (a script Redis has not seen would be refused unrun, not lost).
async fn warm_up(server: &TestServer) {
    server
        .routing(Some("telephony-ivr"))
        .route_call(leak_call("warm-up"))
        .await
        .expect("route");
    let mut desk = server.desk(Some("tl-agent-1"));
    let held = support::api::claim(&mut desk, vec![]).await;
    support::api::complete(&mut desk, &held, "warm-up").await;
}

/// Runs `action` while Redis's answers are held past the store's timeout: it takes effect in
/// Redis, and its caller never hears so.
async fn with_answer_lost<T: std::fmt::Debug>(
    proxy: &Proxy,
    action: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> tonic::Status {
    proxy.hold();
    let lost = action.await.expect_err("no answer reaches the server");
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.release();
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_answer_was_lost_is_done_for_its_holders_retry() {
    let Some((server, proxy)) = behind_proxy().await else {
        return;
    };
    warm_up(&server).await;
    server
        .routing(Some("telephony-ivr"))
        .route_call(leak_call("lost-1"))
        .await
        .expect("route");
    let mut desk = server.desk(Some("tl-agent-1"));
    let held = support::api::claim(&mut desk, vec![]).await;
    let complete = pb::CompleteTicketRequest {
        ticket_id: held.ticket_id.clone(),
        lease_token: held.lease_token,
        resolution: "fixed".to_owned(),
    };
    let lost = with_answer_lost(&proxy, desk.clone().complete_ticket(complete.clone())).await;
    assert_eq!(lost.code(), Code::DeadlineExceeded, "{lost:?}");
    let stored = server
        .desk(Some("tl-agent-1"))
        .get_ticket(pb::GetTicketRequest {
            ticket_id: held.ticket_id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        stored.state,
        pb::TicketState::Completed as i32,
        "the completion took effect, its answer was lost"
    );
    let retried = desk
        .complete_ticket(complete.clone())
        .await
        .expect("the holder's retry is answered as done")
        .into_inner();
    assert_eq!(retried.state, pb::TicketState::Completed as i32);
    assert_eq!(retried.resolution, "fixed");
    let other = server
        .desk(Some("tl-sup-1"))
        .complete_ticket(complete)
        .await
        .expect_err("anyone else is still refused");
    assert_eq!(other.code(), Code::FailedPrecondition);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_retried_with_its_claim_id_gets_the_same_hold() {
    let Some((server, proxy)) = behind_proxy().await else {
        return;
    };
    warm_up(&server).await;
    let mut telephony = server.routing(Some("telephony-ivr"));
    for call in ["claim-1", "claim-2"] {
        telephony.route_call(leak_call(call)).await.expect("route");
    }
    let mut desk = server.desk(Some("tl-agent-1"));
    let claim = pb::ClaimNextTicketRequest {
        lease_seconds: 600,
        claim_id: "desk-7-claim-1".to_owned(),
        ..Default::default()
    };
    let lost = with_answer_lost(&proxy, desk.clone().claim_next_ticket(claim.clone())).await;
    assert_eq!(lost.code(), Code::DeadlineExceeded, "{lost:?}");
    let retried = desk
        .claim_next_ticket(claim.clone())
        .await
        .expect("retry")
        .into_inner()
        .ticket
        .expect("the hold the lost claim made");
    let again = desk
        .claim_next_ticket(claim)
        .await
        .expect("retry")
        .into_inner()
        .ticket
        .expect("the same hold");
    assert_eq!(
        (again.ticket_id.as_str(), again.lease_token),
        (retried.ticket_id.as_str(), retried.lease_token)
    );
    let next = support::api::claim(&mut desk, vec![]).await;
    assert_ne!(
        next.ticket_id, retried.ticket_id,
        "a new claim takes the other"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_restarted_desk_recovers_the_tickets_it_holds() {
    let Some(server) = TestServer::start_redis().await else {
        return;
    };
    let mut telephony = server.routing(Some("telephony-ivr"));
    for call in ["hold-1", "hold-2"] {
        telephony.route_call(leak_call(call)).await.expect("route");
    }
    let held = {
        let mut desk = server.desk(Some("tl-agent-1"));
        vec![
            support::api::claim(&mut desk, vec![]).await,
            support::api::claim(&mut desk, vec![]).await,
        ]
    };
    // The desk restarts: a new client, the same agent, no memory of its holds.
    let mut restarted = server.desk(Some("tl-agent-1"));
    let mut recovered = restarted
        .list_tickets(pb::ListTicketsRequest {
            held_by_me: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .tickets;
    recovered.sort_by(|a, b| a.ticket_id.cmp(&b.ticket_id));
    let mut expected: Vec<(String, u64)> = held
        .iter()
        .map(|t| (t.ticket_id.clone(), t.lease_token))
        .collect();
    expected.sort();
    let got: Vec<(String, u64)> = recovered
        .iter()
        .map(|t| (t.ticket_id.clone(), t.lease_token))
        .collect();
    assert_eq!(got, expected);
    for ticket in &recovered {
        support::api::complete(&mut restarted, ticket, "done").await;
    }
    let others = server
        .desk(Some("tl-sup-1"))
        .list_tickets(pb::ListTicketsRequest {
            held_by_me: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .tickets;
    assert!(others.is_empty(), "another agent holds nothing");
    server.stop().await;
}

#[tokio::test]
async fn a_watch_resumed_from_a_position_as_received_loses_and_repeats_nothing() {
    let Some(server) = TestServer::start_redis().await else {
        return;
    };
    let mut telephony = server.routing(Some("telephony-ivr"));
    let mut desk = server.desk(Some("tl-agent-1"));
    let team = support::app::TL_TECH.to_owned();
    let watch_from = |resume: Option<&str>| pb::WatchTicketsRequest {
        team_ids: vec![team.clone()],
        resume_from: resume
            .map(|p| (format!("touraine-logement/{team}"), p.to_owned()))
            .into_iter()
            .collect(),
    };
    let mut watch = desk
        .watch_tickets(watch_from(None))
        .await
        .expect("watch")
        .into_inner();
    let mut seen = Vec::new();
    for call in ["w-1", "w-2", "w-3"] {
        telephony.route_call(leak_call(call)).await.expect("route");
        let event = next_event(&mut watch).await;
        assert_eq!(event.kind, "created");
        seen.push(event);
    }
    drop(watch);
    // While the desk is away: three more changes.
    for call in ["w-4", "w-5"] {
        telephony.route_call(leak_call(call)).await.expect("route");
    }
    support::api::claim(&mut desk, vec![]).await;
    let last = seen.last().expect("an event").position.clone();
    let mut resumed = desk
        .watch_tickets(watch_from(Some(&last)))
        .await
        .expect("resume from the position exactly as received")
        .into_inner();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(next_event(&mut resumed).await.kind);
    }
    assert_eq!(
        kinds,
        ["created", "created", "claimed"],
        "nothing lost, nothing repeated"
    );
    let quiet = tokio::time::timeout(Duration::from_millis(700), resumed.message()).await;
    assert!(quiet.is_err(), "no event beyond the changes: {quiet:?}");
    server.stop().await;
}

/// The value of the sample of `name` whose labels include every one of `labels` (0 when absent).
async fn sample_value(server: &TestServer, name: &str, labels: &[&str]) -> f64 {
    let text = server.admin_get("/metrics").await;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_call_past_the_store_deadline_is_counted_as_a_store_timeout() {
    let Some(mut server) = TestServer::start_redis().await else {
        return;
    };
    let mut telephony = server.routing(Some("telephony-ivr"));
    telephony
        .route_call(leak_call("before-the-stall"))
        .await
        .expect("the store answers");
    let errors = "callrouter_store_errors_total";
    let timings = "callrouter_store_operation_seconds_count";
    let timeout = ["operation=\"create\"", "kind=\"timeout\""];
    let create = ["operation=\"create\""];
    let errors_before = sample_value(&server, errors, &timeout).await;
    let timed_before = sample_value(&server, timings, &create).await;
    server.redis_mut().pause();
    let answer = telephony
        .route_call(leak_call("during-the-stall"))
        .await
        .expect("an answer all the same")
        .into_inner();
    server.redis_mut().resume();
    assert!(!answer.queued);
    assert_eq!(
        sample_value(&server, errors, &timeout).await - errors_before,
        1.0,
        "the stalled creation is a store timeout"
    );
    assert_eq!(
        sample_value(&server, timings, &create).await - timed_before,
        1.0,
        "and its time is observed"
    );
    server.stop().await;
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
async fn sum_values(server: &TestServer, name: &str, labels: &[&str]) -> f64 {
    let text = server.admin_get("/metrics").await;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A scripted day — calls and a retry, a hang-up, a claim past the due time and claims within it,
/// a completion, a release, a transfer, presence, a stalled store — moves each figure by exactly
/// what happened.
#[tokio::test]
async fn a_scripted_day_moves_each_figure_by_exactly_what_happened() {
    let Some(mut server) = TestServer::start_redis().await else {
        return;
    };
    let tl = "cooperator=\"touraine-logement\"";
    let figures: Vec<(&str, Vec<&str>, f64)> = vec![
        (
            "callrouter_calls_routed_total",
            vec![tl, "outcome=\"queued\""],
            6.0,
        ),
        (
            "callrouter_calls_routed_total",
            vec![tl, "outcome=\"duplicate\""],
            1.0,
        ),
        (
            "callrouter_calls_routed_total",
            vec![tl, "outcome=\"degraded\""],
            1.0,
        ),
        ("callrouter_calls_by_urgency_total", vec![tl], 7.0),
        ("callrouter_calls_by_category_total", vec![tl], 7.0),
        ("callrouter_calls_abandoned_total", vec![tl], 1.0),
        ("callrouter_abandon_wait_seconds_count", vec![tl], 1.0),
        (
            "callrouter_tickets_answered_total",
            vec![tl, "within_target=\"no\""],
            1.0,
        ),
        (
            "callrouter_tickets_answered_total",
            vec![tl, "within_target=\"yes\""],
            2.0,
        ),
        ("callrouter_ticket_wait_seconds_count", vec![tl], 3.0),
        ("callrouter_tickets_completed_total", vec![tl], 1.0),
        ("callrouter_ticket_handle_seconds_count", vec![tl], 1.0),
        ("callrouter_sla_breaches_total", vec![tl], 1.0),
        ("callrouter_tickets_released_total", vec![tl], 1.0),
        (
            "callrouter_tickets_transferred_total",
            vec![tl, "team=\"touraine-logement.front-desk\""],
            1.0,
        ),
        ("callrouter_tickets_moved_total", vec![], 0.0),
        (
            "callrouter_store_errors_total",
            vec!["operation=\"create\"", "kind=\"timeout\""],
            1.0,
        ),
        (
            "grpc_server_handled_total",
            vec!["grpc_method=\"RouteCall\"", "grpc_code=\"OK\""],
            8.0,
        ),
        (
            "grpc_server_handled_total",
            vec!["grpc_method=\"ClaimNextTicket\"", "grpc_code=\"OK\""],
            3.0,
        ),
        (
            "grpc_server_handled_total",
            vec!["grpc_method=\"CancelCall\"", "grpc_code=\"OK\""],
            1.0,
        ),
        (
            "grpc_server_started_total",
            vec!["grpc_method=\"TransferTicket\""],
            1.0,
        ),
    ];
    let mut before = Vec::new();
    for (name, labels, _) in &figures {
        before.push(sum_values(&server, name, labels).await);
    }

    let mut telephony = server.routing(Some("telephony-ivr"));
    let mut route = async |id: &str, issue: &str| {
        let mut request = leak_call(id);
        request.issue_type = issue.to_owned();
        telephony
            .route_call(request)
            .await
            .expect("routed")
            .into_inner()
    };
    for n in 0..4 {
        route(&format!("day-leak-{n}"), "technical.plumbing.leak").await;
    }
    route("day-rent-0", "administrative.rent.payment").await;
    let hung_up = route("day-rent-1", "administrative.rent.payment").await;
    assert!(route("day-leak-0", "technical.plumbing.leak").await.queued);
    // A ticket that has waited past its due time (created in the store, not routed).
    let url = server.redis_url.clone().expect("Redis");
    let store = callrouter::store::redis::RedisStore::connect(
        &url,
        callrouter::store::StoreSettings {
            namespace: "callrouter:api".to_owned(),
            ..Default::default()
        },
    )
    .expect("connect");
    let now_ms = chrono::Utc::now().timestamp_millis();
    callrouter::store::TicketStore::create(
        &store,
        callrouter::store::NewTicket {
            call_id: "day-late".to_owned(),
            partition: callrouter::routing::partition::Partition::parse("touraine-logement"),
            cooperator_id: Some("touraine-logement".to_owned()),
            team_id: "touraine-logement.rent".to_owned(),
            urgency: callrouter::routing::urgency::Urgency::U1,
            issue_type: "administrative.rent.payment".to_owned(),
            building_id: None,
            address: None,
            incident_id: None,
            sla_due_at: now_ms - 3_600_000,
            escalation_team: "touraine-logement.supervisor".to_owned(),
            details: "{}".to_owned(),
            within: Duration::from_secs(60),
        },
    )
    .await
    .expect("created");

    server
        .routing(Some("telephony-ivr"))
        .cancel_call(pb::CancelCallRequest {
            ticket_id: hung_up.ticket.expect("ticket").ticket_id,
            call_id: String::new(),
        })
        .await
        .expect("hung up");
    let mut desk = server.desk(Some("tl-agent-1"));
    desk.set_agent_status(pb::SetAgentStatusRequest {
        presence: pb::Presence::Available as i32,
    })
    .await
    .expect("presence");
    let late = support::api::claim(&mut desk, vec![]).await;
    assert_eq!(late.call_id, "day-late", "the most urgent first");
    support::api::complete(&mut desk, &late, "paid").await;
    let released = support::api::claim(&mut desk, vec![]).await;
    desk.release_ticket(pb::TicketActionRequest {
        ticket_id: released.ticket_id.clone(),
        lease_token: released.lease_token,
        ..Default::default()
    })
    .await
    .expect("released");
    let again = support::api::claim(&mut desk, vec![]).await;
    desk.transfer_ticket(pb::TransferTicketRequest {
        ticket_id: again.ticket_id.clone(),
        lease_token: again.lease_token,
        team_id: "touraine-logement.front-desk".to_owned(),
        ..Default::default()
    })
    .await
    .expect("transferred");
    server.redis_mut().pause();
    let degraded = server
        .routing(Some("telephony-ivr"))
        .route_call(leak_call("day-stalled"))
        .await
        .expect("answered all the same")
        .into_inner();
    server.redis_mut().resume();
    assert!(!degraded.queued);

    for ((name, labels, delta), was) in figures.iter().zip(before) {
        let now = sum_values(&server, name, labels).await;
        assert_eq!(now - was, *delta, "{name} {labels:?}");
    }
    // Presence and queues as the store holds them, once the sampler has read it again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let available = sum_values(&server, "callrouter_agents", &[tl, "AVAILABLE"]).await;
        let waiting = sum_values(&server, "callrouter_queue_depth", &[tl]).await;
        // 4 leaks + 1 rent routed, 1 hung up… minus the released-then-transferred one moved
        // within tl, minus the one claimed and completed (the late one): 5 waiting.
        if available == 1.0 && waiting == 5.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agents {available}, waiting {waiting}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

/// During a Redis outage the queue figures stay, and the oldest wait keeps growing: nothing can be
/// claimed while the store is away.
#[tokio::test]
async fn queue_figures_keep_growing_through_a_store_outage() {
    let Some(mut server) = TestServer::start_redis().await else {
        return;
    };
    server
        .routing(Some("telephony-ivr"))
        .route_call(leak_call("outage-1"))
        .await
        .expect("routed");
    let tl = "cooperator=\"touraine-logement\"";
    let oldest = async |server: &TestServer| {
        let text = server.admin_get("/metrics").await;
        text.lines()
            .filter(|l| l.starts_with("callrouter_queue_oldest_wait_seconds{") && l.contains(tl))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, f64::max)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while sum_values(&server, "callrouter_queue_depth", &[tl]).await != 1.0 {
        assert!(
            Instant::now() < deadline,
            "the sampler never saw the ticket"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.redis_mut().pause();
    let before = oldest(&server).await;
    // Each pass during the outage waits for the store's timeout (500 ms here) before it grows the
    // waits: within a few passes the oldest wait has grown by a second and more.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut during = before;
    while during - before < 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        during = oldest(&server).await;
    }
    let depth = sum_values(&server, "callrouter_queue_depth", &[tl]).await;
    let holder = server.admin_get("/metrics").await;
    server.redis_mut().resume();
    assert!(
        during - before >= 1.0,
        "the oldest wait grew from {before} s to {during} s"
    );
    assert_eq!(depth, 1.0, "the depth stays");
    assert!(
        holder.contains("\ncallrouter_store_metrics_holder 1\n"),
        "the figures are still exported"
    );
    server.stop().await;
}
