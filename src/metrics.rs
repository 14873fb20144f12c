//! Prometheus `/metrics` (`--metrics-listen`), in memcached_exporter's names and labels so
//! existing dashboards and alerts work unchanged. Every figure is read, at scrape time,
//! from the same typed [`Snapshot`] the `stats` commands render, so the two never
//! disagree. HTTP is hyper's (a scrape is one small GET, but parsing, keep-alive and
//! slow clients are hyper's to get right, not ours).

use crate::stats::snapshot::Snapshot;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::{counter, gauge, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Takes a snapshot of the server's figures; called once per scrape.
pub type SnapshotSource = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// A figure of the snapshot.
type Figure = fn(&Snapshot) -> u64;

/// memcached stat → exporter counter name.
const COUNTERS: &[(&str, &str, Figure)] = &[
    ("total_items", "memcached_items_total", |s| {
        s.items.total_items
    }),
    ("bytes_read", "memcached_read_bytes_total", |s| {
        s.server.bytes_read
    }),
    ("bytes_written", "memcached_written_bytes_total", |s| {
        s.server.bytes_written
    }),
    ("total_connections", "memcached_connections_total", |s| {
        s.server.total_connections
    }),
    (
        "rejected_connections",
        "memcached_connections_rejected_total",
        |s| s.server.rejected_connections,
    ),
    ("conn_yields", "memcached_connections_yielded_total", |s| {
        s.server.conn_yields
    }),
    (
        "listen_disabled_num",
        "memcached_connections_listener_disabled_total",
        |_| 0,
    ),
    ("evictions", "memcached_items_evicted_total", |s| {
        s.items.evictions
    }),
    ("reclaimed", "memcached_items_reclaimed_total", |s| {
        s.items.reclaimed
    }),
    ("store_too_large", "memcached_item_too_large_total", |s| {
        s.server.store_too_large
    }),
    ("store_no_memory", "memcached_item_no_memory_total", |s| {
        s.server.store_no_memory
    }),
];

/// memcached stat → exporter gauge name.
const GAUGES: &[(&str, &str, Figure)] = &[
    ("time", "memcached_time_seconds", |s| s.time as u64),
    // memcached_exporter types this as a counter without `_total`, which promtool
    // rejects; a gauge keeps the name dashboards use.
    ("uptime", "memcached_uptime_seconds", |s| {
        u64::from(s.uptime)
    }),
    ("bytes", "memcached_current_bytes", |s| s.items.bytes),
    ("limit_maxbytes", "memcached_limit_bytes", |s| {
        s.limit_maxbytes as u64
    }),
    ("curr_items", "memcached_current_items", |s| {
        s.items.curr_items
    }),
    ("curr_connections", "memcached_current_connections", |s| {
        s.server.curr_connections
    }),
    ("accepting_conns", "memcached_accepting_connections", |_| 1),
];

/// A figure of one slab class.
type ClassFigure = fn(&crate::store::ClassStats) -> u64;

/// Per-slab-class stat → exporter gauge name (label `slab`), for classes with pages.
const SLAB_GAUGES: &[(&str, &str, ClassFigure)] = &[
    ("chunk_size", "memcached_slab_chunk_size_bytes", |c| {
        c.chunk_size as u64
    }),
    ("chunks_per_page", "memcached_slab_chunks_per_page", |c| {
        c.chunks_per_page()
    }),
    ("total_pages", "memcached_slab_current_pages", |c| c.pages),
    ("total_chunks", "memcached_slab_current_chunks", |c| {
        c.total_chunks()
    }),
    ("used_chunks", "memcached_slab_chunks_used", |c| c.items),
    ("free_chunks", "memcached_slab_chunks_free", |c| {
        c.total_chunks() - c.items
    }),
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
    (
        "memcached_snapshot_interval_seconds",
        "Seconds between periodic -e snapshots (snapshot_interval; 0: none).",
    ),
    (
        "memcached_snapshot_saves_total",
        "Successful -e snapshot saves since start (snapshot_saves).",
    ),
    (
        "memcached_snapshot_failures_total",
        "Failed -e snapshot saves since start (snapshot_failures).",
    ),
    (
        "memcached_snapshot_last_success_timestamp_seconds",
        "Unix time of the last successful -e snapshot, 0 before the first (snapshot_last_success_time).",
    ),
    (
        "memcached_snapshot_last_duration_seconds",
        "How long the last successful -e snapshot took (snapshot_last_duration_us).",
    ),
    (
        "memcached_snapshot_last_size_bytes",
        "Size of the file the last successful -e snapshot wrote (snapshot_last_bytes).",
    ),
    (
        "memcached_snapshot_last_items",
        "Items the last successful -e snapshot wrote (snapshot_last_items).",
    ),
];

impl Default for Exporter {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, || {
            for (stat, name) in COUNTERS
                .iter()
                .chain(GAUGES)
                .map(|(stat, name, _)| (stat, name))
                .chain(SLAB_GAUGES.iter().map(|(stat, name, _)| (stat, name)))
            {
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

impl Exporter {
    /// Renders the exposition text of one snapshot.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let items = &snapshot.items;
        with_local_recorder(&self.recorder, || {
            gauge!("memcached_up").set(1.0);
            gauge!("memcached_version", "version" => snapshot.facts.version).set(1.0);
            for (_, name, figure) in COUNTERS {
                counter!(*name).absolute(figure(snapshot));
            }
            for (_, name, figure) in GAUGES {
                gauge!(*name).set(figure(snapshot) as f64);
            }
            gauge!("memcached_max_connections").set(snapshot.facts.max_connections as f64);
            let commands = |command: &'static str, status: &'static str, value: u64| {
                counter!("memcached_commands_total", "command" => command, "status" => status)
                    .absolute(value);
            };
            for (command, hits, misses) in [
                ("get", items.get_hits, items.get_misses),
                ("delete", items.delete_hits, items.delete_misses),
                ("incr", items.incr_hits, items.incr_misses),
                ("decr", items.decr_hits, items.decr_misses),
                ("cas", items.cas_hits, items.cas_misses),
                ("touch", items.touch_hits, items.touch_misses),
            ] {
                commands(command, "hit", hits);
                commands(command, "miss", misses);
            }
            commands("cas", "badval", items.cas_badval);
            commands("flush", "hit", snapshot.server.cmd_flush);
            let sets = snapshot
                .server
                .cmd_set
                .saturating_sub(items.cas_hits + items.cas_misses + items.cas_badval);
            commands("set", "hit", sets);
            if let Some(health) = &snapshot.snapshots {
                gauge!("memcached_snapshot_interval_seconds")
                    .set(snapshot.facts.snapshot_interval as f64);
                counter!("memcached_snapshot_saves_total").absolute(health.saves);
                counter!("memcached_snapshot_failures_total").absolute(health.failures);
                gauge!("memcached_snapshot_last_success_timestamp_seconds")
                    .set(health.last_success as f64);
                gauge!("memcached_snapshot_last_duration_seconds")
                    .set(health.last_duration.as_secs_f64());
                gauge!("memcached_snapshot_last_size_bytes").set(health.last_bytes as f64);
                gauge!("memcached_snapshot_last_items").set(health.last_items as f64);
            }
            for (id, class) in snapshot.classes_with_pages() {
                for (_, name, figure) in SLAB_GAUGES {
                    gauge!(*name, "slab" => id.to_string()).set(figure(class) as f64);
                }
            }
            for (id, class) in snapshot.classes_with_items() {
                let slab = || id.to_string();
                gauge!("memcached_slab_current_items", "slab" => slab()).set(class.items as f64);
                gauge!("memcached_slab_mem_requested_bytes", "slab" => slab())
                    .set(class.requested as f64);
                counter!("memcached_slab_items_evicted_total", "slab" => slab())
                    .absolute(class.counters.evicted);
                counter!("memcached_slab_items_reclaimed_total", "slab" => slab())
                    .absolute(class.counters.reclaimed);
                counter!("memcached_slab_items_outofmemory_total", "slab" => slab())
                    .absolute(class.counters.out_of_memory);
            }
        });
        let mut text = self.handle.render();
        text.push_str(&process_metrics(snapshot));
        // CPU seconds are fractional counters, which the `metrics` API cannot express.
        for (stat, name, time) in [
            (
                "rusage_user",
                "memcached_process_user_cpu_seconds_total",
                snapshot.rusage_user,
            ),
            (
                "rusage_system",
                "memcached_process_system_cpu_seconds_total",
                snapshot.rusage_system,
            ),
        ] {
            text.push_str(&format!(
                "# HELP {name} memcached stat {stat}.\n# TYPE {name} counter\n{name} {}\n",
                time.as_secs_f64()
            ));
        }
        text
    }
}

/// client_golang's process collector series, as memcached_exporter exposes them.
fn process_metrics(snapshot: &Snapshot) -> String {
    let mut text = String::new();
    let mut series = |name: &str, kind: &str, help: &str, value: f64| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    let cpu = snapshot.rusage_user.as_secs_f64() + snapshot.rusage_system.as_secs_f64();
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
    let started = snapshot.time - i64::from(snapshot.uptime);
    series(
        "memcached_process_start_time_seconds",
        "gauge",
        "Start time, Unix seconds.",
        started as f64,
    );
    text
}

/// Serves `GET /metrics` on `listener` until the server stops; any other path is 404.
pub async fn serve(listener: TcpListener, mut stop: watch::Receiver<bool>, source: SnapshotSource) {
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
        let exporter = exporter.clone();
        let source = source.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = answer(&request, &exporter, &source);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(socket), service);
            // A scraper that keeps its connection open is let go after a while.
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}

/// `GET /metrics` gets the exposition, anything else a 404.
fn answer(
    request: &Request<Incoming>,
    exporter: &Exporter,
    source: &SnapshotSource,
) -> Response<Full<Bytes>> {
    let (status, body) = if request.method() == Method::GET && request.uri().path() == "/metrics" {
        (StatusCode::OK, exporter.render(&source()))
    } else {
        (
            StatusCode::NOT_FOUND,
            "not found; try /metrics\n".to_string(),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
