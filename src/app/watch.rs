//! Live ticket events across the queues a caller may read. One reader per queue follows that
//! queue's feed and sends into one bounded channel; the [`Watch`] the caller holds ends them all
//! when dropped (the client left) and they end by themselves when the service shuts down.
//!
//! Without a resume position a reader first notes where the feed is, then sends the queue's
//! waiting tickets as snapshot events, then every event after the noted position: nothing falls in
//! between unseen (an event may repeat what a snapshot showed). With a position — keyed by the
//! queue's feed key, `<partition>/<team>`, and given exactly as an event carried it — it resumes
//! right after that event: nothing lost, nothing repeated.

use std::collections::HashMap;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;

use super::policy::{self, UseCase};
use super::principal::Principal;
use super::{App, AppError, allow, teams_named};
use crate::routing::partition::QueueRef;
use crate::routing::request::FieldError;
use crate::store::{StoreError, Ticket, TicketEvent, TicketStore};

/// How long one feed read waits for news before asking again.
const FEED_WAIT: Duration = Duration::from_secs(5);
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

/// A live watch; dropping it stops its readers.
pub struct Watch {
    events: mpsc::Receiver<Result<WatchEvent, AppError>>,
    readers: Vec<tokio::task::AbortHandle>,
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
        for reader in &self.readers {
            reader.abort();
        }
    }
}

impl App {
    /// Watches the caller's teams (all of them when none are named), each queue resumed after its
    /// position in `resume_from` (keyed by [`QueueRef::feed_key`]) when there is one.
    pub fn watch_tickets(
        &self,
        principal: &Principal,
        team_ids: &[String],
        resume_from: &HashMap<String, String>,
    ) -> Result<Watch, AppError> {
        allow(principal, UseCase::WatchTickets)?;
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
        let (sender, events) = mpsc::channel(BUFFER);
        let readers = queues
            .into_iter()
            .zip(resumes)
            .map(|(queue, resume)| {
                let reader = Reader {
                    resume,
                    queue,
                    store: self.store.clone(),
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
        Ok(Watch { events, readers })
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

/// Follows one queue's feed into the watch's channel.
struct Reader {
    queue: QueueRef,
    resume: Option<String>,
    store: std::sync::Arc<dyn TicketStore>,
    sender: mpsc::Sender<Result<WatchEvent, AppError>>,
}

impl Reader {
    async fn run(self) {
        let after = match self.resume.clone() {
            Some(position) => Some(position),
            None => match self.snapshot().await {
                Ok(Some(after)) => after,
                Ok(None) => return,
                Err(e) => {
                    let _ = self.sender.send(Err(e.into())).await;
                    return;
                }
            },
        };
        self.follow(after).await;
    }

    /// Notes the feed's position, then sends the waiting tickets: the position to follow from, or
    /// `None` when the client left.
    async fn snapshot(&self) -> Result<Option<Option<String>>, StoreError> {
        let after = self
            .store
            .read_events(&self.queue, None, SNAPSHOT_LIMIT, None)
            .await?
            .last()
            .map(|e| e.event_id.clone());
        for ticket in self.store.list_queued(&self.queue, SNAPSHOT_LIMIT).await? {
            let event = WatchEvent::Snapshot {
                queue: self.queue.clone(),
                ticket: Box::new(ticket),
            };
            if self.sender.send(Ok(event)).await.is_err() {
                return Ok(None);
            }
        }
        Ok(Some(after))
    }

    /// Sends every event after `after`, until the client leaves or the position is refused.
    async fn follow(&self, mut after: Option<String>) {
        // A store outage is logged once per reader, not on every retry.
        let mut failing = false;
        loop {
            let read = self
                .store
                .read_events(&self.queue, after.as_deref(), READ_LIMIT, Some(FEED_WAIT))
                .await;
            match read {
                Ok(events) => {
                    failing = false;
                    for event in events {
                        after = Some(event.event_id.clone());
                        let change = WatchEvent::Change {
                            queue: self.queue.clone(),
                            event: Box::new(event),
                        };
                        if self.sender.send(Ok(change)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(StoreError::Invalid(message)) => {
                    let refused = AppError::Field(FieldError::new("resume_from", message));
                    let _ = self.sender.send(Err(refused)).await;
                    return;
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
}
