//! Server-wide counters. Item counters live in the shards (they change under the shard
//! lock anyway). Request counters are plain integers of each connection
//! ([`ConnCounters`]), folded once per batch into counters of the thread serving it
//! ([`RequestCounters`]): each thread writes only its own cache line, with a plain load
//! and store, so no request pays a shared atomic. `stats` sums the threads when asked.
//!
//! [`snapshot::Snapshot`] reads all of them, with the store's figures, into one typed
//! value that `stats`, binary STAT and `/metrics` render.

pub mod snapshot;

use dashmap::DashMap;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

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

/// How many counters [`ConnCounters`] holds.
const REQUEST_COUNTERS: usize = 9;
/// Where `bytes_written` sits in [`ConnCounters::to_array`]'s order.
const BYTES_WRITTEN: usize = 6;

impl ConnCounters {
    /// The counters in a fixed order, for summing.
    fn to_array(self) -> [u64; REQUEST_COUNTERS] {
        [
            self.cmd_get,
            self.cmd_set,
            self.cmd_flush,
            self.cmd_touch,
            self.cmd_meta,
            self.bytes_read,
            self.bytes_written,
            self.store_too_large,
            self.store_no_memory,
        ]
    }

    /// The inverse of [`ConnCounters::to_array`].
    fn from_array(values: [u64; REQUEST_COUNTERS]) -> Self {
        let [
            cmd_get,
            cmd_set,
            cmd_flush,
            cmd_touch,
            cmd_meta,
            bytes_read,
            bytes_written,
            store_too_large,
            store_no_memory,
        ] = values;
        ConnCounters {
            cmd_get,
            cmd_set,
            cmd_flush,
            cmd_touch,
            cmd_meta,
            bytes_read,
            bytes_written,
            store_too_large,
            store_no_memory,
        }
    }
}

/// One thread's share of the request counters. Only its own thread writes it (see
/// [`RequestCounters::absorb`]), so an add is a load and a store, never a locked
/// read-modify-write; aligned to a cache line so threads never share one.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ThreadCounters([AtomicU64; REQUEST_COUNTERS]);

/// One thread's share of a [`RequestCounters`], held by whatever folds counters into it.
/// Only code running on the thread that took it may use it (a single-threaded worker's
/// connection task): adds are a load and a store, which a second writing thread would
/// lose.
#[derive(Debug, Clone)]
pub struct ThreadShare(Arc<ThreadCounters>);

impl ThreadShare {
    /// Adds `bytes` to the share's `bytes_written` (what a batch adds once its replies
    /// are written: one counter, not a fold of all of them).
    #[inline]
    pub fn add_bytes_written(&self, bytes: u64) {
        let counter = &self.0.0[BYTES_WRITTEN];
        let sum = counter.load(Ordering::Relaxed).wrapping_add(bytes);
        counter.store(sum, Ordering::Relaxed);
    }

    /// Folds a connection's local counters into the share and zeroes them.
    #[inline]
    pub fn absorb(&self, local: &mut ConnCounters) {
        let values = std::mem::take(local).to_array();
        for (counter, value) in self.0.0.iter().zip(values) {
            if value != 0 {
                // Only this thread writes its share: no read-modify-write needed.
                let sum = counter.load(Ordering::Relaxed).wrapping_add(value);
                counter.store(sum, Ordering::Relaxed);
            }
        }
    }
}

/// Which [`RequestCounters`] a thread's slot belongs to (a server's, or a test's).
static NEXT_REGISTRY: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's counters and the id of the registry they are listed in.
    static SLOT: RefCell<Option<(u64, Arc<ThreadCounters>)>> = const { RefCell::new(None) };
}

/// The request counters of every thread that has served requests (one per `-t` worker,
/// plus the thread serving UDP), summed when `stats` asks. A thread registers its share
/// the first time it folds counters in; a share outlives its thread, so nothing counted
/// is lost.
#[derive(Debug)]
pub struct RequestCounters {
    /// Tells this registry's thread slots from another's (several servers in one test).
    id: u64,
    threads: Mutex<Vec<Arc<ThreadCounters>>>,
    /// The sums at the last `stats reset`: the figures shown are counted from there, so
    /// a reset never writes a thread's share (which would race with its writer).
    baseline: Mutex<[u64; REQUEST_COUNTERS]>,
}

impl Default for RequestCounters {
    fn default() -> Self {
        RequestCounters {
            id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
            threads: Mutex::default(),
            baseline: Mutex::default(),
        }
    }
}

impl RequestCounters {
    /// Folds a connection's local counters into this thread's share and zeroes them.
    pub fn absorb(&self, local: &mut ConnCounters) {
        self.thread_share().absorb(local);
    }

    /// This thread's share, registered on first use. A connection task of a
    /// single-threaded worker runtime (it never moves to another thread) takes it once
    /// and folds its counters in without looking the share up per batch.
    pub fn thread_share(&self) -> ThreadShare {
        SLOT.with(|slot| {
            let mut slot = slot.borrow_mut();
            match &*slot {
                Some((id, share)) if *id == self.id => ThreadShare(share.clone()),
                _ => {
                    let share = Arc::new(ThreadCounters::default());
                    self.threads
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(share.clone());
                    *slot = Some((self.id, share.clone()));
                    ThreadShare(share)
                }
            }
        })
    }

