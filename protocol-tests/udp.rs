//! UDP (`-U`): framing, splitting at 1400 bytes, dropped multi-datagram requests, and
//! ferrocached's reply-ratio cap against amplification.

use crate::support::{Kind, Server, external_target, memcached_available, start};
use std::net::UdpSocket;
use std::time::Duration;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Both servers with UDP on; ferrocached gets `extra` flags of its own.
fn udp_servers(extra: &[&str]) -> Vec<(Server, u16)> {
    let mut all = Vec::new();
    let mut kinds = vec![Kind::Ferrocached];
    if memcached_available() {
        kinds.push(Kind::Memcached);
    }
    if external_target() {
        return all;
    }
    for kind in kinds {
        let port = free_udp_port();
        let port_text = port.to_string();
        let mut flags = vec!["-U", port_text.as_str()];
        if kind == Kind::Ferrocached {
            flags.extend_from_slice(extra);
        }
        all.push((start(kind, &flags), port));
    }
    all
}

fn request(id: u16, sequence: u16, total: u16, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::new();
    for field in [id, sequence, total, 0] {
        datagram.extend_from_slice(&field.to_be_bytes());
    }
    datagram.extend_from_slice(payload);
    datagram
}

/// Receives one message; returns (payload, datagram count).
fn receive(socket: &UdpSocket, id: u16) -> Option<(Vec<u8>, usize)> {
    let mut parts: Vec<Option<Vec<u8>>> = Vec::new();
    let mut buffer = [0u8; 2048];
    loop {
        let length = socket.recv(&mut buffer).ok()?;
        let datagram = &buffer[..length];
        assert!(length <= 1400, "datagram of {length} bytes");
        let field = |at: usize| u16::from_be_bytes([datagram[at], datagram[at + 1]]);
        assert_eq!(field(0), id, "request id echoed");
        assert_eq!(field(6), 0, "reserved is zero");
        let (sequence, total) = (field(2) as usize, field(4) as usize);
        if parts.is_empty() {
            parts.resize(total, None);
        }
        assert_eq!(parts.len(), total, "same total in every datagram");
        parts[sequence] = Some(datagram[8..].to_vec());
        if parts.iter().all(Option::is_some) {
            let count = parts.len();
            return Some((parts.into_iter().flatten().flatten().collect(), count));
        }
    }
}

#[test]
fn udp_requests_and_split_replies() {
    for (server, port) in udp_servers(&["-o", "udp_max_reply_ratio=0"]) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(("127.0.0.1", port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket
            .send(&request(7, 0, 1, b"set u 0 0 3\r\nabc\r\n"))
            .unwrap();
        assert_eq!(
            receive(&socket, 7).unwrap().0,
            b"STORED\r\n",
            "{:?}",
            server.kind
        );
        socket.send(&request(8, 0, 1, b"get u\r\n")).unwrap();
        assert_eq!(
            receive(&socket, 8).unwrap().0,
            b"VALUE u 0 3\r\nabc\r\nEND\r\n"
        );

        // A 20000-byte value arrives as 15 datagrams whose payloads are the TCP reply.
        let value = vec![b'z'; 20_000];
        let mut tcp = server.connect();
        let mut set = b"set big 0 0 20000\r\n".to_vec();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\n");
        tcp.roundtrip(&set, b"STORED\r\n");
        socket.send(&request(9, 0, 1, b"get big\r\n")).unwrap();
        let (payload, count) = receive(&socket, 9).unwrap();
        let mut expected = b"VALUE big 0 20000\r\n".to_vec();
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b"\r\nEND\r\n");
        assert_eq!(payload, expected, "{:?}", server.kind);
        assert_eq!(count, 15);

        // The binary protocol works over UDP too: a GET of "u".
        let mut get = vec![0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 42];
        get.extend_from_slice(&[0; 8]);
        get.push(b'u');
        socket.send(&request(12, 0, 1, &get)).unwrap();
        let (reply, _) = receive(&socket, 12).unwrap();
        assert_eq!(
            &reply[..2],
            &[0x81, 0x00],
            "{:?} binary over UDP",
            server.kind
        );
        assert_eq!(&reply[6..8], &[0, 0], "status ok");
        assert_eq!(&reply[12..16], &42u32.to_be_bytes(), "opaque");
        assert_eq!(
            &reply[24..],
            &[0, 0, 0, 0, b'a', b'b', b'c'],
            "flags then value"
        );

        // A request announced as two datagrams is dropped, as is a bare header.
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        socket.send(&request(10, 0, 2, b"get u\r\n")).unwrap();
        socket.send(&request(11, 0, 1, b"")).unwrap();
        assert!(receive(&socket, 10).is_none(), "{:?} dropped", server.kind);
    }
}

