//! memcached's binary protocol: a 24-byte header (magic 0x80, opcode, key length, extras
//! length, data type, vbucket, body length, opaque, CAS) and a body of extras, key and
//! value. Parsing only frames and validates; `command/binary.rs` executes.

use super::reply::{ProtocolError, ReplyBuffer};
use super::request::{
    BinaryRequest, Exptime, Frame, GetKeys, KEY_MAX_LENGTH, Limits, ReplyStyle, Request, StoreMode,
};
use super::response::{Hit, Response};
use std::borrow::Cow;

/// Size of a request or response header.
pub const HEADER_SIZE: usize = 24;
/// First byte of every request.
pub const REQUEST_MAGIC: u8 = 0x80;
/// First byte of every response.
pub const RESPONSE_MAGIC: u8 = 0x81;
/// The SASL mechanisms offered (SASL_LIST_MECHS), and the one accepted by SASL_AUTH.
pub const SASL_MECHANISMS: &[u8] = b"PLAIN";
/// The body of a successful SASL_AUTH.
pub const SASL_AUTHENTICATED: &[u8] = b"Authenticated";
/// Largest body of a request that carries no value.
const MAX_PLAIN_BODY: usize = 64 * 1024;

/// Opcodes memcached implements.
#[allow(missing_docs)]
pub mod opcode {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    pub const VERBOSITY: u8 = 0x1b;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const SASL_LIST_MECHS: u8 = 0x20;
    pub const SASL_AUTH: u8 = 0x21;
    pub const SASL_STEP: u8 = 0x22;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

/// Response status codes, with memcached's error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// Success.
    Ok = 0x00,
    /// Key not found.
    NotFound = 0x01,
    /// Key exists (add) or CAS mismatch.
    Exists = 0x02,
    /// Value too large.
    TooLarge = 0x03,
    /// Malformed request.
    InvalidArguments = 0x04,
    /// append/prepend on a missing key.
    NotStored = 0x05,
    /// incr/decr on a non-numeric value.
    NonNumeric = 0x06,
    /// SASL authentication failed or is required.
    AuthError = 0x20,
    /// Unknown opcode.
    UnknownCommand = 0x81,
    /// No memory.
    OutOfMemory = 0x82,
}

impl Status {
    /// memcached's body text for an error status.
    pub fn message(self) -> &'static [u8] {
        match self {
            Status::Ok => b"",
            Status::NotFound => b"Not found",
            Status::Exists => b"Data exists for key.",
            Status::TooLarge => b"Too large.",
            Status::InvalidArguments => b"Invalid arguments",
            Status::NotStored => b"Not stored.",
            Status::NonNumeric => b"Non-numeric server-side value for incr or decr",
            Status::AuthError => b"Auth failure.",
            Status::UnknownCommand => b"Unknown command",
            Status::OutOfMemory => b"Out of memory",
        }
    }
}

/// Reads a big-endian u32 at `at`.
pub fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads a 32-bit expiration field at `at`: unsigned, as memcached reads every binary
/// exptime, so 0xFFFFFFFD is a Unix time far ahead, not -3.
pub fn be_exptime(bytes: &[u8], at: usize) -> Exptime {
    Exptime::unsigned(be_u32(bytes, at))
}

/// Reads a big-endian u64 at `at`.
pub fn be_u64(bytes: &[u8], at: usize) -> u64 {
    (u64::from(be_u32(bytes, at)) << 32) | u64::from(be_u32(bytes, at + 4))
}

fn is_storage(opcode: u8) -> bool {
    store_mode(opcode).is_some()
}

