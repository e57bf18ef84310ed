//! Queue state: the ticket lifecycle, held in a store shared by every callrouter instance.
//!
//! `QUEUED → RESERVED (claimed, under a lease) → IN_PROGRESS (accepted) → COMPLETED`, with
//! `CANCELLED` (the caller hung up while queued), release (back to its original place), transfer
//! (same ticket, new queue), lease expiry (back to its original place, `attempts + 1`) and
//! escalation to the cooperator's supervisor queue after too many attempts.
//!
//! Invariants every implementation keeps, under any interleaving, crash or retry:
//! - a created ticket is never lost; `create` is idempotent by `call_id` within a partition;
//! - a ticket is in at most one queue and held by at most one agent; every hold carries a fencing
//!   token, and a stale holder (expired or released lease) can no longer change the ticket;
//! - queues are ordered by urgency, then by the time the ticket first entered a queue;
//! - every transition is one atomic step timed by the store's clock, and appends an event to the
//!   team's feed.
//!
//! **Partitions.** Tickets live in the partition of their cooperator (`touraine-logement`), or in
//! `platform` when the call was not located to one cooperator. A retry of a call is located the
//! same way (locating does not depend on the time), so its idempotency key is in the same
//! partition. A ticket id starts with its partition (`touraine-logement-…`), so actions that take
//! only a ticket id know where to go. Shared teams (contractors) have one queue per partition; an
//! agent serving them claims across partitions (see [`redis`] for how, without a cross-slot step).
//! Moving a ticket to another partition (platform triage handing a call to a cooperator) keeps its
//! call, creation time, place, attempts and history under a new id; the old id answers with
//! `MOVED` and the new id.

pub mod ids;
pub mod lifecycle;
pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

pub use self::lifecycle::{Action, EventKind, TicketState};
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::urgency::Urgency;

/// Milliseconds since the Unix epoch, by the store's clock.
pub type Millis = i64;

/// What the routing decision gives the store to create a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    pub call_id: String,
    pub partition: Partition,
    pub cooperator_id: Option<String>,
    pub team_id: String,
    pub urgency: Urgency,
    pub issue_type: String,
    pub building_id: Option<String>,
    /// The address as routed (normalised), for the agents' desks.
    pub address: Option<String>,
    /// Building-wide issue: a call for an incident already open joins it.
    pub incident_id: Option<String>,
    /// When the ticket must be handled by (from the urgency and the calendar).
    pub sla_due_at: Millis,
    /// The team a ticket escalates to after too many expired leases.
    pub escalation_team: String,
    /// Opaque details kept with the ticket (the routing decision, as JSON).
    pub details: String,
    /// How long from now the creation may still take effect. One that would take effect later —
    /// a request stuck behind a stalled store — creates nothing and fails with
    /// [`StoreError::TooLate`], so a caller told "not queued" is never queued after all.
    pub within: Duration,
}

/// A ticket as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ticket {
    pub ticket_id: String,
    pub call_id: String,
    pub partition: Partition,
    pub state: TicketState,
    pub cooperator_id: Option<String>,
    pub team_id: String,
    pub urgency: Urgency,
    pub issue_type: String,
    pub building_id: Option<String>,
    /// The address as routed (normalised).
    pub address: Option<String>,
    pub incident_id: Option<String>,
    /// Calls grouped into this ticket as one building-wide incident (1 for an ordinary ticket).
    pub incident_calls: u32,
    pub agent_id: Option<String>,
    /// Fencing token of the current hold (0 when not held).
    pub lease_token: u64,
    pub lease_expires_at: Option<Millis>,
    pub attempts: u32,
    pub created_at: Millis,
    /// When the ticket first entered a queue: its place among tickets of the same urgency.
    pub enqueued_at: Millis,
    pub sla_due_at: Millis,
    pub claimed_at: Option<Millis>,
    pub closed_at: Option<Millis>,
    pub resolution: Option<String>,
    pub escalation_team: String,
    pub escalated: bool,
    pub transferred_from: Option<String>,
    pub moved_to: Option<String>,
    pub details: String,
}

