//! The meta protocol of memcached 1.6 (`mg ms md ma mn me`): a two-letter command, a key,
//! then single-letter flags, some with a token glued on (`T30`, `Oabc`). Parsing checks
//! flags per command with memcached 1.6.18's exact error strings and produces the
//! protocol-neutral requests (`ms` a `Store`, `md` a `Delete`, `ma` an `Arithmetic`)
//! with a `ReplyStyle::Meta` that keeps the flags as a slice of the line; the replies are
//! composed here from it. `mg` and `me` run in `command/meta.rs`.

use super::reply::{ProtocolError, ReplyBuffer};
use super::request::{
    Exptime, Frame, GetKeys, KEY_MAX_LENGTH, Limits, MetaFlags, ReplyStyle, Request, StoreMode,
};
use super::response::{CRLF, Response, Value};
use super::tokens::{after_words, words};
use crate::numbers::{Decimal, strtol32, strtoul32, strtoull};
use base64::Engine;
use std::borrow::Cow;

/// memcached's `MFLAG_MAX_OPT_LENGTH`: tokens of a meta line, counting the command, the
/// key and the terminator it adds.
const MAX_META_TOKENS: usize = 20;
/// Longest opaque token, its `O` included (memcached's `MFLAG_MAX_OPAQUE_LENGTH`).
const MAX_OPAQUE: usize = 32;

/// Which meta command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaCommand {
    /// `mg`: get.
    Get,
    /// `ms`: set (with modes).
    Set,
    /// `md`: delete.
    Delete,
    /// `ma`: arithmetic.
    Arithmetic,
}

/// What a meta reply echoes: the flags as sent, the key as sent and as used. Built from
/// the request's `ReplyStyle::Meta` and its key when the reply is composed, so the
/// request itself carries no copy of it.
#[derive(Debug, Clone, Copy)]
pub struct Echo<'a> {
    /// The request's flags.
    pub flags: MetaFlags<'a>,
    /// The key as sent.
    pub raw_key: &'a [u8],
    /// The key as used (base64-decoded under `b`).
    pub key: &'a [u8],
}

impl Echo<'_> {
    /// `q`: quiet mode.
    fn quiet(&self) -> bool {
        self.flags.has(b'q')
    }
}

fn error(error: ProtocolError, consumed: usize, swallow: usize) -> Frame<'static> {
    Frame::Request {
        request: Request::Invalid {
            error,
            noreply: false,
        },
        consumed,
        swallow,
    }
}

/// memcached's `b` alphabet: standard base64 with canonical padding. Like memcached's own
/// decoder it ignores stray bits in the last character instead of refusing the key.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
);

/// Decodes standard base64 (with padding), as memcached's `b` flag expects.
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

/// Encodes standard base64 (keys returned by `k` under `b`).
pub fn base64_encode(bytes: &[u8]) -> Vec<u8> {
    BASE64.encode(bytes).into_bytes()
}

/// Flags memcached 1.6.18 knows: one table for every meta command (its
/// `_meta_flag_preparse`), so a flag that only another command uses is accepted and
/// ignored (`P` and `L` are proxy hints). Any other letter is an invalid flag.
const KNOWN_FLAGS: &[u8] = b"bcfhklqstuvCDFIJMNOPLRT";
/// `me <key> [b]`: memcached looks only at the first flag, `b` decodes the key and
/// anything else is ignored.
fn parse_debug<'a>(mut tokens: impl Iterator<Item = &'a [u8]>, consumed: usize) -> Frame<'a> {
    let Some(raw_key) = tokens.next().filter(|key| key.len() <= KEY_MAX_LENGTH) else {
        return error(ProtocolError::BadFormat, consumed, 0);
    };
    let key = match tokens.next() {
        Some([b'b', ..]) => match base64_decode(raw_key) {
            Some(decoded) if !decoded.is_empty() => Cow::Owned(decoded),
            _ => return error(ProtocolError::BadFormat, consumed, 0),
        },
        _ => Cow::Borrowed(raw_key),
    };
    Frame::Request {
        request: Request::MetaDebug { key, raw_key },
        consumed,
        swallow: 0,
    }
}

