//! Prometheus `/metrics` (`--metrics-listen`), in memcached_exporter's names and labels so
//! existing dashboards and alerts work unchanged. Every figure is read, at scrape time,
//! from the same `stats` lines the text protocol prints, so the two never disagree.

use crate::command::stats_pairs;
use crate::protocol::StatsGroup;
use crate::server::Shared;
use metrics::{counter, gauge, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// memcached stat → exporter counter name.
const COUNTERS: &[(&str, &str)] = &[
    ("total_items", "memcached_items_total"),
    ("bytes_read", "memcached_read_bytes_total"),
    ("bytes_written", "memcached_written_bytes_total"),
    ("total_connections", "memcached_connections_total"),
    (
        "rejected_connections",
        "memcached_connections_rejected_total",
    ),
    ("conn_yields", "memcached_connections_yielded_total"),
    (
        "listen_disabled_num",
        "memcached_connections_listener_disabled_total",
    ),
    ("evictions", "memcached_items_evicted_total"),
    ("reclaimed", "memcached_items_reclaimed_total"),
    ("store_too_large", "memcached_item_too_large_total"),
    ("store_no_memory", "memcached_item_no_memory_total"),
];

/// memcached stat → exporter gauge name.
const GAUGES: &[(&str, &str)] = &[
    ("time", "memcached_time_seconds"),
    // memcached_exporter types this as a counter without `_total`, which promtool
    // rejects; a gauge keeps the name dashboards use.
    ("uptime", "memcached_uptime_seconds"),
    ("bytes", "memcached_current_bytes"),
    ("limit_maxbytes", "memcached_limit_bytes"),
    ("curr_items", "memcached_current_items"),
    ("curr_connections", "memcached_current_connections"),
    ("accepting_conns", "memcached_accepting_connections"),
];

/// Per-slab-class stat → exporter gauge name (label `slab`).
const SLAB_GAUGES: &[(&str, &str)] = &[
    ("chunk_size", "memcached_slab_chunk_size_bytes"),
    ("chunks_per_page", "memcached_slab_chunks_per_page"),
    ("total_pages", "memcached_slab_current_pages"),
    ("total_chunks", "memcached_slab_current_chunks"),
    ("used_chunks", "memcached_slab_chunks_used"),
    ("free_chunks", "memcached_slab_chunks_free"),
];

/// The recorder `/metrics` renders from.
pub struct Exporter {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

/// Help texts for the series that do not come from one stat of the tables above.
const HELP: &[(&str, &str)] = &[
    ("memcached_up", "Whether the scrape worked."),
    ("memcached_version", "The server version, as a label."),
    (
        "memcached_max_connections",
        "Maximum simultaneous connections (-c).",
    ),
    (
        "memcached_commands_total",
        "Commands by command and status.",
    ),
    ("memcached_slab_current_items", "Items per slab class."),
    (
        "memcached_slab_mem_requested_bytes",
        "Bytes requested by the items of a slab class.",
    ),
    (
        "memcached_slab_items_evicted_total",
        "Items evicted from a slab class.",
    ),
    (
        "memcached_slab_items_reclaimed_total",
        "Expired items reclaimed in a slab class.",
    ),
    (
        "memcached_slab_items_outofmemory_total",
        "Stores refused for lack of memory in a slab class.",
    ),
];

impl Default for Exporter {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, || {
            for (stat, name) in COUNTERS.iter().chain(GAUGES).chain(SLAB_GAUGES) {
                let help = format!("memcached stat {stat}.");
                metrics::describe_counter!(*name, help.clone());
                metrics::describe_gauge!(*name, help);
            }
            for (name, help) in HELP {
                metrics::describe_counter!(*name, *help);
                metrics::describe_gauge!(*name, *help);
            }
        });
        Exporter { recorder, handle }
    }
}

fn number(pairs: &HashMap<String, String>, name: &str) -> Option<f64> {
    pairs.get(name).and_then(|value| value.parse().ok())
}

