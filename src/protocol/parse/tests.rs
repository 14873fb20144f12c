use super::*;

fn parse_one(input: &[u8]) -> Frame<'_> {
    parse(input, &Limits::default())
}

fn request_of(input: &[u8]) -> (Request<'_>, usize) {
    match parse_one(input) {
        Frame::Request {
            request, consumed, ..
        } => (request, consumed),
        other => panic!("expected a request, got {other:?}"),
    }
}

#[test]
fn get_lines_borrow_their_keys() {
    let (request, consumed) = request_of(b"get a bb  ccc\r\nrest");
    assert_eq!(consumed, 15);
    let Request::Get {
        keys: GetKeys::List(keys),
        with_cas,
        ..
    } = request
    else {
        panic!()
    };
    assert!(!with_cas);
    assert_eq!(keys.iter().collect::<Vec<_>>(), [&b"a"[..], b"bb", b"ccc"]);
    let (request, _) = request_of(b"gets x\n");
    assert!(matches!(request, Request::Get { with_cas: true, .. }));
}

#[test]
fn storage_waits_for_its_data_block() {
    assert_eq!(
        parse_one(b"set k 1 2 5\r\nabc"),
        Frame::Incomplete { needed: 13 + 7 }
    );
    let (request, consumed) = request_of(b"set k 1 2 5\r\nhello\r\nget k\r\n");
    assert_eq!(consumed, 20);
    assert_eq!(
        request,
        Request::Store {
            mode: StoreMode::Set,
            compare_cas: None,
            key: Cow::Borrowed(b"k"),
            flags: 1,
            exptime: crate::protocol::Exptime::signed(2),
            data: b"hello",
            invalidate: false,
            reply: ReplyStyle::Text { noreply: false }
        }
    );
}

#[test]
fn a_value_is_exactly_as_long_as_announced() {
    let (request, consumed) = request_of(b"set k 0 0 3\r\nabcde\r\n");
    assert_eq!(
        request,
        Request::Invalid {
            error: ProtocolError::BadDataChunk,
            noreply: false
        }
    );
    assert_eq!(
        consumed,
        13 + 5,
        "the announced length plus two bytes are consumed"
    );
}

