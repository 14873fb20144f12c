//! One client connection: read what is there, parse and execute every complete request
//! in order, write the batch of replies at once, repeat.
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
use crate::command::binary::SaslStep;
use crate::command::{self, Context, Flow};
use crate::config::ProtocolMode;
use crate::protocol::{
    Frame, GetKeys, Keys, ProtocolError, Reply, ReplyBuffer, ReplyStyle, Request, StoreMode,
    binary, parse, text_get,
};
use crate::stats::{ConnCounters, ConnInfo};
use bytes::{Buf, Bytes, BytesMut};
use std::future::Future;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::sync::atomic::Ordering;
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
    let mut connection = Connection {
        read: BytesMut::new(),
        replies: ReplyBuffer::new(),
        pending: Vec::new(),
        counters: ConnCounters::default(),
        resume: None,
        swallow: 0,
        binary: None,
        id: info.id,
        authenticated: shared.settings.auth.is_none() && shared.settings.sasl.is_none(),
    };
    // One future for the whole connection, not a new one per read.
    let mut stopped = std::pin::pin!(async move {
        let _ = stop.changed().await;
    });
    let idle_timeout = match shared.settings.idle_timeout {
        0 => None,
        seconds => Some(Duration::from_secs(seconds)),
    };
    // One timer per connection, on the heap so connections without idle_timeout do not
    // carry its room in their task.
    let mut idle_timer = idle_timeout.map(|limit| Box::pin(tokio::time::sleep(limit)));
    tracing::debug!("<{} new client connection from {}", info.id, info.peer);
    loop {
        let window = buffers.grant_window();
        let flow = connection.process(shared, window);
        let written = connection.flush(&mut socket).await;
        buffers.return_window(window);
        shared.stats.absorb(&mut connection.counters);
        info.last_command
            .store(shared.store.clock().now(), Ordering::Relaxed);
        match (flow, written) {
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
            (Step::NeedInput(_) | Step::Done(_), _) => {}
        }
        let idle = connection.read.is_empty();
        if idle {
            // Nothing pending: hold no buffers while the client thinks.
            buffers.give_read_buffer(std::mem::take(&mut connection.read));
            connection.replies.release();
            connection.pending = Vec::new();
        }
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
        if let (Some(timer), Some(limit)) = (idle_timer.as_mut(), idle_timeout) {
            timer.as_mut().reset(tokio::time::Instant::now() + limit);
        }
        let outcome = tokio::select! {
            result = read => result,
            _ = &mut stopped => Ok(0),
            // Silent for idle_timeout: close, as memcached does.
            _ = async { idle_timer.as_mut().expect("armed").await }, if idle_timer.is_some() => Ok(0),
        };
        match outcome {
            Ok(0) | Err(_) => {
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

/// Where a processing pass stopped.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The buffer holds no complete request; at least this many bytes are needed.
    NeedInput(usize),
    /// Replies reached the high-water mark; write them, then parse on.
    MoreQueued,
    /// A request ended the pass (quit, shutdown) or the stream must close.
    Done(Flow),
}

/// A multiget paused at a full reply window, resumed before anything else is parsed.
struct PausedGet {
    /// Its unanswered keys, as a range of the read buffer (which is not touched meanwhile).
    keys: Range<usize>,
    with_cas: bool,
    new_exptime: Option<i32>,
    /// Bytes of the read buffer the whole request takes.
    consumed: usize,
}

impl PausedGet {
    /// The request that answers the remaining keys.
    fn request<'a>(&self, read: &'a [u8]) -> Request<'a> {
        text_get(
            Keys(&read[self.keys.clone()]),
            self.with_cas,
            self.new_exptime,
        )
    }

    /// Records where `request`, a get of the buffer `read` that stopped at `resume_at`
    /// of its key list, goes on.
    fn of(request: &Request<'_>, read: &[u8], resume_at: usize, consumed: usize) -> Self {
        let Request::Get {
            keys: GetKeys::List(keys),
            with_cas,
            touch: new_exptime,
            ..
        } = *request
        else {
            unreachable!("only a text get pauses")
        };
        let start = keys.0.as_ptr() as usize - read.as_ptr() as usize;
        PausedGet {
            keys: start + resume_at..start + keys.0.len(),
            with_cas,
            new_exptime,
            consumed,
        }
    }
}

