//! One shard of the store: an index from key to item handle, the shard's slab memory
//! and its LRU lists. Everything here runs under the shard's mutex, so counters are plain
//! integers and no operation takes a second lock.

use super::item::{
    ACTIVE, FETCHED, Handle, Header, LIVE, NIL, STALE, item_size, memcached_item_size,
};
use super::memory::{Budget, Memory, PAGE_SIZE, SizeClasses, ValueRef};
use bytes::{Bytes, BytesMut};
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::hash::RandomState;
use std::sync::Arc;

/// How many LRU-tail items get a second chance before one is evicted regardless.
const SECOND_CHANCES: usize = 5;

/// Time facts every operation needs, read once per request by the store.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Current server time.
    pub now: u32,
    /// flush_all cut-off: items stored at or before it are gone once it has passed.
    pub oldest_live: u32,
}

/// The memory could not hold the item (evictions disabled, or nothing left to evict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

/// What a failed allocation needed while other shards held part of the shared budget:
/// the store frees that much by age across all shards and retries, so a shard never
/// fails while memory elsewhere could be evicted (issue #10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomWanted {
    /// Bytes that must fit under the limit: a page, or a large item's footprint.
    pub bytes: usize,
    /// The class that ran out (its `outofmemory` counts a final failure).
    pub class: usize,
}

/// How a storage command treats an existing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// Store unconditionally.
    Set,
    /// Store only if the key is absent.
    Add,
    /// Store only if the key is present.
    Replace,
    /// Add bytes after the existing value.
    Append,
    /// Add bytes before the existing value.
    Prepend,
    /// Store only if the item's CAS still equals this one.
    Cas(u64),
}

/// Result of a storage command, mapped one-to-one to memcached's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored; the new CAS value.
    Stored(u64),
    /// add/replace/append/prepend condition not met.
    NotStored,
    /// cas: the item changed since it was read.
    Exists,
    /// cas: no such item.
    NotFound,
    /// No memory could be found for the item.
    OutOfMemory,
}

/// Result of incr/decr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The new value.
    Value(u64),
    /// No such item.
    NotFound,
    /// The stored value is not a decimal number.
    NonNumeric,
    /// The longer result could not be stored.
    OutOfMemory,
}

/// The item a store writes: key, where it hashes, and what it holds.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Its hash (from `Store::locate`).
    pub hash: u64,
    /// Client flags.
    pub flags: u32,
    /// Absolute expiry (server time).
    pub exptime: u32,
    /// The value.
    pub value: &'a [u8],
}

/// A read-only view of an item handed to a reader while the shard lock is held.
pub struct ItemView<'a> {
    /// The item's key.
    pub key: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// CAS value (0 with `-C`).
    pub cas: u64,
    /// The value, inline or shared.
    pub value: ValueRef<'a>,
}

/// One line of `stats cachedump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedItem {
    /// The key.
    pub key: Vec<u8>,
    /// Value length.
    pub size: usize,
    /// Relative expiry time (0 = never).
    pub exptime: u32,
}

/// Counters kept per shard under its lock; `stats` adds the shards up.
#[derive(Debug, Default, Clone)]
#[allow(missing_docs)]
pub struct ShardCounters {
    pub get_hits: u64,
    pub get_misses: u64,
    pub get_expired: u64,
    pub get_flushed: u64,
    pub touch_hits: u64,
    pub touch_misses: u64,
    pub delete_hits: u64,
    pub delete_misses: u64,
    pub incr_hits: u64,
    pub incr_misses: u64,
    pub decr_hits: u64,
    pub decr_misses: u64,
    pub cas_hits: u64,
    pub cas_misses: u64,
    pub cas_badval: u64,
    pub total_items: u64,
    pub curr_items: u64,
    pub bytes: u64,
    pub evictions: u64,
    pub evicted_unfetched: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    pub store_no_memory: u64,
    pub slabs_moved: u64,
}

