//! Meta commands (memcached 1.6.18 syntax), mixed with classic commands.

use crate::support::servers;

#[test]
fn meta_get_set_and_return_flags() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"mg foo v\r\nmg foo\r\n", b"EN\r\nEN\r\n");
        c.roundtrip(b"mg foo k O123 q\r\nmg foo k O123\r\n", b"EN kfoo O123\r\n");
        c.roundtrip(b"ms foo 3\r\nbar\r\n", b"HD\r\n");
        c.roundtrip(b"mg foo\r\nmg foo v\r\n", b"HD\r\nVA 3\r\nbar\r\n");
        c.roundtrip(b"get foo\r\n", b"VALUE foo 0 3\r\nbar\r\nEND\r\n");
        c.roundtrip(
            b"mg foo s v f t k h O9\r\n",
            b"VA 3 s3 f0 t-1 kfoo h1 O9\r\nbar\r\n",
        );
        c.roundtrip(b"ms foo 2 T100 F5 k O1\r\nhi\r\n", b"HD kfoo O1\r\n");
        c.roundtrip(b"mg foo t f v\r\n", b"VA 2 t100 f5\r\nhi\r\n");
        c.roundtrip(
            b"mg foo q v\r\nmg miss q v\r\nmn\r\n",
            b"VA 2\r\nhi\r\nMN\r\n",
        );
        c.roundtrip(
            b"mg tt T5 t v\r\nms tt 1\r\n1\r\nmg tt T5 t v\r\nmg tt t\r\n",
            b"EN\r\nHD\r\nVA 1 t5\r\n1\r\nHD t5\r\n",
        );
        // CAS from mg c feeds ms C.
        c.send(b"mg foo c\r\n");
        let line = String::from_utf8(c.read_line()).unwrap();
        let cas: u64 = line
            .trim_end()
            .strip_prefix("HD c")
            .unwrap()
            .parse()
            .unwrap();
        c.roundtrip(
            format!("ms foo 1 C{}\r\nx\r\n", cas + 1).as_bytes(),
            b"EX\r\n",
        );
        c.roundtrip(format!("ms foo 1 C{cas}\r\ny\r\n").as_bytes(), b"HD\r\n");
        c.roundtrip(b"ms nope 1 C5\r\nz\r\n", b"NF\r\n");
    }
}

#[test]
fn meta_set_modes() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(
            b"ms m 2\r\nhi\r\nms m 2 MA\r\n!!\r\nmg m v\r\n",
            b"HD\r\nHD\r\nVA 4\r\nhi!!\r\n",
        );
        c.roundtrip(
            b"ms m 2 MP\r\n<<\r\nmg m v\r\n",
            b"HD\r\nVA 6\r\n<<hi!!\r\n",
        );
        c.roundtrip(b"ms m 1 ME\r\nx\r\nms new 1 ME\r\nx\r\n", b"NS\r\nHD\r\n");
        c.roundtrip(
            b"ms nope 2 MA\r\nzz\r\nms nope 2 MR q\r\nzz\r\nmn\r\n",
            b"NS\r\nNS\r\nMN\r\n",
        );
        c.roundtrip(b"ms m 1 MR\r\nr\r\nmg m v\r\n", b"HD\r\nVA 1\r\nr\r\n");
    }
}

