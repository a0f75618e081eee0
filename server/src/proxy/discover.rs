//! `--discovery-srv` of `detcd gateway start` and `detcd grpc-proxy start` (etcd 3.4's
//! `etcdmain.discoverEndpoints`): the client endpoints named by the domain's
//! `_etcd-client-ssl[-name]._tcp` (https) and `_etcd-client[-name]._tcp` (http) SRV
//! records. Without `--insecure-discovery` only `https://` endpoints that complete a
//! TLS handshake, with certificates valid for the domain (against the CA file given,
//! else the system's), are kept; the others are logged and dropped. When none is kept
//! the proxy falls back to `--endpoints`, as etcd does.
//!
//! Record targets are absolute names (`a.example.com.`); the endpoints drop that final
//! dot, so that the system's resolver, which does not take it, resolves them when the
//! proxy dials (Go's resolver takes both spellings).

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;

use crate::discovery::dns::Dns;
use crate::discovery::srv::{client_endpoints, without_final_dot};
use crate::tls::{client_config, ServerCheck, TlsInfo};

/// How long one validating TLS dial may take (etcd's 5 s transport timeout).
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The SRV discovery a proxy's command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvDiscovery {
    /// `--discovery-srv`.
    pub domain: String,
    /// `--discovery-srv-name`.
    pub service_name: String,
    /// `--insecure-discovery`: keep every endpoint, `http://` ones included, unchecked.
    pub insecure: bool,
    /// The CA file the discovered servers' certificates are checked against
    /// (the gateway's `--trusted-ca-file`, the grpc-proxy's `--cacert`).
    pub ca_file: String,
}

/// The discovered endpoints to use (empty: fall back to `--endpoints`), or the error
/// that stops the proxy (no SRV record of either kind).
pub async fn discover_endpoints(d: &SrvDiscovery) -> Result<Vec<String>, String> {
    let dns = Dns::from_env()?;
    let found: Vec<String> = client_endpoints(&dns, &d.domain, &d.service_name)
        .await?
        .iter()
        .map(|e| without_final_dot(e))
        .collect();
    crate::log(&format!(
        "discovered cluster from SRV: srv-server {:?}, endpoints [{}]",
        d.domain,
        found.join(" ")
    ));
    if d.insecure {
        return Ok(found);
    }
    crate::log(&format!(
        "validating discovered SRV endpoints: srv-server {:?}, endpoints [{}]",
        d.domain,
        found.join(" ")
    ));
    let (kept, errors) = validate_secure(&found, &d.domain, &d.ca_file).await;
    if errors.is_empty() {
        crate::log(&format!(
            "using validated discovered SRV endpoints: srv-server {:?}, endpoints [{}]",
            d.domain,
            kept.join(" ")
        ));
    } else {
        crate::log(&format!(
            "failed to validate discovered endpoints: srv-server {:?}, endpoints [{}], error {}",
            d.domain,
            kept.join(" "),
            errors.join(",")
        ));
    }
    Ok(kept)
}

/// etcd's `transport.ValidateSecureEndpoints`: the `https://` endpoints whose servers
/// complete a handshake for `domain`, and why each other one was dropped.
async fn validate_secure(endpoints: &[String], domain: &str, ca_file: &str) -> (Vec<String>, Vec<String>) {
    let check = if ca_file.is_empty() {
        ServerCheck::System
    } else {
        ServerCheck::CaFile(ca_file.to_string())
    };
    let config = client_config(&TlsInfo::default(), &check, &[]).map(Arc::new);
    let mut kept = Vec::new();
    let mut errors = Vec::new();
    for ep in endpoints {
        let Some(host_port) = ep.strip_prefix("https://") else {
            errors.push(format!("{ep:?} is insecure"));
            continue;
        };
        let outcome = match &config {
            Ok(config) => handshake(config.clone(), host_port, domain).await,
            Err(e) => Err(e.clone()),
        };
        match outcome {
            Ok(()) => kept.push(ep.clone()),
            Err(e) => errors.push(format!("{ep:?} failed to dial ({e})")),
        }
    }
    (kept, errors)
}

/// One TLS handshake with `host_port`, checking its certificate against `domain`.
async fn handshake(config: Arc<rustls::ClientConfig>, host_port: &str, domain: &str) -> Result<(), String> {
    let name = ServerName::try_from(domain.trim_end_matches('.').to_string()).map_err(|e| e.to_string())?;
    let dial = async {
        let tcp = tokio::net::TcpStream::connect(host_port)
            .await
            .map_err(|e| format!("dial tcp {host_port}: {e}"))?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(VALIDATE_TIMEOUT, dial)
        .await
        .map_err(|_| format!("dial tcp {host_port}: i/o timeout"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_dot_dropped() {
        assert_eq!(
            without_final_dot("http://a.example.com.:2379"),
            "http://a.example.com:2379"
        );
        assert_eq!(
            without_final_dot("https://a.example.com:2379"),
            "https://a.example.com:2379"
        );
    }

    #[test]
    fn plain_http_endpoints_are_insecure() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (kept, errors) = rt.block_on(validate_secure(&["http://a:1".to_string()], "example.com", ""));
        assert!(kept.is_empty());
        assert_eq!(errors, vec!["\"http://a:1\" is insecure"]);
    }
}
