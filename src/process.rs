//! Process setup the way memcached does it, so Debian's wrapper, init scripts and systemd
//! units work unchanged: refuse root without `-u`, raise the descriptor limit for `-c`,
//! daemonize for `-d`, write the `-P` pid file, then drop to the `-u` user. All of it runs
//! before the runtime starts any thread.

use crate::config::Settings;
use std::ffi::CString;

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
    // SAFETY: getuid/geteuid have no preconditions.
    unsafe { libc::getuid() == 0 || libc::geteuid() == 0 }
}

/// Prepares the process; call once, before any thread exists.
pub fn prepare(settings: &Settings) -> Result<PidFile, SetupError> {
    let root = running_as_root();
    if root && settings.user.is_none() {
        return Err(SetupError("can't run as root without the -u switch".into()));
    }
    raise_descriptor_limit(settings.max_connections as u64 + SPARE_DESCRIPTORS);
    if settings.daemonize {
        let keep_output = i32::from(settings.verbosity > 0);
        // SAFETY: no other thread exists yet; daemon(3) forks and detaches.
        if unsafe { libc::daemon(0, keep_output) } != 0 {
            return Err(SetupError(format!(
                "failed to daemon() in order to daemonize: {}",
                std::io::Error::last_os_error()
            )));
        }
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
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= wanted {
            return;
        }
        limit.rlim_cur = wanted;
        if limit.rlim_max < wanted {
            limit.rlim_max = wanted;
        }
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            eprintln!("failed to set rlimit for open files to {wanted}; -c may not be reachable");
        }
    }
}

fn drop_privileges(user: &str) -> Result<(), SetupError> {
    let name = CString::new(user)
        .map_err(|_| SetupError(format!("can't find the user {user} to switch to")))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy the ids out
    // before any other call that could overwrite it.
    let (uid, gid) = unsafe {
        let entry = libc::getpwnam(name.as_ptr());
        if entry.is_null() {
            return Err(SetupError(format!(
                "can't find the user {user} to switch to"
            )));
        }
        ((*entry).pw_uid, (*entry).pw_gid)
    };
    // SAFETY: plain system calls; group first, while we still may.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 && libc::getuid() == 0 {
            // Not fatal: a container may forbid setgroups; setgid/setuid below decide.
        }
        if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            return Err(SetupError(format!(
                "failed to assume identity of user {user}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}
