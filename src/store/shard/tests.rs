use super::*;
use crate::store::item::{FREQUENCY_MAX, HEADER_SIZE, IN_MAIN, item_size};
use crate::store::memory::{PAGE_SIZE, SMALL_QUEUE_CAP_PERCENT};
use std::hash::BuildHasher;

const MIB: usize = 1024 * 1024;

/// A text-protocol store straight on one shard (the store goes through `meta_store`).
impl Shard {
    /// Executes set/add/replace/append/prepend/cas.
    #[allow(clippy::too_many_arguments)]
    fn store(
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
}

fn shard_with(limit: usize, evictions: bool) -> Shard {
    Shard::new(
        ShardCas::new(0, 1),
        SizeClasses::new(48, 1.25),
        Arc::new(Budget::new(limit)),
        KeyHasher::default(),
        true,
        evictions,
        MIB,
    )
}

fn at(now: u32) -> Now {
    Now {
        now,
        oldest_live: 0,
    }
}

struct Fixture {
    shard: Shard,
    hasher: KeyHasher,
}

impl Fixture {
    fn new(limit: usize, evictions: bool) -> Self {
        let shard = shard_with(limit, evictions);
        let hasher = shard.hasher.clone();
        Fixture { shard, hasher }
    }

    fn set(&mut self, key: &[u8], value: &[u8], exptime: u32, now: Now) -> StoreOutcome {
        let hash = self.hasher.hash_one(key);
        self.shard
            .store(StoreMode::Set, key, hash, 7, exptime, value, now)
    }

    fn store(&mut self, mode: StoreMode, key: &[u8], value: &[u8], now: Now) -> StoreOutcome {
        let hash = self.hasher.hash_one(key);
        self.shard.store(mode, key, hash, 0, 0, value, now)
    }

    fn get(&mut self, key: &[u8], now: Now) -> Option<Vec<u8>> {
        let hash = self.hasher.hash_one(key);
        let mut found = None;
        self.shard.fetch(key, hash, now, None, |item| {
            found = Some(item.value.as_slice().to_vec());
        });
        found
    }

