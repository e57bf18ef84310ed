//! The production store: Redis, one Lua script per transition (one round trip, atomic, timed by
//! Redis's own `TIME`), scripts loaded by SHA and reloaded transparently when Redis has forgotten
//! them (after a restart). The connection reconnects by itself.
//!
//! **Key layout.** Every key of a partition starts with `<namespace>:{<partition>}:`, so the hash
//! tag `{<partition>}` puts all of a partition's keys in one Redis Cluster slot and every script
//! touches one slot. With `P` that prefix:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P t:<ticket>` | hash | the ticket |
//! | `P h:<ticket>` | list | its history, one line per transition |
//! | `P call:<call id>` | string | the ticket created for a call (idempotency) |
//! | `P q:<team>` | sorted set | waiting tickets; score `urgency × 10¹³ + first enqueued (ms)` |
//! | `P leases` | sorted set | held tickets; score = lease expiry (ms) |
//! | `P fence` | counter | fencing tokens of claims |
//! | `P inc:<incident>` | string | the open ticket of a building-wide incident |
//! | `P s:<team>` | hash | counts by state, interval between claims (for wait estimates) |
//! | `P ev:<team>` | stream | the team's feed of transitions, capped |
//! | `P outbox` | sorted set | tickets being moved to another partition |
//! | `P moved:<ticket>` | string | the ticket a moved-in ticket came from (idempotency) |
//! | `<namespace>:{agents}:seen`, `…:status` | sorted set, hash | agent presence |
//!
//! Scripts build the keys they touch from the prefix in `ARGV[1]`; all of them carry the same hash
//! tag, which is what Redis Cluster requires of a script's keys.
//!
//! **Claiming across partitions.** An agent serving a shared team (a contractor) has one queue per
//! partition. Claiming peeks the head of each queue (one pipelined round trip of reads), then runs
//! the claim script in the partition with the best head, over all of the agent's queues there. If
//! another agent emptied them meanwhile the claim returns nothing and the next partition is tried.
//! Safety (one holder, no loss) never depends on the peek; only the order across partitions is
//! best-effort under races.
//!
//! **Moving to another partition** (platform triage hands a call to a cooperator) is a transactional
//! outbox: `move_out` takes the ticket from its holder into the source's outbox (claimable by no
//! one), `move_in` creates it in the target (idempotent by source id), `move_done` leaves a `MOVED`
//! stub naming the new id. A crash between steps leaves the ticket in the outbox, and the reaper
//! finishes the move: never lost, never twice in a queue.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script, Value};
use rustc_hash::FxHashMap;

use super::ids::new_ticket_id;
use super::{
    AgentStatus, Created, DEFAULT_CLAIM_INTERVAL_MS, Hold, Millis, Presence, QueuePosition,
    QueueRef, QueueStats, ReapReport, StateCounts, StoreError, StoreSettings, Ticket, TicketEvent,
    TicketState, TicketStore, estimate_wait_seconds, partition_of,
};
use crate::routing::urgency::Urgency;

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("scripts/common.lua"),
            include_str!(concat!("scripts/", $file))
        ))
    };
}

/// The transition scripts, each named after the transition it performs.
struct Scripts {
    create: Script,
    claim: Script,
    accept: Script,
    complete: Script,
    release: Script,
    transfer: Script,
    cancel: Script,
    reap: Script,
    move_out: Script,
    move_in: Script,
    move_done: Script,
    position: Script,
    list: Script,
    heartbeat: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            create: script!("create.lua"),
            claim: script!("claim.lua"),
            accept: script!("accept.lua"),
            complete: script!("complete.lua"),
            release: script!("release.lua"),
            transfer: script!("transfer.lua"),
            cancel: script!("cancel.lua"),
            reap: script!("reap.lua"),
            move_out: script!("move_out.lua"),
            move_in: script!("move_in.lua"),
            move_done: script!("move_done.lua"),
            position: script!("position.lua"),
            list: script!("list.lua"),
            heartbeat: script!("heartbeat.lua"),
        }
    }
}

/// The Redis store. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    conn: ConnectionManager,
    settings: std::sync::Arc<StoreSettings>,
    scripts: std::sync::Arc<Scripts>,
    /// Connections for blocking feed reads, which hold a connection for their whole wait and so
    /// never use the shared one; kept and reused rather than opened for every read.
    blocking: std::sync::Arc<std::sync::Mutex<Vec<redis::aio::MultiplexedConnection>>>,
}

