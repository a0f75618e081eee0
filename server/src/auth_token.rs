//! Auth tokens at the edge (etcd's `--auth-token`): which provider serves a
//! member, and JWT signing and verification.
//!
//! Simple tokens live in the member itself (`core::auth::SimpleTokens`): the
//! edge only passes them on. JWT tokens carry etcd's claims (`username`,
//! `revision`, `exp`), are signed here on Authenticate and verified here on
//! every request, on any member holding the key: the member then sees a
//! verified user and the auth revision the token was issued under.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use detcd_core::node::Credentials;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// etcd's JWT `ttl` default: 5 minutes.
pub const JWT_TTL_DEFAULT: Duration = Duration::from_secs(300);

/// etcd's JWT claims.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// A key constructor from PEM bytes.
type PemReader<K> = fn(&[u8]) -> Result<K, jsonwebtoken::errors::Error>;

/// A JWT provider: the method, the keys, the token lifetime.
pub struct Jwt {
    algorithm: Algorithm,
    /// None on a member that only verifies (no `priv-key`).
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithm", &self.algorithm)
            .field("signs", &self.signing.is_some())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// `--auth-token`.
#[derive(Debug, Default)]
pub enum TokenProvider {
    #[default]
    Simple,
    Jwt(Jwt),
}

/// Why a token could not be signed.
pub const NO_PRIVATE_KEY: &str = "detcd: this member has no JWT private key (priv-key) to sign tokens with";

impl TokenProvider {
    /// Builds the provider from `--auth-token`'s JWT options (already checked
    /// by the config: `sign-method` present, `ttl` parsed), reading key files
    /// with `read`.
    pub fn jwt(
        sign_method: &str,
        pub_key: Option<&str>,
        priv_key: Option<&str>,
        ttl: Duration,
        read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<TokenProvider, String> {
        let algorithm: Algorithm = sign_method
            .parse()
            .map_err(|_| format!("--auth-token: unsupported sign-method {sign_method:?}"))?;
        let load = |what: &str, path: Option<&str>| -> Result<Option<Vec<u8>>, String> {
            path.map(|p| read(p).map_err(|e| format!("--auth-token: cannot read {what} {p:?}: {e}")))
                .transpose()
        };
        let (pub_pem, priv_pem) = (load("pub-key", pub_key)?, load("priv-key", priv_key)?);
        let bad = |e: jsonwebtoken::errors::Error| format!("--auth-token: bad key for {sign_method}: {e}");
        let (signing, verifying) = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret =
                    priv_pem.ok_or("--auth-token: HMAC methods need priv-key (the shared secret)")?;
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            _ => {
                let public = pub_pem.ok_or("--auth-token: jwt needs pub-key")?;
                let (enc, dec): (PemReader<EncodingKey>, PemReader<DecodingKey>) = match algorithm {
                    Algorithm::ES256 | Algorithm::ES384 => {
                        (EncodingKey::from_ec_pem, DecodingKey::from_ec_pem)
                    }
                    Algorithm::EdDSA => (EncodingKey::from_ed_pem, DecodingKey::from_ed_pem),
                    _ => (EncodingKey::from_rsa_pem, DecodingKey::from_rsa_pem),
                };
                let signing = priv_pem.map(|p| enc(&p)).transpose().map_err(bad)?;
                (signing, dec(&public).map_err(bad)?)
            }
        };
        Ok(TokenProvider::Jwt(Jwt {
            algorithm,
            signing,
            verifying,
            ttl,
        }))
    }

    /// What a presented token says about its user.
    pub fn credentials(&self, token: &str) -> Credentials {
        match self {
            TokenProvider::Simple => Credentials::Token(token.to_string()),
            TokenProvider::Jwt(jwt) => {
                let validation = Validation::new(jwt.algorithm);
                match jsonwebtoken::decode::<Claims>(token, &jwt.verifying, &validation) {
                    Ok(t) => Credentials::Verified {
                        user: t.claims.username,
                        revision: Some(t.claims.revision),
                    },
                    Err(_) => Credentials::Invalid,
                }
            }
        }
    }

