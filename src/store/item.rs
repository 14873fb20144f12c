//! The fixed header every stored item carries, inline in its slab chunk.
//!
//! Layout of a chunk: `[Header][key bytes][value bytes]`, no padding between them. The
//! header holds the LRU links as chunk handles (4 bytes each instead of pointers), so an
//! item costs 40 bytes of metadata plus its key and value; memcached's item header is 48.

/// Handle of an item inside one shard: a page/chunk pair, or a large-item slot.
pub type Handle = u32;

/// "No item": the end of an LRU list.
pub const NIL: Handle = u32::MAX;

/// The item is linked into the index (cleared when the chunk is freed).
pub const LIVE: u8 = 1;
/// The item has been read at least once since it was stored (`mg h`, `evicted_unfetched`).
pub const FETCHED: u8 = 2;
/// The item was read since it last passed the LRU tail (second chance before eviction).
pub const ACTIVE: u8 = 4;
/// Meta: the item was invalidated (`md I`, `ms I`); readers see `X`.
pub const STALE: u8 = 8;
/// Meta: one reader already won the right to recache it (`W` sent; others see `Z`).
pub const TOKEN_SENT: u8 = 16;

/// Per-item metadata stored in front of the key.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Header {
    /// Compare-and-swap version; 0 when CAS is disabled (`-C`).
    pub cas: u64,
    /// Previous item in the LRU list of this item's class (towards the head).
    pub prev: Handle,
    /// Next item in the LRU list (towards the tail).
    pub next: Handle,
    /// Server time of the last store (flush_all compares against it).
    pub time: u32,
    /// Server time at which the item expires; 0 = never.
    pub exptime: u32,
    /// Server time of the last access (LRU age, `mg l`).
    pub atime: u32,
    /// Opaque client flags.
    pub flags: u32,
    /// Length of the value in bytes.
    pub value_len: u32,
    /// Length of the key in bytes (at most 250).
    pub key_len: u8,
    /// `LIVE`, `FETCHED`, `ACTIVE`, `STALE`, `TOKEN_SENT` bits.
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
