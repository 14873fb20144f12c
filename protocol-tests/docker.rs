//! What can be checked of docker/ without a Docker engine: the entrypoint's behaviour,
//! that compose.yml parses and names files that exist, and the Dockerfile's promises.

use crate::support::python_yaml_check;
use std::path::Path;
use std::process::Command;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn entrypoint_puts_ferrocached_in_front_of_flags() {
    let dir = std::env::temp_dir().join(format!("ferrocached-entry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("ferrocached");
    std::fs::write(&fake, "#!/bin/sh\necho \"ferrocached $*\"\n").unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| {
        let output = Command::new("sh")
            .arg(repository().join("docker/entrypoint.sh"))
            .args(args)
            .env("PATH", &path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(run(&["-m", "256", "-vv"]), "ferrocached -m 256 -vv");
    assert_eq!(run(&["ferrocached", "-p", "1"]), "ferrocached -p 1");
    assert_eq!(run(&["echo", "other command"]), "other command");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compose_file_parses_and_names_existing_paths() {
    let script = r#"
import sys, yaml, os
root = sys.argv[1]
with open(os.path.join(root, "docker/compose.yml")) as f:
    compose = yaml.safe_load(f)
services = compose["services"]
assert set(services) >= {"n1", "n2", "prometheus"}, services
build = services["n1"]["build"]
context = os.path.normpath(os.path.join(root, "docker", build["context"]))
assert os.path.isfile(os.path.join(context, build["dockerfile"])), build
for volume in services["prometheus"]["volumes"]:
    source = volume.split(":")[0]
    assert os.path.isfile(os.path.join(root, "docker", source)), source
for node in ("n1", "n2"):
    assert "--metrics-listen" in services[node]["command"]
with open(os.path.join(root, "docker/prometheus.yml")) as f:
    targets = yaml.safe_load(f)["scrape_configs"][0]["static_configs"][0]["targets"]
assert targets == ["n1:9150", "n2:9150"], targets
print("ok")
"#;
    python_yaml_check(script, repository());
}

#[test]
fn dockerfile_runs_as_memcache_11211_and_copies_what_cargo_needs() {
    let dockerfile = std::fs::read_to_string(repository().join("docker/Dockerfile")).unwrap();
    assert!(dockerfile.contains("--gid 11211 memcache"));
    assert!(dockerfile.contains("--uid 11211"));
    assert!(dockerfile.contains("USER memcache"));
    assert!(dockerfile.contains("EXPOSE 11211"));
    for line in dockerfile
        .lines()
        .filter(|line| line.starts_with("COPY ") && !line.contains("--from"))
    {
        for source in line
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .split_last()
            .unwrap()
            .1
        {
            assert!(
                repository().join(source).exists(),
                "Dockerfile copies missing {source}"
            );
        }
    }
}

#[test]
fn systemd_unit_turns_the_example_config_into_flags() {
    let unit = std::fs::read_to_string(repository().join("docker/ferrocached.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart=/bin/sh -c '"))
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("ExecStart runs a shell line");
    let config = repository().join("docker/memcached.conf");
    let line = exec
        .replace("$$", "$")
        .replace("/etc/ferrocached.conf", config.to_str().unwrap())
        .replace("exec /usr/bin/ferrocached", "echo");
    let output = Command::new("sh").args(["-c", &line]).output().unwrap();
    let flags = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert_eq!(
        flags,
        "-m 64 -p 11211 -u memcache -l 127.0.0.1 -P /var/run/memcached/memcached.pid -c 1024"
    );
}