#[test]
fn meta_delete_and_arithmetic() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"md foo\r\nmd foo q\r\n", b"NF\r\nNF\r\n");
        c.roundtrip(b"ms foo 1\r\nx\r\nmd foo q\r\nmn\r\n", b"HD\r\nMN\r\n");
        c.roundtrip(
            b"ms foo 1\r\nx\r\nmd foo C1\r\nmd foo k O5\r\n",
            b"HD\r\nEX\r\nHD kfoo O5\r\n",
        );
        c.roundtrip(
            b"ma cnt\r\nma cnt N0 J10\r\nma cnt v\r\n",
            b"NF\r\nHD\r\nVA 2\r\n11\r\n",
        );
        c.roundtrip(
            b"ma cnt D5 v t\r\nma cnt MD D100 v\r\n",
            b"VA 2 t-1\r\n16\r\nVA 1\r\n0\r\n",
        );
        c.roundtrip(
            b"ms s 1\r\nx\r\nma s\r\n",
            b"HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        );
        c.roundtrip(b"ma cnt q\r\nma cnt2 q N0\r\nmn\r\n", b"HD\r\nMN\r\n");
        c.roundtrip(b"incr cnt 5\r\n", b"6\r\n");
        c.send(b"me cnt\r\n");
        let line = c.read_line();
        assert!(
            line.starts_with(b"ME cnt exp=-1 la="),
            "[{}] {:?}",
            c.label,
            line
        );
        c.roundtrip(b"me nope\r\n", b"EN\r\n");
    }
}

#[test]
fn meta_stale_and_win_tokens() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"mg viv N30 v t\r\n", b"VA 0 t30 W\r\n\r\n");
        c.roundtrip(b"mg viv N30 v t\r\n", b"VA 0 t30 Z\r\n\r\n");
        c.roundtrip(
            b"ms viv 3 T60\r\nnew\r\nmg viv v\r\n",
            b"HD\r\nVA 3\r\nnew\r\n",
        );
        c.roundtrip(b"mg viv R30 v t\r\n", b"VA 3 t60\r\nnew\r\n");
        c.roundtrip(
            b"md viv I T30\r\nmg viv v\r\n",
            b"HD\r\nVA 3 X W\r\nnew\r\n",
        );
        c.roundtrip(b"mg viv v\r\n", b"VA 3 Z X\r\nnew\r\n");
    }
}

#[test]
fn meta_base64_keys() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(
            b"ms Zm9v 2 b\r\nhi\r\nget foo\r\n",
            b"HD\r\nVALUE foo 0 2\r\nhi\r\nEND\r\n",
        );
        c.roundtrip(b"mg Zm9v b k v\r\n", b"VA 2 kZm9v b\r\nhi\r\n");
        c.roundtrip(b"md Zm9v b\r\nmg Zm9v b k v\r\n", b"HD\r\nEN kZm9v b\r\n");
        c.roundtrip(b"mg !!! b\r\n", b"CLIENT_ERROR error decoding key\r\n");
    }
}

#[test]
fn meta_errors() {
    for server in servers(&[]) {
        let mut c = server.connect();
        let long_key = "k".repeat(251);
        let long_opaque = format!("O{}", "o".repeat(40));
        for (request, reply) in [
            ("mg foo x\r\n".to_string(), "CLIENT_ERROR invalid flag\r\n"),
            ("mg foo v v\r\n".into(), "CLIENT_ERROR duplicate flag\r\n"),
            (
                "mg foo Tabc\r\n".into(),
                "CLIENT_ERROR bad token in command line format\r\n",
            ),
            (
                "ms foo\r\n".into(),
                "CLIENT_ERROR bad command line format\r\n",
            ),
            (
                "ms foo abc\r\nxx\r\n".into(),
                "CLIENT_ERROR bad command line format\r\nERROR\r\n",
            ),
            (
                "ms foo 2 MX\r\nhi\r\n".into(),
                "CLIENT_ERROR invalid mode for ms M token\r\n",
            ),
            (
                "ms foo 2 MSS\r\nhi\r\n".into(),
                "CLIENT_ERROR incorrect length for M token\r\n",
            ),
            ("mg\r\nmd\r\nma\r\n".into(), "ERROR\r\nERROR\r\nERROR\r\n"),
            ("me\r\n".into(), "CLIENT_ERROR bad command line format\r\n"),
            ("mn extra\r\n".into(), "MN\r\n"),
            (
                "ma cnt Mx\r\n".into(),
                "CLIENT_ERROR invalid mode for ma M token\r\n",
            ),
            (
                "ma cnt Dx\r\n".into(),
                "CLIENT_ERROR invalid or duplicate flag\r\n",
            ),
            (
                "md foo x\r\n".into(),
                "CLIENT_ERROR invalid or duplicate flag\r\n",
            ),
            (
                format!("mg {long_key} v\r\n"),
                "CLIENT_ERROR bad command line format\r\n",
            ),
            (
                format!("ms {long_key} 1\r\nx\r\n"),
                "CLIENT_ERROR bad command line format\r\nERROR\r\n",
            ),
            (
                format!("mg foo {long_opaque}\r\n"),
                "CLIENT_ERROR opaque token too long\r\n",
            ),
            (
                format!("ms foo 1 {long_opaque}\r\nx\r\n"),
                "CLIENT_ERROR opaque token too long\r\n",
            ),
            (
                "mg a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n".into(),
                "CLIENT_ERROR options flags are too long\r\n",
            ),
            ("mg foo P L v\r\n".into(), "EN\r\n"),
            (
                "ms ek 1 E12345\r\nx\r\n".into(),
                "CLIENT_ERROR invalid flag\r\n",
            ),
            (
                "ms ek 1 S5\r\nx\r\n".into(),
                "CLIENT_ERROR invalid flag\r\n",
            ),
            (
                "md ek E5\r\n".into(),
                "CLIENT_ERROR invalid or duplicate flag\r\n",
            ),
            ("mg ek E5\r\n".into(), "CLIENT_ERROR invalid flag\r\n"),
            (
                "ms foo 2\r\nabcd\r\n".into(),
                "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
            ),
        ] {
            c.roundtrip(request.as_bytes(), reply.as_bytes());
            c.expect_quiet();
        }
    }
}

