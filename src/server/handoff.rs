//! Plain TCP connections handed from tokio to an engine thread, and what both engines
//! (`super::uring`, `super::epoll`) keep per client while they serve it.
//!
//! tokio stays the control plane: it accepts, applies `-c`, admits the connection (a
//! [`Ticket`]: `stats conns`, `curr_connections`, `watch connevents`), then hands the
//! socket and its ticket to its worker's engine thread through an inbox and an eventfd.
//! The engine thread is the data plane: one thread per worker, many connections, no
//! task or waker per connection or request. A client that asks for `watch` goes back to
//! tokio, which serves it on its worker's runtime.

use super::LiveConnection;
use super::Shared;
use super::connection::{Batch, Connection};
use crate::command::Flow;
use crate::command::session::Step;
use crate::stats::ConnInfo;
use crate::watch::{CloseReason, Watching};
use bytes::Bytes;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A connection's place in the server for as long as it lives: listed in `stats conns`
/// and counted in `curr_connections` and in the live count a stopping worker waits for,
/// with its `watch connevents` lines open. Dropping it gives all of that back and logs
/// `conn_close` with [`Ticket::reason`]. An engine thread holds it with the connection,
/// so a connection costs no tokio task while it is served.
pub(super) struct Ticket {
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
    _live: LiveConnection,
    /// What `conn_close` reports: until the connection says otherwise, that the server
    /// dropped it while stopping.
    pub(super) reason: CloseReason,
}

impl Ticket {
    /// Admits a connection already counted in `curr_connections`: lists it and logs its
    /// opening (`-vv`, `watch connevents`).
    pub(super) fn new(shared: Arc<Shared>, info: Arc<ConnInfo>, live: LiveConnection) -> Ticket {
        shared.stats.list(info.clone());
        super::connection::log_opened(&shared, &info);
        crate::watch::log_connection(info.id, &info.peer, None);
        Ticket {
            shared,
            info,
            _live: live,
            reason: CloseReason::Shutdown,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        crate::watch::log_connection(self.info.id, &self.info.peer, Some(self.reason));
        self.shared.stats.release(self.info.id);
    }
}

/// A connection handed to an engine thread.
pub(super) struct Handoff {
    socket: std::net::TcpStream,
    ticket: Ticket,
}

/// Where a connection that becomes a `watch`er is served: its worker's runtime, with
/// the server's stop signal.
pub(super) struct WatcherHome {
    /// The worker's tokio runtime.
    pub(super) runtime: tokio::runtime::Handle,
    /// Fires when the server stops.
    pub(super) stop: watch::Receiver<bool>,
}

/// The tokio side's way into one worker's engine thread.
pub struct EngineHandle {
    /// Connections waiting to be admitted; `None` once the engine thread has exited.
    inbox: Mutex<Option<Vec<Handoff>>>,
    /// Written to wake the engine thread (new connections, stop).
    wake: OwnedFd,
    stopping: AtomicBool,
    /// Where watchers go.
    pub(super) watchers: WatcherHome,
}

impl EngineHandle {
    /// Hands `socket` to the engine thread, which serves it until it closes (or hands
    /// it to tokio as a `watch`er). A thread that has stopped drops the connection,
    /// whose ticket reports a shutdown.
    pub(super) fn hand_over(&self, socket: std::net::TcpStream, ticket: Ticket) {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(inbox) = inbox.as_mut() {
            inbox.push(Handoff { socket, ticket });
        }
        drop(inbox);
        self.wake();
    }

    /// The connections handed over since the last call.
    pub(super) fn take_handoffs(&self) -> Vec<Handoff> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        inbox.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The engine thread has exited: later connections are dropped at once (and those
    /// still waiting, outside the lock).
    fn close_inbox(&self) {
        let left = self
            .inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(left);
    }

    /// Tells the engine thread the server is stopping: each connection finishes and
    /// flushes the batch it is executing, then closes.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake();
    }

    /// The server is stopping (see [`EngineHandle::stop`]).
    pub(super) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The eventfd the engine thread waits on besides its sockets.
    pub(super) fn wake_fd(&self) -> std::os::fd::RawFd {
        self.wake.as_raw_fd()
    }

