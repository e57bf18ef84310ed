//! The embedded store: the same semantics as the Redis store, held in this process's memory behind
//! one lock. It is not durable (a restart forgets every ticket) and serves one instance only; it
//! exists so that the service runs on a machine without Redis, and the service logs so at start.
//!
//! Every operation takes the lock once, so each transition is atomic like a Redis script, and the
//! clock is this process's wall clock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

mod state;

use self::state::{State, now_ms};
use super::ids::new_ticket_id;
use super::lifecycle::{Action, EventKind};
use super::{
    AgentStatus, Created, Hold, Millis, NewTicket, NextClaim, Presence, QueuePosition, QueueStats,
    ReapReport, StateCounts, StoreError, StoreSettings, Ticket, TicketEvent, TicketState,
    TicketStore, complete_then_claim, partition_of,
};
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::urgency::Urgency;

/// The in-memory store. Cheap to clone: clones share the state.
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<std::sync::Mutex<State>>,
    feed_changed: Arc<Notify>,
    settings: Arc<StoreSettings>,
}

/// The sequence number of a feed position (`<ms>-<seq>`).
fn feed_seq(id: &str) -> Result<u64, StoreError> {
    id.split_once('-')
        .and_then(|(_, seq)| seq.parse::<u64>().ok())
        .ok_or_else(|| StoreError::Invalid(format!("feed position '{id}'")))
}

impl MemoryStore {
    /// Events of these feeds after their sequence numbers, waiting up to `wait` for one.
    async fn wait_for_events(
        &self,
        feeds: &[(QueueRef, u64)],
        limit: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        let limit = limit.clamp(1, 1000);
        loop {
            let notified = self.feed_changed.notified();
            let events: Vec<TicketEvent> = {
                let s = self.lock();
                feeds
                    .iter()
                    .filter_map(|(queue, after)| s.feeds.get(queue).map(|f| (f, *after)))
                    .flat_map(|(f, after)| {
                        f.events
                            .iter()
                            .filter(move |e| feed_seq(&e.event_id).is_ok_and(|seq| seq > after))
                            .take(limit)
                    })
                    .cloned()
                    .collect()
            };
            match deadline {
                Some(deadline) if events.is_empty() && tokio::time::Instant::now() < deadline => {
                    let _ = tokio::time::timeout_at(deadline, notified).await;
                }
                _ => return Ok(events),
            }
        }
    }

