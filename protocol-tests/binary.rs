//! The binary protocol, byte for byte against memcached (CAS values aside).

use crate::support::{Client, servers};

pub fn request(
    opcode: u8,
    key: &[u8],
    extras: &[u8],
    value: &[u8],
    opaque: u32,
    cas: u64,
) -> Vec<u8> {
    let mut bytes = vec![0x80, opcode];
    bytes.extend_from_slice(&(key.len() as u16).to_be_bytes());
    bytes.push(extras.len() as u8);
    bytes.extend_from_slice(&[0, 0, 0]);
    bytes.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    bytes.extend_from_slice(&opaque.to_be_bytes());
    bytes.extend_from_slice(&cas.to_be_bytes());
    bytes.extend_from_slice(extras);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(value);
    bytes
}

/// (opcode, status, opaque, cas, extras, key, value) of one response.
pub type Response = (u8, u16, u32, u64, Vec<u8>, Vec<u8>, Vec<u8>);

pub fn response(c: &mut Client) -> Response {
    let header = c.read_exact_len(24);
    assert_eq!(header[0], 0x81, "[{}] response magic", c.label);
    let key_len = u16::from_be_bytes([header[2], header[3]]) as usize;
    let extras_len = header[4] as usize;
    let status = u16::from_be_bytes([header[6], header[7]]);
    let body_len = u32::from_be_bytes(header[8..12].try_into().unwrap()) as usize;
    let opaque = u32::from_be_bytes(header[12..16].try_into().unwrap());
    let cas = u64::from_be_bytes(header[16..24].try_into().unwrap());
    let body = c.read_exact_len(body_len);
    (
        header[1],
        status,
        opaque,
        cas,
        body[..extras_len].to_vec(),
        body[extras_len..extras_len + key_len].to_vec(),
        body[extras_len + key_len..].to_vec(),
    )
}

fn set_extras(flags: u32, exptime: u32) -> Vec<u8> {
    [flags.to_be_bytes(), exptime.to_be_bytes()].concat()
}

#[test]
fn binary_get_set_and_quiet_variants() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.send(&request(0x01, b"bk", &set_extras(7, 0), b"value", 1, 0));
        let (op, status, opaque, cas, ..) = response(&mut c);
        assert_eq!((op, status, opaque), (0x01, 0, 1));
        assert_ne!(cas, 0);
        c.send(&request(0x00, b"bk", &[], &[], 2, 0));
        let (_, status, opaque, got_cas, extras, key, value) = response(&mut c);
        assert_eq!((status, opaque, got_cas), (0, 2, cas));
        assert_eq!(
            (extras, key, value),
            (7u32.to_be_bytes().to_vec(), vec![], b"value".to_vec())
        );
        c.send(&request(0x0c, b"bk", &[], &[], 3, 0));
        assert_eq!(
            response(&mut c).5,
            b"bk",
            "[{}] GETK returns the key",
            c.label
        );
        // Misses: GET says "Not found", GETK returns the key, GETQ/GETKQ say nothing.
        c.send(&request(0x09, b"miss", &[], &[], 4, 0));
        c.send(&request(0x0d, b"miss", &[], &[], 5, 0));
        c.send(&request(0x00, b"miss", &[], &[], 6, 0));
        let (_, status, opaque, _, _, _, value) = response(&mut c);
        assert_eq!((status, opaque, value), (1, 6, b"Not found".to_vec()));
        c.send(&request(0x0c, b"miss", &[], &[], 7, 0));
        let (_, status, _, _, _, key, value) = response(&mut c);
        assert_eq!((status, key, value), (1, b"miss".to_vec(), vec![]));
        // Quiet stores answer only errors; NOOP flushes.
        c.send(&request(0x11, b"q1", &set_extras(0, 0), b"x", 8, 0));
        c.send(&request(0x12, b"q1", &set_extras(0, 0), b"y", 9, 0));
        c.send(&request(0x0a, b"", &[], &[], 10, 0));
        let (op, status, opaque, _, _, _, value) = response(&mut c);
        assert_eq!(
            (op, status, opaque, value),
            (0x12, 2, 9, b"Data exists for key.".to_vec())
        );
        let (op, status, opaque, ..) = response(&mut c);
        assert_eq!((op, status, opaque), (0x0a, 0, 10));
    }
}

