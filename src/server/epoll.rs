//! The epoll data path for plain TCP connections (`-o io_engine=epoll`, and what
//! `auto` takes where workers share CPUs or the kernel refuses io_uring).
//!
//! Each worker's engine thread runs one edge-triggered poll loop over its connections
//! (through mio, the readiness layer tokio itself is built on, without tokio's
//! scheduler, wakers and task budget in the way of every request), as a memcached
//! worker thread runs its event loop. A turn: wait once, note which sockets became
//! readable or writable, then serve each of those connections until it must wait:
//! write what its batch left unsent, run the requests it holds, read what arrived. A
//! connection holding nothing reads into the loop's own buffer and runs its requests
//! from there, taking a pooled read buffer only for an incomplete rest to keep.
//!
//! Backpressure matches the tokio path: a connection does not read while its replies
//! wait for room in the socket, so a client that does not read its replies meets TCP
//! flow control.

use super::Shared;
use super::connection::Batch;
use super::handoff::{self, Client, EngineHandle, Handoff, Next};
use crate::buffers::READ_BUFFER;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// The eventfd that brings new connections and the stop.
const WAKE: Token = Token(usize::MAX);
/// Readiness events taken per wait.
const EVENTS: usize = 1024;
/// At most this many slices per vectored write.
const MAX_IOVECS: usize = 64;
/// Reads one connection may make per turn. A client that keeps its socket full (a
/// pipeline of small batches, each under `-R`) is served again after the others rather
/// than for as long as it keeps sending, as memcached bounds a connection's share of its
/// event loop.
const READS_PER_TURN: usize = 4;
/// The longest wait: idle timeouts and the stop deadline are checked at least this often.
const TICK: Duration = Duration::from_secs(1);

/// One client on the poll loop.
struct EpollConnection {
    client: Client,
    /// The socket may hold bytes (set by a readable event, cleared by a short read).
    readable: bool,
    /// The socket may take bytes (set by a writable event, cleared when a write falls
    /// short).
    writable: bool,
    /// Already in the turn's ready list.
    queued: bool,
}

/// Starts one worker's epoll thread. It serves what [`EngineHandle`] hands it and exits
/// once stopped and drained (or after `drain_limit_ms`, read when the stop comes).
pub fn start(
    index: usize,
    shared: Arc<Shared>,
    watchers: handoff::WatcherHome,
    drain_limit_ms: Arc<AtomicU64>,
) -> io::Result<(Arc<EngineHandle>, std::thread::JoinHandle<()>)> {
    handoff::spawn(
        format!("epoll-{index}"),
        watchers,
        move |handle, created| {
            let built = EpollLoop::new(&shared, handle, drain_limit_ms);
            handoff::run_built("epoll", built, created, |mut poller| poller.run());
        },
    )
}

/// The poll, its events, the loop's read buffer and the connections it serves.
struct EpollLoop<'s> {
    poll: Poll,
    events: Events,
    shared: &'s Shared,
    handle: Arc<EngineHandle>,
    drain_limit_ms: Arc<AtomicU64>,
    connections: Slab<EpollConnection>,
    /// Where a connection holding no bytes reads; its requests run from here.
    scratch: Box<[u8]>,
    /// Connections to serve at the end of the turn.
    ready: VecDeque<usize>,
    /// Connections that ran `-R` requests from one read with more waiting (memcached's
    /// `conn_yields`), or made [`READS_PER_TURN`] reads: served again next turn, after
    /// the others.
    yielded: Vec<usize>,
    stop_deadline: Option<Instant>,
    /// When the current turn's wait returned: read only under `-o idle_timeout`, the
    /// one setting that asks for it (idle timeouts count whole seconds).
    turn_began: Instant,
}

/// How serving a connection goes on after a step.
enum Then {
    /// Run its buffered requests.
    Parse,
    /// Read (or, with nothing to read, wait).
    Read,
    /// Stop serving it this turn.
    Leave,
}

