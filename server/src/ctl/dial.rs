//! How detcdctl reaches an endpoint: plain TCP or TLS, as etcdctl 3.4 decides it.
//!
//! - `--cert`, `--key` and `--cacert` (or `ETCDCTL_CERT`, `ETCDCTL_KEY`,
//!   `ETCDCTL_CACERT`) make a TLS configuration: the client certificate when both are
//!   given (one without the other is etcd's `KeyFile and CertFile must both be present`),
//!   the CA bundle that checks the server (else the system's anchors).
//!   `--insecure-transport=false` asks for TLS without any of them.
//!   `--insecure-skip-tls-verify` skips the server check of that configuration.
//! - `https://` endpoints always use TLS (that configuration, else the system's
//!   anchors); `http://` endpoints never; a bare `host:port` uses TLS exactly when a
//!   configuration was made.
//! - The server's name is checked against the endpoint's host (a DNS name or an IP
//!   address); a failed handshake is a failed dial.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tonic::transport::{Channel, Endpoint, Uri};

use super::args::Parsed;
use super::error::{CtlError, EXIT_BAD_ARGS, EXIT_ERROR};
use crate::tls::{client_config, ServerCheck, TlsInfo};

/// ALPN offered to servers: gRPC needs HTTP/2.
const ALPN_H2: &[&[u8]] = &[b"h2"];

/// The TLS side of the global flags.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The configuration the TLS flags made, if they made one.
    configured: Option<Arc<ClientConfig>>,
}

impl ClientTls {
    /// Always this configuration (a member dialling its peers' client URLs).
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        ClientTls {
            configured: Some(config),
        }
    }

    /// Reads `--cert`, `--key`, `--cacert`, `--insecure-transport` and
    /// `--insecure-skip-tls-verify` (already merged with their `ETCDCTL_*` variables).
    pub fn from_flags(flags: &Parsed) -> Result<Self, CtlError> {
        let value = |name: &str| flags.value(name).unwrap_or("").to_string();
        let (cert, key, cacert) = (value("cert"), value("key"), value("cacert"));
        let insecure_transport = match flags.value("insecure-transport") {
            None => true,
            Some(_) => flags.bool("insecure-transport")?,
        };
        let skip_verify = flags.bool("insecure-skip-tls-verify")?;
        let bad = |m: String| CtlError::new(EXIT_BAD_ARGS, m);
        if cert.is_empty() != key.is_empty() {
            return Err(bad(format!(
                "KeyFile and CertFile must both be present[key: {key}, cert: {cert}]"
            )));
        }
        let wanted = !cert.is_empty() || !cacert.is_empty() || !insecure_transport;
        if !wanted {
            return Ok(Self::default());
        }
        let info = TlsInfo {
            cert_file: cert,
            key_file: key,
            ..TlsInfo::default()
        };
        let check = if skip_verify {
            ServerCheck::Skip
        } else if cacert.is_empty() {
            ServerCheck::System
        } else {
            ServerCheck::CaFile(cacert)
        };
        let config = client_config(&info, &check, ALPN_H2).map_err(bad)?;
        Ok(Self {
            configured: Some(Arc::new(config)),
        })
    }

    /// The TLS configuration for `endpoint`, or `None` for plain TCP.
    pub(crate) fn for_endpoint(&self, endpoint: &str) -> Result<Option<Arc<ClientConfig>>, CtlError> {
        if endpoint.starts_with("http://") {
            return Ok(None);
        }
        if endpoint.starts_with("https://") && self.configured.is_none() {
            let config = client_config(&TlsInfo::default(), &ServerCheck::System, ALPN_H2)
                .map_err(|e| CtlError::new(EXIT_ERROR, e))?;
            return Ok(Some(Arc::new(config)));
        }
        Ok(self.configured.clone())
    }
}

/// Dials one endpoint (`host:port`, `http://host:port` or `https://host:port`).
pub async fn connect(endpoint: &str, dial_timeout: Duration, tls: &ClientTls) -> Result<Channel, CtlError> {
    let authority = match endpoint.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some(_) => {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                format!("unsupported endpoint {endpoint:?} (http or https)"),
            ))
        }
        None => endpoint,
    }
    .trim_end_matches('/')
    .to_string();
    // tonic sees a plain URL; TLS, when wanted, is done by the connector below.
    let ep = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| CtlError::new(EXIT_BAD_ARGS, format!("bad endpoint {endpoint:?}: {e}")))?
        .connect_timeout(dial_timeout);
    let deadline = || CtlError::new(EXIT_ERROR, "context deadline exceeded");
    let connected = match tls.for_endpoint(endpoint)? {
        None => tokio::time::timeout(dial_timeout, ep.connect()).await,
        Some(config) => {
            let host = host_of(&authority);
            let name = ServerName::try_from(host.clone()).map_err(|_| {
                CtlError::new(
                    EXIT_BAD_ARGS,
                    format!("bad endpoint {endpoint:?}: bad host {host:?}"),
                )
            })?;
            let connector = tower::service_fn(move |_: Uri| {
                let (config, name, authority) = (config.clone(), name.clone(), authority.clone());
                async move {
                    let tcp = tokio::net::TcpStream::connect(authority.as_str()).await?;
                    let _ = tcp.set_nodelay(true);
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            });
            tokio::time::timeout(dial_timeout, ep.connect_with_connector(connector)).await
        }
    };
    match connected {
        Ok(Ok(channel)) => Ok(channel),
        _ => Err(deadline()),
    }
}

/// The host of `host:port` or `[v6]:port`, without brackets.
pub(crate) fn host_of(authority: &str) -> String {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_authorities() {
        assert_eq!(host_of("127.0.0.1:2379"), "127.0.0.1");
        assert_eq!(host_of("[::1]:2379"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn cert_without_key_is_etcds_error() {
        let mut flags = Parsed::default();
        flags.flags.insert("cert".into(), "c.crt".into());
        let e = ClientTls::from_flags(&flags).unwrap_err();
        assert_eq!(
            e.message,
            "KeyFile and CertFile must both be present[key: , cert: c.crt]"
        );
        assert_eq!(e.code, EXIT_BAD_ARGS);
        flags.flags.insert("key".into(), "missing.key".into());
        let e = ClientTls::from_flags(&flags).unwrap_err();
        assert_eq!(e.message, "open c.crt: no such file or directory");
    }

    #[test]
    fn no_tls_flags_means_plain_text() {
        let tls = ClientTls::from_flags(&Parsed::default()).expect("no flags");
        assert!(tls.for_endpoint("127.0.0.1:2379").expect("ok").is_none());
        assert!(tls.for_endpoint("http://127.0.0.1:2379").expect("ok").is_none());
        assert!(tls.for_endpoint("https://127.0.0.1:2379").expect("ok").is_some());
    }
}
