//! Command execution: one `match` from a parsed `Request` to the store and back to reply
//! bytes. What the data verbs mean (counters included) is in `core`, once for every
//! protocol; `meta` and `binary` translate their requests into it and compose the typed
//! response with their protocol's composer. Nothing here touches a socket.

mod admin;
pub mod binary;
mod core;
mod meta;
mod retrieval;
mod stats;

use self::core::Origin;
use crate::config::Settings;
use crate::protocol::{ProtocolError, ReplyBuffer, Request, StoreMode};
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
            mode,
            compare_cas,
            key,
            flags,
            exptime,
            data,
            noreply,
        } => {
            let request = core::Store {
                mode,
                key,
                flags,
                exptime,
                data,
                compare_cas,
                invalidate: false,
            };
            core::store(ctx, request, Origin::Text).compose_text(out, noreply);
            Flow::Continue
        }
        Request::StoreTooLarge {
            mode,
            compare_cas,
            key,
            noreply,
        } => {
            let response = core::too_large(ctx, mode, compare_cas.is_some(), key, Origin::Text);
            response.compose_text(out, noreply);
            Flow::Continue
        }
        Request::Touch {
            key,
            exptime,
            noreply,
        } => {
            core::touch(ctx, key, exptime, Origin::Text).compose_text(out, noreply);
            Flow::Continue
        }
        Request::Delete { key, noreply } => {
            core::delete(ctx, key, None, false, None, Origin::Text).compose_text(out, noreply);
            Flow::Continue
        }
        Request::Arithmetic {
            incr,
            key,
            delta,
            noreply,
        } => {
            let request = core::Arith {
                incr,
                delta,
                compare_cas: None,
                auto_create: None,
                new_ttl: None,
            };
            core::arith(ctx, key, request).compose_text(out, noreply);
            Flow::Continue
        }
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
            // Only storage opcodes are refused as too large.
            let mode = crate::protocol::binary::store_mode(opcode).unwrap_or(StoreMode::Set);
            let response = core::too_large(ctx, mode, false, key, Origin::Binary);
            crate::protocol::binary::compose(out, opcode, opaque, key, response);
            Flow::Continue
        }
        Request::BinaryInvalid { opcode, opaque } => binary::invalid(out, opcode, opaque),
        Request::MetaNoop => {
            crate::protocol::meta::compose_noop(out);
            Flow::Continue
        }
        Request::Invalid { error, noreply } => {
            reply_error(out, error, noreply);
            Flow::Continue
        }
    }
}

/// A `stats` group as (name, value) pairs: the binary protocol's STAT and the Prometheus
/// exporter read the very lines the text protocol prints. `None` for an unknown group.
pub fn stats_pairs(
    store: &Store,
    settings: &Settings,
    stats: &ServerStats,
    tls: Option<&crate::server::tls::TlsState>,
    group: crate::protocol::StatsGroup<'_>,
) -> Option<Vec<(String, String)>> {
    let mut counters = ConnCounters::default();
    let mut ctx = Context {
        store,
        settings,
        stats,
        counters: &mut counters,
        tls,
        reply_window: crate::buffers::ReplyWindow::UNBOUNDED,
    };
    let mut text = ReplyBuffer::new();
    stats::stats(&mut ctx, &mut text, group);
    let text = String::from_utf8_lossy(&text.to_vec()).into_owned();
    let mut pairs = Vec::new();
    for line in text.split("\r\n").filter(|line| !line.is_empty()) {
        match line.strip_prefix("STAT ") {
            Some(rest) => {
                let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
                pairs.push((name.to_string(), value.to_string()));
            }
            None if line == "END" || line == "RESET" || line == "OK" => {}
            None => return None,
        }
    }
    Some(pairs)
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
