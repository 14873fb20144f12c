//! Watchers (`watch fetchers mutations ...`): connections turned into sinks of memcached's
//! log lines (`ts=... gid=... type=item_get key=... status=...`), so an operator can see
//! what a misbehaving client does.
//!
//! ```text
//!  emitters (command::core, store eviction, connections)
//!     │ wanted(kind): one relaxed load of ACTIVE, the union of every watcher's kinds;
//!     │ nothing else runs (no clock read, no formatting, no lock) when it is clear
//!     ▼
//!  log(): gid = GID + 1, format the line once, lock WATCHERS, offer it to each
//!     watcher that asked for its kind ──> Watcher.pending (Mutex<Vec<u8>>, at most
//!     -o watcher_logbuf_size bytes; a line that finds no room is counted and reported
//!     as `skipped=N` before the next line that fits) ──notify──> the watcher's
//!     connection task ([`Watching::serve`]) takes the bytes and writes them
//! ```
//!
//! The registry is process-wide, like memcached's logger: events come from places that
//! know no server (a shard evicting), and one process serves one cache.

use std::fmt::{self, Display, Write as _};
use std::future::Future;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// memcached's `WATCHER_LIMIT`: watchers attached at once.
pub const WATCHER_LIMIT: usize = 20;

/// memcached's default `-o watcher_logbuf_size` (256 KB).
pub const DEFAULT_WATCHER_BUFFER: u32 = 256 * 1024;

/// memcached's default `-o worker_logbuf_size` (64 KB).
pub const DEFAULT_WORKER_BUFFER: u32 = 64 * 1024;

/// Room a line needs beyond its own bytes: memcached reserves 128 bytes for a
/// `skipped=N` line in front of it.
const SKIP_RESERVE: usize = 128;

/// The event kinds a watcher asks for, as the bits of memcached's `watch` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kinds(u16);

impl Kinds {
    /// `fetchers`: every item lookup (also the one a store or delete does first).
    pub const FETCHERS: Kinds = Kinds(1);
    /// `mutations`: every store and its outcome.
    pub const MUTATIONS: Kinds = Kinds(1 << 1);
    /// `evictions`: items pushed out to make room.
    pub const EVICTIONS: Kinds = Kinds(1 << 2);
    /// `connevents`: connections opened and closed.
    pub const CONNEVENTS: Kinds = Kinds(1 << 3);
    /// `sysevents`, `rawcmds`, `proxyreqs`, `proxyevents`, `proxyuser`: accepted as
    /// memcached accepts them; ferrocached has nothing that emits these (memcached
    /// 1.6.18 without a proxy emits nothing for them either).
    pub const SILENT: Kinds = Kinds(1 << 4);

    /// The kinds of `watch` arguments (after the verb); `None` for an argument memcached
    /// refuses with `ERROR`. No argument means `fetchers`.
    pub fn parse<'a>(mut arguments: impl Iterator<Item = &'a [u8]>) -> Option<Kinds> {
        let Some(first) = arguments.next() else {
            return Some(Kinds::FETCHERS);
        };
        std::iter::once(first)
            .chain(arguments)
            .try_fold(Kinds::default(), |kinds, argument| {
                let kind = match argument {
                    b"fetchers" => Kinds::FETCHERS,
                    b"mutations" => Kinds::MUTATIONS,
                    b"evictions" => Kinds::EVICTIONS,
                    b"connevents" => Kinds::CONNEVENTS,
                    b"sysevents" | b"rawcmds" | b"proxyreqs" | b"proxyevents" | b"proxyuser" => {
                        Kinds::SILENT
                    }
                    _ => return None,
                };
                Some(Kinds(kinds.0 | kind.0))
            })
    }

    fn intersects(self, other: Kinds) -> bool {
        self.0 & other.0 != 0
    }
}

