//! What the service logs during a full call: one JSON line per RPC with method, code and latency,
//! and never the caller's phone number, address, tenant reference, or the call and ticket ids.

mod support {
    pub mod api;
    pub mod app;
    pub mod ports;
    pub mod redis_server;
}

use std::io::Write;
use std::sync::{Arc, Mutex};

use callrouter::api::pb;
use support::api::TestServer;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_call_logs_no_personal_data() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,h2=info,hyper=info,tower=info,tonic=info",
        ))
        .with_writer(move || writer.clone())
        .init();

    let server = TestServer::start().await;
    let f = support::api::tours_building();
    let (street, building) = (f[4].to_owned(), f[0].to_owned());
    let tenants = std::fs::read_to_string("data/tenants.csv").expect("tenants");
    let tenant = tenants
        .lines()
        .find(|l| l.ends_with(&format!(",{building}")))
        .expect("a tenant")
        .split(',')
        .next()
        .expect("ref")
        .to_owned();
    let phone = "+33 6 39 98 12 34";
    let request = pb::RouteCallRequest {
        call_id: "log-call-7f3a".to_owned(),
        caller_number: phone.to_owned(),
        tenant_reference: tenant.clone(),
        address: Some(pb::Address {
            street_number: f[3].to_owned(),
            street: street.clone(),
            postcode: f[5].to_owned(),
            city: f[7].to_owned(),
            ..Default::default()
        }),
        issue_type: "technical.plumbing.leak".to_owned(),
        description: "Fuite sous l'évier chez Mme Durand".to_owned(),
        ..Default::default()
    };
    let mut routing = server.routing(Some("telephony-ivr"));
    let ticket = routing
        .route_call(request.clone())
        .await
        .expect("route")
        .into_inner()
        .ticket
        .expect("ticket");
    let mut bad = request.clone();
    bad.issue_type = "technical.unknown".to_owned();
    routing.route_call(bad).await.expect_err("invalid");
    let mut desk = server.desk(Some("tl-agent-1"));
    let held = support::api::claim(&mut desk, vec![]).await;
    support::api::complete(&mut desk, &held, "fixed").await;
    server.stop().await;

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8 logs");
    let rpc_lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "rpc")
        .collect();
    let methods: Vec<&str> = rpc_lines
        .iter()
        .filter_map(|v| v["fields"]["method"].as_str())
        .collect();
    for method in [
        "/callrouter.v1.CallRouting/RouteCall",
        "/callrouter.v1.AgentDesk/ClaimNextTicket",
        "/callrouter.v1.AgentDesk/CompleteTicket",
    ] {
        assert!(
            methods.contains(&method),
            "one log line for {method}: {methods:?}"
        );
    }
    assert!(
        rpc_lines
            .iter()
            .all(|v| v["fields"]["grpc_status"].is_string() && v["fields"]["latency_us"].is_u64())
    );
    assert!(
        rpc_lines.iter().any(|v| v["fields"]["grpc_status"] == "3"),
        "the refused call is logged with its code"
    );

    let phone_digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    for secret in [
        phone,
        &phone_digits,
        "639981234",
        street.as_str(),
        tenant.as_str(),
        "Durand",
        "log-call-7f3a",
        ticket.ticket_id.as_str(),
        building.as_str(),
    ] {
        assert!(!logs.contains(secret), "the logs hold '{secret}':\n{logs}");
    }
}
