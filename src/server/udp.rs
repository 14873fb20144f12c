//! memcached's UDP transport (`-U`): an 8-byte frame header (request id, sequence,
//! total, reserved), one request datagram in, replies cut into datagrams of at most 1400
//! bytes. Beyond memcached, a reply larger than `udp_max_reply_ratio` times its request
//! is dropped and counted, so a spoofed small request cannot aim a large reply at a
//! victim (the 2018 amplification attacks). A get whose reply outgrows one reply window
//! (2 MiB) answers `SERVER_ERROR out of memory writing get response`: a datagram reply
//! is framed whole, so it cannot be produced in windows as on a stream. The requests
//! of a datagram run through the same [`Session`] loop as a stream's; a refused value is
//! swallowed, never run as requests.

use super::Shared;
use crate::buffers::{REPLY_WINDOW, ReplyWindow};
use crate::command::Context;
use crate::command::session::Session;
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

/// Cuts a reply into framed datagrams.
pub fn frame_reply(request_id: u16, reply: &[u8]) -> Vec<Vec<u8>> {
    let payload = MAX_DATAGRAM - HEADER;
    let total = reply.len().div_ceil(payload).max(1);
    (0..total)
        .map(|sequence| {
            let mut datagram = Vec::with_capacity(MAX_DATAGRAM);
            FrameHeader {
                request_id,
                sequence: sequence as u16,
                total: total as u16,
            }
            .write(&mut datagram);
            let end = ((sequence + 1) * payload).min(reply.len());
            datagram.extend_from_slice(&reply[sequence * payload..end]);
            datagram
        })
        .collect()
}

/// Executes the requests of one datagram payload and returns the reply bytes.
pub fn execute_datagram(shared: &Shared, payload: &[u8], counters: &mut ConnCounters) -> Vec<u8> {
    let mut replies = ReplyBuffer::new();
    let mut ctx = Context {
        store: &shared.store,
        settings: &shared.settings,
        stats: &shared.stats,
        counters,
        tls: None,
        // A datagram reply is framed whole, so it cannot be sent in windows.
        reply_window: ReplyWindow {
            bytes: REPLY_WINDOW,
            resumable: false,
        },
    };
    // The session ends with the datagram: an incomplete request, or a refused value the
    // datagram does not hold whole, is simply not there.
    let _ = Session::datagram(&shared.settings, payload).process(
        payload,
        &mut ctx,
        &shared.limits,
        &mut replies,
    );
    replies.to_vec()
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
        // Requests spanning several datagrams are not supported, as in memcached.
        let Some(header) = FrameHeader::parse(datagram).filter(|h| h.total == 1 && h.sequence == 0)
        else {
            continue;
        };
        counters.bytes_read += length as u64;
        let reply = execute_datagram(&shared, &datagram[HEADER..], &mut counters);
        // Counted before the reply leaves, as on a stream connection.
        shared.stats.absorb(&mut counters);
        let ratio = shared.settings.udp_max_reply_ratio;
        if ratio != 0 && reply.len() > length.saturating_mul(ratio) {
            shared
                .stats
                .udp_replies_dropped
                .fetch_add(1, Ordering::Relaxed);
            continue;
        }
        for datagram in frame_reply(header.request_id, &reply) {
            if socket.send_to(&datagram, peer).await.is_ok() {
                counters.bytes_written += datagram.len() as u64;
            }
        }
        shared.stats.absorb(&mut counters);
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
}
