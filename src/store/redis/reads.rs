//! Reads that change no ticket: a ticket and its history, a queue's waiting tickets and a ticket's
//! place, queue statistics (one pipelined round trip over every queue), team feeds (with blocking
//! waits on connections of their own) and agent presence.

use std::sync::Mutex;
use std::time::Duration;

use redis::Value;
use rustc_hash::FxHashMap;

use super::keys::valid_stream_id;
use super::link::{Conn, Primary};
use super::reply::{
    array, field_map, history, insert_ticket_field, int, parse_events, parse_position,
    parse_ticket, redis_time, store_error, text, ticket_from_fields, ticket_map,
};
use super::{RedisStore, eval, evalsha};
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::urgency::Urgency;
use crate::store::lifecycle::TicketState;
use crate::store::{
    AgentStatus, Millis, Presence, QueuePosition, QueueStats, StateCounts, StoreError, Ticket,
    TicketEvent, queue_score,
};

/// Idle connections kept for reuse, per pool.
const POOL: usize = 64;

/// Replies per queue in a statistics pipeline: count and head per urgency, then the counts hash.
const STATS_REPLIES: usize = 2 * Urgency::ALL.len() + 1;

impl RedisStore {
    /// A ticket; an id that names no valid partition is a ticket that does not exist.
    pub(super) async fn get_ticket(&self, ticket_id: &str) -> Result<Option<Ticket>, StoreError> {
        let Ok(at) = self.keys.of_ticket(ticket_id) else {
            return Ok(None);
        };
        let value: Value = self
            .query(redis::cmd("HGETALL").arg(at.ticket(ticket_id)))
            .await?;
        let fields = ticket_map(&value)?;
        if fields.is_empty() {
            return Ok(None);
        }
        ticket_from_fields(&fields).map(Some)
    }

    /// A ticket's history: the creation line made from the ticket, then the lines written: in a
    /// list (by versions before the ticket's log), then in its log.
    pub(super) async fn ticket_history(&self, ticket_id: &str) -> Result<Vec<String>, StoreError> {
        let at = self.keys.of_ticket(ticket_id)?;
        const READ: [&str; 5] = ["shown", "kept", "created_at", "created_in", "log"];
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(at.ticket(ticket_id)).arg(&READ[..]);
        pipe.cmd("LRANGE").arg(at.history(ticket_id)).arg(0).arg(-1);
        let replies = self.pipelines(&[pipe]).await?.concat();
        let [creation, written] = replies.as_slice() else {
            return Err(StoreError::Corrupt("history reply".to_owned()));
        };
        let mut fields = FxHashMap::default();
        for (name, value) in READ.iter().zip(array(creation)?) {
            insert_ticket_field(&mut fields, name, value)?;
        }
        let field = |name: &str| fields.get(name).copied();
        let listed = array(written)?
            .iter()
            .map(text)
            .collect::<Result<Vec<_>, _>>()?;
        history(
            field("created_at"),
            field("created_in"),
            listed,
            field("log"),
        )
    }

    pub(super) async fn list(
        &self,
        queue: &QueueRef,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let at = self.keys.of_queue(queue)?;
        let reply = self
            .run(
                &self.scripts.list,
                &at,
                &[at.queue(&queue.team)],
                &[limit.max(1).to_string()],
                "",
            )
            .await?;
        array(&reply)?.iter().map(parse_ticket).collect()
    }

    pub(super) async fn ticket_position(
        &self,
        ticket_id: &str,
    ) -> Result<Option<QueuePosition>, StoreError> {
        let at = self.keys.of_ticket(ticket_id)?;
        let reply = self
            .run(
                &self.scripts.position,
                &at,
                &[at.ticket(ticket_id)],
                &[ticket_id.to_owned()],
                ticket_id,
            )
            .await?;
        parse_position(&reply)
    }

