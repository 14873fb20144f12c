//! Binding listeners the way memcached does: every interface (IPv4 and IPv6) by default,
//! or each `-l` address, resolved by name; or, with `-s`, one unix socket instead of TCP.

use crate::config::Settings;
use socket2::{Domain, Protocol, Type};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// A listening socket of either transport.
pub enum Listener {
    /// TCP (`-p`, `-l`); `tls` when `-Z` applies to it (not marked `notls:`).
    Tcp {
        /// The socket.
        listener: TcpListener,
        /// Clients must handshake TLS first.
        tls: bool,
    },
    /// A unix socket (`-s`), removed again when dropped.
    Unix(UnixListener, PathBuf),
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An accepted client socket.
pub enum Socket {
    /// TCP client.
    Tcp(TcpStream),
    /// Unix-socket client.
    Unix(UnixStream),
}

/// A client socket detached from the accepting thread's reactor.
pub enum StdSocket {
    /// TCP client.
    Tcp(std::net::TcpStream),
    /// Unix-socket client.
    Unix(std::os::unix::net::UnixStream),
}

impl Socket {
    /// Detaches the socket so a worker thread can register it with its own reactor.
    pub fn into_std(self) -> io::Result<StdSocket> {
        Ok(match self {
            Socket::Tcp(socket) => StdSocket::Tcp(socket.into_std()?),
            Socket::Unix(socket) => StdSocket::Unix(socket.into_std()?),
        })
    }
}

/// A new client with the addresses `stats conns` shows.
pub struct Accepted {
    /// The socket.
    pub socket: Socket,
    /// `tcp:host:port` of the client (`?:<AF 0>` for a unix-socket one, as memcached).
    pub peer: String,
    /// The listening address it came in on.
    pub local: String,
    /// The client must handshake TLS first.
    pub tls: bool,
}

fn tcp_name(address: SocketAddr) -> String {
    match address {
        SocketAddr::V4(v4) => format!("tcp:{v4}"),
        SocketAddr::V6(v6) => format!("tcp6:{v6}"),
    }
}

impl Listener {
    /// `tcp:host:port` or `unix:path`, as `stats conns` names it.
    pub fn name(&self) -> String {
        match self {
            Listener::Tcp { listener, .. } => listener
                .local_addr()
                .map_or_else(|_| "tcp:?".into(), tcp_name),
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }

    /// Waits for the next client.
    pub async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp { listener, tls } => {
                let (socket, peer) = listener.accept().await?;
                let _ = socket.set_nodelay(true);
                let local = socket.local_addr().unwrap_or(peer);
                Ok(Accepted {
                    socket: Socket::Tcp(socket),
                    peer: tcp_name(peer),
                    local: tcp_name(local),
                    tls: *tls,
                })
            }
            Listener::Unix(listener, path) => {
                let (socket, _) = listener.accept().await?;
                Ok(Accepted {
                    socket: Socket::Unix(socket),
                    // memcached's words for an unnamed unix-socket client.
                    peer: "?:<AF 0>".into(),
                    local: format!("unix:{}", path.display()),
                    tls: false,
                })
            }
        }
    }
}

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
    let socket = socket2::Socket::new(
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

/// Binds the unix socket of `-s` with the permissions of `-a`, replacing a stale file.
fn bind_unix(path: &str, mask: u32) -> Result<Listener, BindError> {
    let fail = |source| BindError {
        address: path.to_string(),
        source,
    };
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path).map_err(fail)?;
    }
    let listener = UnixListener::bind(path).map_err(fail)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mask)).map_err(fail)?;
    Ok(Listener::Unix(listener, PathBuf::from(path)))
}

/// Binds every listener the settings ask for. Must run inside the runtime.
pub fn bind_listeners(settings: &Settings) -> Result<Vec<Listener>, BindError> {
    if let Some(path) = &settings.unix_socket {
        // As in memcached, a unix socket replaces TCP and UDP.
        return Ok(vec![bind_unix(path, settings.unix_mask)?]);
    }
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
        // memcached's `notls:` prefix exempts one listener from -Z.
        let (entry, tls) = match entry.strip_prefix("notls:") {
            Some(plain) => (plain.to_string(), false),
            None => (entry.clone(), settings.tls.is_some()),
        };
        let entry = &entry;
        let addresses = resolve(entry, settings.port).map_err(|source| BindError {
            address: entry.clone(),
            source,
        })?;
        for address in addresses {
            match listen_on(address, settings.backlog) {
                Ok(listener) => listeners.push(Listener::Tcp { listener, tls }),
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

/// Binds the UDP sockets of `-U` on the same interfaces as TCP (none with `-s`).
pub fn bind_udp(settings: &Settings) -> Result<Vec<tokio::net::UdpSocket>, BindError> {
    if settings.udp_port == 0 || settings.unix_socket.is_some() {
        return Ok(Vec::new());
    }
    let entries: Vec<String> = if settings.listen.is_empty() {
        vec!["0.0.0.0".into(), "::".into()]
    } else {
        settings.listen.clone()
    };
    let mut sockets = Vec::new();
    for entry in &entries {
        let entry = &entry.strip_prefix("notls:").unwrap_or(entry).to_string();
        let addresses = resolve(entry, settings.udp_port).map_err(|source| BindError {
            address: entry.clone(),
            source,
        })?;
        for address in addresses {
            let bound = (|| {
                let socket = socket2::Socket::new(
                    Domain::for_address(address),
                    Type::DGRAM,
                    Some(Protocol::UDP),
                )?;
                if address.is_ipv6() {
                    socket.set_only_v6(true)?;
                }
                socket.set_nonblocking(true)?;
                socket.bind(&address.into())?;
                tokio::net::UdpSocket::from_std(socket.into())
            })();
            match bound {
                Ok(socket) => sockets.push(socket),
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
    Ok(sockets)
}
