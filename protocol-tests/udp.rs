//! UDP (`-U`): with `-o udp_max_reply_ratio=0` ferrocached's datagrams are memcached's,
//! byte for byte (frame headers, split points, one message per response object), and
//! its reply-ratio cap against amplification.

use crate::support::{Kind, Server, external_target, memcached_available, show, skip, start};
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

/// A client socket connected to `port`.
fn udp_client(port: u16) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(("127.0.0.1", port)).unwrap();
    socket
}

/// Sends `datagram` and returns exactly `count` reply datagrams, in arrival order;
/// fails on a missing one or on any extra datagram that follows.
fn exchange(socket: &UdpSocket, datagram: &[u8], count: usize) -> Vec<Vec<u8>> {
    socket.send(datagram).unwrap();
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 65536];
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while received.len() < count {
        let length = socket
            .recv(&mut buffer)
            .unwrap_or_else(|error| panic!("datagram {} of {count}: {error}", received.len()));
        received.push(buffer[..length].to_vec());
    }
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    if let Ok(length) = socket.recv(&mut buffer) {
        panic!(
            "an extra datagram after {count}: {}",
            show(&buffer[..length.min(80)])
        );
    }
    received
}

/// The datagrams memcached sends for one message: 1392 payload bytes each after the
/// header (request id, sequence, total, 0); an empty message is a bare header, total 0.
fn message(id: u16, payload: &[u8]) -> Vec<Vec<u8>> {
    if payload.is_empty() {
        return vec![request(id, 0, 0, b"")];
    }
    let chunks: Vec<&[u8]> = payload.chunks(1392).collect();
    let total = chunks.len() as u16;
    chunks
        .iter()
        .enumerate()
        .map(|(sequence, chunk)| request(id, sequence as u16, total, chunk))
        .collect()
}

/// The datagrams of several messages in order.
fn messages(id: u16, payloads: &[&[u8]]) -> Vec<Vec<u8>> {
    payloads
        .iter()
        .flat_map(|payload| message(id, payload))
        .collect()
}

/// Stores `value` under `key` over TCP.
fn store(server: &Server, key: &str, value: &[u8]) {
    let mut tcp = server.connect();
    let mut set = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
    set.extend_from_slice(value);
    set.extend_from_slice(b"\r\n");
    tcp.roundtrip(&set, b"STORED\r\n");
}

/// Asserts the exact datagrams `payload` (sent as request `id`) is answered with.
fn expect_datagrams(
    server: &Server,
    socket: &UdpSocket,
    id: u16,
    payload: &[u8],
    expected: &[Vec<u8>],
) {
    let received = exchange(socket, &request(id, 0, 1, payload), expected.len());
    for (index, (got, want)) in received.iter().zip(expected).enumerate() {
        assert_eq!(
            got,
            want,
            "{:?}: datagram {index} for {}: {} instead of {}",
            server.kind,
            show(payload),
            show(&got[..got.len().min(80)]),
            show(&want[..want.len().min(80)])
        );
    }
}