    /// The sums over every thread since the last reset.
    pub fn total(&self) -> ConnCounters {
        let baseline = self.baseline.lock().unwrap_or_else(PoisonError::into_inner);
        let raw = self.raw();
        let mut values = [0; REQUEST_COUNTERS];
        for ((value, raw), base) in values.iter_mut().zip(raw).zip(*baseline) {
            *value = raw.wrapping_sub(base);
        }
        ConnCounters::from_array(values)
    }

    /// Starts counting from zero again (`stats reset`).
    pub fn reset(&self) {
        let mut baseline = self.baseline.lock().unwrap_or_else(PoisonError::into_inner);
        *baseline = self.raw();
    }

    /// The sums over every thread since start.
    fn raw(&self) -> [u64; REQUEST_COUNTERS] {
        let mut sums = [0u64; REQUEST_COUNTERS];
        for share in self
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            for (sum, counter) in sums.iter_mut().zip(&share.0) {
                *sum = sum.wrapping_add(counter.load(Ordering::Relaxed));
            }
        }
        sums
    }
}

/// Server-wide connection and command counters.
#[derive(Debug, Default)]
#[allow(missing_docs)]
pub struct ServerStats {
    pub curr_connections: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub connection_structures: AtomicU64,
    /// `cmd_*`, `bytes_*`, `store_*` counters, per thread.
    pub requests: RequestCounters,
    /// `-Y` authentication attempts and failures.
    pub auth_cmds: AtomicU64,
    #[allow(missing_docs)]
    pub auth_errors: AtomicU64,
    /// TLS handshakes that failed.
    pub ssl_handshake_errors: AtomicU64,
    /// UDP replies dropped by `udp_max_reply_ratio`.
    pub udp_replies_dropped: AtomicU64,
    /// Current `verbosity` level (changed by the command; see [`ServerStats::set_verbosity`]).
    pub verbosity: AtomicU32,
    /// Applies a `verbosity` change to the log output.
    pub log_level: LogLevelHook,
    /// Pipelining clients that ran `-R` requests from one read and let others run
    /// (`conn_yields`).
    pub conn_yields: AtomicU64,
    /// Connections closed for being silent longer than `-o idle_timeout` (`idle_kicks`).
    pub idle_kicks: AtomicU64,
    /// Open connections by id, for `stats conns`.
    pub conns: DashMap<u64, Arc<ConnInfo>>,
    /// Per-prefix counters of `stats detail`, kept only while it is on.
    pub detail: PrefixStats,
    /// Read buffers and reply windows of all connections.
    pub buffers: crate::buffers::BufferMemory,
    /// Outcomes of the `-e` snapshots (`snapshot_*` stats), with `-e` only.
    pub snapshot_health:
        Option<std::sync::Arc<std::sync::Mutex<crate::store::snapshot::SnapshotHealth>>>,
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

/// How a `verbosity` change reaches the log output. The binary owns the log subscriber
/// and installs the hook once at start; without one (tests, embedding) the level is only
/// recorded.
#[derive(Default)]
pub struct LogLevelHook(OnceLock<Box<dyn Fn(u32) + Send + Sync>>);

impl LogLevelHook {
    /// Installs `apply`, called with each new level; a second install is ignored.
    pub fn install(&self, apply: impl Fn(u32) + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(apply));
    }
}

impl std::fmt::Debug for LogLevelHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "LogLevelHook(installed)"
        } else {
            "LogLevelHook(none)"
        })
    }
}

/// What a connection is doing, by memcached's names in `stats conns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// A listening socket.
    Listening,
    /// Waiting for a request (or the rest of one) to arrive; also a UDP socket.
    Read,
    /// Executing requests.
    ParseCmd,
    /// Waiting for the data block of a storage command.
    Nread,
    /// Discarding the data block of a refused storage command.
    Swallow,
    /// Writing replies.
    Mwrite,
}

impl ConnState {
    const ALL: [ConnState; 6] = [
        ConnState::Listening,
        ConnState::Read,
        ConnState::ParseCmd,
        ConnState::Nread,
        ConnState::Swallow,
        ConnState::Mwrite,
    ];

    /// memcached's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Listening => "conn_listening",
            ConnState::Read => "conn_read",
            ConnState::ParseCmd => "conn_parse_cmd",
            ConnState::Nread => "conn_nread",
            ConnState::Swallow => "conn_swallow",
            ConnState::Mwrite => "conn_mwrite",
        }
    }
}

/// What a `stats conns` entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// A client connection (shows the address it came in on, `listen_addr`).
    Client,
    /// A listening TCP or unix socket.
    Listener,
    /// A worker's share of a UDP socket (memcached lists one per worker thread).
    Udp,
}

