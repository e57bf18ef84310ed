//! The production store: Redis, one Lua script per transition (one round trip, atomic, timed by
//! Redis's own `TIME`), scripts loaded by SHA and reloaded transparently when Redis has forgotten
//! them (after a restart). Which Redis, and how failovers are followed, is [`link`]'s: one URL,
//! the primary Sentinel names, or a Redis Cluster.
//!
//! **Key layout.** Every key of a partition starts with `<namespace>:{<partition>}:`, so the hash
//! tag `{<partition>}` puts all of a partition's keys in one Redis Cluster slot and every script
//! touches one slot. With `P` that prefix:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P t:<ticket>` | hash | the ticket: each field that changes as its own; the fields that never change packed, joined by the byte 255, into `shown` (what a desk shows, which feed entries carry as it is) and `kept` ([`reply::SHOWN_FIELDS`], [`reply::KEPT_FIELDS`]; tickets of older servers hold each as its own field); its history after the creation line (which readers make from the ticket's `created_at` and `created_in`) in its `log` field: one line per transition, each `<length in bytes>:<line>`; and for each hold that ended, `ended:<lease token>` = `<agent> <action>` (the holder's retry of that action is answered as done); `holds`, the count of its holds, whose fencing tokens it gives (1, 2, …) |
//! | `P h:<ticket>` | list | the history lines written before tickets had a log (read before the log's, kept for the retention) |
//! | `P call:<call id>` | string | the ticket created for a call (idempotency) |
//! | `P callers:<ticket>` | set | the calls of a building-wide incident's ticket, once a second one joins (each hang-up withdraws its own) |
//! | `P claim:<agent>:<claim id>` | string | the hold a claim id made, `<ticket> <lease token>`, until the lease's end (a retried claim finds its hold) |
//! | `P q:<team>` | sorted set | waiting tickets; score `urgency × 10¹³ + first enqueued (ms)` |
//! | `P leases` | sorted set | held tickets; score = lease expiry (ms) |
//! | `P fence` | counter | fencing tokens of tickets older servers wrote (which have no `holds`): the first claim of one takes its token here |
//! | `P inc:<incident>` | string | the open ticket of a building-wide incident |
//! | `P s:<team>` | hash | counts by state but QUEUED (the queue's size), and moves between counted states as `FROM>TO` counts (readers take each from the first state and add it to the second); claims, `QUEUED>RESERVED`, followed by the last claim's time and the interval between claims in ms (for wait estimates) |
//! | `P ev:<team>` | stream | the team's feed of transitions, capped: one `entry` field, the kind, team, time, state, urgency, holder and incident calls, then the ticket's `shown` field, joined by the byte 255 (entries of older servers: an `event` field joined by the unit separator, or a `desk` field and the first four named) |
//! | `P outbox` | sorted set | tickets being moved to another partition |
//! | `P moved:<ticket>` | string | the ticket a moved-in ticket came from (idempotency) |
//! | `<namespace>:{agents}:seen`, `…:status` | sorted set, hash | agent presence |
//! | `<namespace>:{leases}:<name>` | string | the instance holding a store-wide job (metrics) |
//!
//! Scripts build the keys they touch from the prefix in `ARGV[1]`; all of them carry the same hash
//! tag, which is what Redis Cluster requires of a script's keys. Key names live in [`keys`], reply
//! parsing in [`reply`], the move protocol in [`moves`], reads that are not transitions in [`reads`].
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
//!
//! **Connections.** `redis://` in clear text, or `rediss://` over TLS ([`RedisTls`]: the CA of
//! Redis's certificate, else the system's roots; a client certificate when Redis asks for one).
//! Reads that span partitions are one pipeline per partition ([`RedisStore::pipelines`]): one
//! round trip on one Redis, one per partition's node on a cluster.
//!
//! **Acknowledged means replicated, when asked.** With `wait_replicas`, every transition a client
//! is told of waits on a connection of its own until that many replicas have it (`WAIT`, after a
//! small write in its partition so that the wait covers everything before); fewer in time is
//! [`StoreError::Unconfirmed`].

mod clock;
mod keys;
pub mod link;
mod moves;
pub mod prelude;
mod reads;
mod reply;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Client, FromRedisValue, Script, Value};
use rustc_hash::FxHashMap;