#[test]
fn binary_cas_arithmetic_delete_and_stats() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.send(&request(0x01, b"ck", &set_extras(0, 0), b"1", 1, 0));
        let cas = response(&mut c).3;
        c.send(&request(0x01, b"ck", &set_extras(0, 0), b"2", 2, cas + 1));
        assert_eq!(response(&mut c).1, 2, "[{}] CAS mismatch", c.label);
        c.send(&request(0x03, b"nope", &set_extras(0, 0), b"2", 3, 0));
        assert_eq!(response(&mut c).6, b"Not found");
        c.send(&request(0x0e, b"nope", &[], b"2", 4, 0));
        assert_eq!(response(&mut c).6, b"Not stored.");
        let incr = |delta: u64, initial: u64, exptime: u32| {
            [
                delta.to_be_bytes().to_vec(),
                initial.to_be_bytes().to_vec(),
                exptime.to_be_bytes().to_vec(),
            ]
            .concat()
        };
        c.send(&request(0x05, b"n", &incr(5, 10, 0), &[], 5, 0));
        assert_eq!(
            response(&mut c).6,
            10u64.to_be_bytes(),
            "[{}] created with initial",
            c.label
        );
        c.send(&request(0x05, b"n", &incr(5, 10, 0), &[], 6, 0));
        assert_eq!(response(&mut c).6, 15u64.to_be_bytes());
        c.send(&request(0x06, b"n", &incr(100, 0, 0), &[], 7, 0));
        assert_eq!(response(&mut c).6, 0u64.to_be_bytes());
        c.send(&request(0x05, b"absent", &incr(1, 0, u32::MAX), &[], 8, 0));
        assert_eq!(response(&mut c).1, 1);
        c.send(&request(0x05, b"ck", &incr(1, 0, 0), &[], 9, 0));
        c.send(&request(0x01, b"text", &set_extras(0, 0), b"abc", 10, 0));
        c.send(&request(0x05, b"text", &incr(1, 0, 0), &[], 11, 0));
        assert_eq!(response(&mut c).6, 2u64.to_be_bytes());
        response(&mut c);
        let (_, status, _, _, _, _, value) = response(&mut c);
        assert_eq!(
            (status, value),
            (
                6,
                b"Non-numeric server-side value for incr or decr".to_vec()
            )
        );
        c.send(&request(0x04, b"ck", &[], &[], 12, 0));
        assert_eq!(response(&mut c).1, 0);
        c.send(&request(0x04, b"ck", &[], &[], 13, 0));
        assert_eq!(response(&mut c).1, 1);
        // STAT: one response per stat, then an empty one.
        c.send(&request(0x10, b"", &[], &[], 14, 0));
        let mut names = Vec::new();
        loop {
            let (op, status, opaque, _, _, key, _) = response(&mut c);
            assert_eq!((op, status, opaque), (0x10, 0, 14));
            if key.is_empty() {
                break;
            }
            names.push(String::from_utf8(key).unwrap());
        }
        assert!(
            names.iter().any(|name| name == "curr_items"),
            "[{}]",
            c.label
        );
        c.send(&request(0x0b, b"", &[], &[], 15, 0));
        assert!(response(&mut c).6.starts_with(b"1.6."));
        c.send(&request(0x7f, b"", &[], &[], 16, 0));
        let (_, status, _, _, _, _, value) = response(&mut c);
        assert_eq!((status, value), (0x81, b"Unknown command".to_vec()));
        c.send(&request(0x07, b"", &[], &[], 17, 0));
        assert_eq!(response(&mut c).1, 0);
        assert!(c.is_closed(), "[{}] QUIT closes", c.label);
    }
}

