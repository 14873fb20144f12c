//! The one parse-then-execute loop. Stream connections (TCP, unix socket, TLS), UDP
//! datagrams and the command unit tests all run their bytes through [`Session::process`],
//! so the protocol decision (text or binary), `-Y`/`-S` authentication, the swallowing of
//! a refused value and reply-window pausing mean the same on every transport.
//!
//! A session owns no buffer: the caller lends it the bytes received so far, a
//! [`Context`] (whose reply window bounds the pass) and the reply buffer, and afterwards
//! drops the bytes the session reports consumed. Its state between passes is a few words
//! (what to swallow, the protocol, whether the client authenticated, a paused multiget),
//! so an idle connection carries little.

use super::binary::SaslStep;
use super::{Context, Flow};
use crate::config::{ProtocolMode, Settings};
use crate::protocol::{
    Frame, GetKeys, Keys, Limits, ProtocolError, Reply, ReplyBuffer, ReplyStyle, Request,
    StoreMode, binary, parse, text_get,
};
use crate::stats::ConnState;
use std::ops::Range;
use std::sync::atomic::Ordering;

/// Where a processing pass stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The input holds no complete request; at least this many bytes (counted from the
    /// first unconsumed one) are needed.
    NeedInput(usize),
    /// Replies reached the reply window; write them, then call `process` again.
    MoreQueued,
    /// `-R` requests ran since the connection last read and more are waiting: write the
    /// replies, let other connections run, then call `process` again (memcached's
    /// `conn_yields`).
    Yield,
    /// A request ended the pass (quit, shutdown) or the stream must close.
    Done(Flow),
}

/// A multiget paused at a full reply window, resumed before anything else is parsed.
#[derive(Debug)]
struct PausedGet {
    /// Its unanswered keys, as a range of the input counted from the request's first
    /// byte (the caller keeps those bytes until the request is finished).
    keys: Range<usize>,
    with_cas: bool,
    new_exptime: Option<crate::protocol::Exptime>,
    /// Bytes of the input the whole request takes.
    consumed: usize,
}

impl PausedGet {
    /// The request that answers the remaining keys; `input` starts at the request.
    fn request<'a>(&self, input: &'a [u8]) -> Request<'a> {
        text_get(
            Keys(&input[self.keys.clone()]),
            self.with_cas,
            self.new_exptime,
        )
    }

    /// Records where `request`, a get parsed from `input` (which starts at the request)
    /// that stopped at `resume_at` of its key list, goes on.
    fn of(request: &Request<'_>, input: &[u8], resume_at: usize, consumed: usize) -> Self {
        let Request::Get {
            keys: GetKeys::List(keys),
            with_cas,
            touch: new_exptime,
            ..
        } = *request
        else {
            unreachable!("only a text get pauses")
        };
        let start = keys.0.as_ptr() as usize - input.as_ptr() as usize;
        PausedGet {
            keys: start + resume_at..start + keys.0.len(),
            with_cas,
            new_exptime,
            consumed,
        }
    }
}

/// The per-client state of the request loop: one per stream connection, one per UDP
/// datagram, one per unit-test conversation.
#[derive(Debug)]
pub struct Session {
    /// A multiget waiting for its reply window to drain.
    resume: Option<PausedGet>,
    /// Bytes of a refused value still to be discarded as they arrive.
    swallow: usize,
    /// Binary protocol (decided by the first byte under `-B auto`).
    binary: Option<bool>,
    /// False until a `-Y` or `-S` client has authenticated.
    authenticated: bool,
    /// One UDP datagram: each pass answers one request (or one key of a multiget), and
    /// `quit`/`shutdown` mean nothing without a connection.
    datagram: bool,
    /// Connection id in `-vv` logs.
    id: u64,
    /// Requests executed since the connection last read or yielded (`-R`).
    since_yield: usize,
    /// The input ends inside a request whose command line (or binary header) is
    /// complete: what is missing is its data block.
    awaiting_data: bool,
}

impl Session {
    /// The session of a stream connection with id `id` (for logs): the protocol is
    /// decided by its first byte, and under `-Y`/`-S` it starts unauthenticated.
    pub fn stream(settings: &Settings, id: u64) -> Session {
        Session {
            resume: None,
            swallow: 0,
            binary: None,
            authenticated: settings.auth.is_none() && settings.sasl.is_none(),
            datagram: false,
            id,
            since_yield: 0,
            awaiting_data: false,
        }
    }

    /// The session of one UDP datagram whose payload is `payload`. As in memcached it
    /// is binary when it starts with the request magic (unless `-B ascii`), and it needs
    /// no authentication.
    pub fn datagram(settings: &Settings, payload: &[u8]) -> Session {
        let binary = payload.first() == Some(&binary::REQUEST_MAGIC)
            && settings.protocol != ProtocolMode::Ascii;
        Session {
            resume: None,
            swallow: 0,
            binary: Some(binary),
            authenticated: true,
            datagram: true,
            id: 0,
            since_yield: 0,
            awaiting_data: false,
        }
    }