use self::clock::{ClockOffset, local_ms};
pub use self::keys::valid_partition;
use self::keys::{Keys, PartitionKeys};
pub use self::link::RedisTarget;
use self::link::{Conn, Link, Primary};
use self::reply::{
    array, int, parse_claimed, parse_position, parse_ticket, position_from, store_error, text,
    text_in,
};
use super::ids::new_ticket_id;
use super::{
    AgentStatus, Created, Hold, Millis, NewTicket, NextClaim, QueuePosition, QueueStats,
    ReapReport, StateCounts, StoreError, StoreSettings, Ticket, TicketEvent, TicketStore,
    complete_then_claim,
};
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::urgency::Urgency;

/// A script as Redis runs it (with the parts of the prelude it uses), by its file's name.
fn script(name: &str) -> Script {
    let text = prelude::script_text(name)
        .unwrap_or_else(|| unreachable!("the script '{name}' is listed in prelude::SCRIPTS"));
    Script::new(&text)
}

/// A script and whether the client is told of what it did: such a step waits for replicas when
/// the store is asked to (`wait_replicas`).
struct Step {
    script: Script,
    acknowledged: bool,
}

fn step(name: &str, acknowledged: bool) -> Step {
    Step {
        script: script(name),
        acknowledged,
    }
}

/// The scripts, each named after the transition (or read) it performs.
struct Scripts {
    create: Step,
    claim: Step,
    accept: Step,
    complete: Step,
    complete_claim: Step,
    release: Step,
    transfer: Step,
    cancel: Step,
    reap: Step,
    move_out: Step,
    move_in: Step,
    move_done: Step,
    position: Step,
    list: Step,
    held: Step,
    heartbeat: Script,
    lease: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            create: step("create", true),
            claim: step("claim", true),
            accept: step("accept", true),
            complete: step("complete", true),
            complete_claim: step("complete_claim", true),
            release: step("release", true),
            transfer: step("transfer", true),
            cancel: step("cancel", true),
            // The reaper's transitions are told to no client.
            reap: step("reap", false),
            move_out: step("move_out", true),
            move_in: step("move_in", true),
            move_done: step("move_done", true),
            position: step("position", false),
            list: step("list", false),
            held: step("held", false),
            heartbeat: script("heartbeat"),
            lease: script("lease"),
        }
    }
}

/// The Redis store. Cheap to clone: clones share the link to Redis.
#[derive(Clone)]
pub struct RedisStore {
    link: Arc<Link>,
    settings: Arc<StoreSettings>,
    keys: Arc<Keys>,
    scripts: Arc<Scripts>,
    /// Redis's clock over ours, for the cut-offs of creations.
    clock: Arc<ClockOffset>,
}

/// Certificates for a `rediss://` URL, as PEM: the CA that signed Redis's certificate (the system's
/// roots when `None`), and the client's certificate and key when Redis authenticates clients.
#[derive(Debug, Clone, Default)]
pub struct RedisTls {
    pub ca: Option<Vec<u8>>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisTls {
    fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client.is_none()
    }

    /// A client for `url` with these certificates.
    fn client(&self, url: &str) -> Result<Client, StoreError> {
        let invalid = |e: redis::RedisError| StoreError::Invalid(format!("Redis URL: {e}"));
        if self.is_empty() {
            return Client::open(url).map_err(invalid);
        }
        if !url.starts_with("rediss://") {
            return Err(StoreError::Invalid(
                "Redis certificates are given but the Redis URL is not rediss:// (TLS)".to_owned(),
            ));
        }
        let certificates = redis::TlsCertificates {
            client_tls: self.client.clone().map(|(client_cert, client_key)| {
                redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }
            }),
            root_cert: self.ca.clone(),
        };
        Client::build_with_tls(url, certificates).map_err(invalid)
    }
}

/// Values, and bytes, an [`evalsha`] command is given room for at first.
const EVALSHA_VALUES: usize = 24;
const EVALSHA_BYTES: usize = 1536;

