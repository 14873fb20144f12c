//! Typed outcomes of a data request (store, delete, arithmetic, touch, get), produced
//! once by `command`'s execution core for every protocol and turned into bytes by the
//! text composer here and the meta and binary composers beside their parsers. The
//! execution core never spells a reply; a composer never touches the store.

use super::reply::{ProtocolError, Reply, ReplyBuffer};
use bytes::Bytes;

/// A value to send: bytes copied under the shard lock, or a large shared value sent by
/// reference (see `ReplyBuffer::push_shared`).
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// Bytes inside the store's memory: copied into the reply.
    Inline(&'a [u8]),
    /// A refcounted large value: queued without a copy.
    Shared(&'a Bytes),
}

impl Value<'_> {
    /// The value's length.
    pub fn len(&self) -> usize {
        match self {
            Value::Inline(bytes) => bytes.len(),
            Value::Shared(bytes) => bytes.len(),
        }
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the value to `out`, by reference when it is shared.
    pub fn push_to(&self, out: &mut ReplyBuffer) {
        match self {
            Value::Inline(bytes) => out.push(bytes),
            Value::Shared(bytes) => out.push_shared(bytes),
        }
    }
}

/// An item a get found, borrowed while its shard is locked.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    /// The item's key.
    pub key: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// CAS value.
    pub cas: u64,
    /// The value.
    pub value: Value<'a>,
}

/// What executing a data request came to, whatever protocol asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Stored, with the new CAS value.
    Stored {
        /// The item's new CAS.
        cas: u64,
    },
    /// The mode's condition was not met (add of a present key, append to a missing one).
    NotStored,
    /// The CAS compared did not match.
    Exists,
    /// No such item.
    NotFound,
    /// Deleted (or, with `invalidate`, marked stale).
    Deleted,
    /// A new expiry was set.
    Touched,
    /// The result of incr/decr.
    Number {
        /// The new value.
        value: u64,
        /// The item's CAS afterwards.
        cas: u64,
        /// Seconds of life left, -1 for none.
        ttl: i64,
        /// Seconds of life left before the request (-1 for an item it created): a meta
        /// `t` placed before `T` or `N` reports it.
        ttl_before: i64,
        /// The item was created by this request (auto-create).
        created: bool,
    },
    /// A failure every protocol reports as an error.
    Error(ProtocolError),
}

impl Response {
    /// The text protocol's reply; nothing under `noreply` (memcached suppresses errors
    /// too).
    pub fn compose_text(self, out: &mut ReplyBuffer, noreply: bool) {
        if noreply {
            return;
        }
        match self {
            Response::Stored { .. } => out.reply(Reply::Stored),
            Response::NotStored => out.reply(Reply::NotStored),
            Response::Exists => out.reply(Reply::Exists),
            Response::NotFound => out.reply(Reply::NotFound),
            Response::Deleted => out.reply(Reply::Deleted),
            Response::Touched => out.reply(Reply::Touched),
            Response::Number { value, .. } => {
                out.number(value);
                out.push(CRLF);
            }
            Response::Error(error) => out.error(error),
        }
    }
}

/// The line terminator of text and meta replies.
pub const CRLF: &[u8] = b"\r\n";

/// A text get hit: `VALUE <key> <flags> <bytes>[ <cas>]`, the value, CRLF.
pub fn compose_text_hit(out: &mut ReplyBuffer, hit: &Hit<'_>, with_cas: bool) {
    out.value_header(
        hit.key,
        hit.flags,
        hit.value.len(),
        with_cas.then_some(hit.cas),
    );
    hit.value.push_to(out);
    out.push(CRLF);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(response: Response, noreply: bool) -> Vec<u8> {
        let mut out = ReplyBuffer::new();
        response.compose_text(&mut out, noreply);
        out.to_vec()
    }

    #[test]
    fn text_replies_are_memcacheds_lines_and_noreply_silences_all() {
        assert_eq!(text(Response::Stored { cas: 9 }, false), b"STORED\r\n");
        assert_eq!(text(Response::NotStored, false), b"NOT_STORED\r\n");
        let number = Response::Number {
            value: 42,
            cas: 1,
            ttl: -1,
            ttl_before: -1,
            created: false,
        };
        assert_eq!(text(number, false), b"42\r\n");
        let error = Response::Error(ProtocolError::TooLarge);
        assert_eq!(
            text(error, false),
            b"SERVER_ERROR object too large for cache\r\n"
        );
        assert_eq!(text(error, true), b"");
        assert_eq!(text(Response::Deleted, true), b"");
    }

    #[test]
    fn a_text_hit_is_a_value_block() {
        let mut out = ReplyBuffer::new();
        let hit = Hit {
            key: b"k",
            flags: 5,
            cas: 7,
            value: Value::Inline(b"hi"),
        };
        compose_text_hit(&mut out, &hit, true);
        assert_eq!(out.to_vec(), b"VALUE k 5 2 7\r\nhi\r\n");
    }
}
