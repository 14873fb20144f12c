//! Background upkeep: flush_all marks, crawler sweeps that free expired and flushed
//! items nobody asks for.

use super::{Now, Shard};
use crate::store::item::FETCHED;

impl Shard {
    /// Makes every current item invisible (flush_all without delay): items with a CAS
    /// below the shard's next one are flushed once `oldest_live` has passed.
    pub fn mark_flush(&mut self) {
        self.oldest_cas = self.next_cas();
        self.sweep_requested = true;
    }

    /// Asks the crawler for one sweep over the whole shard (a delayed flush came due).
    pub fn request_sweep(&mut self) {
        self.sweep_requested = true;
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
                self.memory.class_mut(class).crawler_reclaimed += 1;
                self.counters.crawler_reclaimed += 1;
                if header.state & FETCHED == 0 {
                    self.memory.class_mut(class).expired_unfetched += 1;
                    self.counters.expired_unfetched += 1;
                }
                let hash = self.hash_of(handle);
                self.unlink(handle, hash);
            }
        }
    }
}
