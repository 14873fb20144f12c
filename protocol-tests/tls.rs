//! TLS (`-Z`) with memcached's options, `notls:` listeners, `refresh_certs` and the
//! `ssl_*` stats, driven by real TLS clients (openssl s_client, pymemcache), against both
//! servers.

use crate::support::{
    Kind, external_target, free_port, memcached_available, servers, skip, start, tool,
};
use std::io::Write;
use std::process::{Command, Stdio};

/// A throwaway self-signed certificate and key.
fn certificate(dir: &std::path::Path) -> Option<(String, String)> {
    let mut openssl = tool("openssl")?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = openssl
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status
        .success()
        .then(|| (cert.display().to_string(), key.display().to_string()))
}

#[test]
fn tls_listeners_serve_real_tls_clients() {
    let dir = std::env::temp_dir().join(format!("ferrocached-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some((cert, key)) = certificate(&dir) else {
        return;
    };
    let options = format!("ssl_chain_cert={cert},ssl_key={key}");
    if external_target() {
        return;
    }
    let mut kinds = vec![Kind::Ferrocached];
    if memcached_available() {
        kinds.push(Kind::Memcached);
    }
    for kind in kinds {
        // Each server gets its own plain-text port next to its TLS one.
        let plain_port = free_port();
        let plain = format!("notls:127.0.0.1:{plain_port}");
        let server = start(kind, &["-Z", "-o", &options, "-l", &plain]);
        // openssl s_client speaks to the TLS listener.
        let mut client = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &server.address])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        client
            .stdin
            .take()
            .unwrap()
            .write_all(b"set t 0 0 2\r\nok\r\nget t\r\nrefresh_certs\r\nquit\r\n")
            .unwrap();
        let output = client.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("STORED\r\nVALUE t 0 2\r\nok\r\nEND\r\nOK\r\n"),
            "[{:?}] over TLS: {text:?}",
            server.kind
        );

        // The notls: listener is plain text and shares the data.
        let mut c = crate::support::Client {
            stream: std::net::TcpStream::connect(("127.0.0.1", plain_port)).unwrap(),
            label: format!("{:?} notls", server.kind),
        };
        c.stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        c.roundtrip(b"get t\r\n", b"VALUE t 0 2\r\nok\r\nEND\r\n");

        // A plain-text client on the TLS port fails its handshake and is counted.
        let mut wrong = server.connect();
        wrong.send(b"version\r\n");
        // The server may send a TLS alert before closing; never a memcached reply.
        let mut seen = Vec::new();
        let mut buffer = [0u8; 256];
        wrong
            .stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        while let Ok(n @ 1..) = std::io::Read::read(&mut wrong.stream, &mut buffer) {
            seen.extend_from_slice(&buffer[..n]);
        }
        assert!(
            !seen.starts_with(b"VERSION"),
            "[{:?}] plain text on the TLS port",
            server.kind
        );
        drop(wrong);
        // memcached counts the failure when its worker gets to the socket, which on a
        // loaded machine can take seconds: poll for it.
        // On a heavily loaded machine memcached 1.6.18 was seen not to count it at all
        // (its worker met the client's close before the bad record): that is reported,
        // not failed, for memcached; ferrocached must count it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while c.stat("ssl_handshake_errors") == 0 {
            if std::time::Instant::now() >= deadline {
                assert_ne!(server.kind, Kind::Ferrocached, "handshake error counted");
                eprintln!("NOTE: memcached did not count this handshake error in 30 s");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let settings = c.stats("settings");
        assert!(settings.contains(&("ssl_enabled".into(), "yes".into())));
        assert!(settings.contains(&("ssl_chain_cert".into(), cert.clone())));

        // pymemcache with an SSL context, trusting our certificate.
        let script = format!(
            "import ssl\nfrom pymemcache.client.base import Client\n\
             ctx = ssl.create_default_context(cafile={cert:?})\nctx.check_hostname = False\n\
             c = Client(('127.0.0.1', {port}), tls_context=ctx, connect_timeout=5, timeout=5)\n\
             assert c.set('py', b'tls', noreply=False)\nassert c.get('py') == b'tls'\nprint('ok')\n",
            port = server.address.rsplit(':').next().unwrap()
        );
        let output = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No module named 'pymemcache'") {
            skip("the Python module pymemcache is not installed");
        } else {
            assert!(
                output.status.success(),
                "[{:?}] pymemcache over TLS: {stderr}",
                server.kind
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refresh_certs_without_tls_says_so() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"refresh_certs\r\n", b"Error TLS not enabled\r\n");
    }
}

#[test]
fn sighup_reloads_the_certificates() {
    if external_target() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ferrocached-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some((cert, key)) = certificate(&dir) else {
        return;
    };
    let options = format!("ssl_chain_cert={cert},ssl_key={key}");
    let plain_port = free_port();
    let plain = format!("notls:127.0.0.1:{plain_port}");
    let server = start(Kind::Ferrocached, &["-Z", "-o", &options, "-l", &plain]);
    let mut c = crate::support::Client {
        stream: std::net::TcpStream::connect(("127.0.0.1", plain_port)).unwrap(),
        label: "ferrocached notls".into(),
    };
    c.stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(c.stat("time_since_server_cert_refresh") >= 2);
    // A broken key file makes refresh fail and keeps the old certificates.
    std::fs::write(&key, "not a key").unwrap();
    c.send(b"refresh_certs\r\n");
    assert!(c.read_line().starts_with(b"ERROR "));
    // Fresh files and SIGHUP: reloaded.
    certificate(&dir).unwrap();
    // SAFETY: signalling the server we started.
    unsafe { libc::kill(server.pid().unwrap() as i32, libc::SIGHUP) };
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        c.stat("time_since_server_cert_refresh") <= 1,
        "SIGHUP reloaded"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
