//! `callrouter serve`: options (flags and environment), logging, the queue store chosen by
//! `REDIS_URL`, the gRPC server and the admin HTTP listener, reload on SIGHUP, and shutdown on
//! SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::signal::unix::{Signal, SignalKind};

use crate::api::admission::Limits;
use crate::api::listener::{ConnectionSettings, Tls, TlsFiles};
use crate::api::server::{self, ServerSettings, run};
use crate::app::tokens::DEV_SECRETS;
use crate::app::{self, App, AppSettings, Snapshot};
use crate::config::DEMO_CONFIG;
use crate::metrics::Metrics;
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisStore, RedisTarget, RedisTls};
use crate::store::{self, StoreSettings, TicketStore};

/// The default gRPC and admin listen addresses.
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9090";

/// Whether metrics record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricsMode {
    On,
    /// Record nothing, to measure what recording costs.
    Off,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// For log collectors.
    Json,
}

/// Options of `callrouter serve`; every one can also be set by its environment variable.
#[derive(Debug, Clone, Args)]
pub struct ServeOptions {
    /// Main configuration file (routing, teams, registries).
    #[arg(long, env = "CALLROUTER_CONFIG", default_value = DEMO_CONFIG)]
    pub config: PathBuf,
    /// Secrets file: SHA-256 hashes of bearer tokens and their principals. Required, unless
    /// --dev takes the published development tokens.
    #[arg(long, env = "CALLROUTER_SECRETS")]
    pub secrets: Option<PathBuf>,
    /// Development mode: accepts the published development tokens (config/dev-secrets.toml by
    /// default), and only on loopback addresses.
    #[arg(long, env = "CALLROUTER_DEV")]
    pub dev: bool,
    /// Redis URL of the queue store (redis://user:password@host:port/db, rediss:// for TLS).
    /// Without it, an in-memory store that is not durable and serves one instance only.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// CA of Redis's TLS certificate (PEM), for a rediss:// URL; the system's roots otherwise.
    #[arg(long, env = "CALLROUTER_REDIS_CA")]
    pub redis_ca: Option<PathBuf>,
    /// Client certificate for Redis (PEM), when Redis authenticates TLS clients.
    #[arg(long, env = "CALLROUTER_REDIS_CERT", requires = "redis_key")]
    pub redis_cert: Option<PathBuf>,
    /// Key of the client certificate for Redis (PEM).
    #[arg(long, env = "CALLROUTER_REDIS_KEY", requires = "redis_cert")]
    pub redis_key: Option<PathBuf>,
    /// Redis Sentinel: the sentinels (host:port,host:port,…); the service uses the primary they
    /// name for --redis-sentinel-master and follows failovers. REDIS_URL then only gives the
    /// scheme, user, password and database to use on the primary.
    #[arg(long, env = "CALLROUTER_REDIS_SENTINEL")]
    pub redis_sentinel: Option<String>,
    /// The master name the sentinels monitor (with --redis-sentinel).
    #[arg(long, env = "CALLROUTER_REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,
    /// Redis Cluster: seed nodes (host:port,host:port,…); each partition's keys live on the node
    /// that serves its slot. REDIS_URL then only gives the scheme, user and password.
    #[arg(long, env = "CALLROUTER_REDIS_CLUSTER")]
    pub redis_cluster: Option<String>,
    /// Replicas that must have a transition before it is acknowledged to the client (Redis
    /// WAIT); 0: acknowledged once the primary has it.
    #[arg(long, env = "CALLROUTER_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,
    /// How long a transition waits for those replicas (ms) before the client is told it is not
    /// confirmed (RouteCall: not queued; other calls: UNAVAILABLE, retry with the same ids).
    #[arg(long, env = "CALLROUTER_REDIS_WAIT_MS", default_value_t = store::DEFAULT_REPLICA_WAIT_MS)]
    pub redis_wait_ms: u64,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    #[arg(long, env = "CALLROUTER_NAMESPACE", default_value = store::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// gRPC listen address.
    #[arg(long, env = "CALLROUTER_GRPC_ADDR", default_value = DEFAULT_GRPC_ADDR)]
    pub grpc_addr: SocketAddr,
    /// Admin HTTP listen address (/healthz, /readyz, /metrics).
    #[arg(long, env = "CALLROUTER_ADMIN_ADDR", default_value = DEFAULT_ADMIN_ADDR)]
    pub admin_addr: SocketAddr,
    /// Lease an accepted ticket gets when the agent's desk does not ask for one (seconds).
    #[arg(long, env = "CALLROUTER_LEASE_SECONDS", default_value_t = app::DEFAULT_LEASE_SECONDS, value_parser = clap::value_parser!(u32).range(5..=14_400))]
    pub lease_seconds: u32,
    /// How long completed and cancelled tickets are kept before they are purged (days).
    #[arg(long, env = "CALLROUTER_RETENTION_DAYS", default_value_t = store::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub retention_days: u32,
    /// Expired leases before a ticket escalates to its supervisor queue.
    #[arg(long, env = "CALLROUTER_MAX_ATTEMPTS", default_value_t = store::DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// How long an agent stays present without a heartbeat (seconds).
    #[arg(long, env = "CALLROUTER_PRESENCE_TTL_SECONDS", default_value_t = store::DEFAULT_PRESENCE_TTL_SECONDS, value_parser = clap::value_parser!(u32).range(2..=3600))]
    pub presence_ttl_seconds: u32,
    /// How long RouteCall waits for the store before answering with the decision alone (ms).
    #[arg(long, env = "CALLROUTER_STORE_DEADLINE_MS", default_value_t = app::DEFAULT_STORE_DEADLINE_MS, value_parser = clap::value_parser!(u64).range(10..=10_000))]
    pub store_deadline_ms: u64,
    /// How long any one store operation may take before it fails with a timeout (ms).
    #[arg(long, env = "CALLROUTER_STORE_TIMEOUT_MS", default_value_t = store::DEFAULT_OPERATION_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub store_timeout_ms: u64,
    /// Longest a call may take before DEADLINE_EXCEEDED (ms).
    #[arg(long, env = "CALLROUTER_REQUEST_TIMEOUT_MS", default_value_t = server::DEFAULT_REQUEST_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub request_timeout_ms: u64,
    /// Calls in flight at once; past that, UNAVAILABLE at once.
    #[arg(long, env = "CALLROUTER_MAX_IN_FLIGHT", default_value_t = server::DEFAULT_MAX_IN_FLIGHT, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_in_flight: u64,
    /// Calls in flight at once for one principal (token); past that, UNAVAILABLE at once.
    #[arg(long, env = "CALLROUTER_MAX_IN_FLIGHT_PER_PRINCIPAL", default_value_t = server::DEFAULT_MAX_IN_FLIGHT_PER_PRINCIPAL, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_in_flight_per_principal: u64,
    /// Open WatchTickets streams at once; past that, RESOURCE_EXHAUSTED.
    #[arg(long, env = "CALLROUTER_MAX_STREAMS", default_value_t = server::DEFAULT_MAX_STREAMS, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_streams: u64,
    /// Open WatchTickets streams at once for one principal; past that, RESOURCE_EXHAUSTED.
    #[arg(long, env = "CALLROUTER_MAX_STREAMS_PER_PRINCIPAL", default_value_t = server::DEFAULT_MAX_STREAMS_PER_PRINCIPAL, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_streams_per_principal: u64,
    /// Connections open at once; more are closed as they arrive.
    #[arg(long, env = "CALLROUTER_MAX_CONNECTIONS", default_value_t = server::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// TLS certificate chain of the API (PEM); with --tls-key, the API is served over TLS only.
    #[arg(long, env = "CALLROUTER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key of the API (PEM).
    #[arg(long, env = "CALLROUTER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA of client certificates (PEM): mutual TLS, required of the telephony platform.
    #[arg(long, env = "CALLROUTER_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// HTTP/2 streams one connection may open at once.
    #[arg(long, env = "CALLROUTER_MAX_STREAMS_PER_CONNECTION", default_value_t = server::DEFAULT_MAX_STREAMS_PER_CONNECTION, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_streams_per_connection: u32,
    /// How long in-flight calls may take to finish at shutdown (seconds).
    #[arg(long, env = "CALLROUTER_SHUTDOWN_GRACE_SECONDS", default_value_t = server::DEFAULT_SHUTDOWN_GRACE_SECONDS, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub shutdown_grace_seconds: u64,
    /// Metrics (`/metrics` on the admin listener): `on`, or `off` to measure what they cost.
    #[arg(long, env = "CALLROUTER_METRICS", value_enum, default_value_t = MetricsMode::On)]
    pub metrics: MetricsMode,
    /// Log format. Level from RUST_LOG (default info).
    #[arg(long, env = "CALLROUTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Threads that run the RPCs (default: one per core). One costs less CPU per call than
    /// several sharing the work, and serves fewer calls at once.
    #[arg(long, env = "CALLROUTER_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

/// Sets up logging: level from `RUST_LOG` (default `info`), JSON or text, written to standard
/// error off the request's path ([`crate::logging`]). Keep the guard until the process ends: it
/// writes the last lines.
pub fn init_logging(format: LogFormat) -> crate::logging::FlushOnExit {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, flush) = crate::logging::batched_stderr();
    // Colours only for a person at a terminal: a file or a log collector would get escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_timer(crate::logging::UtcMicros)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder.init(),
    }
    flush
}

