//! Parsed requests, and what every parser shares (`Frame`, `Limits`, the key limit): the
//! leaf the text, meta and binary parsers and the composers build on, importing none of
//! them. Requests borrow keys and values from the connection's read buffer, so parsing
//! allocates nothing (a meta key sent in base64 is the one owned exception).

use super::reply::ProtocolError;
use super::tokens::words;
use crate::limits::memcached_item_size;
use std::borrow::Cow;

/// Longest key memcached accepts.
pub const KEY_MAX_LENGTH: usize = 250;

/// Per-server parser limits, fixed at startup.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `-I`: largest item, header included, as memcached counts it.
    pub item_size_max: usize,
    /// Largest get/gets line before the connection is closed.
    pub max_multiget_line: usize,
    /// CAS enabled (memcached counts 8 more header bytes per item then).
    pub cas_enabled: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            item_size_max: 1024 * 1024,
            max_multiget_line: 16 * 1024 * 1024,
            cas_enabled: true,
        }
    }
}

impl Limits {
    /// memcached's `item_size_ok`: 48-byte header, 8 for CAS, key + NUL, value + CRLF.
    pub fn fits(&self, key_len: usize, value_len: usize) -> bool {
        memcached_item_size(key_len, value_len, self.cas_enabled) <= self.item_size_max
    }
}

/// Result of looking at the front of the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Not a whole request yet; at least `needed` bytes in total are required.
    Incomplete {
        /// Total buffer length the request needs (a hint for reserving).
        needed: usize,
    },
    /// memcached would drop this connection (over-long line, an HTTP request).
    Close,
    /// A request taking `consumed` bytes, then `swallow` more bytes to discard.
    Request {
        /// The request.
        request: Request<'a>,
        /// Bytes of the buffer it used.
        consumed: usize,
        /// Data bytes after it to skip without buffering (a refused value).
        swallow: usize,
    },
}

/// One framed binary request, borrowing its body from the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryRequest<'a> {
    /// Opcode.
    pub opcode: u8,
    /// Extras section.
    pub extras: &'a [u8],
    /// Key.
    pub key: &'a [u8],
    /// Value.
    pub value: &'a [u8],
    /// Echoed in the response.
    pub opaque: u32,
    /// CAS to compare (0 = none).
    pub cas: u64,
}

/// A client's expiration time as its protocol sent it, widened to memcached's `time_t`
/// so that both readings survive: the text and meta protocols send a signed 32-bit
/// number (negative = already expired), the binary protocol an unsigned 32-bit field
/// (0xFFFFFFFD is a Unix time far in the future, not -3). The store's clock turns it
/// into a deadline, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Exptime(i64);

impl Exptime {
    /// No expiry.
    pub const NEVER: Exptime = Exptime(0);

    /// A text or meta exptime (`strtol` into an `int32_t`).
    pub fn signed(seconds: i32) -> Self {
        Exptime(i64::from(seconds))
    }

    /// A binary protocol field (a `uint32_t`, never negative).
    pub fn unsigned(seconds: u32) -> Self {
        Exptime(i64::from(seconds))
    }

    /// The value as memcached's `realtime()` reads it.
    pub fn seconds(self) -> i64 {
        self.0
    }
}

/// How a store treats an existing item: the one vocabulary of text verbs, meta `ms M`
/// modes and binary opcodes (a CAS comparison is a separate `compare_cas`, as all three
/// protocols can combine it with a mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `set`, `ms MS`, SET: store unconditionally.
    Set,
    /// `add`, `ms ME`, ADD: only if the key is absent.
    Add,
    /// `replace`, `ms MR`, REPLACE: only if the key is present.
    Replace,
    /// `append`, `ms MA`, APPEND: add bytes after the existing value.
    Append,
    /// `prepend`, `ms MP`, PREPEND: add bytes before the existing value.
    Prepend,
}

/// The flags of a meta request exactly as sent (the part of the line after the key, or
/// after an `ms` data length). Kept as a slice of the line, so a reply style stays two
/// words to copy; the return flags are echoed in request order by walking it again.
/// `ms` is marked: its `c` is echoed on every code (`EX c0`), where `md` echoes none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaFlags<'a> {
    /// The flags as sent.
    pub words: &'a [u8],
    /// The flags of an `ms`.
    pub of_set: bool,
}

impl<'a> MetaFlags<'a> {
    /// Flags in request order, each with the token glued to it (`T30` gives `30`).
    pub fn iter(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        words(self.words).map(|word| (word[0], &word[1..]))
    }

    /// True if the flag was given.
    pub fn has(&self, flag: u8) -> bool {
        self.iter().any(|(f, _)| f == flag)
    }
}

