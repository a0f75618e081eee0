//! Peer connections in plain text or TLS, by the URL's scheme: `http://` and `unix://`
//! are plain, `https://` and `unixs://` are TLS with the configuration the member was
//! given ([`PeerTls`]), over TCP or a unix socket ([`super::socket`]). A TLS URL without
//! a TLS configuration is refused, never served or dialed as plain text. The handshake
//! and frames that follow are the same on all of them.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::socket::{self, Address, Remote};

/// The member's peer TLS, built by its owner (the server reads etcd's `--peer-*` flags):
/// configurations are asked for per connection, so rotated files take effect on the
/// next one.
pub trait PeerTls: Send + Sync + std::fmt::Debug {
    /// The configuration that accepts peers.
    fn server(&self) -> Arc<rustls::ServerConfig>;
    /// The configuration that dials peers.
    fn client(&self) -> Arc<rustls::ClientConfig>;
    /// A last check of an accepted peer after its handshake (etcd checks that the
    /// client certificate's addresses match the connection's); `Err` closes it.
    fn check_accepted(
        &self,
        certificates: &[rustls_pki_types::CertificateDer<'_>],
        remote: &Remote,
    ) -> Result<(), String>;
    /// The name a dialed peer's certificate must be valid for, when it is not the
    /// dialed URL's host (etcd's `TLSInfo.ServerName`: the SRV domain of peers found
    /// through `_etcd-server-ssl` records without `--peer-trusted-ca-file`); it is
    /// also the name sent in the handshake.
    fn server_name(&self) -> Option<String> {
        None
    }
}

/// The shared form a member holds.
pub type SharedPeerTls = Option<Arc<dyn PeerTls>>;

/// A connected byte stream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One peer connection.
pub type PeerStream = Box<dyn Io>;

/// Whether a peer URL asks for TLS.
pub fn wants_tls(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("unixs://")
}

fn refused(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why)
}

/// Connects to `addr` (the place `url` names), with TLS when `url` asks for it.
pub async fn dial(url: &str, addr: &Address, tls: &SharedPeerTls) -> std::io::Result<PeerStream> {
    let stream = socket::connect(addr).await?;
    if !wants_tls(url) {
        return Ok(Box::new(stream));
    }
    let Some(tls) = tls else {
        return Err(refused(format!(
            "{url} is https but peer TLS (--peer-cert-file, --peer-key-file) is not configured"
        )));
    };
    let host = tls.server_name().unwrap_or_else(|| addr.tls_host());
    let name = rustls_pki_types::ServerName::try_from(host.clone())
        .map_err(|_| refused(format!("{url}: {host:?} is not a host name or address")))?;
    let stream = tokio_rustls::TlsConnector::from(tls.client())
        .connect(name, stream)
        .await?;
    Ok(Box::new(stream))
}

/// Completes an accepted connection: the TLS handshake and the after-handshake check
/// when `tls` is given, nothing otherwise.
pub async fn accept(
    stream: socket::Stream,
    remote: &Remote,
    tls: Option<&Arc<dyn PeerTls>>,
) -> std::io::Result<PeerStream> {
    let Some(tls) = tls else {
        return Ok(Box::new(stream));
    };
    let stream = tokio_rustls::TlsAcceptor::from(tls.server())
        .accept(stream)
        .await?;
    if let Some(certs) = stream.get_ref().1.peer_certificates() {
        tls.check_accepted(certs, remote).map_err(refused)?;
    }
    Ok(Box::new(stream))
}
