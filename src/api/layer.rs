//! The middleware every RPC goes through:
//! - admission ([`super::admission`]): authentication before any shared capacity, then budgets
//!   per instance and per principal, refused at once past them (`UNAVAILABLE`, or
//!   `RESOURCE_EXHAUSTED` for streams) rather than queued behind the others;
//! - a per-call timeout (`DEADLINE_EXCEEDED`);
//! - a handler that panics answers `INTERNAL`, logged and counted, and the server goes on;
//! - a body the codec cannot read is `INVALID_ARGUMENT` (too large: `RESOURCE_EXHAUSTED`), not
//!   `INTERNAL`: a client's mistake must not page the operators;
//! - one metric sample and one log line per call.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::admission::Admission;
use super::listener::ConnInfo;
use crate::metrics::Metrics;

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
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let metrics = self.layer.metrics.clone();
        let authorization = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default());
        let client_certificate = request
            .extensions()
            .get::<ConnInfo>()
            .is_some_and(|c| c.client_certificate);
        let admitted = match self
            .layer
            .admission
            .admit(&method, authorization, client_certificate)
        {
            Ok(admitted) => admitted,
            Err(refused) => {
                let response = refused.into_http();
                finish(&metrics, &method, &response, started);
                return Box::pin(async { Ok(response) });
            }
        };
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
                    tracing::error!(method = %method, "the handler panicked: INTERNAL");
                    Status::internal("internal error").into_http()
                }
                Err(_) => Status::deadline_exceeded(format!(
                    "the call took more than {} ms",
                    timeout.as_millis()
                ))
                .into_http(),
            };
            drop(call_permits);
            finish(&metrics, &method, &response, started);
            // A stream holds its permits until it ends.
            Ok(response.map(|body| {
                if stream_permits.is_empty() {
                    body
                } else {
                    tonic::body::Body::new(Held {
                        body,
                        _permits: stream_permits,
                    })
                }
            }))
        })
    }
}

/// Counts and logs a call by the code its response starts with. Errors travel in the response
/// headers ("trailers only"); a response without a status there carries OK in its trailers (a
/// stream that fails later is counted as started).
fn finish(
    metrics: &Metrics,
    method: &str,
    response: &http::Response<tonic::body::Body>,
    started: Instant,
) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0");
    let elapsed = started.elapsed();
    metrics.rpc(method, code, elapsed);
    tracing::info!(method = %method, grpc_status = code, latency_us = elapsed.as_micros() as u64, "rpc");
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

/// A response body that holds its stream's permits until it is dropped (the stream ended or the
/// client left).
struct Held {
    body: tonic::body::Body,
    _permits: Vec<OwnedSemaphorePermit>,
}

impl http_body::Body for Held {
    type Data = <tonic::body::Body as http_body::Body>::Data;
    type Error = <tonic::body::Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
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

    /// A service that answers OK after `delay`, or panics when told to.
    fn service(
        delay: Duration,
        panics: bool,
    ) -> impl Service<
        http::Request<()>,
        Response = http::Response<tonic::body::Body>,
        Error = Infallible,
        Future = BoxFuture<Answer>,
    > + Clone {
        tower::service_fn(move |_request: http::Request<()>| -> BoxFuture<Answer> {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                assert!(!panics, "a handler that panics");
                Ok(http::Response::new(tonic::body::Body::empty()))
            })
        })
    }

    /// A request to a contract method with the development telephony token.
    fn call() -> http::Request<()> {
        let text = std::fs::read_to_string("config/dev-tokens.toml").expect("dev tokens");
        let token = text
            .lines()
            .find_map(|l| l.strip_prefix("token = \"dev-telephony"))
            .map(|rest| format!("dev-telephony{}", rest.trim_end_matches('"')))
            .expect("the telephony token");
        http::Request::builder()
            .uri("/callrouter.v1.CallRouting/RouteCall")
            .header("authorization", format!("Bearer {token}"))
            .body(())
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
            .body(())
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
        let text = layer.metrics.encode();
        assert!(
            text.contains("code=\"Internal\",method=\"RouteCall\""),
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
}
