//! Making room: reclaiming dead items where eviction looks, evicting by S3-FIFO, moving
//! pages between classes, and giving memory back to the budget shared with the other
//! shards.
//!
//! Eviction policy (S3-FIFO, Yang et al., SOSP 2023, as Pelikan offers it): each class
//! has a small probation queue (a FIFO ring of handles) and a main queue (a CLOCK over
//! the class's chunks), and every item a 2-bit read count; no item holds queue links. A
//! new item enters the small queue. While the small queue holds at least
//! `SMALL_QUEUE_PERCENT` of the class (or the main queue is empty), eviction looks at its
//! first item: one read since it entered moves to the main queue with its count
//! cleared, one never read is evicted (its fingerprint goes to the ghost table,
//! `ghost.rs`), so a burst of one-hit wonders passes through the small queue without
//! pushing out what is read again; a key stored while the ghost remembers it enters the
//! main queue. Otherwise eviction looks at the main item under the CLOCK hand, which
//! sweeps the class's chunks in page order past free chunks and small-queue items: an
//! item with a count keeps its place with the count lowered by one, one without is
//! evicted (FIFO with reinsertion, without relinking). Reads only set bits in the item;
//! nothing moves on a hit. While memory fills without evictions, the ring keeps at most
//! `SMALL_QUEUE_CAP_PERCENT` of the class; older probation items leave it for the
//! "overflow", which a second CLOCK hand sweeps, and eviction takes probation items
//! from there first (they are the oldest).

use super::{Now, OutOfMemory, RoomWanted, Shard};
use crate::store::item::{FETCHED, Handle, IN_MAIN, NIL};
use crate::store::memory::{Memory, PAGE_SIZE, Sweep};

/// Items one eviction may move or requeue before it takes the candidate it stands at,
/// read or not: bounds the time an eviction holds the shard lock when every item was
/// read lately (a full pass over a million-item queue would take tens of milliseconds).
pub(super) const REQUEUES_MAX: usize = 100;

/// How many items of each queue, from where eviction looks, are checked for being
/// expired or flushed before making room by eviction (memcached checks a few at its LRU
/// tail).
const TAIL_CHECKS: usize = 5;

