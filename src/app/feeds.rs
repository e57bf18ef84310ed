//! The feed hub: one reader per partition follows the team feeds someone watches — a single
//! blocking read over all of them — and fans each event out in process to every watcher of its
//! team. Watching therefore costs a bounded number of store connections per instance (one per
//! partition watched), whatever the number of watchers and however many times they name a team.
//!
//! A watcher subscribes to a team's live events, then catches up from its own position by
//! ordinary reads, and delivers each event once, in feed order (positions only grow along a feed).
//! A watcher that falls behind the hub's buffer catches up the same way. Those reads take turns
//! ([`FeedHub::in_turn`]): desks reconnecting together after a restart wait here, a few reading at
//! once, instead of queueing thousands of reads on the store connection every call also uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, broadcast};

use crate::routing::partition::{Partition, QueueRef};
use crate::store::{TicketEvent, TicketStore, feed_order};

/// How long one read of a partition's feeds waits before it looks again at who is watched.
const READ_WAIT: Duration = Duration::from_secs(1);
/// Events read at once, and buffered per team for watchers that are momentarily slower.
const READ_LIMIT: usize = 200;
const TEAM_BUFFER: usize = 1024;
/// How long a reader waits before reading a failing store again.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Watchers' own reads of the store (start, snapshot, catch-up) under way at once per instance.
const READS_AT_ONCE: usize = 16;

/// The hub: the partitions watched, their teams and their readers.
#[derive(Clone)]
pub struct FeedHub {
    store: Arc<dyn TicketStore>,
    partitions: Arc<Mutex<HashMap<Partition, Watched>>>,
    reads: Arc<Semaphore>,
}

/// A partition's watched teams, and its reader.
#[derive(Default)]
struct Watched {
    teams: HashMap<String, TeamFeed>,
    reader: Option<tokio::task::AbortHandle>,
    /// Wakes the reader when a team joins: its blocking read does not cover the new team, whose
    /// events would otherwise wait for the read to end.
    joined: Arc<Notify>,
}

/// A watched team: where the hub's reader is in its feed, and who listens.
struct TeamFeed {
    position: String,
    sender: broadcast::Sender<Arc<TicketEvent>>,
    watchers: usize,
}

/// A subscription to a team's live events; dropping it ends it (and the hub stops reading the
/// team once nobody watches it).
pub struct Subscription {
    hub: FeedHub,
    queue: QueueRef,
    pub events: broadcast::Receiver<Arc<TicketEvent>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.queue);
    }
}

impl FeedHub {
    pub fn new(store: Arc<dyn TicketStore>) -> FeedHub {
        FeedHub {
            store,
            partitions: Arc::default(),
            reads: Arc::new(Semaphore::new(READS_AT_ONCE)),
        }
    }

    /// Runs one of a watcher's own reads of the store in its turn among every watcher's: the turn
    /// is held while the read is under way, not while its results go to a client (maybe slow).
    pub async fn in_turn<T>(&self, read: impl std::future::Future<Output = T>) -> T {
        // The semaphore is never closed: a turn always comes.
        let _turn = self.reads.acquire().await;
        read.await
    }

