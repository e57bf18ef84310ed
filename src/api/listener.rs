//! Accepting connections. At most `max_connections` are open at once (more are closed as they
//! arrive); a connection that does not speak — no TLS handshake, no HTTP/2 preface — within
//! `first_bytes` is closed; with TLS, the handshake runs off the accept loop and the certificates
//! can be reloaded without a restart. With a client CA, clients may present a certificate; the
//! connection records whether one was verified, so that admission can ask it of the telephony
//! platform.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tonic::codegen::tokio_stream::Stream;
use tonic::transport::server::Connected;

use super::gather::Gathered;

/// How connections are accepted.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// How long a new connection may stay silent (no TLS handshake, no HTTP/2 preface).
    pub first_bytes: Duration,
    /// TLS, when the API is served over it.
    pub tls: Option<Tls>,
}

/// The files of the server's TLS: its certificate chain and key, and the CA of client
/// certificates (mutual TLS), all PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The server's TLS, reloadable: a new acceptor replaces the old one for new connections.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    acceptor: Arc<RwLock<TlsAcceptor>>,
}

impl Tls {
    /// Loads the files; a problem names the file.
    pub fn load(files: TlsFiles) -> Result<Tls, String> {
        let acceptor = acceptor(&files)?;
        Ok(Tls {
            files,
            acceptor: Arc::new(RwLock::new(acceptor)),
        })
    }

    /// Loads the files again (renewed certificates); on a problem the TLS in force stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = acceptor(&self.files)?;
        *self
            .acceptor
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// Whether client certificates are verified (mutual TLS).
    pub fn verifies_clients(&self) -> bool {
        self.files.client_ca.is_some()
    }

    fn current(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let named = |path: &PathBuf, e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| named(&files.cert, &e))?;
    if chain.is_empty() {
        return Err(named(&files.cert, &"no certificate in this file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| named(&files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| named(ca, &e))? {
                roots
                    .add(cert.map_err(|e| named(ca, &e))?)
                    .map_err(|e| named(ca, &e))?;
            }
            // Certificates are asked of the telephony platform only: others may connect without.
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| named(ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| named(&files.cert, &e))?;
    // HTTP/2 for gRPC; HTTP/1.1 for browsers that load the desk without it (gRPC-web works on both).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What the server knows of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    /// The client presented a certificate that the client CA verified.
    pub client_certificate: bool,
}

/// A connection as served: plain or TLS, its writes gathered ([`Gathered`]), holding its place
/// among the open connections, closed if it does not speak in time.
pub struct Conn {
    io: Gathered<Io>,
    info: ConnInfo,
    /// Until the first bytes of the protocol arrive.
    silence: Option<Pin<Box<Sleep>>>,
    _place: OwnedSemaphorePermit,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(silence) = self.silence.as_mut()
            && silence.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client said nothing",
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.silence = None;
        }
        read
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, data),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections a listener accepts, as a stream for the server; dropping it stops accepting.
pub struct Incoming {
    connections: mpsc::Receiver<Result<Conn, io::Error>>,
    acceptor: tokio::task::AbortHandle,
}

impl Stream for Incoming {
    type Item = Result<Conn, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections.poll_recv(cx)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// Accepts connections on `listener` as `settings` say.
pub fn accept(listener: TcpListener, settings: ConnectionSettings) -> Incoming {
    let (sender, connections) = mpsc::channel(256);
    let places = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let acceptor = tokio::spawn(async move {
        let mut refusing = false;
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(place) = places.clone().try_acquire_owned() else {
                if !refusing {
                    tracing::warn!(
                        max = settings.max_connections,
                        "connections refused: too many open"
                    );
                    refusing = true;
                }
                continue;
            };
            refusing = false;
            tokio::spawn(open(
                stream,
                remote,
                place,
                settings.clone(),
                sender.clone(),
            ));
        }
    });
    Incoming {
        connections,
        acceptor: acceptor.abort_handle(),
    }
}

/// Makes a connection ready to serve (the TLS handshake, bounded in time) and hands it over.
async fn open(
    stream: TcpStream,
    remote: SocketAddr,
    place: OwnedSemaphorePermit,
    settings: ConnectionSettings,
    sender: mpsc::Sender<Result<Conn, io::Error>>,
) {
    // Small replies must leave at once: without TCP_NODELAY, Nagle's algorithm and delayed ACKs
    // hold them for ~40 ms.
    let _ = stream.set_nodelay(true);
    let (io, client_certificate) = match &settings.tls {
        None => (Io::Plain(stream), false),
        Some(tls) => {
            let handshake = tls.current().accept(stream);
            match tokio::time::timeout(settings.first_bytes, handshake).await {
                Ok(Ok(stream)) => {
                    let verified = stream.get_ref().1.peer_certificates().is_some();
                    (Io::Tls(Box::new(stream)), verified)
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            }
        }
    };
    let conn = Conn {
        io: Gathered::new(io),
        info: ConnInfo {
            remote: Some(remote),
            client_certificate,
        },
        silence: Some(Box::pin(tokio::time::sleep(settings.first_bytes))),
        _place: place,
    };
    let _ = sender.send(Ok(conn)).await;
}
