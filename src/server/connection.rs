//! One client connection on tokio (TLS and unix sockets; plain TCP is served by the
//! engine threads, `super::handoff`), and the per-client state every data path shares.
//!
//! Read what is there, let its [`Session`] (the request loop
//! shared with UDP and the command tests) parse and execute every complete request in
//! order, write the batch of replies at once, repeat.
//!
//! The connection owns its read buffer (requests borrow from it while they execute) and
//! its reply buffer. Replies are produced in windows (`crate::buffers`): once a window
//! is full the connection writes it before it parses on, and a multiget pauses and
//! resumes on its remaining keys, so a client that pipelines or asks for a huge reply
//! without reading cannot make the server buffer without bound: TCP backpressure
//! reaches the client instead. A connection with nothing pending gives its read buffer
//! back and waits for the socket without one.

use super::Shared;
use crate::buffers::{READ_BUFFER, ReplyWindow};
use crate::command::session::{Session, Step};
use crate::command::{Context, Flow};
use crate::config::ProtocolMode;
use crate::protocol::ReplyBuffer;
use crate::stats::{ConnCounters, ConnInfo, ConnState, ThreadShare};
use crate::watch::CloseReason;
use bytes::{Buf, Bytes, BytesMut};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;

/// At most this many slices per vectored write.
const MAX_IOVECS: usize = 64;

/// A stream socket a connection can be served over.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin {
    /// Waits until bytes can be read, without holding a buffer meanwhile (an idle
    /// connection then costs no read buffer).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;

    /// Writes what the socket takes now without waiting (`WouldBlock` when it takes
    /// nothing, or when the stream cannot write without a task context: TLS). A reply
    /// at depth 1 almost always fits the socket buffer, and this skips the write
    /// future's readiness and budget bookkeeping.
    fn try_write_now(&self, bytes: &[u8]) -> io::Result<usize>;

    /// Reads what the socket holds now into the spare room of `buffer` without waiting
    /// (`WouldBlock` when it holds nothing, or when the stream cannot read without a task
    /// context: TLS). A short read also forgets the socket's read readiness, as tokio's
    /// own read does, so the next wait goes to epoll instead of a `recv` that finds
    /// nothing. Once `readable` said so, this skips the read future's second readiness
    /// and budget check.
    fn try_read_now(&self, buffer: &mut BytesMut) -> io::Result<usize>;
}

