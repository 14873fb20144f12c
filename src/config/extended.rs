//! memcached's `-o name=value,...` options: the ones ferrocached acts on, the tuning
//! knobs it accepts and ignores, and memcached's refusal of anything else. memcached
//! refuses a bad `-o` while it reads its options, so these refusals exit 1.

use super::{ConfigError, Settings, TlsSettings, refuse_while_parsing as refuse};

/// memcached `-o` options that tune internals ferrocached does not have; accepted so that
/// existing configurations start, and logged as ignored.
const TUNING_OPTIONS: &[&str] = &[
    "maxconns_fast",
    "no_maxconns_fast",
    "hashpower",
    "tail_repair_time",
    "hash_algorithm",
    "lru_crawler_sleep",
    "lru_crawler_tocrawl",
    "hot_lru_pct",
    "warm_lru_pct",
    "hot_max_factor",
    "warm_max_factor",
    "temporary_ttl",
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

/// What `-o` sets that is settled only once every option has been read (`-S` and `-Z`
/// decide whether it is used).
pub(super) struct Extended {
    /// `sasl_pwdb`, or `MEMCACHED_SASL_PWDB` when the option is absent.
    pub sasl_pwdb: Option<String>,
    /// The `ssl_*` options.
    pub tls: TlsSettings,
}

/// Applies every `-o` list (comma separated, repeatable) to `settings`, in order.
pub(super) fn apply(settings: &mut Settings, lists: &[String]) -> Result<Extended, ConfigError> {
    let mut extended = Extended {
        sasl_pwdb: std::env::var("MEMCACHED_SASL_PWDB").ok(),
        tls: TlsSettings {
            min_version: "tlsv1.2".into(),
            wbuf_size: super::DEFAULT_SSL_WBUF_SIZE,
            ..TlsSettings::default()
        },
    };
    for option in lists.iter().flat_map(|list| list.split(',')) {
        let option = option.trim();
        let (name, value) = option.split_once('=').unwrap_or((option, ""));
        let tls = &mut extended.tls;
        match name {
            "sasl_pwdb" => extended.sasl_pwdb = Some(value.to_string()),
            "ssl_chain_cert" => tls.chain_cert = Some(value.to_string()),
            "ssl_key" => tls.key = Some(value.to_string()),
            "ssl_ca_cert" => tls.ca_cert = Some(value.to_string()),
            "ssl_verify_mode" => match value.parse() {
                Ok(mode @ 0..=3) => tls.verify_mode = mode,
                _ => return refuse(format!("Invalid ssl_verify_mode: \"{value}\"")),
            },
            "ssl_min_version" => tls.min_version = min_version(value)?.to_string(),
            "ssl_wbuf_size" => match crate::numbers::strtoul32(value.as_bytes()) {
                Some(kilobytes) => tls.wbuf_size = kilobytes as usize * 1024,
                None => return refuse("could not parse argument to ssl_wbuf_size"),
            },
            // Cipher lists and buffer sizes are OpenSSL knobs; rustls picks safe ones.
            "ssl_ciphers" | "ssl_keyformat" | "ssl_session_cache" | "ssl_kernel_tls" => {
                settings.ignored_options.push(option.to_string())
            }
            _ => apply_one(settings, option)?,
        }
    }
    Ok(extended)
}

/// `ssl_min_version`: memcached's numbers 0 to 3 (and, as ferrocached always took,
/// the names `tlsv1` to `tlsv1.3`), as the name `stats settings` prints.
fn min_version(value: &str) -> Result<&'static str, ConfigError> {
    const NAMES: [&str; 4] = ["tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"];
    if let Some(name) = NAMES.iter().find(|name| **name == value) {
        return Ok(name);
    }
    if value == "tlsv1" {
        return Ok(NAMES[0]);
    }
    match crate::numbers::strtol32(value.as_bytes()) {
        Some(number) => usize::try_from(number)
            .ok()
            .and_then(|index| NAMES.get(index).copied())
            .map_or_else(
                || refuse("Invalid ssl_min_version. Use help to see valid options."),
                Ok,
            ),
        None => refuse("could not parse argument to ssl_min_version"),
    }
}

/// Applies one option that sets a field of [`Settings`] directly.
fn apply_one(settings: &mut Settings, option: &str) -> Result<(), ConfigError> {
    if option.is_empty() {
        return Ok(());
    }
    let (name, value) = option.split_once('=').unwrap_or((option, ""));
    match name {
        "idle_timeout" => match value.parse() {
            Ok(seconds) => settings.idle_timeout = seconds,
            Err(_) => return refuse(format!("Invalid idle_timeout: \"{value}\"")),
        },
        "io_engine" => match value {
            "auto" => settings.io_engine = super::IoEngine::Auto,
            "uring" => settings.io_engine = super::IoEngine::Uring,
            "epoll" => settings.io_engine = super::IoEngine::Epoll,
            _ => {
                return refuse(format!(
                    "Invalid io_engine: \"{value}\" (auto, uring or epoll)"
                ));
            }
        },
        "read_buf_mem_limit" if value.is_empty() => {
            return refuse("Missing read_buf_mem_limit argument");
        }
        "read_buf_mem_limit" => match crate::numbers::strtoul32(value.as_bytes()) {
            Some(megabytes) => settings.read_buf_mem_limit = megabytes as usize * 1024 * 1024,
            None => return refuse("could not parse argument to read_buf_mem_limit"),
        },
        // Kilobytes, multiplied in 32 bits as memcached does (so 4194304 wraps to 0).
        "watcher_logbuf_size" | "worker_logbuf_size" if value.is_empty() => {
            return refuse(format!("Missing {name} argument"));
        }
        "watcher_logbuf_size" | "worker_logbuf_size" => {
            let Some(kilobytes) = crate::numbers::strtoul32(value.as_bytes()) else {
                return refuse(format!("could not parse argument to {name}"));
            };
            let bytes = kilobytes.wrapping_mul(1024);
            if name == "watcher_logbuf_size" {
                settings.watcher_logbuf_size = bytes;
            } else {
                settings.worker_logbuf_size = bytes;
            }
        }
        "snapshot_interval" => match value.parse() {
            Ok(seconds) => settings.snapshot_interval = seconds,
            Err(_) => return refuse(format!("Invalid snapshot_interval: \"{value}\"")),
        },
        "metrics_listen" if !value.is_empty() => settings.metrics_listen = Some(value.to_string()),
        "udp_max_reply_ratio" => match value.parse() {
            Ok(ratio) => settings.udp_max_reply_ratio = ratio,
            Err(_) => return refuse(format!("Invalid udp_max_reply_ratio: \"{value}\"")),
        },
        "lru_crawler" => settings.lru_crawler = true,
        "no_lru_crawler" => settings.lru_crawler = false,
        "lru_maintainer" => settings.lru_maintainer = true,
        "no_lru_maintainer" => settings.lru_maintainer = false,
        _ if TUNING_OPTIONS.contains(&name) => settings.ignored_options.push(option.to_string()),
        _ => return refuse(format!("Illegal suboption \"{option}\"")),
    }
    Ok(())
}
