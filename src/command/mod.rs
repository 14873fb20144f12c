//! Command execution: one `match` from a parsed `Request` to the store and back to reply
//! bytes. Each verb family has its own file; none of them touches a socket.

mod admin;
mod arithmetic;
pub mod binary;
mod delete;
mod meta;
mod retrieval;
pub mod stats;
mod storage;
mod touch;

use crate::config::Settings;
use crate::protocol::{ProtocolError, ReplyBuffer, Request};
use crate::stats::{ConnCounters, ServerStats};
use crate::store::Store;

/// What the connection should do after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next request.
    Continue,
    /// Close this connection (quit).
    Close,
    /// Stop the server (`shutdown`, only with `-A`).
    Shutdown {
        /// `shutdown graceful`.
        graceful: bool,
    },
    /// The reply window is full: the get answered the keys before byte `resume_at` of
    /// its key list. Write the replies, then run it again on the rest.
    MoreKeys {
        /// Offset of the first unanswered key in the request's key list.
        resume_at: usize,
    },
}

/// Everything a command may read or change, borrowed from the server and connection.
pub struct Context<'a> {
    /// The item store.
    pub store: &'a Store,
    /// Server settings.
    pub settings: &'a Settings,
    /// Server-wide counters.
    pub stats: &'a ServerStats,
    /// This connection's not-yet-folded counters.
    pub counters: &'a mut ConnCounters,
    /// TLS state, for `refresh_certs` and the `ssl_*` stats.
    pub tls: Option<&'a crate::server::tls::TlsState>,
    /// Reply bytes this pass may queue before a multiget pauses or fails.
    pub reply_window: crate::buffers::ReplyWindow,
}

/// Executes one request, appending its reply (if any) to `out`.
pub fn execute(request: &Request<'_>, ctx: &mut Context<'_>, out: &mut ReplyBuffer) -> Flow {
    match *request {
        Request::Get { keys, with_cas } => retrieval::get(ctx, out, keys, with_cas, None),
        Request::GetAndTouch {
            exptime,
            keys,
            with_cas,
        } => retrieval::get(ctx, out, keys, with_cas, Some(exptime)),
        Request::Store {
            verb,
            key,
            flags,
            exptime,
            data,
            noreply,
        } => storage::store(ctx, out, verb, key, flags, exptime, data, noreply),
        Request::StoreTooLarge { verb, key, noreply } => {
            storage::too_large(ctx, out, verb, key, noreply)
        }
        Request::Touch {
            key,
            exptime,
            noreply,
        } => touch::touch(ctx, out, key, exptime, noreply),
        Request::Delete { key, noreply } => delete::delete(ctx, out, key, noreply),
        Request::Arithmetic {
            incr,
            key,
            delta,
            noreply,
        } => arithmetic::arithmetic(ctx, out, incr, key, delta, noreply),
        Request::FlushAll { delay, noreply } => admin::flush_all(ctx, out, delay, noreply),
        Request::Version => admin::version(out),
        Request::Verbosity { level, noreply } => admin::verbosity(ctx, out, level, noreply),
        Request::Quit => Flow::Close,
        Request::Shutdown(mode) => admin::shutdown(ctx, out, mode),
        Request::CacheMemlimit { megabytes, noreply } => {
            admin::cache_memlimit(ctx, out, megabytes, noreply)
        }
        Request::Stats(group) => stats::stats(ctx, out, group),
        Request::LruMetadump => admin::metadump(ctx, out),
        Request::LruCrawl => admin::crawl_now(ctx, out),
        Request::RefreshCerts => admin::refresh_certs(ctx, out),
        Request::Meta(ref request) => meta::meta(ctx, out, request),
        Request::Binary(ref request) => binary::execute(ctx, out, request),
        Request::BinaryTooLarge {
            opcode,
            opaque,
            key,
        } => {
            ctx.counters.store_too_large += 1;
            if matches!(
                opcode,
                crate::protocol::binary::opcode::SET | crate::protocol::binary::opcode::SETQ
            ) {
                ctx.store.discard(key);
            }
            binary::error(
                out,
                opcode,
                crate::protocol::binary::Status::TooLarge,
                opaque,
            );
            Flow::Continue
        }
        Request::BinaryInvalid { opcode, opaque } => binary::invalid(out, opcode, opaque),
        Request::MetaNoop => {
            out.push(b"MN\r\n");
            Flow::Continue
        }
        Request::Invalid { error, noreply } => {
            reply_error(out, error, noreply);
            Flow::Continue
        }
    }
}

/// A `stats` group as (name, value) pairs for the binary protocol's STAT, rendered from
/// the same typed figures as the text lines. `None` for a group that answers otherwise.
pub fn stats_pairs(
    store: &Store,
    settings: &Settings,
    stats: &ServerStats,
    tls: Option<&crate::server::tls::TlsState>,
    group: crate::protocol::StatsGroup<'_>,
) -> Option<Vec<(String, String)>> {
    stats::pairs(store, settings, stats, tls, group)
}

/// Appends an error unless `noreply` was given (memcached suppresses errors too).
fn reply_error(out: &mut ReplyBuffer, error: ProtocolError, noreply: bool) {
    if !noreply {
        out.error(error);
    }
}

/// Appends a status reply unless `noreply` was given.
fn reply(out: &mut ReplyBuffer, reply: crate::protocol::Reply, noreply: bool) {
    if !noreply {
        out.reply(reply);
    }
}

#[cfg(test)]
mod tests;