    /// Parses and executes every complete request at the front of `input`, appending
    /// replies to `out` until `ctx.reply_window` is full. Returns where it stopped and
    /// how many bytes of `input` are done with (the caller drops them before the next
    /// pass and keeps the rest).
    pub fn process(
        &mut self,
        input: &[u8],
        ctx: &mut Context<'_>,
        limits: &Limits,
        out: &mut ReplyBuffer,
    ) -> (Step, usize) {
        crate::watch::set_connection(self.id);
        let mut at = 0;
        self.awaiting_data = false;
        loop {
            if self.swallow > 0 {
                let skip = self.swallow.min(input.len() - at);
                at += skip;
                self.swallow -= skip;
                if self.swallow > 0 {
                    return (Step::NeedInput(0), at);
                }
            }
            if !self.datagram && !out.is_empty() && out.len() >= ctx.reply_window.bytes {
                return (Step::MoreQueued, at);
            }
            let rest = &input[at..];
            // A datagram's requests are one message; a stream yields after -R of them.
            if !self.datagram && self.since_yield >= ctx.settings.reqs_per_event && !rest.is_empty()
            {
                self.since_yield = 0;
                return (Step::Yield, at);
            }
            if rest.is_empty() && self.binary == Some(false) && self.resume.is_none() {
                // Nothing left of a text stream's input: what parsing it would answer.
                self.since_yield = 0;
                return (Step::NeedInput(1), at);
            }
            let frame = match self.resume.take() {
                Some(paused) => Frame::Request {
                    request: paused.request(rest),
                    consumed: paused.consumed,
                    swallow: 0,
                },
                None => self.parse_next(rest, ctx.settings.protocol, limits),
            };
            // The request is used where the frame holds it: it is large, and moving it
            // out would copy it.
            let (request, consumed, swallow) = match &frame {
                &Frame::Incomplete { needed } => {
                    // Waiting for the client: the next read starts a new turn.
                    self.since_yield = 0;
                    self.awaiting_data = match self.binary {
                        Some(true) => rest.len() >= binary::HEADER_SIZE,
                        _ => memchr::memchr(b'\n', rest).is_some(),
                    };
                    return (Step::NeedInput(needed), at);
                }
                Frame::Close => return (Step::Done(Flow::Reject), at),
                Frame::Request {
                    request,
                    consumed,
                    swallow,
                } => (request, *consumed, *swallow),
            };
            let traced = tracing::enabled!(tracing::Level::DEBUG);
            let before = out.len();
            if traced {
                let id = self.id;
                tracing::debug!("<{id} {}", first_line(&rest[..consumed]));
            }
            let flow = if self.authenticated {
                super::execute(request, ctx, out)
            } else {
                match self.authenticate(request, ctx, out) {
                    Ok(flow) => flow,
                    Err(error) => {
                        // memcached answers a refused batch once: a pipelined rest
                        // turns the reply into "unauthenticated" and is dropped.
                        let pipelined = rest.len() > consumed;
                        out.error(if pipelined {
                            ProtocolError::Unauthenticated
                        } else {
                            error
                        });
                        self.swallow = 0;
                        return (Step::NeedInput(0), input.len());
                    }
                }
            };
            if traced && out.len() > before {
                let id = self.id;
                let reply = out.to_vec();
                tracing::debug!(">{id} {}", first_line(&reply[before..]));
            }
            if let Flow::MoreKeys { resume_at } = flow {
                self.resume = Some(PausedGet::of(request, rest, resume_at, consumed));
                return (Step::MoreQueued, at);
            }
            at += consumed;
            self.swallow = swallow;
            self.since_yield += 1;
            match flow {
                Flow::Continue => {}
                // Without a connection there is nothing to close or to stop for.
                _ if self.datagram => {}
                _ => return (Step::Done(flow), at),
            }
            // A datagram answers each request as a message of its own, as memcached
            // sends one per response object.
            if self.datagram {
                return (Step::MoreQueued, at);
            }
        }
    }

    /// True while a multiget waits to be resumed: the last pass answered some of its
    /// keys, not the whole request.
    pub fn paused(&self) -> bool {
        self.resume.is_some()
    }

    /// True once the session speaks the binary protocol.
    pub fn is_binary(&self) -> bool {
        self.binary == Some(true)
    }

    /// What the connection waits for after a pass that needs input, by memcached's
    /// `stats conns` names: a value's data block, the rest of a refused one, or a request.
    pub fn waiting(&self) -> ConnState {
        if self.swallow > 0 {
            ConnState::Swallow
        } else if self.awaiting_data {
            ConnState::Nread
        } else {
            ConnState::Read
        }
    }

