//! What operators and snapshots see of a shard, in types of the store's own so no caller
//! reads item headers or class internals: per-class figures (`stats items`/`slabs`,
//! `/metrics`), cachedump entries, live-item iteration (metadump, snapshots) and restore.

use super::{Now, OutOfMemory, Shard};
use crate::store::item::{FETCHED, Handle, Header, NIL};
use crate::store::memory::{ClassCounters, Sweep};

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

/// One live item as readers outside the store see it: a metadump line or a snapshot
/// record. Times are server time (seconds since the process started).
#[derive(Debug, Clone, Copy)]
pub struct LiveItem<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// Absolute expiry; 0 = never.
    pub exptime: u32,
    /// CAS value (0 with `-C`).
    pub cas: u64,
    /// Last access.
    pub accessed: u32,
    /// Read at least once since stored.
    pub fetched: bool,
    /// 1-based slab class id, as memcached numbers classes.
    pub class: usize,
    /// Bytes the item occupies in its chunk.
    pub size: usize,
}

/// One slab class's figures summed over all shards: `stats items`, `stats slabs` and the
/// `memcached_slab_*` series of `/metrics`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClassStats {
    /// Chunk size in bytes; 0 for the large-item class.
    pub chunk_size: usize,
    /// Pages owned by the class.
    pub pages: u64,
    /// Items linked in the class (`number`, `used_chunks`).
    pub items: u64,
    /// Bytes requested by those items (`mem_requested`).
    pub requested: u64,
    /// Hits, sets, evictions, reclaims and crawler figures of the class.
    pub counters: ClassCounters,
    /// Seconds since the recorded last access of the item eviction would take next
    /// (`age`; memcached's is its LRU tail's). Access times move at most once a minute.
    pub age: u32,
}

impl ClassStats {
    /// Chunks one page of this class holds (0 for the large-item class).
    pub fn chunks_per_page(&self) -> u64 {
        crate::store::PAGE_SIZE
            .checked_div(self.chunk_size)
            .unwrap_or(0) as u64
    }

    /// Chunks in all pages of this class.
    pub fn total_chunks(&self) -> u64 {
        self.chunks_per_page() * self.pages
    }
}

impl Shard {
    /// Visits every live item of the classes in `classes` (bit n: the class of 0-based
    /// index n) (`lru_crawler metadump`), within each class the main queue from the
    /// CLOCK hand round, then the small one: its overflow from its hand round, then its
    /// ring first entered first (the order eviction would look at them).
    pub fn for_each_live(&self, now: Now, classes: u64, mut visit: impl FnMut(LiveItem<'_>)) {
        for class in (0..self.memory.class_count()).filter(|class| classes >> class & 1 == 1) {
            let mut handles = Vec::new();
            for sweep in [Sweep::Main, Sweep::Overflow] {
                self.memory.sweep(class, sweep, |handle| {
                    handles.push(handle);
                    true
                });
            }
            handles.extend(self.memory.class(class).small.iter());
            for handle in handles {
                let header = self.memory.header(handle);
                if !header.is_expired(now.now) && !self.is_flushed(header, now) {
                    visit(self.live_item(handle, header));
                }
            }
        }
    }

    /// The outside view of a live item.
    fn live_item<'a>(&'a self, handle: Handle, header: &Header) -> LiveItem<'a> {
        LiveItem {
            key: self.memory.key(handle),
            value: self.memory.value(handle).bytes(),
            flags: self.memory.flags(handle),
            exptime: header.exptime,
            cas: header.cas,
            accessed: header.atime,
            fetched: header.state & FETCHED != 0,
            class: self.memory.class_of(handle) + 1,
            size: self.memory.item_size(handle),
        }
    }

    /// Adds this shard's per-class figures into `totals` (one entry per class, the
    /// large-item class last); `now` dates the oldest item's age.
    pub fn add_class_stats(&self, now: u32, totals: &mut [ClassStats]) {
        for (class, total) in totals
            .iter_mut()
            .enumerate()
            .take(self.memory.class_count())
        {
            let state = self.memory.class(class);
            total.pages += u64::from(state.pages);
            total.items += state.items;
            total.requested += state.requested;
            total.counters.add(&state.counters);
            let main = self.memory.candidate(class, Sweep::Main);
            for next in [self.memory.probation_candidate(class), main] {
                if next != NIL {
                    let age = now.saturating_sub(self.memory.header(next).atime);
                    total.age = total.age.max(age);
                }
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
        mut visit: impl FnMut(LiveItem<'_>),
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
                visit(self.live_item(handle, header));
                bytes += usize::from(header.key_len) + self.memory.value_len(handle);
            }
            items += 1;
            cursor.after = Some(handle);
        }
        // live_handles_from wraps to 0 after the large items: the walk is complete.
        cursor.done = next_position == 0;
        cursor.position = next_position;
        cursor.after = None;
    }

    /// Stores an item from a snapshot, keeping its CAS value, last access time and
    /// whether it was read (warm restart).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &mut self,
        key: &[u8],
        hash: u64,
        flags: u32,
        expiry: u32,
        cas: u64,
        accessed: u32,
        fetched: bool,
        value: &[u8],
        now: Now,
    ) -> Result<(), OutOfMemory> {
        self.put(key, hash, flags, expiry, &[value], now, 0)?;
        if let Some(handle) = self.find(key, hash) {
            let header = self.memory.header_mut(handle);
            header.atime = accessed.min(now.now);
            if fetched {
                header.state |= FETCHED;
            }
            if self.cas_enabled {
                header.cas = cas;
                self.raise_cas_above(cas);
            }
        }
        Ok(())
    }

    /// Items of one class for `stats cachedump`: the small queue's ring newest first, its
    /// overflow, then the main queue from the CLOCK hand round, until `out` holds
    /// `limit` items (0 = all).
    pub fn dump_class(&self, class: usize, limit: usize, now: Now, out: &mut Vec<DumpedItem>) {
        // Appends a live item; false once `limit` items are out (nothing more is read).
        let emit = |handle: Handle, out: &mut Vec<DumpedItem>| {
            if limit != 0 && out.len() >= limit {
                return false;
            }
            let header = self.memory.header(handle);
            if !header.is_expired(now.now) && !self.is_flushed(header, now) {
                out.push(DumpedItem {
                    key: self.memory.key(handle).to_vec(),
                    size: self.memory.value_len(handle),
                    exptime: header.exptime,
                });
            }
            true
        };
        let probation: Vec<Handle> = self.memory.class(class).small.iter().collect();
        for handle in probation.into_iter().rev() {
            if !emit(handle, out) {
                return;
            }
        }
        for sweep in [Sweep::Overflow, Sweep::Main] {
            let mut going = true;
            self.memory.sweep(class, sweep, |handle| {
                going = emit(handle, out);
                going
            });
            if !going {
                return;
            }
        }
    }
}
