//! The metrics sampler: what the whole store holds — queue depths and oldest waits, tickets near
//! and past due, held tickets, move outboxes, agents by presence and the time they spend in each —
//! read by one instance at a time, so that sums over instances count each figure once.
//!
//! Every instance runs the sampler; the one holding the store's `metrics` lease reads and exports
//! the store-wide figures, the others export none (and take the lease over within three passes
//! when its holder stops). During a store outage the holder keeps its last read, with the waits
//! grown by the time since: nothing can be claimed while the store is away. Every instance also
//! exports which cooperators are open now, from the configuration's opening hours.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{App, Snapshot};
use crate::metrics::{QueueFigures, StoreFigures, TeamPresence};
use crate::routing::calendar;
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::urgency::Urgency;
use crate::store::{Millis, Presence, StoreError};

/// The name of the store-wide metrics job's lease.
const LEASE: &str = "metrics";

/// What the sampler remembers between passes.
#[derive(Default)]
struct Sampling {
    holding: bool,
    /// The configuration generation of the last export (a reload may drop queues).
    generation: u64,
    /// The last successful read of the queues, and when.
    queues: Option<(Instant, Vec<QueueFigures>)>,
    /// The agents of the last successful read, and when (for the time spent in each presence).
    agents: Option<(Instant, Vec<TeamPresence>)>,
}

