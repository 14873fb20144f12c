//! `watch`: a connection turned into a sink of memcached's log lines. Lines are compared
//! field by field: names and order always, values where they are deterministic (not
//! `ts`, `gid`, `cfd`, `clsid`, which depend on the process).

use crate::support::{Client, Kind, Server, servers, show};
use std::io::Read;
use std::time::{Duration, Instant};

/// Opens a watcher of `kinds` and waits for its `OK` (memcached's logger thread may take
/// up to a second to answer).
fn watcher(server: &Server, kinds: &str) -> Client {
    let mut watcher = server.connect();
    let line = if kinds.is_empty() {
        "watch\r\n".to_string()
    } else {
        format!("watch {kinds}\r\n")
    };
    watcher.roundtrip(line.as_bytes(), b"OK\r\n");
    watcher
}

/// One log line (they end in a bare `\n`), without its newline.
fn log_line(watcher: &mut Client) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match watcher.stream.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            _ => panic!("[{}] no log line; got {}", watcher.label, show(&line)),
        }
    }
    String::from_utf8(line).expect("log lines are ASCII")
}

/// The `name=value` fields of a line, in order.
fn fields(line: &str) -> Vec<(&str, &str)> {
    line.split(' ')
        .map(|field| field.split_once('=').unwrap_or((field, "")))
        .collect()
}

/// The next line of type `kind` whose fields include every one of `matching`.
fn next_event(watcher: &mut Client, kind: &str, matching: &[(&str, &str)]) -> String {
    loop {
        let line = log_line(watcher);
        let found = fields(&line);
        if found.contains(&("type", kind)) && matching.iter().all(|field| found.contains(field)) {
            return line;
        }
    }
}

/// Asserts a line's field names are `names` in order, and that each of `values` holds.
fn assert_shape(server: Kind, line: &str, names: &[&str], values: &[(&str, &str)]) {
    let found = fields(line);
    let found_names: Vec<&str> = found.iter().map(|(name, _)| *name).collect();
    assert_eq!(found_names, names, "[{server:?}] field names of {line}");
    for (name, value) in &found {
        if matches!(*name, "ts" | "gid" | "cfd" | "clsid" | "rport") {
            let digits = value.replace('.', "");
            assert!(
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
                "[{server:?}] {name} not numeric in {line}"
            );
        }
    }
    for expected in values {
        assert!(
            found.contains(expected),
            "[{server:?}] {}={} expected in {line}",
            expected.0,
            expected.1
        );
    }
}

const ITEM_GET: &[&str] = &["ts", "gid", "type", "key", "status", "clsid", "cfd", "size"];
const ITEM_STORE: &[&str] = &[
    "ts", "gid", "type", "key", "status", "cmd", "ttl", "clsid", "cfd", "size",
];

#[test]
fn watch_fetchers_logs_every_lookup_in_order() {
    for server in servers(&[]) {
        for kinds in ["", "fetchers"] {
            let mut watcher = watcher(&server, kinds);
            let mut c = server.connect();
            let key = format!("fetch{}", kinds.len());
            let k = key.as_str();
            c.roundtrip(format!("get {k}\r\n").as_bytes(), b"END\r\n");
            c.roundtrip(
                format!("set {k} 0 0 3\r\nbar\r\n").as_bytes(),
                b"STORED\r\n",
            );
            c.send(format!("get {k} nope {k}\r\n").as_bytes());
            c.expect(format!("VALUE {k} 0 3\r\nbar\r\nVALUE {k} 0 3\r\nbar\r\nEND\r\n").as_bytes());
            c.roundtrip(format!("touch {k} 100\r\n").as_bytes(), b"TOUCHED\r\n");
            c.roundtrip(format!("mg {k} v\r\n").as_bytes(), b"VA 3\r\nbar\r\n");
            c.roundtrip(format!("delete {k}\r\n").as_bytes(), b"DELETED\r\n");
            c.roundtrip(format!("incr {k} 1\r\n").as_bytes(), b"NOT_FOUND\r\n");
            let expected = [
                (k, "not_found", "0"),
                (k, "not_found", "0"),
                (k, "found", "3"),
                ("nope", "not_found", "0"),
                (k, "found", "3"),
                (k, "found", "3"),
                (k, "found", "3"),
                (k, "found", "3"),
                (k, "not_found", "0"),
            ];
            for (key, status, size) in expected {
                let line = next_event(&mut watcher, "item_get", &[]);
                assert_shape(
                    server.kind,
                    &line,
                    ITEM_GET,
                    &[("key", key), ("status", status), ("size", size)],
                );
            }
        }
    }
}

