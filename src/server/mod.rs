//! Networking: listeners, the accept loop with the connection limit, the worker threads,
//! background tasks (clock tick, expiry crawler) and orderly shutdown.
//!
//! Like memcached, one thread accepts and hands each connection to one of `-t` worker
//! threads, round robin; each worker runs a single-threaded tokio runtime, so a
//! connection's task never migrates and wakes no other thread.

mod connection;
mod listen;
pub mod tls;
pub mod udp;

pub use listen::{Listener, bind_listeners, bind_udp};

use listen::{Accepted, Socket, StdSocket};

use crate::config::Settings;
use crate::protocol::{Limits, ProtocolError};
use crate::stats::{ConnInfo, ServerStats};
use crate::store::{Clock, Store};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{Notify, watch};

/// How often the crawler wakes, and how many pages per shard it scans each time.
const CRAWL_INTERVAL: Duration = Duration::from_millis(100);
const CRAWL_PAGES_PER_TICK: usize = 4;

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
    /// Fired by `shutdown`; the caller of `run` decides what stopping means.
    pub shutdown_requested: Notify,
    next_connection_id: AtomicU64,
}

impl Shared {
    /// Builds the store and counters for these settings; fails if TLS certificates
    /// cannot be loaded.
    pub fn new(settings: Settings, clock: Arc<Clock>) -> Result<Arc<Shared>, String> {
        let tls = match &settings.tls {
            Some(options) => Some(tls::TlsState::new(options.clone(), clock.unix_now())?),
            None => None,
        };
        let store = Store::new(&settings.store_config(), clock);
        let stats = ServerStats::default();
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
            shutdown_requested: Notify::new(),
            next_connection_id: AtomicU64::new(1),
        }))
    }
}

/// Serves the listeners until `shutdown` completes, then stops accepting, tells every
/// connection to finish, and returns.
pub async fn run(
    shared: Arc<Shared>,
    listeners: Vec<Listener>,
    udp_sockets: Vec<tokio::net::UdpSocket>,
    metrics_listener: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_sender, stop) = watch::channel(false);
    let workers = match Workers::start(shared.settings.threads, &stop) {
        Ok(workers) => Arc::new(workers),
        Err(error) => {
            tracing::error!(%error, "cannot start worker threads");
            return;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(tick_clock(shared.clone(), stop.clone()));
    tasks.spawn(crawl(shared.clone(), stop.clone()));
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
        tasks.spawn(crate::metrics::serve(
            shared.clone(),
            listener,
            stop.clone(),
        ));
    }
    for socket in udp_sockets {
        tasks.spawn(udp::serve(shared.clone(), socket, stop.clone()));
    }
    shutdown.await;
    let _ = stop_sender.send(true);
    // Background tasks and accept loops stop at once; connections see the signal too.
    while tokio::time::timeout(Duration::from_secs(2), tasks.join_next())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
}

/// The worker threads, each driving its own single-threaded runtime.
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    next: AtomicU64,
}

impl Workers {
    fn start(count: usize, stop: &watch::Receiver<bool>) -> std::io::Result<Workers> {
        let mut handles = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let mut stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let _ = stop.changed().await;
                    });
                    // Connections saw the stop signal; give them a moment to finish.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })?;
        }
        Ok(Workers {
            handles,
            next: AtomicU64::new(0),
        })
    }

    /// The worker for the next connection.
    fn pick(&self) -> &tokio::runtime::Handle {
        let index = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.handles.len();
        &self.handles[index]
    }
}

/// `-o snapshot_interval`: a crash loses at most that many seconds of writes. The
/// snapshot runs on a blocking thread and holds each shard's lock only to copy it.
async fn snapshot_periodically(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(shared.settings.snapshot_interval);
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let shared = shared.clone();
                let saved = tokio::task::spawn_blocking(move || {
                    let path = shared.settings.memory_file.clone().unwrap_or_default();
                    crate::store::snapshot::save(&shared.store, std::path::Path::new(&path))
                })
                .await;
                match saved {
                    Ok(Ok(stats)) => tracing::debug!(items = stats.items, "periodic snapshot"),
                    Ok(Err(error)) => tracing::error!(%error, "periodic snapshot failed"),
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
        let info = Arc::new(ConnInfo {
            id,
            peer: accepted.peer.clone(),
            local: accepted.local.clone(),
            last_command: shared.store.clock().now().into(),
        });
        stats
            .connection_structures
            .fetch_max(current + 1, Ordering::Relaxed);
        let shared = shared.clone();
        let stop = stop.clone();
        // The socket moves to the worker's reactor.
        let socket = accepted.socket.into_std();
        let tls = accepted.tls;
        let task = async move {
            let _admitted = shared.stats.admit(info.clone());
            match socket {
                Ok(StdSocket::Tcp(socket)) => match (TcpStream::from_std(socket), &shared.tls) {
                    // On the heap: TLS state is large, and plain connections would
                    // otherwise each reserve room for it in their task.
                    (Ok(socket), Some(state)) if tls => {
                        Box::pin(serve_tls(socket, state, &shared, &info, stop)).await;
                    }
                    (Ok(socket), _) => connection::serve(socket, &shared, &info, stop).await,
                    (Err(_), _) => {}
                },
                Ok(StdSocket::Unix(socket)) => {
                    if let Ok(socket) = UnixStream::from_std(socket) {
                        connection::serve(socket, &shared, &info, stop).await;
                    }
                }
                Err(_) => {}
            }
        };
        workers.pick().spawn(task);
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
