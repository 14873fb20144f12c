//! Binding listeners the way memcached does: every interface (IPv4 and IPv6) by default,
//! or each `-l` address, resolved by name.

use crate::config::Settings;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use tokio::net::TcpListener;

/// A listener could not be set up; memcached exits with status 71 then.
#[derive(Debug)]
pub struct BindError {
    /// What was being bound.
    pub address: String,
    /// Why it failed.
    pub source: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed to listen on {}: {}", self.address, self.source)
    }
}

impl std::error::Error for BindError {}

/// Resolves one `-l` entry: `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6.
fn resolve(entry: &str, default_port: u16) -> io::Result<Vec<SocketAddr>> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unclosed ["))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad port"))?,
            None => default_port,
        };
        (host.to_string(), port)
    } else if entry.matches(':').count() == 1 {
        let (host, port) = entry.split_once(':').expect("one colon");
        let port = port
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad port"))?;
        (host.to_string(), port)
    } else {
        (entry.to_string(), default_port)
    };
    Ok((host.as_str(), port).to_socket_addrs()?.collect())
}

fn listen_on(address: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

/// Binds every TCP listener the settings ask for. Must run inside the runtime.
pub fn bind_listeners(settings: &Settings) -> Result<Vec<TcpListener>, BindError> {
    if settings.port == 0 {
        return Ok(Vec::new());
    }
    let entries: Vec<String> = if settings.listen.is_empty() {
        vec!["0.0.0.0".into(), "::".into()]
    } else {
        settings.listen.clone()
    };
    let mut listeners = Vec::new();
    for entry in &entries {
        let addresses = resolve(entry, settings.port).map_err(|source| BindError {
            address: entry.clone(),
            source,
        })?;
        for address in addresses {
            match listen_on(address, settings.backlog) {
                Ok(listener) => listeners.push(listener),
                // A machine without IPv6 still serves IPv4 when listening everywhere.
                Err(_) if settings.listen.is_empty() && address.is_ipv6() => {}
                Err(source) => {
                    return Err(BindError {
                        address: address.to_string(),
                        source,
                    });
                }
            }
        }
    }
    Ok(listeners)
}