impl ShardCounters {
    /// Adds another shard's counters into this one.
    pub fn add(&mut self, other: &ShardCounters) {
        macro_rules! sum {
            ($($field:ident),*) => { $(self.$field += other.$field;)* };
        }
        sum!(
            get_hits,
            get_misses,
            get_expired,
            get_flushed,
            touch_hits,
            touch_misses,
            delete_hits,
            delete_misses,
            incr_hits,
            incr_misses,
            decr_hits,
            decr_misses,
            cas_hits,
            cas_misses,
            cas_badval,
            total_items,
            curr_items,
            bytes,
            evictions,
            evicted_unfetched,
            reclaimed,
            expired_unfetched,
            crawler_reclaimed,
            crawler_items_checked,
            store_no_memory,
            slabs_moved
        );
    }

    /// Zeroes what `stats reset` zeroes (not the gauges).
    pub fn reset(&mut self) {
        let (curr_items, bytes) = (self.curr_items, self.bytes);
        *self = ShardCounters {
            curr_items,
            bytes,
            ..ShardCounters::default()
        };
    }
}

enum Lookup {
    Hit(Handle),
    Miss,
    Expired,
    Flushed,
}

/// Where a batched copy of a shard's items ([`Shard::copy_items`]) stands: lets a
/// snapshot release the shard lock between batches.
#[derive(Debug, Default)]
pub struct ItemCursor {
    /// Page being walked; past the last page, the large items.
    position: usize,
    /// Last handle visited in that page or among the large items.
    after: Option<Handle>,
    done: bool,
}

impl ItemCursor {
    /// True once every item has been visited.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// A shard: index, memory and counters.
pub struct Shard {
    index: HashTable<Handle>,
    /// Slab memory, LRU lists and per-class counters.
    pub memory: Memory,
    sizes: SizeClasses,
    hasher: RandomState,
    next_cas: u64,
    oldest_cas: u64,
    cas_enabled: bool,
    evictions_enabled: bool,
    item_size_max: usize,
    crawl_cursor: usize,
    /// Bytes of index charged to the memory budget.
    index_charge: usize,
    /// Live items that have an expiry time: the crawler has work only while some do.
    expiring: u64,
    /// A flush_all happened: the crawler sweeps the whole shard once.
    sweep_requested: bool,
    /// Set by the last allocation when it failed although other shards hold memory.
    room_wanted: Option<RoomWanted>,
    /// Counters reported by `stats`.
    pub counters: ShardCounters,
}

impl Shard {
    /// An empty shard drawing memory from `budget`.
    pub fn new(
        sizes: SizeClasses,
        budget: Arc<Budget>,
        hasher: RandomState,
        cas_enabled: bool,
        evictions_enabled: bool,
        item_size_max: usize,
    ) -> Self {
        Shard {
            index: HashTable::new(),
            memory: Memory::new(&sizes, budget),
            sizes,
            hasher,
            next_cas: 1,
            oldest_cas: 0,
            cas_enabled,
            evictions_enabled,
            item_size_max,
            crawl_cursor: 0,
            index_charge: 0,
            expiring: 0,
            sweep_requested: false,
            room_wanted: None,
            counters: ShardCounters::default(),
        }
    }

    /// Empties the shard after a panic interrupted an operation on it: an LRU list or
    /// the index may be half updated, so nothing in it is trusted. Memory goes back to
    /// the budget; CAS values keep counting up so no old CAS can match a new item.
    pub fn rebuild(&mut self) {
        self.memory.clear(&self.sizes);
        self.memory.budget().give_back(self.index_charge);
        self.index = HashTable::new();
        self.index_charge = 0;
        self.crawl_cursor = 0;
        self.expiring = 0;
        self.sweep_requested = false;
        self.room_wanted = None;
        self.counters.curr_items = 0;
        self.counters.bytes = 0;
    }

    /// Bytes of the index (counted in `hash_bytes` and charged against `-m`).
    pub fn index_bytes(&self) -> usize {
        // hashbrown keeps a control byte per bucket; capacity is 7/8 of the buckets.
        let buckets = if self.index.capacity() == 0 {
            0
        } else {
            (self.index.capacity() * 8 / 7).next_power_of_two()
        };
        buckets * (std::mem::size_of::<Handle>() + 1)
    }

