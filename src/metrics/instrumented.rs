//! A store wrapper that times every operation and counts errors by kind, for the metrics. It
//! changes nothing else: each call goes straight to the store it wraps. An operation whose caller
//! stops waiting (`RouteCall`'s store deadline drops it) is recorded as a timeout after the time
//! it ran, so a slow store shows in the figures the runbook points to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::metrics::Metrics;
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::urgency::Urgency;
use crate::store::Millis;
use crate::store::{
    AgentStatus, Created, Hold, NewTicket, NextClaim, QueuePosition, QueueStats, ReapReport,
    StateCounts, StoreError, Ticket, TicketEvent, TicketStore,
};

/// A [`TicketStore`] that reports to [`Metrics`].
pub struct InstrumentedStore {
    inner: Arc<dyn TicketStore>,
    metrics: Arc<Metrics>,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn TicketStore>, metrics: Arc<Metrics>) -> InstrumentedStore {
        InstrumentedStore { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut timing = Timing {
            metrics: &self.metrics,
            operation,
            started: Instant::now(),
            finished: false,
        };
        let result = call.await;
        timing.finished = true;
        self.metrics
            .store_operation(operation, timing.started.elapsed(), result.as_ref().err());
        result
    }
}

/// An operation under way: dropped before it finished, it is recorded as a timeout.
struct Timing<'a> {
    metrics: &'a Metrics,
    operation: &'static str,
    started: Instant,
    finished: bool,
}

impl Drop for Timing<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics.store_operation(
                self.operation,
                self.started.elapsed(),
                Some(&StoreError::Timeout),
            );
        }
    }
}

#[async_trait]
impl TicketStore for InstrumentedStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn create(&self, new: NewTicket) -> Result<Created, StoreError> {
        self.timed("create", self.inner.create(new)).await
    }

    async fn claim_next(
        &self,
        agent_id: &str,
        queues: &[QueueRef],
        lease: Duration,
        claim_id: Option<&str>,
    ) -> Result<Option<Ticket>, StoreError> {
        let claim = self.inner.claim_next(agent_id, queues, lease, claim_id);
        self.timed("claim", claim).await
    }

    async fn accept(
        &self,
        ticket_id: &str,
        hold: &Hold,
        lease: Duration,
    ) -> Result<Ticket, StoreError> {
        self.timed("accept", self.inner.accept(ticket_id, hold, lease))
            .await
    }

    async fn complete(
        &self,
        ticket_id: &str,
        hold: &Hold,
        resolution: &str,
    ) -> Result<Ticket, StoreError> {
        self.timed("complete", self.inner.complete(ticket_id, hold, resolution))
            .await
    }

    async fn complete_and_claim(
        &self,
        ticket_id: &str,
        hold: &Hold,
        resolution: &str,
        next: &NextClaim<'_>,
    ) -> Result<(Ticket, Option<Ticket>), StoreError> {
        let both = self
            .inner
            .complete_and_claim(ticket_id, hold, resolution, next);
        self.timed("complete_claim", both).await
    }

    async fn release(&self, ticket_id: &str, hold: &Hold) -> Result<Ticket, StoreError> {
        self.timed("release", self.inner.release(ticket_id, hold))
            .await
    }

    async fn transfer(
        &self,
        ticket_id: &str,
        hold: &Hold,
        to: &QueueRef,
        urgency: Option<Urgency>,
    ) -> Result<Ticket, StoreError> {
        self.timed(
            "transfer",
            self.inner.transfer(ticket_id, hold, to, urgency),
        )
        .await
    }

    async fn cancel(&self, ticket_id: &str, call_id: Option<&str>) -> Result<Ticket, StoreError> {
        self.timed("cancel", self.inner.cancel(ticket_id, call_id))
            .await
    }

    async fn get(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError> {
        self.timed("get", self.inner.get(ticket_id)).await
    }

    async fn history(&self, ticket_id: &str) -> Result<Vec<String>, StoreError> {
        self.timed("history", self.inner.history(ticket_id)).await
    }

    async fn list_queued(&self, queue: &QueueRef, limit: usize) -> Result<Vec<Ticket>, StoreError> {
        self.timed("list", self.inner.list_queued(queue, limit))
            .await
    }

    async fn held_by(
        &self,
        partition: &Partition,
        agent_id: &str,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.timed("held", self.inner.held_by(partition, agent_id))
            .await
    }

    async fn position(&self, ticket_id: &str) -> Result<Option<QueuePosition>, StoreError> {
        self.timed("position", self.inner.position(ticket_id)).await
    }

    async fn queue_stats(
        &self,
        queues: &[QueueRef],
    ) -> Result<(Vec<QueueStats>, Vec<(QueueRef, StateCounts)>), StoreError> {
        self.timed("stats", self.inner.queue_stats(queues)).await
    }

    async fn reap(&self, partition: &Partition) -> Result<ReapReport, StoreError> {
        self.timed("reap", self.inner.reap(partition)).await
    }

    async fn read_events(
        &self,
        queue: &QueueRef,
        after: Option<&str>,
        limit: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        // Blocking reads wait by design: their time is not the store's latency.
        if wait.is_some() {
            return self.inner.read_events(queue, after, limit, wait).await;
        }
        self.timed("events", self.inner.read_events(queue, after, limit, wait))
            .await
    }

    async fn feed_tail(&self, queue: &QueueRef) -> Result<String, StoreError> {
        self.timed("feed_tail", self.inner.feed_tail(queue)).await
    }

    async fn read_feeds(
        &self,
        partition: &Partition,
        feeds: &[(String, String)],
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        // A blocking wait, as read_events with a wait: its time says nothing of the store's.
        self.inner.read_feeds(partition, feeds, limit, wait).await
    }

    async fn heartbeat(&self, agent: &AgentStatus) -> Result<(), StoreError> {
        self.timed("heartbeat", self.inner.heartbeat(agent)).await
    }

    async fn agents(&self) -> Result<Vec<AgentStatus>, StoreError> {
        self.timed("agents", self.inner.agents()).await
    }

    fn primary_address(&self) -> Option<String> {
        self.inner.primary_address()
    }

    fn failovers(&self) -> u64 {
        self.inner.failovers()
    }

    async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.timed("lease", self.inner.lease(name, holder, ttl))
            .await
    }

    async fn move_backlog(&self, partitions: &[Partition]) -> Result<Vec<u64>, StoreError> {
        self.timed("move_backlog", self.inner.move_backlog(partitions))
            .await
    }

    async fn waiting_between(
        &self,
        ranges: &[(QueueRef, Urgency, Millis, Millis)],
    ) -> Result<Vec<u64>, StoreError> {
        self.timed("waiting_between", self.inner.waiting_between(ranges))
            .await
    }
}