/// Parses a line whose command is two letters starting with `m`.
pub fn parse_meta<'a>(
    line: &'a [u8],
    buffer: &'a [u8],
    consumed: usize,
    limits: &Limits,
) -> Frame<'a> {
    let mut tokens = words(line);
    let name = tokens.next().unwrap_or_default();
    let command = match name {
        b"mn" => {
            return Frame::Request {
                request: Request::MetaNoop,
                consumed,
                swallow: 0,
            };
        }
        b"mg" => MetaCommand::Get,
        b"ms" => MetaCommand::Set,
        b"md" => MetaCommand::Delete,
        b"ma" => MetaCommand::Arithmetic,
        b"me" => return parse_debug(tokens, consumed),
        _ => return error(ProtocolError::UnknownCommand, consumed, 0),
    };
    let Some(raw_key) = tokens.next() else {
        return error(ProtocolError::UnknownCommand, consumed, 0);
    };
    if raw_key.len() > KEY_MAX_LENGTH {
        return error(ProtocolError::BadFormat, consumed, 0);
    }
    let total_tokens = words(line).count();
    let too_many = total_tokens + 1 > MAX_META_TOKENS;
    if too_many && command != MetaCommand::Set {
        let too_long = match command {
            MetaCommand::Get => ProtocolError::FlagsTooLongGet,
            _ => ProtocolError::FlagsTooLong,
        };
        return error(too_long, consumed, 0);
    }
    // ms carries the data length right after the key.
    let mut swallow = 0;
    let mut data_len = 0;
    if command == MetaCommand::Set {
        let Some(length) = tokens.next().and_then(strtol32).filter(|l| *l >= 0) else {
            return error(ProtocolError::BadFormat, consumed, 0);
        };
        data_len = length as usize;
        swallow = data_len + 2;
        if too_many {
            return error(ProtocolError::FlagsTooLong, consumed, swallow);
        }
    }
    let flags = MetaFlags {
        words: after_words(line, if command == MetaCommand::Set { 3 } else { 2 }),
        of_set: command == MetaCommand::Set,
    };
    // md and ma report any flag problem alike.
    let per_flag_error = matches!(command, MetaCommand::Delete | MetaCommand::Arithmetic);
    let flag_error = |plain: ProtocolError| {
        if per_flag_error {
            ProtocolError::InvalidOrDuplicateFlag
        } else {
            plain
        }
    };
    let mut ttl = None;
    let mut vivify = None;
    let mut recache = None;
    let mut compare_cas = None;
    let mut client_flags = 0;
    let mut delta = 1;
    let mut initial = 0;
    let mut mode = None;
    let mut key = Cow::Borrowed(raw_key);
    // As memcached: an unknown or repeated flag stops at once; a bad token is noted
    // and the walk goes on, so the last bad token names the error.
    let mut failure = None;
    let mut touch_after_vivify = false;
    let mut seen = [false; 128];
    for (flag, token) in flags.iter() {
        if flag >= 127 || seen[usize::from(flag)] {
            return error(flag_error(ProtocolError::DuplicateFlag), consumed, swallow);
        }
        seen[usize::from(flag)] = true;
        if !KNOWN_FLAGS.contains(&flag) {
            return error(flag_error(ProtocolError::InvalidFlag), consumed, swallow);
        }
        let bad = match flag {
            b'b' => match base64_decode(raw_key) {
                Some(decoded) if !decoded.is_empty() => {
                    key = Cow::Owned(decoded);
                    None
                }
                _ => Some(ProtocolError::KeyDecode),
            },
            b'T' => strtol32(token)
                .map(|v| {
                    ttl = Some(Exptime::signed(v));
                    touch_after_vivify = vivify.is_some();
                })
                .is_none()
                .then_some(ProtocolError::BadToken),
            b'N' => strtol32(token)
                .map(|v| vivify = Some(Exptime::signed(v)))
                .is_none()
                .then_some(ProtocolError::BadToken),
            b'R' => strtol32(token)
                .map(|v| recache = Some(Exptime::signed(v)))
                .is_none()
                .then_some(ProtocolError::BadToken),
            b'C' => strtoull(token)
                .map(|v| compare_cas = Some(v))
                .is_none()
                .then_some(ProtocolError::BadToken),
            // memcached flags a bad F without naming it: the error so far stands.
            b'F' if strtoul32(token).map(|v| client_flags = v).is_none() => {
                Some(failure.unwrap_or(ProtocolError::BadFormat))
            }
            b'D' => strtoull(token)
                .map(|v| delta = v)
                .is_none()
                .then_some(ProtocolError::MetaDelta),
            b'J' => strtoull(token)
                .map(|v| initial = v)
                .is_none()
                .then_some(ProtocolError::MetaInitial),
            b'M' if token.len() != 1 => Some(ProtocolError::MetaModeLength),
            b'M' => {
                mode = Some(token[0]);
                None
            }
            _ => None,
        };
        if bad.is_some() {
            failure = bad;
        }
    }
    if let Some(failure) = failure {
        return error(flag_error(failure), consumed, swallow);
    }
    // memcached applies `T` and `N` in request order: an item `N` creates keeps the
    // exptime of whichever comes last.
    if touch_after_vivify {
        vivify = ttl;
    }
    if let Some(token) = flags.iter().find(|(flag, _)| *flag == b'O').map(|(_, t)| t)
        // memcached counts the `O` itself.
        && 1 + token.len() > MAX_OPAQUE
    {
        return error(ProtocolError::OpaqueTooLong, consumed, swallow);
    }
    let set_mode = match mode {
        None | Some(b'S') => StoreMode::Set,
        Some(b'E') => StoreMode::Add,
        Some(b'A') => StoreMode::Append,
        Some(b'P') => StoreMode::Prepend,
        Some(b'R') => StoreMode::Replace,
        Some(_) if command == MetaCommand::Set => {
            return error(ProtocolError::InvalidSetMode, consumed, swallow);
        }
        Some(_) => StoreMode::Set,
    };
    let incr = match mode {
        None | Some(b'I' | b'+') => true,
        Some(b'D' | b'-') => false,
        Some(_) if command == MetaCommand::Arithmetic => {
            return error(ProtocolError::InvalidArithmeticMode, consumed, swallow);
        }
        Some(_) => true,
    };
    // A CAS guards a set or a replace (memcached turns those into a `cas`), and an
    // append or prepend unless it is 0; an add ignores it.
    let store_cas = compare_cas.filter(|&cas| match set_mode {
        StoreMode::Add => false,
        StoreMode::Append | StoreMode::Prepend => cas != 0,
        StoreMode::Set | StoreMode::Replace => true,
    });
    let reply = ReplyStyle::Meta { flags, raw_key };
    let request = match command {
        MetaCommand::Set => {
            if !limits.fits(key.len(), data_len) {
                // Refused before its data is buffered: the data is swallowed.
                let request = Request::StoreTooLarge {
                    mode: set_mode,
                    compare_cas: store_cas,
                    key,
                    reply,
                };
                return Frame::Request {
                    request,
                    consumed,
                    swallow,
                };
            }
            let end = consumed + data_len + 2;
            if buffer.len() < end {
                return Frame::Incomplete { needed: end };
            }
            if &buffer[end - 2..end] != b"\r\n" {
                return error(ProtocolError::BadDataChunk, end, 0);
            }
            let request = Request::Store {
                mode: set_mode,
                compare_cas: store_cas,
                key,
                flags: client_flags,
                exptime: ttl.unwrap_or_default(),
                data: &buffer[consumed..end - 2],
                invalidate: flags.has(b'I'),
                reply,
            };
            return Frame::Request {
                request,
                consumed: end,
                swallow: 0,
            };
        }
        MetaCommand::Get => Request::Get {
            keys: GetKeys::One(key),
            with_cas: true,
            touch: ttl,
            vivify,
            recache,
            bump: !flags.has(b'u'),
            reply,
        },
        MetaCommand::Delete => Request::Delete {
            key,
            compare_cas,
            invalidate: flags.has(b'I'),
            new_ttl: ttl,
            reply,
        },
        MetaCommand::Arithmetic => Request::Arithmetic {
            incr,
            key,
            delta,
            compare_cas,
            auto_create: vivify.map(|exptime| (exptime, initial)),
            new_ttl: ttl,
            reply,
        },
    };
    Frame::Request {
        request,
        consumed,
        swallow: 0,
    }
}

