//! Real client libraries against both servers: pymemcache (text), pylibmc (binary,
//! libmemcached) and spymemcached (text and binary, memcached-session-manager's client).

use crate::support::{servers, skip, tool};
use std::path::Path;
use std::process::Command;

fn port_of(address: &str) -> String {
    address.rsplit(':').next().unwrap().to_string()
}

fn python_has(module: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        skip(format!("the Python module {module} is not installed"));
    }
    found
}

#[test]
fn pymemcache_and_pylibmc() {
    if !python_has("pymemcache") || !python_has("pylibmc") {
        return;
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/clients/python_clients.py");
    for server in servers(&[]) {
        let output = Command::new("python3")
            .arg(&script)
            .arg(port_of(&server.address))
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "[{:?}] {}{}",
            server.kind,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn spymemcached_text_and_binary() {
    let jar = Path::new("/usr/share/java/spymemcached.jar");
    let Some(mut javac) = tool("javac") else {
        return;
    };
    if !jar.exists() {
        skip(format!("spymemcached ({}) is not installed", jar.display()));
        return;
    }
    let classes = std::env::temp_dir().join(format!("ferrocached-spy-{}", std::process::id()));
    std::fs::create_dir_all(&classes).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/clients/SpyCheck.java");
    let compiled = javac
        .args([
            "-cp",
            jar.to_str().unwrap(),
            "-d",
            classes.to_str().unwrap(),
        ])
        .arg(&source)
        .output()
        .expect("javac runs");
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let classpath = format!("{}:{}", jar.display(), classes.display());
    for server in servers(&[]) {
        for mode in ["text", "binary"] {
            let output = Command::new("java")
                .args([
                    "-cp",
                    &classpath,
                    "SpyCheck",
                    &port_of(&server.address),
                    mode,
                ])
                .output()
                .expect("java runs");
            assert!(
                output.status.success(),
                "[{:?}] spymemcached {mode}: {}{}",
                server.kind,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&classes);
}
