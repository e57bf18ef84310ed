//! The in-memory store's state and the steps every transition shares (history, counts, feeds,
//! queue places, holds, expiry of closed tickets), plus the move of a ticket to another partition.
//! Everything here runs under the store's one lock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use crate::routing::partition::{Partition, QueueRef};
use crate::store::lifecycle::{Action, EventKind, TicketState};
use crate::store::{
    AgentStatus, Created, DEFAULT_CLAIM_INTERVAL_MS, Hold, Millis, NewTicket, QueuePosition,
    ReapReport, StoreError, StoreSettings, Ticket, TicketEvent, estimate_wait_seconds, queue_score,
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
    /// The milliseconds of the last event id: ids never go back, even if the clock does.
    pub(super) last_ms: Millis,
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
    /// How holds ended, by ticket and fencing token: the holder and its action, so that the
    /// holder's retry of the same action is answered as done.
    pub(super) ended: HashMap<(String, u64), (String, Action)>,
    /// The hold each claim id made, by agent and claim id: (ticket, fencing token).
    pub(super) claims: HashMap<(String, String), (String, u64)>,
    /// When claim ids are forgotten (with their lease): (expiry, agent, claim id).
    pub(super) claim_expiries: BTreeSet<(Millis, String, String)>,
    /// The callers of incident tickets that a second caller joined, by ticket.
    pub(super) callers: HashMap<String, BTreeSet<String>>,
    /// When call keys are forgotten: (expiry, partition, call id).
    pub(super) call_expiries: BTreeSet<(Millis, Partition, String)>,
    pub(super) agents: HashMap<String, AgentStatus>,
    /// Store-wide jobs' leases: name → (holder, expiry).
    pub(super) job_leases: HashMap<String, (String, Millis)>,
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
        feed.last_ms = feed.last_ms.max(t);
        feed.events.push_back(TicketEvent {
            event_id: format!("{}-{}", feed.last_ms, feed.next_seq),
            kind,
            ticket_id: id.to_owned(),
            team_id: queue.team.clone(),
            state: ticket.state,
            urgency: ticket.urgency,
            agent_id: ticket.agent_id.clone(),
            at: t,
            cooperator_id: ticket.cooperator_id.clone(),
            issue_type: ticket.issue_type.clone(),
            building_id: ticket.building_id.clone(),
            address: ticket.address.clone(),
            incident_calls: ticket.incident_calls,
            created_at: ticket.created_at,
            sla_due_at: ticket.sla_due_at,
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
        while let Some((at, agent, claim)) = self.claim_expiries.first().cloned() {
            if at > t {
                break;
            }
            self.claim_expiries.pop_first();
            self.claims.remove(&(agent, claim));
        }
        while let Some((at, id)) = self.expiries.first().cloned() {
            if at > t {
                break;
            }
            self.expiries.pop_first();
            self.tickets.remove(&id);
            self.history.remove(&id);
            self.callers.remove(&id);
            self.ended.retain(|(ticket, _), _| *ticket != id);
        }
    }

    /// A call's ticket, remembered for retries, and for the caller's hang-up, for the retention
    /// from `t`, when the call was routed.
    fn remember_call(
        &mut self,
        call_key: (Partition, String),
        id: &str,
        t: Millis,
        settings: &StoreSettings,
    ) {
        let expires = t + settings.retention.as_millis() as Millis;
        self.call_expiries
            .insert((expires, call_key.0.clone(), call_key.1.clone()));
        self.calls.insert(call_key, id.to_owned());
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
        new_id: &str,
        hold: &Hold,
        to: &QueueRef,
        t: Millis,
        settings: &StoreSettings,
    ) {
        let Some(mut moved) = self.tickets.get(ticket_id).cloned() else {
            return;
        };
        let from = QueueRef::new(&moved.partition, &moved.team_id);
        moved.ticket_id = new_id.to_owned();
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
        self.history.insert(new_id.to_owned(), history);
        self.remember(new_id, t, format!("moved in from {ticket_id}"));
        let call_id = moved.call_id.clone();
        self.tickets.insert(new_id.to_owned(), moved);
        self.enqueue(new_id);
        let call_key = (to.partition.clone(), call_id);
        if !self.calls.contains_key(&call_key) {
            self.remember_call(call_key, new_id, t, settings);
        }
        self.count(to, TicketState::Queued, 1);
        self.emit(
            to,
            EventKind::TransferredIn,
            new_id,
            t,
            settings.feed_length,
        );
        if let Some(stub) = self.tickets.get_mut(ticket_id) {
            stub.state = TicketState::Moved;
            stub.moved_to = Some(new_id.to_owned());
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
    }

    /// What `create` answers for a ticket.
    pub(super) fn created(&self, id: &str, duplicate: bool, joined_incident: bool) -> Created {
        Created {
            ticket: self.tickets[id].clone(),
            duplicate,
            joined_incident,
            position: self.position(id),
        }
    }

    /// Another call joins the open ticket of its building-wide incident. The call is remembered
    /// for retries for the retention, like every routed call.
    pub(super) fn join_incident(
        &mut self,
        open: &str,
        call_key: (Partition, String),
        t: Millis,
        settings: &StoreSettings,
    ) {
        let Some(ticket) = self.tickets.get_mut(open) else {
            return;
        };
        // Each caller counts on its own, so that a hang-up withdraws only that caller.
        let callers = self
            .callers
            .entry(open.to_owned())
            .or_insert_with(|| BTreeSet::from([ticket.call_id.clone()]));
        callers.insert(call_key.1.clone());
        ticket.incident_calls = callers.len() as u32;
        let team = QueueRef::new(&ticket.partition, &ticket.team_id);
        self.remember(open, t, format!("incident call {}", call_key.1));
        self.remember_call(call_key, open, t, settings);
        self.emit(
            &team,
            EventKind::IncidentCall,
            open,
            t,
            settings.feed_length,
        );
    }

    /// A new ticket `id` for a call, at the end of its queue (by urgency).
    pub(super) fn queue_new(
        &mut self,
        new: NewTicket,
        id: &str,
        t: Millis,
        settings: &StoreSettings,
    ) {
        let queue = QueueRef::new(&new.partition, &new.team_id);
        self.remember_call(
            (new.partition.clone(), new.call_id.clone()),
            id,
            t,
            settings,
        );
        if let Some(incident) = &new.incident_id {
            self.incidents
                .insert((new.partition.clone(), incident.clone()), id.to_owned());
        }
        self.remember(id, t, format!("created in {}", new.team_id));
        self.tickets
            .insert(id.to_owned(), Ticket::queued(id.to_owned(), new, t));
        self.enqueue(id);
        self.count(&queue, TicketState::Queued, 1);
        self.emit(&queue, EventKind::Created, id, t, settings.feed_length);
    }

    /// Expired leases of a partition go back to their queue at their original place, attempts
    /// + 1; at the attempt limit, to the escalation team's queue.
    pub(super) fn reap(
        &mut self,
        partition: &Partition,
        t: Millis,
        settings: &StoreSettings,
    ) -> ReapReport {
        let due: Vec<(Millis, String)> = self
            .leases
            .iter()
            .take_while(|(at, _)| *at <= t)
            .filter(|(_, id)| {
                self.tickets
                    .get(id)
                    .is_some_and(|x| &x.partition == partition)
            })
            .cloned()
            .collect();
        let mut report = ReapReport::default();
        for (at, id) in due {
            self.leases.remove(&(at, id.clone()));
            let Some(ticket) = self.tickets.get_mut(&id) else {
                continue;
            };
            if !ticket.state.is_held() {
                continue;
            }
            let was = ticket.state;
            let holder = ticket.agent_id.clone().unwrap_or_default();
            let from = QueueRef::new(&ticket.partition, &ticket.team_id);
            ticket.attempts += 1;
            let escalate = ticket.attempts >= settings.max_attempts
                && !ticket.escalation_team.is_empty()
                && ticket.escalation_team != ticket.team_id;
            if escalate {
                ticket.team_id = ticket.escalation_team.clone();
                ticket.escalated = true;
            }
            ticket.state = TicketState::Queued;
            State::drop_hold(ticket);
            let attempts = ticket.attempts;
            let to = QueueRef::new(&ticket.partition, &ticket.team_id);
            self.enqueue(&id);
            self.count(&from, was, -1);
            self.count(&to, TicketState::Queued, 1);
            self.remember(
                &id,
                t,
                format!("lease of {holder} expired, attempt {attempts}"),
            );
            self.emit(&from, EventKind::LeaseExpired, &id, t, settings.feed_length);
            if escalate {
                self.remember(&id, t, format!("escalated to {}", to.team));
                self.emit(&to, EventKind::Escalated, &id, t, settings.feed_length);
                report.escalated += 1;
            }
            report.expired += 1;
        }
        report
    }

    /// Withdraws a caller who hung up from a queued ticket: whether no caller is left (a ticket no
    /// one joined has its own caller only).
    pub(super) fn withdraw(
        &mut self,
        id: &str,
        call: &str,
        t: Millis,
        settings: &StoreSettings,
    ) -> bool {
        let Some(callers) = self.callers.get_mut(id) else {
            return true;
        };
        if !callers.remove(call) {
            return false;
        }
        let left = callers.len();
        let Some(ticket) = self.tickets.get_mut(id) else {
            return false;
        };
        ticket.incident_calls = left as u32;
        if left == 0 {
            return true;
        }
        let queue = QueueRef::new(&ticket.partition, &ticket.team_id);
        self.remember(
            id,
            t,
            format!("caller {call} hung up, {left} still waiting"),
        );
        self.emit(&queue, EventKind::CallerLeft, id, t, settings.feed_length);
        false
    }

    /// `QUEUED → CANCELLED`: the last caller hung up before pickup.
    pub(super) fn cancel_queued(
        &mut self,
        id: &str,
        call: &str,
        t: Millis,
        settings: &StoreSettings,
    ) {
        let Some(ticket) = self.tickets.get_mut(id) else {
            return;
        };
        let p = place(ticket);
        ticket.state = TicketState::Cancelled;
        ticket.closed_at = Some(t);
        let queue = QueueRef::new(&ticket.partition, &ticket.team_id);
        let incident = ticket
            .incident_id
            .clone()
            .map(|i| (ticket.partition.clone(), i));
        if let Some(set) = self.queues.get_mut(&queue) {
            set.remove(&p);
        }
        if let Some(key) = incident
            && self.incidents.get(&key).map(String::as_str) == Some(id)
        {
            self.incidents.remove(&key);
        }
        self.count(&queue, TicketState::Queued, -1);
        self.count(&queue, TicketState::Cancelled, 1);
        self.remember(id, t, format!("cancelled: caller {call} hung up"));
        self.emit(&queue, EventKind::Cancelled, id, t, settings.feed_length);
        self.expire_closed(id, t, settings.retention);
    }

    /// The ticket, when `hold` already ended with `action` (the holder retries after a lost
    /// answer): as it is now, or the ticket it was moved to.
    pub(super) fn already_done(&self, id: &str, hold: &Hold, action: Action) -> Option<Ticket> {
        let (agent, done) = self.ended.get(&(id.to_owned(), hold.lease_token))?;
        if *agent != hold.agent_id || *done != action {
            return None;
        }
        let ticket = self.tickets.get(id)?;
        match &ticket.moved_to {
            Some(moved) => self.tickets.get(moved).cloned(),
            None => Some(ticket.clone()),
        }
    }

    /// Records that `hold` ended with `action`.
    pub(super) fn end_hold(&mut self, id: &str, hold: &Hold, action: Action) {
        self.ended.insert(
            (id.to_owned(), hold.lease_token),
            (hold.agent_id.clone(), action),
        );
    }

    /// The ticket a claim id already holds, while that hold is current.
    pub(super) fn claimed(&self, agent: &str, claim: &str, t: Millis) -> Option<Ticket> {
        let (id, token) = self.claims.get(&(agent.to_owned(), claim.to_owned()))?;
        let ticket = self.tickets.get(id)?;
        let current = ticket.state.is_held()
            && ticket.agent_id.as_deref() == Some(agent)
            && ticket.lease_token == *token
            && ticket.lease_expires_at.is_some_and(|e| e > t);
        current.then(|| ticket.clone())
    }
}
