//! Loopback ports for the servers a test starts. A port found free stays free only until someone
//! binds it, and the tests of one binary run at once: a port is never handed out twice in one test
//! binary, so that two servers starting side by side are never given the same one.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

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
