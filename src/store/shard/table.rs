//! The shard's index table: open addressing with linear probing over 4-byte item
//! handles, a one-byte tag per slot beside them, and growth by 1.4× instead of 2×.
//!
//! Why not `hashbrown`: its tables double at 7/8 full, so right after a growth they are
//! under half full and an index costs 10 bytes per item at its worst (48% load at
//! 1,000,000 items). Growing by 1.4× at 7/8 keeps the load between 62% and 87%
//! (5.7 to 8 bytes per item). Any table size works (the home slot is the hash scaled
//! to the size, not masked), which is what allows the finer steps. Linear probing keeps
//! a probe in one or two cache lines of tags; a slot's key is compared only when its
//! tag matches. Removal leaves a tombstone unless the next slot is empty; a rebuild
//! purges tombstones when they and the entries fill 7/8 of the slots (in a full cache,
//! where each insert comes with an eviction, about every 0.4 × entries removals).

use crate::store::item::Handle;

/// A slot never used: a probe stops here.
const EMPTY: u8 = 0;
/// A slot whose entry was removed: a probe goes on past it, an insert may reuse it.
const DELETED: u8 = 1;
/// The table grows (or is rebuilt without tombstones) when this share of slots,
/// in eighths, holds entries or tombstones.
const MAX_LOAD_EIGHTHS: usize = 7;
/// Share of slots, in eighths, the entries fill after a rebuild: a table full of
/// entries grows by 7/5 = 1.4, and at least 2/8 of the slots are free for tombstones
/// before the next rebuild.
const REBUILT_LOAD_EIGHTHS: usize = 5;
/// Slots of the first table.
const MIN_SLOTS: usize = 16;

/// Item handles by key hash; the caller compares keys.
#[derive(Debug, Default)]
pub struct Table {
    /// `EMPTY`, `DELETED` or a tag of 2 to 255 from the entry's hash.
    tags: Vec<u8>,
    /// Handles, valid where the tag is a tag.
    slots: Vec<Handle>,
    /// Entries.
    len: usize,
    /// Entries plus tombstones.
    used: usize,
}

/// The tag of a hash: its top bits, kept clear of `EMPTY` and `DELETED`.
#[inline]
fn tag(hash: u64) -> u8 {
    ((hash >> 56) as u8).max(2)
}

impl Table {
    /// Bytes the table holds (charged to the memory budget).
    pub fn bytes(&self) -> usize {
        self.tags.len() * (1 + std::mem::size_of::<Handle>())
    }

