//! etcd's YAML configuration file as detcd reads it (see [`parse_yaml`]), parsed by the
//! `yaml-rust2` crate.

use yaml_rust2::{Yaml, YamlLoader};

use crate::config::ConfigError;

/// The nested sections etcd's file has, with each key's flag (`socket-options:` is etcd
/// 3.5's `transport.SocketOpts`).
const SECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "client-transport-security",
        &[
            ("cert-file", "cert-file"),
            ("key-file", "key-file"),
            ("client-cert-file", "client-cert-file"),
            ("client-key-file", "client-key-file"),
            ("client-cert-auth", "client-cert-auth"),
            ("trusted-ca-file", "trusted-ca-file"),
            ("crl-file", "client-crl-file"),
            ("auto-tls", "auto-tls"),
            ("allowed-hostname", "client-cert-allowed-hostname"),
        ],
    ),
    (
        "peer-transport-security",
        &[
            ("cert-file", "peer-cert-file"),
            ("key-file", "peer-key-file"),
            ("client-cert-file", "peer-client-cert-file"),
            ("client-key-file", "peer-client-key-file"),
            ("client-cert-auth", "peer-client-cert-auth"),
            ("trusted-ca-file", "peer-trusted-ca-file"),
            ("crl-file", "peer-crl-file"),
            ("auto-tls", "peer-auto-tls"),
            ("allowed-cn", "peer-cert-allowed-cn"),
            ("allowed-hostname", "peer-cert-allowed-hostname"),
            (
                "skip-client-san-verification",
                "peer-skip-client-san-verification",
            ),
        ],
    ),
    (
        "socket-options",
        &[
            ("reuse-port", "socket-reuse-port"),
            ("reuse-address", "socket-reuse-address"),
        ],
    ),
];

/// Keys of etcd's file spelled otherwise than their flag (etcd's JSON tag differs).
const RENAMED_KEYS: &[(&str, &str)] = &[(
    "experimental-snapshot-catch-up-entries",
    "experimental-snapshot-catchup-entries",
)];

/// etcd 3.6's `discovery-config:` section (`v3discovery.DiscoveryConfig`: the token and
/// a clientv3 `ConfigSpec`), by path, with each key's flag. Durations there are Go's
/// JSON form, integer nanoseconds.
const DISCOVERY_CONFIG: &[(&str, &str)] = &[
    ("token", "discovery-token"),
    ("client.endpoints", "discovery-endpoints"),
    ("client.dial-timeout", "discovery-dial-timeout"),
    ("client.request-timeout", "discovery-request-timeout"),
    ("client.keepalive-time", "discovery-keepalive-time"),
    ("client.keepalive-timeout", "discovery-keepalive-timeout"),
    ("client.secure.cert", "discovery-cert"),
    ("client.secure.key", "discovery-key"),
    ("client.secure.cacert", "discovery-cacert"),
    ("client.secure.insecure-transport", "discovery-insecure-transport"),
    (
        "client.secure.insecure-skip-tls-verify",
        "discovery-insecure-skip-tls-verify",
    ),
    ("client.auth.username", "discovery-user"),
    ("client.auth.password", "discovery-password"),
];

/// The keys under `discovery-config:` as `(line, flag, value)`; an unknown path comes
/// back as `discovery-config.<path>`, which the caller refuses as unknown.
fn discovery_config(
    text: &str,
    prefix: &str,
    map: yaml_rust2::yaml::Hash,
    after: usize,
    out: &mut Vec<(usize, String, Option<String>)>,
) -> Result<(), ConfigError> {
    for (key, value) in map {
        let key = scalar_key(&key)?;
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let line = line_of(text, &key, after);
        if let Yaml::Hash(inner) = value {
            discovery_config(text, &path, inner, line, out)?;
            continue;
        }
        let Some((_, flag)) = DISCOVERY_CONFIG.iter().find(|(p, _)| *p == path) else {
            out.push((line, format!("discovery-config.{path}"), optional(&value, &path)?));
            continue;
        };
        let value = match value {
            Yaml::Integer(ns) if flag.ends_with("timeout") || flag.ends_with("time") => {
                Some(format!("{ns}ns"))
            }
            other => optional(&other, flag)?,
        };
        out.push((line, (*flag).to_string(), value));
    }
    Ok(())
}

