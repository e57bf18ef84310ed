//! The metrics an operator scrapes: after a routed and completed call, `/metrics` holds the
//! families with the right values, no personal data or ids in any label, and `promtool` accepts
//! the exposition.

mod support {
    pub mod api;
    pub mod app;
    pub mod attack;
    pub mod ports;
    pub mod redis_server;
}

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callrouter::api::pb;
use support::api::TestServer;
use support::app::sample;

const PHONE: &str = "+33 2 47 12 34 56";

fn call(id: &str) -> (pb::RouteCallRequest, String) {
    let f = support::api::tours_building();
    let request = pb::RouteCallRequest {
        call_id: id.to_owned(),
        caller_number: PHONE.to_owned(),
        address: Some(pb::Address {
            street_number: f[3].to_owned(),
            street: f[4].to_owned(),
            postcode: f[5].to_owned(),
            ..Default::default()
        }),
        issue_type: "technical.plumbing.leak".to_owned(),
        ..Default::default()
    };
    (request, f[4].to_owned())
}

/// promtool, which CI installs (Debian's `prometheus` package); outside CI its absence skips.
pub fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("promtool is missing (apt-get install prometheus)");
        }
        eprintln!("SKIPPED: promtool is missing (apt-get install prometheus)");
        return None;
    }
    Some("promtool")
}

