//! memcached's text protocol: parsing requests from bytes and the reply vocabulary.
//! This layer knows nothing of sockets or storage.

pub mod binary;
pub mod meta;
pub mod numbers;
pub mod parse;
pub mod reply;
pub mod request;
pub mod response;
mod tokens;

pub use parse::{Frame, KEY_MAX_LENGTH, Limits, parse};
pub use reply::{ProtocolError, Reply, ReplyBuffer};
pub use request::{Keys, Request, ShutdownMode, StatsGroup, StoreMode};
pub use response::{CRLF, Hit, Response, Value};
