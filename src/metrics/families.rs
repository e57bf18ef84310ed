//! The metric families, grouped by what they describe, each group registered by its constructor.
//! Names, help texts, labels and buckets are constants here: a bad one is a programming error,
//! caught by the tests that build and expose every family.

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, exponential_buckets,
};

/// Every RPC: count by code, time.
pub(super) struct RpcFamilies {
    pub handled: IntCounterVec,
    pub handling: HistogramVec,
}

/// Routed calls: outcome, decision time, address match level.
pub(super) struct RoutingFamilies {
    pub calls: IntCounterVec,
    pub decision: Histogram,
    pub address_matches: IntCounterVec,
}

/// What the sampler reads from the store: queue depths, oldest waits, agents by presence.
pub(super) struct QueueFamilies {
    pub depth: IntGaugeVec,
    pub oldest_wait: GaugeVec,
    pub agents: IntGaugeVec,
}

/// Tickets through their lifecycle: waits, handling, breaches, expiries, escalations.
pub(super) struct TicketFamilies {
    pub wait: HistogramVec,
    pub handle: HistogramVec,
    pub sla_breaches: IntCounterVec,
    pub lease_expiries: IntCounterVec,
    pub escalations: IntCounterVec,
}

/// The queue store: operation times, errors, whether it answers.
pub(super) struct StoreFamilies {
    pub operation: HistogramVec,
    pub errors: IntCounterVec,
    pub up: IntGauge,
}

/// The configuration in force and its reloads.
pub(super) struct ConfigFamilies {
    pub generation: IntGauge,
    pub reloads: IntCounterVec,
}

/// 50 µs to ~26 s: call and operation latencies.
fn latency_buckets() -> Vec<f64> {
    exponential_buckets(0.000_05, 2.0, 20).unwrap_or_default()
}

/// 1 s to ~4.5 days: queue waits and handling times.
fn wait_buckets() -> Vec<f64> {
    exponential_buckets(1.0, 2.0, 19).unwrap_or_default()
}

/// Registers a metric; the names are constants of this module, so a clash is a programming error
/// caught by the tests, and the metric then simply goes unexposed rather than stopping the service.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        tracing::error!(error = %e, "a metric could not be registered");
    }
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric =
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|_| unreachable_metric());
    register(registry, metric)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|_| unreachable_metric());
    register(registry, metric)
}

pub(super) fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric =
        IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|_| unreachable_metric());
    register(registry, metric)
}

/// Metric options here are constants that the tests construct; a bad one is a programming error.
fn unreachable_metric<T>() -> T {
    panic!("invalid metric definition in callrouter::metrics")
}

impl RpcFamilies {
    pub fn new(r: &Registry) -> RpcFamilies {
        RpcFamilies {
            handled: counter(
                r,
                "grpc_server_handled_total",
                "gRPC calls handled, by service, method and status code",
                &["service", "method", "code"],
            ),
            handling: histogram(
                r,
                "grpc_server_handling_seconds",
                "Time to handle a gRPC call (until the response starts)",
                &["service", "method"],
                latency_buckets(),
            ),
        }
    }
}

impl RoutingFamilies {
    pub fn new(r: &Registry) -> RoutingFamilies {
        RoutingFamilies {
            calls: counter(
                r,
                "calls_routed_total",
                "Calls routed, by cooperator, team, issue category and outcome (queued, duplicate, incident, degraded)",
                &["cooperator", "team", "category", "outcome"],
            ),
            decision: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "routing_decision_seconds",
                        "Time to take a routing decision, in process",
                    )
                    .buckets(latency_buckets()),
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            address_matches: counter(
                r,
                "address_matches_total",
                "Address matches by level (BUILDING, STREET, COMMUNE, NONE)",
                &["level"],
            ),
        }
    }
}

impl QueueFamilies {
    pub fn new(r: &Registry) -> QueueFamilies {
        QueueFamilies {
            depth: gauge(
                r,
                "queue_depth",
                "Tickets waiting, by cooperator, team and urgency",
                &["cooperator", "team", "urgency"],
            ),
            oldest_wait: register(
                r,
                GaugeVec::new(
                    Opts::new(
                        "queue_oldest_wait_seconds",
                        "Wait of the oldest waiting ticket, by cooperator, team and urgency",
                    ),
                    &["cooperator", "team", "urgency"],
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            agents: gauge(r, "agents", "Agents by presence", &["presence"]),
        }
    }
}

impl TicketFamilies {
    pub fn new(r: &Registry) -> TicketFamilies {
        TicketFamilies {
            wait: histogram(
                r,
                "ticket_wait_seconds",
                "Time from queued to claimed",
                &["cooperator", "urgency"],
                wait_buckets(),
            ),
            handle: histogram(
                r,
                "ticket_handle_seconds",
                "Time from claimed to completed",
                &["cooperator", "urgency"],
                wait_buckets(),
            ),
            sla_breaches: counter(
                r,
                "sla_breaches_total",
                "Tickets completed after their SLA due time",
                &["cooperator", "urgency"],
            ),
            lease_expiries: counter(
                r,
                "lease_expiries_total",
                "Leases that expired: tickets returned to their queue",
                &["cooperator"],
            ),
            escalations: counter(
                r,
                "escalations_total",
                "Tickets escalated to the supervisor queue after too many expired leases",
                &["cooperator"],
            ),
        }
    }
}

impl StoreFamilies {
    pub fn new(r: &Registry) -> StoreFamilies {
        StoreFamilies {
            operation: histogram(
                r,
                "store_operation_seconds",
                "Queue store operation time, by operation",
                &["operation"],
                latency_buckets(),
            ),
            errors: counter(
                r,
                "store_errors_total",
                "Queue store errors, by operation and kind",
                &["operation", "kind"],
            ),
            up: register(
                r,
                IntGauge::new("store_up", "1 when the queue store answers, else 0")
                    .unwrap_or_else(|_| unreachable_metric()),
            ),
        }
    }
}

impl ConfigFamilies {
    pub fn new(r: &Registry) -> ConfigFamilies {
        ConfigFamilies {
            generation: register(
                r,
                IntGauge::new(
                    "config_generation",
                    "Generation of the configuration in force (1 at start, +1 per reload)",
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            reloads: counter(
                r,
                "config_reloads_total",
                "Configuration reloads, by result (ok, refused)",
                &["result"],
            ),
        }
    }
}