#[tokio::test]
async fn metrics_after_a_routed_and_completed_call() {
    let server = TestServer::start().await;
    let (request, street) = call("metrics-1");
    let routed = server
        .routing(Some("telephony-ivr"))
        .route_call(request)
        .await
        .expect("route")
        .into_inner();
    let ticket = routed.ticket.expect("ticket");
    let mut desk = server.desk(Some("tl-agent-1"));
    let held = support::api::claim(&mut desk, vec![]).await;
    support::api::complete(&mut desk, &held, "fixed").await;
    let status = server
        .routing(None)
        .route_call(call("metrics-2").0)
        .await
        .expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let team = ticket.team_id.clone();

    // The sampler runs every 100 ms in tests: wait until it has seen the queue.
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let response = server.admin_get("/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4")
        );
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        if body.contains("callrouter_queue_depth{") && body.contains("callrouter_store_up 1") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the sampler did not publish queue depths:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let tl = ("cooperator", "touraine-logement");
    let team_of = ("team", team.as_str());
    let routed = [tl, team_of, ("outcome", "queued")];
    assert_eq!(
        sample(&body, "callrouter_calls_routed_total", &routed),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "callrouter_calls_by_category_total",
            &[tl, ("category", "technical")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "callrouter_calls_by_urgency_total",
            &[tl, ("urgency", "U2")]
        ),
        Some(1.0)
    );
    let rpc = |service, method, code| {
        [
            ("grpc_type", "unary"),
            ("grpc_service", service),
            ("grpc_method", method),
            ("grpc_code", code),
        ]
    };
    for (method, code, n) in [
        ("RouteCall", "OK", 1.0),
        ("RouteCall", "Unauthenticated", 1.0),
        ("RouteCall", "Internal", 0.0),
    ] {
        assert_eq!(
            sample(
                &body,
                "grpc_server_handled_total",
                &rpc("callrouter.v1.CallRouting", method, code)
            ),
            Some(n),
            "{method} {code}"
        );
    }
    assert_eq!(
        sample(
            &body,
            "grpc_server_handled_total",
            &rpc("callrouter.v1.AgentDesk", "CompleteTicket", "OK")
        ),
        Some(1.0)
    );
    let route_call = [
        ("grpc_type", "unary"),
        ("grpc_service", "callrouter.v1.CallRouting"),
        ("grpc_method", "RouteCall"),
    ];
    for family in [
        "grpc_server_started_total",
        "grpc_server_handling_seconds_count",
    ] {
        assert_eq!(sample(&body, family, &route_call), Some(2.0), "{family}");
    }
    // One request and one answer each for the served call; none read from the refused one.
    assert_eq!(
        sample(&body, "grpc_server_msg_received_total", &route_call),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "grpc_server_msg_sent_total", &route_call),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "callrouter_address_matches_total",
            &[("level", "BUILDING")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "callrouter_routing_decision_seconds_count", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "callrouter_ticket_wait_seconds_count",
            &[tl, team_of, ("urgency", "U2")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "callrouter_tickets_answered_total",
            &[tl, ("urgency", "U2"), ("within_target", "yes")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "callrouter_tickets_completed_total", &[tl, team_of]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "callrouter_ticket_handle_seconds_count",
            &[tl, ("urgency", "U2")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "callrouter_sla_breaches_total",
            &[tl, ("urgency", "U2")]
        ),
        Some(0.0)
    );
    assert!(
        sample(
            &body,
            "callrouter_store_operation_seconds_count",
            &[("operation", "create")]
        )
        .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(
        sample(
            &body,
            "callrouter_queue_depth",
            &[tl, team_of, ("urgency", "U2")]
        ),
        Some(0.0)
    );
    assert_eq!(sample(&body, "callrouter_store_up", &[]), Some(1.0));
    assert_eq!(
        sample(&body, "callrouter_config_generation", &[]),
        Some(1.0)
    );
    assert!(sample(&body, "process_resident_memory_bytes", &[]).is_some_and(|b| b > 0.0));
    assert!(body.contains("callrouter_build_info{version=\""));
    for family in [
        "callrouter_lease_expiries_total",
        "callrouter_escalations_total",
        "callrouter_sla_breaches_total",
        "callrouter_agents",
        "callrouter_store_errors_total",
        "callrouter_config_reloads_total",
    ] {
        assert!(
            body.contains(&format!("# HELP {family}")),
            "{family} is described"
        );
    }

    // No personal data, no ids.
    let phone_digits: String = PHONE.chars().filter(char::is_ascii_digit).collect();
    for secret in [
        PHONE,
        &phone_digits,
        street.as_str(),
        ticket.ticket_id.as_str(),
        "metrics-1",
        ticket.building_id.as_str(),
    ] {
        assert!(!body.contains(secret), "the scrape holds '{secret}'");
    }

    if let Some(promtool) = promtool() {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("write scrape");
        let out = child.wait_with_output().expect("promtool finishes");
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    server.stop().await;
}

/// A `WatchTickets` stream is counted while open (`watch_streams`) and once it ends, with the code
/// it ended with (`Canceled`: the client left) and the events it sent.
#[tokio::test]
async fn a_watch_stream_is_counted_when_it_ends_with_its_messages() {
    let server = TestServer::start().await;
    let stream = [
        ("grpc_type", "server_stream"),
        ("grpc_service", "callrouter.v1.AgentDesk"),
        ("grpc_method", "WatchTickets"),
    ];
    let canceled = [stream[0], stream[1], stream[2], ("grpc_code", "Canceled")];
    let body = |text: String| text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    let mut watch = server
        .desk(Some("tl-agent-1"))
        .watch_tickets(pb::WatchTicketsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    for n in 0..3 {
        server
            .routing(Some("telephony-ivr"))
            .route_call(call(&format!("watched-{n}")).0)
            .await
            .expect("route");
        support::api::next_event(&mut watch).await;
    }
    let open = body(server.admin_get("/metrics").await).unwrap_or_default();
    assert_eq!(sample(&open, "callrouter_watch_streams", &[]), Some(1.0));
    assert_eq!(
        sample(&open, "grpc_server_handled_total", &canceled),
        Some(0.0)
    );
    assert_eq!(
        sample(&open, "grpc_server_started_total", &stream),
        Some(1.0)
    );
    drop(watch);
    let deadline = Instant::now() + Duration::from_secs(5);
    let ended = loop {
        let text = body(server.admin_get("/metrics").await).unwrap_or_default();
        if sample(&text, "grpc_server_handled_total", &canceled) == Some(1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "the ended stream is not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sample(&ended, "callrouter_watch_streams", &[]), Some(0.0));
    assert_eq!(
        sample(&ended, "grpc_server_msg_sent_total", &stream),
        Some(3.0)
    );
    assert_eq!(
        sample(&ended, "grpc_server_msg_received_total", &stream),
        Some(1.0)
    );
    assert_eq!(
        sample(&ended, "grpc_server_handling_seconds_count", &stream),
        Some(1.0)
    );
    server.stop().await;
}

/// The series of a scrape (its sample lines).
fn series(response: &str) -> usize {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

/// At most this many series appear, whatever a flood of garbage calls and fake paths holds: the
/// first use of store operations and error kinds, bounded by the code.
const SERIES_A_FLOOD_MAY_ADD: usize = 40;

#[tokio::test]
async fn a_flood_of_garbage_calls_and_fake_paths_adds_a_bounded_number_of_series() {
    let server = TestServer::start().await;
    // One ordinary call first, so that the store's operations have their series.
    server
        .routing(Some("telephony-ivr"))
        .route_call(call("cardinality-0").0)
        .await
        .expect("route");
    // And the sampler has read the store once: its series are there.
    let deadline = Instant::now() + Duration::from_secs(5);
    let before = loop {
        let scrape = server.admin_get("/metrics").await;
        if scrape.contains("callrouter_store_metrics_holder 1")
            && scrape.contains("callrouter_agent_presence_seconds_total{")
        {
            break series(&scrape);
        }
        assert!(Instant::now() < deadline, "the sampler never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let mut telephony = server.routing(Some("telephony-ivr"));
    for n in 0..600u32 {
        let mut request = call(&format!("garbage-{n}-{}", n.wrapping_mul(2_654_435_761))).0;
        request.issue_type = match n % 4 {
            0 => format!("nonsense.{n}"),
            1 => "technical.plumbing.leak".to_owned(),
            2 => "administrative.rent.payment".to_owned(),
            _ => String::new(),
        };
        if let Some(address) = request.address.as_mut() {
            address.street = format!("Rue {n} de +33 6 12 34 {n:02}");
            address.postcode = format!("{:05}", n * 97 % 100_000);
        }
        let _ = telephony.route_call(request).await;
        let _ = telephony
            .cancel_call(pb::CancelCallRequest {
                ticket_id: format!("touraine-logement-{n}"),
                call_id: format!("+3361234{n:04}"),
            })
            .await;
    }
    let token = server.tokens.get("tl-agent-1").cloned();
    let mut paths = 0;
    for connection in 0..12u32 {
        let mut raw = support::attack::RawConnection::open(server.addr).await;
        for n in 0..100u32 {
            let path = match n % 4 {
                0 => format!("/evil.Service{connection}/+33612{n:05}"),
                1 => format!("/grpc.health.v1.Health/RouteCall{n}"),
                2 => format!("/callrouter.v1.CallRouting/Nope{connection}x{n}"),
                _ => format!("/callrouter.v1.AgentDesk/{n}/{connection}"),
            };
            let with = if n % 2 == 0 { token.as_deref() } else { None };
            raw.call_with_body(&path, with, b"\x08\x01").await;
            paths += 1;
        }
        raw.read_for(Duration::from_millis(200)).await;
    }
    let body = server.admin_get("/metrics").await;
    let added = series(&body).saturating_sub(before);

    println!(
        "{paths} fake paths and 1,200 garbage calls added {added} series (bound {SERIES_A_FLOOD_MAY_ADD}); {} in all",
        series(&body)
    );
    assert!(added <= SERIES_A_FLOOD_MAY_ADD, "{added} series added");
    assert!(
        sample(
            &body,
            "grpc_server_started_total",
            &[
                ("grpc_type", "unary"),
                ("grpc_service", "other"),
                ("grpc_method", "other")
            ]
        )
        .is_some_and(|n| n >= 1_000.0),
        "the fake paths were seen, as other"
    );
    for secret in ["+33612", "nonsense.", "Nope", "evil"] {
        assert!(!body.contains(secret), "the scrape holds '{secret}'");
    }
    server.stop().await;
}

#[test]
fn every_method_of_the_contract_is_labelled_as_itself() {
    use callrouter::metrics::rpc_labels;
    use prost::Message;
    let contract = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET)
        .expect("the contract's descriptors");
    let mut methods = 0;
    for file in &contract.file {
        for service in &file.service {
            let service_name = format!("{}.{}", file.package(), service.name());
            for method in &service.method {
                let path = format!("/{service_name}/{}", method.name());
                let labels = rpc_labels(&path);
                assert_eq!(
                    (labels.service, labels.method),
                    (service_name.as_str(), method.name()),
                    "{path}"
                );
                let kind = match (method.client_streaming(), method.server_streaming()) {
                    (false, false) => "unary",
                    (false, true) => "server_stream",
                    (true, false) => "client_stream",
                    (true, true) => "bidi_stream",
                };
                assert_eq!(labels.kind, kind, "{path}");
                methods += 1;
            }
        }
    }
    assert_eq!(methods, 15, "the contract's methods");
}
