//! Server-level operator behaviours against both servers: `verbosity` at run time, the
//! `-R` yield (`conn_yields`), `idle_kicks`, `stats conns` states, the stat-name sets
//! under option sets, and the TLS minimum-version warning.

use crate::support::{
    Client, Kind, Server, command_for, external_target, free_port, memcached_available, servers,
    start,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The server kinds started side by side (none against an external target).
fn kinds() -> Vec<Kind> {
    if external_target() {
        return Vec::new();
    }
    let mut kinds = vec![Kind::Ferrocached];
    if memcached_available() {
        kinds.push(Kind::Memcached);
    }
    kinds
}

/// A server whose stderr goes to a file the test reads; killed on drop.
struct Logged {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Logged {
    fn start(kind: Kind, flags: &[&str]) -> Logged {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("ferrocached-ops-{kind:?}-{port}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command_for(kind, port, flags)
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{kind:?} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Logged { child, port, log }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// Opens a connection, runs `version` on it and closes it.
    fn one_connection(&self) {
        let mut stream = self.connect();
        stream.write_all(b"version\r\n").unwrap();
        let mut reply = [0u8; 9];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"VERSION 1");
    }

    /// The log so far, once it has settled.
    fn log(&self) -> String {
        std::thread::sleep(Duration::from_millis(300));
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

const NEW_CONNECTION: &str = "new auto-negotiating client connection";

#[test]
fn verbosity_2_turns_on_per_connection_logs() {
    for kind in kinds() {
        let server = Logged::start(kind, &[]);
        server.one_connection();
        let before = server.log();
        assert!(!before.contains(NEW_CONNECTION), "[{kind:?}] {before}");
        let mut admin = server.connect();
        admin.write_all(b"verbosity 2\r\n").unwrap();
        let mut ok = [0u8; 4];
        admin.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"OK\r\n");
        server.one_connection();
        let after = server.log();
        assert!(after.contains(NEW_CONNECTION), "[{kind:?}] {after}");
        assert!(after.contains("<") && after.contains(" version"), "{after}");
    }
}

#[test]
fn binary_verbosity_changes_the_log_level_too() {
    // memcached 1.6.18 answers binary VERBOSITY with "Unknown command" and changes
    // nothing (README, "Known differences"); ferrocached applies it as the text command.
    if external_target() {
        return;
    }
    let server = Logged::start(Kind::Ferrocached, &[]);
    let mut admin = server.connect();
    let mut request = vec![0x80, 0x1b, 0, 0, 4, 0, 0, 0, 0, 0, 0, 4];
    request.extend_from_slice(&[0; 12]);
    request.extend_from_slice(&2u32.to_be_bytes());
    admin.write_all(&request).unwrap();
    let mut reply = [0u8; 24];
    admin.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..2], &[0x81, 0x1b]);
    assert_eq!(&reply[6..8], &[0, 0], "status success");
    server.one_connection();
    let log = server.log();
    assert!(log.contains(NEW_CONNECTION), "{log}");
    let mut text = Client {
        stream: server.connect(),
        label: "Ferrocached".into(),
    };
    let settings = text.stats("settings");
    assert!(settings.contains(&("verbosity".into(), "2".into())));
}

#[test]
fn idle_timeout_closes_count_idle_kicks() {
    for server in servers(&["-o", "idle_timeout=1"]) {
        let mut idle = server.connect();
        version(&mut idle);
        assert!(idle.is_closed(), "[{:?}] idle client kept", server.kind);
        let mut c = server.connect();
        assert_eq!(c.stat("idle_kicks"), 1, "[{:?}]", server.kind);
    }
}

/// Runs `version`, reading its whole line.
fn version(c: &mut Client) {
    c.send(b"version\r\n");
    assert!(c.read_line().starts_with(b"VERSION 1."), "[{}]", c.label);
}

/// Sends `count` pipelined `get` misses in one write and reads every `END`.
fn burst(c: &mut Client, count: usize) {
    c.send(&b"get burst\r\n".repeat(count));
    let replies = c.read_exact_len(5 * count);
    assert_eq!(replies, b"END\r\n".repeat(count), "[{}]", c.label);
}

#[test]
fn a_burst_larger_than_r_yields_and_counts_conn_yields() {
    for server in servers(&["-R", "5"]) {
        let mut c = server.connect();
        burst(&mut c, 5);
        assert_eq!(c.stat("conn_yields"), 0, "[{:?}] exactly -R", server.kind);
        burst(&mut c, 100);
        // After every 5 requests with more waiting: 19 yields for 100.
        assert_eq!(c.stat("conn_yields"), 19, "[{:?}]", server.kind);
        c.roundtrip(b"stats reset\r\n", b"RESET\r\n");
        assert_eq!(c.stat("conn_yields"), 0, "[{:?}]", server.kind);
    }
}

#[test]
fn another_connection_is_served_while_one_pipelines_a_huge_burst() {
    const GETS: usize = 200_000;
    for server in servers(&["-t", "1"]) {
        let mut busy = server.connect();
        let mut reader = busy.stream.try_clone().unwrap();
        let finished = std::thread::spawn(move || {
            let mut left = 5 * GETS;
            let mut buffer = vec![0u8; 1 << 16];
            while left > 0 {
                let count = reader.read(&mut buffer).expect("burst replies");
                assert!(count > 0, "closed inside the burst");
                left -= count.min(left);
            }
            Instant::now()
        });
        busy.send(&b"get burst\r\n".repeat(GETS));
        let mut other = server.connect();
        version(&mut other);
        let answered = Instant::now();
        let burst_done = finished.join().unwrap();
        assert!(
            answered < burst_done,
            "[{:?}] the other client waited for the whole burst",
            server.kind
        );
        assert!(other.stat("conn_yields") > 0, "[{:?}]", server.kind);
    }
}

/// `stats conns` grouped by connection id: each entry's fields (id stripped) in order.
fn conns(c: &mut Client) -> Vec<Vec<(String, String)>> {
    let mut entries: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
    for (name, value) in c.stats("conns") {
        let (id, field) = name.split_once(':').expect("id:field");
        let entry = entries.entry(id.parse().expect("numeric id")).or_default();
        entry.push((field.to_string(), value));
    }
    entries.into_values().collect()
}

/// An entry's shape: its field names, the kind of address and the state.
fn shape(entry: &[(String, String)]) -> String {
    entry
        .iter()
        .map(|(field, value)| match field.as_str() {
            "addr" | "listen_addr" => format!("{field}={}", value.split(':').next().unwrap()),
            "state" | "UDP" => format!("{field}={value}"),
            _ => field.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn stats_conns_names_sockets_and_states_like_memcached() {
    let mut shapes = Vec::new();
    for kind in kinds() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_port = udp.local_addr().unwrap().port().to_string();
        drop(udp);
        let server = start(kind, &["-U", &udp_port, "-I", "1m"]);
        let mut idle = server.connect();
        version(&mut idle);
        let mut waiting_for_data = server.connect();
        waiting_for_data.send(b"set k 0 0 10\r\nabc");
        let mut swallowing = server.connect();
        // memcached answers "object too large" only once the value is swallowed.
        swallowing.send(b"set big 0 0 2000000\r\nsome of the value");
        let mut asking = server.connect();
        std::thread::sleep(Duration::from_millis(300));
        let entries = conns(&mut asking);
        let mut found: Vec<String> = entries.iter().map(|entry| shape(entry)).collect();
        let listener = format!("tcp:{}", server.address);
        assert!(
            entries
                .iter()
                .any(|entry| entry[0] == ("addr".into(), listener.clone())),
            "[{kind:?}] {entries:?}"
        );
        for state in ["conn_listening", "conn_read", "conn_nread", "conn_swallow"] {
            assert!(
                found.iter().any(|shape| shape.contains(state)),
                "[{kind:?}] no {state}: {found:?}"
            );
        }
        // The asking connection runs the command. Found by its address: memcached's ids
        // are descriptors, which a connection closed meanwhile (the start-up probe, on a
        // loaded machine) hands on, so the newest need not be listed last.
        let own = format!("tcp:{}", asking.stream.local_addr().unwrap());
        let asking_entry = entries
            .iter()
            .find(|entry| entry[0] == ("addr".into(), own.clone()))
            .unwrap_or_else(|| panic!("[{kind:?}] {own} not listed: {entries:?}"));
        assert!(
            shape(asking_entry).contains("state=conn_parse_cmd"),
            "[{kind:?}] {asking_entry:?}"
        );
        found.sort();
        shapes.push((kind, found));
    }
    if let [(_, ours), (_, theirs)] = &shapes[..] {
        assert_eq!(ours, theirs);
    }
}

/// The stat names of `group` on `server`.
/// The stat names of `group`, less ferrocached's one extra line (`io_engine`, README).
fn names(server: &Server, group: &str) -> Vec<String> {
    let mut c = server.connect();
    c.stats(group)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name != "io_engine")
        .collect()
}

#[test]
fn stat_name_sets_match_memcached_under_option_sets() {
    for flags in [
        &[][..],
        &["-o", "no_lru_maintainer"],
        &["-o", "no_lru_crawler"],
        &["-o", "modern"],
        &["-o", "idle_timeout=30"],
        &["-o", "ssl_wbuf_size=8,ssl_min_version=3"],
        &["-R", "7", "-t", "2"],
    ] {
        let all = servers(flags);
        let [ours, theirs] = &all[..] else {
            continue;
        };
        for group in ["", "settings"] {
            assert_eq!(
                names(ours, group),
                names(theirs, group),
                "stats {group} under {flags:?}"
            );
        }
        let settings = |server: &Server| {
            let mut c = server.connect();
            c.stats("settings")
                .into_iter()
                .filter(|(name, _)| name.starts_with("ssl_") || name == "reqs_per_event")
                .collect::<Vec<_>>()
        };
        assert_eq!(settings(ours), settings(theirs), "under {flags:?}");
    }
}

#[test]
fn crawler_figures_follow_the_crawler_switch_and_count_starts() {
    for server in servers(&[]) {
        let mut c = server.connect();
        let starts = c.stat("lru_crawler_starts");
        c.roundtrip(b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
        c.send(b"lru_crawler metadump all\r\n");
        // Item lines end in a bare newline: the last line read ends with END.
        while !c.read_line().ends_with(b"END\r\n") {}
        assert!(
            c.stat("lru_crawler_starts") > starts,
            "{:?}: a metadump starts the crawler",
            server.kind
        );
        c.roundtrip(b"lru_crawler disable\r\n", b"OK\r\n");
        // memcached's crawler thread stops on its own time on a loaded machine: poll.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while c
            .stats("")
            .iter()
            .any(|(name, _)| name.starts_with("lru_crawler_"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}: a disabled crawler's figures are left out",
                server.kind
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        c.roundtrip(b"lru_crawler enable\r\n", b"OK\r\n");
        assert_eq!(c.stat("lru_crawler_running"), 0, "{:?}", server.kind);
    }
}

#[test]
fn tls_below_1_2_starts_with_a_warning_and_stats_match_memcached() {
    if external_target() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ferrocached-ops-tls-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !made {
        crate::support::skip("openssl cannot make a certificate");
        return;
    }
    for version in ["0", "1"] {
        let options = format!(
            "ssl_chain_cert={},ssl_key={},ssl_min_version={version},ssl_wbuf_size=8",
            cert.display(),
            key.display()
        );
        // memcached accepts the option and starts; so does ferrocached, saying what it
        // offers instead. Over TLS both print the same stat names and ssl_* settings.
        let mut seen = Vec::new();
        for kind in kinds() {
            let server = Logged::start(kind, &["-Z", "-o", &options]);
            let log = server.log();
            if kind == Kind::Ferrocached {
                assert!(log.contains("WARNING") && log.contains("TLS 1.2"), "{log}");
            }
            let Some(mut python) = crate::support::tool("python3") else {
                return;
            };
            let output = python
                .args(["-c", TLS_STATS, &server.port.to_string()])
                .output()
                .expect("python3");
            assert!(output.status.success(), "{output:?}");
            seen.push(String::from_utf8(output.stdout).unwrap());
        }
        if let [ours, theirs] = &seen[..] {
            assert_eq!(ours, theirs, "stats over TLS, ssl_min_version={version}");
            assert!(ours.contains("ssl_wbuf_size 8192"), "{ours}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `stats <group>` on a unix-socket stream; the (name, value) pairs.
fn unix_stats(stream: &mut std::os::unix::net::UnixStream, group: &str) -> Vec<(String, String)> {
    stream
        .write_all(format!("stats {group}\r\n").as_bytes())
        .unwrap();
    let mut reply = Vec::new();
    let mut buffer = [0u8; 4096];
    while !reply.ends_with(b"END\r\n") {
        let count = stream.read(&mut buffer).expect("stats reply");
        assert!(count > 0, "closed inside stats");
        reply.extend_from_slice(&buffer[..count]);
    }
    String::from_utf8(reply)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("STAT "))
        .map(|line| {
            let (name, value) = line.split_once(' ').unwrap_or((line, ""));
            (name.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn unix_socket_stats_and_conns_match_memcached() {
    use std::os::unix::net::UnixStream;
    let mut seen = Vec::new();
    for kind in kinds() {
        // Short: memcached cuts a listening unix socket's path at 26 bytes in `stats
        // conns` (README, "Known differences").
        let dir = std::path::PathBuf::from(format!("/tmp/fo-{}", free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let path_text = path.to_str().unwrap().to_string();
        let mut child = command_for(kind, free_port(), &["-s", &path_text])
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut waiting = loop {
            if let Ok(stream) = UnixStream::connect(&path) {
                break stream;
            }
            assert!(Instant::now() < deadline, "{kind:?} did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        waiting.write_all(b"set k 0 0 10\r\nab").unwrap();
        let mut asking = UnixStream::connect(&path).unwrap();
        asking
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let conns: Vec<(String, String)> = unix_stats(&mut asking, "conns")
            .into_iter()
            .map(|(name, value)| {
                let field = name.split_once(':').unwrap().1.to_string();
                // Paths and times differ between the two runs; the rest must not.
                let value = if field == "secs_since_last_cmd" {
                    String::new()
                } else {
                    value.replace(&path_text, "PATH")
                };
                (field, value)
            })
            .collect();
        let listener = ("addr".to_string(), "unix:PATH".to_string());
        assert_eq!(conns[0], listener, "[{kind:?}] {conns:?}");
        let names = |group: &str, stream: &mut UnixStream| -> Vec<String> {
            unix_stats(stream, group)
                .into_iter()
                .map(|(name, _)| name)
                .filter(|name| name != "io_engine")
                .collect()
        };
        let general = names("", &mut asking);
        let settings = names("settings", &mut asking);
        seen.push((kind, conns, general, settings));
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let [ours, theirs] = &seen[..] {
        assert_eq!(ours.1, theirs.1, "stats conns over a unix socket");
        assert_eq!(ours.2, theirs.2, "stats names under -s");
        assert_eq!(ours.3, theirs.3, "stats settings names under -s");
    }
}

/// Prints the names of `stats`, then the `ssl_*` lines of `stats settings`, read over
/// TLS from 127.0.0.1:<argv[1]>.
const TLS_STATS: &str = r#"
import socket, ssl, sys
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
stream = context.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
for group in ["", "settings"]:
    stream.sendall(("stats %s\r\n" % group).encode())
    reply = b""
    while not reply.endswith(b"END\r\n"):
        reply += stream.recv(65536)
    for line in reply.decode().split("\r\n"):
        fields = line.split(" ")
        if fields[0] != "STAT":
            continue
        if group == "":
            print(fields[1])
        elif fields[1].startswith("ssl_"):
            print(line)
"#;