/// Appends the return flags in request order: `k` (base64 again under `b`, then ` b`)
/// and `O` here, the item flags through `item`.
pub fn push_flags(
    out: &mut ReplyBuffer,
    request: &Echo<'_>,
    mut item: impl FnMut(&mut ReplyBuffer, u8),
) {
    for (flag, token) in request.flags.iter() {
        match flag {
            b'k' => {
                out.push(b" k");
                if request.flags.has(b'b') {
                    out.push(&base64_encode(request.key));
                    out.push(b" b");
                } else {
                    out.push(request.raw_key);
                }
            }
            b'O' => {
                out.push(b" O");
                out.push(token);
            }
            other => item(out, other),
        }
    }
}

/// A status code with the flags every code echoes (`k`, `O`), e.g. `NF kfoo O1`.
pub fn compose_status(out: &mut ReplyBuffer, code: &[u8], request: &Echo<'_>) {
    out.push(code);
    push_flags(out, request, |_, _| {});
    out.push(CRLF);
}

/// ` t<seconds>`, or ` t-1` for an item that never expires.
pub fn push_ttl(out: &mut ReplyBuffer, ttl: i64) {
    out.push(b" t");
    if ttl < 0 {
        out.push(b"-1");
    } else {
        out.number(ttl as u64);
    }
}

