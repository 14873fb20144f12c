//! `-Y` text-protocol authentication, against both servers.

use crate::support::{Client, Kind, servers};
use std::time::Duration;

/// After a refusal the rest of that write is dropped, and later commands are refused
/// again (memcached keeps the connection).
fn refuses_again(c: &mut Client) {
    std::thread::sleep(Duration::from_millis(100));
    c.roundtrip(b"version\r\n", b"CLIENT_ERROR unauthenticated\r\n");
}

#[test]
fn clients_must_authenticate_with_a_set() {
    let file = std::env::temp_dir().join(format!("ferrocached-auth-{}", std::process::id()));
    std::fs::write(&file, "alice:secret\nbob:hunter2\n").unwrap();
    for server in servers(&["-Y", file.to_str().unwrap()]) {
        let mut c = server.connect();
        c.roundtrip(b"get a\r\nversion\r\n", b"CLIENT_ERROR unauthenticated\r\n");
        refuses_again(&mut c);

        let mut c = server.connect();
        c.roundtrip(
            b"set auth 0 0 12\r\nalice wrong!\r\n",
            b"CLIENT_ERROR authentication failure\r\n",
        );
        refuses_again(&mut c);

        let mut c = server.connect();
        c.roundtrip(
            b"set auth 0 0 12\r\nalice wrong!\r\nget k\r\n",
            b"CLIENT_ERROR unauthenticated\r\n",
        );
        refuses_again(&mut c);

        let mut c = server.connect();
        c.roundtrip(b"set auth 0 0 12\r\nalice secret\r\n", b"STORED\r\n");
        c.roundtrip(
            b"set k 0 0 1\r\nx\r\nget k\r\n",
            b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n",
        );
        // The authenticating set stores nothing.
        c.roundtrip(b"get auth\r\n", b"END\r\n");
        if server.kind == Kind::Ferrocached {
            assert_eq!(c.stat("auth_errors"), 6);
            assert_eq!(c.stat("auth_cmds"), 3);
        }
    }
    let _ = std::fs::remove_file(&file);
}