#[test]
fn meta_get_with_a_new_ttl_counts_a_touch_hit() {
    // memcached counts a hit of `mg <key> T<ttl>` as a touch: touch_hits and cmd_touch
    // grow, get_hits does not.
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"set tk 0 0 1\r\nx\r\n", b"STORED\r\n");
        let before = [
            c.stat("get_hits"),
            c.stat("touch_hits"),
            c.stat("cmd_touch"),
        ];
        c.roundtrip(b"mg tk T30 v\r\n", b"VA 1\r\nx\r\n");
        let after = [
            c.stat("get_hits"),
            c.stat("touch_hits"),
            c.stat("cmd_touch"),
        ];
        assert_eq!(
            [
                after[0] - before[0],
                after[1] - before[1],
                after[2] - before[2]
            ],
            [0, 1, 1],
            "[{}] get_hits, touch_hits, cmd_touch after mg T30",
            c.label
        );
    }
}

#[test]
fn a_meta_set_too_large_removes_the_old_value_in_any_mode() {
    // memcached refuses the value, swallows it, counts store_too_large and unlinks the
    // old item whatever the mode (text does so only for a plain `set`).
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(
            b"set mk 0 0 1\r\nx\r\nset mj 0 0 1\r\nx\r\n",
            b"STORED\r\nSTORED\r\n",
        );
        let before = c.stat("store_too_large");
        let value = vec![b'y'; 2_000_000];
        for line in [&b"ms mk 2000000\r\n"[..], b"ms mj 2000000 MA\r\n"] {
            let request = [line, &value, b"\r\n"].concat();
            c.roundtrip(&request, b"SERVER_ERROR object too large for cache\r\n");
        }
        c.roundtrip(b"mg mk v\r\nmg mj v\r\n", b"EN\r\nEN\r\n");
        assert_eq!(c.stat("store_too_large") - before, 2, "[{}]", c.label);
    }
}

/// The number after ` <flag>` in a meta reply line.
fn number_after(line: &[u8], flag: char) -> i64 {
    let line = String::from_utf8_lossy(line);
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(flag)?.parse().ok())
        .unwrap_or_else(|| panic!("no {flag} in {line}"))
}

/// Sends a request answered by one line and returns it.
fn line_of(c: &mut crate::support::Client, request: &[u8]) -> Vec<u8> {
    c.send(request);
    c.read_line()
}

