//! Slab memory of one shard: 256 KiB pages (`PAGE_SIZE`) cut into fixed-size chunks by
//! size class, plus large items in allocations of their own, and two eviction queues per class.
//!
//! This is memcached's slab allocator in miniature. Every byte a shard holds is a page or
//! a large item, both taken from one budget shared by all shards (`-m`), so the process
//! size follows the limit while a shard with few items never starves for pages. Each
//! class keeps its items in two queues without links in the items (S3-FIFO, see
//! `shard/eviction.rs`): a small probation queue, a ring of handles in arrival order, and
//! a main queue swept by a CLOCK hand over the class's chunks in page order. Pages
//! move between classes when another class holds older data (the page mover in
//! `shard/eviction.rs`, reached from `Shard::chunk_for`), so a change in value sizes never
//! starves a class ("slab calcification").

use super::item::{FETCHED, HAS_FLAGS, HEADER_SIZE, Handle, Header, IN_MAIN, LIVE, NIL};
use bytes::Bytes;
use slab::Slab;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// The memory limit shared by all shards. Only page and large-item allocations touch it,
/// not every request.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: AtomicUsize,
    /// `slabs automove` level: 0 keeps each class's pages where they are.
    automove: AtomicU32,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Budget {
            used: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
            automove: AtomicU32::new(1),
        }
    }

    /// `slabs automove` (0, 1 or 2): with 0, a class that needs memory evicts its own
    /// items instead of taking a page from a class that holds older data.
    pub fn automove(&self) -> u32 {
        self.automove.load(Ordering::Relaxed)
    }

    /// Sets the `slabs automove` level.
    pub fn set_automove(&self, level: u32) {
        self.automove.store(level, Ordering::Relaxed);
    }

    /// Takes `bytes` if they fit under the limit.
    pub fn try_take(&self, bytes: usize) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + bytes <= limit).then_some(used + bytes)
            })
            .is_ok()
    }

    /// Takes `bytes` even past the limit (the index must grow); the shard then gives
    /// pages back until the budget balances.
    pub fn take_anyway(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    /// True while more is held than the limit allows.
    pub fn overdrawn(&self) -> bool {
        self.used() > self.limit()
    }

    /// Returns `bytes`.
    pub fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes in use by all shards.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit (`-m`, or the last `cache_memlimit`).
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the limit; memory above it is given back as items are evicted.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }
}

/// Size of a slab page. Smaller than memcached's 1 MiB because pages belong to one
/// shard and one class: finer pages waste less when many classes are in use.
pub const PAGE_SIZE: usize = 256 * 1024;

/// Items larger than this live in their own allocation and are sent without a copy.
pub const SLAB_CHUNK_MAX: usize = 16 * 1024;

/// Bits of a handle that index a chunk inside its page: enough for the smallest possible
/// chunk (`HEADER_SIZE + 8` bytes, `-n 1`) to use a whole page.
const CHUNK_BITS: u32 = 13;
const CHUNK_MASK: u32 = (1 << CHUNK_BITS) - 1;
/// Handles with this bit set name a large item.
const LARGE_BIT: u32 = 1 << 31;
/// Pages one shard can address: the bits below `LARGE_BIT` left for the page index
/// (64 GiB per shard).
const MAX_PAGES: usize = (LARGE_BIT >> CHUNK_BITS) as usize;
/// Class of a page that no class owns (free or returned).
const NO_CLASS: usize = usize::MAX;

/// Chunk sizes up to which classes go in 4-byte steps (see `SizeClasses::new`).
pub const FINE_STEPS_UP_TO: usize = 256;

/// Step between the added classes up to `FINE_STEPS_UP_TO`, and the alignment of every
/// chunk size (the item header's alignment).
const FINE_STEP: usize = 4;

/// Slab classes below `SLAB_CHUNK_MAX` at most: with that last class, memcached's 63.
const MAX_CLASSES: usize = 62;

/// The chunk sizes of the slab classes, derived from `-n` and `-f`.
#[derive(Debug, Clone)]
pub struct SizeClasses {
    sizes: Vec<usize>,
    /// The class of every item size up to `SLAB_CHUNK_MAX`, by size in 4-byte steps
    /// rounded up (chunk sizes are multiples of 4): `class_for` without a search.
    by_fourths: Box<[u8]>,
}

impl SizeClasses {
    /// memcached's chunk sizes (from its 48-byte item header plus `min_space` (`-n`),
    /// growing by `factor` (`-f`), 8-byte aligned, up to `SLAB_CHUNK_MAX`), with every
    /// 4-byte step between the first class and `FINE_STEPS_UP_TO` added: ferrocached's
    /// smaller header makes small items fall between memcached's classes (a 132-byte item
    /// would take a 152-byte chunk, 13% lost; 8-byte steps would lose 3%). memcached's
    /// sizes stay among the classes; if the steps would pass memcached's limit of
    /// classes, 8-byte steps are tried, then memcached's sizes alone are kept.
    pub fn new(min_space: usize, factor: f64) -> Self {
        let mut sizes = Vec::new();
        let first = align8((48 + min_space).max(HEADER_SIZE + 8));
        let mut size = first;
        let factor = factor.max(1.01);
        while (size as f64) <= SLAB_CHUNK_MAX as f64 / factor && sizes.len() < MAX_CLASSES {
            size = align8(size);
            sizes.push(size);
            size = (size as f64 * factor) as usize;
        }
        for step in [FINE_STEP, 2 * FINE_STEP] {
            let mut stepped = sizes.clone();
            stepped.extend((first..=FINE_STEPS_UP_TO).step_by(step));
            stepped.sort_unstable();
            stepped.dedup();
            if stepped.len() <= MAX_CLASSES {
                sizes = stepped;
                break;
            }
        }
        sizes.push(SLAB_CHUNK_MAX);
        let by_fourths = (0..=SLAB_CHUNK_MAX / FINE_STEP)
            .map(|fourths| {
                sizes
                    .iter()
                    .position(|&size| size >= fourths * FINE_STEP)
                    .unwrap_or(0) as u8
            })
            .collect();
        SizeClasses { sizes, by_fourths }
    }

    /// The smallest class whose chunks hold `total` bytes, or `None` for a large item.
    #[inline]
    pub fn class_for(&self, total: usize) -> Option<usize> {
        self.by_fourths
            .get(total.div_ceil(FINE_STEP))
            .map(|&class| usize::from(class))
    }

    /// Chunk sizes, smallest first.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Page memory mapped straight from the kernel: exact to the byte in RSS, returned to
/// the system when dropped, and never fragmenting the allocator's heap.
struct PageMemory {
    start: *mut u8,
}

// SAFETY: the mapping is owned exclusively by its `PageMemory`; all access goes through
// `&`/`&mut` of the owning shard, which a mutex serialises.
unsafe impl Send for PageMemory {}

impl PageMemory {
    fn map() -> Option<PageMemory> {
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (start != libc::MAP_FAILED).then(|| PageMemory {
            start: start as *mut u8,
        })
    }

