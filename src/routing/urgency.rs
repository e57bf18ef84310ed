//! Urgency: how soon a request must be answered, and its rank — the one number queues order by
//! (the store's scores and scripts use [`Urgency::rank`], nothing else).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How soon a request must be answered. `U1` is the most urgent; ordering follows urgency, so
/// `U1 < U2 < U3` and "raising" an urgency means taking the smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Urgency {
    /// Danger or total loss of a vital service: answer within 4 hours, day and night.
    U1,
    /// Answer within 24 hours.
    U2,
    /// Answer within 5 working days.
    U3,
}

impl Urgency {
    pub const ALL: [Urgency; 3] = [Urgency::U1, Urgency::U2, Urgency::U3];

    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::U1 => "U1",
            Urgency::U2 => "U2",
            Urgency::U3 => "U3",
        }
    }

    /// The rank queues order by: 1 for `U1`, 2 for `U2`, 3 for `U3`.
    pub fn rank(self) -> u8 {
        match self {
            Urgency::U1 => 1,
            Urgency::U2 => 2,
            Urgency::U3 => 3,
        }
    }

    /// The urgency of a rank, as the store writes it.
    pub fn from_rank(rank: &str) -> Option<Urgency> {
        Urgency::ALL
            .into_iter()
            .find(|u| rank.parse::<u8>() == Ok(u.rank()))
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_round_trip_and_order_like_urgency() {
        for u in Urgency::ALL {
            assert_eq!(Urgency::from_rank(&u.rank().to_string()), Some(u));
        }
        assert!(Urgency::U1.rank() < Urgency::U3.rank());
        assert_eq!(Urgency::from_rank("0"), None);
        assert_eq!(Urgency::from_rank(""), None);
    }
}