    fn wake(&self) {
        let one: u64 = 1;
        // An eventfd write fails only when its counter would overflow: it is awake then.
        // SAFETY: writes 8 bytes from a live u64 to an fd this handle owns.
        unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }
}

/// Serves a connection that became a `watch`er on tokio until it or the server stops.
async fn serve_watcher(
    watching: Watching,
    socket: std::net::TcpStream,
    mut stop: watch::Receiver<bool>,
) {
    let stopped = std::pin::pin!(async move {
        let _ = stop.changed().await;
    });
    if socket.set_nonblocking(true).is_ok()
        && let Ok(mut socket) = tokio::net::TcpStream::from_std(socket)
    {
        watching.serve(&mut socket, stopped).await;
    }
}

/// Closes an engine's inbox when its thread ends, however it ends.
struct CloseInboxOnExit(Arc<EngineHandle>);

impl Drop for CloseInboxOnExit {
    fn drop(&mut self) {
        self.0.close_inbox();
    }
}

/// Starts one worker's engine thread named `name`; connections that become watchers
/// go to `watchers`. `body` runs on it: it builds its loop, reports through the sender
/// whether that worked, then serves what [`EngineHandle::hand_over`] hands it until
/// stopped and drained.
pub(super) fn spawn(
    name: String,
    watchers: WatcherHome,
    body: impl FnOnce(Arc<EngineHandle>, std::sync::mpsc::Sender<io::Result<()>>) + Send + 'static,
) -> io::Result<(Arc<EngineHandle>, std::thread::JoinHandle<()>)> {
    // SAFETY: eventfd has no memory preconditions; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let wake = unsafe { OwnedFd::from_raw_fd(fd) };
    let handle = Arc::new(EngineHandle {
        inbox: Mutex::new(Some(Vec::new())),
        wake,
        stopping: AtomicBool::new(false),
        watchers,
    });
    let served = handle.clone();
    let (created, creation) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        // Even if the loop panics, later connections must not wait for it.
        let _closed = CloseInboxOnExit(served.clone());
        body(served, created);
    })?;
    creation
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("engine thread died")))?;
    Ok((handle, thread))
}

/// Runs a freshly `built` engine loop on its thread with `run` (`engine` names it in the
/// error log), first telling [`spawn`]'s caller through `created` whether it could be
/// built.
pub(super) fn run_built<L>(
    engine: &str,
    built: io::Result<L>,
    created: std::sync::mpsc::Sender<io::Result<()>>,
    run: impl FnOnce(L) -> io::Result<()>,
) {
    match built {
        Ok(engine_loop) => {
            let _ = created.send(Ok(()));
            if let Err(error) = run(engine_loop) {
                tracing::error!(%error, "{engine} worker failed");
            }
        }
        Err(error) => {
            let _ = created.send(Err(error));
        }
    }
}

/// A batch whose replies are being written.
pub(super) struct Flight {
    step: Step,
    window: crate::buffers::ReplyWindow,
    watching: Option<Watching>,
    /// Reply bytes of the whole batch, counted as written once all are.
    total: usize,
    /// Bytes already sent straight from the reply buffer, when the batch's replies are
    /// one contiguous run there (the common case: no copy, no allocation per send);
    /// `None` when they were taken into `connection.pending`.
    in_place: Option<usize>,
}

impl Flight {
    /// The rest of the replies as one slice when they are one (in the reply buffer, or
    /// a single pending chunk); `None` when they are several pending chunks.
    pub(super) fn next_slice<'a>(&self, connection: &'a Connection) -> Option<&'a [u8]> {
        if let (Some(sent), Some(replies)) = (self.in_place, connection.replies.contiguous()) {
            return Some(&replies[sent..]);
        }
        match connection.pending.as_slice() {
            [chunk] => Some(chunk),
            _ => None,
        }
    }
}

/// What an engine does with a connection after a step of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Run the connection's requests again at once.
    Process,
    /// Serve it again after the other ready connections (memcached's `conn_yields`).
    Yield,
    /// Wait for input (or close, when `closing` was set).
    Wait,
}