#[test]
fn watch_mutations_logs_each_store_and_its_outcome() {
    for server in servers(&[]) {
        let mut watcher = watcher(&server, "mutations");
        let mut c = server.connect();
        c.roundtrip(b"set mu 0 0 3\r\nbar\r\n", b"STORED\r\n");
        c.roundtrip(b"add mu 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
        c.roundtrip(b"add mu2 0 100 1\r\nx\r\n", b"STORED\r\n");
        c.roundtrip(b"replace nomu 0 0 2\r\nxy\r\n", b"NOT_STORED\r\n");
        c.roundtrip(b"append mu 0 0 1\r\nz\r\n", b"STORED\r\n");
        c.roundtrip(b"prepend nomu 0 0 1\r\nz\r\n", b"NOT_STORED\r\n");
        c.roundtrip(b"cas mu 0 0 1 999999\r\nz\r\n", b"EXISTS\r\n");
        c.roundtrip(b"cas nomu 0 0 1 1\r\nz\r\n", b"NOT_FOUND\r\n");
        c.roundtrip(b"ms mu 2 MA\r\nhi\r\n", b"HD\r\n");
        c.roundtrip(b"set k%20,x 0 0 1\r\nx\r\n", b"STORED\r\n");
        let expected = [
            ("mu", "stored", "set", "0", "3"),
            ("mu", "not_stored", "add", "0", "1"),
            ("mu2", "stored", "add", "100", "1"),
            ("nomu", "not_stored", "replace", "0", "2"),
            // A stored append is described by the whole new value.
            ("mu", "stored", "append", "0", "4"),
            ("nomu", "not_stored", "prepend", "0", "1"),
            ("mu", "exists", "cas", "0", "1"),
            ("nomu", "not_found", "cas", "0", "1"),
            ("mu", "stored", "append", "0", "6"),
            // Keys are URI-encoded.
            ("k%2520%2Cx", "stored", "set", "0", "1"),
        ];
        for (key, status, command, ttl, size) in expected {
            let line = next_event(&mut watcher, "item_store", &[]);
            assert_shape(
                server.kind,
                &line,
                ITEM_STORE,
                &[
                    ("key", key),
                    ("status", status),
                    ("cmd", command),
                    ("ttl", ttl),
                    ("size", size),
                ],
            );
        }
        // A mutations watcher sees no lookups.
        c.roundtrip(b"get mu\r\n", b"VALUE mu 0 6\r\nbarzhi\r\nEND\r\n");
        c.roundtrip(b"set last 0 0 1\r\nx\r\n", b"STORED\r\n");
        let line = log_line(&mut watcher);
        assert!(line.contains("type=item_store key=last "), "{line}");
    }
}

#[test]
fn watch_evictions_logs_evicted_items() {
    for server in servers(&["-m", "2"]) {
        let mut watcher = watcher(&server, "evictions");
        let mut c = server.connect();
        let value = vec![b'x'; 1000];
        for i in 0..4000 {
            let mut request = format!("set evict{i} 0 100 1000 noreply\r\n").into_bytes();
            request.extend_from_slice(&value);
            request.extend_from_slice(b"\r\n");
            c.send(&request);
        }
        c.expect_quiet();
        let line = next_event(&mut watcher, "eviction", &[]);
        assert_shape(
            server.kind,
            &line,
            &[
                "ts", "gid", "type", "key", "fetch", "ttl", "la", "clsid", "size",
            ],
            &[("fetch", "no"), ("size", "1000")],
        );
        let found = fields(&line);
        let value = |name: &str| found.iter().find(|(field, _)| *field == name).unwrap().1;
        assert!(value("key").starts_with("evict"), "{line}");
        let ttl: u32 = value("ttl").parse().unwrap();
        assert!((97..=100).contains(&ttl), "[{:?}] {line}", server.kind);
        let idle: u32 = value("la").parse().unwrap();
        assert!(idle <= 3, "[{:?}] {line}", server.kind);
    }
}

#[test]
fn watch_connevents_logs_connections_opening_and_closing() {
    for server in servers(&[]) {
        let mut watcher = watcher(&server, "connevents");
        let mut c = server.connect();
        let port = c.stream.local_addr().unwrap().port().to_string();
        c.roundtrip(b"get a\r\n", b"END\r\n");
        c.send(b"quit\r\n");
        assert!(c.is_closed());
        let rport = ("rport", port.as_str());
        let opened = next_event(&mut watcher, "conn_new", &[rport]);
        assert_shape(
            server.kind,
            &opened,
            &["ts", "gid", "type", "rip", "rport", "transport", "cfd"],
            &[("rip", "127.0.0.1"), ("transport", "tcp")],
        );
        let closed = next_event(&mut watcher, "conn_close", &[rport]);
        assert_shape(
            server.kind,
            &closed,
            &[
                "ts",
                "gid",
                "type",
                "rip",
                "rport",
                "transport",
                "reason",
                "cfd",
            ],
            &[
                ("rip", "127.0.0.1"),
                ("transport", "tcp"),
                ("reason", "normal"),
            ],
        );
        // A client that hangs up is a normal close too.
        let c = server.connect();
        let port = c.stream.local_addr().unwrap().port().to_string();
        drop(c);
        let closed = next_event(&mut watcher, "conn_close", &[("rport", port.as_str())]);
        assert!(closed.contains(" reason=normal "), "{closed}");
        // A request stream that cannot be read on (a line over 2048 bytes that is not a
        // get) is closed as an error.
        let mut c = server.connect();
        let port = c.stream.local_addr().unwrap().port().to_string();
        c.send(&[b'x'; 3000]);
        assert!(c.is_closed());
        let closed = next_event(&mut watcher, "conn_close", &[("rport", port.as_str())]);
        assert!(
            closed.contains(" reason=error "),
            "{:?}: {closed}",
            server.kind
        );
    }
}

#[test]
fn watch_refuses_unknown_arguments_and_the_connection_goes_on() {
    for server in servers(&[]) {
        let mut c = server.connect();
        // 1.6.18 has no "deletions"; arguments are case-sensitive; one bad spoils all.
        for line in [
            "watch deletions",
            "watch junk",
            "watch fetchers junk",
            "watch FETCHERS",
        ] {
            c.roundtrip(format!("{line}\r\n").as_bytes(), b"ERROR\r\n");
            c.roundtrip(b"get a\r\n", b"END\r\n");
        }
        // `noreply` is read as an argument: refused, quietly.
        c.send(b"watch fetchers noreply\r\n");
        c.expect_quiet();
        // Watching after other replies of the same batch is refused.
        c.roundtrip(
            b"set k 0 0 1\r\nx\r\nwatch\r\n",
            b"STORED\r\nERROR cannot pipeline other commands before watch\r\n",
        );
        c.roundtrip(b"get a\r\n", b"END\r\n");
    }
}

#[test]
fn a_watcher_takes_no_more_commands() {
    for server in servers(&[]) {
        let mut watcher = server.connect();
        // What is pipelined after `watch` is dropped, and so is what comes later.
        watcher.roundtrip(b"watch mutations\r\nget a\r\n", b"OK\r\n");
        watcher.send(b"get a\r\nversion\r\n");
        let mut c = server.connect();
        c.roundtrip(b"set after 0 0 1\r\nx\r\n", b"STORED\r\n");
        let line = log_line(&mut watcher);
        assert!(
            line.starts_with("ts=") && line.contains(" type=item_store key=after "),
            "[{:?}] {line}",
            server.kind
        );
    }
}

/// Lines a watcher has ready, read until it has been quiet for a moment.
fn drain(watcher: &mut Client) -> Vec<u8> {
    watcher
        .stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut all = Vec::new();
    let mut chunk = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match watcher.stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(count) => all.extend_from_slice(&chunk[..count]),
        }
    }
    all
}