#[test]
fn meta_set_echoes_c_in_request_order_and_zero_when_not_stored() {
    for server in servers(&[]) {
        let mut c = server.connect();
        let stored = line_of(&mut c, b"ms mc 1 k c\r\nx\r\n");
        assert!(stored.starts_with(b"HD kmc c"), "[{}] {stored:?}", c.label);
        assert!(number_after(&stored, 'c') > 0);
        let stored = line_of(&mut c, b"ms mc 1 c k\r\nx\r\n");
        assert!(stored.ends_with(b" kmc\r\n"), "[{}] {stored:?}", c.label);
        let never = u64::MAX;
        c.roundtrip(
            format!("ms mc 1 k c O5 C{never}\r\nx\r\n").as_bytes(),
            b"EX kmc c0 O5\r\n",
        );
        c.roundtrip(b"ms mc-miss 1 C5 c\r\nx\r\n", b"NF c0\r\n");
        c.roundtrip(b"ms mc 1 ME c\r\nx\r\n", b"NS c0\r\n");
        c.roundtrip(b"ms mc-miss 1 MR c\r\nx\r\n", b"NS c0\r\n");
        // `q` hides only HD.
        c.roundtrip(
            format!("ms mc 1 q c\r\nx\r\nms mc 1 q c C{never}\r\nx\r\nmn\r\n").as_bytes(),
            b"EX c0\r\nMN\r\n",
        );
        // A base64 key's ` b` follows the key at once.
        c.roundtrip(b"ms YTU= 1 b k O1\r\nx\r\n", b"HD kYTU= b O1\r\n");
        c.roundtrip(b"mg YTU= b k v O2 s\r\n", b"VA 1 kYTU= b O2 s1\r\nx\r\n");
        c.roundtrip(
            b"md YTU= b k O4\r\nmg YTU= b k O5\r\n",
            b"HD kYTU= b O4\r\nEN kYTU= b O5\r\n",
        );
    }
}

#[test]
fn meta_set_cas_per_mode() {
    // A CAS makes set and replace a `cas`; an add ignores it; append and prepend check
    // it against an item that is there (a missing one is not stored).
    for server in servers(&[]) {
        let mut c = server.connect();
        // A few CAS values first, so the item's CAS minus one is not 0 (which an append
        // reads as "no CAS").
        c.roundtrip(b"ms pad 1\r\nx\r\nms pad 1\r\nx\r\n", b"HD\r\nHD\r\n");
        c.roundtrip(
            b"ms ca 1 ME C5\r\nx\r\nms ca 1 ME C5\r\nx\r\n",
            b"HD\r\nNS\r\n",
        );
        c.roundtrip(
            b"ms ca-r 1 MR C5\r\nx\r\nms ca-a 1 MA C5\r\nx\r\n",
            b"NF\r\nNS\r\n",
        );
        let cas = number_after(&line_of(&mut c, b"mg ca c\r\n"), 'c');
        c.roundtrip(
            format!(
                "ms ca 1 MA C{}\r\ny\r\nms ca 1 MA I C{}\r\ny\r\n",
                cas + 1,
                cas - 1
            )
            .as_bytes(),
            b"EX\r\nEX\r\n",
        );
        c.roundtrip(
            format!("ms ca 1 MA C{cas}\r\ny\r\nms ca 1 MP C0\r\n<\r\nmg ca v\r\n").as_bytes(),
            b"HD\r\nHD\r\nVA 3\r\n<xy\r\n",
        );
    }
}

