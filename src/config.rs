//! Command line and settings, with memcached's letters, defaults and refusals, so that
//! an existing memcached command line or `/etc/memcached.conf` works unchanged.

use clap::{ArgAction, Parser};
use std::fmt;

/// memcached-compatible command line.
#[derive(Debug, Parser)]
#[command(
    name = "ferrocached",
    version,
    about = "A memcached-compatible in-memory cache server",
    disable_help_subcommand = true,
    args_override_self = true
)]
pub struct Args {
    /// TCP port to listen on (0 = off).
    #[arg(short = 'p', long = "port", default_value_t = 11211)]
    pub port: u16,
    /// UDP port to listen on (0 = off).
    #[arg(short = 'U', long = "udp-port", default_value_t = 0)]
    pub udp_port: u16,
    /// Interfaces to listen on; repeatable and comma separated (default: all).
    #[arg(short = 'l', long = "listen", action = ArgAction::Append)]
    pub listen: Vec<String>,
    /// Item memory in megabytes (k/m/g suffixes accepted).
    #[arg(short = 'm', long = "memory-limit", default_value = "64")]
    pub memory_limit: String,
    /// Maximum simultaneous connections.
    #[arg(
        short = 'c',
        long = "conn-limit",
        default_value_t = 1024,
        allow_negative_numbers = true
    )]
    pub conn_limit: i64,
    /// Worker threads.
    #[arg(
        short = 't',
        long = "threads",
        default_value_t = 4,
        allow_negative_numbers = true
    )]
    pub threads: i64,
    /// Largest item (k/m suffixes), 1024 bytes to 1 GiB and at most half of -m.
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    pub max_item_size: String,
    /// Return an error instead of evicting when memory is full.
    #[arg(short = 'M', long = "disable-evictions")]
    pub disable_evictions: bool,
    /// Disable CAS (saves 8 bytes per item in memcached; CAS values read 0).
    #[arg(short = 'C', long = "disable-cas")]
    pub disable_cas: bool,
    /// Refuse flush_all.
    #[arg(short = 'F', long = "disable-flush-all")]
    pub disable_flush_all: bool,
    /// Allow the `shutdown` command.
    #[arg(short = 'A', long = "enable-shutdown")]
    pub enable_shutdown: bool,
    /// Verbose logging; repeat for more (-vv logs every command).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// Listen backlog.
    #[arg(short = 'b', long = "listen-backlog", default_value_t = 1024)]
    pub listen_backlog: u32,
    /// Requests handled per connection before yielding to others.
    #[arg(
        short = 'R',
        long = "max-reqs-per-event",
        default_value_t = 20,
        allow_negative_numbers = true
    )]
    pub max_reqs_per_event: i64,
    /// Growth factor between slab classes.
    /// Read like memcached's `atof`: text that is no number is 0 and refused with its
    /// message, not with a parser error.
    #[arg(short = 'f', long = "slab-growth-factor", default_value = "1.25")]
    pub slab_growth_factor: String,
    /// Minimum space for key, value and flags in the smallest class.
    #[arg(
        short = 'n',
        long = "slab-min-size",
        default_value = "48",
        allow_hyphen_values = true
    )]
    pub slab_min_size: String,
    /// Prefix delimiter for `stats detail` (memcached's -D).
    #[arg(short = 'D', default_value = ":")]
    pub prefix_delimiter: String,
    /// Comma-separated extended options (key[=value],...).
    #[arg(short = 'o', long = "extended", action = ArgAction::Append)]
    pub extended: Vec<String>,
    /// Serve Prometheus metrics on this address (also `-o metrics_listen=ADDR:PORT`).
    #[arg(long = "metrics-listen")]
    pub metrics_listen: Option<String>,
    /// Drop privileges to this user.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Write the process id to this file.
    #[arg(short = 'P', long = "pidfile")]
    pub pidfile: Option<String>,
    /// Run as a daemon.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Unix socket path (replaces TCP).
    #[arg(short = 's', long = "unix-socket")]
    pub unix_socket: Option<String>,
    /// Unix socket permission mask (octal).
    #[arg(short = 'a', long = "unix-mask")]
    pub unix_mask: Option<String>,
    /// Protocol: auto, ascii or binary.
    #[arg(short = 'B', long = "protocol", default_value = "auto")]
    pub protocol: String,
    /// File for restartable memory (warm restart).
    #[arg(short = 'e', long = "memory-file")]
    pub memory_file: Option<String>,
    /// Enable TLS.
    #[arg(short = 'Z', long = "enable-ssl")]
    pub enable_ssl: bool,
    /// Text-protocol authentication file.
    #[arg(short = 'Y', long = "auth-file")]
    pub auth_file: Option<String>,
    /// Enable SASL authentication.
    #[arg(short = 'S', long = "enable-sasl")]
    pub enable_sasl: bool,
    /// Lock down all paged memory (accepted for compatibility; has no effect).
    #[arg(short = 'k', long = "lock-memory")]
    pub lock_memory: bool,
    /// Maximize core file limit (accepted for compatibility; has no effect).
    #[arg(short = 'r', long = "enable-coredumps")]
    pub enable_coredumps: bool,
    /// Try to use large memory pages (accepted for compatibility; has no effect).
    #[arg(short = 'L', long = "enable-largepages")]
    pub enable_largepages: bool,
}

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
/// memcached's exit status for a number out of range while it parses options
/// (`-c`, `-t`, `-R`, `-f`, `-n`).
const EXIT_OUT_OF_RANGE: u8 = 1;