/// `EVALSHA` of a script with its keys and arguments, all in one buffer.
fn evalsha(script: &Script, keys: &[String], args: impl redis::ToRedisArgs) -> redis::Cmd {
    // Room for a routed call's command from the start (its 24 values, about 1 KiB with the
    // decision's details), instead of growing the buffers value after value.
    let mut command = redis::Cmd::with_capacity(EVALSHA_VALUES, EVALSHA_BYTES);
    command
        .arg("EVALSHA")
        .arg(script.get_hash())
        .arg(keys.len())
        .arg(keys)
        .arg(args);
    command
}

/// Runs an [`evalsha`] command; a Redis that does not know the script yet (restarted, failed
/// over) is given it, and asked again.
async fn eval<T: FromRedisValue>(
    script: &Script,
    evalsha: &redis::Cmd,
    conn: &mut Conn,
) -> redis::RedisResult<T> {
    match evalsha.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.load_async(conn).await?;
            evalsha.query_async(conn).await
        }
        answered => answered,
    }
}

/// The ticket `create` wrote, from the request and the creation time it replied with: what the
/// script stored, without reading it back (an empty optional field is stored as none).
fn fresh_ticket(ticket_id: String, new: NewTicket, created_at: Millis) -> Ticket {
    let some = |value: Option<String>| value.filter(|v| !v.is_empty());
    let ticket = Ticket::queued(ticket_id, new, created_at);
    Ticket {
        cooperator_id: some(ticket.cooperator_id),
        building_id: some(ticket.building_id),
        address: some(ticket.address),
        incident_id: some(ticket.incident_id),
        ..ticket
    }
}

/// How many expired leases one reaper pass handles per partition.
const REAP_BATCH: u32 = 500;

impl RedisStore {
    /// Connects lazily: the store is created even when Redis is down, and every operation fails
    /// with `Unavailable` until it answers.
    pub fn connect(url: &str, settings: StoreSettings) -> Result<RedisStore, StoreError> {
        RedisStore::connect_with(url, &RedisTls::default(), settings)
    }

    /// [`RedisStore::connect`] with certificates for a `rediss://` URL.
    pub fn connect_with(
        url: &str,
        tls: &RedisTls,
        settings: StoreSettings,
    ) -> Result<RedisStore, StoreError> {
        RedisStore::connect_to(RedisTarget::Url(url.to_owned()), tls, settings)
    }

    /// A store over the Redis `target` names: one URL, or the primary Sentinel names.
    pub fn connect_to(
        target: RedisTarget,
        tls: &RedisTls,
        settings: StoreSettings,
    ) -> Result<RedisStore, StoreError> {
        let link = Link::new(target, tls.clone(), settings.operation_timeout)?;
        Ok(RedisStore {
            link: Arc::new(link),
            keys: Arc::new(Keys::new(&settings.namespace)),
            settings: Arc::new(settings),
            scripts: Arc::new(Scripts::new()),
            clock: Arc::default(),
        })
    }

