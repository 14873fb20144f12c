//! What clients ask of a shard: read, store (all modes, CAS, append/prepend), delete,
//! touch and incr/decr, with memcached's counting of hits and misses.

use super::{
    ArithOutcome, ItemView, Lookup, Now, OutOfMemory, Shard, StoreMode, StoreOutcome, Write,
};
use crate::limits::memcached_item_size;
use crate::numbers::{Decimal, strtoull};
use crate::store::item::{Handle, Header, IN_MAIN, LIVE, STALE, TOKEN_SENT, item_size};
use crate::store::memory::{Memory, large_footprint};
use bytes::{Bytes, BytesMut};
use std::hash::BuildHasher;

impl Shard {
    /// Counts a get that found nothing live (and why).
    pub(super) fn count_get_miss(&mut self, miss: Lookup) {
        self.counters.get_misses += 1;
        match miss {
            Lookup::Expired => self.counters.get_expired += 1,
            Lookup::Flushed => self.counters.get_flushed += 1,
            _ => {}
        }
    }

    /// Reads an item, optionally setting a new expiry (gat), and lets `visit` copy what
    /// it needs while the lock is held. Returns whether it was a hit.
    pub fn fetch(
        &mut self,
        key: &[u8],
        hash: u64,
        now: Now,
        new_expiry: Option<u32>,
        visit: impl FnOnce(ItemView<'_>),
    ) -> bool {
        let handle = match self.lookup(key, hash, now) {
            Lookup::Hit(handle) => handle,
            miss => {
                self.count_get_miss(miss);
                if new_expiry.is_some() {
                    self.counters.touch_misses += 1;
                }
                return false;
            }
        };
        self.counters.get_hits += 1;
        self.class_counters(handle).get_hits += 1;
        self.memory.mark_fetched(handle, now.now);
        if let Some(exptime) = new_expiry {
            self.counters.touch_hits += 1;
            self.class_counters(handle).touch_hits += 1;
            self.set_expiry(handle, exptime);
        }
        visit(ItemView {
            key,
            flags: self.memory.flags(handle),
            cas: self.memory.header(handle).cas,
            value: self.memory.value(handle),
        });
        true
    }

    /// Sets a new expiry on a live item (`touch`).
    pub fn touch(&mut self, key: &[u8], hash: u64, now: Now, exptime: u32) -> bool {
        match self.lookup_live(key, hash, now) {
            Some(handle) => {
                self.counters.touch_hits += 1;
                self.class_counters(handle).touch_hits += 1;
                self.memory.mark_fetched(handle, now.now);
                self.set_expiry(handle, exptime);
                true
            }
            None => {
                self.counters.touch_misses += 1;
                false
            }
        }
    }

    /// Deletes an item.
    pub fn delete(&mut self, key: &[u8], hash: u64, now: Now) -> bool {
        match self.lookup_live(key, hash, now) {
            Some(handle) => {
                self.counters.delete_hits += 1;
                self.class_counters(handle).delete_hits += 1;
                self.unlink(handle, hash);
                true
            }
            None => {
                self.counters.delete_misses += 1;
                false
            }
        }
    }

    /// Removes an item without counting a delete (a failed `set` clears the old value).
    pub fn discard(&mut self, key: &[u8], hash: u64) {
        if let Some(handle) = self.find(key, hash) {
            self.unlink(handle, hash);
        }
    }

    /// A CAS value for a new or changed item: unique across the store (0 with `-C`).
    pub(super) fn new_cas(&mut self) -> u64 {
        if !self.cas_enabled {
            return 0;
        }
        self.cas.take()
    }

    /// The CAS value the next change in this shard gets (flush_all's cliff).
    pub(super) fn next_cas(&self) -> u64 {
        self.cas.peek()
    }

    /// Makes every later CAS value of this shard larger than `cas`.
    pub fn raise_cas_above(&mut self, cas: u64) {
        self.cas.raise_above(cas);
    }

    /// A store with an optional CAS comparison, as memcached's `do_store_item`: a set,
    /// add or replace with a CAS is a `cas` (missing: not found; changed: exists), an
    /// append or prepend checks it only against an item that is there. With
    /// `invalidate` (meta `ms I`) a set or replace also accepts an older CAS: the new
    /// value is stored stale, keeping the old item's expiry and its recache token. Counts
    /// `cmd_set` in the class the written data falls in, as memcached counts it once the
    /// item is allocated: every outcome but a failure for memory (which may be retried).
    pub fn store_conditionally(
        &mut self,
        mode: StoreMode,
        compare: Option<u64>,
        invalidate: bool,
        write: Write<'_>,
        now: Now,
    ) -> StoreOutcome {
        let class = self
            .sizes
            .class_for(item_size(write.key.len(), write.value.len(), write.flags))
            .unwrap_or(self.memory.large_class());
        let outcome = self.store_compared(mode, compare, invalidate, write, now);
        if outcome != StoreOutcome::OutOfMemory {
            self.memory.class_mut(class).counters.cmd_set += 1;
        }
        outcome
    }

    fn store_compared(
        &mut self,
        mode: StoreMode,
        compare: Option<u64>,
        invalidate: bool,
        write: Write<'_>,
        now: Now,
    ) -> StoreOutcome {
        let Write {
            key,
            hash,
            flags,
            exptime,
            value,
        } = write;
        let existing = self.lookup_live(key, hash, now);
        let mut state = 0;
        let mut exptime = exptime;
        let appending = matches!(mode, StoreMode::Append | StoreMode::Prepend);
        if let Some(expected) = compare {
            match existing {
                None if appending => return StoreOutcome::NotStored,
                None => {
                    self.counters.cas_misses += 1;
                    return StoreOutcome::NotFound;
                }
                Some(handle) => {
                    let old = *self.memory.header(handle);
                    if old.cas != expected {
                        let older = expected != 0 && expected < old.cas;
                        if appending || !(invalidate && older) {
                            if !appending {
                                self.counters.cas_badval += 1;
                                self.class_counters(handle).cas_badval += 1;
                            }
                            return StoreOutcome::Exists;
                        }
                        state |= STALE | (old.state & TOKEN_SENT);
                        exptime = old.exptime;
                    }
                }
            }
        }
        let mode = match (mode, compare) {
            // A CAS makes an add a `cas`: the key is there and matched.
            (StoreMode::Add, Some(_)) => StoreMode::Set,
            (mode, _) => mode,
        };
        let (flags, exptime, old_value) = match (mode, existing) {
            (StoreMode::Add, Some(handle)) => {
                // memcached refreshes the access time of the item an add collided with
                // at once (an access, not a fetch: `mg h` does not count it).
                self.memory.header_mut(handle).atime = now.now;
                return StoreOutcome::NotStored;
            }
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                return StoreOutcome::NotStored;
            }
            (StoreMode::Append | StoreMode::Prepend, Some(handle)) => {
                let old_len = self.memory.value_len(handle);
                if memcached_item_size(key.len(), old_len + value.len(), self.cas_enabled)
                    > self.item_size_max
                {
                    return StoreOutcome::NotStored;
                }
                let old = self.memory.value(handle).as_slice().to_vec();
                let header = self.memory.header(handle);
                (self.memory.flags(handle), header.exptime, Some(old))
            }
            _ => (flags, exptime, None),
        };
        let parts: [&[u8]; 2] = match (&old_value, mode) {
            (Some(old), StoreMode::Append) => [old, value],
            (Some(old), _) => [value, old],
            (None, _) => [value, &[]],
        };
        let replaced_class = compare
            .and(existing)
            .map(|handle| self.memory.class_of(handle));
        match self.put_over(existing, key, hash, flags, exptime, &parts, now, state) {
            Ok(cas) => {
                // Counted once stored, as memcached (which allocates before comparing),
                // and so a store retried for memory counts once; in the class of the
                // item replaced, as memcached.
                if let (Some(_), Some(class), false) = (compare, replaced_class, appending) {
                    self.counters.cas_hits += 1;
                    self.memory.class_mut(class).counters.cas_hits += 1;
                }
                StoreOutcome::Stored(cas)
            }
            Err(OutOfMemory) => {
                self.counters.store_no_memory += 1;
                StoreOutcome::OutOfMemory
            }
        }
    }