impl<'s> EpollLoop<'s> {
    fn new(
        shared: &'s Shared,
        handle: Arc<EngineHandle>,
        drain_limit_ms: Arc<AtomicU64>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let wake = handle.wake_fd();
        // Read only after a wake-up, which may find it already read: never block on it.
        // SAFETY: fcntl on an fd the handle owns and keeps open.
        if unsafe { libc::fcntl(wake, libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        poll.registry()
            .register(&mut SourceFd(&wake), WAKE, Interest::READABLE)?;
        Ok(EpollLoop {
            poll,
            events: Events::with_capacity(EVENTS),
            shared,
            handle,
            drain_limit_ms,
            connections: Slab::new(),
            scratch: vec![0; READ_BUFFER].into_boxed_slice(),
            ready: VecDeque::new(),
            yielded: Vec::new(),
            stop_deadline: None,
            turn_began: Instant::now(),
        })
    }

    /// Runs until stopped and drained (or past the drain limit).
    fn run(&mut self) -> io::Result<()> {
        let timed = self.shared.settings.idle_timeout > 0;
        let mut next_sweep = Instant::now() + TICK;
        loop {
            let timeout = if self.yielded.is_empty() {
                TICK
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
            if timed {
                self.turn_began = Instant::now();
            }
            let mut woken = false;
            for event in self.events.iter() {
                if event.token() == WAKE {
                    woken = true;
                    continue;
                }
                let slot = event.token().0;
                let Some(conn) = self.connections.get_mut(slot) else {
                    continue;
                };
                // An error or hang-up is found by the read or write it lets through.
                let failed = event.is_error();
                conn.readable |= event.is_readable() || event.is_read_closed() || failed;
                conn.writable |= event.is_writable() || event.is_write_closed() || failed;
                if !conn.queued {
                    conn.queued = true;
                    self.ready.push_back(slot);
                }
            }
            if woken {
                self.drain_wake();
                for handoff in self.handle.take_handoffs() {
                    self.admit(handoff);
                }
            }
            // In the order the kernel reported them (the longest waiting first, as
            // memcached's event loop serves them), yielded connections last.
            self.ready.extend(self.yielded.drain(..));
            self.serve_ready();
            if self.stop_deadline.is_none() && self.handle.stopping() {
                self.begin_stop(Instant::now());
            }
            if timed && self.turn_began >= next_sweep {
                next_sweep = self.turn_began + TICK;
                let clients = self
                    .connections
                    .iter_mut()
                    .map(|(slot, conn)| (slot, &mut conn.client));
                for slot in handoff::close_idle(self.shared, self.turn_began, clients) {
                    self.mark_ready(slot);
                }
                self.serve_ready();
            }
            if let Some(deadline) = self.stop_deadline
                && (self.connections.is_empty() || Instant::now() >= deadline)
            {
                break;
            }
        }
        self.abandon();
        Ok(())
    }

    /// Resets the wake eventfd's counter (edge-triggered: the next write wakes again).
    fn drain_wake(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; the fd is non-blocking.
        unsafe {
            libc::read(
                self.handle.wake_fd(),
                (&mut count as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    fn admit(&mut self, handoff: Handoff) {
        let Some(client) = Client::admit(handoff, self.shared, self.stop_deadline.is_some()) else {
            return;
        };
        let fd = client.socket.as_raw_fd();
        let slot = self.connections.insert(EpollConnection {
            client,
            readable: false,
            writable: true,
            queued: false,
        });
        let conn = &mut self.connections[slot];
        let registered = conn.client.socket.set_nonblocking(true).and_then(|()| {
            self.poll.registry().register(
                &mut SourceFd(&fd),
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
        });
        if registered.is_err() {
            conn.client.closing = Some(crate::watch::CloseReason::Error);
            self.connections
                .remove(slot)
                .client
                .retire(self.shared, &self.handle.watchers);
        }
    }

    fn mark_ready(&mut self, slot: usize) {
        if let Some(conn) = self.connections.get_mut(slot)
            && !conn.queued
        {
            conn.queued = true;
            self.ready.push_back(slot);
        }
    }

    /// Serves each connection that became ready this turn, then retires those closing.
    fn serve_ready(&mut self) {
        while let Some(slot) = self.ready.pop_front() {
            let Some(conn) = self.connections.get_mut(slot) else {
                continue;
            };
            conn.queued = false;
            self.serve(slot);
            let client = &mut self.connections[slot].client;
            if client.closing.is_some() {
                if client.sending.is_some() {
                    client.send_failed(self.shared);
                }
                self.retire(slot);
            }
        }
    }

    /// Writes, runs and reads for one connection until it must wait for its socket.
    fn serve(&mut self, slot: usize) {
        let shared = self.shared;
        let stopping = self.stop_deadline.is_some();
        let now = self.turn_began;
        let conn = &mut self.connections[slot];
        let connection = &conn.client.connection;
        let mut then = if conn.client.sending.is_some() {
            Then::Read
        } else if connection.session.paused()
            || (!connection.read.is_empty() && connection.read.len() >= conn.client.needed)
        {
            Then::Parse
        } else {
            Then::Read
        };
        let mut reads = 0;
        loop {
            let conn = &mut self.connections[slot];
            let client = &mut conn.client;
            if client.closing.is_some() {
                return;
            }
            if client.sending.is_some() {
                if !conn.writable {
                    return;
                }
                match write(client) {
                    Ok(0) => {
                        client.send_failed(shared);
                        return;
                    }
                    Ok(written) => match client.sent(shared, written, now, stopping) {
                        None => continue,
                        Some(next) => then = self.follow(slot, next),
                    },
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        conn.writable = false;
                        return;
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        client.send_failed(shared);
                        return;
                    }
                }
                continue;
            }
            match then {
                Then::Leave => return,
                Then::Parse => {
                    let batch = client.connection.begin_batch(shared, &client.info);
                    then = self.finish_batch(slot, batch, stopping);
                }
                Then::Read if reads == READS_PER_TURN && conn.readable && !client.hung_up => {
                    // Its turn's share is spent: the others go first.
                    if !conn.queued {
                        conn.queued = true;
                        self.yielded.push(slot);
                    }
                    return;
                }
                Then::Read => {
                    reads += 1;
                    then = self.read(slot, now, stopping);
                }
            }
        }
    }

    /// Reads what the socket holds and runs the requests it completes.
    fn read(&mut self, slot: usize, now: Instant, stopping: bool) -> Then {
        let shared = self.shared;
        let conn = &mut self.connections[slot];
        let client = &mut conn.client;
        if !conn.readable || client.hung_up {
            let connection = &client.connection;
            if connection.read.is_empty() && !connection.session.paused() {
                client.idle(shared);
            } else if client.hung_up {
                // Hung up in the middle of a request: it cannot complete.
                client.closing = Some(crate::watch::CloseReason::Normal);
            }
            return Then::Leave;
        }
        let fd = client.socket.as_raw_fd();
        let connection = &mut client.connection;
        let scratch = connection.read.is_empty() && !connection.session.paused();
        let received = if scratch {
            // Nothing held: read into the loop's buffer and run from there.
            recv(fd, self.scratch.as_mut_ptr(), self.scratch.len())
                .map(|count| (count, self.scratch.len()))
        } else {
            let read = &mut connection.read;
            read.reserve(client.needed.saturating_sub(read.len()));
            if read.capacity() - read.len() < 1024 {
                read.reserve(READ_BUFFER);
            }
            let room = read.capacity() - read.len();
            recv(fd, read.spare_capacity_mut().as_mut_ptr().cast(), room).map(|count| {
                // SAFETY: recv initialised `count` bytes of the spare room.
                unsafe { read.set_len(read.len() + count) };
                connection.counters.bytes_read += count as u64;
                client.last_active = now;
                (count, room)
            })
        };
        match received {
            Ok((0, _)) => {
                client.hung_up = true;
                conn.readable = false;
                Then::Read
            }
            Ok((count, room)) => {
                if count < room {
                    // Drained: the next readable edge says when more arrives.
                    conn.readable = false;
                }
                if !scratch {
                    return Then::Parse;
                }
                match client.received(shared, &self.scratch[..count], now) {
                    Some(batch) => self.finish_batch(slot, batch, stopping),
                    // Kept behind a paused or incomplete request: nothing to run yet.
                    None => Then::Read,
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                conn.readable = false;
                Then::Read
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Then::Read,
            Err(_) => {
                client.closing = Some(crate::watch::CloseReason::Error);
                Then::Leave
            }
        }
    }

    /// Starts sending a batch's replies, or settles it at once when it queued none.
    fn finish_batch(&mut self, slot: usize, batch: Batch, stopping: bool) -> Then {
        match self.connections[slot]
            .client
            .finish_batch(self.shared, batch, stopping)
        {
            // The send is tried at once by `serve`.
            None => Then::Read,
            Some(next) => self.follow(slot, next),
        }
    }

    /// Where serving goes after a written batch.
    fn follow(&mut self, slot: usize, next: Next) -> Then {
        match next {
            Next::Process => Then::Parse,
            Next::Yield => {
                let conn = &mut self.connections[slot];
                if !conn.queued {
                    conn.queued = true;
                    self.yielded.push(slot);
                }
                Then::Leave
            }
            Next::Wait => Then::Read,
        }
    }

    /// Hands a finished connection back to its task on tokio.
    fn retire(&mut self, slot: usize) {
        let conn = self.connections.remove(slot);
        // A socket going back to tokio for `watch` stays open: stop watching it here.
        let fd: RawFd = conn.client.socket.as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        conn.client.retire(self.shared, &self.handle.watchers);
    }

    fn begin_stop(&mut self, now: Instant) {
        self.stop_deadline = Some(handoff::stop_deadline(now, &self.drain_limit_ms));
        let clients = self
            .connections
            .iter_mut()
            .map(|(slot, conn)| (slot, &mut conn.client));
        // A connection sending its batch closes once that is written (see `settle`).
        for slot in handoff::close_for_stop(clients) {
            self.mark_ready(slot);
        }
        self.serve_ready();
    }

    /// Past the drain limit: what is left (a client that does not read its replies) is
    /// dropped, its socket shut down so the client sees the close.
    fn abandon(&mut self) {
        for (_, conn) in self.connections.iter() {
            let _ = conn.client.socket.shutdown(std::net::Shutdown::Both);
        }
        self.connections.clear();
    }
}

/// Writes what the socket takes of the batch in flight.
fn write(client: &Client) -> io::Result<usize> {
    let flight = client.sending.as_ref().expect("a batch is being sent");
    let mut socket = &client.socket;
    if let Some(rest) = flight.next_slice(&client.connection) {
        return socket.write(rest);
    }
    let slices: Vec<IoSlice<'_>> = client
        .connection
        .pending
        .iter()
        .take(MAX_IOVECS)
        .map(|chunk| IoSlice::new(chunk))
        .collect();
    socket.write_vectored(&slices)
}

/// One `recv` of at most `len` bytes into `buffer`.
fn recv(fd: RawFd, buffer: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: callers pass `len` writable bytes at `buffer`, which the kernel writes at
    // most.
    let count = unsafe { libc::recv(fd, buffer.cast(), len, 0) };
    if count < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(count as usize)
}
