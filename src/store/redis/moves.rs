//! The move protocol: a ticket handed to another partition (platform triage sending a call to a
//! cooperator) crosses slots, which no single script may do. So it is a transactional outbox, three
//! scripts, each atomic in its own partition:
//!
//! 1. `move_out` (source): the holder hands the ticket over; it leaves its lease and waits in the
//!    source's outbox, claimable by no one, with its target recorded on it;
//! 2. `move_in` (target): the ticket is created there with its call, creation time, place, attempts
//!    and history — idempotent by the source ticket id, so a retry finds the first copy;
//! 3. `move_done` (source): the source becomes a `MOVED` stub naming the new id.
//!
//! A crash between steps leaves the ticket in the outbox; the reaper finds it there after a few
//! seconds and finishes the move from step 2. Never lost, never twice in a queue.

use redis::Value;
use rustc_hash::FxHashMap;

use super::RedisStore;
use super::keys::PartitionKeys;
use super::reply::{
    array, history as full_history, log_of, packed_hash, parse_ticket, text, ticket_from_fields,
    ticket_map,
};
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::urgency::Urgency;
use crate::store::ids::new_ticket_id;
use crate::store::lifecycle::TicketState;
use crate::store::{Hold, StoreError, Ticket};

impl RedisStore {
    /// Moves a held ticket to another partition's queue: step 1, then the rest.
    pub(super) async fn move_to(
        &self,
        at: &PartitionKeys,
        ticket_id: &str,
        hold: &Hold,
        to: &QueueRef,
        urgency_rank: String,
    ) -> Result<Ticket, StoreError> {
        // Refuse an invalid target before the ticket leaves its holder.
        self.keys.of_queue(to)?;
        let args = [
            ticket_id.to_owned(),
            hold.agent_id.clone(),
            hold.lease_token.to_string(),
            to.partition.as_str().to_owned(),
            to.team.clone(),
            urgency_rank,
        ];
        let reply = self
            .run(
                &self.scripts.move_out,
                at,
                &[at.ticket(ticket_id)],
                &args,
                ticket_id,
            )
            .await?;
        let [fields, history] = array(&reply)? else {
            return Err(StoreError::Corrupt("move_out reply".to_owned()));
        };
        let fields = ticket_map(fields)?;
        let history = array(history)?
            .iter()
            .map(text)
            .collect::<Result<Vec<_>, _>>()?;
        self.finish_move(&fields, history).await
    }

    /// Finishes a move the reaper found left in an outbox; `false` when the ticket is gone.
    pub(super) async fn finish_stuck_move(&self, ticket_id: &str) -> Result<bool, StoreError> {
        let at = self.keys.of_ticket(ticket_id)?;
        let value: Value = self
            .query(redis::cmd("HGETALL").arg(at.ticket(ticket_id)))
            .await?;
        let fields = ticket_map(&value)?;
        if fields.is_empty() {
            return Ok(false);
        }
        let history: Vec<String> = self
            .query(
                redis::cmd("LRANGE")
                    .arg(at.history(ticket_id))
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        self.finish_move(&fields, history).await?;
        Ok(true)
    }

    /// Steps 2 and 3, from the fields of a ticket in the outbox and the lines of its history list
    /// (a ticket's lines from before tickets had a log; its log is one of its fields).
    async fn finish_move(
        &self,
        fields: &FxHashMap<&str, &str>,
        history: Vec<String>,
    ) -> Result<Ticket, StoreError> {
        let source = ticket_from_fields(fields)?;
        let target = fields
            .get("move_partition")
            .map(|p| Partition::parse(p))
            .ok_or_else(|| no_target(&source))?;
        let to = self
            .keys
            .partition(&target)
            .map_err(|_| no_target(&source))?;
        let to_team = fields
            .get("move_team")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| no_target(&source))?;
        let mut urgency = source.urgency;
        if let Some(raised) = fields
            .get("move_urgency")
            .and_then(|u| Urgency::from_rank(u))
        {
            urgency = urgency.min(raised);
        }
        let new_id = new_ticket_id(target.as_str())?;
        let created_at = fields.get("created_at").copied();
        let created_in = fields.get("created_in").copied();
        let log = fields.get("log").copied();
        let history = log_of(&full_history(created_at, created_in, history, log)?);
        let mut args = vec![
            new_id.clone().into_bytes(),
            source.ticket_id.clone().into_bytes(),
            history.into_bytes(),
        ];
        let fields = moved_fields(&source, &new_id, &target, to_team, urgency);
        for (name, value) in packed_hash(&fields) {
            args.push(name.as_bytes().to_vec());
            args.push(value);
        }
        // Its holds counted from 0, as a created ticket's (`claim_from` in the scripts).
        args.extend([b"holds".to_vec(), b"0".to_vec()]);
        let keys = [to.moved_from(&source.ticket_id), to.ticket(&new_id)];
        let moved = self
            .run(&self.scripts.move_in, &to, &keys, &args, &source.ticket_id)
            .await?;
        let moved = parse_ticket(&moved)?;
        let from = self.keys.partition(&source.partition)?;
        self.run(
            &self.scripts.move_done,
            &from,
            &[from.ticket(&source.ticket_id)],
            &[source.ticket_id.clone(), moved.ticket_id.clone()],
            &source.ticket_id,
        )
        .await?;
        Ok(moved)
    }
}

fn no_target(source: &Ticket) -> StoreError {
    StoreError::Corrupt(format!("ticket {} has no move target", source.ticket_id))
}

/// The fields of the ticket a move creates in the target partition: the source's call, creation
/// time, place, attempts and details; queued in the target team; the target's escalation team.
fn moved_fields(
    source: &Ticket,
    new_id: &str,
    target: &Partition,
    team: &str,
    urgency: Urgency,
) -> Vec<(&'static str, String)> {
    vec![
        ("ticket_id", new_id.to_owned()),
        ("call_id", source.call_id.clone()),
        ("partition", target.as_str().to_owned()),
        ("state", TicketState::Queued.as_str().to_owned()),
        (
            "cooperator_id",
            target.cooperator_id().unwrap_or_default().to_owned(),
        ),
        ("team_id", team.to_owned()),
        ("urgency", urgency.rank().to_string()),
        ("issue_type", source.issue_type.clone()),
        (
            "building_id",
            source.building_id.clone().unwrap_or_default(),
        ),
        ("address", source.address.clone().unwrap_or_default()),
        ("incident_id", String::new()),
        ("incident_calls", source.incident_calls.to_string()),
        ("agent_id", String::new()),
        ("lease_token", "0".to_owned()),
        ("attempts", source.attempts.to_string()),
        ("created_at", source.created_at.to_string()),
        ("enqueued_at", source.enqueued_at.to_string()),
        ("sla_due_at", source.sla_due_at.to_string()),
        ("escalation_team", target.supervisor_team()),
        ("transferred_from", source.ticket_id.clone()),
        ("details", source.details.clone()),
    ]
}