#[test]
fn udp_reply_ratio_stops_amplification() {
    for (server, port) in udp_servers(&[]) {
        if server.kind != Kind::Ferrocached {
            continue;
        }
        let mut tcp = server.connect();
        let mut set = b"set amp 0 0 20000\r\n".to_vec();
        set.extend(std::iter::repeat_n(b'a', 20_000));
        set.extend_from_slice(b"\r\n");
        tcp.roundtrip(&set, b"STORED\r\n");
        tcp.roundtrip(b"set small 0 0 1\r\nx\r\n", b"STORED\r\n");
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(("127.0.0.1", port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        // A small reply passes; a 20 KB reply to a 17-byte request is refused.
        socket.send(&request(1, 0, 1, b"get small\r\n")).unwrap();
        assert_eq!(
            receive(&socket, 1).unwrap().0,
            b"VALUE small 0 1\r\nx\r\nEND\r\n"
        );
        socket.send(&request(2, 0, 1, b"get amp\r\n")).unwrap();
        assert!(receive(&socket, 2).is_none());
        assert_eq!(tcp.stat("udp_replies_dropped"), 1);
    }
}

#[test]
fn a_udp_get_larger_than_a_reply_window_answers_out_of_memory() {
    // A datagram reply is framed whole, so it is bounded by one 2 MiB window (memcached
    // would send ~2,300 datagrams); ferrocached's behaviour, with the ratio cap off.
    for (server, port) in udp_servers(&["-o", "udp_max_reply_ratio=0"]) {
        if server.kind != Kind::Ferrocached {
            continue;
        }
        let mut tcp = server.connect();
        let mut set = b"set w 0 0 16000\r\n".to_vec();
        set.extend(std::iter::repeat_n(b'w', 16_000));
        set.extend_from_slice(b"\r\n");
        tcp.roundtrip(&set, b"STORED\r\n");
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(("127.0.0.1", port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(2000)))
            .unwrap();
        let within = [b"get".as_slice(), &b" w".repeat(4), b"\r\n"].concat();
        socket.send(&request(1, 0, 1, &within)).unwrap();
        let (reply, _) = receive(&socket, 1).unwrap();
        assert_eq!(reply.len(), 4 * (17 + 16_002) + 5);
        let beyond = [b"get".as_slice(), &b" w".repeat(200), b"\r\n"].concat();
        socket.send(&request(2, 0, 1, &beyond)).unwrap();
        assert_eq!(
            receive(&socket, 2).unwrap().0,
            b"SERVER_ERROR out of memory writing get response\r\n"
        );
        assert_eq!(tcp.stat("response_obj_oom"), 1);
    }
}

#[test]
fn a_refused_value_in_a_datagram_is_swallowed_not_executed() {
    // The bytes after a too-large storage line are its value: they must not run as
    // requests. ferrocached's behaviour: memcached swallows them too, but it sends no
    // reply for such a datagram and, depending on timing, goes on swallowing the next
    // datagram as the rest of the value, so it cannot be compared here.
    for (server, port) in udp_servers(&[]) {
        if server.kind != Kind::Ferrocached {
            continue;
        }
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(("127.0.0.1", port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let refused = b"set big 0 0 2000000\r\nset u 0 0 1\r\nx\r\n";
        socket.send(&request(1, 0, 1, refused)).unwrap();
        assert_eq!(
            receive(&socket, 1).unwrap().0,
            b"SERVER_ERROR object too large for cache\r\n"
        );
        socket.send(&request(2, 0, 1, b"get u\r\n")).unwrap();
        assert_eq!(
            receive(&socket, 2).unwrap().0,
            b"END\r\n",
            "the swallowed value ran as a set"
        );
    }
}
