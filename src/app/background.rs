//! The reaper, the service's own work between requests: expired leases back to their queues,
//! interrupted moves finished. Each pass reads the configuration snapshot in force, so a partition
//! added by a reload is reaped from the next pass on. (The metrics sampler is [`super::sampler`].)

use std::future::Future;
use std::time::Duration;

use super::App;

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
}
