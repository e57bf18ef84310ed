//! Prometheus metrics, exposed by the admin listener at `/metrics` in the Prometheus text format.
//!
//! Every label has a bounded set of values taken from the configuration or from code: cooperator,
//! team, urgency, issue category, outcome, gRPC service, method and code, store operation. Never a
//! phone number, an address, a ticket id or a call id. gRPC paths that are not part of the served
//! contracts are counted under `other`, so no client can create label values.
//!
//! [`Metrics::disabled`] records nothing (to measure what recording costs).

use std::time::Duration;

use prometheus::{Encoder, Registry, TextEncoder};

mod families;
pub mod instrumented;

use self::families::{
    ConfigFamilies, QueueFamilies, RoutingFamilies, RpcFamilies, StoreFamilies, TicketFamilies,
    gauge,
};
use crate::routing::partition::Partition;
use crate::routing::urgency::Urgency;
use crate::store::{Presence, StoreError};

/// All the service's metrics and their registry.
pub struct Metrics {
    enabled: bool,
    registry: Registry,
    rpc: RpcFamilies,
    routing: RoutingFamilies,
    queues: QueueFamilies,
    tickets: TicketFamilies,
    store: StoreFamilies,
    config: ConfigFamilies,
}

/// The gRPC methods served, as (service, method): the only label pairs of the RPC families, so
/// a path of a real service with another service's method — or anything else — is `other`.
const SERVED: [(&str, &str); 19] = [
    ("callrouter.v1.CallRouting", "RouteCall"),
    ("callrouter.v1.CallRouting", "ExplainRoute"),
    ("callrouter.v1.CallRouting", "CancelCall"),
    ("callrouter.v1.AgentDesk", "ClaimNextTicket"),
    ("callrouter.v1.AgentDesk", "AcceptTicket"),
    ("callrouter.v1.AgentDesk", "CompleteTicket"),
    ("callrouter.v1.AgentDesk", "ReleaseTicket"),
    ("callrouter.v1.AgentDesk", "TransferTicket"),
    ("callrouter.v1.AgentDesk", "GetTicket"),
    ("callrouter.v1.AgentDesk", "ListTickets"),
    ("callrouter.v1.AgentDesk", "WatchTickets"),
    ("callrouter.v1.AgentDesk", "SetAgentStatus"),
    ("callrouter.v1.Operations", "GetQueueStats"),
    ("callrouter.v1.Operations", "ListAgents"),
    ("callrouter.v1.Operations", "ReloadConfig"),
    ("grpc.health.v1.Health", "Check"),
    ("grpc.health.v1.Health", "Watch"),
    (
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
    ),
];

/// The service and method labels of a gRPC path: one of the served pairs, else `other`.
pub fn rpc_labels(path: &str) -> (&'static str, &'static str) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    SERVED
        .iter()
        .find(|(s, m)| *s == service && *m == method)
        .map_or(("other", "other"), |&pair| pair)
}

fn store_error_kind(error: &StoreError) -> &'static str {
    match error {
        StoreError::NotFound(_) => "not_found",
        StoreError::NotHolder(_) => "not_holder",
        StoreError::WrongState { .. } => "wrong_state",
        StoreError::Invalid(_) => "invalid",
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Timeout => "timeout",
        StoreError::TooLate => "too_late",
        StoreError::Corrupt(_) => "corrupt",
    }
}

impl Metrics {
    /// Metrics that record and are exposed.
    pub fn new() -> Metrics {
        Metrics::build(true)
    }

    /// Metrics that record nothing.
    pub fn disabled() -> Metrics {
        Metrics::build(false)
    }

