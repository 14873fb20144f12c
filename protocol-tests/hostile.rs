//! Hostile and broken clients: each leaves the server alive, serving others, with bounded
//! memory and every stored item intact. Bounds are generous liveness checks, not timings.

use crate::support::{Kind, Server, servers, skip, start};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn rss_kib(server: &Server) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()?)).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Stores a canary, lets `attack` run, then proves the server still answers and the
/// canary is intact.
fn survives(server: &Server, attack: impl FnOnce()) {
    let mut c = server.connect();
    c.roundtrip(b"set canary 7 0 6\r\nintact\r\n", b"STORED\r\n");
    attack();
    let mut c = server.connect();
    c.roundtrip(b"get canary\r\n", b"VALUE canary 7 6\r\nintact\r\nEND\r\n");
    if let Some(rss) = rss_kib(server) {
        assert!(
            rss < 300 * 1024,
            "[{:?}] RSS {rss} KiB stays bounded",
            server.kind
        );
    }
}

struct Xorshift(u64);

impl Xorshift {
    fn fill(&mut self, buffer: &mut [u8]) {
        for byte in buffer {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *byte = self.0 as u8;
        }
    }
}

fn raw(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(&server.address).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
}

#[test]
fn slowloris_half_commands_do_not_block_others() {
    for server in servers(&["-c", "2048"]) {
        survives(&server, || {
            let mut held = Vec::new();
            for i in 0..300 {
                let mut stream = raw(&server);
                let half: &[u8] = if i % 2 == 0 {
                    b"set slow 0 0 10\r\nabc"
                } else {
                    b"get ke"
                };
                let _ = stream.write_all(half);
                held.push(stream);
            }
            let mut other = server.connect();
            other.roundtrip(
                b"set fast 0 0 1\r\nx\r\nget fast\r\n",
                b"STORED\r\nVALUE fast 0 1\r\nx\r\nEND\r\n",
            );
            drop(held);
        });
    }
}

#[test]
fn megabytes_of_random_bytes_and_binary_garbage() {
    for server in servers(&[]) {
        survives(&server, || {
            let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
            for seed in 0..4u8 {
                let mut stream = raw(&server);
                // Text first, then garbage that contains binary-protocol headers.
                let _ = stream.write_all(b"get canary\r\n");
                let mut garbage = vec![0u8; 1024 * 1024];
                rng.fill(&mut garbage);
                garbage[100] = 0x80;
                garbage[0] = b'x' + seed;
                let _ = stream.write_all(&garbage);
                let mut sink = [0u8; 65536];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            }
            // A binary connection fed garbage after a valid header.
            let mut stream = raw(&server);
            let mut garbage = vec![0x80u8; 24];
            garbage.extend(std::iter::repeat_n(0xffu8, 100_000));
            let _ = stream.write_all(&garbage);
        });
    }
}

#[test]
fn huge_lines_and_lengths_are_refused_without_buffering() {
    for server in servers(&[]) {
        survives(&server, || {
            // 4 MiB without a newline: the connection is closed.
            let mut c = server.connect();
            let _ = c.stream.write_all(&vec![b'a'; 4 * 1024 * 1024]);
            assert!(c.is_closed(), "[{:?}] long line closes", server.kind);
            // Lengths that overflow: refused, the connection stays usable.
            let mut c = server.connect();
            for length in ["-1", "2147483647", "4294967295", "18446744073709551616"] {
                c.roundtrip(
                    format!("set big 0 0 {length}\r\n").as_bytes(),
                    b"CLIENT_ERROR bad command line format\r\n",
                );
            }
            // A binary SET announcing a 4 GiB body is refused; its body would be swallowed.
            let mut header = vec![0x80, 0x01, 0, 1, 8, 0, 0, 0];
            header.extend_from_slice(&u32::MAX.to_be_bytes());
            header.extend_from_slice(&[0; 12]);
            header.extend_from_slice(&[0; 8]);
            header.push(b'k');
            let mut stream = raw(&server);
            stream.write_all(&header).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reply = [0u8; 24];
            stream.read_exact(&mut reply).unwrap();
            assert_eq!(
                u16::from_be_bytes([reply[6], reply[7]]),
                3,
                "[{:?}] Too large",
                server.kind
            );
        });
    }
}

