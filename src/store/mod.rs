//! The item store: a fixed number of shards, each a mutex around its own index, slab
//! memory and eviction queues. A key's shard comes from a hash keyed with a per-process random
//! seed, so clients cannot aim all their keys at one shard.
//!
//! The store speaks in items and outcomes; it never formats wire text and never parses.
//! Its internals (shards, slab memory, item headers) are private: what operators see
//! comes out as the store's own types (`ShardCounters`, `ClassStats`, `DumpedItem`,
//! `LiveItem`).

pub mod clock;
mod item;
mod memory;
mod shard;
pub mod snapshot;
mod tuning;

pub use clock::Clock;
pub use memory::{ClassCounters, PAGE_SIZE, SLAB_CHUNK_MAX, ValueRef};
pub use shard::{
    ArithOutcome, ClassStats, DumpedItem, ItemView, LiveItem, MetaArith, MetaArithOutcome,
    MetaDeleteOutcome, MetaGet, MetaView, Now, ShardCounters, StoreMode, StoreOutcome,
};
pub use tuning::Tuning;

use memory::{Budget, SizeClasses};
use shard::{ALL_CLASSES, ItemCursor, Shard, ShardCas, Write};

use std::cmp::Reverse;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Largest number of shards; more only adds per-shard page overhead.
const MAX_SHARDS: usize = 64;

/// How often one request frees memory in other shards and retries its allocation before
/// it answers out of memory (other requests may take the freed room in between).
const ROOM_ATTEMPTS: usize = 8;

/// How the store is set up; filled from the command line.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `-m` in bytes.
    pub memory_limit: usize,
    /// `-I` in bytes.
    pub item_size_max: usize,
    /// Worker threads (`-t`); the shard count scales with it.
    pub threads: usize,
    /// `-n`: minimum space for key and value in the smallest class.
    pub slab_min_size: usize,
    /// `-f`: growth factor between classes.
    pub growth_factor: f64,
    /// Not `-C`.
    pub cas_enabled: bool,
    /// Not `-M`.
    pub evictions_enabled: bool,
    /// The background crawler runs (`-o lru_crawler`, the default; `no_lru_crawler`).
    pub lru_crawler: bool,
}

/// A set of classes (`lru_crawler crawl 1,3`): bit n stands for the class of 1-based
/// id n + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassSet(pub u64);

impl ClassSet {
    /// Every class.
    pub const ALL: ClassSet = ClassSet(ALL_CLASSES);

    /// The classes of the given 1-based ids (bit n of `ids` set for id n).
    pub fn from_ids(ids: u64) -> ClassSet {
        ClassSet(ids >> 1)
    }
}

/// What `slabs reassign` did, one variant per memcached reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reassign {
    /// A page moved.
    Moved,
    /// Source and destination are the same class.
    Same,
    /// A class id outside the slab classes (0, the spare pool, included).
    BadClass,
    /// The source holds fewer than two pages.
    NoSpare,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory_limit: 64 * 1024 * 1024,
            item_size_max: 1024 * 1024,
            threads: 4,
            slab_min_size: 48,
            growth_factor: 1.25,
            cas_enabled: true,
            evictions_enabled: true,
            lru_crawler: true,
        }
    }
}

impl StoreConfig {
    /// Shards: four per thread, but few enough that each shard's items can make room for
    /// the largest item by evicting its own data.
    pub fn shard_count(&self) -> usize {
        let wanted = (self.threads * 4).clamp(1, MAX_SHARDS);
        let per_shard_floor = (4 * PAGE_SIZE).max(2 * self.item_size_max);
        let affordable = (self.memory_limit / per_shard_floor).max(1);
        let count = wanted.min(affordable);
        // A power of two, so the shard is a mask of the hash.
        1 << (usize::BITS - 1 - count.leading_zeros())
    }
}

/// The index's keyed hash, which also picks the shard: foldhash (its quality variant)
/// seeded at random per process, so clients cannot aim keys at one shard or one bucket
/// without the seed (`benches/hash_flood.rs`), at a tenth of SipHash-1-3's instructions.
pub type KeyHasher = foldhash::quality::RandomState;

