//! Background upkeep: flush_all marks, crawler sweeps that free expired and flushed
//! items nobody asks for, and operator-requested sweeps of chosen classes.

use super::{Now, Shard};
use crate::store::item::FETCHED;

/// Every class of a shard, as a sweep mask (bit n is the class of 0-based index n).
pub const ALL_CLASSES: u64 = u64::MAX;

impl Shard {
    /// Makes every current item invisible (flush_all without delay): items with a CAS
    /// below the shard's next one are flushed once `oldest_live` has passed.
    pub fn mark_flush(&mut self) {
        self.oldest_cas = self.next_cas();
        self.request_sweep(ALL_CLASSES);
    }

    /// Asks the crawler for one sweep over the items of the classes in `classes` (bit n
    /// is the class of 0-based index n): a delayed flush came due, or an operator asked
    /// (`lru_crawler crawl 1,3`). The sweep starts over from the first page, so it
    /// sees every item of those classes.
    pub fn request_sweep(&mut self, classes: u64) {
        self.sweep_classes |= classes;
        self.crawl_cursor = 0;
    }

    /// An operator's `lru_crawler crawl`: a sweep of `classes` that [`Shard::crawling`]
    /// reports until it has gone round the shard.
    pub fn request_crawl(&mut self, classes: u64) {
        self.request_sweep(classes);
        self.operator_crawl = true;
    }

    /// True while an operator's crawl has not finished its round.
    pub fn crawling(&self) -> bool {
        self.operator_crawl
    }

    /// Removes up to a page-worth of expired and flushed items; the background crawler
    /// calls this so dead items free their memory even if nobody asks for them. With
    /// `background` off (`lru_crawler disable`), only requested sweeps run.
    pub fn crawl(&mut self, now: Now, pages: usize, background: bool) {
        self.now_seen = now.now;
        let all = background && self.expiring > 0;
        if !all && self.sweep_classes == 0 {
            return;
        }
        let sweeping = self.sweep_classes;
        let (handles, cursor) = self.memory.live_handles_from(self.crawl_cursor, pages);
        if cursor == 0 {
            self.sweep_classes = 0;
            self.operator_crawl = false;
        }
        self.crawl_cursor = cursor;
        for handle in handles {
            let class = self.memory.class_of(handle);
            if !all && sweeping >> class & 1 == 0 {
                continue;
            }
            self.counters.crawler_items_checked += 1;
            self.class_counters(handle).crawler_items_checked += 1;
            let header = *self.memory.header(handle);
            if header.is_expired(now.now) || self.is_flushed(&header, now) {
                let unfetched = header.state & FETCHED == 0;
                let class = self.class_counters(handle);
                class.crawler_reclaimed += 1;
                class.expired_unfetched += u64::from(unfetched);
                self.counters.crawler_reclaimed += 1;
                if unfetched {
                    self.counters.expired_unfetched += 1;
                }
                let hash = self.hash_of(handle);
                self.unlink(handle, hash);
            }
        }
    }
}
