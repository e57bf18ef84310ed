//! Prometheus metrics, exposed by the admin listener at `/metrics` in the Prometheus text format.
//!
//! Every label has a bounded set of values taken from the configuration or from code: cooperator,
//! team, urgency, issue category, outcome, presence, gRPC type, service, method and code, store
//! operation. Never a
//! phone number, an address, a ticket id or a call id. gRPC paths that are not part of the served
//! contracts are counted under `other`, so no client can create label values.
//!
//! Events are counted by the instance that served them; what the store holds (queues, agents) is
//! exported by the one instance holding the store's metrics lease ([`crate::app::sampler`]), so
//! sums over instances count everything once. Counters are primed at zero for every label value a
//! configuration gives ([`Metrics::prime`]).
//!
//! [`Metrics::disabled`] records nothing (to measure what recording costs).

use std::time::Duration;

use prometheus::{Encoder, Registry, TextEncoder};

mod families;
pub mod grpc;
pub mod instrumented;

pub use self::families::ANSWER_BUCKETS;
use self::families::{
    ConfigFamilies, QueueFamilies, RoutingFamilies, RpcFamilies, StoreFamilies, TicketFamilies,
    gauge,
};
pub use self::grpc::{RpcLabels, rpc_labels};
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::urgency::Urgency;
use crate::store::{Presence, StoreError, TicketState};

/// All the service's metrics and their registries: `callrouter_*`, and the conventional names
/// stock dashboards look for (`grpc_server_*`, `process_*`) without the prefix.
pub struct Metrics {
    enabled: bool,
    registry: Registry,
    standard: Registry,
    /// Every RPC path's series, resolved once (empty when not recording).
    rpc: Vec<grpc::RpcSeries>,
    routing: RoutingFamilies,
    queues: QueueFamilies,
    tickets: TicketFamilies,
    store: StoreFamilies,
    config: ConfigFamilies,
}

/// The label values a configuration gives, primed at start and at every reload so that rates and
/// alerts see the first event of each series.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// Cooperators and `platform`.
    pub partitions: Vec<Partition>,
    /// Every team queue, per partition.
    pub queues: Vec<QueueRef>,
    /// Issue categories.
    pub categories: Vec<String>,
}

/// How many agents of a team queue are in a presence.
pub type TeamPresence = (QueueRef, Presence, u64);

/// One read of the whole store, by the instance holding the metrics lease.
#[derive(Debug, Clone, Default)]
pub struct StoreFigures {
    pub queues: Vec<QueueFigures>,
    /// Held tickets per queue: (queue, reserved, in progress).
    pub held: Vec<(QueueRef, u64, u64)>,
    /// Tickets in each partition's move outbox.
    pub move_backlog: Vec<(Partition, u64)>,
    /// Agents by partition and presence, each agent once.
    pub agents: Vec<(Partition, Presence, u64)>,
    /// Agents by team queue and presence; an agent of several teams counts in each.
    pub team_agents: Vec<TeamPresence>,
}

/// One queue and urgency, store-wide.
#[derive(Debug, Clone)]
pub struct QueueFigures {
    pub queue: QueueRef,
    pub urgency: Urgency,
    pub depth: u64,
    pub oldest_wait: Option<Duration>,
    pub near_due: u64,
    pub overdue: u64,
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
        StoreError::Unconfirmed { .. } => "unconfirmed",
    }
}

fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
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
        let standard = Registry::new();
        // Resident memory, CPU and file descriptors of the process (process_*).
        #[cfg(target_os = "linux")]
        if let Err(e) = standard.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::error!(error = %e, "process metrics could not be registered");
        }
        let r = &registry;
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
            rpc: if enabled {
                grpc::series(&RpcFamilies::new(&standard))
            } else {
                Vec::new()
            },
            routing: RoutingFamilies::new(r),
            queues: QueueFamilies::new(r),
            tickets: TicketFamilies::new(r),
            store: StoreFamilies::new(r),
            config: ConfigFamilies::new(r),
            registry,
            standard,
        }
    }

    /// Whether this instance records.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The exposition, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut families = self.standard.gather();
        families.extend(self.registry.gather());
        let mut buffer = Vec::new();
        if TextEncoder::new().encode(&families, &mut buffer).is_err() {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Creates zero-valued series for what a configuration can produce — every served method and
    /// code, every team queue, cooperator, urgency and category — so that rates and alerts have
    /// data before the first event.
    pub fn prime(&self, catalogue: &Catalogue) {
        if !self.enabled {
            return;
        }
        let t = &self.tickets;
        for queue in &catalogue.queues {
            let (p, team) = (queue.partition.as_str(), queue.team.as_str());
            for outcome in ["queued", "duplicate", "incident", "degraded"] {
                self.routing
                    .calls
                    .with_label_values(&[p, team, outcome])
                    .inc_by(0);
            }
            for family in [&t.completed, &t.released, &t.transferred] {
                family.with_label_values(&[p, team]).inc_by(0);
            }
            for urgency in Urgency::ALL {
                let labels = [p, team, urgency.as_str()];
                t.wait.with_label_values(&labels);
                t.abandoned.with_label_values(&labels).inc_by(0);
            }
        }
        for partition in &catalogue.partitions {
            let p = partition.as_str();
            for family in [
                &t.lease_expiries,
                &t.escalations,
                &t.moved,
                &self.routing.on_call,
            ] {
                family.with_label_values(&[p]).inc_by(0);
            }
            for category in &catalogue.categories {
                self.routing
                    .categories
                    .with_label_values(&[p, category])
                    .inc_by(0);
            }
            for urgency in Urgency::ALL {
                let u = urgency.as_str();
                t.sla_breaches.with_label_values(&[p, u]).inc_by(0);
                t.handle.with_label_values(&[p, u]);
                t.abandon_wait.with_label_values(&[p, u]);
                self.routing.urgencies.with_label_values(&[p, u]).inc_by(0);
                for within in ["yes", "no"] {
                    t.answered.with_label_values(&[p, u, within]).inc_by(0);
                }
            }
        }
        for level in ["BUILDING", "STREET", "COMMUNE", "NONE"] {
            self.routing
                .address_matches
                .with_label_values(&[level])
                .inc_by(0);
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
    }

    pub fn rpc_started(&self, labels: &RpcLabels) {
        if let Some(series) = self.rpc.get(labels.at) {
            series.started();
        }
    }

    /// An RPC ended with `code` after `elapsed`, having received and sent so many messages.
    pub fn rpc_handled(
        &self,
        labels: &RpcLabels,
        code: tonic::Code,
        elapsed: Duration,
        received: u64,
        sent: u64,
    ) {
        if let Some(series) = self.rpc.get(labels.at) {
            series.handled(code, elapsed, received, sent);
        }
    }

    /// A routed call. A retry (`duplicate`) counts only in `calls_routed_total`.
    pub fn routed(&self, call: &RoutedCall<'_>) {
        if !self.enabled {
            return;
        }
        let p = call.partition.as_str();
        self.routing
            .calls
            .with_label_values(&[p, call.team, call.outcome])
            .inc();
        self.routing.decision.observe(call.decision.as_secs_f64());
        self.routing
            .address_matches
            .with_label_values(&[call.level])
            .inc();
        if call.outcome == "duplicate" {
            return;
        }
        self.routing
            .categories
            .with_label_values(&[p, call.category])
            .inc();
        self.routing
            .urgencies
            .with_label_values(&[p, call.urgency.as_str()])
            .inc();
        if call.on_call {
            self.routing.on_call.with_label_values(&[p]).inc();
        }
    }

    /// A ticket claimed after waiting `waited_ms`, before its due time or not.
    pub fn claimed(&self, queue: &QueueRef, urgency: Urgency, waited_ms: i64, on_time: bool) {
        if !self.enabled {
            return;
        }
        let (p, u) = (queue.partition.as_str(), urgency.as_str());
        self.tickets
            .wait
            .with_label_values(&[p, &queue.team, u])
            .observe(seconds(waited_ms));
        self.tickets
            .answered
            .with_label_values(&[p, u, if on_time { "yes" } else { "no" }])
            .inc();
    }

    pub fn completed(&self, queue: &QueueRef, urgency: Urgency, handled_ms: i64, breached: bool) {
        if !self.enabled {
            return;
        }
        let (p, u) = (queue.partition.as_str(), urgency.as_str());
        self.tickets
            .handle
            .with_label_values(&[p, u])
            .observe(seconds(handled_ms));
        self.tickets
            .completed
            .with_label_values(&[p, &queue.team])
            .inc();
        if breached {
            self.tickets.sla_breaches.with_label_values(&[p, u]).inc();
        }
    }

    /// A caller hung up before pickup; `cancelled_after_ms` when that cancelled the ticket (its
    /// last caller), with the ticket's wait since its creation.
    pub fn abandoned(&self, queue: &QueueRef, urgency: Urgency, cancelled_after_ms: Option<i64>) {
        if !self.enabled {
            return;
        }
        let (p, u) = (queue.partition.as_str(), urgency.as_str());
        self.tickets
            .abandoned
            .with_label_values(&[p, &queue.team, u])
            .inc();
        if let Some(ms) = cancelled_after_ms {
            self.tickets
                .abandon_wait
                .with_label_values(&[p, u])
                .observe(seconds(ms));
        }
    }

    pub fn released(&self, queue: &QueueRef) {
        if self.enabled {
            self.tickets
                .released
                .with_label_values(&[queue.partition.as_str(), &queue.team])
                .inc();
        }
    }

    /// A ticket of partition `from` transferred to the queue `to`: a move when the partitions
    /// differ.
    pub fn transferred(&self, to: &QueueRef, from: &Partition) {
        if !self.enabled {
            return;
        }
        self.tickets
            .transferred
            .with_label_values(&[to.partition.as_str(), &to.team])
            .inc();
        if *from != to.partition {
            self.tickets.moved.with_label_values(&[from.as_str()]).inc();
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

    /// A `WatchTickets` stream opened (`+1`) or ended (`-1`).
    pub fn watch_streams(&self, delta: i64) {
        self.tickets.watch_streams.add(delta);
    }

    /// Whether this instance holds the metrics lease. One that does not exports no store-wide
    /// figure, so that sums over instances count each once.
    pub fn store_wide_holder(&self, holder: bool) {
        self.queues.holder.set(i64::from(holder));
        if !holder {
            self.forget_store_wide();
        }
    }

    /// Removes every store-wide series (the lease is lost, or a reload changed the queues).
    pub fn forget_store_wide(&self) {
        let q = &self.queues;
        for family in [
            &q.depth,
            &q.held,
            &q.near_due,
            &q.overdue,
            &q.move_backlog,
            &q.agents,
            &q.team_agents,
        ] {
            family.reset();
        }
        q.oldest_wait.reset();
        q.presence_seconds.reset();
        q.sampled_at.set(0.0);
    }

    /// The store-wide figures as read at `sampled_at` (Unix seconds). Each read covers every
    /// queue, partition and presence of the configuration (zeros included), so a series never
    /// goes missing between reads.
    pub fn store_wide(&self, figures: &StoreFigures, sampled_at: f64) {
        if !self.enabled {
            return;
        }
        let q = &self.queues;
        self.queue_figures(&figures.queues);
        for (queue, reserved, in_progress) in &figures.held {
            for (state, n) in [
                (TicketState::Reserved, reserved),
                (TicketState::InProgress, in_progress),
            ] {
                q.held
                    .with_label_values(&[queue.partition.as_str(), &queue.team, state.as_str()])
                    .set(*n as i64);
            }
        }
        for (partition, n) in &figures.move_backlog {
            q.move_backlog
                .with_label_values(&[partition.as_str()])
                .set(*n as i64);
        }
        for (partition, presence, n) in &figures.agents {
            q.agents
                .with_label_values(&[partition.as_str(), presence.as_str()])
                .set(*n as i64);
        }
        for (queue, presence, n) in &figures.team_agents {
            q.team_agents
                .with_label_values(&[queue.partition.as_str(), &queue.team, presence.as_str()])
                .set(*n as i64);
        }
        q.sampled_at.set(sampled_at);
    }

    /// Queue figures alone: during a store outage, the last read with its waits grown by the time
    /// since (nothing can be claimed while the store is away).
    pub fn queue_figures(&self, queues: &[QueueFigures]) {
        if !self.enabled {
            return;
        }
        let q = &self.queues;
        for f in queues {
            let labels = [
                f.queue.partition.as_str(),
                &f.queue.team,
                f.urgency.as_str(),
            ];
            q.depth.with_label_values(&labels).set(f.depth as i64);
            q.oldest_wait
                .with_label_values(&labels)
                .set(f.oldest_wait.map_or(0.0, |w| w.as_secs_f64()));
            q.near_due.with_label_values(&labels).set(f.near_due as i64);
            q.overdue.with_label_values(&labels).set(f.overdue as i64);
        }
    }

    /// Agents spent `elapsed` more in the presences last read, team by team (occupancy).
    pub fn presence_time(&self, team_agents: &[TeamPresence], elapsed: Duration) {
        if !self.enabled {
            return;
        }
        for (queue, presence, n) in team_agents {
            self.queues
                .presence_seconds
                .with_label_values(&[queue.partition.as_str(), &queue.team, presence.as_str()])
                .inc_by(*n as f64 * elapsed.as_secs_f64());
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

    /// The Redis primary in use (none for the in-memory store) and the failovers followed.
    pub fn redis_primary(&self, address: Option<&str>, failovers: u64) {
        let primary = &self.store.primary;
        let current = address.is_some_and(|a| {
            primary
                .get_metric_with_label_values(&[a])
                .is_ok_and(|g| g.get() == 1)
        });
        if !current {
            primary.reset();
            if let Some(address) = address {
                primary.with_label_values(&[address]).set(1);
            }
        }
        let counted = self.store.failovers.get();
        if failovers > counted {
            self.store.failovers.inc_by(failovers - counted);
        }
    }

    /// The configuration in force: its generation and the digest of its files.
    pub fn config(&self, generation: u64, digest: &str) {
        self.config.generation.set(generation as i64);
        self.config.info.reset();
        self.config.info.with_label_values(&[digest]).set(1);
    }

    pub fn reload(&self, ok: bool) {
        self.config
            .reloads
            .with_label_values(&[if ok { "ok" } else { "refused" }])
            .inc();
    }

    /// Which partitions are open now; the previous configuration's others are removed.
    pub fn opening(&self, open: &[(Partition, bool)]) {
        self.config.open.reset();
        for (partition, is_open) in open {
            self.config
                .open
                .with_label_values(&[partition.as_str()])
                .set(i64::from(*is_open));
        }
    }
}

/// A routed call, as the metrics count it.
#[derive(Debug, Clone)]
pub struct RoutedCall<'a> {
    pub partition: &'a Partition,
    pub team: &'a str,
    pub category: &'a str,
    pub urgency: Urgency,
    /// The decision tells the platform to transfer to an on-call line.
    pub on_call: bool,
    /// `queued`, `duplicate`, `incident` or `degraded`.
    pub outcome: &'static str,
    /// The address match level.
    pub level: &'a str,
    pub decision: Duration,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Catalogue {
        let p = Partition::parse("touraine-logement");
        Catalogue {
            queues: vec![QueueRef::new(p.as_str(), "touraine-logement.rent")],
            partitions: vec![p, Partition::parse("platform")],
            categories: vec!["technical".to_owned()],
        }
    }

    #[test]
    fn every_metric_registers_and_names_follow_prometheus_conventions() {
        let m = Metrics::new();
        m.prime(&catalogue());
        let route = rpc_labels("/callrouter.v1.CallRouting/RouteCall");
        m.rpc_started(&route);
        m.rpc_handled(&route, tonic::Code::Ok, Duration::from_millis(2), 1, 1);
        let queue = QueueRef::new("touraine-logement", "touraine-logement.rent");
        m.queue_figures(&[QueueFigures {
            queue: queue.clone(),
            urgency: Urgency::U3,
            depth: 2,
            oldest_wait: Some(Duration::from_millis(1500)),
            near_due: 0,
            overdue: 0,
        }]);
        m.watch_streams(1);
        let text = m.encode();
        assert!(text.contains("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"RouteCall\",grpc_service=\"callrouter.v1.CallRouting\",grpc_type=\"unary\"} 1"), "{text}");
        assert!(text.contains("grpc_server_started_total{grpc_method=\"RouteCall\",grpc_service=\"callrouter.v1.CallRouting\",grpc_type=\"unary\"} 1"));
        assert!(text.contains("callrouter_queue_oldest_wait_seconds{cooperator=\"touraine-logement\",team=\"touraine-logement.rent\",urgency=\"U3\"} 1.5"));
        assert!(text.contains("callrouter_calls_routed_total{cooperator=\"touraine-logement\",outcome=\"degraded\",team=\"touraine-logement.rent\"} 0"));
        assert!(text.contains("callrouter_ticket_wait_seconds_bucket{cooperator=\"touraine-logement\",team=\"touraine-logement.rent\",urgency=\"U1\",le=\"14400\"} 0"));
        // Every family is exposed once primed; the conventional ones without the prefix.
        for family in [
            "callrouter_abandon_wait_seconds",
            "callrouter_address_matches_total",
            "callrouter_build_info",
            "callrouter_calls_abandoned_total",
            "callrouter_calls_by_category_total",
            "callrouter_calls_by_urgency_total",
            "callrouter_calls_routed_total",
            "callrouter_config_generation",
            "callrouter_config_reloads_total",
            "callrouter_escalations_total",
            "callrouter_lease_expiries_total",
            "callrouter_on_call_transfers_total",
            "callrouter_queue_depth",
            "callrouter_queue_oldest_wait_seconds",
            "callrouter_sla_breaches_total",
            "callrouter_store_errors_total",
            "callrouter_store_up",
            "callrouter_ticket_handle_seconds",
            "callrouter_ticket_wait_seconds",
            "callrouter_tickets_answered_total",
            "callrouter_tickets_completed_total",
            "callrouter_tickets_moved_total",
            "callrouter_tickets_released_total",
            "callrouter_tickets_transferred_total",
            "callrouter_watch_streams",
            "grpc_server_handled_total",
            "grpc_server_handling_seconds",
            "grpc_server_msg_received_total",
            "grpc_server_msg_sent_total",
            "grpc_server_started_total",
            "process_resident_memory_bytes",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} missing:\n{text}"
            );
        }
        let off = Metrics::disabled();
        off.rpc_handled(&route, tonic::Code::Ok, Duration::from_millis(2), 1, 1);
        assert!(!off.encode().contains("grpc_server_handled_total{"));
    }

    #[test]
    fn an_instance_without_the_lease_exports_no_store_wide_figure() {
        let m = Metrics::new();
        let queue = QueueRef::new("touraine-logement", "touraine-logement.rent");
        let figures = StoreFigures {
            queues: vec![QueueFigures {
                queue: queue.clone(),
                urgency: Urgency::U1,
                depth: 3,
                oldest_wait: None,
                near_due: 1,
                overdue: 0,
            }],
            held: vec![(queue.clone(), 1, 2)],
            move_backlog: vec![(Partition::parse("platform"), 0)],
            agents: vec![(
                Partition::parse("touraine-logement"),
                Presence::Available,
                2,
            )],
            team_agents: vec![(queue.clone(), Presence::Available, 2)],
        };
        m.store_wide_holder(true);
        m.store_wide(&figures, 1_800_000_000.0);
        m.presence_time(&figures.team_agents, Duration::from_secs(5));
        let text = m.encode();
        assert!(text.contains("callrouter_queue_near_due_tickets{cooperator=\"touraine-logement\",team=\"touraine-logement.rent\",urgency=\"U1\"} 1"), "{text}");
        assert!(text.contains("callrouter_queue_held_tickets{cooperator=\"touraine-logement\",state=\"IN_PROGRESS\",team=\"touraine-logement.rent\"} 2"));
        assert!(text.contains("callrouter_agent_presence_seconds_total{cooperator=\"touraine-logement\",presence=\"AVAILABLE\",team=\"touraine-logement.rent\"} 10"));
        assert!(text.contains("callrouter_store_metrics_holder 1"));
        m.store_wide_holder(false);
        let text = m.encode();
        for family in [
            "queue_depth{",
            "queue_held_tickets{",
            "queue_near_due_tickets{",
            "agents{",
            "team_agents{",
            "agent_presence_seconds_total{",
            "move_outbox_tickets{",
        ] {
            assert!(!text.contains(family), "{family} still exported:\n{text}");
        }
        assert!(text.contains("callrouter_store_metrics_holder 0"));
    }
}