/// One client while an engine thread serves it: its socket, buffers and session, and
/// where it stands between batches.
pub(super) struct Client {
    pub(super) socket: std::net::TcpStream,
    pub(super) info: Arc<ConnInfo>,
    /// Its place in the server, given back when the client is dropped.
    pub(super) ticket: Ticket,
    pub(super) connection: Connection,
    /// The batch whose replies are being written.
    pub(super) sending: Option<Flight>,
    /// Bytes the session needs before its next request can be parsed.
    pub(super) needed: usize,
    /// The client closed its side.
    pub(super) hung_up: bool,
    pub(super) closing: Option<CloseReason>,
    /// Sent `watch`'s OK: the socket goes back to tokio with this.
    watching: Option<Watching>,
    pub(super) last_active: Instant,
}

impl Client {
    /// Takes over a handed-off connection; `None` (after answering the handoff) when the
    /// engine is already stopping.
    pub(super) fn admit(handoff: Handoff, shared: &Shared, stopping: bool) -> Option<Client> {
        let Handoff { socket, ticket } = handoff;
        if stopping {
            // The ticket reports the shutdown as it drops.
            return None;
        }
        Some(Client {
            connection: Connection::new(shared, ticket.info.id),
            info: ticket.info.clone(),
            socket,
            ticket,
            sending: None,
            needed: 0,
            hung_up: false,
            closing: None,
            watching: None,
            last_active: Instant::now(),
        })
    }

    /// Gives a connection without a read buffer one from the thread's pool; one that
    /// finds no room under read_buf_mem_limit is marked to close.
    pub(super) fn take_read_buffer(&mut self, buffers: &crate::buffers::BufferMemory) {
        if self.connection.read.capacity() != 0 {
            return;
        }
        match buffers.take_read_buffer() {
            Some(buffer) => self.connection.read = buffer,
            None => self.closing = Some(CloseReason::Error),
        }
    }

    /// Takes `bytes` just received at `now`. When nothing is held back (no bytes kept,
    /// no send in flight, no paused multiget) the requests in them run at once, straight
    /// from the engine's buffer, and only an incomplete rest is copied into the read
    /// buffer: the returned batch's replies are the caller's to send. Otherwise the
    /// bytes are kept for the connection's next batch.
    pub(super) fn received(
        &mut self,
        shared: &Shared,
        bytes: &[u8],
        now: Instant,
    ) -> Option<Batch> {
        let buffers = &shared.stats.buffers;
        let mut bytes = bytes;
        let mut direct = None;
        self.connection.counters.bytes_read += bytes.len() as u64;
        self.last_active = now;
        // Under read_buf_mem_limit a connection takes its read buffer before it runs
        // anything, as memcached reads into one, and one that finds no room is closed.
        // Without a limit a batch run straight from the engine's buffer needs none: it
        // is taken only for a rest to keep.
        if buffers.limit() > 0 {
            self.take_read_buffer(buffers);
        }
        if self.closing.is_none()
            && self.connection.read.is_empty()
            && self.sending.is_none()
            && !self.connection.session.paused()
        {
            let (batch, consumed) = self
                .connection
                .begin_batch_on(shared, &self.info, Some(bytes));
            bytes = &bytes[consumed..];
            // The read buffer goes back to the pool before the replies are sent.
            if bytes.is_empty() && self.connection.read.capacity() != 0 {
                buffers.give_read_buffer(std::mem::take(&mut self.connection.read));
            }
            direct = Some(batch);
        }
        if self.closing.is_none() && !bytes.is_empty() {
            self.take_read_buffer(buffers);
        }
        if self.closing.is_none() {
            self.connection.read.extend_from_slice(bytes);
        }
        direct
    }

