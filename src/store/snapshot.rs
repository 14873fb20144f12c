//! Warm restart (`-e <path>`): every live item — key, value, flags, absolute expiry, CAS,
//! last access — written to a file and loaded before the listeners open.
//!
//! Durability rules (STYLE lesson 14):
//! - one writer at a time: [`Snapshots`] serializes the periodic and the final save, and
//!   the final save tells a running periodic save to give up instead of racing it;
//! - each save writes a unique temporary file (mode 0600: it holds users' sessions) in the
//!   target's directory, fsyncs it, renames it over the target and fsyncs the directory,
//!   so SIGKILL or power loss at any moment leaves the previous complete snapshot;
//! - the checksum is verified before any other field is trusted, so one flipped bit —
//!   even in the version — reads as "corrupt" (set aside, start empty), never as a reason
//!   to refuse starting;
//! - items are copied in bounded batches, so no request waits for a whole shard;
//! - records carry the last-access time and whether the item was read, and load never
//!   read first, then oldest first, so a restore into a smaller `-m` keeps what the
//!   eviction policy keeps: read items over unread ones, the most recent of each (access
//!   times move at most once a minute on reads, as memcached's).
//!
//! Format (integers little-endian):
//! `FERROSNP` · version u32 · 0u32 · records · `END!` · record count u64 · CRC-32 of
//! everything before it. A record: key length u8 · flags u32 · expiry as Unix seconds i64
//! (0 = never) · CAS u64 · last access as Unix seconds i64 · read since stored u8 (0 for
//! no, 1 for yes) · value length u32 · key · value. The trailer layout and the checksum
//! are the same for every version, so another build's intact file is recognised as such.

use super::{ItemCursor, Now, Store};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"FERROSNP";
/// Bumped whenever the record layout changes.
pub const FORMAT_VERSION: u32 = 3;
const TRAILER: &[u8; 4] = b"END!";
const HEADER_LEN: usize = 16;
/// `END!`, the record count and the CRC.
const TRAILER_LEN: usize = 4 + 8 + 4;
/// Fixed part of a record before its key and value.
const RECORD_FIXED: usize = 1 + 4 + 8 + 8 + 8 + 1 + 4;
/// Items copied per shard lock hold: a few hundred microseconds at most.
const BATCH_ITEMS: usize = 1000;
/// Bytes copied per shard lock hold (a batch always takes at least one item).
const BATCH_BYTES: usize = 256 * 1024;
/// Temporary files are named `.<target name>.<random>.partial`.
const TEMPORARY_SUFFIX: &str = ".partial";

/// Why a snapshot could not be written or used.
#[derive(Debug)]
pub enum SnapshotError {
    /// Reading or writing failed (permissions, a directory in the way, a full disk).
    Io(io::Error),
    /// Truncated, corrupted, or not a snapshot at all (the checksum does not match).
    Corrupt(&'static str),
    /// An intact file written by a build with another format version.
    Version(u32),
    /// A periodic save gave up because the server is stopping; the final save follows.
    Abandoned,
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Io(error) => write!(f, "snapshot I/O error: {error}"),
            SnapshotError::Corrupt(why) => write!(f, "snapshot is corrupt: {why}"),
            SnapshotError::Version(version) => write!(
                f,
                "snapshot format version {version} is not supported (this build reads version {FORMAT_VERSION})"
            ),
            SnapshotError::Abandoned => f.write_str("snapshot abandoned: the server is stopping"),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl From<io::Error> for SnapshotError {
    fn from(error: io::Error) -> Self {
        SnapshotError::Io(error)
    }
}

/// What a save or a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Records written or loaded.
    pub items: u64,
    /// Size of the file written or loaded.
    pub bytes: u64,
    /// Records skipped on load because they had expired meanwhile.
    pub expired: u64,
    /// Longest time one shard lock was held while copying (save only): what the
    /// snapshot can add to a request's latency.
    pub longest_hold: Duration,
}

/// How the saves of one server went, read by `stats` and `/metrics`: operators need to
/// see that the warm-restart safety net works (a recent save, its cost, no failures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotHealth {
    /// Unix time at which the last successful save finished (0: none yet).
    pub last_success: i64,
    /// How long that save took.
    pub last_duration: Duration,
    /// Size of the file it wrote.
    pub last_bytes: u64,
    /// Items it wrote.
    pub last_items: u64,
    /// Successful saves since start.
    pub saves: u64,
    /// Failed saves since start (an abandoned periodic save is not a failure).
    pub failures: u64,
}