    /// A JWT for `user` at auth `revision`; `None` for simple tokens (the
    /// member makes those).
    pub fn sign(&self, user: &str, revision: u64) -> Option<Result<String, String>> {
        let TokenProvider::Jwt(jwt) = self else {
            return None;
        };
        let Some(key) = &jwt.signing else {
            return Some(Err(NO_PRIVATE_KEY.to_string()));
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp: (now + jwt.ttl).as_secs(),
        };
        Some(jsonwebtoken::encode(&Header::new(jwt.algorithm), &claims, key).map_err(|e| e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs256(secret: &'static [u8], ttl: Duration) -> TokenProvider {
        TokenProvider::jwt("HS256", None, Some("key"), ttl, &|_| Ok(secret.to_vec())).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_with_the_same_key_only() {
        let a = hs256(b"secret-one", JWT_TTL_DEFAULT);
        let token = a.sign("alice", 7).unwrap().unwrap();
        assert_eq!(
            a.credentials(&token),
            Credentials::Verified {
                user: "alice".to_string(),
                revision: Some(7)
            }
        );
        let b = hs256(b"secret-two", JWT_TTL_DEFAULT);
        assert_eq!(b.credentials(&token), Credentials::Invalid);
        assert_eq!(a.credentials("not.a.jwt"), Credentials::Invalid);
    }

    /// A provider for `method` over these PEM files, read from memory.
    fn with_keys(method: &str, public: String, private: Option<String>) -> TokenProvider {
        let private_path = private.is_some().then_some("priv");
        let read = move |path: &str| -> Result<Vec<u8>, String> {
            Ok(if path == "pub" {
                public.clone()
            } else {
                private.clone().unwrap_or_default()
            }
            .into_bytes())
        };
        TokenProvider::jwt(method, Some("pub"), private_path, JWT_TTL_DEFAULT, &read).unwrap()
    }

    /// Every asymmetric family etcd offers: a member with the private key signs, one
    /// with only the public key verifies (and cannot sign), another key pair refuses.
    #[test]
    fn asymmetric_methods_sign_on_one_member_and_verify_on_another() {
        let rsa = (
            include_str!("../tests/data/jwt-rsa.pub").to_string(),
            include_str!("../tests/data/jwt-rsa.key").to_string(),
        );
        let generated = |alg: &'static rcgen::SignatureAlgorithm| {
            let pair = rcgen::KeyPair::generate_for(alg).unwrap();
            (pair.public_key_pem(), pair.serialize_pem())
        };
        let cases = [
            ("RS256", rsa.clone()),
            ("RS512", rsa.clone()),
            ("PS256", rsa.clone()),
            ("PS384", rsa),
            ("ES256", generated(&rcgen::PKCS_ECDSA_P256_SHA256)),
            ("ES384", generated(&rcgen::PKCS_ECDSA_P384_SHA384)),
            ("EdDSA", generated(&rcgen::PKCS_ED25519)),
        ];
        for (method, (public, private)) in cases {
            let signer = with_keys(method, public.clone(), Some(private));
            let verifier = with_keys(method, public, None);
            let token = signer.sign("alice", 3).unwrap().unwrap();
            let expected = Credentials::Verified {
                user: "alice".to_string(),
                revision: Some(3),
            };
            assert_eq!(verifier.credentials(&token), expected, "{method}");
            assert_eq!(
                verifier.sign("alice", 3),
                Some(Err(NO_PRIVATE_KEY.to_string())),
                "{method}"
            );
            let mut forged = token.clone();
            forged.truncate(token.len() - 4);
            forged.push_str("AAAA");
            assert_eq!(verifier.credentials(&forged), Credentials::Invalid, "{method}");
        }
        let (other_public, _) = generated(&rcgen::PKCS_ED25519);
        let (public, private) = generated(&rcgen::PKCS_ED25519);
        let token = with_keys("EdDSA", public, Some(private))
            .sign("bob", 1)
            .unwrap()
            .unwrap();
        assert_eq!(
            with_keys("EdDSA", other_public, None).credentials(&token),
            Credentials::Invalid
        );
    }

    #[test]
    fn bad_options_are_clear_errors() {
        let read = |_: &str| Ok(b"x".to_vec());
        let e = TokenProvider::jwt("XX999", None, None, JWT_TTL_DEFAULT, &read).unwrap_err();
        assert!(e.contains("unsupported sign-method"), "{e}");
        let e = TokenProvider::jwt("RS256", None, None, JWT_TTL_DEFAULT, &read).unwrap_err();
        assert!(e.contains("needs pub-key"), "{e}");
        let e = TokenProvider::jwt("RS256", Some("p"), None, JWT_TTL_DEFAULT, &read).unwrap_err();
        assert!(e.contains("bad key"), "{e}");
        let e = TokenProvider::jwt("HS256", None, None, JWT_TTL_DEFAULT, &read).unwrap_err();
        assert!(e.contains("need priv-key"), "{e}");
    }
}
