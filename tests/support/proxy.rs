//! A TCP proxy between the server and its Redis that can hold Redis's answers back: requests go
//! through at once, answers wait while the proxy holds them, then follow in order. A request whose
//! answer is held past the client's timeout has run in Redis, but its client never hears so — an
//! answer lost, as a network fault or a killed instance loses one.

#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    holding: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port to the server at `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (holding, held) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, None));
                tokio::spawn(forward(server_read, client_write, Some(held.clone())));
            }
        });
        Proxy {
            addr,
            holding,
            task,
        }
    }

    /// Holds every answer from now on.
    pub fn hold(&self) {
        self.holding.send_replace(true);
    }

    /// Lets the held answers go, in order, and every later one.
    pub fn release(&self) {
        self.holding.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies bytes one way; with a gate, each chunk waits while the gate is held.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut gate: Option<watch::Receiver<bool>>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(gate) = gate.as_mut()
            && gate.wait_for(|held| !*held).await.is_err()
        {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