impl ClientStream for UnixStream {
    /// Through the socket's one reader waker (`poll_read_ready`, as a read
    /// itself waits), not `readable()`, whose waiter list costs a lock and a
    /// list insertion and removal per wait.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        std::future::poll_fn(|cx| self.poll_read_ready(cx))
    }

    fn try_write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        self.try_write(bytes)
    }

    fn try_read_now(&self, buffer: &mut BytesMut) -> io::Result<usize> {
        let room = buffer.capacity() - buffer.len();
        let count = self.try_read_buf(buffer)?;
        if count < room {
            // Drained: the closure's WouldBlock makes tokio clear the readiness.
            let _ = self.try_io(Interest::READABLE, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
        }
        Ok(count)
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    /// rustls keeps its own record buffers; the read itself waits.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        std::future::ready(Ok(()))
    }

    /// rustls encrypts into its own buffer as the write future runs.
    fn try_write_now(&self, _bytes: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// rustls decrypts from its own record buffers as the read future runs.
    fn try_read_now(&self, _buffer: &mut BytesMut) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// Serves one client until it quits, errs, idles out or the server stops.
pub async fn serve<S: ClientStream>(
    mut socket: S,
    shared: &Shared,
    info: &ConnInfo,
    mut stop: watch::Receiver<bool>,
) {
    let buffers = &shared.stats.buffers;
    let mut connection = Connection::new(shared, info.id);
    // One future for the whole connection, not a new one per read.
    let probe = stop.clone();
    let waiting = std::pin::pin!(async move {
        let _ = stop.changed().await;
    });
    let mut stopped = StopSignal {
        probe,
        waiting,
        registered: None,
    };
    let idle_timeout = shared.settings.idle_timeout;
    // One timer per connection, on the heap so connections without idle_timeout do not
    // carry its room in their task. It is not moved per request: when it fires, the
    // connection closes only if it has been silent for the whole idle_timeout, by the
    // server's clock in seconds (as memcached checks it), and re-arms for the rest
    // otherwise.
    let mut idle_timer =
        (idle_timeout > 0).then(|| Box::pin(tokio::time::sleep(Duration::from_secs(idle_timeout))));
    // The server clock's second of the connection's last batch.
    let mut last_active: u32;
    let mut events = opened(shared, info);
    loop {
        let Batch {
            step: flow,
            window,
            watching,
        } = connection.begin_batch(shared, info);
        let written = connection.flush(&mut socket).await;
        last_active = connection.end_batch(shared, info, window);
        if written.is_err() {
            events.reason = CloseReason::Error;
        }
        match (flow, written) {
            (Step::Done(Flow::Watch(_)), Ok(())) => {
                buffers.give_read_buffer(connection.read);
                if let Some(watching) = watching {
                    watching.serve(&mut socket, &mut stopped).await;
                    // memcached reports a watcher's end as an error close.
                    events.reason = CloseReason::Error;
                }
                return;
            }
            (Step::Done(Flow::Reject), _) => {
                events.reason = CloseReason::Error;
                buffers.give_read_buffer(connection.read);
                return;
            }
            (_, Err(_)) | (Step::Done(Flow::Close), _) => {
                buffers.give_read_buffer(connection.read);
                return;
            }
            (Step::Done(Flow::Shutdown { graceful }), _) => {
                shared.request_shutdown(graceful);
                buffers.give_read_buffer(connection.read);
                return;
            }
            (Step::MoreQueued, _) => continue,
            (Step::Yield, _) => {
                shared.stats.conn_yields.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
                continue;
            }
            (Step::NeedInput(_) | Step::Done(_), _) => {}
        }
        let idle = connection.read.is_empty();
        if idle {
            // Nothing pending: hold no buffers while the client thinks.
            connection.release_buffers(shared);
        }
        info.set_state(connection.session.waiting());
        let needed = match flow {
            Step::NeedInput(needed) => needed,
            _ => 0,
        };
        let read = async {
            if idle {
                socket.readable().await?;
            }
            if connection.read.capacity() == 0 {
                connection.take_buffers(shared)?;
            }
            connection
                .read
                .reserve(needed.saturating_sub(connection.read.len()));
            if connection.read.capacity() - connection.read.len() < 1024 {
                connection.read.reserve(READ_BUFFER);
            }
            match socket.try_read_now(&mut connection.read) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    socket.read_buf(&mut connection.read).await
                }
                result => result,
            }
        };
        // The stop signal, the read and the idle timer, polled in this fixed order (the
        // stop signal costs an atomic load to check) by hand rather than by `select!`,
        // whose per-poll bookkeeping costs more than the three checks.
        let outcome = {
            let mut read = std::pin::pin!(read);
            std::future::poll_fn(|cx| {
                loop {
                    if Pin::new(&mut stopped).poll(cx).is_ready() {
                        events.reason = CloseReason::Shutdown;
                        return Poll::Ready(Ok(0));
                    }
                    if let Poll::Ready(result) = read.as_mut().poll(cx) {
                        return Poll::Ready(result);
                    }
                    let Some(timer) = idle_timer.as_mut() else {
                        return Poll::Pending;
                    };
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let silent = u64::from(shared.store.clock().now().saturating_sub(last_active));
                    if silent >= idle_timeout {
                        // Silent for idle_timeout: close, as memcached does.
                        events.reason = CloseReason::IdleTimeout;
                        shared.stats.idle_kicks.fetch_add(1, Ordering::Relaxed);
                        return Poll::Ready(Ok(0));
                    }
                    let rest = Duration::from_secs(idle_timeout - silent);
                    timer.as_mut().reset(tokio::time::Instant::now() + rest);
                }
            })
            .await
        };
        match outcome {
            Ok(0) | Err(_) => {
                if outcome.is_err() {
                    events.reason = CloseReason::Error;
                }
                buffers.give_read_buffer(connection.read);
                return;
            }
            // A short read drained the socket: tokio forgets its readiness then, so the
            // next read waits for epoll instead of spending a syscall on EAGAIN.
            Ok(count) => connection.counters.bytes_read += count as u64,
        }
    }
}

/// The server's stop signal as one connection waits for it. Polling tokio's
/// `watch::Receiver::changed` takes the channel's lock, shared by every connection, and
/// a connection polls it once or twice per request; this polls it only when the task's
/// waker is new or the channel's version moved (one atomic load otherwise).
struct StopSignal<F> {
    /// A second receiver of the stop channel, to read its version without waiting.
    probe: watch::Receiver<bool>,
    /// Resolves once the stop channel changes; registered with the waker last polled.
    waiting: F,
    /// The waker `waiting` was last polled with (and will wake).
    registered: Option<Waker>,
}

impl<F: Future<Output = ()> + Unpin> Future for StopSignal<F> {
    type Output = ();

    /// The common case (same waker, no change) inline; the rest out of line.
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        let registered = this
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()));
        // A closed channel counts as a change: `waiting` then resolves.
        if registered && !this.probe.has_changed().unwrap_or(true) {
            return Poll::Pending;
        }
        this.poll_waiting(cx)
    }
}