    /// Sends a batch's replies, or settles it at once when it queued none: `None` while
    /// a send is needed.
    pub(super) fn finish_batch(
        &mut self,
        shared: &Shared,
        batch: Batch,
        stopping: bool,
    ) -> Option<Next> {
        let connection = &mut self.connection;
        if connection.replies.is_empty() {
            connection.end_batch(shared, &self.info, batch.window);
            return Some(self.settle(shared, batch.step, batch.watching, stopping));
        }
        let (total, in_place) = match connection.replies.contiguous() {
            Some(replies) => (replies.len(), Some(0)),
            None => {
                connection.replies.take(&mut connection.pending);
                (connection.pending.iter().map(Bytes::len).sum(), None)
            }
        };
        self.sending = Some(Flight {
            step: batch.step,
            window: batch.window,
            watching: batch.watching,
            total,
            in_place,
        });
        None
    }

    /// Counts `written` bytes of the flight as sent; once all are, ends the batch at
    /// `now` and settles it (`Some`). `None` while bytes remain.
    pub(super) fn sent(
        &mut self,
        shared: &Shared,
        written: usize,
        now: Instant,
        stopping: bool,
    ) -> Option<Next> {
        let connection = &mut self.connection;
        let flight = self.sending.as_mut().expect("a send was in flight");
        if let Some(sent) = flight.in_place.as_mut() {
            *sent += written;
            if *sent < flight.total {
                return None;
            }
            connection.replies.clear();
        } else {
            let pending = &mut connection.pending;
            let done = super::connection::advance(pending, written);
            pending.drain(..done);
            if !pending.is_empty() {
                return None;
            }
        }
        let flight = self.sending.take().expect("a send was in flight");
        connection.counters.bytes_written += flight.total as u64;
        connection.end_batch(shared, &self.info, flight.window);
        self.last_active = now;
        Some(self.settle(shared, flight.step, flight.watching, stopping))
    }

    /// A send failed (or the connection must go): ends the batch unwritten and closes.
    pub(super) fn send_failed(&mut self, shared: &Shared) {
        if let Some(flight) = self.sending.take() {
            if flight.in_place.is_some() {
                self.connection.replies.clear();
            }
            self.connection.pending.clear();
            self.connection.end_batch(shared, &self.info, flight.window);
        }
        self.closing.get_or_insert(CloseReason::Error);
    }

    /// What follows a batch whose replies were written.
    fn settle(
        &mut self,
        shared: &Shared,
        step: Step,
        watching: Option<Watching>,
        stopping: bool,
    ) -> Next {
        self.needed = 0;
        match step {
            Step::MoreQueued => return Next::Process,
            Step::Yield => {
                shared.stats.conn_yields.fetch_add(1, Ordering::Relaxed);
                return Next::Yield;
            }
            Step::Done(Flow::Reject) => self.closing = Some(CloseReason::Error),
            Step::Done(Flow::Watch(_)) => {
                self.watching = watching;
                self.closing = Some(CloseReason::Normal);
            }
            Step::Done(Flow::Close) => self.closing = Some(CloseReason::Normal),
            Step::Done(Flow::Shutdown { graceful }) => {
                shared.request_shutdown(graceful);
                self.closing = Some(CloseReason::Normal);
            }
            Step::NeedInput(needed) => {
                self.needed = needed;
                self.info.set_state(self.connection.session.waiting());
                if stopping {
                    self.closing = Some(CloseReason::Shutdown);
                } else if self.hung_up {
                    self.closing = Some(CloseReason::Normal);
                }
            }
            Step::Done(_) if stopping => self.closing = Some(CloseReason::Shutdown),
            Step::Done(_) => {}
        }
        Next::Wait
    }

    /// Nothing buffered to run: closes a connection whose client hung up, or gives its
    /// buffers back while the client thinks. True when it is idle (not closing).
    pub(super) fn idle(&mut self, shared: &Shared) -> bool {
        if self.hung_up {
            self.closing = Some(CloseReason::Normal);
            return false;
        }
        self.connection.release_buffers(shared);
        self.info.set_state(self.connection.session.waiting());
        true
    }

    /// Between batches and not closing: a stop or an idle timeout may close it now.
    pub(super) fn between_batches(&self) -> bool {
        self.sending.is_none() && self.closing.is_none()
    }

