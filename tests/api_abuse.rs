//! Abuse of the real server, bounded: counts, timeouts and loopback only. A client that holds idle
//! streams, sends bodies that are not protobuf, asks for absurd times or opens more streams than
//! its share must get a clear refusal — and take no capacity from the others.

mod support {
    pub mod api;
    pub mod app;
    pub mod attack;
    pub mod ports;
    pub mod redis_server;
}

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use callrouter::api::pb;
use support::api::{TestServer, field_of, leak_call};
use support::attack::RawConnection;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Legitimate `RouteCall`s sent while an attack runs: how many were served.
async fn legitimate_calls(server: &TestServer, count: usize) -> usize {
    let calls: Vec<_> = (0..count)
        .map(|i| {
            let mut telephony = server.routing(Some("telephony-ivr"));
            tokio::spawn(async move {
                telephony
                    .route_call(leak_call(&format!("legit-{i}")))
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut served = 0;
    for call in calls {
        served += usize::from(call.await.expect("join"));
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_streams_of_one_connection_take_nothing_from_the_others() {
    let server = TestServer::start().await;
    // No token: 1,100 calls opened and never finished on one connection.
    let mut anonymous = RawConnection::open(server.addr).await;
    anonymous
        .open_idle_calls("/callrouter.v1.CallRouting/RouteCall", None, 1100)
        .await;
    // With an agent's token: 1,100 more on another connection.
    let token = server.tokens["lb-agent-1"].clone();
    let mut insider = RawConnection::open(server.addr).await;
    insider
        .open_idle_calls("/callrouter.v1.AgentDesk/GetTicket", Some(&token), 1100)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let served = legitimate_calls(&server, 200).await;
    println!(
        "abuse: {served} of 200 legitimate RouteCalls served in {:?} while 2,200 idle streams were held",
        started.elapsed()
    );
    assert_eq!(served, 200, "every legitimate call is served");
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let checked = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health answers");
    assert_eq!(
        checked.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    drop((anonymous, insider));
    server.stop().await;
}

/// A codec that sends and receives raw bytes, to put anything in a request's body.
#[derive(Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = src.chunk().to_vec();
        src.advance(bytes.len());
        Ok(Some(bytes))
    }
}

/// Sends `body` as the request of `RouteCall`, as the telephony platform or anonymously.
async fn raw_route_call(server: &TestServer, body: Vec<u8>, with_token: bool) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(body);
    if with_token {
        let token = &server.tokens["telephony-ivr"];
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
    }
    let path = "/callrouter.v1.CallRouting/RouteCall"
        .parse()
        .expect("a path");
    grpc.unary::<Vec<u8>, Vec<u8>, _>(request, path, RawCodec)
        .await
        .expect_err("refused")
}

#[tokio::test]
async fn a_body_that_is_not_protobuf_is_the_clients_error() {
    let server = TestServer::start().await;
    let garbage = vec![0xff; 64];
    let status = raw_route_call(&server, garbage.clone(), true).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = raw_route_call(&server, garbage, false).await;
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "no token, no decoding"
    );
    let huge = vec![0x0a; 400 * 1024];
    let status = raw_route_call(&server, huge, true).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_time_beyond_the_calendar_is_invalid_argument() {
    let server = TestServer::start().await;
    let mut request = leak_call("far-future");
    request.received_at = Some(prost_types::Timestamp {
        seconds: 8_210_266_873_200,
        nanos: 0,
    });
    let status = server
        .routing(Some("telephony-ivr"))
        .explain_route(request)
        .await
        .expect_err("out of range");
    assert_eq!(
        (status.code(), field_of(&status).as_str()),
        (Code::InvalidArgument, "received_at")
    );
    server.stop().await;
}

#[tokio::test]
async fn streams_past_a_principals_share_are_refused() {
    let server = TestServer::start().await;
    let mut desk = server.desk(Some("tl-agent-1"));
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(
            desk.watch_tickets(pb::WatchTicketsRequest::default())
                .await
                .expect("within the share")
                .into_inner(),
        );
    }
    let refused = desk
        .watch_tickets(pb::WatchTicketsRequest::default())
        .await
        .expect_err("past the share");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    // Another agent is not affected; closing a stream frees its place.
    server
        .desk(Some("tl-sup-1"))
        .watch_tickets(pb::WatchTicketsRequest::default())
        .await
        .expect("another principal's share");
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while desk
        .watch_tickets(pb::WatchTicketsRequest::default())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "a closed stream frees its place");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

/// Redis's connected clients, by its own count.
fn redis_clients(server: &mut TestServer) -> u64 {
    let info = server.redis_mut().command(&["INFO", "clients"]);
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("connected_clients")
}

/// This process's resident memory, in MiB.
fn resident_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_watchers_cost_redis_a_bounded_number_of_connections() {
    use callrouter::api::admission::Limits;
    let settings = callrouter::api::server::ServerSettings {
        limits: Limits {
            in_flight: 4096,
            in_flight_per_principal: 4096,
            streams: 4096,
            streams_per_principal: 4096,
        },
        max_streams_per_connection: 4096,
        ..support::api::test_settings()
    };
    let Some(mut server) = TestServer::start_redis_with(settings).await else {
        return;
    };
    let clients_before = redis_clients(&mut server);
    let memory_before = resident_mib();
    // 2,000 watch streams of one agent, each naming one of its teams 500 times over.
    let team = support::app::TL_TECH.to_owned();
    let mut desk = server.desk(Some("tl-agent-1"));
    let mut watches = Vec::new();
    for _ in 0..2000 {
        let request = pb::WatchTicketsRequest {
            team_ids: vec![team.clone(); 500],
            ..Default::default()
        };
        watches.push(
            desk.watch_tickets(request)
                .await
                .expect("watch")
                .into_inner(),
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let clients_during = redis_clients(&mut server);
    let memory_during = resident_mib();
    // Every watcher still hears of a new call.
    server
        .routing(Some("telephony-ivr"))
        .route_call(leak_call("watched"))
        .await
        .expect("route");
    for watch in watches.iter_mut().step_by(97) {
        let event = support::api::next_event(watch).await;
        assert_eq!(event.kind, "created");
    }
    println!(
        "abuse: 2,000 watchers x 500 repeated team ids: Redis clients {clients_before} -> {clients_during}, \
         resident memory {memory_before} -> {memory_during} MiB"
    );
    assert!(
        clients_during <= clients_before + 2,
        "one feed reader for the partition: {clients_before} -> {clients_during}"
    );
    assert!(
        memory_during <= memory_before + 200,
        "memory {memory_before} -> {memory_during} MiB"
    );
    // Statistics asked for one team 6,000 times over (as much as a message holds) cost one team's reads.
    let stats = server
        .ops(Some("tl-sup-1"))
        .get_queue_stats(pb::GetQueueStatsRequest {
            team_ids: vec![team.clone(); 6_000],
        })
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.teams.len(), 1, "repeats removed");
    drop(watches);
    server.stop().await;
}

/// A plain-text channel to the server: one HTTP/2 connection.
async fn connection(server: &TestServer) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unauthenticated_health_watches_are_capped_and_cost_bounded_memory() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let server = TestServer::start().await;
    let memory_before = resident_mib();
    // 4,000 Health/Watch streams without a token, 100 on each of 40 connections.
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let mut health = HealthClient::new(connection(&server).await);
        for _ in 0..100 {
            match health.watch(HealthCheckRequest::default()).await {
                Ok(stream) => open.push(stream.into_inner()),
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    refused += 1;
                }
            }
        }
    }
    let memory_during = resident_mib();
    println!(
        "abuse: 4,000 unauthenticated Health/Watch streams: {} open, {refused} refused, \
         resident memory {memory_before} -> {memory_during} MiB",
        open.len()
    );
    assert_eq!(open.len(), 256, "health streams have a budget of their own");
    assert_eq!(refused, 4000 - 256);
    assert!(
        memory_during <= memory_before + 100,
        "memory {memory_before} -> {memory_during} MiB"
    );
    // Health checks and the contract's calls go on.
    let checked = HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("a health check answers");
    assert_eq!(
        checked.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    assert_eq!(legitimate_calls(&server, 50).await, 50);
    drop(open);
    server.stop().await;
}

/// Reads what the server sends (its HTTP/2 settings) until it closes the connection.
async fn until_closed(stream: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

#[tokio::test]
async fn silent_connections_are_closed_and_connections_are_capped() {
    let mut settings = support::api::test_settings();
    settings.connections.first_bytes = Duration::from_millis(300);
    settings.connections.max_connections = 20;
    let server = TestServer::start_with_settings(settings).await;
    // A bare TCP connection that never sends the HTTP/2 preface is closed.
    let mut silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), until_closed(&mut silent))
        .await
        .expect("the server closes a silent connection");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "not before its time"
    );
    drop(silent);
    // A connection that spoke stays open past that time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(legitimate_calls(&server, 5).await, 5);
    // Past the cap, new connections are closed as they arrive; closing one makes room.
    let mut held = Vec::new();
    for _ in 0..19 {
        held.push(connection(&server).await);
    }
    let mut extra = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("the kernel accepts");
    tokio::time::timeout(Duration::from_millis(250), until_closed(&mut extra))
        .await
        .expect("a connection past the cap is closed at once");
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let channel = connection(&server).await;
        let mut routing =
            callrouter::api::pb::call_routing_client::CallRoutingClient::with_interceptor(
                channel,
                TestServer::raw_bearer(&server.tokens["telephony-ivr"]),
            );
        if routing.route_call(leak_call("after-room")).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "a closed connection makes room");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
    server.stop().await;
}
