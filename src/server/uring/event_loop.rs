//! One worker's ring: the loop turn (wait once, handle every completion, process every
//! connection that received bytes, queue their sends) and each connection's states.
//!
//! A connection is *receiving* while its multishot receive is armed (until a completion
//! without `IORING_CQE_F_MORE`), *sending* while a batch's replies are being written,
//! and *closing* once it must go: it leaves the ring when neither operation is in
//! flight.

use super::buffer_ring::BufferRing;
use crate::buffers::READ_BUFFER;
use crate::server::Shared;
use crate::server::connection::Batch;
use crate::server::handoff::{self, Client, EngineHandle, Handoff, Next};
use crate::watch::CloseReason;
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use slab::Slab;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// Submission queue entries; the completion queue is eight times larger so a turn with
/// many multishot completions does not overflow it.
pub(super) const SUBMISSION_ENTRIES: u32 = 1024;
/// The one provided-buffer group receives pick from.
pub(super) const BUFFER_GROUP: u16 = 0;
/// Provided buffers per ring: each receive completion holds one until the loop copies
/// its bytes into the connection's read buffer, in the same turn. The kernel hands them
/// out in turn (first in, first out), so all of them become resident: 512 KiB per ring.
/// A turn that needs more ends some receives with ENOBUFS; they are re-armed.
const PROVIDED_BUFFERS: u16 = 64;
/// Bytes per provided buffer: a 4 KiB value with its command line fits one.
const PROVIDED_BUFFER_SIZE: usize = 8 * 1024;
/// Unparsed bytes a connection may gather while its replies are being sent before its
/// receive is cancelled (re-armed after the send): TCP backpressure reaches the client.
pub(super) const READ_AHEAD_LIMIT: usize = 4 * READ_BUFFER;
/// At most this many slices per `sendmsg`.
const MAX_IOVECS: usize = 256;
/// Under load a turn waits up to this many microseconds for completions from more of
/// its connections before it serves what has arrived (`IORING_FEAT_MIN_TIMEOUT`, Linux
/// 6.12): fewer, fuller turns. A wait that began before the first completion (an idle
/// server) returns at once, so a lone request is not delayed.
const COALESCE_USEC: u32 = 30;
/// A turn coalesces only after one that found at least this many completions (about
/// half as many requests: each has a receive and a send). Below it the clients are
/// not queueing, and waiting for more of them is pure latency: with four blocking
/// clients (memcslap `--concurrency=4`) an always-coalescing ring answered 2.7 times
/// slower than memcached, waiting out the 30 µs for completions that could not come.
const COALESCE_AFTER: usize = 16;
/// At most this many completions are waited for in one coalesced turn.
const MAX_COALESCED: usize = 64;
/// The longest wait: idle timeouts and the stop deadline are checked at least this often.
const TICK: Duration = Duration::from_secs(1);

/// How long a turn's `io_uring_enter` waits.
#[derive(Debug, PartialEq, Eq)]
struct Wait {
    /// Completions to wait for (0: work is pending, do not wait).
    completions: usize,
    /// Once one has arrived, how long to wait for the rest (0: return at once).
    min_wait_usec: u32,
}

impl Wait {
    /// The wait of a turn after one that found `last_turn` completions: coalescing only
    /// while clients queue up (see [`COALESCE_AFTER`]), none at all when `pending` work
    /// (completions left over, yielded connections) is waiting to be served.
    fn after(last_turn: usize, connections: usize, coalesce_usec: u32, pending: bool) -> Wait {
        if pending {
            Wait {
                completions: 0,
                min_wait_usec: 0,
            }
        } else if coalesce_usec > 0 && last_turn >= COALESCE_AFTER {
            Wait {
                completions: connections.clamp(1, MAX_COALESCED),
                min_wait_usec: coalesce_usec,
            }
        } else {
            Wait {
                completions: 1,
                min_wait_usec: 0,
            }
        }
    }
}

/// What a completion belongs to, in the low byte of its user data; the slot sits above
/// it and the connection's generation in the top 24 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Wake = 1,
    Receive = 3,
    Send = 4,
    Cancel = 5,
}

fn user_data(op: Op, slot: usize, generation: u32) -> u64 {
    (u64::from(generation) << 40) | ((slot as u64 & 0xffff_ffff) << 8) | op as u64
}