/// The reply of `ms`, `md` or `ma` that came to `response`: a two-letter code, then the
/// return flags asked for; `q` silences success.
pub fn compose(out: &mut ReplyBuffer, request: &Echo<'_>, response: Response) {
    let code: &[u8] = match response {
        Response::Stored { .. } | Response::Deleted if request.quiet() => return,
        Response::Deleted | Response::Touched => b"HD",
        // `q` hides a result, value or not, unless `N` just created the item.
        Response::Number { created: false, .. } if request.quiet() => return,
        Response::Number {
            value,
            cas,
            ttl,
            ttl_before,
            created,
        } => {
            let ttl = TtlWalk {
                before: ttl_before,
                touched: Some(ttl),
                vivified: created.then_some(ttl),
            };
            return compose_number(out, request, value, cas, ttl);
        }
        Response::NotStored => b"NS",
        Response::Exists => b"EX",
        Response::NotFound => b"NF",
        // `ma` reports a result that found no memory as not stored.
        Response::Error(ProtocolError::OutOfMemory) => b"NS",
        Response::Error(error) => return out.error(error),
        Response::Stored { .. } => b"HD",
    };
    if !request.flags.of_set {
        return compose_status(out, code, request);
    }
    // `ms` echoes `c` with the new CAS, or 0 when nothing was stored.
    let cas = match response {
        Response::Stored { cas } => cas,
        _ => 0,
    };
    out.push(code);
    push_flags(out, request, |out, flag| {
        if flag == b'c' {
            out.push(b" c");
            out.number(cas);
        }
    });
    out.push(CRLF);
}

/// The TTLs a `t` can report: memcached applies `T` and `N` as it walks the flags, so a
/// `t` before them shows the TTL the item had before.
#[derive(Debug, Clone, Copy)]
struct TtlWalk {
    /// Before `T` or `N` (-1 for an item just created).
    before: i64,
    /// After `T`.
    touched: Option<i64>,
    /// After `N`, for an item it created.
    vivified: Option<i64>,
}

impl TtlWalk {
    /// The TTL once `flag` (`T` or `N`) has been applied to `current`.
    fn after(&self, flag: u8, current: i64) -> i64 {
        match flag {
            b'T' => self.touched.unwrap_or(current),
            _ => self.vivified.unwrap_or(current),
        }
    }
}

