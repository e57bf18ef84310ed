//! The middleware every RPC goes through: load shedding (past the in-flight limit a call is refused
//! with `UNAVAILABLE` at once, rather than queued behind the others), a per-call timeout
//! (`DEADLINE_EXCEEDED`), and one metric sample and one log line per call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tonic::Status;
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// Load shedding, per-call timeout, metrics and one log line per call, for every RPC.
#[derive(Clone)]
pub struct RpcLayer {
    permits: Arc<Semaphore>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl RpcLayer {
    pub fn new(max_in_flight: usize, timeout: Duration, metrics: Arc<Metrics>) -> RpcLayer {
        RpcLayer {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
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
            permits: self.permits.clone(),
            timeout: self.timeout,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcService<S> {
    inner: S,
    permits: Arc<Semaphore>,
    timeout: Duration,
    metrics: Arc<Metrics>,
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(method = %method, "call refused: too many calls in flight");
            metrics.rpc(&method, "14", started.elapsed());
            return Box::pin(async {
                Ok(Status::unavailable(
                    "server overloaded: too many calls in flight, retry shortly",
                )
                .into_http())
            });
        };
        let call = self.inner.call(request);
        let timeout = self.timeout;
        Box::pin(async move {
            let response = match tokio::time::timeout(timeout, call).await {
                Ok(result) => result?,
                Err(_) => Status::deadline_exceeded(format!(
                    "the call took more than {} ms",
                    timeout.as_millis()
                ))
                .into_http(),
            };
            drop(permit);
            // Errors travel in the response headers ("trailers only"); a response without a status
            // there carries OK in its trailers (a stream that fails later is counted as started).
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0");
            let elapsed = started.elapsed();
            metrics.rpc(&method, code, elapsed);
            tracing::info!(method = %method, grpc_status = code, latency_us = elapsed.as_micros() as u64, "rpc");
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service that answers OK after `delay`.
    fn slow(
        delay: Duration,
    ) -> impl Service<
        http::Request<()>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future = BoxFuture<Result<http::Response<tonic::body::Body>, std::convert::Infallible>>,
    > + Clone {
        tower::service_fn(
            move |_request: http::Request<()>| -> BoxFuture<
                Result<http::Response<tonic::body::Body>, std::convert::Infallible>,
            > {
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    Ok(http::Response::new(tonic::body::Body::empty()))
                })
            },
        )
    }

    fn grpc_status(response: &http::Response<tonic::body::Body>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn calls_past_the_limit_are_refused_with_unavailable_at_once() {
        let layer = RpcLayer::new(1, Duration::from_secs(5), Arc::new(Metrics::new()));
        let mut first = layer.layer(slow(Duration::from_millis(300)));
        let mut second = layer.layer(slow(Duration::from_millis(300)));
        let running = tokio::spawn(first.call(http::Request::new(())));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let refused = second
            .call(http::Request::new(()))
            .await
            .expect("infallible");
        assert_eq!(grpc_status(&refused), Some("14"), "UNAVAILABLE");
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "refused without queueing"
        );
        let served = running.await.expect("join").expect("infallible");
        assert_eq!(grpc_status(&served), None, "the first call was served");
        let after = second
            .call(http::Request::new(()))
            .await
            .expect("infallible");
        assert_eq!(grpc_status(&after), None, "a permit is free again");
    }

    #[tokio::test]
    async fn calls_past_the_timeout_end_with_deadline_exceeded() {
        let layer = RpcLayer::new(8, Duration::from_millis(50), Arc::new(Metrics::new()));
        let mut service = layer.layer(slow(Duration::from_secs(5)));
        let started = Instant::now();
        let response = service
            .call(http::Request::new(()))
            .await
            .expect("infallible");
        assert_eq!(grpc_status(&response), Some("4"), "DEADLINE_EXCEEDED");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