fn decode(data: u64) -> (Option<Op>, usize, u32) {
    let op = match data & 0xff {
        1 => Some(Op::Wake),
        3 => Some(Op::Receive),
        4 => Some(Op::Send),
        5 => Some(Op::Cancel),
        _ => None,
    };
    (
        op,
        ((data >> 8) & 0xffff_ffff) as usize,
        (data >> 40) as u32,
    )
}

/// One client on the ring.
struct RingConnection {
    client: Client,
    /// Tells this connection's completions from those of an earlier one in its slot.
    generation: u32,
    receiving: bool,
    cancelling: bool,
    /// What the send in flight reads: slices of `connection.pending` and their header.
    iovecs: Vec<libc::iovec>,
    header: Box<libc::msghdr>,
    /// Already in the turn's ready list.
    queued: bool,
}

impl RingConnection {
    /// Received bytes are held back while a send is in flight and this many are waiting.
    fn throttled(&self) -> bool {
        let client = &self.client;
        client.sending.is_some()
            && client.connection.read.len() >= READ_AHEAD_LIMIT.max(client.needed)
    }
}

/// The ring, its provided buffers and the connections it serves.
pub(super) struct RingLoop<'s> {
    /// Declared first so it is dropped first: no kernel operation outlives the memory
    /// below.
    ring: IoUring,
    shared: &'s Shared,
    handle: Arc<EngineHandle>,
    drain_limit_ms: Arc<AtomicU64>,
    connections: Slab<RingConnection>,
    provided: BufferRing,
    /// The eventfd read's destination.
    wake_count: Box<u64>,
    /// Connections to process at the end of the turn.
    ready: Vec<usize>,
    /// Connections that ran `-R` requests from one read with more waiting: served again
    /// next turn, after the others (memcached's `conn_yields`).
    yielded: Vec<usize>,
    /// Completions taken off the queue and not handled yet (user data, result, flags).
    backlog: Vec<(u64, i32, u32)>,
    next_generation: u32,
    stop_deadline: Option<Instant>,
    /// [`COALESCE_USEC`] where the kernel supports it, else 0.
    coalesce_usec: u32,
    /// Completions the last turn found: the next coalesces only past [`COALESCE_AFTER`].
    last_turn_completions: usize,
    /// When the current turn's wait returned: the time of every completion in the turn
    /// (idle timeouts count whole seconds, so one clock read a turn is enough). Read
    /// only under `-o idle_timeout`, the one setting that asks for it.
    turn_began: Instant,
}

impl<'s> RingLoop<'s> {
    /// A loop over `ring` serving what `handle` is given.
    pub(super) fn new(
        ring: IoUring,
        shared: &'s Shared,
        handle: Arc<EngineHandle>,
        drain_limit_ms: Arc<AtomicU64>,
    ) -> io::Result<Self> {
        let coalesce_usec = if ring.params().is_feature_min_timeout() {
            COALESCE_USEC
        } else {
            0
        };
        let provided =
            BufferRing::register(&ring, BUFFER_GROUP, PROVIDED_BUFFERS, PROVIDED_BUFFER_SIZE)?;
        Ok(RingLoop {
            coalesce_usec,
            last_turn_completions: 0,
            ring,
            shared,
            handle,
            drain_limit_ms,
            connections: Slab::new(),
            provided,
            turn_began: Instant::now(),
            wake_count: Box::new(0),
            ready: Vec::new(),
            yielded: Vec::new(),
            backlog: Vec::new(),
            next_generation: 0,
            stop_deadline: None,
        })
    }

