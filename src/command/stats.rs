//! `stats` and its groups, in memcached 1.6.18's names and order. `stats`, `stats items`
//! and `stats slabs` render the typed [`Snapshot`] the store and server counters produce
//! (the same one `/metrics` renders); `stats settings` renders the typed
//! [`SettingsSnapshot`] filled from the settings. Where
//! ferrocached has no such mechanism the value is an honest constant (documented in
//! README).

use super::{Context, Flow, TlsControl};
use crate::config::Settings;
use crate::protocol::{ProtocolError, Reply, ReplyBuffer, StatsGroup};
use crate::stats::snapshot::{
    CrawlerFacts, ServerFacts, SettingsSnapshot, Snapshot, StatLines, StatValue, TlsFacts,
};
use crate::stats::{ConnCounters, ConnKind, ServerStats};
use crate::store::Store;
use std::sync::atomic::Ordering;

/// Answers `stats [group]`.
pub fn stats(ctx: &mut Context<'_>, out: &mut ReplyBuffer, group: StatsGroup<'_>) -> Flow {
    if let Some(lines) = lines(ctx, group) {
        for (name, value) in &lines {
            out.stat(name, value);
        }
        out.reply(Reply::End);
        return Flow::Continue;
    }
    match group {
        StatsGroup::Reset => {
            ctx.stats.reset();
            ctx.store.reset_counters();
            ctx.stats.detail.clear();
            out.reply(Reply::Reset);
        }
        StatsGroup::Detail(argument) => detail(ctx, out, argument),
        StatsGroup::CacheDump { class, limit } => cachedump(ctx, out, class, limit),
        StatsGroup::Invalid(error) => out.error(error),
        _ => out.error(ProtocolError::UnknownCommand),
    }
    Flow::Continue
}

/// The STAT lines of a group that answers with them; `None` for the groups that answer
/// otherwise (reset, detail, cachedump, errors).
fn lines(ctx: &mut Context<'_>, group: StatsGroup<'_>) -> Option<StatLines> {
    Some(match group {
        StatsGroup::General => {
            // The caller's own counters are part of the picture it asks for.
            ctx.stats.absorb(ctx.counters);
            snapshot(ctx.store, ctx.settings, ctx.stats, ctx.tls).general()
        }
        StatsGroup::Settings => settings(ctx),
        StatsGroup::Items => snapshot(ctx.store, ctx.settings, ctx.stats, ctx.tls).items(),
        StatsGroup::Slabs => snapshot(ctx.store, ctx.settings, ctx.stats, ctx.tls).slabs(),
        StatsGroup::Sizes => vec![("sizes_status".into(), "disabled".into())],
        StatsGroup::Conns => conns(ctx),
        _ => return None,
    })
}

/// The typed figures of `stats`, `stats items` and `stats slabs` (also `/metrics`).
pub fn snapshot(
    store: &Store,
    settings: &Settings,
    stats: &ServerStats,
    tls: Option<&dyn TlsControl>,
) -> Snapshot {
    let facts = ServerFacts {
        version: super::admin::VERSION,
        max_connections: settings.max_connections,
        threads: settings.threads,
        since_cert_refresh: tls.map(|tls| store.clock().unix_now() - tls.refreshed_at()),
        udp_enabled: settings.udp_port != 0,
        snapshot_interval: settings.snapshot_interval,
        idle_timeout_enabled: settings.idle_timeout != 0,
        lru_maintainer: settings.lru_maintainer,
        crawler: store.tuning().crawler_enabled().then(|| CrawlerFacts {
            running: store.crawling(),
            starts: store.tuning().crawler_starts(),
        }),
    };
    Snapshot::collect(store, stats, facts)
}

/// A `stats` group as (name, value) pairs for the binary protocol's STAT. A group that
/// answers with a status only (reset, detail on/off, an empty dump) gives no pairs;
/// `None` for a group that answers with anything else (errors, dump lines).
pub fn pairs(
    store: &Store,
    settings: &Settings,
    server: &ServerStats,
    tls: Option<&dyn TlsControl>,
    group: StatsGroup<'_>,
) -> Option<Vec<(String, String)>> {
    let mut counters = ConnCounters::default();
    let mut ctx = Context {
        store,
        settings,
        stats: server,
        counters: &mut counters,
        tls,
        reply_window: crate::buffers::ReplyWindow::UNBOUNDED,
    };
    if let Some(lines) = lines(&mut ctx, group) {
        return Some(
            lines
                .into_iter()
                .map(|(name, value)| (name.into_owned(), value.to_string()))
                .collect(),
        );
    }
    let mut reply = ReplyBuffer::new();
    stats(&mut ctx, &mut reply, group);
    let reply = reply.to_vec();
    [Reply::End, Reply::Reset, Reply::Ok]
        .iter()
        .any(|status| reply == status.wire())
        .then(Vec::new)
}

