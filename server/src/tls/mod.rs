//! TLS for the client and peer ports, with etcd's semantics (`client/pkg/transport`).
//!
//! - [`TlsInfo`] is one side's flags (`--cert-file`, `--key-file`, `--trusted-ca-file`,
//!   `--client-cert-auth`, `--client-crl-file`, the allowed CN / host name; the `--peer-*`
//!   flags for the peer side).
//! - [`Reloading`] holds a rustls configuration built from those files and builds it
//!   again when one of them changes on disk (looked at on every handshake, as etcd reads
//!   its files per handshake), so certificates, keys, CAs and CRLs rotate without a
//!   restart. A file that cannot be read at start-up is an error; one that turns bad
//!   later is logged and the last good configuration kept.
//! - A server asks for client certificates when `--client-cert-auth` or
//!   `--trusted-ca-file` is set (etcd's `RequireAndVerifyClientCert`), and then checks
//!   them against the CA, the CRL and the allowed CN / host name ([`verify`]).
//!
//! Everything cryptographic is rustls with the ring provider; nothing falls back to
//! plain text: a URL that asks for TLS gets TLS or the member does not start.

pub mod auto;
pub mod certs;
pub mod peer;
pub mod suites;
pub mod verify;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// One side's TLS flags (client or peer), as etcd's `transport.TLSInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub cert_file: String,
    pub key_file: String,
    pub trusted_ca_file: String,
    pub client_cert_auth: bool,
    pub crl_file: String,
    /// A verified peer certificate must have this Common Name (`--peer-cert-allowed-cn`).
    pub allowed_cn: String,
    /// A verified peer certificate must be valid for this host name.
    pub allowed_hostname: String,
    /// The certificate was made by auto-TLS: a dialer with it cannot check servers.
    pub self_signed: bool,
    /// A dialer checks servers' certificates against this name instead of the dialed
    /// host (etcd's `TLSInfo.ServerName`; set by SRV discovery, no flag).
    pub server_name: String,
    /// `--cipher-suites`, `--tls-min-version`, `--tls-max-version` (shared by both sides).
    pub common: suites::TlsCommon,
}

impl TlsInfo {
    /// etcd's `TLSInfo.Empty`: no certificate and no key.
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_empty() && self.key_file.is_empty()
    }

    fn files(&self) -> Vec<&str> {
        [
            self.cert_file.as_str(),
            self.key_file.as_str(),
            self.trusted_ca_file.as_str(),
            self.crl_file.as_str(),
        ]
        .into_iter()
        .filter(|f| !f.is_empty())
        .collect()
    }

    /// Whether a server with these flags asks every client for a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.client_cert_auth || !self.trusted_ca_file.is_empty()
    }
}

/// The certificates of a PEM file, in order.
pub fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "tls: failed to find any PEM data in certificate input ({path})"
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| format!("tls: failed to find any PEM data in key input ({path})"))
}

fn read_crls(path: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = read(path)?;
    CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: {e}"))
}

/// Reads a file with Go's `open <path>: <reason>` wording on failure.
fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("open {path}: {}", io_reason(&e)))
}

/// Go's short texts for the common file errors.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// The trust anchors of a CA bundle.
fn read_roots(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{path}: not a usable CA certificate: {e}"))?;
    }
    Ok(roots)
}

/// The certificate chain and key of `info`, checked to belong together.
fn certified_key(
    info: &TlsInfo,
    provider: &CryptoProvider,
) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    let certs = read_certs(&info.cert_file)?;
    let key = read_key(&info.key_file)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: unusable private key: {e}", info.key_file))?;
    let certified = rustls::sign::CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .map_err(|_| "tls: private key does not match public key".to_string())?;
    Ok(Arc::new(certified))
}

/// A server configuration for `info` (certificate and key required).
pub fn server_config(info: &TlsInfo) -> Result<ServerConfig, String> {
    if info.is_empty() {
        return Err("KeyFile and CertFile are not presented".into());
    }
    let provider = info.common.provider()?;
    let certified = certified_key(info, &provider)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&info.common.versions())
        .map_err(|e| e.to_string())?;
    let builder = if info.requires_client_cert() {
        // Without a CA file, the system's trust anchors (as Go's nil ClientCAs).
        let roots = if info.trusted_ca_file.is_empty() {
            system_roots()
        } else {
            read_roots(&info.trusted_ca_file)?
        };
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        if !info.crl_file.is_empty() {
            verifier = verifier.with_crls(read_crls(&info.crl_file)?);
        }
        let inner = verifier
            .build()
            .map_err(|e| format!("cannot verify client certificates: {e}"))?;
        builder.with_client_cert_verifier(Arc::new(verify::Checked::new(inner, info)))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// How a dialer checks the server it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCheck {
    /// Against these trust anchors (a PEM file), the CRL and the allowed CN / host name of
    /// the [`TlsInfo`].
    CaFile(String),
    /// Against the system's trust anchors (etcdctl without `--cacert`).
    System,
    /// Not at all (`--insecure-skip-tls-verify`).
    Skip,
}

