//! TLS and mutual TLS end to end: handshakes that succeed and fail as they should, the telephony
//! platform's client certificate, certificates reloaded without a restart, and a client not
//! written in Rust (Python grpcio) over TLS.

mod support {
    pub mod api;
    pub mod app;
    pub mod certs;
    pub mod ports;
    pub mod redis_server;
}

use std::process::Command;

use callrouter::api::listener::{Tls, TlsFiles};
use callrouter::api::server::ServerSettings;
use support::api::{TestServer, leak_call, test_settings};
use support::certs::{Authority, PemDir};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Server settings serving TLS from these files.
fn serving(files: TlsFiles) -> (ServerSettings, Tls) {
    let tls = Tls::load(files).expect("the certificates load");
    let mut settings = test_settings();
    settings.connections.tls = Some(tls.clone());
    (settings, tls)
}

/// A client trusting `ca`, presenting `identity` when given.
fn client(ca: &str, identity: Option<&support::certs::Leaf>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    match identity {
        Some(leaf) => config.identity(Identity::from_pem(&leaf.cert, &leaf.key)),
        None => config,
    }
}

/// A channel to the server over TLS as `config` says, or the connection error.
async fn channel(server: &TestServer, config: ClientTlsConfig) -> Result<Channel, String> {
    Channel::from_shared(format!("https://localhost:{}", server.addr.port()))
        .expect("uri")
        .tls_config(config)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// `RouteCall` as `who` over `channel`: the code it gets.
async fn route_call(server: &TestServer, channel: Channel, who: &str) -> Code {
    let bearer = TestServer::raw_bearer(&server.tokens[who]);
    let mut client = callrouter::api::pb::call_routing_client::CallRoutingClient::with_interceptor(
        channel, bearer,
    );
    match client.route_call(leak_call("tls-1")).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn tls_serves_clients_that_trust_its_ca_and_nobody_in_clear_text() {
    let ca = Authority::new("callrouter test CA");
    let leaf = ca.server();
    let dir = PemDir::new("plain");
    let files = TlsFiles {
        cert: dir.write("cert.pem", &leaf.cert),
        key: dir.write("key.pem", &leaf.key),
        client_ca: None,
    };
    let (settings, _) = serving(files);
    let server = TestServer::start_tls(settings, client(&ca.pem, None)).await;
    assert_eq!(
        route_call(&server, server.channel.clone(), "telephony-ivr").await,
        Code::Ok
    );
    let clear = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await;
    let refused = match clear {
        Err(_) => true,
        Ok(channel) => route_call(&server, channel, "telephony-ivr").await != Code::Ok,
    };
    assert!(refused, "clear text is not served");
    let stranger = Authority::new("another CA");
    let untrusting = channel(&server, client(&stranger.pem, None)).await;
    let refused = match untrusting {
        Err(_) => true,
        Ok(channel) => route_call(&server, channel, "telephony-ivr").await != Code::Ok,
    };
    assert!(refused, "a client that does not trust the CA gets nothing");
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_asks_the_telephony_platform_for_its_certificate() {
    let ca = Authority::new("callrouter test CA");
    let clients = Authority::new("telephony clients CA");
    let leaf = ca.server();
    let dir = PemDir::new("mutual");
    let files = TlsFiles {
        cert: dir.write("cert.pem", &leaf.cert),
        key: dir.write("key.pem", &leaf.key),
        client_ca: Some(dir.write("clients.pem", &clients.pem)),
    };
    let (settings, _) = serving(files);
    let platform = clients.client("telephony-ivr");
    let server = TestServer::start_tls(settings, client(&ca.pem, Some(&platform))).await;
    assert_eq!(
        route_call(&server, server.channel.clone(), "telephony-ivr").await,
        Code::Ok,
        "the platform with its certificate"
    );
    let anonymous = channel(&server, client(&ca.pem, None))
        .await
        .expect("a connection without a client certificate");
    assert_eq!(
        route_call(&server, anonymous.clone(), "telephony-ivr").await,
        Code::Unauthenticated,
        "the telephony token alone is not enough"
    );
    assert_eq!(
        route_call(&server, anonymous, "tl-agent-1").await,
        Code::PermissionDenied,
        "agents connect without a certificate (and may not route calls)"
    );
    let forged = Authority::new("forger").client("telephony-ivr");
    let refused = match channel(&server, client(&ca.pem, Some(&forged))).await {
        Err(_) => true,
        Ok(channel) => route_call(&server, channel, "telephony-ivr").await != Code::Ok,
    };
    assert!(refused, "a certificate of another CA is refused");
    server.stop().await;
}

#[tokio::test]
async fn certificates_are_reloaded_without_a_restart() {
    let old_ca = Authority::new("old CA");
    let leaf = old_ca.server();
    let dir = PemDir::new("reload");
    let files = TlsFiles {
        cert: dir.write("cert.pem", &leaf.cert),
        key: dir.write("key.pem", &leaf.key),
        client_ca: None,
    };
    let (settings, tls) = serving(files);
    let server = TestServer::start_tls(settings, client(&old_ca.pem, None)).await;
    let new_ca = Authority::new("new CA");
    let renewed = new_ca.server();
    dir.write("cert.pem", &renewed.cert);
    dir.write("key.pem", &renewed.key);
    tls.reload().expect("the renewed certificates load");
    let fresh = channel(&server, client(&new_ca.pem, None))
        .await
        .expect("new connections get the renewed certificate");
    assert_eq!(route_call(&server, fresh, "telephony-ivr").await, Code::Ok);
    dir.write("key.pem", "not a key");
    assert!(tls.reload().is_err(), "a broken key is refused");
    let still = channel(&server, client(&new_ca.pem, None))
        .await
        .expect("the certificates in force stay");
    assert_eq!(route_call(&server, still, "telephony-ivr").await, Code::Ok);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_grpcio_client_works_over_mutual_tls() {
    if !support::api::python_grpc_ready() {
        return;
    }
    let ca = Authority::new("callrouter test CA");
    let clients = Authority::new("telephony clients CA");
    let leaf = ca.server();
    let platform = clients.client("telephony-ivr");
    let dir = PemDir::new("python");
    let files = TlsFiles {
        cert: dir.write("cert.pem", &leaf.cert),
        key: dir.write("key.pem", &leaf.key),
        client_ca: Some(dir.write("clients.pem", &clients.pem)),
    };
    let (settings, _) = serving(files);
    let server = TestServer::start_tls(settings, client(&ca.pem, Some(&platform))).await;
    let f = support::api::tours_building();
    let address = format!("{} {} {} {}", f[3], f[4], f[5], f[7]);
    let output = Command::new("python3")
        .arg("tests/interop/client.py")
        .arg(format!("localhost:{}", server.addr.port()))
        .arg("proto")
        .env(
            "CALLROUTER_TELEPHONY_TOKEN",
            &server.tokens["telephony-ivr"],
        )
        .env("CALLROUTER_AGENT_TOKEN", &server.tokens["tl-agent-1"])
        .env("CALLROUTER_ADDRESS", address)
        .env("CALLROUTER_TLS_CA", dir.write("ca.pem", &ca.pem))
        .env(
            "CALLROUTER_TLS_CERT",
            dir.write("client.pem", &platform.cert),
        )
        .env(
            "CALLROUTER_TLS_KEY",
            dir.write("client-key.pem", &platform.key),
        )
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("interop: 18 passed, 0 failed"), "{stdout}");
    server.stop().await;
}