impl<F: Future<Output = ()> + Unpin> StopSignal<F> {
    /// Polls the waiting future itself, registering the task's waker with it.
    #[cold]
    #[inline(never)]
    fn poll_waiting(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        let poll = Pin::new(&mut self.waiting).poll(cx);
        if poll.is_pending() {
            self.registered = Some(cx.waker().clone());
        }
        poll
    }
}

/// Logs a new connection (`-vv`, `watch connevents`); the returned events report its
/// close when dropped.
fn opened<'a>(shared: &Shared, info: &'a ConnInfo) -> crate::watch::ConnectionEvents<'a> {
    log_opened(shared, info);
    crate::watch::ConnectionEvents::open(info.id, &info.peer)
}

/// memcached -vv's line for a new connection, which names the protocol mode (-B). Every
/// data path opens its connections with it.
pub(super) fn log_opened(shared: &Shared, info: &ConnInfo) {
    tracing::debug!(
        "<{} new {} client connection",
        info.id,
        match shared.settings.protocol {
            ProtocolMode::Auto => "auto-negotiating",
            ProtocolMode::Ascii => "ascii",
            ProtocolMode::Binary => "binary",
        }
    );
}

/// A stream connection's buffers and counters around its request [`Session`]: what
/// every data path (this tokio loop for TLS and unix sockets, the engine threads of
/// `super::uring` and `super::epoll` for plain TCP) keeps per client, and the batch
/// steps they share.
pub(super) struct Connection {
    /// Received bytes not yet consumed by the session.
    pub(super) read: BytesMut,
    /// Replies queued by the current batch.
    pub(super) replies: ReplyBuffer,
    /// Replies taken out of `replies` while they are written.
    pub(super) pending: Vec<Bytes>,
    /// Counters folded into the server's after each batch.
    pub(super) counters: ConnCounters,
    /// The request loop's state.
    pub(super) session: Session,
    /// The counters of the thread serving this connection, which folds `counters` in.
    share: ThreadShare,
}

/// What [`Connection::begin_batch`] produced: where the session stopped, the reply
/// window to give back once the replies are written, and a watcher to serve after them.
pub(super) struct Batch {
    /// Where the pass stopped.
    pub(super) step: Step,
    /// Returned by [`Connection::end_batch`].
    pub(super) window: ReplyWindow,
    /// Attached when the batch ended in `watch`.
    pub(super) watching: Option<crate::watch::Watching>,
}

impl Connection {
    /// A connection with id `id` (for logs) that holds no buffer yet. Made on the
    /// thread that serves it for its whole life (a worker's runtime, or a ring thread),
    /// whose counter share it takes.
    pub(super) fn new(shared: &Shared, id: u64) -> Connection {
        Connection {
            read: BytesMut::new(),
            replies: ReplyBuffer::new(),
            pending: Vec::new(),
            counters: ConnCounters::default(),
            session: Session::stream(&shared.settings, id),
            share: shared.stats.thread_share(),
        }
    }

    /// Nothing pending: hands the read and reply buffers back to the thread's pools, so
    /// an idle connection holds none while the client thinks.
    pub(super) fn release_buffers(&mut self, shared: &Shared) {
        let buffers = &shared.stats.buffers;
        buffers.give_buffers(&mut self.read, &mut self.replies.reclaim());
        if self.pending.capacity() != 0 {
            self.pending = Vec::new();
        }
    }