/// Frames one binary request from the front of `buffer`.
pub fn parse_binary<'a>(buffer: &'a [u8], limits: &Limits) -> Frame<'a> {
    if buffer.first().is_some_and(|&magic| magic != REQUEST_MAGIC) {
        return Frame::Close;
    }
    if buffer.len() < HEADER_SIZE {
        return Frame::Incomplete {
            needed: HEADER_SIZE,
        };
    }
    if buffer[0] != REQUEST_MAGIC {
        return Frame::Close;
    }
    let opcode = buffer[1];
    let key_len = usize::from(u16::from_be_bytes([buffer[2], buffer[3]]));
    let extras_len = usize::from(buffer[4]);
    let body_len = be_u32(buffer, 8) as usize;
    let opaque = be_u32(buffer, 12);
    let cas = be_u64(buffer, 16);
    // memcached answers these with "Invalid arguments" and drops the connection.
    if key_len + extras_len > body_len || key_len > KEY_MAX_LENGTH {
        return Frame::Request {
            request: Request::BinaryInvalid { opcode, opaque },
            consumed: HEADER_SIZE,
            swallow: 0,
        };
    }
    let value_len = body_len - key_len - extras_len;
    if is_storage(opcode) && !limits.fits(key_len, value_len) {
        // Refuse before buffering: read the header, extras and key, swallow the value.
        let head = HEADER_SIZE + extras_len + key_len;
        if buffer.len() < head {
            return Frame::Incomplete { needed: head };
        }
        let mode = store_mode(opcode).unwrap_or(StoreMode::Set);
        return Frame::Request {
            request: Request::StoreTooLarge {
                mode,
                // A refused SET removes the old value whatever its CAS.
                compare_cas: None,
                key: Cow::Borrowed(&buffer[HEADER_SIZE + extras_len..head]),
                reply: ReplyStyle::Binary { opcode, opaque },
            },
            consumed: head,
            swallow: value_len,
        };
    }
    if !is_storage(opcode) && body_len > MAX_PLAIN_BODY {
        return Frame::Close;
    }
    let total = HEADER_SIZE + body_len;
    if buffer.len() < total {
        return Frame::Incomplete { needed: total };
    }
    let body = &buffer[HEADER_SIZE..total];
    let request = BinaryRequest {
        opcode,
        extras: &body[..extras_len],
        key: &body[extras_len..extras_len + key_len],
        value: &body[extras_len + key_len..],
        opaque,
        cas,
    };
    Frame::Request {
        request: data_request(&request).unwrap_or(Request::Binary(request)),
        consumed: total,
        swallow: 0,
    }
}

/// The protocol-neutral request a well-formed data opcode means; `None` for other
/// opcodes and for data requests whose extras, key or value are malformed (those are
/// answered "Invalid arguments" by the binary executor).
fn data_request<'a>(request: &BinaryRequest<'a>) -> Option<Request<'a>> {
    use opcode::*;
    let BinaryRequest {
        opcode,
        extras,
        key,
        value,
        opaque,
        cas,
    } = *request;
    let reply = ReplyStyle::Binary { opcode, opaque };
    let compare_cas = (cas != 0).then_some(cas);
    if key.is_empty() {
        return None;
    }
    Some(match opcode {
        GET | GETQ | GETK | GETKQ if extras.is_empty() && value.is_empty() => get(key, None, reply),
        GAT | GATQ | GATK | GATKQ if extras.len() == 4 => {
            get(key, Some(be_exptime(extras, 0)), reply)
        }
        TOUCH if extras.len() == 4 => Request::Touch {
            key,
            exptime: be_exptime(extras, 0),
            reply,
        },
        DELETE | DELETEQ if extras.is_empty() => Request::Delete {
            key: Cow::Borrowed(key),
            compare_cas,
            invalidate: false,
            new_ttl: None,
            reply,
        },
        INCREMENT | INCREMENTQ | DECREMENT | DECREMENTQ
            if extras.len() == 20 && value.is_empty() =>
        {
            let expiration = be_u32(extras, 16);
            Request::Arithmetic {
                incr: matches!(opcode, INCREMENT | INCREMENTQ),
                key: Cow::Borrowed(key),
                delta: be_u64(extras, 0),
                compare_cas,
                // An expiration of all ones means "do not create".
                auto_create: (expiration != u32::MAX)
                    .then(|| (Exptime::unsigned(expiration), be_u64(extras, 8))),
                new_ttl: None,
                reply,
            }
        }
        _ => {
            let mode = store_mode(opcode)?;
            let (flags, exptime) = match (mode, extras.len()) {
                (StoreMode::Append | StoreMode::Prepend, 0) => (0, Exptime::NEVER),
                (StoreMode::Set | StoreMode::Add | StoreMode::Replace, 8) => {
                    (be_u32(extras, 0), be_exptime(extras, 4))
                }
                _ => return None,
            };
            Request::Store {
                mode,
                compare_cas,
                key: Cow::Borrowed(key),
                flags,
                exptime,
                data: value,
                invalidate: false,
                reply,
            }
        }
    })
}

/// A binary get of one key (CAS is always in the response header).
fn get<'a>(key: &'a [u8], touch: Option<Exptime>, reply: ReplyStyle<'a>) -> Request<'a> {
    Request::Get {
        keys: GetKeys::One(Cow::Borrowed(key)),
        with_cas: true,
        touch,
        vivify: None,
        recache: None,
        bump: true,
        reply,
    }
}