impl App {
    /// Keeps the metrics of the whole store and the opening hours current until `shutdown`
    /// resolves, one pass every `every`.
    pub async fn run_sampler(&self, every: Duration, shutdown: impl Future<Output = ()>) {
        if !self.metrics.is_enabled() {
            return;
        }
        let holder = crate::store::ids::new_ticket_id("instance").unwrap_or_default();
        let ttl = (every * 3).max(Duration::from_secs(1));
        let mut sampling = Sampling::default();
        tokio::pin!(shutdown);
        loop {
            self.sample(&holder, ttl, &mut sampling).await;
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    async fn sample(&self, holder: &str, ttl: Duration, sampling: &mut Sampling) {
        let snapshot = self.current();
        let now = Utc::now();
        self.metrics.opening(&open_now(&snapshot, now));
        match self.store.lease(LEASE, holder, ttl).await {
            Ok(true) => sampling.holding = true,
            Ok(false) => {
                if sampling.holding {
                    tracing::info!("another instance now exports the store-wide metrics");
                }
                *sampling = Sampling::default();
                self.metrics.store_wide_holder(false);
                return;
            }
            // The store is away: a holder keeps exporting what it last read, its waits grown (no
            // read of the store now: it would only wait for the same timeout).
            Err(_) => {
                if sampling.holding {
                    self.store_away(sampling);
                }
                return;
            }
        }
        if !sampling.holding {
            return;
        }
        if sampling.generation != snapshot.generation {
            self.metrics.forget_store_wide();
            sampling.generation = snapshot.generation;
        }
        self.metrics.store_wide_holder(true);
        match self.read_store(&snapshot, now).await {
            Ok(figures) => {
                let read_at = Instant::now();
                match &sampling.agents {
                    Some((at, agents)) => self.metrics.presence_time(agents, read_at - *at),
                    // The series exist from the first read on, at zero.
                    None => self
                        .metrics
                        .presence_time(&figures.team_agents, Duration::ZERO),
                }
                self.metrics
                    .store_wide(&figures, now.timestamp_millis() as f64 / 1000.0);
                sampling.queues = Some((read_at, figures.queues));
                sampling.agents = Some((read_at, figures.team_agents));
            }
            Err(_) => self.store_away(sampling),
        }
    }

    /// The store does not answer: the last read, its waits grown by the time since. Presence is
    /// unknown until the store answers again: that time is not attributed.
    fn store_away(&self, sampling: &mut Sampling) {
        sampling.agents = None;
        if let Some((at, queues)) = &sampling.queues {
            self.metrics.queue_figures(&grown(queues, at.elapsed()));
        }
    }

    /// One read of the store-wide figures: four pipelined round trips.
    async fn read_store(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Utc>,
    ) -> Result<StoreFigures, StoreError> {
        let router = &snapshot.router;
        let queues = router.all_queues();
        let partitions = router.partitions();
        let (stats, counts) = self.store.queue_stats(&queues).await?;
        let tz = router.platform.timezone;
        let mut ranges = Vec::new();
        for urgency in Urgency::ALL {
            let near = now + calendar::near_due_warning(urgency);
            for (deadline, which) in [(near, Due::Near), (now, Due::Over)] {
                for (from, to) in calendar::starts_due_by(urgency, tz, deadline) {
                    for queue in &queues {
                        ranges.push(((queue.clone(), urgency, from, to), which));
                    }
                }
            }
        }
        let asked: Vec<(QueueRef, Urgency, Millis, Millis)> =
            ranges.iter().map(|(range, _)| range.clone()).collect();
        let due = self.store.waiting_between(&asked).await?;
        let mut due_counts: BTreeMap<(QueueRef, Urgency, Due), u64> = BTreeMap::new();
        for (((queue, urgency, _, _), which), n) in ranges.into_iter().zip(due) {
            *due_counts.entry((queue, urgency, which)).or_default() += n;
        }
        let backlog = self.store.move_backlog(&partitions).await?;
        let agents = self.store.agents().await?;
        let due_of = |queue: &QueueRef, urgency, which| {
            due_counts
                .get(&(queue.clone(), urgency, which))
                .copied()
                .unwrap_or(0)
        };
        let mut by_partition: BTreeMap<(Partition, Presence), u64> = partitions
            .iter()
            .flat_map(|p| Presence::ALL.map(|s| ((p.clone(), s), 0)))
            .collect();
        let mut by_team: BTreeMap<(QueueRef, Presence), u64> = queues
            .iter()
            .flat_map(|q| Presence::ALL.map(|s| ((q.clone(), s), 0)))
            .collect();
        for agent in &agents {
            *by_partition
                .entry((agent.partition.clone(), agent.presence))
                .or_default() += 1;
            for team in &agent.teams {
                let queue = QueueRef::new(agent.partition.as_str(), team);
                *by_team.entry((queue, agent.presence)).or_default() += 1;
            }
        }
        Ok(StoreFigures {
            queues: stats
                .into_iter()
                .map(|s| QueueFigures {
                    near_due: due_of(&s.queue, s.urgency, Due::Near),
                    overdue: due_of(&s.queue, s.urgency, Due::Over),
                    oldest_wait: s
                        .oldest_wait_ms
                        .map(|ms| Duration::from_millis(ms.max(0) as u64)),
                    depth: s.depth,
                    urgency: s.urgency,
                    queue: s.queue,
                })
                .collect(),
            held: counts
                .into_iter()
                .map(|(queue, c)| (queue, c.reserved, c.in_progress))
                .collect(),
            move_backlog: partitions.into_iter().zip(backlog).collect(),
            agents: by_partition
                .into_iter()
                .map(|((p, s), n)| (p, s, n))
                .collect(),
            team_agents: by_team.into_iter().map(|((q, s), n)| (q, s, n)).collect(),
        })
    }
}

/// Which deadline a count of waiting tickets is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// Due within the urgency's warning time (or already).
    Near,
    /// Past due.
    Over,
}

/// The last read, its oldest waits grown by the time since.
fn grown(queues: &[QueueFigures], since: Duration) -> Vec<QueueFigures> {
    queues
        .iter()
        .map(|f| QueueFigures {
            oldest_wait: f.oldest_wait.map(|w| w + since),
            ..f.clone()
        })
        .collect()
}

/// Whether each cooperator, and the platform, is open at `now` by its hours and the holidays.
fn open_now(snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<(Partition, bool)> {
    let router = &snapshot.router;
    let tz = router.platform.timezone;
    let mut open = vec![(
        Partition::Platform,
        calendar::time_facts(tz, &router.platform.hours, now).open,
    )];
    for cooperator in &router.cooperators {
        open.push((
            Partition::Cooperator(cooperator.id.clone()),
            calendar::time_facts(tz, &cooperator.hours, now).open,
        ));
    }
    open
}