    fn as_ptr(&self) -> *const u8 {
        self.start
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.start
    }
}

impl Drop for PageMemory {
    fn drop(&mut self) {
        // SAFETY: `start` is a live mapping of PAGE_SIZE bytes made by `map`.
        unsafe {
            libc::munmap(self.start as *mut libc::c_void, PAGE_SIZE);
        }
    }
}

/// One page of chunks belonging to a class.
struct Page {
    /// `None` once the page's memory was returned to the budget.
    memory: Option<PageMemory>,
    class: usize,
    used: u32,
    /// Chunk size of `class` (0 while no class owns the page), kept here so an item's
    /// address takes one lookup, not two.
    chunk_size: u32,
}

/// An item too big for a chunk: its value is refcounted so a reply can share it.
struct LargeItem {
    header: Header,
    flags: u32,
    key: Box<[u8]>,
    value: Bytes,
}

/// What happened to the items of one class since the last `stats reset`: the per-class
/// figures of `stats items` and `stats slabs`, counted where each event happens under
/// the shard lock (no shared counter on the request path), summed over shards on read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClassCounters {
    /// Reads that found a live item of this class.
    pub get_hits: u64,
    /// Storage commands whose new item falls in this class (stored or not).
    pub cmd_set: u64,
    /// Deletes that removed an item of this class.
    pub delete_hits: u64,
    /// incr on a numeric item of this class.
    pub incr_hits: u64,
    /// decr on a numeric item of this class.
    pub decr_hits: u64,
    /// cas that replaced an item of this class.
    pub cas_hits: u64,
    /// cas refused because an item of this class had changed.
    pub cas_badval: u64,
    /// touch/gat hits on an item of this class.
    pub touch_hits: u64,
    /// Items evicted.
    pub evicted: u64,
    /// Evicted items that had an expiry time.
    pub evicted_nonzero: u64,
    /// Seconds between the last evicted item's last access and its eviction.
    pub evicted_time: u64,
    /// Items evicted without ever being read.
    pub evicted_unfetched: u64,
    /// Times this class could not get memory.
    pub out_of_memory: u64,
    /// Expired items whose memory was reused.
    pub reclaimed: u64,
    /// Expired items removed by the background crawler.
    pub crawler_reclaimed: u64,
    /// Items the crawler looked at.
    pub crawler_items_checked: u64,
    /// Expired items that were never read.
    pub expired_unfetched: u64,
}

impl ClassCounters {
    /// Adds another shard's figures for the same class.
    pub fn add(&mut self, other: &ClassCounters) {
        macro_rules! sum {
            ($($field:ident),*) => { $(self.$field += other.$field;)* };
        }
        sum!(
            get_hits,
            cmd_set,
            delete_hits,
            incr_hits,
            decr_hits,
            cas_hits,
            cas_badval,
            touch_hits,
            evicted,
            evicted_nonzero,
            evicted_unfetched,
            out_of_memory,
            reclaimed,
            crawler_reclaimed,
            crawler_items_checked,
            expired_unfetched
        );
        // A time, not a count: the most recent eviction's figure is as good as any.
        self.evicted_time = self.evicted_time.max(other.evicted_time);
    }
}

/// Ring length from which a growth hands the old buffer's memory back to the kernel at
/// once (64 KiB of entries): smaller buffers are reused by the allocator.
const RING_TRIM_ENTRIES: usize = 16 * 1024;

/// Orphan entries of a small queue's ring, by chunk.
type OrphanCounts = HashMap<Handle, u32, foldhash::fast::FixedState>;

/// The small (probation) queue of a class: handles in the order the items entered.
///
/// Items keep no position in the ring (that would cost 4 bytes in every item header).
/// An item that leaves the queue anywhere but at its front (deleted, expired, replaced
/// by an item of another class) leaves its entry behind as an *orphan*, counted per chunk
/// in `orphans`. A chunk's entries are then its orphans plus one entry for its current
/// item if that item is on probation in the ring, and its orphans come first (they are
/// from earlier lives of the chunk; a page move, the one exception, swaps which of a
/// chunk's entries is which but not their number, so the moved item may count as standing
/// at a later entry of its new chunk). So an entry whose chunk has orphans pending is
/// taken for one of them: the front skips it, decrementing the count, and an entry whose
/// chunk has none stands for the chunk's current item. The count is exact, so a
/// reused chunk's new item is never taken for the old one, and no header bit is needed:
/// while nothing left the ring early (no deletes) the check is one branch on an empty
/// map. Past `SMALL_QUEUE_CAP_PERCENT` of the class, the first entries leave the ring
/// but stay on probation ("overflow", the header's `overflowed` bit), found by a CLOCK
/// sweep of their own and evicted before the ring's items.
#[derive(Debug, Default)]
pub struct SmallRing {
    entries: VecDeque<Handle>,
    /// Orphan entries per chunk (only chunks with some).
    orphans: OrphanCounts,
    /// Items in the queue (entries that are not orphans).
    pub len: u64,
}

impl SmallRing {
    /// Appends an item.
    fn push(&mut self, handle: Handle) {
        if self.entries.len() == self.entries.capacity() {
            // A quarter more, not double: the ring is a fixed share of the class.
            self.entries.reserve_exact((self.entries.len() / 4).max(16));
            if self.entries.len() >= RING_TRIM_ENTRIES {
                return_freed_memory();
            }
        }
        self.entries.push_back(handle);
        self.len += 1;
    }

    /// Takes one pending orphan of `handle`'s chunk off the count; false if it had none
    /// (the entry stands for the chunk's current item).
    fn take_orphan(&mut self, handle: Handle) -> bool {
        if self.orphans.is_empty() {
            return false;
        }
        match self.orphans.get_mut(&handle) {
            Some(count) => {
                *count -= 1;
                if *count == 0 {
                    self.orphans.remove(&handle);
                }
                true
            }
            None => false,
        }
    }

    /// The item in `handle`'s chunk left the queue (not from the front): its entry
    /// stays behind as an orphan, or goes at once if it is the front.
    fn remove(&mut self, handle: Handle) {
        self.len -= 1;
        if self.entries.front() == Some(&handle) {
            // The front is never an orphan, so it is this item's entry.
            self.entries.pop_front();
        } else {
            *self.orphans.entry(handle).or_default() += 1;
        }
        self.drop_leading_holes();
    }

    /// Takes the front item out of the ring (the ring is not empty).
    fn pop_front(&mut self) -> Handle {
        let handle = self.entries.pop_front().unwrap_or(NIL);
        self.len -= 1;
        self.drop_leading_holes();
        handle
    }

