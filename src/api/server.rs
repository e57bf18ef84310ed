//! Serving: the three services, standard health and reflection, the middleware around them, the
//! background tasks (reaper, health tracking), and a graceful shutdown with a bounded drain.
//!
//! `run(app, listener, settings, shutdown)`: `main` passes a future resolving on SIGINT/SIGTERM,
//! tests pass a oneshot. On shutdown: health goes `NOT_SERVING`, the listener stops accepting,
//! watch streams end, in-flight calls drain for at most the grace period, and a forced stop is
//! logged.

use std::future::Future;
use std::time::Duration;

use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;
use tonic_web::GrpcWebLayer;
use tower::layer::util::{Identity, Stack};

use super::admission::{Admission, Limits};
use super::console::ConsoleLayer;
use super::desk::AgentDeskService;
use super::layer::RpcLayer;
use super::listener::{self, ConnectionSettings};
use super::operations::OperationsService;
use super::pb;
use super::pb::agent_desk_server::AgentDeskServer;
use super::pb::call_routing_server::CallRoutingServer;
use super::pb::operations_server::OperationsServer;
use super::routing::CallRoutingService;
use crate::app::App;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Longest a unary call may take before `DEADLINE_EXCEEDED`.
    pub request_timeout: Duration,
    /// Budgets of calls and streams, per instance and per principal.
    pub limits: Limits,
    /// HTTP/2 streams one connection may open at once (more are refused by the protocol).
    pub max_streams_per_connection: u32,
    /// Connections open at once, how long one may stay silent, TLS.
    pub connections: ConnectionSettings,
    /// Longest message accepted or sent.
    pub max_message_bytes: usize,
    /// How long in-flight calls may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// How often expired leases are returned to their queues.
    pub reaper_every: Duration,
    /// How often the store is checked for health.
    pub health_every: Duration,
    /// How often queue depths, oldest waits and agents are sampled for the metrics.
    pub sample_every: Duration,
}

/// Defaults of [`ServerSettings`], shared with the command line.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5000;
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 1024;
pub const DEFAULT_MAX_IN_FLIGHT_PER_PRINCIPAL: u64 = 256;
pub const DEFAULT_MAX_STREAMS: u64 = 1024;
pub const DEFAULT_MAX_STREAMS_PER_PRINCIPAL: u64 = 8;
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 128;
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4096;
/// How long a new connection may stay silent before it is closed.
pub const FIRST_BYTES_WITHIN: Duration = Duration::from_secs(10);
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u64 = 10;
/// Longest message accepted or sent: far above any request of the contract.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            limits: Limits {
                in_flight: DEFAULT_MAX_IN_FLIGHT as usize,
                in_flight_per_principal: DEFAULT_MAX_IN_FLIGHT_PER_PRINCIPAL as usize,
                streams: DEFAULT_MAX_STREAMS as usize,
                streams_per_principal: DEFAULT_MAX_STREAMS_PER_PRINCIPAL as usize,
            },
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
            connections: ConnectionSettings {
                max_connections: DEFAULT_MAX_CONNECTIONS as usize,
                first_bytes: FIRST_BYTES_WITHIN,
                tls: None,
            },
            max_message_bytes: MAX_MESSAGE_BYTES,
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECONDS),
            reaper_every: Duration::from_secs(1),
            health_every: Duration::from_secs(1),
            sample_every: Duration::from_secs(5),
        }
    }
}

/// A server that could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

const SERVICES: [&str; 4] = [
    "",
    "callrouter.v1.CallRouting",
    "callrouter.v1.AgentDesk",
    "callrouter.v1.Operations",
];

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Serves until `shutdown` resolves, then drains for at most the grace period.
pub async fn run(
    app: App,
    listener: tokio::net::TcpListener,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    let background = [
        tokio::spawn(track_health(
            app.clone(),
            reporter.clone(),
            settings.health_every,
        )),
        tokio::spawn({
            let app = app.clone();
            async move { app.run_reaper(settings.reaper_every, app.closed()).await }
        }),
        tokio::spawn({
            let app = app.clone();
            async move { app.run_sampler(settings.sample_every, app.closed()).await }
        }),
    ];

    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_accepting = {
        let (app, reporter) = (app.clone(), reporter.clone());
        async move {
            shutdown.await;
            tracing::info!("shutting down: NOT_SERVING, draining in-flight calls");
            set_health(&reporter, ServingStatus::NotServing).await;
            app.close();
            let _ = drained_tx.send(());
        }
    };
    let router = routes(&app, &settings, health)?;
    let incoming = listener::accept(listener, settings.connections.clone());
    let serve = router.serve_with_incoming_shutdown(incoming, stop_accepting);
    tokio::pin!(serve);
    let grace = settings.shutdown_grace;
    let outcome = tokio::select! {
        result = &mut serve => result.map_err(ServeError::from),
        () = async move {
            let _ = drained_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_seconds = grace.as_secs_f64(), "drain period over: forced stop with calls still in flight");
            Ok(())
        }
    };
    app.close();
    for task in background {
        task.abort();
    }
    outcome
}

/// The middleware, outermost last: the desk's page, gRPC-web, then [`RpcLayer`].
type Layers = Stack<RpcLayer, Stack<GrpcWebLayer, Stack<ConsoleLayer, Identity>>>;

/// The services behind the middleware: the contract's three, health, and reflection in both
/// versions (v1, and v1alpha that many tools still speak).
fn routes(
    app: &App,
    settings: &ServerSettings,
    health: HealthServer<impl Health>,
) -> Result<Router<Layers>, ServeError> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let limit = settings.max_message_bytes;
    Ok(Server::builder()
        // Browsers: HTTP/1.1 besides HTTP/2, the desk's page, and gRPC-web translated to gRPC
        // before the middleware, so that a browser's call is admitted, limited, counted and
        // logged as any other.
        .accept_http1(true)
        .layer(ConsoleLayer)
        .layer(GrpcWebLayer::new())
        // Refuse at once past the in-flight limit, bound each call's time, count and log each call.
        .max_concurrent_streams(Some(settings.max_streams_per_connection))
        // Pings find dead peers (desks that vanished with a stream open).
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .layer(RpcLayer::new(
            Admission::new(
                app.clone(),
                settings.limits,
                settings
                    .connections
                    .tls
                    .as_ref()
                    .is_some_and(|tls| tls.verifies_clients()),
            ),
            settings.request_timeout,
            app.metrics(),
        ))
        .add_service(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(
            CallRoutingServer::new(CallRoutingService { app: app.clone() })
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            AgentDeskServer::new(AgentDeskService { app: app.clone() })
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            OperationsServer::new(OperationsService { app: app.clone() })
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        ))
}

/// Health follows the store: `SERVING` only while the configuration is loaded (it is, or the
/// server would not run) and the store answers; checked every `every` until the app closes.
async fn track_health(app: App, reporter: HealthReporter, every: Duration) {
    let mut serving = None;
    loop {
        let store = app.store();
        let up = store.ping().await.is_ok();
        app.metrics().store_up(up);
        app.metrics()
            .redis_primary(store.primary_address().as_deref(), store.failovers());
        if serving != Some(up) {
            if up {
                tracing::info!("queue store answers: SERVING");
            } else {
                tracing::warn!("queue store does not answer: NOT_SERVING");
            }
            let status = if up {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_health(&reporter, status).await;
            serving = Some(up);
        }
        tokio::select! {
            () = app.closed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
