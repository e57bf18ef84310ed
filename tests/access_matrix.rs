//! The access-control matrix: every principal of the demo deployment — each role, of the ticket's
//! own cooperator and of another, the platform's staff, and no token at all — against every RPC,
//! on a Touraine Logement ticket held by a Touraine Logement agent.

mod support {
    pub mod api;
    pub mod redis_server;
}

use callrouter::api::pb;
use support::api::TestServer;
use tonic::Code;

const TL_TECH: &str = "touraine-logement.technical.tl-tours";

const PRINCIPALS: [Option<&str>; 10] = [
    None,
    Some("telephony-ivr"),
    Some("ops-1"),
    Some("tl-agent-1"),
    Some("tl-sup-1"),
    Some("lb-agent-1"),
    Some("lb-sup-1"),
    Some("triage-1"),
    Some("platform-sup-1"),
    Some("lifts-1"),
];

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

/// What each principal should get from an RPC, by the remit of its role.
fn expected(rpc: &str, who: Option<&str>) -> Code {
    let Some(who) = who else {
        return Code::Unauthenticated;
    };
    let desk = !matches!(who, "telephony-ivr" | "ops-1");
    let pd = Code::PermissionDenied;
    match rpc {
        "RouteCall" | "CancelCall" => {
            if who == "telephony-ivr" {
                Code::Ok
            } else {
                pd
            }
        }
        "ExplainRoute" => {
            if matches!(who, "telephony-ivr" | "ops-1") {
                Code::Ok
            } else {
                pd
            }
        }
        "ClaimAny" | "SetAgentStatus" => {
            if desk {
                Code::Ok
            } else {
                pd
            }
        }
        "ClaimTeam" => {
            if who == "tl-agent-1" {
                Code::Ok
            } else {
                pd
            }
        }
        "GetTicket" => match who {
            "tl-agent-1" | "tl-sup-1" => Code::Ok,
            _ if desk => Code::NotFound,
            _ => pd,
        },
        "Accept" | "Complete" | "Release" | "Transfer" => match who {
            "tl-agent-1" => Code::Ok,
            "tl-sup-1" | "triage-1" | "platform-sup-1" | "lifts-1" => Code::FailedPrecondition,
            _ if desk => Code::NotFound,
            _ => pd,
        },
        "ListTickets" | "WatchTickets" => {
            if matches!(who, "tl-agent-1" | "tl-sup-1") {
                Code::Ok
            } else {
                pd
            }
        }
        "GetQueueStats" => {
            if matches!(who, "ops-1" | "tl-sup-1") {
                Code::Ok
            } else {
                pd
            }
        }
        "ListAgents" => {
            if matches!(who, "ops-1" | "tl-sup-1" | "lb-sup-1" | "platform-sup-1") {
                Code::Ok
            } else {
                pd
            }
        }
        "ReloadConfig" => {
            if who == "ops-1" {
                Code::Ok
            } else {
                pd
            }
        }
        other => panic!("unknown rpc {other}"),
    }
}

/// Every RPC of the contract; ClaimNextTicket twice: for all the caller's teams, and for one team.
const RPCS: [&str; 16] = [
    "RouteCall",
    "ExplainRoute",
    "CancelCall",
    "ClaimAny",
    "ClaimTeam",
    "Accept",
    "Complete",
    "Release",
    "Transfer",
    "GetTicket",
    "ListTickets",
    "WatchTickets",
    "SetAgentStatus",
    "GetQueueStats",
    "ListAgents",
    "ReloadConfig",
];

#[tokio::test]
async fn every_role_against_every_rpc() {
    let server = TestServer::start().await;
    let mut n = 0;
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for rpc in &RPCS {
        for who in PRINCIPALS {
            let held = matches!(
                *rpc,
                "Accept" | "Complete" | "Release" | "Transfer" | "GetTicket"
            );
            let (id, token) = if matches!(*rpc, "CancelCall") || held {
                ticket(&server, &mut n, held).await
            } else {
                (String::new(), 0)
            };
            let (mut routing, mut desk, mut ops) =
                (server.routing(who), server.desk(who), server.ops(who));
            n += 1;
            let got = match *rpc {
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
            cells += 1;
            let want = expected(rpc, who);
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
    }
    assert_eq!(cells, RPCS.len() * PRINCIPALS.len());
    assert!(
        mismatches.is_empty(),
        "access matrix mismatches:\n{}",
        mismatches.join("\n")
    );
    server.stop().await;
}