impl ServeOptions {
    fn store_settings(&self) -> StoreSettings {
        StoreSettings {
            namespace: self.namespace.clone(),
            max_attempts: self.max_attempts,
            retention: Duration::from_secs(u64::from(self.retention_days) * 86_400),
            presence_ttl: Duration::from_secs(u64::from(self.presence_ttl_seconds)),
            operation_timeout: Duration::from_millis(self.store_timeout_ms),
            wait_replicas: self.redis_wait_replicas,
            replica_wait: Duration::from_millis(self.redis_wait_ms),
            ..StoreSettings::default()
        }
    }

    /// Fails closed: a server needs real secrets, or development mode on loopback addresses.
    fn app_settings(&self) -> Result<AppSettings, String> {
        let secrets = match (&self.secrets, self.dev) {
            (Some(path), _) => path.clone(),
            (None, true) => PathBuf::from(DEV_SECRETS),
            (None, false) => {
                return Err(
                    "no secrets file: give the hashes of your tokens with --secrets \
                            (CALLROUTER_SECRETS), or run with --dev for the published development \
                            tokens (loopback addresses only)"
                        .to_owned(),
                );
            }
        };
        if self.dev {
            for (what, addr) in [("gRPC", self.grpc_addr), ("admin", self.admin_addr)] {
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "development mode listens on loopback addresses only, not {addr} ({what}): \
                         its tokens are published"
                    ));
                }
            }
            tracing::warn!(
                "development mode: the published development tokens are accepted (loopback only)"
            );
        }
        Ok(AppSettings {
            default_lease: Duration::from_secs(u64::from(self.lease_seconds)),
            store_deadline: Duration::from_millis(self.store_deadline_ms),
            development: self.dev,
            ..AppSettings::new(self.config.clone(), secrets)
        })
    }

    /// The certificates for Redis, read from their files.
    fn redis_tls(&self) -> Result<RedisTls, String> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        Ok(RedisTls {
            ca: self.redis_ca.as_ref().map(read).transpose()?,
            client: match (&self.redis_cert, &self.redis_key) {
                (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                _ => None,
            },
        })
    }

    /// The API's TLS, loaded from its files, when asked for.
    fn tls(&self) -> Result<Option<Tls>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Tls::load(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            })
            .map(Some),
            _ => Ok(None),
        }
    }

    fn server_settings(&self, tls: Option<Tls>) -> ServerSettings {
        ServerSettings {
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            limits: Limits {
                in_flight: self.max_in_flight as usize,
                in_flight_per_principal: self.max_in_flight_per_principal as usize,
                streams: self.max_streams as usize,
                streams_per_principal: self.max_streams_per_principal as usize,
            },
            max_streams_per_connection: self.max_streams_per_connection,
            connections: ConnectionSettings {
                max_connections: self.max_connections as usize,
                first_bytes: server::FIRST_BYTES_WITHIN,
                tls,
            },
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            ..ServerSettings::default()
        }
    }
}

