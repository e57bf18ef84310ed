//! Partitions: where tickets live. Each cooperator's tickets are its own (an agent of one landlord
//! never sees another's tenants), and calls not located to one cooperator belong to the platform.
//! This is the one home of that convention: its written form (`platform`, or the cooperator id, as
//! it appears in ticket ids, store keys and tokens), the cooperator it names, and the supervisor team
//! its tickets escalate to.

use std::fmt;

/// A partition: the platform's, or one cooperator's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Partition {
    /// Calls not located to a single cooperator, and the platform's own staff.
    Platform,
    /// One cooperator's tickets, by cooperator id.
    Cooperator(String),
}

/// The written form of [`Partition::Platform`]; configuration validation keeps cooperator ids
/// from taking it.
pub const PLATFORM: &str = "platform";

impl Partition {
    /// The partition of a routing decision: its cooperator's, or the platform's when none.
    pub fn of_cooperator(cooperator_id: Option<&str>) -> Partition {
        match cooperator_id {
            Some(id) => Partition::Cooperator(id.to_owned()),
            None => Partition::Platform,
        }
    }

    /// A partition from its written form.
    pub fn parse(text: &str) -> Partition {
        if text == PLATFORM {
            Partition::Platform
        } else {
            Partition::Cooperator(text.to_owned())
        }
    }

    /// The written form: `platform`, or the cooperator id.
    pub fn as_str(&self) -> &str {
        match self {
            Partition::Platform => PLATFORM,
            Partition::Cooperator(id) => id,
        }
    }

    /// The cooperator this partition belongs to; `None` for the platform's.
    pub fn cooperator_id(&self) -> Option<&str> {
        match self {
            Partition::Platform => None,
            Partition::Cooperator(id) => Some(id),
        }
    }

    pub fn is_platform(&self) -> bool {
        matches!(self, Partition::Platform)
    }

    /// The team this partition's tickets escalate to after too many expired leases
    /// (`<partition>.supervisor`; configuration validation requires it to exist).
    pub fn supervisor_team(&self) -> String {
        format!("{}.supervisor", self.as_str())
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&Partition> for Partition {
    fn from(partition: &Partition) -> Partition {
        partition.clone()
    }
}

impl serde::Serialize for Partition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl From<&str> for Partition {
    fn from(text: &str) -> Partition {
        Partition::parse(text)
    }
}

/// A team's queue within a partition. A cooperator's team has one queue, in its partition; a shared
/// contractor has one in every partition; the platform's teams have one, in the platform's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueRef {
    pub partition: Partition,
    pub team: String,
}

impl QueueRef {
    pub fn new(partition: impl Into<Partition>, team: &str) -> QueueRef {
        QueueRef {
            partition: partition.into(),
            team: team.to_owned(),
        }
    }

    /// The key of this queue's feed in a watch's resume positions: `<partition>/<team>`.
    pub fn feed_key(&self) -> String {
        format!("{}/{}", self.partition, self.team)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_form_round_trips() {
        for p in [
            Partition::Platform,
            Partition::Cooperator("touraine-logement".to_owned()),
        ] {
            assert_eq!(Partition::parse(p.as_str()), p);
        }
        assert_eq!(Partition::of_cooperator(None), Partition::Platform);
        assert_eq!(
            Partition::of_cooperator(Some("lb-habitat")).cooperator_id(),
            Some("lb-habitat")
        );
        assert_eq!(Partition::Platform.supervisor_team(), "platform.supervisor");
        assert_eq!(
            QueueRef::new("lb-habitat", "lb-habitat.rent").feed_key(),
            "lb-habitat/lb-habitat.rent"
        );
    }
}