/// Idle blocking-read connections kept for reuse.
const BLOCKING_POOL: usize = 64;

/// How many expired leases one reaper pass handles per partition.
const REAP_BATCH: u32 = 500;

impl RedisStore {
    /// Connects lazily: the store is created even when Redis is down, and every operation fails
    /// with `Unavailable` until it answers.
    pub fn connect(url: &str, settings: StoreSettings) -> Result<RedisStore, StoreError> {
        let client =
            Client::open(url).map_err(|e| StoreError::Invalid(format!("Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.operation_timeout))
            .set_response_timeout(Some(settings.operation_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(RedisStore {
            client,
            conn,
            settings: std::sync::Arc::new(settings),
            scripts: std::sync::Arc::new(Scripts::new()),
            blocking: std::sync::Arc::default(),
        })
    }

    fn prefix(&self, partition: &str) -> String {
        format!("{}:{{{partition}}}:", self.settings.namespace)
    }

    fn agents_key(&self, which: &str) -> String {
        format!("{}:{{agents}}:{which}", self.settings.namespace)
    }

    /// Runs a script with the common arguments (prefix, feed length, retention) first.
    async fn run(
        &self,
        script: &Script,
        partition: &str,
        keys: &[String],
        args: &[String],
        ticket_id: &str,
    ) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation
            .arg(self.prefix(partition))
            .arg(self.settings.feed_length)
            .arg(self.settings.retention.as_millis() as u64);
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.conn.clone();
        let call = invocation.invoke_async::<Value>(&mut conn);
        match tokio::time::timeout(self.settings.operation_timeout, call).await {
            Ok(result) => result.map_err(|e| store_error(e, ticket_id)),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.settings.operation_timeout, cmd.query_async(&mut conn))
            .await
        {
            Ok(result) => result.map_err(|e| store_error(e, "")),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    async fn pipeline(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.settings.operation_timeout, pipe.query_async(&mut conn))
            .await
        {
            Ok(result) => result.map_err(|e| store_error(e, "")),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// A transition by the holder of a ticket: the ticket id and the hold, then `extra` arguments.
    async fn held_step<const N: usize>(
        &self,
        script: &Script,
        ticket_id: &str,
        hold: &Hold,
        extra: [String; N],
    ) -> Result<Ticket, StoreError> {
        let (partition, keys) = self.ticket_keys(ticket_id)?;
        let mut args = vec![
            ticket_id.to_owned(),
            hold.agent_id.clone(),
            hold.lease_token.to_string(),
        ];
        args.extend(extra);
        parse_ticket(
            &self
                .run(script, &partition, &keys, &args, ticket_id)
                .await?,
        )
    }

    /// A connection for a blocking read: an idle one from the pool, or a new one without the
    /// client's response timeout.
    async fn blocking_connection(&self) -> Result<redis::aio::MultiplexedConnection, StoreError> {
        let idle = self
            .blocking
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        if let Some(conn) = idle {
            return Ok(conn);
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.operation_timeout))
            .set_response_timeout(None);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| store_error(e, ""))
    }

    /// Puts a connection that answered back in the pool (a failed one is dropped instead).
    fn return_blocking_connection(&self, conn: redis::aio::MultiplexedConnection) {
        let mut pool = self
            .blocking
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < BLOCKING_POOL {
            pool.push(conn);
        }
    }

    /// Claims in one partition, over the agent's queues there.
    async fn claim_in(
        &self,
        partition: &str,
        teams: &[&str],
        agent_id: &str,
        lease: Duration,
    ) -> Result<Option<Ticket>, StoreError> {
        let prefix = self.prefix(partition);
        let keys: Vec<String> = teams.iter().map(|t| format!("{prefix}q:{t}")).collect();
        let reply = self
            .run(
                &self.scripts.claim,
                partition,
                &keys,
                &[agent_id.to_owned(), lease.as_millis().to_string()],
                "",
            )
            .await?;
        match reply {
            Value::Nil => Ok(None),
            other => Ok(Some(parse_ticket(&other)?)),
        }
    }

    /// Steps two and three of a move to another partition, from a ticket in the outbox.
    async fn finish_move(
        &self,
        source: &Ticket,
        fields: &FxHashMap<String, String>,
        history: Vec<String>,
    ) -> Result<Ticket, StoreError> {
        let to_partition = fields.get("move_partition").cloned().unwrap_or_default();
        let to_team = fields.get("move_team").cloned().unwrap_or_default();
        if !valid_partition(&to_partition) || to_team.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "ticket {} has no move target",
                source.ticket_id
            )));
        }
        let mut urgency = source.urgency;
        if let Some(raised) = fields
            .get("move_urgency")
            .and_then(|u| urgency_from_rank(u))
        {
            urgency = urgency.min(raised);
        }
        let new_id = new_ticket_id(&to_partition);
        let new_fields: Vec<(&str, String)> = vec![
            ("ticket_id", new_id.clone()),
            ("call_id", source.call_id.clone()),
            ("partition", to_partition.clone()),
            ("state", TicketState::Queued.as_str().to_owned()),
            ("cooperator_id", cooperator_of_partition(&to_partition)),
            ("team_id", to_team.clone()),
            ("urgency", urgency_rank(urgency).to_string()),
            ("issue_type", source.issue_type.clone()),
            (
                "building_id",
                source.building_id.clone().unwrap_or_default(),
            ),
            ("incident_id", String::new()),
            ("incident_calls", source.incident_calls.to_string()),
            ("agent_id", String::new()),
            ("lease_token", "0".to_owned()),
            ("attempts", source.attempts.to_string()),
            ("created_at", source.created_at.to_string()),
            ("enqueued_at", source.enqueued_at.to_string()),
            ("sla_due_at", source.sla_due_at.to_string()),
            ("escalation_team", super::supervisor_team(&to_partition)),
            ("transferred_from", source.ticket_id.clone()),
            ("details", source.details.clone()),
        ];
        let target_prefix = self.prefix(&to_partition);
        let mut args = vec![new_id.clone(), source.ticket_id.clone(), history.join("\n")];
        for (name, value) in new_fields {
            args.push(name.to_owned());
            args.push(value);
        }
        let moved = self
            .run(
                &self.scripts.move_in,
                &to_partition,
                &[
                    format!("{target_prefix}moved:{}", source.ticket_id),
                    format!("{target_prefix}t:{new_id}"),
                ],
                &args,
                &source.ticket_id,
            )
            .await?;
        let moved = parse_ticket(&moved)?;
        self.run(
            &self.scripts.move_done,
            &source.partition,
            &[format!(
                "{}t:{}",
                self.prefix(&source.partition),
                source.ticket_id
            )],
            &[source.ticket_id.clone(), moved.ticket_id.clone()],
            &source.ticket_id,
        )
        .await?;
        Ok(moved)
    }

    async fn raw_ticket(
        &self,
        ticket_id: &str,
    ) -> Result<Option<FxHashMap<String, String>>, StoreError> {
        let partition = partition_of(ticket_id)?;
        let key = format!("{}t:{ticket_id}", self.prefix(partition));
        let value: Value = self.query(redis::cmd("HGETALL").arg(&key)).await?;
        let fields = field_map(&value)?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    /// The ticket's partition and key arguments, refusing ids that name no valid partition.
    fn ticket_keys(&self, ticket_id: &str) -> Result<(String, Vec<String>), StoreError> {
        let partition = partition_of(ticket_id)?;
        if !valid_partition(partition) {
            return Err(StoreError::NotFound(ticket_id.to_owned()));
        }
        let key = format!("{}t:{ticket_id}", self.prefix(partition));
        Ok((partition.to_owned(), vec![key]))
    }
}

#[async_trait]
impl TicketStore for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!("PING answered {pong}")))
        }
    }

    async fn create(&self, new: super::NewTicket) -> Result<Created, StoreError> {
        if !valid_partition(&new.partition) {
            return Err(StoreError::Invalid(format!(
                "partition '{}'",
                new.partition
            )));
        }
        let prefix = self.prefix(&new.partition);
        let ticket_id = new_ticket_id(&new.partition);
        let call_key = format!("{prefix}call:{}", new.call_id);
        let incident_key = match &new.incident_id {
            Some(incident) => format!("{prefix}inc:{incident}"),
            None => call_key.clone(),
        };
        let keys = [
            call_key,
            format!("{prefix}q:{}", new.team_id),
            format!("{prefix}t:{ticket_id}"),
            incident_key,
        ];
        let args = [
            ticket_id.clone(),
            new.call_id.clone(),
            new.partition.clone(),
            new.cooperator_id.clone().unwrap_or_default(),
            new.team_id.clone(),
            urgency_rank(new.urgency).to_string(),
            new.issue_type.clone(),
            new.building_id.clone().unwrap_or_default(),
            new.incident_id.clone().unwrap_or_default(),
            new.sla_due_at.to_string(),
            new.escalation_team.clone(),
            new.details.clone(),
        ];
        let reply = self
            .run(
                &self.scripts.create,
                &new.partition,
                &keys,
                &args,
                &ticket_id,
            )
            .await?;
        let items = array(&reply)?;
        let [duplicate, incident, position, ticket] = items else {
            return Err(StoreError::Corrupt("create reply".to_owned()));
        };
        Ok(Created {
            ticket: parse_ticket(ticket)?,
            duplicate: int(duplicate)? == 1,
            joined_incident: int(incident)? == 1,
            position: parse_position(position)?,
        })
    }

    async fn claim_next(
        &self,
        agent_id: &str,
        queues: &[QueueRef],
        lease: Duration,
    ) -> Result<Option<Ticket>, StoreError> {
        let mut by_partition: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for q in queues {
            if !valid_partition(&q.partition) {
                return Err(StoreError::Invalid(format!("partition '{}'", q.partition)));
            }
            by_partition.entry(&q.partition).or_default().push(&q.team);
        }
        if by_partition.len() <= 1 {
            return match by_partition.into_iter().next() {
                Some((partition, teams)) => self.claim_in(partition, &teams, agent_id, lease).await,
                None => Ok(None),
            };
        }
        // Peek every head in one round trip, then claim where the best head is.
        let mut pipe = redis::pipe();
        let mut order = Vec::new();
        for (partition, teams) in &by_partition {
            for team in teams {
                pipe.cmd("ZRANGE")
                    .arg(format!("{}q:{team}", self.prefix(partition)))
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES");
                order.push(*partition);
            }
        }
        let heads = self.pipeline(&pipe).await?;
        let mut best: FxHashMap<&str, f64> = FxHashMap::default();
        for (partition, head) in order.iter().zip(&heads) {
            if let Some(score) = array(head)?.get(1).map(text).transpose()? {
                let score: f64 = score
                    .parse()
                    .map_err(|_| StoreError::Corrupt("queue score".to_owned()))?;
                let entry = best.entry(partition).or_insert(f64::MAX);
                *entry = entry.min(score);
            }
        }
        let mut ranked: Vec<(&str, f64)> = best.into_iter().collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
        for (partition, _) in ranked {
            let teams = &by_partition[partition];
            if let Some(ticket) = self.claim_in(partition, teams, agent_id, lease).await? {
                return Ok(Some(ticket));
            }
        }
        Ok(None)
    }

    async fn accept(
        &self,
        ticket_id: &str,
        hold: &Hold,
        lease: Duration,
    ) -> Result<Ticket, StoreError> {
        let lease = lease.as_millis().to_string();
        self.held_step(&self.scripts.accept, ticket_id, hold, [lease])
            .await
    }

    async fn complete(
        &self,
        ticket_id: &str,
        hold: &Hold,
        resolution: &str,
    ) -> Result<Ticket, StoreError> {
        let resolution = resolution.to_owned();
        self.held_step(&self.scripts.complete, ticket_id, hold, [resolution])
            .await
    }

    async fn release(&self, ticket_id: &str, hold: &Hold) -> Result<Ticket, StoreError> {
        self.held_step(&self.scripts.release, ticket_id, hold, [])
            .await
    }

    async fn transfer(
        &self,
        ticket_id: &str,
        hold: &Hold,
        to: &QueueRef,
        urgency: Option<Urgency>,
    ) -> Result<Ticket, StoreError> {
        let (partition, keys) = self.ticket_keys(ticket_id)?;
        let rank = urgency
            .map(|u| urgency_rank(u).to_string())
            .unwrap_or_default();
        if to.partition == partition {
            let args = [to.team.clone(), rank];
            return self
                .held_step(&self.scripts.transfer, ticket_id, hold, args)
                .await;
        }
        if !valid_partition(&to.partition) {
            return Err(StoreError::Invalid(format!("partition '{}'", to.partition)));
        }
        let args = [
            ticket_id.to_owned(),
            hold.agent_id.clone(),
            hold.lease_token.to_string(),
            to.partition.clone(),
            to.team.clone(),
            rank,
        ];
        let reply = self
            .run(&self.scripts.move_out, &partition, &keys, &args, ticket_id)
            .await?;
        let items = array(&reply)?;
        let [fields, history] = items else {
            return Err(StoreError::Corrupt("move_out reply".to_owned()));
        };
        let fields = field_map(fields)?;
        let source = ticket_from_fields(&fields)?;
        let history = array(history)?
            .iter()
            .map(text)
            .collect::<Result<Vec<_>, _>>()?;
        self.finish_move(&source, &fields, history).await
    }

    async fn cancel(&self, ticket_id: &str) -> Result<Ticket, StoreError> {
        let (partition, keys) = self.ticket_keys(ticket_id)?;
        parse_ticket(
            &self
                .run(
                    &self.scripts.cancel,
                    &partition,
                    &keys,
                    &[ticket_id.to_owned()],
                    ticket_id,
                )
                .await?,
        )
    }

    async fn get(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError> {
        if partition_of(ticket_id).map(valid_partition) != Ok(true) {
            return Ok(None);
        }
        self.raw_ticket(ticket_id)
            .await?
            .map(|f| ticket_from_fields(&f))
            .transpose()
    }

    async fn history(&self, ticket_id: &str) -> Result<Vec<String>, StoreError> {
        let (partition, _) = self.ticket_keys(ticket_id)?;
        let key = format!("{}h:{ticket_id}", self.prefix(&partition));
        self.query(redis::cmd("LRANGE").arg(key).arg(0).arg(-1))
            .await
    }

    async fn list_queued(&self, queue: &QueueRef, limit: usize) -> Result<Vec<Ticket>, StoreError> {
        if !valid_partition(&queue.partition) {
            return Err(StoreError::Invalid(format!(
                "partition '{}'",
                queue.partition
            )));
        }
        let key = format!("{}q:{}", self.prefix(&queue.partition), queue.team);
        let reply = self
            .run(
                &self.scripts.list,
                &queue.partition,
                &[key],
                &[limit.max(1).to_string()],
                "",
            )
            .await?;
        array(&reply)?.iter().map(parse_ticket).collect()
    }

    async fn position(&self, ticket_id: &str) -> Result<Option<QueuePosition>, StoreError> {
        let (partition, keys) = self.ticket_keys(ticket_id)?;
        let reply = self
            .run(
                &self.scripts.position,
                &partition,
                &keys,
                &[ticket_id.to_owned()],
                ticket_id,
            )
            .await?;
        parse_position(&reply)
    }

    async fn queue_stats(
        &self,
        queues: &[QueueRef],
    ) -> Result<(Vec<QueueStats>, Vec<(QueueRef, StateCounts)>), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        for q in queues {
            if !valid_partition(&q.partition) {
                return Err(StoreError::Invalid(format!("partition '{}'", q.partition)));
            }
            let prefix = self.prefix(&q.partition);
            let key = format!("{prefix}q:{}", q.team);
            for urgency in Urgency::ALL {
                let low = urgency_rank(urgency) as f64 * 1e13;
                let high = format!("({}", low + 1e13);
                pipe.cmd("ZCOUNT").arg(&key).arg(low).arg(&high);
                pipe.cmd("ZRANGEBYSCORE")
                    .arg(&key)
                    .arg(low)
                    .arg(&high)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(1);
            }
            pipe.cmd("HGETALL").arg(format!("{prefix}s:{}", q.team));
        }
        let replies = self.pipeline(&pipe).await?;
        let now = redis_time(
            replies
                .first()
                .ok_or_else(|| StoreError::Corrupt("TIME".to_owned()))?,
        )?;
        let mut stats = Vec::new();
        let mut counts = Vec::new();
        let mut rest = replies[1..].chunks(7);
        for q in queues {
            let chunk = rest
                .next()
                .ok_or_else(|| StoreError::Corrupt("stats reply".to_owned()))?;
            for (i, urgency) in Urgency::ALL.into_iter().enumerate() {
                let depth = int(&chunk[2 * i])? as u64;
                let oldest = array(&chunk[2 * i + 1])?
                    .get(1)
                    .map(text)
                    .transpose()?
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(|score| now - (score - urgency_rank(urgency) as f64 * 1e13) as Millis);
                stats.push(QueueStats {
                    queue: q.clone(),
                    urgency,
                    depth,
                    oldest_wait_ms: oldest,
                });
            }
            let fields = field_map(&chunk[6])?;
            let n = |state: TicketState| {
                fields
                    .get(state.as_str())
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
                    .max(0) as u64
            };
            counts.push((q.clone(), StateCounts::from_fn(n)));
        }
        Ok((stats, counts))
    }

    async fn reap(&self, partition: &str) -> Result<ReapReport, StoreError> {
        if !valid_partition(partition) {
            return Err(StoreError::Invalid(format!("partition '{partition}'")));
        }
        let key = format!("{}leases", self.prefix(partition));
        let args = [
            self.settings.max_attempts.to_string(),
            REAP_BATCH.to_string(),
        ];
        let reply = self
            .run(&self.scripts.reap, partition, &[key], &args, "")
            .await?;
        let items = array(&reply)?;
        let [expired, escalated, stuck] = items else {
            return Err(StoreError::Corrupt("reap reply".to_owned()));
        };
        let mut report = ReapReport {
            expired: int(expired)? as u64,
            escalated: int(escalated)? as u64,
            moves_finished: 0,
        };
        for id in array(stuck)? {
            let id = text(id)?;
            let Some(fields) = self.raw_ticket(&id).await? else {
                continue;
            };
            let source = ticket_from_fields(&fields)?;
            let history = self.history(&id).await?;
            self.finish_move(&source, &fields, history).await?;
            report.moves_finished += 1;
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
        if !valid_partition(&queue.partition) {
            return Err(StoreError::Invalid(format!(
                "partition '{}'",
                queue.partition
            )));
        }
        if let Some(after) = after
            && !valid_stream_id(after)
        {
            return Err(StoreError::Invalid(format!("feed position '{after}'")));
        }
        let key = format!("{}ev:{}", self.prefix(&queue.partition), queue.team);
        let limit = limit.clamp(1, 1000);
        let start = after.map_or_else(|| "-".to_owned(), |a| format!("({a}"));
        let entries: Value = self
            .query(
                redis::cmd("XRANGE")
                    .arg(&key)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit),
            )
            .await?;
        let events = parse_events(&entries)?;
        let Some(wait) = wait.filter(|_| events.is_empty()) else {
            return Ok(events);
        };
        // A blocking read holds its connection: it gets its own, never the shared one. The client's
        // default response timeout (500 ms) would cut the wait short, so the bound is ours.
        let mut conn = self.blocking_connection().await?;
        let mut xread = redis::cmd("XREAD");
        xread
            .arg("COUNT")
            .arg(limit)
            .arg("BLOCK")
            .arg(wait.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&key)
            .arg(after.unwrap_or("0-0"));
        let read = xread.query_async::<Value>(&mut conn);
        let reply = match tokio::time::timeout(wait + self.settings.operation_timeout, read).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(store_error(e, "")),
            Err(_) => return Err(StoreError::Timeout),
        };
        self.return_blocking_connection(conn);
        match reply {
            Value::Nil => Ok(Vec::new()),
            reply => match array(&reply)?.first() {
                Some(stream) => parse_events(array(stream)?.get(1).unwrap_or(&Value::Nil)),
                None => Ok(Vec::new()),
            },
        }
    }

    async fn heartbeat(&self, agent: &AgentStatus) -> Result<(), StoreError> {
        let status = serde_json::json!({
            "partition": agent.partition,
            "teams": agent.teams,
            "presence": agent.presence.as_str(),
        })
        .to_string();
        let keys = [self.agents_key("seen"), self.agents_key("status")];
        let mut invocation = self.scripts.heartbeat.prepare_invoke();
        invocation
            .key(&keys[0])
            .key(&keys[1])
            .arg("")
            .arg(0)
            .arg(0)
            .arg(&agent.agent_id)
            .arg(status);
        let mut conn = self.conn.clone();
        match tokio::time::timeout(
            self.settings.operation_timeout,
            invocation.invoke_async::<Value>(&mut conn),
        )
        .await
        {
            Ok(result) => result.map(|_| ()).map_err(|e| store_error(e, "")),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    async fn agents(&self) -> Result<Vec<AgentStatus>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        pipe.cmd("ZRANGE")
            .arg(self.agents_key("seen"))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        pipe.cmd("HGETALL").arg(self.agents_key("status"));
        let replies = self.pipeline(&pipe).await?;
        let [now, seen, statuses] = replies.as_slice() else {
            return Err(StoreError::Corrupt("agents reply".to_owned()));
        };
        let now = redis_time(now)?;
        let statuses = field_map(statuses)?;
        let seen = array(seen)?;
        let ttl = self.settings.presence_ttl.as_millis() as Millis;
        let mut agents = Vec::new();
        for pair in seen.chunks(2) {
            let [id, score] = pair else { continue };
            let agent_id = text(id)?;
            let last_seen: Millis = text(score)?
                .parse::<f64>()
                .map(|s| s as Millis)
                .unwrap_or(0);
            let status: serde_json::Value = statuses
                .get(&agent_id)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            let reported = status["presence"]
                .as_str()
                .and_then(Presence::parse)
                .unwrap_or(Presence::Offline);
            agents.push(AgentStatus {
                presence: if now - last_seen > ttl {
                    Presence::Offline
                } else {
                    reported
                },
                partition: status["partition"].as_str().unwrap_or_default().to_owned(),
                teams: status["teams"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                agent_id,
                last_seen,
            });
        }
        Ok(agents)
    }
}

/// Partition ids become part of keys: only the characters of configuration ids are allowed, so no
/// id can name another slot's hash tag.
pub fn valid_partition(partition: &str) -> bool {
    !partition.is_empty()
        && partition.len() <= 64
        && partition.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

fn valid_stream_id(id: &str) -> bool {
    match id.split_once('-') {
        Some((ms, seq)) => {
            !ms.is_empty()
                && !seq.is_empty()
                && ms.bytes().all(|b| b.is_ascii_digit())
                && seq.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The cooperator of a partition: the partition itself, except for the platform's.
fn cooperator_of_partition(partition: &str) -> String {
    if partition == super::PLATFORM_PARTITION {
        String::new()
    } else {
        partition.to_owned()
    }
}

fn urgency_rank(urgency: Urgency) -> u8 {
    match urgency {
        Urgency::U1 => 1,
        Urgency::U2 => 2,
        Urgency::U3 => 3,
    }
}

fn urgency_from_rank(rank: &str) -> Option<Urgency> {
    match rank {
        "1" => Some(Urgency::U1),
        "2" => Some(Urgency::U2),
        "3" => Some(Urgency::U3),
        _ => None,
    }
}

fn store_error(e: RedisError, ticket_id: &str) -> StoreError {
    let detail = e.detail().unwrap_or_default().to_owned();
    match e.code() {
        Some("CR_NOT_FOUND") => StoreError::NotFound(ticket_id.to_owned()),
        Some("CR_NOT_HOLDER") => StoreError::NotHolder(ticket_id.to_owned()),
        Some("CR_WRONG_STATE") => {
            let mut words = detail.split_whitespace();
            let state = words.next().unwrap_or("UNKNOWN").to_owned();
            let action = match words.next() {
                Some("accept") => "accept",
                Some("complete") => "complete",
                Some("release") => "release",
                Some("transfer") => "transfer",
                Some("cancel") => "cancel",
                _ => "change",
            };
            StoreError::WrongState {
                ticket_id: ticket_id.to_owned(),
                state,
                action,
            }
        }
        _ if e.is_timeout() => StoreError::Timeout,
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn array(value: &Value) -> Result<&[Value], StoreError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(StoreError::Corrupt(format!(
            "expected an array, got {other:?}"
        ))),
    }
}

fn text(value: &Value) -> Result<String, StoreError> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone())
            .map_err(|_| StoreError::Corrupt("non-UTF-8 text".to_owned())),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Okay => Ok("OK".to_owned()),
        other => Err(StoreError::Corrupt(format!("expected text, got {other:?}"))),
    }
}

fn int(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(i) => Ok(*i),
        other => text(other)?
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("expected an integer, got {other:?}"))),
    }
}

