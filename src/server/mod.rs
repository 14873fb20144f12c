//! Networking: listeners, the accept loop with the connection limit, the worker threads,
//! background tasks (clock tick, expiry crawler, periodic snapshot) and orderly shutdown.
//!
//! Like memcached, one thread accepts and hands each connection to one of `-t` workers,
//! round robin. Each worker has an engine thread that serves its plain TCP connections
//! (`uring` or `epoll`, through `handoff`) and a single-threaded tokio runtime for its
//! TLS and unix-socket connections and watchers, so a connection never migrates and
//! wakes no other thread.
//!
//! An orderly stop (SIGTERM, SIGINT, SIGUSR1, `shutdown [graceful]`): stop accepting;
//! every connection finishes the batch it is executing, flushes its replies and closes;
//! workers wait for that (bounded by [`StopKind::drain_limit`]) and exit; only then does
//! [`run`] return, so the final snapshot sees every write any client was told `STORED`.

mod connection;
mod epoll;
mod handoff;
mod listen;
pub mod tls;
pub mod udp;
mod uring;

pub use listen::{Listener, bind_listeners, bind_udp};

use listen::{Accepted, Socket, StdSocket};

use crate::config::{IoEngine, Settings};
use crate::protocol::{Limits, ProtocolError};
use crate::stats::{ConnInfo, ConnKind, ServerStats};
use crate::store::snapshot::{SnapshotError, Snapshots};
use crate::store::{Clock, Store};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{Notify, watch};

/// How often the crawler wakes, and how many pages per shard it scans each time.
const CRAWL_INTERVAL: Duration = Duration::from_millis(100);
const CRAWL_PAGES_PER_TICK: usize = 4;
/// How often a stopping worker checks whether its connections have finished.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// How the server was asked to stop. Both kinds stop accepting, let connections finish
/// and flush the batch they are executing, save the `-e` snapshot and exit 0; they differ
/// in how long a slow client may take to receive its last replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// SIGTERM, SIGINT, `shutdown`.
    Immediate,
    /// SIGUSR1, `shutdown graceful` (memcached's graceful stop).
    Graceful,
}

impl StopKind {
    /// The longest a worker waits for its connections to finish before dropping them.
    pub fn drain_limit(self) -> Duration {
        match self {
            StopKind::Immediate => Duration::from_secs(1),
            StopKind::Graceful => Duration::from_secs(10),
        }
    }
}

/// State shared by every connection and background task.
pub struct Shared {
    /// The item store.
    pub store: Store,
    /// Validated settings.
    pub settings: Settings,
    /// Parser limits derived from the settings.
    pub limits: Limits,
    /// Server counters.
    pub stats: ServerStats,
    /// TLS certificates and acceptor, with `-Z`.
    pub tls: Option<tls::TlsState>,
    /// The `-e` snapshot file and its single writer.
    pub snapshots: Option<Snapshots>,
    /// Fired by `shutdown`; the caller of `run` decides what stopping means.
    shutdown_requested: Notify,
    /// The `shutdown` command asked for a graceful stop.
    graceful_requested: AtomicBool,
    next_connection_id: AtomicU64,
}

impl Shared {
    /// Builds the store and counters for these settings; fails if TLS certificates
    /// cannot be loaded.
    /// The io engine is settled here too (`-o io_engine`): `stats settings` shows the one
    /// in use.
    pub fn new(mut settings: Settings, clock: Arc<Clock>) -> Result<Arc<Shared>, String> {
        settings.io_engine = uring::resolve(
            settings.io_engine,
            settings.threads,
            uring::Cpus::of_this_process(),
            uring::probe,
        )?;
        let tls = match &settings.tls {
            Some(options) => Some(tls::TlsState::new(options.clone(), clock.unix_now())?),
            None => None,
        };
        let store = Store::new(&settings.store_config(), clock);
        let snapshots = settings.memory_file.as_ref().map(Snapshots::new);
        let stats = ServerStats {
            snapshot_health: snapshots.as_ref().map(Snapshots::health),
            ..ServerStats::default()
        };
        stats.buffers.set_limit(settings.read_buf_mem_limit);
        stats
            .verbosity
            .store(u32::from(settings.verbosity), Ordering::Relaxed);
        Ok(Arc::new(Shared {
            store,
            tls,
            limits: settings.limits(),
            settings,
            stats,
            snapshots,
            shutdown_requested: Notify::new(),
            graceful_requested: AtomicBool::new(false),
            next_connection_id: AtomicU64::new(1),
        }))
    }

