//! The application layer: the service's use-cases, one method each, between the edges (gRPC,
//! signals, the admin listener) and the core (routing) and the queue store. A use-case takes the
//! authenticated [`Principal`] and domain requests, asks [`policy`] whether the caller may, and
//! returns a domain result or one [`AppError`]. Nothing here knows about the transport.
//!
//! [`App`] is the one handle on shared state: the configuration snapshot in force (router, tokens,
//! generation — swapped whole by [`App::reload`], the only reload path), the store, the settings and
//! the metrics. It is a cheap `Clone` over `Arc`s; the snapshot lock is held only to clone an `Arc`.
//!
//! - [`calls`]: route, explain and cancel calls (the telephony platform);
//! - [`tickets`]: claim, accept, complete, release, transfer, get and list tickets (agents);
//! - [`watch`]: live ticket events across an agent's queues;
//! - [`operations`]: presence, queue statistics, agents, configuration reload;
//! - [`background`]: the reaper, and [`sampler`]: the metrics of the whole store; both read the
//!   snapshot on every pass.

pub mod background;
pub mod calls;
pub mod error;
pub mod feeds;
pub mod operations;
pub mod policy;
pub mod principal;
pub mod requests;
pub mod sampler;
pub mod tickets;
pub mod tokens;
pub mod watch;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch as signal;

pub use self::error::AppError;
use self::feeds::FeedHub;
use self::policy::UseCase;
use self::principal::Principal;
use self::tokens::Tokens;
use crate::diagnostics::{ConfigError, Problem};
use crate::metrics::instrumented::InstrumentedStore;
use crate::metrics::{Catalogue, Metrics};
use crate::routing::Router;
use crate::routing::model::Team;
use crate::routing::request::FieldError;
use crate::store::TicketStore;

/// Lease of an accepted ticket when the desk asks for none (seconds).
pub const DEFAULT_LEASE_SECONDS: u32 = 300;
/// How long `RouteCall` waits for the store before answering with the decision alone (ms).
pub const DEFAULT_STORE_DEADLINE_MS: u64 = 300;

/// A configuration in force: the router and the tokens that go with it.
pub struct Snapshot {
    pub router: Router,
    pub tokens: Tokens,
    /// 1 for the configuration loaded at start, then one more per successful reload.
    pub generation: u64,
    /// Digest of the configuration's files ([`crate::config::digest`]).
    pub digest: String,
}

impl Snapshot {
    /// Loads configuration and tokens from files (blocking I/O: call from a blocking context).
    pub fn load(settings: &AppSettings, generation: u64) -> Result<Snapshot, ConfigError> {
        let router = crate::config::load(&settings.config_path)?;
        let tokens = Tokens::load(&settings.secrets_path, &router, settings.development)?;
        let digest = crate::config::digest(&settings.config_path)?;
        Ok(Snapshot {
            router,
            tokens,
            generation,
            digest,
        })
    }

    /// The label values this configuration gives the metrics.
    pub fn catalogue(&self) -> Catalogue {
        let router = &self.router;
        let mut categories: Vec<String> = router
            .issue_types
            .iter()
            .map(|i| i.category().to_owned())
            .collect();
        categories.sort();
        categories.dedup();
        Catalogue {
            partitions: router.partitions(),
            queues: router.all_queues(),
            categories,
        }
    }
}

/// Settings of the application layer.
#[derive(Debug, Clone)]
pub struct AppSettings {
    pub config_path: PathBuf,
    pub secrets_path: PathBuf,
    /// Lease of an accepted ticket when the desk does not ask for one.
    pub default_lease: Duration,
    /// How long `RouteCall` waits for the store before answering with the decision alone.
    pub store_deadline: Duration,
    /// Development mode: a secrets file of published tokens is accepted.
    pub development: bool,
}

impl AppSettings {
    /// Settings for these files, with the default lease and store deadline.
    pub fn new(config_path: PathBuf, secrets_path: PathBuf) -> AppSettings {
        AppSettings {
            config_path,
            secrets_path,
            default_lease: Duration::from_secs(u64::from(DEFAULT_LEASE_SECONDS)),
            store_deadline: Duration::from_millis(DEFAULT_STORE_DEADLINE_MS),
            development: false,
        }
    }
}

/// The shared state of the service. Cheap to clone.
#[derive(Clone)]
pub struct App {
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    store: Arc<dyn TicketStore>,
    settings: Arc<AppSettings>,
    metrics: Arc<Metrics>,
    /// Turns true when the service shuts down: watches and background passes end.
    closing: Arc<signal::Sender<bool>>,
    /// Reloads one at a time, so that generations count up by one.
    reloading: Arc<tokio::sync::Mutex<()>>,
    /// The store's feeds as watches follow them: one reader per partition.
    feeds: FeedHub,
}