    /// Keeps the front entry an item's, so `front` costs nothing.
    fn drop_leading_holes(&mut self) {
        while let Some(&front) = self.entries.front() {
            if !self.take_orphan(front) {
                return;
            }
            self.entries.pop_front();
        }
    }

    /// The item that entered first (`NIL` if none): where eviction looks.
    pub fn front(&self) -> Handle {
        self.entries.front().copied().unwrap_or(NIL)
    }

    /// True when orphans outnumber items enough that a compaction pays for itself.
    fn has_many_holes(&self) -> bool {
        self.entries.len() > 2 * self.len as usize + 64
    }

    /// Rewrites the ring without its orphans, its buffer sized to its items.
    fn compact(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        let mut kept = VecDeque::with_capacity(self.len as usize);
        for handle in entries {
            if !self.take_orphan(handle) {
                kept.push_back(handle);
            }
        }
        debug_assert!(self.orphans.is_empty());
        debug_assert_eq!(kept.len() as u64, self.len);
        self.entries = kept;
        self.orphans = OrphanCounts::default();
    }

    /// Points the entry of each moved in-ring item (`from`, `to`) at its new chunk: the
    /// newest entry of `from`, the one that stands for its item (one pass over the
    /// ring for a whole page).
    fn repoint(&mut self, moved: &[(Handle, Handle)]) {
        if moved.is_empty() {
            return;
        }
        let mut pending: HashMap<Handle, Handle, foldhash::fast::FixedState> =
            moved.iter().copied().collect();
        for entry in self.entries.iter_mut().rev() {
            if let Some(to) = pending.remove(entry) {
                *entry = to;
                if pending.is_empty() {
                    break;
                }
            }
        }
        debug_assert!(pending.is_empty(), "moved items without a ring entry");
        // A repointed front may land on a chunk with orphans pending: the front is kept
        // an item's entry by count, as everywhere else.
        self.drop_leading_holes();
    }

    /// Up to `count` items from the front, passing over every entry whose chunk has
    /// orphans pending (which of those entries stands for the item would need `iter`'s
    /// per-chunk tally, and its allocation): a cheap look at the oldest items.
    pub fn first_items(&self, count: usize) -> impl Iterator<Item = Handle> + '_ {
        self.entries
            .iter()
            .copied()
            .filter(|handle| self.orphans.is_empty() || !self.orphans.contains_key(handle))
            .take(count)
    }

    /// The items, first entered first.
    pub fn iter(&self) -> RingItems<'_> {
        RingItems {
            entries: self.entries.iter(),
            orphans: &self.orphans,
            skipped: OrphanCounts::default(),
        }
    }

    /// Entries in the ring, orphans included (tests bound it).
    #[cfg(test)]
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the ring holds: its buffer and its orphan counts.
    fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Handle>()
            + self.orphans.capacity() * (std::mem::size_of::<(Handle, u32)>() + 1)
    }
}

/// The items of a small queue's ring, first entered first: its entries without the
/// orphans (for each chunk, its first orphan-count entries).
pub struct RingItems<'a> {
    entries: std::collections::vec_deque::Iter<'a, Handle>,
    orphans: &'a OrphanCounts,
    /// Orphans passed so far, per chunk (only chunks with some).
    skipped: OrphanCounts,
}

impl Iterator for RingItems<'_> {
    type Item = Handle;

    fn next(&mut self) -> Option<Handle> {
        loop {
            let handle = *self.entries.next()?;
            if self.orphans.is_empty() {
                return Some(handle);
            }
            let pending = self.orphans.get(&handle).copied().unwrap_or(0);
            if pending == 0 {
                return Some(handle);
            }
            let skipped = self.skipped.entry(handle).or_default();
            if *skipped < pending {
                *skipped += 1;
                continue;
            }
            return Some(handle);
        }
    }
}

/// Share of a class's items, in percent, the small queue may hold before eviction takes
/// from it first (S3-FIFO's 10%).
pub const SMALL_QUEUE_PERCENT: u64 = 10;

/// Share of a class's items, in percent, past which the ring's first item leaves it for
/// the overflow (still on probation): while memory fills without evictions the ring
/// stays a fraction of the items (eviction keeps it near `SMALL_QUEUE_PERCENT` once
/// memory is full, and the overflow empty).
pub const SMALL_QUEUE_CAP_PERCENT: u64 = 12;

/// Rings shorter than this never overflow.
const SMALL_QUEUE_CAP_FLOOR: u64 = 64;

/// The two CLOCK sweeps over a class's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// The main queue's items.
    Main,
    /// Probation items that overflowed the small queue's ring.
    Overflow,
}

/// Per-class state: free chunks, the page being cut, the eviction queues and counters.
#[derive(Debug, Default)]
pub struct ClassState {
    /// Chunk size in bytes (0 for the large-item class).
    pub chunk_size: usize,
    free: Vec<Handle>,
    carving: Option<(u32, u32)>,
    /// New items, on probation: those not read again before they reach the front leave.
    pub small: SmallRing,
    /// Items in the main queue: read while on probation (or written over a main item),
    /// kept while read.
    pub main_items: u64,
    /// Probation items that left the ring for its cap (oldest on probation).
    pub overflow: u64,
    /// The chunk the main queue's CLOCK hand looks at next (`NIL`: the class's first).
    hand: Cell<Handle>,
    /// The chunk the overflow's CLOCK hand looks at next.
    overflow_hand: Cell<Handle>,
    /// Items currently in this class (both queues).
    pub items: u64,
    /// Pages owned by this class.
    pub pages: u32,
    /// Bytes requested by the items of this class (`mem_requested`).
    pub requested: u64,
    /// Events counted for this class (`stats reset` zeroes them).
    pub counters: ClassCounters,
}

impl ClassState {
    /// The hand of one sweep.
    fn hand_of(&self, sweep: Sweep) -> &Cell<Handle> {
        match sweep {
            Sweep::Main => &self.hand,
            Sweep::Overflow => &self.overflow_hand,
        }
    }
}

/// Where an item's value lives; a large value can be shared with the writer.
pub enum ValueRef<'a> {
    /// Bytes inside a slab chunk: copy them while the shard lock is held.
    Inline(&'a [u8]),
    /// A refcounted large value: clone it and send it after the lock is released.
    Shared(&'a Bytes),
}

impl<'a> ValueRef<'a> {
    /// The value's bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes()
    }

    /// The value's bytes, for as long as the item is borrowed.
    pub(super) fn bytes(&self) -> &'a [u8] {
        match *self {
            ValueRef::Inline(bytes) => bytes,
            ValueRef::Shared(bytes) => bytes,
        }
    }
}

/// All item memory of a shard.
pub struct Memory {
    pages: Vec<Page>,
    free_pages: Vec<u32>,
    dropped_pages: Vec<u32>,
    large: Slab<LargeItem>,
    /// Slab classes followed by the large-item class.
    classes: Vec<ClassState>,
    /// Bytes this shard holds in pages and large items.
    used: usize,
    /// Bytes the small queues' rings hold (charged with the index).
    ring_bytes: usize,
    budget: Arc<Budget>,
}