/// How the answer to a data request is composed: the one thing about a store, delete,
/// incr/decr or touch that depends on the protocol that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStyle<'a> {
    /// The text protocol; `noreply` silences every reply, errors included.
    Text {
        /// Suppress the reply.
        noreply: bool,
    },
    /// The binary protocol: the opcode (which also says quiet and key-returning) and
    /// the opaque echoed in the response.
    Binary {
        /// Request opcode.
        opcode: u8,
        /// Echoed.
        opaque: u32,
    },
    /// A meta command: its flags say which return flags to echo (`k`, `O`, `c`, `t`,
    /// `v`, ...) and whether `q` silences success.
    Meta {
        /// The flags as sent.
        flags: MetaFlags<'a>,
        /// The key exactly as sent (echoed by `k`, and by `me`, before base64 decoding).
        raw_key: &'a [u8],
    },
}

/// The keys of a get-family line, iterated lazily (a multiget may name thousands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a>(pub &'a [u8]);

impl<'a> Keys<'a> {
    /// Iterates the space-separated keys.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        words(self.0)
    }

    /// Where `key` (one of this list's keys) starts, as a byte offset into the list:
    /// a get answered in windows resumes there.
    pub fn offset_of(&self, key: &[u8]) -> usize {
        key.as_ptr() as usize - self.0.as_ptr() as usize
    }
}

/// The keys a get names: a text line's list, or the one key of a binary get or `mg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetKeys<'a> {
    /// A text get's space-separated keys (a multiget answered in reply windows).
    List(Keys<'a>),
    /// One key, which may hold spaces (binary) or be base64-decoded (`mg b`).
    One(Cow<'a, [u8]>),
}

/// What `stats` was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsGroup<'a> {
    /// `stats`
    General,
    /// `stats reset`
    Reset,
    /// `stats settings`
    Settings,
    /// `stats items`
    Items,
    /// `stats slabs`
    Slabs,
    /// `stats sizes`
    Sizes,
    /// `stats conns`
    Conns,
    /// `stats detail <on|off|dump>` (argument may be missing or wrong).
    Detail(Option<&'a [u8]>),
    /// `stats cachedump <class> <limit>`
    CacheDump {
        /// Slab class id.
        class: u32,
        /// At most this many items (0 = all).
        limit: u32,
    },
    /// A malformed group request, answered with this error.
    Invalid(ProtocolError),
    /// Any other argument: `ERROR`.
    Unknown,
}

/// What `shutdown` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// `shutdown`: stop now.
    Immediate,
    /// `shutdown graceful`: stop after a clean save.
    Graceful,
    /// Anything else.
    Invalid,
}

/// The classes an `lru_crawler crawl|metadump` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassList {
    /// `all`.
    All,
    /// `hash`: metadump walks the hash table; memcached's crawl refuses it.
    Hash,
    /// Comma-separated 1-based ids (bit n set for id n); empty when the list named none.
    Ids(u64),
    /// An id that is not a number from 1 to 63 (`BADCLASS`).
    Invalid,
}

/// An `lru_crawler` sub-command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrawlerCommand {
    /// `lru_crawler enable`.
    Enable,
    /// `lru_crawler disable`.
    Disable,
    /// `lru_crawler sleep <microseconds>` (at most one second).
    Sleep(u32),
    /// `lru_crawler tocrawl <items>`.
    Tocrawl(u32),
    /// `lru_crawler crawl <ids|all>`: reclaim the expired items of those classes now.
    Crawl(ClassList),
    /// `lru_crawler metadump <ids|all|hash>`: every live key of those classes with its
    /// metadata.
    Metadump(ClassList),
}

