//! Serving: the three services, standard health and reflection, the middleware around them, the
//! background tasks (reaper, health tracking), and a graceful shutdown with a bounded drain.
//!
//! `run(app, listener, settings, shutdown)`: `main` passes a future resolving on SIGINT/SIGTERM,
//! tests pass a oneshot. On shutdown: health goes `NOT_SERVING`, the listener stops accepting,
//! watch streams end, in-flight calls drain for at most the grace period, and a forced stop is
//! logged.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tonic::Status;
use tonic::codegen::http;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::{Layer, Service};

use super::pb;
use super::pb::agent_desk_server::AgentDeskServer;
use super::pb::call_routing_server::CallRoutingServer;
use super::pb::operations_server::OperationsServer;
use super::service::{AgentDeskService, App, CallRoutingService, OperationsService};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Longest a unary call may take before `DEADLINE_EXCEEDED`.
    pub request_timeout: Duration,
    /// Calls in flight at once; past that, new calls are refused with `UNAVAILABLE` at once.
    pub max_in_flight: usize,
    /// Longest message accepted or sent.
    pub max_message_bytes: usize,
    /// How long in-flight calls may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// How often expired leases are returned to their queues.
    pub reaper_every: Duration,
    /// How often the store is checked for health.
    pub health_every: Duration,
    /// How often queue depths, oldest waits and agents are sampled for the metrics.
    pub sample_every: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            request_timeout: Duration::from_secs(5),
            max_in_flight: 1024,
            max_message_bytes: 256 * 1024,
            shutdown_grace: Duration::from_secs(10),
            reaper_every: Duration::from_secs(1),
            health_every: Duration::from_secs(1),
            sample_every: Duration::from_secs(5),
        }
    }
}

/// A server that could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

const SERVICES: [&str; 4] = [
    "",
    "callrouter.v1.CallRouting",
    "callrouter.v1.AgentDesk",
    "callrouter.v1.Operations",
];

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Serves until `shutdown` resolves, then drains for at most the grace period.
pub async fn run(
    app: App,
    listener: tokio::net::TcpListener,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    // Reflection in both versions: v1, and v1alpha that many tools still speak.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let (closing_tx, closing) = watch::channel(false);
    let app = app.with_closing(closing.clone());
    let limit = settings.max_message_bytes;
    let routing = CallRoutingServer::new(CallRoutingService { app: app.clone() })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let desk = AgentDeskServer::new(AgentDeskService { app: app.clone() })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let operations = OperationsServer::new(OperationsService { app: app.clone() })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);

    // Health follows the store: SERVING only while the configuration is loaded (it is, or we would
    // not be here) and the store answers.
    let health_task = {
        let app = app.clone();
        let reporter = reporter.clone();
        let mut closing = closing.clone();
        let every = settings.health_every;
        tokio::spawn(async move {
            let mut serving = None;
            loop {
                let up = app.store().ping().await.is_ok();
                app.metrics().store_up(up);
                if serving != Some(up) {
                    if up {
                        tracing::info!("queue store answers: SERVING");
                    } else {
                        tracing::warn!("queue store does not answer: NOT_SERVING");
                    }
                    let status = if up {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    set_health(&reporter, status).await;
                    serving = Some(up);
                }
                tokio::select! {
                    _ = closing.changed() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        })
    };
    let reaper = {
        let mut closing = closing.clone();
        let metrics = app.metrics();
        tokio::spawn(crate::store::run_reaper(
            app.store(),
            app.partitions(),
            settings.reaper_every,
            move |partition, report| metrics.reaped(partition, report.expired, report.escalated),
            async move {
                let _ = closing.changed().await;
            },
        ))
    };

    let sampler = tokio::spawn(sample_queues(
        app.clone(),
        settings.sample_every,
        closing.clone(),
    ));

    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_accepting = {
        let reporter = reporter.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: NOT_SERVING, draining in-flight calls");
            set_health(&reporter, ServingStatus::NotServing).await;
            let _ = closing_tx.send(true);
            let _ = drained_tx.send(());
        }
    };
    let router = Server::builder()
        // Refuse at once past the in-flight limit, bound each call's time, count and log each call.
        .layer(RpcLayer::new(
            settings.max_in_flight,
            settings.request_timeout,
            app.metrics(),
        ))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(routing)
        .add_service(desk)
        .add_service(operations);
    // Small replies must leave at once: without TCP_NODELAY, Nagle's algorithm and delayed ACKs
    // hold them for ~40 ms. Keepalive finds dead peers (desks that vanished with a stream open).
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let serve = router.serve_with_incoming_shutdown(incoming, stop_accepting);
    tokio::pin!(serve);
    let grace = settings.shutdown_grace;
    let outcome = tokio::select! {
        result = &mut serve => result.map_err(ServeError::from),
        () = async move {
            let _ = drained_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_seconds = grace.as_secs_f64(), "drain period over: forced stop with calls still in flight");
            Ok(())
        }
    };
    health_task.abort();
    reaper.abort();
    sampler.abort();
    outcome
}

/// Keeps the queue and agent gauges current: one pipelined read of every queue per pass, cheap
/// for Redis, shared by nothing else.
async fn sample_queues(app: App, every: Duration, mut closing: watch::Receiver<bool>) {
    let metrics = app.metrics();
    if !metrics.is_enabled() {
        return;
    }
    loop {
        let queues: Vec<crate::store::QueueRef> = {
            let loaded = app.current();
            let router = &loaded.router;
            router
                .teams
                .iter()
                .flat_map(|team| super::service::queues_of(router, team))
                .collect()
        };
        if let Ok((stats, _)) = app.store().queue_stats(&queues).await {
            for s in stats {
                metrics.queue(
                    &s.queue.partition,
                    &s.queue.team,
                    s.urgency,
                    s.depth,
                    s.oldest_wait_ms,
                );
            }
        }
        if let Ok(agents) = app.store().agents().await {
            let counts: Vec<(crate::store::Presence, i64)> = [
                crate::store::Presence::Available,
                crate::store::Presence::Busy,
                crate::store::Presence::WrapUp,
                crate::store::Presence::Break,
                crate::store::Presence::Offline,
            ]
            .into_iter()
            .map(|p| (p, agents.iter().filter(|a| a.presence == p).count() as i64))
            .collect();
            metrics.agents(&counts);
        }
        tokio::select! {
            _ = closing.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Load shedding, per-call timeout, metrics and one log line per call, for every RPC.
#[derive(Clone)]
pub struct RpcLayer {
    permits: Arc<Semaphore>,
    timeout: Duration,
    metrics: Arc<crate::metrics::Metrics>,
}

impl RpcLayer {
    pub fn new(
        max_in_flight: usize,
        timeout: Duration,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> RpcLayer {
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
    metrics: Arc<crate::metrics::Metrics>,
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
        let layer = RpcLayer::new(
            1,
            Duration::from_secs(5),
            Arc::new(crate::metrics::Metrics::new()),
        );
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
        let layer = RpcLayer::new(
            8,
            Duration::from_millis(50),
            Arc::new(crate::metrics::Metrics::new()),
        );
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
