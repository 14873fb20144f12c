//! The status lines and errors of memcached's text protocol, defined once, and the
//! buffer replies are composed into. The meta and binary vocabularies live beside their
//! parsers (`meta.rs`, `binary.rs`); outside `protocol` only `command/stats.rs` spells
//! reply text.

use super::request::KEY_MAX_LENGTH;
use crate::numbers::{Decimal, put_spaced_decimal_before};
use bytes::{Bytes, BytesMut};

/// Status lines of successful (or unsurprising) outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The item was stored.
    Stored,
    /// add/replace/append/prepend condition not met.
    NotStored,
    /// cas: the item changed since it was read.
    Exists,
    /// No such item.
    NotFound,
    /// delete succeeded.
    Deleted,
    /// touch succeeded.
    Touched,
    /// flush_all, verbosity, cache_memlimit.
    Ok,
    /// End of a get or stats listing.
    End,
    /// stats reset.
    Reset,
    /// refresh_certs without TLS.
    TlsNotEnabled,
    /// slabs reassign: a class id outside the slab classes.
    ReassignBadClass,
    /// slabs reassign: the source has fewer than two pages.
    ReassignNoSpare,
    /// slabs reassign: source and destination are the same.
    ReassignSame,
    /// lru_crawler crawl/metadump: a class id that is not 1 to 63.
    CrawlerBadClass,
    /// lru_crawler crawl/metadump: the list named no class.
    CrawlerNotStarted,
    /// lru_crawler crawl/metadump while a crawl runs.
    CrawlerBusy,
}

impl Reply {
    /// The reply line including CRLF.
    pub fn wire(self) -> &'static [u8] {
        match self {
            Reply::Stored => b"STORED\r\n",
            Reply::NotStored => b"NOT_STORED\r\n",
            Reply::Exists => b"EXISTS\r\n",
            Reply::NotFound => b"NOT_FOUND\r\n",
            Reply::Deleted => b"DELETED\r\n",
            Reply::Touched => b"TOUCHED\r\n",
            Reply::Ok => b"OK\r\n",
            Reply::End => b"END\r\n",
            Reply::Reset => b"RESET\r\n",
            Reply::TlsNotEnabled => b"Error TLS not enabled\r\n",
            Reply::ReassignBadClass => b"BADCLASS invalid src or dst class id\r\n",
            Reply::ReassignNoSpare => b"NOSPARE source class has no spare pages\r\n",
            Reply::ReassignSame => b"SAME src and dst class are identical\r\n",
            Reply::CrawlerBadClass => b"BADCLASS invalid class id\r\n",
            Reply::CrawlerNotStarted => b"NOTSTARTED no items to crawl\r\n",
            Reply::CrawlerBusy => b"BUSY currently processing crawler request\r\n",
        }
    }
}