/// One parsed request. The data requests (stores, gets, touch, delete, incr/decr) are
/// protocol-neutral whether text, meta or binary asked, with the `ReplyStyle` to answer
/// in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// A get, whatever protocol asked: text `get`/`gets`/`gat`/`gats` (a key list),
    /// binary GET/GETK/GAT/GATK and their quiet forms, `mg` (one key each).
    Get {
        /// The keys to fetch.
        keys: GetKeys<'a>,
        /// `gets`/`gats`: include CAS values (binary and `mg` always have them).
        with_cas: bool,
        /// `gat`, GAT, `mg T`: set this new client exptime.
        touch: Option<Exptime>,
        /// `mg N`: create a missing item (empty, its recache right to this caller) with
        /// this client exptime. `None` for text and binary.
        vivify: Option<Exptime>,
        /// `mg R`: win the recache right when fewer seconds of TTL remain. `None` for
        /// text and binary.
        recache: Option<Exptime>,
        /// False under `mg u`: leave the LRU position and access time alone.
        bump: bool,
        /// How to answer.
        reply: ReplyStyle<'a>,
    },
    /// A store with its value: text set/add/replace/append/prepend/cas, `ms`, binary
    /// SET/ADD/REPLACE/APPEND/PREPEND (and their quiet forms).
    Store {
        /// The mode (`cas` is `Set` with `compare_cas`).
        mode: StoreMode,
        /// `cas`, `ms C`: store only if the item's CAS is still this one.
        compare_cas: Option<u64>,
        /// Key (at most 250 bytes); owned only when `ms b` sent it in base64.
        key: Cow<'a, [u8]>,
        /// Client flags.
        flags: u32,
        /// Client exptime.
        exptime: Exptime,
        /// The value, exactly as long as announced.
        data: &'a [u8],
        /// `ms I`: an older CAS is accepted and the new item is marked stale.
        invalidate: bool,
        /// How to answer.
        reply: ReplyStyle<'a>,
    },
    /// A store whose value exceeds the item size limit (text, meta or binary). Its data
    /// is swallowed by the connection; a plain set (and any `ms`) also removes the old
    /// value.
    StoreTooLarge {
        /// The mode.
        mode: StoreMode,
        /// `cas`: a failed `cas` leaves the old value alone.
        compare_cas: Option<u64>,
        /// Key.
        key: Cow<'a, [u8]>,
        /// How to answer.
        reply: ReplyStyle<'a>,
    },
    /// `touch`, binary TOUCH.
    Touch {
        /// Key.
        key: &'a [u8],
        /// Client exptime.
        exptime: Exptime,
        /// How to answer.
        reply: ReplyStyle<'a>,
    },
    /// `delete`, `md`, binary DELETE.
    Delete {
        /// Key.
        key: Cow<'a, [u8]>,
        /// Only if the item's CAS is still this one (binary, `md C`).
        compare_cas: Option<u64>,
        /// `md I`: mark the item stale instead of removing it.
        invalidate: bool,
        /// `md T`: the stale item's new client exptime (with `invalidate`).
        new_ttl: Option<Exptime>,
        /// How to answer.
        reply: ReplyStyle<'a>,
    },
    /// `incr`/`decr`, `ma`, binary INCREMENT/DECREMENT.
    Arithmetic {
        /// incr (true) or decr.
        incr: bool,
        /// Key.
        key: Cow<'a, [u8]>,
        /// Unsigned delta.
        delta: u64,
        /// Only if the item's CAS is still this one (binary, `ma C`).
        compare_cas: Option<u64>,
        /// Create a missing item with this (client exptime, initial value) (binary,
        /// `ma N J`).
        auto_create: Option<(Exptime, u64)>,
        /// `ma T`: set this new client exptime.
        new_ttl: Option<Exptime>,
        /// How to answer.
        reply: ReplyStyle<'a>,
    },
    /// `me`: one line of an item's metadata.
    MetaDebug {
        /// Key.
        key: Cow<'a, [u8]>,
        /// The key as sent (echoed).
        raw_key: &'a [u8],
    },
    /// `flush_all [delay]`
    FlushAll {
        /// Delay as a client exptime; `None` = now.
        delay: Option<Exptime>,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `version`
    Version,
    /// `verbosity <level>`
    Verbosity {
        /// New level.
        level: u32,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `quit`
    Quit,
    /// `shutdown [graceful]` (refused on execution unless `-A`).
    Shutdown(ShutdownMode),
    /// `cache_memlimit <MB>`
    CacheMemlimit {
        /// New limit in megabytes; `None` when not a number.
        megabytes: Option<u32>,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `stats [group]`
    Stats(StatsGroup<'a>),
    /// `lru_crawler ...`.
    LruCrawler(CrawlerCommand),
    /// `slabs reassign <source> <destination>`: move one page between slab classes.
    SlabsReassign {
        /// Class giving the page (-1: any with a page to spare; 0: the spare pool).
        source: i32,
        /// Class receiving it (0: the spare pool).
        destination: i32,
    },
    /// `slabs automove <0|1|2>`.
    SlabsAutomove {
        /// The level; above 2 is answered `ERROR`.
        level: u32,
        /// Suppress the reply.
        noreply: bool,
    },

    /// `refresh_certs`: reload the TLS certificates.
    RefreshCerts,
    /// `watch [kinds...]`: turn the connection into a log watcher.
    Watch(crate::watch::Kinds),
    /// `mn`: answered with `MN`.
    MetaNoop,
    /// A binary request that is not a data request (STAT, FLUSH, SASL, ...), or a data
    /// request whose extras, key or value are malformed.
    Binary(BinaryRequest<'a>),
    /// A malformed binary header: answered with "Invalid arguments", then closed.
    BinaryInvalid {
        /// Opcode.
        opcode: u8,
        /// Echoed.
        opaque: u32,
    },
    /// A request answered with an error.
    Invalid {
        /// What to answer.
        error: ProtocolError,
        /// Whether `noreply` was seen (memcached then answers nothing).
        noreply: bool,
    },
}

impl Request<'_> {
    /// The opcode and opaque of a binary data request: before SASL authentication it
    /// is refused with "Auth failure." like any other framed binary request.
    pub fn binary_data(&self) -> Option<(u8, u32)> {
        match *self {
            Request::Get {
                reply: ReplyStyle::Binary { opcode, opaque },
                ..
            }
            | Request::Store {
                reply: ReplyStyle::Binary { opcode, opaque },
                ..
            }
            | Request::Touch {
                reply: ReplyStyle::Binary { opcode, opaque },
                ..
            }
            | Request::Delete {
                reply: ReplyStyle::Binary { opcode, opaque },
                ..
            }
            | Request::Arithmetic {
                reply: ReplyStyle::Binary { opcode, opaque },
                ..
            } => Some((opcode, opaque)),
            _ => None,
        }
    }
}
