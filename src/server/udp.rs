//! memcached's UDP transport (`-U`): an 8-byte frame header (request id, sequence,
//! total, reserved), one request datagram in (its total must be 1), and replies cut into
//! datagrams of at most 1400 bytes.
//!
//! memcached answers with one message per response object, each with its own sequence
//! numbers: one per request, and for a text multiget one per key (a miss's object is
//! empty; `END` rides on the last key's). An empty object goes out as a bare header
//! (total 0) only when it is the first non-skipped object of a transmission; the objects
//! queued since the last transmission are sent after every text get and at the end of
//! the datagram. A noreply or quiet-miss meta request queues a skipped object (nothing
//! sent); a binary quiet request an empty one. [`Framer`] replays those rules on the
//! passes of a datagram's [`Session`], which answers one request (or one multiget key)
//! per pass, so a reply is produced and sent one message at a time, however large.
//!
//! Beyond memcached, a reply larger than `udp_max_reply_ratio` times its request is
//! dropped and counted, so a spoofed small request cannot aim a large reply at a victim
//! (the 2018 amplification attacks). A refused value is swallowed, never run as requests.

use super::Shared;
use crate::buffers::ReplyWindow;
use crate::command::Context;
use crate::command::session::{Session, Step};
use crate::protocol::ReplyBuffer;
use crate::stats::ConnCounters;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Largest datagram memcached sends, header included.
pub const MAX_DATAGRAM: usize = 1400;
/// Size of the frame header.
pub const HEADER: usize = 8;

/// The frame header of a UDP request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Chosen by the client, echoed in every reply datagram.
    pub request_id: u16,
    /// Index of this datagram in its message.
    pub sequence: u16,
    /// Number of datagrams in the message.
    pub total: u16,
}

impl FrameHeader {
    /// Reads a header; `None` for datagrams too short to carry a request.
    pub fn parse(datagram: &[u8]) -> Option<FrameHeader> {
        if datagram.len() <= HEADER {
            return None;
        }
        let field = |at: usize| u16::from_be_bytes([datagram[at], datagram[at + 1]]);
        Some(FrameHeader {
            request_id: field(0),
            sequence: field(2),
            total: field(4),
        })
    }

    fn write(self, into: &mut Vec<u8>) {
        into.extend_from_slice(&self.request_id.to_be_bytes());
        into.extend_from_slice(&self.sequence.to_be_bytes());
        into.extend_from_slice(&self.total.to_be_bytes());
        into.extend_from_slice(&[0, 0]);
    }
}

/// Cuts a non-empty message into framed datagrams, as memcached does: 1392 payload
/// bytes each, every one naming the message's datagram count.
pub fn frame_reply(request_id: u16, reply: &[u8]) -> Vec<Vec<u8>> {
    let payload = MAX_DATAGRAM - HEADER;
    // memcached clips the count (and wraps the sequence) at 16 bits.
    let total = reply.len().div_ceil(payload).max(1);
    let total_field = total.min(usize::from(u16::MAX)) as u16;
    (0..total)
        .map(|sequence| {
            let mut datagram = Vec::with_capacity(MAX_DATAGRAM);
            FrameHeader {
                request_id,
                sequence: sequence as u16,
                total: total_field,
            }
            .write(&mut datagram);
            let end = ((sequence + 1) * payload).min(reply.len());
            datagram.extend_from_slice(&reply[sequence * payload..end]);
            datagram
        })
        .collect()
}

/// What one pass of a datagram's session answered, in memcached's terms: one response
/// object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A noreply or quiet text request: memcached queues a skipped object.
    Skipped,
    /// A multiget miss that is not the last key, or a binary quiet request: an empty
    /// object, sent as a bare header when it leads a transmission.
    Empty,
    /// Reply bytes.
    Reply(Vec<u8>),
}

/// One pass: its message, and whether memcached transmits what is queued after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// What the pass answered.
    pub message: Message,
    /// A text get ended: memcached sends what is queued before it parses on.
    pub transmits: bool,
}

/// Turns a datagram's passes into reply datagrams the way memcached's UDP transmit
/// walks its response objects.
#[derive(Debug)]
pub struct Framer {
    request_id: u16,
    /// No object of the current transmission has been sent or passed over yet.
    leading: bool,
}

