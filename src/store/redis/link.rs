//! Where the store's connections go, and how they follow a failover.
//!
//! [`RedisTarget::Url`] is one Redis at a fixed address: its connection reconnects by itself.
//! [`RedisTarget::Sentinel`] is the primary that Redis Sentinel names for a master: the link asks
//! the sentinels for it (and checks with `ROLE` that it is a primary) at first use, and again
//! whenever an operation fails in a way a failover explains — the connection is lost or refused,
//! it times out, or the server answers `READONLY` (an old primary demoted to a replica). When the
//! sentinels name another address, every later operation goes there: a new shared connection, and
//! new pools of blocking-read and dedicated connections (the old ones are dropped). Failovers seen
//! are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, RedisError, RedisFuture};

use super::RedisTls;
use crate::store::StoreError;

/// Which Redis the store uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis: `redis://user:password@host:port/db`, or `rediss://` for TLS.
    Url(String),
    /// The primary Sentinel names for `master`. `url` gives what to connect with — scheme (TLS or
    /// not), user, password, database — its host being replaced by the primary's.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        url: String,
    },
    /// A Redis Cluster, found from its seed nodes (`host:port`); `url` gives what to connect
    /// with (scheme, user, password), its host being replaced by each node's.
    Cluster { nodes: Vec<String>, url: String },
}

impl RedisTarget {
    /// A target from the command line's settings: a URL, or sentinels (with the master's name,
    /// and the URL only for credentials). Anything else is refused with what to give instead.
    pub fn from_options(
        url: Option<&str>,
        sentinels: Option<&str>,
        master: Option<&str>,
        cluster: Option<&str>,
    ) -> Result<Option<RedisTarget>, String> {
        if let Some(list) = cluster {
            if sentinels.is_some() || master.is_some() {
                return Err(
                    "--redis-cluster and --redis-sentinel are two modes: give one".to_owned(),
                );
            }
            let nodes = host_ports("--redis-cluster", "nodes", list)?;
            return Ok(Some(RedisTarget::Cluster {
                nodes,
                url: url.unwrap_or("redis://").to_owned(),
            }));
        }
        match (sentinels, master) {
            (None, None) => Ok(url.map(|u| RedisTarget::Url(u.to_owned()))),
            (Some(list), Some(master)) => {
                let sentinels = host_ports("--redis-sentinel", "sentinels", list)?;
                if master.trim().is_empty() {
                    return Err("--redis-sentinel-master must name the master".to_owned());
                }
                Ok(Some(RedisTarget::Sentinel {
                    sentinels,
                    master: master.trim().to_owned(),
                    url: url.unwrap_or("redis://").to_owned(),
                }))
            }
            (Some(_), None) => Err(
                "--redis-sentinel needs --redis-sentinel-master (the name the sentinels monitor)"
                    .to_owned(),
            ),
            (None, Some(_)) => Err(
                "--redis-sentinel-master needs --redis-sentinel (the sentinels' host:port list)"
                    .to_owned(),
            ),
        }
    }
}

/// A `host:port,host:port` list, each entry checked.
fn host_ports(flag: &str, what: &str, list: &str) -> Result<Vec<String>, String> {
    let entries: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if entries.is_empty() || entries.iter().any(|s| !s.contains(':')) {
        return Err(format!(
            "{flag} must list {what} as host:port,host:port (got '{list}')"
        ));
    }
    Ok(entries)
}

