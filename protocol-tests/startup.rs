//! Command lines memcached refuses are refused too; help and version exit cleanly.

use crate::support::{Kind, command_for};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn kinds() -> Vec<Kind> {
    let mut kinds = vec![Kind::Ferrocached];
    if std::env::var("PROTOCOL_TARGET").is_err()
        && std::path::Path::new(
            &std::env::var("MEMCACHED_BIN").unwrap_or_else(|_| "/usr/bin/memcached".into()),
        )
        .exists()
    {
        kinds.push(Kind::Memcached);
    }
    kinds
}

/// Runs a server command line that should exit by itself; returns its status code.
fn exit_code(kind: Kind, flags: &[&str]) -> Option<i32> {
    let mut child = command_for(kind, 1, flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refuses_what_memcached_refuses() {
    for kind in kinds() {
        for flags in [
            &["-c", "0"][..],
            &["-c", "-1"],
            &["-t", "0"],
            &["-I", "1000"],
            &["-I", "40m"],
            &["-B", "http"],
            &["-f", "1.0"],
            &["-n", "0"],
            &["-R", "0"],
            &["-o", "bogus"],
            &["-o", "read_buf_mem_limit=abc"],
            &["-o", "read_buf_mem_limit"],
            &["-Q"],
            &["-l", "no-such-host.invalid"],
        ] {
            let code = exit_code(kind, flags);
            assert!(
                matches!(code, Some(code) if code != 0),
                "{kind:?} {flags:?} exited {code:?}"
            );
        }
    }
}

#[test]
fn help_exits_zero() {
    for kind in kinds() {
        assert_eq!(exit_code(kind, &["-h"]), Some(0), "{kind:?}");
    }
}

#[test]
fn sigterm_and_sigint_stop_the_server_cleanly() {
    for kind in kinds() {
        for signal in [libc::SIGTERM, libc::SIGINT] {
            let port = {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                listener.local_addr().unwrap().port()
            };
            let mut child = command_for(kind, port, &[]).spawn().expect("spawn");
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "{kind:?} did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, signal) };
            let deadline = Instant::now() + Duration::from_secs(5);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "{kind:?} ignored signal {signal}"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(
                status.success() || status.code().is_some(),
                "{kind:?} exited on signal {signal}: {status:?}"
            );
        }
    }
}

#[test]
fn dash_vv_logs_every_request_and_reply_like_memcached() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = command_for(Kind::Ferrocached, port, &["-vv"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            break stream;
        }
        assert!(Instant::now() < deadline, "did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::io::{Read, Write};
    stream.write_all(b"set logged 0 0 1\r\nx\r\n").unwrap();
    let mut reply = [0u8; 8];
    stream.read_exact(&mut reply).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains(" set logged 0 0 1\n"), "{log}");
    assert!(
        log.lines()
            .any(|line| line.contains(" <") && line.ends_with(" set logged 0 0 1")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|line| line.contains(" >") && line.ends_with(" STORED")),
        "{log}"
    );
}