    fn arith(&mut self, key: &[u8], incr: bool, delta: u64) -> ArithOutcome {
        let hash = self.hasher.hash_one(key);
        self.shard.arith(key, hash, at(10), incr, delta)
    }
}

#[test]
fn stores_and_reads_back() {
    let mut f = Fixture::new(64 * MIB, true);
    assert!(matches!(
        f.set(b"k", b"value", 0, at(10)),
        StoreOutcome::Stored(_)
    ));
    assert_eq!(f.get(b"k", at(10)).as_deref(), Some(&b"value"[..]));
    assert!(matches!(
        f.set(b"k", b"second", 0, at(10)),
        StoreOutcome::Stored(_)
    ));
    assert_eq!(f.get(b"k", at(10)).as_deref(), Some(&b"second"[..]));
    assert_eq!(f.shard.counters.curr_items, 1);
    assert_eq!(f.get(b"missing", at(10)), None);
    assert_eq!(f.shard.counters.get_hits, 2);
    assert_eq!(f.shard.counters.get_misses, 1);
}

#[test]
fn add_replace_append_prepend_cas() {
    let mut f = Fixture::new(64 * MIB, true);
    assert_eq!(
        f.store(StoreMode::Replace, b"k", b"x", at(10)),
        StoreOutcome::NotStored
    );
    assert_eq!(
        f.store(StoreMode::Append, b"k", b"x", at(10)),
        StoreOutcome::NotStored
    );
    let StoreOutcome::Stored(cas) = f.store(StoreMode::Add, b"k", b"mid", at(10)) else {
        panic!("add stores a new key")
    };
    assert_eq!(
        f.store(StoreMode::Add, b"k", b"x", at(10)),
        StoreOutcome::NotStored
    );
    assert!(matches!(
        f.store(StoreMode::Append, b"k", b">", at(10)),
        StoreOutcome::Stored(_)
    ));
    assert!(matches!(
        f.store(StoreMode::Prepend, b"k", b"<", at(10)),
        StoreOutcome::Stored(_)
    ));
    assert_eq!(f.get(b"k", at(10)).as_deref(), Some(&b"<mid>"[..]));
    assert_eq!(
        f.store(StoreMode::Cas(cas), b"k", b"y", at(10)),
        StoreOutcome::Exists
    );
    assert_eq!(
        f.store(StoreMode::Cas(1), b"nope", b"y", at(10)),
        StoreOutcome::NotFound
    );
    let hash = f.hasher.hash_one(b"k");
    let mut current = 0;
    f.shard
        .fetch(b"k", hash, at(10), None, |item| current = item.cas);
    assert!(
        matches!(f.store(StoreMode::Cas(current), b"k", b"z", at(10)), StoreOutcome::Stored(c) if c != current)
    );
    assert_eq!(f.shard.counters.cas_badval, 1);
    assert_eq!(f.shard.counters.cas_misses, 1);
    assert_eq!(f.shard.counters.cas_hits, 1);
}

#[test]
fn expired_items_are_invisible_at_once_and_reclaimed() {
    let mut f = Fixture::new(64 * MIB, true);
    f.set(b"short", b"v", 15, at(10));
    f.set(b"long", b"v", 100, at(10));
    assert!(f.get(b"short", at(14)).is_some());
    assert!(f.get(b"short", at(15)).is_none());
    assert_eq!(f.shard.counters.get_expired, 1);
    assert_eq!(
        f.shard.counters.curr_items, 1,
        "the expired item was freed on access"
    );
    // Never touched again: the crawler frees it.
    f.set(b"untouched", b"v", 20, at(10));
    f.shard.crawl(at(30), usize::MAX, true);
    assert_eq!(f.shard.counters.curr_items, 1);
    assert_eq!(f.shard.counters.crawler_reclaimed, 1);
    assert!(f.get(b"long", at(30)).is_some());
}

#[test]
fn flush_hides_older_items_and_keeps_newer_ones() {
    let mut f = Fixture::new(64 * MIB, true);
    f.set(b"old", b"v", 0, at(10));
    f.shard.mark_flush();
    let after_flush = Now {
        now: 10,
        oldest_live: 9,
    };
    f.set(b"new", b"v", 0, after_flush);
    assert!(f.get(b"old", after_flush).is_none());
    assert!(f.get(b"new", after_flush).is_some());
    assert_eq!(f.shard.counters.get_flushed, 1);
    // A delayed flush: at time 20 everything stored up to 19 goes.
    let delayed = Now {
        now: 15,
        oldest_live: 19,
    };
    f.set(b"later", b"v", 0, delayed);
    assert!(f.get(b"later", delayed).is_some());
    assert!(
        f.get(
            b"later",
            Now {
                now: 20,
                oldest_live: 19
            }
        )
        .is_none()
    );
}

#[test]
fn incr_decr_wrap_floor_and_pad_in_place() {
    let mut f = Fixture::new(64 * MIB, true);
    f.set(b"n", b"18446744073709551615", 0, at(10));
    assert_eq!(f.arith(b"n", true, 1), ArithOutcome::Value(0));
    assert_eq!(f.get(b"n", at(10)).unwrap(), b"0                   ");
    f.set(b"d", b"10", 0, at(10));
    assert_eq!(f.arith(b"d", false, 1), ArithOutcome::Value(9));
    assert_eq!(f.get(b"d", at(10)).unwrap(), b"9 ");
    assert_eq!(f.arith(b"d", false, 50), ArithOutcome::Value(0));
    f.set(b"g", b"99", 0, at(10));
    assert_eq!(f.arith(b"g", true, 1), ArithOutcome::Value(100));
    assert_eq!(f.get(b"g", at(10)).unwrap(), b"100");
    f.set(b"t", b"12a", 0, at(10));
    assert_eq!(f.arith(b"t", true, 1), ArithOutcome::NonNumeric);
    assert_eq!(f.arith(b"none", true, 1), ArithOutcome::NotFound);
}

#[test]
fn full_memory_evicts_the_oldest_unread_items() {
    let limit = 8 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let value = vec![b'v'; 100];
    let total = 50_000u32;
    for i in 0..total {
        let key = format!("key{i}");
        assert!(matches!(
            f.set(key.as_bytes(), &value, 0, at(10)),
            StoreOutcome::Stored(_)
        ));
        assert!(
            f.shard.memory.held() <= limit,
            "memory stays under the limit"
        );
    }
    let counters = f.shard.counters.clone();
    assert!(counters.evictions > 0);
    assert_eq!(counters.evictions + counters.curr_items, u64::from(total));
    for i in total - 1000..total {
        assert!(
            f.get(format!("key{i}").as_bytes(), at(10)).is_some(),
            "newest items stay"
        );
    }
    assert!(f.get(b"key0", at(10)).is_none());
}

#[test]
fn recently_read_items_get_a_second_chance() {
    let limit = 2 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let value = vec![b'v'; 100];
    f.set(b"hot000000", &value, 0, at(10));
    for i in 0..20_000 {
        f.set(format!("cold{i:05}").as_bytes(), &value, 0, at(10));
        if i % 100 == 0 {
            assert!(
                f.get(b"hot000000", at(10)).is_some(),
                "a key read often survives ({i})"
            );
        }
    }
}

impl Fixture {
    /// True when the key is stored, without counting a read.
    fn holds(&self, key: &[u8]) -> bool {
        self.shard.find(key, self.hasher.hash_one(key)).is_some()
    }
}

#[test]
fn one_read_protects_a_key_from_a_scan_of_one_hit_wonders() {
    let limit = 2 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let value = vec![b'v'; 100];
    let hot: Vec<String> = (0..100).map(|i| format!("hot{i:06}")).collect();
    for key in &hot {
        f.set(key.as_bytes(), &value, 0, at(10));
        assert!(f.get(key.as_bytes(), at(10)).is_some());
    }
    // Ten times what memory holds, each key written once and never read: an LRU would
    // have pushed the hot keys out after one pass.
    for i in 0..40_000 {
        f.set(format!("scan{i:05}").as_bytes(), &value, 0, at(10));
    }
    assert!(f.shard.counters.evictions > 30_000);
    for key in &hot {
        assert!(f.holds(key.as_bytes()), "{key} survived the scan");
    }
    assert!(!f.holds(b"scan00000"));
    assert!(f.holds(b"scan39999"), "the newest item is kept");
}

#[test]
fn items_never_read_again_are_evicted_before_items_read_again() {
    let limit = 2 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let value = vec![b'v'; 100];
    let mut stored = 0;
    while f.shard.counters.evictions == 0 {
        f.set(format!("fill{stored:05}").as_bytes(), &value, 0, at(10));
        stored += 1;
    }
    // The first key made room for the last; of the rest of the first half every other
    // key is read once, then a full pass of new keys (of the same class) follows.
    assert!(!f.holds(b"fill00000"));
    for i in (2..stored / 2).step_by(2) {
        f.get(format!("fill{i:05}").as_bytes(), at(10));
    }
    for i in 0..stored {
        f.set(format!("news{i:05}").as_bytes(), &value, 0, at(11));
    }
    for i in 1..stored / 2 {
        let read = i % 2 == 0;
        assert_eq!(
            f.holds(format!("fill{i:05}").as_bytes()),
            read,
            "fill{i} (read: {read})"
        );
    }
}

#[test]
fn a_main_queue_item_read_no_more_is_evicted_in_its_turn() {
    let limit = 2 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let value = vec![b'v'; 100];
    f.set(b"once-hot", &value, 0, at(10));
    f.get(b"once-hot", at(10));
    // Its count takes it into the main queue once; without further reads, the main
    // queue's turn comes and it goes like any other unread item.
    let mut i = 0;
    while f.holds(b"once-hot") {
        f.set(format!("k{i}").as_bytes(), &value, 0, at(10));
        f.get(format!("k{i}").as_bytes(), at(10));
        i += 1;
        assert!(
            i < 100_000,
            "an unread main-queue item is evicted eventually"
        );
    }
}

#[test]
fn one_eviction_requeues_a_bounded_number_of_read_items() {
    let limit = 2 * PAGE_SIZE;
    let value = vec![b'v'; 100];
    let capacity = {
        let mut f = Fixture::new(limit, true);
        let mut stored = 0;
        while f.shard.counters.evictions == 0 {
            f.set(format!("k{stored:05}").as_bytes(), &value, 0, at(10));
            stored += 1;
        }
        stored - 1
    };
    let mut f = Fixture::new(limit, true);
    for i in 0..capacity {
        f.set(format!("k{i:05}").as_bytes(), &value, 0, at(10));
    }
    for i in 0..capacity {
        for _ in 0..3 {
            f.get(format!("k{i:05}").as_bytes(), at(10));
        }
    }
    f.set(b"z00000", &value, 0, at(10));
    assert_eq!(f.shard.counters.evictions, 1);
    // The first REQUEUES_MAX read items moved to the main queue; the next one was
    // taken although read, instead of a pass over the whole class.
    assert!(f.holds(b"k00000"));
    assert!(!f.holds(format!("k{:05}", super::eviction::REQUEUES_MAX).as_bytes()));
}

#[test]
fn a_value_written_over_a_kept_item_keeps_its_place() {
    let limit = 2 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let value = vec![b'v'; 100];
    f.set(b"hot000000", &value, 0, at(10));
    f.get(b"hot000000", at(10));
    for i in 0..20_000 {
        f.set(format!("cold{i:05}").as_bytes(), &value, 0, at(10));
        if i % 5000 == 0 {
            // Rewritten, never read again: still where a read had put it.
            f.set(b"hot000000", &[b'r'; 100], 0, at(10));
        }
    }
    assert!(f.holds(b"hot000000"));
}

#[test]
fn changing_value_sizes_never_calcify_the_slabs() {
    let limit = 16 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    for i in 0..100_000 {
        f.set(format!("small{i}").as_bytes(), &[b's'; 50], 0, at(10));
    }
    // Memory is full of small items; now only bigger ones arrive, in two sizes.
    for round in 0..3 {
        for size in [3000usize, 12_000, 40_000] {
            for i in 0..200 {
                let key = format!("big{round}-{size}-{i}");
                let value = vec![b'b'; size];
                assert!(
                    matches!(
                        f.set(key.as_bytes(), &value, 0, at(10 + round)),
                        StoreOutcome::Stored(_)
                    ),
                    "a {size}-byte item is stored after small ones filled memory"
                );
                assert_eq!(f.get(key.as_bytes(), at(10 + round)).unwrap(), value);
                assert!(f.shard.memory.held() <= limit);
            }
        }
    }
}

#[test]
fn disabled_evictions_refuse_instead_of_evicting() {
    let limit = 4 * PAGE_SIZE;
    let mut f = Fixture::new(limit, false);
    let mut refused = false;
    for i in 0..20_000 {
        match f.set(format!("k{i:05}").as_bytes(), &[b'v'; 100], 0, at(10)) {
            StoreOutcome::Stored(_) => {}
            StoreOutcome::OutOfMemory => {
                refused = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(refused);
    assert_eq!(f.shard.counters.evictions, 0);
    assert!(
        f.get(b"k00000", at(10)).is_some(),
        "nothing stored earlier is lost"
    );
    // Expired items (of the new item's class) still make room.
    let hash = f.hasher.hash_one(b"k00000");
    assert!(f.shard.touch(b"k00000", hash, at(10), 11));
    assert!(matches!(
        f.set(b"fresh0", &[b'v'; 100], 0, at(12)),
        StoreOutcome::Stored(_)
    ));
}

#[test]
fn large_items_are_shared_not_copied() {
    let mut f = Fixture::new(64 * MIB, true);
    let value = vec![b'L'; 500_000];
    f.set(b"large", &value, 0, at(10));
    let hash = f.hasher.hash_one(b"large");
    let mut shared = None;
    f.shard.fetch(b"large", hash, at(10), None, |item| {
        if let ValueRef::Shared(bytes) = item.value {
            shared = Some(bytes.clone());
        }
    });
    assert_eq!(
        shared.expect("a large value is shared").as_ref(),
        &value[..]
    );
    f.shard.delete(b"large", hash, at(10));
    assert_eq!(f.shard.memory.held(), 0, "its memory returns to the budget");
}

#[test]
fn cachedump_lists_live_items() {
    let mut f = Fixture::new(64 * MIB, true);
    f.set(b"a", b"1", 0, at(10));
    f.set(b"b", b"22", 50, at(10));
    let mut items = Vec::new();
    f.shard.dump_class(0, 0, at(10), &mut items);
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].key, b"b");
    assert_eq!((items[0].size, items[0].exptime), (2, 50));
}

#[test]
fn the_smallest_chunks_fill_whole_pages_without_overflowing_handles() {
    // `-n 1`: 56-byte chunks, 4,681 to a 256 KiB page (more than 12 handle bits held).
    let mut shard = Shard::new(
        ShardCas::new(0, 1),
        SizeClasses::new(1, 1.25),
        Arc::new(Budget::new(64 * MIB)),
        KeyHasher::default(),
        true,
        true,
        MIB,
    );
    let hasher = shard.hasher.clone();
    let count = 3 * PAGE_SIZE / 56;
    for i in 0..count {
        let key = format!("{i}");
        let hash = hasher.hash_one(key.as_bytes());
        let outcome = shard.store(StoreMode::Set, key.as_bytes(), hash, 0, 0, b"", at(10));
        assert!(matches!(outcome, StoreOutcome::Stored(_)), "set {i}");
    }
    for i in 0..count {
        let key = format!("{i}");
        let hash = hasher.hash_one(key.as_bytes());
        let mut seen = None;
        shard.fetch(key.as_bytes(), hash, at(10), None, |item| {
            seen = Some(item.key.to_vec());
        });
        assert_eq!(seen.as_deref(), Some(key.as_bytes()), "get {i}");
    }
    assert_eq!(shard.counters.curr_items, count as u64);
    assert_eq!(shard.counters.evictions, 0);
}

#[test]
fn an_operator_crawl_sweeps_only_the_named_classes() {
    let mut f = Fixture::new(64 * MIB, true);
    f.set(b"small", b"v", 20, at(10));
    f.set(b"large", &[b'v'; 500], 20, at(10));
    let small = f
        .shard
        .memory
        .class_of(f.shard.find(b"small", f.hasher.hash_one(b"small")).unwrap());
    f.shard.request_crawl(1 << small);
    assert!(f.shard.crawling());
    // The background crawler is off (`lru_crawler disable` would not allow the crawl,
    // but flush sweeps run the same way): only the named class is checked.
    f.shard.crawl(at(30), usize::MAX, false);
    assert!(!f.shard.crawling());
    assert_eq!(f.shard.counters.crawler_reclaimed, 1);
    assert_eq!(
        f.shard.memory.class(small).counters.crawler_items_checked,
        1
    );
    assert_eq!(
        f.shard.counters.curr_items, 1,
        "the other class was left alone"
    );
    f.shard.crawl(at(30), usize::MAX, true);
    assert_eq!(
        f.shard.counters.curr_items, 0,
        "the background crawler frees the rest"
    );
}

#[test]
fn without_automove_a_class_keeps_its_pages() {
    let mut f = Fixture::new(4 * PAGE_SIZE, true);
    f.shard.memory.budget().set_automove(0);
    let mut index = 0;
    while f.shard.counters.evictions == 0 {
        f.set(format!("s{index}").as_bytes(), b"v", 0, at(10));
        index += 1;
    }
    let pages = f.shard.memory.class(0).pages;
    // Another class needs a page: with automove 0 it may not take class 0's.
    assert_eq!(
        f.set(b"big", &[b'v'; 500], 0, at(20)),
        StoreOutcome::OutOfMemory
    );
    assert_eq!(f.shard.memory.class(0).pages, pages);
    f.shard.memory.budget().set_automove(1);
    assert!(matches!(
        f.set(b"big", &[b'v'; 500], 0, at(20)),
        StoreOutcome::Stored(_)
    ));
    assert_eq!(f.shard.memory.class(0).pages, pages - 1);
    // Not even an empty page changes class while automove is 0.
    let big_hash = f.hasher.hash_one(b"big");
    let big = f
        .shard
        .memory
        .class_of(f.shard.find(b"big", big_hash).unwrap());
    assert!(f.shard.delete(b"big", big_hash, at(21)));
    f.shard.memory.budget().set_automove(0);
    for index in 0..10_000 {
        f.set(format!("t{index}").as_bytes(), b"v", 0, at(22));
    }
    assert_eq!(f.shard.memory.class(big).pages, 1, "the empty page stayed");
    f.shard.memory.budget().set_automove(1);
    f.set(b"last", b"v", 0, at(23));
    assert_eq!(f.shard.memory.class(big).pages, 0, "automove 1 takes it");
}

impl Fixture {
    /// Stores with the given client flags.
    fn set_flagged(&mut self, key: &[u8], value: &[u8], flags: u32) {
        let hash = self.hasher.hash_one(key);
        self.shard
            .store(StoreMode::Set, key, hash, flags, 0, value, at(10));
    }

    /// The flags and value a read returns.
    fn read(&mut self, key: &[u8]) -> Option<(u32, Vec<u8>)> {
        let hash = self.hasher.hash_one(key);
        let mut found = None;
        self.shard.fetch(key, hash, at(10), None, |item| {
            found = Some((item.flags, item.value.as_slice().to_vec()));
        });
        found
    }

    fn delete(&mut self, key: &[u8]) -> bool {
        let hash = self.hasher.hash_one(key);
        self.shard.delete(key, hash, at(10))
    }

    /// The class of a stored key.
    fn class_of(&self, key: &[u8]) -> usize {
        let handle = self.shard.find(key, self.hasher.hash_one(key)).unwrap();
        self.shard.memory.class_of(handle)
    }
}

#[test]
fn flags_are_kept_only_when_not_zero_and_read_back() {
    let mut f = Fixture::new(64 * MIB, true);
    f.set_flagged(b"plain", b"v", 0);
    f.set_flagged(b"flagged", b"v", 0xdead_beef);
    f.set_flagged(b"big", &vec![b'b'; 20_000], 42);
    assert_eq!(f.read(b"plain"), Some((0, b"v".to_vec())));
    assert_eq!(f.read(b"flagged"), Some((0xdead_beef, b"v".to_vec())));
    assert_eq!(f.read(b"big").map(|(flags, _)| flags), Some(42));
    let size = |f: &Fixture, key: &[u8]| {
        let handle = f.shard.find(key, f.hasher.hash_one(key)).unwrap();
        f.shard.memory.item_size(handle)
    };
    assert_eq!(size(&f, b"plain"), HEADER_SIZE + 5 + 1);
    assert_eq!(size(&f, b"flagged"), HEADER_SIZE + 4 + 7 + 1);
    // An append keeps the flags and their room.
    f.store(StoreMode::Append, b"flagged", b"w", at(10));
    assert_eq!(f.read(b"flagged"), Some((0xdead_beef, b"vw".to_vec())));
}

/// Items of `fill_unread` (10-byte keys, 100-byte values, the fixture's flags) one page
/// holds.
fn fill_per_page() -> usize {
    let sizes = SizeClasses::new(48, 1.25);
    let class = sizes.class_for(item_size(10, 100, 7)).unwrap();
    PAGE_SIZE / sizes.sizes()[class]
}

/// Stores `count` unread items of one class (same key length and value) and returns
/// their keys, oldest first.
fn fill_unread(f: &mut Fixture, prefix: &str, count: usize) -> Vec<String> {
    let keys: Vec<String> = (0..count).map(|i| format!("{prefix}{i:06}")).collect();
    for key in &keys {
        f.set(key.as_bytes(), &[b'v'; 100], 0, at(10));
    }
    keys
}

#[test]
fn a_filling_cache_keeps_the_ring_to_its_cap_and_evicts_the_overflow_first() {
    let limit = 2 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let per_page = fill_per_page();
    let keys = fill_unread(&mut f, "fill", per_page);
    let class = f.class_of(keys[0].as_bytes());
    let state = f.shard.memory.class(class);
    assert_eq!(f.shard.counters.evictions, 0);
    assert!(state.small.len * 100 <= state.items * SMALL_QUEUE_CAP_PERCENT + 100);
    assert_eq!(
        state.small.len + state.overflow,
        state.items,
        "all on probation"
    );
    // Memory fills; the oldest (in the overflow) go first, the newest stay.
    let more = fill_unread(&mut f, "more", 2 * per_page);
    assert!(f.shard.counters.evictions > 0);
    assert!(!f.holds(keys[0].as_bytes()));
    assert!(f.holds(more.last().unwrap().as_bytes()));
}

#[test]
fn a_freed_chunk_reused_on_probation_keeps_its_new_place_in_the_ring() {
    let limit = 2 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let keys = fill_unread(&mut f, "ring", 10);
    // An item in the middle leaves a hole in the ring; its chunk goes to the next store.
    assert!(f.delete(keys[5].as_bytes()));
    f.set(b"newest0000", &[b'v'; 100], 0, at(10));
    let class = f.class_of(b"newest0000");
    assert_eq!(
        f.shard.memory.class(class).small.iter().last(),
        f.shard
            .find(b"newest0000", f.hasher.hash_one(b"newest0000"))
    );
    // Six evictions take the six oldest left; the hole does not stand for the item
    // now in its chunk.
    for _ in 0..6 {
        f.shard.evict_tail(class);
    }
    for key in keys[..5].iter().chain([&keys[6]]) {
        assert!(!f.holds(key.as_bytes()), "{key} evicted");
    }
    assert!(f.holds(b"newest0000"));
    assert_eq!(f.shard.memory.class(class).small.len, 4);
    f.shard.memory.check_queues(class);
}

#[test]
fn an_orphan_entry_is_skipped_and_the_reused_chunk_keeps_its_turn() {
    let mut f = Fixture::new(2 * PAGE_SIZE, true);
    let keys = fill_unread(&mut f, "ring", 10);
    let class = f.class_of(keys[0].as_bytes());
    // Keys 2 and 4 leave early; their chunks are reused (free list: last freed first).
    assert!(f.delete(keys[2].as_bytes()));
    assert!(f.delete(keys[4].as_bytes()));
    f.shard.memory.check_queues(class);
    f.set(b"again00000", &[b'v'; 100], 0, at(10));
    f.set(b"again00001", &[b'v'; 100], 0, at(10));
    f.shard.memory.check_queues(class);
    let order: Vec<Handle> = f.shard.memory.class(class).small.iter().collect();
    let handle_of = |f: &Fixture, key: &[u8]| f.shard.find(key, f.hasher.hash_one(key)).unwrap();
    assert_eq!(order.len(), 10);
    assert_eq!(order[8], handle_of(&f, b"again00000"));
    assert_eq!(order[9], handle_of(&f, b"again00001"));
    // Evictions take the eight first keys left in order, then the two new ones.
    let expected: Vec<&[u8]> = [0, 1, 3, 5, 6, 7, 8, 9]
        .iter()
        .map(|&i| keys[i].as_bytes())
        .chain([&b"again00000"[..], &b"again00001"[..]])
        .collect();
    for key in expected {
        assert!(f.holds(key));
        f.shard.evict_tail(class);
        assert!(
            !f.holds(key),
            "{} evicted in its turn",
            String::from_utf8_lossy(key)
        );
        f.shard.memory.check_queues(class);
    }
    assert_eq!(f.shard.memory.class(class).small.len, 0);
    assert_eq!(f.shard.memory.class(class).small.entry_count(), 0);
}

#[test]
fn one_chunk_reused_many_times_keeps_the_ring_bounded_and_exact() {
    // A lock key added and deleted over and over (memcached's MSM pattern) behind older
    // items: each add takes the chunk the delete freed and leaves an orphan entry.
    let mut f = Fixture::new(8 * PAGE_SIZE, true);
    let keys = fill_unread(&mut f, "held", 10);
    let class = f.class_of(keys[0].as_bytes());
    let lock = b"lock000000";
    let hash = f.hasher.hash_one(lock);
    let mut chunks = std::collections::HashSet::new();
    for round in 0..10_000 {
        let added = f
            .shard
            .store(StoreMode::Add, lock, hash, 7, 0, &[b'v'; 100], at(10));
        assert!(matches!(added, StoreOutcome::Stored(_)), "round {round}");
        chunks.insert(f.shard.find(lock, hash).unwrap());
        assert!(f.delete(lock));
        let small = &f.shard.memory.class(class).small;
        assert!(
            small.entry_count() <= 2 * small.len as usize + 65,
            "round {round}"
        );
    }
    f.shard
        .store(StoreMode::Add, lock, hash, 7, 0, &[b'v'; 100], at(10));
    assert_eq!(f.class_of(lock), class);
    assert_eq!(chunks.len(), 1, "the same chunk each time");
    assert_eq!(f.shard.counters.evictions, 0);
    f.shard.memory.check_queues(class);
    // The old items go first, in order, the lock last.
    for key in &keys {
        f.shard.evict_tail(class);
        assert!(!f.holds(key.as_bytes()), "{key}");
        assert!(f.holds(lock));
    }
    f.shard.evict_tail(class);
    assert!(!f.holds(lock));
    f.shard.memory.check_queues(class);
    assert_eq!(f.shard.memory.class(class).small.entry_count(), 0);
}

#[test]
fn many_orphans_are_compacted_away_keeping_the_order() {
    let mut f = Fixture::new(8 * PAGE_SIZE, true);
    let keys = fill_unread(&mut f, "many", 3000);
    let class = f.class_of(keys[0].as_bytes());
    let before: Vec<Handle> = f.shard.memory.class(class).small.iter().collect();
    // The ring holds the newest eighth or so; delete all but every tenth of them.
    let in_ring = before.len();
    assert!(in_ring > 300);
    let first_in_ring = keys.len() - in_ring;
    for (i, key) in keys[first_in_ring..].iter().enumerate() {
        if i % 10 != 0 {
            assert!(f.delete(key.as_bytes()));
        }
    }
    let small = &f.shard.memory.class(class).small;
    let after: Vec<Handle> = small.iter().collect();
    assert!(
        small.entry_count() <= 2 * small.len as usize + 64,
        "compacted: {} entries for {} items",
        small.entry_count(),
        small.len
    );
    let kept: Vec<Handle> = before.iter().copied().step_by(10).collect();
    assert_eq!(after, kept, "the items left keep their order");
    f.shard.memory.check_queues(class);
}

#[test]
fn the_clock_keeps_main_items_with_a_count_and_evicts_the_first_without() {
    let limit = 2 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let keys = fill_unread(&mut f, "main", 4);
    let class = f.class_of(keys[0].as_bytes());
    for key in &keys {
        f.get(key.as_bytes(), at(10));
    }
    // Read on probation: each moves to main with its count cleared.
    for _ in 0..4 {
        let candidate = f.shard.memory.eviction_candidate(class);
        f.shard.memory.promote(class, candidate);
    }
    assert_eq!(f.shard.memory.class(class).main_items, 4);
    f.get(keys[0].as_bytes(), at(10));
    f.get(keys[2].as_bytes(), at(10));
    // The hand keeps keys 0 and 2 (their count drops), evicts key 1 first, then 3.
    f.shard.evict_tail(class);
    assert!(!f.holds(keys[1].as_bytes()));
    f.shard.evict_tail(class);
    assert!(!f.holds(keys[3].as_bytes()));
    assert!(f.holds(keys[0].as_bytes()) && f.holds(keys[2].as_bytes()));
    // Their counts were spent in the first round: the next round takes key 0.
    f.shard.evict_tail(class);
    assert!(!f.holds(keys[0].as_bytes()));
}

#[test]
fn a_reassigned_page_repoints_ring_entries_of_moved_items() {
    let limit = 8 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let per_page = fill_per_page();
    let keys = fill_unread(&mut f, "move", per_page + 10);
    let class = f.class_of(keys[0].as_bytes());
    // Free room in the second page, then empty the first page into it.
    for key in &keys[per_page..] {
        assert!(f.delete(key.as_bytes()));
    }
    for key in &keys[per_page - 20..per_page] {
        assert!(f.delete(key.as_bytes()));
    }
    // Orphans in the ring: two of the newest leave, and their chunks take new items.
    assert!(f.delete(keys[per_page - 21].as_bytes()));
    assert!(f.delete(keys[per_page - 22].as_bytes()));
    f.set(b"late000000", &[b'v'; 100], 0, at(10));
    f.set(b"late000001", &[b'v'; 100], 0, at(10));
    f.shard.memory.check_queues(class);
    assert!(f.shard.reassign_page(Some(class), None));
    f.shard.memory.check_queues(class);
    let state = f.shard.memory.class(class);
    assert_eq!(state.small.len + state.overflow, state.items);
    for handle in state.small.iter() {
        assert_eq!(f.shard.memory.class_of(handle), class);
    }
    // Every item left is found again and evicts cleanly (a move may shift an item to a
    // later entry of its new chunk, so the order is not asserted).
    let kept: Vec<&String> = keys.iter().filter(|key| f.holds(key.as_bytes())).collect();
    assert!(!kept.is_empty());
    while f.shard.memory.class(class).items > 0 {
        f.shard.evict_tail(class);
        f.shard.memory.check_queues(class);
    }
    assert!(kept.iter().all(|key| !f.holds(key.as_bytes())));
    assert_eq!(f.shard.memory.class(class).small.entry_count(), 0);
}

#[test]
fn an_overwrite_of_the_same_class_reuses_its_chunk_and_evicts_nothing() {
    let limit = 2 * PAGE_SIZE;
    let mut f = Fixture::new(limit, true);
    let keys = fill_unread(&mut f, "full", 4 * fill_per_page());
    let evictions = f.shard.counters.evictions;
    let kept = keys.last().unwrap().as_bytes();
    let handle = f.shard.find(kept, f.hasher.hash_one(kept)).unwrap();
    let class = f.class_of(kept);
    let (items, total) = (f.shard.counters.curr_items, f.shard.counters.total_items);
    for round in 0..10u8 {
        let value = [b'a' + round; 100];
        f.set(kept, &value, 0, at(10));
        assert_eq!(f.shard.find(kept, f.hasher.hash_one(kept)), Some(handle));
        assert_eq!(f.get(kept, at(10)).as_deref(), Some(&value[..]));
    }
    assert_eq!(
        f.shard.counters.evictions, evictions,
        "no eviction to make room"
    );
    assert_eq!(f.shard.counters.curr_items, items);
    assert_eq!(f.shard.counters.total_items, total + 10);
    // Another class (a longer value) takes a chunk of its own.
    f.set(kept, &[b'z'; 200], 0, at(10));
    assert_ne!(f.class_of(kept), class);
    assert_eq!(f.get(kept, at(10)).as_deref(), Some(&[b'z'; 200][..]));
    // An append that stays in the class rewrites the chunk from a copy of the old bytes.
    f.set(kept, &[b'x'; 100], 0, at(10));
    let handle = f.shard.find(kept, f.hasher.hash_one(kept)).unwrap();
    f.store(StoreMode::Append, kept, b"y", at(10));
    assert_eq!(f.shard.find(kept, f.hasher.hash_one(kept)), Some(handle));
    let mut expected = vec![b'x'; 100];
    expected.push(b'y');
    assert_eq!(f.get(kept, at(10)), Some(expected));
}

#[test]
fn an_overwrite_keeps_the_items_place_and_counts_as_an_access() {
    let mut f = Fixture::new(64 * MIB, true);
    f.set(b"first", &[b'a'; 100], 0, at(10));
    f.set(b"second", &[b'a'; 100], 0, at(10));
    let handle = f.shard.find(b"first", f.hasher.hash_one(b"first")).unwrap();
    let class = f.class_of(b"first");
    let ring = |f: &Fixture| f.shard.memory.class(class).small.iter().collect::<Vec<_>>();
    let before = *f.shard.memory.header(handle);
    let order = ring(&f);
    assert_eq!(order.first(), Some(&handle));
    assert_eq!(before.state & IN_MAIN, 0, "a new item is on probation");
    assert_eq!(before.frequency(), 0);
    f.set(b"first", &[b'b'; 100], 0, at(11));
    let after = *f.shard.memory.header(handle);
    assert_eq!(ring(&f), order, "the same place on the probation ring");
    assert_eq!(after.state & IN_MAIN, 0);
    assert_eq!(after.frequency(), 1, "the write counts as an access");
    for _ in 0..5 {
        f.set(b"first", &[b'c'; 100], 0, at(12));
    }
    let last = *f.shard.memory.header(handle);
    assert_eq!(last.frequency(), FREQUENCY_MAX);
    assert_eq!(ring(&f), order);
    f.shard.memory.check_queues(class);
}

#[test]
fn keys_of_every_length_are_told_apart_by_each_byte() {
    let mut f = Fixture::new(64 * MIB, true);
    for len in 1..=40usize {
        let key: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        f.set(&key, b"v", 0, at(10));
        let handle = f.shard.find(&key, f.hasher.hash_one(&key)).unwrap();
        assert!(f.shard.memory.key_is(handle, &key));
        for changed in 0..len {
            let mut other = key.clone();
            other[changed] = b'#';
            assert!(
                !f.shard.memory.key_is(handle, &other),
                "{len} bytes, byte {changed}"
            );
        }
        assert!(!f.shard.memory.key_is(handle, &key[..len - 1]));
        let mut longer = key.clone();
        longer.push(b'a');
        assert!(!f.shard.memory.key_is(handle, &longer));
    }
}