/// The `-e` file of one server: serializes writers, so a periodic save and the final
/// save can never interleave or finish in the wrong order.
pub struct Snapshots {
    path: PathBuf,
    /// Held for the whole of a save.
    writer: Mutex<()>,
    /// Set by the final save: a running periodic save stops at its next batch.
    stopping: AtomicBool,
    /// Outcomes of the saves, shared with the stats; one lock so a reader never sees
    /// the figures of two different saves.
    health: Arc<Mutex<SnapshotHealth>>,
}

impl Snapshots {
    /// Snapshots written to (and loaded from) `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Snapshots {
            path: path.into(),
            writer: Mutex::new(()),
            stopping: AtomicBool::new(false),
            health: Arc::default(),
        }
    }

    /// The target file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saves' outcomes, for the stats to read at any time.
    pub fn health(&self) -> Arc<Mutex<SnapshotHealth>> {
        self.health.clone()
    }

    /// A background save (`-o snapshot_interval`); gives up with
    /// [`SnapshotError::Abandoned`] once the final save has begun.
    pub fn save_periodic(&self, store: &Store) -> Result<SnapshotStats, SnapshotError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let saved = save(store, &self.path, Some(&self.stopping));
        self.record(store, started, &saved);
        saved
    }

    /// Counts a save's outcome in [`SnapshotHealth`].
    fn record(
        &self,
        store: &Store,
        started: Instant,
        saved: &Result<SnapshotStats, SnapshotError>,
    ) {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match saved {
            Ok(stats) => {
                health.last_success = store.clock().unix_now();
                health.last_duration = started.elapsed();
                health.last_bytes = stats.bytes;
                health.last_items = stats.items;
                health.saves += 1;
            }
            Err(SnapshotError::Abandoned) => {}
            Err(_) => health.failures += 1,
        }
    }

    /// The server is stopping: a running periodic save gives up at its next batch, and
    /// no new one starts.
    pub fn stop_periodic(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The save at an orderly stop: waits for (and cuts short) a running periodic save,
    /// then writes everything. Call it once no worker executes requests any more.
    pub fn save_final(&self, store: &Store) -> Result<SnapshotStats, SnapshotError> {
        self.stop_periodic();
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let saved = save(store, &self.path, None);
        self.record(store, started, &saved);
        saved
    }

    /// Removes temporary files a killed save left behind (only ours: hidden, named after
    /// the target, with our suffix). Call before serving, when no save can be running.
    pub fn remove_leftovers(&self) -> io::Result<()> {
        let prefix = temporary_prefix(&self.path);
        for entry in std::fs::read_dir(directory_of(&self.path))? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(TEMPORARY_SUFFIX) {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

/// The directory a snapshot and its temporary files live in.
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(directory) if !directory.as_os_str().is_empty() => directory,
        _ => Path::new("."),
    }
}

fn temporary_prefix(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!(".{name}.")
}

/// A writer that checksums everything passing through it.
struct Checksummed<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.crc.update(&bytes[..written]);
        Ok(written)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes every live item to a unique temporary file beside `path`, then makes it the
/// snapshot atomically. `cancel` set → the temporary file is removed and nothing changes.
fn save(
    store: &Store,
    path: &Path,
    cancel: Option<&AtomicBool>,
) -> Result<SnapshotStats, SnapshotError> {
    let directory = directory_of(path);
    // tempfile creates the file 0600 and removes it if we return early.
    let temporary = tempfile::Builder::new()
        .prefix(&temporary_prefix(path))
        .suffix(TEMPORARY_SUFFIX)
        .tempfile_in(directory)?;
    let mut out = Checksummed {
        inner: BufWriter::with_capacity(1 << 20, temporary.as_file().try_clone()?),
        crc: crc32fast::Hasher::new(),
    };
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_le_bytes())?;
    out.write_all(&0u32.to_le_bytes())?;
    let started = store.clock().process_started();
    let unix = |server_time: u32| started + i64::from(server_time);
    let mut stats = SnapshotStats {
        items: 0,
        bytes: 0,
        expired: 0,
        longest_hold: Duration::ZERO,
    };
    let mut records = Vec::with_capacity(BATCH_BYTES + 64 * 1024);
    for shard in 0..store.shard_count() {
        let mut cursor = ItemCursor::default();
        while !cursor.is_done() {
            if cancel.is_some_and(|cancel| cancel.load(Ordering::Relaxed)) {
                return Err(SnapshotError::Abandoned);
            }
            records.clear();
            let now: Now = store.now();
            let guard = store.lock(shard);
            let held = Instant::now();
            guard.copy_items(now, &mut cursor, BATCH_ITEMS, BATCH_BYTES, |item| {
                let expiry = if item.exptime == 0 {
                    0
                } else {
                    unix(item.exptime)
                };
                records.push(item.key.len() as u8);
                records.extend_from_slice(&item.flags.to_le_bytes());
                records.extend_from_slice(&expiry.to_le_bytes());
                records.extend_from_slice(&item.cas.to_le_bytes());
                records.extend_from_slice(&unix(item.accessed).to_le_bytes());
                records.push(u8::from(item.fetched));
                records.extend_from_slice(&(item.value.len() as u32).to_le_bytes());
                records.extend_from_slice(item.key);
                records.extend_from_slice(item.value);
                stats.items += 1;
            });
            drop(guard);
            stats.longest_hold = stats.longest_hold.max(held.elapsed());
            out.write_all(&records)?;
            // Give the CPU up between batches rather than be preempted holding a lock.
            std::thread::yield_now();
        }
    }
    out.write_all(TRAILER)?;
    out.write_all(&stats.items.to_le_bytes())?;
    let crc = out.crc.finalize();
    let mut inner = out.inner;
    inner.write_all(&crc.to_le_bytes())?;
    inner.into_inner().map_err(|error| error.into_error())?;
    temporary.as_file().sync_all()?;
    stats.bytes = temporary.as_file().metadata()?.len();
    temporary.persist(path).map_err(|error| error.error)?;
    File::open(directory)?.sync_all()?;
    Ok(stats)
}