#[test]
fn udp_small_replies_are_one_message_per_request() {
    // set, get, incr, delete, an unknown command and noreply: every request answered
    // is a message of its own (sequence 0, total 1), a noreply request sends nothing.
    for (server, port) in udp_servers(&["-o", "udp_max_reply_ratio=0"]) {
        let socket = udp_client(port);
        let expect = |id, payload: &[u8], replies: &[&[u8]]| {
            expect_datagrams(&server, &socket, id, payload, &messages(id, replies))
        };
        expect(1, b"set u 0 0 3\r\nabc\r\n", &[b"STORED\r\n"]);
        expect(2, b"get u\r\n", &[b"VALUE u 0 3\r\nabc\r\nEND\r\n"]);
        expect(
            3,
            b"set n 0 0 1\r\n5\r\nincr n 3\r\ndecr n 100\r\nincr nothing 1\r\n",
            &[b"STORED\r\n", b"8\r\n", b"0\r\n", b"NOT_FOUND\r\n"],
        );
        expect(
            4,
            b"delete u\r\ndelete u\r\n",
            &[b"DELETED\r\n", b"NOT_FOUND\r\n"],
        );
        expect(5, b"bogus\r\n\r\n", &[b"ERROR\r\n", b"ERROR\r\n"]);
        expect(6, b"set q 0 0 1 noreply\r\nQ\r\n", &[]);
        expect(
            7,
            b"set q 0 0 2 noreply\r\nQQ\r\nget q\r\nmg q v\r\nmn\r\n",
            &[
                b"VALUE q 0 2\r\nQQ\r\nEND\r\n",
                b"VA 2\r\nQQ\r\n",
                b"MN\r\n",
            ],
        );
        // An incomplete request at the end of a datagram is not answered.
        expect(8, b"get q", &[]);
    }
}

#[test]
fn udp_large_value_is_split_into_sequenced_datagrams() {
    // A 20,000-byte value: 15 datagrams of one message, 1392 payload bytes each but the
    // last, all with total 15; in a multiget the hits around it are messages of their own.
    for (server, port) in udp_servers(&["-o", "udp_max_reply_ratio=0"]) {
        let value = vec![b'z'; 20_000];
        store(&server, "big", &value);
        store(&server, "a", b"A");
        let socket = udp_client(port);
        let big = [b"VALUE big 0 20000\r\n".as_slice(), &value, b"\r\n"].concat();
        let big_end = [big.as_slice(), b"END\r\n"].concat();
        let expected = message(9, &big_end);
        assert_eq!(expected.len(), 15);
        assert_eq!(expected[14].len(), 546);
        expect_datagrams(&server, &socket, 9, b"get big\r\n", &expected);
        let hit: &[u8] = b"VALUE a 0 1\r\nA\r\n";
        let hit_end: &[u8] = b"VALUE a 0 1\r\nA\r\nEND\r\n";
        expect_datagrams(
            &server,
            &socket,
            10,
            b"get a big a\r\n",
            &messages(10, &[hit, &big, hit_end]),
        );
    }
}

#[test]
fn udp_multiget_sends_one_message_per_hit() {
    // memcached answers each key of a text multiget with a response object of its own;
    // a miss's is empty and goes out as a bare header (total 0) only when it is the
    // first thing queued since the last get was sent.
    for (server, port) in udp_servers(&["-o", "udp_max_reply_ratio=0"]) {
        store(&server, "a", b"A");
        store(&server, "c", b"CC");
        let socket = udp_client(port);
        let hit_a: &[u8] = b"VALUE a 0 1\r\nA\r\n";
        let hit_a_end: &[u8] = b"VALUE a 0 1\r\nA\r\nEND\r\n";
        let hit_c_end: &[u8] = b"VALUE c 0 2\r\nCC\r\nEND\r\n";
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"get a b c\r\n", &[hit_a, hit_c_end]),
            (b"get a x y c\r\n", &[hit_a, hit_c_end]),
            (b"get a x\r\n", &[hit_a, b"END\r\n"]),
            (b"get x\r\n", &[b"END\r\n"]),
            (b"get x y z\r\n", &[b"", b"END\r\n"]),
            (b"get x a\r\n", &[b"", hit_a_end]),
            (b"gat 0 x a\r\n", &[b"", hit_a_end]),
            (
                b"get x y\r\nget x a\r\n",
                &[b"", b"END\r\n", b"", hit_a_end],
            ),
            (b"get a\r\nget x y\r\n", &[hit_a_end, b"", b"END\r\n"]),
            // Queued before the get and sent with it: no bare header.
            (b"mg a v\r\nget x y\r\n", &[b"VA 1\r\nA\r\n", b"END\r\n"]),
            (b"get\r\nget x y\r\n", &[b"ERROR\r\n", b"END\r\n"]),
            // A skipped (noreply, quiet miss) object is passed over.
            (
                b"set q 0 0 1 noreply\r\nQ\r\nget x y\r\n",
                &[b"", b"END\r\n"],
            ),
            (b"mg x v q\r\nmg x v q\r\nget x y\r\n", &[b"", b"END\r\n"]),
            (
                b"mg x v q\r\nmg a v q\r\nmn\r\n",
                &[b"VA 1\r\nA\r\n", b"MN\r\n"],
            ),
        ];
        for (index, (payload, replies)) in cases.iter().enumerate() {
            let id = 20 + index as u16;
            expect_datagrams(&server, &socket, id, payload, &messages(id, replies));
        }
        // Thirty keys, beyond memcached's 24-token batches: one message per hit.
        let thirty = [b"get".as_slice(), &b" a".repeat(30), b"\r\n"].concat();
        let mut replies = vec![hit_a; 29];
        replies.push(hit_a_end);
        expect_datagrams(&server, &socket, 50, &thirty, &messages(50, &replies));
        let misses = [b"get".as_slice(), &b" x".repeat(30), b"\r\n"].concat();
        expect_datagrams(
            &server,
            &socket,
            51,
            &misses,
            &messages(51, &[b"", b"END\r\n"]),
        );
    }
}

