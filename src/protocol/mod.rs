//! memcached's text, meta and binary protocols: parsing requests from bytes, and
//! composing typed responses (`response::Response`) into each protocol's reply bytes.
//! Every wire string of a reply lives in this module (the `stats` groups aside, still
//! rendered by `command/stats.rs`). This layer knows nothing of sockets or storage.
//!
//! The modules form a tree: `tokens` and `reply` at the bottom; `request` (the neutral
//! requests, `Frame`, `Limits`) and `response` on them; the parsers (`parse`, which hands
//! meta lines to `meta`, and `binary`) and the composers (`meta`, `binary`, `compose`)
//! above; no module imports one above it.

pub mod binary;
pub mod compose;
pub mod meta;
pub mod parse;
pub mod reply;
pub mod request;
pub mod response;
mod tokens;

pub use parse::{parse, stats_group, text_get};
pub use reply::{ProtocolError, Reply, ReplyBuffer};
pub use request::{
    BinaryRequest, ClassList, CrawlerCommand, Exptime, Frame, GetKeys, KEY_MAX_LENGTH, Keys,
    Limits, MetaFlags, ReplyStyle, Request, ShutdownMode, StatsGroup, StoreMode,
};
pub use response::{CRLF, Hit, Response, Value};