#[test]
fn a_100000_key_multiget_is_answered() {
    for server in servers(&[]) {
        survives(&server, || {
            let mut c = server.connect();
            for i in 0..10 {
                c.roundtrip(
                    format!("set mk{i} 0 0 1\r\n{i}\r\n").as_bytes(),
                    b"STORED\r\n",
                );
            }
            let mut line = b"get".to_vec();
            let mut expected = Vec::new();
            for i in 0..100_000 {
                line.extend_from_slice(format!(" mk{i}").as_bytes());
                if i < 10 {
                    expected.extend_from_slice(format!("VALUE mk{i} 0 1\r\n{i}\r\n").as_bytes());
                }
            }
            line.extend_from_slice(b"\r\n");
            expected.extend_from_slice(b"END\r\n");
            c.roundtrip(&line, &expected);
        });
    }
}

#[test]
fn changing_value_sizes_never_starve_new_items() {
    // A cache under memory pressure may evict anything old, so no canary here: what must
    // hold is that every new item is stored and the memory stays bounded.
    let server = start(Kind::Ferrocached, &["-m", "16"]);
    {
        let mut c = server.connect();
        let mut batch = Vec::new();
        for i in 0..200_000 {
            batch.extend_from_slice(format!("set small{i} 0 0 50 noreply\r\n").as_bytes());
            batch.extend(std::iter::repeat_n(b's', 50));
            batch.extend_from_slice(b"\r\n");
        }
        c.send(&batch);
        c.expect_quiet();
        assert!(c.stat("evictions") > 0, "small items filled memory");
        // Only large items from now on: every one is stored and readable.
        for size in [3000usize, 12_000, 40_000, 200_000] {
            for i in 0..30 {
                let value = vec![b'L'; size];
                let mut request = format!("set big{size}-{i} 0 0 {size}\r\n").into_bytes();
                request.extend_from_slice(&value);
                request.extend_from_slice(b"\r\n");
                c.roundtrip(&request, b"STORED\r\n");
                c.send(format!("get big{size}-{i}\r\n").as_bytes());
                c.expect(format!("VALUE big{size}-{i} 0 {size}\r\n").as_bytes());
                assert!(c.read_exact_len(size) == value);
                c.expect(b"\r\nEND\r\n");
            }
        }
    }
    let rss = rss_kib(&server).unwrap();
    assert!(rss < 64 * 1024, "RSS {rss} KiB follows -m 16");
}

/// RSS growth (KiB) of `server` while `connections` clients that never read each send
/// one `get k k ... k` line naming a 16,000-byte key `keys` times.
fn multiget_growth_kib(server: &Server, connections: usize, keys: usize) -> u64 {
    let mut c = server.connect();
    let mut set = b"set k 0 0 16000\r\n".to_vec();
    set.extend(std::iter::repeat_n(b'v', 16_000));
    set.extend_from_slice(b"\r\n");
    c.roundtrip(&set, b"STORED\r\n");
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(server).unwrap();
    let line = [b"get".as_slice(), &b" k".repeat(keys), b"\r\n"].concat();
    let held: Vec<TcpStream> = (0..connections)
        .map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let address: std::net::SocketAddr = server.address.parse().unwrap();
            socket.connect(&address.into()).unwrap();
            let mut stream: TcpStream = socket.into();
            stream.write_all(&line).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let after = rss_kib(server).unwrap();
    // The server still answers others while the readers stall.
    c.send(b"get k\r\n");
    c.expect(b"VALUE k 0 16000\r\n");
    c.read_exact_len(16_002);
    c.expect(b"END\r\n");
    drop(held);
    after.saturating_sub(before)
}

#[test]
fn a_multiget_of_one_key_repeated_costs_what_memcached_pays() {
    let mut growth = Vec::new();
    for server in servers(&["-m", "256", "-c", "256"]) {
        if server.pid().is_none() {
            continue;
        }
        let one = multiget_growth_kib(&server, 1, 6000);
        let twenty = multiget_growth_kib(&server, 20, 3000);
        eprintln!(
            "[{:?}] RSS growth: 1 x 6000 keys {one} KiB, 20 x 3000 keys {twenty} KiB",
            server.kind
        );
        growth.push((server.kind, one, twenty));
    }
    let Some(&(_, memcached_one, memcached_twenty)) =
        growth.iter().find(|(kind, ..)| *kind == Kind::Memcached)
    else {
        skip("no memcached to compare multiget memory with");
        return;
    };
    let (_, one, twenty) = growth[0];
    // Within 2x of memcached (plus 4 MiB for allocator noise).
    assert!(
        one <= 2 * memcached_one + 4096,
        "1 x 6000: {one} KiB vs {memcached_one}"
    );
    assert!(
        twenty <= 2 * memcached_twenty + 4096,
        "20 x 3000: {twenty} KiB vs {memcached_twenty}"
    );
}