    /// Allocates, writes and links a new item, replacing any item under the same key.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put(
        &mut self,
        key: &[u8],
        hash: u64,
        flags: u32,
        exptime: u32,
        parts: &[&[u8]],
        now: Now,
        extra_state: u8,
    ) -> Result<u64, OutOfMemory> {
        self.put_over(None, key, hash, flags, exptime, parts, now, extra_state)
    }

    /// `put` for a caller that just found `existing`, the live item under the key (the
    /// index unchanged since): a new item of the same slab class is written over it in
    /// its chunk, which no reader can hold (readers copy chunk bytes under the lock), so
    /// the overwrite needs no allocation, no eviction and no index probe.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put_over(
        &mut self,
        existing: Option<Handle>,
        key: &[u8],
        hash: u64,
        flags: u32,
        exptime: u32,
        parts: &[&[u8]],
        now: Now,
        extra_state: u8,
    ) -> Result<u64, OutOfMemory> {
        self.room_wanted = None;
        let value_len: usize = parts.iter().map(|part| part.len()).sum();
        let total = item_size(key.len(), value_len, flags);
        let class = self.sizes.class_for(total);
        let in_place = match (existing, class) {
            (Some(old), Some(class)) => {
                Memory::page_of(old).is_some() && self.memory.class_of(old) == class
            }
            _ => false,
        };
        let cas = self.new_cas();
        let header = Header::new(
            cas,
            exptime,
            now.now,
            value_len,
            key.len() as u8,
            LIVE | extra_state,
        );
        if let (true, Some(old), Some(class)) = (in_place, existing, class) {
            self.rewrite_in_place(old, class, header, flags, key, parts, total);
            return Ok(cas);
        }
        let handle = match class {
            Some(class) => {
                let handle = self.chunk_for(class, now)?;
                self.memory.write_item(handle, header, flags, key, parts);
                handle
            }
            None => {
                let mut value = BytesMut::with_capacity(value_len);
                for part in parts {
                    value.extend_from_slice(part);
                }
                let value: Bytes = value.freeze();
                loop {
                    if let Some(handle) =
                        self.memory.insert_large(header, flags, key, value.clone())
                    {
                        break handle;
                    }
                    let footprint = large_footprint(key.len(), value_len);
                    self.make_room_for_large(footprint, now)?;
                }
            }
        };
        let memory = &self.memory;
        let replaced =
            if let Some(at) = self.index.position(hash, |other| memory.key_is(other, key)) {
                // One probe for an overwrite: the new item takes the old one's slot.
                let old = self.index.at(at);
                let old_header = *self.memory.header(old);
                self.release_item(old);
                self.index.set_at(at, handle);
                Some(old_header)
            } else {
                let hasher = &self.hasher;
                self.index
                    .insert_unique(hash, handle, |other| hasher.hash_one(memory.key(other)));
                self.charge_index();
                None
            };
        self.link_new(handle, replaced, hash, exptime, total);
        Ok(cas)
    }

    /// Writes a new item over `old`, a live item of the same slab class under the same
    /// key: it keeps the chunk, the index slot and its place in the eviction order (main
    /// queue, or its place on the probation ring), the write counting as an access as a
    /// read does; the counts change by the difference in size. Keeping the place costs
    /// nothing, where moving a probation item to the ring's end touched the ring's first
    /// item (a cache miss per set: 7% of the server's CPU on set4k).
    #[allow(clippy::too_many_arguments)]
    fn rewrite_in_place(
        &mut self,
        old: Handle,
        class: usize,
        header: Header,
        flags: u32,
        key: &[u8],
        parts: &[&[u8]],
        total: usize,
    ) {
        let old_header = *self.memory.header(old);
        let old_size = self.memory.item_size(old);
        self.memory.rewrite_item(old, header, flags, key, parts);
        let written = self.memory.header_mut(old);
        written.set_overflowed(old_header.overflowed());
        written.state |= old_header.state & IN_MAIN;
        written.set_frequency(old_header.frequency() + 1);
        let state = self.memory.class_mut(class);
        state.requested = state.requested - old_size as u64 + total as u64;
        self.expiring =
            self.expiring - u64::from(old_header.exptime != 0) + u64::from(header.exptime != 0);
        self.counters.bytes = self.counters.bytes - old_size as u64 + total as u64;
        self.counters.total_items += 1;
    }

    /// Files a written item in the eviction policy and the counts. A value written over
    /// a kept item (`replaced`, its old header) takes its queue and its count, the write
    /// counting as an access. A new key the small queue evicted unread lately goes to
    /// main.
    fn link_new(
        &mut self,
        handle: Handle,
        replaced: Option<Header>,
        hash: u64,
        exptime: u32,
        total: usize,
    ) {
        let main = match replaced {
            Some(old_header) => {
                self.memory
                    .header_mut(handle)
                    .set_frequency(old_header.frequency() + 1);
                old_header.state & IN_MAIN != 0
            }
            None => self.ghost.take(hash),
        };
        if exptime != 0 {
            self.expiring += 1;
        }
        self.memory.enqueue(handle, main);
        let class = self.memory.class_of(handle);
        self.memory.class_mut(class).requested += total as u64;
        self.counters.curr_items += 1;
        self.counters.total_items += 1;
        self.counters.bytes += total as u64;
    }

    pub(super) fn set_expiry(&mut self, handle: Handle, exptime: u32) {
        let header = self.memory.header_mut(handle);
        match (header.exptime != 0, exptime != 0) {
            (false, true) => self.expiring += 1,
            (true, false) => self.expiring -= 1,
            _ => {}
        }
        self.memory.header_mut(handle).exptime = exptime;
    }

    /// incr/decr with memcached's rules: 64-bit wrap on incr, floor at 0 on decr, in place
    /// (space padded) when the new number is not longer than the old text.
    pub fn arith(
        &mut self,
        key: &[u8],
        hash: u64,
        now: Now,
        incr: bool,
        delta: u64,
    ) -> ArithOutcome {
        match self.lookup_live(key, hash, now) {
            Some(handle) => self.apply_delta(handle, key, hash, incr, delta, now),
            None => {
                if incr {
                    self.counters.incr_misses += 1;
                } else {
                    self.counters.decr_misses += 1;
                }
                ArithOutcome::NotFound
            }
        }
    }

    pub(super) fn apply_delta(
        &mut self,
        handle: Handle,
        key: &[u8],
        hash: u64,
        incr: bool,
        delta: u64,
        now: Now,
    ) -> ArithOutcome {
        let Some(current) = strtoull(self.memory.value(handle).as_slice()) else {
            return ArithOutcome::NonNumeric;
        };
        let class = self.class_counters(handle);
        if incr {
            class.incr_hits += 1;
            self.counters.incr_hits += 1;
        } else {
            class.decr_hits += 1;
            self.counters.decr_hits += 1;
        }
        let result = if incr {
            current.wrapping_add(delta)
        } else {
            current.saturating_sub(delta)
        };
        let digits = Decimal::new(result);
        let text = digits.as_bytes();
        let cas = self.new_cas();
        if let Some(stored) = self.memory.inline_value_mut(handle)
            && text.len() <= stored.len()
        {
            stored[..text.len()].copy_from_slice(text);
            stored[text.len()..].fill(b' ');
            // An access, not a fetch: memcached's incr updates the access time only
            // (`mg h` still reports whether anything read the item).
            let header = self.memory.header_mut(handle);
            header.cas = cas;
            header.atime = now.now;
            return ArithOutcome::Value(result);
        }
        let (flags, exptime) = (
            self.memory.flags(handle),
            self.memory.header(handle).exptime,
        );
        match self.put_over(Some(handle), key, hash, flags, exptime, &[text], now, 0) {
            Ok(_) => ArithOutcome::Value(result),
            Err(OutOfMemory) => ArithOutcome::OutOfMemory,
        }
    }
}