#[test]
fn binary_too_large_values_are_swallowed() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.send(&request(0x01, b"big", &set_extras(0, 0), b"old", 1, 0));
        response(&mut c);
        c.send(&request(
            0x01,
            b"big",
            &set_extras(0, 0),
            &vec![b'x'; 2 * 1024 * 1024],
            2,
            0,
        ));
        let (_, status, opaque, _, _, _, value) = response(&mut c);
        assert_eq!((status, opaque, value), (3, 2, b"Too large.".to_vec()));
        c.send(&request(0x00, b"big", &[], &[], 3, 0));
        assert_eq!(
            response(&mut c).1,
            1,
            "[{}] a failed set removes the old value",
            c.label
        );
    }
}

#[test]
fn over_long_binary_keys_are_refused_and_closed() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.send(&request(0x00, &[b'k'; 251], &[], &[], 1, 0));
        let (_, status, _, _, _, _, value) = response(&mut c);
        assert_eq!(
            (status, value),
            (4, b"Invalid arguments".to_vec()),
            "[{}]",
            c.label
        );
        assert!(c.is_closed());
    }
}

#[test]
fn binary_requests_feed_stats_detail_and_meta_requests_do_not() {
    for server in servers(&[]) {
        let mut text = server.connect();
        text.roundtrip(b"stats detail on\r\n", b"OK\r\n");
        let mut c = server.connect();
        let exptime = 100u32.to_be_bytes();
        c.send(&request(0x01, b"c:1", &set_extras(0, 0), b"v", 1, 0)); // SET
        c.send(&request(0x0e, b"c:1", &[], b"w", 2, 0)); // APPEND
        c.send(&request(0x00, b"c:1", &[], &[], 3, 0)); // GET, a hit
        c.send(&request(0x09, b"c:2", &[], &[], 4, 0)); // GETQ, a quiet miss
        c.send(&request(0x1c, b"c:1", &exptime, &[], 5, 0)); // TOUCH, a hit
        c.send(&request(0x04, b"c:1", &[], &[], 6, 0)); // DELETE
        c.send(&request(0x1d, b"c:1", &exptime, &[], 7, 0)); // GAT, a miss
        c.send(&request(0x0a, b"", &[], &[], 8, 0)); // NOOP
        let opaques: Vec<u32> = (0..7).map(|_| response(&mut c).2).collect();
        assert_eq!(opaques, [1, 2, 3, 5, 6, 7, 8], "[{}]", c.label);
        // Meta commands are not counted by prefix.
        text.roundtrip(
            b"ms m:1 1\r\nx\r\nmg m:1 v\r\nmd m:1\r\n",
            b"HD\r\nVA 1\r\nx\r\nHD\r\n",
        );
        text.roundtrip(
            b"stats detail dump\r\n",
            b"PREFIX c get 4 hit 2 set 2 del 1\r\nEND\r\n",
        );
    }
}

/// The GET that follows: its status and value.
fn get_status(c: &mut Client, key: &[u8]) -> (u16, Vec<u8>) {
    c.send(&request(0x00, key, &[], &[], 99, 0));
    let (_, status, _, _, _, _, value) = response(c);
    (status, value)
}