impl ServerCheck {
    /// How a member (or proxy) dialing with `info` checks servers: not at all with an
    /// auto-TLS certificate, against `info`'s CA file, else the system's anchors.
    pub fn dialing(info: &TlsInfo) -> ServerCheck {
        if info.self_signed {
            ServerCheck::Skip
        } else if info.trusted_ca_file.is_empty() {
            ServerCheck::System
        } else {
            ServerCheck::CaFile(info.trusted_ca_file.clone())
        }
    }
}

/// A client configuration: `info`'s certificate and key (when given) as the client's
/// identity; the server checked as `check` says.
pub fn client_config(info: &TlsInfo, check: &ServerCheck, alpn: &[&[u8]]) -> Result<ClientConfig, String> {
    let provider = info.common.provider()?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&info.common.versions())
        .map_err(|e| e.to_string())?;
    let builder = match check {
        ServerCheck::Skip => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::AnyServer::new(provider.clone()))),
        ServerCheck::CaFile(_) | ServerCheck::System => {
            let roots = match check {
                ServerCheck::CaFile(path) => read_roots(path)?,
                _ => system_roots(),
            };
            let mut verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if !info.crl_file.is_empty() {
                verifier = verifier.with_crls(read_crls(&info.crl_file)?);
            }
            let inner = verifier
                .build()
                .map_err(|e| format!("cannot verify server certificates: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verify::CheckedServer::new(inner, info)))
        }
    };
    let mut config = if info.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_resolver(Arc::new(verify::ClientCert(certified_key(info, &provider)?)))
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The system's trust anchors (`/etc/ssl/certs` and the like); empty when none are found.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let defaults = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    // As Go's system roots on Linux: `SSL_CERT_FILE` replaces the default files.
    let chosen = std::env::var("SSL_CERT_FILE").ok().filter(|f| !f.is_empty());
    let candidates: Vec<&str> = match &chosen {
        Some(file) => vec![file.as_str()],
        None => defaults.to_vec(),
    };
    for candidate in candidates {
        if let Ok(certs) = read_certs(candidate) {
            let _ = roots.add_parsable_certificates(certs);
            break;
        }
    }
    roots
}

/// What is known of one file: enough to notice it was replaced or rewritten.
type Stamp = Option<(std::time::SystemTime, u64, u64)>;

fn stamp(path: &str) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(Path::new(path)).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// A configuration built from files, built again when one of them changes.
pub struct Reloading<C> {
    what: &'static str,
    files: Vec<String>,
    build: Box<dyn Fn() -> Result<C, String> + Send + Sync>,
    current: Mutex<(Vec<Stamp>, Arc<C>)>,
}

impl<C> std::fmt::Debug for Reloading<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("files", &self.files)
            .finish()
    }
}

impl<C> Reloading<C> {
    /// Builds the configuration once; an error here is a start-up error.
    pub fn new(
        what: &'static str,
        info: &TlsInfo,
        build: impl Fn() -> Result<C, String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let files: Vec<String> = info.files().into_iter().map(str::to_string).collect();
        let stamps = files.iter().map(|f| stamp(f)).collect();
        let config = build()?;
        Ok(Self {
            what,
            files,
            build: Box::new(build),
            current: Mutex::new((stamps, Arc::new(config))),
        })
    }

    /// The configuration for the next handshake: rebuilt first when a file changed.
    pub fn get(&self) -> Arc<C> {
        let stamps: Vec<Stamp> = self.files.iter().map(|f| stamp(f)).collect();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.0 != stamps {
            match (self.build)() {
                Ok(config) => {
                    crate::log(&format!(
                        "{}: certificate files changed, loaded them again",
                        self.what
                    ));
                    *current = (stamps, Arc::new(config));
                }
                Err(e) => {
                    detcd_io::log!(
                        detcd_io::log::Level::Warn,
                        "tls",
                        "{}: certificate files changed but cannot be used ({e}); keeping the previous ones",
                        self.what
                    );
                    // Remember the stamps so a bad file is reported once, not per handshake.
                    current.0 = stamps;
                }
            }
        }
        current.1.clone()
    }
}

/// A server side that reloads its files: `info` as a TLS server.
pub fn reloading_server(what: &'static str, info: &TlsInfo) -> Result<Arc<Reloading<ServerConfig>>, String> {
    let owned = info.clone();
    Reloading::new(what, info, move || server_config(&owned)).map(Arc::new)
}

/// A dialing side that reloads its files.
pub fn reloading_client(
    what: &'static str,
    info: &TlsInfo,
    check: ServerCheck,
    alpn: &'static [&'static [u8]],
) -> Result<Arc<Reloading<ClientConfig>>, String> {
    let owned = info.clone();
    let mut watched = info.clone();
    if let ServerCheck::CaFile(path) = &check {
        watched.trusted_ca_file = path.clone();
    }
    Reloading::new(what, &watched, move || client_config(&owned, &check, alpn)).map(Arc::new)
}