/// One framed record of a verified file.
struct Record {
    key: (usize, usize),
    value_end: usize,
    flags: u32,
    expiry: i64,
    cas: u64,
    accessed: i64,
    fetched: bool,
}

fn le<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N]
        .try_into()
        .expect("length checked by the caller")
}

/// Verifies the checksum, then the header and every record; nothing is stored unless
/// the whole file is sound.
fn parse(bytes: &[u8]) -> Result<Vec<Record>, SnapshotError> {
    let corrupt = SnapshotError::Corrupt;
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(corrupt("truncated"));
    }
    let sum_at = bytes.len() - 4;
    if crc32fast::hash(&bytes[..sum_at]) != u32::from_le_bytes(le(bytes, sum_at)) {
        return Err(corrupt("checksum mismatch"));
    }
    if &bytes[..8] != MAGIC {
        return Err(corrupt("not a ferrocached snapshot"));
    }
    let version = u32::from_le_bytes(le(bytes, 8));
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Version(version));
    }
    let body_end = bytes.len() - TRAILER_LEN;
    if &bytes[body_end..body_end + 4] != TRAILER {
        return Err(corrupt("no trailer"));
    }
    let count = u64::from_le_bytes(le(bytes, body_end + 4));
    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    while at < body_end {
        if at + RECORD_FIXED > body_end {
            return Err(corrupt("truncated record"));
        }
        let key_len = usize::from(bytes[at]);
        let value_len = u32::from_le_bytes(le(bytes, at + 30)) as usize;
        let key_start = at + RECORD_FIXED;
        let value_end = key_start + key_len + value_len;
        if key_len == 0 || key_len > 250 || value_end > body_end || bytes[at + 29] > 1 {
            return Err(corrupt("malformed record"));
        }
        records.push(Record {
            key: (key_start, key_start + key_len),
            value_end,
            flags: u32::from_le_bytes(le(bytes, at + 1)),
            expiry: i64::from_le_bytes(le(bytes, at + 5)),
            cas: u64::from_le_bytes(le(bytes, at + 13)),
            accessed: i64::from_le_bytes(le(bytes, at + 21)),
            fetched: bytes[at + 29] == 1,
        });
        at = value_end;
    }
    if records.len() as u64 != count {
        return Err(corrupt("record count mismatch"));
    }
    Ok(records)
}

