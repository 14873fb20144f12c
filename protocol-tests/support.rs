//! Test bed: start ferrocached and (when installed) Debian's memcached with the same
//! flags, and talk to them byte for byte. Every expectation runs against both, so an
//! expectation real memcached fails is caught as a wrong expectation.
//!
//! Environment:
//! - `PROTOCOL_TARGET=host:port`: run only against that already running server (tests
//!   that need particular flags are skipped then).
//! - `MEMCACHED_BIN`: reference server binary (default `/usr/bin/memcached`).
//! - `REQUIRE_MEMCACHED=1`: every reference, tool and client is mandatory: what would be
//!   skipped fails instead. `scripts/test` sets it.
//!
//! A part of a test that cannot run here calls [`skip`], which prints
//! `SKIPPED: <test>: <why>` past the test harness's capture, so a skip shows in the
//! default `cargo test` output instead of passing silently.

#![allow(dead_code)]

use std::fmt::Display;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any single expectation may wait for its bytes.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which implementation a server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Our binary.
    Ferrocached,
    /// Debian's memcached 1.6.
    Memcached,
    /// Something already running at `PROTOCOL_TARGET`.
    External,
}

/// A running server (killed on drop when we started it).
pub struct Server {
    pub kind: Kind,
    pub address: String,
    child: Option<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An ephemeral TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("an ephemeral port")
}

/// True under `REQUIRE_MEMCACHED=1`, when nothing may be skipped.
pub fn required() -> bool {
    std::env::var("REQUIRE_MEMCACHED").as_deref() == Ok("1")
}

