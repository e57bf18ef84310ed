//! Helpers for tests that run the `callrouter` binary: a free loopback port to give it, a plain
//! HTTP GET against its admin listener, and a wait until it is ready.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::Duration;

pub use super::ports::free_port;
use super::ports::wait_until_answering;

/// The whole HTTP response to `GET path` on the loopback `port`, or `None` if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Waits until the server `child` answers `GET /readyz` on its admin `port` with 200, for up to
/// `within`; says why not when it exits first or does not get ready in time (it is then killed).
pub fn until_ready(child: &mut Child, port: u16, within: Duration) -> Result<(), String> {
    wait_until_answering(child, within, || {
        http_get(port, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    })
    .map_err(|e| format!("callrouter serve {e} (GET /readyz)"))
}