    /// Runs until stopped and drained (or past the drain limit).
    pub(super) fn run(&mut self) -> io::Result<()> {
        if self.shared.settings.read_buf_mem_limit > 0 {
            // One read buffer in this thread's pool from the start: a ring serves many
            // connections per turn and holds their reply windows until the next, so its
            // first read must not find the limit spent by other rings' windows.
            let buffers = &self.shared.stats.buffers;
            if let Some(buffer) = buffers.take_read_buffer() {
                buffers.give_read_buffer(buffer);
            }
        }
        self.arm_wake();
        // Without idle_timeout nothing reads the turn's time: no clock read per turn.
        let timed = self.shared.settings.idle_timeout > 0;
        let mut next_sweep = Instant::now() + TICK;
        loop {
            let timeout = types::Timespec::from(TICK);
            let wait = Wait::after(
                self.last_turn_completions,
                self.connections.len(),
                self.coalesce_usec,
                !self.backlog.is_empty() || !self.yielded.is_empty(),
            );
            let args = types::SubmitArgs::new()
                .timespec(&timeout)
                .min_wait_usec(wait.min_wait_usec);
            let want = wait.completions;
            match self.ring.submitter().submit_with_args(want, &args) {
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                    ) => {}
                Err(error) => return Err(error),
            }
            if timed {
                self.turn_began = Instant::now();
            }
            self.take_completions();
            self.last_turn_completions = self.backlog.len();
            let mut completions = std::mem::take(&mut self.backlog);
            for &(data, result, flags) in &completions {
                self.complete(data, result, flags);
            }
            // Kept for its capacity; anything queued meanwhile is handled first next turn.
            completions.clear();
            completions.append(&mut self.backlog);
            self.backlog = completions;
            // Yielded connections go last (`ready` is served from its end); both lists
            // keep their allocations.
            if !self.yielded.is_empty() {
                self.ready.splice(0..0, self.yielded.drain(..));
            }
            self.serve_ready();
            if self.stop_deadline.is_none() && self.handle.stopping() {
                self.begin_stop(Instant::now());
            }
            if timed && self.turn_began >= next_sweep {
                next_sweep = self.turn_began + TICK;
                self.close_idle(self.turn_began);
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

    /// Moves every posted completion to the backlog.
    fn take_completions(&mut self) {
        self.backlog.extend(
            self.ring
                .completion()
                .map(|entry| (entry.user_data(), entry.result(), entry.flags())),
        );
    }

    /// Queues `entry`, submitting first if the queue is full.
    ///
    /// # Safety
    /// Every buffer `entry` points to must stay valid until its completion arrives.
    unsafe fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: forwarded from the caller.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            if let Err(error) = self.ring.submit() {
                // Completions the kernel could not post (EBUSY) wait for room: make it.
                tracing::debug!(%error, "io_uring submit with a full queue failed");
                self.take_completions();
            }
        }
    }

    fn arm_wake(&mut self) {
        let entry = opcode::Read::new(
            types::Fd(self.handle.wake_fd()),
            std::ptr::from_mut::<u64>(&mut self.wake_count).cast(),
            8,
        )
        .build()
        .user_data(user_data(Op::Wake, 0, 0));
        // SAFETY: `wake_count` is boxed and lives as long as the ring.
        unsafe { self.push(entry) };
    }

    fn complete(&mut self, data: u64, result: i32, flags: u32) {
        let (op, slot, generation) = decode(data);
        match op {
            Some(Op::Wake) => {
                for handoff in self.handle.take_handoffs() {
                    self.admit(handoff);
                }
                self.arm_wake();
            }
            Some(Op::Receive) => self.received(slot, generation, result, flags),
            Some(Op::Send) => self.sent(slot, generation, result),
            Some(Op::Cancel) | None => {}
        }
    }

    fn admit(&mut self, handoff: Handoff) {
        let Some(client) = Client::admit(handoff, self.shared, self.stop_deadline.is_some()) else {
            return;
        };
        // The ring never blocks on a socket: a blocking one makes io_uring poll for
        // readiness instead of answering EAGAIN.
        let _ = client.socket.set_nonblocking(false);
        self.next_generation = (self.next_generation + 1) & 0x00ff_ffff;
        let slot = self.connections.insert(RingConnection {
            client,
            generation: self.next_generation,
            receiving: false,
            cancelling: false,
            iovecs: Vec::new(),
            // SAFETY: an all-zero msghdr is a valid empty header.
            header: Box::new(unsafe { std::mem::zeroed() }),
            queued: false,
        });
        self.arm_receive(slot);
    }

    fn arm_receive(&mut self, slot: usize) {
        let conn = &mut self.connections[slot];
        conn.receiving = true;
        conn.cancelling = false;
        let entry = opcode::RecvMulti::new(types::Fd(conn.client.socket.as_raw_fd()), BUFFER_GROUP)
            .build()
            .user_data(user_data(Op::Receive, slot, conn.generation));
        // SAFETY: receives write only into provided buffers.
        unsafe { self.push(entry) };
    }

    fn cancel_receive(&mut self, slot: usize) {
        let conn = &mut self.connections[slot];
        conn.cancelling = true;
        let entry = opcode::AsyncCancel::new(user_data(Op::Receive, slot, conn.generation))
            .build()
            .user_data(user_data(Op::Cancel, slot, conn.generation));
        // SAFETY: a cancellation points to no memory.
        unsafe { self.push(entry) };
    }