#[test]
fn a_slow_watcher_is_told_how_many_lines_it_missed() {
    const GETS: usize = 300;
    const KEYS: usize = 500;
    for server in servers(&["-o", "watcher_logbuf_size=1"]) {
        let settings = server.connect().stats("settings");
        assert!(
            settings.contains(&("watcher_logbuf_size".into(), "1024".into())),
            "[{:?}] watcher_logbuf_size",
            server.kind
        );
        let mut watcher = server.connect();
        watcher.roundtrip(b"watch fetchers\r\n", b"OK\r\n");
        let mut c = server.connect();
        let keys: Vec<String> = (0..KEYS).map(|i| format!("slow{i}")).collect();
        let request = format!("get {}\r\n", keys.join(" "));
        for _ in 0..GETS {
            c.roundtrip(request.as_bytes(), b"END\r\n");
        }
        let mut received = drain(&mut watcher);
        // The next line that fits reports what was skipped before it.
        c.roundtrip(b"get slowlast\r\n", b"END\r\n");
        watcher
            .stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        loop {
            let line = log_line(&mut watcher);
            received.extend_from_slice(line.as_bytes());
            received.push(b'\n');
            if line.contains(" key=slowlast ") {
                break;
            }
        }
        let text = String::from_utf8(received).expect("ASCII log");
        let mut logged = 0;
        let mut skipped = 0;
        for line in text.lines() {
            if let Some(count) = line.strip_prefix("skipped=") {
                skipped += count.parse::<usize>().expect("skipped=N");
            } else {
                assert_shape(server.kind, line, ITEM_GET, &[("type", "item_get")]);
                logged += usize::from(line.contains(" key=slow") && !line.contains("slowlast"));
            }
        }
        // Both servers fall behind rather than buffer without bound.
        assert!(
            logged < GETS * KEYS,
            "[{:?}] nothing was dropped",
            server.kind
        );
        let mut c = server.connect();
        assert_eq!(c.stat("log_watchers"), 1, "[{:?}]", server.kind);
        if server.kind == Kind::Ferrocached {
            // memcached drops at the worker instead (`log_worker_dropped`, no report).
            assert!(skipped > 0, "no skipped=N line");
            assert_eq!(
                logged + skipped,
                GETS * KEYS,
                "every line logged or counted"
            );
            assert_eq!(c.stat("log_watcher_skipped"), skipped as u64);
            assert_eq!(c.stat("log_worker_dropped"), 0);
        }
    }
}

