//! `--auth-token` and the bcrypt cost bounds.

use std::collections::BTreeMap;

use super::ConfigError;

/// bcrypt's cost bounds and etcd's default (`bcrypt.MinCost`, `MaxCost`, `DefaultCost`).
pub const BCRYPT_COST_MIN: u32 = 4;
pub const BCRYPT_COST_MAX: u32 = 31;
pub const BCRYPT_COST_DEFAULT: u32 = 10;

/// `--auth-token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthToken {
    Simple,
    /// `jwt,pub-key=..,priv-key=..,sign-method=..,ttl=..` (keys are file paths).
    Jwt {
        sign_method: String,
        pub_key: Option<String>,
        priv_key: Option<String>,
        ttl_ms: u64,
    },
}

/// `--auth-token`: etcd's `type[,option=value...]` (`decomposeOpts`): each
/// option once, `key=value`; a simple token takes none. Errors end in etcd's
/// `auth: invalid auth options`.
pub(super) fn parse_auth_token(spec: &str) -> Result<AuthToken, ConfigError> {
    let invalid = |m: String| {
        Err(ConfigError::Invalid(format!(
            "--auth-token: {m}: auth: invalid auth options"
        )))
    };
    let mut parts = spec.split(',');
    let kind = parts.next().unwrap_or_default();
    let mut options: BTreeMap<&str, &str> = BTreeMap::new();
    for part in parts {
        let Some((k, v)) = part.split_once('=') else {
            return invalid(format!("option {part:?} is not key=value"));
        };
        if options.insert(k, v).is_some() {
            return invalid(format!("option {k:?} given twice"));
        }
    }
    match kind {
        "simple" if options.is_empty() => Ok(AuthToken::Simple),
        "simple" => invalid("simple tokens take no options".to_string()),
        "jwt" => {
            if let Some(k) = options
                .keys()
                .find(|k| !["pub-key", "priv-key", "sign-method", "ttl"].contains(k))
            {
                return invalid(format!("unknown jwt option {k:?}"));
            }
            let Some(sign_method) = options.get("sign-method") else {
                return invalid("jwt needs sign-method".to_string());
            };
            let ttl_ms = match options.get("ttl") {
                None => 5 * 60 * 1000,
                Some(v) => match crate::ctl::parse_go_duration(v) {
                    Some(d) if !d.is_zero() => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                    _ => return invalid(format!("bad jwt ttl {v:?}")),
                },
            };
            Ok(AuthToken::Jwt {
                sign_method: sign_method.to_string(),
                pub_key: options.get("pub-key").map(|s| s.to_string()),
                priv_key: options.get("priv-key").map(|s| s.to_string()),
                ttl_ms,
            })
        }
        other => invalid(format!("unknown token type {other:?}")),
    }
}
