//! Server-level commands: `flush_all`, `version`, `verbosity`, `shutdown`,
//! `cache_memlimit`.

use super::{Context, Flow, reply, reply_error};
use crate::protocol::{ProtocolError, Reply, ReplyBuffer, ShutdownMode};

/// The version string clients see: memcached's protocol level, then ours.
pub const VERSION: &str = concat!("1.6.18-ferrocached-", env!("CARGO_PKG_VERSION"));

/// `flush_all [delay]`.
pub fn flush_all(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    delay: Option<i32>,
    noreply: bool,
) -> Flow {
    ctx.counters.cmd_flush += 1;
    if !ctx.settings.flush_enabled {
        reply_error(out, ProtocolError::FlushDisabled, noreply);
        return Flow::Continue;
    }
    ctx.store.flush_all(delay);
    reply(out, Reply::Ok, noreply);
    Flow::Continue
}

/// `version`.
pub fn version(out: &mut ReplyBuffer) -> Flow {
    out.version(VERSION);
    Flow::Continue
}

/// `verbosity <level>`: memcached caps the level at 2.
pub fn verbosity(ctx: &mut Context<'_>, out: &mut ReplyBuffer, level: u32, noreply: bool) -> Flow {
    ctx.stats.set_verbosity(level.min(2));
    reply(out, Reply::Ok, noreply);
    Flow::Continue
}

/// `shutdown [graceful]`, allowed only with `-A`.
pub fn shutdown(ctx: &mut Context<'_>, out: &mut ReplyBuffer, mode: ShutdownMode) -> Flow {
    if !ctx.settings.shutdown_enabled {
        out.error(ProtocolError::ShutdownDisabled);
        return Flow::Continue;
    }
    match mode {
        ShutdownMode::Immediate => Flow::Shutdown { graceful: false },
        ShutdownMode::Graceful => Flow::Shutdown { graceful: true },
        ShutdownMode::Invalid => {
            out.error(ProtocolError::InvalidShutdownMode);
            Flow::Continue
        }
    }
}

/// `cache_memlimit <MB>`: changes `-m` at runtime.
pub fn cache_memlimit(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    megabytes: Option<u32>,
    noreply: bool,
) -> Flow {
    match megabytes {
        None => reply_error(out, ProtocolError::UnknownCommand, noreply),
        Some(megabytes) if megabytes < 8 => {
            reply_error(out, ProtocolError::MemlimitTooSmall, noreply)
        }
        Some(megabytes) if megabytes > 1_000_000_000 => {
            reply_error(out, ProtocolError::MemlimitNotMegabytes, noreply)
        }
        Some(megabytes) => {
            ctx.store.set_memory_limit(megabytes as usize * 1024 * 1024);
            reply(out, Reply::Ok, noreply);
        }
    }
    Flow::Continue
}

/// `lru_crawler metadump`: one line per live item, as memcached-tool's `dump` and
/// `keys` read it; keys are percent-encoded like memcached's.
pub fn metadump(ctx: &mut Context<'_>, out: &mut ReplyBuffer) -> Flow {
    let started = ctx.store.clock().process_started();
    ctx.store.for_each_live(|item| {
        let expires = if item.exptime == 0 {
            -1
        } else {
            i64::from(item.exptime) + started
        };
        out.metadump_line(
            item.key,
            expires,
            i64::from(item.accessed) + started,
            item.cas,
            item.fetched,
            item.class,
            item.size,
        );
    });
    out.reply(Reply::End);
    Flow::Continue
}

/// `lru_crawler crawl`: sweeps every shard for expired items on the next crawler tick.
pub fn crawl_now(ctx: &mut Context<'_>, out: &mut ReplyBuffer) -> Flow {
    ctx.store.sweep_all();
    out.reply(Reply::Ok);
    Flow::Continue
}

/// `refresh_certs`: reloads the TLS certificates from their files.
pub fn refresh_certs(ctx: &mut Context<'_>, out: &mut ReplyBuffer) -> Flow {
    match ctx.tls {
        None => out.reply(Reply::TlsNotEnabled),
        Some(tls) => match tls.refresh(ctx.store.clock().unix_now()) {
            Ok(()) => out.reply(Reply::Ok),
            Err(error) => out.error_message(&error),
        },
    }
    Flow::Continue
}
