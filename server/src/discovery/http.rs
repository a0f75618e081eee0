//! A small HTTP/1.1 client for the v2 discovery service: one request per connection,
//! plain or TLS (system trust anchors), directly or through an HTTP proxy
//! (`--discovery-proxy`: absolute-form requests for http, `CONNECT` for https).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::{client_config, ServerCheck, TlsInfo};

/// How long establishing a connection may take (etcd's discovery transport dials with
/// a 30 s timeout).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed `http(s)://host:port/path?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub https: bool,
    /// `host:port`, the port filled in from the scheme when missing.
    pub authority: String,
    /// The host alone (for TLS server names).
    pub host: String,
    /// Path and query, at least `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses an http or https URL.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("invalid URL {url:?}: no scheme"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            other => return Err(format!("invalid URL {url:?}: unsupported scheme {other:?}")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("invalid URL {url:?}: no host"));
        }
        let has_port = match authority.rfind(']') {
            Some(close) => authority[close..].contains(':'),
            None => authority.contains(':'),
        };
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let host = authority
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .unwrap_or_default();
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Ok(HttpUrl {
            https,
            authority,
            host,
            path,
        })
    }

    /// The URL written back.
    pub fn to_url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.https { "https" } else { "http" },
            self.authority,
            self.path
        )
    }
}

/// A response: status, the headers the caller asks about, and the whole body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

/// Sends requests, through `proxy` when one is set.
#[derive(Debug, Clone)]
pub struct Client {
    proxy: Option<HttpUrl>,
    /// TLS for https URLs; the system's roots and no client certificate when unset.
    tls: Option<Arc<rustls::ClientConfig>>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Client {
    /// A client using `proxy` (`--discovery-proxy`; etcd takes `host:port` as http).
    pub fn new(proxy: &str) -> Result<Client, String> {
        if proxy.is_empty() {
            return Ok(Client {
                proxy: None,
                tls: None,
            });
        }
        let spelled = if proxy.starts_with("http") {
            proxy.to_string()
        } else {
            format!("http://{proxy}")
        };
        let parsed = HttpUrl::parse(&spelled).map_err(|e| format!("invalid proxy address {proxy:?}: {e}"))?;
        crate::log(&format!(
            "running proxy with discovery: proxy-url {}",
            parsed.to_url()
        ));
        Ok(Client {
            proxy: Some(parsed),
            tls: None,
        })
    }

    /// This client with `config` for https URLs (its ALPN should offer http/1.1).
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Client {
        self.tls = Some(config);
        self
    }

    /// `method url` with a form body when `form` is given.
    pub async fn send(&self, method: &str, url: &HttpUrl, form: Option<String>) -> Result<Response, String> {
        let (stream, absolute) = self.connect(url).await?;
        let target = if absolute { url.to_url() } else { url.path.clone() };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(target)
            .header(hyper::header::HOST, url.authority.as_str());
        let body = match form {
            Some(f) => {
                request = request.header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Bytes::from(f)
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// A connection to `url`'s server (or its tunnel through the proxy), and whether
    /// the request must name the whole URL (an http request through the proxy).
    async fn connect(&self, url: &HttpUrl) -> Result<(Box<dyn Io>, bool), String> {
        let dial = |authority: String| async move {
            tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(authority.clone()))
                .await
                .map_err(|_| format!("dial tcp {authority}: i/o timeout"))?
                .map_err(|e| format!("dial tcp {authority}: {e}"))
        };
        let (tcp, absolute) = match &self.proxy {
            None => (dial(url.authority.clone()).await?, false),
            Some(proxy) => {
                let mut tcp = dial(proxy.authority.clone()).await?;
                if url.https {
                    tunnel(&mut tcp, &url.authority).await?;
                    (tcp, false)
                } else {
                    (tcp, true)
                }
            }
        };
        if !url.https {
            return Ok((Box::new(tcp), absolute));
        }
        let config = match &self.tls {
            Some(config) => config.clone(),
            None => Arc::new(client_config(
                &TlsInfo::default(),
                &ServerCheck::System,
                &[b"http/1.1"],
            )?),
        };
        let name = rustls_pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| format!("invalid server name {}: {e}", url.host))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {}: {e}", url.authority))?;
        Ok((Box::new(tls), false))
    }
}

/// Asks an HTTP proxy for a tunnel to `authority`.
async fn tunnel(tcp: &mut TcpStream, authority: &str) -> Result<(), String> {
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || tcp.read(&mut byte).await.map_err(|e| e.to_string())? == 0 {
            return Err(format!("proxy refused the tunnel to {authority}"));
        }
        head.push(byte[0]);
    }
    let status_line = String::from_utf8_lossy(&head);
    let ok = status_line
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    if !ok {
        return Err(format!(
            "proxy refused the tunnel to {authority}: {}",
            status_line.lines().next().unwrap_or_default()
        ));
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` escaping of one value.
pub fn form_escape(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports_and_paths() {
        let u = HttpUrl::parse("https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579cbf573de").unwrap();
        assert!(u.https);
        assert_eq!(u.authority, "discovery.etcd.io:443");
        assert_eq!(u.host, "discovery.etcd.io");
        assert_eq!(u.path, "/3e86b59982e49066c5d813af1c2e2579cbf573de");
        let u = HttpUrl::parse("http://[::1]:4001/v2/keys/d?x=1").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.host.as_str(), u.path.as_str()),
            ("[::1]:4001", "::1", "/v2/keys/d?x=1")
        );
        assert_eq!(HttpUrl::parse("http://h").unwrap().to_url(), "http://h:80/");
        assert!(HttpUrl::parse("ftp://h/x").is_err());
        assert!(HttpUrl::parse("h/x").is_err());
        assert!(Client::new("proxy:3128").is_ok());
    }

    #[test]
    fn form_values_are_escaped() {
        assert_eq!(
            form_escape("m1=http://127.0.0.1:2380"),
            "m1%3Dhttp%3A%2F%2F127.0.0.1%3A2380"
        );
        assert_eq!(form_escape("a b&c"), "a+b%26c");
    }
}
