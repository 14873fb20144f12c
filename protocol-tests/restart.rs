//! Warm restart (`-e`): items survive an orderly stop with their values, flags, CAS and
//! absolute expiry; every write acknowledged before a stop is in the file; periodic
//! snapshots bound what a crash loses and SIGKILL during one never costs the previous
//! one; bad files are set aside (never a crash loop), unreadable ones left untouched;
//! files are private; a restore into less memory keeps the most recently used items.
//!
//! These tests run ferrocached only: memcached 1.6 restores from its mmap file only after
//! a graceful stop and has no periodic snapshot.

use crate::support::{
    Client, Kind, REPLY_TIMEOUT, command_for, ferrocached_binary, free_port, start,
};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ferrocached-restart-")
        .tempdir()
        .unwrap()
}

fn skip() -> bool {
    crate::support::external_target()
}

/// A ferrocached process whose exit status the test checks.
struct Node {
    child: Child,
    address: String,
}

impl Node {
    fn start(flags: &[&str]) -> Node {
        let port = free_port();
        let child = command_for(Kind::Ferrocached, port, flags)
            .spawn()
            .expect("start ferrocached");
        let node = Node {
            child,
            address: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&node.address).is_err() {
            assert!(Instant::now() < deadline, "ferrocached did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    fn client(&self) -> Client {
        let stream = TcpStream::connect(&self.address).expect("connect");
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            label: "ferrocached".into(),
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits (bounded) for the process to exit on its own.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "ferrocached did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop_with(&mut self, signal: i32) -> ExitStatus {
        self.signal(signal);
        self.wait()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a server that is expected to refuse to start; fails the test if it serves.
fn refused(mut command: Command) -> (ExitStatus, String) {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferrocached");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ferrocached started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn arg(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

fn aside(file: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}.{suffix}", file.display()))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn cas_of(c: &mut Client, key: &str) -> String {
    c.send(format!("gets {key}\r\n").as_bytes());
    let line = String::from_utf8(c.read_line()).unwrap();
    let _ = c.read_line();
    assert_eq!(c.read_line(), b"END\r\n");
    line.trim_end().rsplit(' ').next().unwrap().to_string()
}

/// Stores `count` items `<prefix><i>` of `size` bytes, pipelined with noreply.
fn fill(c: &mut Client, prefix: &str, count: usize, size: usize) {
    let value = vec![b'v'; size];
    let mut batch = Vec::new();
    for index in 0..count {
        batch.extend_from_slice(format!("set {prefix}{index} 0 0 {size} noreply\r\n").as_bytes());
        batch.extend_from_slice(&value);
        batch.extend_from_slice(b"\r\n");
        if batch.len() > 256 * 1024 || index + 1 == count {
            c.send(&batch);
            batch.clear();
        }
    }
    c.expect_quiet();
}

/// How many of `keys` are present (multigets of 100 keys).
fn present(c: &mut Client, keys: &[String]) -> usize {
    let mut found = 0;
    for chunk in keys.chunks(100) {
        c.send(format!("get {}\r\n", chunk.join(" ")).as_bytes());
        loop {
            let line = c.read_line();
            if line == b"END\r\n" {
                break;
            }
            let header = String::from_utf8(line).unwrap();
            let length: usize = header
                .trim_end()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let _ = c.read_exact_len(length + 2);
            found += 1;
        }
    }
    found
}

#[test]
fn items_survive_a_graceful_restart() {
    if skip() {
        return;
    }
    let dir = scratch();
    let file = dir.path().join("cache.snapshot");
    let file_arg = arg(&file);
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
}

#[test]
fn periodic_snapshots_bound_what_a_crash_loses() {
    if skip() {
        return;
    }
    let dir = scratch();
    let file_arg = arg(&dir.path().join("cache.snapshot"));
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
}

/// One flipped bit anywhere — magic, version, record, count, checksum — is corruption:
/// the file is set aside, the server starts empty and serves, and exits 0 afterwards. An
/// intact file of another format version is set aside the same way (never a crash loop).
#[test]
fn flipped_bits_anywhere_start_empty_and_set_the_file_aside() {
    if skip() {
        return;
    }
    let dir = scratch();
    let file = dir.path().join("cache.snapshot");
    let file_arg = arg(&file);
    let mut node = Node::start(&["-e", &file_arg]);
    node.client().roundtrip(
        b"set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\n",
        b"STORED\r\nSTORED\r\n",
    );
    assert!(node.stop_with(libc::SIGTERM).success());
    let good = std::fs::read(&file).unwrap();
    let len = good.len();
    // Magic, version (low and high byte), reserved, first record, middle, trailer mark,
    // record count, checksum.
    for at in [0, 8, 11, 12, 16, 20, len / 2, len - 16, len - 12, len - 1] {
        let mut flipped = good.clone();
        flipped[at] ^= 0x04;
        std::fs::write(&file, &flipped).unwrap();
        let mut node = Node::start(&["-e", &file_arg]);
        let mut c = node.client();
        c.roundtrip(b"get a b\r\n", b"END\r\n");
        c.roundtrip(b"set c 0 0 1\r\n3\r\n", b"STORED\r\n");
        assert_eq!(
            std::fs::read(aside(&file, "corrupt")).unwrap(),
            flipped,
            "byte {at}: the bad file is kept aside as it was"
        );
        assert!(node.stop_with(libc::SIGTERM).success(), "byte {at}");
        let mut node = Node::start(&["-e", &file_arg]);
        node.client()
            .roundtrip(b"get c\r\n", b"VALUE c 0 1\r\n3\r\nEND\r\n");
        assert!(node.stop_with(libc::SIGTERM).success());
    }

    // Truncated: likewise.
    std::fs::write(&file, &good[..len - 7]).unwrap();
    let mut node = Node::start(&["-e", &file_arg]);
    node.client().roundtrip(b"get a b\r\n", b"END\r\n");
    assert!(node.stop_with(libc::SIGTERM).success());

    // Another format version with a valid checksum: set aside as unsupported.
    let mut foreign = good[..len - 4].to_vec();
    foreign[8] = 99;
    let crc = crc32fast::hash(&foreign);
    foreign.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(&file, &foreign).unwrap();
    let mut node = Node::start(&["-e", &file_arg]);
    node.client().roundtrip(b"get a b\r\n", b"END\r\n");
    assert_eq!(std::fs::read(aside(&file, "unsupported")).unwrap(), foreign);
    assert!(node.stop_with(libc::SIGTERM).success());
}

/// `-e x.tmp` is an ordinary target, and every file the server writes is 0600, whether
/// written by a periodic save or at the stop; no temporary file is left behind.
#[test]
fn a_tmp_target_works_and_snapshots_are_private() {
    if skip() {
        return;
    }
    let dir = scratch();
    let file = dir.path().join("sessions.tmp");
    let file_arg = arg(&file);
    let mut node = Node::start(&["-e", &file_arg, "-o", "snapshot_interval=1"]);
    node.client()
        .roundtrip(b"set s 0 0 7\r\nsession\r\n", b"STORED\r\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        assert!(Instant::now() < deadline, "no periodic snapshot");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mode_of(&file), 0o600, "periodic snapshot");
    assert!(node.stop_with(libc::SIGTERM).success());
    assert_eq!(mode_of(&file), 0o600, "final snapshot");
    assert_eq!(files_in(dir.path()), ["sessions.tmp"]);
    let mut node = Node::start(&["-e", &file_arg]);
    node.client()
        .roundtrip(b"get s\r\n", b"VALUE s 0 7\r\nsession\r\nEND\r\n");
    assert!(node.stop_with(libc::SIGTERM).success());
}

/// A snapshot that cannot be read is an operator's problem, not corruption: the server
/// refuses to start with a clear message (as memcached does) and leaves the file alone.
#[test]
fn an_unreadable_snapshot_is_reported_and_left_untouched() {
    if skip() {
        return;
    }
    let dir = scratch();
    // A directory where the file should be.
    let in_the_way = dir.path().join("cache.snapshot");
    std::fs::create_dir(&in_the_way).unwrap();
    let (status, stderr) = refused(command_for(
        Kind::Ferrocached,
        free_port(),
        &["-e", &arg(&in_the_way)],
    ));
    assert!(!status.success());
    assert!(stderr.contains("cannot read the snapshot"), "{stderr}");
    assert!(in_the_way.is_dir());
    assert_eq!(files_in(dir.path()), ["cache.snapshot"]);

    // A real snapshot this server's user may not read (root ignores permissions, so as
    // root the server runs as nobody).
    let file = dir.path().join("private.snapshot");
    let mut node = Node::start(&["-e", &arg(&file)]);
    node.client()
        .roundtrip(b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
    assert!(node.stop_with(libc::SIGTERM).success());
    let before = std::fs::read(&file).unwrap();
    // SAFETY: geteuid has no preconditions.
    let command = if unsafe { libc::geteuid() } == 0 {
        let mut command = Command::new(ferrocached_binary());
        command.args(["-u", "nobody"]);
        command
    } else {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
        Command::new(ferrocached_binary())
    };
    let mut command = command;
    command
        .args(["-p", &free_port().to_string(), "-l", "127.0.0.1", "-U", "0"])
        .args(["-e", &arg(&file)])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let (status, stderr) = refused(command);
    assert!(!status.success());
    assert!(stderr.contains("denied"), "{stderr}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), before, "file untouched");
    assert!(!aside(&file, "corrupt").exists());
}

/// SIGKILL at many moments of periodic saves of a big store: the next start always
/// finds a complete snapshot with every item (they never change, so every snapshot
/// holds them all).
#[test]
fn sigkill_during_periodic_saves_keeps_the_previous_snapshot() {
    if skip() {
        return;
    }
    const ITEMS: usize = 100_000;
    let dir = scratch();
    let file = dir.path().join("big.snapshot");
    let file_arg = arg(&file);
    let flags = [
        "-e",
        file_arg.as_str(),
        "-o",
        "snapshot_interval=1",
        "-m",
        "256",
    ];
    let node = Node::start(&flags);
    fill(&mut node.client(), "item", ITEMS, 100);
    // A save may have begun during the fill: wait until one that began after it is done.
    // Each save renames a new file (a new inode) over the target.
    let inode = || std::fs::metadata(&file).map(|m| m.ino()).unwrap_or(0);
    let mut seen = inode();
    let mut saves = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while saves < 2 {
        assert!(Instant::now() < deadline, "no periodic snapshot");
        std::thread::sleep(Duration::from_millis(20));
        if inode() != seen {
            seen = inode();
            saves += 1;
        }
    }
    let mut node = node;
    let mut mid_save = 0;
    for round in 0..10u64 {
        // Kill at a different moment of the one-second cycle each round.
        std::thread::sleep(Duration::from_millis(700 + round * 137));
        if files_in(dir.path())
            .iter()
            .any(|name| name.ends_with(".partial"))
        {
            mid_save += 1;
        }
        node.stop_with(libc::SIGKILL);
        node = Node::start(&flags);
        let mut c = node.client();
        assert_eq!(c.stat("curr_items"), ITEMS as u64, "round {round}");
        let probe: Vec<String> = (0..ITEMS)
            .step_by(997)
            .map(|i| format!("item{i}"))
            .collect();
        assert_eq!(present(&mut c, &probe), probe.len(), "round {round}");
        assert!(!aside(&file, "corrupt").exists(), "round {round}");
    }
    eprintln!("killed during a save in {mid_save} of 10 rounds");
    assert!(node.stop_with(libc::SIGTERM).success());
    assert_eq!(
        files_in(dir.path()),
        ["big.snapshot"],
        "no temporary file left"
    );
}

/// Writers hammer pipelined sets while the stop arrives; every key a client was told
/// `STORED` is there after the restart, and the server exits 0.
#[test]
fn writes_acknowledged_before_a_stop_are_all_saved() {
    if skip() {
        return;
    }
    let dir = scratch();
    let file_arg = arg(&dir.path().join("cache.snapshot"));
    for stop in [
        "SIGTERM",
        "SIGINT",
        "SIGUSR1",
        "shutdown",
        "shutdown graceful",
    ] {
        let mut node = Node::start(&["-A", "-t", "4", "-e", &file_arg]);
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let address = node.address.clone();
                std::thread::spawn(move || hammer(&address, writer))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let status = match stop {
            "SIGTERM" => node.stop_with(libc::SIGTERM),
            "SIGINT" => node.stop_with(libc::SIGINT),
            "SIGUSR1" => node.stop_with(libc::SIGUSR1),
            command => {
                let mut c = node.client();
                c.send(format!("{command}\r\n").as_bytes());
                assert!(c.is_closed(), "{command} closes without a reply");
                node.wait()
            }
        };
        assert_eq!(status.code(), Some(0), "{stop}");
        let acknowledged: Vec<String> = writers
            .into_iter()
            .flat_map(|writer| writer.join().unwrap())
            .collect();
        assert!(!acknowledged.is_empty(), "{stop}: writes were flowing");
        let mut node = Node::start(&["-e", &file_arg]);
        let mut c = node.client();
        let found = present(&mut c, &acknowledged);
        assert_eq!(
            found,
            acknowledged.len(),
            "{stop}: acknowledged writes lost"
        );
        c.roundtrip(b"flush_all\r\n", b"OK\r\n");
        assert!(node.stop_with(libc::SIGTERM).success());
    }
}

/// Sends batches of 32 pipelined sets until the server goes away; returns the keys
/// whose `STORED` arrived.
fn hammer(address: &str, writer: usize) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let Ok(mut stream) = TcpStream::connect(address) else {
        return acknowledged;
    };
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut replies = BufReader::new(stream.try_clone().unwrap());
    // Bounded even if the server never stopped.
    for batch in 0..200_000 {
        let keys: Vec<String> = (0..32).map(|i| format!("w{writer}-{batch}-{i}")).collect();
        let mut request = Vec::new();
        for key in &keys {
            request.extend_from_slice(format!("set {key} 0 0 5\r\nvalue\r\n").as_bytes());
        }
        if stream.write_all(&request).is_err() {
            break;
        }
        for key in keys {
            let mut line = String::new();
            match replies.read_line(&mut line) {
                Ok(_) if line == "STORED\r\n" => acknowledged.push(key),
                _ => return acknowledged,
            }
        }
    }
    acknowledged
}

/// A snapshot larger than the new `-m` keeps the most recently used items: the "recent"
/// keys were written first but read last, so recency is by access, not by write.
#[test]
fn a_restore_that_does_not_fit_keeps_the_most_recently_used() {
    if skip() {
        return;
    }
    let dir = scratch();
    let file_arg = arg(&dir.path().join("cache.snapshot"));
    let recent: Vec<String> = (0..1000).map(|i| format!("recent{i}")).collect();
    let old: Vec<String> = (0..3000).map(|i| format!("old{i}")).collect();
    let mut node = Node::start(&["-m", "64", "-e", &file_arg]);
    let mut c = node.client();
    fill(&mut c, "recent", recent.len(), 10_000);
    fill(&mut c, "old", old.len(), 10_000);
    // Access times have a one-second resolution.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(present(&mut c, &recent), recent.len());
    assert_eq!(present(&mut c, &old[..10]), 10);
    assert!(node.stop_with(libc::SIGTERM).success());

    let snapshot = std::fs::read(dir.path().join("cache.snapshot")).unwrap();
    // With evictions, and under -M (no evictions: what does not fit is not loaded).
    for flags in [&["-m", "24"][..], &["-m", "24", "-M"][..]] {
        std::fs::write(dir.path().join("cache.snapshot"), &snapshot).unwrap();
        let mut node = Node::start(&[flags, &["-e", &file_arg]].concat());
        let mut c = node.client();
        let recent_kept = present(&mut c, &recent);
        let old_kept = present(&mut c, &old);
        eprintln!("after restoring with {flags:?}: recent {recent_kept}/1000, old {old_kept}/3000");
        assert!(
            old_kept < 2500,
            "{flags:?}: the snapshot did not fit: {old_kept}"
        );
        assert!(
            recent_kept >= 990,
            "{flags:?}: recent items lost: {recent_kept}/1000"
        );
        assert!(node.stop_with(libc::SIGTERM).success());
    }
}

/// A client that never reads its replies cannot hold a stop up for ever: the drain is
/// bounded, the snapshot is still written and the server exits 0.
#[test]
fn a_client_that_never_reads_does_not_block_a_stop() {
    if skip() {
        return;
    }
    let dir = scratch();
    let file = dir.path().join("cache.snapshot");
    let file_arg = arg(&file);
    for signal in [libc::SIGTERM, libc::SIGUSR1] {
        let mut node = Node::start(&["-e", &file_arg]);
        let mut c = node.client();
        let value = vec![b'x'; 500_000];
        let mut request = b"set big 0 0 500000\r\n".to_vec();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
        c.roundtrip(&request, b"STORED\r\n");
        // About 100 MB of replies that are never read.
        let mut stuck = node.client();
        stuck.send(&b"get big\r\n".repeat(200));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(node.stop_with(signal).code(), Some(0));
        drop(stuck);
        let mut node = Node::start(&["-e", &file_arg]);
        let mut c = node.client();
        assert_eq!(present(&mut c, &["big".to_string()]), 1);
        assert!(node.stop_with(libc::SIGTERM).success());
    }
}

/// The `/metrics` page.
fn metrics_page(metrics: &str) -> String {
    let mut stream = TcpStream::connect(metrics).expect("the metrics listener");
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    std::io::Read::read_to_string(&mut stream, &mut page).unwrap();
    page
}

/// One `/metrics` series' value.
fn metric(metrics: &str, name: &str) -> f64 {
    let page = metrics_page(metrics);
    page.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        .parse()
        .unwrap()
}

/// Polls `stats` until `done` holds (a periodic save runs every second).
fn wait_for_stats(c: &mut Client, what: &str, done: impl Fn(&mut Client) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(c) {
        assert!(Instant::now() < deadline, "no {what} within 15 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The snapshot's health in `stats` and `/metrics` (names in README, "Operations"):
/// after a save its time, size, item count and duration are those of the file; when the
/// directory is gone the failures count and the last success stays what it was.
#[test]
fn snapshot_health_moves_after_a_save_and_counts_failures() {
    if skip() {
        return;
    }
    let dir = scratch();
    let snapshots = dir.path().join("snapshots");
    std::fs::create_dir(&snapshots).unwrap();
    let file = snapshots.join("cache.snapshot");
    let metrics = format!("127.0.0.1:{}", free_port());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let server = start(
        Kind::Ferrocached,
        &[
            "-e",
            &arg(&file),
            "-o",
            "snapshot_interval=1",
            "--metrics-listen",
            &metrics,
        ],
    );
    let mut c = server.connect();
    assert_eq!(c.stat("snapshot_interval"), 1);
    assert_eq!(c.stat("snapshot_failures"), 0);
    for key in ["s1", "s2", "s3"] {
        c.roundtrip(
            format!("set {key} 0 0 5\r\nvalue\r\n").as_bytes(),
            b"STORED\r\n",
        );
    }
    wait_for_stats(&mut c, "save of 3 items", |c| {
        c.stat("snapshot_last_items") == 3
    });
    assert!(c.stat("snapshot_saves") >= 1);
    let saved_at = c.stat("snapshot_last_success_time");
    assert!(saved_at >= started, "{saved_at} >= {started}");
    // Every save of the same three items writes a file of the same size.
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(c.stat("snapshot_last_bytes"), size);
    assert!(c.stat("snapshot_last_duration_us") < 10_000_000);
    assert_eq!(metric(&metrics, "memcached_snapshot_last_items"), 3.0);
    assert_eq!(
        metric(&metrics, "memcached_snapshot_last_size_bytes"),
        size as f64
    );
    assert_eq!(metric(&metrics, "memcached_snapshot_interval_seconds"), 1.0);
    assert_eq!(metric(&metrics, "memcached_snapshot_failures_total"), 0.0);
    assert!(metric(&metrics, "memcached_snapshot_saves_total") >= 1.0);
    assert!(
        metric(
            &metrics,
            "memcached_snapshot_last_success_timestamp_seconds"
        ) >= started as f64
    );

    // The page with the snapshot series passes Prometheus' own lint.
    if let Some(mut promtool) = crate::support::tool("promtool") {
        let page = metrics_page(&metrics);
        let body = page.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let mut check = promtool
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let output = check.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // The directory disappears (as root, permissions would not stop the save).
    let moved = dir.path().join("moved");
    std::fs::rename(&snapshots, &moved).unwrap();
    wait_for_stats(&mut c, "failed save", |c| c.stat("snapshot_failures") >= 2);
    let saves = c.stat("snapshot_saves");
    let last = c.stat("snapshot_last_success_time");
    wait_for_stats(&mut c, "another failed save", |c| {
        c.stat("snapshot_failures") >= 3
    });
    assert_eq!(
        c.stat("snapshot_saves"),
        saves,
        "no save succeeds meanwhile"
    );
    assert_eq!(c.stat("snapshot_last_success_time"), last);
    assert_eq!(c.stat("snapshot_last_bytes"), size);
    assert!(metric(&metrics, "memcached_snapshot_failures_total") >= 3.0);

    // Back in place: saves succeed again and the final save works.
    std::fs::rename(&moved, &snapshots).unwrap();
    wait_for_stats(&mut c, "save after the failures", |c| {
        c.stat("snapshot_saves") > saves
    });
    server.stop_with(libc::SIGTERM);
    assert!(file.exists());
}