    /// Charges index growth to the budget, so `-m` bounds items and index together.
    fn charge_index(&mut self) {
        let now = self.index_bytes();
        if now > self.index_charge {
            self.memory.budget().take_anyway(now - self.index_charge);
        } else if now < self.index_charge {
            self.memory.budget().give_back(self.index_charge - now);
        }
        self.index_charge = now;
    }

    /// Returns whole pages to the budget while it is overdrawn (after the index grew).
    fn repay_budget(&mut self) {
        while self.memory.budget().overdrawn() && self.give_back_memory() {}
    }

    /// Returns every page that holds no live item to the budget; evicts nothing.
    /// Returns the bytes given back.
    pub fn give_back_free_pages(&mut self) -> usize {
        let mut freed = 0;
        loop {
            if self.memory.drop_free_page() {
                freed += PAGE_SIZE;
                continue;
            }
            match self.memory.empty_page_outside(usize::MAX) {
                Some(page) => self.memory.detach_page(page),
                None => return freed,
            }
        }
    }

    /// Gives one piece of memory back to the shared budget: a free page, or (with
    /// evictions on) the oldest large item or the page holding the oldest small item.
    /// False if nothing could be given back.
    pub fn give_back_memory(&mut self) -> bool {
        if self.give_back_free_pages() > 0 {
            return true;
        }
        if !self.evictions_enabled {
            return false;
        }
        let large = self.memory.large_class();
        match self.oldest_tail_class(large) {
            Some(victim) if victim == large => {
                self.evict_tail(victim);
            }
            Some(victim) => self.free_page_of(victim),
            None => return false,
        }
        true
    }

    /// Frees one page of a slab class for the budget: evicts from the LRU tail, oldest
    /// first, until a page empties; if a page's worth of evictions emptied none (items
    /// of all ages share pages), the page of the tail is emptied outright.
    fn free_page_of(&mut self, class: usize) {
        for _ in 0..PAGE_SIZE / self.memory.classes[class].chunk_size {
            if self.memory.classes[class].tail == NIL {
                return;
            }
            let evicted = self.evict_tail(class);
            if let Some(page) = Memory::page_of(evicted)
                && self.memory.page_unused(page)
            {
                self.memory.detach_page(page);
                self.memory.drop_free_page();
                return;
            }
        }
        if self.memory.classes[class].tail != NIL {
            self.move_page_from(class);
            self.memory.drop_free_page();
        }
    }

    /// Last access time of the shard's least recently used item: the store evicts from
    /// the shard whose oldest item is oldest.
    pub fn oldest_access(&self) -> Option<u32> {
        let class = self.oldest_tail_class(self.memory.large_class())?;
        Some(self.memory.header(self.memory.classes[class].tail).atime)
    }

    /// Takes the note left by an allocation that failed while other shards hold memory.
    pub fn take_room_wanted(&mut self) -> Option<RoomWanted> {
        self.room_wanted.take()
    }

    /// Counts a final allocation failure of `class` (`outofmemory` in `stats slabs`).
    pub fn count_out_of_memory(&mut self, class: usize) {
        self.memory.classes[class].out_of_memory += 1;
    }

    /// True when part of the shared budget is held by other shards.
    fn others_hold_memory(&self) -> bool {
        self.memory.budget().used() > self.memory.used + self.index_charge
    }

    /// An allocation of `class` needing `bytes` found no room in this shard: final if
    /// this shard holds the whole budget, otherwise a note for the store to free
    /// memory in other shards and try again.
    fn no_room(&mut self, class: usize, bytes: usize) -> OutOfMemory {
        if self.others_hold_memory() {
            self.room_wanted = Some(RoomWanted { bytes, class });
        } else {
            self.count_out_of_memory(class);
        }
        OutOfMemory
    }

    fn find(&self, key: &[u8], hash: u64) -> Option<Handle> {
        let memory = &self.memory;
        self.index
            .find(hash, |&handle| memory.key(handle) == key)
            .copied()
    }