    /// The live connection a completion belongs to.
    fn connection(&mut self, slot: usize, generation: u32) -> Option<&mut RingConnection> {
        self.connections
            .get_mut(slot)
            .filter(|conn| conn.generation == generation)
    }

    fn mark_ready(&mut self, slot: usize) {
        if let Some(conn) = self.connections.get_mut(slot)
            && !conn.queued
        {
            conn.queued = true;
            self.ready.push(slot);
        }
    }

    fn received(&mut self, slot: usize, generation: u32, result: i32, flags: u32) {
        let buffer = cqueue::buffer_select(flags);
        let shared = self.shared;
        let mut direct = None;
        if let Some(conn) = self
            .connections
            .get_mut(slot)
            .filter(|conn| conn.generation == generation)
        {
            if !cqueue::more(flags) {
                conn.receiving = false;
            }
            match (result, buffer) {
                (count @ 1.., Some(id)) if conn.client.closing.is_none() => {
                    let bytes = self.provided.received(id, count as usize);
                    direct = conn.client.received(shared, bytes, self.turn_began);
                }
                (0, _) => conn.client.hung_up = true,
                (error, _)
                    if error < 0
                        && error != -libc::ENOBUFS
                        && error != -libc::ECANCELED
                        && conn.client.closing.is_none() =>
                {
                    conn.client.closing = Some(CloseReason::Error);
                }
                _ => {}
            }
            let cancel = conn.receiving && !conn.cancelling && conn.throttled();
            if cancel {
                self.cancel_receive(slot);
            }
            self.mark_ready(slot);
        }
        if let Some(id) = buffer {
            self.provided.recycle(id);
        }
        if let Some(batch) = direct {
            self.finish_batch(slot, batch);
        }
    }

    fn sent(&mut self, slot: usize, generation: u32, result: i32) {
        let shared = self.shared;
        let now = self.turn_began;
        let stopping = self.stop_deadline.is_some();
        let Some(conn) = self.connection(slot, generation) else {
            return;
        };
        if result <= 0 || conn.client.closing.is_some() {
            conn.client.send_failed(shared);
            self.mark_ready(slot);
            return;
        }
        match conn.client.sent(shared, result as usize, now, stopping) {
            None => self.submit_send(slot),
            Some(next) => {
                self.after(slot, next);
                self.mark_ready(slot);
            }
        }
    }

    fn submit_send(&mut self, slot: usize) {
        let conn = &mut self.connections[slot];
        let fd = types::Fd(conn.client.socket.as_raw_fd());
        let token = user_data(Op::Send, slot, conn.generation);
        let client = &conn.client;
        let flight = client.sending.as_ref().expect("a batch is being sent");
        if let Some(rest) = flight.next_slice(&client.connection) {
            // One slice (most replies): a plain send, no header for the kernel to copy.
            let entry = opcode::Send::new(
                fd,
                rest.as_ptr(),
                u32::try_from(rest.len()).unwrap_or(u32::MAX),
            )
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(token);
            // SAFETY: the reply buffer and the pending `Bytes` stay in the connection,
            // neither written nor freed, until this send completes (nothing runs on a
            // connection with a send in flight, and it leaves the ring only with none).
            unsafe { self.push(entry) };
            return;
        }
        conn.iovecs.clear();
        conn.iovecs.extend(
            conn.client
                .connection
                .pending
                .iter()
                .take(MAX_IOVECS)
                .map(|chunk| libc::iovec {
                    iov_base: chunk.as_ptr().cast_mut().cast(),
                    iov_len: chunk.len(),
                }),
        );
        conn.header.msg_iov = conn.iovecs.as_mut_ptr();
        conn.header.msg_iovlen = conn.iovecs.len();
        let entry = opcode::SendMsg::new(fd, &*conn.header)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(token);
        // SAFETY: the header, the iovecs and the pending `Bytes` they point into stay in
        // the connection, untouched, until this send completes; a connection leaves the
        // ring only with no send in flight.
        unsafe { self.push(entry) };
    }

    /// Processes each connection that received bytes or finished a send this turn, then
    /// re-arms, cancels or retires it.
    fn serve_ready(&mut self) {
        while let Some(slot) = self.ready.pop() {
            let Some(conn) = self.connections.get_mut(slot) else {
                continue;
            };
            conn.queued = false;
            if conn.client.closing.is_none() {
                self.process(slot);
            }
            self.tend(slot);
        }
    }

