//! The middleware every RPC goes through:
//! - admission ([`super::admission`]): authentication before any shared capacity, then budgets
//!   per instance and per principal, refused at once past them (`UNAVAILABLE`, or
//!   `RESOURCE_EXHAUSTED` for streams) rather than queued behind the others;
//! - a per-call timeout (`DEADLINE_EXCEEDED`);
//! - a handler that panics answers `INTERNAL`, logged and counted, and the server goes on;
//! - a body the codec cannot read is `INVALID_ARGUMENT` (too large: `RESOURCE_EXHAUSTED`), not
//!   `INTERNAL`: a client's mistake must not page the operators;
//! - one metric sample and one log line per call, when it ends (a stream when it ends), with the
//!   messages it received and sent.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;
use tonic::codegen::{Bytes, http};
use tower::{Layer, Service};

use super::admission::Admission;
use super::listener::ConnInfo;
use crate::metrics::{Metrics, RpcLabels, rpc_labels};

/// Admission, per-call timeout, panics and codec errors mapped, metrics and one log line per call.
#[derive(Clone)]
pub struct RpcLayer {
    admission: Admission,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl RpcLayer {
    pub fn new(admission: Admission, timeout: Duration, metrics: Arc<Metrics>) -> RpcLayer {
        RpcLayer {
            admission,
            timeout,
            metrics,
        }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcService<S> {
    inner: S,
    layer: RpcLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for RpcService<S>
where
    S: Service<http::Request<Incoming<B>>, Response = http::Response<tonic::body::Body>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let tally = Tally {
            metrics: self.layer.metrics.clone(),
            labels: rpc_labels(path),
            path: path.to_owned(),
            started: Instant::now(),
            received: Arc::default(),
        };
        tally.metrics.rpc_started(&tally.labels);
        let authorization = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default());
        let client_certificate = request
            .extensions()
            .get::<ConnInfo>()
            .is_some_and(|c| c.client_certificate);
        let admitted =
            match self
                .layer
                .admission
                .admit(&tally.path, authorization, client_certificate)
            {
                Ok(admitted) => admitted,
                Err(refused) => {
                    let response = refused.into_http();
                    return Box::pin(async { Ok(tally.follow(response, Vec::new())) });
                }
            };
        let received = tally.received.clone();
        let mut request = request.map(|body| Incoming {
            body,
            framing: Framing::default(),
            received,
        });
        if let Some(principal) = admitted.principal {
            request.extensions_mut().insert(principal);
        }
        let call = CatchPanic(Box::pin(self.inner.call(request)));
        let timeout = self.layer.timeout;
        let (call_permits, stream_permits) = (admitted.call, admitted.stream);
        Box::pin(async move {
            let response = match tokio::time::timeout(timeout, call).await {
                Ok(Ok(result)) => read_errors_as_client_errors(result?),
                Ok(Err(())) => {
                    tracing::error!(method = %tally.path, "the handler panicked: INTERNAL");
                    Status::internal("internal error").into_http()
                }
                Err(_) => Status::deadline_exceeded(format!(
                    "the call took more than {} ms",
                    timeout.as_millis()
                ))
                .into_http(),
            };
            drop(call_permits);
            // A stream holds its permits until it ends.
            Ok(tally.follow(response, stream_permits))
        })
    }
}

/// What the metrics and the log line of one RPC need, from its start to its end.
struct Tally {
    metrics: Arc<Metrics>,
    labels: RpcLabels,
    path: String,
    started: Instant,
    /// Messages read from the request body so far.
    received: Arc<AtomicU64>,
}

impl Tally {
    /// The response, followed to its end: counted and logged once, with its real code, when its
    /// body ends or is dropped.
    fn follow(
        self,
        response: http::Response<tonic::body::Body>,
        permits: Vec<OwnedSemaphorePermit>,
    ) -> http::Response<tonic::body::Body> {
        let early = response.headers().get("grpc-status").and_then(code_of);
        response.map(|body| {
            tonic::body::Body::new(Outgoing {
                body,
                tally: self,
                framing: Framing::default(),
                code: early,
                _permits: permits,
            })
        })
    }
}

/// A `grpc-status` value as a code.
pub(crate) fn code_of(value: &http::HeaderValue) -> Option<tonic::Code> {
    let n = value.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(n))
}