fn redis_time(value: &Value) -> Result<Millis, StoreError> {
    let parts = array(value)?;
    let [secs, micros] = parts else {
        return Err(StoreError::Corrupt("TIME reply".to_owned()));
    };
    Ok(int(secs)? * 1000 + int(micros)? / 1000)
}

fn field_map(value: &Value) -> Result<FxHashMap<String, String>, StoreError> {
    match value {
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| Ok((text(k)?, text(v)?)))
            .collect(),
        other => array(other)?
            .chunks(2)
            .map(|pair| match pair {
                [k, v] => Ok((text(k)?, text(v)?)),
                _ => Err(StoreError::Corrupt("odd field list".to_owned())),
            })
            .collect(),
    }
}

fn parse_ticket(value: &Value) -> Result<Ticket, StoreError> {
    ticket_from_fields(&field_map(value)?)
}

fn parse_position(value: &Value) -> Result<Option<QueuePosition>, StoreError> {
    let items = array(value)?;
    let [position, interval] = items else {
        return Err(StoreError::Corrupt("position reply".to_owned()));
    };
    let position = int(position)?;
    if position <= 0 {
        return Ok(None);
    }
    let interval = int(interval)?;
    let interval = if interval < 0 {
        DEFAULT_CLAIM_INTERVAL_MS
    } else {
        interval as f64
    };
    Ok(Some(QueuePosition {
        position: position as u64,
        estimated_wait_seconds: estimate_wait_seconds(position as u64, interval),
    }))
}

