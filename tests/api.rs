//! The gRPC service end to end: a real server on `127.0.0.1:0` over its own `redis-server`, real
//! tonic clients with the development tokens.

mod support {
    pub mod api;
    pub mod app;
    pub mod redis_server;
}

use std::time::{Duration, Instant};

use callrouter::api::pb;
use support::api::TestServer;
use tonic::Code;
use tonic_types::StatusExt;

/// A Touraine Logement building in Tours, from the demo registry: (number, street, postcode, sector).
fn tours_building() -> (String, String, String, String) {
    let f = support::api::tours_building();
    (
        f[3].to_owned(),
        f[4].to_owned(),
        f[5].to_owned(),
        f[2].to_owned(),
    )
}

fn leak_call(call_id: &str) -> pb::RouteCallRequest {
    let (number, street, postcode, _) = tours_building();
    pb::RouteCallRequest {
        call_id: call_id.to_owned(),
        caller_number: "+33 2 47 00 00 00".to_owned(),
        address: Some(pb::Address {
            street_number: number,
            street,
            postcode,
            ..Default::default()
        }),
        issue_type: "technical.plumbing.leak".to_owned(),
        ..Default::default()
    }
}

async fn next_event(stream: &mut tonic::Streaming<pb::TicketEvent>) -> pb::TicketEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("stream ok")
        .expect("stream open")
}

