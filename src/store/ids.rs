//! Ticket ids: `<partition>-<16 hex digits>`. The partition comes first so that an action that
//! names only a ticket id knows which partition (and, in Redis, which slot) to go to; the digits
//! are 64 bits from the operating system's cryptographic random source, so an id says nothing of
//! when or where it was made and cannot be guessed from another. The digits are fetched
//! [`BATCH`] ids' worth at a time, per thread: one system call per batch instead of one per id.

use std::cell::RefCell;

use super::StoreError;

/// Ids whose digits one call to the random source gives.
const BATCH: usize = 64;

/// Random digits fetched and not yet used, and how many of them were used.
struct Fetched {
    used: usize,
    words: [u64; BATCH],
}

thread_local! {
    static FETCHED: RefCell<Fetched> = const {
        RefCell::new(Fetched { used: BATCH, words: [0; BATCH] })
    };
}

/// 64 random bits from the operating system's source, fetched in batches.
fn random_digits() -> Result<u64, getrandom::Error> {
    FETCHED.with_borrow_mut(|fetched| {
        if fetched.used == BATCH {
            let mut bytes = [0u8; BATCH * 8];
            getrandom::fill(&mut bytes)?;
            for (word, chunk) in fetched.words.iter_mut().zip(bytes.chunks_exact(8)) {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(chunk);
                *word = u64::from_le_bytes(eight);
            }
            fetched.used = 0;
        }
        let digits = fetched.words[fetched.used];
        fetched.used += 1;
        Ok(digits)
    })
}

/// A new ticket id in a partition.
pub fn new_ticket_id(partition: &str) -> Result<String, StoreError> {
    let digits = random_digits()
        .map_err(|e| StoreError::Unavailable(format!("no random source for ticket ids: {e}")))?;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(partition.len() + 17);
    id.push_str(partition);
    id.push('-');
    for shift in (0..16).rev() {
        id.push(char::from(HEX[(digits >> (shift * 4) & 0xf) as usize]));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_with_their_partition_and_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| new_ticket_id("lb-habitat").expect("random"))
            .collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| id.starts_with("lb-habitat-") && id.len() == 27)
        );
    }

    #[test]
    fn threads_fetch_digits_of_their_own() {
        let made: Vec<Vec<String>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..3 * BATCH + 5)
                            .map(|_| new_ticket_id("p").expect("random"))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("thread"))
                .collect()
        });
        let all: std::collections::HashSet<&String> = made.iter().flatten().collect();
        assert_eq!(all.len(), 4 * (3 * BATCH + 5));
    }

    #[test]
    fn every_bit_of_the_digits_varies() {
        let mut ones = [0u32; 64];
        for _ in 0..4096 {
            let id = new_ticket_id("p").expect("random");
            let digits = u64::from_str_radix(&id[2..], 16).expect("hex");
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += u32::from(digits >> bit & 1 == 1);
            }
        }
        // Each bit is set about half the time (2,048 ± 6 standard deviations of 32).
        assert!(ones.iter().all(|&n| (1856..=2240).contains(&n)), "{ones:?}");
    }
}
