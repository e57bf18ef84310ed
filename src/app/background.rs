//! The service's own work between requests: the reaper (expired leases back to their queues,
//! interrupted moves finished) and the metrics sampler (queue depths, oldest waits, agents by
//! presence). Each pass reads the configuration snapshot in force, so a partition added by a
//! reload is reaped and sampled from the next pass on.

use std::future::Future;
use std::time::Duration;

use super::App;
use crate::store::Presence;

impl App {
    /// Runs the reaper until `shutdown` resolves: every `every`, each partition's expired leases go
    /// back to their queues and interrupted moves are finished. Errors (Redis away) are logged once
    /// per outage and the next pass tries again; several instances may reap at once, since each
    /// pass is atomic.
    pub async fn run_reaper(&self, every: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticks.tick() => {}
            }
            for partition in self.current().router.partitions() {
                match self.store.reap(&partition).await {
                    Ok(report) => {
                        self.metrics
                            .reaped(&partition, report.expired, report.escalated);
                        if failing {
                            tracing::info!("reaper passes succeed again");
                            failing = false;
                        }
                        if report.expired > 0 || report.moves_finished > 0 {
                            tracing::info!(
                                partition = %partition,
                                expired = report.expired,
                                escalated = report.escalated,
                                moves_finished = report.moves_finished,
                                "reaper returned expired leases"
                            );
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(partition = %partition, error = %e, "reaper passes fail; retrying every pass");
                            failing = true;
                        }
                    }
                }
            }
        }
    }

    /// Keeps the queue and agent gauges current until `shutdown` resolves: one pipelined read of
    /// every queue per pass, cheap for Redis.
    pub async fn run_sampler(&self, every: Duration, shutdown: impl Future<Output = ()>) {
        if !self.metrics.is_enabled() {
            return;
        }
        tokio::pin!(shutdown);
        loop {
            let queues = self.current().router.all_queues();
            if let Ok((stats, _)) = self.store.queue_stats(&queues).await {
                for s in stats {
                    self.metrics.queue(
                        &s.queue.partition,
                        &s.queue.team,
                        s.urgency,
                        s.depth,
                        s.oldest_wait_ms,
                    );
                }
            }
            if let Ok(agents) = self.store.agents().await {
                let counts: Vec<(Presence, i64)> = Presence::ALL
                    .into_iter()
                    .map(|p| (p, agents.iter().filter(|a| a.presence == p).count() as i64))
                    .collect();
                self.metrics.agents(&counts);
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}