    pub fn new(settings: StoreSettings) -> MemoryStore {
        tracing::warn!(
            "queue store: in-memory — not durable (a restart loses every ticket) and for a single instance only; set REDIS_URL for production"
        );
        MemoryStore {
            state: Arc::default(),
            feed_changed: Arc::new(Notify::new()),
            settings: Arc::new(settings),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock would leave a half-applied transition; none of the
        // sections below can panic, so the state behind a poisoned lock is still whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The ticket as a transition left it, once the lock is let go and watchers are woken.
    fn changed(&self, s: std::sync::MutexGuard<'_, State>, ticket_id: &str) -> Ticket {
        let ticket = s.tickets[ticket_id].clone();
        drop(s);
        self.feed_changed.notify_waiters();
        ticket
    }
}

#[async_trait]
impl TicketStore for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn create(&self, new: NewTicket) -> Result<Created, StoreError> {
        let cutoff = now_ms() + new.within.as_millis() as Millis;
        let mut s = self.lock();
        let t = now_ms();
        s.purge_expired(t);
        let call_key = (new.partition.clone(), new.call_id.clone());
        if let Some(existing) = s.calls.get(&call_key).cloned()
            && s.tickets.contains_key(&existing)
        {
            return Ok(s.created(&existing, true, false));
        }
        if t > cutoff || new.within.is_zero() {
            return Err(StoreError::TooLate);
        }
        let open = new.incident_id.as_ref().and_then(|incident| {
            let key = (new.partition.clone(), incident.clone());
            s.incidents
                .get(&key)
                .cloned()
                .filter(|id| s.tickets.get(id).is_some_and(|t| !t.state.is_closed()))
        });
        let created = match open {
            Some(open) => {
                s.join_incident(&open, call_key, t, &self.settings);
                s.created(&open, false, true)
            }
            None => {
                let id = new_ticket_id(new.partition.as_str())?;
                s.queue_new(new, &id, t, &self.settings);
                s.created(&id, false, false)
            }
        };
        drop(s);
        self.feed_changed.notify_waiters();
        Ok(created)
    }

    async fn claim_next(
        &self,
        agent_id: &str,
        queues: &[QueueRef],
        lease: Duration,
        claim_id: Option<&str>,
    ) -> Result<Option<Ticket>, StoreError> {
        let t = now_ms();
        let mut s = self.lock();
        s.purge_expired(t);
        if let Some(held) = claim_id.and_then(|claim| s.claimed(agent_id, claim, t)) {
            return Ok(Some(held));
        }
        let best = queues
            .iter()
            .filter_map(|q| {
                s.queues
                    .get(q)
                    .and_then(|set| set.first())
                    .map(|p| (p.clone(), q.clone()))
            })
            .min();
        let Some((p, queue)) = best else {
            return Ok(None);
        };
        if let Some(set) = s.queues.get_mut(&queue) {
            set.remove(&p);
        }
        s.fence += 1;
        let token = s.fence;
        let expires = t + lease.as_millis() as Millis;
        let id = p.1;
        {
            let ticket = s
                .tickets
                .get_mut(&id)
                .ok_or_else(|| StoreError::NotFound(id.clone()))?;
            ticket.state = TicketState::Reserved;
            ticket.agent_id = Some(agent_id.to_owned());
            ticket.lease_token = token;
            ticket.lease_expires_at = Some(expires);
            ticket.claimed_at = Some(t);
        }
        s.leases.insert((expires, id.clone()));
        if let Some(claim) = claim_id {
            s.claims
                .insert((agent_id.to_owned(), claim.to_owned()), (id.clone(), token));
            s.claim_expiries
                .insert((expires, agent_id.to_owned(), claim.to_owned()));
        }
        let stats = s.stats.entry(queue.clone()).or_default();
        if let Some(last) = stats.last_claim_at {
            let gap = (t - last).min(3_600_000) as f64;
            stats.claim_interval = Some(
                stats
                    .claim_interval
                    .map_or(gap, |prev| (prev * 0.8 + gap * 0.2).floor()),
            );
        }
        stats.last_claim_at = Some(t);
        s.count(&queue, TicketState::Queued, -1);
        s.count(&queue, TicketState::Reserved, 1);
        s.remember(&id, t, format!("claimed by {agent_id} lease {token}"));
        s.emit(
            &queue,
            EventKind::Claimed,
            &id,
            t,
            self.settings.feed_length,
        );
        Ok(Some(self.changed(s, &id)))
    }

    async fn accept(
        &self,
        ticket_id: &str,
        hold: &Hold,
        lease: Duration,
    ) -> Result<Ticket, StoreError> {
        let t = now_ms();
        let mut s = self.lock();
        let expires = t + lease.as_millis() as Millis;
        let ticket = s.held(ticket_id, hold, Action::Accept, t)?;
        let was = ticket.state;
        let previous_expiry = ticket.lease_expires_at;
        ticket.state = TicketState::InProgress;
        ticket.lease_expires_at = Some(expires);
        let queue = QueueRef::new(&ticket.partition, &ticket.team_id);
        if let Some(previous) = previous_expiry {
            s.leases.remove(&(previous, ticket_id.to_owned()));
        }
        s.leases.insert((expires, ticket_id.to_owned()));
        if was == TicketState::Reserved {
            s.count(&queue, TicketState::Reserved, -1);
            s.count(&queue, TicketState::InProgress, 1);
            s.remember(ticket_id, t, format!("accepted by {}", hold.agent_id));
            s.emit(
                &queue,
                EventKind::Accepted,
                ticket_id,
                t,
                self.settings.feed_length,
            );
        }
        Ok(self.changed(s, ticket_id))
    }

    async fn complete(
        &self,
        ticket_id: &str,
        hold: &Hold,
        resolution: &str,
    ) -> Result<Ticket, StoreError> {
        let t = now_ms();
        let mut s = self.lock();
        if let Some(done) = s.already_done(ticket_id, hold, Action::Complete) {
            return Ok(done);
        }
        let ticket = s.held(ticket_id, hold, Action::Complete, t)?;
        let was = ticket.state;
        let expiry = ticket.lease_expires_at;
        ticket.state = TicketState::Completed;
        ticket.closed_at = Some(t);
        ticket.resolution = Some(resolution.to_owned());
        ticket.lease_expires_at = None;
        let queue = QueueRef::new(&ticket.partition, &ticket.team_id);
        let incident = ticket
            .incident_id
            .clone()
            .map(|i| (ticket.partition.clone(), i));
        if let Some(e) = expiry {
            s.leases.remove(&(e, ticket_id.to_owned()));
        }
        if let Some(key) = incident
            && s.incidents.get(&key).map(String::as_str) == Some(ticket_id)
        {
            s.incidents.remove(&key);
        }
        s.count(&queue, was, -1);
        s.count(&queue, TicketState::Completed, 1);
        s.end_hold(ticket_id, hold, Action::Complete);
        s.remember(
            ticket_id,
            t,
            format!("completed by {}: {resolution}", hold.agent_id),
        );
        s.emit(
            &queue,
            EventKind::Completed,
            ticket_id,
            t,
            self.settings.feed_length,
        );
        s.expire_closed(ticket_id, t, self.settings.retention);
        Ok(self.changed(s, ticket_id))
    }

    /// The completion, then the claim: each its own step under the lock, as in Redis when the
    /// queues span partitions.
    async fn complete_and_claim(
        &self,
        ticket_id: &str,
        hold: &Hold,
        resolution: &str,
        next: &NextClaim<'_>,
    ) -> Result<(Ticket, Option<Ticket>), StoreError> {
        complete_then_claim(self, ticket_id, hold, resolution, next).await
    }

    async fn release(&self, ticket_id: &str, hold: &Hold) -> Result<Ticket, StoreError> {
        let t = now_ms();
        let mut s = self.lock();
        if let Some(done) = s.already_done(ticket_id, hold, Action::Release) {
            return Ok(done);
        }
        let ticket = s.held(ticket_id, hold, Action::Release, t)?;
        let was = ticket.state;
        let expiry = ticket.lease_expires_at;
        ticket.state = TicketState::Queued;
        State::drop_hold(ticket);
        let queue = QueueRef::new(&ticket.partition, &ticket.team_id);
        if let Some(e) = expiry {
            s.leases.remove(&(e, ticket_id.to_owned()));
        }
        s.enqueue(ticket_id);
        s.count(&queue, was, -1);
        s.count(&queue, TicketState::Queued, 1);
        s.end_hold(ticket_id, hold, Action::Release);
        s.remember(ticket_id, t, format!("released by {}", hold.agent_id));
        s.emit(
            &queue,
            EventKind::Released,
            ticket_id,
            t,
            self.settings.feed_length,
        );
        Ok(self.changed(s, ticket_id))
    }

    async fn transfer(
        &self,
        ticket_id: &str,
        hold: &Hold,
        to: &QueueRef,
        urgency: Option<Urgency>,
    ) -> Result<Ticket, StoreError> {
        let t = now_ms();
        let mut s = self.lock();
        if let Some(done) = s.already_done(ticket_id, hold, Action::Transfer) {
            return Ok(done);
        }
        let ticket = s.held(ticket_id, hold, Action::Transfer, t)?;
        let was = ticket.state;
        let expiry = ticket.lease_expires_at;
        let from = QueueRef::new(&ticket.partition, &ticket.team_id);
        if let Some(raised) = urgency {
            ticket.urgency = ticket.urgency.min(raised);
        }
        if let Some(e) = expiry {
            s.leases.remove(&(e, ticket_id.to_owned()));
        }
        s.count(&from, was, -1);
        s.end_hold(ticket_id, hold, Action::Transfer);
        if to.partition == from.partition {
            let ticket = s
                .tickets
                .get_mut(ticket_id)
                .ok_or_else(|| StoreError::NotFound(ticket_id.to_owned()))?;
            ticket.state = TicketState::Queued;
            ticket.team_id = to.team.clone();
            State::drop_hold(ticket);
            s.enqueue(ticket_id);
            s.count(to, TicketState::Queued, 1);
            s.remember(
                ticket_id,
                t,
                format!(
                    "transferred by {} from {} to {}",
                    hold.agent_id, from.team, to.team
                ),
            );
            s.emit(
                &from,
                EventKind::TransferredOut,
                ticket_id,
                t,
                self.settings.feed_length,
            );
            s.emit(
                to,
                EventKind::TransferredIn,
                ticket_id,
                t,
                self.settings.feed_length,
            );
            return Ok(self.changed(s, ticket_id));
        }
        // Another partition: a new ticket there, a MOVED stub here — in one step, under the lock.
        let new_id = new_ticket_id(to.partition.as_str())?;
        s.move_to(ticket_id, &new_id, hold, to, t, &self.settings);
        Ok(self.changed(s, &new_id))
    }

    async fn cancel(&self, ticket_id: &str, call_id: Option<&str>) -> Result<Ticket, StoreError> {
        let t = now_ms();
        let mut s = self.lock();
        let ticket = s
            .tickets
            .get(ticket_id)
            .ok_or_else(|| StoreError::NotFound(ticket_id.to_owned()))?;
        let call = call_id.unwrap_or(&ticket.call_id).to_owned();
        let call_key = (ticket.partition.clone(), call.clone());
        if s.calls.get(&call_key).map(String::as_str) != Some(ticket_id) {
            return Err(StoreError::NotFound(ticket_id.to_owned()));
        }
        match ticket.state {
            TicketState::Cancelled => return Ok(ticket.clone()),
            TicketState::Queued => {}
            other => {
                return Err(StoreError::WrongState {
                    ticket_id: ticket_id.to_owned(),
                    state: other,
                    action: Action::Cancel,
                });
            }
        }
        if s.withdraw(ticket_id, &call, t, &self.settings) {
            s.cancel_queued(ticket_id, &call, t, &self.settings);
        }
        Ok(self.changed(s, ticket_id))
    }

    async fn get(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError> {
        let mut s = self.lock();
        s.purge_expired(now_ms());
        Ok(s.tickets.get(ticket_id).cloned())
    }

    async fn history(&self, ticket_id: &str) -> Result<Vec<String>, StoreError> {
        partition_of(ticket_id)?;
        Ok(self
            .lock()
            .history
            .get(ticket_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn list_queued(&self, queue: &QueueRef, limit: usize) -> Result<Vec<Ticket>, StoreError> {
        let s = self.lock();
        Ok(s.queues
            .get(queue)
            .map(|set| {
                set.iter()
                    .take(limit.max(1))
                    .filter_map(|(_, id)| s.tickets.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn held_by(
        &self,
        partition: &Partition,
        agent_id: &str,
    ) -> Result<Vec<Ticket>, StoreError> {
        let t = now_ms();
        let s = self.lock();
        let mut held: Vec<Ticket> = s
            .leases
            .iter()
            .filter_map(|(_, id)| s.tickets.get(id))
            .filter(|x| {
                &x.partition == partition
                    && x.state.is_held()
                    && x.agent_id.as_deref() == Some(agent_id)
                    && x.lease_expires_at.is_some_and(|e| e > t)
            })
            .cloned()
            .collect();
        held.sort_by(|a, b| a.ticket_id.cmp(&b.ticket_id));
        Ok(held)
    }

    async fn position(&self, ticket_id: &str) -> Result<Option<QueuePosition>, StoreError> {
        let s = self.lock();
        if !s.tickets.contains_key(ticket_id) {
            return Err(StoreError::NotFound(ticket_id.to_owned()));
        }
        Ok(s.position(ticket_id))
    }

    async fn queue_stats(
        &self,
        queues: &[QueueRef],
    ) -> Result<(Vec<QueueStats>, Vec<(QueueRef, StateCounts)>), StoreError> {
        let t = now_ms();
        let s = self.lock();
        let mut stats = Vec::new();
        let mut counts = Vec::new();
        for q in queues {
            for urgency in Urgency::ALL {
                let waiting: Vec<&Ticket> = s
                    .queues
                    .get(q)
                    .map(|set| {
                        set.iter()
                            .filter_map(|(_, id)| s.tickets.get(id))
                            .filter(|t| t.urgency == urgency)
                            .collect()
                    })
                    .unwrap_or_default();
                stats.push(QueueStats {
                    queue: q.clone(),
                    urgency,
                    depth: waiting.len() as u64,
                    oldest_wait_ms: waiting.iter().map(|w| t - w.enqueued_at).max(),
                });
            }
            let n = |state: TicketState| {
                s.stats
                    .get(q)
                    .and_then(|st| st.counts.get(state.as_str()))
                    .copied()
                    .unwrap_or(0)
                    .max(0) as u64
            };
            counts.push((q.clone(), StateCounts::from_fn(n)));
        }
        Ok((stats, counts))
    }

    async fn reap(&self, partition: &Partition) -> Result<ReapReport, StoreError> {
        let t = now_ms();
        let mut s = self.lock();
        s.purge_expired(t);
        let report = s.reap(partition, t, &self.settings);
        drop(s);
        if report.expired > 0 {
            self.feed_changed.notify_waiters();
        }
        Ok(report)
    }

    async fn read_events(
        &self,
        queue: &QueueRef,
        after: Option<&str>,
        limit: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        let after = match after {
            None => 0,
            Some(id) => feed_seq(id)?,
        };
        self.wait_for_events(&[(queue.clone(), after)], limit, wait)
            .await
    }

    async fn feed_tail(&self, queue: &QueueRef) -> Result<String, StoreError> {
        let s = self.lock();
        Ok(s.feeds
            .get(queue)
            .and_then(|f| f.events.back())
            .map_or_else(|| "0-0".to_owned(), |e| e.event_id.clone()))
    }

    async fn read_feeds(
        &self,
        partition: &Partition,
        feeds: &[(String, String)],
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        let feeds = feeds
            .iter()
            .map(|(team, after)| Ok((QueueRef::new(partition, team), feed_seq(after)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.wait_for_events(&feeds, limit, Some(wait)).await
    }

    async fn heartbeat(&self, agent: &AgentStatus) -> Result<(), StoreError> {
        let mut s = self.lock();
        let mut seen = agent.clone();
        seen.last_seen = now_ms();
        s.agents.insert(agent.agent_id.clone(), seen);
        Ok(())
    }

    async fn agents(&self) -> Result<Vec<AgentStatus>, StoreError> {
        let t = now_ms();
        let ttl = self.settings.presence_ttl.as_millis() as Millis;
        let s = self.lock();
        let mut agents: Vec<AgentStatus> = s
            .agents
            .values()
            .map(|a| AgentStatus {
                presence: if t - a.last_seen > ttl {
                    Presence::Offline
                } else {
                    a.presence
                },
                ..a.clone()
            })
            .collect();
        agents.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        Ok(agents)
    }

    async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let t = now_ms();
        let mut s = self.lock();
        let until = t + ttl.as_millis() as Millis;
        match s.job_leases.get_mut(name) {
            Some((current, expiry)) if *expiry > t && current != holder => Ok(false),
            Some((current, expiry)) => {
                *current = holder.to_owned();
                *expiry = until;
                Ok(true)
            }
            None => {
                s.job_leases
                    .insert(name.to_owned(), (holder.to_owned(), until));
                Ok(true)
            }
        }
    }

    async fn move_backlog(&self, partitions: &[Partition]) -> Result<Vec<u64>, StoreError> {
        let s = self.lock();
        Ok(partitions
            .iter()
            .map(|p| {
                s.tickets
                    .values()
                    .filter(|t| t.state == TicketState::Moving && &t.partition == p)
                    .count() as u64
            })
            .collect())
    }

    async fn waiting_between(
        &self,
        ranges: &[(QueueRef, Urgency, Millis, Millis)],
    ) -> Result<Vec<u64>, StoreError> {
        let s = self.lock();
        Ok(ranges
            .iter()
            .map(|(queue, urgency, from, to)| {
                s.queues.get(queue).map_or(0, |places| {
                    places
                        .iter()
                        .filter_map(|(_, id)| s.tickets.get(id))
                        .filter(|t| t.urgency == *urgency && (*from..=*to).contains(&t.enqueued_at))
                        .count() as u64
                })
            })
            .collect())
    }
}
