//! Hostile and broken clients: each leaves the server alive, serving others, with bounded
//! memory and every stored item intact. Bounds are generous liveness checks, not timings.

use crate::support::{Kind, Server, servers, start};
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
