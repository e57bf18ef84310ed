//! Redis key names. Every key of a partition starts with `<namespace>:{<partition>}:` — the prefix
//! the scripts receive — so the hash tag `{<partition>}` puts all of a partition's keys in one Redis
//! Cluster slot. Partition names become part of keys, so only the characters of configuration ids
//! are accepted: no request can name another slot's hash tag. Names are joined with `concat`, not
//! `format!`: a request builds several, and the formatting machinery costs several times more.

use crate::routing::partition::{Partition, QueueRef};
use crate::store::{StoreError, partition_of};

/// The key names of one deployment (namespace).
#[derive(Debug, Clone)]
pub struct Keys {
    namespace: String,
}

/// The keys of one partition.
#[derive(Debug, Clone)]
pub struct PartitionKeys {
    pub partition: Partition,
    /// `<namespace>:{<partition>}:`, which every key of the partition starts with.
    pub prefix: String,
}

impl Keys {
    pub fn new(namespace: &str) -> Keys {
        Keys {
            namespace: namespace.to_owned(),
        }
    }

    /// The keys of a partition, refusing a partition name that could not be a configuration id.
    pub fn partition(&self, partition: &Partition) -> Result<PartitionKeys, StoreError> {
        if !valid_partition(partition.as_str()) {
            return Err(StoreError::Invalid(format!("partition '{partition}'")));
        }
        Ok(PartitionKeys {
            prefix: [self.namespace.as_str(), ":{", partition.as_str(), "}:"].concat(),
            partition: partition.clone(),
        })
    }

    /// The keys of the partition a ticket id names; an id that names no valid partition is a
    /// ticket that does not exist.
    pub fn of_ticket(&self, ticket_id: &str) -> Result<PartitionKeys, StoreError> {
        let partition = partition_of(ticket_id)?;
        self.partition(&partition)
            .map_err(|_| StoreError::NotFound(ticket_id.to_owned()))
    }

    /// The keys of a queue's partition.
    pub fn of_queue(&self, queue: &QueueRef) -> Result<PartitionKeys, StoreError> {
        self.partition(&queue.partition)
    }

    /// The agent presence registry (`seen` sorted set, `status` hash), outside every partition.
    pub fn agents(&self, which: &str) -> String {
        format!("{}:{{agents}}:{which}", self.namespace)
    }

    /// The lease of a store-wide job, outside every partition.
    pub fn lease(&self, name: &str) -> String {
        format!("{}:{{leases}}:{name}", self.namespace)
    }
}

impl PartitionKeys {
    /// The ticket hash.
    pub fn ticket(&self, id: &str) -> String {
        [self.prefix.as_str(), "t:", id].concat()
    }

    /// The ticket's history list, which holds the lines written before tickets had a log.
    pub fn history(&self, id: &str) -> String {
        [self.prefix.as_str(), "h:", id].concat()
    }

    /// The ticket created for a call (idempotency).
    pub fn call(&self, call_id: &str) -> String {
        [self.prefix.as_str(), "call:", call_id].concat()
    }

    /// The open ticket of a building-wide incident.
    pub fn incident(&self, incident_id: &str) -> String {
        [self.prefix.as_str(), "inc:", incident_id].concat()
    }

    /// A team's queue (sorted set by urgency, then first enqueued).
    pub fn queue(&self, team: &str) -> String {
        [self.prefix.as_str(), "q:", team].concat()
    }

    /// A team's counts by state and interval between claims.
    pub fn stats(&self, team: &str) -> String {
        [self.prefix.as_str(), "s:", team].concat()
    }

    /// A team's feed of transitions (stream).
    pub fn feed(&self, team: &str) -> String {
        [self.prefix.as_str(), "ev:", team].concat()
    }

    /// The hold a claim id made (`<ticket> <token>`), for a retried claim.
    pub fn claim(&self, agent_id: &str, claim_id: &str) -> String {
        [self.prefix.as_str(), "claim:", agent_id, ":", claim_id].concat()
    }

    /// Held tickets by lease expiry.
    pub fn leases(&self) -> String {
        [self.prefix.as_str(), "leases"].concat()
    }

    /// A counter written before waiting for replicas, so that the wait covers all writes before.
    pub fn sync(&self) -> String {
        [self.prefix.as_str(), "sync"].concat()
    }

    /// Tickets being moved to another partition.
    pub fn outbox(&self) -> String {
        [self.prefix.as_str(), "outbox"].concat()
    }

    /// The marker of a ticket moved in from another partition (idempotency of the move).
    pub fn moved_from(&self, source_id: &str) -> String {
        [self.prefix.as_str(), "moved:", source_id].concat()
    }
}

/// Whether a partition name is safe inside a key: a configuration id's characters only.
pub fn valid_partition(partition: &str) -> bool {
    !partition.is_empty()
        && partition.len() <= 64
        && partition.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// Whether a feed position is a stream id (`<ms>-<seq>`), before it goes into a command.
pub fn valid_stream_id(id: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_partition_shares_its_hash_tag() {
        let keys = Keys::new("ns");
        let p = keys
            .partition(&Partition::parse("lb-habitat"))
            .expect("valid");
        for key in [
            p.ticket("x"),
            p.history("x"),
            p.call("c"),
            p.incident("i"),
            p.queue("t"),
            p.stats("t"),
            p.feed("t"),
            p.leases(),
            p.moved_from("x"),
        ] {
            assert!(key.starts_with("ns:{lb-habitat}:"), "{key}");
        }
        assert!(keys.partition(&Partition::parse("a}{b")).is_err());
        assert!(matches!(
            keys.of_ticket("A{x}-1"),
            Err(StoreError::NotFound(_))
        ));
        assert!(valid_stream_id("1-0") && !valid_stream_id("1-") && !valid_stream_id("+"));
    }
}
