//! Clients that misbehave on purpose, written at the HTTP/2 frame level so that nothing in a
//! client library holds them back: streams opened and never finished (HEADERS without
//! END_STREAM, no body), bodies that are not protobuf, connections that never speak.

#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const DATA: u8 = 0x0;
const SETTINGS: u8 = 0x4;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// One header as an HPACK literal without indexing, new name (short strings only).
fn literal(name: &str, value: &str) -> Vec<u8> {
    assert!(name.len() < 127 && value.len() < 127, "short headers only");
    let mut out = vec![0x00, name.len() as u8];
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
    out
}

/// The header block of a gRPC call to `path`, with a bearer token when given.
fn grpc_headers(path: &str, token: Option<&str>) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.extend(literal(name, value));
    }
    if let Some(token) = token {
        block.extend(literal("authorization", &format!("Bearer {token}")));
    }
    block
}

/// A raw HTTP/2 connection.
pub struct RawConnection {
    stream: TcpStream,
    next_stream: u32,
}

impl RawConnection {
    /// Connects and says the preface and empty settings.
    pub async fn open(addr: SocketAddr) -> RawConnection {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.write_all(PREFACE).await.expect("preface");
        stream
            .write_all(&frame(SETTINGS, 0, 0, &[]))
            .await
            .expect("settings");
        RawConnection {
            stream,
            next_stream: 1,
        }
    }

    /// Opens `count` calls to `path` and never finishes them (no body, no END_STREAM); the server
    /// sees calls whose request never arrives.
    pub async fn open_idle_calls(&mut self, path: &str, token: Option<&str>, count: usize) {
        let block = grpc_headers(path, token);
        let mut bytes = Vec::new();
        for _ in 0..count {
            bytes.extend(frame(HEADERS, END_HEADERS, self.next_stream, &block));
            self.next_stream += 2;
        }
        self.stream.write_all(&bytes).await.expect("headers");
    }

    /// One call to `path` whose body is `message` (framed as gRPC: no compression, its length).
    pub async fn call_with_body(&mut self, path: &str, token: Option<&str>, message: &[u8]) {
        let block = grpc_headers(path, token);
        let id = self.next_stream;
        self.next_stream += 2;
        let mut body = vec![0u8];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(message);
        let mut bytes = frame(HEADERS, END_HEADERS, id, &block);
        bytes.extend(frame(DATA, END_STREAM, id, &body));
        self.stream.write_all(&bytes).await.expect("call");
    }

    /// Reads what the server sends for a while and returns it (to find a status in it).
    pub async fn read_for(&mut self, wait: std::time::Duration) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)).await
        {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buffer[..n]);
        }
        out
    }
}