impl Ticket {
    /// The ticket a creation makes of its request: queued since `at`, never held, one caller.
    pub fn queued(ticket_id: String, new: NewTicket, at: Millis) -> Ticket {
        Ticket {
            ticket_id,
            call_id: new.call_id,
            partition: new.partition,
            state: TicketState::Queued,
            cooperator_id: new.cooperator_id,
            team_id: new.team_id,
            urgency: new.urgency,
            issue_type: new.issue_type,
            building_id: new.building_id,
            address: new.address,
            incident_id: new.incident_id,
            incident_calls: 1,
            agent_id: None,
            lease_token: 0,
            lease_expires_at: None,
            attempts: 0,
            created_at: at,
            enqueued_at: at,
            sla_due_at: new.sla_due_at,
            claimed_at: None,
            closed_at: None,
            resolution: None,
            escalation_team: new.escalation_team,
            escalated: false,
            transferred_from: None,
            moved_to: None,
            details: new.details,
        }
    }
}

/// Who holds a ticket: the agent and the fencing token its claim returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub agent_id: String,
    pub lease_token: u64,
}

/// The outcome of `create`.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub ticket: Ticket,
    /// The call was already known: this is the ticket created for it before.
    pub duplicate: bool,
    /// The call joined an open building-wide incident instead of creating work.
    pub joined_incident: bool,
    pub position: Option<QueuePosition>,
}

/// A ticket's place in its queue, for announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueuePosition {
    /// 1 for the next ticket to be claimed.
    pub position: u64,
    pub estimated_wait_seconds: u64,
}

/// Statistics of one queue and urgency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: QueueRef,
    pub urgency: Urgency,
    pub depth: u64,
    /// How long the oldest waiting ticket of this urgency has waited.
    pub oldest_wait_ms: Option<Millis>,
}

/// Counts of tickets by state for one queue (totals since the store began for closed states).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateCounts {
    pub queued: u64,
    pub reserved: u64,
    pub in_progress: u64,
    pub completed: u64,
    pub cancelled: u64,
}

impl StateCounts {
    /// Counts read state by state from a source of per-state numbers.
    pub fn from_fn(mut count: impl FnMut(TicketState) -> u64) -> StateCounts {
        StateCounts {
            queued: count(TicketState::Queued),
            reserved: count(TicketState::Reserved),
            in_progress: count(TicketState::InProgress),
            completed: count(TicketState::Completed),
            cancelled: count(TicketState::Cancelled),
        }
    }
}

/// What a reaper pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReapReport {
    /// Leases that expired: their tickets went back to their queue.
    pub expired: u64,
    /// Of those, tickets that reached the attempt limit and went to the supervisor queue.
    pub escalated: u64,
    /// Interrupted moves between partitions that were finished.
    pub moves_finished: u64,
}

/// A transition, as it appears in a team's feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketEvent {
    /// Position in the team's feed; read from here to resume.
    pub event_id: String,
    pub kind: EventKind,
    pub ticket_id: String,
    pub team_id: String,
    pub state: TicketState,
    pub urgency: Urgency,
    pub agent_id: Option<String>,
    pub at: Millis,
    /// What a desk shows of the ticket, as it was after the transition.
    pub cooperator_id: Option<String>,
    pub issue_type: String,
    pub building_id: Option<String>,
    pub address: Option<String>,
    pub incident_calls: u32,
    pub created_at: Millis,
    pub sla_due_at: Millis,
}

/// An agent's presence as its desk reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Presence {
    Available,
    Busy,
    WrapUp,
    Break,
    Offline,
}

