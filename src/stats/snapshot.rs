//! One typed snapshot of what `stats`, `stats items` and `stats slabs` report, taken
//! from the store and the server counters at one moment. It is rendered three ways
//! without any figure passing through text on the way: as `STAT` lines (text protocol),
//! as binary STAT pairs (both from [`Snapshot::general`], [`Snapshot::items`] and
//! [`Snapshot::slabs`], in memcached 1.6.18's names and order), and as Prometheus series
//! (`crate::metrics`, which reads the typed fields).

use super::{ServerStats, read};
use crate::buffers::BufferStats;
use crate::store::snapshot::SnapshotHealth;
use crate::store::{ClassStats, SLAB_CHUNK_MAX, ShardCounters, Store};
use std::borrow::Cow;
use std::fmt;

/// A stat's value, printed as memcached prints it.
#[derive(Debug, Clone, PartialEq)]
pub enum StatValue {
    /// A count or size.
    Count(u64),
    /// A signed number (times, differences).
    Signed(i64),
    /// CPU time, printed `seconds.microseconds`.
    Cpu(CpuTime),
    /// Anything else (names, yes/no, formatted settings).
    Text(Cow<'static, str>),
}

impl fmt::Display for StatValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatValue::Count(value) => value.fmt(f),
            StatValue::Signed(value) => value.fmt(f),
            StatValue::Cpu(time) => time.fmt(f),
            StatValue::Text(text) => f.write_str(text),
        }
    }
}

impl From<u64> for StatValue {
    fn from(value: u64) -> Self {
        StatValue::Count(value)
    }
}

impl From<u32> for StatValue {
    fn from(value: u32) -> Self {
        StatValue::Count(value.into())
    }
}

impl From<usize> for StatValue {
    fn from(value: usize) -> Self {
        StatValue::Count(value as u64)
    }
}

impl From<i64> for StatValue {
    fn from(value: i64) -> Self {
        StatValue::Signed(value)
    }
}

impl From<&'static str> for StatValue {
    fn from(text: &'static str) -> Self {
        StatValue::Text(Cow::Borrowed(text))
    }
}

impl From<String> for StatValue {
    fn from(text: String) -> Self {
        StatValue::Text(Cow::Owned(text))
    }
}

/// Named stats in the order they are sent.
pub type StatLines = Vec<(Cow<'static, str>, StatValue)>;

/// CPU seconds as `getrusage` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTime {
    /// Whole seconds.
    pub seconds: i64,
    /// Microseconds past them.
    pub micros: i64,
}

impl CpuTime {
    /// As fractional seconds (Prometheus).
    pub fn as_secs_f64(&self) -> f64 {
        self.seconds as f64 + self.micros as f64 / 1e6
    }
}

impl fmt::Display for CpuTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.seconds, self.micros)
    }
}

/// What the server knows that neither the store nor the counters do.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// The version string (`version`).
    pub version: &'static str,
    /// `-c`.
    pub max_connections: usize,
    /// `-t`.
    pub threads: usize,
    /// Seconds since the TLS certificates were loaded, when TLS is on.
    pub since_cert_refresh: Option<i64>,
    /// A UDP port is open (`udp_replies_dropped` is reported only then).
    pub udp_enabled: bool,
    /// `-o snapshot_interval` (0: no periodic snapshot).
    pub snapshot_interval: u64,
    /// `-o idle_timeout` is set (`idle_kicks` is reported only then, as in memcached).
    pub idle_timeout_enabled: bool,
    /// Not `-o no_lru_maintainer` (memcached reports the maintainer's figures only then).
    pub lru_maintainer: bool,
    /// The LRU crawler's figures while it is enabled (memcached reports them only then).
    pub crawler: Option<CrawlerFacts>,
}

/// What `stats` says of the LRU crawler while it is enabled.
#[derive(Debug, Clone, Copy)]
pub struct CrawlerFacts {
    /// An operator's `lru_crawler crawl` has not gone round yet (`lru_crawler_running`).
    pub running: bool,
    /// Crawls begun on request: `lru_crawler crawl` and `metadump` (`lru_crawler_starts`).
    pub starts: u64,
}

