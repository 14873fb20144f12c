//! Every classic command's happy paths and status replies.

use crate::support::servers;

#[test]
fn storage_commands_and_their_replies() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"set s1 5 0 3\r\nabc\r\n", b"STORED\r\n");
        c.roundtrip(b"get s1\r\n", b"VALUE s1 5 3\r\nabc\r\nEND\r\n");
        c.roundtrip(b"add s1 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
        c.roundtrip(b"add s2 7 0 2\r\nxy\r\n", b"STORED\r\n");
        c.roundtrip(b"replace s3 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
        c.roundtrip(b"replace s2 8 0 3\r\nnew\r\n", b"STORED\r\n");
        c.roundtrip(b"get s2\r\n", b"VALUE s2 8 3\r\nnew\r\nEND\r\n");
        // append/prepend keep the item's own flags.
        c.roundtrip(b"append s2 99 0 2\r\n!!\r\n", b"STORED\r\n");
        c.roundtrip(b"prepend s2 99 0 2\r\n<<\r\n", b"STORED\r\n");
        c.roundtrip(b"get s2\r\n", b"VALUE s2 8 7\r\n<<new!!\r\nEND\r\n");
        c.roundtrip(b"append nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
        c.roundtrip(b"prepend nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
        c.roundtrip(b"set empty 0 0 0\r\n\r\n", b"STORED\r\n");
        c.roundtrip(b"get empty\r\n", b"VALUE empty 0 0\r\n\r\nEND\r\n");
        c.roundtrip(b"set maxflags 4294967295 0 1\r\nx\r\n", b"STORED\r\n");
        c.roundtrip(
            b"get maxflags\r\n",
            b"VALUE maxflags 4294967295 1\r\nx\r\nEND\r\n",
        );
    }
}

/// Reads the CAS value from a `gets` reply line.
fn cas_of(line: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(line);
    text.trim_end().rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn cas_and_gets() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"cas c1 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n");
        c.roundtrip(b"set c1 0 0 1\r\nx\r\n", b"STORED\r\n");
        c.send(b"gets c1\r\n");
        let first = cas_of(&c.read_line());
        c.expect(b"x\r\nEND\r\n");
        c.roundtrip(
            format!("cas c1 3 0 1 {}\r\ny\r\n", first + 1000).as_bytes(),
            b"EXISTS\r\n",
        );
        c.roundtrip(
            format!("cas c1 3 0 1 {first}\r\ny\r\n").as_bytes(),
            b"STORED\r\n",
        );
        c.roundtrip(
            format!("cas c1 3 0 1 {first}\r\nz\r\n").as_bytes(),
            b"EXISTS\r\n",
        );
        c.send(b"gets c1\r\n");
        let line = c.read_line();
        assert!(line.starts_with(b"VALUE c1 3 1 "));
        let second = cas_of(&line);
        assert_ne!(first, second, "every store changes the CAS value");
        c.expect(b"y\r\nEND\r\n");
        // incr changes the CAS value too.
        c.roundtrip(b"set n1 0 0 1\r\n5\r\n", b"STORED\r\n");
        c.send(b"gets n1\r\n");
        let before = cas_of(&c.read_line());
        c.expect(b"5\r\nEND\r\n");
        c.roundtrip(b"incr n1 1\r\n", b"6\r\n");
        c.send(b"gets n1\r\n");
        let after = cas_of(&c.read_line());
        c.expect(b"6\r\nEND\r\n");
        assert_ne!(before, after);
    }
}

#[test]
fn multiget_answers_hits_in_order_including_duplicates() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(
            b"set m1 1 0 1\r\na\r\nset m2 2 0 2\r\nbb\r\n",
            b"STORED\r\nSTORED\r\n",
        );
        c.roundtrip(
            b"get m1 missing m2 m1\r\n",
            b"VALUE m1 1 1\r\na\r\nVALUE m2 2 2\r\nbb\r\nVALUE m1 1 1\r\na\r\nEND\r\n",
        );
        c.roundtrip(
            b"get  m1   m2 \r\n",
            b"VALUE m1 1 1\r\na\r\nVALUE m2 2 2\r\nbb\r\nEND\r\n",
        );
    }
}

