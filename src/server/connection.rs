//! One client connection: read what is there, let its [`Session`] (the request loop
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
use crate::stats::{ConnCounters, ConnInfo, ConnState};
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
    /// Forgets cached read readiness so the next read waits for the reactor.
    fn forget_read_readiness(&self);

    /// Waits until bytes can be read, without holding a buffer meanwhile (an idle
    /// connection then costs no read buffer).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;
}

macro_rules! client_stream {
    ($type:ty) => {
        impl ClientStream for $type {
            fn forget_read_readiness(&self) {
                let _ = self.try_io(Interest::READABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
            }

            fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
                <$type>::readable(self)
            }
        }
    };
}
client_stream!(TcpStream);
client_stream!(UnixStream);

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    /// TLS reads may need several socket reads per record; let rustls drive readiness.
    fn forget_read_readiness(&self) {}

    /// rustls keeps its own record buffers; the read itself waits.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        std::future::ready(Ok(()))
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
    // Taken on the worker thread that runs this task for its whole life.
    let counters = shared.stats.thread_share();
    let mut connection = Connection {
        read: BytesMut::new(),
        replies: ReplyBuffer::new(),
        pending: Vec::new(),
        counters: ConnCounters::default(),
        session: Session::stream(&shared.settings, info.id),
    };
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
    // memcached -vv's line, which names the protocol mode (-B).
    tracing::debug!(
        "<{} new {} client connection",
        info.id,
        match shared.settings.protocol {
            ProtocolMode::Auto => "auto-negotiating",
            ProtocolMode::Ascii => "ascii",
            ProtocolMode::Binary => "binary",
        }
    );
    let mut events = crate::watch::ConnectionEvents::open(info.id, &info.peer);
    loop {
        let window = buffers.grant_window();
        if connection.replies.lacks_storage() {
            connection.replies.provide(buffers.take_reply_buffer());
        }
        info.set_state(ConnState::ParseCmd);
        let flow = connection.process(shared, window);
        // A watcher is attached before its OK leaves: it misses nothing that follows.
        let watching = match flow {
            Step::Done(Flow::Watch(kinds)) => {
                crate::watch::Watching::attach(kinds, shared.settings.watcher_logbuf_size as usize)
            }
            _ => None,
        };
        if !connection.replies.is_empty() {
            info.set_state(ConnState::Mwrite);
        }
        // Counted before the replies leave: a client holding a reply finds its request
        // in `stats` on any connection. Bytes written are counted once they are.
        counters.absorb(&mut connection.counters);
        let written = connection.flush(&mut socket).await;
        buffers.return_window(window);
        counters.absorb(&mut connection.counters);
        let now = shared.store.clock().now();
        last_active = now;
        // Written only when the second changes: the line stays clean between batches.
        if info.last_command.load(Ordering::Relaxed) != now {
            info.last_command.store(now, Ordering::Relaxed);
        }
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
            buffers.give_read_buffer(std::mem::take(&mut connection.read));
            buffers.give_reply_buffer(connection.replies.reclaim());
            connection.pending = Vec::new();
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
                // Under read_buf_mem_limit a connection that finds no room is closed.
                connection.read = buffers
                    .take_read_buffer()
                    .ok_or(io::ErrorKind::OutOfMemory)?;
            }
            connection
                .read
                .reserve(needed.saturating_sub(connection.read.len()));
            if connection.read.capacity() - connection.read.len() < 1024 {
                connection.read.reserve(READ_BUFFER);
            }
            socket.read_buf(&mut connection.read).await
        };
        let outcome = {
            let mut read = std::pin::pin!(read);
            loop {
                // In a fixed order: the stop signal costs an atomic load to check.
                tokio::select! {
                    biased;
                    _ = &mut stopped => {
                        events.reason = CloseReason::Shutdown;
                        break Ok(0);
                    }
                    result = &mut read => break result,
                    _ = async { idle_timer.as_mut().expect("armed").await }, if idle_timer.is_some() => {
                        let silent = u64::from(shared.store.clock().now().saturating_sub(last_active));
                        if silent >= idle_timeout {
                            // Silent for idle_timeout: close, as memcached does.
                            events.reason = CloseReason::IdleTimeout;
                            shared.stats.idle_kicks.fetch_add(1, Ordering::Relaxed);
                            break Ok(0);
                        }
                        let rest = Duration::from_secs(idle_timeout - silent);
                        let timer = idle_timer.as_mut().expect("armed");
                        timer.as_mut().reset(tokio::time::Instant::now() + rest);
                    }
                }
            }
        };
        match outcome {
            Ok(0) | Err(_) => {
                if outcome.is_err() {
                    events.reason = CloseReason::Error;
                }
                buffers.give_read_buffer(connection.read);
                return;
            }
            Ok(count) => {
                connection.counters.bytes_read += count as u64;
                if connection.read.capacity() > connection.read.len() {
                    // A short read drained the socket: forget its readiness now, so the
                    // next read waits for epoll instead of spending a syscall on EAGAIN.
                    socket.forget_read_readiness();
                }
            }
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
        let poll = Pin::new(&mut this.waiting).poll(cx);
        if poll.is_pending() {
            this.registered = Some(cx.waker().clone());
        }
        poll
    }
}

/// A stream connection's buffers and counters around its request [`Session`].
struct Connection {
    read: BytesMut,
    replies: ReplyBuffer,
    pending: Vec<Bytes>,
    counters: ConnCounters,
    session: Session,
}

impl Connection {
    /// Parses and executes every complete request in the read buffer, then drops the
    /// bytes done with. `window` bounds the reply bytes this pass queues (see
    /// `crate::buffers`).
    fn process(&mut self, shared: &Shared, window: ReplyWindow) -> Step {
        let mut ctx = Context {
            store: &shared.store,
            settings: &shared.settings,
            stats: &shared.stats,
            counters: &mut self.counters,
            tls: shared.tls_control(),
            reply_window: window,
        };
        let (step, consumed) =
            self.session
                .process(&self.read, &mut ctx, &shared.limits, &mut self.replies);
        self.read.advance(consumed);
        step
    }

    /// Writes every queued reply.
    async fn flush<S: ClientStream>(&mut self, socket: &mut S) -> io::Result<()> {
        if self.replies.is_empty() {
            return Ok(());
        }
        if let Some(replies) = self.replies.contiguous() {
            // The common case: written straight from the buffer, which keeps its room.
            socket.write_all(replies).await?;
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
        let mut written = socket.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let chunk = &mut chunks[first];
            if written >= chunk.len() {
                written -= chunk.len();
                first += 1;
            } else {
                chunk.advance(written);
                written = 0;
            }
        }
    }
    chunks.clear();
    Ok(())
}
