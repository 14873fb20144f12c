//! S3-FIFO's ghost queue: short fingerprints of keys the small queue evicted unread. A
//! key stored again while its fingerprint is still here left too early (it is read more
//! often than the small queue's length allows for), so it enters the main queue at once.
//!
//! A direct-mapped table of 16-bit tags, one slot per live item rounded up to a power
//! of two, stands in for the paper's FIFO of hashes: a newer fingerprint overwrites an
//! older one in its slot, so old entries fade as a FIFO's would. A wrong match (another
//! key's tag) only admits one item to the main queue early. The table is made at the
//! first eviction, so a cache that never fills pays nothing; its bytes are charged to
//! the budget with the index.

/// Fingerprints of keys recently evicted from a small queue without being read.
#[derive(Debug, Default)]
pub struct Ghost {
    /// Tags (never 0); 0 marks an empty slot.
    slots: Vec<u16>,
}

impl Ghost {
    /// Bytes the table holds.
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u16>()
    }

    /// Drops every fingerprint and the table's memory.
    pub fn clear(&mut self) {
        self.slots = Vec::new();
    }

    /// Records that the key hashing to `hash` was evicted unread, sizing the table for
    /// `items` live items first. True when the table's size changed.
    pub fn remember(&mut self, hash: u64, items: u64) -> bool {
        let wanted = (items.max(1) as usize).next_power_of_two();
        let resized = self.slots.len() < wanted;
        if resized {
            self.slots = vec![0; wanted];
        }
        let slot = self.slot(hash);
        self.slots[slot] = tag(hash);
        resized
    }

    /// True (and forgets it) when the key hashing to `hash` was evicted unread lately.
    pub fn take(&mut self, hash: u64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let slot = self.slot(hash);
        let found = self.slots[slot] == tag(hash);
        if found {
            self.slots[slot] = 0;
        }
        found
    }

    fn slot(&self, hash: u64) -> usize {
        // The low bits: the tag comes from the high ones.
        hash as usize & (self.slots.len() - 1)
    }
}

/// A key's fingerprint: 16 high bits of its hash, never 0.
fn tag(hash: u64) -> u16 {
    ((hash >> 48) as u16).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_taken_and_costs_nothing_before_the_first_eviction() {
        let mut ghost = Ghost::default();
        assert_eq!(ghost.bytes(), 0);
        assert!(!ghost.take(42));
        assert!(ghost.remember(0xabcd_0000_0000_0007, 1000));
        assert_eq!(ghost.bytes(), 1024 * 2);
        assert!(!ghost.take(0x1234_0000_0000_0007), "another key's tag");
        assert!(ghost.take(0xabcd_0000_0000_0007));
        assert!(!ghost.take(0xabcd_0000_0000_0007), "taken once");
        assert!(!ghost.remember(1, 1000), "same size");
        assert!(ghost.remember(1, 5000), "grows with the items");
    }
}