/// Appends a response header and body pieces. The arguments mirror the header fields.
#[allow(clippy::too_many_arguments)]
pub fn write_response(
    out: &mut ReplyBuffer,
    opcode: u8,
    status: Status,
    opaque: u32,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value_len: usize,
) {
    let mut header = [0u8; HEADER_SIZE];
    header[0] = RESPONSE_MAGIC;
    header[1] = opcode;
    header[2..4].copy_from_slice(&(key.len() as u16).to_be_bytes());
    header[4] = extras.len() as u8;
    header[6..8].copy_from_slice(&(status as u16).to_be_bytes());
    let body = extras.len() + key.len() + value_len;
    header[8..12].copy_from_slice(&(body as u32).to_be_bytes());
    header[12..16].copy_from_slice(&opaque.to_be_bytes());
    header[16..24].copy_from_slice(&cas.to_be_bytes());
    out.push(&header);
    out.push(extras);
    out.push(key);
}

/// The store mode of a storage opcode (`None` for any other opcode).
pub fn store_mode(opcode: u8) -> Option<StoreMode> {
    use opcode::*;
    Some(match opcode {
        SET | SETQ => StoreMode::Set,
        ADD | ADDQ => StoreMode::Add,
        REPLACE | REPLACEQ => StoreMode::Replace,
        APPEND | APPENDQ => StoreMode::Append,
        PREPEND | PREPENDQ => StoreMode::Prepend,
        _ => return None,
    })
}

/// True for the quiet opcodes: they answer success (and a get's miss) with nothing.
fn is_quiet(opcode: u8) -> bool {
    use opcode::*;
    matches!(
        opcode,
        GETQ | GETKQ
            | SETQ
            | ADDQ
            | REPLACEQ
            | DELETEQ
            | INCREMENTQ
            | DECREMENTQ
            | QUITQ
            | FLUSHQ
            | APPENDQ
            | PREPENDQ
            | GATQ
            | GATKQ
    )
}

/// True for the gets that echo the key (GETK, GETKQ, GATK, GATKQ).
fn returns_key(opcode: u8) -> bool {
    use opcode::*;
    matches!(opcode, GETK | GETKQ | GATK | GATKQ)
}

/// An error response carrying memcached's message as its body.
pub fn compose_error(out: &mut ReplyBuffer, opcode: u8, status: Status, opaque: u32) {
    let message = status.message();
    write_response(out, opcode, status, opaque, 0, &[], &[], message.len());
    out.push(message);
}

/// A get's hit: the flags as extras, the key for the K variants, the value.
pub fn compose_hit(out: &mut ReplyBuffer, opcode: u8, opaque: u32, hit: &Hit<'_>) {
    let key: &[u8] = if returns_key(opcode) { hit.key } else { &[] };
    let flags = hit.flags.to_be_bytes();
    let len = hit.value.len();
    write_response(out, opcode, Status::Ok, opaque, hit.cas, &flags, key, len);
    hit.value.push_to(out);
}

