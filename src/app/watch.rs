//! Live ticket events across the queues a caller may read. Each queue of a watch has a follower
//! task that takes the queue's live events from the [`FeedHub`] (one store reader per partition,
//! whatever the number of watchers) and sends them into the watch's one bounded channel; the
//! [`Watch`] the caller holds ends them all when dropped (the client left), and they end by
//! themselves when the service shuts down.
//!
//! Without a resume position the watch notes where the queue's feed is, then reads its waiting
//! tickets, before it answers: whatever happens once the caller has the answer arrives as an event.
//! The follower sends those tickets as snapshot events, then every event after the noted position:
//! nothing falls in between unseen (an event may repeat what a snapshot showed, for a change
//! between the two reads). With a position — keyed by the
//! queue's feed key, `<partition>/<team>`, and given exactly as an event carried it — it resumes
//! right after that event: nothing lost, nothing repeated.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::feeds::{FeedHub, is_after};
use super::policy::{self, UseCase};
use super::principal::Principal;
use super::requests;
use super::{App, AppError, allow, teams_named};
use crate::metrics::Metrics;
use crate::routing::partition::QueueRef;
use crate::routing::request::FieldError;
use crate::store::{StoreError, Ticket, TicketEvent, TicketStore};

/// How long a reader waits before reading a failing feed again.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Events buffered for a slow client before readers wait for it.
const BUFFER: usize = 256;
/// Most tickets one snapshot sends, and events one read returns.
const SNAPSHOT_LIMIT: usize = 1000;
const READ_LIMIT: usize = 100;

/// What a watch sends.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// A ticket waiting when the watch began.
    Snapshot {
        queue: QueueRef,
        ticket: Box<Ticket>,
    },
    /// A transition, with its position in the queue's feed (resume after it).
    Change {
        queue: QueueRef,
        event: Box<TicketEvent>,
    },
}

/// A live watch; dropping it stops its readers. Counted in `callrouter_watch_streams` while it
/// lives.
pub struct Watch {
    events: mpsc::Receiver<Result<WatchEvent, AppError>>,
    readers: Vec<tokio::task::AbortHandle>,
    metrics: Arc<Metrics>,
}

impl Watch {
    /// The next event, or `None` once every reader has ended.
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<WatchEvent, AppError>>> {
        self.events.poll_recv(cx)
    }

    pub async fn next(&mut self) -> Option<Result<WatchEvent, AppError>> {
        self.events.recv().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.metrics.watch_streams(-1);
        for reader in &self.readers {
            reader.abort();
        }
    }
}

impl App {
    /// Watches the caller's teams (all of them when none are named), each queue resumed after its
    /// position in `resume_from` (keyed by [`QueueRef::feed_key`]) when there is one.
    pub async fn watch_tickets(
        &self,
        principal: &Principal,
        team_ids: &[String],
        resume_from: &HashMap<String, String>,
    ) -> Result<Watch, AppError> {
        allow(principal, UseCase::WatchTickets)?;
        if resume_from.len() > requests::MAX_RESUME_POSITIONS {
            return Err(FieldError::new(
                "resume_from",
                format!(
                    "gives more than {} positions",
                    requests::MAX_RESUME_POSITIONS
                ),
            )
            .into());
        }
        let queues = {
            let snapshot = self.current();
            let router = &snapshot.router;
            let teams = teams_named(router, "team_ids", team_ids, &principal.teams)?;
            policy::visible_queues(router, principal, &teams)?
        };
        let resumes = queues
            .iter()
            .map(|queue| {
                let position = resume_from.get(&queue.feed_key());
                position.map(|p| resume_after(queue, p)).transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut starts = Vec::with_capacity(queues.len());
        for (queue, resume) in queues.iter().zip(resumes) {
            starts.push(match resume {
                Some(position) => (position, Vec::new()),
                None => {
                    let start = async {
                        let tail = self.store.feed_tail(queue).await?;
                        Ok::<_, StoreError>((
                            tail,
                            self.store.list_queued(queue, SNAPSHOT_LIMIT).await?,
                        ))
                    };
                    self.feeds.in_turn(start).await?
                }
            });
        }
        let (sender, events) = mpsc::channel(BUFFER);
        let readers = queues
            .into_iter()
            .zip(starts)
            .map(|(queue, (start, waiting))| {
                let reader = Follower {
                    start,
                    waiting,
                    queue,
                    store: self.store.clone(),
                    hub: self.feeds.clone(),
                    sender: sender.clone(),
                };
                let app = self.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = app.closed() => {}
                        () = reader.run() => {}
                    }
                })
                .abort_handle()
            })
            .collect();
        self.metrics.watch_streams(1);
        Ok(Watch {
            events,
            readers,
            metrics: self.metrics.clone(),
        })
    }
}