    /// Depth and oldest wait per queue and urgency, and counts by state: one pipeline, timed by
    /// Redis's clock.
    pub(super) async fn stats(
        &self,
        queues: &[QueueRef],
    ) -> Result<(Vec<QueueStats>, Vec<(QueueRef, StateCounts)>), StoreError> {
        let (mut groups, places) = by_partition(queues.iter().map(|q| {
            let at = self.keys.of_queue(q)?;
            let key = at.queue(&q.team);
            let mut cmds = Vec::with_capacity(STATS_REPLIES);
            for urgency in Urgency::ALL {
                let low = f64::from(urgency.rank()) * 1e13;
                let high = format!("({}", low + 1e13);
                let mut count = redis::cmd("ZCOUNT");
                count.arg(&key).arg(low).arg(&high);
                let mut head = redis::cmd("ZRANGEBYSCORE");
                head.arg(&key)
                    .arg(low)
                    .arg(&high)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(1);
                cmds.extend([count, head]);
            }
            let mut counts = redis::cmd("HGETALL");
            counts.arg(at.stats(&q.team));
            cmds.push(counts);
            Ok((q.partition.clone(), cmds))
        }))?;
        let mut time = redis::pipe();
        time.cmd("TIME");
        groups.push(time);
        let replies = self.pipelines(&groups).await?;
        let now = redis_time(
            replies
                .last()
                .and_then(|r| r.first())
                .ok_or_else(|| StoreError::Corrupt("TIME".to_owned()))?,
        )?;
        let per_queue = placed(&replies, &places, STATS_REPLIES)?;
        let mut stats = Vec::new();
        let mut counts = Vec::new();
        for (q, chunk) in queues.iter().zip(&per_queue) {
            // Waiting tickets are the queue itself; the counts hash holds the other states.
            let mut queued = 0;
            for (i, urgency) in Urgency::ALL.into_iter().enumerate() {
                let base = f64::from(urgency.rank()) * 1e13;
                let oldest = array(&chunk[2 * i + 1])?
                    .get(1)
                    .map(text)
                    .transpose()?
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(|score| now - (score - base) as Millis);
                let depth = int(&chunk[2 * i])? as u64;
                queued += depth;
                stats.push(QueueStats {
                    queue: q.clone(),
                    urgency,
                    depth,
                    oldest_wait_ms: oldest,
                });
            }
            let counted = state_counts(&field_map(&chunk[STATS_REPLIES - 1])?);
            let n = |state: TicketState| match state {
                TicketState::Queued => queued,
                _ => counted.get(state.as_str()).copied().unwrap_or(0).max(0) as u64,
            };
            counts.push((q.clone(), StateCounts::from_fn(n)));
        }
        Ok((stats, counts))
    }

    /// Events of a team's feed after `after`; when there are none and `wait` is given, one blocking
    /// read on a connection of its own waits for the next.
    pub(super) async fn feed(
        &self,
        queue: &QueueRef,
        after: Option<&str>,
        limit: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        let at = self.keys.of_queue(queue)?;
        if let Some(after) = after
            && !valid_stream_id(after)
        {
            return Err(StoreError::Invalid(format!("feed position '{after}'")));
        }
        let key = at.feed(&queue.team);
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
        self.blocking_read(&[(key, after.unwrap_or("0-0").to_owned())], limit, wait)
            .await
    }