impl Shard {
    /// Returns whole pages to the budget while it is overdrawn (after the index grew).
    pub(super) fn repay_budget(&mut self) {
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

    /// Frees one page of a slab class for the budget: evicts as the policy orders until
    /// a page empties; if a page's worth of evictions emptied none (items of all ages
    /// share pages), the page of the next candidate is emptied outright.
    pub(super) fn free_page_of(&mut self, class: usize) {
        for _ in 0..PAGE_SIZE / self.memory.class(class).chunk_size {
            if self.memory.class(class).items == 0 {
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
        if self.memory.class(class).items != 0 {
            self.move_page_from(class);
            self.memory.drop_free_page();
        }
    }

    /// Last access time of the shard's next eviction candidate: the store evicts from
    /// the shard whose candidate is oldest.
    pub fn oldest_access(&self) -> Option<u32> {
        let class = self.oldest_tail_class(self.memory.large_class())?;
        Some(
            self.memory
                .header(self.memory.eviction_candidate(class))
                .atime,
        )
    }

    /// Takes the note left by an allocation that failed while other shards hold memory.
    pub fn take_room_wanted(&mut self) -> Option<RoomWanted> {
        self.room_wanted.take()
    }

    /// Counts a final allocation failure of `class` (`outofmemory` in `stats slabs`).
    pub fn count_out_of_memory(&mut self, class: usize) {
        self.memory.class_mut(class).counters.out_of_memory += 1;
    }

    /// True when part of the shared budget is held by other shards.
    pub(super) fn others_hold_memory(&self) -> bool {
        self.memory.budget().used() > self.memory.held() + self.index_charge
    }

    /// An allocation of `class` needing `bytes` found no room in this shard: final if
    /// this shard holds the whole budget, otherwise a note for the store to free
    /// memory in other shards and try again.
    pub(super) fn no_room(&mut self, class: usize, bytes: usize) -> OutOfMemory {
        if self.others_hold_memory() {
            self.room_wanted = Some(RoomWanted { bytes, class });
        } else {
            self.count_out_of_memory(class);
        }
        OutOfMemory
    }

    /// A free chunk of `class`, making room by expiry, page growth or eviction.
    pub(super) fn chunk_for(&mut self, class: usize, now: Now) -> Result<Handle, OutOfMemory> {
        self.now_seen = now.now;
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
            // `slabs automove 0`: pages stay with their classes, even empty ones.
            let automove = self.memory.budget().automove() != 0;
            if automove && let Some(page) = self.memory.empty_page_outside(class) {
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
                Some(victim) if automove => self.move_page_from(victim),
                Some(_) if self.memory.class(class).items != 0 => {
                    self.evict_tail(class);
                }
                Some(_) | None => return Err(self.no_room(class, PAGE_SIZE)),
            }
        }
    }

    /// Gives one piece of memory back to the budget so a large item of `footprint`
    /// bytes may fit: a free page, a dead item, or else the oldest data.
    pub(super) fn make_room_for_large(
        &mut self,
        footprint: usize,
        now: Now,
    ) -> Result<(), OutOfMemory> {
        self.now_seen = now.now;
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

    /// Frees an expired or flushed item among the next few each queue of the class
    /// would evict (memcached checks a few at its LRU tail).
    pub(super) fn reclaim_dead_tail(&mut self, class: usize, now: Now) -> bool {
        let mut nearest = [NIL; 3 * TAIL_CHECKS];
        let mut count = 0;
        for handle in self.memory.class(class).small.first_items(TAIL_CHECKS) {
            nearest[count] = handle;
            count += 1;
        }
        for sweep in [Sweep::Overflow, Sweep::Main] {
            let mut taken = 0;
            self.memory.sweep(class, sweep, |handle| {
                nearest[count] = handle;
                count += 1;
                taken += 1;
                taken < TAIL_CHECKS
            });
        }
        for &handle in &nearest[..count] {
            let header = *self.memory.header(handle);
            if header.is_expired(now.now) || self.is_flushed(&header, now) {
                let hash = self.hash_of(handle);
                self.remove_dead(handle, hash);
                return true;
            }
        }
        false
    }

    /// The class whose next eviction candidate was accessed longest ago; `preferred`
    /// wins ties. Ages are whole seconds, so the store order (CAS) breaks ties within a
    /// second.
    pub(super) fn oldest_tail_class(&self, preferred: usize) -> Option<usize> {
        let age_of = |class: usize| {
            let candidate = self.memory.eviction_candidate(class);
            (candidate != NIL).then(|| {
                let header = self.memory.header(candidate);
                (header.atime, header.cas)
            })
        };
        let mut best = age_of(preferred).map(|age| (preferred, age));
        for class in 0..self.memory.class_count() {
            if class == preferred
                || self.memory.class(class).pages == 0 && class != self.memory.large_class()
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

    /// Evicts one item of a class that holds items, as the S3-FIFO policy (module
    /// comment) picks it. Returns the evicted item's (now free) handle.
    pub(super) fn evict_tail(&mut self, class: usize) -> Handle {
        let mut requeued = 0;
        loop {
            let candidate = self.memory.eviction_candidate(class);
            let header = *self.memory.header(candidate);
            let count = header.frequency();
            let in_main = header.state & IN_MAIN != 0;
            if count == 0 || requeued == REQUEUES_MAX {
                if in_main {
                    self.memory.pass_hand(class, Sweep::Main, candidate);
                } else {
                    if header.overflowed() {
                        self.memory.pass_hand(class, Sweep::Overflow, candidate);
                    }
                    let hash = self.hash_of(candidate);
                    if self.ghost.remember(hash, self.counters.curr_items) {
                        self.charge_index();
                    }
                }
                self.evict(candidate);
                return candidate;
            }
            requeued += 1;
            if in_main {
                self.memory.header_mut(candidate).set_frequency(count - 1);
                self.memory.pass_hand(class, Sweep::Main, candidate);
            } else {
                self.memory.promote(class, candidate);
            }
        }
    }

    pub(super) fn evict(&mut self, handle: Handle) {
        let now = self.now_seen;
        let header = *self.memory.header(handle);
        let unfetched = header.state & FETCHED == 0;
        crate::watch::log(crate::watch::Kinds::EVICTIONS, || {
            self.eviction_line(handle)
        });
        let class = self.class_counters(handle);
        class.evicted += 1;
        class.evicted_nonzero += u64::from(header.exptime != 0);
        class.evicted_time = u64::from(now.saturating_sub(header.atime));
        class.evicted_unfetched += u64::from(unfetched);
        self.counters.evictions += 1;
        if unfetched {
            self.counters.evicted_unfetched += 1;
        }
        let hash = self.hash_of(handle);
        self.unlink(handle, hash);
    }

    /// Empties the page holding `victim`'s next eviction candidate and hands it to the
    /// free page list.
    pub(super) fn move_page_from(&mut self, victim: usize) {
        let candidate = self.memory.eviction_candidate(victim);
        let Some(page) = Memory::page_of(candidate) else {
            return self.evict(candidate);
        };
        for handle in self.memory.live_in_page(page) {
            self.evict(handle);
        }
        self.memory.detach_page(page);
        self.counters.slabs_moved += 1;
    }

    /// Pages of `class` (0-based) this shard owns.
    pub fn class_pages(&self, class: usize) -> u32 {
        self.memory.class(class).pages
    }

    /// Emptied pages this shard keeps for any class (memcached's global page pool).
    pub fn spare_pages(&self) -> usize {
        self.memory.spare_pages()
    }

    /// `slabs reassign`: empties a page of `source` (see [`Shard::empty_page`]) and
    /// gives it to `destination`. `None` as source takes a spare page instead; `None`
    /// as destination leaves the page spare, for whichever class next needs one. False
    /// if this shard has no such page.
    pub fn reassign_page(&mut self, source: Option<usize>, destination: Option<usize>) -> bool {
        match source {
            Some(class) => {
                let Some(page) = self.memory.first_page_of(class) else {
                    return false;
                };
                self.empty_page(page, class);
                self.memory.detach_page(page);
            }
            None if self.memory.spare_pages() == 0 => return false,
            None => {}
        }
        self.counters.slabs_moved += 1;
        if let Some(class) = destination {
            self.memory.grow_class(class);
        }
        true
    }

    /// Empties `page` of `class` as memcached's slab mover does: its items move to free
    /// chunks of the class while there are any (`slab_reassign_rescues`), the rest are
    /// dropped (`slab_reassign_evictions_nomem`, apart from evictions). Drops come after
    /// the moves, since a dropped item's chunk would be free in this very page.
    fn empty_page(&mut self, page: u32, class: usize) {
        let live = self.memory.live_in_page(page);
        self.memory.stop_cutting(page);
        let mut dropped = Vec::new();
        let mut moved_in_ring = Vec::new();
        for handle in live {
            let hash = self.hash_of(handle);
            let Some(spare) = self.memory.take_chunk(class) else {
                dropped.push((handle, hash));
                continue;
            };
            if self.memory.relocate(handle, spare) {
                moved_in_ring.push((handle, spare));
            }
            self.index.replace(hash, handle, spare);
            self.counters.slab_reassign_rescues += 1;
        }
        self.memory.repoint_ring(class, &moved_in_ring);
        for (handle, hash) in dropped {
            self.counters.slab_reassign_evictions_nomem += 1;
            self.unlink(handle, hash);
        }
    }
}