#[test]
fn too_large_values_are_swallowed() {
    match parse_one(b"set k 0 0 2000000 noreply\r\n") {
        Frame::Request {
            request:
                Request::StoreTooLarge {
                    mode,
                    compare_cas,
                    key,
                    reply: ReplyStyle::Text { noreply },
                },
            consumed,
            swallow,
        } => {
            assert_eq!(
                (mode, compare_cas, &*key, noreply),
                (StoreMode::Set, None, &b"k"[..], true)
            );
            assert_eq!(consumed, 27);
            assert_eq!(swallow, 2_000_002);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn token_counts_and_bad_tokens_give_memcacheds_errors() {
    let error = |input: &[u8]| match request_of(input).0 {
        Request::Invalid { error, .. } => error,
        other => panic!("{other:?}"),
    };
    assert_eq!(error(b"\r\n"), ProtocolError::UnknownCommand);
    assert_eq!(error(b"set k 0 0\r\n"), ProtocolError::UnknownCommand);
    assert_eq!(error(b"set k x 0 1\r\n"), ProtocolError::BadFormat);
    assert_eq!(error(b"set k 0 0 -1\r\n"), ProtocolError::BadFormat);
    assert_eq!(error(b"incr k x\r\n"), ProtocolError::InvalidDelta);
    assert_eq!(error(b"touch k x\r\n"), ProtocolError::InvalidExptime);
    assert_eq!(error(b"delete k 5\r\n"), ProtocolError::DeleteUsage);
    let long_key = [b"get a ".as_slice(), &[b'k'; 251], b" b\r\n"].concat();
    assert_eq!(
        error(&long_key),
        ProtocolError::BadFormat,
        "one check per line"
    );
    let gat_long_key = [b"gat 0 ".as_slice(), &[b'k'; 251], b"\r\n"].concat();
    assert_eq!(error(&gat_long_key), ProtocolError::BadFormat);
    let long_set = [b"set ".as_slice(), &[b'k'; 251], b" 0 0 1\r\n"].concat();
    assert_eq!(error(&long_set), ProtocolError::BadFormat);
}

#[test]
fn noreply_is_only_the_last_token() {
    let (request, _) = request_of(b"delete k noreply\r\n");
    assert_eq!(
        request,
        Request::Delete {
            key: Cow::Borrowed(b"k"),
            compare_cas: None,
            invalidate: false,
            new_ttl: None,
            reply: ReplyStyle::Text { noreply: true }
        }
    );
    let (request, _) = request_of(b"set k 0 0 1 2\r\nx\r\n");
    assert!(matches!(
        request,
        Request::Store {
            reply: ReplyStyle::Text { noreply: false },
            ..
        }
    ));
}

#[test]
fn long_lines_close_unless_they_are_multigets() {
    let junk = vec![b'x'; 3000];
    assert_eq!(parse_one(&junk), Frame::Close);
    let mut get = b"get ".to_vec();
    get.extend(std::iter::repeat_n(b'k', 3000));
    assert!(matches!(parse_one(&get), Frame::Incomplete { .. }));
    assert_eq!(parse_one(b"GET / HTTP/1.1\r\n"), Frame::Close);
}

#[test]
fn parsed_keys_never_exceed_250_bytes() {
    // Any storage line that parses to a request carries a key of at most 250 bytes, and
    // every key up to 250 bytes does parse (so the check cannot pass on nothing).
    let mut parsed = Vec::new();
    for length in [1usize, 249, 250, 251, 300] {
        let line = [b"set ".as_slice(), &vec![b'k'; length], b" 0 0 1\r\nx\r\n"].concat();
        if let (Request::Store { key, .. }, _) = request_of(&line) {
            assert!(key.len() <= KEY_MAX_LENGTH);
            parsed.push(key.len());
        }
    }
    assert_eq!(parsed, [1, 249, 250]);
}

#[test]
fn binary_stat_keys_name_the_same_groups_as_text_stats_lines() {
    use super::stats_group;
    assert_eq!(stats_group(b""), StatsGroup::General);
    assert_eq!(stats_group(b"settings"), StatsGroup::Settings);
    assert_eq!(
        stats_group(b"cachedump 3 10"),
        StatsGroup::CacheDump {
            class: 3,
            limit: 10
        }
    );
    assert_eq!(
        stats_group(b"cachedump 3"),
        StatsGroup::Invalid(ProtocolError::StatsBadCommandLine)
    );
    assert_eq!(
        stats_group(b"detail dump"),
        StatsGroup::Detail(Some(b"dump"))
    );
    assert_eq!(stats_group(b"bogus"), StatsGroup::Unknown);
}

/// The keys a frame's get names (a one-key `GetKeys::One` and a one-key list alike),
/// with the rest of the frame, for comparing the plain and the general path.
fn get_keys_of(frame: Frame<'_>) -> Result<(Vec<Vec<u8>>, bool, usize), String> {
    match frame {
        Frame::Request {
            request:
                Request::Get {
                    keys,
                    with_cas,
                    touch: None,
                    reply: ReplyStyle::Text { noreply: false },
                    ..
                },
            consumed,
            swallow: 0,
        } => {
            let keys = match keys {
                GetKeys::List(keys) => keys.iter().map(<[u8]>::to_vec).collect(),
                GetKeys::One(key) => vec![key.to_vec()],
            };
            Ok((keys, with_cas, consumed))
        }
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn the_single_key_get_shortcut_parses_as_the_general_path_does() {
    let longest = format!("get {}\r\n", "k".repeat(KEY_MAX_LENGTH));
    let long = format!("get {}\r\n", "k".repeat(KEY_MAX_LENGTH + 1));
    let limits = Limits::default();
    let mut shortcut = 0;
    for input in [
        "get k\r\n",
        "get k\n",
        "get k\r\nget j\r\n",
        "get k\n\r\n",
        "get k\r\r\n",
        "get k\rx\r\n",
        "get k\tj\r\n",
        "get k\x01\r\n",
        "get kéy\r\n",
        "get  k\r\n",
        "get k \r\n",
        "get a b\r\n",
        "get \r\n",
        "get\r\n",
        "get k",
        "get k\r",
        "gets k\r\n",
        "GET k\r\n",
        longest.as_str(),
        long.as_str(),
    ] {
        let buffer = input.as_bytes();
        if single_key_get(buffer).is_some() {
            shortcut += 1;
        }
        let plain = parse(buffer, &limits);
        let general = parse_general(buffer, &limits);
        assert_eq!(get_keys_of(plain), get_keys_of(general), "{input:?}");
    }
    assert_eq!(shortcut, 6, "the shortcut took its lines");
}

#[test]
fn the_word_scan_finds_the_first_space_or_control_byte() {
    let naive = |bytes: &[u8]| bytes.iter().position(|&byte| byte <= b' ');
    let mut cases: Vec<Vec<u8>> = vec![Vec::new(), b"k".to_vec(), "kéy:ü".as_bytes().to_vec()];
    for length in 0..20 {
        for stop in [b' ', b'\r', b'\n', b'\t', 0, 0x20, 0x21, 0x7f, 0x80, 0xff] {
            for at in 0..=length {
                let mut bytes = vec![b'k'; length];
                bytes.insert(at, stop);
                // A byte that borrows (0x00) before it must not hide it.
                if at > 0 {
                    bytes[at - 1] = 0x21;
                }
                cases.push(bytes);
            }
        }
    }
    for bytes in cases {
        assert_eq!(first_space_or_control(&bytes), naive(&bytes), "{bytes:?}");
    }
}