    /// Parses the next request of `input`, deciding text or binary on the first byte
    /// the session sees.
    fn parse_next<'a>(
        &mut self,
        input: &'a [u8],
        mode: ProtocolMode,
        limits: &Limits,
    ) -> Frame<'a> {
        let is_binary = match self.binary {
            Some(decided) => decided,
            None => {
                let Some(&first) = input.first() else {
                    return Frame::Incomplete { needed: 1 };
                };
                let decided = match mode {
                    ProtocolMode::Auto => first == binary::REQUEST_MAGIC,
                    ProtocolMode::Ascii => false,
                    ProtocolMode::Binary => true,
                };
                self.binary = Some(decided);
                decided
            }
        };
        if is_binary {
            binary::parse_binary(input, limits)
        } else {
            parse(input, limits)
        }
    }

    /// Runs a request of a client that has not authenticated yet: a binary SASL step
    /// under `-S`, a `set` carrying `user password` under `-Y`. The error when a `-Y`
    /// client is refused (not yet queued: the caller picks the reply and drops the rest
    /// of the batch).
    fn authenticate(
        &mut self,
        request: &Request<'_>,
        ctx: &mut Context<'_>,
        out: &mut ReplyBuffer,
    ) -> Result<Flow, ProtocolError> {
        let stats = ctx.stats;
        if let Some(sasl) = &ctx.settings.sasl {
            let flow = if let Request::Binary(binary_request) = request {
                stats.auth_cmds.fetch_add(1, Ordering::Relaxed);
                match super::binary::sasl(sasl, out, binary_request) {
                    SaslStep::Authenticated => {
                        self.authenticated = true;
                        Flow::Continue
                    }
                    SaslStep::Answered => Flow::Continue,
                    SaslStep::Refused => {
                        stats.auth_errors.fetch_add(1, Ordering::Relaxed);
                        Flow::Close
                    }
                }
            } else if let Some((opcode, opaque)) = request.binary_data() {
                // A binary data request before SASL: "Auth failure.", then close.
                stats.auth_cmds.fetch_add(1, Ordering::Relaxed);
                stats.auth_errors.fetch_add(1, Ordering::Relaxed);
                binary::compose_error(out, opcode, binary::Status::AuthError, opaque);
                Flow::Close
            } else {
                // Under -S a request that is not binary is refused and closed.
                Flow::Close
            };
            return Ok(flow);
        }
        if let (
            Some(auth),
            Request::Store {
                mode: StoreMode::Set,
                compare_cas: None,
                data,
                reply: ReplyStyle::Text { noreply },
                ..
            },
        ) = (&ctx.settings.auth, request)
        {
            stats.auth_cmds.fetch_add(1, Ordering::Relaxed);
            if auth.check(data) {
                if !noreply {
                    out.reply(Reply::Stored);
                }
                self.authenticated = true;
                return Ok(Flow::Continue);
            }
            stats.auth_errors.fetch_add(1, Ordering::Relaxed);
            return Err(ProtocolError::AuthenticationFailure);
        }
        stats.auth_errors.fetch_add(1, Ordering::Relaxed);
        Err(ProtocolError::Unauthenticated)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ConnCounters, ServerStats};
    use crate::store::{Clock, Store};
    use std::sync::Arc;

    #[test]
    fn a_stream_yields_after_r_requests_with_more_waiting_and_waits_as_memcached_names() {
        let settings = Settings {
            reqs_per_event: 3,
            ..Settings::default()
        };
        let store = Store::new(&settings.store_config(), Arc::new(Clock::new()));
        let stats = ServerStats::default();
        let mut counters = ConnCounters::default();
        let mut ctx = Context {
            store: &store,
            settings: &settings,
            stats: &stats,
            counters: &mut counters,
            tls: None,
            reply_window: crate::buffers::ReplyWindow::UNBOUNDED,
        };
        let limits = settings.limits();
        let mut out = ReplyBuffer::new();
        let mut session = Session::stream(&settings, 1);
        let input = b"get a\r\n".repeat(7);
        let (step, consumed) = session.process(&input, &mut ctx, &limits, &mut out);
        assert_eq!((step, consumed), (Step::Yield, 21));
        let (step, consumed) = session.process(&input[21..], &mut ctx, &limits, &mut out);
        assert_eq!((step, consumed), (Step::Yield, 21));
        // Nothing waits after the last request: no yield, the session waits to read.
        let (step, consumed) = session.process(&input[42..], &mut ctx, &limits, &mut out);
        assert_eq!((step, consumed), (Step::NeedInput(1), 7));
        assert_eq!(session.waiting(), ConnState::Read);
        let (step, _) = session.process(b"set k 0 0 5\r\nab", &mut ctx, &limits, &mut out);
        assert!(matches!(step, Step::NeedInput(_)));
        assert_eq!(session.waiting(), ConnState::Nread);
    }
}