impl ConfigError {
    /// A refusal with memcached's usage exit status (64).
    pub fn usage(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            exit_status: EXIT_USAGE,
        }
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

/// A refusal memcached makes while parsing options, exiting 1 rather than 64.
fn refuse_out_of_range<T>(message: &str) -> Result<T, ConfigError> {
    Err(ConfigError {
        message: message.into(),
        exit_status: EXIT_OUT_OF_RANGE,
    })
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
    /// `ssl_min_version`: `tlsv1.2` (default) or `tlsv1.3`.
    pub min_version: String,
}

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
    /// `-o read_buf_mem_limit` in bytes: all connections' read buffers and reply windows
    /// together (0 = unlimited).
    pub read_buf_mem_limit: usize,
    /// `-o` options accepted for compatibility but not acted on (reported in the log).
    pub ignored_options: Vec<String>,
}

/// Default UDP reply cap: a minimal request may be answered by about one full datagram,
/// never by a flood.
pub const DEFAULT_UDP_MAX_REPLY_RATIO: usize = 64;

/// memcached `-o` options that tune internals ferrocached does not have; accepted so that
/// existing configurations start, and logged as ignored.
const TUNING_OPTIONS: &[&str] = &[
    "maxconns_fast",
    "no_maxconns_fast",
    "hashpower",
    "tail_repair_time",
    "hash_algorithm",
    "lru_crawler",
    "no_lru_crawler",
    "lru_crawler_sleep",
    "lru_crawler_tocrawl",
    "lru_maintainer",
    "no_lru_maintainer",
    "hot_lru_pct",
    "warm_lru_pct",
    "hot_max_factor",
    "warm_max_factor",
    "temporary_ttl",
    "watcher_logbuf_size",
    "worker_logbuf_size",
    "track_sizes",
    "no_inline_ascii_resp",
    "inline_ascii_resp",
    "modern",
    "no_modern",
    "slab_reassign",
    "no_slab_reassign",
    "slab_automove",
    "slab_automove_ratio",
    "slab_automove_window",
    "slab_chunk_max",
    "slab_sizes",
    "lru_segmented",
    "no_lru_segmented",
    "no_hashexpand",
    "ext_path",
    "bind_protocol",
    "resp_obj_mem_limit",
    "drop_privileges",
    "no_drop_privileges",
    "large_memory_pages",
    "num_napi_ids",
    "memory_file",
];

/// The longest leading number of `text`, or 0, as C's `atoi`/`atof` read it.
fn leading_number<T: std::str::FromStr + Default>(text: &str) -> T {
    let text = text.trim_start();
    (1..=text.len())
        .rev()
        .filter(|&end| text.is_char_boundary(end))
        .find_map(|end| text[..end].parse().ok())
        .unwrap_or_default()
}

/// Parses a size with an optional k/m/g suffix; `unit` scales a bare number.
fn parse_size(text: &str, unit: usize) -> Option<usize> {
    let text = text.trim();
    let (digits, scale) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1024),
        'm' | 'M' => (&text[..text.len() - 1], 1024 * 1024),
        'g' | 'G' => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, unit),
    };
    digits.parse::<usize>().ok()?.checked_mul(scale)
}

