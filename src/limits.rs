//! Size limits that the protocol (refusing a too-large value before reading it) and the
//! store (refusing an append that would grow past `-I`) must compute identically. A leaf
//! module: it imports nothing from the crate.

/// Size memcached charges an item against `-I` (its `item_size_ok`): a 48-byte header,
/// 8 more with CAS, the key and its NUL, the value and its CRLF. Using the same formula
/// makes the largest storable value identical to memcached's.
pub fn memcached_item_size(key_len: usize, value_len: usize, cas_enabled: bool) -> usize {
    48 + if cas_enabled { 8 } else { 0 } + key_len + 1 + value_len + 2
}