    /// Lets the finished connection go: closed, or, when it asked for `watch`, handed to
    /// tokio on its worker's runtime (`home`) to be served as a watcher.
    pub(super) fn retire(self, shared: &Shared, home: &WatcherHome) {
        let Client {
            socket,
            mut ticket,
            mut connection,
            closing,
            watching,
            ..
        } = self;
        shared
            .stats
            .buffers
            .give_read_buffer(std::mem::take(&mut connection.read));
        ticket.reason = closing.unwrap_or(CloseReason::Normal);
        if let Some(watching) = watching {
            let stop = home.stop.clone();
            home.runtime.spawn(async move {
                serve_watcher(watching, socket, stop).await;
                // memcached reports a watcher's end as an error close.
                ticket.reason = CloseReason::Error;
                drop(ticket);
            });
        }
    }
}

/// The clients a stop closes at once (those between batches), each marked
/// [`CloseReason::Shutdown`]; the others close once their batch is written.
pub(super) fn close_for_stop<'a>(
    clients: impl Iterator<Item = (usize, &'a mut Client)>,
) -> Vec<usize> {
    clients
        .filter(|(_, client)| client.between_batches())
        .map(|(slot, client)| {
            client.closing = Some(CloseReason::Shutdown);
            slot
        })
        .collect()
}

/// The clients silent for `-o idle_timeout` at `now`, each marked
/// [`CloseReason::IdleTimeout`] and counted in `idle_kicks`, as memcached does.
pub(super) fn close_idle<'a>(
    shared: &Shared,
    now: Instant,
    clients: impl Iterator<Item = (usize, &'a mut Client)>,
) -> Vec<usize> {
    let limit = match shared.settings.idle_timeout {
        0 => return Vec::new(),
        seconds => Duration::from_secs(seconds),
    };
    clients
        .filter(|(_, client)| {
            client.between_batches() && now.duration_since(client.last_active) >= limit
        })
        .map(|(slot, client)| {
            shared.stats.idle_kicks.fetch_add(1, Ordering::Relaxed);
            client.closing = Some(CloseReason::IdleTimeout);
            slot
        })
        .collect()
}

