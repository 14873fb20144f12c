//! The fixed header every stored item carries, inline in its slab chunk.
//!
//! Layout of a chunk: `[Header][client flags, 4 bytes, only when not 0][key][value]`, no
//! padding between them (memcached also keeps the flags only when they are not 0). The
//! header keeps one time field, as memcached 1.6 does: the last access, set on store,
//! which also decides flush_all. It has no queue links: the eviction queues are a CLOCK
//! over the chunks and a ring of handles (`memory.rs`), and no position in the ring
//! either (a freed item's ring entry is counted as an orphan by the ring itself), so an
//! item costs 20 bytes of metadata plus its key and value; memcached's item header is 48
//! (56 with CAS). The header is aligned to 4 bytes, not 8, so chunks can be any multiple
//! of 4 bytes (a 12-byte key and a 100-byte value fill a 132-byte chunk).

/// Handle of an item inside one shard: a page/chunk pair, or a large-item slot.
pub type Handle = u32;

/// "No item": an empty queue, or a sweep that found nothing.
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

/// Bit of `Header::length_bits` set on a probation item that overflowed its class's small
/// queue ring (see `memory.rs`): it has no ring entry and the overflow's CLOCK hand finds
/// it. A chunk's value is shorter than 16 KiB, so the length needs only the bits below.
const OVERFLOW: u16 = 1 << 15;

/// Bits of `Header::length_bits` holding the value's length.
const LENGTH_MASK: u16 = OVERFLOW - 1;

/// Per-item metadata stored in front of the key: 20 bytes, 4-byte aligned (`packed(4)`
/// lets the 8-byte CAS sit at any multiple of 4, so chunk sizes need only be multiples
/// of 4; read it by value, never by reference).
#[repr(C, packed(4))]
#[derive(Debug, Clone, Copy, Default)]
pub struct Header {
    /// Compare-and-swap version; 0 when CAS is disabled (`-C`).
    pub cas: u64,
    /// Server time at which the item expires; 0 = never.
    pub exptime: u32,
    /// Server time of the last store or access (eviction age, `mg l`, flush_all).
    pub atime: u32,
    /// Length of the value of an item in a chunk (chunks hold at most 16 KiB; a large
    /// item's length is its value's own), and the `OVERFLOW` bit: read through
    /// `value_len` and `overflowed`.
    length_bits: u16,
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
    /// A header for a new item: live with `state`'s extra bits, on no queue yet. A value
    /// longer than a chunk can hold (a large item, whose value keeps its own length) is
    /// recorded as the longest length the header holds.
    pub fn new(
        cas: u64,
        exptime: u32,
        atime: u32,
        value_len: usize,
        key_len: u8,
        state: u8,
    ) -> Self {
        Header {
            cas,
            exptime,
            atime,
            length_bits: value_len.min(usize::from(LENGTH_MASK)) as u16,
            key_len,
            state,
        }
    }

    /// Length of the value of an item in a chunk.
    #[inline]
    pub fn value_len(&self) -> usize {
        usize::from(self.length_bits & LENGTH_MASK)
    }

    /// True for a probation item that left its class's ring for the overflow.
    #[inline]
    pub fn overflowed(&self) -> bool {
        self.length_bits & OVERFLOW != 0
    }

    /// Marks the item as in the overflow (`true`) or not.
    #[inline]
    pub fn set_overflowed(&mut self, overflowed: bool) {
        if overflowed {
            self.length_bits |= OVERFLOW;
        } else {
            self.length_bits &= !OVERFLOW;
        }
    }

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
    fn header_is_twenty_bytes_and_four_aligned() {
        assert_eq!(HEADER_SIZE, 20);
        assert_eq!(std::mem::align_of::<Header>(), 4);
    }

    #[test]
    fn the_overflow_bit_leaves_the_length_alone() {
        let mut header = Header::new(7, 0, 0, 16_000, 12, LIVE);
        assert_eq!(header.value_len(), 16_000);
        assert!(!header.overflowed());
        header.set_overflowed(true);
        assert!(header.overflowed());
        assert_eq!(header.value_len(), 16_000);
        header.set_overflowed(false);
        assert!(!header.overflowed());
        assert_eq!(header.value_len(), 16_000);
        let large = Header::new(7, 0, 0, 1 << 20, 12, LIVE);
        assert!(!large.overflowed());
        assert_eq!(large.value_len(), usize::from(LENGTH_MASK));
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
