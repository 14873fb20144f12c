//! Memory limits: eviction under a small `-m`, `-M` refusing instead of evicting.

use crate::support::servers;

fn set_request(key: &str, value_len: usize) -> Vec<u8> {
    let mut request = format!("set {key} 0 0 {value_len}\r\n").into_bytes();
    request.extend(std::iter::repeat_n(b'v', value_len));
    request.extend_from_slice(b"\r\n");
    request
}

#[test]
fn small_memory_limit_evicts_the_oldest() {
    for server in servers(&["-m", "8"]) {
        let mut c = server.connect();
        let total = 2500;
        for i in 0..total {
            c.roundtrip(&set_request(&format!("ev{i}"), 10_000), b"STORED\r\n");
        }
        // The newest items are all present, the oldest are gone, evictions counted them.
        for i in total - 100..total {
            c.send(format!("get ev{i}\r\n").as_bytes());
            c.expect(format!("VALUE ev{i} 0 10000\r\n").as_bytes());
            c.read_exact_len(10_000);
            c.expect(b"\r\nEND\r\n");
        }
        c.roundtrip(b"get ev0\r\n", b"END\r\n");
        let evictions = c.stat("evictions");
        let items = c.stat("curr_items");
        assert!(evictions > 0, "[{}] evictions counted", c.label);
        assert_eq!(
            evictions + items,
            total,
            "[{}] every item is present or evicted",
            c.label
        );
    }
}

#[test]
fn disabled_evictions_refuse_new_items_and_keep_old_ones() {
    for server in servers(&["-m", "8", "-M"]) {
        let mut c = server.connect();
        let mut stored = 0;
        let mut refused = false;
        for i in 0..3000 {
            c.send(&set_request(&format!("nm{i}"), 10_000));
            let line = c.read_line();
            if line == b"STORED\r\n" {
                stored += 1;
                continue;
            }
            assert_eq!(
                String::from_utf8_lossy(&line),
                "SERVER_ERROR out of memory storing object\r\n",
                "[{}]",
                c.label
            );
            refused = true;
            break;
        }
        assert!(refused, "[{}] memory ran out", c.label);
        assert!(stored > 100, "[{}] stored {stored}", c.label);
        c.expect_quiet();
        // Nothing already stored was lost.
        for i in [0, stored / 2, stored - 1] {
            c.send(format!("get nm{i}\r\n").as_bytes());
            c.expect(format!("VALUE nm{i} 0 10000\r\n").as_bytes());
            c.read_exact_len(10_000);
            c.expect(b"\r\nEND\r\n");
        }
        assert_eq!(c.stat("evictions"), 0, "[{}]", c.label);
    }
}
