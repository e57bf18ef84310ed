//! Each error of the contract with its gRPC code, end to end over the in-memory store: a bad field
//! names itself in `BadRequest` details, tokens and roles are checked, another cooperator's ticket
//! does not exist, stale holds are refused. One code (or one field family) per test.

mod support {
    pub mod api;
    pub mod app;
    pub mod ports;
    pub mod redis_server;
}

use callrouter::api::pb;
use support::api::{Desk, TestServer, field_of, leak_call};
use tonic::Code;

/// A ticket routed and claimed by `tl-agent-1`.
async fn held(server: &TestServer, desk: &mut Desk, call_id: &str) -> pb::Ticket {
    server
        .routing(Some("telephony-ivr"))
        .route_call(leak_call(call_id))
        .await
        .expect("route");
    support::api::claim(desk, vec![]).await
}

fn transfer(ticket: &pb::Ticket, token: u64, team: &str) -> pb::TransferTicketRequest {
    pb::TransferTicketRequest {
        ticket_id: ticket.ticket_id.clone(),
        lease_token: token,
        team_id: team.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_route_fields_are_named() {
    let server = TestServer::start().await;
    let mut telephony = server.routing(Some("telephony-ivr"));
    let mut no_call_id = leak_call("");
    no_call_id.call_id.clear();
    let mut unknown = leak_call("e-1");
    unknown.issue_type = "technical.unicorn".to_owned();
    let mut long = leak_call("e-2");
    long.caller_number = "0".repeat(300);
    for (request, field) in [
        (no_call_id, "call_id"),
        (unknown, "issue_type"),
        (long, "caller_number"),
    ] {
        let status = telephony.route_call(request).await.expect_err(field);
        assert_eq!(
            (status.code(), field_of(&status).as_str()),
            (Code::InvalidArgument, field)
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_message_is_refused() {
    let server = TestServer::start().await;
    let mut huge = leak_call("e-3");
    huge.description = "x".repeat(400 * 1024);
    let status = server
        .routing(Some("telephony-ivr"))
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
    server.stop().await;
}

#[tokio::test]
async fn leases_out_of_range_are_refused() {
    let server = TestServer::start().await;
    let mut agent = server.desk(Some("tl-agent-1"));
    for lease in [0, 86_400] {
        let status = agent
            .claim_next_ticket(pb::ClaimNextTicketRequest {
                team_ids: vec![],
                lease_seconds: lease,
                ..Default::default()
            })
            .await
            .expect_err("bad lease");
        assert_eq!(
            (status.code(), field_of(&status).as_str()),
            (Code::InvalidArgument, "lease_seconds"),
            "lease {lease}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_unauthenticated() {
    let server = TestServer::start().await;
    let status = server
        .routing(None)
        .route_call(leak_call("e-4"))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut forged = pb::call_routing_client::CallRoutingClient::with_interceptor(
        server.channel.clone(),
        TestServer::raw_bearer("not-a-token"),
    );
    let status = forged
        .route_call(leak_call("e-5"))
        .await
        .expect_err("bad token");
    assert_eq!(status.code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn a_role_outside_its_remit_is_denied() {
    let server = TestServer::start().await;
    let status = server
        .routing(Some("tl-agent-1"))
        .route_call(leak_call("e-6"))
        .await
        .expect_err("agents do not route");
    assert_eq!(status.code(), Code::PermissionDenied);
    let mut agent = server.desk(Some("tl-agent-1"));
    let ticket = held(&server, &mut agent, "e-7").await;
    let status = agent
        .transfer_ticket(transfer(
            &ticket,
            ticket.lease_token,
            "lb-habitat.front-desk",
        ))
        .await
        .expect_err("another cooperator's team");
    assert_eq!(status.code(), Code::PermissionDenied);
    server.stop().await;
}

#[tokio::test]
async fn another_cooperators_ticket_is_not_found() {
    let server = TestServer::start().await;
    let ticket = server
        .routing(Some("telephony-ivr"))
        .route_call(leak_call("e-8"))
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
    server.stop().await;
}

#[tokio::test]
async fn holder_actions_name_their_bad_fields() {
    let server = TestServer::start().await;
    let mut agent = server.desk(Some("tl-agent-1"));
    let ticket = held(&server, &mut agent, "e-9").await;
    let status = agent
        .complete_ticket(pb::CompleteTicketRequest {
            ticket_id: ticket.ticket_id.clone(),
            lease_token: 0,
            resolution: "x".to_owned(),
        })
        .await
        .expect_err("no lease token");
    assert_eq!(
        (status.code(), field_of(&status).as_str()),
        (Code::InvalidArgument, "lease_token")
    );
    let status = agent
        .transfer_ticket(transfer(&ticket, ticket.lease_token, "nowhere"))
        .await
        .expect_err("unknown team");
    assert_eq!(
        (status.code(), field_of(&status).as_str()),
        (Code::InvalidArgument, "team_id")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_stale_hold_is_a_failed_precondition() {
    let server = TestServer::start().await;
    let mut agent = server.desk(Some("tl-agent-1"));
    let ticket = held(&server, &mut agent, "e-10").await;
    let status = agent
        .complete_ticket(pb::CompleteTicketRequest {
            ticket_id: ticket.ticket_id.clone(),
            lease_token: ticket.lease_token + 7,
            resolution: "x".to_owned(),
        })
        .await
        .expect_err("stale token");
    assert_eq!(status.code(), Code::FailedPrecondition);
    server.stop().await;
}

#[tokio::test]
async fn a_picked_up_call_cannot_be_cancelled() {
    let server = TestServer::start().await;
    let mut agent = server.desk(Some("tl-agent-1"));
    let ticket = held(&server, &mut agent, "e-11").await;
    let status = server
        .routing(Some("telephony-ivr"))
        .cancel_call(pb::CancelCallRequest {
            call_id: "e-11".to_owned(),
            ticket_id: ticket.ticket_id.clone(),
        })
        .await
        .expect_err("picked up");
    assert_eq!(status.code(), Code::FailedPrecondition);
    server.stop().await;
}

#[tokio::test]
async fn any_agent_may_send_a_call_back_to_triage() {
    let server = TestServer::start().await;
    let mut agent = server.desk(Some("tl-agent-1"));
    let ticket = held(&server, &mut agent, "e-12").await;
    let back = agent
        .transfer_ticket(transfer(&ticket, ticket.lease_token, "platform.triage"))
        .await
        .expect("any agent may send a call back to triage")
        .into_inner();
    assert_eq!(
        (back.team_id.as_str(), back.cooperator_id.as_str()),
        ("platform.triage", "")
    );
    assert_eq!(back.transferred_from, ticket.ticket_id);
    server.stop().await;
}
