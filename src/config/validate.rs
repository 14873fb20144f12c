//! Turning the command line into [`Settings`], refusing what memcached refuses with
//! memcached's message and exit status.

use super::{
    Args, ConfigError, DEFAULT_UDP_MAX_REPLY_RATIO, ProtocolMode, Settings, TlsSettings, extended,
    refuse, refuse_while_parsing,
};

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
    /// Validates the arguments the way memcached does at startup: its messages, its
    /// order of checks and its exit statuses.
    pub fn from_args(args: &Args) -> Result<Settings, ConfigError> {
        if args.conn_limit <= 0 {
            return refuse_while_parsing("Maximum connections must be greater than 0");
        }
        if args.threads <= 0 {
            return refuse_while_parsing("Number of threads must be greater than 0");
        }
        if args.max_reqs_per_event <= 0 {
            return refuse_while_parsing("Number of requests per event must be greater than 0");
        }
        let growth_factor = leading_number::<f64>(&args.slab_growth_factor);
        if !(growth_factor > 1.0 && growth_factor.is_finite()) {
            return refuse_while_parsing("Factor must be greater than 1");
        }
        // memcached takes any non-zero `-n`, but a negative one gives chunks too small
        // for an item header (and `-n -48` crashes it): refused here.
        let slab_min_size = leading_number::<i64>(&args.slab_min_size);
        if slab_min_size <= 0 {
            return refuse_while_parsing("Chunk size must be greater than 0");
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
            lru_crawler: true,
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
                        return refuse_while_parsing(format!(
                            "authfile {path} has no user:password line"
                        ));
                    }
                    Ok(auth) => Some(auth),
                    Err(error) => {
                        return refuse_while_parsing(format!(
                            "Could not load authfile {path}: {error}"
                        ));
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
            io_engine: super::IoEngine::Auto,
            read_buf_mem_limit: 0,
            watcher_logbuf_size: crate::watch::DEFAULT_WATCHER_BUFFER,
            worker_logbuf_size: crate::watch::DEFAULT_WORKER_BUFFER,
            udp_max_reply_ratio: DEFAULT_UDP_MAX_REPLY_RATIO,
            metrics_listen: args.metrics_listen.clone(),
            ignored_options: Vec::new(),
            ssl_options: TlsSettings::default(),
            lru_maintainer: true,
            startup_warnings: Vec::new(),
        };
        let extended = extended::apply(&mut settings, &args.extended)?;
        settings.ssl_options = extended.tls.clone();
        if args.enable_ssl {
            if matches!(extended.tls.min_version.as_str(), "tlsv1.0" | "tlsv1.1") {
                settings.startup_warnings.push(format!(
                    "ssl_min_version {} asked: TLS 1.2 is the oldest version ferrocached offers, so it is the minimum",
                    extended.tls.min_version
                ));
            }
            settings.tls = Some(extended.tls);
        }
        if settings.snapshot_interval > 0 && settings.memory_file.is_none() {
            return refuse("snapshot_interval needs -e <path>");
        }
        if args.enable_sasl {
            let Some(path) = extended.sasl_pwdb else {
                return refuse_while_parsing(
                    "-S needs a password file: set MEMCACHED_SASL_PWDB or -o sasl_pwdb=PATH",
                );
            };
            match crate::auth::AuthFile::load(&path) {
                Ok(file) => settings.sasl = Some(file),
                Err(error) => {
                    return refuse_while_parsing(format!(
                        "Could not load SASL password file {path}: {error}"
                    ));
                }
            }
            // As memcached: SASL means the binary protocol.
            settings.protocol = ProtocolMode::Binary;
        }
        Ok(settings)
    }
}
