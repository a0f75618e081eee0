//! Certificate checks beyond the chain: etcd's allowed Common Name and allowed host name
//! (`--peer-cert-allowed-cn`, `--peer-cert-allowed-hostname`,
//! `--client-cert-allowed-hostname`), applied by both ends of a connection after the
//! CA (and CRL) check passed, plus the dialer's `--insecure-skip-tls-verify`.
//!
//! A refusal is a handshake failure: the other end gets a TLS alert, and the reason
//! ("CommonName authentication failed", as etcd says it) is in this end's log.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::TlsInfo;

/// The Common Name of a certificate's subject, if it has one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// Whether `cert` is valid for `host` (a DNS name or an IP address), as Go's
/// `Certificate.VerifyHostname`.
pub fn valid_for_host(cert: &CertificateDer<'_>, host: &str) -> bool {
    let (Ok(parsed), Ok(name)) = (ParsedCertificate::try_from(cert), ServerName::try_from(host)) else {
        return false;
    };
    rustls::client::verify_server_name(&parsed, &name).is_ok()
}

/// The allowed-CN / allowed-host-name rule of one side.
#[derive(Debug, Clone, Default)]
struct Allowed {
    cn: String,
    hostname: String,
}

impl Allowed {
    fn of(info: &TlsInfo) -> Self {
        Self {
            cn: info.allowed_cn.clone(),
            hostname: info.allowed_hostname.clone(),
        }
    }

    /// etcd's `VerifyPeerCertificate`: the CN when one is required, else the host name.
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), Error> {
        let refuse = |why: &'static str| {
            detcd_io::log!(
                detcd_io::log::Level::Warn,
                "tls",
                "refused a certificate with CN {:?}: {why}",
                common_name(cert).unwrap_or_default()
            );
            Err(Error::InvalidCertificate(CertificateError::Other(OtherError(
                Arc::new(Refusal(why)),
            ))))
        };
        if !self.cn.is_empty() {
            if common_name(cert).as_deref() != Some(self.cn.as_str()) {
                return refuse("CommonName authentication failed");
            }
        } else if !self.hostname.is_empty() && !valid_for_host(cert, &self.hostname) {
            return refuse("HostName authentication failed");
        }
        Ok(())
    }
}

/// Why a certificate was refused, as etcd words it.
#[derive(Debug)]
struct Refusal(&'static str);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refusal {}

/// A server's check of client certificates: rustls's chain and CRL check, then
/// [`Allowed`].
#[derive(Debug)]
pub struct Checked {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Allowed,
}

impl Checked {
    pub fn new(inner: Arc<dyn ClientCertVerifier>, info: &TlsInfo) -> Self {
        Self {
            inner,
            allowed: Allowed::of(info),
        }
    }
}

impl ClientCertVerifier for Checked {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        self.allowed.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A dialer's check of the server: rustls's chain, CRL and name check, then
/// [`Allowed`].
#[derive(Debug)]
pub struct CheckedServer {
    inner: Arc<dyn ServerCertVerifier>,
    allowed: Allowed,
}

impl CheckedServer {
    pub fn new(inner: Arc<dyn ServerCertVerifier>, info: &TlsInfo) -> Self {
        Self {
            inner,
            allowed: Allowed::of(info),
        }
    }
}

impl ServerCertVerifier for CheckedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        self.allowed.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `--insecure-skip-tls-verify`: any server certificate is accepted (its handshake
/// signatures are still checked, so the connection is at least to the key holder).
#[derive(Debug)]
pub struct AnyServer(Arc<CryptoProvider>);

impl AnyServer {
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self(provider)
    }
}

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A dialer's own certificate, offered whenever the server asks.
#[derive(Debug)]
pub struct ClientCert(pub Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
