//! Operator verbs on slab pages and the LRU crawler (`slabs reassign|automove`,
//! `lru_crawler ...`) and the per-class counters of `stats slabs`/`stats items`, against
//! memcached 1.6.18's replies.

use crate::support::{Client, Kind, servers, show};
use std::time::{Duration, Instant};

/// memcached's answer to a crawl or metadump while a crawl is still running.
const BUSY: &[u8] = b"BUSY currently processing crawler request\r\n";

/// memcached's answer to a crawl while its crawler thread is stopping or starting
/// (seen in CI right after `lru_crawler disable` had answered OK).
const CRAWLER_SETTLING: &[u8] = b"ERROR an unknown error happened\r\n";

/// Sends each request and checks each reply, in order. A crawl may still be running
/// from the previous request (memcached's crawler thread, ferrocached's next crawler
/// tick): a `BUSY` answer is asked again a moment later, as is memcached's answer while
/// its crawler thread settles.
fn replies(c: &mut Client, table: &[(&str, &str)]) {
    for (request, expected) in table {
        let expected = format!("{expected}\r\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            c.send(format!("{request}\r\n").as_bytes());
            let mut got = c.read_line();
            let settling = got == CRAWLER_SETTLING && c.label == format!("{:?}", Kind::Memcached);
            if (got == BUSY || settling)
                && expected.as_bytes() != got.as_slice()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if expected.matches("\r\n").count() > 1 {
                got.extend(c.read_exact_len(expected.len().saturating_sub(got.len())));
            }
            assert_eq!(
                show(&got),
                show(expected.as_bytes()),
                "[{}] {request}",
                c.label
            );
            break;
        }
    }
}

/// One per-class figure (`1:total_pages` of `stats slabs`, `items:1:number` of
/// `stats items`); 0 when the class is not listed.
fn class_stat(c: &mut Client, group: &str, name: &str) -> u64 {
    c.stats(group)
        .into_iter()
        .find(|(stat, _)| stat == name)
        .map_or(0, |(_, value)| value.parse().expect("numeric stat"))
}