impl Settings {
    /// Validates the arguments the way memcached does at startup.
    pub fn from_args(args: &Args) -> Result<Settings, ConfigError> {
        if args.conn_limit <= 0 {
            return refuse_out_of_range("Maximum connections must be greater than 0");
        }
        if args.threads <= 0 {
            return refuse_out_of_range("Number of threads must be greater than 0");
        }
        if args.max_reqs_per_event <= 0 {
            return refuse_out_of_range("Number of requests per event must be greater than 0");
        }
        let growth_factor = leading_number::<f64>(&args.slab_growth_factor);
        if !(growth_factor > 1.0 && growth_factor.is_finite()) {
            return refuse_out_of_range("Factor must be greater than 1");
        }
        // memcached takes any non-zero `-n`, but a negative one gives chunks too small
        // for an item header (and `-n -48` crashes it): refused here.
        let slab_min_size = leading_number::<i64>(&args.slab_min_size);
        if slab_min_size <= 0 {
            return refuse_out_of_range("Chunk size must be greater than 0");
        }
        let Some(memory_limit) = parse_size(&args.memory_limit, 1024 * 1024) else {
            return refuse(format!("Invalid memory limit: {}", args.memory_limit));
        };
        let Some(item_size_max) = parse_size(&args.max_item_size, 1) else {
            return refuse(format!("Invalid item size: {}", args.max_item_size));
        };
        if item_size_max < 1024 {
            return refuse("Item max size cannot be less than 1024 bytes.");
        }
        if item_size_max > 1024 * 1024 * 1024 {
            return refuse("Cannot set item size limit higher than a gigabyte.");
        }
        if item_size_max > memory_limit / 2 {
            return refuse("Cannot set item size limit higher than 1/2 of memory max.");
        }
        if !matches!(args.protocol.as_str(), "auto" | "ascii" | "binary") {
            return refuse(format!(
                "Invalid value for binding protocol: {}\n -- should be one of auto, binary, or ascii",
                args.protocol
            ));
        }
        let Some(&prefix_delimiter) = args.prefix_delimiter.as_bytes().first() else {
            return refuse("-D needs a delimiter character");
        };
        let unix_mask = match &args.unix_mask {
            None => 0o700,
            Some(text) => match u32::from_str_radix(text, 8) {
                Ok(mask) if mask <= 0o777 => mask,
                _ => return refuse(format!("Invalid unix socket mask: {text}")),
            },
        };
        let mut settings = Settings {
            port: args.port,
            udp_port: args.udp_port,
            listen: args
                .listen
                .iter()
                .flat_map(|list| list.split(','))
                .map(|address| address.trim().to_string())
                .filter(|address| !address.is_empty())
                .collect(),
            memory_limit,
            max_connections: args.conn_limit as usize,
            threads: args.threads as usize,
            item_size_max,
            evictions: !args.disable_evictions,
            cas_enabled: !args.disable_cas,
            flush_enabled: !args.disable_flush_all,
            shutdown_enabled: args.enable_shutdown,
            verbosity: args.verbose,
            backlog: args.listen_backlog.max(1),
            reqs_per_event: args.max_reqs_per_event as usize,
            growth_factor,
            slab_min_size: slab_min_size as usize,
            prefix_delimiter,
            auth: match &args.auth_file {
                None => None,
                Some(path) => match crate::auth::AuthFile::load(path) {
                    Ok(auth) if auth.is_empty() => {
                        return refuse(format!("authfile {path} has no user:password line"));
                    }
                    Ok(auth) => Some(auth),
                    Err(error) => {
                        return refuse(format!("Could not load authfile {path}: {error}"));
                    }
                },
            },
            sasl: None,
            tls: None,
            memory_file: args.memory_file.clone(),
            snapshot_interval: 0,
            user: args.user.clone(),
            pid_file: args.pidfile.clone(),
            daemonize: args.daemon,
            protocol: match args.protocol.as_str() {
                "ascii" => ProtocolMode::Ascii,
                "binary" => ProtocolMode::Binary,
                _ => ProtocolMode::Auto,
            },
            unix_socket: args.unix_socket.clone(),
            unix_mask,
            idle_timeout: 0,
            read_buf_mem_limit: 0,
            udp_max_reply_ratio: DEFAULT_UDP_MAX_REPLY_RATIO,
            metrics_listen: args.metrics_listen.clone(),
            ignored_options: Vec::new(),
        };
        let mut sasl_pwdb = std::env::var("MEMCACHED_SASL_PWDB").ok();
        let mut tls = TlsSettings {
            min_version: "tlsv1.2".into(),
            ..TlsSettings::default()
        };
        for option in args.extended.iter().flat_map(|list| list.split(',')) {
            let option = option.trim();
            let (name, value) = option.split_once('=').unwrap_or((option, ""));
            match name {
                "sasl_pwdb" => sasl_pwdb = Some(value.to_string()),
                "ssl_chain_cert" => tls.chain_cert = Some(value.to_string()),
                "ssl_key" => tls.key = Some(value.to_string()),
                "ssl_ca_cert" => tls.ca_cert = Some(value.to_string()),
                "ssl_verify_mode" => match value.parse() {
                    Ok(mode @ 0..=3) => tls.verify_mode = mode,
                    _ => return refuse(format!("Invalid ssl_verify_mode: \"{value}\"")),
                },
                "ssl_min_version" => match value {
                    "tlsv1.2" | "tlsv1.3" => tls.min_version = value.to_string(),
                    "tlsv1" | "tlsv1.1" => {
                        return refuse(format!(
                            "ssl_min_version {value} is not supported (TLS 1.2 or later)"
                        ));
                    }
                    _ => return refuse(format!("Invalid ssl_min_version: \"{value}\"")),
                },
                // Cipher lists and buffer sizes are OpenSSL knobs; rustls picks safe ones.
                "ssl_ciphers" | "ssl_keyformat" | "ssl_wbuf_size" | "ssl_session_cache"
                | "ssl_kernel_tls" => settings.ignored_options.push(option.to_string()),
                _ => settings.apply_extended(option)?,
            }
        }
        if args.enable_ssl {
            settings.tls = Some(tls);
        }
        if settings.snapshot_interval > 0 && settings.memory_file.is_none() {
            return refuse("snapshot_interval needs -e <path>");
        }
        if args.enable_sasl {
            let Some(path) = sasl_pwdb else {
                return refuse(
                    "-S needs a password file: set MEMCACHED_SASL_PWDB or -o sasl_pwdb=PATH",
                );
            };
            match crate::auth::AuthFile::load(&path) {
                Ok(file) => settings.sasl = Some(file),
                Err(error) => {
                    return refuse(format!("Could not load SASL password file {path}: {error}"));
                }
            }
            // As memcached: SASL means the binary protocol.
            settings.protocol = ProtocolMode::Binary;
        }
        Ok(settings)
    }

