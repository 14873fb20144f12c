//! Knobs of the crawler that operators change at run time (`lru_crawler
//! enable|disable|sleep|tocrawl`) and `stats settings` reports. Read only by the crawler
//! task and admin commands, never on a request's path. (`slabs automove`, which
//! allocations read, lives in the memory budget the shards share.)

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// memcached's default `lru_crawler_sleep` (microseconds).
const DEFAULT_CRAWLER_SLEEP: u32 = 100;

/// The run-time knobs, shared by the store and everything that reports them.
#[derive(Debug)]
pub struct Tuning {
    crawler_enabled: AtomicBool,
    crawler_sleep: AtomicU32,
    crawler_tocrawl: AtomicU32,
    crawler_starts: AtomicU64,
}

impl Tuning {
    /// Knobs at memcached's defaults, the crawler on or off (`-o no_lru_crawler`).
    pub fn new(crawler_enabled: bool) -> Self {
        Tuning {
            crawler_enabled: AtomicBool::new(crawler_enabled),
            crawler_sleep: AtomicU32::new(DEFAULT_CRAWLER_SLEEP),
            crawler_tocrawl: AtomicU32::new(0),
            crawler_starts: AtomicU64::new(0),
        }
    }

    /// Whether the background crawler frees expired items (`lru_crawler yes|no`).
    pub fn crawler_enabled(&self) -> bool {
        self.crawler_enabled.load(Ordering::Relaxed)
    }

    /// Turns the background crawler on or off; returns whether it was on.
    pub fn set_crawler_enabled(&self, enabled: bool) -> bool {
        self.crawler_enabled.swap(enabled, Ordering::Relaxed)
    }

    /// `lru_crawler_sleep`, in microseconds.
    pub fn crawler_sleep(&self) -> u32 {
        self.crawler_sleep.load(Ordering::Relaxed)
    }

    /// `lru_crawler sleep <us>`.
    pub fn set_crawler_sleep(&self, microseconds: u32) {
        self.crawler_sleep.store(microseconds, Ordering::Relaxed);
    }

    /// `lru_crawler_tocrawl`.
    pub fn crawler_tocrawl(&self) -> u32 {
        self.crawler_tocrawl.load(Ordering::Relaxed)
    }

    /// `lru_crawler tocrawl <n>`.
    pub fn set_crawler_tocrawl(&self, items: u32) {
        self.crawler_tocrawl.store(items, Ordering::Relaxed);
    }

    /// Crawls begun on an operator's request (`lru_crawler crawl`, `lru_crawler
    /// metadump`): `lru_crawler_starts`.
    pub fn crawler_starts(&self) -> u64 {
        self.crawler_starts.load(Ordering::Relaxed)
    }

    /// Counts one crawl begun (`lru_crawler_starts`).
    pub fn count_crawler_start(&self) {
        self.crawler_starts.fetch_add(1, Ordering::Relaxed);
    }
}
