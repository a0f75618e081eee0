//! Where a URL is served or dialed: a TCP `host:port`, or a unix socket for etcd's
//! `unix://` and `unixs://` schemes.
//!
//! etcd (3.4, `pkg/transport`) takes a unix URL's `host:port` (plus a path, which
//! `types.NewURLs` forbids) as the socket's file name, relative to the working
//! directory: `unix://localhost:12379` is the file `localhost:12379`. Peer listeners
//! remove a stale file before listening (`NewUnixListener`); client listeners do not,
//! so a leftover file fails the bind as it does in etcd. Either removes its file when it
//! closes (Go's unix listener unlinks on `Close`).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// A URL's place to listen on or dial.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Address {
    /// `host:port`, resolved when used.
    Tcp(String),
    /// The socket file of a `unix://` or `unixs://` URL.
    Unix(PathBuf),
}

impl Address {
    /// The address of `url` (`http://`, `https://`, `unix://`, `unixs://` or a bare
    /// `host:port`); `None` when the scheme is another or `host:port` is malformed.
    /// A path after `host:port` is dropped for TCP and kept in the socket name for
    /// unix, as etcd does.
    pub fn of_url(url: &str) -> Option<Address> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        match scheme {
            "" | "http" | "https" => {
                let authority = rest.split('/').next().unwrap_or("");
                let (host, port) = authority.rsplit_once(':')?;
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return None;
                }
                Some(Address::Tcp(authority.to_string()))
            }
            "unix" | "unixs" if !rest.is_empty() => Some(Address::Unix(PathBuf::from(rest))),
            _ => None,
        }
    }

    /// The name TLS checks the server's certificate against: the host of `host:port`
    /// (for unix sockets too: `unixs://localhost:1` expects `localhost`, as etcd's
    /// clients do), without IPv6 brackets.
    pub fn tls_host(&self) -> String {
        let text = match self {
            Address::Tcp(a) => a.clone(),
            Address::Unix(p) => p.to_string_lossy().into_owned(),
        };
        let host = match text.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_string(),
            _ => text,
        };
        host.trim_start_matches('[').trim_end_matches(']').to_string()
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(a) => f.write_str(a),
            Address::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Whether a listener removes a leftover socket file before binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleSocket {
    /// etcd's peer listeners.
    Remove,
    /// etcd's client listeners: the bind fails with "address already in use".
    Keep,
}

/// A bound listener, TCP or unix.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixSocket),
}

/// A listening unix socket; its file is removed when it is dropped.
#[derive(Debug)]
pub struct UnixSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where a listener listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Local {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Local::Tcp(a) => write!(f, "{a}"),
            Local::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Who connected: a TCP address, or a unix socket's (usually unnamed) client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    Tcp(SocketAddr),
    Unix,
}

impl Remote {
    /// The TCP address, if any (etcd's certificate address check needs one).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Remote::Tcp(a) => Some(*a),
            Remote::Unix => None,
        }
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remote::Tcp(a) => write!(f, "{a}"),
            // What Go prints for an unnamed unix peer.
            Remote::Unix => f.write_str("@"),
        }
    }
}

impl Listener {
    /// Binds a unix socket at `path`.
    pub fn bind_unix(path: &Path, stale: StaleSocket) -> io::Result<Listener> {
        if stale == StaleSocket::Remove {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let listener = UnixListener::bind(path)?;
        Ok(Listener::Unix(UnixSocket {
            listener,
            path: path.to_path_buf(),
        }))
    }

    /// Where this listener listens.
    pub fn local(&self) -> io::Result<Local> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(Local::Tcp),
            Listener::Unix(u) => Ok(Local::Unix(u.path.clone())),
        }
    }

    /// Accepts one connection (TCP connections with Nagle off).
    pub async fn accept(&self) -> io::Result<(Stream, Remote)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// [`Listener::accept`] as a poll.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Stream, Remote)>> {
        match self {
            Listener::Tcp(l) => l.poll_accept(cx).map_ok(|(s, a)| {
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), Remote::Tcp(a))
            }),
            Listener::Unix(u) => u
                .listener
                .poll_accept(cx)
                .map_ok(|(s, _)| (Stream::Unix(s), Remote::Unix)),
        }
    }
}

/// Connects to `address` (TCP with Nagle off).
pub async fn connect(address: &Address) -> io::Result<Stream> {
    match address {
        Address::Tcp(a) => {
            let s = TcpStream::connect(a.as_str()).await?;
            let _ = s.set_nodelay(true);
            Ok(Stream::Tcp(s))
        }
        Address::Unix(p) => UnixStream::connect(p).await.map(Stream::Unix),
    }
}

/// A connected stream, TCP or unix.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_urls() {
        let tcp = |s: &str| Some(Address::Tcp(s.to_string()));
        assert_eq!(Address::of_url("http://127.0.0.1:2380"), tcp("127.0.0.1:2380"));
        assert_eq!(Address::of_url("https://n1:2380/"), tcp("n1:2380"));
        assert_eq!(Address::of_url("localhost:1"), tcp("localhost:1"));
        assert_eq!(
            Address::of_url("unixs://localhost:2380"),
            Some(Address::Unix("localhost:2380".into()))
        );
        assert_eq!(
            Address::of_url("unix:///tmp/x.sock"),
            Some(Address::Unix("/tmp/x.sock".into()))
        );
        for bad in [
            "http://nohost",
            "http://:80",
            "http://h:port",
            "ftp://h:1",
            "unix://",
        ] {
            assert_eq!(Address::of_url(bad), None, "{bad}");
        }
        assert_eq!(
            Address::of_url("unixs://localhost:2380").unwrap().tls_host(),
            "localhost"
        );
        assert_eq!(Address::Tcp("[::1]:1".into()).tls_host(), "::1");
    }

    #[tokio::test]
    async fn a_peer_socket_replaces_a_stale_file_and_removes_its_own() {
        let dir = std::env::temp_dir().join(format!("detcd-socket-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("localhost:1");
        std::fs::write(&path, b"stale").expect("stale file");
        let kept = Listener::bind_unix(&path, StaleSocket::Keep);
        assert_eq!(kept.unwrap_err().kind(), io::ErrorKind::AddrInUse);
        let listener = Listener::bind_unix(&path, StaleSocket::Remove).expect("bind");
        let dial = tokio::spawn({
            let path = path.clone();
            async move { connect(&Address::Unix(path)).await }
        });
        let (_, remote) = listener.accept().await.expect("accept");
        assert_eq!(remote, Remote::Unix);
        dial.await.expect("join").expect("connect");
        drop(listener);
        assert!(!path.exists(), "the socket file outlived its listener");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