    /// Runs `call` on the primary's shared connection within the operation timeout. A failure a
    /// failover may explain makes the link ask the sentinels again, in the background; the
    /// operation is not retried (it may have been applied).
    async fn on_primary<T, F, Fut>(&self, ticket_id: &str, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let primary = self.link.primary().await?;
        let outcome =
            tokio::time::timeout(self.settings.operation_timeout, call(primary.conn.clone())).await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.failed(primary, Some(e), ticket_id)),
            Err(_) => Err(self.failed(primary, None, ticket_id)),
        }
    }

    /// An operation on `used` failed (`None`: it timed out). A failure a failover may explain
    /// makes the link look for the primary again; the error as the store reports it.
    fn failed(
        &self,
        used: Arc<Primary>,
        error: Option<redis::RedisError>,
        ticket_id: &str,
    ) -> StoreError {
        match error {
            Some(e) => {
                if link::failover_may_explain(&e) {
                    self.check_primary(used);
                }
                store_error(e, ticket_id)
            }
            None => {
                self.check_primary(used);
                StoreError::Timeout
            }
        }
    }

    /// Asks the sentinels whether the primary moved, without holding up the caller.
    fn check_primary(&self, used: Arc<Primary>) {
        let link = self.link.clone();
        tokio::spawn(async move { link.recheck(&used).await });
    }

    /// Runs a script in a partition with the common arguments (prefix, feed length, retention)
    /// first, bounded by the operation timeout. An acknowledged step waits for replicas when the
    /// store is asked to.
    async fn run<A: redis::ToRedisArgs + Sync>(
        &self,
        step: &Step,
        at: &PartitionKeys,
        keys: &[String],
        args: &[A],
        ticket_id: &str,
    ) -> Result<Value, StoreError> {
        let common = (
            &at.prefix,
            self.settings.feed_length,
            self.settings.retention.as_millis() as u64,
        );
        let evalsha = evalsha(&step.script, keys, (common, args));
        if step.acknowledged && self.settings.wait_replicas > 0 {
            return self
                .run_replicated(&step.script, &evalsha, at, ticket_id)
                .await;
        }
        self.on_primary(ticket_id, |mut conn| async move {
            eval(&step.script, &evalsha, &mut conn).await
        })
        .await
    }

    /// Runs a step on a connection of its own, then waits until `wait_replicas` replicas have
    /// everything written before (`WAIT` counts a connection's own writes: a small write in the
    /// step's partition makes the wait cover the step, and what an earlier step wrote on another
    /// connection — a retry answered with the ticket created before). Fewer replicas within
    /// `replica_wait`: [`StoreError::Unconfirmed`].
    async fn run_replicated(
        &self,
        script: &Script,
        evalsha: &redis::Cmd,
        at: &PartitionKeys,
        ticket_id: &str,
    ) -> Result<Value, StoreError> {
        let primary = self.link.primary().await?;
        let mut conn = self.own_connection(&primary, &primary.dedicated).await?;
        let asked = self.settings.wait_replicas;
        let mut wait = redis::pipe();
        wait.cmd("INCR").arg(at.sync()).ignore();
        wait.cmd("WAIT")
            .arg(asked)
            .arg(self.settings.replica_wait.as_millis().max(1) as u64);
        let sync = at.sync();
        let steps = async {
            let value: Value = eval(script, evalsha, &mut conn).await?;
            let confirmed: u32 = match &mut conn {
                // A bare WAIT would go to every primary: it goes to the partition's node.
                Conn::Cluster(cluster) => {
                    redis::cmd("INCR")
                        .arg(&sync)
                        .query_async::<i64>(&mut *cluster)
                        .await?;
                    let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                        Route::with_key(&sync, SlotAddr::Master),
                    ));
                    let mut command = redis::cmd("WAIT");
                    command
                        .arg(asked)
                        .arg(self.settings.replica_wait.as_millis().max(1) as u64);
                    let reply = cluster.route_command(command, node).await?;
                    u32::from_redis_value(reply).map_err(redis::RedisError::from)?
                }
                _ => wait.query_async::<(u32,)>(&mut conn).await?.0,
            };
            Ok::<_, redis::RedisError>((value, confirmed))
        };
        let bound = self.settings.operation_timeout + self.settings.replica_wait;
        match tokio::time::timeout(bound, steps).await {
            Ok(Ok((value, confirmed))) => {
                reads::give_back(&primary.dedicated, conn);
                if confirmed >= asked {
                    Ok(value)
                } else {
                    Err(StoreError::Unconfirmed { asked, confirmed })
                }
            }
            Ok(Err(e)) => Err(self.failed(primary, Some(e), ticket_id)),
            Err(_) => Err(self.failed(primary, None, ticket_id)),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.on_primary(
            "",
            |mut conn| async move { cmd.query_async(&mut conn).await },
        )
        .await
    }

    async fn pipeline(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>, StoreError> {
        self.on_primary(
            "",
            |mut conn| async move { pipe.query_async(&mut conn).await },
        )
        .await
    }

    /// Groups of commands, each group's keys in one slot (one partition, or none): one round trip
    /// on one Redis; on a cluster, one per group, since a pipeline whose keys span slots would
    /// fail there. The replies, group by group.
    async fn pipelines(&self, groups: &[redis::Pipeline]) -> Result<Vec<Vec<Value>>, StoreError> {
        if self.link.primary().await?.is_cluster() {
            let mut replies = Vec::with_capacity(groups.len());
            for group in groups {
                replies.push(if group.is_empty() {
                    Vec::new()
                } else {
                    self.pipeline(group).await?
                });
            }
            return Ok(replies);
        }
        let mut all = redis::pipe();
        for group in groups {
            for cmd in group.cmd_iter() {
                all.add_command(cmd.clone());
            }
        }
        let mut replies = self.pipeline(&all).await?.into_iter();
        Ok(groups
            .iter()
            .map(|group| replies.by_ref().take(group.len()).collect())
            .collect())
    }

    /// Reads Redis's `TIME` and records its offset over our clock (the health check does, every
    /// second).
    async fn measure_clock(&self) -> Result<(), StoreError> {
        let before = local_ms();
        let time: Value = self.query(&redis::cmd("TIME")).await?;
        let after = local_ms();
        self.clock.record(before, reply::redis_time(&time)?, after);
        Ok(())
    }

    /// A transition by the holder of a ticket: the ticket id and the hold, then `extra` arguments.
    async fn held_step<const N: usize>(
        &self,
        script: &Step,
        ticket_id: &str,
        hold: &Hold,
        extra: [String; N],
    ) -> Result<Ticket, StoreError> {
        let at = self.keys.of_ticket(ticket_id)?;
        let mut args = vec![
            ticket_id.to_owned(),
            hold.agent_id.clone(),
            hold.lease_token.to_string(),
        ];
        args.extend(extra);
        let reply = self
            .run(script, &at, &[at.ticket(ticket_id)], &args, ticket_id)
            .await?;
        parse_ticket(&reply)
    }

    /// Claims in one partition, over the agent's queues there.
    async fn claim_in(
        &self,
        at: &PartitionKeys,
        teams: &[&str],
        agent_id: &str,
        lease: Duration,
        claim_id: Option<&str>,
    ) -> Result<Option<Ticket>, StoreError> {
        let keys: Vec<String> = teams.iter().map(|t| at.queue(t)).collect();
        let args = [
            agent_id.to_owned(),
            lease.as_millis().to_string(),
            claim_id.unwrap_or_default().to_owned(),
        ];
        let reply = self.run(&self.scripts.claim, at, &keys, &args, "").await?;
        parse_claimed(&reply)
    }

    /// Completes a held ticket, then claims from the agent's queues in the ticket's partition
    /// (`at`), in one script.
    async fn complete_claim_in(
        &self,
        at: &PartitionKeys,
        ticket_id: &str,
        hold: &Hold,
        resolution: &str,
        teams: &[&str],
        next: &NextClaim<'_>,
    ) -> Result<(Ticket, Option<Ticket>), StoreError> {
        let mut keys = Vec::with_capacity(teams.len() + 1);
        keys.push(at.ticket(ticket_id));
        keys.extend(teams.iter().map(|t| at.queue(t)));
        let args = [
            ticket_id,
            &hold.agent_id,
            &hold.lease_token.to_string(),
            resolution,
            &next.lease.as_millis().to_string(),
            next.claim_id.unwrap_or_default(),
        ];
        let reply = self
            .run(&self.scripts.complete_claim, at, &keys, &args, ticket_id)
            .await?;
        let [completed, claimed] = array(&reply)? else {
            return Err(StoreError::Corrupt("complete_claim reply".to_owned()));
        };
        Ok((parse_ticket(completed)?, parse_claimed(claimed)?))
    }

    /// The queues by partition: each partition's keys and the teams queued there.
    fn by_partition<'a>(
        &self,
        queues: &'a [QueueRef],
    ) -> Result<BTreeMap<&'a Partition, (PartitionKeys, Vec<&'a str>)>, StoreError> {
        let mut by_partition: BTreeMap<&Partition, (PartitionKeys, Vec<&str>)> = BTreeMap::new();
        for q in queues {
            if let Some((_, teams)) = by_partition.get_mut(&q.partition) {
                teams.push(&q.team);
            } else {
                let at = self.keys.of_queue(q)?;
                by_partition.insert(&q.partition, (at, vec![q.team.as_str()]));
            }
        }
        Ok(by_partition)
    }

    /// The order in which a claim across partitions tries them: first the partition where a
    /// retried claim's id made a hold, then by their best queue head.
    async fn claim_order<'a>(
        &self,
        by_partition: &'a BTreeMap<&'a Partition, (PartitionKeys, Vec<&'a str>)>,
        agent_id: &str,
        claim_id: Option<&str>,
    ) -> Result<Vec<&'a Partition>, StoreError> {
        let mut order = match claim_id {
            Some(claim) => self.claimed_in(by_partition, agent_id, claim).await?,
            None => Vec::new(),
        };
        order.extend(self.rank_partitions(by_partition).await?);
        Ok(order)
    }

    /// The partitions where a claim id already made a hold (one round trip of reads).
    async fn claimed_in<'a>(
        &self,
        by_partition: &'a BTreeMap<&'a Partition, (PartitionKeys, Vec<&'a str>)>,
        agent_id: &str,
        claim_id: &str,
    ) -> Result<Vec<&'a Partition>, StoreError> {
        let groups: Vec<redis::Pipeline> = by_partition
            .values()
            .map(|(at, _)| {
                let mut pipe = redis::pipe();
                pipe.cmd("EXISTS").arg(at.claim(agent_id, claim_id));
                pipe
            })
            .collect();
        let found = self.pipelines(&groups).await?;
        let mut partitions = Vec::new();
        for (partition, exists) in by_partition.keys().zip(&found) {
            if exists.first().map(int).transpose()? == Some(1) {
                partitions.push(*partition);
            }
        }
        Ok(partitions)
    }

    /// The partition whose best queue head comes first, best first: one pipelined round trip of
    /// reads over every queue (a hint for the order of claims, never needed for their safety).
    async fn rank_partitions<'a>(
        &self,
        by_partition: &'a BTreeMap<&'a Partition, (PartitionKeys, Vec<&'a str>)>,
    ) -> Result<Vec<&'a Partition>, StoreError> {
        let mut groups = Vec::new();
        let mut order = Vec::new();
        for (partition, (at, teams)) in by_partition {
            let mut pipe = redis::pipe();
            for team in teams {
                pipe.cmd("ZRANGE")
                    .arg(at.queue(team))
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES");
                order.push(*partition);
            }
            groups.push(pipe);
        }
        let heads: Vec<Value> = self.pipelines(&groups).await?.concat();
        let mut best: FxHashMap<&Partition, f64> = FxHashMap::default();
        for (partition, head) in order.iter().zip(&heads) {
            if let Some(score) = array(head)?.get(1).map(text).transpose()? {
                let score: f64 = score
                    .parse()
                    .map_err(|_| StoreError::Corrupt("queue score".to_owned()))?;
                let entry = best.entry(partition).or_insert(f64::MAX);
                *entry = entry.min(score);
            }
        }
        let mut ranked: Vec<(&Partition, f64)> = best.into_iter().collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
        Ok(ranked.into_iter().map(|(p, _)| p).collect())
    }
}