/// Union of the kinds of every attached watcher: the one load an emitter pays.
static ACTIVE: AtomicU16 = AtomicU16::new(0);
/// The global log line number (`gid=`).
static GID: AtomicU64 = AtomicU64::new(0);
/// Server time (seconds since start, the store clock's) for the ages in eviction lines.
static SERVER_TIME: AtomicU32 = AtomicU32::new(0);
/// Lines logged (`log_worker_written`).
static WRITTEN: AtomicU64 = AtomicU64::new(0);
/// Lines queued for a watcher (`log_watcher_sent`).
static SENT: AtomicU64 = AtomicU64::new(0);
/// Lines a full watcher buffer dropped (`log_watcher_skipped`).
static SKIPPED: AtomicU64 = AtomicU64::new(0);
/// Every attached watcher.
static WATCHERS: Mutex<Vec<Arc<Watcher>>> = Mutex::new(Vec::new());

/// True when some watcher wants `kind`: emitters test this before they spend anything.
#[inline]
pub fn wanted(kind: Kinds) -> bool {
    Kinds(ACTIVE.load(Ordering::Relaxed)).intersects(kind)
}

/// Logs the event `event` builds, if a watcher wants `kind`; `event` runs only then.
#[inline]
pub fn log<E: Display>(kind: Kinds, event: impl FnOnce() -> E) {
    if wanted(kind) {
        deliver(kind, &event());
    }
}

/// Formats one line and offers it to every watcher of its kind.
#[cold]
fn deliver(kind: Kinds, event: &dyn Display) {
    let gid = GID.fetch_add(1, Ordering::Relaxed) + 1;
    WRITTEN.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = String::with_capacity(160);
    // memcached prints the microseconds without zero padding ("%d.%d").
    let _ = writeln!(
        line,
        "ts={}.{} gid={gid} {event}",
        now.as_secs(),
        now.subsec_micros()
    );
    for watcher in registry().iter().filter(|w| w.kinds.intersects(kind)) {
        watcher.offer(line.as_bytes());
    }
}

fn registry() -> MutexGuard<'static, Vec<Arc<Watcher>>> {
    WATCHERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records the store clock's time (called on each tick) for eviction ages.
pub fn set_server_time(now: u32) {
    SERVER_TIME.store(now, Ordering::Relaxed);
}

/// The logger's counters as memcached's `stats` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// `log_worker_dropped`: always 0, emitters write straight into the watchers'
    /// buffers and have none of their own to overflow.
    pub worker_dropped: u64,
    /// `log_worker_written`: lines logged.
    pub worker_written: u64,
    /// `log_watcher_skipped`: lines dropped by full watcher buffers.
    pub watcher_skipped: u64,
    /// `log_watcher_sent`: lines queued for watchers.
    pub watcher_sent: u64,
    /// `log_watchers`: watchers attached now.
    pub watchers: u64,
}

/// The logger's counters now.
pub fn counters() -> Counters {
    Counters {
        worker_dropped: 0,
        worker_written: WRITTEN.load(Ordering::Relaxed),
        watcher_skipped: SKIPPED.load(Ordering::Relaxed),
        watcher_sent: SENT.load(Ordering::Relaxed),
        watchers: registry().len() as u64,
    }
}

/// True while fewer than [`WATCHER_LIMIT`] watchers are attached.
pub fn has_room() -> bool {
    registry().len() < WATCHER_LIMIT
}

/// The connection id events of this thread's current request carry (`cfd=`).
pub fn set_connection(id: u64) {
    CONNECTION.with(|current| current.set(id));
}

thread_local! {
    static CONNECTION: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn connection() -> u64 {
    CONNECTION.with(std::cell::Cell::get)
}

/// One attached watcher: what it asked for and the lines not yet written.
#[derive(Debug)]
struct Watcher {
    kinds: Kinds,
    capacity: usize,
    pending: Mutex<Pending>,
    wake: Notify,
}

/// A watcher's bounded buffer.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Lines dropped since the last one that fitted.
    skipped: u64,
}