#[test]
fn udp_gets_carries_each_value_s_cas() {
    // CAS values differ between the servers, so each message is checked against the
    // CAS the same server reports over TCP.
    for (server, port) in udp_servers(&["-o", "udp_max_reply_ratio=0"]) {
        store(&server, "a", b"A");
        store(&server, "c", b"CC");
        let mut tcp = server.connect();
        tcp.send(b"gets a c\r\n");
        let line_a = tcp.read_line();
        tcp.read_line();
        let line_c = tcp.read_line();
        tcp.read_line();
        tcp.expect(b"END\r\n");
        let socket = udp_client(port);
        let first = [line_a.as_slice(), b"A\r\n"].concat();
        let second = [line_c.as_slice(), b"CC\r\nEND\r\n"].concat();
        expect_datagrams(
            &server,
            &socket,
            60,
            b"gets a c\r\n",
            &messages(60, &[&first, &second]),
        );
    }
}

#[test]
fn udp_frame_header_rules() {
    // memcached takes a request only when its total is exactly 1; the sequence and
    // reserved fields are ignored; a bare header or a shorter datagram is dropped.
    for (server, port) in udp_servers(&["-o", "udp_max_reply_ratio=0"]) {
        store(&server, "a", b"A");
        let socket = udp_client(port);
        let hit: &[u8] = b"VALUE a 0 1\r\nA\r\nEND\r\n";
        for dropped in [
            request(1, 0, 2, b"get a\r\n"),
            request(2, 1, 2, b"get a\r\n"),
            request(3, 0, 0, b"get a\r\n"),
            request(4, 0, 1, b""),
            vec![0, 5, 0, 0, 0],
        ] {
            assert!(
                exchange(&socket, &dropped, 0).is_empty(),
                "{:?} dropped",
                server.kind
            );
        }
        let mut reserved = request(6, 0, 1, b"get a\r\n");
        reserved[6] = 9;
        assert_eq!(
            exchange(&socket, &reserved, 1),
            message(6, hit),
            "{:?}",
            server.kind
        );
        assert_eq!(
            exchange(&socket, &request(7, 3, 1, b"get a\r\n"), 1),
            message(7, hit),
            "{:?}",
            server.kind
        );
    }
}

#[test]
fn udp_stats_is_one_message() {
    // `stats` is one response object: one message of as many datagrams as it needs.
    for (server, port) in udp_servers(&["-o", "udp_max_reply_ratio=0"]) {
        let socket = udp_client(port);
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket.send(&request(70, 0, 1, b"stats\r\n")).unwrap();
        let (payload, count) = receive(&socket, 70).unwrap();
        assert!(payload.starts_with(b"STAT pid "), "{:?}", server.kind);
        assert!(payload.ends_with(b"END\r\n"));
        assert!(count >= 2, "{:?}: {count} datagrams", server.kind);
        assert_eq!(count, payload.len().div_ceil(1392));
    }
}