#[test]
fn gat_and_touch() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"touch t1 10\r\n", b"NOT_FOUND\r\n");
        c.roundtrip(b"set t1 3 0 2\r\nhi\r\n", b"STORED\r\n");
        c.roundtrip(b"touch t1 100\r\n", b"TOUCHED\r\n");
        c.roundtrip(b"gat 100 t1 nope\r\n", b"VALUE t1 3 2\r\nhi\r\nEND\r\n");
        c.send(b"gats 100 t1\r\n");
        let line = c.read_line();
        assert!(line.starts_with(b"VALUE t1 3 2 "), "{:?}", line);
        c.expect(b"hi\r\nEND\r\n");
        // A negative exptime expires the item at once.
        c.roundtrip(b"gat -1 t1\r\n", b"VALUE t1 3 2\r\nhi\r\nEND\r\n");
        c.roundtrip(b"get t1\r\n", b"END\r\n");
    }
}

#[test]
fn incr_decr_rules() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"incr none 1\r\n", b"NOT_FOUND\r\n");
        c.roundtrip(b"decr none 1\r\n", b"NOT_FOUND\r\n");
        c.roundtrip(b"set n 5 0 20\r\n18446744073709551615\r\n", b"STORED\r\n");
        c.roundtrip(b"incr n 1\r\n", b"0\r\n");
        // In-place update pads with spaces; flags survive.
        c.roundtrip(
            b"get n\r\n",
            b"VALUE n 5 20\r\n0                   \r\nEND\r\n",
        );
        c.roundtrip(b"incr n 41\r\n", b"41\r\n");
        c.roundtrip(b"set d 0 0 2\r\n10\r\n", b"STORED\r\n");
        c.roundtrip(b"decr d 1\r\n", b"9\r\n");
        c.roundtrip(b"get d\r\n", b"VALUE d 0 2\r\n9 \r\nEND\r\n");
        c.roundtrip(b"decr d 100\r\n", b"0\r\n");
        c.roundtrip(b"set g 0 0 2\r\n99\r\n", b"STORED\r\n");
        c.roundtrip(b"incr g 1\r\n", b"100\r\n");
        c.roundtrip(b"get g\r\n", b"VALUE g 0 3\r\n100\r\nEND\r\n");
        c.roundtrip(b"set s 0 0 3\r\n 12\r\n", b"STORED\r\n");
        c.roundtrip(b"incr s 1\r\n", b"13\r\n");
        c.roundtrip(b"incr s 18446744073709551615\r\n", b"12\r\n");
        for bad in [&b"abc"[..], b"12a", b"-5"] {
            let mut request = format!("set bad 0 0 {}\r\n", bad.len()).into_bytes();
            request.extend_from_slice(bad);
            request.extend_from_slice(b"\r\n");
            c.roundtrip(&request, b"STORED\r\n");
            c.roundtrip(
                b"incr bad 1\r\n",
                b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            );
        }
        c.roundtrip(b"set e 0 0 0\r\n\r\n", b"STORED\r\n");
        c.roundtrip(
            b"decr e 1\r\n",
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        );
        c.roundtrip(b"set big 0 0 20\r\n18446744073709551616\r\n", b"STORED\r\n");
        c.roundtrip(
            b"incr big 1\r\n",
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        );
        c.roundtrip(
            b"incr n -1\r\n",
            b"CLIENT_ERROR invalid numeric delta argument\r\n",
        );
        c.roundtrip(
            b"incr n 18446744073709551616\r\n",
            b"CLIENT_ERROR invalid numeric delta argument\r\n",
        );
    }
}

#[test]
fn delete_forms() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"delete d1\r\n", b"NOT_FOUND\r\n");
        c.roundtrip(b"set d1 0 0 1\r\nx\r\n", b"STORED\r\n");
        c.roundtrip(b"delete d1\r\n", b"DELETED\r\n");
        c.roundtrip(b"get d1\r\n", b"END\r\n");
        c.roundtrip(b"set d1 0 0 1\r\nx\r\n", b"STORED\r\n");
        c.roundtrip(b"delete d1 0\r\n", b"DELETED\r\n");
        c.roundtrip(
            b"delete d1 5\r\n",
            b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
        );
        c.roundtrip(b"delete d1 0 noreply\r\n", b"");
        c.expect_quiet();
        c.roundtrip(b"delete a b c d\r\n", b"ERROR\r\n");
    }
}

