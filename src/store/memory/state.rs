//! The in-memory store's state and the steps every transition shares (history, counts, feeds,
//! queue places, holds, expiry of closed tickets), plus the move of a ticket to another partition.
//! Everything here runs under the store's one lock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use crate::routing::partition::{Partition, QueueRef};
use crate::store::ids::new_ticket_id;
use crate::store::lifecycle::{Action, EventKind, TicketState};
use crate::store::{
    AgentStatus, DEFAULT_CLAIM_INTERVAL_MS, Hold, Millis, QueuePosition, StoreError, StoreSettings,
    Ticket, TicketEvent, estimate_wait_seconds, queue_score,
};

/// Queue order key: (score as integer milliseconds with urgency, ticket id).
pub(super) type Place = (i64, String);

#[derive(Default)]
pub(super) struct QueueStatsState {
    pub(super) counts: HashMap<&'static str, i64>,
    pub(super) last_claim_at: Option<Millis>,
    pub(super) claim_interval: Option<f64>,
}

#[derive(Default)]
pub(super) struct Feed {
    pub(super) next_seq: u64,
    pub(super) events: VecDeque<TicketEvent>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) tickets: HashMap<String, Ticket>,
    pub(super) history: HashMap<String, Vec<String>>,
    pub(super) calls: HashMap<(Partition, String), String>,
    pub(super) incidents: HashMap<(Partition, String), String>,
    pub(super) queues: HashMap<QueueRef, BTreeSet<Place>>,
    pub(super) leases: BTreeSet<(Millis, String)>,
    pub(super) fence: u64,
    pub(super) stats: HashMap<QueueRef, QueueStatsState>,
    pub(super) feeds: HashMap<QueueRef, Feed>,
    pub(super) expiries: BTreeSet<(Millis, String)>,
    /// Call keys of calls that joined an incident: (expiry, partition, call id).
    pub(super) call_expiries: BTreeSet<(Millis, Partition, String)>,
    pub(super) agents: HashMap<String, AgentStatus>,
}

pub(super) fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

pub(super) fn place(t: &Ticket) -> Place {
    (
        queue_score(t.urgency, t.enqueued_at) as i64,
        t.ticket_id.clone(),
    )
}

impl State {
    pub(super) fn remember(&mut self, id: &str, t: Millis, line: String) {
        self.history
            .entry(id.to_owned())
            .or_default()
            .push(format!("{t} {line}"));
    }

    pub(super) fn count(&mut self, queue: &QueueRef, state: TicketState, delta: i64) {
        *self
            .stats
            .entry(queue.clone())
            .or_default()
            .counts
            .entry(state.as_str())
            .or_default() += delta;
    }

    pub(super) fn emit(
        &mut self,
        queue: &QueueRef,
        kind: EventKind,
        id: &str,
        t: Millis,
        feed_length: u64,
    ) {
        let Some(ticket) = self.tickets.get(id) else {
            return;
        };
        let feed = self.feeds.entry(queue.clone()).or_default();
        feed.next_seq += 1;
        feed.events.push_back(TicketEvent {
            event_id: format!("{t}-{}", feed.next_seq),
            kind,
            ticket_id: id.to_owned(),
            team_id: queue.team.clone(),
            state: ticket.state,
            urgency: ticket.urgency,
            agent_id: ticket.agent_id.clone(),
            at: t,
        });
        while feed.events.len() as u64 > feed_length {
            feed.events.pop_front();
        }
    }

    pub(super) fn purge_expired(&mut self, t: Millis) {
        while let Some((at, partition, call)) = self.call_expiries.first().cloned() {
            if at > t {
                break;
            }
            self.call_expiries.pop_first();
            self.calls.remove(&(partition, call));
        }
        while let Some((at, id)) = self.expiries.first().cloned() {
            if at > t {
                break;
            }
            self.expiries.pop_first();
            if let Some(ticket) = self.tickets.remove(&id) {
                let key = (ticket.partition.clone(), ticket.call_id.clone());
                if self.calls.get(&key) == Some(&id) {
                    self.calls.remove(&key);
                }
            }
            self.history.remove(&id);
        }
    }

    pub(super) fn expire_closed(&mut self, id: &str, t: Millis, retention: Duration) {
        self.expiries
            .insert((t + retention.as_millis() as Millis, id.to_owned()));
    }