/// `ma`'s success: `HD` (or `VA <digits>` and the number under `v`) with `t` and `c`.
fn compose_number(out: &mut ReplyBuffer, request: &Echo<'_>, value: u64, cas: u64, ttl: TtlWalk) {
    let digits = Decimal::new(value);
    let digits = digits.as_bytes();
    let with_value = request.flags.has(b'v');
    if with_value {
        out.push(b"VA ");
        out.number(digits.len() as u64);
    } else {
        out.push(b"HD");
    }
    let mut current = ttl.before;
    push_flags(out, request, |out, flag| match flag {
        b't' => push_ttl(out, current),
        b'T' | b'N' => current = ttl.after(flag, current),
        b'c' => {
            out.push(b" c");
            out.number(cas);
        }
        _ => {}
    });
    out.push(CRLF);
    if with_value {
        out.push(digits);
        out.push(CRLF);
    }
}

/// What `mg` and `me` report of an item, taken from the store while its shard is locked.
#[derive(Debug, Clone, Copy)]
pub struct MetaHit<'a> {
    /// Client flags.
    pub flags: u32,
    /// CAS value.
    pub cas: u64,
    /// The value.
    pub value: Value<'a>,
    /// Seconds of life left, -1 for none.
    pub ttl: i64,
    /// Seconds of life left before this request (-1 for an item it created).
    pub ttl_before: i64,
    /// Seconds of life `T` gave it.
    pub touch_ttl: Option<i64>,
    /// Seconds of life `N` gave it, when `N` created it.
    pub vivify_ttl: Option<i64>,
    /// Seconds since the last access.
    pub last_access: u32,
    /// Fetched before this request.
    pub fetched_before: bool,
    /// Marked stale by an invalidation.
    pub stale: bool,
    /// This request won the right to recache.
    pub won: bool,
    /// Another client already holds the recache token.
    pub token_taken: bool,
    /// Slab class.
    pub class: usize,
    /// Item size as memcached counts it.
    pub size: usize,
}

/// `mg`'s hit: `VA <len>` (with `v`) or `HD`, the return flags in request order, the
/// win/stale/token markers, then the value under `v`.
pub fn compose_hit(out: &mut ReplyBuffer, request: &Echo<'_>, hit: &MetaHit<'_>) {
    let with_value = request.flags.has(b'v');
    if with_value {
        out.push(b"VA ");
        out.number(hit.value.len() as u64);
    } else {
        out.push(b"HD");
    }
    let ttl = TtlWalk {
        before: hit.ttl_before,
        touched: hit.touch_ttl,
        vivified: hit.vivify_ttl,
    };
    let mut current = ttl.before;
    push_flags(out, request, |out, flag| match flag {
        b'T' | b'N' => current = ttl.after(flag, current),
        b'c' => {
            out.push(b" c");
            out.number(hit.cas);
        }
        b'f' => {
            out.push(b" f");
            out.number(u64::from(hit.flags));
        }
        b'h' => out.push(if hit.fetched_before { b" h1" } else { b" h0" }),
        b'l' => {
            out.push(b" l");
            out.number(u64::from(hit.last_access));
        }
        b's' => {
            out.push(b" s");
            out.number(hit.value.len() as u64);
        }
        b't' => push_ttl(out, current),
        _ => {}
    });
    if hit.token_taken {
        out.push(b" Z");
    }
    if hit.stale {
        out.push(b" X");
    }
    if hit.won {
        out.push(b" W");
    }
    out.push(CRLF);
    if with_value {
        hit.value.push_to(out);
        out.push(CRLF);
    }
}

/// `mg`'s miss: `EN` with `k` and `O`, nothing under `q`.
pub fn compose_miss(out: &mut ReplyBuffer, request: &Echo<'_>) {
    if !request.quiet() {
        compose_status(out, b"EN", request);
    }
}

