//! `--cipher-suites`, `--tls-min-version`, `--tls-max-version` with etcd's names and
//! messages, mapped onto what rustls offers: TLS 1.2 and 1.3, and among Go's cipher
//! suites the ECDHE AEAD ones. A name Go knows but rustls does not have (CBC, RC4,
//! 3DES, static RSA key exchange) is refused with a message saying so, never dropped.
//! As in Go, the cipher suite list applies to TLS 1.2; TLS 1.3's suites are fixed.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::SupportedProtocolVersion;

/// Go's cipher suite names (crypto/tls) that rustls has no implementation of.
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The rustls name of an etcd (Go) cipher suite name.
fn rustls_name(go_name: &str) -> String {
    match go_name {
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            format!("{go_name}_SHA256")
        }
        _ => go_name.to_string(),
    }
}

/// The TLS settings both sides share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsCommon {
    /// etcd's names; empty: rustls's defaults.
    pub cipher_suites: Vec<String>,
    /// `TLS1.2` (the default) or `TLS1.3`.
    pub min_version: String,
    /// Empty (no maximum), `TLS1.2` or `TLS1.3`.
    pub max_version: String,
}

/// A version's rank, or etcd's message for an unknown name.
fn rank(name: &str) -> Result<u8, String> {
    match name {
        "TLS1.0" | "TLS1.1" => Err(format!(
            "{name} is not supported by detcd (rustls speaks TLS1.2 and TLS1.3)"
        )),
        "TLS1.2" => Ok(2),
        "TLS1.3" => Ok(3),
        _ => Err(format!(
            "unexpected TLS version {name:?} (must be one of: TLS1.0, TLS1.1, TLS1.2, TLS1.3)"
        )),
    }
}

impl TlsCommon {
    /// Checks the three flags (start-up errors, etcd's messages where etcd has them).
    pub fn validate(&self) -> Result<(), String> {
        let min = rank(if self.min_version.is_empty() {
            "TLS1.2"
        } else {
            &self.min_version
        })?;
        let max = if self.max_version.is_empty() {
            3
        } else {
            rank(&self.max_version)?
        };
        if min > max {
            return Err(format!(
                "min version ({}) is greater than max version ({})",
                self.min_version, self.max_version
            ));
        }
        if !self.cipher_suites.is_empty() && min == 3 {
            return Err("cipher suites cannot be configured when only TLS1.3 is enabled".into());
        }
        self.provider().map(|_| ())
    }

    /// The TLS versions to speak.
    pub fn versions(&self) -> Vec<&'static SupportedProtocolVersion> {
        let min = rank(if self.min_version.is_empty() {
            "TLS1.2"
        } else {
            &self.min_version
        })
        .unwrap_or(2);
        let max = if self.max_version.is_empty() {
            3
        } else {
            rank(&self.max_version).unwrap_or(3)
        };
        let mut versions = Vec::new();
        if min <= 3 && max >= 3 {
            versions.push(&rustls::version::TLS13);
        }
        if min <= 2 && max >= 2 {
            versions.push(&rustls::version::TLS12);
        }
        versions
    }

    /// rustls's ring provider with the TLS 1.2 suites narrowed to `--cipher-suites`.
    pub fn provider(&self) -> Result<Arc<CryptoProvider>, String> {
        let mut provider = rustls::crypto::ring::default_provider();
        if self.cipher_suites.is_empty() {
            return Ok(Arc::new(provider));
        }
        let mut chosen = Vec::new();
        for name in &self.cipher_suites {
            if GO_ONLY_SUITES.contains(&name.as_str()) {
                return Err(format!(
                    "TLS cipher suite {name:?} is not supported by detcd (rustls has only ECDHE suites with AEAD ciphers)"
                ));
            }
            let wanted = rustls_name(name);
            let suite = provider
                .cipher_suites
                .iter()
                .find(|s| s.version() == &rustls::version::TLS12 && format!("{:?}", s.suite()) == wanted)
                .ok_or_else(|| format!("unexpected TLS cipher suite {name:?}"))?;
            chosen.push(*suite);
        }
        let tls13: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        chosen.extend(tls13);
        provider.cipher_suites = chosen;
        Ok(Arc::new(provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(suites: &[&str], min: &str, max: &str) -> TlsCommon {
        TlsCommon {
            cipher_suites: suites.iter().map(|s| s.to_string()).collect(),
            min_version: min.into(),
            max_version: max.into(),
        }
    }

    #[test]
    fn etcd_names_and_messages() {
        assert!(common(
            &[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
            ],
            "",
            ""
        )
        .validate()
        .is_ok());
        assert_eq!(
            common(&["TLS_FOO"], "", "").validate().unwrap_err(),
            "unexpected TLS cipher suite \"TLS_FOO\""
        );
        assert!(common(&["TLS_RSA_WITH_AES_128_CBC_SHA"], "", "")
            .validate()
            .unwrap_err()
            .contains("not supported by detcd"));
        assert_eq!(
            common(&[], "TLS1.4", "").validate().unwrap_err(),
            "unexpected TLS version \"TLS1.4\" (must be one of: TLS1.0, TLS1.1, TLS1.2, TLS1.3)"
        );
        assert_eq!(
            common(&[], "TLS1.3", "TLS1.2").validate().unwrap_err(),
            "min version (TLS1.3) is greater than max version (TLS1.2)"
        );
        assert_eq!(
            common(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], "TLS1.3", "")
                .validate()
                .unwrap_err(),
            "cipher suites cannot be configured when only TLS1.3 is enabled"
        );
        assert_eq!(common(&[], "TLS1.3", "").versions().len(), 1);
        assert_eq!(common(&[], "", "TLS1.2").versions().len(), 1);
        assert_eq!(common(&[], "", "").versions().len(), 2);
        let narrowed = common(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], "", "")
            .provider()
            .expect("provider");
        assert_eq!(
            narrowed
                .cipher_suites
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS12)
                .count(),
            1
        );
    }
}
