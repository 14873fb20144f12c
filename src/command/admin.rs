//! Server-level commands: `flush_all`, `version`, `verbosity`, `shutdown`,
//! `cache_memlimit`, `watch`, and the operator verbs on slab pages and the crawler
//! (`slabs`, `lru_crawler`).

use super::{Context, Flow, reply, reply_error};
use crate::protocol::{
    ClassList, CrawlerCommand, Exptime, ProtocolError, Reply, ReplyBuffer, ShutdownMode,
};
use crate::store::{ClassSet, Reassign};

/// The version string clients see: memcached's protocol level, then ours.
pub const VERSION: &str = concat!("1.6.18-ferrocached-", env!("CARGO_PKG_VERSION"));

/// `flush_all [delay]`.
pub fn flush_all(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    delay: Option<crate::protocol::Exptime>,
    noreply: bool,
) -> Flow {
    ctx.counters.cmd_flush += 1;
    if !ctx.settings.flush_enabled {
        reply_error(out, ProtocolError::FlushDisabled, noreply);
        return Flow::Continue;
    }
    ctx.store.flush_all(delay.map(Exptime::seconds));
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

/// `lru_crawler <sub-command>`: the crawler's switch, pace and explicit runs.
pub fn lru_crawler(ctx: &mut Context<'_>, out: &mut ReplyBuffer, command: CrawlerCommand) -> Flow {
    let tuning = ctx.store.tuning();
    match command {
        CrawlerCommand::Enable => {
            let was_running = tuning.set_crawler_enabled(true);
            if was_running {
                out.error(ProtocolError::CrawlerAlreadyRunning);
            } else {
                out.reply(Reply::Ok);
            }
        }
        CrawlerCommand::Disable => {
            tuning.set_crawler_enabled(false);
            out.reply(Reply::Ok);
        }
        CrawlerCommand::Sleep(microseconds) => {
            tuning.set_crawler_sleep(microseconds);
            out.reply(Reply::Ok);
        }
        CrawlerCommand::Tocrawl(items) => {
            tuning.set_crawler_tocrawl(items);
            out.reply(Reply::Ok);
        }
        CrawlerCommand::Crawl(_) | CrawlerCommand::Metadump(_) if !tuning.crawler_enabled() => {
            out.error(ProtocolError::CrawlerDisabled)
        }
        CrawlerCommand::Crawl(ClassList::Hash) => out.error(ProtocolError::CrawlerHashCrawl),
        CrawlerCommand::Crawl(classes) => match class_set(classes) {
            Ok(classes) if ctx.store.crawl_classes(classes) => {
                ctx.store.tuning().count_crawler_start();
                out.reply(Reply::Ok)
            }
            Ok(_) => out.reply(Reply::CrawlerBusy),
            Err(refusal) => out.reply(refusal),
        },
        CrawlerCommand::Metadump(classes) => match class_set(classes) {
            Ok(_) if ctx.store.crawling() => out.reply(Reply::CrawlerBusy),
            Ok(classes) => {
                ctx.store.tuning().count_crawler_start();
                metadump(ctx, out, classes)
            }
            Err(refusal) => out.reply(refusal),
        },
    }
    Flow::Continue
}

/// The store's class set for a crawler class list, or memcached's refusal.
fn class_set(classes: ClassList) -> Result<ClassSet, Reply> {
    match classes {
        ClassList::All | ClassList::Hash => Ok(ClassSet::ALL),
        ClassList::Ids(0) => Err(Reply::CrawlerNotStarted),
        ClassList::Ids(ids) => Ok(ClassSet::from_ids(ids)),
        ClassList::Invalid => Err(Reply::CrawlerBadClass),
    }
}

/// `lru_crawler metadump`: one line per live item of `classes`, as memcached-tool's
/// `dump` and `keys` read it; keys are percent-encoded like memcached's.
fn metadump(ctx: &mut Context<'_>, out: &mut ReplyBuffer, classes: ClassSet) {
    let started = ctx.store.clock().process_started();
    ctx.store.for_each_live(classes, |item| {
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
}

/// `slabs reassign <src> <dst>`: moves one page between slab classes at once.
pub fn slabs_reassign(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    source: i32,
    destination: i32,
) -> Flow {
    out.reply(match ctx.store.reassign_page(source, destination) {
        Reassign::Moved => Reply::Ok,
        Reassign::Same => Reply::ReassignSame,
        Reassign::BadClass => Reply::ReassignBadClass,
        Reassign::NoSpare => Reply::ReassignNoSpare,
    });
    Flow::Continue
}

/// `slabs automove <0|1|2>`: 0 keeps each class's pages, 1 and 2 let a class that
/// needs memory take a page from the class holding the oldest data.
pub fn slabs_automove(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    level: u32,
    noreply: bool,
) -> Flow {
    if level > 2 {
        reply_error(out, ProtocolError::UnknownCommand, noreply);
    } else {
        ctx.store.set_automove(level);
        reply(out, Reply::Ok, noreply);
    }
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

/// `watch [kinds...]`: answers `OK` and hands the connection over to the watcher loop
/// (`crate::watch::serve`). As in memcached it is refused when replies of the same
/// batch are still queued, and when [`crate::watch::WATCHER_LIMIT`] watchers are attached.
pub fn watch(out: &mut ReplyBuffer, kinds: crate::watch::Kinds) -> Flow {
    if !out.is_empty() {
        out.error(ProtocolError::WatchPipelined);
        return Flow::Continue;
    }
    if !crate::watch::has_room() {
        out.error(ProtocolError::WatcherTooMany);
        return Flow::Continue;
    }
    out.reply(Reply::Ok);
    Flow::Watch(kinds)
}