    /// Takes a read buffer before a read (and a reply buffer for the replies to come,
    /// from the same pool access). Under read_buf_mem_limit a connection that finds no
    /// room for a read buffer is closed: the error says so.
    fn take_buffers(&mut self, shared: &Shared) -> io::Result<()> {
        let buffers = &shared.stats.buffers;
        let taken = if self.replies.lacks_storage() {
            let mut reply = BytesMut::new();
            let taken = buffers.take_buffers(&mut self.read, Some(&mut reply));
            self.replies.provide(reply);
            taken
        } else {
            buffers.take_buffers(&mut self.read, None)
        };
        if !taken {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        Ok(())
    }

    /// Runs every complete request in the read buffer within a freshly granted reply
    /// window. The caller writes the replies, then calls [`Connection::end_batch`].
    pub(super) fn begin_batch(&mut self, shared: &Shared, info: &ConnInfo) -> Batch {
        self.begin_batch_on(shared, info, None).0
    }

    /// [`Connection::begin_batch`] over `lent` bytes instead of the read buffer (which
    /// then holds nothing): the caller keeps what the returned count does not cover.
    pub(super) fn begin_batch_on(
        &mut self,
        shared: &Shared,
        info: &ConnInfo,
        lent: Option<&[u8]>,
    ) -> (Batch, usize) {
        let buffers = &shared.stats.buffers;
        let window = buffers.grant_window();
        if self.replies.lacks_storage() {
            self.replies.provide(buffers.take_reply_buffer());
        }
        info.set_state(ConnState::ParseCmd);
        let (step, consumed) = self.process(shared, window, lent);
        // A watcher is attached before its OK leaves: it misses nothing that follows.
        let watching = match step {
            Step::Done(Flow::Watch(kinds)) => {
                crate::watch::Watching::attach(kinds, shared.settings.watcher_logbuf_size as usize)
            }
            _ => None,
        };
        if !self.replies.is_empty() {
            info.set_state(ConnState::Mwrite);
        }
        // Counted before the replies leave: a client holding a reply finds its request
        // in `stats` on any connection. Bytes written are counted once they are.
        self.share.absorb(&mut self.counters);
        let batch = Batch {
            step,
            window,
            watching,
        };
        (batch, consumed)
    }

    /// After the batch's replies were written (or failed): gives the window back, counts
    /// the bytes written and stamps the connection's last command time, which it
    /// returns (the server clock's second).
    pub(super) fn end_batch(
        &mut self,
        shared: &Shared,
        info: &ConnInfo,
        window: ReplyWindow,
    ) -> u32 {
        shared.stats.buffers.return_window(window);
        // begin_batch folded the rest; bytes read meanwhile are folded by the next
        // batch, before its replies leave.
        self.share
            .add_bytes_written(std::mem::take(&mut self.counters.bytes_written));
        let now = shared.store.clock().now();
        // Written only when the second changes: the line stays clean between batches.
        if info.last_command.load(Ordering::Relaxed) != now {
            info.last_command.store(now, Ordering::Relaxed);
        }
        now
    }

    /// Parses and executes every complete request in the read buffer (or in `lent`),
    /// then drops the read buffer's bytes done with. `window` bounds the reply bytes
    /// this pass queues (see `crate::buffers`). Returns the step and the bytes consumed.
    fn process(
        &mut self,
        shared: &Shared,
        window: ReplyWindow,
        lent: Option<&[u8]>,
    ) -> (Step, usize) {
        let mut ctx = Context {
            store: &shared.store,
            settings: &shared.settings,
            stats: &shared.stats,
            counters: &mut self.counters,
            tls: shared.tls_control(),
            reply_window: window,
        };
        let input = lent.unwrap_or(&self.read[..]);
        let (step, consumed) =
            self.session
                .process(input, &mut ctx, &shared.limits, &mut self.replies);
        match lent {
            Some(_) => {}
            // All of it: the buffer starts over at the front of its allocation (advancing
            // would leave the consumed room to be reclaimed before reuse).
            None if consumed == self.read.len() => self.read.clear(),
            None => self.read.advance(consumed),
        }
        (step, consumed)
    }

    /// Writes every queued reply.
    async fn flush<S: ClientStream>(&mut self, socket: &mut S) -> io::Result<()> {
        if self.replies.is_empty() {
            return Ok(());
        }
        if let Some(replies) = self.replies.contiguous() {
            // The common case: written straight from the buffer, which keeps its room,
            // at once when the socket takes it all.
            let written = match socket.try_write_now(replies) {
                Ok(written) => written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
                Err(error) => return Err(error),
            };
            if written < replies.len() {
                socket.write_all(&replies[written..]).await?;
            }
            self.counters.bytes_written += replies.len() as u64;
            self.replies.clear();
            return Ok(());
        }
        self.replies.take(&mut self.pending);
        let total: usize = self.pending.iter().map(Bytes::len).sum();
        write_all_vectored(socket, &mut self.pending).await?;
        self.counters.bytes_written += total as u64;
        Ok(())
    }
}

/// Writes a list of buffers with as few system calls as possible.
async fn write_all_vectored<S: ClientStream>(
    socket: &mut S,
    chunks: &mut Vec<Bytes>,
) -> io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        if chunks.len() - first == 1 {
            socket.write_all(&chunks[first]).await?;
            break;
        }
        let slices: Vec<IoSlice<'_>> = chunks[first..]
            .iter()
            .take(MAX_IOVECS)
            .map(|chunk| IoSlice::new(chunk))
            .collect();
        let written = socket.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        first += advance(&mut chunks[first..], written);
    }
    chunks.clear();
    Ok(())
}

/// Drops `written` bytes from the front of `chunks`, which a write just sent; returns
/// how many chunks it sent whole (the first of the rest may have lost its front).
pub(super) fn advance(chunks: &mut [Bytes], mut written: usize) -> usize {
    let mut done = 0;
    while written > 0 && done < chunks.len() {
        let chunk = &mut chunks[done];
        if written >= chunk.len() {
            written -= chunk.len();
            done += 1;
        } else {
            chunk.advance(written);
            written = 0;
        }
    }
    done
}
