//! Command execution: one `match` from a parsed `Request` to the store and back to reply
//! bytes. What the data verbs mean (counters included) is in `core`, once for every
//! protocol; the typed response is composed in the request's `ReplyStyle`. `meta` and
//! `binary` hold what only their protocol has (`mg`/`me`, binary's own opcodes). Nothing
//! here touches a socket.

mod admin;
pub mod binary;
mod core;
mod meta;
mod retrieval;
pub mod session;
pub mod stats;

use self::core::Origin;
use crate::config::Settings;
use crate::protocol::compose::compose;
use crate::protocol::meta::Echo;
use crate::protocol::{GetKeys, ProtocolError, ReplyBuffer, ReplyStyle, Request};
use crate::stats::{ConnCounters, ServerStats};
use crate::store::Store;

/// What the connection should do after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next request.
    Continue,
    /// Close this connection (quit).
    Close,
    /// Close this connection: its request stream cannot be read on (an overlong line, a
    /// malformed binary header, an HTTP request). `watch connevents` calls it an error.
    Reject,
    /// Stop the server (`shutdown`, only with `-A`).
    Shutdown {
        /// `shutdown graceful`.
        graceful: bool,
    },
    /// `watch` succeeded: write the replies, then turn the connection into a watcher
    /// of these kinds (anything after the request in the batch is dropped).
    Watch(crate::watch::Kinds),
    /// The reply window is full: the get answered the keys before byte `resume_at` of
    /// its key list. Write the replies, then run it again on the rest.
    MoreKeys {
        /// Offset of the first unanswered key in the request's key list.
        resume_at: usize,
    },
}

/// What commands see of TLS (`refresh_certs`, the `ssl_*` stats). The server, which
/// owns the certificates and the TLS library, implements it, so commands need not
/// import the server.
pub trait TlsControl: Sync {
    /// Re-reads the certificate files; `now` is the Unix time recorded on success.
    fn refresh(&self, now: i64) -> Result<(), String>;

    /// Unix time of the last successful load.
    fn refreshed_at(&self) -> i64;

    /// The `-o ssl_*` options it was started with.
    fn settings(&self) -> &crate::config::TlsSettings;
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
    pub tls: Option<&'a dyn TlsControl>,
    /// Reply bytes this pass may queue before a multiget pauses or fails.
    pub reply_window: crate::buffers::ReplyWindow,
}

/// Executes one request, appending its reply (if any) to `out`.
pub fn execute(request: &Request<'_>, ctx: &mut Context<'_>, out: &mut ReplyBuffer) -> Flow {
    match *request {
        Request::Get {
            ref keys,
            with_cas,
            touch,
            vivify,
            recache,
            bump,
            reply,
        } => match (keys, reply) {
            (GetKeys::List(keys), _) => retrieval::get(ctx, out, *keys, with_cas, touch),
            (GetKeys::One(key), ReplyStyle::Meta { flags, raw_key }) => {
                origin(ctx, reply);
                let echo = Echo {
                    flags,
                    raw_key,
                    key,
                };
                let request = core::MetaGet {
                    touch,
                    vivify,
                    recache,
                    bump,
                };
                meta::get(ctx, out, echo, request)
            }
            (GetKeys::One(key), ReplyStyle::Binary { opcode, opaque }) => {
                binary::get(ctx, out, key, touch, opcode, opaque)
            }
            // `get <key>`: one key without spaces, no list to walk.
            (GetKeys::One(key), ReplyStyle::Text { .. }) => {
                retrieval::get_one(ctx, out, key, with_cas, touch)
            }
        },
        Request::Store {
            mode,
            compare_cas,
            ref key,
            flags,
            exptime,
            data,
            invalidate,
            reply,
        } => {
            let request = core::Store {
                mode,
                key,
                flags,
                exptime,
                data,
                compare_cas,
                invalidate,
            };
            let origin = origin(ctx, reply);
            let response = core::store(ctx, request, origin);
            compose(out, reply, key, response);
            Flow::Continue
        }
        Request::StoreTooLarge {
            mode,
            compare_cas,
            ref key,
            reply,
        } => {
            let origin = origin(ctx, reply);
            let response = core::too_large(ctx, mode, compare_cas.is_some(), key, origin);
            compose(out, reply, key, response);
            Flow::Continue
        }
        Request::Touch {
            key,
            exptime,
            reply,
        } => {
            let origin = origin(ctx, reply);
            let response = core::touch(ctx, key, exptime, origin);
            compose(out, reply, key, response);
            Flow::Continue
        }
        Request::Delete {
            ref key,
            compare_cas,
            invalidate,
            new_ttl,
            reply,
        } => {
            let origin = origin(ctx, reply);
            let response = core::delete(ctx, key, compare_cas, invalidate, new_ttl, origin);
            compose(out, reply, key, response);
            Flow::Continue
        }
        Request::Arithmetic {
            incr,
            ref key,
            delta,
            compare_cas,
            auto_create,
            new_ttl,
            reply,
        } => {
            origin(ctx, reply);
            let request = core::Arith {
                incr,
                delta,
                compare_cas,
                auto_create,
                new_ttl,
            };
            let response = core::arith(ctx, key, request);
            compose(out, reply, key, response);
            Flow::Continue
        }
        Request::MetaDebug { ref key, raw_key } => {
            ctx.counters.cmd_meta += 1;
            meta::debug(ctx, out, key, raw_key)
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
        Request::LruCrawler(command) => admin::lru_crawler(ctx, out, command),
        Request::SlabsReassign {
            source,
            destination,
        } => admin::slabs_reassign(ctx, out, source, destination),
        Request::SlabsAutomove { level, noreply } => {
            admin::slabs_automove(ctx, out, level, noreply)
        }
        Request::RefreshCerts => admin::refresh_certs(ctx, out),
        Request::Watch(kinds) => admin::watch(out, kinds),
        Request::Binary(ref request) => binary::execute(ctx, out, request),
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

/// Which protocol a reply style belongs to, for what memcached counts per protocol;
/// a meta command is counted (`cmd_meta`) here, once.
fn origin(ctx: &mut Context<'_>, reply: ReplyStyle<'_>) -> Origin {
    match reply {
        ReplyStyle::Text { .. } => Origin::Text,
        ReplyStyle::Binary { .. } => Origin::Binary,
        ReplyStyle::Meta { .. } => {
            ctx.counters.cmd_meta += 1;
            Origin::Meta
        }
    }
}

/// A `stats` group as (name, value) pairs for the binary protocol's STAT, rendered from
/// the same typed figures as the text lines. `None` for a group that answers otherwise.
pub fn stats_pairs(
    store: &Store,
    settings: &Settings,
    stats: &ServerStats,
    tls: Option<&dyn TlsControl>,
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