impl Watcher {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `line` if it fits (with room for a `skipped=N` line), else counts it.
    fn offer(&self, line: &[u8]) {
        let mut pending = self.pending();
        if pending.bytes.len() + line.len() + SKIP_RESERVE > self.capacity {
            pending.skipped += 1;
            SKIPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if pending.skipped > 0 {
            let skipped = format!("skipped={}\n", pending.skipped);
            pending.bytes.extend_from_slice(skipped.as_bytes());
            pending.skipped = 0;
        }
        pending.bytes.extend_from_slice(line);
        drop(pending);
        SENT.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Takes the queued bytes, leaving `spare` (an emptied buffer) in their place.
    fn take(&self, spare: Vec<u8>) -> Vec<u8> {
        std::mem::replace(&mut self.pending().bytes, spare)
    }
}

/// An attached watcher, detached (and the active kinds recomputed) on drop.
#[derive(Debug)]
pub struct Watching(Arc<Watcher>);

impl Watching {
    /// Attaches a watcher of `kinds` with a buffer of `capacity` bytes; `None` when
    /// [`WATCHER_LIMIT`] are attached. A connection attaches before its `OK` leaves, so
    /// the client sees every event that follows it.
    pub fn attach(kinds: Kinds, capacity: usize) -> Option<Watching> {
        let watcher = Arc::new(Watcher {
            kinds,
            capacity,
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
        });
        let mut watchers = registry();
        if watchers.len() >= WATCHER_LIMIT {
            return None;
        }
        watchers.push(watcher.clone());
        ACTIVE.fetch_or(kinds.0, Ordering::Relaxed);
        Some(Watching(watcher))
    }

    /// Writes the log lines to `socket` until the client goes away or `stopped`
    /// completes. Anything the client sends is read and ignored, as memcached does.
    pub async fn serve<S, F>(self, socket: &mut S, mut stopped: F)
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: Future<Output = ()> + Unpin,
    {
        let watcher = &self.0;
        let mut spare = Vec::new();
        let mut discard = [0u8; 64];
        loop {
            let mut lines = watcher.take(spare);
            if !lines.is_empty() {
                if socket.write_all(&lines).await.is_err() {
                    return;
                }
                lines.clear();
                spare = lines;
                continue;
            }
            spare = lines;
            let gone = tokio::select! {
                _ = watcher.wake.notified() => false,
                read = socket.read(&mut discard) => matches!(read, Ok(0) | Err(_)),
                _ = &mut stopped => true,
            };
            if gone {
                return;
            }
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut watchers = registry();
        watchers.retain(|watcher| !Arc::ptr_eq(watcher, &self.0));
        let active = watchers
            .iter()
            .fold(0, |all, watcher| all | watcher.kinds.0);
        ACTIVE.store(active, Ordering::Relaxed);
    }
}

/// What a lookup found (`status=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// A live item: its slab class (memcached numbering) and value length.
    Found {
        /// `clsid=`.
        class: usize,
        /// `size=`: the value's bytes.
        size: usize,
    },
    /// An item whose time is up (not yet reclaimed).
    Expired,
    /// No live item.
    NotFound,
}

/// `type=item_get`: an item lookup.
#[derive(Debug)]
pub struct ItemGet<'a> {
    /// The key looked up.
    pub key: &'a [u8],
    /// What was found.
    pub fetched: Fetched,
}

impl Display for ItemGet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (status, class, size) = match self.fetched {
            Fetched::Found { class, size } => ("found", class, size),
            Fetched::Expired => ("expired", 0, 0),
            Fetched::NotFound => ("not_found", 0, 0),
        };
        write!(
            f,
            "type=item_get key={} status={status} clsid={class} cfd={} size={size}",
            UriEncoded(self.key),
            connection()
        )
    }
}