    /// Runs the connection's complete requests, batch by batch, until it must wait for
    /// input or for a send.
    fn process(&mut self, slot: usize) {
        let shared = self.shared;
        loop {
            let client = &mut self.connections[slot].client;
            if client.sending.is_some() || client.closing.is_some() {
                return;
            }
            let connection = &mut client.connection;
            if connection.read.is_empty() && !connection.session.paused() {
                client.idle(shared);
                return;
            }
            let batch = connection.begin_batch(shared, &client.info);
            if !self.finish_batch(slot, batch) {
                return;
            }
        }
    }

    /// Sends a batch's replies, or settles it at once when it queued none; true to
    /// process again at once.
    fn finish_batch(&mut self, slot: usize, batch: Batch) -> bool {
        let stopping = self.stop_deadline.is_some();
        match self.connections[slot]
            .client
            .finish_batch(self.shared, batch, stopping)
        {
            None => {
                self.submit_send(slot);
                false
            }
            Some(next) => self.after(slot, next),
        }
    }

    /// Acts on what follows a written batch; true to process again at once.
    fn after(&mut self, slot: usize, next: Next) -> bool {
        match next {
            Next::Process => true,
            Next::Yield => {
                let conn = &mut self.connections[slot];
                if !conn.queued {
                    conn.queued = true;
                    self.yielded.push(slot);
                }
                false
            }
            Next::Wait => false,
        }
    }

    /// Re-arms a receive that ended, cancels one a closing connection still has, and
    /// retires a closing connection with nothing in flight.
    fn tend(&mut self, slot: usize) {
        let conn = &self.connections[slot];
        if conn.client.closing.is_none() {
            if !conn.receiving && !conn.client.hung_up && !conn.throttled() {
                self.arm_receive(slot);
            }
            return;
        }
        if conn.receiving {
            if !conn.cancelling {
                self.cancel_receive(slot);
            }
            return;
        }
        if conn.client.sending.is_none() {
            self.retire(slot);
        }
    }

    /// Hands a finished connection back to its task on tokio.
    fn retire(&mut self, slot: usize) {
        self.connections
            .remove(slot)
            .client
            .retire(self.shared, &self.handle.watchers);
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

    /// Closes connections silent for `-o idle_timeout`, as memcached does.
    fn close_idle(&mut self, now: Instant) {
        let clients = self
            .connections
            .iter_mut()
            .map(|(slot, conn)| (slot, &mut conn.client));
        for slot in handoff::close_idle(self.shared, now, clients) {
            self.mark_ready(slot);
        }
    }

    /// Past the drain limit: what is left (a client that does not read its replies) is
    /// dropped. Its sockets are shut down so the clients see the close, and the
    /// connections with an operation in flight are leaked rather than freed under the
    /// kernel (the process is exiting).
    fn abandon(&mut self) {
        for (_, conn) in self.connections.iter() {
            let _ = conn.client.socket.shutdown(std::net::Shutdown::Both);
        }
        let mut leaked = false;
        for conn in self.connections.drain() {
            if conn.receiving || conn.client.sending.is_some() {
                leaked = true;
                // The kernel may still read the replies and the send's header: those
                // stay; the connection's place in the server is given back (its ticket
                // reports the shutdown).
                let RingConnection {
                    client,
                    iovecs,
                    header,
                    ..
                } = conn;
                let Client {
                    ticket,
                    connection,
                    socket,
                    ..
                } = client;
                drop(ticket);
                std::mem::forget((connection, socket, iovecs, header));
            }
        }
        if leaked {
            self.provided.leak();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_coalesces_only_after_a_busy_one() {
        let lone = Wait {
            completions: 1,
            min_wait_usec: 0,
        };
        // A few blocking clients: answer each at once.
        assert_eq!(Wait::after(0, 4, COALESCE_USEC, false), lone);
        assert_eq!(
            Wait::after(COALESCE_AFTER - 1, 50, COALESCE_USEC, false),
            lone
        );
        // Clients queueing: wait briefly for more of them.
        assert_eq!(
            Wait::after(COALESCE_AFTER, 50, COALESCE_USEC, false),
            Wait {
                completions: 50,
                min_wait_usec: COALESCE_USEC
            }
        );
        assert_eq!(
            Wait::after(200, 500, COALESCE_USEC, false).completions,
            MAX_COALESCED
        );
        // A kernel without min_wait, or work already waiting.
        assert_eq!(Wait::after(200, 50, 0, false), lone);
        assert_eq!(Wait::after(200, 50, COALESCE_USEC, true).completions, 0);
    }
}
