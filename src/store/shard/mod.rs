//! One shard of the store: an index from key to item handle, the shard's slab memory
//! and its eviction queues. Everything here runs under the shard's mutex, so counters are plain
//! integers and no operation takes a second lock.
//!
//! The shard's methods are split by concern: `index` (lookup, unlink, the index's share
//! of the budget), `operations` (what clients ask: get, store, delete, touch, incr/decr),
//! `meta` (the meta protocol's extras), `eviction` (making room: reclaiming, evicting,
//! moving pages, giving memory back), `maintenance` (flush and the crawler) and `dump`
//! (what operators and snapshots see: class figures, cachedump, item iteration, restore).

mod dump;
mod eviction;
mod ghost;
mod index;
mod maintenance;
mod meta;
mod operations;
mod table;

pub use dump::{ClassStats, DumpedItem, ItemCursor, LiveItem};
use index::Lookup;
pub use maintenance::ALL_CLASSES;
pub use meta::{MetaArith, MetaArithOutcome, MetaDeleteOutcome, MetaGet, MetaView};

use super::KeyHasher;
use super::item::Handle;
use super::memory::{Budget, ClassCounters, Memory, SizeClasses, ValueRef};
use std::sync::Arc;

/// CAS values unique across the whole store without a shared counter: each shard counts
/// on its own and puts its index in the low bits, so two shards never hand out the same
/// value (memcached's come from one global counter; clients compare them across keys).
#[derive(Debug, Clone, Copy)]
pub struct ShardCas {
    /// The next value's counter part (from 1, so no value is 0).
    next: u64,
    /// This shard's index: the low bits of every value it hands out.
    index: u64,
    /// Bits taken by the index (log2 of the shard count).
    shift: u32,
}

impl ShardCas {
    /// Numbering for shard `index` of `count` (a power of two).
    pub fn new(index: usize, count: usize) -> Self {
        ShardCas {
            next: 1,
            index: index as u64,
            shift: count.trailing_zeros(),
        }
    }

    /// The value the next `take` returns.
    fn peek(&self) -> u64 {
        (self.next << self.shift) | self.index
    }

    /// A fresh value, never handed out before by any shard.
    fn take(&mut self) -> u64 {
        let cas = self.peek();
        self.next += 1;
        cas
    }

    /// Makes every later value larger than `cas` (a restored value, from any shard).
    fn raise_above(&mut self, cas: u64) {
        self.next = self.next.max((cas >> self.shift) + 1);
    }
}

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
    pub slab_reassign_evictions_nomem: u64,
    pub slab_reassign_rescues: u64,
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
            slabs_moved,
            slab_reassign_evictions_nomem,
            slab_reassign_rescues
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

/// A shard: index, memory and counters.
pub struct Shard {
    index: table::Table,
    /// Slab memory, eviction queues and per-class counters.
    memory: Memory,
    sizes: SizeClasses,
    hasher: KeyHasher,
    /// Unique CAS values: see `ShardCas`.
    cas: ShardCas,
    oldest_cas: u64,
    cas_enabled: bool,
    evictions_enabled: bool,
    item_size_max: usize,
    crawl_cursor: usize,
    /// Bytes of index and ghost table charged to the memory budget.
    index_charge: usize,
    /// Keys the small queues evicted unread lately (S3-FIFO's ghost queue).
    ghost: ghost::Ghost,
    /// Live items that have an expiry time: the crawler has work only while some do.
    expiring: u64,
    /// Classes the crawler sweeps once (bit n: the class of 0-based index n), after a
    /// flush_all or an operator's `lru_crawler crawl`.
    sweep_classes: u64,
    /// The pending sweep includes an operator's `lru_crawler crawl`.
    operator_crawl: bool,
    /// Server time of the latest allocation or crawl: dates evictions (`evicted_time`)
    /// that happen where no request's time is at hand (memory given back to the budget).
    now_seen: u32,
    /// Set by the last allocation when it failed although other shards hold memory.
    room_wanted: Option<RoomWanted>,
    /// Counters reported by `stats`.
    counters: ShardCounters,
}

impl Shard {
    /// An empty shard drawing memory from `budget`; `cas` numbers its CAS values apart
    /// from every other shard's.
    pub fn new(
        cas: ShardCas,
        sizes: SizeClasses,
        budget: Arc<Budget>,
        hasher: KeyHasher,
        cas_enabled: bool,
        evictions_enabled: bool,
        item_size_max: usize,
    ) -> Self {
        Shard {
            index: table::Table::default(),
            memory: Memory::new(&sizes, budget),
            sizes,
            hasher,
            cas,
            oldest_cas: 0,
            cas_enabled,
            evictions_enabled,
            item_size_max,
            crawl_cursor: 0,
            index_charge: 0,
            ghost: ghost::Ghost::default(),
            expiring: 0,
            sweep_classes: 0,
            operator_crawl: false,
            now_seen: 0,
            room_wanted: None,
            counters: ShardCounters::default(),
        }
    }

    /// Empties the shard after a panic interrupted an operation on it: an eviction queue or
    /// the index may be half updated, so nothing in it is trusted. Memory goes back to
    /// the budget; CAS values keep counting up so no old CAS can match a new item.
    pub fn rebuild(&mut self) {
        self.memory.clear(&self.sizes);
        self.memory.budget().give_back(self.index_charge);
        self.index = table::Table::default();
        self.index_charge = 0;
        self.ghost.clear();
        self.crawl_cursor = 0;
        self.expiring = 0;
        self.sweep_classes = 0;
        self.operator_crawl = false;
        self.room_wanted = None;
        self.counters.curr_items = 0;
        self.counters.bytes = 0;
    }

    /// This shard's item counters (the store sums them for `stats`).
    pub fn counters(&self) -> &ShardCounters {
        &self.counters
    }

    /// Zeroes what `stats reset` zeroes.
    pub fn reset_counters(&mut self) {
        self.counters.reset();
        self.memory.reset_class_counters();
    }

    /// The per-class counters of the class holding `handle`.
    #[inline]
    pub(super) fn class_counters(&mut self, handle: Handle) -> &mut ClassCounters {
        let class = self.memory.class_of(handle);
        &mut self.memory.class_mut(class).counters
    }

    /// Bytes this shard holds in pages and large items.
    pub fn memory_held(&self) -> usize {
        self.memory.held()
    }
}

#[cfg(test)]
mod tests;
