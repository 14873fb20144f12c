//! Warm restart (`-e <path>`): every live item — key, value, flags, absolute expiry, CAS —
//! written to a file atomically (temporary file, fsync, rename) and loaded before the
//! listeners open. A checksum guards against truncation and corruption; a version number
//! against files from an incompatible build.
//!
//! Format (integers little-endian):
//! `FERROSNP` · version u32 · 0u32 · records · `END!` · record count u64 · FNV-1a 64 of
//! everything before the trailer. A record: key length u8 · flags u32 · expiry as Unix
//! seconds i64 (0 = never) · CAS u64 · value length u32 · key · value.

use super::Store;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"FERROSNP";
/// Bumped whenever the record layout changes.
pub const FORMAT_VERSION: u32 = 1;
const TRAILER: &[u8; 4] = b"END!";

/// Why a snapshot could not be used.
#[derive(Debug)]
pub enum SnapshotError {
    /// Reading or writing failed.
    Io(io::Error),
    /// Truncated, corrupted, or not a snapshot at all.
    Corrupt(String),
    /// Written by an incompatible format version.
    Version(u32),
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
        }
    }
}

impl From<io::Error> for SnapshotError {
    fn from(error: io::Error) -> Self {
        SnapshotError::Io(error)
    }
}

/// FNV-1a 64: cheap, streaming, and enough to notice torn or flipped bytes.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// How many items a snapshot held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Records written or read.
    pub items: u64,
    /// Records skipped on load because they had expired meanwhile.
    pub expired: u64,
}

/// Writes every live item to `path` atomically. Each shard is copied into memory under
/// its lock (a memcpy, so requests barely wait) and written after the lock is released.
pub fn save(store: &Store, path: &Path) -> Result<SnapshotStats, SnapshotError> {
    let temporary = path.with_extension("tmp");
    let mut file = io::BufWriter::with_capacity(1 << 20, File::create(&temporary)?);
    let mut checksum = Fnv::new();
    let mut header = Vec::with_capacity(16);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    checksum.update(&header);
    file.write_all(&header)?;
    let started = store.clock().process_started();
    let now = store.now();
    let mut items = 0u64;
    for shard in 0..store.shard_count() {
        let mut records = Vec::new();
        store
            .lock(shard)
            .for_each_item(now, |key, header, _, value| {
                let expiry = if header.exptime == 0 {
                    0
                } else {
                    started + i64::from(header.exptime)
                };
                records.push(key.len() as u8);
                records.extend_from_slice(&header.flags.to_le_bytes());
                records.extend_from_slice(&expiry.to_le_bytes());
                records.extend_from_slice(&header.cas.to_le_bytes());
                records.extend_from_slice(&(value.len() as u32).to_le_bytes());
                records.extend_from_slice(key);
                records.extend_from_slice(value);
                items += 1;
            });
        checksum.update(&records);
        file.write_all(&records)?;
    }
    file.write_all(TRAILER)?;
    file.write_all(&items.to_le_bytes())?;
    file.write_all(&checksum.0.to_le_bytes())?;
    let file = file.into_inner().map_err(|error| error.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(directory)?.sync_all()?;
    }
    Ok(SnapshotStats { items, expired: 0 })
}

/// Checks a snapshot completely before anything is stored, then loads it. A bad file
/// leaves the store empty, never half-loaded.
pub fn load(store: &Store, path: &Path) -> Result<SnapshotStats, SnapshotError> {
    let bytes = std::fs::read(path)?;
    let corrupt = |why: &str| SnapshotError::Corrupt(why.to_string());
    if bytes.len() < 16 + 20 || &bytes[..8] != MAGIC {
        return Err(corrupt("not a ferrocached snapshot"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Version(version));
    }
    let body_end = bytes.len() - 20;
    if &bytes[body_end..body_end + 4] != TRAILER {
        return Err(corrupt("truncated (no trailer)"));
    }
    let count = u64::from_le_bytes(bytes[body_end + 4..body_end + 12].try_into().expect("8"));
    let stored_sum = u64::from_le_bytes(bytes[body_end + 12..].try_into().expect("8"));
    let mut checksum = Fnv::new();
    checksum.update(&bytes[..body_end]);
    if checksum.0 != stored_sum {
        return Err(corrupt("checksum mismatch"));
    }
    // First pass: frame every record, so a malformed one is found before storing.
    let mut records = Vec::new();
    let mut at = 16;
    while at < body_end {
        let fixed = 1 + 4 + 8 + 8 + 4;
        if at + fixed > body_end {
            return Err(corrupt("truncated record"));
        }
        let key_len = usize::from(bytes[at]);
        let flags = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().expect("4"));
        let expiry = i64::from_le_bytes(bytes[at + 5..at + 13].try_into().expect("8"));
        let cas = u64::from_le_bytes(bytes[at + 13..at + 21].try_into().expect("8"));
        let value_len = u32::from_le_bytes(bytes[at + 21..at + 25].try_into().expect("4")) as usize;
        let key_start = at + fixed;
        let value_start = key_start + key_len;
        let end = value_start + value_len;
        if key_len == 0 || key_len > 250 || end > body_end {
            return Err(corrupt("malformed record"));
        }
        records.push((key_start, value_start, end, flags, expiry, cas));
        at = end;
    }
    if records.len() as u64 != count {
        return Err(corrupt("record count mismatch"));
    }
    let now_unix = store.clock().unix_now();
    let started = store.clock().process_started();
    let mut stats = SnapshotStats {
        items: 0,
        expired: 0,
    };
    for (key_start, value_start, end, flags, expiry, cas) in records {
        if expiry != 0 && expiry <= now_unix {
            stats.expired += 1;
            continue;
        }
        // Absolute Unix expiry becomes this process's relative time.
        let relative = if expiry == 0 {
            0
        } else {
            (expiry - started).clamp(1, i64::from(u32::MAX)) as u32
        };
        store.restore(
            &bytes[key_start..value_start],
            flags,
            relative,
            cas,
            &bytes[value_start..end],
        );
        stats.items += 1;
    }
    Ok(stats)
}