struct Connection {
    read: BytesMut,
    replies: ReplyBuffer,
    pending: Vec<Bytes>,
    counters: ConnCounters,
    /// A multiget waiting for its reply window to drain.
    resume: Option<PausedGet>,
    /// Bytes of a refused value still to be discarded as they arrive.
    swallow: usize,
    /// Binary protocol (decided by the first byte under `-B auto`).
    binary: Option<bool>,
    /// Connection id in logs and `stats conns`.
    id: u64,
    /// False until a `-Y` client has authenticated.
    authenticated: bool,
}

impl Connection {
    /// Parses and executes every complete request in the read buffer.
    /// `window` bounds the reply bytes this pass queues (see `crate::buffers`).
    fn process(&mut self, shared: &Shared, window: ReplyWindow) -> Step {
        loop {
            if self.swallow > 0 {
                let skip = self.swallow.min(self.read.len());
                self.read.advance(skip);
                self.swallow -= skip;
                if self.swallow > 0 {
                    return Step::NeedInput(0);
                }
            }
            if !self.replies.is_empty() && self.replies.len() >= window.bytes {
                return Step::MoreQueued;
            }
            let frame = if let Some(paused) = self.resume.take() {
                Frame::Request {
                    request: paused.request(&self.read),
                    consumed: paused.consumed,
                    swallow: 0,
                }
            } else {
                parse_next(&self.read, &mut self.binary, shared)
            };
            let (consumed, swallow, flow) = match frame {
                Frame::Incomplete { needed } => return Step::NeedInput(needed),
                Frame::Close => return Step::Done(Flow::Close),
                Frame::Request {
                    request,
                    consumed,
                    swallow,
                } => {
                    let mut ctx = Context {
                        store: &shared.store,
                        settings: &shared.settings,
                        stats: &shared.stats,
                        counters: &mut self.counters,
                        tls: shared.tls.as_ref(),
                        reply_window: window,
                    };
                    let traced = tracing::enabled!(tracing::Level::DEBUG);
                    let before = self.replies.len();
                    if traced {
                        let id = self.id;
                        tracing::debug!("<{id} {}", first_line(&self.read[..consumed]));
                    }
                    let flow = if self.authenticated {
                        command::execute(&request, &mut ctx, &mut self.replies)
                    } else if let (Some(sasl), Request::Binary(binary_request)) =
                        (&shared.settings.sasl, &request)
                    {
                        shared.stats.auth_cmds.fetch_add(1, Ordering::Relaxed);
                        match command::binary::sasl(sasl, &mut self.replies, binary_request) {
                            SaslStep::Authenticated => {
                                self.authenticated = true;
                                Flow::Continue
                            }
                            SaslStep::Answered => Flow::Continue,
                            SaslStep::Refused => {
                                shared.stats.auth_errors.fetch_add(1, Ordering::Relaxed);
                                Flow::Close
                            }
                        }
                    } else if let (Some(_), Some((opcode, opaque))) =
                        (&shared.settings.sasl, request.binary_data())
                    {
                        // A binary data request before SASL: "Auth failure.", then close.
                        shared.stats.auth_cmds.fetch_add(1, Ordering::Relaxed);
                        shared.stats.auth_errors.fetch_add(1, Ordering::Relaxed);
                        binary::compose_error(
                            &mut self.replies,
                            opcode,
                            binary::Status::AuthError,
                            opaque,
                        );
                        Flow::Close
                    } else if shared.settings.sasl.is_some() {
                        // Under -S a request that is not binary is refused and closed.
                        Flow::Close
                    } else {
                        match authenticate(shared, &request, &mut self.replies) {
                            Ok(()) => {
                                self.authenticated = true;
                                Flow::Continue
                            }
                            Err(error) => {
                                // memcached answers a refused batch once: a pipelined rest
                                // turns the reply into "unauthenticated" and is dropped.
                                let pipelined = self.read.len() > consumed;
                                self.replies.error(if pipelined {
                                    ProtocolError::Unauthenticated
                                } else {
                                    error
                                });
                                self.read.clear();
                                self.swallow = 0;
                                return Step::NeedInput(0);
                            }
                        }
                    };
                    if traced && self.replies.len() > before {
                        let id = self.id;
                        let reply = self.replies.to_vec();
                        tracing::debug!(">{id} {}", first_line(&reply[before..]));
                    }
                    if let Flow::MoreKeys { resume_at } = flow {
                        self.resume =
                            Some(PausedGet::of(&request, &self.read, resume_at, consumed));
                        return Step::MoreQueued;
                    }
                    (consumed, swallow, flow)
                }
            };
            self.read.advance(consumed);
            self.swallow = swallow;
            if flow != Flow::Continue {
                return Step::Done(flow);
            }
        }
    }

