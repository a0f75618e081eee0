//! etcd's YAML configuration file as detcd reads it (see [`parse_yaml`]).

use crate::config::ConfigError;

/// The nested sections etcd's file has, with each key's flag.
const SECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "client-transport-security",
        &[
            ("cert-file", "cert-file"),
            ("key-file", "key-file"),
            ("client-cert-auth", "client-cert-auth"),
            ("trusted-ca-file", "trusted-ca-file"),
            ("auto-tls", "auto-tls"),
            ("allowed-hostname", "client-cert-allowed-hostname"),
        ],
    ),
    (
        "peer-transport-security",
        &[
            ("cert-file", "peer-cert-file"),
            ("key-file", "peer-key-file"),
            ("client-cert-auth", "peer-client-cert-auth"),
            ("trusted-ca-file", "peer-trusted-ca-file"),
            ("auto-tls", "peer-auto-tls"),
            ("allowed-cn", "peer-cert-allowed-cn"),
            ("allowed-hostname", "peer-cert-allowed-hostname"),
            (
                "skip-client-san-verification",
                "peer-skip-client-san-verification",
            ),
        ],
    ),
];

/// Reads etcd's YAML configuration: one `key: value` per line, `#` comments, blank
/// lines, values plain or in 'single' or "double" quotes, an empty value meaning empty;
/// and the two nested sections `client-transport-security:` and
/// `peer-transport-security:`, whose keys come back as the flags they stand for
/// (`peer-transport-security: cert-file:` is `peer-cert-file`; an unknown one as
/// `section.key`, which the caller reports as unknown). Other nested mappings, lists and
/// multi-line scalars are not accepted; a line that is not of this form is an error
/// naming the line. Returns `(line number, key, value)`.
pub fn parse_yaml(text: &str) -> Result<Vec<(usize, String, String)>, ConfigError> {
    let mut out = Vec::new();
    let mut section: Option<(&str, &[(&str, &str)])> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = strip_comment(raw);
        if line.trim().is_empty() || line.trim() == "---" {
            continue;
        }
        let err = |m: &str| ConfigError::File(format!("config file line {line_no}: {m}: {raw:?}"));
        let nested = line.starts_with([' ', '\t']);
        if nested && section.is_none() {
            return Err(err(
                "nested values are supported only under client-transport-security: and peer-transport-security:",
            ));
        }
        let (key, value) = line.split_once(':').ok_or_else(|| err("expected `key: value`"))?;
        let key = key.trim();
        if !nested {
            section = SECTIONS
                .iter()
                .find(|(name, _)| *name == key)
                .filter(|_| value.trim().is_empty())
                .map(|(name, keys)| (*name, *keys));
            if section.is_some() {
                continue;
            }
        }
        let key = match (nested, section) {
            (true, Some((name, keys))) => match keys.iter().find(|(k, _)| *k == key) {
                Some((_, flag)) => (*flag).to_string(),
                None => format!("{name}.{key}"),
            },
            _ => key.to_string(),
        };
        let key = key.as_str();
        if key.is_empty() || key.contains(char::is_whitespace) || key.ends_with('.') {
            return Err(err("bad key"));
        }
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('"') {
            let inner = inner
                .strip_suffix('"')
                .ok_or_else(|| err("unterminated double-quoted value"))?;
            crate::ctl::txn_parse::go_unquote_prefix(&format!("\"{inner}\""))
                .map(|(s, _)| s)
                .ok_or_else(|| err("bad escape in double-quoted value"))?
        } else if let Some(inner) = value.strip_prefix('\'') {
            inner
                .strip_suffix('\'')
                .ok_or_else(|| err("unterminated single-quoted value"))?
                .replace("''", "'")
        } else if value.starts_with(['[', '{', '|', '>', '&', '*', '!']) {
            return Err(err(
                "lists, mappings, block scalars, anchors and tags are not supported",
            ));
        } else if value == "~" || value == "null" {
            String::new()
        } else {
            value.to_string()
        };
        out.push((line_no, key.to_string(), value));
    }
    Ok(out)
}

/// Drops a `#` comment that is outside quotes and starts a word.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev.is_whitespace() => return &line[..i],
            None => {}
        }
        prev = c;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_reader_subset() {
        let y = parse_yaml("a: 1\n\n# c\nb: \"x # y\\n\"\nc: 'it''s'\nd:\ne: ~\n").unwrap();
        let kv: Vec<(&str, &str)> = y.iter().map(|(_, k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            kv,
            vec![("a", "1"), ("b", "x # y\n"), ("c", "it's"), ("d", ""), ("e", "")]
        );
        assert!(parse_yaml("a: [1, 2]\n").is_err());
        assert!(parse_yaml("just text\n")
            .unwrap_err()
            .to_string()
            .starts_with("config file line 1: expected"));
        assert!(parse_yaml("a: \"open\n").is_err());
    }

    #[test]
    fn transport_security_sections_are_flags() {
        let y = parse_yaml(
            "name: n\nclient-transport-security:\n  cert-file: /c.crt\n  client-cert-auth: true\n\
             peer-transport-security:\n  cert-file: /p.crt\n  allowed-cn: member\n  odd: 1\nlog-level: info\n",
        )
        .unwrap();
        let kv: Vec<(&str, &str)> = y.iter().map(|(_, k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            kv,
            vec![
                ("name", "n"),
                ("cert-file", "/c.crt"),
                ("client-cert-auth", "true"),
                ("peer-cert-file", "/p.crt"),
                ("peer-cert-allowed-cn", "member"),
                ("peer-transport-security.odd", "1"),
                ("log-level", "info"),
            ]
        );
        assert!(parse_yaml("name: n\n  nested: 1\n").is_err());
    }
}