/// Reads etcd's YAML configuration: a mapping of flag names to values, where a list
/// stands for its items joined by commas (`log-outputs: [stderr]`) and null (`key:` with
/// nothing after it) for a key not set, as etcd reads it (its YAML goes through JSON, where
/// a null leaves the default in place: etcd's sample has `initial-cluster:`); and the two nested sections `client-transport-security:` and
/// `peer-transport-security:`, whose keys come back as the flags they stand for
/// (`peer-transport-security: cert-file:` is `peer-cert-file`; an unknown one as
/// `section.key`, which the caller refuses as unknown), and etcd 3.6's
/// `discovery-config:` (see [`DISCOVERY_CONFIG`]). Any other nested mapping is an
/// error naming its key. Returns `(line number, key, value)` in the file's order.
pub fn parse_yaml(text: &str) -> Result<Vec<(usize, String, Option<String>)>, ConfigError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| ConfigError::File(format!("config file: {e}")))?;
    let mut out = Vec::new();
    let root = match docs.into_iter().next() {
        None | Some(Yaml::Null) => return Ok(out),
        Some(Yaml::Hash(h)) => h,
        Some(_) => {
            return Err(ConfigError::File(
                "config file: expected a mapping of keys to values".to_string(),
            ))
        }
    };
    for (key, value) in root {
        let key = scalar_key(&key)?;
        let line = line_of(text, &key, 0);
        if let (Yaml::Hash(inner), "discovery-config") = (&value, key.as_str()) {
            discovery_config(text, "", inner.clone(), line, &mut out)?;
            continue;
        }
        if let Yaml::Hash(inner) = value {
            let Some((section, keys)) = SECTIONS.iter().find(|(name, _)| *name == key) else {
                return Err(ConfigError::File(format!(
                    "config file line {line}: {key:?}: nested values are supported only under client-transport-security:, peer-transport-security:, socket-options: and discovery-config:"
                )));
            };
            for (nested, value) in inner {
                let nested = scalar_key(&nested)?;
                let flag = match keys.iter().find(|(k, _)| *k == nested) {
                    Some((_, flag)) => (*flag).to_string(),
                    None => format!("{section}.{nested}"),
                };
                let value = optional(&value, &flag)?;
                out.push((line_of(text, &nested, line), flag, value));
            }
            continue;
        }
        let value = optional(&value, &key)?;
        let key = match RENAMED_KEYS.iter().find(|(k, _)| *k == key) {
            Some((_, flag)) => (*flag).to_string(),
            None => key,
        };
        out.push((line, key, value));
    }
    Ok(out)
}

/// A value as the flag would take it; None for null (the key is not set).
fn optional(value: &Yaml, key: &str) -> Result<Option<String>, ConfigError> {
    match value {
        Yaml::Null => Ok(None),
        other => scalar_value(other, key).map(Some),
    }
}

fn scalar_key(key: &Yaml) -> Result<String, ConfigError> {
    match key {
        Yaml::String(s) => Ok(s.clone()),
        other => Err(ConfigError::File(format!(
            "config file: key {other:?} is not a string"
        ))),
    }
}

/// A value as the flag would take it.
fn scalar_value(value: &Yaml, key: &str) -> Result<String, ConfigError> {
    Ok(match value {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Null => String::new(),
        Yaml::Array(items) => items
            .iter()
            .map(|item| match item {
                Yaml::Hash(_) | Yaml::Array(_) => Err(ConfigError::File(format!(
                    "config file: {key}: a list holds plain values only"
                ))),
                item => scalar_value(item, key),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        Yaml::Hash(_) => {
            return Err(ConfigError::File(format!(
                "config file: {key}: nested values are supported only under client-transport-security:, peer-transport-security:, socket-options: and discovery-config:"
            )))
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err(ConfigError::File(format!("config file: {key}: unsupported value")))
        }
    })
}

/// The 1-based line where `key:` first appears after line `after` (for messages).
fn line_of(text: &str, key: &str, after: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(after)
        .find(|(_, l)| {
            let t = l.trim_start().trim_start_matches(['\'', '"']);
            t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start_matches(['\'', '"']).starts_with(':'))
        })
        .map_or(0, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse_yaml(text)
            .unwrap()
            .into_iter()
            .map(|(_, k, v)| (k, v.unwrap_or_else(|| "<null>".to_string())))
            .collect()
    }

    #[test]
    fn scalars_lists_and_nulls() {
        let got =
            kv("a: 1\n\n# c\nb: \"x # y\\n\"\nc: 'it''s'\nd:\ne: ~\nf: [stderr, /var/log/x]\ng: true\n");
        let want: Vec<(String, String)> = [
            ("a", "1"),
            ("b", "x # y\n"),
            ("c", "it's"),
            ("d", "<null>"),
            ("e", "<null>"),
            ("f", "stderr,/var/log/x"),
            ("g", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        assert!(parse_yaml("just text\n").is_err());
        assert!(parse_yaml("a: \"open\n").is_err());
        assert!(parse_yaml("").unwrap().is_empty());
    }

    #[test]
    fn transport_security_sections_are_flags() {
        let y = parse_yaml(
            "name: n\nclient-transport-security:\n  cert-file: /c.crt\n  client-cert-auth: true\n\
             peer-transport-security:\n  cert-file: /p.crt\n  allowed-cn: member\n  odd: 1\nlog-level: info\n",
        )
        .unwrap();
        let kv: Vec<(usize, &str, &str)> = y
            .iter()
            .map(|(l, k, v)| (*l, k.as_str(), v.as_deref().unwrap_or("<null>")))
            .collect();
        assert_eq!(
            kv,
            vec![
                (1, "name", "n"),
                (3, "cert-file", "/c.crt"),
                (4, "client-cert-auth", "true"),
                (6, "peer-cert-file", "/p.crt"),
                (7, "peer-cert-allowed-cn", "member"),
                (8, "peer-transport-security.odd", "1"),
                (9, "log-level", "info"),
            ]
        );
        let y = parse_yaml(
            "socket-options:\n  reuse-port: true\n  reuse-address: false\nexperimental-snapshot-catch-up-entries: 7\n",
        )
        .unwrap();
        let kv: Vec<(&str, Option<&str>)> = y.iter().map(|(_, k, v)| (k.as_str(), v.as_deref())).collect();
        assert_eq!(
            kv,
            vec![
                ("socket-reuse-port", Some("true")),
                ("socket-reuse-address", Some("false")),
                ("experimental-snapshot-catchup-entries", Some("7")),
            ]
        );
        let e = parse_yaml("name: n\nlogging:\n  level: x\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config file line 2: \"logging\": nested values"),
            "{e}"
        );
    }
}
