//! The gRPC service end to end: a real server on `127.0.0.1:0` over the in-memory store, real tonic
//! clients with the development tokens. What the wire adds to the use-cases: the contract's
//! messages, streams and their positions, codes. One behaviour per test; what only Redis does is in
//! `api_redis.rs`, the error codes in `api_errors.rs`.

mod support {
    pub mod api;
    pub mod app;
    pub mod ports;
    pub mod redis_server;
}

use callrouter::api::pb;
use support::api::{TestServer, leak_call, next_event};
use support::app::TL_TECH;
use tonic::Code;

const TL_FRONT: &str = "touraine-logement.front-desk";

/// Routes a leak call as the telephony platform: the queued ticket.
async fn routed(server: &TestServer, call_id: &str) -> pb::Ticket {
    server
        .routing(Some("telephony-ivr"))
        .route_call(leak_call(call_id))
        .await
        .expect("route")
        .into_inner()
        .ticket
        .expect("ticket")
}

fn watch_request(resume: Option<(&str, &str)>) -> pb::WatchTicketsRequest {
    pb::WatchTicketsRequest {
        team_ids: vec![TL_TECH.to_owned()],
        resume_from: resume
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

#[tokio::test]
async fn route_call_answers_with_the_decision_and_the_queued_ticket() {
    let server = TestServer::start().await;
    let routed = server
        .routing(Some("telephony-ivr"))
        .route_call(leak_call("day-1"))
        .await
        .expect("route")
        .into_inner();
    let decision = routed.decision.expect("decision");
    assert_eq!(decision.cooperator_id, "touraine-logement");
    assert_eq!(decision.team_id, TL_TECH);
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
    server.stop().await;
}

/// Answers that become ready together leave a connection together (src/api/gather.rs): each call
/// of many at once on one connection gets its own answer, whole, on both of the runtime's threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_at_once_on_one_connection_each_get_their_own_answer() {
    let server = TestServer::start().await;
    let calls: Vec<_> = (0..300)
        .map(|n| {
            let mut routing = server.routing(Some("telephony-ivr"));
            tokio::spawn(async move {
                let call_id = format!("together-{n}");
                let routed = routing
                    .route_call(leak_call(&call_id))
                    .await
                    .expect("route")
                    .into_inner();
                (call_id, routed)
            })
        })
        .collect();
    let mut tickets = std::collections::HashSet::new();
    for call in calls {
        let (call_id, routed) = call.await.expect("joined");
        let ticket = routed.ticket.expect("ticket");
        assert!(routed.queued && !routed.duplicate, "{call_id}");
        assert_eq!(ticket.call_id, call_id);
        assert!(tickets.insert(ticket.ticket_id), "one ticket per call");
    }
    assert_eq!(tickets.len(), 300);
    server.stop().await;
}

#[tokio::test]
async fn a_retried_route_call_answers_duplicate_with_the_same_ticket() {
    let server = TestServer::start().await;
    let mut telephony = server.routing(Some("telephony-ivr"));
    let first = telephony
        .route_call(leak_call("day-1"))
        .await
        .expect("route")
        .into_inner();
    let retry = telephony
        .route_call(leak_call("day-1"))
        .await
        .expect("retry")
        .into_inner();
    assert!(retry.duplicate && retry.queued);
    assert_eq!(
        retry.ticket.map(|t| t.ticket_id),
        first.ticket.map(|t| t.ticket_id)
    );
    server.stop().await;
}

#[tokio::test]
async fn explain_route_decides_and_queues_nothing() {
    let server = TestServer::start().await;
    let explained = server
        .routing(Some("telephony-ivr"))
        .explain_route(leak_call("day-2"))
        .await
        .expect("explain")
        .into_inner();
    assert_eq!(explained.team_id, TL_TECH);
    assert!(!explained.reasons.is_empty());
    let listed = server
        .desk(Some("tl-agent-1"))
        .list_tickets(pb::ListTicketsRequest {
            team_id: TL_TECH.to_owned(),
            limit: 0,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(listed.tickets.is_empty(), "explain queues nothing");
    server.stop().await;
}

#[tokio::test]
async fn an_agent_works_a_ticket_from_claim_to_completion() {
    let server = TestServer::start().await;
    let ticket = routed(&server, "day-1").await;
    let mut agent = server.desk(Some("tl-agent-1"));
    let claimed = support::api::claim(&mut agent, vec![]).await;
    assert_eq!(
        (claimed.ticket_id.as_str(), claimed.agent_id.as_str()),
        (ticket.ticket_id.as_str(), "tl-agent-1")
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
    let transferred = agent
        .transfer_ticket(pb::TransferTicketRequest {
            ticket_id: claimed.ticket_id.clone(),
            lease_token: claimed.lease_token,
            team_id: TL_FRONT.to_owned(),
            ..Default::default()
        })
        .await
        .expect("transfer")
        .into_inner();
    assert_eq!(
        (transferred.ticket_id.as_str(), transferred.team_id.as_str()),
        (ticket.ticket_id.as_str(), TL_FRONT),
        "same ticket, new queue"
    );
    let again = support::api::claim(&mut agent, vec![TL_FRONT.to_owned()]).await;
    assert!(again.lease_token > claimed.lease_token);
    let done = support::api::complete(&mut agent, &again, "plumber-sent").await;
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
    // Why the call reached the team travels with the ticket.
    let decision = fetched.decision.expect("the recorded decision");
    assert_eq!(
        (decision.rule_id.as_str(), decision.team_id.as_str()),
        ("technical", TL_TECH)
    );
    assert!(!decision.reasons.is_empty());
    assert_eq!(
        decision.address_match.map(|m| m.level),
        Some(pb::MatchLevel::Building as i32)
    );
    assert_eq!(
        ticket.decision.map(|d| d.rule_id),
        Some("technical".to_owned())
    );
    // The call as reported, for the agent: the number to call back; the claim carries it too.
    assert_eq!(fetched.caller_number, leak_call("day-1").caller_number);
    assert_eq!(claimed.caller_number, fetched.caller_number);
    // What happened, oldest first, with the store's times.
    let history: Vec<&str> = fetched.history.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(history.len(), 6, "{history:?}");
    assert_eq!(history[0], format!("created in {TL_TECH}"));
    assert!(
        history[1].starts_with("claimed by tl-agent-1"),
        "{history:?}"
    );
    assert_eq!(history[2], "accepted by tl-agent-1");
    assert!(
        history[3].starts_with("transferred by tl-agent-1"),
        "{history:?}"
    );
    assert_eq!(history[5], "completed by tl-agent-1: plumber-sent");
    let times: Vec<i64> = fetched
        .history
        .iter()
        .map(|e| e.at.expect("a time").seconds)
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(claimed.history.is_empty(), "history is GetTicket's only");
    server.stop().await;
}

/// A desk's "done, next": ClaimNextTicket with `complete` completes the held ticket and claims
/// the next in one call; a completion the caller may not make claims nothing.
#[tokio::test]
async fn done_next_completes_the_held_ticket_and_claims_the_next() {
    let server = TestServer::start().await;
    for call in ["next-1", "next-2", "next-3"] {
        routed(&server, call).await;
    }
    let mut agent = server.desk(Some("tl-agent-1"));
    let first = support::api::claim(&mut agent, vec![]).await;
    let done_next = |held: &pb::Ticket, resolution: &str| pb::ClaimNextTicketRequest {
        lease_seconds: 60,
        complete: Some(pb::CompleteTicketRequest {
            ticket_id: held.ticket_id.clone(),
            lease_token: held.lease_token,
            resolution: resolution.to_owned(),
        }),
        ..Default::default()
    };
    let answer = agent
        .claim_next_ticket(done_next(&first, "plumber-sent"))
        .await
        .expect("done, next")
        .into_inner();
    let completed = answer.completed.expect("the completed ticket");
    assert_eq!(
        (completed.ticket_id.as_str(), completed.state),
        (first.ticket_id.as_str(), pb::TicketState::Completed as i32)
    );
    assert_eq!(completed.resolution, "plumber-sent");
    let second = answer.ticket.expect("the next ticket");
    assert_ne!(second.call_id, first.call_id);
    assert_eq!(second.agent_id, "tl-agent-1");
    assert!(!second.issue_label.is_empty(), "labelled for the desk");
    // Another landlord's agent cannot complete it (nor learn that it exists), and claims nothing
    // by trying.
    let status = server
        .desk(Some("lb-agent-1"))
        .claim_next_ticket(done_next(&second, "x"))
        .await
        .expect_err("another landlord's ticket");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // Without a resolution, nothing happens either.
    let status = agent
        .claim_next_ticket(done_next(&second, ""))
        .await
        .expect_err("no resolution");
    assert_eq!(status.code(), Code::InvalidArgument);
    let still = agent
        .get_ticket(pb::GetTicketRequest {
            ticket_id: second.ticket_id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(still.state, pb::TicketState::Reserved as i32);
    // The last ones: the third comes with the second's completion, nothing with the third's.
    let third = agent
        .claim_next_ticket(done_next(&second, "fixed"))
        .await
        .expect("done, next")
        .into_inner()
        .ticket
        .expect("the third");
    let mut calls = [&first, &second, &third].map(|t| t.call_id.as_str());
    calls.sort_unstable();
    assert_eq!(
        calls,
        ["next-1", "next-2", "next-3"],
        "each call worked once"
    );
    let last = agent
        .claim_next_ticket(done_next(&third, "fixed"))
        .await
        .expect("done, nothing next")
        .into_inner();
    assert_eq!(
        last.completed.map(|t| t.state),
        Some(pb::TicketState::Completed as i32)
    );
    assert!(last.ticket.is_none());
    // Timed in the store's figures as one operation, for the three calls that reached it.
    let metrics = server.admin_get("/metrics").await;
    assert!(
        metrics
            .contains("callrouter_store_operation_seconds_count{operation=\"complete_claim\"} 3"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_ticket_keeps_what_the_caller_said_for_the_agent() {
    let server = TestServer::start().await;
    let mut call = leak_call("said-1");
    call.description = "L'eau coule du plafond de la salle de bains depuis ce matin".to_owned();
    let routed = server
        .routing(Some("telephony-ivr"))
        .route_call(call.clone())
        .await
        .expect("route")
        .into_inner();
    let ticket = routed.ticket.expect("ticket");
    assert_eq!(
        (ticket.caller_number.as_str(), ticket.description.as_str()),
        ("", ""),
        "RouteCall does not echo what the platform sent"
    );
    let mut agent = server.desk(Some("tl-agent-1"));
    let claimed = support::api::claim(&mut agent, vec![]).await;
    assert_eq!(claimed.description, call.description);
    assert_eq!(
        (claimed.issue_label.as_str(), ticket.issue_label.as_str()),
        ("Fuite d'eau", ""),
        "the label is the desks'"
    );
    assert_eq!(claimed.caller_number, call.caller_number);
    // Another cooperator's agent is told the ticket does not exist, not what the caller said.
    let hidden = server
        .desk(Some("ah-agent-1"))
        .get_ticket(pb::GetTicketRequest {
            ticket_id: ticket.ticket_id.clone(),
        })
        .await
        .expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn a_watch_sends_a_snapshot_then_each_change_with_its_position() {
    let server = TestServer::start().await;
    let ticket = routed(&server, "day-1").await;
    let mut agent = server.desk(Some("tl-agent-1"));
    let mut watch = agent
        .watch_tickets(watch_request(None))
        .await
        .expect("watch")
        .into_inner();
    let snapshot = next_event(&mut watch).await;
    assert_eq!(snapshot.kind, "snapshot");
    assert_eq!(
        snapshot.ticket.map(|t| t.ticket_id),
        Some(ticket.ticket_id.clone())
    );
    support::api::claim(&mut agent, vec![]).await;
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
            .starts_with(&format!("touraine-logement/{TL_TECH}@"))
    );
    // The event carries what a desk shows, so it needs no GetTicket.
    let shown = event.ticket.expect("the ticket");
    assert_eq!(shown.cooperator_id, "touraine-logement");
    assert_eq!(shown.issue_type, "technical.plumbing.leak");
    assert_eq!(shown.issue_label, "Fuite d'eau", "the taxonomy's label");
    assert_eq!(shown.building_id, ticket.building_id);
    assert_eq!(
        (shown.created_at, shown.sla_due_at),
        (ticket.created_at, ticket.sla_due_at)
    );
    assert_eq!(shown.incident_calls, 1);
    assert!(!shown.address.is_empty(), "the address as routed");
    server.stop().await;
}

#[tokio::test]
async fn a_watch_resumes_after_a_position() {
    let server = TestServer::start().await;
    let mut telephony = server.routing(Some("telephony-ivr"));
    telephony
        .route_call(leak_call("day-1"))
        .await
        .expect("route");
    let mut agent = server.desk(Some("tl-agent-1"));
    let mut watch = agent
        .watch_tickets(watch_request(None))
        .await
        .expect("watch")
        .into_inner();
    next_event(&mut watch).await;
    let held = support::api::claim(&mut agent, vec![]).await;
    let claimed = next_event(&mut watch).await;
    drop(watch);
    support::api::complete(&mut agent, &held, "done").await;
    // A desk that reconnects resumes after the last position it saw, given back exactly as
    // received: no snapshot, only what came after.
    let feed = format!("touraine-logement/{TL_TECH}");
    let mut resumed = agent
        .watch_tickets(watch_request(Some((&feed, &claimed.position))))
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(next_event(&mut resumed).await.kind, "completed");
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_resume_position_ends_the_watch_with_invalid_argument() {
    let server = TestServer::start().await;
    let feed = format!("touraine-logement/{TL_TECH}");
    let refused = server
        .desk(Some("tl-agent-1"))
        .watch_tickets(watch_request(Some((&feed, "yesterday"))))
        .await
        .expect("the stream opens")
        .into_inner()
        .message()
        .await
        .expect_err("a malformed position is refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(support::api::field_of(&refused), "resume_from");
    server.stop().await;
}

#[tokio::test]
async fn reload_swaps_the_configuration_or_refuses_a_broken_one() {
    let config = support::app::demo_copy("api-reload");
    let dir = config
        .parent()
        .and_then(|p| p.parent())
        .expect("the copy's directory")
        .to_path_buf();
    let server = TestServer::start_with(Some(config.clone())).await;
    let mut ops = server.ops(Some("ops-1"));
    let reloaded = ops
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .expect("reload")
        .into_inner();
    assert_eq!(reloaded.generation, 2);

    let rules = config.with_file_name("rules.toml");
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
            ..Default::default()
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