/// A connection to the Redis in use: one server (reconnecting by itself, or of an operation's
/// own), or a cluster (following MOVED and ASK, one connection per node).
#[derive(Clone)]
pub(super) enum Conn {
    Managed(ConnectionManager),
    Own(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Conn::Managed(c) => c.req_packed_command(cmd),
            Conn::Own(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Managed(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Own(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Managed(c) => c.get_db(),
            Conn::Own(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How a primary opens connections of an operation's own.
enum Opener {
    Server(Client),
    Cluster(ClusterClient),
}

/// The Redis in use: its address, its shared connection, and connections for the operations that
/// must not share one (blocking reads, waits for replicas).
pub(super) struct Primary {
    /// `host:port`, or `cluster` for a cluster.
    pub address: String,
    pub conn: Conn,
    opener: Opener,
    /// Idle connections for blocking reads.
    pub blocking: Mutex<Vec<Conn>>,
    /// Idle connections for transitions that wait for replicas (`WAIT` holds its connection).
    pub dedicated: Mutex<Vec<Conn>>,
}

impl Primary {
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// A new connection of an operation's own, without the client's response timeout (the
    /// caller bounds the wait).
    pub async fn open(&self, connect_timeout: Duration) -> redis::RedisResult<Conn> {
        match &self.opener {
            Opener::Server(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(None);
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Conn::Own(conn))
            }
            Opener::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(Duration::from_secs(3600));
                let conn = client.get_async_connection_with_config(config).await?;
                Ok(Conn::Cluster(conn))
            }
        }
    }
}

/// How often the sentinels are asked again at most, while operations keep failing.
const ASK_AGAIN_AFTER: Duration = Duration::from_millis(250);

pub(super) struct Link {
    target: RedisTarget,
    tls: RedisTls,
    timeout: Duration,
    current: RwLock<Option<Arc<Primary>>>,
    /// One resolution at a time, and when the last one was.
    resolving: tokio::sync::Mutex<Option<Instant>>,
    failovers: AtomicU64,
}

impl Link {
    /// A link to the target; a fixed URL gets its (lazy) connection at once, Sentinel's primary
    /// is found at first use.
    pub fn new(target: RedisTarget, tls: RedisTls, timeout: Duration) -> Result<Link, StoreError> {
        let current = match &target {
            RedisTarget::Url(url) => Some(Arc::new(primary(url, &tls, timeout)?)),
            RedisTarget::Sentinel { url, .. } | RedisTarget::Cluster { url, .. } => {
                // Refuse a malformed URL at start, not at the first call (its host is replaced).
                tls.client(&with_address(url, "localhost:6379"))?;
                None
            }
        };
        Ok(Link {
            target,
            tls,
            timeout,
            current: RwLock::new(current),
            resolving: tokio::sync::Mutex::new(None),
            failovers: AtomicU64::new(0),
        })
    }

    /// The primary in use, found through the sentinels when none is known yet.
    pub async fn primary(&self) -> Result<Arc<Primary>, StoreError> {
        if let Some(primary) = self.known() {
            return Ok(primary);
        }
        self.resolve(None).await
    }

    fn known(&self) -> Option<Arc<Primary>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The address in use, if known (none for a cluster: each partition has its own node).
    pub fn address(&self) -> Option<String> {
        self.known()
            .filter(|p| !p.is_cluster())
            .map(|p| p.address.clone())
    }

    /// Failovers seen since start (the sentinels named another primary).
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// An operation on `used` failed in a way a failover may explain: asks the sentinels again
    /// (a fixed URL has nothing to ask).
    pub async fn recheck(&self, used: &Arc<Primary>) {
        if matches!(self.target, RedisTarget::Sentinel { .. }) {
            let _ = self.resolve(Some(used)).await;
        }
    }

    /// Asks the sentinels for the primary and switches to it when it moved. `seen` is the primary
    /// an operation failed on: if another resolution already replaced it, nothing more is done.
    async fn resolve(&self, seen: Option<&Arc<Primary>>) -> Result<Arc<Primary>, StoreError> {
        let (sentinels, master, url) = match &self.target {
            RedisTarget::Sentinel {
                sentinels,
                master,
                url,
            } => (sentinels, master, url),
            RedisTarget::Cluster { nodes, url } => return self.join_cluster(nodes, url).await,
            RedisTarget::Url(_) => {
                return self
                    .known()
                    .ok_or_else(|| StoreError::Unavailable("no Redis".to_owned()));
            }
        };
        let mut last = self.resolving.lock().await;
        let current = self.known();
        if let (Some(now), Some(seen)) = (&current, seen) {
            if !Arc::ptr_eq(now, seen) {
                return Ok(now.clone());
            }
        }
        if let (Some(now), Some(at)) = (&current, *last) {
            if at.elapsed() < ASK_AGAIN_AFTER {
                return Ok(now.clone());
            }
        }
        *last = Some(Instant::now());
        let address = self.ask(sentinels, master, url).await?;
        if let Some(now) = current.filter(|p| p.address == address) {
            return Ok(now);
        }
        let next = Arc::new(primary(
            &with_address(url, &address),
            &self.tls,
            self.timeout,
        )?);
        let previous = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(next.clone());
        if let Some(previous) = previous {
            self.failovers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(from = %previous.address, to = %address, "Redis primary changed (failover): following it");
        } else {
            tracing::info!(primary = %address, "Redis primary found through Sentinel");
        }
        Ok(next)
    }

    /// Connects to the cluster (once: the cluster client follows its topology by itself),
    /// through the first seed nodes that answer.
    async fn join_cluster(&self, nodes: &[String], url: &str) -> Result<Arc<Primary>, StoreError> {
        let _one_at_a_time = self.resolving.lock().await;
        if let Some(primary) = self.known() {
            return Ok(primary);
        }
        let seeds: Vec<String> = nodes.iter().map(|n| with_address(url, n)).collect();
        let invalid = |e: RedisError| StoreError::Invalid(format!("Redis Cluster: {e}"));
        let mut builder = ClusterClient::builder(seeds)
            .connection_timeout(self.timeout)
            .response_timeout(self.timeout)
            .retries(2);
        if let Some(ca) = &self.tls.ca {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: self.tls.client.clone().map(|(client_cert, client_key)| {
                    redis::ClientTlsConfig {
                        client_cert,
                        client_key,
                    }
                }),
                root_cert: Some(ca.clone()),
            });
        }
        let client = builder.build().map_err(invalid)?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(|e| StoreError::Unavailable(format!("Redis Cluster: {e}")))?;
        let primary = Arc::new(Primary {
            address: "cluster".to_owned(),
            conn: Conn::Cluster(conn),
            opener: Opener::Cluster(client),
            blocking: Mutex::default(),
            dedicated: Mutex::default(),
        });
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(primary.clone());
        tracing::info!(seeds = nodes.len(), "connected to the Redis Cluster");
        Ok(primary)
    }

    /// The primary's address: the first sentinel that names one whose `ROLE` is master.
    async fn ask(
        &self,
        sentinels: &[String],
        master: &str,
        url: &str,
    ) -> Result<String, StoreError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut why = String::from("no sentinel answered");
        for sentinel in sentinels {
            let named = async {
                let client = Client::open(format!("redis://{sentinel}/"))?;
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(master)
                    .query_async::<Option<(String, u16)>>(&mut conn)
                    .await
            };
            let address = match named.await {
                Ok(Some((host, port))) => format!("{host}:{port}"),
                Ok(None) => {
                    why = format!("sentinel {sentinel} monitors no master named '{master}'");
                    continue;
                }
                Err(e) => {
                    why = format!("sentinel {sentinel}: {e}");
                    continue;
                }
            };
            let role = async {
                let client = self.tls.client(&with_address(url, &address)).map_err(|e| {
                    RedisError::from((redis::ErrorKind::InvalidClientConfig, "URL", e.to_string()))
                })?;
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                redis::cmd("ROLE")
                    .query_async::<redis::Value>(&mut conn)
                    .await
            };
            match role.await {
                Ok(redis::Value::Array(parts))
                    if parts.first().is_some_and(
                        |r| matches!(r, redis::Value::BulkString(b) if b == b"master"),
                    ) =>
                {
                    return Ok(address);
                }
                Ok(_) => why = format!("{address}, named by {sentinel}, is not a primary yet"),
                Err(e) => why = format!("{address}, named by {sentinel}: {e}"),
            }
        }
        Err(StoreError::Unavailable(format!(
            "Sentinel names no reachable primary for '{master}': {why}"
        )))
    }
}

/// A primary's connections at `url`: the shared one connects lazily and reconnects by itself.
fn primary(url: &str, tls: &RedisTls, timeout: Duration) -> Result<Primary, StoreError> {
    let client = tls.client(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let address = client.get_connection_info().addr().to_string();
    Ok(Primary {
        address,
        conn: Conn::Managed(conn),
        opener: Opener::Server(client),
        blocking: Mutex::default(),
        dedicated: Mutex::default(),
    })
}

/// Errors a failover explains: the connection is lost or refused, or the server became a replica.
pub(super) fn failover_may_explain(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

/// `url` with its host and port replaced by `address` (`host:port`): scheme, user, password and
/// database are kept.
pub fn with_address(url: &str, address: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, _)) => format!("{scheme}://{credentials}@{address}{path}"),
        None => format!("{scheme}://{address}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_address_replaces_the_urls_host_only() {
        assert_eq!(
            with_address("redis://callrouter:s3cret@primary:6379/0", "10.0.0.2:6380"),
            "redis://callrouter:s3cret@10.0.0.2:6380/0"
        );
        assert_eq!(
            with_address("rediss://u:p%40x@h", "b:1"),
            "rediss://u:p%40x@b:1"
        );
        assert_eq!(with_address("redis://", "a:2"), "redis://a:2");
    }

    #[test]
    fn one_mode_at_a_time_and_whole() {
        assert_eq!(
            RedisTarget::from_options(Some("redis://h/"), None, None, None),
            Ok(Some(RedisTarget::Url("redis://h/".to_owned())))
        );
        assert_eq!(RedisTarget::from_options(None, None, None, None), Ok(None));
        let sentinel = RedisTarget::from_options(None, Some("a:1, b:2"), Some("callrouter"), None);
        assert_eq!(
            sentinel,
            Ok(Some(RedisTarget::Sentinel {
                sentinels: vec!["a:1".to_owned(), "b:2".to_owned()],
                master: "callrouter".to_owned(),
                url: "redis://".to_owned(),
            }))
        );
        for (sentinels, master) in [
            (Some("a:1"), None),
            (None, Some("m")),
            (Some("a"), Some("m")),
        ] {
            let refused = RedisTarget::from_options(None, sentinels, master, None);
            assert!(refused.is_err(), "{sentinels:?} {master:?}");
        }
        assert_eq!(
            RedisTarget::from_options(Some("redis://u:p@x/"), None, None, Some("a:1,b:2")),
            Ok(Some(RedisTarget::Cluster {
                nodes: vec!["a:1".to_owned(), "b:2".to_owned()],
                url: "redis://u:p@x/".to_owned(),
            }))
        );
        assert!(RedisTarget::from_options(None, Some("a:1"), Some("m"), Some("b:2")).is_err());
        assert!(RedisTarget::from_options(None, None, None, Some("nowhere")).is_err());
    }

    #[test]
    fn sentinel_and_cluster_take_a_url_without_host() {
        let timeout = Duration::from_millis(100);
        for target in [
            RedisTarget::Cluster {
                nodes: vec!["127.0.0.1:7000".to_owned()],
                url: "redis://".to_owned(),
            },
            RedisTarget::Sentinel {
                sentinels: vec!["127.0.0.1:26379".to_owned()],
                master: "callrouter".to_owned(),
                url: "redis://callrouter:pw@/0".to_owned(),
            },
        ] {
            assert!(
                Link::new(target.clone(), RedisTls::default(), timeout).is_ok(),
                "{target:?}"
            );
        }
    }
}
