//! The io_uring data path for plain TCP connections (`-o io_engine=uring`, the default
//! where the kernel offers it).
//!
//! At depth 1 most of a cache server's CPU is kernel time in one receive and one send
//! system call per request. Here each worker thread drives one ring: receives are
//! multishot (armed once per connection, completing into buffers the ring provides), and
//! every reply that became ready during a loop turn is queued as a send and submitted
//! with the next wait, so a turn costs one `io_uring_enter` however many connections
//! it served.
//!
//! ```text
//!  tokio (control plane)                      ring thread (data plane), one per worker
//!  ─────────────────────                      ─────────────────────────────────────────
//!  accept, -c limit, Ticket (admit,   ──▶  inbox + eventfd ──▶ RecvMulti(fd, group)
//!  conn_new), socket + ticket                                     │ CQE: bytes in a
//!                                                                 ▼ provided buffer
//!  watch: served on the worker's   ◀──┐   Connection::begin_batch (shared with the
//!  runtime with socket and ticket     │   tokio path) ─▶ SendMsg ─▶ end_batch
//!  TLS, unix sockets, UDP: tokio only └── closed (ticket dropped: conn_close),
//!                                         idle, stopped, or a watcher
//! ```
//!
//! Ownership: the ring thread owns each connection's socket, read buffer, replies and
//! ticket (its `curr_connections` place, the live count a stopping worker waits for, the
//! `watch connevents` lines) while it serves it; the kernel owns a provided buffer from
//! the receive that filled it until the loop has run the requests in it (copying only an
//! incomplete rest into the connection's read buffer) and provides it again, and reads a
//! send's `msghdr`/iovecs (kept in the connection, pointing into its pending `Bytes`)
//! until that send completes. A connection leaves the ring only once no operation on it
//! is in flight.
//!
//! Backpressure matches the classic path: a connection does not parse while its replies
//! are being sent, and one that keeps sending meanwhile has its receive cancelled once
//! it has [`event_loop::READ_AHEAD_LIMIT`] bytes unparsed, re-armed after the send.

mod buffer_ring;
mod event_loop;

use super::Shared;
use super::handoff::{self, EngineHandle};
use crate::config::IoEngine;
use io_uring::{IoUring, opcode};
use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Why io_uring cannot serve here.
#[derive(Debug)]
pub struct Unavailable(String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A ring as the engine runs it. Completions are posted only when the ring's one
/// thread waits for them (`DEFER_TASKRUN`, Linux 6.1): the kernel never interrupts the
/// thread to run io_uring's task work, which otherwise costs more than the system calls
/// the ring saves.
fn build_ring(entries: u32) -> io::Result<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(entries * 8)
        .build(entries)
}

/// Checks that this kernel lets the process create a ring with what the engine uses:
/// multishot receive (Linux 6.0, detected by its sibling `SEND_ZC`), a buffer ring,
/// `sendmsg`, cancellation, waits with a timeout (`EXT_ARG`) and deferred task work. A seccomp filter or
/// `kernel.io_uring_disabled` makes the setup itself fail.
pub fn probe() -> Result<(), Unavailable> {
    let ring = build_ring(8).map_err(|error| Unavailable(format!("io_uring_setup: {error}")))?;
    if !ring.params().is_feature_ext_arg() {
        return Err(Unavailable("kernel lacks IORING_FEAT_EXT_ARG".into()));
    }
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|error| Unavailable(format!("io_uring probe: {error}")))?;
    buffer_ring::BufferRing::register(&ring, event_loop::BUFFER_GROUP, 1, 64)
        .map_err(|error| Unavailable(format!("io_uring buffer ring: {error}")))?;
    for (name, code) in [
        ("RECV", opcode::RecvMulti::CODE),
        ("SEND_ZC (multishot receive)", opcode::SendZc::CODE),
        ("SENDMSG", opcode::SendMsg::CODE),
        ("SEND", opcode::Send::CODE),
        ("ASYNC_CANCEL", opcode::AsyncCancel::CODE),
        ("READ", opcode::Read::CODE),
    ] {
        if !probe.is_supported(code) {
            return Err(Unavailable(format!("kernel lacks IORING_OP_{name}")));
        }
    }
    Ok(())
}

/// The CPUs the server may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus {
    /// CPUs the process may run on (its affinity mask and cgroup quota).
    pub allowed: usize,
    /// CPUs the machine has online.
    pub online: usize,
}

impl Cpus {
    /// This process's view of the machine.
    pub fn of_this_process() -> Cpus {
        let allowed = std::thread::available_parallelism().map_or(1, usize::from);
        // SAFETY: sysconf has no preconditions.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        Cpus {
            allowed,
            online: usize::try_from(online).unwrap_or(allowed).max(allowed),
        }
    }

    /// The process was given fewer CPUs than the machine has (`taskset`, a cpuset, a
    /// CPU quota): someone set them aside for it.
    fn dedicated(self) -> bool {
        self.allowed < self.online
    }
}

