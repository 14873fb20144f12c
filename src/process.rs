//! Process setup the way memcached does it, so Debian's wrapper, init scripts and systemd
//! units work unchanged: refuse root without `-u`, raise the descriptor limit for `-c`,
//! daemonize for `-d`, write the `-P` pid file, then drop to the `-u` user. All of it runs
//! before the runtime starts any thread.
//!
//! The system calls go through `nix`, whose safe wrappers copy the password entry out of
//! libc's static storage and turn every failure into an `Errno`, so this file needs no
//! `unsafe` of its own.

use crate::config::Settings;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::{User, daemon, geteuid, getuid, setgid, setgroups, setuid};

/// Descriptors kept beyond `-c` for listeners, logs and the like.
const SPARE_DESCRIPTORS: u64 = 64;

/// Why the process could not be set up; printed before exiting.
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Removes the pid file when the server exits.
pub struct PidFile(Option<String>);

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn running_as_root() -> bool {
    getuid().is_root() || geteuid().is_root()
}

/// Prepares the process; call once, before any thread exists.
pub fn prepare(settings: &Settings) -> Result<PidFile, SetupError> {
    let root = running_as_root();
    if root && settings.user.is_none() {
        return Err(SetupError("can't run as root without the -u switch".into()));
    }
    raise_descriptor_limit(settings.max_connections as u64 + SPARE_DESCRIPTORS);
    if settings.daemonize {
        // daemon(3) forks and detaches; no other thread exists yet. Like memcached, keep
        // stderr only when asked to be verbose.
        daemon(false, settings.verbosity > 0).map_err(|error| {
            SetupError(format!("failed to daemon() in order to daemonize: {error}"))
        })?;
    }
    let pid_file = match &settings.pid_file {
        Some(path) => {
            if let Err(error) = std::fs::write(path, format!("{}\n", std::process::id())) {
                // memcached only warns: a missing run directory must not stop the cache.
                eprintln!("Could not open the pid file {path} for writing: {error}");
            }
            PidFile(Some(path.clone()))
        }
        None => PidFile(None),
    };
    if root && let Some(user) = &settings.user {
        drop_privileges(user)?;
    }
    Ok(pid_file)
}

fn raise_descriptor_limit(wanted: u64) {
    let Ok((current, maximum)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if current >= wanted {
        return;
    }
    if setrlimit(Resource::RLIMIT_NOFILE, wanted, maximum.max(wanted)).is_err() {
        eprintln!("failed to set rlimit for open files to {wanted}; -c may not be reachable");
    }
}

fn drop_privileges(user: &str) -> Result<(), SetupError> {
    let not_found = || SetupError(format!("can't find the user {user} to switch to"));
    let entry = User::from_name(user)
        .map_err(|_| not_found())?
        .ok_or_else(not_found)?;
    // Not fatal: a container may forbid setgroups; setgid/setuid below decide.
    let _ = setgroups(&[]);
    // Group first, while we still may.
    setgid(entry.gid)
        .and_then(|()| setuid(entry.uid))
        .map_err(|error| SetupError(format!("failed to assume identity of user {user}: {error}")))
}
