//! Server-wide counters. Item counters live in the shards (they change under the shard
//! lock anyway); connection-level counters are plain integers of each connection, folded
//! into these shared atomics once per batch (after the batch's replies are written), so
//! a pipelined batch costs a few atomic adds whatever its length. A connection sending
//! one request per batch still pays those adds (one per non-zero counter: typically
//! `cmd_*`, `bytes_read`, `bytes_written`) per request.
//!
//! [`snapshot::Snapshot`] reads all of them, with the store's figures, into one typed
//! value that `stats`, binary STAT and `/metrics` render.

pub mod snapshot;

use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Counters a connection accumulates locally between batches.
#[derive(Debug, Default, Clone, Copy)]
#[allow(missing_docs)]
pub struct ConnCounters {
    pub cmd_get: u64,
    pub cmd_set: u64,
    pub cmd_flush: u64,
    pub cmd_touch: u64,
    pub cmd_meta: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub store_too_large: u64,
    pub store_no_memory: u64,
}

/// Server-wide connection and command counters.
#[derive(Debug, Default)]
#[allow(missing_docs)]
pub struct ServerStats {
    pub curr_connections: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub connection_structures: AtomicU64,
    pub cmd_get: AtomicU64,
    pub cmd_set: AtomicU64,
    pub cmd_flush: AtomicU64,
    pub cmd_touch: AtomicU64,
    pub cmd_meta: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub store_too_large: AtomicU64,
    pub store_no_memory: AtomicU64,
    /// `-Y` authentication attempts and failures.
    pub auth_cmds: AtomicU64,
    #[allow(missing_docs)]
    pub auth_errors: AtomicU64,
    /// TLS handshakes that failed.
    pub ssl_handshake_errors: AtomicU64,
    /// UDP replies dropped by `udp_max_reply_ratio`.
    pub udp_replies_dropped: AtomicU64,
    /// Current `verbosity` level (changed by the command).
    pub verbosity: AtomicU32,
    /// Open connections by id, for `stats conns`.
    pub conns: DashMap<u64, Arc<ConnInfo>>,
    /// Per-prefix counters of `stats detail`, kept only while it is on.
    pub detail: PrefixStats,
    /// Read buffers and reply windows of all connections.
    pub buffers: crate::buffers::BufferMemory,
}

/// What `stats detail` counts for one key prefix.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PrefixCounters {
    /// get requests for keys with this prefix.
    pub gets: u64,
    /// get requests that hit.
    pub hits: u64,
    /// Storage requests.
    pub sets: u64,
    /// delete requests.
    pub deletes: u64,
}

/// memcached's `stats detail`: counters per key prefix (the part before `-D`).
#[derive(Debug, Default)]
pub struct PrefixStats {
    enabled: AtomicBool,
    prefixes: DashMap<Box<[u8]>, PrefixCounters>,
}

impl PrefixStats {
    /// Turns collection on or off (`stats detail on|off`).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// True while collecting.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Records one request for `key` if collection is on and the key has a prefix.
    pub fn record(&self, key: &[u8], delimiter: u8, update: impl FnOnce(&mut PrefixCounters)) {
        if !self.enabled() {
            return;
        }
        let Some(end) = memchr::memchr(delimiter, key) else {
            return;
        };
        update(&mut self.prefixes.entry(key[..end].into()).or_default());
    }

    /// All prefixes with their counters, sorted by prefix.
    pub fn snapshot(&self) -> Vec<(Box<[u8]>, PrefixCounters)> {
        let mut all: Vec<_> = self
            .prefixes
            .iter()
            .map(|entry| (entry.key().clone(), *entry.value()))
            .collect();
        all.sort();
        all
    }

    /// Forgets every prefix (`stats reset`).
    pub fn clear(&self) {
        self.prefixes.clear();
    }
}

impl PartialOrd for PrefixCounters {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PrefixCounters {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.gets, self.hits, self.sets, self.deletes).cmp(&(
            other.gets,
            other.hits,
            other.sets,
            other.deletes,
        ))
    }
}

/// What `stats conns` shows of one connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// Connection id (`stats conns`, logs).
    pub id: u64,
    /// Client address (`tcp:host:port`, `unix:path`).
    pub peer: String,
    /// The listening address it came in on.
    pub local: String,
    /// Server time of its last command.
    pub last_command: AtomicU32,
}

/// An admitted connection's place in `curr_connections` and `stats conns`, given back
/// when the connection's task ends, even by a panic.
#[must_use]
pub struct ConnectionGuard<'a> {
    stats: &'a ServerStats,
    id: u64,
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.stats.conns.remove(&self.id);
        self.stats.curr_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ServerStats {
    /// Lists an admitted connection (already counted in `curr_connections`) in
    /// `stats conns` until the returned guard drops.
    pub fn admit(&self, info: Arc<ConnInfo>) -> ConnectionGuard<'_> {
        let id = info.id;
        self.conns.insert(id, info);
        ConnectionGuard { stats: self, id }
    }

    /// Folds a connection's local counters in and zeroes them.
    pub fn absorb(&self, local: &mut ConnCounters) {
        let add = |counter: &AtomicU64, value: u64| {
            if value != 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        };
        add(&self.cmd_get, local.cmd_get);
        add(&self.cmd_set, local.cmd_set);
        add(&self.cmd_flush, local.cmd_flush);
        add(&self.cmd_touch, local.cmd_touch);
        add(&self.cmd_meta, local.cmd_meta);
        add(&self.bytes_read, local.bytes_read);
        add(&self.bytes_written, local.bytes_written);
        add(&self.store_too_large, local.store_too_large);
        add(&self.store_no_memory, local.store_no_memory);
        *local = ConnCounters::default();
    }

    /// Zeroes the counters `stats reset` zeroes (gauges such as curr_connections stay).
    pub fn reset(&self) {
        for counter in [
            &self.total_connections,
            &self.rejected_connections,
            &self.cmd_get,
            &self.cmd_set,
            &self.cmd_flush,
            &self.cmd_touch,
            &self.cmd_meta,
            &self.bytes_read,
            &self.bytes_written,
            &self.store_too_large,
            &self.store_no_memory,
            &self.auth_cmds,
            &self.auth_errors,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// Reads a counter.
pub fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// CPU time of the process as (user, system).
pub fn rusage() -> (snapshot::CpuTime, snapshot::CpuTime) {
    // SAFETY: getrusage fills the zeroed struct; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let cpu = |time: libc::timeval| snapshot::CpuTime {
        seconds: time.tv_sec,
        micros: time.tv_usec,
    };
    (cpu(usage.ru_utime), cpu(usage.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_connection_gives_its_place_back() {
        let stats = ServerStats::default();
        stats.curr_connections.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(ConnInfo {
            id: 7,
            peer: "peer".into(),
            local: "local".into(),
            last_command: AtomicU32::new(0),
        });
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = stats.admit(info);
            assert_eq!(stats.conns.len(), 1);
            panic!("a bug in a connection task");
        }));
        assert!(outcome.is_err());
        assert_eq!(read(&stats.curr_connections), 0);
        assert!(stats.conns.is_empty());
    }
}