#[test]
fn a_reply_produced_in_windows_is_byte_exact() {
    for server in servers(&[]) {
        let mut c = server.connect();
        // Small (slab) values, a 16,000-byte value and a large shared one.
        for (key, size) in [("s", 10usize), ("m", 16_000), ("l", 300_000)] {
            let mut set = format!("set {key} 5 0 {size}\r\n").into_bytes();
            set.extend((0..size).map(|i| b'a' + (i % 26) as u8));
            set.extend_from_slice(b"\r\n");
            c.roundtrip(&set, b"STORED\r\n");
        }
        let mut line = b"get".to_vec();
        let mut expected = Vec::new();
        for i in 0..600 {
            let (key, size) = [("s", 10), ("m", 16_000), ("miss", 0), ("l", 300_000)][i % 4];
            line.extend_from_slice(format!(" {key}").as_bytes());
            if key != "miss" {
                expected.extend_from_slice(format!("VALUE {key} 5 {size}\r\n").as_bytes());
                expected.extend((0..size).map(|i| b'a' + (i % 26) as u8));
                expected.extend_from_slice(b"\r\n");
            }
        }
        line.extend_from_slice(b"\r\n");
        expected.extend_from_slice(b"END\r\n");
        // Requests pipelined behind the long get are answered after it, in order.
        line.extend_from_slice(b"set after 0 0 1\r\nz\r\ngat 0 s after\r\n");
        expected.extend_from_slice(b"STORED\r\nVALUE s 5 10\r\nabcdefghij\r\n");
        expected.extend_from_slice(b"VALUE after 0 1\r\nz\r\nEND\r\n");
        c.send(&line);
        let got = c.read_exact_len(expected.len());
        assert!(
            got == expected,
            "[{:?}] windowed reply differs",
            server.kind
        );
        c.expect_quiet();
    }
}

/// Raises this process's open-file limit so a test can hold many connections.
fn raise_fd_limit(wanted: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(wanted);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}

