//! The text-protocol parser: bytes in, `Request` out, no socket and no store.
//!
//! It mirrors memcached 1.6.18's `proto_text.c`: lines end in `\n` (a preceding `\r` is
//! dropped), tokens are separated by spaces, the token count picks `ERROR` versus
//! `CLIENT_ERROR`, and `noreply` is recognised only as the last token.

use super::reply::ProtocolError;
use super::request::{
    Exptime, Frame, GetKeys, KEY_MAX_LENGTH, Keys, Limits, ReplyStyle, Request, ShutdownMode,
    StatsGroup, StoreMode,
};
use super::tokens::{Tokens, after_words};
use crate::numbers::{strtol32, strtoul32, strtoull};
use std::borrow::Cow;
use storage_line::{StorageLine, storage_line};

/// A partial line longer than this (no newline yet) closes the connection, unless it is
/// a get; a long line whose newline has already arrived is parsed, as memcached does.
pub const MAX_LINE_LENGTH: usize = 2048;

/// Parses one request from the front of `buffer`.
pub fn parse<'a>(buffer: &'a [u8], limits: &Limits) -> Frame<'a> {
    parse_lines(buffer, limits, true)
}

/// [`parse`] with only the general tokenizer, which the plain paths must agree with.
#[cfg(test)]
fn parse_general<'a>(buffer: &'a [u8], limits: &Limits) -> Frame<'a> {
    parse_lines(buffer, limits, false)
}

/// Parses one request, through the plain paths for the most common lines (`get <key>`,
/// a plain storage line) when `plain` allows it.
#[inline(always)]
fn parse_lines<'a>(buffer: &'a [u8], limits: &Limits, plain: bool) -> Frame<'a> {
    if plain {
        if let Some((key, consumed)) = single_key_get(buffer) {
            return request(text_get_one(key), consumed);
        }
        if let Some((fields, consumed)) = storage_line(buffer) {
            return storage_frame(fields, buffer, consumed, limits);
        }
    }
    let Some(newline) = memchr::memchr(b'\n', buffer) else {
        return incomplete_line(buffer, limits);
    };
    let mut line = &buffer[..newline];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let consumed = newline + 1;
    let tokens = Tokens::split(line);
    parse_line(tokens, line, buffer, consumed, limits)
}

/// The key of `get <key>\r\n` (or `\n`), the most common request, and the bytes its
/// line takes, when `buffer` starts with exactly that line (one space, one valid key of
/// printable bytes): one pass finds the key and the line end, where the general path
/// would search for the line end, split the line into tokens and leave a key list to
/// walk again.
#[inline]
fn single_key_get(buffer: &[u8]) -> Option<(&[u8], usize)> {
    let rest = buffer.strip_prefix(b"get ")?;
    // Key bytes are above the space; the first byte that is not ends the key.
    let end = first_space_or_control(rest)?;
    if end == 0 || end > KEY_MAX_LENGTH {
        return None;
    }
    let line_end = match rest[end..] {
        [b'\n', ..] => 1,
        [b'\r', b'\n', ..] => 2,
        _ => return None,
    };
    Some((&rest[..end], b"get ".len() + end + line_end))
}