/// Reports that part of the current test did not run, and why. The line goes straight to
/// the process's stderr (the harness captures only `eprintln!`), so it shows in the
/// default output; under `REQUIRE_MEMCACHED=1` the skip fails the test instead.
pub fn skip(why: impl Display) {
    assert!(!required(), "REQUIRE_MEMCACHED=1 but {why}");
    let test = std::thread::current()
        .name()
        .unwrap_or("protocol test")
        .to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

/// True (after reporting the skip) when `PROTOCOL_TARGET` names an external server, for
/// tests that must start servers of their own.
pub fn external_target() -> bool {
    let external = std::env::var("PROTOCOL_TARGET").is_ok();
    if external {
        skip("it starts its own servers, and PROTOCOL_TARGET is set");
    }
    external
}

/// True when the reference server is installed (and not replaced by PROTOCOL_TARGET).
pub fn memcached_available() -> bool {
    std::env::var("PROTOCOL_TARGET").is_err() && memcached_binary().is_some()
}

fn memcached_binary() -> Option<PathBuf> {
    let path = PathBuf::from(
        std::env::var("MEMCACHED_BIN").unwrap_or_else(|_| "/usr/bin/memcached".into()),
    );
    if path.exists() {
        return Some(path);
    }
    skip(format!(
        "the reference {} is missing; checked against ferrocached only",
        path.display()
    ));
    None
}

/// Path of the ferrocached binary under test.
pub fn ferrocached_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferrocached"))
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The io engine every ferrocached the suite starts is forced to
/// (`FERROCACHED_IO_ENGINE=uring|epoll`); unset, ferrocached picks its default.
pub fn io_engine() -> Option<String> {
    std::env::var("FERROCACHED_IO_ENGINE")
        .ok()
        .filter(|engine| !engine.is_empty())
}

/// Command line for a server kind with the given extra flags.
pub fn command_for(kind: Kind, port: u16, flags: &[&str]) -> Command {
    let mut command = match kind {
        Kind::Ferrocached => Command::new(ferrocached_binary()),
        Kind::Memcached => Command::new(memcached_binary().expect("memcached")),
        Kind::External => unreachable!("external servers are not started"),
    };
    // Both refuse to run as root without -u.
    if running_as_root() {
        command.args(["-u", "root"]);
    }
    // scripts/test runs the suite once per io engine; a test's own -o comes later and wins.
    if let (Kind::Ferrocached, Some(engine)) = (kind, io_engine()) {
        command.args(["-o", &format!("io_engine={engine}")]);
    }
    command
        .args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0"])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Starts one server and waits until it accepts connections.
pub fn start(kind: Kind, flags: &[&str]) -> Server {
    let port = free_port();
    start_command(kind, port, command_for(kind, port, flags))
}

/// Starts `command` (from [`command_for`] with `port`, adjusted by the caller) and waits
/// until it accepts connections.
pub fn start_command(kind: Kind, port: u16, mut command: Command) -> Server {
    let child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {kind:?}: {error}"));
    let address = format!("127.0.0.1:{port}");
    let server = Server {
        kind,
        address,
        child: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&server.address).is_err() {
        assert!(Instant::now() < deadline, "{kind:?} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// The servers an expectation runs against: ferrocached and memcached started with
/// `flags`, or the external target (only when `flags` is empty).
pub fn servers(flags: &[&str]) -> Vec<Server> {
    if let Ok(address) = std::env::var("PROTOCOL_TARGET") {
        if !flags.is_empty() {
            skip(format!("needs flags {flags:?}, and PROTOCOL_TARGET is set"));
            return Vec::new();
        }
        return vec![Server {
            kind: Kind::External,
            address,
            child: None,
        }];
    }
    let mut all = vec![start(Kind::Ferrocached, flags)];
    if memcached_binary().is_some() {
        all.push(start(Kind::Memcached, flags));
    }
    all
}

/// Shows bytes readably in assertion messages.
pub fn show(bytes: &[u8]) -> String {
    let mut text = String::new();
    for &byte in bytes.iter().take(600) {
        match byte {
            b'\r' => text.push_str("\\r"),
            b'\n' => text.push_str("\\n"),
            0x20..=0x7e => text.push(byte as char),
            _ => text.push_str(&format!("\\x{byte:02x}")),
        }
    }
    if bytes.len() > 600 {
        text.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    text
}

/// A raw text-protocol client.
pub struct Client {
    pub stream: TcpStream,
    pub label: String,
}

impl Server {
    /// Opens a connection.
    pub fn connect(&self) -> Client {
        let stream = TcpStream::connect(&self.address).expect("connect");
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            label: format!("{:?}", self.kind),
        }
    }
}

impl Client {
    /// Waits up to `timeout` for each reply from now on, instead of [`REPLY_TIMEOUT`]:
    /// for a request a loaded reference server may take longer over.
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// Sends bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads exactly `len` bytes (or fails after the timeout).
    pub fn read_exact_len(&mut self, len: usize) -> Vec<u8> {
        let mut buffer = vec![0; len];
        let mut filled = 0;
        while filled < len {
            match self.stream.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(count) => filled += count,
                Err(error) => panic!(
                    "[{}] read failed after {} bytes: {error}; got {}",
                    self.label,
                    filled,
                    show(&buffer[..filled])
                ),
            }
        }
        buffer.truncate(filled);
        buffer
    }

    /// Reads one line including its CRLF.
    pub fn read_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            match self.stream.read(&mut byte) {
                Ok(1) => line.push(byte[0]),
                _ => panic!(
                    "[{}] connection ended inside a line: {}",
                    self.label,
                    show(&line)
                ),
            }
        }
        line
    }

    /// Asserts the next bytes are exactly `expected`.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_exact_len(expected.len());
        assert_eq!(
            show(&got),
            show(expected),
            "[{}] unexpected reply",
            self.label
        );
    }

    /// Sends a request and asserts the reply.
    pub fn roundtrip(&mut self, request: &[u8], expected: &[u8]) {
        self.send(request);
        self.expect(expected);
    }

    /// Asserts nothing else was sent before the reply to a fresh request: proves that
    /// `noreply` (or a swallowed value) produced no bytes.
    pub fn expect_quiet(&mut self) {
        self.roundtrip(b"get __quiet_probe__\r\n", b"END\r\n");
    }

    /// Reads `STAT name value` lines until `END`.
    pub fn stats(&mut self, group: &str) -> Vec<(String, String)> {
        let request = if group.is_empty() {
            "stats\r\n".to_string()
        } else {
            format!("stats {group}\r\n")
        };
        self.send(request.as_bytes());
        let mut all = Vec::new();
        loop {
            let line = String::from_utf8(self.read_line()).expect("utf-8 stats");
            let line = line.trim_end();
            if line == "END" {
                return all;
            }
            let mut parts = line.splitn(3, ' ');
            assert_eq!(
                parts.next(),
                Some("STAT"),
                "[{}] bad stats line {line}",
                self.label
            );
            let name = parts.next().unwrap_or_default().to_string();
            let value = parts.next().unwrap_or_default().to_string();
            all.push((name, value));
        }
    }

    /// One general stat as a number.
    pub fn stat(&mut self, name: &str) -> u64 {
        self.stats("")
            .into_iter()
            .find(|(stat, _)| stat == name)
            .unwrap_or_else(|| panic!("[{}] no stat {name}", self.label))
            .1
            .parse()
            .expect("numeric stat")
    }

    /// True once the server has closed this connection.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            // A timeout means the server kept the connection open.
            Err(error) => !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

impl Server {
    /// Sends a signal to a server we started and waits until it has exited.
    pub fn stop_with(&self, signal: i32) {
        let pid = self.pid().expect("a server we started") as i32;
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid, signal) };
        self.wait_exit();
    }

    /// Waits until a server we started has exited (on its own or by a signal).
    pub fn wait_exit(&self) {
        let pid = self.pid().expect("a server we started");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "))
        {
            assert!(Instant::now() < deadline, "{:?} did not stop", self.kind);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Process id of a server we started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Runs a command-line tool if installed; `None` (reported by [`skip`]) when missing.
pub fn tool(name: &str) -> Option<Command> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).exists()))
        .unwrap_or(false);
    if found {
        return Some(Command::new(name));
    }
    skip(format!("the tool {name} is not installed"));
    None
}

/// Runs a Python `script` that checks YAML files under `root` (its `sys.argv[1]`) and
/// asserts it succeeded. False, after a visible skip, when PyYAML is missing.
pub fn python_yaml_check(script: &str, root: &Path) -> bool {
    let output = Command::new("python3")
        .args(["-c", script, root.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    if String::from_utf8_lossy(&output.stderr).contains("No module named 'yaml'") {
        skip("the Python module yaml (PyYAML) is not installed");
        return false;
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    true
}
