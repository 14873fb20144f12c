//! The `ferrocached` binary: parse memcached's command line, bind, serve until a signal.

use clap::Parser;
use ferrocached::config::{Args, ConfigError, Settings};
use ferrocached::server::{self, Shared, StopKind};
use ferrocached::store::Clock;
use ferrocached::store::snapshot::{self, Snapshots};
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, reload};

/// memcached's exit status when it cannot listen.
const EXIT_LISTEN_FAILED: u8 = 71;
/// Exit status for a refused command line.
const EXIT_USAGE: u8 = 64;
/// Exit status when the `-e` file exists but cannot be read (sysexits' EX_IOERR).
const EXIT_IO_ERROR: u8 = 74;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // `-h` and `-V` print and exit 0.
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            let error = ConfigError::unreadable(&error);
            eprintln!("{error}");
            return ExitCode::from(error.exit_status);
        }
    };
    let settings = match Settings::from_args(&args) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(error.exit_status);
        }
    };
    let _pid_file = match ferrocached::process::prepare(&settings) {
        Ok(pid_file) => pid_file,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let change_log_level = init_logging(settings.verbosity);
    for warning in &settings.startup_warnings {
        eprintln!("WARNING: {warning}");
    }
    for option in &settings.ignored_options {
        tracing::warn!(option, "memcached tuning option accepted and ignored");
    }
    // This thread accepts and runs the background tasks; `server::run` starts the -t
    // worker threads that serve connections.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shared = match Shared::new(settings, Arc::new(Clock::new())) {
            Ok(shared) => shared,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        if let Some(change_log_level) = change_log_level {
            shared.stats.log_level.install(change_log_level);
        }
        let stop = shutdown_signal(shared.clone());
        // A warm restart loads its items before any listener opens.
        if let Some(snapshots) = &shared.snapshots
            && let Err(code) = warm_start(&shared, snapshots)
        {
            return code;
        }
        let settings = &shared.settings;
        let bound = server::bind_listeners(settings)
            .and_then(|listeners| Ok((listeners, server::bind_udp(settings)?)));
        let (listeners, udp_sockets) = match bound {
            Ok(bound) => bound,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::from(EXIT_LISTEN_FAILED);
            }
        };
        let metrics_listener = match &settings.metrics_listen {
            None => None,
            Some(address) => match tokio::net::TcpListener::bind(address.as_str()).await {
                Ok(listener) => Some(listener),
                Err(error) => {
                    eprintln!("failed to listen for metrics on {address}: {error}");
                    return ExitCode::from(EXIT_LISTEN_FAILED);
                }
            },
        };
        server::run(
            shared.clone(),
            listeners,
            udp_sockets,
            metrics_listener,
            stop,
        )
        .await;
        // No worker executes requests any more: everything acknowledged is in the store.
        if let Some(snapshots) = &shared.snapshots {
            let started = std::time::Instant::now();
            match snapshots.save_final(&shared.store) {
                Ok(saved) => tracing::info!(
                    items = saved.items,
                    seconds = started.elapsed().as_secs_f64(),
                    path = %snapshots.path().display(),
                    "snapshot saved"
                ),
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            }
        }
        ExitCode::SUCCESS
    })
}

/// Loads the `-e` snapshot. A missing file starts empty. A corrupt file (or an intact
/// one of another format version) is set aside as `<path>.corrupt` (`<path>.unsupported`)
/// and the server starts empty: a bad file must never become a crash loop. A file that
/// exists but cannot be read (permissions, a directory in the way) is left untouched and
/// the server refuses to start, as memcached does: starting empty would overwrite it at
/// the next stop.
fn warm_start(shared: &Shared, snapshots: &Snapshots) -> Result<(), ExitCode> {
    let path = snapshots.path();
    if let Err(error) = snapshots.remove_leftovers() {
        tracing::warn!(%error, "cannot remove temporary files of an interrupted snapshot");
    }
    let started = std::time::Instant::now();
    match snapshot::load(&shared.store, path) {
        Ok(loaded) => {
            tracing::info!(
                items = loaded.items,
                expired = loaded.expired,
                seconds = started.elapsed().as_secs_f64(),
                "snapshot loaded"
            );
            Ok(())
        }
        Err(snapshot::SnapshotError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(())
        }
        Err(snapshot::SnapshotError::Io(error)) => {
            eprintln!(
                "cannot read the snapshot {}: {error}; refusing to start (the file is left as it is)",
                path.display()
            );
            Err(ExitCode::from(EXIT_IO_ERROR))
        }
        Err(error) => {
            let suffix = match error {
                snapshot::SnapshotError::Version(_) => "unsupported",
                _ => "corrupt",
            };
            let mut aside = path.as_os_str().to_owned();
            aside.push(".");
            aside.push(suffix);
            let aside = std::path::PathBuf::from(aside);
            match std::fs::rename(path, &aside) {
                Ok(()) => {
                    tracing::error!(%error, kept = %aside.display(), "starting empty");
                    eprintln!(
                        "{error}; starting empty, the file is kept as {}",
                        aside.display()
                    );
                }
                Err(rename_error) => {
                    tracing::error!(%error, %rename_error, "starting empty; the file could not be set aside");
                    eprintln!(
                        "{error}; starting empty, and {} could not be set aside: {rename_error}",
                        path.display()
                    );
                }
            }
            Ok(())
        }
    }
}

/// The log level for memcached's verbosity: 0 errors, 1 (`-v`) warnings as well,
/// 2 (`-vv`, `verbosity 2`) every connection and command, 3 (`-vvv`) internals.
fn log_level(verbosity: u32) -> LevelFilter {
    match verbosity {
        0 => LevelFilter::ERROR,
        1 => LevelFilter::WARN,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Logs to stderr at the level of `-v` (see [`log_level`]); `RUST_LOG`, when set,
/// chooses instead. Returns what the `verbosity` command calls to change the level at
/// run time (nothing under `RUST_LOG`, which stays as given).
fn init_logging(verbosity: u8) -> Option<impl Fn(u32) + Send + Sync + 'static> {
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        tracing_subscriber::registry()
            .with(filter)
            .with(stderr_output())
            .init();
        return None;
    }
    let (filter, handle) = reload::Layer::new(log_level(u32::from(verbosity)));
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr_output())
        .init();
    Some(move |level| {
        if let Err(error) = handle.reload(log_level(level)) {
            tracing::error!(%error, "cannot change the log level");
        }
    })
}

/// The log lines' formatting: to stderr, coloured only on a terminal.
fn stderr_output<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use std::io::IsTerminal;
    tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
}

/// Completes on SIGTERM, SIGINT, SIGUSR1 (graceful) or a `shutdown [graceful]` command.
/// Like memcached, a graceful stop says "Gracefully stopping" on stderr. The handlers are
/// installed when this is called, not when the future is first polled, so a signal that
/// arrives as soon as the port accepts still stops the server in order.
fn shutdown_signal(shared: Arc<Shared>) -> impl std::future::Future<Output = StopKind> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut graceful = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
    async move {
        let kind = tokio::select! {
            _ = terminate.recv() => StopKind::Immediate,
            _ = interrupt.recv() => StopKind::Immediate,
            _ = graceful.recv() => StopKind::Graceful,
            kind = shared.shutdown_command() => kind,
        };
        if kind == StopKind::Graceful {
            eprintln!("Gracefully stopping");
        }
        tracing::info!(?kind, "stopping");
        kind
    }
}
