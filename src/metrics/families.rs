//! The metric families, grouped by what they describe, each group registered by its constructor.
//! Names, help texts, labels and buckets are constants here: a bad one is a programming error,
//! caught by the tests that build and expose every family.

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, exponential_buckets,
};

/// Every RPC, named as go-grpc-prometheus names them (no prefix), so stock gRPC dashboards find
/// them: calls started, handled by code, messages each way, handling time.
pub(super) struct RpcFamilies {
    pub started: IntCounterVec,
    pub handled: IntCounterVec,
    pub received: IntCounterVec,
    pub sent: IntCounterVec,
    pub handling: HistogramVec,
}

/// Routed calls: outcome per team, volume per issue category and urgency, on-call transfers,
/// decision time, address match level.
pub(super) struct RoutingFamilies {
    pub calls: IntCounterVec,
    pub categories: IntCounterVec,
    pub urgencies: IntCounterVec,
    pub on_call: IntCounterVec,
    pub decision: Histogram,
    pub address_matches: IntCounterVec,
}

/// What the store holds, read by the one instance holding the metrics lease: queues, tickets
/// near due, move outboxes, agents by presence and the time they spend in each.
pub(super) struct QueueFamilies {
    pub depth: IntGaugeVec,
    pub oldest_wait: GaugeVec,
    pub held: IntGaugeVec,
    pub near_due: IntGaugeVec,
    pub overdue: IntGaugeVec,
    pub move_backlog: IntGaugeVec,
    pub agents: IntGaugeVec,
    pub team_agents: IntGaugeVec,
    pub presence_seconds: prometheus::CounterVec,
    pub sampled_at: prometheus::Gauge,
    pub holder: IntGauge,
}

/// Tickets through their lifecycle, counted by the instance that served the action.
pub(super) struct TicketFamilies {
    pub wait: HistogramVec,
    pub answered: IntCounterVec,
    pub handle: HistogramVec,
    pub completed: IntCounterVec,
    pub sla_breaches: IntCounterVec,
    pub abandoned: IntCounterVec,
    pub abandon_wait: HistogramVec,
    pub released: IntCounterVec,
    pub transferred: IntCounterVec,
    pub moved: IntCounterVec,
    pub lease_expiries: IntCounterVec,
    pub escalations: IntCounterVec,
    pub watch_streams: IntGauge,
}

/// The queue store: operation times, errors, whether it answers, which Redis primary it uses.
pub(super) struct StoreFamilies {
    pub operation: HistogramVec,
    pub errors: IntCounterVec,
    pub up: IntGauge,
    pub primary: IntGaugeVec,
    pub failovers: prometheus::IntCounter,
}

/// The configuration in force, its reloads, and the opening hours it gives.
pub(super) struct ConfigFamilies {
    pub generation: IntGauge,
    pub info: IntGaugeVec,
    pub reloads: IntCounterVec,
    pub open: IntGaugeVec,
}

/// 50 µs to ~26 s: call and operation latencies.
fn latency_buckets() -> Vec<f64> {
    exponential_buckets(0.000_05, 2.0, 20).unwrap_or_default()
}

/// 1 s to ~4.5 days: handling times.
fn wait_buckets() -> Vec<f64> {
    exponential_buckets(1.0, 2.0, 19).unwrap_or_default()
}

/// Waits before pickup, with bounds on the urgencies' targets (`U1` 4 h, `U2` 24 h, `U3` five
/// working days: 5 to 7 calendar days), so "answered within X" reads off one bucket.
pub const ANSWER_BUCKETS: [f64; 14] = [
    30.0,
    60.0,
    300.0,
    900.0,
    1_800.0,
    3_600.0,
    7_200.0,
    14_400.0,
    28_800.0,
    86_400.0,
    172_800.0,
    432_000.0,
    604_800.0,
    1_209_600.0,
];

