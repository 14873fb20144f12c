//! Warm restart (`-e`): items survive an orderly stop with their values, flags, CAS and
//! absolute expiry; periodic snapshots bound what a crash loses; bad files are detected.

use crate::support::{Kind, free_port, start};
use std::path::PathBuf;
use std::time::Duration;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrocached-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cas_of(c: &mut crate::support::Client, key: &str) -> String {
    c.send(format!("gets {key}\r\n").as_bytes());
    let line = String::from_utf8(c.read_line()).unwrap();
    let _ = c.read_line();
    assert_eq!(c.read_line(), b"END\r\n");
    line.trim_end().rsplit(' ').next().unwrap().to_string()
}

#[test]
fn items_survive_a_graceful_restart() {
    if std::env::var("PROTOCOL_TARGET").is_ok() {
        return;
    }
    let dir = scratch("warm");
    let file = dir.join("cache.snapshot");
    let file_arg = file.to_str().unwrap().to_string();
    for signal in [libc::SIGTERM, libc::SIGUSR1] {
        let server = start(Kind::Ferrocached, &["-e", &file_arg]);
        let mut c = server.connect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        c.roundtrip(b"set s1 42 0 5\r\nhello\r\n", b"STORED\r\n");
        c.roundtrip(b"set s2 0 1000 3\r\nttl\r\n", b"STORED\r\n");
        c.roundtrip(
            format!("set s3 0 {} 3\r\nabs\r\n", now + 2000).as_bytes(),
            b"STORED\r\n",
        );
        c.roundtrip(b"set gone 0 2 1\r\nx\r\n", b"STORED\r\n");
        let big = vec![b'B'; 100_000];
        let mut request = b"set big 0 0 100000\r\n".to_vec();
        request.extend_from_slice(&big);
        request.extend_from_slice(b"\r\n");
        c.roundtrip(&request, b"STORED\r\n");
        let cas = cas_of(&mut c, "s1");
        server.stop_with(signal);
        assert!(file.exists(), "snapshot written on signal {signal}");
        std::thread::sleep(Duration::from_millis(2500));

        let server = start(Kind::Ferrocached, &["-e", &file_arg]);
        let mut c = server.connect();
        c.roundtrip(b"get s1 gone\r\n", b"VALUE s1 42 5\r\nhello\r\nEND\r\n");
        assert_eq!(cas_of(&mut c, "s1"), cas, "CAS survives");
        c.send(b"mg s2 t v\r\n");
        let line = String::from_utf8(c.read_line()).unwrap();
        let ttl: i64 = line
            .trim_end()
            .strip_prefix("VA 3 t")
            .unwrap()
            .parse()
            .unwrap();
        assert!((990..=1000).contains(&ttl), "relative expiry kept: {ttl}");
        c.expect(b"ttl\r\n");
        c.send(b"mg s3 t\r\n");
        let line = String::from_utf8(c.read_line()).unwrap();
        let ttl: i64 = line
            .trim_end()
            .strip_prefix("HD t")
            .unwrap()
            .parse()
            .unwrap();
        assert!((1990..=2000).contains(&ttl), "absolute expiry kept: {ttl}");
        c.send(b"get big\r\n");
        c.expect(b"VALUE big 0 100000\r\n");
        assert!(c.read_exact_len(100_000) == big);
        c.expect(b"\r\nEND\r\n");
        c.roundtrip(b"flush_all\r\n", b"OK\r\n");
        server.stop_with(libc::SIGTERM);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn periodic_snapshots_bound_what_a_crash_loses() {
    if std::env::var("PROTOCOL_TARGET").is_ok() {
        return;
    }
    let dir = scratch("periodic");
    let file = dir.join("cache.snapshot");
    let file_arg = file.to_str().unwrap().to_string();
    let server = start(
        Kind::Ferrocached,
        &["-e", &file_arg, "-o", "snapshot_interval=1"],
    );
    let mut c = server.connect();
    c.roundtrip(b"set kept 0 0 4\r\nsafe\r\n", b"STORED\r\n");
    std::thread::sleep(Duration::from_millis(2500));
    server.stop_with(libc::SIGKILL);
    let server = start(Kind::Ferrocached, &["-e", &file_arg]);
    server
        .connect()
        .roundtrip(b"get kept\r\n", b"VALUE kept 0 4\r\nsafe\r\nEND\r\n");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_and_foreign_snapshots_are_detected() {
    if std::env::var("PROTOCOL_TARGET").is_ok() {
        return;
    }
    let dir = scratch("corrupt");
    let file = dir.join("cache.snapshot");
    let file_arg = file.to_str().unwrap().to_string();
    let server = start(Kind::Ferrocached, &["-e", &file_arg]);
    server.connect().roundtrip(
        b"set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\n",
        b"STORED\r\nSTORED\r\n",
    );
    server.stop_with(libc::SIGTERM);
    let good = std::fs::read(&file).unwrap();

    // One flipped byte: detected, set aside, the server starts empty (not half-loaded).
    let mut flipped = good.clone();
    flipped[20] ^= 0xff;
    std::fs::write(&file, &flipped).unwrap();
    let server = start(Kind::Ferrocached, &["-e", &file_arg]);
    server.connect().roundtrip(b"get a b\r\n", b"END\r\n");
    assert!(
        dir.join("cache.corrupt").exists(),
        "the bad file is kept aside"
    );
    server.stop_with(libc::SIGTERM);

    // Truncated: likewise.
    std::fs::write(&file, &good[..good.len() - 7]).unwrap();
    let server = start(Kind::Ferrocached, &["-e", &file_arg]);
    server.connect().roundtrip(b"get a b\r\n", b"END\r\n");
    server.stop_with(libc::SIGTERM);

    // Another format version: refused at startup with a clear message.
    let mut foreign = good.clone();
    foreign[8] = 99;
    std::fs::write(&file, &foreign).unwrap();
    let output = crate::support::command_for(Kind::Ferrocached, free_port(), &["-e", &file_arg])
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("format version 99 is not supported"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_graceful_saves_too() {
    if std::env::var("PROTOCOL_TARGET").is_ok() {
        return;
    }
    let dir = scratch("graceful");
    let file = dir.join("cache.snapshot");
    let file_arg = file.to_str().unwrap().to_string();
    let server = start(Kind::Ferrocached, &["-A", "-e", &file_arg]);
    let mut c = server.connect();
    c.roundtrip(b"set g 0 0 4\r\nkept\r\n", b"STORED\r\n");
    c.send(b"shutdown graceful\r\n");
    assert!(c.is_closed());
    server.wait_exit();
    drop(server);
    let server = start(Kind::Ferrocached, &["-e", &file_arg]);
    server
        .connect()
        .roundtrip(b"get g\r\n", b"VALUE g 0 4\r\nkept\r\nEND\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}