    /// Writes every queued reply.
    async fn flush<S: ClientStream>(&mut self, socket: &mut S) -> io::Result<()> {
        if self.replies.is_empty() {
            return Ok(());
        }
        self.replies.take(&mut self.pending);
        let total: usize = self.pending.iter().map(Bytes::len).sum();
        write_all_vectored(socket, &mut self.pending).await?;
        self.counters.bytes_written += total as u64;
        Ok(())
    }
}

/// Parses the next request of `read`, deciding text or binary on the connection's first
/// byte.
fn parse_next<'a>(read: &'a [u8], binary: &mut Option<bool>, shared: &Shared) -> Frame<'a> {
    let is_binary = match *binary {
        Some(decided) => decided,
        None => {
            let Some(&first) = read.first() else {
                return Frame::Incomplete { needed: 1 };
            };
            let decided = match shared.settings.protocol {
                ProtocolMode::Auto => first == binary::REQUEST_MAGIC,
                ProtocolMode::Ascii => false,
                ProtocolMode::Binary => true,
            };
            *binary = Some(decided);
            decided
        }
    };
    if is_binary {
        binary::parse_binary(read, &shared.limits)
    } else {
        parse(read, &shared.limits)
    }
}

/// Before `-Y` authentication only a `set` carrying `user password` is accepted;
/// anything else, or wrong credentials, is refused with the error memcached gives.
fn authenticate(
    shared: &Shared,
    request: &Request<'_>,
    replies: &mut ReplyBuffer,
) -> Result<(), ProtocolError> {
    let stats = &shared.stats;
    if let (
        Some(auth),
        Request::Store {
            mode: StoreMode::Set,
            compare_cas: None,
            data,
            reply: ReplyStyle::Text { noreply },
            ..
        },
    ) = (&shared.settings.auth, request)
    {
        stats.auth_cmds.fetch_add(1, Ordering::Relaxed);
        if auth.check(data) {
            if !noreply {
                replies.reply(Reply::Stored);
            }
            return Ok(());
        }
        stats.auth_errors.fetch_add(1, Ordering::Relaxed);
        return Err(ProtocolError::AuthenticationFailure);
    }
    stats.auth_errors.fetch_add(1, Ordering::Relaxed);
    Err(ProtocolError::Unauthenticated)
}

/// The first line of a request or reply as memcached's `-vv` log shows it (binary
/// frames are shown by opcode).
fn first_line(bytes: &[u8]) -> String {
    if bytes.first() == Some(&binary::REQUEST_MAGIC)
        || bytes.first() == Some(&binary::RESPONSE_MAGIC)
    {
        return format!("binary opcode 0x{:02x}", bytes.get(1).copied().unwrap_or(0));
    }
    let end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len()).min(256);
    String::from_utf8_lossy(&bytes[..end])
        .trim_end()
        .to_string()
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
