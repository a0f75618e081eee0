//! Go's `Request.ParseForm` as the v2 handlers read it: a PUT or POST body of
//! `application/x-www-form-urlencoded` first, then the query string; the first
//! value of a key wins; numbers and booleans parsed as `strconv` parses them.

use axum::http::{header, HeaderMap, Method, Uri};

#[derive(Debug, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

/// `%XX` decoded (and, in a form, `+` as a space).
fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL path percent-decoded (Go's `URL.Path`).
pub fn percent_decode(s: &str) -> String {
    decode(s, false)
}

fn parse_pairs(s: &str, out: &mut Vec<(String, String)>) {
    for part in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((decode(k, true), decode(v, true)));
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl Form {
    pub fn of(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Form {
        let mut pairs = Vec::new();
        let form_body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.split(';').next().unwrap_or("").trim() == "application/x-www-form-urlencoded"
            });
        if (method == Method::PUT || method == Method::POST || method == Method::PATCH) && form_body {
            parse_pairs(&String::from_utf8_lossy(body), &mut pairs);
        }
        if let Some(q) = uri.query() {
            parse_pairs(q, &mut pairs);
        }
        Form { pairs }
    }

    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    pub fn value(&self, key: &str) -> Option<String> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    /// 0 when absent; an error when not a number.
    pub fn uint(&self, key: &str) -> Result<u64, ()> {
        match self.value(key) {
            Some(v) => v.parse().map_err(|_| ()),
            None => Ok(0),
        }
    }

    /// false when absent; an error when not a boolean.
    pub fn bool(&self, key: &str) -> Result<bool, ()> {
        match self.value(key) {
            Some(v) => parse_bool(&v).ok_or(()),
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_values_come_before_query_values() {
        let uri: Uri = "/v2/keys/a?value=q&ttl=5&x=%2Fy+z".parse().expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().expect("header"),
        );
        let form = Form::of(&Method::PUT, &uri, &headers, b"value=b%20c&dir=true");
        assert_eq!(form.value("value").as_deref(), Some("b c"));
        assert_eq!(form.value("x").as_deref(), Some("/y z"));
        assert_eq!(form.uint("ttl"), Ok(5));
        assert_eq!(form.bool("dir"), Ok(true));
        assert_eq!(form.bool("nope"), Ok(false));
        assert_eq!(percent_decode("/a%2Fb+c%"), "/a/b+c%");
    }
}