impl App {
    /// The state over a store; when metrics record, store operations are timed too.
    pub fn new(
        snapshot: Arc<Snapshot>,
        store: Arc<dyn TicketStore>,
        settings: AppSettings,
        metrics: Arc<Metrics>,
    ) -> App {
        metrics.config(snapshot.generation, &snapshot.digest);
        metrics.prime(&snapshot.catalogue());
        let store: Arc<dyn TicketStore> = if metrics.is_enabled() {
            Arc::new(InstrumentedStore::new(store, metrics.clone()))
        } else {
            store
        };
        App {
            snapshot: Arc::new(RwLock::new(snapshot)),
            feeds: FeedHub::new(store.clone()),
            store,
            settings: Arc::new(settings),
            metrics,
            closing: Arc::new(signal::channel(false).0),
            reloading: Arc::default(),
        }
    }

    /// Starts the shutdown: watches end, and so do background passes waiting on [`App::closed`].
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`App::close`] was called.
    pub async fn closed(&self) {
        let mut closing = self.closing.subscribe();
        // The sender lives as long as this handle, so the wait cannot fail while it is awaited.
        let _ = closing.wait_for(|closing| *closing).await;
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn store(&self) -> Arc<dyn TicketStore> {
        self.store.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The feed hub (how many store readers watches hold, for the tests and metrics).
    pub fn feeds(&self) -> &FeedHub {
        &self.feeds
    }

    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }

    /// The principal of a bearer token (`None`: the request carried none).
    pub fn authenticate(&self, token: Option<&str>) -> Result<Principal, AppError> {
        let token = token.ok_or(AppError::Unauthenticated(
            "missing authorization metadata (Bearer token)",
        ))?;
        self.current()
            .tokens
            .principal(token)
            .cloned()
            .ok_or(AppError::Unauthenticated("unknown token"))
    }

    /// Swaps in a configuration loaded from the files; a broken one is refused with its problems
    /// and the one in force keeps serving. Counted, logged once, and the new partitions' metrics
    /// primed. The one reload path: SIGHUP and `ReloadConfig` both come here.
    pub async fn reload(&self, trigger: &'static str) -> Result<Arc<Snapshot>, ConfigError> {
        let _one_at_a_time = self.reloading.lock().await;
        let settings = self.settings.clone();
        let generation = self.current().generation + 1;
        let loaded = tokio::task::spawn_blocking(move || Snapshot::load(&settings, generation))
            .await
            .unwrap_or_else(|e| {
                Err(Problem::new(
                    &self.settings.config_path,
                    None,
                    format!("reload task failed: {e}"),
                )
                .into())
            });
        match loaded {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                *self
                    .snapshot
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = snapshot.clone();
                self.metrics.prime(&snapshot.catalogue());
                self.metrics.config(snapshot.generation, &snapshot.digest);
                self.metrics.reload(true);
                tracing::info!(
                    trigger,
                    generation = snapshot.generation,
                    "configuration reloaded"
                );
                Ok(snapshot)
            }
            Err(e) => {
                self.metrics.reload(false);
                tracing::warn!(
                    trigger,
                    problems = e.problems.len(),
                    first = %e.problems.first().map(ToString::to_string).unwrap_or_default(),
                    "configuration reload refused; the one in force keeps serving"
                );
                Err(e)
            }
        }
    }
}

/// Refuses a caller whose role may not call the use-case.
fn allow(principal: &Principal, use_case: UseCase) -> Result<(), AppError> {
    policy::may_call(principal, use_case).map_err(AppError::from)
}

/// The teams named in a request (all of `default` when none are named), each known to the router,
/// each once; a request naming more than [`requests::MAX_TEAMS_PER_REQUEST`] teams is refused.
fn teams_named<'r>(
    router: &'r Router,
    field: &str,
    named: &[String],
    default: &[String],
) -> Result<Vec<&'r Team>, FieldError> {
    let ids = if named.is_empty() { default } else { named };
    let mut teams: Vec<&Team> = Vec::new();
    for id in ids {
        let team = router
            .team(id)
            .ok_or_else(|| FieldError::new(field, format!("unknown team '{id}'")))?;
        if !teams.iter().any(|t| t.id == team.id) {
            teams.push(team);
        }
        if teams.len() > requests::MAX_TEAMS_PER_REQUEST {
            return Err(FieldError::new(
                field,
                format!("names more than {} teams", requests::MAX_TEAMS_PER_REQUEST),
            ));
        }
    }
    Ok(teams)
}
