//! The Debian drop-in: Debian's own systemd wrapper starts ferrocached from a
//! memcached.conf; root without -u is refused; -P, -u and -d behave as memcached's.

use crate::support::{ferrocached_binary, free_port, memcached_available, skip};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WRAPPER: &str = "/usr/share/memcached/scripts/systemd-memcached-wrapper";

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn wait_for(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            return stream;
        }
        assert!(Instant::now() < deadline, "server on {port} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn user_id(name: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd
        .lines()
        .find(|line| line.starts_with(&format!("{name}:")))
        .and_then(|line| line.split(':').nth(2)?.parse().ok())
}

fn process_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(2)?.parse().ok())
}

#[test]
fn root_without_dash_u_is_refused() {
    if !root() {
        skip("needs root");
        return;
    }
    let status = Command::new(ferrocached_binary())
        .args(["-p", &free_port().to_string(), "-l", "127.0.0.1"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!status.status.success());
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("can't run as root without the -u switch")
    );
}

#[test]
fn debian_wrapper_starts_ferrocached_from_memcached_conf() {
    if !root() || !memcached_available() || !std::path::Path::new(WRAPPER).exists() {
        skip(format!(
            "needs root and Debian's memcached package ({WRAPPER})"
        ));
        return;
    }
    let user = if user_id("memcache").is_some() {
        "memcache"
    } else {
        "nobody"
    };
    let uid = user_id(user).expect("the user exists");
    let dir = std::env::temp_dir().join(format!("ferrocached-debian-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrapper = std::fs::read_to_string(WRAPPER)
        .unwrap()
        .replace("/usr/bin/memcached", ferrocached_binary().to_str().unwrap());
    let wrapper_path = dir.join("systemd-memcached-wrapper");
    std::fs::write(&wrapper_path, wrapper).unwrap();
    let port = free_port();
    let pid_path = dir.join("memcached.pid");
    let conf = format!(
        "# memcached default config file, as Debian ships it\n-d\nlogfile /var/log/memcached.log\n-m 64\n-p {port}\n-u {user}\n-l 127.0.0.1\n-P {}\n",
        pid_path.display()
    );
    let conf_path = dir.join("memcached.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut child = Command::new("perl")
        .arg(&wrapper_path)
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perl runs the wrapper");
    let mut stream = wait_for(port);
    stream
        .write_all(b"set deb 0 0 2\r\nok\r\nget deb\r\n")
        .unwrap();
    let expected = b"STORED\r\nVALUE deb 0 2\r\nok\r\nEND\r\n";
    let mut got = vec![0; expected.len()];
    stream.read_exact(&mut got).unwrap();
    assert_eq!(got, expected);
    let pid: u32 = std::fs::read_to_string(&pid_path)
        .expect("pid file written")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, child.id(), "the wrapper execs the server in place");
    assert_eq!(process_uid(pid), Some(uid), "runs as {user}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM stops cleanly: {status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dash_d_daemonizes_and_sigusr1_stops_gracefully() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ferrocached-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_path = dir.join("pid");
    let mut command = Command::new(ferrocached_binary());
    command.args([
        "-d",
        "-p",
        &port.to_string(),
        "-l",
        "127.0.0.1",
        "-P",
        pid_path.to_str().unwrap(),
    ]);
    if root() {
        command.args(["-u", "root"]);
    }
    let status = command.status().unwrap();
    assert!(status.success(), "the foreground process returns at once");
    let _stream = wait_for(port);
    let pid: i32 = std::fs::read_to_string(&pid_path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "SIGUSR1 stops the daemon");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_path.exists() {
        assert!(Instant::now() < deadline, "the pid file is removed on exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