/// The engine to run with: `requested` as settled against what the kernel offers
/// (`available`) and the CPUs. A ring thread does all of its worker's connection work
/// and wins when it has a CPU to itself; sharing CPUs with other busy threads it lost to
/// epoll (2 CPUs, shared with the load generator, get90 efficiency against memcached:
/// `-t 2` io_uring ×0.82, epoll ×1.14; pinned to a CPU of its own, `-t 1`: io_uring
/// ×1.41, epoll ×1.26). So `auto` takes io_uring where each of the `threads` workers can
/// have a CPU: of the CPUs set aside for the process when it was given fewer than the
/// machine has, and of half the machine's otherwise (the other half is left to whatever
/// else runs there). Otherwise, and where the kernel refuses io_uring, `auto` uses epoll
/// with an info line; a forced `uring` that the kernel refuses is an error, not a silent
/// downgrade.
pub fn resolve(
    requested: IoEngine,
    threads: usize,
    cpus: Cpus,
    available: impl FnOnce() -> Result<(), Unavailable>,
) -> Result<IoEngine, String> {
    match requested {
        IoEngine::Epoll => Ok(IoEngine::Epoll),
        IoEngine::Uring => match available() {
            Ok(()) => Ok(IoEngine::Uring),
            Err(why) => Err(format!("io_engine=uring is unavailable: {why}")),
        },
        IoEngine::Auto
            if threads > cpus.allowed || (!cpus.dedicated() && threads * 2 > cpus.online) =>
        {
            tracing::info!(
                threads,
                allowed = cpus.allowed,
                online = cpus.online,
                "io_uring wants a CPU of its own per worker: plain TCP connections use epoll"
            );
            Ok(IoEngine::Epoll)
        }
        IoEngine::Auto => match available() {
            Ok(()) => Ok(IoEngine::Uring),
            Err(why) => {
                tracing::info!(%why, "io_uring unavailable: plain TCP connections use epoll");
                Ok(IoEngine::Epoll)
            }
        },
    }
}

/// Starts one worker's ring thread. It serves what [`EngineHandle`] hands it and
/// exits once stopped and drained (or after `drain_limit_ms`, read when the stop comes).
pub fn start(
    index: usize,
    shared: Arc<Shared>,
    watchers: handoff::WatcherHome,
    drain_limit_ms: Arc<AtomicU64>,
) -> io::Result<(Arc<EngineHandle>, std::thread::JoinHandle<()>)> {
    handoff::spawn(format!("ring-{index}"), watchers, move |handle, created| {
        // Created here: a single-issuer ring belongs to the thread that creates it.
        let built = build_ring(event_loop::SUBMISSION_ENTRIES)
            .and_then(|ring| event_loop::RingLoop::new(ring, &shared, handle, drain_limit_ms));
        handoff::run_built("io_uring", built, created, |mut ring| ring.run());
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: Cpus = Cpus {
        allowed: 2,
        online: 2,
    };

    fn refused() -> Result<(), Unavailable> {
        Err(Unavailable(
            "io_uring_setup: Operation not permitted".into(),
        ))
    }

    #[test]
    fn auto_falls_back_to_epoll_where_io_uring_is_refused() {
        assert_eq!(
            resolve(IoEngine::Auto, 1, TWO, refused),
            Ok(IoEngine::Epoll)
        );
        assert_eq!(
            resolve(IoEngine::Auto, 1, TWO, || Ok(())),
            Ok(IoEngine::Uring)
        );
    }

    #[test]
    fn auto_takes_io_uring_only_where_each_worker_has_a_cpu_of_its_own() {
        let auto = |threads, allowed, online| {
            resolve(IoEngine::Auto, threads, Cpus { allowed, online }, || Ok(()))
        };
        // A whole machine is shared: half of it for the rings.
        assert_eq!(auto(1, 2, 2), Ok(IoEngine::Uring));
        assert_eq!(auto(2, 2, 2), Ok(IoEngine::Epoll));
        assert_eq!(auto(4, 8, 8), Ok(IoEngine::Uring));
        assert_eq!(auto(5, 8, 8), Ok(IoEngine::Epoll));
        // CPUs set aside for the server (taskset, cpuset): all of them.
        assert_eq!(auto(1, 1, 2), Ok(IoEngine::Uring));
        assert_eq!(auto(2, 1, 2), Ok(IoEngine::Epoll));
        assert_eq!(auto(4, 4, 16), Ok(IoEngine::Uring));
        assert_eq!(auto(5, 4, 16), Ok(IoEngine::Epoll));
        // A forced uring is taken whatever the count.
        assert_eq!(
            resolve(IoEngine::Uring, 4, TWO, || Ok(())),
            Ok(IoEngine::Uring)
        );
    }

    #[test]
    fn a_forced_uring_that_is_refused_fails_with_the_reason() {
        let error = resolve(IoEngine::Uring, 1, TWO, refused).unwrap_err();
        assert_eq!(
            error,
            "io_engine=uring is unavailable: io_uring_setup: Operation not permitted"
        );
        assert_eq!(
            resolve(IoEngine::Uring, 1, TWO, || Ok(())),
            Ok(IoEngine::Uring)
        );
    }

    #[test]
    fn epoll_never_asks_the_kernel() {
        let asked = std::cell::Cell::new(false);
        let engine = resolve(IoEngine::Epoll, 1, TWO, || {
            asked.set(true);
            Ok(())
        });
        assert_eq!(engine, Ok(IoEngine::Epoll));
        assert!(!asked.get());
    }
}
