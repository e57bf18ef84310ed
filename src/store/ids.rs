//! Ticket ids: `<partition>-<16 hex digits>`. The partition comes first so that an action that
//! names only a ticket id knows which partition (and, in Redis, which slot) to go to; the digits are
//! unique with overwhelming probability across instances and restarts.

use std::sync::atomic::{AtomicU64, Ordering};

/// A new ticket id in a partition: the partition, then 64 bits mixed from the wall clock, the
/// process id and a per-process counter.
pub fn new_ticket_id(partition: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seed = nanos
        ^ (u64::from(std::process::id()) << 40)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{partition}-{:016x}", mix(seed))
}

/// SplitMix64's finaliser: spreads every input bit over the whole output, so ids made a nanosecond
/// or one count apart share no visible prefix.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_with_their_partition_and_do_not_repeat() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_ticket_id("lb-habitat")).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| id.starts_with("lb-habitat-") && id.len() == 27)
        );
    }
}
