//! Redis's clock as seen from this instance. Transitions are timed by Redis's `TIME`; a creation's
//! cut-off must therefore be written in Redis's clock, though the caller's deadline runs on ours.
//!
//! Every health check (every second) reads `TIME` and takes the offset between the two clocks at
//! the middle of the round trip, with half the round trip (plus Redis's millisecond) as its
//! uncertainty. A cut-off is placed on the safe side of that uncertainty, so clock skew between
//! hosts, whatever its size, moves it earlier, never later; and a margin before the caller's
//! deadline leaves room for a reply already on its way. Until the first measurement, the first
//! creation measures before it runs.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::store::Millis;

/// The margin, before a caller's deadline, within which a creation's reply must be able to reach
/// it: a tenth of the deadline, at least 5 ms.
pub fn reply_margin(within: Duration) -> Duration {
    (within / 10).max(Duration::from_millis(5))
}

/// The last measured offset of Redis's clock over ours.
#[derive(Debug, Default)]
pub struct ClockOffset {
    measured: AtomicBool,
    offset_ms: AtomicI64,
    uncertainty_ms: AtomicI64,
}

/// Milliseconds since the Unix epoch by this host's clock.
pub fn local_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

impl ClockOffset {
    pub fn is_measured(&self) -> bool {
        self.measured.load(Ordering::Acquire)
    }

    /// Records a `TIME` answer read between `before` and `after` (our clock).
    pub fn record(&self, before: Millis, redis: Millis, after: Millis) {
        let middle = before + (after - before) / 2;
        self.offset_ms.store(redis - middle, Ordering::Relaxed);
        self.uncertainty_ms
            .store((after - before) / 2 + 1, Ordering::Relaxed);
        self.measured.store(true, Ordering::Release);
    }

    /// The cut-off, in Redis's clock, for a creation whose caller gives up `within` from `now`
    /// (our clock): a creation that runs later would be seen by no one, so the script refuses it.
    pub fn cutoff(&self, now: Millis, within: Duration) -> Millis {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let uncertainty = self.uncertainty_ms.load(Ordering::Relaxed);
        let usable = within.saturating_sub(reply_margin(within)).as_millis() as Millis;
        now + usable + offset - uncertainty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_moves_earlier_with_uncertainty_never_later() {
        let clock = ClockOffset::default();
        // Redis 1,000 ms ahead, measured over a 20 ms round trip.
        clock.record(10_000, 11_010, 10_020);
        assert!(clock.is_measured());
        let cutoff = clock.cutoff(20_000, Duration::from_millis(300));
        // 300 ms less the 30 ms margin, in Redis's clock, less 11 ms of uncertainty.
        assert_eq!(cutoff, 20_000 + 270 + 1_000 - 11);
        assert_eq!(
            reply_margin(Duration::from_millis(20)),
            Duration::from_millis(5)
        );
    }
}
