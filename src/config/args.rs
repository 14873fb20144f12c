//! The command line as memcached spells it: letters, long names and defaults. Parsing
//! only; what the values mean and which are refused is `validate.rs`'s job.

use clap::{ArgAction, Parser};

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