/// The sharded store shared by all connections.
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    shard_mask: u64,
    hasher: KeyHasher,
    clock: Arc<Clock>,
    oldest_live: AtomicU32,
    sizes: SizeClasses,
    cas_enabled: bool,
    evictions_enabled: bool,
    budget: Arc<Budget>,
    /// When a delayed flush_all comes due, the crawler sweeps every shard.
    pending_sweep: Mutex<Option<u32>>,
    /// Shards emptied because a panic poisoned their lock.
    shards_rebuilt: AtomicU64,
    /// Crawler and page mover knobs changed at run time.
    tuning: Tuning,
}

impl Store {
    /// An empty store; memory is taken page by page as items arrive.
    pub fn new(config: &StoreConfig, clock: Arc<Clock>) -> Self {
        let hasher = KeyHasher::default();
        let count = config.shard_count();
        let sizes = SizeClasses::new(config.slab_min_size, config.growth_factor);
        let budget = Arc::new(Budget::new(config.memory_limit));
        let shards = (0..count)
            .map(|index| {
                Mutex::new(Shard::new(
                    ShardCas::new(index, count),
                    sizes.clone(),
                    budget.clone(),
                    hasher.clone(),
                    config.cas_enabled,
                    config.evictions_enabled,
                    config.item_size_max,
                ))
            })
            .collect();
        Store {
            shards,
            shard_mask: count as u64 - 1,
            hasher,
            clock,
            oldest_live: AtomicU32::new(0),
            sizes,
            cas_enabled: config.cas_enabled,
            evictions_enabled: config.evictions_enabled,
            budget,
            pending_sweep: Mutex::new(None),
            shards_rebuilt: AtomicU64::new(0),
            tuning: Tuning::new(config.lru_crawler),
        }
    }

    /// The crawler's run-time knobs.
    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// `slabs automove` level (0, 1 or 2).
    pub fn automove(&self) -> u32 {
        self.budget.automove()
    }

    /// Sets the `slabs automove` level; with 0, pages stay with their classes.
    pub fn set_automove(&self, level: u32) {
        self.budget.set_automove(level);
    }

    /// `slabs reassign <source> <destination>` with memcached's rules: ids are 1-based
    /// slab classes, 0 the pool of spare pages, a source of -1 any class with a page to
    /// spare. The page comes from the shard holding most pages of the source; its
    /// items move to free chunks of their class, or are dropped when none is left. The
    /// move is done when this returns, so memcached's `BUSY` never arises.
    pub fn reassign_page(&self, source: i32, destination: i32) -> Reassign {
        if source == destination {
            return Reassign::Same;
        }
        let slab_classes = self.sizes.sizes().len() as i32;
        let pages_in = |shard: &Shard, class: i32| match class {
            0 => shard.spare_pages() as u64,
            class => u64::from(shard.class_pages(class as usize - 1)),
        };
        let total_pages = |class: i32| -> u64 {
            (0..self.shards.len())
                .map(|shard| pages_in(&self.lock(shard), class))
                .sum()
        };
        let source = match source {
            -1 => (1..=slab_classes)
                .find(|&class| class != destination && total_pages(class) > 1)
                .unwrap_or(-1),
            source => source,
        };
        let valid = 0..=slab_classes;
        if !valid.contains(&source) || !valid.contains(&destination) {
            return Reassign::BadClass;
        }
        if total_pages(source) < 2 {
            return Reassign::NoSpare;
        }
        let richest = (0..self.shards.len())
            .max_by_key(|&shard| pages_in(&self.lock(shard), source))
            .unwrap_or(0);
        let class = |id: i32| (id > 0).then(|| id as usize - 1);
        if self
            .lock(richest)
            .reassign_page(class(source), class(destination))
        {
            Reassign::Moved
        } else {
            Reassign::NoSpare
        }
    }

    /// The store's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The current memory limit (`-m`, or the last `cache_memlimit`).
    pub fn memory_limit(&self) -> usize {
        self.budget.limit()
    }

    /// Bytes of pages, large items and index currently charged against the limit.
    pub fn memory_used(&self) -> usize {
        self.budget.used()
    }

