//! A real callrouter server for a test: the demo configuration, the development tokens, listening
//! on `127.0.0.1:0`, with real tonic clients. Over the in-memory store by default (it holds Redis's
//! semantics, and needs no process), or over a `redis-server` of its own for what only Redis does
//! (outages, several instances).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use callrouter::api::pb::agent_desk_client::AgentDeskClient;
use callrouter::api::pb::call_routing_client::CallRoutingClient;
use callrouter::api::pb::operations_client::OperationsClient;
use callrouter::api::server::{ServerSettings, run};
use callrouter::app::{App, AppSettings, Snapshot};
use callrouter::store::memory::MemoryStore;
use callrouter::store::redis::RedisStore;
use callrouter::store::{StoreSettings, TicketStore};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig};

pub use super::app::{dev_tokens, tours_building};
use super::redis_server::RedisServer;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Routing = CallRoutingClient<InterceptedService<Channel, Bearer>>;
pub type Desk = AgentDeskClient<InterceptedService<Channel, Bearer>>;
pub type Ops = OperationsClient<InterceptedService<Channel, Bearer>>;

/// A call about a leak in the demo building in Tours, on the wire.
pub fn leak_call(call_id: &str) -> callrouter::api::pb::RouteCallRequest {
    let f = tours_building();
    callrouter::api::pb::RouteCallRequest {
        call_id: call_id.to_owned(),
        caller_number: "+33 2 47 00 00 00".to_owned(),
        address: Some(callrouter::api::pb::Address {
            street_number: f[3].clone(),
            street: f[4].clone(),
            postcode: f[5].clone(),
            ..Default::default()
        }),
        issue_type: "technical.plumbing.leak".to_owned(),
        ..Default::default()
    }
}

/// The next event of a watch, within 10 s.
pub async fn next_event(
    stream: &mut tonic::Streaming<callrouter::api::pb::TicketEvent>,
) -> callrouter::api::pb::TicketEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("stream ok")
        .expect("stream open")
}

/// The field a status names in its `BadRequest` details.
pub fn field_of(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

/// Claims the next ticket of the caller's teams, which must exist.
pub async fn claim(desk: &mut Desk, team_ids: Vec<String>) -> callrouter::api::pb::Ticket {
    desk.claim_next_ticket(callrouter::api::pb::ClaimNextTicketRequest {
        team_ids,
        lease_seconds: 60,
        ..Default::default()
    })
    .await
    .expect("claim")
    .into_inner()
    .ticket
    .expect("a ticket waits")
}

/// Completes a ticket the caller holds.
pub async fn complete(
    desk: &mut Desk,
    held: &callrouter::api::pb::Ticket,
    resolution: &str,
) -> callrouter::api::pb::Ticket {
    desk.complete_ticket(callrouter::api::pb::CompleteTicketRequest {
        ticket_id: held.ticket_id.clone(),
        lease_token: held.lease_token,
        resolution: resolution.to_owned(),
    })
    .await
    .expect("complete")
    .into_inner()
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The admin HTTP listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin: SocketAddr,
    /// The server's Redis, when this server started it (a second instance shares the first's).
    pub redis: Option<RedisServer>,
    /// The Redis it serves over; `None` for the in-memory store.
    pub redis_url: Option<String>,
    pub channel: Channel,
    pub tokens: HashMap<String, String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), callrouter::api::server::ServeError>>>,
}

impl TestServer {
    /// A server on the demo configuration over the in-memory store.
    pub async fn start() -> TestServer {
        TestServer::start_with(None).await
    }

    /// A server on `config` (the demo's when `None`) over the in-memory store.
    pub async fn start_with(config: Option<PathBuf>) -> TestServer {
        let store = MemoryStore::new(StoreSettings::default());
        TestServer::launch(config, Arc::new(store), None, test_settings()).await
    }

    /// A server over a `redis-server` of its own (`None` outside CI when none can start).
    pub async fn start_redis() -> Option<TestServer> {
        let redis = RedisServer::start()?;
        let url = redis.url();
        let mut server =
            TestServer::launch(None, redis_store(&url), Some(url), test_settings()).await;
        server.redis = Some(redis);
        Some(server)
    }

    /// A server over a Redis it reaches at `url` (a proxy, say), which `redis` is the server of.
    pub async fn over_redis(url: &str, redis: RedisServer) -> TestServer {
        let mut server = TestServer::launch(
            None,
            redis_store(url),
            Some(url.to_owned()),
            test_settings(),
        )
        .await;
        server.redis = Some(redis);
        server
    }

    /// A server over a store of the test's making (Redis through Sentinel, say).
    pub async fn over_store(store: Arc<dyn TicketStore>) -> TestServer {
        TestServer::launch(None, store, None, test_settings()).await
    }

    /// Another instance over the same Redis, as a deployment runs several.
    pub async fn another_instance(&self) -> TestServer {
        let url = self
            .redis_url
            .clone()
            .expect("a second instance shares the first one's Redis");
        TestServer::launch(None, redis_store(&url), Some(url), test_settings()).await
    }

    /// Another instance over the same Redis, on its own copy of the configuration (to reload).
    pub async fn another_instance_on(&self, config: PathBuf) -> TestServer {
        let url = self
            .redis_url
            .clone()
            .expect("a second instance shares the first one's Redis");
        TestServer::launch(Some(config), redis_store(&url), Some(url), test_settings()).await
    }

    /// The Redis this server or the first instance started.
    pub fn redis_mut(&mut self) -> &mut RedisServer {
        self.redis
            .as_mut()
            .expect("this instance started the Redis")
    }

