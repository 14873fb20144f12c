//! `-o io_engine`: ferrocached's own option (memcached refuses it as an illegal
//! suboption), so these tests run against ferrocached alone. The rest of the suite runs
//! once per engine (scripts/test sets `FERROCACHED_IO_ENGINE`).

use crate::support::{Kind, command_for, free_port, io_engine, start, start_command};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn engine_shown(server: &crate::support::Server) -> String {
    server
        .connect()
        .stats("settings")
        .into_iter()
        .find(|(name, _)| name == "io_engine")
        .map(|(_, value)| value)
        .expect("stats settings shows io_engine")
}

/// CPUs the machine has online (`nproc --all`), whatever this process may use.
fn online_cpus() -> usize {
    let output = std::process::Command::new("nproc")
        .arg("--all")
        .output()
        .expect("nproc");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("nproc prints a number")
}

/// ferrocached with `-o io_engine=auto -t threads`, allowed to run on CPU 0 only.
fn pinned_to_cpu_zero(threads: usize) -> crate::support::Server {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let threads = threads.to_string();
    let mut command = command_for(
        Kind::Ferrocached,
        port,
        &["-o", "io_engine=auto", "-t", &threads],
    );
    // SAFETY: sched_setaffinity on the child between fork and exec touches only a local
    // CPU set and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    start_command(Kind::Ferrocached, port, command)
}

/// Runs a command line that should exit by itself: its status and stderr.
fn run_to_exit(flags: &[&str]) -> (Option<i32>, String) {
    let mut child = command_for(Kind::Ferrocached, 1, flags)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[test]
fn stats_settings_shows_the_engine_chosen() {
    let epoll = start(Kind::Ferrocached, &["-o", "io_engine=epoll"]);
    assert_eq!(engine_shown(&epoll), "epoll");
    // Forced: either it runs on io_uring or it refuses to start, saying why.
    let port = crate::support::free_port();
    let mut forced = command_for(Kind::Ferrocached, port, &["-o", "io_engine=uring"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect(&address).is_ok() {
            let _ = forced.kill();
            let _ = forced.wait();
            let uring = start(Kind::Ferrocached, &["-o", "io_engine=uring"]);
            assert_eq!(engine_shown(&uring), "uring");
            // The default is io_uring where the kernel offers it and each worker has a
            // CPU of its own: of half the machine when the server shares it, of every CPU
            // set aside for it when it was given fewer (taskset).
            let online = online_cpus();
            let shared_machine = |threads: usize| {
                let threads = threads.to_string();
                start(Kind::Ferrocached, &["-o", "io_engine=auto", "-t", &threads])
            };
            let expected = if online >= 2 { "uring" } else { "epoll" };
            assert_eq!(engine_shown(&shared_machine(1)), expected);
            assert_eq!(engine_shown(&shared_machine(online / 2 + 1)), "epoll");
            if online >= 2 {
                assert_eq!(engine_shown(&pinned_to_cpu_zero(1)), "uring");
                assert_eq!(engine_shown(&pinned_to_cpu_zero(2)), "epoll");
            }
            break;
        }
        if forced.try_wait().expect("wait").is_some() {
            let output = forced.wait_with_output().expect("wait");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(64), "{stderr}");
            assert!(
                stderr.contains("io_engine=uring is unavailable: "),
                "{stderr}"
            );
            // Without io_uring the default falls back to epoll.
            let default = start(Kind::Ferrocached, &["-o", "io_engine=auto"]);
            assert_eq!(engine_shown(&default), "epoll");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "io_engine=uring neither started nor exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_suites_engine_is_the_one_in_use() {
    let server = start(Kind::Ferrocached, &[]);
    let shown = engine_shown(&server);
    match io_engine().as_deref() {
        Some("auto") | None => assert!(shown == "uring" || shown == "epoll", "{shown}"),
        Some(engine) => assert_eq!(shown, engine),
    }
}

#[test]
fn an_unknown_io_engine_is_refused_at_start() {
    let (status, stderr) = run_to_exit(&["-o", "io_engine=kqueue"]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("Invalid io_engine: \"kqueue\" (auto, uring or epoll)"),
        "{stderr}"
    );
}

/// The names of the server process's threads.
fn thread_names(server: &crate::support::Server) -> Vec<String> {
    let pid = server.pid().expect("a server this test started");
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc lists the server's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn each_worker_serves_plain_tcp_on_an_engine_thread_of_its_own() {
    let server = start(Kind::Ferrocached, &["-o", "io_engine=epoll", "-t", "2"]);
    // The thread serves: a request and its reply pass through it.
    let mut client = server.connect();
    client.send(b"set k 0 0 1\r\nv\r\nget k\r\n");
    client.expect(b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n");
    let names = thread_names(&server);
    let engines: Vec<&String> = names
        .iter()
        .filter(|name| name.starts_with("epoll-") || name.starts_with("ring-"))
        .collect();
    assert_eq!(engines, ["epoll-0", "epoll-1"], "threads: {names:?}");
}