    pub(super) fn position(&self, id: &str) -> Option<QueuePosition> {
        let t = self.tickets.get(id)?;
        if t.state != TicketState::Queued {
            return None;
        }
        let queue = QueueRef::new(&t.partition, &t.team_id);
        let rank = self.queues.get(&queue)?.range(..place(t)).count() as u64;
        let interval = self
            .stats
            .get(&queue)
            .and_then(|s| s.claim_interval)
            .unwrap_or(DEFAULT_CLAIM_INTERVAL_MS);
        Some(QueuePosition {
            position: rank + 1,
            estimated_wait_seconds: estimate_wait_seconds(rank + 1, interval),
        })
    }

    /// The held ticket, if `hold` is its current, unexpired hold.
    pub(super) fn held(
        &mut self,
        id: &str,
        hold: &Hold,
        action: Action,
        t: Millis,
    ) -> Result<&mut Ticket, StoreError> {
        let ticket = self
            .tickets
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        if !ticket.state.is_held() {
            return Err(StoreError::WrongState {
                ticket_id: id.to_owned(),
                state: ticket.state,
                action,
            });
        }
        let current = ticket.agent_id.as_deref() == Some(hold.agent_id.as_str())
            && ticket.lease_token == hold.lease_token
            && ticket.lease_expires_at.is_some_and(|e| e > t);
        if !current {
            return Err(StoreError::NotHolder(id.to_owned()));
        }
        Ok(ticket)
    }

    pub(super) fn drop_hold(ticket: &mut Ticket) {
        ticket.agent_id = None;
        ticket.lease_token = 0;
        ticket.lease_expires_at = None;
    }

    pub(super) fn enqueue(&mut self, id: &str) {
        if let Some(t) = self.tickets.get(id) {
            let queue = QueueRef::new(&t.partition, &t.team_id);
            let p = place(t);
            self.queues.entry(queue).or_default().insert(p);
        }
    }

    /// Moves a held ticket to another partition's queue: a new ticket there with the source's call,
    /// place, attempts and history, and a `MOVED` stub here naming it. The hold was checked.
    pub(super) fn move_to(
        &mut self,
        ticket_id: &str,
        hold: &Hold,
        to: &QueueRef,
        t: Millis,
        settings: &StoreSettings,
    ) -> String {
        let new_id = new_ticket_id(to.partition.as_str());
        let Some(mut moved) = self.tickets.get(ticket_id).cloned() else {
            return new_id;
        };
        let from = QueueRef::new(&moved.partition, &moved.team_id);
        moved.ticket_id = new_id.clone();
        moved.partition = to.partition.clone();
        moved.cooperator_id = to.partition.cooperator_id().map(str::to_owned);
        moved.team_id = to.team.clone();
        moved.state = TicketState::Queued;
        moved.incident_id = None;
        moved.escalation_team = to.partition.supervisor_team();
        moved.transferred_from = Some(ticket_id.to_owned());
        State::drop_hold(&mut moved);
        let mut history = self.history.get(ticket_id).cloned().unwrap_or_default();
        history.push(format!(
            "{t} transfer by {} to {}/{}",
            hold.agent_id, to.partition, to.team
        ));
        self.history.insert(new_id.clone(), history);
        self.remember(&new_id, t, format!("moved in from {ticket_id}"));
        let call_id = moved.call_id.clone();
        self.tickets.insert(new_id.clone(), moved);
        self.enqueue(&new_id);
        self.calls
            .entry((to.partition.clone(), call_id))
            .or_insert_with(|| new_id.clone());
        self.count(to, TicketState::Queued, 1);
        self.emit(
            to,
            EventKind::TransferredIn,
            &new_id,
            t,
            settings.feed_length,
        );
        if let Some(stub) = self.tickets.get_mut(ticket_id) {
            stub.state = TicketState::Moved;
            stub.moved_to = Some(new_id.clone());
            stub.closed_at = Some(t);
            State::drop_hold(stub);
        }
        self.remember(ticket_id, t, format!("moved to {new_id}"));
        self.emit(
            &from,
            EventKind::TransferredOut,
            ticket_id,
            t,
            settings.feed_length,
        );
        self.expire_closed(ticket_id, t, settings.retention);
        new_id
    }
}