    /// A server over its own Redis with these server settings (budgets, say).
    pub async fn start_redis_with(settings: ServerSettings) -> Option<TestServer> {
        let redis = RedisServer::start()?;
        let url = redis.url();
        let mut server = TestServer::launch(None, redis_store(&url), Some(url), settings).await;
        server.redis = Some(redis);
        Some(server)
    }

    /// A server over the in-memory store with these settings.
    pub async fn start_with_settings(settings: ServerSettings) -> TestServer {
        let store = MemoryStore::new(StoreSettings::default());
        TestServer::launch(None, Arc::new(store), None, settings).await
    }

    /// A server over the in-memory store serving over TLS as `settings` say; its channel connects
    /// as `client` says.
    pub async fn start_tls(settings: ServerSettings, client: ClientTlsConfig) -> TestServer {
        let store = MemoryStore::new(StoreSettings::default());
        TestServer::launch_with(None, Arc::new(store), None, settings, Some(client)).await
    }

    async fn launch(
        config: Option<PathBuf>,
        store: Arc<dyn TicketStore>,
        redis_url: Option<String>,
        server_settings: ServerSettings,
    ) -> TestServer {
        TestServer::launch_with(config, store, redis_url, server_settings, None).await
    }

    async fn launch_with(
        config: Option<PathBuf>,
        store: Arc<dyn TicketStore>,
        redis_url: Option<String>,
        server_settings: ServerSettings,
        client_tls: Option<ClientTlsConfig>,
    ) -> TestServer {
        let settings = AppSettings {
            default_lease: Duration::from_secs(60),
            development: true,
            store_deadline: STORE_DEADLINE,
            ..AppSettings::new(
                config.unwrap_or_else(|| PathBuf::from("config/callrouter.toml")),
                PathBuf::from("config/dev-secrets.toml"),
            )
        };
        let snapshot = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || Snapshot::load(&settings, 1))
                .await
                .expect("join")
                .expect("the demo configuration loads")
        };
        let app = App::new(
            Arc::new(snapshot),
            store,
            settings,
            Arc::new(callrouter::metrics::Metrics::new()),
        );
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind admin");
        let admin = admin_listener.local_addr().expect("admin addr");
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(callrouter::serve::admin(
            app.clone(),
            admin_listener,
            async move {
                let _ = admin_stopped.await;
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(run(app, listener, server_settings, async move {
            let _ = stopped.await;
            let _ = stop_admin.send(());
        }));
        let channel = match client_tls {
            None => Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await
                .expect("connect to the test server"),
            Some(tls) => Channel::from_shared(format!("https://localhost:{}", addr.port()))
                .expect("uri")
                .tls_config(tls)
                .expect("TLS settings")
                .connect()
                .await
                .expect("connect to the test server over TLS"),
        };
        TestServer {
            addr,
            admin,
            redis: None,
            redis_url,
            channel,
            tokens: dev_tokens(),
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    fn bearer(&self, agent: Option<&str>) -> Bearer {
        Bearer(agent.map(|a| {
            let token = self
                .tokens
                .get(a)
                .unwrap_or_else(|| panic!("no dev token for {a}"));
            format!("Bearer {token}").parse().expect("ascii token")
        }))
    }

    /// A bearer with an arbitrary token (for bad-token tests).
    pub fn raw_bearer(token: &str) -> Bearer {
        Bearer(Some(format!("Bearer {token}").parse().expect("ascii")))
    }

    pub fn routing(&self, agent: Option<&str>) -> Routing {
        CallRoutingClient::with_interceptor(self.channel.clone(), self.bearer(agent))
    }

    pub fn desk(&self, agent: Option<&str>) -> Desk {
        AgentDeskClient::with_interceptor(self.channel.clone(), self.bearer(agent))
    }

    pub fn ops(&self, agent: Option<&str>) -> Ops {
        OperationsClient::with_interceptor(self.channel.clone(), self.bearer(agent))
    }

    /// A GET on the admin listener: the whole response, status line first.
    pub async fn admin_get(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.admin)
            .await
            .expect("admin connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("admin write");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("admin read");
        response
    }

    /// Kills the server: no drain, no shutdown of its own; what it held is left as it was.
    pub fn kill(mut self) {
        self.stop.take();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("join")
                .expect("the server stops cleanly");
        }
    }
}

/// Whether Python's grpcio is here for the interoperability tests: when it is missing, the test
/// fails when `CI` is set (`.ci/run` installs it) and is skipped with a message otherwise.
pub fn python_grpc_ready() -> bool {
    let imports = "import grpc, grpc_tools, grpc_reflection, grpc_health";
    let ready = std::process::Command::new("python3")
        .args(["-c", imports])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let message = "Python grpcio is missing (pip install grpcio grpcio-tools grpcio-reflection grpcio-health-checking)";
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
    }
    ready
}

/// Server settings for tests: background passes every 100 ms, a short drain.
pub fn test_settings() -> ServerSettings {
    ServerSettings {
        reaper_every: Duration::from_millis(100),
        health_every: Duration::from_millis(100),
        sample_every: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(2),
        ..ServerSettings::default()
    }
}

/// How long a test server's calls wait for the store. The service's default (300 ms, for a
/// caller on the line) is too short for the unoptimised build on a machine running many test
/// servers at once: a call's ticket would be refused as too late, and a test expecting it would
/// wait for a ticket that never comes.
const STORE_DEADLINE: Duration = Duration::from_secs(2);

/// A Redis store under the tests' namespace, quick to report an outage (within a second).
fn redis_store(url: &str) -> Arc<dyn TicketStore> {
    let settings = StoreSettings {
        namespace: "callrouter:api".to_owned(),
        operation_timeout: Duration::from_secs(1),
        ..StoreSettings::default()
    };
    Arc::new(RedisStore::connect(url, settings).expect("connect"))
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