/// `type=item_store`: a store and its outcome.
#[derive(Debug)]
pub struct ItemStore<'a> {
    /// The key stored.
    pub key: &'a [u8],
    /// `stored`, `not_stored`, `exists`, `not_found`, `too_large`, `no_memory`.
    pub status: &'static str,
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas`.
    pub command: &'static str,
    /// Seconds to expiry as memcached prints it (0 = never; unsigned, so an already
    /// expired item wraps).
    pub ttl: u32,
    /// The item's slab class (0 when none was taken).
    pub class: usize,
    /// The value's bytes.
    pub size: usize,
}

impl Display for ItemStore<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type=item_store key={} status={} cmd={} ttl={} clsid={} cfd={} size={}",
            UriEncoded(self.key),
            self.status,
            self.command,
            self.ttl,
            self.class,
            connection(),
            self.size
        )
    }
}

/// `type=eviction`: an item pushed out to make room.
#[derive(Debug)]
pub struct Eviction<'a> {
    /// The evicted key.
    pub key: &'a [u8],
    /// Whether it was ever read.
    pub fetched: bool,
    /// Its expiry in server time (0 = never).
    pub exptime: u32,
    /// Its last access in server time.
    pub accessed: u32,
    /// Its slab class (memcached numbering).
    pub class: usize,
    /// The value's bytes.
    pub size: usize,
}

impl Display for Eviction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = SERVER_TIME.load(Ordering::Relaxed);
        let ttl = match self.exptime {
            0 => 0,
            exptime => exptime.wrapping_sub(now),
        };
        write!(
            f,
            "type=eviction key={} fetch={} ttl={ttl} la={} clsid={} size={}",
            UriEncoded(self.key),
            if self.fetched { "yes" } else { "no" },
            now.wrapping_sub(self.accessed),
            self.class,
            self.size
        )
    }
}

/// Why a connection closed (`reason=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client quit or hung up.
    Normal,
    /// A read or write failed, or the request stream was unusable.
    Error,
    /// Silent past `-o idle_timeout`.
    IdleTimeout,
    /// The server is stopping.
    Shutdown,
}

/// `conn_new` now, `conn_close` (with the reason last set) when dropped.
#[derive(Debug)]
pub struct ConnectionEvents<'a> {
    peer: &'a str,
    id: u64,
    /// Reported when the connection ends.
    pub reason: CloseReason,
}

impl<'a> ConnectionEvents<'a> {
    /// Logs `conn_new` for connection `id` from `peer` (`tcp:host:port`, `unix:path`).
    pub fn open(id: u64, peer: &'a str) -> Self {
        log_connection(id, peer, None);
        ConnectionEvents {
            peer,
            id,
            reason: CloseReason::Normal,
        }
    }
}

impl Drop for ConnectionEvents<'_> {
    fn drop(&mut self) {
        log_connection(self.id, self.peer, Some(self.reason));
    }
}

/// Logs `conn_new` (`close` is `None`) or `conn_close` for connection `id` from `peer`,
/// for a connection whose owner cannot hold [`ConnectionEvents`] beside its address.
pub fn log_connection(id: u64, peer: &str, close: Option<CloseReason>) {
    log(Kinds::CONNEVENTS, || ConnEvent { peer, id, close });
}

/// `type=conn_new` / `type=conn_close`.
struct ConnEvent<'a> {
    peer: &'a str,
    id: u64,
    close: Option<CloseReason>,
}

impl Display for ConnEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.close.is_some() {
            "conn_close"
        } else {
            "conn_new"
        };
        write!(f, "type={kind} ")?;
        match self.peer.split_once(':') {
            Some(("tcp", address)) => {
                let (ip, port) = address.rsplit_once(':').unwrap_or((address, "0"));
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                write!(f, "rip={ip} rport={port} transport=tcp ")?;
            }
            _ => write!(f, "transport=local ")?,
        }
        if let Some(reason) = self.close {
            let reason = match reason {
                CloseReason::Normal => "normal",
                CloseReason::Error => "error",
                CloseReason::IdleTimeout => "idle_timeout",
                CloseReason::Shutdown => "shutdown",
            };
            write!(f, "reason={reason} ")?;
        }
        write!(f, "cfd={}", self.id)
    }
}

/// A key as memcached's logger prints it: letters, digits and `-._~` as they are,
/// every other byte as `%XX`.
struct UriEncoded<'a>(&'a [u8]);

impl Display for UriEncoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0 {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                f.write_char(char::from(byte))?;
            } else {
                write!(f, "%{byte:02X}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