fn ticket_from_fields(f: &FxHashMap<String, String>) -> Result<Ticket, StoreError> {
    let get = |name: &str| f.get(name).map(String::as_str).unwrap_or_default();
    let opt = |name: &str| Some(get(name)).filter(|v| !v.is_empty()).map(str::to_owned);
    let num = |name: &str| get(name).parse::<i64>().ok();
    let ticket_id = get("ticket_id").to_owned();
    let state = TicketState::parse(get("state")).ok_or_else(|| {
        StoreError::Corrupt(format!("ticket {ticket_id} has state '{}'", get("state")))
    })?;
    let urgency = urgency_from_rank(get("urgency")).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "ticket {ticket_id} has urgency '{}'",
            get("urgency")
        ))
    })?;
    Ok(Ticket {
        call_id: get("call_id").to_owned(),
        partition: get("partition").to_owned(),
        state,
        cooperator_id: opt("cooperator_id"),
        team_id: get("team_id").to_owned(),
        urgency,
        issue_type: get("issue_type").to_owned(),
        building_id: opt("building_id"),
        incident_id: opt("incident_id"),
        incident_calls: num("incident_calls").unwrap_or(1) as u32,
        agent_id: opt("agent_id"),
        lease_token: num("lease_token").unwrap_or(0) as u64,
        lease_expires_at: num("lease_expires_at"),
        attempts: num("attempts").unwrap_or(0) as u32,
        created_at: num("created_at").unwrap_or(0),
        enqueued_at: num("enqueued_at").unwrap_or(0),
        sla_due_at: num("sla_due_at").unwrap_or(0),
        claimed_at: num("claimed_at"),
        closed_at: num("closed_at"),
        resolution: opt("resolution"),
        escalation_team: get("escalation_team").to_owned(),
        escalated: get("escalated") == "1",
        transferred_from: opt("transferred_from"),
        moved_to: opt("moved_to"),
        details: get("details").to_owned(),
        ticket_id,
    })
}

fn parse_events(entries: &Value) -> Result<Vec<TicketEvent>, StoreError> {
    array(entries)?
        .iter()
        .map(|entry| {
            let parts = array(entry)?;
            let [id, fields] = parts else {
                return Err(StoreError::Corrupt("stream entry".to_owned()));
            };
            let f = field_map(fields)?;
            let get = |name: &str| f.get(name).cloned().unwrap_or_default();
            Ok(TicketEvent {
                event_id: text(id)?,
                kind: get("kind"),
                ticket_id: get("ticket_id"),
                team_id: get("team_id"),
                state: get("state"),
                urgency: urgency_from_rank(&get("urgency"))
                    .map(|u| u.as_str().to_owned())
                    .unwrap_or_default(),
                agent_id: Some(get("agent_id")).filter(|a| !a.is_empty()),
                at: get("at").parse().unwrap_or(0),
            })
        })
        .collect()
}