#[test]
fn binary_exptime_fields_are_unsigned() {
    // memcached reads every binary exptime as a uint32_t: 0xFFFFFFFD (what spymemcached
    // sends for MSM's -3) is a Unix time far ahead, so the key stays. Over the text
    // protocol the same -3 is a signed number and expires the key at once.
    let far = 0xFFFF_FFFDu32;
    let found = (0, b"v".to_vec());
    let missing = (1, b"Not found".to_vec());
    for server in servers(&[]) {
        let mut c = server.connect();
        for (opcode, key) in [(0x01u8, &b"xs"[..]), (0x02, b"xa")] {
            c.send(&request(opcode, key, &set_extras(0, far), b"v", 1, 0));
            assert_eq!(response(&mut c).1, 0, "[{}] store {opcode:#x}", c.label);
            assert_eq!(get_status(&mut c, key), found, "[{}] {opcode:#x}", c.label);
        }
        c.send(&request(0x03, b"xa", &set_extras(0, far), b"v", 2, 0));
        assert_eq!(response(&mut c).1, 0);
        assert_eq!(get_status(&mut c, b"xa"), found, "[{}] REPLACE", c.label);
        // TOUCH and GAT with the same field keep the key.
        for (opcode, key) in [(0x1cu8, &b"xt"[..]), (0x1d, b"xg")] {
            c.send(&request(0x01, key, &set_extras(0, 0), b"v", 3, 0));
            response(&mut c);
            c.send(&request(opcode, key, &far.to_be_bytes(), &[], 4, 0));
            assert_eq!(response(&mut c).1, 0, "[{}] {opcode:#x}", c.label);
            assert_eq!(get_status(&mut c, key), found, "[{}] {opcode:#x}", c.label);
        }
        // INCR: all ones means "do not create"; a large unsigned expiration creates.
        let incr = |initial: u64, exptime: u32| {
            [1u64.to_be_bytes(), initial.to_be_bytes()]
                .concat()
                .into_iter()
                .chain(exptime.to_be_bytes())
                .collect::<Vec<u8>>()
        };
        for opcode in [0x05u8, 0x06] {
            c.send(&request(opcode, b"xn", &incr(5, u32::MAX), &[], 5, 0));
            assert_eq!(response(&mut c).1, 1, "[{}] {opcode:#x} no create", c.label);
        }
        for (key, exptime) in [(&b"xb"[..], 0x8000_0000u32), (b"xc", 0xFFFF_FFFE)] {
            c.send(&request(0x05, key, &incr(5, exptime), &[], 6, 0));
            assert_eq!(response(&mut c).6, 5u64.to_be_bytes(), "[{}]", c.label);
            assert_eq!(get_status(&mut c, key), (0, b"5".to_vec()), "[{}]", c.label);
        }
        // FLUSH with a delay far ahead flushes nothing now.
        c.send(&request(0x08, b"", &far.to_be_bytes(), &[], 7, 0));
        assert_eq!(response(&mut c).1, 0);
        assert_eq!(get_status(&mut c, b"xs"), found, "[{}] FLUSH", c.label);
        // The text protocol's -3 is negative: stored, then gone.
        let mut text = server.connect();
        text.roundtrip(b"set xs 0 -3 1\r\nv\r\nget xs\r\n", b"STORED\r\nEND\r\n");
        text.roundtrip(
            b"set xt 0 0 1\r\nv\r\ntouch xt -3\r\nget xt\r\n",
            b"STORED\r\nTOUCHED\r\nEND\r\n",
        );
        assert_eq!(get_status(&mut c, b"xs"), missing, "[{}]", c.label);
    }
}

#[test]
fn cas_values_are_unique_across_keys() {
    // memcached draws every CAS value from one server-wide counter; clients (and
    // memcached's own tests) compare them across keys.
    for server in servers(&[]) {
        let mut c = server.connect();
        let keys: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
        let mut from_sets = std::collections::HashSet::new();
        for (i, key) in keys.iter().enumerate() {
            c.send(&request(
                0x01,
                key.as_bytes(),
                &set_extras(0, 0),
                b"v",
                i as u32,
                0,
            ));
            let cas = response(&mut c).3;
            assert!(
                from_sets.insert(cas),
                "[{}] SET CAS {cas} repeated",
                c.label
            );
        }
        let mut text = server.connect();
        text.send(format!("gets {}\r\n", keys.join(" ")).as_bytes());
        let mut from_gets = std::collections::HashSet::new();
        for _ in &keys {
            let line = String::from_utf8(text.read_line()).unwrap();
            let cas: u64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
            assert!(
                from_gets.insert(cas),
                "[{}] gets CAS {cas} repeated",
                c.label
            );
            text.expect(b"v\r\n");
        }
        text.expect(b"END\r\n");
        assert_eq!(from_sets, from_gets, "[{}]", c.label);
    }
}
