//! A short bounded run of every fuzz target (`protocol-tests/fuzz`), when cargo-fuzz is
//! installed. The targets check invariants, not just "no panic"; see their sources.

use crate::support::skip;
use std::path::Path;
use std::process::Command;

const TARGETS: &[&str] = &["text_parser", "binary_parser", "connection"];

#[test]
fn fuzz_targets_hold_their_invariants() {
    let available = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !available {
        skip("cargo-fuzz is not installed");
        return;
    }
    let seconds = std::env::var("FUZZ_SECONDS").unwrap_or_else(|_| "20".into());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/fuzz");
    for target in TARGETS {
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).unwrap();
        let output = Command::new("cargo")
            .current_dir(&dir)
            // cargo-fuzz needs nightly flags; the stable toolchain accepts them this way.
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--fuzz-dir", ".", target])
            .arg(&corpus)
            .arg(dir.join("seeds").join(target))
            .args(["--", &format!("-max_total_time={seconds}")])
            .output()
            .expect("cargo fuzz runs");
        assert!(
            output.status.success(),
            "fuzz target {target} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