/// Listens for a signal from the call on. The signals the service handles are listened for
/// before it answers as ready: one sent as soon as it is ready must not meet the default action,
/// which ends the process at once (no drain) or, for SIGHUP, instead of reloading.
fn listen(kind: SignalKind, name: &str) -> Option<Signal> {
    match tokio::signal::unix::signal(kind) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for {name}");
            None
        }
    }
}

/// The next delivery of a signal listened for; never, when it could not be listened for (or
/// the runtime is stopping, when no more can come).
async fn next(signal: &mut Option<Signal>) {
    if let Some(signal) = signal
        && signal.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

/// Resolves on SIGINT or SIGTERM, both listened for from the call on.
fn termination() -> impl std::future::Future<Output = ()> {
    let mut interrupt = listen(SignalKind::interrupt(), "SIGINT");
    let mut term = listen(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = next(&mut interrupt) => tracing::info!("SIGINT received"),
            () = next(&mut term) => tracing::info!("SIGTERM received"),
        }
    }
}

/// Reloads the configuration, and the TLS certificates, on every SIGHUP (listened for from the
/// call on); a broken one is refused and logged, and what is in force keeps serving.
fn reload_on_hangup(app: App, tls: Option<Tls>) {
    let Some(mut hangups) = listen(SignalKind::hangup(), "SIGHUP") else {
        tracing::error!("reloads on SIGHUP are off: use Operations.ReloadConfig");
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            // Counted and logged by the reload itself, whatever its outcome.
            let _ = app.reload("SIGHUP").await;
            if let Some(tls) = &tls {
                match tls.reload() {
                    Ok(()) => tracing::info!("TLS certificates reloaded (SIGHUP)"),
                    Err(e) => {
                        tracing::error!(problem = %e, "TLS certificates refused; the ones in force stay")
                    }
                }
            }
        }
    });
}

