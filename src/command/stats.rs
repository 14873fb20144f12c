//! `stats` and its groups, in memcached 1.6.18's names and order. `stats`, `stats items`
//! and `stats slabs` render the typed [`Snapshot`] the store and server counters produce
//! (the same one `/metrics` renders); `stats settings` renders the settings. Where
//! ferrocached has no such mechanism the value is an honest constant (documented in
//! README).

use super::{Context, Flow, TlsControl};
use crate::config::Settings;
use crate::protocol::{ProtocolError, Reply, ReplyBuffer, StatsGroup};
use crate::stats::snapshot::{ServerFacts, Snapshot, StatLines, StatValue};
use crate::stats::{ConnCounters, ServerStats};
use crate::store::{SLAB_CHUNK_MAX, Store};
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
    matches!(&reply[..], b"END\r\n" | b"RESET\r\n" | b"OK\r\n").then(Vec::new)
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// `stats settings`, in memcached's order.
fn settings(ctx: &Context<'_>) -> StatLines {
    let s = ctx.settings;
    let mut out = Stats::default();
    out.stat("maxbytes", ctx.store.memory_limit());
    out.stat("maxconns", s.max_connections);
    out.stat("tcpport", s.port);
    out.stat("udpport", s.udp_port);
    out.stat(
        "inter",
        if s.listen.is_empty() {
            "NULL".to_string()
        } else {
            s.listen.join(",")
        },
    );
    out.stat("verbosity", ctx.stats.verbosity.load(Ordering::Relaxed));
    out.stat("oldest", 0);
    out.stat("evictions", if s.evictions { "on" } else { "off" });
    out.stat("domain_socket", s.unix_socket.as_deref().unwrap_or("NULL"));
    out.stat("umask", format!("{:o}", s.unix_mask));
    out.stat("shutdown_command", yes_no(s.shutdown_enabled));
    out.stat("growth_factor", format!("{:.2}", s.growth_factor));
    out.stat("chunk_size", s.slab_min_size);
    out.stat("num_threads", s.threads);
    out.stat("num_threads_per_udp", s.threads);
    out.stat("stat_key_prefix", s.prefix_delimiter as char);
    out.stat("detail_enabled", yes_no(ctx.stats.detail.enabled()));
    out.stat("reqs_per_event", s.reqs_per_event);
    out.stat("cas_enabled", yes_no(s.cas_enabled));
    out.stat("tcp_backlog", s.backlog);
    out.stat("binding_protocol", s.protocol.name());
    out.stat("auth_enabled_sasl", yes_no(s.sasl.is_some()));
    out.stat("auth_enabled_ascii", yes_no(s.auth.is_some()));
    out.stat("item_size_max", s.item_size_max);
    out.stat("maxconns_fast", "yes");
    out.stat("hashpower_init", 0);
    out.stat("slab_reassign", "yes");
    out.stat("slab_automove", 1);
    out.stat("slab_automove_ratio", "0.80");
    out.stat("slab_automove_window", 30);
    out.stat("slab_chunk_max", SLAB_CHUNK_MAX);
    out.stat("lru_crawler", "yes");
    out.stat("lru_crawler_sleep", 100);
    out.stat("lru_crawler_tocrawl", 0);
    out.stat("tail_repair_time", 0);
    out.stat("flush_enabled", yes_no(s.flush_enabled));
    out.stat("dump_enabled", "yes");
    out.stat("hash_algorithm", "siphash13");
    out.stat("lru_maintainer_thread", "no");
    out.stat("lru_segmented", "no");
    out.stat("hot_lru_pct", 20);
    out.stat("warm_lru_pct", 40);
    out.stat("hot_max_factor", "0.20");
    out.stat("warm_max_factor", "2.00");
    out.stat("temp_lru", "no");
    out.stat("temporary_ttl", 61);
    out.stat("idle_timeout", s.idle_timeout);
    out.stat("watcher_logbuf_size", 262144);
    out.stat("worker_logbuf_size", 65536);
    out.stat("read_buf_mem_limit", s.read_buf_mem_limit);
    out.stat("track_sizes", "no");
    out.stat("inline_ascii_response", "no");
    out.stat("slab_automove_freeratio", "0.010");
    match ctx.tls {
        None => out.stat("ssl_enabled", "no"),
        Some(tls) => {
            let options = tls.settings();
            let or_null = |value: &Option<String>| value.clone().unwrap_or_else(|| "NULL".into());
            out.stat("ssl_enabled", "yes");
            out.stat("ssl_chain_cert", or_null(&options.chain_cert));
            out.stat("ssl_key", or_null(&options.key));
            out.stat("ssl_verify_mode", options.verify_mode);
            out.stat("ssl_keyformat", 1);
            out.stat("ssl_ciphers", "NULL");
            out.stat("ssl_ca_cert", or_null(&options.ca_cert));
            out.stat("ssl_wbuf_size", 16384);
            out.stat("ssl_session_cache", "no");
            out.stat("ssl_kernel_tls", "no");
            out.stat("ssl_min_version", &options.min_version);
        }
    }
    out.stat("num_napi_ids", "(null)");
    out.stat("memory_file", s.memory_file.as_deref().unwrap_or("(null)"));
    out.0
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
        out.stat(&format!("{id}:addr"), &info.peer);
        out.stat(&format!("{id}:listen_addr"), &info.local);
        out.stat(&format!("{id}:state"), "conn_parse_cmd");
        let last = info.last_command.load(Ordering::Relaxed);
        out.stat(
            &format!("{id}:secs_since_last_cmd"),
            now.saturating_sub(last),
        );
    }
    out.0
}

/// Settings and connection lines being gathered, with `ReplyBuffer::stat`'s call shape:
/// their values are configuration text, printed as they were given.
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
                out.push(b"PREFIX ");
                out.push(&prefix);
                out.push(
                    format!(
                        " get {} hit {} set {} del {}\r\n",
                        counters.gets, counters.hits, counters.sets, counters.deletes
                    )
                    .as_bytes(),
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
        out.push(b"ITEM ");
        out.push(&item.key);
        let expires = if item.exptime == 0 {
            0
        } else {
            i64::from(item.exptime) + started
        };
        out.push(format!(" [{} b; {} s]\r\n", item.size, expires).as_bytes());
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
