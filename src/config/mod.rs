//! Command line and settings, with memcached's letters, defaults and refusals, so that
//! an existing memcached command line or `/etc/memcached.conf` works unchanged.
//!
//! ```text
//! argv --args.rs (clap)--> Args --validate.rs--> Settings
//!                                  `-o lists --extended.rs (the -o table)
//! ```

mod args;
mod extended;
mod validate;

pub use args::Args;
use clap::Parser;
use std::fmt;

/// Why the server refuses to start; printed and turned into a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// memcached's message for the same refusal.
    pub message: String,
    /// memcached's exit status for it, so supervisors and scripts see the same code.
    pub exit_status: u8,
}

/// memcached's exit status for most refused command lines (EX_USAGE).
const EXIT_USAGE: u8 = 64;
/// memcached's exit status for a refusal while it reads its options (`return 1` from
/// `main`): numbers out of range (`-c`, `-t`, `-R`, `-f`, `-n`), every `-o` refusal,
/// `-Y`/`-S` files, and flags getopt does not know.
const EXIT_WHILE_PARSING: u8 = 1;

impl ConfigError {
    /// A refusal with memcached's usage exit status (64).
    pub fn usage(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            exit_status: EXIT_USAGE,
        }
    }

    /// A refusal memcached makes while it reads its options (exit status 1).
    pub fn while_parsing(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            exit_status: EXIT_WHILE_PARSING,
        }
    }

    /// A command line clap could not read (an unknown flag, a missing value): clap's
    /// explanation, then memcached's own line and exit status for what getopt rejects.
    pub fn unreadable(error: &clap::Error) -> Self {
        ConfigError::while_parsing(format!(
            "{}\nIllegal argument \"?\"",
            error.to_string().trim_end()
        ))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

fn refuse<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::usage(message))
}

/// A refusal memcached makes while it reads its options, exiting 1 rather than 64.
fn refuse_while_parsing<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::while_parsing(message))
}

/// TLS options (`-Z` with `-o ssl_chain_cert=...,ssl_key=...`), memcached's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl_chain_cert`: PEM certificate chain.
    pub chain_cert: Option<String>,
    /// `ssl_key`: PEM private key.
    pub key: Option<String>,
    /// `ssl_ca_cert`: PEM CA for client certificates.
    pub ca_cert: Option<String>,
    /// `ssl_verify_mode`: 0 none, 1 request, 2 require, 3 once.
    pub verify_mode: u8,
    /// `ssl_min_version`, by memcached's name for it (`tlsv1.0` ... `tlsv1.3`, default
    /// `tlsv1.2`). rustls offers nothing below TLS 1.2, so `tlsv1.0` and `tlsv1.1` mean
    /// 1.2 (with a warning at start).
    pub min_version: String,
    /// `ssl_wbuf_size` in bytes (given in KiB; default 16 KiB). Reported only: rustls
    /// sizes its own record buffers.
    pub wbuf_size: usize,
}

/// memcached's default `ssl_wbuf_size`, 16 KiB.
pub const DEFAULT_SSL_WBUF_SIZE: usize = 16 * 1024;

/// `-B`: the protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolMode {
    /// Decided per connection by its first byte (0x80 = binary).
    Auto,
    /// Text (and meta) only.
    Ascii,
    /// Binary only.
    Binary,
}

impl ProtocolMode {
    /// memcached's name for `stats settings`.
    pub fn name(self) -> &'static str {
        match self {
            ProtocolMode::Auto => "auto-negotiate",
            ProtocolMode::Ascii => "ascii",
            ProtocolMode::Binary => "binary",
        }
    }
}

/// `-o io_engine`: how plain TCP connections move their bytes (see `server::uring`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoEngine {
    /// io_uring where the kernel offers what the engine needs, else epoll (the default).
    Auto,
    /// io_uring, or refuse to start.
    Uring,
    /// tokio's epoll reactor, the classic path.
    Epoll,
}

