//! Log output off the request's path: a formatted line is appended to a buffer in memory, and a
//! thread of its own writes the buffer to standard error in batches (every
//! [`FLUSH_EVERY`], or sooner once [`FLUSH_AT`] bytes wait), so that an RPC's one line costs its
//! formatting and no system call.
//!
//! When standard error cannot keep up and [`MAX_PENDING`] bytes wait, further lines are dropped
//! rather than holding requests back or growing without bound; the number dropped is written as
//! a line of its own once writing resumes. Lines still waiting are written when the
//! [`FlushOnExit`] guard is dropped (the end of `main`); a process killed outright loses at most
//! the last [`FLUSH_EVERY`] of them.
//!
//! Each line's time is written by [`UtcMicros`], which makes a second's date and time of day once.

use std::cell::Cell;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// How long a line waits at most before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Waiting bytes that wake the writer at once.
pub const FLUSH_AT: usize = 64 * 1024;
/// Waiting bytes past which lines are dropped.
pub const MAX_PENDING: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Shared {
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
    dropped: AtomicU64,
    closing: AtomicBool,
}

impl Shared {
    fn append(&self, line: &[u8]) {
        let mut pending = match self.pending.lock() {
            Ok(pending) => pending,
            Err(poisoned) => poisoned.into_inner(),
        };
        if pending.len() + line.len() > MAX_PENDING {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.extend_from_slice(line);
        if pending.len() >= FLUSH_AT {
            self.wake.notify_one();
        }
    }

    /// Takes what waits (swapping in an empty buffer of the same capacity).
    fn take(&self, wait: bool) -> Vec<u8> {
        let mut pending = match self.pending.lock() {
            Ok(pending) => pending,
            Err(poisoned) => poisoned.into_inner(),
        };
        if wait && pending.len() < FLUSH_AT {
            pending = match self.wake.wait_timeout(pending, FLUSH_EVERY) {
                Ok((pending, _)) => pending,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        let capacity = pending.capacity().min(FLUSH_AT * 4);
        std::mem::replace(&mut *pending, Vec::with_capacity(capacity))
    }

    /// Writes a batch, with the count of lines dropped since the last one.
    fn write(&self, batch: &[u8], out: &mut impl Write) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        // Standard error is the last place to report to: a failed write has nowhere to go.
        let _ = out.write_all(batch);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "{dropped} log line(s) dropped: standard error did not keep up"
            );
        }
        let _ = out.flush();
    }
}

/// The writer the log formatter writes each line to.
#[derive(Clone)]
pub struct BatchedStderr {
    shared: Arc<Shared>,
}

/// Writes what still waits and stops the writer thread when dropped.
pub struct FlushOnExit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread.
pub fn batched_stderr() -> (BatchedStderr, FlushOnExit) {
    let shared = Arc::new(Shared::default());
    let writer = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || {
            while !writer.closing.load(Ordering::Acquire) {
                let batch = writer.take(true);
                if !batch.is_empty() || writer.dropped.load(Ordering::Relaxed) > 0 {
                    writer.write(&batch, &mut io::stderr().lock());
                }
            }
        })
        .ok();
    (
        BatchedStderr {
            shared: Arc::clone(&shared),
        },
        FlushOnExit { shared, thread },
    )
}

impl Drop for FlushOnExit {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let rest = self.shared.take(false);
        self.shared.write(&rest, &mut io::stderr().lock());
    }
}

/// One formatted line (the formatter writes each event whole).
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(&self.shared)
    }
}

/// A line's time, in UTC to the microsecond as RFC 3339 gives it (`2026-11-28T09:30:04.826975Z`,
/// what the formatter's own clock writes). The date and time of day are made once a second per
/// thread and kept: the formatter's clock works them out, through the formatting machinery, at
/// every line, which is most of what an RPC's log line costs.
pub struct UtcMicros;

/// `YYYY-MM-DDTHH:MM:SS.` of a second since the epoch.
type SecondText = [u8; 20];

thread_local! {
    /// The second last written by this thread, and its text.
    static LAST_SECOND: Cell<Option<(u64, SecondText)>> = const { Cell::new(None) };
}

impl UtcMicros {
    /// The text of a time since the epoch, the second's part from `last` when it is that second's.
    fn text(since_epoch: Duration, last: &Cell<Option<(u64, SecondText)>>) -> [u8; 27] {
        let second = since_epoch.as_secs();
        let prefix = match last.get() {
            Some((at, text)) if at == second => text,
            _ => {
                let text = second_text(second);
                last.set(Some((second, text)));
                text
            }
        };
        let mut out = [0u8; 27];
        out[..20].copy_from_slice(&prefix);
        let mut micros = since_epoch.subsec_micros();
        for digit in out[20..26].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        out[26] = b'Z';
        out
    }
}

fn second_text(second: u64) -> SecondText {
    let mut text = *b"1970-01-01T00:00:00.";
    let at = i64::try_from(second)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0));
    if let Some(at) = at {
        let formatted = at.format("%Y-%m-%dT%H:%M:%S.").to_string();
        if formatted.len() == text.len() {
            text.copy_from_slice(formatted.as_bytes());
        }
    }
    text
}

impl FormatTime for UtcMicros {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let text = LAST_SECOND.with(|last| UtcMicros::text(since_epoch, last));
        w.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_whole_in_order_and_dropped_past_the_bound() {
        let shared = Shared::default();
        shared.append(b"first\n");
        shared.append(b"second\n");
        let mut out = Vec::new();
        shared.write(&shared.take(false), &mut out);
        assert_eq!(out, b"first\nsecond\n");

        let big = vec![b'x'; MAX_PENDING - 10];
        shared.append(&big);
        shared.append(b"this line does not fit\n");
        shared.append(b"nor this one\n");
        let mut out = Vec::new();
        shared.write(&shared.take(false), &mut out);
        assert_eq!(
            out.len(),
            big.len() + "2 log line(s) dropped: standard error did not keep up\n".len()
        );
        assert!(out.ends_with(b"2 log line(s) dropped: standard error did not keep up\n"));
    }

    #[test]
    fn times_read_as_rfc3339_to_the_microsecond_within_and_across_seconds() {
        let last = Cell::new(None);
        for (secs, micros) in [
            (1_795_780_124_i64, 779_001_u32),
            (1_795_780_124, 5),
            (1_795_780_125, 999_999),
            (0, 0),
            (951_782_400, 120_000),
        ] {
            let at =
                Duration::from_secs(secs.unsigned_abs()) + Duration::from_micros(micros.into());
            let expected = chrono::DateTime::from_timestamp(secs, micros * 1000)
                .expect("in range")
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let text = UtcMicros::text(at, &last);
            assert_eq!(std::str::from_utf8(&text).expect("ascii"), expected);
        }
    }

    #[test]
    fn the_guard_writes_what_waits() {
        let (writer, guard) = batched_stderr();
        writer
            .make_writer()
            .write_all(b"the last line, written by the guard\n")
            .expect("never fails");
        drop(guard);
        assert!(writer.shared.closing.load(Ordering::Acquire));
        assert!(writer.shared.take(false).is_empty());
    }
}
