//! How detcdctl reaches an endpoint: plain TCP or TLS, as etcdctl 3.4 decides it.
//!
//! - `--cert`, `--key` and `--cacert` (or `ETCDCTL_CERT`, `ETCDCTL_KEY`,
//!   `ETCDCTL_CACERT`) make a TLS configuration: the client certificate when both are
//!   given (one without the other is etcd's `KeyFile and CertFile must both be present`),
//!   the CA bundle that checks the server (else the system's anchors).
//!   `--insecure-transport=false` asks for TLS without any of them.
//!   `--insecure-skip-tls-verify` skips the server check of that configuration.
//! - `https://` and `unixs://` endpoints always use TLS (that configuration, else the
//!   system's anchors); `http://` endpoints never; a bare `host:port` and a `unix://`
//!   endpoint use TLS exactly when a configuration was made (etcd's clientv3
//!   `processCreds`).
//! - `unix://name` and `unixs://name` dial the unix socket `name` (relative to the
//!   working directory, as etcd's `unix://localhost:2379` endpoints are).
//! - The server's name is checked against the endpoint's host (a DNS name or an IP
//!   address; for a socket, the host of its `host:port` name); a failed handshake is a
//!   failed dial.

use std::sync::Arc;
use std::time::Duration;

use detcd_io::transport::conn::PeerStream;
use detcd_io::transport::socket::{self, Address};
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
    /// The name the servers' certificates are checked against instead of each
    /// endpoint's host (etcdctl's `ServerName`: the SRV domain).
    server_name: Option<String>,
}

impl ClientTls {
    /// Always this configuration (a member dialling its peers' client URLs).
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        ClientTls {
            configured: Some(config),
            server_name: None,
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
            server_name: None,
        })
    }

    /// Checks every server's certificate against `name` rather than the endpoint's host.
    pub fn with_server_name(mut self, name: &str) -> Self {
        self.server_name = Some(name.to_string());
        self
    }

    /// The TLS configuration for `endpoint`, or `None` for plain TCP.
    pub(crate) fn for_endpoint(&self, endpoint: &str) -> Result<Option<Arc<ClientConfig>>, CtlError> {
        if endpoint.starts_with("http://") {
            return Ok(None);
        }
        let always = endpoint.starts_with("https://") || endpoint.starts_with("unixs://");
        if always && self.configured.is_none() {
            let config = client_config(&TlsInfo::default(), &ServerCheck::System, ALPN_H2)
                .map_err(|e| CtlError::new(EXIT_ERROR, e))?;
            return Ok(Some(Arc::new(config)));
        }
        Ok(self.configured.clone())
    }
}

/// etcdctl's `--keepalive-time` and `--keepalive-timeout`: an HTTP/2 ping after `time`
/// without activity while calls are open, the connection closed when none is answered
/// within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub time: Duration,
    pub timeout: Duration,
}

impl Default for Keepalive {
    /// etcdctl's defaults.
    fn default() -> Self {
        Keepalive {
            time: Duration::from_secs(2),
            timeout: Duration::from_secs(6),
        }
    }
}

/// grpc-go raises a client's keepalive time below this to it ("Adjusting keepalive ping
/// interval to minimum period of 10s").
const KEEPALIVE_TIME_MIN: Duration = Duration::from_secs(10);

/// [`connect`] with keepalive given as (time, timeout), as v3 discovery's flags give it.
pub async fn connect_with_keepalive(
    endpoint: &str,
    dial_timeout: Duration,
    keepalive: Option<(Duration, Duration)>,
    tls: &ClientTls,
) -> Result<Channel, CtlError> {
    let keepalive = keepalive.map(|(time, timeout)| Keepalive { time, timeout });
    connect(endpoint, dial_timeout, tls, keepalive).await
}

/// Dials one endpoint (`host:port`, `http://host:port`, `https://host:port`,
/// `unix://name` or `unixs://name`), with HTTP/2 keepalive pings when asked.
pub async fn connect(
    endpoint: &str,
    dial_timeout: Duration,
    tls: &ClientTls,
    keepalive: Option<Keepalive>,
) -> Result<Channel, CtlError> {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("", endpoint));
    let rest = rest.trim_end_matches('/').to_string();
    // SRV targets end in a dot (`host.example.:2379`).
    let rest = if scheme.starts_with("unix") {
        rest
    } else {
        crate::discovery::srv::without_final_dot(&rest)
    };
    let address = match scheme {
        "" | "http" | "https" => Address::Tcp(rest.clone()),
        "unix" | "unixs" => Address::Unix(rest.clone().into()),
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                format!("unsupported endpoint {endpoint:?} (http, https, unix or unixs)"),
            ))
        }
    };
    // tonic sees a plain URL (its authority is what the server sees); the connector
    // below reaches the address, with TLS when wanted.
    let authority = if scheme.starts_with("unix") && Uri::try_from(format!("http://{rest}")).is_err() {
        "localhost".to_string()
    } else {
        rest
    };
    let mut ep = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| CtlError::new(EXIT_BAD_ARGS, format!("bad endpoint {endpoint:?}: {e}")))?
        .connect_timeout(dial_timeout);
    if let Some(k) = keepalive.filter(|k| !k.time.is_zero()) {
        ep = ep
            .http2_keep_alive_interval(k.time.max(KEEPALIVE_TIME_MIN))
            .keep_alive_timeout(k.timeout)
            .keep_alive_while_idle(false);
    }
    let tls = match tls.for_endpoint(endpoint)? {
        None => None,
        Some(config) => {
            let host = tls.server_name.clone().unwrap_or_else(|| address.tls_host());
            let name = ServerName::try_from(host.clone()).map_err(|_| {
                CtlError::new(
                    EXIT_BAD_ARGS,
                    format!("bad endpoint {endpoint:?}: bad host {host:?}"),
                )
            })?;
            Some((config, name))
        }
    };
    let connector = tower::service_fn(move |_: Uri| {
        let (address, tls) = (address.clone(), tls.clone());
        async move {
            let stream = socket::connect(&address).await?;
            let stream: PeerStream = match tls {
                None => Box::new(stream),
                Some((config, name)) => Box::new(
                    tokio_rustls::TlsConnector::from(config)
                        .connect(name, stream)
                        .await?,
                ),
            };
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    match tokio::time::timeout(dial_timeout, ep.connect_with_connector(connector)).await {
        Ok(Ok(channel)) => Ok(channel),
        _ => Err(CtlError::new(EXIT_ERROR, "context deadline exceeded")),
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