#[test]
fn logbuf_sizes_are_kilobytes_multiplied_in_32_bits() {
    let flags = [
        "-o",
        "watcher_logbuf_size=4294967295,worker_logbuf_size=524288",
    ];
    for server in servers(&flags) {
        let settings = server.connect().stats("settings");
        let value = |name: &str| {
            settings
                .iter()
                .find(|(stat, _)| stat == name)
                .map(|(_, value)| value.clone())
        };
        assert_eq!(
            value("watcher_logbuf_size").as_deref(),
            Some("4294966272"),
            "[{:?}]",
            server.kind
        );
        assert_eq!(
            value("worker_logbuf_size").as_deref(),
            Some("536870912"),
            "[{:?}]",
            server.kind
        );
    }
    for server in servers(&[]) {
        let settings = server.connect().stats("settings");
        for (name, default) in [
            ("watcher_logbuf_size", "262144"),
            ("worker_logbuf_size", "65536"),
        ] {
            assert!(
                settings.contains(&(name.into(), default.into())),
                "[{:?}] {name}",
                server.kind
            );
        }
    }
}

#[test]
fn bad_logbuf_sizes_refuse_to_start_like_memcached() {
    let mut kinds = vec![Kind::Ferrocached];
    if crate::support::memcached_available() {
        kinds.push(Kind::Memcached);
    }
    for kind in kinds {
        for (option, message) in [
            (
                "watcher_logbuf_size=abc",
                "could not parse argument to watcher_logbuf_size\n",
            ),
            (
                "watcher_logbuf_size=-1",
                "could not parse argument to watcher_logbuf_size\n",
            ),
            (
                "worker_logbuf_size=x",
                "could not parse argument to worker_logbuf_size\n",
            ),
            (
                "watcher_logbuf_size",
                "Missing watcher_logbuf_size argument\n",
            ),
        ] {
            let mut child = crate::support::command_for(kind, 1, &["-o", option])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn");
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().expect("wait").is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let output = child.wait_with_output().expect("wait");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "[{kind:?}] {option}");
            assert!(stderr.contains(message), "[{kind:?}] {option}: {stderr}");
        }
    }
}