/// Counts the messages of a gRPC body: each is a 5-byte prefix (compression flag, big-endian
/// length) and its bytes, in chunks cut anywhere.
#[derive(Debug, Default)]
struct Framing {
    prefix: usize,
    length: [u8; 4],
    skip: usize,
    messages: u64,
}

impl Framing {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            if self.prefix > 0 {
                self.length[self.prefix - 1] = data[0];
            }
            self.prefix += 1;
            data = &data[1..];
            if self.prefix == 5 {
                self.messages += 1;
                self.skip = u32::from_be_bytes(self.length) as usize;
                self.prefix = 0;
            }
        }
    }
}

/// A request body that counts the messages the handler reads.
pub struct Incoming<B> {
    body: B,
    framing: Framing,
    received: Arc<AtomicU64>,
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for Incoming<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let before = self.framing.messages;
                self.framing.feed(data);
                let read = self.framing.messages - before;
                self.received.fetch_add(read, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A response body that counts the messages sent, reads the code its trailers carry, holds its
/// stream's permits, and counts and logs the RPC when it is dropped: ended with a code, or cut
/// short (the client left: `CANCELLED`).
struct Outgoing {
    body: tonic::body::Body,
    tally: Tally,
    framing: Framing,
    code: Option<tonic::Code>,
    _permits: Vec<OwnedSemaphorePermit>,
}

impl http_body::Body for Outgoing {
    type Data = Bytes;
    type Error = <tonic::body::Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.framing.feed(data);
            } else if let Some(code) = frame
                .trailers_ref()
                .and_then(|t| t.get("grpc-status"))
                .and_then(code_of)
            {
                self.code = Some(code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        let tally = &self.tally;
        let code = self.code.unwrap_or(tonic::Code::Cancelled);
        let elapsed = tally.started.elapsed();
        tally.metrics.rpc_handled(
            &tally.labels,
            code,
            elapsed,
            tally.received.load(Ordering::Relaxed),
            self.framing.messages,
        );
        tracing::info!(
            method = %tally.path,
            grpc_status = %(code as i32),
            latency_us = elapsed.as_micros() as u64,
            "rpc"
        );
    }
}

/// The codec refuses a body it cannot read with `INTERNAL` ("failed to decode") or, for size,
/// `OUT_OF_RANGE`; both are the client's: `INVALID_ARGUMENT` and `RESOURCE_EXHAUSTED`.
fn read_errors_as_client_errors(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers();
    let status = headers.get("grpc-status").and_then(|v| v.to_str().ok());
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mapped = match status {
        Some("13") if message.contains("decode") => Some("3"),
        Some("11") if message.contains("too%20large") || message.contains("too large") => Some("8"),
        _ => None,
    };
    if let Some(code) = mapped {
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static(code));
    }
    response
}

/// A future whose panic becomes `Err(())` instead of unwinding into the server.
struct CatchPanic<F>(F);

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::path::PathBuf;

    use super::*;
    use crate::api::admission::Limits;
    use crate::app::{App, AppSettings, Snapshot};
    use crate::store::StoreSettings;
    use crate::store::memory::MemoryStore;

    type Answer = Result<http::Response<tonic::body::Body>, Infallible>;

    fn layer(limits: Limits, timeout: Duration) -> RpcLayer {
        let settings = AppSettings {
            development: true,
            ..AppSettings::new(
                PathBuf::from(crate::config::DEMO_CONFIG),
                PathBuf::from(crate::app::tokens::DEV_SECRETS),
            )
        };
        let snapshot = Snapshot::load(&settings, 1).expect("the demo loads");
        let metrics = Arc::new(Metrics::new());
        let store = Arc::new(MemoryStore::new(StoreSettings::default()));
        let app = App::new(Arc::new(snapshot), store, settings, metrics.clone());
        RpcLayer::new(Admission::new(app, limits, false), timeout, metrics)
    }