/// `stats settings`: the typed settings figures, rendered in memcached's order.
fn settings(ctx: &Context<'_>) -> StatLines {
    let s = ctx.settings;
    SettingsSnapshot {
        maxbytes: ctx.store.memory_limit(),
        maxconns: s.max_connections,
        tcp_port: s.port,
        udp_port: s.udp_port,
        interfaces: &s.listen,
        verbosity: ctx.stats.verbosity.load(Ordering::Relaxed),
        evictions: s.evictions,
        domain_socket: s.unix_socket.as_deref(),
        umask: s.unix_mask,
        shutdown_command: s.shutdown_enabled,
        growth_factor: s.growth_factor,
        chunk_size: s.slab_min_size,
        threads: s.threads,
        stat_key_prefix: s.prefix_delimiter,
        detail_enabled: ctx.stats.detail.enabled(),
        reqs_per_event: s.reqs_per_event,
        cas_enabled: s.cas_enabled,
        tcp_backlog: s.backlog,
        binding_protocol: s.protocol.name(),
        auth_enabled_sasl: s.sasl.is_some(),
        auth_enabled_ascii: s.auth.is_some(),
        item_size_max: s.item_size_max,
        flush_enabled: s.flush_enabled,
        idle_timeout: s.idle_timeout,
        io_engine: s.io_engine.name(),
        read_buf_mem_limit: s.read_buf_mem_limit,
        watcher_logbuf_size: s.watcher_logbuf_size,
        worker_logbuf_size: s.worker_logbuf_size,
        ssl_enabled: ctx.tls.is_some(),
        tls: {
            let options = ctx.tls.map_or(&s.ssl_options, |tls| tls.settings());
            TlsFacts {
                chain_cert: options.chain_cert.as_deref(),
                key: options.key.as_deref(),
                verify_mode: options.verify_mode,
                ca_cert: options.ca_cert.as_deref(),
                min_version: &options.min_version,
                wbuf_size: options.wbuf_size,
            }
        },
        memory_file: s.memory_file.as_deref(),
        slab_automove: ctx.store.automove(),
        lru_crawler: ctx.store.tuning().crawler_enabled(),
        lru_crawler_sleep: ctx.store.tuning().crawler_sleep(),
        lru_crawler_tocrawl: ctx.store.tuning().crawler_tocrawl(),
    }
    .lines()
}

/// `stats conns`: each open connection.
fn conns(ctx: &Context<'_>) -> StatLines {
    let mut out = Stats::default();
    let now = ctx.store.now().now;
    let mut conns: Vec<_> = ctx
        .stats
        .conns
        .iter()
        .map(|entry| (*entry.key(), entry.value().clone()))
        .collect();
    conns.sort_by_key(|(id, _)| *id);
    for (id, info) in conns {
        if info.kind == ConnKind::Udp {
            out.stat(&format!("{id}:UDP"), "UDP");
        }
        out.stat(&format!("{id}:addr"), &info.peer);
        if info.kind == ConnKind::Client {
            out.stat(&format!("{id}:listen_addr"), &info.local);
        }
        out.stat(&format!("{id}:state"), info.state().name());
        let last = info.last_command.load(Ordering::Relaxed);
        out.stat(
            &format!("{id}:secs_since_last_cmd"),
            now.saturating_sub(last),
        );
    }
    out.0
}

/// `stats conns` lines being gathered, with `ReplyBuffer::stat`'s call shape: their
/// values are text, printed as they were given.
#[derive(Default)]
struct Stats(StatLines);

impl Stats {
    fn stat(&mut self, name: &str, value: impl std::fmt::Display) {
        let value = StatValue::Text(value.to_string().into());
        self.0.push((name.to_string().into(), value));
    }
}

