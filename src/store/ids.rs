//! Ticket ids: `<partition>-<16 hex digits>`. The partition comes first so that an action that
//! names only a ticket id knows which partition (and, in Redis, which slot) to go to; the digits
//! are 64 bits from the operating system's cryptographic random source, so an id says nothing of
//! when or where it was made and cannot be guessed from another.

use super::StoreError;

/// A new ticket id in a partition.
pub fn new_ticket_id(partition: &str) -> Result<String, StoreError> {
    let digits = getrandom::u64()
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
