//! Connection handling: the `-c` limit, idle timeout, clients that never read.

use crate::support::{Client, Kind, Server, servers};
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn connection_limit_rejects_extra_clients_and_recovers() {
    for server in servers(&["-c", "40"]) {
        let mut open = Vec::new();
        let mut rejected = 0;
        for _ in 0..60 {
            let mut c = server.connect();
            c.send(b"version\r\n");
            let line = c.read_line();
            if line == b"ERROR Too many open connections\r\n" {
                assert!(c.is_closed(), "[{}] rejected client is closed", c.label);
                rejected += 1;
            } else {
                assert!(line.starts_with(b"VERSION "), "[{}] {:?}", c.label, line);
                open.push(c);
            }
        }
        assert!(
            rejected > 0,
            "[{:?}] some clients were rejected",
            server.kind
        );
        if server.kind == Kind::Ferrocached {
            assert_eq!(open.len(), 40, "exactly -c clients are served");
        }
        drop(open);
        std::thread::sleep(Duration::from_millis(300));
        let mut c = server.connect();
        assert!(c.stat("rejected_connections") >= rejected);
    }
}

#[test]
fn idle_connections_are_closed() {
    for server in servers(&["-o", "idle_timeout=1"]) {
        let mut c = server.connect();
        c.roundtrip(b"set i 0 0 1\r\nx\r\n", b"STORED\r\n");
        std::thread::sleep(Duration::from_millis(3500));
        assert!(c.is_closed(), "[{}] idle connection closed", c.label);
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Stores a 512 KiB value under `big`: the replies a client that never reads asks for.
fn store_big(server: &Server) -> (Client, Vec<u8>) {
    let mut setup = server.connect();
    let value = vec![b'b'; 512 * 1024];
    let mut request = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    request.extend_from_slice(&value);
    request.extend_from_slice(b"\r\n");
    setup.roundtrip(&request, b"STORED\r\n");
    (setup, value)
}

/// A client whose writes give up after two seconds once the server stops reading.
fn hog(server: &Server) -> Client {
    let hog = server.connect();
    hog.stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    hog
}

#[test]
fn a_client_that_never_reads_is_not_read_ahead_without_bound() {
    for server in servers(&[]) {
        let (setup, _) = store_big(&server);
        // Requests keep coming while their replies cannot leave: the server must stop
        // reading (socket buffers then fill and the writes block), not queue them all.
        let mut hog = hog(&server);
        let requests = b"get big\r\n".repeat(10_000);
        let limit = 64 << 20;
        let mut written = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while written < limit && Instant::now() < deadline {
            match hog.stream.write(&requests) {
                Ok(count) => written += count,
                Err(_) => break,
            }
        }
        assert!(
            written < 32 << 20,
            "[{}] {written} bytes of requests accepted ahead of their replies",
            setup.label
        );
    }
}

#[test]
fn a_client_that_never_reads_cannot_grow_the_server() {
    for server in servers(&[]) {
        let (_setup, value) = store_big(&server);
        // 4000 gets of 512 KiB would be 2 GiB of replies; the client never reads.
        let mut hog = hog(&server);
        let requests = b"get big\r\n".repeat(4000);
        let _ = hog.stream.write_all(&requests);

        // Others are still served promptly, and the stored value is intact.
        let started = Instant::now();
        let mut other = server.connect();
        other.roundtrip(
            b"set small 0 0 1\r\nx\r\nget small\r\n",
            b"STORED\r\nVALUE small 0 1\r\nx\r\nEND\r\n",
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "[{}] slow",
            other.label
        );
        other.send(b"get big\r\n");
        other.expect(format!("VALUE big 0 {}\r\n", value.len()).as_bytes());
        assert!(other.read_exact_len(value.len()) == value);
        other.expect(b"\r\nEND\r\n");
        if let Some(pid) = server.pid() {
            let rss = rss_kib(pid);
            assert!(
                rss < 256 * 1024,
                "[{}] RSS {rss} KiB stays bounded",
                other.label
            );
        }
    }
}