impl Memory {
    /// Empty memory with the given classes and byte limit; nothing is allocated yet.
    pub fn new(sizes: &SizeClasses, budget: Arc<Budget>) -> Self {
        let mut classes: Vec<ClassState> = sizes
            .sizes()
            .iter()
            .map(|&chunk_size| ClassState {
                chunk_size,
                ..ClassState::default()
            })
            .collect();
        classes.push(ClassState::default());
        Memory {
            pages: Vec::new(),
            free_pages: Vec::new(),
            dropped_pages: Vec::new(),
            large: Slab::new(),
            classes,
            used: 0,
            ring_bytes: 0,
            budget,
        }
    }

    /// One class's state (0-based; the last is the large-item class).
    #[inline]
    pub fn class(&self, class: usize) -> &ClassState {
        &self.classes[class]
    }

    /// One class's state, for the shard to count evictions and reclaims in.
    #[inline]
    pub fn class_mut(&mut self, class: usize) -> &mut ClassState {
        &mut self.classes[class]
    }

    /// Zeroes every class's counters (`stats reset`).
    pub fn reset_class_counters(&mut self) {
        for class in &mut self.classes {
            class.counters = ClassCounters::default();
        }
    }

    /// Number of classes, the large-item class included.
    #[inline]
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Bytes this shard holds in pages and large items (`total_malloced`).
    #[inline]
    pub fn held(&self) -> usize {
        self.used
    }

    /// Index of the large-item class.
    #[inline]
    pub fn large_class(&self) -> usize {
        self.classes.len() - 1
    }

    /// Class of a stored item.
    #[inline]
    pub fn class_of(&self, handle: Handle) -> usize {
        if handle & LARGE_BIT != 0 {
            self.large_class()
        } else {
            self.pages[(handle >> CHUNK_BITS) as usize].class
        }
    }

    #[inline]
    fn chunk_ptr(&self, handle: Handle) -> *const u8 {
        let page = &self.pages[(handle >> CHUNK_BITS) as usize];
        let offset = (handle & CHUNK_MASK) as usize * page.chunk_size as usize;
        debug_assert!(page.class != NO_CLASS && offset + HEADER_SIZE <= PAGE_SIZE);
        let memory = page.memory.as_ref().expect("a page in use has memory");
        // SAFETY: `offset` is inside the page (chunk index < chunks per page).
        unsafe { memory.as_ptr().add(offset) }
    }

    #[inline]
    fn chunk_ptr_mut(&mut self, handle: Handle) -> *mut u8 {
        let page = &mut self.pages[(handle >> CHUNK_BITS) as usize];
        let offset = (handle & CHUNK_MASK) as usize * page.chunk_size as usize;
        debug_assert!(page.class != NO_CLASS && offset + HEADER_SIZE <= PAGE_SIZE);
        let memory = page.memory.as_mut().expect("a page in use has memory");
        // SAFETY: as in `chunk_ptr`, and we hold `&mut self`.
        unsafe { memory.as_mut_ptr().add(offset) }
    }

    /// The item's header.
    #[inline]
    pub fn header(&self, handle: Handle) -> &Header {
        if handle & LARGE_BIT != 0 {
            return &self.large[(handle & !LARGE_BIT) as usize].header;
        }
        // SAFETY: chunks start 4-byte aligned, the header's alignment (pages are
        // page-aligned mappings, chunk sizes are multiples of `FINE_STEP`), and every
        // handed-out chunk begins with a written header.
        unsafe { &*(self.chunk_ptr(handle) as *const Header) }
    }

    /// The item's header, mutable.
    #[inline]
    pub fn header_mut(&mut self, handle: Handle) -> &mut Header {
        if handle & LARGE_BIT != 0 {
            return &mut self.large[(handle & !LARGE_BIT) as usize].header;
        }
        // SAFETY: see `header`.
        unsafe { &mut *(self.chunk_ptr_mut(handle) as *mut Header) }
    }

    /// The item's key.
    #[inline]
    pub fn key(&self, handle: Handle) -> &[u8] {
        if handle & LARGE_BIT != 0 {
            return &self.large[(handle & !LARGE_BIT) as usize].key;
        }
        let chunk = self.chunk_ptr(handle);
        // SAFETY: the chunk begins with a written header (see `header`); the key was
        // written right after the header (and flags) and lies within the chunk.
        unsafe {
            let header = &*(chunk as *const Header);
            std::slice::from_raw_parts(chunk.add(header.key_offset()), header.key_len as usize)
        }
    }

    /// True when the item's key is `key` (an index probe's comparison). Keys of 8 to 16
    /// bytes, the usual ones, are compared as two overlapping words instead of through
    /// a call to the C library's `bcmp`.
    #[inline]
    pub fn key_is(&self, handle: Handle, key: &[u8]) -> bool {
        let stored = self.key(handle);
        if stored.len() != key.len() {
            return false;
        }
        if key.len() <= 16
            && let (Some(stored_head), Some(key_head), Some(stored_tail), Some(key_tail)) = (
                stored.first_chunk::<8>(),
                key.first_chunk::<8>(),
                stored.last_chunk::<8>(),
                key.last_chunk::<8>(),
            )
        {
            return stored_head == key_head && stored_tail == key_tail;
        }
        stored == key
    }

    /// The item's client flags (kept in the chunk only when they are not 0).
    #[inline]
    pub fn flags(&self, handle: Handle) -> u32 {
        if handle & LARGE_BIT != 0 {
            return self.large[(handle & !LARGE_BIT) as usize].flags;
        }
        let chunk = self.chunk_ptr(handle);
        // SAFETY: the chunk begins with a written header (see `header`); a chunk with
        // `HAS_FLAGS` holds 4 bytes of flags right after it.
        unsafe {
            if (*(chunk as *const Header)).state & HAS_FLAGS == 0 {
                return 0;
            }
            u32::from_ne_bytes(*(chunk.add(HEADER_SIZE) as *const [u8; 4]))
        }
    }

    /// Length of the item's value.
    #[inline]
    pub fn value_len(&self, handle: Handle) -> usize {
        if handle & LARGE_BIT != 0 {
            return self.large[(handle & !LARGE_BIT) as usize].value.len();
        }
        self.header(handle).value_len()
    }

    /// Bytes the item takes in its chunk (`item_size`): what `bytes`, `mem_requested`
    /// and `me` report.
    #[inline]
    pub fn item_size(&self, handle: Handle) -> usize {
        if handle & LARGE_BIT != 0 {
            let item = &self.large[(handle & !LARGE_BIT) as usize];
            return super::item::item_size(item.key.len(), item.value.len(), item.flags);
        }
        // The flags take room exactly when `HAS_FLAGS` is set (see `item_size`).
        let header = self.header(handle);
        header.key_offset() + header.key_len as usize + header.value_len()
    }

