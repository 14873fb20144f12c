//! The fixed header every stored item carries, inline in its slab chunk.
//!
//! Layout of a chunk: `[Header][client flags, 4 bytes, only when not 0][key][value]`, no
//! padding between them (memcached also keeps the flags only when they are not 0). The
//! header keeps one time field, as memcached 1.6 does: the last access, set on store,
//! which also decides flush_all. It has no queue links: the eviction queues are a CLOCK
//! over the chunks and a ring of handles (`memory.rs`), so an item costs 24 bytes of
//! metadata plus its key and value; memcached's item header is 48 (56 with CAS).

/// Handle of an item inside one shard: a page/chunk pair, or a large-item slot.
pub type Handle = u32;

/// "No item": an empty queue, or a hole in the small queue's ring.
pub const NIL: Handle = u32::MAX;

/// The item is linked into the index (cleared when the chunk is freed).
pub const LIVE: u8 = 1;
/// The item has been read at least once since it was stored (`mg h`, `evicted_unfetched`).
pub const FETCHED: u8 = 2;
/// The item's client flags are not 0 and follow the header in its chunk.
pub const HAS_FLAGS: u8 = 4;
/// Meta: the item was invalidated (`md I`, `ms I`); readers see `X`.
pub const STALE: u8 = 8;
/// Meta: one reader already won the right to recache it (`W` sent; others see `Z`).
pub const TOKEN_SENT: u8 = 16;
/// Two bits counting accesses (reads and overwrites) since eviction last looked at the
/// item (0 to `FREQUENCY_MAX`): the eviction policy keeps items whose count is not zero.
pub const FREQUENCY: u8 = 32 | 64;
/// Shift of the `FREQUENCY` bits.
pub const FREQUENCY_SHIFT: u32 = 5;
/// The highest read count the `FREQUENCY` bits hold.
pub const FREQUENCY_MAX: u8 = 3;
/// The item is in its class's main queue; otherwise in the small (probation) queue.
pub const IN_MAIN: u8 = 128;

/// Seconds an access leaves the access time alone (memcached's `ITEM_UPDATE_INTERVAL`):
/// `mg l` and metadump's `la=` count from the store or from an access at least this
/// long after the previous recorded one, and a hit on a hot item writes nothing to its
/// header.
pub const UPDATE_INTERVAL: u32 = 60;

/// Position numbers of the small queue's ring: 31 bits, wrapping.
pub const RING_POSITIONS: u32 = u32::MAX >> 1;

/// `Header::ring` of a probation item that overflowed the ring (no position number has
/// this value).
pub const RING_OVERFLOW: u32 = u32::MAX;

/// Per-item metadata stored in front of the key.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Header {
    /// Compare-and-swap version; 0 when CAS is disabled (`-C`).
    pub cas: u64,
    /// Server time at which the item expires; 0 = never.
    pub exptime: u32,
    /// Server time of the last store or access (eviction age, `mg l`, flush_all).
    pub atime: u32,
    /// Position number of the item's entry in its class's small-queue ring,
    /// `RING_OVERFLOW` for a probation item outside the ring (meaningless once the item
    /// is in the main queue).
    pub ring: u32,
    /// Length of the value of an item in a chunk (chunks hold at most 16 KiB); a large
    /// item's length is its value's own.
    pub value_len: u16,
    /// Length of the key in bytes (at most 250).
    pub key_len: u8,
    /// `LIVE`, `FETCHED`, `HAS_FLAGS`, `STALE`, `TOKEN_SENT`, `IN_MAIN` bits and the
    /// `FREQUENCY` count.
    pub state: u8,
}

/// Bytes taken by the header in front of every chunk.
pub const HEADER_SIZE: usize = std::mem::size_of::<Header>();

/// Bytes the client flags take in a chunk: none when they are 0.
#[inline]
pub fn flags_size(flags: u32) -> usize {
    if flags == 0 { 0 } else { 4 }
}

/// Bytes an item of this key and value length and these client flags needs in a chunk.
#[inline]
pub fn item_size(key_len: usize, value_len: usize, flags: u32) -> usize {
    HEADER_SIZE + flags_size(flags) + key_len + value_len
}

impl Header {
    /// True when the item's exptime has passed at server time `now`.
    #[inline]
    pub fn is_expired(&self, now: u32) -> bool {
        self.exptime != 0 && self.exptime <= now
    }

    /// Accesses (reads and overwrites) counted since eviction last looked at the item (0
    /// to `FREQUENCY_MAX`).
    #[inline]
    pub fn frequency(&self) -> u8 {
        (self.state & FREQUENCY) >> FREQUENCY_SHIFT
    }

    /// Sets the read count (at most `FREQUENCY_MAX`).
    #[inline]
    pub fn set_frequency(&mut self, count: u8) {
        self.state = (self.state & !FREQUENCY) | (count.min(FREQUENCY_MAX) << FREQUENCY_SHIFT);
    }

    /// Offset of the key in the chunk: after the header and the flags if present.
    #[inline]
    pub fn key_offset(&self) -> usize {
        HEADER_SIZE + if self.state & HAS_FLAGS != 0 { 4 } else { 0 }
    }

    /// True when the access time is more than `UPDATE_INTERVAL` old at `now`
    /// (memcached's `it->time < current_time - ITEM_UPDATE_INTERVAL`).
    #[inline]
    pub fn access_is_dated(&self, now: u32) -> bool {
        now.saturating_sub(self.atime) > UPDATE_INTERVAL
    }

    /// Records an access at `now` as memcached's `do_item_update`: only when the access
    /// time is more than `UPDATE_INTERVAL` old.
    #[inline]
    pub fn note_access(&mut self, now: u32) {
        if self.access_is_dated(now) {
            self.atime = now;
        }
    }

    /// True when a read changes nothing: the item is marked fetched, its read count is
    /// full and its access time is not dated.
    #[inline]
    pub fn read_is_recorded(&self, now: u32) -> bool {
        self.state & (FETCHED | FREQUENCY) == FETCHED | FREQUENCY && !self.access_is_dated(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_twenty_four_bytes_and_eight_aligned() {
        assert_eq!(HEADER_SIZE, 24);
        assert_eq!(std::mem::align_of::<Header>(), 8);
    }

    #[test]
    fn flags_take_room_only_when_not_zero() {
        assert_eq!(item_size(12, 100, 0), HEADER_SIZE + 112);
        assert_eq!(item_size(12, 100, 7), HEADER_SIZE + 116);
        let mut header = Header::default();
        assert_eq!(header.key_offset(), HEADER_SIZE);
        header.state |= HAS_FLAGS;
        assert_eq!(header.key_offset(), HEADER_SIZE + 4);
    }

    #[test]
    fn a_read_is_recorded_once_fetched_full_and_recent() {
        let mut header = Header {
            atime: 100,
            state: LIVE | FETCHED,
            ..Header::default()
        };
        assert!(!header.read_is_recorded(100));
        header.set_frequency(FREQUENCY_MAX);
        assert!(header.read_is_recorded(100));
        assert!(header.read_is_recorded(100 + UPDATE_INTERVAL));
        assert!(!header.read_is_recorded(100 + UPDATE_INTERVAL + 1));
    }

    #[test]
    fn an_access_moves_the_access_time_only_once_it_is_dated() {
        let mut header = Header {
            atime: 100,
            ..Header::default()
        };
        header.note_access(100 + UPDATE_INTERVAL);
        assert_eq!(header.atime, 100);
        header.note_access(101 + UPDATE_INTERVAL);
        assert_eq!(header.atime, 101 + UPDATE_INTERVAL);
    }
}