#[test]
fn meta_stale_item_keeps_ttl_and_token_through_an_invalidating_set() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"ms st 1 T100\r\nx\r\nmd st I T30\r\n", b"HD\r\nHD\r\n");
        let won = line_of(&mut c, b"mg st t c\r\n");
        assert!(won.ends_with(b" X W\r\n"), "[{}] {won:?}", c.label);
        let cas = number_after(&won, 'c');
        c.roundtrip(b"mg st\r\n", b"HD Z X\r\n");
        // An older CAS with I: stored, still stale, TTL and token as they were.
        let set = line_of(
            &mut c,
            format!("ms st 1 I C{} T500 c\r\ny\r\n", cas - 1).as_bytes(),
        );
        assert!(set.starts_with(b"HD c"), "[{}] {set:?}", c.label);
        assert!(number_after(&set, 'c') > cas);
        let after = line_of(&mut c, b"mg st t v\r\n");
        assert!(after.ends_with(b" Z X\r\n"), "[{}] {after:?}", c.label);
        assert!(
            (28..=30).contains(&number_after(&after, 't')),
            "[{}] {after:?}",
            c.label
        );
        c.expect(b"y\r\n");
        // A newer CAS is refused.
        c.roundtrip(
            format!("ms st 1 I C{}\r\nz\r\n", u64::MAX).as_bytes(),
            b"EX\r\n",
        );
        // On a fresh item, an older CAS with I stores it stale with its TTL kept.
        c.roundtrip(b"ms fr 1 T100\r\nx\r\n", b"HD\r\n");
        let cas = number_after(&line_of(&mut c, b"mg fr c\r\n"), 'c');
        c.roundtrip(
            format!("ms fr 1 I C{} T5\r\ny\r\n", cas - 1).as_bytes(),
            b"HD\r\n",
        );
        let first = line_of(&mut c, b"mg fr t\r\n");
        assert!(first.ends_with(b" X W\r\n"), "[{}] {first:?}", c.label);
        assert!(number_after(&first, 't') > 90, "[{}] {first:?}", c.label);
        c.roundtrip(b"mg fr\r\n", b"HD Z X\r\n");
    }
}

#[test]
fn meta_flags_are_known_to_every_command_and_errors_follow_memcached() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"ms fl 1 s t v f h l u\r\nx\r\n", b"HD\r\n");
        c.roundtrip(b"mg fl I C1 D1 F1 J1 MS\r\nmg fl Mx\r\n", b"HD\r\nHD\r\n");
        c.roundtrip(b"ma fl-n f h l s u F1 I R1\r\n", b"NF\r\n");
        c.roundtrip(b"md fl c f h l s t u v D1 F1 J1 Mx N1 R1\r\n", b"HD\r\n");
        // The opaque limit counts the `O`: 31 bytes pass, 32 do not.
        let (fits, over) = ("o".repeat(31), "o".repeat(32));
        c.roundtrip(
            format!("mg fl-n O{fits}\r\nmg fl-n O{over}\r\n").as_bytes(),
            format!("EN O{fits}\r\nCLIENT_ERROR opaque token too long\r\n").as_bytes(),
        );
        for (request, reply) in [
            (
                &b"mg fl Tx Dx\r\n"[..],
                &b"CLIENT_ERROR invalid numeric delta value\r\n"[..],
            ),
            (
                b"mg fl Dx Tx\r\n",
                b"CLIENT_ERROR bad token in command line format\r\n",
            ),
            (
                b"mg fl Dx Fx\r\n",
                b"CLIENT_ERROR invalid numeric delta value\r\n",
            ),
            (b"mg fl Fx\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            (
                b"mg fl Jx\r\n",
                b"CLIENT_ERROR invalid numeric initial value\r\n",
            ),
            (
                b"mg fl M\r\n",
                b"CLIENT_ERROR incorrect length for M token\r\n",
            ),
            (b"mg fl Tx zz\r\n", b"CLIENT_ERROR invalid flag\r\n"),
            (
                b"mg !!! b Tx\r\n",
                b"CLIENT_ERROR bad token in command line format\r\n",
            ),
            (b"mg !!! Tx b\r\n", b"CLIENT_ERROR error decoding key\r\n"),
            (b"mg fl \xc3\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
            (
                b"ms fl 1 Fx\r\nx\r\n",
                b"CLIENT_ERROR bad command line format\r\n",
            ),
            (
                b"ms fl 1 MX Tx\r\nx\r\n",
                b"CLIENT_ERROR bad token in command line format\r\n",
            ),
            (
                b"ms fl 1 Ms\r\nx\r\n",
                b"CLIENT_ERROR invalid mode for ms M token\r\n",
            ),
            (
                b"ma fl Md\r\n",
                b"CLIENT_ERROR invalid mode for ma M token\r\n",
            ),
            (
                b"ma fl M\r\n",
                b"CLIENT_ERROR invalid or duplicate flag\r\n",
            ),
            (
                b"md fl Jx\r\n",
                b"CLIENT_ERROR invalid or duplicate flag\r\n",
            ),
        ] {
            c.roundtrip(request, reply);
            c.expect_quiet();
        }
    }
}

