//! Server time in whole seconds since start, the way memcached keeps it.
//!
//! memcached stores every timestamp as a `rel_time_t`: seconds since the process started
//! (offset by two seconds so that `1` is always in the past). All expiry decisions in the
//! store ask this clock, never `Instant::now()`, so tests can drive time by hand.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The largest exptime that is still relative (30 days); larger values are Unix times.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// A relative timestamp that is always already in the past ("expired at once").
const ALREADY_EXPIRED: u32 = 1;

/// Seconds-since-start clock shared by the store, the connections and the crawler.
#[derive(Debug)]
pub struct Clock {
    /// Unix time corresponding to relative time 0.
    process_started: i64,
    /// Current relative time; advanced by the ticker task (or by tests).
    current: AtomicU32,
}

impl Clock {
    /// A clock starting now, as memcached's: relative time begins at 2.
    pub fn new() -> Self {
        Self::starting_at(unix_now() - 2)
    }

    /// A clock whose relative time 0 is the given Unix time (tests use a fixed one).
    pub fn starting_at(process_started: i64) -> Self {
        let clock = Clock {
            process_started,
            current: AtomicU32::new(0),
        };
        clock.set_relative((unix_now() - process_started).max(2) as u32);
        clock
    }

    /// Current relative time in seconds.
    #[inline]
    pub fn now(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// Unix time of relative time 0.
    pub fn process_started(&self) -> i64 {
        self.process_started
    }

    /// Current Unix time as the server sees it (`stats time`).
    pub fn unix_now(&self) -> i64 {
        self.process_started + i64::from(self.now())
    }

    /// Re-reads the wall clock; called once a second by the ticker task.
    pub fn tick(&self) {
        let relative = (unix_now() - self.process_started).max(2);
        self.set_relative(relative as u32);
    }

    /// Sets the relative time directly (tests drive expiry with this).
    pub fn set_relative(&self, seconds: u32) {
        self.current.store(seconds, Ordering::Relaxed);
        crate::watch::set_server_time(seconds);
    }

    /// Moves the clock forward (tests).
    pub fn advance(&self, seconds: u32) {
        self.current.fetch_add(seconds, Ordering::Relaxed);
    }

    /// Converts a client exptime into an absolute relative time, as memcached's
    /// `realtime()`: 0 never expires, negatives are already expired, up to 30 days is
    /// relative to now, anything larger is a Unix time.
    pub fn expiry_from_exptime(&self, exptime: i64) -> u32 {
        if exptime == 0 {
            return 0;
        }
        if exptime < 0 {
            return ALREADY_EXPIRED;
        }
        if exptime > REALTIME_MAXDELTA {
            if exptime <= self.process_started {
                return ALREADY_EXPIRED;
            }
            return (exptime - self.process_started).min(i64::from(u32::MAX)) as u32;
        }
        (exptime + i64::from(self.now())).min(i64::from(u32::MAX)) as u32
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_rules_follow_memcached() {
        let clock = Clock::starting_at(1_000_000_000);
        clock.set_relative(100);
        assert_eq!(clock.expiry_from_exptime(0), 0);
        assert_eq!(clock.expiry_from_exptime(-5), ALREADY_EXPIRED);
        assert_eq!(clock.expiry_from_exptime(10), 110);
        assert_eq!(
            clock.expiry_from_exptime(REALTIME_MAXDELTA),
            100 + 2_592_000
        );
        // Beyond 30 days: an absolute Unix time.
        assert_eq!(clock.expiry_from_exptime(1_000_000_500), 500);
        // An absolute time before the server started is already past.
        assert_eq!(clock.expiry_from_exptime(2_678_400), ALREADY_EXPIRED);
    }
}