/// A binary request frame.
fn binary(opcode: u8, key: &[u8], extras: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    let mut frame = vec![0x80, opcode];
    frame.extend_from_slice(&(key.len() as u16).to_be_bytes());
    frame.push(extras.len() as u8);
    frame.extend_from_slice(&[0, 0, 0]);
    let body = (key.len() + extras.len() + value.len()) as u32;
    frame.extend_from_slice(&body.to_be_bytes());
    frame.extend_from_slice(&opaque.to_be_bytes());
    frame.extend_from_slice(&[0; 8]);
    frame.extend_from_slice(extras);
    frame.extend_from_slice(key);
    frame.extend_from_slice(value);
    frame
}

#[test]
fn udp_binary_requests() {
    // Binary over UDP: each request a message; a quiet request leaves an empty object,
    // sent bare when it leads the datagram's reply.
    for (server, port) in udp_servers(&["-o", "udp_max_reply_ratio=0"]) {
        store(&server, "a", b"abc");
        let socket = udp_client(port);
        let get = binary(0, b"a", &[], &[], 42);
        let received = exchange(&socket, &request(80, 0, 1, &get), 1);
        let reply = &received[0];
        assert_eq!(&reply[..8], &request(80, 0, 1, b"")[..]);
        let reply = &reply[8..];
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

        let mut noop_reply = vec![0x81, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        noop_reply.extend_from_slice(&3u32.to_be_bytes());
        noop_reply.extend_from_slice(&[0; 8]);
        // getq miss, getq miss, noop: a bare header, then the noop's reply.
        let batch = [
            binary(9, b"x", &[], &[], 1),
            binary(9, b"y", &[], &[], 2),
            binary(10, b"", &[], &[], 3),
        ]
        .concat();
        expect_datagrams(
            &server,
            &socket,
            81,
            &batch,
            &messages(81, &[b"", &noop_reply]),
        );
        // A quiet set alone: a bare header.
        let setq = binary(0x11, b"bq", &[0; 8], b"v", 4);
        expect_datagrams(&server, &socket, 82, &setq, &messages(82, &[b""]));
    }
}

#[test]
fn a_udp_reply_larger_than_a_reply_window_is_sent_whole() {
    // 140 hits of a 16,000-byte value (2.2 MB, beyond one 2 MiB reply window): both
    // servers send every one as its own 12-datagram message.
    for (server, port) in udp_servers(&["-o", "udp_max_reply_ratio=0"]) {
        store(&server, "w", &[b'w'; 16_000]);
        let socket = udp_client(port);
        let buffer = socket2::SockRef::from(&socket);
        let granted = buffer
            .set_recv_buffer_size(4 << 20)
            .and_then(|()| buffer.recv_buffer_size());
        if !matches!(granted, Ok(size) if size >= 3 << 20) {
            skip(format!(
                "a 3 MB UDP receive buffer is not allowed here ({granted:?})"
            ));
            return;
        }
        let keys = 140;
        let line = [b"get".as_slice(), &b" w".repeat(keys), b"\r\n"].concat();
        let hit = [b"VALUE w 0 16000\r\n".as_slice(), &[b'w'; 16_000], b"\r\n"].concat();
        let last = [hit.as_slice(), b"END\r\n"].concat();
        let mut replies = vec![hit.as_slice(); keys - 1];
        replies.push(&last);
        let expected = messages(90, &replies);
        assert_eq!(expected.len(), keys * 12);
        let received = exchange(&socket, &request(90, 0, 1, &line), expected.len());
        assert!(
            received == expected,
            "{:?}: the datagrams differ",
            server.kind
        );
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