    fn build(enabled: bool) -> Metrics {
        let registry =
            Registry::new_custom(Some("callrouter".to_owned()), None).unwrap_or_default();
        let r = &registry;
        // Resident memory, CPU and file descriptors of the process (process_*).
        #[cfg(target_os = "linux")]
        if let Err(e) = r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::error!(error = %e, "process metrics could not be registered");
        }
        gauge(
            r,
            "build_info",
            "Build of the running callrouter (always 1)",
            &["version"],
        )
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
        Metrics {
            enabled,
            rpc: RpcFamilies::new(r),
            routing: RoutingFamilies::new(r),
            queues: QueueFamilies::new(r),
            tickets: TicketFamilies::new(r),
            store: StoreFamilies::new(r),
            config: ConfigFamilies::new(r),
            registry,
        }
    }

    /// Whether this instance records.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The exposition, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut buffer = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Creates zero-valued series for every partition (cooperators and `platform`), so that rates
    /// and alerts have data before the first event.
    pub fn prime(&self, partitions: &[Partition]) {
        if !self.enabled {
            return;
        }
        for partition in partitions {
            let partition = partition.as_str();
            self.tickets
                .lease_expiries
                .with_label_values(&[partition])
                .inc_by(0);
            self.tickets
                .escalations
                .with_label_values(&[partition])
                .inc_by(0);
            for urgency in Urgency::ALL {
                self.tickets
                    .sla_breaches
                    .with_label_values(&[partition, urgency.as_str()])
                    .inc_by(0);
            }
        }
        for result in ["ok", "refused"] {
            self.config.reloads.with_label_values(&[result]).inc_by(0);
        }
        for kind in ["unavailable", "timeout"] {
            self.store
                .errors
                .with_label_values(&["create", kind])
                .inc_by(0);
        }
        for presence in Presence::ALL {
            self.queues
                .agents
                .with_label_values(&[presence.as_str()])
                .set(0);
        }
    }

    pub fn rpc(&self, path: &str, code: &str, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let (service, method) = rpc_labels(path);
        let code = match code.parse::<i32>() {
            Ok(n) => format!("{:?}", tonic::Code::from_i32(n)),
            Err(_) => "Unknown".to_owned(),
        };
        self.rpc
            .handled
            .with_label_values(&[service, method, &code])
            .inc();
        self.rpc
            .handling
            .with_label_values(&[service, method])
            .observe(elapsed.as_secs_f64());
    }

    pub fn routed(
        &self,
        partition: &Partition,
        team: &str,
        category: &str,
        outcome: &str,
        level: &str,
        decision: Duration,
    ) {
        if !self.enabled {
            return;
        }
        self.routing
            .calls
            .with_label_values(&[partition.as_str(), team, category, outcome])
            .inc();
        self.routing.decision.observe(decision.as_secs_f64());
        self.routing
            .address_matches
            .with_label_values(&[level])
            .inc();
    }

    pub fn claimed(&self, partition: &Partition, urgency: Urgency, waited_ms: i64) {
        if self.enabled {
            self.tickets
                .wait
                .with_label_values(&[partition.as_str(), urgency.as_str()])
                .observe(waited_ms.max(0) as f64 / 1000.0);
        }
    }

    pub fn completed(
        &self,
        partition: &Partition,
        urgency: Urgency,
        handled_ms: i64,
        breached: bool,
    ) {
        if !self.enabled {
            return;
        }
        self.tickets
            .handle
            .with_label_values(&[partition.as_str(), urgency.as_str()])
            .observe(handled_ms.max(0) as f64 / 1000.0);
        if breached {
            self.tickets
                .sla_breaches
                .with_label_values(&[partition.as_str(), urgency.as_str()])
                .inc();
        }
    }

    pub fn reaped(&self, partition: &Partition, expired: u64, escalated: u64) {
        if self.enabled {
            self.tickets
                .lease_expiries
                .with_label_values(&[partition.as_str()])
                .inc_by(expired);
            self.tickets
                .escalations
                .with_label_values(&[partition.as_str()])
                .inc_by(escalated);
        }
    }

    pub fn queue(
        &self,
        partition: &Partition,
        team: &str,
        urgency: Urgency,
        depth: u64,
        oldest_wait_ms: Option<i64>,
    ) {
        if !self.enabled {
            return;
        }
        let labels = [partition.as_str(), team, urgency.as_str()];
        self.queues
            .depth
            .with_label_values(&labels)
            .set(depth as i64);
        self.queues
            .oldest_wait
            .with_label_values(&labels)
            .set(oldest_wait_ms.map_or(0.0, |ms| ms.max(0) as f64 / 1000.0));
    }

    pub fn agents(&self, counts: &[(Presence, i64)]) {
        if self.enabled {
            for (presence, n) in counts {
                self.queues
                    .agents
                    .with_label_values(&[presence.as_str()])
                    .set(*n);
            }
        }
    }

    pub fn store_operation(
        &self,
        operation: &'static str,
        elapsed: Duration,
        error: Option<&StoreError>,
    ) {
        if !self.enabled {
            return;
        }
        self.store
            .operation
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
        if let Some(e) = error {
            self.store
                .errors
                .with_label_values(&[operation, store_error_kind(e)])
                .inc();
        }
    }

    pub fn store_up(&self, up: bool) {
        self.store.up.set(i64::from(up));
    }

    pub fn config(&self, generation: u64) {
        self.config.generation.set(generation as i64);
    }

    pub fn reload(&self, ok: bool) {
        self.config
            .reloads
            .with_label_values(&[if ok { "ok" } else { "refused" }])
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_contracts_do_not_make_labels() {
        assert_eq!(
            rpc_labels("/callrouter.v1.CallRouting/RouteCall"),
            ("callrouter.v1.CallRouting", "RouteCall")
        );
        assert_eq!(
            rpc_labels("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        assert_eq!(rpc_labels("/evil.Service/+33612345678"), ("other", "other"));
        assert_eq!(rpc_labels("garbage"), ("other", "other"));
        // A real service with another service's method is no method of the contract.
        assert_eq!(
            rpc_labels("/grpc.health.v1.Health/RouteCall"),
            ("other", "other")
        );
        assert_eq!(
            rpc_labels("/callrouter.v1.CallRouting/Check"),
            ("other", "other")
        );
    }

    #[test]
    fn every_metric_registers_and_names_follow_prometheus_conventions() {
        let m = Metrics::new();
        m.prime(&[Partition::parse("touraine-logement")]);
        m.rpc(
            "/callrouter.v1.CallRouting/RouteCall",
            "0",
            Duration::from_millis(2),
        );
        m.routed(
            &Partition::parse("touraine-logement"),
            "touraine-logement.rent",
            "administrative",
            "queued",
            "BUILDING",
            Duration::from_micros(3),
        );
        m.queue(
            &Partition::parse("touraine-logement"),
            "touraine-logement.rent",
            Urgency::U3,
            2,
            Some(1500),
        );
        let text = m.encode();
        assert!(text.contains("callrouter_grpc_server_handled_total{code=\"Ok\",method=\"RouteCall\",service=\"callrouter.v1.CallRouting\"} 1"), "{text}");
        assert!(text.contains("callrouter_grpc_server_handling_seconds_bucket"));
        assert!(text.contains("callrouter_queue_oldest_wait_seconds{cooperator=\"touraine-logement\",team=\"touraine-logement.rent\",urgency=\"U3\"} 1.5"));
        assert!(text.contains("callrouter_build_info{version="));
        // Every family with a sample is exposed, histograms once observed; process_* on Linux.
        for family in [
            "address_matches_total",
            "agents",
            "build_info",
            "calls_routed_total",
            "config_generation",
            "config_reloads_total",
            "escalations_total",
            "grpc_server_handled_total",
            "grpc_server_handling_seconds",
            "lease_expiries_total",
            "queue_depth",
            "queue_oldest_wait_seconds",
            "routing_decision_seconds",
            "sla_breaches_total",
            "store_errors_total",
            "store_up",
            "process_resident_memory_bytes",
        ] {
            assert!(
                text.contains(&format!("# TYPE callrouter_{family} ")),
                "{family} missing:\n{text}"
            );
        }
        let off = Metrics::disabled();
        off.rpc(
            "/callrouter.v1.CallRouting/RouteCall",
            "0",
            Duration::from_millis(2),
        );
        assert!(!off.encode().contains("grpc_server_handled_total{"));
    }
}