/// Where the first byte at or below the space is, eight bytes at a time: keys are
/// mostly longer than a word, and a byte-by-byte scan costs several instructions a byte.
#[inline]
pub(super) fn first_space_or_control(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // The high bit of each byte below 0x21 (a byte with its own high bit set is not
        // one): exact for the lowest such byte, which is the one wanted.
        let below = word.wrapping_sub(ONES * 0x21) & !word & HIGHS;
        if below != 0 {
            return Some(at + (below.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter()
        .position(|&byte| byte <= b' ')
        .map(|offset| at + offset)
}

fn incomplete_line(buffer: &[u8], limits: &Limits) -> Frame<'static> {
    if buffer.len() > MAX_LINE_LENGTH {
        let start = buffer.iter().take_while(|&&byte| byte == b' ').count();
        if start > 100 || !is_get_line(&buffer[start..]) || buffer.len() > limits.max_multiget_line
        {
            return Frame::Close;
        }
    }
    Frame::Incomplete {
        needed: buffer.len() + 1,
    }
}

fn is_get_line(line: &[u8]) -> bool {
    line.starts_with(b"get ") || line.starts_with(b"gets ")
}

fn request(request: Request<'_>, consumed: usize) -> Frame<'_> {
    Frame::Request {
        request,
        consumed,
        swallow: 0,
    }
}

fn invalid(error: ProtocolError, noreply: bool, consumed: usize) -> Frame<'static> {
    request(Request::Invalid { error, noreply }, consumed)
}

fn parse_line<'a>(
    tokens: Tokens<'a>,
    line: &'a [u8],
    buffer: &'a [u8],
    consumed: usize,
    limits: &Limits,
) -> Frame<'a> {
    let words = tokens.count;
    let command = tokens.get(0);
    if words == 0 || command.len() < 2 {
        return invalid(ProtocolError::UnknownCommand, false, consumed);
    }
    let unknown = || invalid(ProtocolError::UnknownCommand, false, consumed);
    if command.len() == 2 && command[0] == b'm' {
        return super::meta::parse_meta(line, buffer, consumed, limits);
    }
    let keys_after = |skip: usize| Keys(after_words(line, skip));
    match command {
        b"get" | b"gets" if words >= 2 => match valid_keys(keys_after(1)) {
            Some(keys) => request(text_get(keys, command == b"gets", None), consumed),
            None => invalid(ProtocolError::BadFormat, false, consumed),
        },
        b"gat" | b"gats" if words >= 2 => match strtol32(tokens.get(1)) {
            Some(exptime) => match valid_keys(keys_after(2)) {
                Some(keys) => request(
                    text_get(keys, command == b"gats", Some(Exptime::signed(exptime))),
                    consumed,
                ),
                None => invalid(ProtocolError::BadFormat, false, consumed),
            },
            None => invalid(ProtocolError::InvalidExptime, false, consumed),
        },
        b"set" | b"add" | b"replace" | b"append" | b"prepend" if words == 5 || words == 6 => {
            parse_storage(&tokens, buffer, consumed, limits)
        }
        b"cas" if words == 6 || words == 7 => parse_storage(&tokens, buffer, consumed, limits),
        b"touch" if words == 3 || words == 4 => parse_touch(&tokens, consumed),
        b"delete" if (2..=4).contains(&words) => parse_delete(&tokens, consumed),
        b"incr" | b"decr" if words == 3 || words == 4 => parse_arithmetic(&tokens, consumed),
        b"flush_all" if (1..=3).contains(&words) => {
            let noreply = tokens.noreply();
            let delay_words = if noreply { 2 } else { 1 };
            if words == delay_words {
                return request(
                    Request::FlushAll {
                        delay: None,
                        noreply,
                    },
                    consumed,
                );
            }
            match strtol32(tokens.get(1)) {
                Some(delay) => request(
                    Request::FlushAll {
                        delay: Some(Exptime::signed(delay)),
                        noreply,
                    },
                    consumed,
                ),
                None => invalid(ProtocolError::InvalidExptime, noreply, consumed),
            }
        }
        b"version" => request(Request::Version, consumed),
        b"refresh_certs" => request(Request::RefreshCerts, consumed),
        // A `noreply` is read as an argument, so it fails (quietly).
        b"watch" => match crate::watch::Kinds::parse((1..words).map(|at| tokens.get(at))) {
            Some(kinds) => request(Request::Watch(kinds), consumed),
            None => invalid(ProtocolError::UnknownCommand, tokens.noreply(), consumed),
        },
        b"quit" => request(Request::Quit, consumed),
        b"verbosity" if words == 2 || words == 3 => {
            let noreply = tokens.noreply();
            match strtoul32(tokens.get(1)) {
                Some(level) => request(Request::Verbosity { level, noreply }, consumed),
                None => invalid(ProtocolError::BadFormat, noreply, consumed),
            }
        }
        b"shutdown" => {
            let mode = match (words, tokens.get(1)) {
                (1, _) => ShutdownMode::Immediate,
                (2, b"graceful") => ShutdownMode::Graceful,
                _ => ShutdownMode::Invalid,
            };
            request(Request::Shutdown(mode), consumed)
        }
        b"cache_memlimit" if words == 2 || words == 3 => request(
            Request::CacheMemlimit {
                megabytes: strtoul32(tokens.get(1)),
                noreply: tokens.noreply(),
            },
            consumed,
        ),
        b"stats" => request(Request::Stats(parse_stats(&tokens, 1)), consumed),
        b"lru_crawler" => operator::lru_crawler(&tokens, consumed),
        b"slabs" => operator::slabs(&tokens, consumed),
        b"get" | b"gets" | b"gat" | b"gats" | b"set" | b"add" | b"replace" | b"append"
        | b"prepend" | b"cas" | b"touch" | b"delete" | b"incr" | b"decr" | b"flush_all"
        | b"verbosity" | b"cache_memlimit" => unknown(),
        _ if tokens.get(words - 1).starts_with(b"HTTP/") => Frame::Close,
        _ => unknown(),
    }
}

