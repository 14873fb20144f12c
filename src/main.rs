//! The `ferrocached` binary: parse memcached's command line, bind, serve until a signal.

use clap::Parser;
use ferrocached::config::{Args, Settings};
use ferrocached::server::{self, Shared};
use ferrocached::store::{Clock, snapshot};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// memcached's exit status when it cannot listen.
const EXIT_LISTEN_FAILED: u8 = 71;
/// Exit status for a refused command line.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args = Args::parse();
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
    init_logging(settings.verbosity);
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
        // A warm restart loads its items before any listener opens.
        if let Some(path) = &shared.settings.memory_file
            && let Err(code) = warm_start(&shared, Path::new(path))
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
        let stop = shutdown_signal(shared.clone());
        server::run(
            shared.clone(),
            listeners,
            udp_sockets,
            metrics_listener,
            stop,
        )
        .await;
        if let Some(path) = &shared.settings.memory_file {
            let started = std::time::Instant::now();
            match snapshot::save(&shared.store, Path::new(path)) {
                Ok(saved) => tracing::info!(
                    items = saved.items,
                    seconds = started.elapsed().as_secs_f64(),
                    path,
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

/// Loads the `-e` snapshot. A missing file starts empty; a corrupt one is set aside
/// (`<path>.corrupt`) and the server starts empty; an incompatible version refuses to
/// start, so the next shutdown cannot overwrite data another build can still read.
fn warm_start(shared: &Shared, path: &Path) -> Result<(), ExitCode> {
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
        Err(error @ snapshot::SnapshotError::Version(_)) => {
            eprintln!("{error}: refusing to start ({})", path.display());
            Err(ExitCode::from(EXIT_USAGE))
        }
        Err(error) => {
            let aside = path.with_extension("corrupt");
            let _ = std::fs::rename(path, &aside);
            tracing::error!(%error, kept = %aside.display(), "starting empty");
            eprintln!(
                "{error}; starting empty, the file is kept as {}",
                aside.display()
            );
            Ok(())
        }
    }
}

/// Logs to stderr: -v warnings and errors, -vv every command, -vvv internals.
fn init_logging(verbosity: u8) {
    let level = match verbosity {
        0 => "error",
        1 => "warn",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Completes on SIGTERM, SIGINT, SIGUSR1 (graceful) or a `shutdown` command.
async fn shutdown_signal(shared: Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut graceful = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
        _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        _ = graceful.recv() => tracing::info!("SIGUSR1: stopping gracefully"),
        _ = shared.shutdown_requested.notified() => tracing::info!("shutdown command: stopping"),
    }
}