/// Polls `condition` until it holds (memcached moves pages and crawls in background
/// threads) or ten seconds pass.
fn eventually(c: &mut Client, what: &str, mut condition: impl FnMut(&mut Client) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition(c) {
        assert!(Instant::now() < deadline, "[{}] never: {what}", c.label);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stores `count` one-byte items (class 1 on both servers) in one pipelined write.
fn fill_class_one(c: &mut Client, count: usize) {
    let mut requests = Vec::new();
    for index in 0..count {
        requests.extend_from_slice(format!("set k{index} 0 0 1 noreply\r\nx\r\n").as_bytes());
    }
    c.send(&requests);
    c.expect_quiet();
}

#[test]
fn slabs_replies_match_memcached() {
    for server in servers(&["-m", "64"]) {
        let mut c = server.connect();
        replies(
            &mut c,
            &[
                (
                    "slabs reassign 1 2",
                    "NOSPARE source class has no spare pages",
                ),
                (
                    "slabs reassign 0 2",
                    "NOSPARE source class has no spare pages",
                ),
                (
                    "slabs reassign 1 0",
                    "NOSPARE source class has no spare pages",
                ),
                (
                    "slabs reassign -1 2",
                    "BADCLASS invalid src or dst class id",
                ),
                (
                    "slabs reassign 1 100",
                    "BADCLASS invalid src or dst class id",
                ),
                (
                    "slabs reassign 1 -2",
                    "BADCLASS invalid src or dst class id",
                ),
                (
                    "slabs reassign 1 2147483648",
                    "BADCLASS invalid src or dst class id",
                ),
                ("slabs reassign 1 1", "SAME src and dst class are identical"),
                ("slabs reassign x 2", "CLIENT_ERROR bad command line format"),
                (
                    "slabs reassign 1 2x",
                    "CLIENT_ERROR bad command line format",
                ),
                ("slabs reassign 1", "ERROR"),
                ("slabs reassign 1 2 noreply", "ERROR"),
                ("slabs", "ERROR"),
                ("slabs foo", "ERROR"),
                ("slabs automove", "ERROR"),
                ("slabs automove 0", "OK"),
                ("slabs automove 2", "OK"),
                ("slabs automove 1 2", "OK"),
                ("slabs automove 3", "ERROR"),
                ("slabs automove -1", "CLIENT_ERROR bad command line format"),
                (
                    "slabs automove junk",
                    "CLIENT_ERROR bad command line format",
                ),
                ("slabs automove 1x", "CLIENT_ERROR bad command line format"),
            ],
        );
        c.send(b"slabs automove 0 noreply\r\n");
        c.expect_quiet();
        let settings = c.stats("settings");
        assert!(
            settings.contains(&("slab_automove".into(), "0".into())),
            "[{:?}] {settings:?}",
            server.kind
        );
    }
}

#[test]
fn lru_crawler_replies_match_memcached() {
    for server in servers(&[]) {
        let mut c = server.connect();
        replies(
            &mut c,
            &[
                ("lru_crawler", "ERROR"),
                ("lru_crawler foo", "ERROR"),
                (
                    "lru_crawler enable",
                    "ERROR failed to start lru crawler thread",
                ),
                ("lru_crawler enable x", "ERROR"),
                ("lru_crawler sleep 1000000", "OK"),
                (
                    "lru_crawler sleep 1000001",
                    "CLIENT_ERROR sleep must be one second or less",
                ),
                (
                    "lru_crawler sleep -1",
                    "CLIENT_ERROR bad command line format",
                ),
                ("lru_crawler sleep", "ERROR"),
                ("lru_crawler sleep 20", "OK"),
                (
                    "lru_crawler tocrawl x",
                    "CLIENT_ERROR bad command line format",
                ),
                ("lru_crawler tocrawl 9", "OK"),
                ("lru_crawler crawl 1", "OK"),
                ("lru_crawler crawl 1,2", "OK"),
                ("lru_crawler crawl 1,,2", "OK"),
                ("lru_crawler crawl all", "OK"),
                ("lru_crawler crawl 63", "OK"),
                ("lru_crawler crawl 0", "BADCLASS invalid class id"),
                ("lru_crawler crawl 64", "BADCLASS invalid class id"),
                ("lru_crawler crawl 1,x", "BADCLASS invalid class id"),
                ("lru_crawler crawl hashx", "BADCLASS invalid class id"),
                ("lru_crawler crawl hash", "ERROR an unknown error happened"),
                ("lru_crawler crawl ,", "NOTSTARTED no items to crawl"),
                ("lru_crawler crawl", "ERROR"),
                ("lru_crawler crawl 1 noreply", "ERROR"),
                ("lru_crawler metadump 1", "END"),
                ("lru_crawler metadump all", "END"),
                ("lru_crawler metadump 0", "BADCLASS invalid class id"),
                ("lru_crawler metadump x", "BADCLASS invalid class id"),
                ("lru_crawler metadump ,", "NOTSTARTED no items to crawl"),
                ("lru_crawler metadump", "ERROR"),
                ("lru_crawler metadump 1 2", "ERROR"),
                ("lru_crawler metadump hash x", "ERROR"),
            ],
        );
        // memcached's crawler answers a metadump from its own thread; on a loaded machine
        // a late `END` may still be on its way, so the rest is asked on a fresh connection.
        let mut c = server.connect();
        let settings = c.stats("settings");
        for (name, value) in [
            ("lru_crawler", "yes"),
            ("lru_crawler_sleep", "20"),
            ("lru_crawler_tocrawl", "9"),
        ] {
            assert!(
                settings.contains(&(name.into(), value.into())),
                "[{:?}] {name}: {settings:?}",
                server.kind
            );
        }
        // memcached's `disable` waits for its crawler thread's lock: in CI on a loaded
        // machine it once answered after more than the usual 10 s, and once a short
        // stray line came first (its crawler writes metadump output from its own
        // thread). memcached may put such lines before its OK; ferrocached may not.
        c.set_reply_timeout(Duration::from_secs(60));
        c.send(b"lru_crawler disable\r\n");
        let mut stray = Vec::new();
        loop {
            let line = c.read_line();
            if line == b"OK\r\n" {
                break;
            }
            assert!(
                server.kind == Kind::Memcached && stray.len() < 100,
                "[{:?}] lru_crawler disable: {} after {stray:?}",
                server.kind,
                show(&line)
            );
            stray.push(show(&line));
        }
        if !stray.is_empty() {
            eprintln!("memcached put {stray:?} before lru_crawler disable's OK");
        }
        // memcached hangs the connection on a second `disable`; the next ones are asked
        // on a fresh connection.
        let mut c = server.connect();
        replies(
            &mut c,
            &[
                ("lru_crawler crawl 1", "CLIENT_ERROR lru crawler disabled"),
                (
                    "lru_crawler metadump all",
                    "CLIENT_ERROR lru crawler disabled",
                ),
                ("lru_crawler crawl 0", "CLIENT_ERROR lru crawler disabled"),
                ("lru_crawler sleep 5", "OK"),
            ],
        );
        let settings = c.stats("settings");
        assert!(settings.contains(&("lru_crawler".into(), "no".into())));
        replies(
            &mut c,
            &[("lru_crawler enable", "OK"), ("lru_crawler crawl 1", "OK")],
        );
    }
}

#[test]
fn no_lru_crawler_starts_with_the_crawler_off() {
    for server in servers(&["-o", "no_lru_crawler"]) {
        let mut c = server.connect();
        let settings = c.stats("settings");
        assert!(
            settings.contains(&("lru_crawler".into(), "no".into())),
            "[{:?}] {settings:?}",
            server.kind
        );
        replies(
            &mut c,
            &[
                ("lru_crawler crawl 1", "CLIENT_ERROR lru crawler disabled"),
                (
                    "lru_crawler metadump all",
                    "CLIENT_ERROR lru crawler disabled",
                ),
                ("lru_crawler enable", "OK"),
                ("lru_crawler metadump 1", "END"),
            ],
        );
    }
}

#[test]
fn a_reassigned_page_moves_on_both_servers() {
    for server in servers(&["-m", "64"]) {
        let mut c = server.connect();
        fill_class_one(&mut c, 25_000);
        let before = class_stat(&mut c, "slabs", "1:total_pages");
        assert!(
            before >= 2,
            "[{:?}] class 1 has {before} pages",
            server.kind
        );
        assert_eq!(class_stat(&mut c, "slabs", "5:total_pages"), 0);
        replies(&mut c, &[("slabs reassign 1 5", "OK")]);
        eventually(&mut c, "class 5 got the page", |c| {
            class_stat(c, "slabs", "5:total_pages") == 1
                && class_stat(c, "slabs", "1:total_pages") == before - 1
        });
        assert_eq!(c.stat("slabs_moved"), 1, "[{:?}]", server.kind);
        // The page's items moved to free chunks of class 1 or were dropped, and neither
        // counts as an eviction.
        let dropped = c.stat("slab_reassign_evictions_nomem");
        assert!(dropped > 0, "[{:?}]", server.kind);
        assert_eq!(
            c.stat("curr_items") + dropped,
            25_000,
            "[{:?}]",
            server.kind
        );
        assert_eq!(c.stat("evictions"), 0, "[{:?}]", server.kind);
        // The lone page of class 5 is not spare.
        replies(
            &mut c,
            &[(
                "slabs reassign 5 1",
                "NOSPARE source class has no spare pages",
            )],
        );
    }
}

/// The class (`cls=`) a metadump line gives `key`.
fn class_of(dump: &str, key: &str) -> String {
    let line = dump
        .lines()
        .find(|line| line.starts_with(&format!("key={key} ")))
        .unwrap_or_else(|| panic!("{key} not in {dump}"));
    line.split(' ')
        .find_map(|field| field.strip_prefix("cls="))
        .expect("cls field")
        .to_string()
}

/// Reads a metadump reply up to its `END` (item lines end in a bare `\n`).
fn metadump(c: &mut Client, classes: &str) -> String {
    c.send(format!("lru_crawler metadump {classes}\r\n").as_bytes());
    let mut dump = String::new();
    while !dump.ends_with("END\r\n") {
        dump.push_str(&String::from_utf8(c.read_line()).expect("utf-8 metadump"));
    }
    dump.truncate(dump.len() - "END\r\n".len());
    dump
}

#[test]
fn metadump_lists_only_the_named_classes() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"set small 0 0 1\r\nx\r\n", b"STORED\r\n");
        let big = "v".repeat(500);
        c.roundtrip(
            format!("set big 0 0 500\r\n{big}\r\n").as_bytes(),
            b"STORED\r\n",
        );
        let all = metadump(&mut c, "all");
        let (small_class, big_class) = (class_of(&all, "small"), class_of(&all, "big"));
        assert_ne!(small_class, big_class);
        let only_small = metadump(&mut c, &small_class);
        assert!(only_small.contains("key=small "), "{only_small}");
        assert!(!only_small.contains("key=big "), "{only_small}");
        let only_big = metadump(&mut c, &big_class);
        assert!(only_big.contains("key=big ") && !only_big.contains("key=small "));
        let both = metadump(&mut c, &format!("{small_class},{big_class}"));
        assert_eq!(both.lines().count(), 2, "{both}");
        let hash = metadump(&mut c, "hash");
        assert_eq!(hash.lines().count(), 2, "{hash}");
    }
}