    /// Not `-M`: a full store evicts instead of refusing (a snapshot restore relies on
    /// it to keep the most recent items).
    pub fn evictions_enabled(&self) -> bool {
        self.evictions_enabled
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Time facts for one operation.
    #[inline]
    pub fn now(&self) -> Now {
        Now {
            now: self.clock.now(),
            oldest_live: self.oldest_live.load(Ordering::Relaxed),
        }
    }

    /// The keyed hash of a key and the shard it selects.
    #[inline]
    pub fn locate(&self, key: &[u8]) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        (hash, ((hash >> 32) & self.shard_mask) as usize)
    }

    /// Locks one shard. A poisoned lock means a panic interrupted an operation halfway
    /// (a queue link or the index may be half written), so the shard is emptied before
    /// anyone uses it again: its items are lost like evictions, the rest of the cache
    /// keeps serving. Counted in `shards_rebuilt` and logged as an error.
    #[inline]
    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        match self.shards[shard].lock() {
            Ok(guard) => guard,
            Err(poisoned) => self.rebuild_poisoned(shard, poisoned),
        }
    }

    /// `lock`'s rare path, kept out of line so the lock itself inlines into every
    /// request: empties the poisoned shard and clears the poison.
    #[cold]
    #[inline(never)]
    fn rebuild_poisoned<'a>(
        &'a self,
        shard: usize,
        poisoned: PoisonError<MutexGuard<'a, Shard>>,
    ) -> MutexGuard<'a, Shard> {
        let mut guard = poisoned.into_inner();
        guard.rebuild();
        self.shards[shard].clear_poison();
        self.shards_rebuilt.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            shard,
            "a panic interrupted a store operation; shard emptied"
        );
        guard
    }

    /// Shards emptied after a panic since the start (see `lock`).
    pub fn shards_rebuilt(&self) -> u64 {
        self.shards_rebuilt.load(Ordering::Relaxed)
    }

    /// Reads an item (`get`), or reads it and sets a new expiry (`gat`).
    pub fn fetch(
        &self,
        key: &[u8],
        new_exptime: Option<i64>,
        visit: impl FnOnce(ItemView<'_>),
    ) -> bool {
        let (hash, shard) = self.locate(key);
        let now = self.now();
        let expiry = new_exptime.map(|exptime| self.expiry(exptime));
        self.lock(shard).fetch(key, hash, now, expiry, visit)
    }

    /// Executes a storage command.
    pub fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
    ) -> StoreOutcome {
        let (mode, compare) = match mode {
            StoreMode::Cas(expected) => (StoreMode::Set, Some(expected)),
            mode => (mode, None),
        };
        self.meta_store(mode, key, flags, exptime, value, compare, false)
    }

    /// Converts a client exptime (memcached's `time_t`: a text exptime or a binary
    /// field, widened) into server time.
    pub fn expiry(&self, exptime: i64) -> u32 {
        self.clock.expiry_from_exptime(exptime)
    }

    /// Meta get (`mg`).
    pub fn meta_get(&self, key: &[u8], options: MetaGet, visit: impl FnOnce(MetaView<'_>)) -> bool {
        let (hash, shard) = self.locate(key);
        let now = self.now();
        // A get that vivifies allocates; a failed allocation never calls `visit`, so a
        // retry still has it.
        let mut visit = Some(visit);
        self.with_room(shard, |shard| {
            shard.meta_get(key, hash, now, options, |view| {
                if let Some(visit) = visit.take() {
                    visit(view);
                }
            })
        })
    }

    /// Meta set (`ms`): a store with an optional CAS check and invalidation.
    #[allow(clippy::too_many_arguments)]
    pub fn meta_store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
        compare: Option<u64>,
        invalidate: bool,
    ) -> StoreOutcome {
        let (hash, shard) = self.locate(key);
        let now = self.now();
        let write = Write {
            key,
            hash,
            flags,
            exptime: self.expiry(exptime),
            value,
        };
        self.with_room(shard, |shard| {
            shard.store_conditionally(mode, compare, invalidate, write, now)
        })
    }

    /// Meta delete (`md`).
    pub fn meta_delete(
        &self,
        key: &[u8],
        compare: Option<u64>,
        invalidate: bool,
        new_exptime: Option<i64>,
    ) -> MetaDeleteOutcome {
        let (hash, shard) = self.locate(key);
        let now = self.now();
        let expiry = new_exptime.map(|exptime| self.expiry(exptime));
        self.lock(shard)
            .meta_delete(key, hash, now, compare, invalidate, expiry)
    }

    /// Meta arithmetic (`ma`).
    pub fn meta_arith(&self, key: &[u8], request: MetaArith) -> MetaArithOutcome {
        let (hash, shard) = self.locate(key);
        let now = self.now();
        self.with_room(shard, |shard| shard.meta_arith(key, hash, now, request))
    }

    /// Stores a snapshot item with its CAS, absolute (server-time) expiry, last access
    /// time and whether it had been read (kept for `mg h` and eviction).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &self,
        key: &[u8],
        flags: u32,
        expiry: u32,
        cas: u64,
        accessed: u32,
        fetched: bool,
        value: &[u8],
    ) {
        let (hash, shard) = self.locate(key);
        let now = self.now();
        // A snapshot larger than -m keeps what fits; the rest is dropped like evictions.
        let _ = self.with_room(shard, |shard| {
            shard.restore(key, hash, flags, expiry, cas, accessed, fetched, value, now)
        });
    }

    /// What a lookup of `key` would find, without side effects (`watch fetchers`).
    pub fn peek(&self, key: &[u8]) -> crate::watch::Fetched {
        let (hash, shard) = self.locate(key);
        let now = self.now();
        self.lock(shard).peek(key, hash, now)
    }

    /// After a snapshot restore: every CAS value handed out from now on is larger than
    /// `highest`, the largest restored one, whichever shard a restored item landed in.
    pub fn raise_cas_above(&self, highest: u64) {
        for shard in 0..self.shards.len() {
            self.lock(shard).raise_cas_above(highest);
        }
    }

    /// Removes any item under `key` without counting a delete (failed `set`).
    pub fn discard(&self, key: &[u8]) {
        let (hash, shard) = self.locate(key);
        self.lock(shard).discard(key, hash);
    }

    /// Deletes an item.
    pub fn delete(&self, key: &[u8]) -> bool {
        let (hash, shard) = self.locate(key);
        let now = self.now();
        self.lock(shard).delete(key, hash, now)
    }

    /// Sets a new expiry (`touch`).
    pub fn touch(&self, key: &[u8], exptime: i64) -> bool {
        let (hash, shard) = self.locate(key);
        let now = self.now();
        self.lock(shard).touch(key, hash, now, self.expiry(exptime))
    }

    /// incr/decr.
    pub fn arith(&self, key: &[u8], incr: bool, delta: u64) -> ArithOutcome {
        let (hash, shard) = self.locate(key);
        let now = self.now();
        self.with_room(shard, |shard| shard.arith(key, hash, now, incr, delta))
    }

    /// flush_all: with no delay (or <= 0) everything stored so far disappears now; with a
    /// delay, everything stored before that moment disappears when it comes.
    pub fn flush_all(&self, delay: Option<i64>) {
        let now = self.clock.now();
        let cutoff = match delay {
            Some(delay) if delay > 0 => self.expiry(delay),
            _ => now,
        };
        // With CAS, memcached cuts one second earlier and uses the CAS cliff for the
        // current second, so items stored right after the flush survive.
        let oldest_live = if self.cas_enabled {
            cutoff.saturating_sub(1)
        } else {
            cutoff
        };
        self.oldest_live.store(oldest_live, Ordering::Relaxed);
        if oldest_live <= now {
            for shard in 0..self.shards.len() {
                self.lock(shard).mark_flush();
            }
        } else {
            *self.pending_sweep.lock().unwrap_or_else(|p| p.into_inner()) = Some(oldest_live);
        }
    }

    /// Changes `-m` at runtime (`cache_memlimit`). A limit below what is held evicts
    /// down to it at once, oldest items first across shards.
    pub fn set_memory_limit(&self, bytes: usize) {
        self.budget.set_limit(bytes);
        self.free_room(0);
    }

    /// Runs an operation that may allocate in `shard`. When the shard found no room while
    /// other shards hold part of the budget, its lock is released, memory is freed by
    /// age across all shards (never two shard locks held at once) and the operation runs
    /// again. A failed attempt may have evicted items but wrote nothing, so running it
    /// again is safe.
    fn with_room<T>(&self, shard: usize, mut operation: impl FnMut(&mut Shard) -> T) -> T {
        let mut attempts = 0;
        loop {
            let mut guard = self.lock(shard);
            let result = operation(&mut guard);
            let Some(wanted) = guard.take_room_wanted() else {
                return result;
            };
            drop(guard);
            attempts += 1;
            if attempts == ROOM_ATTEMPTS || !self.free_room(wanted.bytes) {
                self.lock(shard).count_out_of_memory(wanted.class);
                return result;
            }
        }
    }

    /// Frees memory until `bytes` more fit under the limit: first pages without live
    /// items in any shard, then the oldest data of the shard whose next eviction
    /// candidate was accessed longest ago. One shard lock at a time. False if that much could not be freed.
    fn free_room(&self, bytes: usize) -> bool {
        let fits = || self.budget.used() + bytes <= self.budget.limit();
        let all = || 0..self.shards.len();
        for shard in all() {
            if fits() {
                return true;
            }
            self.lock(shard).give_back_free_pages();
        }
        while !fits() {
            // Ages are whole seconds; within a tie the shard holding most gives back
            // first, so all shards shrink alike and the newest items everywhere stay.
            let oldest = all()
                .filter_map(|shard| {
                    let guard = self.lock(shard);
                    let age = guard.oldest_access()?;
                    Some((age, Reverse(guard.memory_held()), shard))
                })
                .min();
            let Some((_, _, victim)) = oldest else {
                return false;
            };
            if !self.lock(victim).give_back_memory() {
                return false;
            }
        }
        true
    }

    /// One crawler pass step over every shard: frees dead items a few pages at a time.
    pub fn crawl(&self, pages_per_shard: usize) {
        let now = self.now();
        let due = {
            let mut pending = self.pending_sweep.lock().unwrap_or_else(|p| p.into_inner());
            match *pending {
                Some(at) if at <= now.now => pending.take().is_some(),
                _ => false,
            }
        };
        for shard in 0..self.shards.len() {
            let mut shard = self.lock(shard);
            if due {
                shard.request_sweep(ALL_CLASSES);
            }
            shard.crawl(now, pages_per_shard, self.tuning.crawler_enabled());
        }
    }

    /// Requests a crawler sweep of `classes` in every shard (`lru_crawler crawl
    /// <ids|all>`); false, requesting nothing, while the last one is still running.
    pub fn crawl_classes(&self, classes: ClassSet) -> bool {
        if self.crawling() {
            return false;
        }
        for shard in 0..self.shards.len() {
            self.lock(shard).request_crawl(classes.0);
        }
        true
    }

    /// True while an `lru_crawler crawl` has not gone round every shard.
    pub fn crawling(&self) -> bool {
        (0..self.shards.len()).any(|shard| self.lock(shard).crawling())
    }

    /// Sum of all shards' counters.
    pub fn counters(&self) -> ShardCounters {
        let mut total = ShardCounters::default();
        for shard in 0..self.shards.len() {
            total.add(self.lock(shard).counters());
        }
        total
    }

    /// Zeroes the counters (`stats reset`).
    pub fn reset_counters(&self) {
        for shard in 0..self.shards.len() {
            self.lock(shard).reset_counters();
        }
    }

    /// Bytes of all shards' indexes (`hash_bytes`; charged against `-m`).
    pub fn index_bytes(&self) -> usize {
        (0..self.shards.len())
            .map(|shard| self.lock(shard).index_bytes())
            .sum()
    }

    /// Bytes all shards hold in pages and large items (`total_malloced`).
    pub fn memory_held(&self) -> usize {
        (0..self.shards.len())
            .map(|shard| self.lock(shard).memory_held())
            .sum()
    }

    /// Per-class figures summed over all shards: one entry per slab class, smallest
    /// first, then the large-item class (chunk size 0).
    pub fn class_stats(&self) -> Vec<ClassStats> {
        let mut totals: Vec<ClassStats> = self
            .sizes
            .sizes()
            .iter()
            .chain(std::iter::once(&0))
            .map(|&chunk_size| ClassStats {
                chunk_size,
                ..ClassStats::default()
            })
            .collect();
        let now = self.clock.now();
        for shard in 0..self.shards.len() {
            self.lock(shard).add_class_stats(now, &mut totals);
        }
        totals
    }

    /// Number of classes `class_stats` reports (slab classes plus the large class);
    /// class ids on the wire run from 1 to this.
    pub fn class_count(&self) -> usize {
        self.sizes.sizes().len() + 1
    }

    /// `stats cachedump`: live items of one class (1-based id) from each shard's most
    /// recently stored end, up to `limit` items (0 = all). Empty for an unknown class.
    pub fn cachedump(&self, class: usize, limit: usize) -> Vec<DumpedItem> {
        let mut items = Vec::new();
        if !(1..=self.class_count()).contains(&class) {
            return items;
        }
        let now = self.now();
        for shard in 0..self.shards.len() {
            self.lock(shard)
                .dump_class(class - 1, limit, now, &mut items);
        }
        items
    }

    /// Visits every live item of the classes in `classes` (a [`ClassSet`]) (`lru_crawler
    /// metadump`), one shard lock at a time.
    pub fn for_each_live(&self, classes: ClassSet, mut visit: impl FnMut(LiveItem<'_>)) {
        let now = self.now();
        for shard in 0..self.shards.len() {
            self.lock(shard).for_each_live(now, classes.0, &mut visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    fn store_of(megabytes: usize, evictions_enabled: bool) -> Store {
        let config = StoreConfig {
            memory_limit: megabytes * MIB,
            threads: 4,
            evictions_enabled,
            ..StoreConfig::default()
        };
        Store::new(&config, Arc::new(Clock::new()))
    }

    #[test]
    fn a_crawl_is_busy_until_it_has_gone_round() {
        let store = store_of(16, true);
        assert!(store.crawl_classes(ClassSet::from_ids(0b10)));
        assert!(store.crawling());
        assert!(!store.crawl_classes(ClassSet::ALL), "BUSY while it runs");
        store.crawl(usize::MAX);
        assert!(!store.crawling());
        assert!(store.crawl_classes(ClassSet::ALL));
    }

    #[test]
    fn a_reassigned_page_changes_class() {
        let store = store_of(16, true);
        for index in 0..50_000 {
            store.store(StoreMode::Set, format!("k{index}").as_bytes(), 0, 0, b"x");
        }
        let pages = |class: usize| store.class_stats()[class].pages;
        let before = pages(0);
        assert!(before >= 2);
        assert_eq!(store.reassign_page(1, 1), Reassign::Same);
        assert_eq!(store.reassign_page(1, 99), Reassign::BadClass);
        assert_eq!(store.reassign_page(3, 4), Reassign::NoSpare);
        assert_eq!(store.reassign_page(-1, 4), Reassign::Moved);
        assert_eq!((pages(0), pages(3)), (before - 1, 1));
        let counters = store.counters();
        assert!(
            counters.slab_reassign_rescues > 0,
            "items moved to free chunks"
        );
        assert_eq!(
            counters.curr_items,
            50_000 - counters.slab_reassign_evictions_nomem
        );
        let readable = (0..50_000)
            .filter(|index| {
                let key = format!("k{index}");
                let mut same = false;
                store.fetch(key.as_bytes(), None, |item| {
                    same = item.key == key.as_bytes() && item.value.as_slice() == b"x"
                });
                same
            })
            .count();
        assert_eq!(
            readable as u64, counters.curr_items,
            "moved items stay readable"
        );
        assert_eq!(store.reassign_page(4, 0), Reassign::NoSpare);
        assert_eq!(store.reassign_page(1, 0), Reassign::Moved);
        assert_eq!(pages(0), before - 2);
        assert_eq!(store.counters().slabs_moved, 2);
    }

    #[test]
    fn a_shard_without_old_items_gets_room_from_the_others() {
        let store = store_of(16, true);
        assert!(store.shard_count() > 1);
        let value = vec![b'v'; 1_000_000];
        for i in 0..60 {
            let outcome = store.store(StoreMode::Set, format!("big{i}").as_bytes(), 0, 0, &value);
            assert!(
                matches!(outcome, StoreOutcome::Stored(_)),
                "set {i}: {outcome:?}"
            );
        }
        assert!(store.memory_used() <= store.memory_limit());
        assert!(store.counters().evictions > 0);
    }

    #[test]
    fn disabled_evictions_still_fail_when_full() {
        let store = store_of(16, false);
        let value = vec![b'v'; 1_000_000];
        let outcomes: Vec<_> = (0..30)
            .map(|i| store.store(StoreMode::Set, format!("big{i}").as_bytes(), 0, 0, &value))
            .collect();
        assert!(outcomes.contains(&StoreOutcome::OutOfMemory));
        assert_eq!(store.counters().evictions, 0);
    }

    #[test]
    fn a_shard_poisoned_by_a_panic_is_emptied_before_use() {
        let store = store_of(64, true);
        store.store(StoreMode::Set, b"kept?", 0, 0, b"value");
        let (_, shard) = store.locate(b"kept?");
        let held_before = store.memory_used();
        assert!(held_before > 0);
        let poisoner = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _guard = store.lock(shard);
                    panic!("a bug in the middle of an operation");
                })
                .join()
        });
        assert!(poisoner.is_err());
        assert!(
            !store.fetch(b"kept?", None, |_| {}),
            "the shard was emptied"
        );
        assert_eq!(store.shards_rebuilt(), 1);
        assert!(store.memory_used() < held_before, "its memory went back");
        assert!(matches!(
            store.store(StoreMode::Set, b"kept?", 0, 0, b"again"),
            StoreOutcome::Stored(_)
        ));
        assert!(store.fetch(b"kept?", None, |_| {}));
        assert_eq!(store.shards_rebuilt(), 1, "the lock is healthy again");
    }

    #[test]
    fn a_lowered_limit_evicts_down_to_it() {
        let store = store_of(64, true);
        let value = vec![b'v'; 10_000];
        for i in 0..6000 {
            store.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, &value);
        }
        let before = store.counters().curr_items;
        store.set_memory_limit(8 * MIB);
        assert!(store.memory_used() <= 8 * MIB, "{}", store.memory_used());
        let after = store.counters().curr_items;
        assert!(
            after < before && after as usize * 10_000 <= 8 * MIB,
            "{before} -> {after}"
        );
        // Oldest first: the newest items stay, apart from a few that reused a chunk in
        // an old page which a page mover emptied (as memcached's slab mover would).
        let present = |range: std::ops::Range<usize>| {
            range
                .filter(|i| store.fetch(format!("k{i}").as_bytes(), None, |_| {}))
                .count()
        };
        let (oldest, newest) = (present(0..100), present(5900..6000));
        assert!(
            oldest == 0 && newest >= 75,
            "oldest {oldest}, newest {newest} of 100"
        );
    }

    #[test]
    fn cas_values_never_repeat_across_shards_or_after_a_restore() {
        let store = store_of(64, true);
        assert!(store.shard_count() > 1);
        // The restored value may not be handed out either.
        let restored = 1_000_003;
        let mut seen = std::collections::HashSet::from([restored]);
        let mut fresh = |outcome: StoreOutcome| match outcome {
            StoreOutcome::Stored(cas) => assert!(seen.insert(cas), "CAS {cas} repeated"),
            other => panic!("{other:?}"),
        };
        for i in 0..2000 {
            fresh(store.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, b"1"));
        }
        // A restored item keeps its CAS, which another shard may have produced; later
        // values of every shard are above the highest restored one.
        store.restore(b"restored", 0, 0, restored, 0, false, b"v");
        store.raise_cas_above(restored);
        for i in 0..2000 {
            let outcome = store.store(StoreMode::Set, format!("n{i}").as_bytes(), 0, 0, b"1");
            assert!(matches!(outcome, StoreOutcome::Stored(cas) if cas > restored));
            fresh(outcome);
        }
    }

    #[test]
    fn operator_views_sum_every_shard() {
        let store = store_of(64, true);
        for i in 0..100 {
            store.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, b"v");
        }
        let classes = store.class_stats();
        assert_eq!(classes.len(), store.class_count());
        assert_eq!(classes.iter().map(|class| class.items).sum::<u64>(), 100);
        assert_eq!(classes.last().map(|class| class.chunk_size), Some(0));
        assert_eq!(store.cachedump(1, 0).len(), 100);
        assert_eq!(
            store.cachedump(1, 10).len(),
            10,
            "the limit holds across shards"
        );
        assert!(store.cachedump(0, 0).is_empty());
        assert!(store.cachedump(store.class_count() + 1, 0).is_empty());
        let mut live = 0;
        store.for_each_live(ClassSet::ALL, |item| {
            assert_eq!((item.class, item.value), (1, &b"v"[..]));
            live += 1;
        });
        assert_eq!(live, 100);
    }
}
