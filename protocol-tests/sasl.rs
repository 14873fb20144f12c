//! `-S`: SASL PLAIN over the binary protocol, with memcached's password-file format
//! (`MEMCACHED_SASL_PWDB`). Debian's memcached cannot start with -S without a Cyrus SASL
//! setup, so these expectations follow memcached's protocol documentation.

use crate::binary::{request, response};
use crate::support::{Kind, external_target, start};

#[test]
fn sasl_plain_gates_the_binary_protocol() {
    if external_target() {
        return;
    }
    let file = std::env::temp_dir().join(format!("ferrocached-sasl-{}", std::process::id()));
    std::fs::write(&file, "alice:secret\n").unwrap();
    let option = format!("sasl_pwdb={}", file.display());
    let server = start(Kind::Ferrocached, &["-S", "-o", &option]);

    // Before authentication: mechanisms and version are served; data is refused and
    // the connection closed.
    let mut c = server.connect();
    c.send(&request(0x20, b"", &[], &[], 1, 0));
    assert_eq!(response(&mut c).6, b"PLAIN");
    c.send(&request(0x0b, b"", &[], &[], 2, 0));
    assert!(response(&mut c).6.starts_with(b"1.6."));
    c.send(&request(0x00, b"k", &[], &[], 3, 0));
    let (_, status, _, _, _, _, value) = response(&mut c);
    assert_eq!((status, value), (0x20, b"Auth failure.".to_vec()));
    assert!(c.is_closed());

    let mut c = server.connect();
    c.send(&request(0x21, b"PLAIN", &[], b"\0alice\0wrong", 4, 0));
    assert_eq!(response(&mut c).1, 0x20);
    assert!(c.is_closed());

    let mut c = server.connect();
    c.send(&request(0x21, b"PLAIN", &[], b"\0alice\0secret", 5, 0));
    let (_, status, _, _, _, _, value) = response(&mut c);
    assert_eq!((status, value), (0, b"Authenticated".to_vec()));
    c.send(&request(0x01, b"k", &[0; 8], b"v", 6, 0));
    assert_eq!(response(&mut c).1, 0);
    c.send(&request(0x00, b"k", &[], &[], 7, 0));
    assert_eq!(response(&mut c).6, b"v");

    // The text protocol is off under -S.
    let mut c = server.connect();
    c.send(b"get k\r\n");
    assert!(c.is_closed());
    let _ = std::fs::remove_file(&file);
}
