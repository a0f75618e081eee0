//! Forwarding one client request (etcd 3.4's `httpproxy` reverse proxy): the body read
//! whole, hop-by-hop headers dropped, `X-Forwarded-For` added, the available endpoints
//! tried in turn (one that fails is marked and the next tried) on kept connections
//! ([`super::pool`]), the answer streamed back, each step counted in etcd's series
//! (`super::metrics`). A readonly proxy answers anything but GET with an empty 501, and
//! `/v2/config/local/proxy` lists the endpoints, as etcd's do.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::director::Director;
use super::metrics::{Dropped, Metrics};
use super::pool::{Pool, Sender};
use crate::discovery::http::HttpUrl;
use crate::tls::Reloading;
use rustls_pki_types::ServerName;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// The largest request body the proxy reads (etcd reads any; detcd's members refuse
/// more than this anyway).
const BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The headers that concern one connection only (Go's `httputil` list, as etcd's).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// `--proxy-dial-timeout`, `--proxy-read-timeout`, `--proxy-write-timeout` (zero: none).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub dial: Duration,
    pub read: Duration,
    pub write: Duration,
}

/// What every request of a proxy shares.
#[derive(Debug)]
pub struct Proxy {
    pub director: Director,
    pub readonly: bool,
    pub timeouts: Timeouts,
    /// `--cors` (empty or `*`: any origin).
    pub cors: Vec<String>,
    /// For the members' https client URLs.
    pub tls: Arc<Reloading<rustls::ClientConfig>>,
    /// The connections to the members.
    pub pool: Pool,
    /// The proxy's own series.
    pub metrics: Metrics,
}

fn full(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: impl Into<Bytes>,
) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    if let Some(t) = content_type {
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(t),
        );
    }
    r
}

/// etcd's `httptypes.HTTPError` answer.
fn http_error(status: StatusCode, message: &str) -> hyper::Response<Body> {
    let body = serde_json::json!({ "message": format!("httpproxy: {message}") }).to_string();
    full(status, Some("application/json"), body)
}

fn drop_hop_by_hop(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
}