/// The binary protocol's answer to `opcode` (asked for `key`) that came to `response`,
/// with memcached's status codes and quiet-variant rules.
pub fn compose(out: &mut ReplyBuffer, opcode: u8, opaque: u32, key: &[u8], response: Response) {
    use opcode::*;
    let quiet = is_quiet(opcode);
    let status = match response {
        Response::Stored { cas } if !quiet => {
            return write_response(out, opcode, Status::Ok, opaque, cas, &[], &[], 0);
        }
        Response::Deleted | Response::Touched if !quiet => {
            return write_response(out, opcode, Status::Ok, opaque, 0, &[], &[], 0);
        }
        Response::Number { value, cas, .. } if !quiet => {
            write_response(out, opcode, Status::Ok, opaque, cas, &[], &[], 8);
            return out.push(&value.to_be_bytes());
        }
        Response::Stored { .. }
        | Response::Deleted
        | Response::Touched
        | Response::Number { .. } => return,
        Response::NotFound if matches!(opcode, GETQ | GETKQ | GATQ | GATKQ) => return,
        Response::NotFound if returns_key(opcode) => {
            return write_response(out, opcode, Status::NotFound, opaque, 0, &[], key, 0);
        }
        Response::NotFound => Status::NotFound,
        Response::NotStored => match opcode {
            ADD | ADDQ => Status::Exists,
            REPLACE | REPLACEQ => Status::NotFound,
            _ => Status::NotStored,
        },
        Response::Exists => Status::Exists,
        Response::Error(ProtocolError::TooLarge) => Status::TooLarge,
        Response::Error(ProtocolError::NonNumericValue) => Status::NonNumeric,
        Response::Error(ProtocolError::OutOfMemory | ProtocolError::OutOfMemoryStoring) => {
            Status::OutOfMemory
        }
        Response::Error(_) => Status::InvalidArguments,
    };
    compose_error(out, opcode, status, opaque);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: u8, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
        let mut bytes = vec![REQUEST_MAGIC, opcode];
        bytes.extend_from_slice(&(key.len() as u16).to_be_bytes());
        bytes.push(extras.len() as u8);
        bytes.extend_from_slice(&[0, 0, 0]);
        bytes.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
        bytes.extend_from_slice(&7u32.to_be_bytes());
        bytes.extend_from_slice(&0u64.to_be_bytes());
        bytes.extend_from_slice(extras);
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        bytes
    }

    #[test]
    fn frames_a_set() {
        let bytes = header(opcode::SET, b"key", &[0; 8], b"value");
        let Frame::Request {
            request, consumed, ..
        } = parse_binary(&bytes, &Limits::default())
        else {
            panic!()
        };
        assert_eq!(consumed, bytes.len());
        assert_eq!(
            request,
            Request::Store {
                mode: StoreMode::Set,
                compare_cas: None,
                key: Cow::Borrowed(b"key"),
                flags: 0,
                exptime: Exptime::NEVER,
                data: b"value",
                invalidate: false,
                reply: ReplyStyle::Binary {
                    opcode: opcode::SET,
                    opaque: 7
                },
            }
        );
        assert!(matches!(
            parse_binary(&bytes[..30], &Limits::default()),
            Frame::Incomplete { needed: 40 }
        ));
    }

    #[test]
    fn exptime_fields_read_unsigned() {
        let far = 0xFFFF_FFFDu32;
        let extras = [0u32.to_be_bytes(), far.to_be_bytes()].concat();
        let bytes = header(opcode::SET, b"k", &extras, b"v");
        let Frame::Request {
            request: Request::Store { exptime, .. },
            ..
        } = parse_binary(&bytes, &Limits::default())
        else {
            panic!()
        };
        assert_eq!(exptime.seconds(), 4_294_967_293);
        let incr = |expiration: u32| {
            let extras = [
                &1u64.to_be_bytes()[..],
                &0u64.to_be_bytes(),
                &expiration.to_be_bytes(),
            ]
            .concat();
            let bytes = header(opcode::INCREMENT, b"n", &extras, b"");
            let Frame::Request {
                request: Request::Arithmetic { auto_create, .. },
                ..
            } = parse_binary(&bytes, &Limits::default())
            else {
                panic!()
            };
            auto_create.map(|(exptime, _)| exptime.seconds())
        };
        assert_eq!(incr(u32::MAX), None, "all ones: do not create");
        assert_eq!(incr(0x8000_0000), Some(2_147_483_648));
    }

    fn composed(opcode: u8, response: Response) -> Vec<u8> {
        let mut out = ReplyBuffer::new();
        compose(&mut out, opcode, 3, b"k", response);
        out.to_vec()
    }

    #[test]
    fn quiet_opcodes_answer_only_failures() {
        assert!(composed(opcode::SETQ, Response::Stored { cas: 1 }).is_empty());
        assert!(composed(opcode::GETQ, Response::NotFound).is_empty());
        // A quiet delete of a missing key still reports it, as memcached does.
        let reply = composed(opcode::DELETEQ, Response::NotFound);
        assert_eq!(&reply[6..8], &(Status::NotFound as u16).to_be_bytes());
        assert_eq!(&reply[HEADER_SIZE..], b"Not found");
    }

    #[test]
    fn not_stored_reads_as_memcacheds_status_per_opcode() {
        let status = |opcode| {
            let reply = composed(opcode, Response::NotStored);
            u16::from_be_bytes([reply[6], reply[7]])
        };
        assert_eq!(status(opcode::ADD), Status::Exists as u16);
        assert_eq!(status(opcode::REPLACE), Status::NotFound as u16);
        assert_eq!(status(opcode::APPEND), Status::NotStored as u16);
        // GETK's miss carries the key and no message.
        let reply = composed(opcode::GETK, Response::NotFound);
        assert_eq!(&reply[HEADER_SIZE..], b"k");
    }

    #[test]
    fn bad_magic_closes_and_oversized_values_are_swallowed() {
        assert_eq!(parse_binary(&[0x42; 24], &Limits::default()), Frame::Close);
        let mut bytes = header(opcode::SET, b"k", &[0; 8], b"");
        bytes[8..12].copy_from_slice(&(9u32 + 2_000_000).to_be_bytes());
        let Frame::Request { swallow, .. } = parse_binary(&bytes, &Limits::default()) else {
            panic!()
        };
        assert_eq!(swallow, 2_000_000);
    }
}