/// Checks a snapshot completely before anything is stored, then loads it, items never
/// read first, then least recently used first: if it does not fit, eviction drops those
/// (they enter the probation queues in that order). Under `-M` (no eviction) the order
/// is reversed, so what does not fit is the same. A bad file leaves the store empty, never
/// half-loaded.
pub fn load(store: &Store, path: &Path) -> Result<SnapshotStats, SnapshotError> {
    let bytes = std::fs::read(path)?;
    let mut records = parse(&bytes)?;
    // Stable: items accessed in the same second keep their file order.
    records.sort_by_key(|record| (record.fetched, record.accessed));
    if !store.evictions_enabled() {
        records.reverse();
    }
    // New CAS values must not repeat a restored one, whichever shard it lands in.
    if let Some(highest) = records.iter().map(|record| record.cas).max() {
        store.raise_cas_above(highest);
    }
    let now_unix = store.clock().unix_now();
    let started = store.clock().process_started();
    // Absolute Unix times become this process's server time; the past becomes 0.
    let server_time = |unix: i64| (unix - started).clamp(0, i64::from(u32::MAX)) as u32;
    let mut stats = SnapshotStats {
        items: 0,
        bytes: bytes.len() as u64,
        expired: 0,
        longest_hold: Duration::ZERO,
    };
    for record in records {
        if record.expiry != 0 && record.expiry <= now_unix {
            stats.expired += 1;
            continue;
        }
        let expiry = if record.expiry == 0 {
            0
        } else {
            server_time(record.expiry).max(1)
        };
        let (key_start, key_end) = record.key;
        store.restore(
            &bytes[key_start..key_end],
            record.flags,
            expiry,
            record.cas,
            server_time(record.accessed),
            record.fetched,
            &bytes[key_end..record.value_end],
        );
        stats.items += 1;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Clock, StoreConfig, StoreMode};
    use std::sync::Arc;

    fn store(memory_limit: usize) -> Store {
        let config = StoreConfig {
            memory_limit,
            ..StoreConfig::default()
        };
        Store::new(&config, Arc::new(Clock::new()))
    }

    #[test]
    fn snapshot_round_trips_many_batches() {
        let source = store(64 << 20);
        for index in 0..20_000 {
            let key = format!("key{index}");
            source.store(StoreMode::Set, key.as_bytes(), index, 0, key.as_bytes());
        }
        source.fetch(b"key7", None, |_| {});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        let saved = Snapshots::new(&path).save_final(&source).unwrap();
        assert_eq!(saved.items, 20_000);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let target = store(64 << 20);
        assert_eq!(load(&target, &path).unwrap().items, 20_000);
        let mut seen = None;
        target.fetch(b"key12345", None, |item| {
            seen = Some((item.flags, item.value.as_slice().to_vec()))
        });
        assert_eq!(seen, Some((12345, b"key12345".to_vec())));
        // Whether an item was read survives the restart (`mg h`).
        let fetched_before = |key: &[u8]| {
            let mut fetched = None;
            target.meta_get(key, crate::store::MetaGet::default(), |view| {
                fetched = Some(view.fetched_before)
            });
            fetched
        };
        assert_eq!(fetched_before(b"key7"), Some(true));
        assert_eq!(fetched_before(b"key8"), Some(false));
        // Only the snapshot remains in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_snapshot_too_big_for_the_new_limit_keeps_the_items_that_were_read() {
        let source = store(64 << 20);
        // Read items last accessed long ago, never-read ones lately: a load by access
        // time alone would put the read ones first, where eviction takes them.
        for index in 0..100_000u32 {
            let key = format!("key{index}");
            let read = index % 100 == 0;
            let accessed = if read { 1 } else { 100 };
            source.restore(key.as_bytes(), 0, 0, 0, accessed, read, &[b'v'; 100]);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        Snapshots::new(&path).save_final(&source).unwrap();
        let target = store(4 << 20);
        load(&target, &path).unwrap();
        let present = |key: String| {
            let mut found = false;
            target.fetch(key.as_bytes(), None, |_| found = true);
            found
        };
        let read_kept = (0..1_000u32)
            .filter(|i| present(format!("key{}", i * 100)))
            .count();
        let unread_kept = (0..100_000u32)
            .filter(|i| i % 100 != 0 && present(format!("key{i}")))
            .count();
        assert!(
            unread_kept < 99_000 / 2,
            "the limit holds a fraction: {unread_kept}"
        );
        assert_eq!(read_kept, 1_000, "every read item is loaded last and kept");
    }

    #[test]
    fn snapshot_any_flipped_bit_is_corruption() {
        let source = store(64 << 20);
        source.store(StoreMode::Set, b"a", 1, 0, b"one");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        Snapshots::new(&path).save_final(&source).unwrap();
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert!(
                matches!(parse(&bad), Err(SnapshotError::Corrupt(_))),
                "byte {at}"
            );
        }
    }

    #[test]
    fn snapshot_abandoned_save_leaves_the_previous_file() {
        let source = store(64 << 20);
        source.store(StoreMode::Set, b"a", 1, 0, b"one");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        let snapshots = Snapshots::new(&path);
        snapshots.save_periodic(&source).unwrap();
        let before = std::fs::read(&path).unwrap();
        source.store(StoreMode::Set, b"b", 1, 0, b"two");
        snapshots.stop_periodic();
        assert!(matches!(
            snapshots.save_periodic(&source),
            Err(SnapshotError::Abandoned)
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn snapshot_health_counts_saves_and_failures() {
        let source = store(64 << 20);
        source.store(StoreMode::Set, b"a", 1, 0, b"one");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        let snapshots = Snapshots::new(&path);
        let health = snapshots.health();
        assert_eq!(*health.lock().unwrap(), SnapshotHealth::default());
        snapshots.save_periodic(&source).unwrap();
        let after_save = *health.lock().unwrap();
        assert_eq!(after_save.saves, 1);
        assert_eq!(after_save.last_items, 1);
        assert_eq!(
            after_save.last_bytes,
            std::fs::metadata(&path).unwrap().len()
        );
        assert_eq!(after_save.last_success, source.clock().unix_now());
        assert_eq!(after_save.failures, 0);
        // The directory is gone: the save fails, and the last success stays.
        let moved = dir.path().with_extension("gone");
        std::fs::rename(dir.path(), &moved).unwrap();
        assert!(snapshots.save_periodic(&source).is_err());
        std::fs::rename(&moved, dir.path()).unwrap();
        let after_failure = *health.lock().unwrap();
        assert_eq!(after_failure.failures, 1);
        assert_eq!(after_failure.saves, 1);
        assert_eq!(after_failure.last_bytes, after_save.last_bytes);
        // An abandoned save is not a failure.
        snapshots.stop_periodic();
        assert!(snapshots.save_periodic(&source).is_err());
        assert_eq!(*health.lock().unwrap(), after_failure);
    }
}