    /// Events of several feeds of a partition, each after its position, in one blocking read.
    pub(super) async fn partition_feeds(
        &self,
        partition: &Partition,
        feeds: &[(String, String)],
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        let at = self.keys.partition(partition)?;
        let streams = feeds
            .iter()
            .map(|(team, after)| {
                if valid_stream_id(after) {
                    Ok((at.feed(team), after.clone()))
                } else {
                    Err(StoreError::Invalid(format!("feed position '{after}'")))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.blocking_read(&streams, limit.clamp(1, 1000), wait)
            .await
    }

    /// One `XREAD BLOCK` over streams, each after its id. A blocking read holds its connection: it
    /// gets its own, never the shared one. The client's default response timeout (500 ms) would
    /// cut the wait short, so the bound is ours.
    async fn blocking_read(
        &self,
        streams: &[(String, String)],
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        let primary = self.link.primary().await?;
        let mut conn = self.own_connection(&primary, &primary.blocking).await?;
        let mut xread = redis::cmd("XREAD");
        xread
            .arg("COUNT")
            .arg(limit)
            .arg("BLOCK")
            .arg(wait.as_millis().max(1) as u64)
            .arg("STREAMS");
        for (key, _) in streams {
            xread.arg(key);
        }
        for (_, after) in streams {
            xread.arg(after);
        }
        let read = xread.query_async::<Value>(&mut conn);
        let reply = match tokio::time::timeout(wait + self.settings.operation_timeout, read).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(self.failed(primary, Some(e), "")),
            Err(_) => return Err(self.failed(primary, None, "")),
        };
        give_back(&primary.blocking, conn);
        let mut events = Vec::new();
        for stream in array(&reply)? {
            events.extend(parse_events(array(stream)?.get(1).unwrap_or(&Value::Nil))?);
        }
        Ok(events)
    }

    /// A connection of the primary's own for one operation at a time: an idle one from `pool`,
    /// or a new one without the client's response timeout (the caller bounds the wait).
    pub(super) async fn own_connection(
        &self,
        primary: &Primary,
        pool: &Mutex<Vec<Conn>>,
    ) -> Result<Conn, StoreError> {
        let idle = pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        if let Some(conn) = idle {
            return Ok(conn);
        }
        primary
            .open(self.settings.operation_timeout)
            .await
            .map_err(|e| store_error(e, ""))
    }

    pub(super) async fn record_presence(&self, agent: &AgentStatus) -> Result<(), StoreError> {
        let status = serde_json::json!({
            "partition": agent.partition.as_str(),
            "teams": agent.teams,
            "presence": agent.presence.as_str(),
        })
        .to_string();
        let keys = [self.keys.agents("seen"), self.keys.agents("status")];
        let script = &self.scripts.heartbeat;
        let command = evalsha(script, &keys, ("", 0, 0, &agent.agent_id, status));
        self.on_primary("", |mut conn| async move {
            eval::<Value>(script, &command, &mut conn).await
        })
        .await
        .map(|_| ())
    }

    /// Takes or keeps a store-wide job's lease for `holder`.
    pub(super) async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let script = &self.scripts.lease;
        let ttl = ttl.as_millis().max(1) as u64;
        let command = evalsha(script, &[self.keys.lease(name)], ("", 0, 0, holder, ttl));
        self.on_primary("", |mut conn| async move {
            eval::<i64>(script, &command, &mut conn).await
        })
        .await
        .map(|held| held == 1)
    }

    /// Tickets in each partition's move outbox: one pipeline.
    pub(super) async fn outboxes(&self, partitions: &[Partition]) -> Result<Vec<u64>, StoreError> {
        let mut groups = Vec::new();
        for partition in partitions {
            let at = self.keys.partition(partition)?;
            let mut pipe = redis::pipe();
            pipe.cmd("ZCOUNT").arg(at.outbox()).arg("-inf").arg("+inf");
            groups.push(pipe);
        }
        counts(&self.pipelines(&groups).await?.concat(), partitions.len())
    }

    /// Waiting tickets of each queue and urgency that entered it between two times: one pipeline
    /// of counts over the queues' scores.
    pub(super) async fn entered_between(
        &self,
        ranges: &[(QueueRef, Urgency, Millis, Millis)],
    ) -> Result<Vec<u64>, StoreError> {
        let (groups, places) = by_partition(ranges.iter().map(|(queue, urgency, from, to)| {
            let at = self.keys.of_queue(queue)?;
            let mut cmd = redis::cmd("ZCOUNT");
            cmd.arg(at.queue(&queue.team))
                .arg(queue_score(*urgency, (*from).max(0)))
                .arg(queue_score(*urgency, (*to).max(0)));
            Ok((queue.partition.clone(), vec![cmd]))
        }))?;
        let replies = self.pipelines(&groups).await?;
        counts(&placed(&replies, &places, 1)?.concat(), ranges.len())
    }

    /// Every agent seen, offline once its last heartbeat is older than the presence TTL (by
    /// Redis's clock).
    pub(super) async fn presence(&self) -> Result<Vec<AgentStatus>, StoreError> {
        let mut time = redis::pipe();
        time.cmd("TIME");
        let mut agents = redis::pipe();
        agents
            .cmd("ZRANGE")
            .arg(self.keys.agents("seen"))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        agents.cmd("HGETALL").arg(self.keys.agents("status"));
        let replies = self.pipelines(&[time, agents]).await?.concat();
        let [now, seen, statuses] = replies.as_slice() else {
            return Err(StoreError::Corrupt("agents reply".to_owned()));
        };
        let now = redis_time(now)?;
        let statuses = field_map(statuses)?;
        let ttl = self.settings.presence_ttl.as_millis() as Millis;
        let mut agents = Vec::new();
        for pair in array(seen)?.chunks(2) {
            let [id, score] = pair else { continue };
            let agent_id = text(id)?;
            let last_seen: Millis = text(score)?
                .parse::<f64>()
                .map(|s| s as Millis)
                .unwrap_or(0);
            let status: serde_json::Value = statuses
                .get(agent_id.as_str())
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
                partition: Partition::parse(status["partition"].as_str().unwrap_or_default()),
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

/// Counts by state from a team's counts hash: a state's own field, less the moves counted out of
/// it and plus those into it (fields 'FROM>TO', `count_move` in `scripts/common.lua`), each the
/// first number of its value (claims, 'QUEUED>RESERVED', carry their timings after it). Fields
/// that are no count (older servers' claim timings) come out as counts of no state.
fn state_counts<'a>(fields: &FxHashMap<&'a str, &'a str>) -> FxHashMap<&'a str, i64> {
    let mut counts = FxHashMap::default();
    for (&name, value) in fields {
        let count = value.split_once(' ').map_or(*value, |(first, _)| first);
        let Ok(n) = count.parse::<i64>() else {
            continue;
        };
        match name.split_once('>') {
            Some((from, to)) => {
                *counts.entry(from).or_default() -= n;
                *counts.entry(to).or_default() += n;
            }
            None => *counts.entry(name).or_default() += n,
        }
    }
    counts
}

/// Integer replies, one per question asked.
fn counts(replies: &[Value], asked: usize) -> Result<Vec<u64>, StoreError> {
    if replies.len() != asked {
        return Err(StoreError::Corrupt("count replies".to_owned()));
    }
    replies.iter().map(|r| Ok(int(r)?.max(0) as u64)).collect()
}

/// Puts a connection that answered back in its pool (a failed one is dropped instead).
pub(super) fn give_back(pool: &Mutex<Vec<Conn>>, conn: Conn) {
    let mut pool = pool
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if pool.len() < POOL {
        pool.push(conn);
    }
}

/// Commands of several partitions, grouped into one pipeline per partition (a cluster slot):
/// the groups, and where each item's first reply is (group, index in the group).
type Grouped = (Vec<redis::Pipeline>, Vec<(usize, usize)>);

pub(super) fn by_partition(
    items: impl Iterator<Item = Result<(Partition, Vec<redis::Cmd>), StoreError>>,
) -> Result<Grouped, StoreError> {
    let mut index: std::collections::BTreeMap<Partition, usize> = Default::default();
    let mut groups: Vec<redis::Pipeline> = Vec::new();
    let mut places = Vec::new();
    for item in items {
        let (partition, cmds) = item?;
        let group = *index.entry(partition).or_insert_with(|| {
            groups.push(redis::pipe());
            groups.len() - 1
        });
        places.push((group, groups[group].len()));
        for cmd in cmds {
            groups[group].add_command(cmd);
        }
    }
    Ok((groups, places))
}

/// Each item's `n` replies, in the items' order, from the replies of [`by_partition`]'s groups.
pub(super) fn placed(
    replies: &[Vec<Value>],
    places: &[(usize, usize)],
    n: usize,
) -> Result<Vec<Vec<Value>>, StoreError> {
    places
        .iter()
        .map(|&(group, at)| {
            replies
                .get(group)
                .and_then(|r| r.get(at..at + n))
                .map(<[Value]>::to_vec)
                .ok_or_else(|| StoreError::Corrupt("pipeline replies".to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts kept by state (as older servers kept them) and moves between states add up: a
    /// ticket claimed, accepted and completed counts once, as COMPLETED.
    #[test]
    fn counts_by_state_take_in_the_moves_between_states() {
        let fields: FxHashMap<&str, &str> = [
            ("RESERVED", "5"),
            ("IN_PROGRESS", "2"),
            ("COMPLETED", "10"),
            ("RESERVED>IN_PROGRESS", "3"),
            ("IN_PROGRESS>COMPLETED", "4"),
            ("RESERVED>COMPLETED", "1"),
            ("QUEUED>RESERVED", "4 1700000000000 -1"),
            ("last_claim_at", "1700000000000"),
            ("claim_interval", "not a number"),
        ]
        .into_iter()
        .collect();
        let counts = state_counts(&fields);
        assert_eq!(counts.get("RESERVED"), Some(&5));
        assert_eq!(counts.get("IN_PROGRESS"), Some(&1));
        assert_eq!(counts.get("COMPLETED"), Some(&15));
        assert_eq!(counts.get("CANCELLED"), None);
    }
}