/// A text get of one key without spaces (`get <key>`).
fn text_get_one(key: &[u8]) -> Request<'_> {
    Request::Get {
        keys: GetKeys::One(Cow::Borrowed(key)),
        with_cas: false,
        touch: None,
        vivify: None,
        recache: None,
        bump: true,
        reply: ReplyStyle::Text { noreply: false },
    }
}

/// A text get of a key list (also what a multiget paused at a full reply window
/// resumes with).
pub fn text_get(keys: Keys<'_>, with_cas: bool, touch: Option<Exptime>) -> Request<'_> {
    Request::Get {
        keys: GetKeys::List(keys),
        with_cas,
        touch,
        vivify: None,
        recache: None,
        bump: true,
        reply: ReplyStyle::Text { noreply: false },
    }
}

/// The keys of a get-family line, or `None` when one is too long. memcached drops the
/// hits it queued when a later key is too long, so one check of the whole line up front
/// gives the same bytes, and the keys need no second look when a long reply is
/// produced in windows.
fn valid_keys(keys: Keys<'_>) -> Option<Keys<'_>> {
    keys.iter()
        .all(|key| key.len() <= KEY_MAX_LENGTH)
        .then_some(keys)
}

fn parse_storage<'a>(
    tokens: &Tokens<'a>,
    buffer: &'a [u8],
    consumed: usize,
    limits: &Limits,
) -> Frame<'a> {
    let noreply = tokens.noreply();
    let key = tokens.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return invalid(ProtocolError::BadFormat, noreply, consumed);
    }
    let (Some(flags), Some(exptime), Some(length)) = (
        strtoul32(tokens.get(2)),
        strtol32(tokens.get(3)),
        strtol32(tokens.get(4)),
    ) else {
        return invalid(ProtocolError::BadFormat, noreply, consumed);
    };
    let (mode, compare_cas) = match tokens.get(0) {
        b"set" => (StoreMode::Set, None),
        b"add" => (StoreMode::Add, None),
        b"replace" => (StoreMode::Replace, None),
        b"append" => (StoreMode::Append, None),
        b"prepend" => (StoreMode::Prepend, None),
        _ => match strtoull(tokens.get(5)) {
            Some(cas) => (StoreMode::Set, Some(cas)),
            None => return invalid(ProtocolError::BadFormat, noreply, consumed),
        },
    };
    let fields = StorageLine {
        mode,
        compare_cas,
        key,
        flags,
        exptime,
        length,
        noreply,
    };
    storage_frame(fields, buffer, consumed, limits)
}

/// The request of a storage line whose fields were read (its key length checked), once
/// its data block is there; the line takes `consumed` bytes of `buffer`.
#[inline]
fn storage_frame<'a>(
    fields: StorageLine<'a>,
    buffer: &'a [u8],
    consumed: usize,
    limits: &Limits,
) -> Frame<'a> {
    let StorageLine {
        mode,
        compare_cas,
        key,
        flags,
        exptime,
        length,
        noreply,
    } = fields;
    if !(0..=i32::MAX - 2).contains(&length) {
        return invalid(ProtocolError::BadFormat, noreply, consumed);
    }
    let length = length as usize;
    if !limits.fits(key.len(), length) {
        return Frame::Request {
            request: Request::StoreTooLarge {
                mode,
                compare_cas,
                key: Cow::Borrowed(key),
                reply: ReplyStyle::Text { noreply },
            },
            consumed,
            swallow: length + 2,
        };
    }
    let end = consumed + length + 2;
    if buffer.len() < end {
        return Frame::Incomplete { needed: end };
    }
    if &buffer[end - 2..end] != b"\r\n" {
        return invalid(ProtocolError::BadDataChunk, noreply, end);
    }
    request(
        Request::Store {
            mode,
            compare_cas,
            key: Cow::Borrowed(key),
            flags,
            exptime: Exptime::signed(exptime),
            data: &buffer[consumed..end - 2],
            invalidate: false,
            reply: ReplyStyle::Text { noreply },
        },
        end,
    )
}