impl Exporter {
    /// Reads the stats and renders the exposition text.
    pub fn render(&self, shared: &Shared) -> String {
        let read = |group| {
            stats_pairs(
                &shared.store,
                &shared.settings,
                &shared.stats,
                shared.tls.as_ref(),
                group,
            )
            .unwrap_or_default()
        };
        let general: HashMap<String, String> = read(StatsGroup::General).into_iter().collect();
        let settings: HashMap<String, String> = read(StatsGroup::Settings).into_iter().collect();
        let slabs = read(StatsGroup::Slabs);
        let items = read(StatsGroup::Items);
        with_local_recorder(&self.recorder, || {
            gauge!("memcached_up").set(1.0);
            let version = general.get("version").cloned().unwrap_or_default();
            gauge!("memcached_version", "version" => version).set(1.0);
            for (stat, name) in COUNTERS {
                if let Some(value) = number(&general, stat) {
                    counter!(*name).absolute(value as u64);
                }
            }
            for (stat, name) in GAUGES {
                if let Some(value) = number(&general, stat) {
                    gauge!(*name).set(value);
                }
            }
            if let Some(value) = number(&settings, "maxconns") {
                gauge!("memcached_max_connections").set(value);
            }
            let commands = |command: &'static str, status: &'static str, value: f64| {
                counter!("memcached_commands_total", "command" => command, "status" => status)
                    .absolute(value as u64);
            };
            for command in ["get", "delete", "incr", "decr", "cas", "touch"] {
                for (status, suffix) in [("hit", "hits"), ("miss", "misses")] {
                    if let Some(value) = number(&general, &format!("{command}_{suffix}")) {
                        commands(command, status, value);
                    }
                }
            }
            let stat = |name: &str| number(&general, name).unwrap_or(0.0);
            commands("cas", "badval", stat("cas_badval"));
            commands("flush", "hit", stat("cmd_flush"));
            let sets = stat("cmd_set") - stat("cas_hits") - stat("cas_misses") - stat("cas_badval");
            commands("set", "hit", sets.max(0.0));
            for (key, value) in &slabs {
                let Some((slab, field)) = key.split_once(':') else {
                    continue;
                };
                let Ok(value) = value.parse::<f64>() else {
                    continue;
                };
                if let Some((_, name)) = SLAB_GAUGES.iter().find(|(stat, _)| *stat == field) {
                    gauge!(*name, "slab" => slab.to_string()).set(value);
                }
            }
            for (key, value) in &items {
                let mut parts = key.splitn(3, ':');
                let (Some("items"), Some(slab), Some(field)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let Ok(value) = value.parse::<f64>() else {
                    continue;
                };
                let slab = slab.to_string();
                match field {
                    "number" => gauge!("memcached_slab_current_items", "slab" => slab).set(value),
                    "mem_requested" => {
                        gauge!("memcached_slab_mem_requested_bytes", "slab" => slab).set(value)
                    }
                    "evicted" => counter!("memcached_slab_items_evicted_total", "slab" => slab)
                        .absolute(value as u64),
                    "reclaimed" => counter!("memcached_slab_items_reclaimed_total", "slab" => slab)
                        .absolute(value as u64),
                    "outofmemory" => {
                        counter!("memcached_slab_items_outofmemory_total", "slab" => slab)
                            .absolute(value as u64)
                    }
                    _ => {}
                }
            }
        });
        let mut text = self.handle.render();
        text.push_str(&process_metrics(shared));
        // CPU seconds are fractional counters, which the `metrics` API cannot express.
        for (stat, name) in [
            ("rusage_user", "memcached_process_user_cpu_seconds_total"),
            (
                "rusage_system",
                "memcached_process_system_cpu_seconds_total",
            ),
        ] {
            if let Some(value) = number(&general, stat) {
                text.push_str(&format!(
                    "# HELP {name} memcached stat {stat}.\n# TYPE {name} counter\n{name} {value}\n"
                ));
            }
        }
        text
    }
}

/// client_golang's process collector series, as memcached_exporter exposes them.
fn process_metrics(shared: &Shared) -> String {
    let mut text = String::new();
    let mut series = |name: &str, kind: &str, help: &str, value: f64| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    let (user, system) = crate::stats::rusage();
    let cpu = user.parse::<f64>().unwrap_or(0.0) + system.parse::<f64>().unwrap_or(0.0);
    series(
        "memcached_process_cpu_seconds_total",
        "counter",
        "User and system CPU seconds.",
        cpu,
    );
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let open = entries.count() as f64;
        series(
            "memcached_process_open_fds",
            "gauge",
            "Open file descriptors.",
            open,
        );
    }
    // SAFETY: getrlimit fills a zeroed struct.
    let max_fds = unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur as f64
    };
    series(
        "memcached_process_max_fds",
        "gauge",
        "Descriptor limit.",
        max_fds,
    );
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
        let mut fields = statm
            .split_whitespace()
            .map(|field| field.parse::<f64>().unwrap_or(0.0));
        let (virtual_pages, resident_pages) =
            (fields.next().unwrap_or(0.0), fields.next().unwrap_or(0.0));
        series(
            "memcached_process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size.",
            virtual_pages * page,
        );
        series(
            "memcached_process_resident_memory_bytes",
            "gauge",
            "Resident set size.",
            resident_pages * page,
        );
    }
    let started = shared.store.clock().process_started() + 2;
    series(
        "memcached_process_start_time_seconds",
        "gauge",
        "Start time, Unix seconds.",
        started as f64,
    );
    text
}

/// Serves `GET /metrics` on `listener` until the server stops.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let exporter = Arc::new(Exporter::default());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((socket, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let shared = shared.clone();
        let exporter = exporter.clone();
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(10), answer(socket, &shared, &exporter))
                    .await;
        });
    }
}

/// One HTTP/1.1 exchange: `/metrics` gets the exposition, anything else a 404.
async fn answer(
    mut socket: TcpStream,
    shared: &Shared,
    exporter: &Exporter,
) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        let count = socket.read(&mut chunk).await?;
        if count == 0 || request.len() > 16 * 1024 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..count]);
    }
    let first_line = request
        .split(|&byte| byte == b'\n')
        .next()
        .unwrap_or_default();
    let (status, body) = if first_line.starts_with(b"GET /metrics ") {
        ("200 OK", exporter.render(shared))
    } else {
        ("404 Not Found", "not found; try /metrics\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}