/// The server-wide counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ServerCounters {
    pub curr_connections: u64,
    pub total_connections: u64,
    pub rejected_connections: u64,
    pub connection_structures: u64,
    pub cmd_get: u64,
    pub cmd_set: u64,
    pub cmd_flush: u64,
    pub cmd_touch: u64,
    pub cmd_meta: u64,
    pub store_too_large: u64,
    pub store_no_memory: u64,
    pub auth_cmds: u64,
    pub auth_errors: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub ssl_handshake_errors: u64,
    pub udp_replies_dropped: u64,
    pub conn_yields: u64,
    pub idle_kicks: u64,
}

impl ServerCounters {
    /// Reads every counter of `stats` once.
    pub fn read(stats: &ServerStats) -> Self {
        let requests = stats.requests.total();
        ServerCounters {
            curr_connections: read(&stats.curr_connections),
            total_connections: read(&stats.total_connections),
            rejected_connections: read(&stats.rejected_connections),
            connection_structures: read(&stats.connection_structures),
            cmd_get: requests.cmd_get,
            cmd_set: requests.cmd_set,
            cmd_flush: requests.cmd_flush,
            cmd_touch: requests.cmd_touch,
            cmd_meta: requests.cmd_meta,
            store_too_large: requests.store_too_large,
            store_no_memory: requests.store_no_memory,
            auth_cmds: read(&stats.auth_cmds),
            auth_errors: read(&stats.auth_errors),
            bytes_read: requests.bytes_read,
            bytes_written: requests.bytes_written,
            ssl_handshake_errors: read(&stats.ssl_handshake_errors),
            udp_replies_dropped: read(&stats.udp_replies_dropped),
            conn_yields: read(&stats.conn_yields),
            idle_kicks: read(&stats.idle_kicks),
        }
    }
}

/// Every figure of `stats`, `stats items` and `stats slabs` at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Process id.
    pub pid: u32,
    /// Seconds since start.
    pub uptime: u32,
    /// Unix time now.
    pub time: i64,
    /// CPU time in user mode.
    pub rusage_user: CpuTime,
    /// CPU time in the kernel.
    pub rusage_system: CpuTime,
    /// What the server knows of itself.
    pub facts: ServerFacts,
    /// Connection and command counters.
    pub server: ServerCounters,
    /// Read buffers and reply windows.
    pub buffers: BufferStats,
    /// Item counters summed over the shards.
    pub items: ShardCounters,
    /// `-m` now (`limit_maxbytes`).
    pub limit_maxbytes: usize,
    /// Bytes of the index (`hash_bytes`).
    pub hash_bytes: usize,
    /// Per-class figures, the large-item class last.
    pub classes: Vec<ClassStats>,
    /// Bytes held in pages and large items (`total_malloced`).
    pub malloced: usize,
    /// How the `-e` snapshots went (`snapshot_*`), with `-e` only.
    pub snapshots: Option<SnapshotHealth>,
}

/// Stats memcached reports that ferrocached has no mechanism for: always 0, except
/// `slab_reassign_rescues` and `slab_reassign_evictions_nomem` (items `slabs reassign`
/// moved or dropped).
const GENERAL_ZEROES_SLAB: [&str; 7] = [
    "slab_reassign_rescues",
    "slab_reassign_chunk_rescues",
    "slab_reassign_evictions_nomem",
    "slab_reassign_inline_reclaim",
    "slab_reassign_busy_items",
    "slab_reassign_busy_deletes",
    "slab_reassign_running",
];

/// As above, reported after the `log_*` counters.
const GENERAL_ZEROES_LOG: [&str; 2] = ["unexpected_napi_ids", "round_robin_fallback"];

/// As above, reported after `crawler_items_checked`.
const GENERAL_ZEROES_LRU: [&str; 6] = [
    "lrutail_reflocked",
    "moves_to_cold",
    "moves_to_warm",
    "moves_within_lru",
    "direct_reclaims",
    "lru_bumps_dropped",
];