#[test]
fn crawl_reclaims_expired_items() {
    for server in servers(&[]) {
        let mut c = server.connect();
        for index in 0..5 {
            c.roundtrip(
                format!("set gone{index} 0 1 1\r\nx\r\n").as_bytes(),
                b"STORED\r\n",
            );
        }
        std::thread::sleep(Duration::from_millis(2100));
        replies(&mut c, &[("lru_crawler crawl 1", "OK")]);
        // memcached's LRU maintainer may reclaim them before its crawler does
        // (`reclaimed` rather than `crawler_reclaimed`); either way nobody read them.
        eventually(&mut c, "the expired items were reclaimed", |c| {
            c.stat("curr_items") == 0
        });
        let reclaimed = c.stat("reclaimed") + c.stat("crawler_reclaimed");
        assert_eq!(reclaimed, 5, "[{:?}]", server.kind);
        assert_eq!(c.stat("expired_unfetched"), 5, "[{:?}]", server.kind);
    }
}

#[test]
fn per_class_counters_match_memcached() {
    for server in servers(&[]) {
        let mut c = server.connect();
        replies(
            &mut c,
            &[
                ("set a 0 0 1\r\nx", "STORED"),
                ("set b 0 0 1\r\nx", "STORED"),
                ("add a 0 0 1\r\nx", "NOT_STORED"),
                ("get a", "VALUE a 0 1\r\nx\r\nEND"),
                ("get nothing", "END"),
                ("cas a 0 0 1 999999\r\ny", "EXISTS"),
                ("touch a 100", "TOUCHED"),
                ("touch nothing 100", "NOT_FOUND"),
                ("delete b", "DELETED"),
                ("delete b", "NOT_FOUND"),
                ("set n 0 0 1\r\n5", "STORED"),
                ("incr n 2", "7"),
                ("decr n 1", "6"),
                ("incr nothing 1", "NOT_FOUND"),
            ],
        );
        c.send(b"gets n\r\n");
        let header = String::from_utf8(c.read_line()).expect("utf-8");
        let cas = header
            .trim_end()
            .rsplit(' ')
            .next()
            .expect("cas")
            .to_string();
        c.expect(b"6\r\nEND\r\n");
        replies(
            &mut c,
            &[
                (&format!("cas n 0 0 1 {cas}\r\n1"), "STORED"),
                ("get a n", "VALUE a 0 1\r\nx\r\nVALUE n 0 1\r\n1\r\nEND"),
            ],
        );
        let expected = [
            ("get_hits", 4),
            ("cmd_set", 6),
            ("delete_hits", 1),
            ("incr_hits", 1),
            ("decr_hits", 1),
            ("cas_hits", 1),
            ("cas_badval", 1),
            ("touch_hits", 1),
        ];
        for (name, value) in expected {
            assert_eq!(
                class_stat(&mut c, "slabs", &format!("1:{name}")),
                value,
                "[{:?}] 1:{name}",
                server.kind
            );
            assert_eq!(c.stat(name), value, "[{:?}] global {name}", server.kind);
        }
        c.roundtrip(b"stats reset\r\n", b"RESET\r\n");
        assert_eq!(class_stat(&mut c, "slabs", "1:get_hits"), 0);
        assert_eq!(class_stat(&mut c, "slabs", "1:cmd_set"), 0);
    }
}

#[test]
fn evictions_are_counted_per_class() {
    for server in servers(&["-m", "8"]) {
        let mut c = server.connect();
        let value = "v".repeat(1000);
        let mut requests = Vec::new();
        for index in 0..20_000 {
            requests.extend_from_slice(
                format!("set e{index} 0 1000 1000 noreply\r\n{value}\r\n").as_bytes(),
            );
        }
        c.send(&requests);
        c.expect_quiet();
        let items = c.stats("items");
        let sum = |suffix: &str| -> u64 {
            items
                .iter()
                .filter(|(name, _)| name.ends_with(suffix))
                .map(|(_, value)| value.parse::<u64>().expect("numeric"))
                .sum()
        };
        let evicted = sum(":evicted");
        assert!(evicted > 0, "[{:?}] nothing evicted", server.kind);
        assert_eq!(sum(":evicted_nonzero"), evicted, "[{:?}]", server.kind);
        assert_eq!(sum(":evicted_unfetched"), evicted, "[{:?}]", server.kind);
        assert_eq!(c.stat("evictions"), evicted, "[{:?}]", server.kind);
    }
}
