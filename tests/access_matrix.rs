//! The access-control matrix end to end: every principal of the demo deployment — each role, of
//! the ticket's own cooperator and of another, the platform's staff, and no token at all — against
//! every RPC over gRPC, held to the table of `support/access.rs` (which `tests/app_policy.rs` holds
//! the use-cases to, without a server).

mod support {
    pub mod access;
    pub mod api;
    pub mod app;
    pub mod ports;
    pub mod redis_server;
}

use callrouter::api::pb;
use support::access::{Expect, cells, needs_held_ticket};
use support::api::TestServer;
use support::app::TL_TECH;
use tonic::Code;

fn call(id: &str) -> pb::RouteCallRequest {
    let f = support::api::tours_building();
    pb::RouteCallRequest {
        call_id: id.to_owned(),
        address: Some(pb::Address {
            street_number: f[3].to_owned(),
            street: f[4].to_owned(),
            postcode: f[5].to_owned(),
            ..Default::default()
        }),
        issue_type: "technical.plumbing.leak".to_owned(),
        ..Default::default()
    }
}

/// A fresh Touraine ticket: (id, lease token of tl-agent-1 when `held`).
async fn ticket(server: &TestServer, n: &mut u32, held: bool) -> (String, u64) {
    *n += 1;
    let routed = server
        .routing(Some("telephony-ivr"))
        .route_call(call(&format!("m-{n}")))
        .await
        .expect("route")
        .into_inner();
    let id = routed.ticket.expect("ticket").ticket_id;
    if !held {
        return (id, 0);
    }
    let mut desk = server.desk(Some("tl-agent-1"));
    loop {
        let t = desk
            .claim_next_ticket(pb::ClaimNextTicketRequest {
                team_ids: vec![TL_TECH.to_owned()],
                lease_seconds: 600,
                ..Default::default()
            })
            .await
            .expect("claim")
            .into_inner()
            .ticket
            .expect("the fresh ticket waits");
        if t.ticket_id == id {
            return (id, t.lease_token);
        }
        // An older ticket left by an earlier cell: finish it.
        desk.complete_ticket(pb::CompleteTicketRequest {
            ticket_id: t.ticket_id,
            lease_token: t.lease_token,
            resolution: "cleanup".to_owned(),
        })
        .await
        .expect("cleanup");
    }
}

/// Claims as the caller and, when a ticket came, releases it so the next cells find it queued.
async fn claim_and_release(desk: &mut support::api::Desk, team_ids: Vec<String>) -> Code {
    let result = desk
        .claim_next_ticket(pb::ClaimNextTicketRequest {
            team_ids,
            lease_seconds: 60,
            ..Default::default()
        })
        .await;
    if let Ok(response) = &result
        && let Some(t) = &response.get_ref().ticket
    {
        let hold = pb::TicketActionRequest {
            ticket_id: t.ticket_id.clone(),
            lease_token: t.lease_token,
            lease_seconds: 0,
        };
        desk.release_ticket(hold)
            .await
            .expect("the claimer releases");
    }
    code(result)
}

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// The gRPC code of an expected outcome.
fn code_of(expect: Expect) -> Code {
    match expect {
        Expect::Ok => Code::Ok,
        Expect::Unauthenticated => Code::Unauthenticated,
        Expect::Denied => Code::PermissionDenied,
        Expect::NotFound => Code::NotFound,
        Expect::NotHeld => Code::FailedPrecondition,
    }
}

#[tokio::test]
async fn every_role_against_every_rpc() {
    let server = TestServer::start().await;
    let mut n = 0;
    let mut mismatches = Vec::new();
    let mut done = 0;
    for (rpc, who, expect) in cells() {
        let held = needs_held_ticket(rpc);
        let (id, token) = if rpc == "CancelCall" || held {
            ticket(&server, &mut n, held).await
        } else {
            (String::new(), 0)
        };
        let (mut routing, mut desk, mut ops) =
            (server.routing(who), server.desk(who), server.ops(who));
        n += 1;
        let got = match rpc {
            "RouteCall" => code(routing.route_call(call(&format!("r-{n}"))).await),
            "ExplainRoute" => code(routing.explain_route(call("x")).await),
            "CancelCall" => code(
                routing
                    .cancel_call(pb::CancelCallRequest {
                        call_id: String::new(),
                        ticket_id: id.clone(),
                    })
                    .await,
            ),
            "ClaimAny" => claim_and_release(&mut desk, vec![]).await,
            "ClaimTeam" => claim_and_release(&mut desk, vec![TL_TECH.to_owned()]).await,
            "Accept" => code(
                desk.accept_ticket(pb::TicketActionRequest {
                    ticket_id: id.clone(),
                    lease_token: token,
                    lease_seconds: 0,
                })
                .await,
            ),
            "Complete" => code(
                desk.complete_ticket(pb::CompleteTicketRequest {
                    ticket_id: id.clone(),
                    lease_token: token,
                    resolution: "done".to_owned(),
                })
                .await,
            ),
            "Release" => code(
                desk.release_ticket(pb::TicketActionRequest {
                    ticket_id: id.clone(),
                    lease_token: token,
                    lease_seconds: 0,
                })
                .await,
            ),
            "Transfer" => code(
                desk.transfer_ticket(pb::TransferTicketRequest {
                    ticket_id: id.clone(),
                    lease_token: token,
                    team_id: "touraine-logement.front-desk".to_owned(),
                    ..Default::default()
                })
                .await,
            ),
            "GetTicket" => code(
                desk.get_ticket(pb::GetTicketRequest {
                    ticket_id: id.clone(),
                })
                .await,
            ),
            "ListTickets" => code(
                desk.list_tickets(pb::ListTicketsRequest {
                    team_id: TL_TECH.to_owned(),
                    limit: 10,
                    ..Default::default()
                })
                .await,
            ),
            "WatchTickets" => code(
                desk.watch_tickets(pb::WatchTicketsRequest {
                    team_ids: vec![TL_TECH.to_owned()],
                    ..Default::default()
                })
                .await,
            ),
            "SetAgentStatus" => code(
                desk.set_agent_status(pb::SetAgentStatusRequest {
                    presence: pb::Presence::Available as i32,
                })
                .await,
            ),
            "GetQueueStats" => code(
                ops.get_queue_stats(pb::GetQueueStatsRequest {
                    team_ids: vec![TL_TECH.to_owned()],
                })
                .await,
            ),
            "ListAgents" => code(ops.list_agents(pb::ListAgentsRequest {}).await),
            "ReloadConfig" => code(ops.reload_config(pb::ReloadConfigRequest {}).await),
            other => panic!("unknown rpc {other}"),
        };
        done += 1;
        let want = code_of(expect);
        if got != want {
            mismatches.push(format!(
                "{rpc:<14} {:<16} got {got:?}, expected {want:?}",
                who.unwrap_or("(no token)")
            ));
        }
        if held && got != Code::Ok && token != 0 {
            // Leave no held ticket behind: its holder completes it.
            let _ = server
                .desk(Some("tl-agent-1"))
                .complete_ticket(pb::CompleteTicketRequest {
                    ticket_id: id.clone(),
                    lease_token: token,
                    resolution: "cleanup".to_owned(),
                })
                .await;
        }
    }
    assert_eq!(done, 160);
    assert!(
        mismatches.is_empty(),
        "access matrix mismatches:\n{}",
        mismatches.join("\n")
    );
    server.stop().await;
}
