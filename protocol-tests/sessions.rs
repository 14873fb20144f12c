//! memcached-session-manager's pattern against two ferrocached nodes, with its own
//! client (spymemcached) in text and binary protocol: sessions on n1 with backups on n2,
//! validity keys, add-based locks, concurrent updates, expiry; then n1 goes down (its
//! sessions are read from n2's backups) and comes back from its `-e` file.

use crate::support::{Kind, Server, external_target, skip, start, tool};
use std::path::Path;
use std::process::Command;

fn port(server: &Server) -> String {
    server.address.rsplit(':').next().unwrap().to_string()
}

#[test]
fn msm_sessions_survive_node_loss_and_restart() {
    if external_target() {
        return;
    }
    let jar = Path::new("/usr/share/java/spymemcached.jar");
    let Some(mut javac) = tool("javac") else {
        return;
    };
    if !jar.exists() {
        skip(format!("spymemcached ({}) is not installed", jar.display()));
        return;
    }
    let dir = std::env::temp_dir().join(format!("ferrocached-msm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/clients/MsmCheck.java");
    let compiled = javac
        .args(["-cp", jar.to_str().unwrap(), "-d", dir.to_str().unwrap()])
        .arg(&source)
        .output()
        .expect("javac");
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let classpath = format!("{}:{}", jar.display(), dir.display());
    let run = |phase: &str, n1: &str, n2: &str, mode: &str| {
        let output = Command::new("java")
            .args(["-cp", &classpath, "MsmCheck", phase, n1, n2, mode])
            .output()
            .expect("java");
        assert!(
            output.status.success(),
            "msm {phase} {mode}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    for mode in ["text", "binary"] {
        let snapshot = dir.join(format!("n1-{mode}.snapshot"));
        let snapshot = snapshot.to_str().unwrap();
        let n1 = start(Kind::Ferrocached, &["-e", snapshot]);
        let n2 = start(Kind::Ferrocached, &[]);
        let (n1_port, n2_port) = (port(&n1), port(&n2));
        run("write", &n1_port, &n2_port, mode);
        n1.stop_with(libc::SIGTERM);
        drop(n1);
        run("failover", &n1_port, &n2_port, mode);
        let n1 = start(Kind::Ferrocached, &["-e", snapshot]);
        run("restored", &port(&n1), &n2_port, mode);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