/// Where to resume a queue's feed from a position as `TicketEvent.position` gave it
/// (`<partition>/<team>@<event id>`), or from the event id alone.
fn resume_after(queue: &QueueRef, position: &str) -> Result<String, FieldError> {
    match position.rsplit_once('@') {
        None => Ok(position.to_owned()),
        Some((feed, event_id)) if feed == queue.feed_key() => Ok(event_id.to_owned()),
        Some((feed, _)) => Err(FieldError::new(
            "resume_from",
            format!(
                "position of feed '{feed}' given for feed '{}'",
                queue.feed_key()
            ),
        )),
    }
}

/// Follows one queue's feed into the watch's channel, from `start` on, after the tickets that
/// were `waiting` when the watch began (none for a resumed watch).
struct Follower {
    queue: QueueRef,
    start: String,
    waiting: Vec<Ticket>,
    store: std::sync::Arc<dyn TicketStore>,
    hub: FeedHub,
    sender: mpsc::Sender<Result<WatchEvent, AppError>>,
}

/// Why a follower stopped: the client left, or the store refused (already told to the client).
enum Stop {
    Left,
    Refused,
}

impl Follower {
    async fn run(mut self) {
        let start = std::mem::take(&mut self.start);
        let mut subscription = self.hub.subscribe(&self.queue, &start);
        if self.snapshot().await.is_err() {
            return;
        }
        let mut last = start;
        if self.catch_up(&mut last).await.is_err() {
            return;
        }
        loop {
            match subscription.events.recv().await {
                Ok(event) if is_after(&event.event_id, &last) => {
                    last = event.event_id.clone();
                    if self.send_change(event.as_ref().clone()).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if self.catch_up(&mut last).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Sends the tickets that were waiting when the watch began.
    async fn snapshot(&mut self) -> Result<(), Stop> {
        for ticket in std::mem::take(&mut self.waiting) {
            let event = WatchEvent::Snapshot {
                queue: self.queue.clone(),
                ticket: Box::new(ticket),
            };
            self.sender.send(Ok(event)).await.map_err(|_| Stop::Left)?;
        }
        Ok(())
    }

    /// Sends every event after `last` that the feed holds now, by ordinary reads (the hub's
    /// reader may be ahead of this follower, or this follower behind the hub's buffer).
    async fn catch_up(&self, last: &mut String) -> Result<(), Stop> {
        let mut failing = false;
        loop {
            let read = self
                .store
                .read_events(&self.queue, Some(last), READ_LIMIT, None);
            match self.hub.in_turn(read).await {
                Ok(events) if events.is_empty() => return Ok(()),
                Ok(events) => {
                    for event in events {
                        *last = event.event_id.clone();
                        self.send_change(event).await?;
                    }
                }
                Err(StoreError::Invalid(message)) => {
                    let refused = AppError::Field(FieldError::new("resume_from", message));
                    let _ = self.sender.send(Err(refused)).await;
                    return Err(Stop::Refused);
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

    async fn send_change(&self, event: TicketEvent) -> Result<(), Stop> {
        let change = WatchEvent::Change {
            queue: self.queue.clone(),
            event: Box::new(event),
        };
        self.sender.send(Ok(change)).await.map_err(|_| Stop::Left)
    }
}