/// Registers a metric; the names are constants of this module, so a clash is a programming error
/// caught by the tests, and the metric then simply goes unexposed rather than stopping the service.
pub(super) fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> M {
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

fn single_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        registry,
        IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric()),
    )
}

/// Metric options here are constants that the tests construct; a bad one is a programming error.
fn unreachable_metric<T>() -> T {
    panic!("invalid metric definition in callrouter::metrics")
}

const RPC: [&str; 3] = ["grpc_type", "grpc_service", "grpc_method"];
const RPC_CODE: [&str; 4] = ["grpc_type", "grpc_service", "grpc_method", "grpc_code"];

impl RpcFamilies {
    pub fn new(r: &Registry) -> RpcFamilies {
        RpcFamilies {
            started: counter(
                r,
                "grpc_server_started_total",
                "RPCs started on the server",
                &RPC,
            ),
            handled: counter(
                r,
                "grpc_server_handled_total",
                "RPCs completed on the server, whatever their code (a stream when it ends)",
                &RPC_CODE,
            ),
            received: counter(
                r,
                "grpc_server_msg_received_total",
                "Messages received from clients",
                &RPC,
            ),
            sent: counter(
                r,
                "grpc_server_msg_sent_total",
                "Messages sent to clients",
                &RPC,
            ),
            handling: histogram(
                r,
                "grpc_server_handling_seconds",
                "Time from the start of an RPC to its end (a stream's whole life)",
                &RPC,
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
                "Calls routed, by cooperator, team and outcome (queued, duplicate, incident, degraded)",
                &["cooperator", "team", "outcome"],
            ),
            categories: counter(
                r,
                "calls_by_category_total",
                "New calls routed (retries excluded), by cooperator and issue category",
                &["cooperator", "category"],
            ),
            urgencies: counter(
                r,
                "calls_by_urgency_total",
                "New calls routed (retries excluded), by cooperator and urgency",
                &["cooperator", "urgency"],
            ),
            on_call: counter(
                r,
                "on_call_transfers_total",
                "New calls told to transfer to an on-call line (emergencies out of hours), by cooperator",
                &["cooperator"],
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

const QUEUE: [&str; 3] = ["cooperator", "team", "urgency"];

impl QueueFamilies {
    pub fn new(r: &Registry) -> QueueFamilies {
        QueueFamilies {
            depth: gauge(
                r,
                "queue_depth",
                "Tickets waiting, by cooperator, team and urgency (store-wide, from the metrics lease holder)",
                &QUEUE,
            ),
            oldest_wait: register(
                r,
                GaugeVec::new(
                    Opts::new(
                        "queue_oldest_wait_seconds",
                        "Wait of the oldest waiting ticket, by cooperator, team and urgency (store-wide)",
                    ),
                    &QUEUE,
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            held: gauge(
                r,
                "queue_held_tickets",
                "Tickets held by agents, by cooperator, team and state (RESERVED, IN_PROGRESS; store-wide)",
                &["cooperator", "team", "state"],
            ),
            near_due: gauge(
                r,
                "queue_near_due_tickets",
                "Waiting tickets due within their urgency's warning time (U1 1 h, U2 6 h, U3 1 day) or past due (store-wide)",
                &QUEUE,
            ),
            overdue: gauge(
                r,
                "queue_overdue_tickets",
                "Waiting tickets past their due time (store-wide)",
                &QUEUE,
            ),
            move_backlog: gauge(
                r,
                "move_outbox_tickets",
                "Tickets in a partition's move outbox, being handed to another cooperator (store-wide)",
                &["cooperator"],
            ),
            agents: gauge(
                r,
                "agents",
                "Agents by cooperator and presence, each agent once (store-wide)",
                &["cooperator", "presence"],
            ),
            team_agents: gauge(
                r,
                "team_agents",
                "Agents by team and presence; an agent of several teams counts in each (store-wide)",
                &["cooperator", "team", "presence"],
            ),
            presence_seconds: register(
                r,
                prometheus::CounterVec::new(
                    Opts::new(
                        "agent_presence_seconds_total",
                        "Agent-seconds spent in each presence, by team (occupancy; store-wide)",
                    ),
                    &["cooperator", "team", "presence"],
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            sampled_at: register(
                r,
                prometheus::Gauge::new(
                    "queue_sampled_timestamp_seconds",
                    "When the store-wide figures were last read from the store (Unix time)",
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            holder: single_gauge(
                r,
                "store_metrics_holder",
                "1 on the one instance that exports the store-wide figures, else 0",
            ),
        }
    }
}

impl TicketFamilies {
    pub fn new(r: &Registry) -> TicketFamilies {
        TicketFamilies {
            wait: histogram(
                r,
                "ticket_wait_seconds",
                "Time from queued to claimed (speed of answer), by cooperator, team and urgency",
                &QUEUE,
                ANSWER_BUCKETS.to_vec(),
            ),
            answered: counter(
                r,
                "tickets_answered_total",
                "Tickets claimed, by cooperator, urgency and whether before their due time (service level)",
                &["cooperator", "urgency", "within_target"],
            ),
            handle: histogram(
                r,
                "ticket_handle_seconds",
                "Time from claimed to completed",
                &["cooperator", "urgency"],
                wait_buckets(),
            ),
            completed: counter(
                r,
                "tickets_completed_total",
                "Tickets completed, by cooperator and team",
                &["cooperator", "team"],
            ),
            sla_breaches: counter(
                r,
                "sla_breaches_total",
                "Tickets completed after their SLA due time",
                &["cooperator", "urgency"],
            ),
            abandoned: counter(
                r,
                "calls_abandoned_total",
                "Callers who hung up before pickup, by cooperator, team and urgency",
                &QUEUE,
            ),
            abandon_wait: histogram(
                r,
                "abandon_wait_seconds",
                "Wait of a ticket cancelled by its last caller's hang-up, from its creation",
                &["cooperator", "urgency"],
                ANSWER_BUCKETS.to_vec(),
            ),
            released: counter(
                r,
                "tickets_released_total",
                "Held tickets put back in their queue by their agent, by cooperator and team",
                &["cooperator", "team"],
            ),
            transferred: counter(
                r,
                "tickets_transferred_total",
                "Tickets transferred to a team by an agent, by the cooperator and team they went to",
                &["cooperator", "team"],
            ),
            moved: counter(
                r,
                "tickets_moved_total",
                "Tickets handed to another cooperator's partition, by the cooperator they left",
                &["cooperator"],
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
            watch_streams: single_gauge(
                r,
                "watch_streams",
                "WatchTickets streams open on this instance",
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
            up: single_gauge(r, "store_up", "1 when the queue store answers, else 0"),
            primary: gauge(
                r,
                "redis_primary",
                "The Redis primary in use, by address (always 1)",
                &["address"],
            ),
            failovers: register(
                r,
                prometheus::IntCounter::new(
                    "redis_failovers_total",
                    "Failovers followed since start: Sentinel named another primary",
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
        }
    }
}

impl ConfigFamilies {
    pub fn new(r: &Registry) -> ConfigFamilies {
        ConfigFamilies {
            generation: single_gauge(
                r,
                "config_generation",
                "Generation of the configuration in force (1 at start, +1 per reload)",
            ),
            info: gauge(
                r,
                "config_info",
                "The configuration in force, by digest of its files (always 1): instances serving the same files show the same digest",
                &["digest"],
            ),
            reloads: counter(
                r,
                "config_reloads_total",
                "Configuration reloads, by result (ok, refused)",
                &["result"],
            ),
            open: gauge(
                r,
                "cooperator_open",
                "1 while a cooperator (or the platform) is open by its opening hours and public holidays, in its time zone",
                &["cooperator"],
            ),
        }
    }
}
