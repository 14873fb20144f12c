//! Command lines memcached refuses are refused too, with its exit status and message;
//! help and version exit 0, SIGTERM and SIGINT stop with status 0.

use crate::support::{Kind, command_for, memcached_available};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn kinds() -> Vec<Kind> {
    let mut kinds = vec![Kind::Ferrocached];
    if memcached_available() {
        kinds.push(Kind::Memcached);
    }
    kinds
}

/// Runs a server command line that should exit by itself; returns its status code (None
/// when it had to be killed) and what it printed on stderr.
fn run_to_exit(kind: Kind, flags: &[&str]) -> (Option<i32>, String) {
    let mut child = command_for(kind, 1, flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("wait");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Command lines memcached 1.6.18 refuses, with the exit status and the part of its
/// message that both servers print (observed by running each against memcached). memcached
/// exits 1 when it refuses while reading its options and 64 (EX_USAGE) when it checks
/// them afterwards; 71 (EX_OSERR) when it cannot listen.
const REFUSALS: &[(&[&str], i32, &str)] = &[
    (
        &["-c", "0"],
        1,
        "Maximum connections must be greater than 0\n",
    ),
    (
        &["-c", "-1"],
        1,
        "Maximum connections must be greater than 0\n",
    ),
    (
        &["-t", "0"],
        1,
        "Number of threads must be greater than 0\n",
    ),
    (
        &["-I", "1000"],
        64,
        "Item max size cannot be less than 1024 bytes.\n",
    ),
    (
        &["-I", "40m"],
        64,
        "Cannot set item size limit higher than 1/2 of memory max.\n",
    ),
    (
        &["-B", "http"],
        64,
        "Invalid value for binding protocol: http\n -- should be one of auto, binary, or ascii\n",
    ),
    (&["-f", "1.0"], 1, "Factor must be greater than 1\n"),
    (&["-n", "0"], 1, "Chunk size must be greater than 0\n"),
    (
        &["-R", "0"],
        1,
        "Number of requests per event must be greater than 0\n",
    ),
    (&["-o", "bogus"], 1, "Illegal suboption \"bogus\"\n"),
    (
        &["-o", "read_buf_mem_limit=abc"],
        1,
        "could not parse argument to read_buf_mem_limit\n",
    ),
    (
        &["-o", "read_buf_mem_limit"],
        1,
        "Missing read_buf_mem_limit argument\n",
    ),
    (&["-Q"], 1, "Illegal argument \"?\"\n"),
    (&["-p"], 1, "Illegal argument \"?\"\n"),
    (&["-l", "no-such-host.invalid"], 71, "failed to listen on "),
];

#[test]
fn refuses_what_memcached_refuses() {
    for kind in kinds() {
        for &(flags, status, message) in REFUSALS {
            let (code, stderr) = run_to_exit(kind, flags);
            assert_eq!(code, Some(status), "{kind:?} {flags:?}: {stderr}");
            assert!(
                stderr.contains(message),
                "{kind:?} {flags:?}: expected {message:?} in {stderr:?}"
            );
        }
    }
}

#[test]
fn help_and_version_exit_zero() {
    for kind in kinds() {
        for flag in ["-h", "-V"] {
            assert_eq!(run_to_exit(kind, &[flag]).0, Some(0), "{kind:?} {flag}");
        }
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
            // memcached exits 0 on both: an orderly stop, not a crash.
            assert_eq!(
                status.code(),
                Some(0),
                "{kind:?} after signal {signal}: {status:?}"
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