impl IoEngine {
    /// The name `-o io_engine` takes and `stats settings` shows.
    pub fn name(self) -> &'static str {
        match self {
            IoEngine::Auto => "auto",
            IoEngine::Uring => "uring",
            IoEngine::Epoll => "epoll",
        }
    }
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// TCP port (0 = none).
    pub port: u16,
    /// UDP port (0 = none).
    pub udp_port: u16,
    /// Addresses to bind, each without port.
    pub listen: Vec<String>,
    /// `-m` in bytes.
    pub memory_limit: usize,
    /// `-c`.
    pub max_connections: usize,
    /// `-t`.
    pub threads: usize,
    /// `-I` in bytes.
    pub item_size_max: usize,
    /// Not `-M`.
    pub evictions: bool,
    /// `-o lru_crawler` (the default) or `no_lru_crawler`: the background crawler runs.
    pub lru_crawler: bool,
    /// Not `-C`.
    pub cas_enabled: bool,
    /// Not `-F`.
    pub flush_enabled: bool,
    /// `-A`.
    pub shutdown_enabled: bool,
    /// Number of `-v`.
    pub verbosity: u8,
    /// `-b`.
    pub backlog: u32,
    /// `-R`.
    pub reqs_per_event: usize,
    /// `-f`.
    pub growth_factor: f64,
    /// `-n`.
    pub slab_min_size: usize,
    /// `-D` (one byte, as memcached).
    pub prefix_delimiter: u8,
    /// `-u`: user to run as (required when started as root).
    pub user: Option<String>,
    /// `-P`: pid file.
    pub pid_file: Option<String>,
    /// `-d`: run in the background.
    pub daemonize: bool,
    /// `-S`: SASL PLAIN credentials (from `MEMCACHED_SASL_PWDB` or `-o sasl_pwdb=`);
    /// binary connections must authenticate first and text connections are refused.
    pub sasl: Option<crate::auth::AuthFile>,
    /// `-e`: warm-restart file, written on orderly stops and loaded at start.
    pub memory_file: Option<String>,
    /// `-o snapshot_interval`: seconds between background snapshots (0 = none).
    pub snapshot_interval: u64,
    /// `-Z`: TLS on every listener not marked `notls:`.
    pub tls: Option<TlsSettings>,
    /// `-Y`: text-protocol credentials; connections must authenticate first.
    pub auth: Option<crate::auth::AuthFile>,
    /// `-B`: which protocols connections may speak.
    pub protocol: ProtocolMode,
    /// `-s`: serve this unix socket instead of TCP.
    pub unix_socket: Option<String>,
    /// `-a`: permissions of the unix socket (octal, default 0700).
    pub unix_mask: u32,
    /// `--metrics-listen`: where `/metrics` is served (off by default).
    pub metrics_listen: Option<String>,
    /// `-o udp_max_reply_ratio`: largest UDP reply per request byte (0 = no limit).
    pub udp_max_reply_ratio: usize,
    /// `-o idle_timeout`: seconds a connection may stay silent (0 = forever).
    pub idle_timeout: u64,
    /// `-o io_engine`: requested before the server starts, the engine in use after.
    pub io_engine: IoEngine,
    /// `-o read_buf_mem_limit` in bytes: all connections' read buffers and reply windows
    /// together (0 = unlimited).
    pub read_buf_mem_limit: usize,
    /// `-o watcher_logbuf_size` in bytes: each `watch` connection's log buffer; lines
    /// that find it full are dropped and reported as `skipped=N`.
    pub watcher_logbuf_size: u32,
    /// `-o worker_logbuf_size` in bytes: shown in `stats settings`; ferrocached's
    /// emitters write straight into the watchers' buffers and keep none of their own.
    pub worker_logbuf_size: u32,
    /// `-o` options accepted for compatibility but not acted on (reported in the log).
    pub ignored_options: Vec<String>,
    /// The `-o ssl_*` options as given, `-Z` or not (`stats settings` prints them either
    /// way, as memcached does).
    pub ssl_options: TlsSettings,
    /// Not `-o no_lru_maintainer`: memcached then leaves the maintainer's figures out of
    /// `stats`, and so does ferrocached.
    pub lru_maintainer: bool,
    /// Warnings about options that start the server differently from what they ask
    /// (printed on stderr whatever the verbosity).
    pub startup_warnings: Vec<String>,
}

/// Default UDP reply cap: a minimal request may be answered by about one full datagram,
/// never by a flood.
pub const DEFAULT_UDP_MAX_REPLY_RATIO: usize = 64;

impl Settings {
    /// The store's part of the settings.
    pub fn store_config(&self) -> crate::store::StoreConfig {
        crate::store::StoreConfig {
            memory_limit: self.memory_limit,
            item_size_max: self.item_size_max,
            threads: self.threads,
            slab_min_size: self.slab_min_size,
            growth_factor: self.growth_factor,
            cas_enabled: self.cas_enabled,
            evictions_enabled: self.evictions,
            lru_crawler: self.lru_crawler,
        }
    }