impl Snapshot {
    /// Reads the store and the server counters. Each shard is locked once per kind of
    /// figure, never two at a time.
    pub fn collect(store: &Store, stats: &ServerStats, facts: ServerFacts) -> Self {
        let clock = store.clock();
        let (rusage_user, rusage_system) = super::rusage();
        Snapshot {
            pid: std::process::id(),
            uptime: clock.now().saturating_sub(2),
            time: clock.unix_now(),
            rusage_user,
            rusage_system,
            facts,
            server: ServerCounters::read(stats),
            buffers: stats.buffers.stats(),
            items: store.counters(),
            limit_maxbytes: store.memory_limit(),
            hash_bytes: store.index_bytes(),
            classes: store.class_stats(),
            malloced: store.memory_held(),
            snapshots: stats
                .snapshot_health
                .as_ref()
                .map(|health| *health.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }

    /// `hash_power_level`: the power of two memcached's table would have for this index.
    fn hash_power(&self) -> u32 {
        (self.hash_bytes.max(1) as f64 / 5.0)
            .log2()
            .ceil()
            .max(16.0) as u32
    }

    /// `stats`, in memcached's order.
    pub fn general(&self) -> StatLines {
        let mut lines = StatLines::with_capacity(110);
        let mut stat = |name: &'static str, value: StatValue| lines.push((name.into(), value));
        let (server, items, buffers) = (&self.server, &self.items, &self.buffers);
        stat("pid", self.pid.into());
        stat("uptime", self.uptime.into());
        stat("time", self.time.into());
        stat("version", self.facts.version.into());
        stat("libevent", "tokio".into());
        stat("pointer_size", usize::BITS.into());
        stat("rusage_user", StatValue::Cpu(self.rusage_user));
        stat("rusage_system", StatValue::Cpu(self.rusage_system));
        stat("max_connections", self.facts.max_connections.into());
        stat("curr_connections", server.curr_connections.into());
        stat("total_connections", server.total_connections.into());
        stat("rejected_connections", server.rejected_connections.into());
        stat("connection_structures", server.connection_structures.into());
        stat("response_obj_oom", buffers.response_oom.into());
        stat("response_obj_count", buffers.windows.into());
        stat("response_obj_bytes", buffers.window_bytes.into());
        stat("read_buf_count", buffers.read_buffers.into());
        stat("read_buf_bytes", buffers.read_bytes.into());
        stat("read_buf_bytes_free", buffers.read_bytes_free.into());
        stat("read_buf_oom", buffers.read_oom.into());
        stat("reserved_fds", 0u64.into());
        stat("cmd_get", server.cmd_get.into());
        stat("cmd_set", server.cmd_set.into());
        stat("cmd_flush", server.cmd_flush.into());
        stat("cmd_touch", server.cmd_touch.into());
        stat("cmd_meta", server.cmd_meta.into());
        stat("get_hits", items.get_hits.into());
        stat("get_misses", items.get_misses.into());
        stat("get_expired", items.get_expired.into());
        stat("get_flushed", items.get_flushed.into());
        stat("delete_misses", items.delete_misses.into());
        stat("delete_hits", items.delete_hits.into());
        stat("incr_misses", items.incr_misses.into());
        stat("incr_hits", items.incr_hits.into());
        stat("decr_misses", items.decr_misses.into());
        stat("decr_hits", items.decr_hits.into());
        stat("cas_misses", items.cas_misses.into());
        stat("cas_hits", items.cas_hits.into());
        stat("cas_badval", items.cas_badval.into());
        stat("touch_hits", items.touch_hits.into());
        stat("touch_misses", items.touch_misses.into());
        stat("store_too_large", server.store_too_large.into());
        stat("store_no_memory", server.store_no_memory.into());
        stat("auth_cmds", server.auth_cmds.into());
        stat("auth_errors", server.auth_errors.into());
        if self.facts.idle_timeout_enabled {
            stat("idle_kicks", server.idle_kicks.into());
        }
        stat("bytes_read", server.bytes_read.into());
        stat("bytes_written", server.bytes_written.into());
        stat("limit_maxbytes", self.limit_maxbytes.into());
        stat("accepting_conns", 1u64.into());
        stat("listen_disabled_num", 0u64.into());
        stat("time_in_listen_disabled_us", 0u64.into());
        stat("threads", self.facts.threads.into());
        stat("conn_yields", server.conn_yields.into());
        stat("hash_power_level", self.hash_power().into());
        stat("hash_bytes", self.hash_bytes.into());
        stat("hash_is_expanding", 0u64.into());
        for name in GENERAL_ZEROES_SLAB {
            let value = match name {
                "slab_reassign_evictions_nomem" => items.slab_reassign_evictions_nomem,
                "slab_reassign_rescues" => items.slab_reassign_rescues,
                _ => 0,
            };
            stat(name, value.into());
        }
        stat("slabs_moved", items.slabs_moved.into());
        if let Some(crawler) = self.facts.crawler {
            stat("lru_crawler_running", u64::from(crawler.running).into());
            stat("lru_crawler_starts", crawler.starts.into());
        }
        let maintainer = self.facts.lru_maintainer;
        if maintainer {
            stat("lru_maintainer_juggles", 0u64.into());
        }
        stat("malloc_fails", 0u64.into());
        let log = crate::watch::counters();
        stat("log_worker_dropped", log.worker_dropped.into());
        stat("log_worker_written", log.worker_written.into());
        stat("log_watcher_skipped", log.watcher_skipped.into());
        stat("log_watcher_sent", log.watcher_sent.into());
        stat("log_watchers", log.watchers.into());
        for name in GENERAL_ZEROES_LOG {
            // memcached prints the TLS figures between log_watchers and the napi ids.
            if name == "unexpected_napi_ids"
                && let Some(since) = self.facts.since_cert_refresh
            {
                stat("ssl_handshake_errors", server.ssl_handshake_errors.into());
                stat("time_since_server_cert_refresh", since.into());
            }
            stat(name, 0u64.into());
        }
        stat("bytes", items.bytes.into());
        stat("curr_items", items.curr_items.into());
        stat("total_items", items.total_items.into());
        stat("slab_global_page_pool", 0u64.into());
        stat("expired_unfetched", items.expired_unfetched.into());
        stat("evicted_unfetched", items.evicted_unfetched.into());
        if maintainer {
            stat("evicted_active", 0u64.into());
        }
        stat("evictions", items.evictions.into());
        stat("reclaimed", items.reclaimed.into());
        stat("crawler_reclaimed", items.crawler_reclaimed.into());
        stat("crawler_items_checked", items.crawler_items_checked.into());
        for name in GENERAL_ZEROES_LRU {
            // Only lrutail_reflocked is not the maintainer's.
            if maintainer || name == "lrutail_reflocked" {
                stat(name, 0u64.into());
            }
        }
        if self.facts.udp_enabled {
            stat("udp_replies_dropped", server.udp_replies_dropped.into());
        }
        if let Some(health) = &self.snapshots {
            stat("snapshot_interval", self.facts.snapshot_interval.into());
            stat("snapshot_saves", health.saves.into());
            stat("snapshot_failures", health.failures.into());
            stat("snapshot_last_success_time", health.last_success.into());
            stat(
                "snapshot_last_duration_us",
                (health.last_duration.as_micros() as u64).into(),
            );
            stat("snapshot_last_bytes", health.last_bytes.into());
            stat("snapshot_last_items", health.last_items.into());
        }
        lines
    }

    /// Classes that hold items, with their 1-based ids (`stats items`).
    pub fn classes_with_items(&self) -> impl Iterator<Item = (usize, &ClassStats)> {
        self.classes
            .iter()
            .enumerate()
            .filter(|(_, class)| class.items > 0)
            .map(|(index, class)| (index + 1, class))
    }

    /// Slab classes that own pages, with their 1-based ids (`stats slabs`; the
    /// large-item class has no pages).
    pub fn classes_with_pages(&self) -> impl Iterator<Item = (usize, &ClassStats)> {
        self.classes
            .iter()
            .enumerate()
            .filter(|(_, class)| class.pages > 0 && class.chunk_size > 0)
            .map(|(index, class)| (index + 1, class))
    }

    /// `stats items`: per class with items, in memcached's field order.
    pub fn items(&self) -> StatLines {
        let mut lines = StatLines::new();
        for (id, class) in self.classes_with_items() {
            let counted = &class.counters;
            let mut stat = |name: &str, value: u64| {
                lines.push((format!("items:{id}:{name}").into(), value.into()));
            };
            stat("number", class.items);
            stat("number_hot", 0);
            stat("number_warm", 0);
            stat("number_cold", class.items);
            stat("age_hot", 0);
            stat("age_warm", 0);
            stat("age", u64::from(class.age));
            stat("mem_requested", class.requested);
            stat("evicted", counted.evicted);
            stat("evicted_nonzero", counted.evicted_nonzero);
            stat("evicted_time", counted.evicted_time);
            stat("outofmemory", counted.out_of_memory);
            stat("tailrepairs", 0);
            stat("reclaimed", counted.reclaimed);
            stat("expired_unfetched", counted.expired_unfetched);
            stat("evicted_unfetched", counted.evicted_unfetched);
            stat("evicted_active", 0);
            stat("crawler_reclaimed", counted.crawler_reclaimed);
            stat("crawler_items_checked", counted.crawler_items_checked);
            for name in [
                "lrutail_reflocked",
                "moves_to_cold",
                "moves_to_warm",
                "moves_within_lru",
                "direct_reclaims",
                "hits_to_hot",
                "hits_to_warm",
                "hits_to_cold",
                "hits_to_temp",
            ] {
                stat(name, 0);
            }
        }
        lines
    }

    /// `stats slabs`: per slab class with pages, then the totals.
    pub fn slabs(&self) -> StatLines {
        let mut lines = StatLines::new();
        let mut active = 0u64;
        for (id, class) in self.classes_with_pages() {
            active += 1;
            let mut stat = |name: &str, value: u64| {
                lines.push((format!("{id}:{name}").into(), value.into()));
            };
            let total_chunks = class.total_chunks();
            stat("chunk_size", class.chunk_size as u64);
            stat("chunks_per_page", class.chunks_per_page());
            stat("total_pages", class.pages);
            stat("total_chunks", total_chunks);
            stat("used_chunks", class.items);
            stat("free_chunks", total_chunks - class.items);
            stat("free_chunks_end", 0);
            let counted = &class.counters;
            stat("get_hits", counted.get_hits);
            stat("cmd_set", counted.cmd_set);
            stat("delete_hits", counted.delete_hits);
            stat("incr_hits", counted.incr_hits);
            stat("decr_hits", counted.decr_hits);
            stat("cas_hits", counted.cas_hits);
            stat("cas_badval", counted.cas_badval);
            stat("touch_hits", counted.touch_hits);
        }
        lines.push(("active_slabs".into(), active.into()));
        lines.push(("total_malloced".into(), self.malloced.into()));
        lines
    }
}

/// What `stats settings` reports, typed: the settings as they are now (verbosity and
/// `stats detail` change at run time). Borrowed from the settings, since it lives only
/// while it is rendered.
#[derive(Debug, Clone)]
pub struct SettingsSnapshot<'a> {
    /// `-m` now (`maxbytes`).
    pub maxbytes: usize,
    /// `-c` (`maxconns`).
    pub maxconns: usize,
    /// `-p` (`tcpport`).
    pub tcp_port: u16,
    /// `-U` (`udpport`).
    pub udp_port: u16,
    /// `-l` (`inter`; `NULL` when none was given).
    pub interfaces: &'a [String],
    /// The current `verbosity`.
    pub verbosity: u32,
    /// Not `-M` (`evictions on|off`).
    pub evictions: bool,
    /// `-s` (`domain_socket`).
    pub domain_socket: Option<&'a str>,
    /// `-a` (`umask`, printed in octal).
    pub umask: u32,
    /// `-A` (`shutdown_command`).
    pub shutdown_command: bool,
    /// `-f` (`growth_factor`).
    pub growth_factor: f64,
    /// `-n` (`chunk_size`).
    pub chunk_size: usize,
    /// `-t` (`num_threads`, also `num_threads_per_udp`).
    pub threads: usize,
    /// `-D` (`stat_key_prefix`).
    pub stat_key_prefix: u8,
    /// `stats detail on` is in effect.
    pub detail_enabled: bool,
    /// `-R` (`reqs_per_event`).
    pub reqs_per_event: usize,
    /// Not `-C` (`cas_enabled`).
    pub cas_enabled: bool,
    /// `-b` (`tcp_backlog`).
    pub tcp_backlog: u32,
    /// `-B`, by memcached's name for it (`binding_protocol`).
    pub binding_protocol: &'static str,
    /// `-S` (`auth_enabled_sasl`).
    pub auth_enabled_sasl: bool,
    /// `-Y` (`auth_enabled_ascii`).
    pub auth_enabled_ascii: bool,
    /// `-I` (`item_size_max`).
    pub item_size_max: usize,
    /// Not `-F` (`flush_enabled`).
    pub flush_enabled: bool,
    /// `-o idle_timeout`.
    pub idle_timeout: u64,
    /// `-o io_engine`, as resolved at start (ferrocached's own line).
    pub io_engine: &'static str,
    /// `-o read_buf_mem_limit`.
    pub read_buf_mem_limit: usize,
    /// `-o watcher_logbuf_size`, in bytes.
    pub watcher_logbuf_size: u32,
    /// `-o worker_logbuf_size`, in bytes.
    pub worker_logbuf_size: u32,
    /// `-Z` (`ssl_enabled`).
    pub ssl_enabled: bool,
    /// The `-o ssl_*` options (printed with or without `-Z`, as memcached does).
    pub tls: TlsFacts<'a>,
    /// `-e` (`memory_file`).
    pub memory_file: Option<&'a str>,
    /// `slabs automove` now (`slab_automove`).
    pub slab_automove: u32,
    /// The background crawler runs now (`lru_crawler yes|no`).
    pub lru_crawler: bool,
    /// `lru_crawler sleep` now, in microseconds.
    pub lru_crawler_sleep: u32,
    /// `lru_crawler tocrawl` now.
    pub lru_crawler_tocrawl: u32,
}

/// The TLS options `stats settings` reports.
#[derive(Debug, Clone, Copy)]
pub struct TlsFacts<'a> {
    /// `ssl_chain_cert`.
    pub chain_cert: Option<&'a str>,
    /// `ssl_key`.
    pub key: Option<&'a str>,
    /// `ssl_verify_mode`.
    pub verify_mode: u8,
    /// `ssl_ca_cert`.
    pub ca_cert: Option<&'a str>,
    /// `ssl_min_version`.
    pub min_version: &'a str,
    /// `ssl_wbuf_size` in bytes.
    pub wbuf_size: usize,
}