impl Presence {
    pub const ALL: [Presence; 5] = [
        Presence::Available,
        Presence::Busy,
        Presence::WrapUp,
        Presence::Break,
        Presence::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "AVAILABLE",
            Presence::Busy => "BUSY",
            Presence::WrapUp => "WRAP_UP",
            Presence::Break => "BREAK",
            Presence::Offline => "OFFLINE",
        }
    }

    pub fn parse(text: &str) -> Option<Presence> {
        Some(match text {
            "AVAILABLE" => Presence::Available,
            "BUSY" => Presence::Busy,
            "WRAP_UP" => Presence::WrapUp,
            "BREAK" => Presence::Break,
            "OFFLINE" => Presence::Offline,
            _ => return None,
        })
    }
}

/// An agent as the presence registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub agent_id: String,
    /// The cooperator the agent works for, or the platform.
    pub partition: Partition,
    pub teams: Vec<String>,
    /// `Offline` once the desk stopped sending heartbeats for longer than the TTL.
    pub presence: Presence,
    pub last_seen: Millis,
}

/// Settings shared by store implementations.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Prefix of every key, so several deployments can share a Redis.
    pub namespace: String,
    /// Expired leases before a ticket escalates to its supervisor queue.
    pub max_attempts: u32,
    /// How long completed and cancelled tickets are kept (then purged: personal data).
    pub retention: Duration,
    /// Events kept per team feed (approximately, for Redis).
    pub feed_length: u64,
    /// How long an agent stays present without a heartbeat.
    pub presence_ttl: Duration,
    /// How long one store operation may take before it fails with `Timeout`.
    pub operation_timeout: Duration,
    /// Replicas that must have an acknowledged transition before it is acknowledged (Redis
    /// `WAIT`); 0: acknowledged once the primary has it.
    pub wait_replicas: u32,
    /// How long a transition waits for those replicas before failing with `Unconfirmed`.
    pub replica_wait: Duration,
}

/// Defaults of [`StoreSettings`], shared with the command line.
pub const DEFAULT_NAMESPACE: &str = "callrouter";
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
pub const DEFAULT_FEED_LENGTH: u64 = 10_000;
pub const DEFAULT_PRESENCE_TTL_SECONDS: u32 = 30;
pub const DEFAULT_OPERATION_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_REPLICA_WAIT_MS: u64 = 200;

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retention: Duration::from_secs(u64::from(DEFAULT_RETENTION_DAYS) * 86_400),
            feed_length: DEFAULT_FEED_LENGTH,
            presence_ttl: Duration::from_secs(u64::from(DEFAULT_PRESENCE_TTL_SECONDS)),
            operation_timeout: Duration::from_millis(DEFAULT_OPERATION_TIMEOUT_MS),
            wait_replicas: 0,
            replica_wait: Duration::from_millis(DEFAULT_REPLICA_WAIT_MS),
        }
    }
}

/// A store operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no ticket {0}")]
    NotFound(String),
    #[error("ticket {0} is not held by this agent under this lease (stale or foreign hold)")]
    NotHolder(String),
    #[error("ticket {ticket_id} is {state}: cannot {action}")]
    WrongState {
        ticket_id: String,
        state: TicketState,
        action: Action,
    },
    #[error("invalid store request: {0}")]
    Invalid(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store operation timed out")]
    Timeout,
    /// A creation reached the store past its deadline and created nothing.
    #[error("the creation reached the store past its deadline: nothing was created")]
    TooLate,
    #[error("unexpected store reply: {0}")]
    Corrupt(String),
    /// Applied on the primary, but fewer replicas than asked confirmed it in time: a failover now
    /// could lose it. A retry with the same ids answers with the outcome, and waits again.
    #[error(
        "applied on the primary but confirmed by {confirmed} of {asked} replicas in time: a retry with the same ids confirms it"
    )]
    Unconfirmed { asked: u32, confirmed: u32 },
}

/// The claim that follows a completion in [`TicketStore::complete_and_claim`]: the queues, the
/// lease and the desk's claim id, as [`TicketStore::claim_next`] takes them.
#[derive(Debug, Clone, Copy)]
pub struct NextClaim<'a> {
    pub queues: &'a [QueueRef],
    pub lease: Duration,
    pub claim_id: Option<&'a str>,
}