/// `me`'s answer: one line of the item's metadata, or `EN`.
pub fn compose_debug(out: &mut ReplyBuffer, raw_key: &[u8], hit: Option<&MetaHit<'_>>) {
    let Some(hit) = hit else {
        out.push(b"EN");
        return out.push(CRLF);
    };
    out.push(b"ME ");
    out.push(raw_key);
    // memcached prints `current_time - exptime` as a signed 32-bit number: an item
    // with time left shows it negative.
    out.push(b" exp=");
    if hit.ttl < 0 {
        out.push(b"-1");
    } else {
        let exp = (hit.ttl as u32).wrapping_neg() as i32;
        if exp < 0 {
            out.push(b"-");
        }
        out.number(u64::from(exp.unsigned_abs()));
    }
    out.push(b" la=");
    out.number(u64::from(hit.last_access));
    out.push(b" cas=");
    out.number(hit.cas);
    out.push(if hit.fetched_before {
        b" fetch=yes cls=".as_slice()
    } else {
        b" fetch=no cls="
    });
    out.number(hit.class as u64);
    out.push(b" size=");
    out.number(hit.size as u64);
    out.push(CRLF);
}

/// `mn`'s answer: the end of a pipeline of quiet meta requests.
pub fn compose_noop(out: &mut ReplyBuffer) {
    out.push(b"MN");
    out.push(CRLF);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(input: &[u8]) -> Frame<'_> {
        let newline = input.iter().position(|&b| b == b'\n').unwrap();
        parse_meta(
            &input[..newline - 1],
            input,
            newline + 1,
            &Limits::default(),
        )
    }

    fn composed(input: &[u8], response: Response) -> Vec<u8> {
        let Frame::Request {
            request: Request::Delete { key, reply, .. } | Request::Arithmetic { key, reply, .. },
            ..
        } = parse_line(input)
        else {
            panic!()
        };
        let ReplyStyle::Meta { flags, raw_key } = reply else {
            panic!()
        };
        let mut out = ReplyBuffer::new();
        let echo = Echo {
            flags,
            raw_key,
            key: &key,
        };
        compose(&mut out, &echo, response);
        out.to_vec()
    }

    #[test]
    fn meta_codes_echo_key_and_opaque_and_q_silences_success() {
        assert_eq!(
            composed(b"md foo q k O7\r\n", Response::NotFound),
            b"NF kfoo O7\r\n"
        );
        assert_eq!(composed(b"md foo q\r\n", Response::Deleted), b"");
        let number = Response::Number {
            value: 12,
            cas: 4,
            ttl: -1,
            ttl_before: -1,
            created: false,
        };
        assert_eq!(
            composed(b"ma foo v t c\r\n", number),
            b"VA 2 t-1 c4\r\n12\r\n"
        );
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_decode(b"Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode(b"Zm8=").unwrap(), b"fo");
        assert_eq!(base64_encode(b"fo"), b"Zm8=");
        assert_eq!(base64_decode(b"!!!"), None);
        // As memcached 1.6.18: stray low bits are ignored, missing padding is refused.
        assert_eq!(base64_decode(b"Zm9=").unwrap(), b"fo");
        assert_eq!(base64_decode(b"Zm8"), None);
        assert_eq!(base64_decode(b"Zm9v="), None);
    }

    #[test]
    fn flags_keep_request_order_and_tokens() {
        let Frame::Request {
            request:
                Request::Get {
                    touch,
                    reply: ReplyStyle::Meta { flags, .. },
                    ..
                },
            ..
        } = parse_line(b"mg key s v T30 Oab\r\n")
        else {
            panic!()
        };
        let letters: Vec<u8> = flags.iter().map(|(flag, _)| flag).collect();
        assert_eq!(letters, b"svTO");
        assert_eq!(touch, Some(Exptime::signed(30)));
        assert!(flags.iter().any(|flag| flag == (b'O', &b"ab"[..])));
    }

    #[test]
    fn meta_set_waits_for_data_and_swallows_after_bad_flags() {
        assert!(matches!(
            parse_line(b"ms k 5 T1\r\nab"),
            Frame::Incomplete { needed: 18 }
        ));
        let Frame::Request { swallow, .. } = parse_line(b"ms k 2 MX\r\nhi\r\n") else {
            panic!()
        };
        assert_eq!(swallow, 4);
    }
}