    /// The item's value.
    #[inline]
    pub fn value(&self, handle: Handle) -> ValueRef<'_> {
        if handle & LARGE_BIT != 0 {
            return ValueRef::Shared(&self.large[(handle & !LARGE_BIT) as usize].value);
        }
        let chunk = self.chunk_ptr(handle);
        // SAFETY: the chunk begins with a written header (see `header`); the value
        // follows the key inside the chunk.
        ValueRef::Inline(unsafe {
            let header = &*(chunk as *const Header);
            std::slice::from_raw_parts(
                chunk.add(header.key_offset() + header.key_len as usize),
                header.value_len(),
            )
        })
    }

    /// The value bytes of an inline item, writable (incr/decr rewrite in place).
    pub fn inline_value_mut(&mut self, handle: Handle) -> Option<&mut [u8]> {
        if handle & LARGE_BIT != 0 {
            return None;
        }
        let (value_at, value_len) = {
            let header = self.header(handle);
            (
                header.key_offset() + header.key_len as usize,
                header.value_len(),
            )
        };
        // SAFETY: the value lies inside the chunk and we hold `&mut self`.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.chunk_ptr_mut(handle).add(value_at), value_len)
        })
    }

    /// Writes a new item into a chunk of `class` obtained from `take_chunk`; the flags
    /// take room only when they are not 0.
    pub fn write_item(
        &mut self,
        handle: Handle,
        header: Header,
        flags: u32,
        key: &[u8],
        parts: &[&[u8]],
    ) {
        self.rewrite_item(handle, header, flags, key, parts);
        let page = (handle >> CHUNK_BITS) as usize;
        self.pages[page].used += 1;
    }

    /// Writes a new item over the chunk of an item of the same class (taken out of its
    /// queue, its page's count of items unchanged), or into a chunk for `write_item`.
    /// The value parts must not lie in the chunk.
    pub fn rewrite_item(
        &mut self,
        handle: Handle,
        mut header: Header,
        flags: u32,
        key: &[u8],
        parts: &[&[u8]],
    ) {
        let ptr = self.chunk_ptr_mut(handle);
        if flags != 0 {
            header.state |= HAS_FLAGS;
        } else {
            header.state &= !HAS_FLAGS;
        }
        // SAFETY: the chunk was sized by `class_for(item_size(..))`, so header, flags,
        // key and all value parts fit; source and destination never overlap (the key
        // and parts come from the request or a copy, never from a chunk).
        unsafe {
            std::ptr::write(ptr as *mut Header, header);
            let mut at = ptr.add(HEADER_SIZE);
            if flags != 0 {
                std::ptr::write(at as *mut [u8; 4], flags.to_ne_bytes());
                at = at.add(4);
            }
            std::ptr::copy_nonoverlapping(key.as_ptr(), at, key.len());
            at = at.add(key.len());
            for part in parts.iter().filter(|part| !part.is_empty()) {
                std::ptr::copy_nonoverlapping(part.as_ptr(), at, part.len());
                at = at.add(part.len());
            }
        }
    }

    /// Chunks a page of `class` is cut into; never more than a handle can index.
    fn chunks_per_page(&self, class: usize) -> u32 {
        ((PAGE_SIZE / self.classes[class].chunk_size) as u32).min(1 << CHUNK_BITS)
    }

    /// Takes a chunk of `class` without allocating a new page, if one is free.
    pub fn take_chunk(&mut self, class: usize) -> Option<Handle> {
        if let Some(handle) = self.classes[class].free.pop() {
            return Some(handle);
        }
        let (page, next) = self.classes[class].carving?;
        let per_page = self.chunks_per_page(class);
        self.classes[class].carving = if next + 1 < per_page {
            Some((page, next + 1))
        } else {
            None
        };
        Some(page << CHUNK_BITS | next)
    }

    /// Gives `class` a page: a free one, or a new one if the limit allows. False if neither.
    pub fn grow_class(&mut self, class: usize) -> bool {
        let addressable = !self.dropped_pages.is_empty() || self.pages.len() < MAX_PAGES;
        let page = match self.free_pages.pop() {
            Some(page) => page,
            None if addressable && self.budget.try_take(PAGE_SIZE) => {
                let Some(memory) = PageMemory::map() else {
                    self.budget.give_back(PAGE_SIZE);
                    return false;
                };
                let memory = Some(memory);
                self.used += PAGE_SIZE;
                match self.dropped_pages.pop() {
                    Some(slot) => {
                        self.pages[slot as usize].memory = memory;
                        slot
                    }
                    None => {
                        self.pages.push(Page {
                            memory,
                            class,
                            used: 0,
                            chunk_size: 0,
                        });
                        (self.pages.len() - 1) as u32
                    }
                }
            }
            None => return false,
        };
        self.pages[page as usize].class = class;
        self.pages[page as usize].chunk_size = self.classes[class].chunk_size as u32;
        self.pages[page as usize].used = 0;
        self.classes[class].pages += 1;
        // A class cuts one page at a time; a half-cut page's rest goes to the free list.
        if let Some((old, next)) = self.classes[class].carving.take() {
            let per_page = self.chunks_per_page(class);
            for chunk in next..per_page {
                // An uncut chunk may hold bytes of the page's former class: a free
                // chunk must read as no item to the sweeps.
                self.header_mut(old << CHUNK_BITS | chunk).state = 0;
                self.classes[class].free.push(old << CHUNK_BITS | chunk);
            }
        }
        self.classes[class].carving = Some((page, 0));
        true
    }

    /// Returns an unlinked item's memory.
    pub fn release(&mut self, handle: Handle) {
        if handle & LARGE_BIT != 0 {
            let item = self.large.remove((handle & !LARGE_BIT) as usize);
            let footprint = large_footprint(item.key.len(), item.value.len());
            self.used -= footprint;
            self.budget.give_back(footprint);
            return;
        }
        self.header_mut(handle).state = 0;
        let page = (handle >> CHUNK_BITS) as usize;
        self.pages[page].used -= 1;
        let class = self.pages[page].class;
        self.classes[class].free.push(handle);
    }

    /// Stores a large item if the limit allows; `None` means room must be made first.
    pub fn insert_large(
        &mut self,
        header: Header,
        flags: u32,
        key: &[u8],
        value: Bytes,
    ) -> Option<Handle> {
        let footprint = large_footprint(key.len(), value.len());
        if !self.budget.try_take(footprint) {
            return None;
        }
        self.used += footprint;
        let slot = self.large.insert(LargeItem {
            header,
            flags,
            key: key.into(),
            value,
        });
        Some(slot as u32 | LARGE_BIT)
    }

    /// Frees one unused page back to the limit (after a large item needed room or the
    /// limit shrank). False if no page is free.
    pub fn drop_free_page(&mut self) -> bool {
        // Pages are addressed by index, so the page table itself never shrinks; the
        // page's memory is what is returned.
        match self.free_pages.pop() {
            Some(page) => {
                self.pages[page as usize].memory = None;
                self.used -= PAGE_SIZE;
                self.budget.give_back(PAGE_SIZE);
                self.dropped_pages.push(page);
                true
            }
            None => false,
        }
    }

    /// Drops every page and large item and returns their bytes to the budget (a shard
    /// rebuilt after a panic).
    pub fn clear(&mut self, sizes: &SizeClasses) {
        self.budget.give_back(self.used);
        *self = Memory::new(sizes, self.budget.clone());
    }

    /// The shared budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Puts an item into its class's main queue (`main`) or at the end of its small queue.
    pub fn enqueue(&mut self, handle: Handle, main: bool) {
        let class = self.class_of(handle);
        self.classes[class].items += 1;
        if main {
            self.header_mut(handle).state |= IN_MAIN;
            self.classes[class].main_items += 1;
            return;
        }
        let bytes = self.classes[class].small.bytes();
        let header = self.header_mut(handle);
        header.state &= !IN_MAIN;
        header.set_overflowed(false);
        let state = &self.classes[class];
        if state.small.len >= SMALL_QUEUE_CAP_FLOOR
            && (state.small.len + 1) * 100 > state.items * SMALL_QUEUE_CAP_PERCENT
        {
            let first = self.take_first_small(class);
            self.header_mut(first).set_overflowed(true);
            self.classes[class].overflow += 1;
        }
        self.classes[class].small.push(handle);
        if self.classes[class].small.bytes() != bytes {
            self.note_ring_bytes();
        }
    }

    /// Takes an item out of its class's queue.
    pub fn dequeue(&mut self, handle: Handle) {
        let class = self.class_of(handle);
        let header = *self.header(handle);
        self.classes[class].items -= 1;
        if header.state & IN_MAIN != 0 {
            self.classes[class].main_items -= 1;
            return;
        }
        if header.overflowed() {
            self.classes[class].overflow -= 1;
            return;
        }
        let bytes = self.classes[class].small.bytes();
        self.classes[class].small.remove(handle);
        if self.classes[class].small.has_many_holes() {
            self.compact_small(class);
        } else if self.classes[class].small.bytes() != bytes {
            self.note_ring_bytes();
        }
    }

    /// Takes the ring's first item out of it (the ring is not empty).
    fn take_first_small(&mut self, class: usize) -> Handle {
        let handle = self.classes[class].small.pop_front();
        debug_assert!(
            self.is_ring_item(class, handle),
            "front {handle:#x} of class {class}"
        );
        handle
    }

    /// True when `handle` holds a live probation item of `class` in the ring: what
    /// every ring entry that is not an orphan must name.
    fn is_ring_item(&self, class: usize, handle: Handle) -> bool {
        if handle == NIL || !self.in_class(class, handle) {
            return false;
        }
        let header = self.header(handle);
        header.state & (LIVE | IN_MAIN) == LIVE && !header.overflowed()
    }

    /// Moves a probation item that was read (the ring's first, or one of the overflow)
    /// to the main queue with its read count cleared.
    pub fn promote(&mut self, class: usize, handle: Handle) {
        if self.header(handle).overflowed() {
            self.classes[class].overflow -= 1;
            self.pass_hand(class, Sweep::Overflow, handle);
            self.header_mut(handle).set_overflowed(false);
        } else {
            debug_assert_eq!(self.classes[class].small.front(), handle);
            self.take_first_small(class);
        }
        self.classes[class].main_items += 1;
        let header = self.header_mut(handle);
        header.state |= IN_MAIN;
        header.set_frequency(0);
    }

    /// Rewrites a small queue's ring without its orphans.
    fn compact_small(&mut self, class: usize) {
        self.classes[class].small.compact();
        self.note_ring_bytes();
    }

    /// Recounts the rings' bytes after one grew or shrank.
    fn note_ring_bytes(&mut self) {
        self.ring_bytes = self.classes.iter().map(|class| class.small.bytes()).sum();
    }

    /// Bytes the small queues' rings hold (charged to the budget with the index).
    pub fn ring_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// The item eviction looks at next in `class` (`NIL` if the class is empty): while
    /// probation holds its share of the class or the main queue is empty, the overflow's
    /// item under its hand or else the ring's first item; otherwise the main queue's item
    /// under the CLOCK hand.
    pub fn eviction_candidate(&self, class: usize) -> Handle {
        let state = &self.classes[class];
        let probation = state.small.len + state.overflow;
        let small_first = probation * 100 >= state.items * SMALL_QUEUE_PERCENT;
        if (small_first || state.main_items == 0) && probation != 0 {
            self.probation_candidate(class)
        } else {
            self.candidate(class, Sweep::Main)
        }
    }

    /// The probation item eviction would look at: the overflow's under its hand, else
    /// the ring's first (`NIL` if none).
    pub fn probation_candidate(&self, class: usize) -> Handle {
        if self.classes[class].overflow != 0 {
            self.candidate(class, Sweep::Overflow)
        } else {
            self.classes[class].small.front()
        }
    }

    /// The item under the hand of `sweep` (`NIL` if that set is empty); the hand moves
    /// onto it past chunks of other sets and free ones.
    pub fn candidate(&self, class: usize, sweep: Sweep) -> Handle {
        let mut found = NIL;
        self.sweep(class, sweep, |handle| {
            found = handle;
            false
        });
        if found != NIL {
            self.classes[class].hand_of(sweep).set(found);
        }
        found
    }

    /// Moves the hand of `sweep` past `handle` (just kept or about to be evicted), so an
    /// item later written into its chunk waits a whole round.
    pub fn pass_hand(&self, class: usize, sweep: Sweep, handle: Handle) {
        self.classes[class]
            .hand_of(sweep)
            .set(self.chunk_after(class, handle));
    }

    /// Visits the items of `sweep` in `class` in CLOCK order, starting under its hand,
    /// once round, while `visit` returns true; stops once it has seen them all.
    pub fn sweep(&self, class: usize, sweep: Sweep, mut visit: impl FnMut(Handle) -> bool) {
        let state = &self.classes[class];
        let mut unseen = match sweep {
            Sweep::Main => state.main_items,
            Sweep::Overflow => state.overflow,
        };
        if unseen == 0 {
            return;
        }
        let hand = state.hand_of(sweep).get();
        let start = if hand != NIL && self.in_class(class, hand) {
            hand
        } else {
            self.chunk_after(class, NIL)
        };
        let mut at = start;
        while at != NIL {
            let header = self.header(at);
            let wanted = match sweep {
                Sweep::Main => header.state & (LIVE | IN_MAIN) == LIVE | IN_MAIN,
                Sweep::Overflow => header.state & (LIVE | IN_MAIN) == LIVE && header.overflowed(),
            };
            if wanted {
                unseen -= 1;
                if !visit(at) || unseen == 0 {
                    return;
                }
            }
            at = self.chunk_after(class, at);
            if at == start {
                return;
            }
        }
    }

    /// True when `handle` names a cut chunk of a page `class` owns, or a stored large
    /// item of the large class.
    fn in_class(&self, class: usize, handle: Handle) -> bool {
        if handle & LARGE_BIT != 0 {
            return class == self.large_class()
                && self.large.contains((handle & !LARGE_BIT) as usize);
        }
        let page = (handle >> CHUNK_BITS) as usize;
        page < self.pages.len()
            && self.pages[page].class == class
            && self.pages[page].memory.is_some()
            && handle & CHUNK_MASK < self.cut_chunks(page as u32)
    }

    /// Chunks of `page` cut so far (all of them unless its class is cutting it).
    fn cut_chunks(&self, page: u32) -> u32 {
        let class = self.pages[page as usize].class;
        match self.classes[class].carving {
            Some((carving, next)) if carving == page => next,
            _ => self.chunks_per_page(class),
        }
    }

    /// The chunk of `class` after `handle` in page order, wrapping round (after `NIL`:
    /// the first; `NIL` if the class has no chunk).
    fn chunk_after(&self, class: usize, handle: Handle) -> Handle {
        if class == self.large_class() {
            let from = if handle == NIL {
                0
            } else {
                (handle & !LARGE_BIT) as usize + 1
            };
            let capacity = self.large.capacity();
            return (from..capacity)
                .chain(0..from.min(capacity))
                .find(|&slot| self.large.contains(slot))
                .map_or(NIL, |slot| slot as u32 | LARGE_BIT);
        }
        let first = if handle == NIL {
            0
        } else {
            let next = handle + 1;
            if handle & CHUNK_MASK < CHUNK_MASK && self.in_class(class, next) {
                return next;
            }
            (handle >> CHUNK_BITS) as usize + 1
        };
        let count = self.pages.len();
        (first..count)
            .chain(0..first.min(count))
            .find(|&index| {
                let candidate = &self.pages[index];
                candidate.class == class
                    && candidate.memory.is_some()
                    && self.cut_chunks(index as u32) > 0
            })
            .map_or(NIL, |index| (index as u32) << CHUNK_BITS)
    }

    /// Live items in one page (the page mover evicts them all).
    pub fn live_in_page(&self, page: u32) -> Vec<Handle> {
        let class = self.pages[page as usize].class;
        let per_page = self.chunks_per_page(class);
        let carved = match self.classes[class].carving {
            Some((carving, next)) if carving == page => next,
            _ => per_page,
        };
        (0..carved)
            .map(|chunk| page << CHUNK_BITS | chunk)
            .filter(|&handle| self.header(handle).state & super::item::LIVE != 0)
            .collect()
    }

    /// Page of a paged item.
    pub fn page_of(handle: Handle) -> Option<u32> {
        (handle & LARGE_BIT == 0).then_some(handle >> CHUNK_BITS)
    }

    /// True when no live item is left in the page.
    pub fn page_unused(&self, page: u32) -> bool {
        self.pages[page as usize].used == 0
    }

    /// Takes an emptied page away from its class so another class can use it.
    pub fn detach_page(&mut self, page: u32) {
        let class = self.pages[page as usize].class;
        debug_assert_eq!(self.pages[page as usize].used, 0);
        let state = &mut self.classes[class];
        state.free.retain(|&handle| handle >> CHUNK_BITS != page);
        if matches!(state.carving, Some((carving, _)) if carving == page) {
            state.carving = None;
        }
        state.pages -= 1;
        self.pages[page as usize].class = NO_CLASS;
        self.pages[page as usize].chunk_size = 0;
        self.free_pages.push(page);
    }

    /// Stops handing out chunks of `page` (its free chunks and uncut rest), so items
    /// can be moved out of it into other pages of its class.
    pub fn stop_cutting(&mut self, page: u32) {
        let class = self.pages[page as usize].class;
        let state = &mut self.classes[class];
        state.free.retain(|&handle| handle >> CHUNK_BITS != page);
        if matches!(state.carving, Some((carving, _)) if carving == page) {
            state.carving = None;
        }
    }

    /// Moves a live item of a paged class into the free chunk `to` of the same class
    /// (`slabs reassign` rescuing it from the page it empties): the bytes and the pages'
    /// counts. True if the item is in the small queue's ring: the caller then repoints
    /// its entry with `repoint_ring` (once for a whole page), and the index.
    #[must_use]
    pub fn relocate(&mut self, from: Handle, to: Handle) -> bool {
        let chunk_size = self.classes[self.class_of(from)].chunk_size;
        debug_assert_eq!(self.class_of(from), self.class_of(to));
        let source = self.chunk_ptr(from);
        let target = self.chunk_ptr_mut(to);
        // SAFETY: both are whole chunks of the same size in different pages (the page of
        // `from` no longer hands out chunks), so they never overlap.
        unsafe { std::ptr::copy_nonoverlapping(source, target, chunk_size) };
        self.pages[(from >> CHUNK_BITS) as usize].used -= 1;
        self.pages[(to >> CHUNK_BITS) as usize].used += 1;
        self.header_mut(from).state = 0;
        let header = *self.header(to);
        header.state & IN_MAIN == 0 && !header.overflowed()
    }

    /// Points the ring entries of items `relocate` moved (`from`, `to` pairs, all of
    /// `class`) at their new chunks, in one pass over the ring.
    pub fn repoint_ring(&mut self, class: usize, moved: &[(Handle, Handle)]) {
        self.classes[class].small.repoint(moved);
    }

    /// The first page `class` owns (the one `slabs reassign` takes, as memcached's).
    pub fn first_page_of(&self, class: usize) -> Option<u32> {
        self.pages
            .iter()
            .position(|page| page.class == class && page.memory.is_some())
            .map(|index| index as u32)
    }

    /// Pages held but owned by no class: the next class to grow takes one.
    pub fn spare_pages(&self) -> usize {
        self.free_pages.len()
    }

    /// A page of another class with no live item, if any (left behind by deletes).
    pub fn empty_page_outside(&self, class: usize) -> Option<u32> {
        self.pages
            .iter()
            .enumerate()
            .find(|(_, page)| page.class != class && page.class != NO_CLASS && page.used == 0)
            .map(|(index, _)| index as u32)
    }

    /// Every live handle, page by page then large items (crawler, cachedump, flush).
    pub fn live_handles_from(&self, cursor: usize, budget: usize) -> (Vec<Handle>, usize) {
        let mut found = Vec::new();
        let mut position = cursor;
        let total_pages = self.pages.len();
        let mut scanned = 0;
        while scanned < budget {
            if position < total_pages {
                if self.pages[position].class != NO_CLASS {
                    found.extend(self.live_in_page(position as u32));
                }
                scanned += 1;
                position += 1;
                continue;
            }
            found.extend(self.large.iter().map(|(slot, _)| slot as u32 | LARGE_BIT));
            position = 0;
            break;
        }
        (found, position)
    }

    /// Checks the queue counts of `class` against its chunks (tests): every ring item is
    /// a live probation item of the class and named once, the overflow and main counts
    /// match the header bits, and the items add up.
    #[cfg(test)]
    pub fn check_queues(&self, class: usize) {
        let state = &self.classes[class];
        let mut seen = std::collections::HashSet::new();
        for handle in state.small.iter() {
            assert!(self.is_ring_item(class, handle), "ring entry {handle:#x}");
            assert!(seen.insert(handle), "ring names {handle:#x} twice");
        }
        assert_eq!(seen.len() as u64, state.small.len, "ring items");
        let (mut overflow, mut main) = (0, 0);
        self.sweep(class, Sweep::Overflow, |_| {
            overflow += 1;
            true
        });
        self.sweep(class, Sweep::Main, |_| {
            main += 1;
            true
        });
        let live = self
            .pages
            .iter()
            .enumerate()
            .filter(|(_, page)| page.class == class && page.memory.is_some())
            .map(|(index, _)| self.live_in_page(index as u32))
            .flat_map(|handles| handles.into_iter())
            .filter(|&handle| {
                let header = self.header(handle);
                if header.state & IN_MAIN != 0 {
                    assert!(!header.overflowed(), "a main item is not in the overflow");
                }
                header.state & IN_MAIN == 0 && header.overflowed()
            })
            .count() as u64;
        assert_eq!(overflow, state.overflow, "overflow items");
        assert_eq!(live, state.overflow, "overflowed chunks");
        assert_eq!(main, state.main_items, "main items");
        assert_eq!(
            state.small.len + state.overflow + state.main_items,
            state.items
        );
    }

    /// Marks an item as read (for `evicted_unfetched`, `mg h`) and counts the read for
    /// eviction. As memcached, the access time moves only when it is more than
    /// `UPDATE_INTERVAL` old, and a read that changes nothing leaves the header
    /// unwritten.
    #[inline]
    pub fn mark_fetched(&mut self, handle: Handle, now: u32) {
        if self.header(handle).read_is_recorded(now) {
            return;
        }
        let header = self.header_mut(handle);
        header.state |= FETCHED;
        header.set_frequency(header.frequency() + 1);
        header.note_access(now);
    }
}