    fn apply_extended(&mut self, option: &str) -> Result<(), ConfigError> {
        if option.is_empty() {
            return Ok(());
        }
        let (name, value) = option.split_once('=').unwrap_or((option, ""));
        match name {
            "idle_timeout" => match value.parse() {
                Ok(seconds) => self.idle_timeout = seconds,
                Err(_) => return refuse(format!("Invalid idle_timeout: \"{value}\"")),
            },
            "read_buf_mem_limit" if value.is_empty() => {
                return refuse("Missing read_buf_mem_limit argument");
            }
            "read_buf_mem_limit" => match crate::numbers::strtoul32(value.as_bytes()) {
                Some(megabytes) => self.read_buf_mem_limit = megabytes as usize * 1024 * 1024,
                None => return refuse("could not parse argument to read_buf_mem_limit"),
            },
            "snapshot_interval" => match value.parse() {
                Ok(seconds) => self.snapshot_interval = seconds,
                Err(_) => return refuse(format!("Invalid snapshot_interval: \"{value}\"")),
            },
            "metrics_listen" if !value.is_empty() => self.metrics_listen = Some(value.to_string()),
            "udp_max_reply_ratio" => match value.parse() {
                Ok(ratio) => self.udp_max_reply_ratio = ratio,
                Err(_) => return refuse(format!("Invalid udp_max_reply_ratio: \"{value}\"")),
            },
            _ if TUNING_OPTIONS.contains(&name) => self.ignored_options.push(option.to_string()),
            _ => return refuse(format!("Illegal suboption \"{option}\"")),
        }
        Ok(())
    }

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
            .map_err(|error| ConfigError::usage(error.to_string()))?;
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
        for (line, status) in [(&["-n", "0"], 1), (&["-f", "1"], 1), (&["-I", "1000"], 64)] {
            assert_eq!(settings(line).unwrap_err().exit_status, status, "{line:?}");
        }
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
}
