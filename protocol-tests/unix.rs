//! `-s` unix sockets with `-a` permissions, replacing TCP as in memcached.

use crate::support::{Kind, command_for, memcached_available};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

#[test]
fn unix_socket_serves_the_text_protocol_instead_of_tcp() {
    let mut kinds = vec![Kind::Ferrocached];
    if memcached_available() {
        kinds.push(Kind::Memcached);
    }
    for kind in kinds {
        let dir =
            std::env::temp_dir().join(format!("ferrocached-unix-{}-{kind:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mc.sock");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut child = command_for(kind, port, &["-s", path.to_str().unwrap(), "-a", "0770"])
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            if let Ok(stream) = UnixStream::connect(&path) {
                break stream;
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not open {}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o770, "{kind:?} applies -a");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(b"set u 0 0 2\r\nok\r\nget u\r\n").unwrap();
        let expected = b"STORED\r\nVALUE u 0 2\r\nok\r\nEND\r\n";
        let mut got = vec![0; expected.len()];
        stream.read_exact(&mut got).unwrap();
        assert_eq!(got, expected, "{kind:?}");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{kind:?}: -s replaces TCP"
        );
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