#[test]
fn idle_connections_cost_about_what_memcached_pays() {
    let count = 2000usize;
    if raise_fd_limit(2 * count as u64 + 256) < 2 * count as u64 + 256 {
        skip(format!(
            "cannot raise the open-file limit for {count} connections"
        ));
        return;
    }
    let mut per_connection = Vec::new();
    for server in servers(&["-c", "4096"]) {
        if server.pid().is_none() {
            continue;
        }
        std::thread::sleep(Duration::from_millis(300));
        let before = rss_kib(&server).unwrap();
        let held: Vec<_> = (0..count)
            .map(|i| {
                let mut c = server.connect();
                c.roundtrip(
                    format!("set idle{i} 0 0 5\r\nhello\r\nget idle{i}\r\n").as_bytes(),
                    format!("STORED\r\nVALUE idle{i} 0 5\r\nhello\r\nEND\r\n").as_bytes(),
                );
                c
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        let bytes = (rss_kib(&server).unwrap().saturating_sub(before)) * 1024 / count as u64;
        eprintln!(
            "[{:?}] {bytes} bytes of RSS per idle connection",
            server.kind
        );
        per_connection.push((server.kind, bytes));
        drop(held);
    }
    let Some(&(_, memcached)) = per_connection
        .iter()
        .find(|(kind, _)| *kind == Kind::Memcached)
    else {
        skip("no memcached to compare idle connections with");
        return;
    };
    // Before buffers were released when idle, a connection cost 10x memcached's. With a
    // tokio task per connection: epoll 1,947 bytes, io_uring 2,871 (memcached 1,447).
    // With the engine threads holding connections without a task: epoll 1,042, io_uring
    // 1,495 on a quiet machine and up to 1,820 within the loaded suite.
    let percent = match crate::support::io_engine().as_deref() {
        Some("epoll") => 115,
        _ => 160,
    };
    let ours = per_connection[0].1;
    assert!(
        ours <= memcached.max(700) * percent / 100,
        "idle connection: {ours} bytes vs memcached {memcached} (at most {percent}%)"
    );
}

#[test]
fn read_buf_mem_limit_fails_huge_gets_and_spares_other_clients() {
    for server in servers(&["-o", "read_buf_mem_limit=1"]) {
        let mut c = server.connect();
        let settings = c.stats("settings");
        assert!(
            settings.contains(&("read_buf_mem_limit".into(), "1048576".into())),
            "[{:?}] read_buf_mem_limit shown in bytes",
            server.kind
        );
        let mut set = b"set k 0 0 16000\r\n".to_vec();
        set.extend(std::iter::repeat_n(b'v', 16_000));
        set.extend_from_slice(b"\r\n");
        c.roundtrip(&set, b"STORED\r\n");
        let line = [b"get".as_slice(), &b" k".repeat(3000), b"\r\n"].concat();
        let mut hostile: Vec<_> = (0..20)
            .map(|_| {
                let mut h = server.connect();
                h.send(&line);
                h
            })
            .collect();
        // Each gets memcached's answer instead of 48 MB of buffered reply.
        for h in &mut hostile {
            h.expect(b"SERVER_ERROR out of memory writing get response\r\n");
        }
        assert!(c.stat("response_obj_oom") >= 20, "[{:?}]", server.kind);
        // Other clients are served, and so are the hostile ones afterwards.
        for h in hostile.iter_mut().take(3).chain([&mut server.connect()]) {
            h.send(b"get k\r\n");
            h.expect(b"VALUE k 0 16000\r\n");
            h.read_exact_len(16_002);
            h.expect(b"END\r\n");
        }
    }
}

#[test]
fn read_buf_mem_limit_closes_a_connection_that_finds_no_read_buffer() {
    for server in servers(&["-o", "read_buf_mem_limit=1"]) {
        // Half-sent commands each hold a 16 KiB read buffer: 80 of them spend the limit
        // (memcached: 256 KiB per thread of its 4).
        let held: Vec<_> = (0..80)
            .map(|_| {
                let mut c = server.connect();
                c.send(b"get half");
                c
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut late = server.connect();
        late.send(b"get k\r\n");
        assert!(late.is_closed(), "[{:?}] no buffer, closed", server.kind);
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        let mut c = server.connect();
        assert!(c.stat("read_buf_oom") >= 1, "[{:?}]", server.kind);
        // The closed connections' buffers wait in the per-thread caches for reuse.
        assert!(c.stat("read_buf_bytes_free") > 0, "[{:?}]", server.kind);
        c.roundtrip(b"get k\r\n", b"END\r\n");
    }
}

#[test]
fn a_client_streaming_sets_without_pause_does_not_starve_others() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    // One worker: the streaming client and the other share its event loop.
    for server in servers(&["-t", "1"]) {
        let stop = Arc::new(AtomicBool::new(false));
        let mut stream = TcpStream::connect(&server.address).unwrap();
        let mut replies = stream.try_clone().unwrap();
        replies
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let reader_stop = stop.clone();
        let reader = std::thread::spawn(move || {
            let mut buffer = vec![0; 1 << 16];
            while !reader_stop.load(Ordering::Relaxed) {
                if let Ok(0) = replies.read(&mut buffer) {
                    break;
                }
            }
        });
        // Sets of 8,000-byte values, back to back: every read ends in the middle of one,
        // so no read holds the `-R` requests that would make the connection yield.
        let writer_stop = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut one = b"set streamed 0 0 8000\r\n".to_vec();
            one.extend(std::iter::repeat_n(b'v', 8000));
            one.extend(b"\r\n");
            // Written a megabyte at a time: the kernel takes them faster than a server
            // reading 16 KiB at a time empties the socket.
            let request = one.repeat(128);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !writer_stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if stream.write_all(&request).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let mut other = server.connect();
        other.roundtrip(b"get absent\r\n", b"END\r\n");
        let waited = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        reader.join().unwrap();
        assert!(
            waited < Duration::from_secs(5),
            "{:?}: another client waited {waited:?} behind the stream",
            server.kind
        );
    }
}
