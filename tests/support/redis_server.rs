//! A `redis-server` of the test's own: a free loopback port, a temporary directory, AOF with
//! `appendfsync always`, and control over its life (stop, SIGKILL, restart on the same port and
//! data). When none can be started the test fails if `CI` is set, and is skipped with a message
//! otherwise.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    fsync: &'static str,
}

impl RedisServer {
    /// Starts a server, or returns `None` (outside CI) when `redis-server` cannot run here.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with_fsync("always")
    }

    /// Starts a server with this AOF fsync policy (`always`, `everysec`, `no`).
    pub fn start_with_fsync(fsync: &'static str) -> Option<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let dir =
            std::env::temp_dir().join(format!("callrouter-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let mut server = RedisServer {
            port,
            dir,
            child: None,
            fsync,
        };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(why) => {
                let message = format!(
                    "cannot start redis-server for this test: {why} (install it: apt-get install redis-server)"
                );
                if std::env::var_os("CI").is_some() {
                    panic!("{message}");
                }
                eprintln!("SKIPPED: {message}");
                None
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", self.fsync])
            .arg("--dir")
            .arg(&self.dir)
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
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("redis-server exited with {status}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not answer within 10 s".to_owned())
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
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

    /// Runs one command with redis-cli-like framing, for checks from outside the store.
    pub fn command(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