    /// Subscribes to a team's live events; the hub reads its feed from `position` on if nobody
    /// watches it yet (a watcher catches up on anything older by itself).
    pub fn subscribe(&self, queue: &QueueRef, position: &str) -> Subscription {
        let mut partitions = self.lock();
        let watched = partitions.entry(queue.partition.clone()).or_default();
        let feed = match watched.teams.entry(queue.team.clone()) {
            std::collections::hash_map::Entry::Occupied(feed) => feed.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                watched.joined.notify_one();
                vacant.insert(TeamFeed {
                    position: position.to_owned(),
                    sender: broadcast::channel(TEAM_BUFFER).0,
                    watchers: 0,
                })
            }
        };
        feed.watchers += 1;
        let events = feed.sender.subscribe();
        if watched.reader.is_none() {
            let hub = self.clone();
            let partition = queue.partition.clone();
            watched.reader = Some(tokio::spawn(hub.read(partition)).abort_handle());
        }
        Subscription {
            hub: self.clone(),
            queue: queue.clone(),
            events,
        }
    }

    /// How many partitions have a reader (each holds at most one store connection).
    pub fn readers(&self) -> usize {
        self.lock().values().filter(|w| w.reader.is_some()).count()
    }

    fn unsubscribe(&self, queue: &QueueRef) {
        let mut partitions = self.lock();
        let Some(watched) = partitions.get_mut(&queue.partition) else {
            return;
        };
        if let Some(feed) = watched.teams.get_mut(&queue.team) {
            feed.watchers -= 1;
            if feed.watchers == 0 {
                watched.teams.remove(&queue.team);
            }
        }
        if watched.teams.is_empty() {
            if let Some(reader) = watched.reader.take() {
                reader.abort();
            }
            partitions.remove(&queue.partition);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Partition, Watched>> {
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The reader of a partition: one blocking read over every watched team's feed, then each
    /// event to its team's watchers; it looks again at who is watched at least every second, and
    /// at once when a team joins (the read under way is dropped, with its connection).
    async fn read(self, partition: Partition) {
        let mut failing = false;
        loop {
            let (feeds, joined): (Vec<(String, String)>, _) = match self.lock().get(&partition) {
                Some(watched) => (
                    watched
                        .teams
                        .iter()
                        .map(|(team, feed)| (team.clone(), feed.position.clone()))
                        .collect(),
                    watched.joined.clone(),
                ),
                None => return,
            };
            let read = tokio::select! {
                read = self.store.read_feeds(&partition, &feeds, READ_LIMIT, READ_WAIT) => read,
                () = joined.notified() => continue,
            };
            match read {
                Ok(events) => {
                    failing = false;
                    self.deliver(&partition, events);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "ticket feed reads fail; retrying");
                        failing = true;
                    }
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    fn deliver(&self, partition: &Partition, events: Vec<TicketEvent>) {
        let mut partitions = self.lock();
        let Some(watched) = partitions.get_mut(partition) else {
            return;
        };
        for event in events {
            if let Some(feed) = watched.teams.get_mut(&event.team_id) {
                feed.position = event.event_id.clone();
                // No receiver left is not an error: the last watcher is leaving.
                let _ = feed.sender.send(Arc::new(event));
            }
        }
    }
}

/// Whether a feed position comes after another.
pub fn is_after(event_id: &str, position: &str) -> bool {
    match (feed_order(event_id), feed_order(position)) {
        (Some(event), Some(position)) => event > position,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::urgency::Urgency;
    use crate::store::memory::MemoryStore;
    use crate::store::{NewTicket, StoreSettings};

    fn new_ticket(call_id: &str, partition: &Partition, team: &str) -> NewTicket {
        NewTicket {
            call_id: call_id.to_owned(),
            partition: partition.clone(),
            cooperator_id: Some(partition.as_str().to_owned()),
            team_id: team.to_owned(),
            urgency: Urgency::U2,
            issue_type: "technical.plumbing.leak".to_owned(),
            building_id: None,
            address: None,
            incident_id: None,
            sla_due_at: i64::MAX / 2,
            escalation_team: partition.supervisor_team(),
            details: String::new(),
            within: Duration::from_secs(60),
        }
    }

    /// The clock is tokio's, paused: it moves only when every task waits, so an event that waited
    /// for the reader's blocking read to end would show as a second gone by.
    #[tokio::test(start_paused = true)]
    async fn a_team_joining_a_reader_mid_read_gets_its_events_at_once() {
        let store = Arc::new(MemoryStore::new(StoreSettings::default()));
        let hub = FeedHub::new(store.clone());
        let partition = Partition::of_cooperator(Some("touraine-logement"));
        let first = QueueRef::new(partition.as_str(), "touraine-logement.rent");
        let joining = QueueRef::new(partition.as_str(), "touraine-logement.social");
        let tail = store.feed_tail(&first).await.expect("tail");
        let _watching = hub.subscribe(&first, &tail);
        // The reader is now blocked on the first team's feed alone.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let tail = store.feed_tail(&joining).await.expect("tail");
        let mut joined = hub.subscribe(&joining, &tail);
        let started = tokio::time::Instant::now();
        store
            .create(new_ticket("c-1", &partition, &joining.team))
            .await
            .expect("create");
        let event = joined.events.recv().await.expect("an event");
        assert_eq!(event.team_id, joining.team);
        assert!(
            started.elapsed() < READ_WAIT,
            "the event waited {:?} for the read under way",
            started.elapsed()
        );
    }
}