fn field_of(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_full_day_of_a_call() {
    let server = TestServer::start().await;
    let mut telephony = server.routing(Some("telephony-ivr"));
    let mut agent = server.desk(Some("tl-agent-1"));
    let (_, _, _, sector) = tours_building();
    let technical = format!("touraine-logement.technical.{sector}");

    let routed = telephony
        .route_call(leak_call("day-1"))
        .await
        .expect("route")
        .into_inner();
    let decision = routed.decision.expect("decision");
    assert_eq!(decision.cooperator_id, "touraine-logement");
    assert_eq!(decision.team_id, technical);
    assert_eq!(
        decision.address_match.as_ref().map(|m| m.level),
        Some(pb::MatchLevel::Building as i32)
    );
    assert!(routed.queued && !routed.duplicate);
    assert_eq!(routed.queue_position, 1);
    assert!(routed.estimated_wait_seconds > 0);
    let ticket = routed.ticket.expect("ticket");
    assert_eq!(ticket.state, pb::TicketState::Queued as i32);
    assert!(ticket.sla_due_at.is_some());

    let mut watch = agent
        .watch_tickets(pb::WatchTicketsRequest {
            team_ids: vec![technical.clone()],
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let snapshot = next_event(&mut watch).await;
    assert_eq!(snapshot.kind, "snapshot");
    assert_eq!(
        snapshot.ticket.as_ref().map(|t| t.ticket_id.clone()),
        Some(ticket.ticket_id.clone())
    );

    let claimed = agent
        .claim_next_ticket(pb::ClaimNextTicketRequest {
            team_ids: vec![],
            lease_seconds: 60,
        })
        .await
        .expect("claim")
        .into_inner()
        .ticket
        .expect("a ticket waits");
    assert_eq!(claimed.ticket_id, ticket.ticket_id);
    assert_eq!(claimed.agent_id, "tl-agent-1");
    let event = next_event(&mut watch).await;
    assert_eq!(
        (
            event.kind.as_str(),
            event.ticket.as_ref().map(|t| t.agent_id.as_str())
        ),
        ("claimed", Some("tl-agent-1"))
    );
    assert!(
        event
            .position
            .starts_with(&format!("touraine-logement/{technical}@"))
    );

    let accepted = agent
        .accept_ticket(pb::TicketActionRequest {
            ticket_id: claimed.ticket_id.clone(),
            lease_token: claimed.lease_token,
            lease_seconds: 0,
        })
        .await
        .expect("accept")
        .into_inner();
    assert_eq!(accepted.state, pb::TicketState::InProgress as i32);
    assert_eq!(next_event(&mut watch).await.kind, "accepted");

    let transferred = agent
        .transfer_ticket(pb::TransferTicketRequest {
            ticket_id: claimed.ticket_id.clone(),
            lease_token: claimed.lease_token,
            team_id: "touraine-logement.front-desk".to_owned(),
            ..Default::default()
        })
        .await
        .expect("transfer")
        .into_inner();
    assert_eq!(
        (transferred.state, transferred.team_id.as_str()),
        (
            pb::TicketState::Queued as i32,
            "touraine-logement.front-desk"
        )
    );
    assert_eq!(
        transferred.ticket_id, ticket.ticket_id,
        "same ticket, new queue"
    );
    assert_eq!(next_event(&mut watch).await.kind, "transferred_out");

    let again = agent
        .claim_next_ticket(pb::ClaimNextTicketRequest {
            team_ids: vec!["touraine-logement.front-desk".to_owned()],
            lease_seconds: 60,
        })
        .await
        .expect("claim")
        .into_inner()
        .ticket
        .expect("the transferred ticket");
    assert_eq!(again.ticket_id, ticket.ticket_id);
    assert!(again.lease_token > claimed.lease_token);
    let done = agent
        .complete_ticket(pb::CompleteTicketRequest {
            ticket_id: again.ticket_id.clone(),
            lease_token: again.lease_token,
            resolution: "plumber-sent".to_owned(),
        })
        .await
        .expect("complete")
        .into_inner();
    assert_eq!(done.state, pb::TicketState::Completed as i32);
    let fetched = agent
        .get_ticket(pb::GetTicketRequest {
            ticket_id: ticket.ticket_id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        (fetched.state, fetched.resolution.as_str()),
        (pb::TicketState::Completed as i32, "plumber-sent")
    );

    let retry = telephony
        .route_call(leak_call("day-1"))
        .await
        .expect("retry")
        .into_inner();
    assert!(retry.duplicate);
    assert_eq!(
        retry.ticket.map(|t| (t.ticket_id, t.state)),
        Some((ticket.ticket_id.clone(), pb::TicketState::Completed as i32))
    );

    let explained = telephony
        .explain_route(leak_call("day-2"))
        .await
        .expect("explain")
        .into_inner();
    assert_eq!(explained.team_id, technical);
    let listed = agent
        .list_tickets(pb::ListTicketsRequest {
            team_id: technical.clone(),
            limit: 0,
        })
        .await
        .expect("list")
        .into_inner();
    assert!(listed.tickets.is_empty(), "explain queues nothing");

    // A desk that reconnects resumes after the last position it saw: no snapshot, only what came
    // after (the transfer, then nothing until the next change).
    let mut resumed = agent
        .watch_tickets(pb::WatchTicketsRequest {
            team_ids: vec![technical.clone()],
            resume_from: [(
                format!("touraine-logement/{technical}"),
                event
                    .position
                    .rsplit_once('@')
                    .map(|(_, id)| id.to_owned())
                    .unwrap_or_default(),
            )]
            .into_iter()
            .collect(),
        })
        .await
        .expect("resume")
        .into_inner();
    let first = next_event(&mut resumed).await;
    assert_eq!(
        first.kind, "accepted",
        "resumes right after the claim it had seen"
    );
    assert_eq!(next_event(&mut resumed).await.kind, "transferred_out");
    let bad = agent
        .watch_tickets(pb::WatchTicketsRequest {
            team_ids: vec![technical.clone()],
            resume_from: [(
                format!("touraine-logement/{technical}"),
                "yesterday".to_owned(),
            )]
            .into_iter()
            .collect(),
        })
        .await
        .expect("the stream opens")
        .into_inner()
        .message()
        .await
        .expect_err("a malformed position is refused");
    assert_eq!(bad.code(), Code::InvalidArgument);

    drop(watch);
    drop(resumed);
    server.stop().await;
}

#[tokio::test]
async fn each_error_has_its_code() {
    let server = TestServer::start().await;
    let mut telephony = server.routing(Some("telephony-ivr"));

    let mut no_call_id = leak_call("");
    no_call_id.call_id.clear();
    let status = telephony
        .route_call(no_call_id)
        .await
        .expect_err("empty call_id");
    assert_eq!(
        (status.code(), field_of(&status).as_str()),
        (Code::InvalidArgument, "call_id")
    );

    let mut unknown = leak_call("e-1");
    unknown.issue_type = "technical.unicorn".to_owned();
    let status = telephony
        .route_call(unknown)
        .await
        .expect_err("unknown issue type");
    assert_eq!(
        (status.code(), field_of(&status).as_str()),
        (Code::InvalidArgument, "issue_type")
    );

    let mut long = leak_call("e-2");
    long.caller_number = "0".repeat(300);
    let status = telephony
        .route_call(long)
        .await
        .expect_err("oversized field");
    assert_eq!(
        (status.code(), field_of(&status).as_str()),
        (Code::InvalidArgument, "caller_number")
    );

    let mut huge = leak_call("e-3");
    huge.description = "x".repeat(400 * 1024);
    let status = telephony
        .route_call(huge)
        .await
        .expect_err("oversized message");
    assert!(
        matches!(
            status.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument
        ),
        "{status:?}"
    );

    let mut agent = server.desk(Some("tl-agent-1"));
    for lease in [0, 86_400] {
        let status = agent
            .claim_next_ticket(pb::ClaimNextTicketRequest {
                team_ids: vec![],
                lease_seconds: lease,
            })
            .await
            .expect_err("bad lease");
        assert_eq!(
            (status.code(), field_of(&status).as_str()),
            (Code::InvalidArgument, "lease_seconds"),
            "lease {lease}"
        );
    }

    let status = server
        .routing(None)
        .route_call(leak_call("e-4"))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = support::api::TestServer::raw_bearer("not-a-token");
    let mut forged = callrouter::api::pb::call_routing_client::CallRoutingClient::with_interceptor(
        server.channel.clone(),
        status,
    );
    assert_eq!(
        forged
            .route_call(leak_call("e-5"))
            .await
            .expect_err("bad token")
            .code(),
        Code::Unauthenticated
    );

    let status = server
        .routing(Some("tl-agent-1"))
        .route_call(leak_call("e-6"))
        .await
        .expect_err("agents do not route");
    assert_eq!(status.code(), Code::PermissionDenied);

    let ticket = telephony
        .route_call(leak_call("e-7"))
        .await
        .expect("route")
        .into_inner()
        .ticket
        .expect("ticket");
    let status = server
        .desk(Some("lb-agent-1"))
        .get_ticket(pb::GetTicketRequest {
            ticket_id: ticket.ticket_id.clone(),
        })
        .await
        .expect_err("other cooperator");
    assert_eq!(status.code(), Code::NotFound);

    let claimed = agent
        .claim_next_ticket(pb::ClaimNextTicketRequest {
            team_ids: vec![],
            lease_seconds: 60,
        })
        .await
        .expect("claim")
        .into_inner()
        .ticket
        .expect("ticket");
    let status = agent
        .complete_ticket(pb::CompleteTicketRequest {
            ticket_id: claimed.ticket_id.clone(),
            lease_token: claimed.lease_token + 7,
            resolution: "x".to_owned(),
        })
        .await
        .expect_err("stale token");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = agent
        .complete_ticket(pb::CompleteTicketRequest {
            ticket_id: claimed.ticket_id.clone(),
            lease_token: 0,
            resolution: "x".to_owned(),
        })
        .await
        .expect_err("no token");
    assert_eq!(
        (status.code(), field_of(&status).as_str()),
        (Code::InvalidArgument, "lease_token")
    );
    let status = agent
        .transfer_ticket(pb::TransferTicketRequest {
            ticket_id: claimed.ticket_id.clone(),
            lease_token: claimed.lease_token,
            team_id: "nowhere".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("unknown team");
    assert_eq!(
        (status.code(), field_of(&status).as_str()),
        (Code::InvalidArgument, "team_id")
    );
    let status = agent
        .transfer_ticket(pb::TransferTicketRequest {
            ticket_id: claimed.ticket_id.clone(),
            lease_token: claimed.lease_token,
            team_id: "lb-habitat.front-desk".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("another cooperator's team");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = server
        .routing(Some("telephony-ivr"))
        .cancel_call(pb::CancelCallRequest {
            call_id: "e-7".to_owned(),
            ticket_id: claimed.ticket_id.clone(),
        })
        .await
        .expect_err("picked up");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let back = agent
        .transfer_ticket(pb::TransferTicketRequest {
            ticket_id: claimed.ticket_id.clone(),
            lease_token: claimed.lease_token,
            team_id: "platform.triage".to_owned(),
            ..Default::default()
        })
        .await
        .expect("any agent may send a call back to triage")
        .into_inner();
    assert_eq!(
        (back.team_id.as_str(), back.cooperator_id.as_str()),
        ("platform.triage", "")
    );
    assert_eq!(back.transferred_from, claimed.ticket_id);
    server.stop().await;
}

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

#[tokio::test]
async fn reload_swaps_the_configuration_or_refuses_a_broken_one() {
    let dir = std::env::temp_dir().join(format!("callrouter-reload-{}", std::process::id()));
    for sub in ["config", "data"] {
        std::fs::create_dir_all(dir.join(sub)).expect("dirs");
    }
    for f in [
        "config/callrouter.toml",
        "config/issue-types.toml",
        "config/rules.toml",
        "data/communes.json",
        "data/epci.json",
        "data/buildings.csv",
        "data/tenants.csv",
    ] {
        std::fs::copy(f, dir.join(f)).expect("copy");
    }
    let server = TestServer::start_with(Some(dir.join("config/callrouter.toml"))).await;
    let mut ops = server.ops(Some("ops-1"));
    let reloaded = ops
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .expect("reload")
        .into_inner();
    assert_eq!(reloaded.generation, 2);

    let rules = dir.join("config/rules.toml");
    let text = std::fs::read_to_string(&rules).expect("rules");
    std::fs::write(
        &rules,
        text.replace("team = \"contractor.roofs\"", "team = \"contractor.roofz\""),
    )
    .expect("break");
    let status = ops
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .expect_err("broken");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("rules.toml") && status.message().contains("contractor.roofz"),
        "{}",
        status.message()
    );
    let still = server
        .routing(Some("telephony-ivr"))
        .route_call(leak_call("after-reload"))
        .await
        .expect("still serving")
        .into_inner();
    assert!(still.queued);
    let status = server
        .ops(Some("tl-sup-1"))
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .expect_err("operators only");
    assert_eq!(status.code(), Code::PermissionDenied);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn triage_hands_a_call_to_a_cooperator_and_stats_follow() {
    let server = TestServer::start().await;
    let mut telephony = server.routing(Some("telephony-ivr"));
    let unlocated = pb::RouteCallRequest {
        call_id: "lost-1".to_owned(),
        address: Some(pb::Address {
            city: "Guingamp".to_owned(),
            ..Default::default()
        }),
        issue_type: "technical.door_entry".to_owned(),
        ..Default::default()
    };
    let routed = telephony
        .route_call(unlocated)
        .await
        .expect("route")
        .into_inner();
    assert_eq!(
        routed.decision.as_ref().map(|d| d.team_id.as_str()),
        Some("platform.triage")
    );
    let mut triage = server.desk(Some("triage-1"));
    let held = triage
        .claim_next_ticket(pb::ClaimNextTicketRequest {
            team_ids: vec![],
            lease_seconds: 60,
        })
        .await
        .expect("claim")
        .into_inner()
        .ticket
        .expect("the unlocated call");
    let handed = triage
        .transfer_ticket(pb::TransferTicketRequest {
            ticket_id: held.ticket_id.clone(),
            lease_token: held.lease_token,
            team_id: "guingamp-habitat.front-desk".to_owned(),
            ..Default::default()
        })
        .await
        .expect("triage transfers to any cooperator")
        .into_inner();
    assert_eq!(handed.cooperator_id, "guingamp-habitat");
    assert_eq!(handed.transferred_from, held.ticket_id);
    let mut gh = server.desk(Some("gh-agent-1"));
    let got = gh
        .get_ticket(pb::GetTicketRequest {
            ticket_id: handed.ticket_id.clone(),
        })
        .await
        .expect("the cooperator sees it")
        .into_inner();
    assert_eq!(got.call_id, "lost-1");

    gh.set_agent_status(pb::SetAgentStatusRequest {
        presence: pb::Presence::Available as i32,
    })
    .await
    .expect("presence");
    let stats = server
        .ops(Some("gh-sup-1"))
        .get_queue_stats(pb::GetQueueStatsRequest {
            team_ids: vec!["guingamp-habitat.front-desk".to_owned()],
        })
        .await
        .expect("stats")
        .into_inner();
    let depth: u64 = stats.queues.iter().map(|q| q.depth).sum();
    assert_eq!(depth, 1);
    let team = stats.teams.first().expect("team counts");
    assert_eq!(team.agents_by_presence.get("AVAILABLE"), Some(&1));
    let agents = server
        .ops(Some("gh-sup-1"))
        .list_agents(pb::ListAgentsRequest {})
        .await
        .expect("agents")
        .into_inner();
    assert_eq!(
        agents
            .agents
            .iter()
            .map(|a| a.agent_id.as_str())
            .collect::<Vec<_>>(),
        ["gh-agent-1"]
    );
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