#[test]
fn noreply_suppresses_every_reply() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.send(b"set q 0 0 1 noreply\r\n1\r\n");
        c.send(b"add q 0 0 1 noreply\r\n2\r\n");
        c.send(b"replace q 0 0 1 noreply\r\n3\r\n");
        c.send(b"append q 0 0 1 noreply\r\n4\r\n");
        c.send(b"prepend q 0 0 1 noreply\r\n5\r\n");
        c.send(b"cas q 0 0 1 1 noreply\r\n6\r\n");
        c.send(b"incr q 1 noreply\r\n");
        c.send(b"decr q 1 noreply\r\n");
        c.send(b"touch q 100 noreply\r\n");
        c.send(b"verbosity 1 noreply\r\n");
        c.expect_quiet();
        c.roundtrip(b"get q\r\n", b"VALUE q 0 3\r\n534\r\nEND\r\n");
        // Errors are suppressed too once noreply was seen.
        // "xx\r" is the data block; "\n" and "\r\n" are then two empty lines.
        c.send(b"set q 0 0 1 noreply\r\nxx\r\n");
        c.roundtrip(b"\r\n", b"ERROR\r\nERROR\r\n");
        c.send(b"set q 0 bad 1 noreply\r\n");
        c.roundtrip(b"x\r\n", b"ERROR\r\n");
        c.send(b"delete q noreply\r\n");
        c.send(b"flush_all noreply\r\n");
        c.send(b"flush_all 0 noreply\r\n");
        c.expect_quiet();
        c.roundtrip(b"get q\r\n", b"END\r\n");
    }
}

#[test]
fn pipelined_requests_answer_in_order() {
    for server in servers(&[]) {
        let mut c = server.connect();
        let mut request = Vec::new();
        let mut expected = Vec::new();
        for i in 0..200 {
            request.extend_from_slice(
                format!("set p{i} {i} 0 {}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
            );
            expected.extend_from_slice(b"STORED\r\n");
            request.extend_from_slice(format!("get p{i}\r\nincr p{i} 1\r\n").as_bytes());
            expected.extend_from_slice(
                format!(
                    "VALUE p{i} {i} {}\r\n{i}\r\nEND\r\n{}\r\n",
                    i.to_string().len(),
                    i + 1
                )
                .as_bytes(),
            );
            request.extend_from_slice(b"bogus\r\n");
            expected.extend_from_slice(b"ERROR\r\n");
        }
        c.roundtrip(&request, &expected);
        // A request split across many tiny writes is reassembled.
        for byte in b"set slow 0 0 5\r\nabcde\r\n" {
            c.send(&[*byte]);
        }
        c.expect(b"STORED\r\n");
    }
}

#[test]
fn values_are_binary_safe() {
    for server in servers(&[]) {
        let mut c = server.connect();
        let value = b"a\r\nEND\r\n\0\xff VALUE x 0 1\r\n";
        let mut request = format!("set bin 0 0 {}\r\n", value.len()).into_bytes();
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
        c.roundtrip(&request, b"STORED\r\n");
        let mut expected = format!("VALUE bin 0 {}\r\n", value.len()).into_bytes();
        expected.extend_from_slice(value);
        expected.extend_from_slice(b"\r\nEND\r\n");
        c.roundtrip(b"get bin\r\n", &expected);
    }
}

#[test]
fn bare_newlines_are_accepted() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(
            b"set nl 0 0 2\nok\r\nget nl\n",
            b"STORED\r\nVALUE nl 0 2\r\nok\r\nEND\r\n",
        );
    }
}

#[test]
fn keys_up_to_250_bytes() {
    for server in servers(&[]) {
        let mut c = server.connect();
        let key250 = "k".repeat(250);
        let key251 = "k".repeat(251);
        c.roundtrip(
            format!("set {key250} 0 0 1\r\nx\r\n").as_bytes(),
            b"STORED\r\n",
        );
        c.roundtrip(
            format!("get {key250}\r\n").as_bytes(),
            format!("VALUE {key250} 0 1\r\nx\r\nEND\r\n").as_bytes(),
        );
        let bad = b"CLIENT_ERROR bad command line format\r\n";
        // The rejected storage line's data is then read as a command.
        c.roundtrip(
            format!("set {key251} 0 0 1\r\nx\r\n").as_bytes(),
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
        );
        for request in [
            format!("get {key251}\r\n"),
            format!("get a {key251}\r\n"),
            format!("delete {key251}\r\n"),
            format!("incr {key251} 1\r\n"),
            format!("touch {key251} 1\r\n"),
        ] {
            c.roundtrip(request.as_bytes(), bad);
        }
    }
}

