//! `stats` and its groups, in memcached 1.6.18's names and order. Figures come from the
//! shards' counters and the server counters; where ferrocached has no such mechanism the
//! value is an honest constant (documented in README).

use super::{Context, Flow};
use crate::protocol::{ProtocolError, Reply, ReplyBuffer, StatsGroup};
use crate::stats::{read, rusage};
use crate::store::{DumpedItem, PAGE_SIZE};
use std::sync::atomic::Ordering;

/// Answers `stats [group]`.
pub fn stats(ctx: &mut Context<'_>, out: &mut ReplyBuffer, group: StatsGroup<'_>) -> Flow {
    match group {
        StatsGroup::General => general(ctx, out),
        StatsGroup::Reset => {
            ctx.stats.reset();
            ctx.store.reset_counters();
            ctx.stats.detail.clear();
            out.reply(Reply::Reset);
            return Flow::Continue;
        }
        StatsGroup::Settings => settings(ctx, out),
        StatsGroup::Items => items(ctx, out),
        StatsGroup::Slabs => slabs(ctx, out),
        StatsGroup::Sizes => out.stat("sizes_status", "disabled"),
        StatsGroup::Conns => conns(ctx, out),
        StatsGroup::Detail(argument) => return detail(ctx, out, argument),
        StatsGroup::CacheDump { class, limit } => return cachedump(ctx, out, class, limit),
        StatsGroup::Invalid(error) => {
            out.error(error);
            return Flow::Continue;
        }
        StatsGroup::Unknown => {
            out.error(ProtocolError::UnknownCommand);
            return Flow::Continue;
        }
    }
    out.reply(Reply::End);
    Flow::Continue
}