/// The admin HTTP listener: `/healthz` (the process answers), `/readyz` (configuration loaded
/// and the store answering) and `/metrics` (Prometheus).
pub async fn admin(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let ready = {
        let app = app.clone();
        move || {
            let app = app.clone();
            async move {
                match app.store().ping().await {
                    Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
                    Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
                }
            }
        }
    };
    let metrics = app.metrics();
    let exposition = move || {
        let metrics = metrics.clone();
        async move {
            (
                [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                metrics.encode(),
            )
        }
    };
    let routes = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(exposition));
    if let Err(e) = axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "admin listener failed");
    }
}

/// Runs the service until SIGINT/SIGTERM.
pub async fn serve(options: ServeOptions) -> Result<(), String> {
    let app_settings = options.app_settings()?;
    let tls = options.tls()?;
    let started = std::time::Instant::now();
    let loaded = {
        let settings = app_settings.clone();
        tokio::task::spawn_blocking(move || Snapshot::load(&settings, 1))
            .await
            .map_err(|e| format!("loading the configuration failed: {e}"))?
            .map_err(|e| e.to_string())?
    };
    tracing::info!(
        cooperators = loaded.router.cooperators.len(),
        buildings = loaded.router.buildings.len(),
        load_ms = started.elapsed().as_millis() as u64,
        "configuration loaded"
    );
    let target = RedisTarget::from_options(
        options.redis_url.as_deref(),
        options.redis_sentinel.as_deref(),
        options.redis_sentinel_master.as_deref(),
        options.redis_cluster.as_deref(),
    )?;
    let store: Arc<dyn TicketStore> = match target {
        Some(target) => {
            match &target {
                RedisTarget::Url(_) => tracing::info!("queue store: Redis"),
                RedisTarget::Sentinel { master, .. } => {
                    tracing::info!(master = %master, "queue store: Redis through Sentinel")
                }
                RedisTarget::Cluster { nodes, .. } => {
                    tracing::info!(seeds = nodes.len(), "queue store: Redis Cluster")
                }
            }
            let tls = options.redis_tls()?;
            let store = RedisStore::connect_to(target, &tls, options.store_settings());
            Arc::new(store.map_err(|e| e.to_string())?)
        }
        None if options.redis_wait_replicas > 0 => {
            return Err(
                "--redis-wait-replicas needs Redis (REDIS_URL, --redis-sentinel or --redis-cluster)"
                    .to_owned(),
            );
        }
        None => Arc::new(MemoryStore::new(options.store_settings())),
    };
    let metrics = Arc::new(match options.metrics {
        MetricsMode::On => Metrics::new(),
        MetricsMode::Off => Metrics::disabled(),
    });
    let app = App::new(Arc::new(loaded), store, app_settings, metrics);
    let grpc = tokio::net::TcpListener::bind(options.grpc_addr)
        .await
        .map_err(|e| format!("cannot listen on {} (gRPC): {e}", options.grpc_addr))?;
    let admin_listener = tokio::net::TcpListener::bind(options.admin_addr)
        .await
        .map_err(|e| format!("cannot listen on {} (admin): {e}", options.admin_addr))?;
    tracing::info!(grpc = %options.grpc_addr, admin = %options.admin_addr, "listening");
    reload_on_hangup(app.clone(), tls.clone());
    let stop = termination();
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(admin(app.clone(), admin_listener, async move {
        let _ = admin_stopped.await;
    }));
    let result = run(app, grpc, options.server_settings(tls), stop).await;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    tracing::info!("stopped");
    result.map_err(|e| e.to_string())
}