/// Every error a client can be sent, with memcached's exact text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// Unknown command, wrong token count, empty line.
    UnknownCommand,
    /// A malformed token (key too long, bad number in a storage line, ...).
    BadFormat,
    /// The data block was not followed by CRLF.
    BadDataChunk,
    /// exptime of touch/gat/flush_all is not a number.
    InvalidExptime,
    /// incr/decr delta is not an unsigned 64-bit number.
    InvalidDelta,
    /// delete with an extra argument other than `0`/`noreply`.
    DeleteUsage,
    /// incr/decr on a value that is not a number.
    NonNumericValue,
    /// flush_all while `-F` is given.
    FlushDisabled,
    /// shutdown without `-A`.
    ShutdownDisabled,
    /// shutdown with an unknown mode.
    InvalidShutdownMode,
    /// stats cachedump with too few arguments.
    StatsBadCommandLine,
    /// stats detail with a bad argument.
    StatsDetailUsage,
    /// stats cachedump with a class id beyond the class table.
    IllegalSlabId,
    /// The value exceeds the item size limit (`-I`).
    TooLarge,
    /// No memory for the item and evictions are disabled (`-M`).
    OutOfMemoryStoring,
    /// incr/decr could not store its longer result.
    OutOfMemory,
    /// A get found no memory for its reply (`read_buf_mem_limit` spent).
    OutOfMemoryWritingGet,
    /// The connection limit (`-c`) is reached.
    TooManyConnections,
    /// cache_memlimit below 8 MB.
    MemlimitTooSmall,
    /// cache_memlimit value that looks like bytes rather than megabytes.
    MemlimitNotMegabytes,
    /// Meta: a flag the command does not know.
    InvalidFlag,
    /// Meta: a flag given twice.
    DuplicateFlag,
    /// Meta: a numeric flag token that is not a number.
    BadToken,
    /// md/ma: any flag problem.
    InvalidOrDuplicateFlag,
    /// mg: too many tokens.
    FlagsTooLongGet,
    /// ms/md/ma: too many tokens.
    FlagsTooLong,
    /// Meta: opaque longer than 32 bytes.
    OpaqueTooLong,
    /// Meta: `b` key that is not base64.
    KeyDecode,
    /// ms: unknown mode.
    InvalidSetMode,
    /// ma: unknown mode.
    InvalidArithmeticMode,
    /// Meta: mode token not one character.
    MetaModeLength,
    /// Meta: a `D` token that is not an unsigned 64-bit number.
    MetaDelta,
    /// Meta: a `J` token that is not an unsigned 64-bit number.
    MetaInitial,
    /// `-Y`: the connection has not authenticated.
    Unauthenticated,
    /// `-Y`: wrong credentials.
    AuthenticationFailure,
    /// `watch` after other requests of the same batch were answered.
    WatchPipelined,
    /// `watch` with [`crate::watch::WATCHER_LIMIT`] watchers attached.
    WatcherTooMany,
    /// lru_crawler crawl/metadump while the crawler is disabled.
    CrawlerDisabled,
    /// lru_crawler sleep above one second.
    CrawlerSleepTooLong,
    /// lru_crawler enable while it runs.
    CrawlerAlreadyRunning,
    /// lru_crawler crawl hash (memcached's crawler fails to start on it).
    CrawlerHashCrawl,
}