    /// The TLS state as commands see it (`refresh_certs`, `ssl_*` stats).
    pub fn tls_control(&self) -> Option<&dyn crate::command::TlsControl> {
        self.tls
            .as_ref()
            .map(|tls| tls as &dyn crate::command::TlsControl)
    }

    /// `shutdown [graceful]`: wakes whoever waits in [`Shared::shutdown_command`].
    pub fn request_shutdown(&self, graceful: bool) {
        self.graceful_requested.store(graceful, Ordering::Relaxed);
        self.shutdown_requested.notify_one();
    }

    /// Waits for a `shutdown` command and tells which kind it asked for.
    pub async fn shutdown_command(&self) -> StopKind {
        self.shutdown_requested.notified().await;
        if self.graceful_requested.load(Ordering::Relaxed) {
            StopKind::Graceful
        } else {
            StopKind::Immediate
        }
    }
}

/// Serves the listeners until `shutdown` completes, then stops accepting, lets every
/// connection finish its batch and flush, and returns once no worker thread runs.
pub async fn run(
    shared: Arc<Shared>,
    listeners: Vec<Listener>,
    udp_sockets: Vec<tokio::net::UdpSocket>,
    metrics_listener: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = StopKind>,
) {
    let (stop_sender, stop) = watch::channel(false);
    let timers = shared.settings.idle_timeout > 0;
    let workers = match Workers::start(&shared, &stop, timers) {
        Ok(workers) => Arc::new(workers),
        Err(error) => {
            tracing::error!(%error, "cannot start worker threads");
            return;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(tick_clock(shared.clone(), stop.clone()));
    tasks.spawn(crawl(shared.clone(), stop.clone()));
    list_sockets(&shared, &listeners, &udp_sockets);
    for listener in listeners {
        tasks.spawn(accept_loop(
            shared.clone(),
            workers.clone(),
            listener,
            stop.clone(),
        ));
    }
    if shared.tls.is_some() {
        tasks.spawn(reload_on_sighup(shared.clone(), stop.clone()));
    }
    if shared.settings.snapshot_interval > 0 {
        tasks.spawn(snapshot_periodically(shared.clone(), stop.clone()));
    }
    if let Some(listener) = metrics_listener {
        let source = shared.clone();
        let source: crate::metrics::SnapshotSource = Arc::new(move || {
            let shared = &source;
            crate::command::stats::snapshot(
                &shared.store,
                &shared.settings,
                &shared.stats,
                shared.tls_control(),
            )
        });
        tasks.spawn(crate::metrics::serve(listener, stop.clone(), source));
    }
    for socket in udp_sockets {
        tasks.spawn(udp::serve(shared.clone(), socket, stop.clone()));
    }
    let kind = shutdown.await;
    if let Some(snapshots) = &shared.snapshots {
        snapshots.stop_periodic();
    }
    workers.set_drain_limit(kind.drain_limit());
    let _ = stop_sender.send(true);
    // Background tasks and accept loops stop at once (a periodic snapshot in progress
    // gives up at its next batch); connections see the signal too.
    while tokio::time::timeout(Duration::from_secs(2), tasks.join_next())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    let joined = tokio::task::spawn_blocking(move || workers.join()).await;
    if let Err(error) = joined {
        tracing::error!(%error, "worker threads did not stop cleanly");
    }
}

/// One worker: its single-threaded runtime (accepted connections' tasks, TLS, unix
/// sockets, watchers) and the engine thread that serves its plain TCP connections.
struct Worker {
    runtime: tokio::runtime::Handle,
    engine: Arc<handoff::EngineHandle>,
}

/// The worker threads, each driving its own single-threaded runtime and engine thread.
struct Workers {
    workers: Vec<Worker>,
    next: AtomicU64,
    /// Connections being served, on all workers.
    live: Arc<AtomicUsize>,
    /// Milliseconds a stopping worker waits for its connections ([`StopKind`]).
    drain_limit_ms: Arc<AtomicU64>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// Counts a connection as live for as long as its task exists, even if it panics.
struct LiveConnection(Arc<AtomicUsize>);

impl LiveConnection {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        LiveConnection(live.clone())
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl Workers {
    /// Starts `-t` workers; `timers` enables tokio's timer in them, which costs every
    /// wait for events a clock read and a timer-wheel check, so only idle_timeout gets it.
    fn start(
        shared: &Arc<Shared>,
        stop: &watch::Receiver<bool>,
        timers: bool,
    ) -> std::io::Result<Workers> {
        let count = shared.settings.threads;
        let mut workers = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        let live = Arc::new(AtomicUsize::new(0));
        let drain_limit_ms = Arc::new(AtomicU64::new(0));
        for index in 0..count {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_io();
            if timers {
                builder.enable_time();
            }
            let runtime = builder.build()?;
            let watchers = handoff::WatcherHome {
                runtime: runtime.handle().clone(),
                stop: stop.clone(),
            };
            let (engine, thread) = match shared.settings.io_engine {
                IoEngine::Uring => {
                    uring::start(index, shared.clone(), watchers, drain_limit_ms.clone())?
                }
                IoEngine::Auto | IoEngine::Epoll => {
                    epoll::start(index, shared.clone(), watchers, drain_limit_ms.clone())?
                }
            };
            threads.push(thread);
            workers.push(Worker {
                runtime: runtime.handle().clone(),
                engine: engine.clone(),
            });
            let mut stop = stop.clone();
            let live = live.clone();
            let drain_limit_ms = drain_limit_ms.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("worker-{index}"))
                    .spawn(move || {
                        runtime.block_on(async move {
                            let _ = stop.changed().await;
                            engine.stop();
                            // Connections saw the stop signal: each finishes the batch it
                            // is executing, flushes and returns. Wait for that, bounded.
                            let limit = drain_limit_ms.load(Ordering::Relaxed);
                            let deadline = Instant::now() + Duration::from_millis(limit);
                            // Ticks from a plain thread: the runtime may have no timer.
                            let (tick, mut ticks) = tokio::sync::mpsc::channel::<()>(1);
                            let ticker = std::thread::Builder::new()
                                .name("drain-ticker".into())
                                .spawn(move || {
                                    while tick.blocking_send(()).is_ok() {
                                        std::thread::sleep(DRAIN_POLL);
                                    }
                                });
                            if ticker.is_ok() {
                                while live.load(Ordering::Acquire) > 0 && Instant::now() < deadline
                                {
                                    let _ = ticks.recv().await;
                                }
                            }
                        });
                        // What is left (a client that does not read its replies) is dropped;
                        // no task can execute a request once this returns.
                        runtime.shutdown_timeout(Duration::ZERO);
                    })?,
            );
        }
        Ok(Workers {
            workers,
            next: AtomicU64::new(0),
            live,
            drain_limit_ms,
            threads: Mutex::new(threads),
        })
    }

    /// How long stopping workers wait for their connections; set before the stop signal.
    fn set_drain_limit(&self, limit: Duration) {
        self.drain_limit_ms
            .store(limit.as_millis() as u64, Ordering::Relaxed);
    }

    /// Waits until every worker thread has exited.
    fn join(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }

    /// The worker for the next connection.
    fn pick(&self) -> &Worker {
        let index = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.workers.len();
        &self.workers[index]
    }
}

/// `-o snapshot_interval`: a crash loses at most that many seconds of writes. The
/// snapshot runs on a blocking thread and holds a shard's lock only for one bounded batch.
async fn snapshot_periodically(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(shared.settings.snapshot_interval);
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // Saves take as long as they take; the next one starts a full interval later.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let shared = shared.clone();
                let saved = tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    shared
                        .snapshots
                        .as_ref()
                        .map(|snapshots| (snapshots.save_periodic(&shared.store), started.elapsed()))
                })
                .await;
                match saved {
                    Ok(Some((Ok(stats), took))) => tracing::debug!(
                        items = stats.items,
                        seconds = took.as_secs_f64(),
                        longest_lock_hold_us = stats.longest_hold.as_micros() as u64,
                        "periodic snapshot"
                    ),
                    Ok(Some((Err(SnapshotError::Abandoned), _))) => {
                        tracing::debug!("periodic snapshot abandoned: stopping")
                    }
                    Ok(Some((Err(error), _))) => tracing::error!(%error, "periodic snapshot failed"),
                    Ok(None) => return,
                    Err(error) => tracing::error!(%error, "periodic snapshot task failed"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// SIGHUP re-reads the TLS certificates, like `refresh_certs`.
async fn reload_on_sighup(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                if let Some(tls) = &shared.tls {
                    match tls.refresh(shared.store.clock().unix_now()) {
                        Ok(()) => tracing::info!("SIGHUP: certificates reloaded"),
                        Err(error) => tracing::error!(%error, "SIGHUP: certificate reload failed"),
                    }
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Lists the listening sockets in `stats conns` as memcached does: each listener, and
/// each UDP socket once per worker thread (every worker reads it).
fn list_sockets(shared: &Shared, listeners: &[Listener], udp_sockets: &[tokio::net::UdpSocket]) {
    let now = shared.store.clock().now();
    let list = |kind, address: String| {
        let id = shared.next_connection_id.fetch_add(1, Ordering::Relaxed);
        let info = ConnInfo::new(id, kind, address, String::new(), now);
        shared.stats.conns.insert(id, Arc::new(info));
    };
    for listener in listeners {
        list(ConnKind::Listener, listener.name());
    }
    for socket in udp_sockets {
        let Ok(address) = socket.local_addr() else {
            continue;
        };
        let name = match address {
            std::net::SocketAddr::V4(v4) => format!("udp:{v4}"),
            std::net::SocketAddr::V6(v6) => format!("udp6:{v6}"),
        };
        for _ in 0..shared.settings.threads {
            list(ConnKind::Udp, name.clone());
        }
    }
}

async fn tick_clock(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = interval.tick() => shared.store.clock().tick(),
            _ = stop.changed() => return,
        }
    }
}

async fn crawl(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(CRAWL_INTERVAL);
    loop {
        tokio::select! {
            _ = interval.tick() => shared.store.crawl(CRAWL_PAGES_PER_TICK),
            _ = stop.changed() => return,
        }
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    workers: Arc<Workers>,
    listener: Listener,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let accepted = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(1);
                accepted
            }
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let stats = &shared.stats;
        stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let current = stats.curr_connections.fetch_add(1, Ordering::Relaxed);
        if current as usize >= shared.settings.max_connections {
            stats.curr_connections.fetch_sub(1, Ordering::Relaxed);
            stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(reject(accepted));
            continue;
        }
        let id = shared.next_connection_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(ConnInfo::new(
            id,
            ConnKind::Client,
            accepted.peer.clone(),
            accepted.local.clone(),
            shared.store.clock().now(),
        ));
        stats
            .connection_structures
            .fetch_max(current + 1, Ordering::Relaxed);
        let shared = shared.clone();
        let stop = stop.clone();
        let live = LiveConnection::new(&workers.live);
        // The socket moves to the worker's reactor.
        let socket = accepted.socket.into_std();
        let tls = accepted.tls;
        let worker = workers.pick();
        let socket = match socket {
            // Plain TCP goes to the worker's engine thread with its ticket: no task.
            Ok(StdSocket::Tcp(socket)) if !tls => {
                worker
                    .engine
                    .hand_over(socket, handoff::Ticket::new(shared, info, live));
                continue;
            }
            socket => socket,
        };
        let task = async move {
            let _admitted = shared.stats.admit(info.clone());
            let _live = live;
            match socket {
                // Only TLS reaches here: plain TCP went to the engine thread.
                Ok(StdSocket::Tcp(socket)) => {
                    if let (Ok(socket), Some(state)) = (TcpStream::from_std(socket), &shared.tls) {
                        // On the heap: TLS state is large, and unix-socket connections
                        // would otherwise each reserve room for it in their task.
                        Box::pin(serve_tls(socket, state, &shared, &info, stop)).await;
                    }
                }
                Ok(StdSocket::Unix(socket)) => {
                    if let Ok(socket) = UnixStream::from_std(socket) {
                        connection::serve(socket, &shared, &info, stop).await;
                    }
                }
                Err(_) => {}
            }
        };
        worker.runtime.spawn(task);
    }
}

/// Completes the TLS handshake, then serves the connection.
async fn serve_tls(
    socket: TcpStream,
    state: &tls::TlsState,
    shared: &Shared,
    info: &ConnInfo,
    stop: watch::Receiver<bool>,
) {
    match state.acceptor().accept(socket).await {
        Ok(stream) => connection::serve(stream, shared, info, stop).await,
        Err(error) => {
            tracing::warn!(%error, "TLS handshake failed");
            shared
                .stats
                .ssl_handshake_errors
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Tells a client over the limit why it is being closed, as memcached does.
async fn reject(accepted: Accepted) {
    let message = ProtocolError::TooManyConnections.wire();
    let limit = Duration::from_secs(1);
    match accepted.socket {
        Socket::Tcp(mut socket) => {
            let _ = tokio::time::timeout(limit, socket.write_all(message)).await;
            let _ = socket.shutdown().await;
        }
        Socket::Unix(mut socket) => {
            let _ = tokio::time::timeout(limit, socket.write_all(message)).await;
            let _ = socket.shutdown().await;
        }
    }
}