/// `stats detail on|off|dump`.
fn detail(ctx: &mut Context<'_>, out: &mut ReplyBuffer, argument: Option<&[u8]>) {
    match argument {
        Some(b"on") => {
            ctx.stats.detail.set_enabled(true);
            out.reply(Reply::Ok);
        }
        Some(b"off") => {
            ctx.stats.detail.set_enabled(false);
            out.reply(Reply::Ok);
        }
        Some(b"dump") => {
            for (prefix, counters) in ctx.stats.detail.snapshot() {
                out.prefix_line(
                    &prefix,
                    [
                        counters.gets,
                        counters.hits,
                        counters.sets,
                        counters.deletes,
                    ],
                );
            }
            out.reply(Reply::End);
        }
        _ => out.error(ProtocolError::StatsDetailUsage),
    }
}

/// memcached allows class ids below 64 (`MAX_NUMBER_OF_SLAB_CLASSES`).
const MAX_CLASS_ID: u32 = 64;

/// `stats cachedump <class> <limit>`.
fn cachedump(ctx: &mut Context<'_>, out: &mut ReplyBuffer, class: u32, limit: u32) {
    if class >= MAX_CLASS_ID {
        out.error(ProtocolError::IllegalSlabId);
        return;
    }
    let started = ctx.store.clock().process_started();
    for item in ctx.store.cachedump(class as usize, limit as usize) {
        let expires = if item.exptime == 0 {
            0
        } else {
            i64::from(item.exptime) + started
        };
        out.cachedump_line(&item.key, item.size, expires);
    }
    out.reply(Reply::End);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Clock, StoreConfig, StoreMode};
    use std::sync::Arc;

    /// The binary protocol's STAT pairs are the text lines, name for name and value for
    /// value, without going through the text.
    #[test]
    fn binary_pairs_match_the_text_lines() {
        let store = Store::new(&StoreConfig::default(), Arc::new(Clock::new()));
        store.store(StoreMode::Set, b"small", 0, 0, b"v");
        store.store(StoreMode::Set, b"large", 0, 0, &vec![b'v'; 100_000]);
        let settings = Settings::default();
        let server = ServerStats::default();
        for group in [
            StatsGroup::General,
            StatsGroup::Items,
            StatsGroup::Slabs,
            StatsGroup::Settings,
        ] {
            let pairs = pairs(&store, &settings, &server, None, group).expect("pairs");
            let mut counters = ConnCounters::default();
            let mut ctx = Context {
                store: &store,
                settings: &settings,
                stats: &server,
                counters: &mut counters,
                tls: None,
                reply_window: crate::buffers::ReplyWindow::UNBOUNDED,
            };
            let mut out = ReplyBuffer::new();
            stats(&mut ctx, &mut out, group);
            let mut expected = String::new();
            for (name, value) in &pairs {
                // rusage moves between the two readings; compare its shape only.
                if name.starts_with("rusage_") {
                    expected.push_str(&format!("STAT {name} "));
                    continue;
                }
                expected.push_str(&format!("STAT {name} {value}\r\n"));
            }
            let text = String::from_utf8(out.to_vec()).unwrap();
            let text: String = text
                .split_inclusive("\r\n")
                .map(|line| match line.strip_prefix("STAT rusage_") {
                    Some(rest) => format!("STAT rusage_{} ", rest.split(' ').next().unwrap()),
                    None => line.to_string(),
                })
                .collect();
            assert_eq!(text, expected + "END\r\n", "{group:?}");
        }
    }

    #[test]
    fn status_only_groups_give_no_pairs_and_others_none() {
        let store = Store::new(&StoreConfig::default(), Arc::new(Clock::new()));
        let (settings, server) = (Settings::default(), ServerStats::default());
        let pairs = |group| pairs(&store, &settings, &server, None, group);
        assert_eq!(pairs(StatsGroup::Reset), Some(Vec::new()));
        assert_eq!(
            pairs(StatsGroup::CacheDump { class: 1, limit: 0 }),
            Some(Vec::new())
        );
        assert_eq!(pairs(StatsGroup::Unknown), None);
        store.store(StoreMode::Set, b"k", 0, 0, b"v");
        assert_eq!(pairs(StatsGroup::CacheDump { class: 1, limit: 0 }), None);
    }
}