/// Hands freed heap memory back to the kernel after a large buffer was replaced (the
/// index rebuilt, a ring grown). glibc serves an allocation of a size it has freed
/// before from its heap (its mmap threshold rises past the buffer's size), and keeps
/// freed heap memory resident: without this, a full cache, whose index is rebuilt every
/// so many evictions, would hold a dead copy of its index per shard outside the `-m`
/// budget, and a filling one the ring's earlier buffers.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_freed_memory() {
    // SAFETY: malloc_trim only returns free allocator memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return freed memory on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_freed_memory() {}

/// Bytes a large item is charged: its key and value plus allocator and header overhead.
pub fn large_footprint(key_len: usize, value_len: usize) -> usize {
    HEADER_SIZE + 64 + key_len + value_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::item::item_size;

    #[test]
    fn a_cheap_look_at_the_front_passes_over_chunks_with_orphans() {
        let mut ring = SmallRing::default();
        for handle in [1, 2, 3] {
            ring.push(handle);
        }
        ring.remove(2); // deleted on probation: its entry stays as an orphan
        ring.push(2); // the chunk reused by a new item on probation
        assert_eq!(ring.iter().collect::<Vec<_>>(), [1, 3, 2]);
        assert_eq!(ring.first_items(5).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(ring.first_items(1).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn a_page_move_leaves_the_front_an_items_entry() {
        let mut ring = SmallRing::default();
        ring.push(1);
        ring.push(7);
        ring.remove(7); // chunk 7 now holds one orphan entry
        // Item 1 moves to chunk 7 (its new page): the front entry now names a chunk
        // with an orphan pending, and is dropped as that orphan by count.
        ring.repoint(&[(1, 7)]);
        assert_eq!(ring.front(), 7);
        assert_eq!(ring.entry_count(), 1);
        assert_eq!(ring.iter().collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn classes_step_by_four_up_to_256_and_keep_memcacheds_sizes() {
        let classes = SizeClasses::new(48, 1.25);
        let sizes = classes.sizes();
        assert_eq!(&sizes[..3], &[96, 100, 104]);
        for memcached in [96, 120, 152, 192, 240, 304, 384, 480, 600, 752, 944, 1184] {
            assert!(sizes.contains(&memcached), "{memcached} in {sizes:?}");
        }
        assert!(sizes.contains(&FINE_STEPS_UP_TO));
        assert!(!sizes.contains(&(FINE_STEPS_UP_TO + 4)));
        assert!(sizes.iter().all(|size| size % FINE_STEP == 0));
        assert!(sizes.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(sizes.last(), Some(&SLAB_CHUNK_MAX));
        assert!(sizes.len() <= MAX_CLASSES + 1);
        // A 12-byte key and a 100-byte value fill their chunk exactly: 132 bytes.
        let item = item_size(12, 100, 0);
        assert_eq!(item, 132);
        assert_eq!(
            classes.class_for(item).map(|class| sizes[class]),
            Some(item)
        );
    }

    #[test]
    fn a_small_first_class_falls_back_to_eight_byte_steps() {
        // From 56 bytes (`-n 8`), 4-byte steps would pass the class limit.
        let classes = SizeClasses::new(8, 1.25);
        let sizes = classes.sizes();
        assert_eq!(&sizes[..3], &[56, 64, 72]);
        assert!(sizes.contains(&FINE_STEPS_UP_TO));
        assert!(sizes.len() <= MAX_CLASSES + 1);
    }

    #[test]
    fn the_class_table_picks_the_smallest_chunk_that_holds_each_size() {
        for (min_space, factor) in [(48, 1.25), (1, 1.25), (48, 1.02), (200, 2.0)] {
            let classes = SizeClasses::new(min_space, factor);
            for total in 0..=SLAB_CHUNK_MAX + 9 {
                let searched = classes.sizes().iter().position(|&size| size >= total);
                assert_eq!(classes.class_for(total), searched, "{total} bytes");
            }
        }
    }

    #[test]
    fn a_small_factor_keeps_memcacheds_sizes_alone_within_the_class_limit() {
        let classes = SizeClasses::new(48, 1.02);
        let sizes = classes.sizes();
        assert_eq!(sizes.len(), MAX_CLASSES + 1);
        assert_eq!(sizes[1], align8((96.0 * 1.02) as usize));
    }
}
