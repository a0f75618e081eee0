//! The member's peer TLS (`--peer-cert-file`, `--peer-key-file`,
//! `--peer-trusted-ca-file`, `--peer-client-cert-auth`, `--peer-crl-file`,
//! `--peer-cert-allowed-cn`, `--peer-cert-allowed-hostname`,
//! `--peer-skip-client-san-verification`) as detcd-io's transport asks for it.
//!
//! Both ends verify: the listener checks the dialer's certificate (CA, CRL, allowed CN /
//! host name, and etcd's address check below); the dialer checks the listener's (CA,
//! CRL, the URL's host, the same allowed CN / host name) and presents its own.

use std::net::ToSocketAddrs;
use std::sync::Arc;

use detcd_io::transport::conn::PeerTls;
use detcd_io::transport::socket::Remote;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use super::{reloading_client, reloading_server, Reloading, ServerCheck, TlsInfo};

/// The peer TLS of one member, files re-read when they change.
#[derive(Debug)]
pub struct MemberPeerTls {
    server: Arc<Reloading<ServerConfig>>,
    client: Arc<Reloading<ClientConfig>>,
    skip_client_san_verification: bool,
    server_name: Option<String>,
}

impl MemberPeerTls {
    /// Reads the files once (an error here stops the member from starting).
    pub fn new(info: &TlsInfo, skip_client_san_verification: bool) -> Result<Self, String> {
        let check = ServerCheck::dialing(info);
        Ok(Self {
            server: reloading_server("peer TLS", info)?,
            client: reloading_client("peer TLS (dialing)", info, check, &[])?,
            skip_client_san_verification,
            server_name: (!info.server_name.is_empty()).then(|| info.server_name.clone()),
        })
    }
}

impl PeerTls for MemberPeerTls {
    fn server(&self) -> Arc<ServerConfig> {
        self.server.get()
    }

    fn client(&self) -> Arc<ClientConfig> {
        self.client.get()
    }

    fn check_accepted(&self, certificates: &[CertificateDer<'_>], remote: &Remote) -> Result<(), String> {
        match certificates.first() {
            Some(cert) if !self.skip_client_san_verification => check_san(cert, remote),
            _ => Ok(()),
        }
    }

    fn server_name(&self) -> Option<String> {
        self.server_name.clone()
    }
}

/// etcd's `checkSAN`: a dialer's certificate that names addresses must name the one it
/// connects from: one of its IP addresses, or a DNS name that resolves to it. A unix
/// socket's dialer has no address: as in etcd (Go's `net.SplitHostPort` of its empty
/// address fails), a certificate naming addresses is then refused; etcd's
/// `--peer-skip-client-san-verification` is the way to unix peers with such
/// certificates.
fn check_san(cert: &CertificateDer<'_>, remote: &Remote) -> Result<(), String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Err("tls: cannot parse the peer certificate".into());
    };
    let mut ips = Vec::new();
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::IPAddress(bytes) => ips.push(bytes.to_vec()),
                GeneralName::DNSName(dns) => names.push(dns.to_string()),
                _ => {}
            }
        }
    }
    if ips.is_empty() && names.is_empty() {
        return Ok(());
    }
    let Some(remote) = remote.socket_addr() else {
        return Err(format!("address {remote}: missing port in address"));
    };
    let host = remote.ip();
    let octets = match host {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    if ips.contains(&octets) {
        return Ok(());
    }
    if !ips.is_empty() && names.is_empty() {
        return Err(format!(
            "x509: certificate is valid for {}, not {host}",
            ips.iter()
                .filter_map(|b| ip_text(b))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if names.is_empty() {
        return Ok(());
    }
    let resolves = names.iter().any(|name| {
        (name.as_str(), 0)
            .to_socket_addrs()
            .is_ok_and(|mut addrs| addrs.any(|a| a.ip() == host))
    });
    if resolves {
        Ok(())
    } else {
        Err(format!(
            "tls: \"{host}\" does not match any of DNSNames {names:?}"
        ))
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::{Ca, Leaf};
    use rustls_pki_types::pem::PemObject;

    fn cert(hosts: &[&str]) -> CertificateDer<'static> {
        let ca = Ca::new("ca").expect("ca");
        let issued = ca.issue(&Leaf::new("m", hosts, 1)).expect("issue");
        CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("pem")
    }

    #[test]
    fn dialer_addresses_must_match_the_certificate() {
        let local = &Remote::Tcp("127.0.0.1:5000".parse().expect("addr"));
        let other = &Remote::Tcp("10.9.8.7:5000".parse().expect("addr"));
        assert!(check_san(&cert(&["127.0.0.1"]), local).is_ok());
        assert_eq!(
            check_san(&cert(&["127.0.0.1"]), other).unwrap_err(),
            "x509: certificate is valid for 127.0.0.1, not 10.9.8.7"
        );
        assert!(check_san(&cert(&["localhost"]), local).is_ok());
        assert!(check_san(&cert(&[]), other).is_ok());
        assert_eq!(
            check_san(&cert(&["localhost"]), &Remote::Unix).unwrap_err(),
            "address @: missing port in address"
        );
        assert!(check_san(&cert(&[]), &Remote::Unix).is_ok());
    }

    /// The peer TLS of a member whose certificate names `peers.example.test` only,
    /// trusting the test CA (injected as a CA file: etcd's SRV rule sets the server
    /// name only without one, trusting the system's roots), with `server_name`.
    fn member_tls(dir: &std::path::Path, server_name: &str) -> Arc<dyn PeerTls> {
        let ca = Ca::new("ca").expect("ca");
        let issued = ca
            .issue(&Leaf::new("m", &["peers.example.test"], 1))
            .expect("issue");
        let file = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            path.to_string_lossy().into_owned()
        };
        let info = TlsInfo {
            cert_file: file("peer.crt", &issued.cert_pem),
            key_file: file("peer.key", &issued.key_pem),
            trusted_ca_file: file("ca.crt", &ca.cert_pem),
            server_name: server_name.to_string(),
            ..TlsInfo::default()
        };
        Arc::new(MemberPeerTls::new(&info, true).expect("peer tls"))
    }

    #[tokio::test]
    async fn a_server_name_replaces_the_dialed_host_in_the_certificate_check() {
        use detcd_io::transport::conn::dial;
        use detcd_io::transport::socket::Address;
        let dir = std::env::temp_dir().join(format!("detcd-peer-server-name-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (name, dials) in [("peers.example.test", true), ("", false)] {
            let tls = member_tls(&dir, name);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server());
            let serving = tokio::spawn(async move {
                if let Ok((stream, _)) = listener.accept().await {
                    let _ = acceptor.accept(stream).await;
                }
            });
            let url = format!("https://127.0.0.1:{port}");
            let dialed = dial(&url, &Address::Tcp(format!("127.0.0.1:{port}")), &Some(tls)).await;
            assert_eq!(dialed.is_ok(), dials, "server name {name:?}: {:?}", dialed.err());
            serving.abort();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
