//! The Debian package (`cargo deb`, `[package.metadata.deb]` in Cargo.toml): built,
//! installed with `dpkg -i`, started the way its systemd unit starts it (no systemd
//! runs here: the unit's ExecStart, the wrapper, run as root), checked, then purged.
//!
//! To stay cheap the test packages the binary `cargo test` has just built
//! (`--no-build --profile dev`, stripped by cargo-deb) instead of a release build;
//! `cargo deb` without flags builds the release package the same way.

use crate::support::{skip, tool};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const UNIT: &str = "/usr/lib/systemd/system/ferrocached.service";
const CONFIG: &str = "/etc/ferrocached.conf";
const DATA: &str = "/var/lib/ferrocached";

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", "ferrocached"])
        .output()
        .is_ok_and(|output| {
            String::from_utf8_lossy(&output.stdout).contains("install ok installed")
        })
}

/// A `passwd` or `group` entry.
fn entry(database: &str, name: &str) -> Option<Vec<String>> {
    let output = Command::new("getent")
        .args([database, name])
        .output()
        .ok()?;
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .split(':')
            .map(str::to_string)
            .collect()
    })
}

/// Purges the package when the test ends, passed or not.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if installed() {
            let _ = Command::new("dpkg")
                .args(["--purge", "ferrocached"])
                .output();
        }
    }
}

/// The server started from the unit, stopped with SIGTERM (systemd's KillSignal).
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{path}: {error}"))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn debian_package_installs_serves_and_purges() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("dpkg -i needs root");
        return;
    }
    if tool("dpkg").is_none() || tool("cargo-deb").is_none() {
        return;
    }
    assert!(
        !installed(),
        "a ferrocached package is already installed; this test would purge it"
    );
    let dir = std::env::temp_dir().join(format!("ferrocached-package-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let deb = dir.join("ferrocached.deb");
    run(Command::new("cargo")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "deb",
            "--no-build",
            "--profile",
            "dev",
            "--fast",
            "--quiet",
            "-o",
        ])
        .arg(&deb));
    let _purge_at_end = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(installed());

    // The user and the files, as postinst and the package made them.
    let user = entry("passwd", "ferrocached").expect("postinst created user ferrocached");
    assert_eq!(user[5], "/nonexistent", "no home: {user:?}");
    assert_eq!(user[6], "/usr/sbin/nologin", "no login: {user:?}");
    let uid: u32 = user[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {user:?}");
    let group = entry("group", "ferrocached").expect("postinst created group ferrocached");
    let data = std::fs::metadata(DATA).unwrap();
    assert!(data.is_dir());
    assert_eq!(mode(DATA), 0o700, "{DATA} is the server's alone");
    assert_eq!(
        (data.uid(), data.gid().to_string()),
        (uid, group[2].clone())
    );
    assert_eq!(mode("/usr/bin/ferrocached"), 0o755);
    assert_eq!(mode(CONFIG), 0o644);
    assert_eq!(
        mode("/usr/share/ferrocached/systemd-ferrocached-wrapper"),
        0o755
    );
    let conffiles =
        run(Command::new("dpkg-query").args(["-W", "-f", "${Conffiles}", "ferrocached"]));
    assert!(conffiles.contains(CONFIG), "a conffile: {conffiles}");

    // systemd's own reader accepts the unit and the cluster's template unit, whose
    // ExecStart is the wrapper the package installed.
    let template_dir = dir.join("units");
    std::fs::create_dir_all(&template_dir).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/tomcat-cluster/ferrocached/ferrocached@.service"),
        template_dir.join("ferrocached@.service"),
    )
    .unwrap();
    for unit in [
        PathBuf::from(UNIT),
        template_dir.join("ferrocached@n1.service"),
    ] {
        let Some(mut verify) = tool("systemd-analyze") else {
            break;
        };
        let output = verify.arg("verify").arg(&unit).output().unwrap();
        let complaints = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success() && complaints.trim().is_empty(),
            "systemd-analyze verify {}: {complaints}",
            unit.display()
        );
    }

    // Start it as systemd would: RuntimeDirectory=, then ExecStart as root.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    assert!(unit.contains("Conflicts=memcached.service"));
    let runtime = unit
        .lines()
        .find_map(|line| line.strip_prefix("RuntimeDirectory="))
        .expect("RuntimeDirectory=");
    std::fs::create_dir_all(Path::new("/run").join(runtime)).unwrap();
    let exec: Vec<&str> = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("ExecStart=")
        .split_whitespace()
        .collect();
    // The shipped config listens on memcached's port; the test takes an ephemeral one.
    let port = crate::support::free_port();
    let config = std::fs::read_to_string(CONFIG).unwrap();
    assert!(config.contains("\n-p 11211\n") && config.contains("\n-u ferrocached\n"));
    assert!(config.contains("\n-e /var/lib/ferrocached/cache.snapshot\n"));
    std::fs::write(
        CONFIG,
        config.replace("\n-p 11211\n", &format!("\n-p {port}\n")),
    )
    .unwrap();
    let service = Service(
        Command::new(exec[0])
            .args(&exec[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the unit's ExecStart runs"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            break stream;
        }
        assert!(
            Instant::now() < deadline,
            "the packaged server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"set pkg 0 0 2\r\nok\r\nget pkg\r\n")
        .unwrap();
    let expected = b"STORED\r\nVALUE pkg 0 2\r\nok\r\nEND\r\n";
    let mut reply = vec![0; expected.len()];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply, expected);
    let pid_file = unit
        .lines()
        .find_map(|line| line.strip_prefix("PIDFile="))
        .expect("PIDFile=");
    let pid: u32 = std::fs::read_to_string(pid_file)
        .expect("the pid file the unit names")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, service.0.id(), "the wrapper execs the server in place");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let running_as = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .map(|id| id.parse::<u32>().unwrap());
    assert_eq!(running_as, Some(uid), "runs as ferrocached");
    drop(stream);
    drop(service);
    // SIGTERM saved the warm-restart file, the server's own and private.
    let snapshot = format!("{DATA}/cache.snapshot");
    let saved = std::fs::metadata(&snapshot).expect("SIGTERM saved the -e snapshot");
    assert_eq!(saved.uid(), uid);
    assert_eq!(mode(&snapshot), 0o600);

    run(Command::new("dpkg").args(["--purge", "ferrocached"]));
    assert!(!installed());
    for path in [
        "/usr/bin/ferrocached",
        CONFIG,
        DATA,
        UNIT,
        "/run/ferrocached",
    ] {
        assert!(!Path::new(path).exists(), "purge removed {path}");
    }
    assert_eq!(
        entry("passwd", "ferrocached"),
        None,
        "purge removed the user"
    );
    assert_eq!(
        entry("group", "ferrocached"),
        None,
        "purge removed the group"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