fn general(ctx: &mut Context<'_>, out: &mut ReplyBuffer) {
    // The caller's own counters are part of the picture it asks for.
    ctx.stats.absorb(ctx.counters);
    let server = ctx.stats;
    let items = ctx.store.counters();
    let clock = ctx.store.clock();
    let (user, system) = rusage();
    let mut index_bytes = 0;
    ctx.store
        .for_each_shard(|shard| index_bytes += shard.index_bytes());
    let hash_power = (index_bytes.max(1) as f64 / 5.0).log2().ceil().max(16.0) as u32;
    out.stat("pid", std::process::id());
    out.stat("uptime", clock.now().saturating_sub(2));
    out.stat("time", clock.unix_now());
    out.stat("version", super::admin::VERSION);
    out.stat("libevent", "tokio");
    out.stat("pointer_size", usize::BITS);
    out.stat("rusage_user", user);
    out.stat("rusage_system", system);
    out.stat("max_connections", ctx.settings.max_connections);
    out.stat("curr_connections", read(&server.curr_connections));
    out.stat("total_connections", read(&server.total_connections));
    out.stat("rejected_connections", read(&server.rejected_connections));
    out.stat("connection_structures", read(&server.connection_structures));
    let buffers = server.buffers.stats();
    out.stat("response_obj_oom", buffers.response_oom);
    out.stat("response_obj_count", buffers.windows);
    out.stat("response_obj_bytes", buffers.window_bytes);
    out.stat("read_buf_count", buffers.read_buffers);
    out.stat("read_buf_bytes", buffers.read_bytes);
    out.stat("read_buf_bytes_free", buffers.read_bytes_free);
    out.stat("read_buf_oom", buffers.read_oom);
    out.stat("reserved_fds", 0);
    out.stat("cmd_get", read(&server.cmd_get));
    out.stat("cmd_set", read(&server.cmd_set));
    out.stat("cmd_flush", read(&server.cmd_flush));
    out.stat("cmd_touch", read(&server.cmd_touch));
    out.stat("cmd_meta", read(&server.cmd_meta));
    out.stat("get_hits", items.get_hits);
    out.stat("get_misses", items.get_misses);
    out.stat("get_expired", items.get_expired);
    out.stat("get_flushed", items.get_flushed);
    out.stat("delete_misses", items.delete_misses);
    out.stat("delete_hits", items.delete_hits);
    out.stat("incr_misses", items.incr_misses);
    out.stat("incr_hits", items.incr_hits);
    out.stat("decr_misses", items.decr_misses);
    out.stat("decr_hits", items.decr_hits);
    out.stat("cas_misses", items.cas_misses);
    out.stat("cas_hits", items.cas_hits);
    out.stat("cas_badval", items.cas_badval);
    out.stat("touch_hits", items.touch_hits);
    out.stat("touch_misses", items.touch_misses);
    out.stat("store_too_large", read(&server.store_too_large));
    out.stat("store_no_memory", read(&server.store_no_memory));
    out.stat("auth_cmds", read(&server.auth_cmds));
    out.stat("auth_errors", read(&server.auth_errors));
    out.stat("bytes_read", read(&server.bytes_read));
    out.stat("bytes_written", read(&server.bytes_written));
    out.stat("limit_maxbytes", ctx.store.memory_limit());
    out.stat("accepting_conns", 1);
    out.stat("listen_disabled_num", 0);
    out.stat("time_in_listen_disabled_us", 0);
    out.stat("threads", ctx.settings.threads);
    out.stat("conn_yields", 0);
    out.stat("hash_power_level", hash_power);
    out.stat("hash_bytes", index_bytes);
    out.stat("hash_is_expanding", 0);
    for name in [
        "slab_reassign_rescues",
        "slab_reassign_chunk_rescues",
        "slab_reassign_evictions_nomem",
        "slab_reassign_inline_reclaim",
        "slab_reassign_busy_items",
        "slab_reassign_busy_deletes",
        "slab_reassign_running",
    ] {
        out.stat(name, 0);
    }
    out.stat("slabs_moved", items.slabs_moved);
    out.stat("lru_crawler_running", 0);
    out.stat("lru_crawler_starts", 0);
    out.stat("lru_maintainer_juggles", 0);
    out.stat("malloc_fails", 0);
    for name in [
        "log_worker_dropped",
        "log_worker_written",
        "log_watcher_skipped",
        "log_watcher_sent",
        "log_watchers",
        "unexpected_napi_ids",
        "round_robin_fallback",
    ] {
        out.stat(name, 0);
    }
    if let Some(tls) = ctx.tls {
        out.stat("ssl_handshake_errors", read(&server.ssl_handshake_errors));
        let since = clock.unix_now() - tls.refreshed_at();
        out.stat("time_since_server_cert_refresh", since);
    }
    out.stat("bytes", items.bytes);
    out.stat("curr_items", items.curr_items);
    out.stat("total_items", items.total_items);
    out.stat("slab_global_page_pool", 0);
    out.stat("expired_unfetched", items.expired_unfetched);
    out.stat("evicted_unfetched", items.evicted_unfetched);
    out.stat("evicted_active", 0);
    out.stat("evictions", items.evictions);
    out.stat("reclaimed", items.reclaimed);
    out.stat("crawler_reclaimed", items.crawler_reclaimed);
    out.stat("crawler_items_checked", items.crawler_items_checked);
    for name in [
        "lrutail_reflocked",
        "moves_to_cold",
        "moves_to_warm",
        "moves_within_lru",
        "direct_reclaims",
        "lru_bumps_dropped",
    ] {
        out.stat(name, 0);
    }
    if ctx.settings.udp_port != 0 {
        out.stat("udp_replies_dropped", read(&server.udp_replies_dropped));
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn settings(ctx: &mut Context<'_>, out: &mut ReplyBuffer) {
    let s = ctx.settings;
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
    out.stat("slab_chunk_max", crate::store::memory::SLAB_CHUNK_MAX);
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
}

fn items(ctx: &mut Context<'_>, out: &mut ReplyBuffer) {
    let now = ctx.store.now().now;
    let classes = ctx.store.size_classes().sizes().len() + 1;
    let mut totals = vec![ClassTotals::default(); classes];
    ctx.store.for_each_shard(|shard| {
        for (class, state) in shard.memory.classes.iter().enumerate() {
            let total = &mut totals[class];
            total.items += state.items;
            total.requested += state.requested;
            total.evicted += state.evicted;
            total.evicted_unfetched += state.evicted_unfetched;
            total.out_of_memory += state.out_of_memory;
            total.reclaimed += state.reclaimed;
            total.expired_unfetched += state.expired_unfetched;
            total.crawler_reclaimed += state.crawler_reclaimed;
            if state.tail != crate::store::item::NIL {
                let age = now.saturating_sub(shard.memory.header(state.tail).atime);
                total.age = total.age.max(age);
            }
        }
    });
    for (index, total) in totals.iter().enumerate().filter(|(_, t)| t.items > 0) {
        let id = index + 1;
        let mut stat = |name: &str, value: u64| out.stat(&format!("items:{id}:{name}"), value);
        stat("number", total.items);
        stat("number_hot", 0);
        stat("number_warm", 0);
        stat("number_cold", total.items);
        stat("age_hot", 0);
        stat("age_warm", 0);
        stat("age", u64::from(total.age));
        stat("mem_requested", total.requested);
        stat("evicted", total.evicted);
        stat("evicted_nonzero", 0);
        stat("evicted_time", 0);
        stat("outofmemory", total.out_of_memory);
        stat("tailrepairs", 0);
        stat("reclaimed", total.reclaimed);
        stat("expired_unfetched", total.expired_unfetched);
        stat("evicted_unfetched", total.evicted_unfetched);
        stat("evicted_active", 0);
        stat("crawler_reclaimed", total.crawler_reclaimed);
        stat("crawler_items_checked", 0);
        stat("lrutail_reflocked", 0);
        stat("moves_to_cold", 0);
        stat("moves_to_warm", 0);
        stat("moves_within_lru", 0);
        stat("direct_reclaims", 0);
        stat("hits_to_hot", 0);
        stat("hits_to_warm", 0);
        stat("hits_to_cold", 0);
        stat("hits_to_temp", 0);
    }
}

#[derive(Debug, Default, Clone)]
struct ClassTotals {
    items: u64,
    pages: u64,
    requested: u64,
    evicted: u64,
    evicted_unfetched: u64,
    out_of_memory: u64,
    reclaimed: u64,
    expired_unfetched: u64,
    crawler_reclaimed: u64,
    age: u32,
}

fn slabs(ctx: &mut Context<'_>, out: &mut ReplyBuffer) {
    let classes = ctx.store.size_classes().sizes().len();
    let mut totals = vec![ClassTotals::default(); classes];
    let mut malloced = 0;
    ctx.store.for_each_shard(|shard| {
        malloced += shard.memory.used;
        for (class, state) in shard.memory.classes.iter().take(classes).enumerate() {
            totals[class].items += state.items;
            totals[class].pages += u64::from(state.pages);
        }
    });
    let mut active = 0;
    for (index, total) in totals.iter().enumerate().filter(|(_, t)| t.pages > 0) {
        active += 1;
        let id = index + 1;
        let chunk_size = ctx.store.size_classes().sizes()[index];
        let per_page = (PAGE_SIZE / chunk_size) as u64;
        let total_chunks = per_page * total.pages;
        let mut stat = |name: &str, value: u64| out.stat(&format!("{id}:{name}"), value);
        stat("chunk_size", chunk_size as u64);
        stat("chunks_per_page", per_page);
        stat("total_pages", total.pages);
        stat("total_chunks", total_chunks);
        stat("used_chunks", total.items);
        stat("free_chunks", total_chunks - total.items);
        stat("free_chunks_end", 0);
        for name in [
            "get_hits",
            "cmd_set",
            "delete_hits",
            "incr_hits",
            "decr_hits",
            "cas_hits",
            "cas_badval",
            "touch_hits",
        ] {
            stat(name, 0);
        }
    }
    out.stat("active_slabs", active);
    out.stat("total_malloced", malloced);
}

fn conns(ctx: &mut Context<'_>, out: &mut ReplyBuffer) {
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
}

fn detail(ctx: &mut Context<'_>, out: &mut ReplyBuffer, argument: Option<&[u8]>) -> Flow {
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
    Flow::Continue
}

/// memcached allows class ids below 64 (`MAX_NUMBER_OF_SLAB_CLASSES`).
const MAX_CLASS_ID: u32 = 64;

fn cachedump(ctx: &mut Context<'_>, out: &mut ReplyBuffer, class: u32, limit: u32) -> Flow {
    if class >= MAX_CLASS_ID {
        out.error(ProtocolError::IllegalSlabId);
        return Flow::Continue;
    }
    let now = ctx.store.now();
    let classes = ctx.store.size_classes().sizes().len() + 1;
    let mut items: Vec<DumpedItem> = Vec::new();
    if class >= 1 && (class as usize) <= classes {
        ctx.store.for_each_shard(|shard| {
            shard.dump_class(class as usize - 1, limit as usize, now, &mut items);
        });
    }
    let started = ctx.store.clock().process_started();
    for item in items {
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
    Flow::Continue
}