#[test]
fn values_up_to_the_item_size_limit() {
    for server in servers(&[]) {
        let mut c = server.connect();
        // memcached charges 48 + 8 (CAS) + key + 1 + value + 2 bytes against -I (1 MiB).
        let largest = 1024 * 1024 - 48 - 8 - 1 - 1 - 2;
        let value = vec![b'v'; largest];
        let mut request = format!("set L 0 0 {largest}\r\n").into_bytes();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
        c.roundtrip(&request, b"STORED\r\n");
        c.send(b"get L\r\n");
        c.expect(format!("VALUE L 0 {largest}\r\n").as_bytes());
        assert!(
            c.read_exact_len(largest) == value,
            "[{}] value differs",
            c.label
        );
        c.expect(b"\r\nEND\r\n");
        // One byte more is refused, its data swallowed, and a failed set removes the old value.
        let mut request = format!("set L 0 0 {}\r\n", largest + 1).into_bytes();
        request.extend_from_slice(&vec![b'w'; largest + 1]);
        request.extend_from_slice(b"\r\n");
        c.roundtrip(&request, b"SERVER_ERROR object too large for cache\r\n");
        c.roundtrip(b"get L\r\n", b"END\r\n");
        // A huge announced length is swallowed as it arrives, without buffering it all.
        c.send(b"set H 0 0 5000000 noreply\r\n");
        for _ in 0..50 {
            c.send(&vec![b'z'; 100_000]);
        }
        c.send(b"\r\n");
        c.expect_quiet();
        c.roundtrip(b"get H\r\n", b"END\r\n");
        assert_eq!(c.stat("store_too_large"), 2, "[{}]", c.label);
    }
}

#[test]
fn append_beyond_the_item_limit_is_not_stored() {
    for server in servers(&[]) {
        let mut c = server.connect();
        let half = vec![b'h'; 600_000];
        let mut request = format!("set ap 0 0 {}\r\n", half.len()).into_bytes();
        request.extend_from_slice(&half);
        request.extend_from_slice(b"\r\n");
        c.roundtrip(&request, b"STORED\r\n");
        let mut request = format!("append ap 0 0 {}\r\n", half.len()).into_bytes();
        request.extend_from_slice(&half);
        request.extend_from_slice(b"\r\n");
        c.roundtrip(&request, b"NOT_STORED\r\n");
        c.send(b"get ap\r\n");
        c.expect(b"VALUE ap 0 600000\r\n");
        c.read_exact_len(600_000);
        c.expect(b"\r\nEND\r\n");
    }
}

#[test]
fn version_and_verbosity() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.send(b"version\r\n");
        let line = c.read_line();
        assert!(
            line.starts_with(b"VERSION 1.6."),
            "{:?}",
            String::from_utf8_lossy(&line)
        );
        c.roundtrip(b"verbosity 1\r\n", b"OK\r\n");
        c.roundtrip(b"verbosity\r\n", b"ERROR\r\n");
        c.roundtrip(
            b"verbosity x\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
        );
    }
}

#[test]
fn cache_memlimit_changes_the_limit() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"cache_memlimit 128\r\n", b"OK\r\n");
        assert_eq!(c.stat("limit_maxbytes"), 128 * 1024 * 1024, "[{}]", c.label);
        c.roundtrip(
            b"cache_memlimit 5\r\n",
            b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
        );
        c.roundtrip(
            b"cache_memlimit 2000000000\r\n",
            b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n",
        );
        c.roundtrip(b"cache_memlimit x\r\n", b"ERROR\r\n");
        c.roundtrip(b"cache_memlimit 64 noreply\r\n", b"");
        c.expect_quiet();
    }
}

#[test]
fn shutdown_needs_dash_a() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n");
    }
    for server in servers(&["-A"]) {
        let mut c = server.connect();
        c.roundtrip(
            b"shutdown bogus\r\n",
            b"CLIENT_ERROR invalid shutdown mode\r\n",
        );
        c.send(b"shutdown\r\n");
        assert!(
            c.is_closed(),
            "[{}] shutdown closes the connection",
            c.label
        );
        // The listener closes as the server exits; a loaded machine may take a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(&server.address).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "[{}] the server stopped",
                c.label
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