/// memcached's extstore settings at their defaults: Debian's memcached is built with
/// extstore and prints them; ferrocached has no extstore, so they are constants (README).
const EXTSTORE_SETTINGS: [(&str, &str); 9] = [
    ("ext_item_size", "512"),
    ("ext_item_age", "4294967295"),
    ("ext_low_ttl", "0"),
    ("ext_recache_rate", "2000"),
    ("ext_wbuf_size", "4194304"),
    ("ext_compact_under", "0"),
    ("ext_drop_under", "0"),
    ("ext_max_sleep", "1000000"),
    ("ext_max_frag", "0.80"),
];

/// memcached's spelling of a flag in `stats settings`.
fn yes_no(value: bool) -> StatValue {
    if value { "yes" } else { "no" }.into()
}

/// A text setting as memcached prints it, `absent` standing for an unset one.
fn text_or(value: Option<&str>, absent: &'static str) -> StatValue {
    value.map_or(absent.into(), |text| text.to_string().into())
}

impl SettingsSnapshot<'_> {
    /// `stats settings`, in memcached's order. Where ferrocached has no such mechanism
    /// the value is an honest constant (documented in README).
    pub fn lines(&self) -> StatLines {
        let mut lines = StatLines::with_capacity(72);
        let mut stat = |name: &'static str, value: StatValue| lines.push((name.into(), value));
        stat("maxbytes", self.maxbytes.into());
        stat("maxconns", self.maxconns.into());
        stat("tcpport", u64::from(self.tcp_port).into());
        stat("udpport", u64::from(self.udp_port).into());
        let interfaces = match self.interfaces {
            [] => "NULL".into(),
            all => all.join(",").into(),
        };
        stat("inter", interfaces);
        stat("verbosity", self.verbosity.into());
        stat("oldest", 0u64.into());
        stat(
            "evictions",
            if self.evictions { "on" } else { "off" }.into(),
        );
        stat("domain_socket", text_or(self.domain_socket, "NULL"));
        stat("umask", format!("{:o}", self.umask).into());
        stat("shutdown_command", yes_no(self.shutdown_command));
        stat("growth_factor", format!("{:.2}", self.growth_factor).into());
        stat("chunk_size", self.chunk_size.into());
        stat("num_threads", self.threads.into());
        stat("num_threads_per_udp", self.threads.into());
        stat(
            "stat_key_prefix",
            char::from(self.stat_key_prefix).to_string().into(),
        );
        stat("detail_enabled", yes_no(self.detail_enabled));
        stat("reqs_per_event", self.reqs_per_event.into());
        stat("cas_enabled", yes_no(self.cas_enabled));
        stat("tcp_backlog", self.tcp_backlog.into());
        stat("binding_protocol", self.binding_protocol.into());
        stat("auth_enabled_sasl", yes_no(self.auth_enabled_sasl));
        stat("auth_enabled_ascii", yes_no(self.auth_enabled_ascii));
        stat("item_size_max", self.item_size_max.into());
        stat("maxconns_fast", "yes".into());
        stat("hashpower_init", 0u64.into());
        stat("slab_reassign", "yes".into());
        stat("slab_automove", u64::from(self.slab_automove).into());
        stat("slab_automove_ratio", "0.80".into());
        stat("slab_automove_window", 30u64.into());
        stat("slab_chunk_max", SLAB_CHUNK_MAX.into());
        stat("lru_crawler", yes_no(self.lru_crawler));
        stat(
            "lru_crawler_sleep",
            u64::from(self.lru_crawler_sleep).into(),
        );
        stat(
            "lru_crawler_tocrawl",
            u64::from(self.lru_crawler_tocrawl).into(),
        );
        stat("tail_repair_time", 0u64.into());
        stat("flush_enabled", yes_no(self.flush_enabled));
        stat("dump_enabled", "yes".into());
        stat("hash_algorithm", "foldhash".into());
        stat("lru_maintainer_thread", "no".into());
        stat("lru_segmented", "no".into());
        stat("hot_lru_pct", 20u64.into());
        stat("warm_lru_pct", 40u64.into());
        stat("hot_max_factor", "0.20".into());
        stat("warm_max_factor", "2.00".into());
        stat("temp_lru", "no".into());
        stat("temporary_ttl", 61u64.into());
        stat("idle_timeout", self.idle_timeout.into());
        stat("watcher_logbuf_size", self.watcher_logbuf_size.into());
        stat("worker_logbuf_size", self.worker_logbuf_size.into());
        stat("read_buf_mem_limit", self.read_buf_mem_limit.into());
        stat("track_sizes", "no".into());
        stat("inline_ascii_response", "no".into());
        for (name, value) in EXTSTORE_SETTINGS {
            stat(name, value.into());
        }
        stat("slab_automove_freeratio", "0.010".into());
        stat("ext_drop_unread", "no".into());
        let tls = &self.tls;
        stat("ssl_enabled", yes_no(self.ssl_enabled));
        stat("ssl_chain_cert", text_or(tls.chain_cert, "(null)"));
        stat("ssl_key", text_or(tls.key, "(null)"));
        stat("ssl_verify_mode", u64::from(tls.verify_mode).into());
        stat("ssl_keyformat", 1u64.into());
        stat("ssl_ciphers", "NULL".into());
        stat("ssl_ca_cert", text_or(tls.ca_cert, "NULL"));
        stat("ssl_wbuf_size", tls.wbuf_size.into());
        stat("ssl_session_cache", "no".into());
        stat("ssl_kernel_tls", "no".into());
        stat("ssl_min_version", tls.min_version.to_string().into());
        stat("num_napi_ids", "(null)".into());
        stat("memory_file", text_or(self.memory_file, "(null)"));
        stat("io_engine", self.io_engine.into());
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Clock, StoreConfig, StoreMode};
    use std::sync::Arc;

    fn facts() -> ServerFacts {
        ServerFacts {
            version: "test",
            max_connections: 1024,
            threads: 4,
            since_cert_refresh: None,
            udp_enabled: false,
            snapshot_interval: 0,
            idle_timeout_enabled: false,
            lru_maintainer: true,
            crawler: None,
        }
    }

    #[test]
    fn names_are_unique_within_each_group() {
        let store = Store::new(&StoreConfig::default(), Arc::new(Clock::new()));
        store.store(StoreMode::Set, b"k", 0, 0, b"v");
        let snapshot = Snapshot::collect(&store, &ServerStats::default(), facts());
        for lines in [snapshot.general(), snapshot.items(), snapshot.slabs()] {
            let mut names: Vec<_> = lines.iter().map(|(name, _)| name.clone()).collect();
            let count = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), count);
        }
    }

    #[test]
    fn the_large_class_shows_in_items_but_not_in_slabs() {
        let store = Store::new(&StoreConfig::default(), Arc::new(Clock::new()));
        store.store(StoreMode::Set, b"big", 0, 0, &vec![b'v'; 100_000]);
        let snapshot = Snapshot::collect(&store, &ServerStats::default(), facts());
        assert_eq!(snapshot.classes_with_items().count(), 1);
        assert_eq!(snapshot.classes_with_pages().count(), 0);
        assert_eq!(snapshot.items.curr_items, 1);
    }

    #[test]
    fn cpu_time_prints_six_fraction_digits() {
        let time = CpuTime {
            seconds: 3,
            micros: 42,
        };
        assert_eq!(StatValue::Cpu(time).to_string(), "3.000042");
    }
}
