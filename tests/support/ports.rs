//! Loopback ports for the servers a test starts, and the wait until a server started on one
//! answers. A port found free stays free only until someone binds it, and the tests of one binary
//! run at once: a port is never handed out twice in one test binary, so that two servers starting
//! side by side are never given the same one; a server that finds its port taken anyway exits,
//! which the wait reports.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port free now and not handed out before in this test binary.
pub fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// Waits, for up to `within`, until a server just spawned `answers`: an error when it exits first
/// (its port taken, say) or does not answer in time (it is then killed).
pub fn wait_until_answering(
    child: &mut Child,
    within: Duration,
    mut answers: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        if answers() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}"));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("did not answer within {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