    fn is_flushed(&self, header: &Header, now: Now) -> bool {
        now.oldest_live != 0
            && now.oldest_live <= now.now
            && (header.time <= now.oldest_live
                || (self.oldest_cas != 0 && header.cas != 0 && header.cas < self.oldest_cas))
    }

    /// Finds a live item, removing it on the spot if it has expired or been flushed.
    fn lookup(&mut self, key: &[u8], hash: u64, now: Now) -> Lookup {
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

    fn lookup_live(&mut self, key: &[u8], hash: u64, now: Now) -> Option<Handle> {
        match self.lookup(key, hash, now) {
            Lookup::Hit(handle) => Some(handle),
            _ => None,
        }
    }

    /// Unlinks an expired or flushed item found by a reader.
    fn remove_dead(&mut self, handle: Handle, hash: u64) {
        let class = self.memory.class_of(handle);
        self.memory.classes[class].reclaimed += 1;
        self.counters.reclaimed += 1;
        if self.memory.header(handle).state & FETCHED == 0 {
            self.memory.classes[class].expired_unfetched += 1;
            self.counters.expired_unfetched += 1;
        }
        self.unlink(handle, hash);
    }

    /// Removes an item from the index, its LRU list and memory.
    fn unlink(&mut self, handle: Handle, hash: u64) {
        if let Ok(entry) = self
            .index
            .find_entry(hash, |&candidate| candidate == handle)
        {
            entry.remove();
        }
        self.memory.lru_unlink(handle);
        let header = *self.memory.header(handle);
        let size = item_size(header.key_len as usize, header.value_len as usize) as u64;
        let class = self.memory.class_of(handle);
        self.memory.classes[class].requested -= size;
        if header.exptime != 0 {
            self.expiring -= 1;
        }
        self.counters.curr_items -= 1;
        self.counters.bytes -= size;
        self.memory.release(handle);
    }

    fn hash_of(&self, handle: Handle) -> u64 {
        self.hasher.hash_one(self.memory.key(handle))
    }

    /// Counts a get that found nothing live (and why).
    fn count_get_miss(&mut self, miss: Lookup) {
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
        self.memory.mark_fetched(handle, now.now);
        if let Some(exptime) = new_expiry {
            self.counters.touch_hits += 1;
            self.set_expiry(handle, exptime);
        }
        let header = self.memory.header(handle);
        visit(ItemView {
            key,
            flags: header.flags,
            cas: header.cas,
            value: self.memory.value(handle),
        });
        true
    }

    /// Sets a new expiry on a live item (`touch`).
    pub fn touch(&mut self, key: &[u8], hash: u64, now: Now, exptime: u32) -> bool {
        match self.lookup_live(key, hash, now) {
            Some(handle) => {
                self.counters.touch_hits += 1;
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

    fn new_cas(&mut self) -> u64 {
        if !self.cas_enabled {
            return 0;
        }
        let cas = self.next_cas;
        self.next_cas += 1;
        cas
    }

    /// Executes set/add/replace/append/prepend/cas.
    #[allow(clippy::too_many_arguments)]
    pub fn store(
        &mut self,
        mode: StoreMode,
        key: &[u8],
        hash: u64,
        flags: u32,
        exptime: u32,
        value: &[u8],
        now: Now,
    ) -> StoreOutcome {
        let (mode, compare) = match mode {
            StoreMode::Cas(expected) => (StoreMode::Set, Some(expected)),
            mode => (mode, None),
        };
        let write = Write {
            key,
            hash,
            flags,
            exptime,
            value,
        };
        self.store_conditionally(mode, compare, false, write, now)
    }

    /// A store with an optional CAS comparison; with `invalidate`, an older CAS is
    /// accepted and the new item is marked stale (meta `ms I`).
    pub(crate) fn store_conditionally(
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
        if let Some(expected) = compare {
            let Some(handle) = existing else {
                self.counters.cas_misses += 1;
                return StoreOutcome::NotFound;
            };
            let current = self.memory.header(handle).cas;
            if current != expected {
                if !(invalidate && expected < current) {
                    self.counters.cas_badval += 1;
                    return StoreOutcome::Exists;
                }
                state |= STALE;
            }
        }
        let (flags, exptime, old_value) = match (mode, existing) {
            (StoreMode::Add, Some(handle)) => {
                // memcached refreshes the LRU position of the item an add collided with.
                self.memory.mark_fetched(handle, now.now);
                return StoreOutcome::NotStored;
            }
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                return StoreOutcome::NotStored;
            }
            (StoreMode::Append | StoreMode::Prepend, Some(handle)) => {
                let header = self.memory.header(handle);
                let old_len = header.value_len as usize;
                if memcached_item_size(key.len(), old_len + value.len(), self.cas_enabled)
                    > self.item_size_max
                {
                    return StoreOutcome::NotStored;
                }
                let old = self.memory.value(handle).as_slice().to_vec();
                (header.flags, header.exptime, Some(old))
            }
            _ => (flags, exptime, None),
        };
        let parts: [&[u8]; 2] = match (&old_value, mode) {
            (Some(old), StoreMode::Append) => [old, value],
            (Some(old), _) => [value, old],
            (None, _) => [value, &[]],
        };
        match self.put(key, hash, flags, exptime, &parts, now, state) {
            Ok(cas) => {
                // Counted once stored, as memcached (which allocates before comparing),
                // and so a store retried for memory counts once.
                if compare.is_some() {
                    self.counters.cas_hits += 1;
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
    fn put(
        &mut self,
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
        let total = item_size(key.len(), value_len);
        let cas = self.new_cas();
        let header = Header {
            cas,
            prev: NIL,
            next: NIL,
            time: now.now,
            exptime,
            atime: now.now,
            flags,
            value_len: value_len as u32,
            key_len: key.len() as u8,
            state: LIVE | extra_state,
        };
        let handle = match self.sizes.class_for(total) {
            Some(class) => {
                let handle = self.chunk_for(class, now)?;
                self.memory.write_item(handle, header, key, parts);
                handle
            }
            None => {
                let mut value = BytesMut::with_capacity(value_len);
                for part in parts {
                    value.extend_from_slice(part);
                }
                let value: Bytes = value.freeze();
                loop {
                    if let Some(handle) = self.memory.insert_large(header, key, value.clone()) {
                        break handle;
                    }
                    let footprint = super::memory::large_footprint(key.len(), value_len);
                    self.make_room_for_large(footprint, now)?;
                }
            }
        };
        if let Some(old) = self.find(key, hash) {
            self.unlink(old, hash);
        }
        let memory = &self.memory;
        let hasher = &self.hasher;
        self.index
            .insert_unique(hash, handle, |&other| hasher.hash_one(memory.key(other)));
        self.charge_index();
        if exptime != 0 {
            self.expiring += 1;
        }
        self.memory.lru_push_head(handle);
        let class = self.memory.class_of(handle);
        self.memory.classes[class].requested += total as u64;
        self.counters.curr_items += 1;
        self.counters.total_items += 1;
        self.counters.bytes += total as u64;
        Ok(cas)
    }

    /// A free chunk of `class`, making room by expiry, page growth or eviction.
    fn chunk_for(&mut self, class: usize, now: Now) -> Result<Handle, OutOfMemory> {
        self.repay_budget();
        loop {
            if let Some(handle) = self.memory.take_chunk(class) {
                return Ok(handle);
            }
            if self.memory.grow_class(class) {
                continue;
            }
            if self.reclaim_dead_tail(class, now) {
                continue;
            }
            if let Some(page) = self.memory.empty_page_outside(class) {
                self.memory.detach_page(page);
                self.counters.slabs_moved += 1;
                continue;
            }
            if !self.evictions_enabled {
                return Err(self.no_room(class, PAGE_SIZE));
            }
            match self.oldest_tail_class(class) {
                Some(victim) if victim == class => {
                    self.evict_tail(class);
                }
                Some(victim) if victim == self.memory.large_class() => {
                    self.evict_tail(victim);
                }
                Some(victim) => self.move_page_from(victim),
                None => return Err(self.no_room(class, PAGE_SIZE)),
            }
        }
    }

    /// Gives one piece of memory back to the budget so a large item of `footprint`
    /// bytes may fit: a free page, a dead item, or else the oldest data.
    fn make_room_for_large(&mut self, footprint: usize, now: Now) -> Result<(), OutOfMemory> {
        let large = self.memory.large_class();
        if self.memory.drop_free_page() || self.reclaim_dead_tail(large, now) {
            return Ok(());
        }
        if let Some(page) = self.memory.empty_page_outside(large) {
            self.memory.detach_page(page);
            return Ok(());
        }
        // A large item needs much room at once. While other shards hold memory, the store
        // evicts by age across all shards (this one included) instead of this shard
        // evicting its own items, which may be the youngest in the cache.
        if !self.evictions_enabled || self.others_hold_memory() {
            return Err(self.no_room(large, footprint));
        }
        match self.oldest_tail_class(large) {
            Some(victim) if victim == large => {
                self.evict_tail(large);
            }
            Some(victim) => self.move_page_from(victim),
            None => return Err(self.no_room(large, footprint)),
        }
        Ok(())
    }

    /// Frees the class's LRU tail if it is expired or flushed (memcached checks a few).
    fn reclaim_dead_tail(&mut self, class: usize, now: Now) -> bool {
        let mut handle = self.memory.classes[class].tail;
        for _ in 0..SECOND_CHANCES {
            if handle == NIL {
                return false;
            }
            let header = *self.memory.header(handle);
            if header.is_expired(now.now) || self.is_flushed(&header, now) {
                let hash = self.hash_of(handle);
                self.remove_dead(handle, hash);
                return true;
            }
            handle = header.prev;
        }
        false
    }

    /// The class whose least recently used item is oldest; `preferred` wins ties. Ages
    /// are whole seconds, so the store order (CAS) breaks ties within a second.
    fn oldest_tail_class(&self, preferred: usize) -> Option<usize> {
        let age_of = |class: usize| {
            let tail = self.memory.classes[class].tail;
            (tail != NIL).then(|| {
                let header = self.memory.header(tail);
                (header.atime, header.cas)
            })
        };
        let mut best = age_of(preferred).map(|age| (preferred, age));
        for class in 0..self.memory.classes.len() {
            if class == preferred
                || self.memory.classes[class].pages == 0 && class != self.memory.large_class()
            {
                continue;
            }
            if let Some(age) = age_of(class)
                && best.is_none_or(|(_, best_age)| age < best_age)
            {
                best = Some((class, age));
            }
        }
        best.map(|(class, _)| class)
    }

    /// Evicts the LRU tail of a class, giving recently read items a second chance.
    /// Returns the evicted item's (now free) handle.
    fn evict_tail(&mut self, class: usize) -> Handle {
        for _ in 0..SECOND_CHANCES {
            let tail = self.memory.classes[class].tail;
            if self.memory.header(tail).state & ACTIVE == 0 {
                break;
            }
            self.memory.header_mut(tail).state &= !ACTIVE;
            self.memory.lru_unlink(tail);
            self.memory.lru_push_head(tail);
        }
        let victim = self.memory.classes[class].tail;
        self.evict(victim);
        victim
    }

    fn evict(&mut self, handle: Handle) {
        let class = self.memory.class_of(handle);
        self.memory.classes[class].evicted += 1;
        self.counters.evictions += 1;
        if self.memory.header(handle).state & FETCHED == 0 {
            self.memory.classes[class].evicted_unfetched += 1;
            self.counters.evicted_unfetched += 1;
        }
        let hash = self.hash_of(handle);
        self.unlink(handle, hash);
    }

    /// Empties the page holding `victim`'s LRU tail and hands it to the free page list.
    fn move_page_from(&mut self, victim: usize) {
        let tail = self.memory.classes[victim].tail;
        let Some(page) = Memory::page_of(tail) else {
            return self.evict(tail);
        };
        for handle in self.memory.live_in_page(page) {
            self.evict(handle);
        }
        self.memory.detach_page(page);
        self.counters.slabs_moved += 1;
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

    fn apply_delta(
        &mut self,
        handle: Handle,
        key: &[u8],
        hash: u64,
        incr: bool,
        delta: u64,
        now: Now,
    ) -> ArithOutcome {
        let Some(current) = parse_stored_number(self.memory.value(handle).as_slice()) else {
            return ArithOutcome::NonNumeric;
        };
        if incr {
            self.counters.incr_hits += 1;
        } else {
            self.counters.decr_hits += 1;
        }
        let result = if incr {
            current.wrapping_add(delta)
        } else {
            current.saturating_sub(delta)
        };
        let digits = itoa_buffer(result);
        let text = digits.as_slice();
        let cas = self.new_cas();
        if let Some(stored) = self.memory.inline_value_mut(handle)
            && text.len() <= stored.len()
        {
            stored[..text.len()].copy_from_slice(text);
            stored[text.len()..].fill(b' ');
            let header = self.memory.header_mut(handle);
            header.cas = cas;
            header.time = now.now;
            self.memory.mark_fetched(handle, now.now);
            return ArithOutcome::Value(result);
        }
        let header = *self.memory.header(handle);
        match self.put(key, hash, header.flags, header.exptime, &[text], now, 0) {
            Ok(_) => ArithOutcome::Value(result),
            Err(OutOfMemory) => ArithOutcome::OutOfMemory,
        }
    }

    /// Makes every current item invisible (flush_all without delay): items with a CAS
    /// below the shard's next one are flushed once `oldest_live` has passed.
    pub fn mark_flush(&mut self) {
        self.oldest_cas = self.next_cas;
        self.sweep_requested = true;
    }

    /// Asks the crawler for one sweep over the whole shard (a delayed flush came due).
    pub fn request_sweep(&mut self) {
        self.sweep_requested = true;
    }

    fn set_expiry(&mut self, handle: Handle, exptime: u32) {
        let header = self.memory.header_mut(handle);
        match (header.exptime != 0, exptime != 0) {
            (false, true) => self.expiring += 1,
            (true, false) => self.expiring -= 1,
            _ => {}
        }
        self.memory.header_mut(handle).exptime = exptime;
    }

    /// Removes up to a page-worth of expired and flushed items; the background crawler
    /// calls this so dead items free their memory even if nobody asks for them.
    pub fn crawl(&mut self, now: Now, pages: usize) {
        if self.expiring == 0 && !self.sweep_requested {
            return;
        }
        let (handles, cursor) = self.memory.live_handles_from(self.crawl_cursor, pages);
        if cursor == 0 {
            self.sweep_requested = false;
        }
        self.crawl_cursor = cursor;
        for handle in handles {
            self.counters.crawler_items_checked += 1;
            let header = *self.memory.header(handle);
            if header.is_expired(now.now) || self.is_flushed(&header, now) {
                let class = self.memory.class_of(handle);
                self.memory.classes[class].crawler_reclaimed += 1;
                self.counters.crawler_reclaimed += 1;
                if header.state & FETCHED == 0 {
                    self.memory.classes[class].expired_unfetched += 1;
                    self.counters.expired_unfetched += 1;
                }
                let hash = self.hash_of(handle);
                self.unlink(handle, hash);
            }
        }
    }

    /// Visits every live item (`lru_crawler metadump`): key, header and 1-based class.
    pub fn for_each_live(&self, now: Now, mut visit: impl FnMut(&[u8], &Header, usize)) {
        self.for_each_item(now, |key, header, class, _| visit(key, header, class));
    }

    /// Visits every live item with its value, oldest first within each class.
    pub fn for_each_item(&self, now: Now, mut visit: impl FnMut(&[u8], &Header, usize, &[u8])) {
        for class in 0..self.memory.classes.len() {
            let mut handle = self.memory.classes[class].tail;
            while handle != NIL {
                let header = self.memory.header(handle);
                if !header.is_expired(now.now) && !self.is_flushed(header, now) {
                    let value = self.memory.value(handle);
                    visit(self.memory.key(handle), header, class + 1, value.as_slice());
                }
                handle = header.prev;
            }
        }
    }

    /// Copies the next bounded batch of live items (snapshots): at most `max_items`
    /// items and, past the first item, at most `max_bytes` of keys and values, so the
    /// caller holds the shard lock for a bounded time whatever the shard's size. The
    /// walk goes page by page, then over large items; `cursor` remembers where it
    /// stopped. Items stored or moved between batches may be seen twice or not at all
    /// (a later copy of a key is newer), which a periodic snapshot accepts; the final
    /// snapshot runs when nothing writes.
    pub fn copy_items(
        &self,
        now: Now,
        cursor: &mut ItemCursor,
        max_items: usize,
        max_bytes: usize,
        mut visit: impl FnMut(&[u8], &Header, &[u8]),
    ) {
        let (handles, next_position) = self.memory.live_handles_from(cursor.position, 1);
        let mut items = 0;
        let mut bytes = 0;
        for handle in handles {
            if cursor.after.is_some_and(|after| handle <= after) {
                continue;
            }
            if items >= max_items || (items > 0 && bytes >= max_bytes) {
                return;
            }
            let header = self.memory.header(handle);
            if !header.is_expired(now.now) && !self.is_flushed(header, now) {
                let value = self.memory.value(handle);
                visit(self.memory.key(handle), header, value.as_slice());
                bytes += usize::from(header.key_len) + header.value_len as usize;
            }
            items += 1;
            cursor.after = Some(handle);
        }
        // live_handles_from wraps to 0 after the large items: the walk is complete.
        cursor.done = next_position == 0;
        cursor.position = next_position;
        cursor.after = None;
    }

    /// Stores an item from a snapshot, keeping its CAS value and last access time (warm
    /// restart; the access time orders eviction if the snapshot does not fit).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &mut self,
        key: &[u8],
        hash: u64,
        flags: u32,
        expiry: u32,
        cas: u64,
        accessed: u32,
        value: &[u8],
        now: Now,
    ) -> Result<(), OutOfMemory> {
        self.put(key, hash, flags, expiry, &[value], now, 0)?;
        if let Some(handle) = self.find(key, hash) {
            let header = self.memory.header_mut(handle);
            header.atime = accessed.min(now.now);
            if self.cas_enabled {
                header.cas = cas;
                self.next_cas = self.next_cas.max(cas + 1);
            }
        }
        Ok(())
    }

    /// Asks the crawler to sweep this shard now (`lru_crawler crawl`).
    pub fn sweep_now(&mut self) {
        self.sweep_requested = true;
    }

    /// Items of one class from the LRU head, for `stats cachedump`, until `out` holds
    /// `limit` items (0 = all).
    pub fn dump_class(&self, class: usize, limit: usize, now: Now, out: &mut Vec<DumpedItem>) {
        let mut handle = self.memory.classes[class].head;
        while handle != NIL && (limit == 0 || out.len() < limit) {
            let header = self.memory.header(handle);
            if !header.is_expired(now.now) && !self.is_flushed(header, now) {
                out.push(DumpedItem {
                    key: self.memory.key(handle).to_vec(),
                    size: header.value_len as usize,
                    exptime: header.exptime,
                });
            }
            handle = header.next;
        }
    }
}

/// A u64 as decimal digits without allocating.
struct Digits {
    buffer: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_slice(&self) -> &[u8] {
        &self.buffer[self.start..]
    }
}

fn itoa_buffer(mut value: u64) -> Digits {
    let mut buffer = [0u8; 20];
    let mut start = 20;
    loop {
        start -= 1;
        buffer[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    Digits { buffer, start }
}

/// Parses a stored value the way memcached's `safe_strtoull` does: optional leading
/// whitespace, decimal digits, then the end or whitespace. Values over 2^64-1 fail.
pub fn parse_stored_number(value: &[u8]) -> Option<u64> {
    crate::protocol::numbers::strtoull(value)
}

mod meta;
pub use meta::{MetaArith, MetaArithOutcome, MetaDeleteOutcome, MetaGet, MetaView};

#[cfg(test)]
mod tests;