impl Framer {
    /// A framer for the reply to request `request_id`.
    pub fn new(request_id: u16) -> Framer {
        Framer {
            request_id,
            leading: true,
        }
    }

    /// The datagrams of one pass.
    pub fn frame(&mut self, pass: &Pass) -> Vec<Vec<u8>> {
        let datagrams = match &pass.message {
            Message::Skipped => Vec::new(),
            // After a sent object memcached retires the empty ones that follow without
            // sending them; only one at the head of a transmission is sent, bare.
            Message::Empty if self.leading => {
                let mut datagram = Vec::with_capacity(HEADER);
                FrameHeader {
                    request_id: self.request_id,
                    sequence: 0,
                    total: 0,
                }
                .write(&mut datagram);
                vec![datagram]
            }
            Message::Empty => Vec::new(),
            Message::Reply(bytes) => frame_reply(self.request_id, bytes),
        };
        if pass.message != Message::Skipped {
            self.leading = false;
        }
        if pass.transmits {
            self.leading = true;
        }
        datagrams
    }
}

/// The requests of one datagram payload, run one pass at a time.
pub struct DatagramRun<'a> {
    shared: &'a Shared,
    payload: &'a [u8],
    session: Session,
    /// Bytes of the payload done with.
    at: usize,
    finished: bool,
}

impl<'a> DatagramRun<'a> {
    /// A run over `payload` (the datagram without its header).
    pub fn new(shared: &'a Shared, payload: &'a [u8]) -> DatagramRun<'a> {
        DatagramRun {
            shared,
            payload,
            session: Session::datagram(&shared.settings, payload),
            at: 0,
            finished: false,
        }
    }

    /// Executes the next request (or multiget key); `None` once the payload holds no
    /// complete request. An incomplete request, or a refused value the datagram does
    /// not hold whole, is simply not there: the session ends with the datagram.
    pub fn next_pass(&mut self, counters: &mut ConnCounters) -> Option<Pass> {
        if self.finished {
            return None;
        }
        let shared = self.shared;
        let mut out = ReplyBuffer::new();
        let mut ctx = Context {
            store: &shared.store,
            settings: &shared.settings,
            stats: &shared.stats,
            counters,
            tls: None,
            reply_window: ReplyWindow::EACH_KEY,
        };
        let start = self.at;
        let (step, consumed) =
            self.session
                .process(&self.payload[start..], &mut ctx, &shared.limits, &mut out);
        self.at += consumed;
        let answered = step == Step::MoreQueued;
        if !answered {
            self.finished = true;
            if out.is_empty() {
                return None;
            }
        }
        let reply = out.to_vec();
        let paused = self.session.paused();
        let message = match reply.is_empty() {
            false => Message::Reply(reply),
            true if paused || self.session.is_binary() => Message::Empty,
            true => Message::Skipped,
        };
        let transmits = answered
            && !paused
            && !self.session.is_binary()
            && is_text_get(&self.payload[start..self.at])
            && matches!(&message, Message::Reply(bytes) if bytes.ends_with(b"END\r\n"));
        Some(Pass { message, transmits })
    }
}

/// True when `request` is a text `get`, `gets`, `gat` or `gats` line: the commands after
/// which memcached sends what it queued.
fn is_text_get(request: &[u8]) -> bool {
    let line = request.trim_ascii_start();
    let command = line
        .split(|&byte| byte == b' ' || byte == b'\r' || byte == b'\n')
        .next()
        .unwrap_or_default();
    matches!(command, b"get" | b"gets" | b"gat" | b"gats")
}