#[test]
fn meta_arithmetic_q_hides_a_value_and_me_shows_time_left_negative() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"ma aq N0 J5 q v\r\n", b"VA 1\r\n5\r\n");
        c.roundtrip(b"ma aq q v\r\nma aq v\r\n", b"VA 1\r\n7\r\n");
        c.roundtrip(b"ms me 1 T100\r\nx\r\n", b"HD\r\n");
        let line = String::from_utf8(line_of(&mut c, b"me me\r\n")).unwrap();
        let exp: i64 = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("exp=")?.parse().ok())
            .unwrap();
        assert!((-100..=-98).contains(&exp), "[{}] {line}", c.label);
    }
}

#[test]
fn meta_t_reports_the_ttl_as_of_its_place_among_the_flags() {
    // memcached applies T and N while it walks the flags: a `t` before them shows the
    // TTL the item had, and an item N creates keeps whichever of N and T comes last.
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(
            b"ms tw 1 T100\r\nx\r\nmg tw t T30\r\nmg tw T40 t\r\n",
            b"HD\r\nHD t100\r\nHD t40\r\n",
        );
        c.roundtrip(b"mg tn t N30\r\nmg tn t\r\n", b"HD t-1 W\r\nHD t30 Z\r\n");
        c.roundtrip(
            b"mg tnt N10 T30 t\r\nmg tnt t\r\nmg ttn T30 N10 t\r\nmg ttn t\r\n",
            b"HD t30 W\r\nHD t30 Z\r\nHD t10 W\r\nHD t10 Z\r\n",
        );
        c.roundtrip(
            b"ms ta 1 T100\r\n5\r\nma ta v t T30\r\nma ta v t\r\nma tb t N30 v\r\nma tc N30 T60 t\r\nma tc t\r\n",
            b"HD\r\nVA 1 t100\r\n6\r\nVA 1 t30\r\n7\r\nVA 1 t-1\r\n0\r\nHD t60\r\nHD t60\r\n",
        );
        // `me` reads only a first `b` flag.
        c.send(b"me tw v\r\n");
        assert!(c.read_line().starts_with(b"ME tw exp="), "[{}]", c.label);
        c.roundtrip(b"me tw b\r\n", b"CLIENT_ERROR bad command line format\r\n");
    }
}

#[test]
fn meta_cas_zero_and_arithmetic_order_of_checks() {
    for server in servers(&[]) {
        let mut c = server.connect();
        let never = u64::MAX;
        // ma: an empty value is refused before the CAS is compared; C0 compares nothing.
        c.roundtrip(
            format!("mg ze N30\r\nma ze C{never}\r\n").as_bytes(),
            b"HD W\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        );
        c.roundtrip(b"ms zn 1\r\n5\r\nma zn C0 v\r\n", b"HD\r\nVA 1\r\n6\r\n");
        // An increment is an access, not a fetch.
        c.roundtrip(b"mg zn h\r\nmg zn h\r\n", b"HD h0\r\nHD h1\r\n");
        // An add that collides is an access too; a vivifying mg reads what it creates.
        c.roundtrip(
            b"ms za 1\r\nx\r\nms za 1 ME\r\ny\r\nmg za h\r\n",
            b"HD\r\nNS\r\nHD h0\r\n",
        );
        c.roundtrip(b"mg zv N30 h\r\nmg zv h\r\n", b"HD h0 W\r\nHD h1 Z\r\n");
        // ms I with C0 is no older CAS: refused.
        c.roundtrip(b"ms zn 1 I C0\r\n7\r\nmg zn v\r\n", b"EX\r\nVA 1\r\n6\r\n");
    }
}
