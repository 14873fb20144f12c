//! Expiry and flush_all on real time (memcached's clock ticks once a second, so these
//! wait a few seconds; all other tests run meanwhile).

use crate::support::servers;
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn relative_absolute_and_negative_exptimes() {
    let all = servers(&[]);
    let now = unix_now();
    let mut clients: Vec<_> = all.iter().map(|server| server.connect()).collect();
    for c in &mut clients {
        c.roundtrip(b"set rel 0 2 1\r\nr\r\n", b"STORED\r\n");
        c.roundtrip(
            format!("set abs 0 {} 1\r\na\r\n", now + 2).as_bytes(),
            b"STORED\r\n",
        );
        c.roundtrip(b"set forever 0 0 1\r\nf\r\n", b"STORED\r\n");
        c.roundtrip(b"set later 0 100 1\r\nl\r\n", b"STORED\r\n");
        c.roundtrip(b"set neg 0 -1 1\r\nn\r\n", b"STORED\r\n");
        c.roundtrip(b"get neg\r\n", b"END\r\n");
        // An absolute time in the past (but beyond 30 days) is already expired.
        c.roundtrip(b"set past 0 2592001 1\r\np\r\n", b"STORED\r\n");
        c.roundtrip(b"get past\r\n", b"END\r\n");
        c.roundtrip(
            b"get rel abs\r\n",
            b"VALUE rel 0 1\r\nr\r\nVALUE abs 0 1\r\na\r\nEND\r\n",
        );
        c.roundtrip(b"set tch 0 100 1\r\nt\r\n", b"STORED\r\n");
        c.roundtrip(b"touch tch 1\r\n", b"TOUCHED\r\n");
    }
    sleep(Duration::from_millis(4200));
    for c in &mut clients {
        c.roundtrip(
            b"get rel abs forever later tch\r\n",
            b"VALUE forever 0 1\r\nf\r\nVALUE later 0 1\r\nl\r\nEND\r\n",
        );
        assert!(
            c.stat("get_misses") >= 3,
            "[{}] expired gets are misses",
            c.label
        );
    }
}

#[test]
fn flush_all_now_and_with_a_delay() {
    let all = servers(&[]);
    let mut clients: Vec<_> = all.iter().map(|server| server.connect()).collect();
    for c in &mut clients {
        c.roundtrip(b"set f1 0 0 1\r\n1\r\nflush_all\r\n", b"STORED\r\nOK\r\n");
        c.roundtrip(b"get f1\r\n", b"END\r\n");
        // Stored right after the flush: visible.
        c.roundtrip(
            b"set f2 0 0 1\r\n2\r\nget f2\r\n",
            b"STORED\r\nVALUE f2 0 1\r\n2\r\nEND\r\n",
        );
        c.roundtrip(b"flush_all 2\r\n", b"OK\r\n");
        c.roundtrip(b"set f3 0 0 1\r\n3\r\n", b"STORED\r\n");
        c.roundtrip(
            b"get f2 f3\r\n",
            b"VALUE f2 0 1\r\n2\r\nVALUE f3 0 1\r\n3\r\nEND\r\n",
        );
    }
    sleep(Duration::from_millis(3200));
    for c in &mut clients {
        c.roundtrip(b"get f2 f3\r\n", b"END\r\n");
        c.roundtrip(
            b"set f4 0 0 1\r\n4\r\nget f4\r\n",
            b"STORED\r\nVALUE f4 0 1\r\n4\r\nEND\r\n",
        );
        assert!(c.stat("cmd_flush") >= 2);
    }
}

#[test]
fn flush_all_can_be_disabled() {
    for server in servers(&["-F"]) {
        let mut c = server.connect();
        c.roundtrip(b"set x 0 0 1\r\nx\r\n", b"STORED\r\n");
        c.roundtrip(b"flush_all\r\n", b"CLIENT_ERROR flush_all not allowed\r\n");
        c.roundtrip(b"get x\r\n", b"VALUE x 0 1\r\nx\r\nEND\r\n");
        assert_eq!(c.stat("cmd_flush"), 1, "[{}] still counted", c.label);
    }
}

#[test]
fn a_delayed_flush_takes_items_read_or_touched_before_it_is_due() {
    // memcached keeps one time per item (the last access) and flushes what was
    // accessed at or before the flush's due time: reads, touches and gats in between
    // save nothing.
    let all = servers(&[]);
    let mut clients: Vec<_> = all.iter().map(|server| server.connect()).collect();
    for c in &mut clients {
        c.roundtrip(
            b"set r 0 0 1\r\n1\r\nset t 0 0 1\r\n2\r\nset g 0 0 1\r\n3\r\nset a 0 0 1\r\n4\r\n",
            b"STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\n",
        );
        c.roundtrip(b"flush_all 2\r\n", b"OK\r\n");
        c.roundtrip(b"get r\r\n", b"VALUE r 0 1\r\n1\r\nEND\r\n");
        c.roundtrip(b"touch t 100\r\n", b"TOUCHED\r\n");
        c.roundtrip(b"gat 100 g\r\n", b"VALUE g 0 1\r\n3\r\nEND\r\n");
        c.roundtrip(b"add a 0 0 1\r\n5\r\n", b"NOT_STORED\r\n");
    }
    sleep(Duration::from_millis(3200));
    for c in &mut clients {
        c.roundtrip(b"get r t g a\r\n", b"END\r\n");
    }
}

/// The `l` (seconds since the last access) a meta get reports for `key`.
fn last_access(c: &mut crate::support::Client, key: &str) -> u64 {
    c.send(format!("mg {key} l\r\n").as_bytes());
    let line = String::from_utf8(c.read_line()).unwrap();
    let flag = line
        .split_whitespace()
        .find_map(|token| token.strip_prefix('l'))
        .unwrap_or_else(|| panic!("[{}] no l in {line:?}", c.label));
    flag.parse().unwrap()
}

#[test]
fn a_first_read_leaves_the_access_time_and_a_colliding_add_dates_it() {
    // memcached's first read of an item (get, gat, touch) only marks it fetched; its
    // time moves at most once a minute on reads, but at once for an add that collides.
    let all = servers(&[]);
    let mut clients: Vec<_> = all.iter().map(|server| server.connect()).collect();
    for c in &mut clients {
        c.roundtrip(
            b"set r 0 0 1\r\n1\r\nset g 0 0 1\r\n2\r\nset a 0 0 1\r\n3\r\n",
            b"STORED\r\nSTORED\r\nSTORED\r\n",
        );
    }
    sleep(Duration::from_millis(2200));
    for c in &mut clients {
        c.roundtrip(b"get r\r\n", b"VALUE r 0 1\r\n1\r\nEND\r\n");
        let after_reads = last_access(c, "r");
        assert!(
            after_reads >= 2,
            "[{}] la {after_reads} after a read",
            c.label
        );
        c.roundtrip(b"gat 100 g\r\n", b"VALUE g 0 1\r\n2\r\nEND\r\n");
        let after_gat = last_access(c, "g");
        assert!(after_gat >= 2, "[{}] la {after_gat} after a gat", c.label);
        c.roundtrip(b"add a 0 0 1\r\n4\r\n", b"NOT_STORED\r\n");
        let after_add = last_access(c, "a");
        assert!(after_add <= 1, "[{}] la {after_add} after an add", c.label);
    }
}