/// When a stopping engine gives up on its connections: the drain limit read when the
/// stop came.
pub(super) fn stop_deadline(now: Instant, drain_limit_ms: &AtomicU64) -> Instant {
    now + Duration::from_millis(drain_limit_ms.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IoEngine, Settings};
    use crate::stats::ConnKind;
    use crate::store::Clock;

    fn shared() -> Arc<Shared> {
        let settings = Settings {
            io_engine: IoEngine::Epoll,
            ..Settings::default()
        };
        Shared::new(settings, Arc::new(Clock::new())).expect("default settings")
    }

    /// A client over a loopback TCP pair, and its peer.
    fn client(shared: &Arc<Shared>) -> (Client, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer =
            std::net::TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (socket, _) = listener.accept().expect("accept");
        shared
            .stats
            .curr_connections
            .fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(ConnInfo::new(
            1,
            ConnKind::Client,
            "tcp:peer".into(),
            "tcp:local".into(),
            0,
        ));
        let live = LiveConnection::new(&Arc::new(std::sync::atomic::AtomicUsize::new(0)));
        let ticket = Ticket::new(shared.clone(), info, live);
        let handoff = Handoff { socket, ticket };
        let client = Client::admit(handoff, shared, false).expect("admitted");
        (client, peer)
    }

    #[test]
    fn a_batch_waits_for_all_of_its_replies_to_be_sent_then_waits_for_input() {
        let shared = shared();
        let (mut client, _peer) = client(&shared);
        let now = Instant::now();
        let batch = client
            .received(&shared, b"set k 0 0 1\r\nv\r\nget k\r\nget", now)
            .expect("nothing was held back: the requests ran at once");
        // The incomplete third request is kept for the next read.
        assert_eq!(&client.connection.read[..], b"get");
        assert_eq!(client.finish_batch(&shared, batch, false), None);
        let reply = b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n";
        let flight = client.sending.as_ref().expect("replies to send");
        assert_eq!(flight.next_slice(&client.connection), Some(&reply[..]));
        assert_eq!(client.sent(&shared, 10, now, false), None);
        let flight = client.sending.as_ref().expect("the rest to send");
        assert_eq!(flight.next_slice(&client.connection), Some(&reply[10..]));
        assert_eq!(
            client.sent(&shared, reply.len() - 10, now, false),
            Some(Next::Wait)
        );
        assert!(client.sending.is_none());
        assert_eq!(client.connection.counters.bytes_written, 0, "folded in");
        assert!(client.needed > 3, "waits for the rest of the line");
        assert!(client.closing.is_none());
    }

    #[test]
    fn bytes_behind_a_send_in_flight_are_kept_not_run() {
        let shared = shared();
        let (mut client, _peer) = client(&shared);
        let now = Instant::now();
        let batch = client.received(&shared, b"get a\r\n", now).expect("ran");
        assert_eq!(client.finish_batch(&shared, batch, false), None);
        assert!(client.received(&shared, b"get b\r\n", now).is_none());
        assert_eq!(&client.connection.read[..], b"get b\r\n");
    }

    #[test]
    fn a_stop_closes_clients_between_batches_and_lets_a_batch_being_sent_finish() {
        let shared = shared();
        let (mut idle, _peer) = client(&shared);
        let (mut busy, _busy_peer) = client(&shared);
        let now = Instant::now();
        let batch = busy.received(&shared, b"get a\r\n", now).expect("ran");
        assert_eq!(busy.finish_batch(&shared, batch, false), None);
        let closed = close_for_stop([(0, &mut idle), (1, &mut busy)].into_iter());
        assert_eq!(closed, [0]);
        assert_eq!(idle.closing, Some(CloseReason::Shutdown));
        assert_eq!(busy.closing, None);
        // Its batch written during the stop, the busy one closes too.
        assert_eq!(busy.sent(&shared, 5, now, true), Some(Next::Wait));
        assert_eq!(busy.closing, Some(CloseReason::Shutdown));
    }

    #[test]
    fn quit_closes_and_a_hang_up_mid_request_closes_once_nothing_can_run() {
        let shared = shared();
        let (mut quitting, _peer) = client(&shared);
        let batch = quitting
            .received(&shared, b"quit\r\n", Instant::now())
            .expect("ran");
        assert_eq!(
            quitting.finish_batch(&shared, batch, false),
            Some(Next::Wait)
        );
        assert_eq!(quitting.closing, Some(CloseReason::Normal));
        assert_eq!(shared.stats.curr_connections.load(Ordering::Relaxed), 1);
        assert!(shared.stats.conns.contains_key(&1));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (_stop, stop) = watch::channel(false);
        let home = WatcherHome {
            runtime: runtime.handle().clone(),
            stop,
        };
        quitting.retire(&shared, &home);
        // Retired, it gives its place back.
        assert_eq!(shared.stats.curr_connections.load(Ordering::Relaxed), 0);
        assert!(!shared.stats.conns.contains_key(&1));

        let (mut idle, _peer) = client(&shared);
        assert!(idle.idle(&shared), "nothing pending, still open");
        idle.hung_up = true;
        assert!(!idle.idle(&shared));
        assert_eq!(idle.closing, Some(CloseReason::Normal));
    }

    #[test]
    fn idle_timeout_closes_only_the_silent_clients_between_batches() {
        let mut settings = Settings {
            io_engine: IoEngine::Epoll,
            ..Settings::default()
        };
        settings.idle_timeout = 10;
        let shared = Shared::new(settings, Arc::new(Clock::new())).expect("settings");
        let (mut silent, _peer) = client(&shared);
        let (mut recent, _recent_peer) = client(&shared);
        let now = silent.last_active + Duration::from_secs(10);
        recent.last_active = now - Duration::from_secs(9);
        let closed = close_idle(
            &shared,
            now,
            [(0, &mut silent), (1, &mut recent)].into_iter(),
        );
        assert_eq!(closed, [0]);
        assert_eq!(silent.closing, Some(CloseReason::IdleTimeout));
        assert_eq!(recent.closing, None);
        assert_eq!(shared.stats.idle_kicks.load(Ordering::Relaxed), 1);
    }
}
