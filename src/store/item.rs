//! The fixed header every stored item carries, inline in its slab chunk.
//!
//! Layout of a chunk: `[Header][key bytes][value bytes]`, no padding between them. The
//! header holds the eviction queue links as chunk handles (4 bytes each instead of
//! pointers), so an item costs 40 bytes of metadata plus its key and value; memcached's
//! item header is 48.

/// Handle of an item inside one shard: a page/chunk pair, or a large-item slot.
pub type Handle = u32;

/// "No item": the end of an eviction queue.
pub const NIL: Handle = u32::MAX;

/// The item is linked into the index (cleared when the chunk is freed).
pub const LIVE: u8 = 1;
/// The item has been read at least once since it was stored (`mg h`, `evicted_unfetched`).
pub const FETCHED: u8 = 2;
/// Meta: the item was invalidated (`md I`, `ms I`); readers see `X`.
pub const STALE: u8 = 8;
/// Meta: one reader already won the right to recache it (`W` sent; others see `Z`).
pub const TOKEN_SENT: u8 = 16;
/// Two bits counting reads since the item last reached an eviction queue's tail (0 to
/// `FREQUENCY_MAX`): the eviction policy keeps items whose count is not zero.
pub const FREQUENCY: u8 = 32 | 64;
/// Shift of the `FREQUENCY` bits.
pub const FREQUENCY_SHIFT: u32 = 5;
/// The highest read count the `FREQUENCY` bits hold.
pub const FREQUENCY_MAX: u8 = 3;
/// The item is in its class's main queue; otherwise in the small (probation) queue.
pub const IN_MAIN: u8 = 128;

/// Per-item metadata stored in front of the key.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Header {
    /// Compare-and-swap version; 0 when CAS is disabled (`-C`).
    pub cas: u64,
    /// Previous item in this item's eviction queue (towards the head).
    pub prev: Handle,
    /// Next item in the eviction queue (towards the tail).
    pub next: Handle,
    /// Server time of the last store (flush_all compares against it).
    pub time: u32,
    /// Server time at which the item expires; 0 = never.
    pub exptime: u32,
    /// Server time of the last access (eviction age, `mg l`).
    pub atime: u32,
    /// Opaque client flags.
    pub flags: u32,
    /// Length of the value in bytes.
    pub value_len: u32,
    /// Length of the key in bytes (at most 250).
    pub key_len: u8,
    /// `LIVE`, `FETCHED`, `STALE`, `TOKEN_SENT`, `IN_MAIN` bits and the `FREQUENCY` count.
    pub state: u8,
}

/// Bytes taken by the header in front of every chunk.
pub const HEADER_SIZE: usize = std::mem::size_of::<Header>();

/// Bytes an item of this key and value length needs in a chunk.
pub fn item_size(key_len: usize, value_len: usize) -> usize {
    HEADER_SIZE + key_len + value_len
}

impl Header {
    /// True when the item's exptime has passed at server time `now`.
    #[inline]
    pub fn is_expired(&self, now: u32) -> bool {
        self.exptime != 0 && self.exptime <= now
    }

    /// Reads counted since the item last reached a queue's tail (0 to `FREQUENCY_MAX`).
    #[inline]
    pub fn frequency(&self) -> u8 {
        (self.state & FREQUENCY) >> FREQUENCY_SHIFT
    }

    /// Sets the read count (at most `FREQUENCY_MAX`).
    #[inline]
    pub fn set_frequency(&mut self, count: u8) {
        self.state = (self.state & !FREQUENCY) | (count.min(FREQUENCY_MAX) << FREQUENCY_SHIFT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_forty_bytes_and_eight_aligned() {
        assert_eq!(HEADER_SIZE, 40);
        assert_eq!(std::mem::align_of::<Header>(), 8);
    }
}