fn parse_touch<'a>(tokens: &Tokens<'a>, consumed: usize) -> Frame<'a> {
    let noreply = tokens.noreply();
    let key = tokens.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return invalid(ProtocolError::BadFormat, noreply, consumed);
    }
    match strtol32(tokens.get(2)) {
        Some(exptime) => request(
            Request::Touch {
                key,
                exptime: Exptime::signed(exptime),
                reply: ReplyStyle::Text { noreply },
            },
            consumed,
        ),
        None => invalid(ProtocolError::InvalidExptime, noreply, consumed),
    }
}

fn parse_delete<'a>(tokens: &Tokens<'a>, consumed: usize) -> Frame<'a> {
    let noreply = tokens.noreply();
    if tokens.count > 2 {
        let hold_is_zero = tokens.get(2) == b"0";
        let valid = (tokens.count == 3 && (hold_is_zero || noreply))
            || (tokens.count == 4 && hold_is_zero && noreply);
        if !valid {
            return invalid(ProtocolError::DeleteUsage, noreply, consumed);
        }
    }
    let key = tokens.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return invalid(ProtocolError::BadFormat, noreply, consumed);
    }
    let delete = Request::Delete {
        key: Cow::Borrowed(key),
        compare_cas: None,
        invalidate: false,
        new_ttl: None,
        reply: ReplyStyle::Text { noreply },
    };
    request(delete, consumed)
}

fn parse_arithmetic<'a>(tokens: &Tokens<'a>, consumed: usize) -> Frame<'a> {
    let noreply = tokens.noreply();
    let key = tokens.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return invalid(ProtocolError::BadFormat, noreply, consumed);
    }
    match strtoull(tokens.get(2)) {
        Some(delta) => request(
            Request::Arithmetic {
                incr: tokens.get(0) == b"incr",
                key: Cow::Borrowed(key),
                delta,
                compare_cas: None,
                auto_create: None,
                new_ttl: None,
                reply: ReplyStyle::Text { noreply },
            },
            consumed,
        ),
        None => invalid(ProtocolError::InvalidDelta, noreply, consumed),
    }
}

/// The group a binary STAT key names: the same words a text `stats` line takes.
pub fn stats_group(arguments: &[u8]) -> StatsGroup<'_> {
    parse_stats(&Tokens::split(arguments), 0)
}

/// The `stats` group whose words start at token `first`.
fn parse_stats<'a>(tokens: &Tokens<'a>, first: usize) -> StatsGroup<'a> {
    let arguments = tokens.count - first;
    if arguments == 0 {
        return StatsGroup::General;
    }
    let word = |index: usize| tokens.get(first + index);
    match word(0) {
        b"reset" => StatsGroup::Reset,
        b"settings" => StatsGroup::Settings,
        b"items" => StatsGroup::Items,
        b"slabs" => StatsGroup::Slabs,
        b"sizes" => StatsGroup::Sizes,
        b"conns" => StatsGroup::Conns,
        b"detail" => StatsGroup::Detail((arguments > 1).then(|| word(1))),
        b"cachedump" if arguments < 3 => StatsGroup::Invalid(ProtocolError::StatsBadCommandLine),
        b"cachedump" => match (strtoul32(word(1)), strtoul32(word(2))) {
            (Some(class), Some(limit)) => StatsGroup::CacheDump { class, limit },
            _ => StatsGroup::Invalid(ProtocolError::BadFormat),
        },
        _ => StatsGroup::Unknown,
    }
}

mod operator;
mod storage_line;
#[cfg(test)]
mod tests;
