use super::*;

#[test]
fn arguments_parse_as_memcached_reads_them() {
    let kinds = |line: &str| Kinds::parse(line.split_whitespace().map(str::as_bytes));
    assert_eq!(kinds(""), Some(Kinds::FETCHERS));
    assert_eq!(
        kinds("mutations evictions"),
        Some(Kinds(Kinds::MUTATIONS.0 | Kinds::EVICTIONS.0))
    );
    assert_eq!(kinds("fetchers fetchers"), Some(Kinds::FETCHERS));
    assert_eq!(kinds("proxyuser"), Some(Kinds::SILENT));
    // 1.6.18 knows no "deletions"; case matters; one bad argument spoils the list.
    assert_eq!(kinds("deletions"), None);
    assert_eq!(kinds("FETCHERS"), None);
    assert_eq!(kinds("fetchers junk"), None);
    assert_eq!(kinds("fetchers noreply"), None);
}

#[test]
fn keys_are_uri_encoded() {
    let encoded = |key: &[u8]| UriEncoded(key).to_string();
    assert_eq!(encoded(b"foo-1._~Z"), "foo-1._~Z");
    assert_eq!(encoded(b"k%20,x"), "k%2520%2Cx");
    assert_eq!(encoded(b"k\x01\xff"), "k%01%FF");
}

#[test]
fn nothing_is_built_for_a_kind_nobody_watches() {
    // No test attaches an evictions watcher, so the event must never be built.
    log(Kinds::EVICTIONS, || -> &str {
        panic!("an event was built with no watcher attached")
    });
    assert!(!wanted(Kinds::EVICTIONS));
}

fn watcher(capacity: usize) -> Watcher {
    Watcher {
        kinds: Kinds::FETCHERS,
        capacity,
        pending: Mutex::new(Pending::default()),
        wake: Notify::new(),
    }
}

#[test]
fn a_full_buffer_counts_skipped_lines_and_reports_them_before_the_next() {
    let watcher = watcher(SKIP_RESERVE + 20);
    watcher.offer(b"0123456789\n");
    watcher.offer(b"0123456789\n");
    watcher.offer(b"0123456789\n");
    assert!(watcher.pending().bytes.len() <= watcher.capacity);
    assert_eq!(watcher.take(Vec::new()), b"0123456789\n");
    watcher.offer(b"abc\n");
    assert_eq!(watcher.take(Vec::new()), b"skipped=2\nabc\n");
}

#[test]
fn the_buffer_never_exceeds_its_capacity() {
    let watcher = watcher(1024);
    for _ in 0..1000 {
        watcher.offer(b"ts=1.2 gid=3 type=item_get key=foo status=not_found\n");
        assert!(watcher.pending().bytes.len() <= 1024);
    }
    assert!(watcher.pending().skipped > 0);
}

#[test]
fn attached_watchers_receive_their_kinds_only() {
    let attached = Watching::attach(Kinds::MUTATIONS, 4096).expect("room");
    assert!(wanted(Kinds::MUTATIONS));
    log(Kinds::MUTATIONS, || ItemStore {
        key: b"watch-unit-key",
        status: "stored",
        command: "set",
        ttl: 0,
        class: 1,
        size: 3,
    });
    log(Kinds::CONNEVENTS, || "type=conn_new");
    let lines = String::from_utf8(attached.0.take(Vec::new())).unwrap();
    let line = lines
        .lines()
        .find(|line| line.contains("key=watch-unit-key"))
        .unwrap();
    let (ts, rest) = line.split_once(' ').unwrap();
    assert!(ts.starts_with("ts=") && ts.contains('.'));
    let (gid, rest) = rest.split_once(' ').unwrap();
    assert!(gid.starts_with("gid="));
    assert!(
        rest.starts_with(
            "type=item_store key=watch-unit-key status=stored cmd=set ttl=0 clsid=1 cfd="
        ),
        "{rest}"
    );
    assert!(rest.ends_with(" size=3"));
    assert!(!lines.contains("conn_new"));
    drop(attached);
    assert!(!wanted(Kinds::MUTATIONS));
}
