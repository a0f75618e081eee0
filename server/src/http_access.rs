//! etcd's access controller in front of the HTTP (non-gRPC) requests of the client
//! port: `--host-whitelist` and `--cors`.
//!
//! - Host check (etcd's DNS-rebinding guard, CVE-2018-5702): on a plain-text connection a
//!   request whose `Host` (without port) is not in `--host-whitelist` is answered 421
//!   with etcd's explanation. The default `*` allows every host; TLS connections are
//!   not checked.
//! - CORS: with `--cors` empty or `*`, every answer carries
//!   `Access-Control-Allow-Origin: *` and etcd's allowed methods and headers; with a
//!   list, only a request whose `Origin` is listed gets them, with that origin. An
//!   `OPTIONS` request (a preflight) is answered 200 at once.
//!
//! gRPC requests are not HTTP API calls and pass untouched, as in etcd, where the
//! controller wraps only the HTTP handler.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::serve::ClientConnInfo;

/// `--host-whitelist` and `--cors`, each `*` (or empty) for anything.
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    pub host_whitelist: Vec<String>,
    pub cors: Vec<String>,
}

fn allows(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v == "*" || v == value)
}

/// A comma-separated flag value as a list (blanks dropped).
pub fn parse_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// The host of a `Host` header value, without its port (Go's `net.SplitHostPort`, or
/// the whole value when it has none).
fn hostname(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// etcd's answer to a host not in the whitelist.
fn misdirected(host: &str) -> Response {
    let body = format!(
        "\netcd received your request, but the Host header was unrecognized.\n\nTo fix this, choose one of the following options:\n- Enable TLS, then any HTTP request will be accepted.\n- Add the hostname you want to use to the whitelist in settings.\n  - e.g. etcd --host-whitelist {host:?}\n\nThis requires a server restart.\n\n"
    );
    (
        StatusCode::MISDIRECTED_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Applies `rules` to an HTTP request (not gRPC: the caller checked,
/// [`crate::client_layer::is_grpc`]) around the rest of the stack, `inner`.
pub async fn control<F>(
    rules: &AccessRules,
    request: axum::extract::Request,
    inner: impl FnOnce(axum::extract::Request) -> F,
) -> Response
where
    F: std::future::Future<Output = Response>,
{
    let plain = request
        .extensions()
        .get::<ClientConnInfo>()
        .is_none_or(|c| !c.tls);
    if plain {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or("");
        let name = hostname(host);
        if !allows(&rules.host_whitelist, name) {
            detcd_io::log!(
                detcd_io::log::Level::Warn,
                "detcd",
                "rejecting HTTP request to prevent DNS rebinding attacks (host {name:?})"
            );
            return misdirected(name);
        }
    }
    let origin = if allows(&rules.cors, "*") && rules.cors.iter().all(|c| c == "*") {
        Some("*".to_string())
    } else {
        request
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .filter(|o| rules.cors.iter().any(|c| c == o))
            .map(str::to_string)
    };
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        inner(request).await
    };
    if let Some(origin) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
        );
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("accept, content-type, authorization"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(hostname("localhost:2379"), "localhost");
        assert_eq!(hostname("example.com"), "example.com");
        assert_eq!(hostname("[::1]:2379"), "::1");
        assert_eq!(hostname("10.0.0.1:2379"), "10.0.0.1");
    }

    #[test]
    fn lists_allow_as_etcds() {
        assert!(allows(&[], "x"));
        assert!(allows(&parse_list("*"), "x"));
        let list = parse_list("a.example, localhost");
        assert!(allows(&list, "localhost"));
        assert!(!allows(&list, "evil.example"));
    }
}
