//! Certificates made with rcgen: a small CA for tests and the `detcd-certs` helper, the
//! certificates it signs, CRLs, and the self-signed certificates of `--auto-tls` /
//! `--peer-auto-tls`. Keys are ECDSA P-256.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a certificate signed by a [`Ca`] says.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub common_name: String,
    /// DNS names and IP addresses (subject alternative names).
    pub hosts: Vec<String>,
    /// Valid from this many days from now (negative: in the past).
    pub from_days: i64,
    /// Valid until this many days from now (negative: already expired).
    pub until_days: i64,
    pub serial: u64,
}

impl Leaf {
    /// A certificate for `common_name` and `hosts`, valid for a year from yesterday.
    pub fn new(common_name: &str, hosts: &[&str], serial: u64) -> Self {
        Self {
            common_name: common_name.to_string(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            from_days: -1,
            until_days: 365,
            serial,
        }
    }
}

/// A certificate authority: its certificate (PEM) and the key that signs.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert_pem", &self.cert_pem).finish()
    }
}

fn err(e: rcgen::Error) -> String {
    format!("cannot make the certificate: {e}")
}

fn days(n: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::days(n)
}

impl Ca {
    /// A new CA named `common_name`, valid for ten years.
    pub fn new(common_name: &str) -> Result<Self, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = days(-1);
        params.not_after = days(3650);
        let key = KeyPair::generate().map_err(err)?;
        let cert_pem = params.self_signed(&key).map_err(err)?.pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem,
        })
    }

    /// A CA read back from its PEM certificate and key (as `detcd-certs` writes them).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("cannot read the CA key: {e}"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| format!("cannot read the CA certificate: {e}"))?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_string(),
        })
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A certificate for `leaf`, usable by servers and clients alike (etcd's members are
    /// both).
    pub fn issue(&self, leaf: &Leaf) -> Result<Issued, String> {
        let mut params = CertificateParams::new(leaf.hosts.clone()).map_err(err)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, leaf.common_name.as_str());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.serial_number = Some(SerialNumber::from(leaf.serial));
        params.not_before = days(leaf.from_days);
        params.not_after = days(leaf.until_days);
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A CRL revoking the certificates with these serial numbers, valid for a week.
    pub fn crl(&self, revoked_serials: &[u64]) -> Result<String, String> {
        let params = CertificateRevocationListParams {
            this_update: days(-1),
            next_update: days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: days(-1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).map_err(err)?.pem().map_err(err)
    }
}

/// etcd's `SelfCert`: a self-signed certificate for `hosts`, valid for `validity_days`.
pub fn self_signed(hosts: &[String], validity_days: i64) -> Result<Issued, String> {
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(err)?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "etcd");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = days(0);
    params.not_after = days(validity_days);
    let key = KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// `detcd-certs`: makes a test CA and certificates signed by it, so a TLS cluster can be
/// set up without OpenSSL. Returns the exit status.
///
/// - `detcd-certs ca DIR`: `DIR/ca.crt` and `DIR/ca.key`.
/// - `detcd-certs cert DIR NAME HOST[,HOST...]`: `DIR/NAME.crt` and `DIR/NAME.key`, Common
///   Name `NAME`, valid for the hosts, for servers and clients, signed by `DIR`'s CA.
pub fn certs_main(args: &[String]) -> i32 {
    let usage = "usage: detcd-certs ca DIR | detcd-certs cert DIR NAME HOST[,HOST...]";
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["ca", dir] => make_ca(dir),
        ["cert", dir, name, hosts] => make_cert(dir, name, hosts),
        _ => {
            eprintln!("{usage}");
            return 2;
        }
    };
    match result {
        Ok(written) => {
            for path in written {
                println!("wrote {path}");
            }
            0
        }
        Err(e) => {
            eprintln!("detcd-certs: {e}");
            1
        }
    }
}

fn write(path: String, text: &str, private: bool) -> Result<String, String> {
    std::fs::write(&path, text).map_err(|e| format!("cannot write {path}: {e}"))?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {path}: {e}"))?;
    }
    Ok(path)
}

fn make_ca(dir: &str) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
    let ca = Ca::new("detcd test CA")?;
    Ok(vec![
        write(format!("{dir}/ca.crt"), &ca.cert_pem, false)?,
        write(format!("{dir}/ca.key"), &ca.key_pem(), true)?,
    ])
}

fn make_cert(dir: &str, name: &str, hosts: &str) -> Result<Vec<String>, String> {
    let read = |p: String| std::fs::read_to_string(&p).map_err(|e| format!("cannot read {p}: {e}"));
    let ca = Ca::load(&read(format!("{dir}/ca.crt"))?, &read(format!("{dir}/ca.key"))?)?;
    let hosts: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
    // A serial unique enough for a test CA: the time in nanoseconds.
    let serial = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let issued = ca.issue(&Leaf::new(name, &hosts, serial))?;
    Ok(vec![
        write(format!("{dir}/{name}.crt"), &issued.cert_pem, false)?,
        write(format!("{dir}/{name}.key"), &issued.key_pem, true)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_carry_their_names() {
        let ca = Ca::new("test ca").expect("ca");
        let leaf = ca
            .issue(&Leaf::new("member-1", &["127.0.0.1", "localhost"], 7))
            .expect("leaf");
        let der = rustls_pki_types::CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("pem");
        assert_eq!(
            super::super::verify::common_name(&der).as_deref(),
            Some("member-1")
        );
        assert!(super::super::verify::valid_for_host(&der, "127.0.0.1"));
        assert!(super::super::verify::valid_for_host(&der, "localhost"));
        assert!(!super::super::verify::valid_for_host(&der, "example.com"));
        let again = Ca::load(&ca.cert_pem, &ca.key_pem()).expect("load");
        assert!(again.crl(&[7]).expect("crl").contains("BEGIN X509 CRL"));
    }

    use rustls_pki_types::pem::PemObject;
}