    /// The parser's part of the settings.
    pub fn limits(&self) -> crate::protocol::Limits {
        crate::protocol::Limits {
            item_size_max: self.item_size_max,
            cas_enabled: self.cas_enabled,
            ..crate::protocol::Limits::default()
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_args(&Args::parse_from(["ferrocached"])).expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(line: &[&str]) -> Result<Settings, ConfigError> {
        let args = Args::try_parse_from(std::iter::once("ferrocached").chain(line.iter().copied()))
            .map_err(|error| ConfigError::unreadable(&error))?;
        Settings::from_args(&args)
    }

    #[test]
    fn defaults_match_memcached() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.port, s.udp_port, s.memory_limit), (11211, 0, 64 << 20));
        assert_eq!(
            (s.max_connections, s.threads, s.item_size_max),
            (1024, 4, 1 << 20)
        );
        assert!(s.evictions && s.cas_enabled && s.flush_enabled && !s.shutdown_enabled);
    }

    #[test]
    fn refuses_what_memcached_refuses() {
        for line in [
            &["-c", "0"][..],
            &["-c", "-1"],
            &["-t", "0"],
            &["-I", "1000"],
            &["-I", "40m"],
            &["-I", "2g", "-m", "8192"],
            &["-B", "http"],
            &["-f", "1.0"],
            &["-n", "0"],
            &["-n", "abc"],
            &["-f", "abc"],
            &["-R", "0"],
            &["-o", "bogus"],
            &["-Q"],
        ] {
            assert!(settings(line).is_err(), "{line:?} should be refused");
        }
    }

    #[test]
    fn slab_numbers_read_like_atoi_and_atof() {
        let s = settings(&["-n", "1", "-f", "1.5x"]).unwrap();
        assert_eq!((s.slab_min_size, s.growth_factor), (1, 1.5));
        let s = settings(&["-n", "1048576", "-f", "100"]).unwrap();
        assert_eq!((s.slab_min_size, s.growth_factor), (1 << 20, 100.0));
        for (line, status) in [
            (&["-n", "0"][..], 1),
            (&["-f", "1"], 1),
            (&["-I", "1000"], 64),
        ] {
            assert_eq!(settings(line).unwrap_err().exit_status, status, "{line:?}");
        }
    }

    #[test]
    fn refusals_while_reading_options_exit_1_like_memcached() {
        for line in [
            &["-o", "bogus"][..],
            &["-o", "read_buf_mem_limit"],
            &["-o", "ssl_verify_mode=9"],
            &["-Y", "/nonexistent/authfile"],
            &["-Q"],
        ] {
            assert_eq!(settings(line).unwrap_err().exit_status, 1, "{line:?}");
        }
        let unknown = settings(&["-Q"]).unwrap_err().message;
        assert!(unknown.ends_with("Illegal argument \"?\""), "{unknown}");
    }

    #[test]
    fn accepts_memcached_spellings() {
        let s = settings(&[
            "-m",
            "128",
            "-I",
            "2m",
            "-l",
            "127.0.0.1,::1",
            "-l",
            "10.0.0.1",
            "-vv",
        ])
        .unwrap();
        assert_eq!(s.memory_limit, 128 << 20);
        assert_eq!(s.item_size_max, 2 << 20);
        assert_eq!(s.listen, ["127.0.0.1", "::1", "10.0.0.1"]);
        assert_eq!(s.verbosity, 2);
        let s = settings(&["-o", "idle_timeout=5,hashpower=20"]).unwrap();
        assert_eq!(s.idle_timeout, 5);
        assert_eq!(s.ignored_options, ["hashpower=20"]);
    }

    #[test]
    fn ssl_min_version_reads_memcacheds_numbers_and_warns_below_1_2() {
        let tls = |value: &str| settings(&["-o", &format!("ssl_min_version={value}")]);
        assert_eq!(tls("3").unwrap().ssl_options.min_version, "tlsv1.3");
        assert_eq!(tls("tlsv1.2").unwrap().ssl_options.min_version, "tlsv1.2");
        assert_eq!(
            tls("4").unwrap_err().message,
            "Invalid ssl_min_version. Use help to see valid options."
        );
        assert_eq!(
            tls("x").unwrap_err().message,
            "could not parse argument to ssl_min_version"
        );
        let s = settings(&["-Z", "-o", "ssl_min_version=1,ssl_wbuf_size=8"]).unwrap();
        assert_eq!(s.tls.as_ref().unwrap().wbuf_size, 8192);
        assert!(s.startup_warnings[0].contains("TLS 1.2"));
        assert!(
            settings(&["-o", "ssl_min_version=0"])
                .unwrap()
                .startup_warnings
                .is_empty()
        );
    }

    #[test]
    fn no_lru_maintainer_is_honoured() {
        assert!(settings(&[]).unwrap().lru_maintainer);
        assert!(
            !settings(&["-o", "no_lru_maintainer"])
                .unwrap()
                .lru_maintainer
        );
    }
}
