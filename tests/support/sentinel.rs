//! A Redis Sentinel topology of the test's own on loopback: a primary, two replicas (the
//! production users, AOF), and three sentinels watching them with a short failure detection
//! (1 s), so that a killed primary is replaced within seconds.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::{free_port, wait_until_answering};
use super::redis_server::{ANSWER_WITHIN, RedisServer, SENTINEL_PASSWORD};

/// The master name the sentinels monitor.
pub const MASTER: &str = "callrouter";

pub struct Sentinels {
    pub primary: RedisServer,
    pub replicas: Vec<RedisServer>,
    sentinels: Vec<(u16, Child)>,
    dir: PathBuf,
}

impl Sentinels {
    /// Starts the topology, or returns `None` outside CI when Redis cannot run here.
    pub fn start() -> Option<Sentinels> {
        let primary = RedisServer::start_with_fsync("everysec")?;
        let replicas: Vec<RedisServer> = (0..2)
            .map(|_| RedisServer::start_replica_of(primary.port))
            .collect::<Option<_>>()?;
        let dir = std::env::temp_dir().join(format!(
            "callrouter-sentinels-{}-{}",
            std::process::id(),
            primary.port
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("sentinel directory");
        let mut topology = Sentinels {
            primary,
            replicas,
            sentinels: Vec::new(),
            dir,
        };
        topology.wait_for_replication();
        for n in 0..3 {
            let sentinel = topology.spawn_sentinel(n);
            topology.sentinels.push(sentinel);
        }
        topology.wait_for_sentinels();
        Some(topology)
    }

    /// Starts sentinel `n` on a free port under an id of its own, and returns once the port
    /// answers with that id. A port found free may be taken before the sentinel binds it (an
    /// outgoing connection's ephemeral port, another test's server): the sentinel then exits, and
    /// another port is tried.
    fn spawn_sentinel(&self, n: usize) -> (u16, Child) {
        let mut why = String::new();
        for _ in 0..5 {
            let port = free_port();
            let id = format!(
                "{n:08x}{:032x}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock after 1970")
                    .as_nanos()
            );
            let config = self.dir.join(format!("sentinel-{n}.conf"));
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\nsentinel myid {id}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 3000\n\
                     sentinel parallel-syncs {MASTER} 1\n\
                     sentinel auth-user {MASTER} sentinel\n\
                     sentinel auth-pass {MASTER} {SENTINEL_PASSWORD}\n",
                    dir = self.dir.display(),
                    primary = self.primary.port,
                ),
            )
            .expect("sentinel configuration");
            let mut child = Command::new("redis-server")
                .arg(&config)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel starts");
            match wait_until_answering(&mut child, ANSWER_WITHIN, || answers(port, &id)) {
                Ok(()) => return (port, child),
                Err(e) => why = format!("sentinel on port {port} {e}"),
            }
        }
        panic!("cannot start sentinel {n}: {why}");
    }

    /// The sentinels' addresses, as `--redis-sentinel` takes them.
    pub fn addresses(&self) -> String {
        self.sentinels
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What a sentinel says the primary is (`host:port`).
    pub fn named_primary(&self) -> Option<String> {
        let (port, _) = self.sentinels.first()?;
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &port.to_string(),
                "SENTINEL",
                "get-master-addr-by-name",
                MASTER,
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        Some(format!("{}:{}", lines.next()?, lines.next()?))
    }

    /// The master's configuration epoch: 0 before the first failover, raised by each failover the
    /// sentinels make (by more than one when an attempt had to be repeated), so never below the
    /// number of failovers.
    pub fn config_epoch(&self) -> u64 {
        let Some((port, _)) = self.sentinels.first() else {
            return 0;
        };
        let text = sentinel_master(*port);
        field(&text, "config-epoch")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no config-epoch in SENTINEL master:\n{text}"))
    }

    /// Waits until both replicas are in sync with the primary.
    pub fn wait_for_replication(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info = self.primary.command(&["INFO", "replication"]);
            if info.contains("connected_slaves:2") && info.matches("state=online").count() == 2 {
                return;
            }
            assert!(Instant::now() < deadline, "replicas never synced:\n{info}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every sentinel sees the primary, both replicas and the other sentinels.
    fn wait_for_sentinels(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for (port, _) in &self.sentinels {
            loop {
                let text = sentinel_master(*port);
                if field(&text, "num-slaves") == Some("2")
                    && field(&text, "num-other-sentinels") == Some("2")
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "sentinel {port} never saw the topology:\n{text}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// SIGKILL of the primary; returns once the sentinels name another one, with how long that
    /// took.
    pub fn kill_primary(&mut self) -> Duration {
        let before = format!("127.0.0.1:{}", self.primary.port);
        let started = Instant::now();
        self.primary.kill();
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(now) = self.named_primary().filter(|a| *a != before) {
                let _ = now;
                return started.elapsed();
            }
            assert!(Instant::now() < deadline, "no failover within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the sentinel on `port` says of the master (`SENTINEL master`, as redis-cli prints it: each
/// field's name on a line, its value on the next).
fn sentinel_master(port: u16) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "SENTINEL", "master", MASTER])
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of field `name` in [`sentinel_master`]'s text.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = text.lines();
    lines.find(|l| *l == name)?;
    lines.next()
}

/// Whether the sentinel on `port` is the one given `id` (not whoever else took the port).
fn answers(port: u16, id: &str) -> bool {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "SENTINEL", "MYID"])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == id)
}