/// What `stats conns` shows of one connection or socket.
#[derive(Debug)]
pub struct ConnInfo {
    /// Connection id (`stats conns`, logs).
    pub id: u64,
    /// What the entry is.
    pub kind: ConnKind,
    /// Client address (`tcp:host:port`), or the socket's own address for a listener.
    pub peer: String,
    /// The listening address a client came in on.
    pub local: String,
    /// Server time of its last command.
    pub last_command: AtomicU32,
    /// Its [`ConnState`], as a number.
    state: AtomicU8,
}

impl ConnInfo {
    /// A new entry (listening, or waiting to read) whose last command was at `now`.
    pub fn new(id: u64, kind: ConnKind, peer: String, local: String, now: u32) -> Self {
        let state = match kind {
            ConnKind::Listener => ConnState::Listening,
            ConnKind::Client | ConnKind::Udp => ConnState::Read,
        };
        ConnInfo {
            id,
            kind,
            peer,
            local,
            last_command: now.into(),
            state: AtomicU8::new(state as u8),
        }
    }

    /// What it is doing now.
    pub fn state(&self) -> ConnState {
        ConnState::ALL[usize::from(self.state.load(Ordering::Relaxed))]
    }

    /// Records what it is doing now (written only on a change, so the cache line stays
    /// clean while a connection repeats itself).
    pub fn set_state(&self, state: ConnState) {
        if self.state.load(Ordering::Relaxed) != state as u8 {
            self.state.store(state as u8, Ordering::Relaxed);
        }
    }
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
        self.stats.release(self.id);
    }
}

impl ServerStats {
    /// Lists an admitted connection (already counted in `curr_connections`) in
    /// `stats conns` until the returned guard drops.
    pub fn admit(&self, info: Arc<ConnInfo>) -> ConnectionGuard<'_> {
        let id = info.id;
        self.list(info);
        ConnectionGuard { stats: self, id }
    }

    /// Lists an admitted connection in `stats conns`; [`ServerStats::release`] gives its
    /// place back. For owners that cannot hold a [`ConnectionGuard`].
    pub fn list(&self, info: Arc<ConnInfo>) {
        self.conns.insert(info.id, info);
    }

    /// Removes connection `id` from `stats conns` and `curr_connections`.
    pub fn release(&self, id: u64) {
        self.conns.remove(&id);
        self.curr_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The `verbosity` command: records `level` for `stats settings` and makes the log
    /// output follow it at once.
    pub fn set_verbosity(&self, level: u32) {
        self.verbosity.store(level, Ordering::Relaxed);
        if let Some(apply) = self.log_level.0.get() {
            apply(level);
        }
    }

    /// Folds a connection's local counters into the serving thread's share and zeroes
    /// them.
    pub fn absorb(&self, local: &mut ConnCounters) {
        self.requests.absorb(local);
    }

    /// The serving thread's share of the request counters (see [`ThreadShare`]).
    pub fn thread_share(&self) -> ThreadShare {
        self.requests.thread_share()
    }

    /// Zeroes the counters `stats reset` zeroes (gauges such as curr_connections stay).
    pub fn reset(&self) {
        for counter in [
            &self.total_connections,
            &self.rejected_connections,
            &self.auth_cmds,
            &self.auth_errors,
            &self.conn_yields,
            &self.idle_kicks,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.requests.reset();
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
    fn bytes_written_added_alone_count_as_bytes_written() {
        let stats = ServerStats::default();
        stats.thread_share().add_bytes_written(5);
        let total = stats.requests.total();
        assert_eq!(total.bytes_written, 5);
        assert_eq!(total.to_array().iter().sum::<u64>(), 5);
    }

    #[test]
    fn a_panicking_connection_gives_its_place_back() {
        let stats = ServerStats::default();
        stats.curr_connections.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(ConnInfo::new(
            7,
            ConnKind::Client,
            "peer".into(),
            "local".into(),
            0,
        ));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = stats.admit(info);
            assert_eq!(stats.conns.len(), 1);
            panic!("a bug in a connection task");
        }));
        assert!(outcome.is_err());
        assert_eq!(read(&stats.curr_connections), 0);
        assert!(stats.conns.is_empty());
    }

    #[test]
    fn request_counters_sum_every_thread_and_reset_to_zero() {
        let stats = Arc::new(ServerStats::default());
        let count = |stats: &ServerStats| {
            let mut local = ConnCounters {
                cmd_get: 2,
                bytes_read: 10,
                ..ConnCounters::default()
            };
            stats.absorb(&mut local);
            assert_eq!(local.cmd_get, 0, "absorbing zeroes the local counters");
        };
        count(&stats);
        let other = stats.clone();
        std::thread::spawn(move || count(&other)).join().unwrap();
        count(&stats);
        // Another registry on this thread does not take this one's counts.
        count(&ServerStats::default());
        let total = stats.requests.total();
        assert_eq!((total.cmd_get, total.bytes_read), (6, 30));
        stats.reset();
        assert_eq!(stats.requests.total().cmd_get, 0);
        count(&stats);
        assert_eq!(stats.requests.total().cmd_get, 2);
    }
}
