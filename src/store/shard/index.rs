//! The shard's index: finding a key, deciding whether what was found is still live
//! (expiry, flush_all), and unlinking an item from the index, its queue and memory.
//! The index's own memory is charged to the shared budget here.

use super::{Now, Shard};
use crate::store::item::{FETCHED, Handle, Header};
use std::hash::BuildHasher;

/// What a lookup found under a key.
pub(super) enum Lookup {
    Hit(Handle),
    Miss,
    Expired,
    Flushed,
}

impl Shard {
    /// Bytes of the index (counted in `hash_bytes` and charged against `-m`).
    pub fn index_bytes(&self) -> usize {
        self.index.bytes()
    }

    /// Charges index (and ghost table) growth to the budget, so `-m` bounds items and
    /// index together.
    pub(super) fn charge_index(&mut self) {
        let now = self.index_bytes() + self.ghost.bytes() + self.memory.ring_bytes();
        if now > self.index_charge {
            self.memory.budget().take_anyway(now - self.index_charge);
        } else if now < self.index_charge {
            self.memory.budget().give_back(self.index_charge - now);
        }
        self.index_charge = now;
    }

    pub(super) fn find(&self, key: &[u8], hash: u64) -> Option<Handle> {
        let memory = &self.memory;
        self.index.find(hash, |handle| memory.key_is(handle, key))
    }

    /// What a lookup of `key` would find, without touching, removing or counting
    /// anything: the `watch fetchers` log line of a request.
    pub fn peek(&self, key: &[u8], hash: u64, now: Now) -> crate::watch::Fetched {
        let Some(handle) = self.find(key, hash) else {
            return crate::watch::Fetched::NotFound;
        };
        let header = self.memory.header(handle);
        if header.is_expired(now.now) {
            crate::watch::Fetched::Expired
        } else if self.is_flushed(header, now) {
            crate::watch::Fetched::NotFound
        } else {
            crate::watch::Fetched::Found {
                class: self.memory.class_of(handle) + 1,
                size: self.memory.value_len(handle),
            }
        }
    }

    /// The `watch evictions` line of an item about to be evicted.
    pub(super) fn eviction_line(&self, handle: Handle) -> crate::watch::Eviction<'_> {
        let header = self.memory.header(handle);
        crate::watch::Eviction {
            key: self.memory.key(handle),
            fetched: header.state & FETCHED != 0,
            exptime: header.exptime,
            accessed: header.atime,
            class: self.memory.class_of(handle) + 1,
            size: self.memory.value_len(handle),
        }
    }

    pub(super) fn is_flushed(&self, header: &Header, now: Now) -> bool {
        now.oldest_live != 0
            && now.oldest_live <= now.now
            && (header.atime <= now.oldest_live
                || (self.oldest_cas != 0 && header.cas != 0 && header.cas < self.oldest_cas))
    }

    /// Finds a live item, removing it on the spot if it has expired or been flushed.
    pub(super) fn lookup(&mut self, key: &[u8], hash: u64, now: Now) -> Lookup {
        let Some(handle) = self.find(key, hash) else {
            return Lookup::Miss;
        };
        let header = self.memory.header(handle);
        if header.is_expired(now.now) {
            self.remove_dead(handle, hash);
            return Lookup::Expired;
        }
        if self.is_flushed(header, now) {
            self.remove_dead(handle, hash);
            return Lookup::Flushed;
        }
        Lookup::Hit(handle)
    }

    pub(super) fn lookup_live(&mut self, key: &[u8], hash: u64, now: Now) -> Option<Handle> {
        match self.lookup(key, hash, now) {
            Lookup::Hit(handle) => Some(handle),
            _ => None,
        }
    }

    /// Unlinks an expired or flushed item found by a reader.
    pub(super) fn remove_dead(&mut self, handle: Handle, hash: u64) {
        let unfetched = self.memory.header(handle).state & FETCHED == 0;
        let class = self.class_counters(handle);
        class.reclaimed += 1;
        class.expired_unfetched += u64::from(unfetched);
        self.counters.reclaimed += 1;
        if unfetched {
            self.counters.expired_unfetched += 1;
        }
        self.unlink(handle, hash);
    }

    /// Removes an item from the index, its eviction queue and memory.
    pub(super) fn unlink(&mut self, handle: Handle, hash: u64) {
        self.index.remove(hash, handle);
        self.release_item(handle);
    }

    /// Removes an item from its eviction queue, the counts and memory, leaving its index
    /// entry to the caller (an overwrite files the new item in the same slot).
    pub(super) fn release_item(&mut self, handle: Handle) {
        self.memory.dequeue(handle);
        let header = *self.memory.header(handle);
        let size = self.memory.item_size(handle) as u64;
        let class = self.memory.class_of(handle);
        self.memory.class_mut(class).requested -= size;
        if header.exptime != 0 {
            self.expiring -= 1;
        }
        self.counters.curr_items -= 1;
        self.counters.bytes -= size;
        self.memory.release(handle);
    }

    pub(super) fn hash_of(&self, handle: Handle) -> u64 {
        self.hasher.hash_one(self.memory.key(handle))
    }
}