impl ProtocolError {
    /// The error line including CRLF.
    pub fn wire(self) -> &'static [u8] {
        match self {
            ProtocolError::UnknownCommand => b"ERROR\r\n",
            ProtocolError::WatchPipelined => {
                b"ERROR cannot pipeline other commands before watch\r\n"
            }
            ProtocolError::WatcherTooMany => b"WATCHER_TOO_MANY log watcher limit reached\r\n",
            ProtocolError::BadFormat => b"CLIENT_ERROR bad command line format\r\n",
            ProtocolError::BadDataChunk => b"CLIENT_ERROR bad data chunk\r\n",
            ProtocolError::InvalidExptime => b"CLIENT_ERROR invalid exptime argument\r\n",
            ProtocolError::InvalidDelta => b"CLIENT_ERROR invalid numeric delta argument\r\n",
            ProtocolError::DeleteUsage => {
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
            }
            ProtocolError::NonNumericValue => {
                b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
            }
            ProtocolError::FlushDisabled => b"CLIENT_ERROR flush_all not allowed\r\n",
            ProtocolError::ShutdownDisabled => b"ERROR: shutdown not enabled\r\n",
            ProtocolError::InvalidShutdownMode => b"CLIENT_ERROR invalid shutdown mode\r\n",
            ProtocolError::StatsBadCommandLine => b"CLIENT_ERROR bad command line\r\n",
            ProtocolError::StatsDetailUsage => b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
            ProtocolError::IllegalSlabId => b"CLIENT_ERROR Illegal slab id\r\n",
            ProtocolError::TooLarge => b"SERVER_ERROR object too large for cache\r\n",
            ProtocolError::OutOfMemoryStoring => b"SERVER_ERROR out of memory storing object\r\n",
            ProtocolError::OutOfMemory => b"SERVER_ERROR out of memory\r\n",
            ProtocolError::OutOfMemoryWritingGet => {
                b"SERVER_ERROR out of memory writing get response\r\n"
            }
            ProtocolError::TooManyConnections => b"ERROR Too many open connections\r\n",
            ProtocolError::MemlimitTooSmall => {
                b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
            }
            ProtocolError::MemlimitNotMegabytes => {
                b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"
            }
            ProtocolError::InvalidFlag => b"CLIENT_ERROR invalid flag\r\n",
            ProtocolError::DuplicateFlag => b"CLIENT_ERROR duplicate flag\r\n",
            ProtocolError::BadToken => b"CLIENT_ERROR bad token in command line format\r\n",
            ProtocolError::InvalidOrDuplicateFlag => b"CLIENT_ERROR invalid or duplicate flag\r\n",
            ProtocolError::FlagsTooLongGet => b"CLIENT_ERROR options flags are too long\r\n",
            ProtocolError::FlagsTooLong => b"CLIENT_ERROR options flags too long\r\n",
            ProtocolError::OpaqueTooLong => b"CLIENT_ERROR opaque token too long\r\n",
            ProtocolError::KeyDecode => b"CLIENT_ERROR error decoding key\r\n",
            ProtocolError::InvalidSetMode => b"CLIENT_ERROR invalid mode for ms M token\r\n",
            ProtocolError::InvalidArithmeticMode => b"CLIENT_ERROR invalid mode for ma M token\r\n",
            ProtocolError::MetaModeLength => b"CLIENT_ERROR incorrect length for M token\r\n",
            ProtocolError::MetaDelta => b"CLIENT_ERROR invalid numeric delta value\r\n",
            ProtocolError::MetaInitial => b"CLIENT_ERROR invalid numeric initial value\r\n",
            ProtocolError::Unauthenticated => b"CLIENT_ERROR unauthenticated\r\n",
            ProtocolError::AuthenticationFailure => b"CLIENT_ERROR authentication failure\r\n",
            ProtocolError::CrawlerDisabled => b"CLIENT_ERROR lru crawler disabled\r\n",
            ProtocolError::CrawlerSleepTooLong => {
                b"CLIENT_ERROR sleep must be one second or less\r\n"
            }
            ProtocolError::CrawlerAlreadyRunning => b"ERROR failed to start lru crawler thread\r\n",
            ProtocolError::CrawlerHashCrawl => b"ERROR an unknown error happened\r\n",
        }
    }
}

/// Room for the numbers of a `VALUE` line: three of up to 20 digits, each after a
/// space, and CRLF.
const VALUE_NUMBERS_ROOM: usize = 3 * 21 + 2;

/// Values at least this long are queued by reference instead of copied.
const SHARE_THRESHOLD: usize = 4096;

/// Replies of one batch of requests, written to the socket together.
///
/// Small pieces are appended to one buffer; large shared values are queued as their own
/// `Bytes` so a vectored write sends them without a copy.
#[derive(Debug, Default)]
pub struct ReplyBuffer {
    queued: Vec<Bytes>,
    current: BytesMut,
    queued_len: usize,
}