/// Serves one UDP socket until the server stops.
pub async fn serve(shared: Arc<Shared>, socket: UdpSocket, mut stop: watch::Receiver<bool>) {
    let mut buffer = vec![0u8; 65536];
    let mut counters = ConnCounters::default();
    loop {
        let (length, peer) = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok(pair) => pair,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let datagram = &buffer[..length];
        // memcached drops a request announced as more (or fewer) than one datagram and
        // ignores the sequence and reserved fields.
        let Some(header) = FrameHeader::parse(datagram).filter(|h| h.total == 1) else {
            continue;
        };
        counters.bytes_read += length as u64;
        let payload = &datagram[HEADER..];
        let mut framer = Framer::new(header.request_id);
        let ratio = shared.settings.udp_max_reply_ratio;
        if ratio == 0 {
            // Uncapped: each message leaves as soon as it is answered, so a reply
            // larger than any buffer is sent, as memcached sends it.
            let mut run = DatagramRun::new(&shared, payload);
            while let Some(pass) = run.next_pass(&mut counters) {
                // Counted before the reply leaves, as on a stream connection.
                shared.stats.absorb(&mut counters);
                send(&socket, peer, framer.frame(&pass), &mut counters).await;
            }
        } else {
            let cap = length.saturating_mul(ratio);
            let mut held = Vec::new();
            let mut held_bytes = 0usize;
            let mut dropped = false;
            let mut run = DatagramRun::new(&shared, payload);
            // Every request runs; only the reply is refused once it outgrows the cap.
            while let Some(pass) = run.next_pass(&mut counters) {
                if dropped {
                    continue;
                }
                if let Message::Reply(bytes) = &pass.message {
                    held_bytes += bytes.len();
                }
                if held_bytes > cap {
                    dropped = true;
                    held = Vec::new();
                    continue;
                }
                held.push(pass);
            }
            shared.stats.absorb(&mut counters);
            if dropped {
                shared
                    .stats
                    .udp_replies_dropped
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            for pass in &held {
                send(&socket, peer, framer.frame(pass), &mut counters).await;
            }
        }
        shared.stats.absorb(&mut counters);
    }
}

/// Sends datagrams to `peer`, counting what left.
async fn send(
    socket: &UdpSocket,
    peer: std::net::SocketAddr,
    datagrams: Vec<Vec<u8>>,
    counters: &mut ConnCounters,
) {
    for datagram in datagrams {
        if socket.send_to(&datagram, peer).await.is_ok() {
            counters.bytes_written += datagram.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_cut_into_framed_datagrams() {
        let reply = vec![b'x'; 20_000];
        let datagrams = frame_reply(7, &reply);
        assert_eq!(datagrams.len(), 15);
        let mut joined = Vec::new();
        for (sequence, datagram) in datagrams.iter().enumerate() {
            assert!(datagram.len() <= MAX_DATAGRAM);
            let header = FrameHeader::parse(datagram).unwrap();
            assert_eq!(
                header,
                FrameHeader {
                    request_id: 7,
                    sequence: sequence as u16,
                    total: 15
                }
            );
            joined.extend_from_slice(&datagram[HEADER..]);
        }
        assert_eq!(joined, reply);
        assert_eq!(frame_reply(1, b"END\r\n").len(), 1);
        assert_eq!(FrameHeader::parse(&[0; 8]), None);
    }

    fn pass(message: Message, transmits: bool) -> Pass {
        Pass { message, transmits }
    }

    #[test]
    fn only_an_empty_object_leading_a_transmission_is_sent_bare() {
        let mut framer = Framer::new(3);
        let bare = vec![vec![0, 3, 0, 0, 0, 0, 0, 0]];
        let end = || Message::Reply(b"END\r\n".to_vec());
        // `get x y z`: a bare header for x, nothing for y, then END.
        assert_eq!(framer.frame(&pass(Message::Empty, false)), bare);
        assert!(framer.frame(&pass(Message::Empty, false)).is_empty());
        assert_eq!(framer.frame(&pass(end(), true)).len(), 1);
        // A skipped object does not take the lead; a reply does.
        assert!(framer.frame(&pass(Message::Skipped, false)).is_empty());
        assert_eq!(framer.frame(&pass(Message::Empty, false)), bare);
        assert_eq!(framer.frame(&pass(end(), true)).len(), 1);
        assert_eq!(framer.frame(&pass(end(), false)).len(), 1);
        assert!(framer.frame(&pass(Message::Empty, false)).is_empty());
    }

    #[test]
    fn the_commands_after_which_memcached_transmits() {
        assert!(is_text_get(b"get a b\r\n"));
        assert!(is_text_get(b"  gats 0 a\r\n"));
        assert!(is_text_get(b"gets a\n"));
        assert!(!is_text_get(b"getx a\r\n"));
        assert!(!is_text_get(b"mg a v\r\n"));
        assert!(!is_text_get(b"stats\r\n"));
    }
}