    fn limits(in_flight: usize) -> Limits {
        Limits {
            in_flight,
            in_flight_per_principal: in_flight,
            streams: 4,
            streams_per_principal: 2,
        }
    }

    type Request = http::Request<tonic::body::Body>;

    /// A service that answers OK after `delay`, or panics when told to.
    fn service(
        delay: Duration,
        panics: bool,
    ) -> impl Service<
        http::Request<Incoming<tonic::body::Body>>,
        Response = http::Response<tonic::body::Body>,
        Error = Infallible,
        Future = BoxFuture<Answer>,
    > + Clone {
        tower::service_fn(
            move |_request: http::Request<Incoming<tonic::body::Body>>| -> BoxFuture<Answer> {
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    assert!(!panics, "a handler that panics");
                    Ok(http::Response::new(tonic::body::Body::empty()))
                })
            },
        )
    }

    /// A request to a contract method with the development telephony token.
    fn call() -> Request {
        let text = std::fs::read_to_string("config/dev-tokens.toml").expect("dev tokens");
        let token = text
            .lines()
            .find_map(|l| l.strip_prefix("token = \"dev-telephony"))
            .map(|rest| format!("dev-telephony{}", rest.trim_end_matches('"')))
            .expect("the telephony token");
        http::Request::builder()
            .uri("/callrouter.v1.CallRouting/RouteCall")
            .header("authorization", format!("Bearer {token}"))
            .body(tonic::body::Body::empty())
            .expect("request")
    }

    fn grpc_status(response: &http::Response<tonic::body::Body>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn calls_past_the_limit_are_refused_with_unavailable_at_once() {
        let layer = layer(limits(1), Duration::from_secs(5));
        let mut first = layer.layer(service(Duration::from_millis(300), false));
        let mut second = layer.layer(service(Duration::from_millis(300), false));
        let running = tokio::spawn(first.call(call()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let refused = second.call(call()).await.expect("infallible");
        assert_eq!(grpc_status(&refused), Some("14"), "UNAVAILABLE");
        assert!(started.elapsed() < Duration::from_millis(100), "not queued");
        let served = running.await.expect("join").expect("infallible");
        assert_eq!(grpc_status(&served), None, "the first call was served");
        let after = second.call(call()).await.expect("infallible");
        assert_eq!(grpc_status(&after), None, "a permit is free again");
    }

    #[tokio::test]
    async fn an_unknown_caller_takes_no_permit() {
        let layer = layer(limits(1), Duration::from_secs(5));
        let mut service = layer.layer(service(Duration::from_millis(300), false));
        let anonymous = http::Request::builder()
            .uri("/callrouter.v1.CallRouting/RouteCall")
            .body(tonic::body::Body::empty())
            .expect("request");
        let refused = service.call(anonymous).await.expect("infallible");
        assert_eq!(grpc_status(&refused), Some("16"), "UNAUTHENTICATED");
        let served = service.call(call()).await.expect("infallible");
        assert_eq!(grpc_status(&served), None, "the permit was never taken");
    }

    #[tokio::test]
    async fn calls_past_the_timeout_end_with_deadline_exceeded() {
        let layer = layer(limits(8), Duration::from_millis(50));
        let mut service = layer.layer(service(Duration::from_secs(5), false));
        let started = Instant::now();
        let response = service.call(call()).await.expect("infallible");
        assert_eq!(grpc_status(&response), Some("4"), "DEADLINE_EXCEEDED");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_internal_and_the_service_goes_on() {
        let layer = layer(limits(1), Duration::from_secs(5));
        let mut panicking = layer.layer(service(Duration::ZERO, true));
        let response = panicking.call(call()).await.expect("infallible");
        assert_eq!(grpc_status(&response), Some("13"), "INTERNAL");
        drop(response);
        let text = layer.metrics.encode();
        assert!(
            text.contains("grpc_code=\"Internal\",grpc_method=\"RouteCall\",grpc_service=\"callrouter.v1.CallRouting\",grpc_type=\"unary\"} 1"),
            "counted: {text}"
        );
        let mut healthy = layer.layer(service(Duration::ZERO, false));
        let served = healthy.call(call()).await.expect("infallible");
        assert_eq!(grpc_status(&served), None, "its permit was given back");
    }

    #[test]
    fn codec_errors_are_the_clients() {
        let with = |status: &'static str, message: &'static str| {
            let mut response = http::Response::new(tonic::body::Body::empty());
            let headers = response.headers_mut();
            headers.insert("grpc-status", http::HeaderValue::from_static(status));
            headers.insert("grpc-message", http::HeaderValue::from_static(message));
            read_errors_as_client_errors(response)
        };
        let decode = with("13", "failed%20to%20decode%20Protobuf%20message");
        assert_eq!(grpc_status(&decode), Some("3"));
        let large = with("11", "Error,%20decoded%20message%20length%20too%20large");
        assert_eq!(grpc_status(&large), Some("8"));
        let other = with("13", "internal error");
        assert_eq!(grpc_status(&other), Some("13"));
    }

    #[test]
    fn messages_are_counted_across_any_cut_of_the_bytes() {
        // Three messages of 3, 0 and 300 bytes, framed as gRPC frames them.
        let mut bytes = Vec::new();
        for length in [3u32, 0, 300] {
            bytes.push(0);
            bytes.extend(length.to_be_bytes());
            bytes.extend(std::iter::repeat_n(7u8, length as usize));
        }
        for cut in [1, 2, 4, 5, 7, 64, bytes.len()] {
            let mut framing = Framing::default();
            for chunk in bytes.chunks(cut) {
                framing.feed(chunk);
            }
            assert_eq!(framing.messages, 3, "chunks of {cut} bytes");
        }
    }

    use http_body::Body as _;

    /// A unary answer as tonic sends it: one message, then trailers with `grpc-status: 0`.
    struct UnaryAnswer {
        step: u8,
    }

    impl http_body::Body for UnaryAnswer {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
            self.step += 1;
            Poll::Ready(match self.step {
                1 => Some(Ok(http_body::Frame::data(Bytes::from_static(&[
                    0, 0, 0, 0, 2, 8, 1,
                ])))),
                2 => {
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    Some(Ok(http_body::Frame::trailers(trailers)))
                }
                _ => None,
            })
        }
    }

    fn answering() -> impl Service<
        http::Request<Incoming<tonic::body::Body>>,
        Response = http::Response<tonic::body::Body>,
        Error = Infallible,
        Future = BoxFuture<Answer>,
    > + Clone {
        tower::service_fn(
            |_request: http::Request<Incoming<tonic::body::Body>>| -> BoxFuture<Answer> {
                Box::pin(async {
                    Ok(http::Response::new(tonic::body::Body::new(UnaryAnswer {
                        step: 0,
                    })))
                })
            },
        )
    }

    #[tokio::test]
    async fn a_call_is_counted_when_its_response_ends_or_is_cut_short() {
        let layer = layer(limits(8), Duration::from_secs(5));
        let labels = "grpc_method=\"RouteCall\",grpc_service=\"callrouter.v1.CallRouting\",grpc_type=\"unary\"}";
        let handled = |code: &str| {
            let text = layer.metrics.encode();
            let line = format!("grpc_server_handled_total{{grpc_code=\"{code}\",{labels} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&line))
                .map(|n| n.to_owned())
                .unwrap_or_default()
        };
        let mut service = layer.layer(answering());
        let response = service.call(call()).await.expect("infallible");
        assert!(
            layer
                .metrics
                .encode()
                .contains(&format!("grpc_server_started_total{{{labels} 1"))
        );
        assert_eq!(handled("OK"), "0", "not handled before its response ends");
        let mut body = response.into_body();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            frame.expect("a frame");
        }
        drop(body);
        assert_eq!(handled("OK"), "1");
        assert!(
            layer
                .metrics
                .encode()
                .contains(&format!("grpc_server_msg_sent_total{{{labels} 1"))
        );
        // Dropped before its trailers were read: the client left.
        let response = service.call(call()).await.expect("infallible");
        drop(response);
        assert_eq!(handled("Canceled"), "1");
    }
}