#[async_trait]
impl TicketStore for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.measure_clock().await
    }

    async fn create(&self, new: NewTicket) -> Result<Created, StoreError> {
        let started = local_ms();
        // The store's own timeout obeys the caller's rule: past it, nothing may be created.
        let within = new.within.min(self.settings.operation_timeout);
        if !self.clock.is_measured() {
            self.measure_clock().await?;
        }
        let cutoff_ms = self.clock.cutoff(started, within);
        let at = self.keys.partition(&new.partition)?;
        let ticket_id = new_ticket_id(new.partition.as_str())?;
        let call_key = at.call(&new.call_id);
        let incident_key = match &new.incident_id {
            Some(incident) => at.incident(incident),
            None => call_key.clone(),
        };
        let keys = [
            call_key,
            at.queue(&new.team_id),
            at.ticket(&ticket_id),
            incident_key,
        ];
        // Numbers as text without the formatting machinery (itoa).
        let mut digits = [
            itoa::Buffer::new(),
            itoa::Buffer::new(),
            itoa::Buffer::new(),
        ];
        let [urgency, sla_due_at, cutoff] = &mut digits;
        let (urgency, sla_due_at, cutoff) = (
            urgency.format(new.urgency.rank()),
            sla_due_at.format(new.sla_due_at),
            cutoff.format(cutoff_ms),
        );
        // The packed fields ([`reply::PACKED`]) joined here, where the script would join them
        // from their parts: the shown field before and after the creation time the script
        // writes between, and the kept field whole.
        let shown_before = [
            ticket_id.as_str(),
            new.cooperator_id.as_deref().unwrap_or_default(),
            &new.issue_type,
            new.building_id.as_deref().unwrap_or_default(),
            "",
        ]
        .map(str::as_bytes)
        .join(&0xFF);
        let shown_after = ["", sla_due_at, new.address.as_deref().unwrap_or_default()]
            .map(str::as_bytes)
            .join(&0xFF);
        let kept = [
            new.call_id.as_str(),
            new.incident_id.as_deref().unwrap_or_default(),
            &new.escalation_team,
            new.partition.as_str(),
            &new.team_id,
            &new.details,
        ]
        .map(str::as_bytes)
        .join(&0xFF);
        let args = [
            ticket_id.as_bytes(),
            new.call_id.as_bytes(),
            new.team_id.as_bytes(),
            urgency.as_bytes(),
            new.incident_id.as_deref().unwrap_or_default().as_bytes(),
            cutoff.as_bytes(),
            &shown_before,
            &shown_after,
            &kept,
        ];
        let reply = self
            .run(&self.scripts.create, &at, &keys, &args, &ticket_id)
            .await?;
        if let Value::BulkString(_) | Value::SimpleString(_) = reply {
            let reply = text_in(&reply)?;
            let numbers: Vec<i64> = reply
                .split(' ')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| StoreError::Corrupt(format!("create reply '{reply}'")))?;
            let [position, interval, created_at] = numbers[..] else {
                return Err(StoreError::Corrupt(format!("create reply '{reply}'")));
            };
            return Ok(Created {
                ticket: fresh_ticket(ticket_id, new, created_at),
                duplicate: false,
                joined_incident: false,
                position: position_from(position, interval),
            });
        }
        let [duplicate, incident, position, ticket] = array(&reply)? else {
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
        claim_id: Option<&str>,
    ) -> Result<Option<Ticket>, StoreError> {
        let by_partition = self.by_partition(queues)?;
        if by_partition.len() <= 1 {
            return match by_partition.values().next() {
                Some((at, teams)) => self.claim_in(at, teams, agent_id, lease, claim_id).await,
                None => Ok(None),
            };
        }
        // If another agent empties the best partition's queues meanwhile, the next one is tried.
        let order = self.claim_order(&by_partition, agent_id, claim_id).await?;
        for partition in order {
            let (at, teams) = &by_partition[partition];
            if let Some(ticket) = self.claim_in(at, teams, agent_id, lease, claim_id).await? {
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

    /// One script when the best ticket waits in the ticket's own partition (always so when all
    /// the queues are there; across partitions, a peek at the queues' heads tells, as
    /// `claim_next` ranks them); else the completion, then the claim.
    async fn complete_and_claim(
        &self,
        ticket_id: &str,
        hold: &Hold,
        resolution: &str,
        next: &NextClaim<'_>,
    ) -> Result<(Ticket, Option<Ticket>), StoreError> {
        let at = self.keys.of_ticket(ticket_id)?;
        let by_partition = self.by_partition(next.queues)?;
        let Some((_, teams)) = by_partition.get(&at.partition) else {
            return complete_then_claim(self, ticket_id, hold, resolution, next).await;
        };
        if by_partition.len() > 1 {
            let order = self
                .claim_order(&by_partition, &hold.agent_id, next.claim_id)
                .await?;
            if order.first() != Some(&&at.partition) {
                return complete_then_claim(self, ticket_id, hold, resolution, next).await;
            }
        }
        let (completed, claimed) = self
            .complete_claim_in(&at, ticket_id, hold, resolution, teams, next)
            .await?;
        if claimed.is_some() || by_partition.len() == 1 {
            return Ok((completed, claimed));
        }
        // Another agent emptied the ticket's partition's queues meanwhile: the others in turn.
        let claimed = self
            .claim_next(&hold.agent_id, next.queues, next.lease, next.claim_id)
            .await?;
        Ok((completed, claimed))
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
        let at = self.keys.of_ticket(ticket_id)?;
        let rank = urgency.map(|u| u.rank().to_string()).unwrap_or_default();
        if to.partition == at.partition {
            let args = [to.team.clone(), rank];
            return self
                .held_step(&self.scripts.transfer, ticket_id, hold, args)
                .await;
        }
        self.move_to(&at, ticket_id, hold, to, rank).await
    }

    async fn cancel(&self, ticket_id: &str, call_id: Option<&str>) -> Result<Ticket, StoreError> {
        let at = self.keys.of_ticket(ticket_id)?;
        let keys = [at.ticket(ticket_id)];
        let args = [ticket_id.to_owned(), call_id.unwrap_or_default().to_owned()];
        let reply = self
            .run(&self.scripts.cancel, &at, &keys, &args, ticket_id)
            .await?;
        parse_ticket(&reply)
    }

    async fn get(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError> {
        self.get_ticket(ticket_id).await
    }

    async fn history(&self, ticket_id: &str) -> Result<Vec<String>, StoreError> {
        self.ticket_history(ticket_id).await
    }

    async fn list_queued(&self, queue: &QueueRef, limit: usize) -> Result<Vec<Ticket>, StoreError> {
        self.list(queue, limit).await
    }

    async fn held_by(
        &self,
        partition: &Partition,
        agent_id: &str,
    ) -> Result<Vec<Ticket>, StoreError> {
        let at = self.keys.partition(partition)?;
        let reply = self
            .run(
                &self.scripts.held,
                &at,
                &[at.leases()],
                &[agent_id.to_owned()],
                "",
            )
            .await?;
        array(&reply)?.iter().map(parse_ticket).collect()
    }

    async fn position(&self, ticket_id: &str) -> Result<Option<QueuePosition>, StoreError> {
        self.ticket_position(ticket_id).await
    }

    async fn queue_stats(
        &self,
        queues: &[QueueRef],
    ) -> Result<(Vec<QueueStats>, Vec<(QueueRef, StateCounts)>), StoreError> {
        self.stats(queues).await
    }

    async fn reap(&self, partition: &Partition) -> Result<ReapReport, StoreError> {
        let at = self.keys.partition(partition)?;
        let args = [
            self.settings.max_attempts.to_string(),
            REAP_BATCH.to_string(),
        ];
        let reply = self
            .run(&self.scripts.reap, &at, &[at.leases()], &args, "")
            .await?;
        let [expired, escalated, stuck] = array(&reply)? else {
            return Err(StoreError::Corrupt("reap reply".to_owned()));
        };
        let mut report = ReapReport {
            expired: int(expired)? as u64,
            escalated: int(escalated)? as u64,
            moves_finished: 0,
        };
        for id in array(stuck)? {
            if self.finish_stuck_move(&text(id)?).await? {
                report.moves_finished += 1;
            }
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
        self.feed(queue, after, limit, wait).await
    }

    async fn feed_tail(&self, queue: &QueueRef) -> Result<String, StoreError> {
        let at = self.keys.of_queue(queue)?;
        let last: Value = self
            .query(
                redis::cmd("XREVRANGE")
                    .arg(at.feed(&queue.team))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        Ok(reply::parse_events(&last)?
            .pop()
            .map_or_else(|| "0-0".to_owned(), |e| e.event_id))
    }

    async fn read_feeds(
        &self,
        partition: &Partition,
        feeds: &[(String, String)],
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        self.partition_feeds(partition, feeds, limit, wait).await
    }

    async fn heartbeat(&self, agent: &AgentStatus) -> Result<(), StoreError> {
        self.record_presence(agent).await
    }

    async fn agents(&self) -> Result<Vec<AgentStatus>, StoreError> {
        self.presence().await
    }

    fn primary_address(&self) -> Option<String> {
        self.link.address()
    }

    fn failovers(&self) -> u64 {
        self.link.failovers()
    }

    async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.take_lease(name, holder, ttl).await
    }

    async fn move_backlog(&self, partitions: &[Partition]) -> Result<Vec<u64>, StoreError> {
        self.outboxes(partitions).await
    }

    async fn waiting_between(
        &self,
        ranges: &[(QueueRef, Urgency, Millis, Millis)],
    ) -> Result<Vec<u64>, StoreError> {
        self.entered_between(ranges).await
    }
}
