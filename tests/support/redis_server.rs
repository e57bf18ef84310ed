//! A `redis-server` of the test's own: a free loopback port, a temporary directory, AOF with
//! `appendfsync always`, the users of `deploy/redis/users.acl.example` (the store connects as
//! `callrouter`, with only the commands production grants it; checks from outside as `admin`), and
//! control over its life (stop, SIGKILL, restart on the same port and data). When none can be
//! started the test fails if `CI` is set, and is skipped with a message otherwise.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::ports::{free_port, wait_until_answering};

/// How long a redis-server or a sentinel just spawned has to answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The passwords of the test users (the production ACL's users, these passwords).
pub const CALLROUTER_PASSWORD: &str = "callrouter-test-password";
pub const ADMIN_PASSWORD: &str = "admin-test-password";
/// The Redis exporter's user (`deploy/redis/users.acl.example`).
pub const EXPORTER_PASSWORD: &str = "exporter-test-password";

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    fsync: &'static str,
    tls: Option<ServerTls>,
    /// The primary's port, for a replica.
    replica_of: Option<u16>,
    /// The cluster bus port, for a cluster node.
    cluster_bus: Option<u16>,
}

/// The replication user's password (`deploy/redis/users.acl.example`).
pub const REPLICATION_PASSWORD: &str = "replication-test-password";
/// The sentinels' user's password.
pub const SENTINEL_PASSWORD: &str = "sentinel-test-password";

/// TLS of a server: its certificate and key, and the CA of client certificates it requires.
#[derive(Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

impl RedisServer {
    /// Starts a server, or returns `None` (outside CI) when `redis-server` cannot run here.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with_fsync("always")
    }

    /// Starts a server with this AOF fsync policy (`always`, `everysec`, `no`).
    pub fn start_with_fsync(fsync: &'static str) -> Option<RedisServer> {
        RedisServer::start_as(fsync, None)
    }

    /// Starts a server that speaks TLS only (`rediss://`), requiring client certificates.
    pub fn start_tls(tls: ServerTls) -> Option<RedisServer> {
        RedisServer::start_as("always", Some(tls))
    }

    /// Starts a replica of the server on `primary` (authenticating as the `replication` user).
    pub fn start_replica_of(primary: u16) -> Option<RedisServer> {
        RedisServer::start_full("everysec", None, Some(primary))
    }

    fn start_as(fsync: &'static str, tls: Option<ServerTls>) -> Option<RedisServer> {
        RedisServer::start_full(fsync, tls, None)
    }

    /// Starts a node for a Redis Cluster (not yet joined to one).
    pub fn start_cluster_node() -> Option<RedisServer> {
        let bus = free_port();
        let mut server = RedisServer::start_full_with("everysec", None, None, Some(bus));
        if let Some(node) = server.as_mut() {
            node.cluster_bus = Some(bus);
        }
        server
    }

    fn start_full(
        fsync: &'static str,
        tls: Option<ServerTls>,
        replica_of: Option<u16>,
    ) -> Option<RedisServer> {
        RedisServer::start_full_with(fsync, tls, replica_of, None)
    }

    fn start_full_with(
        fsync: &'static str,
        tls: Option<ServerTls>,
        replica_of: Option<u16>,
        cluster_bus: Option<u16>,
    ) -> Option<RedisServer> {
        // A port found free may be taken before the server binds it (an outgoing connection's
        // ephemeral port): then another one is tried.
        let mut why = String::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("callrouter-redis-{}-{port}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temporary directory");
            let mut server = RedisServer {
                port,
                dir,
                child: None,
                fsync,
                tls: tls.clone(),
                replica_of,
                cluster_bus,
            };
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(e) => why = e,
            }
        }
        let message = format!(
            "cannot start redis-server for this test: {why} (install it: apt-get install redis-server)"
        );
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
        None
    }

    /// The production ACL with the test passwords in place of its placeholders.
    fn write_users(&self) -> Result<PathBuf, String> {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/redis/users.acl.example"
        );
        let mut users = std::fs::read_to_string(example).map_err(|e| format!("{example}: {e}"))?;
        for (user, password) in [
            ("callrouter", CALLROUTER_PASSWORD),
            ("admin", ADMIN_PASSWORD),
            ("replication", REPLICATION_PASSWORD),
            ("sentinel", SENTINEL_PASSWORD),
            ("exporter", EXPORTER_PASSWORD),
        ] {
            let placeholder = format!("<{user}-password-sha256>");
            users = users.replace(&placeholder, &sha256_hex(password));
        }
        let path = self.dir.join("users.acl");
        std::fs::write(&path, users).map_err(|e| e.to_string())?;
        Ok(path)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let users = self.write_users()?;
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(tls) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "yes",
                ])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.client_ca),
        };
        if let Some(primary) = self.replica_of {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        if let Some(bus) = self.cluster_bus {
            command
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--cluster-port", &bus.to_string()])
                .arg("--cluster-config-file")
                .arg(self.dir.join("nodes.conf"));
        }
        // Whoever becomes primary authenticates its replicas the same way after a failover.
        command.args([
            "--masteruser",
            "replication",
            "--masterauth",
            REPLICATION_PASSWORD,
        ]);
        let mut child = command
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", self.fsync])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--aclfile")
            .arg(&users)
            .args([
                "--maxmemory-policy",
                "noeviction",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        wait_until_answering(&mut child, ANSWER_WITHIN, || self.ping())
            .map_err(|e| format!("redis-server {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the server answers: `NOAUTH` to a `PING` in clear text (nobody is logged in by
    /// default), or a TCP connection for a TLS server.
    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.tls.is_some() {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"-NOAUTH"))
    }

    /// The store's URL: the `callrouter` user (over TLS to `localhost` for a TLS server).
    pub fn url(&self) -> String {
        match self.tls {
            None => self.url_at(([127, 0, 0, 1], self.port).into()),
            Some(_) => format!(
                "rediss://callrouter:{CALLROUTER_PASSWORD}@localhost:{}/",
                self.port
            ),
        }
    }

    /// The store's URL to this server reached at another address (through a proxy).
    pub fn url_at(&self, addr: SocketAddr) -> String {
        format!("redis://callrouter:{CALLROUTER_PASSWORD}@{addr}/")
    }

    /// Whether the server runs (it was not killed or stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: no shutdown, no final fsync beyond what `appendfsync always` already did.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server holds every connection and answers nothing until [`RedisServer::resume`]
    /// — a stalled Redis, as a long fork, a swapping host or a paused VM make one.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: the paused server goes on, running what it was sent meanwhile.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .args([which, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {which} {pid}");
    }

    /// Starts it again on the same port and data directory (reloading the AOF).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().expect("redis-server restarts");
    }

    /// Runs one command as `admin` with redis-cli, for checks from outside the store.
    pub fn command(&self, args: &[&str]) -> String {
        self.command_as(Some(("admin", ADMIN_PASSWORD)), args)
    }

    /// Runs one command with redis-cli as `user` (logged in as nobody when `None`); its answer.
    pub fn command_as(&self, user: Option<(&str, &str)>, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string(), "--no-auth-warning"]);
        if let Some((user, password)) = user {
            command.args(["--user", user, "--pass", password]);
        }
        let out = command.args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