/// The queue store the service uses. Every method is one atomic step (one round trip for Redis),
/// except `claim_next` across partitions and `transfer` across partitions, which are sequences
/// of atomic steps whose intermediate states are safe (see each implementation).
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates the ticket of a call, or returns the one created before for the same call id, or
    /// joins the open incident of the same building and group.
    async fn create(&self, new: NewTicket) -> Result<Created, StoreError>;

    /// Claims the most urgent, longest-waiting ticket across the queues, under a lease. With a
    /// claim id, a retry whose first answer was lost gets the hold that claim made, while it is
    /// current.
    async fn claim_next(
        &self,
        agent_id: &str,
        queues: &[QueueRef],
        lease: Duration,
        claim_id: Option<&str>,
    ) -> Result<Option<Ticket>, StoreError>;

    /// `RESERVED → IN_PROGRESS`, renewing the lease.
    async fn accept(
        &self,
        ticket_id: &str,
        hold: &Hold,
        lease: Duration,
    ) -> Result<Ticket, StoreError>;

    /// `RESERVED | IN_PROGRESS → COMPLETED`.
    async fn complete(
        &self,
        ticket_id: &str,
        hold: &Hold,
        resolution: &str,
    ) -> Result<Ticket, StoreError>;

    /// A desk's "done, next": completes a held ticket, then claims the next one for the same
    /// agent across the queues (as `complete` then `claim_next`). A refused completion claims
    /// nothing. A retry whose answer was lost finds the completion done and, with the same claim
    /// id, the same hold. One atomic step when the store can make it one (Redis: when the next
    /// ticket waits in the ticket's partition), else the two steps in turn.
    async fn complete_and_claim(
        &self,
        ticket_id: &str,
        hold: &Hold,
        resolution: &str,
        next: &NextClaim<'_>,
    ) -> Result<(Ticket, Option<Ticket>), StoreError>;

    /// Back to its queue, at its original place.
    async fn release(&self, ticket_id: &str, hold: &Hold) -> Result<Ticket, StoreError>;

    /// To another team's queue (another partition's when `to.partition` differs), keeping the
    /// ticket's place in time and its history. `urgency` may raise the ticket's urgency.
    async fn transfer(
        &self,
        ticket_id: &str,
        hold: &Hold,
        to: &QueueRef,
        urgency: Option<Urgency>,
    ) -> Result<Ticket, StoreError>;

    /// A caller hung up before pickup: withdraws `call_id` (the ticket's own call when `None`)
    /// from the ticket; `QUEUED → CANCELLED` once no caller is left. The call must be one of the
    /// ticket's (else `NotFound`); withdrawing or cancelling twice is not an error.
    async fn cancel(&self, ticket_id: &str, call_id: Option<&str>) -> Result<Ticket, StoreError>;

    async fn get(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError>;

    /// The history of a ticket: one line per transition, oldest first.
    async fn history(&self, ticket_id: &str) -> Result<Vec<String>, StoreError>;

    /// Waiting tickets of a queue, in claim order.
    async fn list_queued(&self, queue: &QueueRef, limit: usize) -> Result<Vec<Ticket>, StoreError>;

    /// The tickets of a partition an agent holds (for a desk recovering its holds).
    async fn held_by(
        &self,
        partition: &Partition,
        agent_id: &str,
    ) -> Result<Vec<Ticket>, StoreError>;

    /// Position and estimated wait of a queued ticket.
    async fn position(&self, ticket_id: &str) -> Result<Option<QueuePosition>, StoreError>;

    /// Depth and oldest wait per queue and urgency, and counts by state per queue.
    async fn queue_stats(
        &self,
        queues: &[QueueRef],
    ) -> Result<(Vec<QueueStats>, Vec<(QueueRef, StateCounts)>), StoreError>;

    /// Returns expired leases of a partition to their queues and finishes interrupted moves.
    async fn reap(&self, partition: &Partition) -> Result<ReapReport, StoreError>;

    /// Events of a team's feed after `after` (from the start when `None`), waiting up to `wait`
    /// for one when there are none yet.
    async fn read_events(
        &self,
        queue: &QueueRef,
        after: Option<&str>,
        limit: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<TicketEvent>, StoreError>;

    /// The position of a team feed's newest event (`0-0` when it has none): where to follow it
    /// from.
    async fn feed_tail(&self, queue: &QueueRef) -> Result<String, StoreError>;

    /// Events of several team feeds of one partition, each after its position (every feed must
    /// have one), waiting up to `wait` for one when there are none yet: one blocking read for all,
    /// so that following a partition's feeds costs one connection, whatever the number of feeds.
    async fn read_feeds(
        &self,
        partition: &Partition,
        feeds: &[(String, String)],
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<TicketEvent>, StoreError>;

    /// Records an agent's presence; the desk calls it at least once per presence TTL.
    async fn heartbeat(&self, agent: &AgentStatus) -> Result<(), StoreError>;

    /// Every agent seen within the retention of presence, offline ones included.
    async fn agents(&self) -> Result<Vec<AgentStatus>, StoreError>;

    /// The address of the Redis primary in use, when the store is Redis and knows it.
    fn primary_address(&self) -> Option<String> {
        None
    }

    /// Failovers the store followed since start (the primary moved).
    fn failovers(&self) -> u64 {
        0
    }

    /// Takes the lease of a store-wide job named `name` for `holder` when it is free, or keeps it
    /// when `holder` has it, for `ttl`: `true` while `holder` holds it. Among the instances
    /// sharing a store, one does the job.
    async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Tickets being moved out of each partition (its move outbox), in the order asked.
    async fn move_backlog(&self, partitions: &[Partition]) -> Result<Vec<u64>, StoreError>;

    /// Waiting tickets of each queue and urgency that entered the queue between two times
    /// (inclusive), in the order asked.
    async fn waiting_between(
        &self,
        ranges: &[(QueueRef, Urgency, Millis, Millis)],
    ) -> Result<Vec<u64>, StoreError>;
}

/// The order of feed positions (`<ms>-<seq>`, increasing along a feed); `None` for a malformed one.
pub fn feed_order(event_id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = event_id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// [`TicketStore::complete_and_claim`] as two steps: the completion, then the claim.
pub async fn complete_then_claim<S: TicketStore + ?Sized>(
    store: &S,
    ticket_id: &str,
    hold: &Hold,
    resolution: &str,
    next: &NextClaim<'_>,
) -> Result<(Ticket, Option<Ticket>), StoreError> {
    let completed = store.complete(ticket_id, hold, resolution).await?;
    let claimed = store
        .claim_next(&hold.agent_id, next.queues, next.lease, next.claim_id)
        .await?;
    Ok((completed, claimed))
}

/// The partition a ticket id belongs to (ids are `<partition>-<unique>`).
pub fn partition_of(ticket_id: &str) -> Result<Partition, StoreError> {
    match ticket_id.rsplit_once('-') {
        Some((partition, unique)) if !partition.is_empty() && !unique.is_empty() => {
            Ok(Partition::parse(partition))
        }
        _ => Err(StoreError::NotFound(ticket_id.to_owned())),
    }
}

/// The queue order of a ticket: urgency first, then the time it first entered a queue.
pub fn queue_score(urgency: Urgency, enqueued_at: Millis) -> f64 {
    f64::from(urgency.rank()) * 1e13 + enqueued_at as f64
}

/// Estimated wait for a position, from the team's recent interval between claims.
pub fn estimate_wait_seconds(position: u64, claim_interval_ms: f64) -> u64 {
    ((position as f64 * claim_interval_ms) / 1000.0).ceil() as u64
}

/// The claim interval assumed for a queue that has not been claimed from yet.
pub const DEFAULT_CLAIM_INTERVAL_MS: f64 = 120_000.0;