/// Answers one client request: the proxy's own `/metrics` (any method, readonly or
/// not, as etcd's listener mux serves it ahead of the proxy), a readonly proxy's
/// refusal, or etcd's CORS wrapper around the proxy (its headers added to the
/// member's own, as etcd's proxy repeats them; a preflight `OPTIONS` answered at once).
pub async fn handle(
    proxy: Arc<Proxy>,
    request: hyper::Request<Incoming>,
    remote: SocketAddr,
) -> hyper::Response<Body> {
    if request.uri().path() == "/metrics" {
        return full(
            StatusCode::OK,
            Some("text/plain; version=0.0.4; charset=utf-8"),
            proxy.metrics.render(),
        );
    }
    if proxy.readonly && request.method() != Method::GET {
        return full(StatusCode::NOT_IMPLEMENTED, None, Bytes::new());
    }
    let any = proxy.cors.iter().all(|c| c == "*");
    let origin = match request
        .headers()
        .get(hyper::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        _ if any => Some("*".to_string()),
        Some(o) if proxy.cors.iter().any(|c| c == o) => Some(o.to_string()),
        _ => None,
    };
    let mut response = if request.method() == Method::OPTIONS {
        full(StatusCode::OK, None, Bytes::new())
    } else {
        route(&proxy, request, remote).await
    };
    if let Some(origin) = origin.and_then(|o| hyper::header::HeaderValue::from_str(&o).ok()) {
        let headers = response.headers_mut();
        headers.append(
            hyper::header::ACCESS_CONTROL_ALLOW_METHODS,
            hyper::header::HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
        );
        headers.append(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(
            hyper::header::ACCESS_CONTROL_ALLOW_HEADERS,
            hyper::header::HeaderValue::from_static("accept, content-type, authorization"),
        );
    }
    response
}

/// `/v2/config/local/proxy`, or the request forwarded.
async fn route(
    proxy: &Proxy,
    request: hyper::Request<Incoming>,
    remote: SocketAddr,
) -> hyper::Response<Body> {
    if request.uri().path() == "/v2/config/local/proxy" {
        if request.method() != Method::GET {
            let mut r = full(
                StatusCode::METHOD_NOT_ALLOWED,
                Some("text/plain; charset=utf-8"),
                "Method Not Allowed\n",
            );
            r.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("GET"),
            );
            return r;
        }
        let body = serde_json::json!({ "endpoints": proxy.director.available() }).to_string() + "\n";
        // etcd writes no type; Go sniffs the JSON as plain text.
        return full(StatusCode::OK, Some("text/plain; charset=utf-8"), body);
    }
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_string();
    proxy.metrics.incoming(&method);
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, BODY_BYTES_MAX).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let message = format!("failed to read request body: {e}");
            crate::log(&message);
            return http_error(StatusCode::INTERNAL_SERVER_ERROR, &message);
        }
    };
    let mut headers = parts.headers.clone();
    drop_hop_by_hop(&mut headers);
    let forwarded = match headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
    {
        prior if prior.is_empty() => remote.ip().to_string(),
        prior => format!("{}, {}", prior.join(", "), remote.ip()),
    };
    if let Ok(v) = hyper::header::HeaderValue::from_str(&forwarded) {
        headers.insert("x-forwarded-for", v);
    }
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let endpoints = proxy.director.available();
    if endpoints.is_empty() {
        crate::log("zero endpoints currently available");
        proxy.metrics.dropped(&method, Dropped::ZeroEndpoints);
        return http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "zero endpoints currently available",
        );
    }
    for endpoint in &endpoints {
        match send(proxy, endpoint, &parts.method, &target, &headers, body.clone()).await {
            Ok(response) => {
                let seconds = started.elapsed().as_secs_f64();
                proxy
                    .metrics
                    .handled(&method, response.status().as_u16(), seconds);
                let (mut parts, body) = response.into_parts();
                drop_hop_by_hop(&mut parts.headers);
                return hyper::Response::from_parts(parts, body.boxed());
            }
            Err(e) => {
                crate::log(&format!("failed to direct request to {endpoint}: {e}"));
                proxy.metrics.dropped(&method, Dropped::FailedSendingRequest);
                proxy.director.failed(endpoint);
            }
        }
    }
    let message = format!("unable to get response from {} endpoint(s)", endpoints.len());
    crate::log(&message);
    proxy.metrics.dropped(&method, Dropped::FailedGettingResponse);
    http_error(StatusCode::BAD_GATEWAY, &message)
}