    /// Entries in the table.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The slot a probe for `hash` starts at.
    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((hash as u32 as u64 * self.tags.len() as u64) >> 32) as usize
    }

    /// The slot of the entry whose tag matches `hash` and for which `matches` holds.
    #[inline]
    pub fn position(&self, hash: u64, mut matches: impl FnMut(Handle) -> bool) -> Option<usize> {
        let size = self.tags.len();
        if size == 0 {
            return None;
        }
        let wanted = tag(hash);
        let mut at = self.home(hash);
        loop {
            match self.tags[at] {
                EMPTY => return None,
                found if found == wanted && matches(self.slots[at]) => return Some(at),
                _ => {}
            }
            at += 1;
            if at == size {
                at = 0;
            }
        }
    }

    /// The entry under `hash` for which `matches` holds.
    #[inline]
    pub fn find(&self, hash: u64, matches: impl FnMut(Handle) -> bool) -> Option<Handle> {
        self.position(hash, matches).map(|at| self.slots[at])
    }

    /// Adds an entry known not to be present; `rehash` gives any entry's hash when the
    /// table grows.
    pub fn insert_unique(&mut self, hash: u64, handle: Handle, rehash: impl Fn(Handle) -> u64) {
        if (self.used + 1) * 8 > self.tags.len() * MAX_LOAD_EIGHTHS {
            self.resize(rehash);
        }
        let size = self.tags.len();
        let mut at = self.home(hash);
        while self.tags[at] > DELETED {
            at += 1;
            if at == size {
                at = 0;
            }
        }
        if self.tags[at] == EMPTY {
            self.used += 1;
        }
        self.tags[at] = tag(hash);
        self.slots[at] = handle;
        self.len += 1;
    }

    /// Removes `handle`, filed under `hash`. False if it was not there.
    pub fn remove(&mut self, hash: u64, handle: Handle) -> bool {
        let Some(at) = self.position(hash, |other| other == handle) else {
            return false;
        };
        let next = if at + 1 == self.tags.len() { 0 } else { at + 1 };
        // No probe passes through a slot followed by an empty one.
        if self.tags[next] == EMPTY {
            self.tags[at] = EMPTY;
            self.used -= 1;
        } else {
            self.tags[at] = DELETED;
        }
        self.len -= 1;
        true
    }

    /// The handle in slot `at` (from `position`).
    #[inline]
    pub fn at(&self, at: usize) -> Handle {
        self.slots[at]
    }

    /// Puts `handle` in slot `at` (from `position`, with no insert or removal since) in
    /// place of the entry there: a new item under the same key.
    #[inline]
    pub fn set_at(&mut self, at: usize, handle: Handle) {
        self.slots[at] = handle;
    }

    /// Files `new` where `old` was (an item moved to another chunk).
    pub fn replace(&mut self, hash: u64, old: Handle, new: Handle) {
        if let Some(at) = self.position(hash, |other| other == old) {
            self.slots[at] = new;
        }
    }

    /// Rebuilds the table without tombstones, sized so the entries fill
    /// `REBUILT_LOAD_EIGHTHS` of it: 1.4 times larger when entries filled it, about the
    /// same size when tombstones did.
    #[cold]
    fn resize(&mut self, rehash: impl Fn(Handle) -> u64) {
        let size = ((self.len + 1) * 8 / REBUILT_LOAD_EIGHTHS).max(MIN_SLOTS);
        let tags = std::mem::replace(&mut self.tags, vec![EMPTY; size]);
        let slots = std::mem::replace(&mut self.slots, vec![0; size]);
        self.len = 0;
        self.used = 0;
        for (tag, handle) in tags.into_iter().zip(slots) {
            if tag > DELETED {
                let hash = rehash(handle);
                let mut at = self.home(hash);
                while self.tags[at] != EMPTY {
                    at += 1;
                    if at == size {
                        at = 0;
                    }
                }
                self.tags[at] = tag;
                self.slots[at] = handle;
                self.len += 1;
                self.used += 1;
            }
        }
        crate::store::memory::return_freed_memory();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A spread-out hash of a handle, as the shard's keyed hash would give.
    fn hash_of(handle: Handle) -> u64 {
        (u64::from(handle) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    #[test]
    fn finds_what_was_inserted_and_nothing_removed() {
        let mut table = Table::default();
        for handle in 0..10_000 {
            table.insert_unique(hash_of(handle), handle, hash_of);
        }
        assert_eq!(table.len(), 10_000);
        for handle in (0..10_000).step_by(3) {
            assert!(table.remove(hash_of(handle), handle));
            assert!(!table.remove(hash_of(handle), handle));
        }
        for handle in 0..10_000 {
            let found = table.find(hash_of(handle), |other| other == handle);
            assert_eq!(found.is_some(), handle % 3 != 0, "{handle}");
        }
        table.replace(hash_of(1), 1, 77_777);
        assert_eq!(table.find(hash_of(1), |other| other == 1), None);
        assert!(table.find(hash_of(1), |other| other == 77_777).is_some());
        let at = table.position(hash_of(2), |other| other == 2).unwrap();
        assert_eq!(table.at(at), 2);
        table.set_at(at, 88_888);
        assert!(table.find(hash_of(2), |other| other == 88_888).is_some());
        assert_eq!(table.len(), 10_000 - 3334);
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_the_caller() {
        let mut table = Table::default();
        for handle in 0..100 {
            table.insert_unique(42, handle, |_| 42);
        }
        for handle in 0..100 {
            assert_eq!(table.find(42, |other| other == handle), Some(handle));
        }
        assert!(table.remove(42, 50));
        assert_eq!(table.find(42, |other| other == 50), None);
        assert_eq!(table.find(42, |other| other == 99), Some(99));
    }

    #[test]
    fn churn_keeps_every_live_entry_and_the_load_high() {
        let mut table = Table::default();
        let mut live = HashMap::new();
        let mut next: Handle = 0;
        // A cache in steady state: one eviction per insert, tombstones everywhere.
        for round in 0..200_000u32 {
            table.insert_unique(hash_of(next), next, hash_of);
            live.insert(next, ());
            next += 1;
            if round >= 5_000 {
                let victim = next - 5_000;
                assert!(table.remove(hash_of(victim), victim));
                live.remove(&victim);
            }
        }
        for &handle in live.keys() {
            assert!(
                table
                    .find(hash_of(handle), |other| other == handle)
                    .is_some()
            );
        }
        assert_eq!(table.len(), live.len());
        let per_entry = table.bytes() as f64 / table.len() as f64;
        assert!(per_entry < 8.5, "{per_entry} bytes per entry");
    }

    #[test]
    fn growth_keeps_the_load_between_five_eighths_and_seven_eighths() {
        let mut table = Table::default();
        for handle in 0..1_000_000 {
            table.insert_unique(hash_of(handle), handle, hash_of);
            if handle > 1_000 {
                let load = table.len() as f64 / table.tags.len() as f64;
                assert!((0.6..=0.875).contains(&load), "{load} at {handle}");
            }
        }
    }
}