impl ReplyBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends raw reply bytes.
    #[inline]
    pub fn push(&mut self, bytes: &[u8]) {
        self.current.extend_from_slice(bytes);
    }

    /// Appends a status reply.
    #[inline]
    pub fn reply(&mut self, reply: Reply) {
        self.push(reply.wire());
    }

    /// Appends an error reply.
    #[inline]
    pub fn error(&mut self, error: ProtocolError) {
        self.push(error.wire());
    }

    /// `VERSION <version>`.
    pub fn version(&mut self, version: &str) {
        self.push(b"VERSION ");
        self.push(version.as_bytes());
        self.push(b"\r\n");
    }

    /// `ERROR <message>` for a failure described in words (line breaks become spaces).
    pub fn error_message(&mut self, message: &str) {
        self.push(b"ERROR ");
        self.push(message.replace(['\r', '\n'], " ").as_bytes());
        self.push(b"\r\n");
    }

    /// One line of `lru_crawler metadump`: the key URI-encoded, then its metadata.
    #[allow(clippy::too_many_arguments)]
    pub fn metadump_line(
        &mut self,
        key: &[u8],
        expires: i64,
        accessed: i64,
        cas: u64,
        fetched: bool,
        class: usize,
        size: usize,
    ) {
        self.push(b"key=");
        for &byte in key {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                self.push(&[byte]);
            } else {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                self.push(&[
                    b'%',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 15)],
                ]);
            }
        }
        let fetch = if fetched { "yes" } else { "no" };
        self.push(
            format!(
                " exp={expires} la={accessed} cas={cas} fetch={fetch} cls={class} size={size}\n"
            )
            .as_bytes(),
        );
    }

    /// Appends a decimal number.
    #[inline]
    pub fn number(&mut self, value: u64) {
        self.push(Decimal::new(value).as_bytes());
    }

    /// Appends a shared value, by reference when that saves a real copy.
    pub fn push_shared(&mut self, value: &Bytes) {
        if value.len() < SHARE_THRESHOLD {
            return self.push(value);
        }
        if !self.current.is_empty() {
            let piece = self.current.split().freeze();
            self.queued_len += piece.len();
            self.queued.push(piece);
        }
        self.queued_len += value.len();
        self.queued.push(value.clone());
    }

    /// `VALUE <key> <flags> <bytes>[ <cas>]\r\n`: the numbers composed on the stack, the
    /// whole line appended after one capacity check.
    pub fn value_header(&mut self, key: &[u8], flags: u32, len: usize, cas: Option<u64>) {
        if key.len() > KEY_MAX_LENGTH {
            return self.value_header_in_pieces(key, flags, len, cas);
        }
        let mut numbers = [0u8; VALUE_NUMBERS_ROOM];
        let mut at = VALUE_NUMBERS_ROOM - 2;
        numbers[at..].copy_from_slice(b"\r\n");
        if let Some(cas) = cas {
            at = put_spaced_decimal_before(&mut numbers, at, cas);
        }
        at = put_spaced_decimal_before(&mut numbers, at, len as u64);
        at = put_spaced_decimal_before(&mut numbers, at, u64::from(flags));
        let numbers = &numbers[at..];
        self.current
            .reserve(b"VALUE ".len() + key.len() + numbers.len());
        self.current.extend_from_slice(b"VALUE ");
        self.current.extend_from_slice(key);
        self.current.extend_from_slice(numbers);
    }

    /// [`ReplyBuffer::value_header`] for a key longer than text keys may be.
    fn value_header_in_pieces(&mut self, key: &[u8], flags: u32, len: usize, cas: Option<u64>) {
        self.push(b"VALUE ");
        self.push(key);
        self.push(b" ");
        self.number(u64::from(flags));
        self.push(b" ");
        self.number(len as u64);
        if let Some(cas) = cas {
            self.push(b" ");
            self.number(cas);
        }
        self.push(b"\r\n");
    }

    /// `STAT <name> <value>\r\n`
    pub fn stat(&mut self, name: &str, value: impl std::fmt::Display) {
        use std::fmt::Write;
        let mut line = String::with_capacity(48);
        let _ = write!(line, "STAT {name} {value}\r\n");
        self.push(line.as_bytes());
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.queued_len + self.current.len()
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes everything queued, in order, leaving the buffer empty (its allocation kept).
    pub fn take(&mut self, into: &mut Vec<Bytes>) {
        into.append(&mut self.queued);
        if !self.current.is_empty() {
            into.push(self.current.split().freeze());
        }
        self.queued_len = 0;
    }

    /// `PREFIX <prefix> get <n> hit <n> set <n> del <n>\r\n` (`stats detail dump`).
    pub fn prefix_line(&mut self, prefix: &[u8], [gets, hits, sets, deletes]: [u64; 4]) {
        self.push(b"PREFIX ");
        self.push(prefix);
        for (label, value) in [
            (b" get ".as_slice(), gets),
            (b" hit ", hits),
            (b" set ", sets),
            (b" del ", deletes),
        ] {
            self.push(label);
            self.number(value);
        }
        self.push(b"\r\n");
    }

    /// `ITEM <key> [<size> b; <expires> s]\r\n` (`stats cachedump`).
    pub fn cachedump_line(&mut self, key: &[u8], size: usize, expires: i64) {
        self.push(b"ITEM ");
        self.push(key);
        self.push(b" [");
        self.number(size as u64);
        self.push(b" b; ");
        self.push(expires.to_string().as_bytes());
        self.push(b" s]\r\n");
    }

    /// True while the buffer holds no allocation to compose into (an idle connection's).
    pub fn lacks_storage(&self) -> bool {
        self.current.capacity() == 0
    }

    /// Gives an empty buffer its storage (a pooled allocation), so composing replies does
    /// not grow one from nothing for every request.
    pub fn provide(&mut self, storage: BytesMut) {
        debug_assert!(self.is_empty());
        self.current = storage;
    }

    /// Takes the storage back from an empty buffer (for a pool), leaving it holding no
    /// allocation: a connection with nothing pending holds none.
    pub fn reclaim(&mut self) -> BytesMut {
        debug_assert!(self.is_empty());
        if self.queued.capacity() != 0 {
            self.queued = Vec::new();
        }
        std::mem::take(&mut self.current)
    }

    /// Everything queued when it is one contiguous run (no value was queued by
    /// reference): it can be written straight from the buffer, then [`ReplyBuffer::clear`]ed.
    pub fn contiguous(&self) -> Option<&[u8]> {
        self.queued.is_empty().then_some(&self.current[..])
    }

    /// Forgets everything queued (once written), keeping the allocation.
    pub fn clear(&mut self) {
        self.queued.clear();
        self.queued_len = 0;
        self.current.clear();
    }

    /// Drops everything queued after the first `len` bytes (a UDP reply that outgrew
    /// its window is replaced by an error).
    pub fn truncate(&mut self, len: usize) {
        let mut kept = 0;
        let mut pieces = 0;
        while pieces < self.queued.len() && kept + self.queued[pieces].len() <= len {
            kept += self.queued[pieces].len();
            pieces += 1;
        }
        if pieces < self.queued.len() {
            let mut cut = self.queued[pieces].clone();
            cut.truncate(len - kept);
            self.queued.truncate(pieces);
            self.current.clear();
            if !cut.is_empty() {
                self.current.extend_from_slice(&cut);
            }
            self.queued_len = kept;
        } else {
            self.current.truncate(len - kept);
        }
    }

    /// Everything queued as one contiguous byte string (tests, UDP framing).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.len());
        for piece in &self.queued {
            all.extend_from_slice(piece);
        }
        all.extend_from_slice(&self.current);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_lines_read_as_formatted_text() {
        let long_key = vec![b'k'; KEY_MAX_LENGTH + 10];
        for key in [&b"k"[..], b"key:0000001234", &long_key] {
            for flags in [0, 9, 10, 99, 100, 101, 12345, u32::MAX] {
                for len in [0, 1, 9, 10, 100, 1000, 1 << 20, usize::MAX] {
                    for cas in [None, Some(0), Some(7), Some(10), Some(u64::MAX)] {
                        let mut out = ReplyBuffer::new();
                        out.value_header(key, flags, len, cas);
                        let cas = cas.map(|cas| format!(" {cas}")).unwrap_or_default();
                        let key = String::from_utf8_lossy(key);
                        let expected = format!("VALUE {key} {flags} {len}{cas}\r\n");
                        assert_eq!(out.to_vec(), expected.as_bytes());
                    }
                }
            }
        }
    }

    #[test]
    fn truncate_cuts_across_shared_and_copied_pieces() {
        let shared = Bytes::from(vec![b's'; SHARE_THRESHOLD]);
        for cut in [
            0,
            3,
            5,
            5 + SHARE_THRESHOLD / 2,
            5 + SHARE_THRESHOLD,
            5 + SHARE_THRESHOLD + 2,
        ] {
            let mut out = ReplyBuffer::new();
            out.push(b"head-");
            out.push_shared(&shared);
            out.push(b"tail");
            let whole = out.to_vec();
            out.truncate(cut);
            assert_eq!(out.len(), cut);
            assert_eq!(out.to_vec(), whole[..cut]);
            out.push(b"!");
            assert_eq!(out.to_vec(), [&whole[..cut], b"!"].concat());
        }
    }
}