/// Sends the request to one endpoint, on a kept connection or a new one.
async fn send(
    proxy: &Proxy,
    endpoint: &str,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<hyper::Response<Incoming>, String> {
    let request = || {
        let mut request = hyper::Request::builder().method(method.clone()).uri(target);
        if let Some(h) = request.headers_mut() {
            *h = headers.clone();
        }
        request.body(Full::new(body.clone())).map_err(|e| e.to_string())
    };
    if let Some(mut sender) = proxy.pool.take(endpoint) {
        match sender.send_request(request()?).await {
            Ok(response) => {
                proxy.pool.put(endpoint, sender);
                return Ok(response);
            }
            // A kept connection the member closed meanwhile: as Go's transport, a
            // request never sent, or one safe to repeat, goes again on a new one.
            Err(e) if e.is_canceled() || replayable(method) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let mut sender = dial(proxy, endpoint).await?;
    let response = sender.send_request(request()?).await.map_err(|e| e.to_string())?;
    proxy.pool.put(endpoint, sender);
    Ok(response)
}

/// Go's `isReplayable` methods (the request has no body to lose).
fn replayable(method: &Method) -> bool {
    [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE].contains(method)
}

/// A new HTTP/1 connection to one endpoint (TLS for an https one).
async fn dial(proxy: &Proxy, endpoint: &str) -> Result<Sender, String> {
    let timeouts = &proxy.timeouts;
    let url = HttpUrl::parse(endpoint)?;
    let connect = TcpStream::connect(url.authority.clone());
    let tcp = if timeouts.dial.is_zero() {
        connect.await
    } else {
        tokio::time::timeout(timeouts.dial, connect)
            .await
            .map_err(|_| format!("dial tcp {}: i/o timeout", url.authority))?
    }
    .map_err(|e| format!("dial tcp {}: {e}", url.authority))?;
    let io = TimeoutIo::new(tcp, timeouts.read, timeouts.write);
    if !url.https {
        return handshake(io).await;
    }
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| format!("invalid server name {}: {e}", url.host))?;
    let connect = tokio_rustls::TlsConnector::from(proxy.tls.get()).connect(name, io);
    let tls = if timeouts.dial.is_zero() {
        connect.await
    } else {
        tokio::time::timeout(timeouts.dial, connect)
            .await
            .map_err(|_| "net/http: TLS handshake timeout".to_string())?
    }
    .map_err(|e| format!("TLS handshake with {}: {e}", url.authority))?;
    handshake(tls).await
}

/// HTTP/1 on a connection, its task spawned.
async fn handshake<T>(io: T) -> Result<Sender, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A connection whose every read and every write must finish within its timeout
/// (Go's deadline per call, as etcd's timeout transport sets them; zero: none).
struct TimeoutIo<T> {
    inner: T,
    read: Duration,
    write: Duration,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<T> TimeoutIo<T> {
    fn new(inner: T, read: Duration, write: Duration) -> Self {
        TimeoutIo {
            inner,
            read,
            write,
            read_timer: None,
            write_timer: None,
        }
    }
}

/// Polls `timer` (armed on first use) for a call still pending.
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, limit: Duration, cx: &mut Context<'_>) -> bool {
    if limit.is_zero() {
        return false;
    }
    let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    if t.as_mut().poll(cx).is_ready() {
        *timer = None;
        return true;
    }
    false
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "i/o timeout")
}

impl<T: AsyncRead + Unpin> AsyncRead for TimeoutIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.read_timer = None;
                Poll::Ready(r)
            }
            Poll::Pending if expired(&mut this.read_timer, this.read, cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimeoutIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(r) => {
                this.write_timer = None;
                Poll::Ready(r)
            }
            Poll::Pending if expired(&mut this.write_timer, this.write, cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_that_waits_past_the_read_timeout_fails() {
        let (a, _b) = tokio::io::duplex(64);
        let mut io = TimeoutIo::new(a, Duration::from_millis(50), Duration::ZERO);
        let mut buf = [0u8; 4];
        let e = tokio::io::AsyncReadExt::read(&mut io, &mut buf)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = TimeoutIo::new(a, Duration::ZERO, Duration::ZERO);
        tokio::io::AsyncWriteExt::write_all(&mut b, b"ok").await.unwrap();
        assert_eq!(tokio::io::AsyncReadExt::read(&mut io, &mut buf).await.unwrap(), 2);
    }

    /// An answer that never ends (a v2 watch waiting).
    struct Waiting;

    impl hyper::body::Body for Waiting {
        type Data = Bytes;
        type Error = hyper::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
            Poll::Pending
        }
    }

    /// A member stand-in answering `ok` (`/wait`: an answer that never ends) to everything; counts its connections.
    async fn counting_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(|request: hyper::Request<Incoming>| async move {
                            let body: Body = if request.uri().path() == "/wait" {
                                Waiting.boxed()
                            } else {
                                Full::new(Bytes::from("ok"))
                                    .map_err(|never| match never {})
                                    .boxed()
                            };
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (endpoint, count)
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_answer_is_read() {
        let (endpoint, count) = counting_server().await;
        let proxy = Proxy {
            director: Director::new(Duration::from_secs(1)),
            readonly: false,
            timeouts: Timeouts {
                dial: Duration::ZERO,
                read: Duration::ZERO,
                write: Duration::ZERO,
            },
            cors: Vec::new(),
            tls: crate::tls::reloading_client(
                "test",
                &crate::tls::TlsInfo::default(),
                crate::tls::ServerCheck::System,
                &[],
            )
            .unwrap(),
            pool: Pool::default(),
            metrics: Metrics::new(),
        };
        let headers = HeaderMap::new();
        let get = || send(&proxy, &endpoint, &Method::GET, "/", &headers, Bytes::new());
        // A connection streaming an answer is busy: the next request dials.
        let waiting = send(&proxy, &endpoint, &Method::GET, "/wait", &headers, Bytes::new())
            .await
            .unwrap();
        let read = get().await.unwrap();
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(read.into_body().collect().await.unwrap().to_bytes(), "ok");
        drop(waiting);
        // Once read, a connection goes to the next request.
        for _ in 0..3 {
            let r = get().await.unwrap();
            assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "ok");
            tokio::task::yield_now().await;
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("x-etcd-index", "3".parse().unwrap());
        drop_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }
}
