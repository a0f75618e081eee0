//! WebSockets on the gateway, as etcd serves them: etcd wraps its grpc-gateway in
//! grpc-websocket-proxy, so any request under `/v3/` (or `/v3beta/`) that asks for a
//! WebSocket upgrade becomes a gateway request whose body is the client's messages and
//! whose answer goes back as messages. Web GUIs watch keys this way.
//!
//! The proxy's rules, kept here:
//! - A request is a WebSocket request when its `Connection` header lists `upgrade` and
//!   its `Upgrade` header `websocket`. The handshake is then checked as gorilla/websocket
//!   does: GET only (else 405), `Sec-WebSocket-Version: 13` (else 400), a
//!   `Sec-WebSocket-Key` (else 400); a refusal is the plain status text, with
//!   `Sec-WebSocket-Version: 13`. Any origin is accepted.
//! - The gateway request is a POST (etcd's request mutator forces it, whatever the
//!   `method` query parameter says) to the same path and query. Of the client's headers
//!   only `Origin` and `Referer` pass; `Authorization` comes from
//!   `Sec-WebSocket-Protocol: Bearer, <token>` (answered with the subprotocol `Bearer`),
//!   or from a `token` cookie, as `Bearer <token>`.
//! - Each message from the client is written to the request body followed by a newline
//!   (one JSON object per message). Unary and single-request routes read the first
//!   object; Watch and LeaseKeepAlive read them all.
//! - Each non-empty line of the answer's body goes back as one text message, whatever
//!   its status: results, errors, the 404 text of an unknown path.
//! - The answer ending (a unary call answered, a stream ended) closes the connection
//!   without a close frame, as the proxy does; the client closing (a close frame, or
//!   the connection going away) ends the gateway request. A close frame is answered.
//! - No pings from the server (etcd sets no ping interval); pings are answered.

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// Marks a gateway request whose body is a WebSocket's messages: the body never ends
/// while the client stays, so a route that takes one request reads only the first object.
#[derive(Debug, Clone, Copy)]
pub struct FromWebSocket;

/// The cookie whose value becomes the request's bearer token (the proxy's default).
const TOKEN_COOKIE: &str = "token";

/// The client's headers the gateway request keeps (the proxy's default forwarder).
const FORWARDED: [HeaderName; 2] = [header::ORIGIN, header::REFERER];

/// Client messages waiting for the gateway to read them.
const MESSAGES_QUEUED_MAX: usize = 16;

/// grpc-websocket-proxy's test: `Connection` lists `upgrade`, `Upgrade` lists `websocket`.
pub fn is_websocket_request(headers: &HeaderMap) -> bool {
    lists_token(headers, &header::CONNECTION, "upgrade")
        && lists_token(headers, &header::UPGRADE, "websocket")
}

/// Whether a comma-separated header lists `token` (case-insensitively), in any of its values.
fn lists_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// gorilla/websocket's refusal of a handshake: the status text as plain text.
fn refusal(status: StatusCode) -> Response {
    let text = format!("{}\n", status.canonical_reason().unwrap_or(""));
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// Checks the handshake of `request` (a WebSocket request), answers 101 and bridges the
/// connection, in a task of its own, to the gateway request `serve` answers.
pub fn accept<F, A>(mut request: Request, serve: F) -> Response
where
    F: FnOnce(Request) -> A + Send + 'static,
    A: Future<Output = Response> + Send,
{
    if request.method() != Method::GET {
        return refusal(StatusCode::METHOD_NOT_ALLOWED);
    }
    let headers = request.headers();
    if !lists_token(headers, &header::SEC_WEBSOCKET_VERSION, "13") {
        return refusal(StatusCode::BAD_REQUEST);
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).filter(|k| !k.is_empty()) else {
        return refusal(StatusCode::BAD_REQUEST);
    };
    let accept_key = derive_accept_key(key.as_bytes());
    let bearer = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .is_some_and(|p| p.as_bytes().starts_with(b"Bearer"));
    // Only an HTTP/1 connection can be taken over (Go's server cannot hijack HTTP/2 either).
    let Some(on_upgrade) = request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return refusal(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let inner = gateway_request(&request);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        bridge(socket, serve, inner).await;
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(&accept_key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if bearer {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The gateway request a WebSocket request becomes (its body is set by [`bridge`]).
fn gateway_request(outer: &Request) -> Request {
    let mut inner = Request::new(Body::empty());
    *inner.method_mut() = Method::POST;
    *inner.uri_mut() = outer
        .uri()
        .path_and_query()
        .and_then(|pq| pq.as_str().parse().ok())
        .unwrap_or_else(|| outer.uri().clone());
    *inner.extensions_mut() = outer.extensions().clone();
    inner.extensions_mut().insert(FromWebSocket);
    let headers = inner.headers_mut();
    if let Some(protocol) = outer
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .filter(|p| !p.is_empty())
    {
        if let Ok(value) = HeaderValue::from_str(&bearer_from_protocol(protocol.to_str().unwrap_or(""))) {
            headers.insert(header::AUTHORIZATION, value);
        }
    }
    for name in FORWARDED {
        if let Some(value) = outer.headers().get(&name) {
            headers.insert(name, value.clone());
        }
    }
    if let Some(token) = cookie(outer.headers(), TOKEN_COOKIE) {
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert(header::AUTHORIZATION, value);
        }
    }
    inner
}

/// The proxy's reading of `Sec-WebSocket-Protocol`: what follows `Bearer,` (spaces
/// trimmed) as a bearer token, or nothing when there is no `Bearer,`.
fn bearer_from_protocol(protocol: &str) -> String {
    match protocol.split_once("Bearer,") {
        Some((_, token)) => format!("Bearer {}", token.trim_matches(' ')),
        None => String::new(),
    }
}

/// The value of the first cookie called `name` in the `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// Runs the gateway request with the client's messages as its body and sends each line
/// of its answer back as a message, until either side ends.
async fn bridge<S, F, A>(socket: WebSocketStream<S>, serve: F, mut request: Request)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(Request) -> A,
    A: Future<Output = Response>,
{
    let (mut sink, mut stream) = socket.split();
    let (messages, body) = mpsc::channel::<Result<Bytes, Infallible>>(MESSAGES_QUEUED_MAX);
    *request.body_mut() = Body::from_stream(ReceiverStream::new(body));
    let (gone, mut client_gone) = oneshot::channel::<()>();
    // The client's messages, each a line of the request body; ends when the client goes.
    let reader = AbortOnDrop(tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let payload = match message {
                Message::Text(text) => Bytes::from(text),
                Message::Binary(bytes) => bytes,
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            let mut line = BytesMut::with_capacity(payload.len() + 1);
            line.extend_from_slice(&payload);
            line.extend_from_slice(b"\n");
            if messages.send(Ok(line.freeze())).await.is_err() {
                break;
            }
        }
        let _ = gone.send(());
    }));
    let answer = tokio::select! {
        answer = serve(request) => answer,
        _ = &mut client_gone => return close(sink).await,
    };
    let mut body = answer.into_body();
    let mut lines = Lines::default();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = &mut client_gone => return close(sink).await,
        };
        let Some(Ok(frame)) = frame else { break };
        let Some(data) = frame.data_ref() else { continue };
        lines.push(data);
        while let Some(line) = lines.next_line() {
            if sink.send(text_message(line)).await.is_err() {
                return;
            }
        }
    }
    if let Some(line) = lines.rest() {
        let _ = sink.send(text_message(line)).await;
    }
    // The answer ended: the connection closes without a close frame, as the proxy's does.
    drop(reader);
}

/// Answers the client's close frame (queued by the protocol when it arrived) and ends.
async fn close<S>(mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = sink.close().await;
}

fn text_message(line: Bytes) -> Message {
    match Utf8Bytes::try_from(line.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(line),
    }
}

/// Splits the answer body into lines as Go's `bufio.Scanner` does: without the newline
/// and a `\r` before it; empty lines are skipped.
#[derive(Debug, Default)]
struct Lines {
    buffered: BytesMut,
}

impl Lines {
    fn push(&mut self, chunk: &[u8]) {
        self.buffered.extend_from_slice(chunk);
    }

    fn next_line(&mut self) -> Option<Bytes> {
        while let Some(end) = self.buffered.iter().position(|b| *b == b'\n') {
            let mut line = self.buffered.split_to(end + 1);
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            if !line.is_empty() {
                return Some(line.freeze());
            }
        }
        None
    }

    /// What is left after the last newline, at the end of the body.
    fn rest(&mut self) -> Option<Bytes> {
        let rest = self.buffered.split();
        (!rest.is_empty()).then(|| rest.freeze())
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_lines_split_as_bufio_scanner_does() {
        let mut lines = Lines::default();
        let mut got = Vec::new();
        for chunk in [&b"{\"a\""[..], b":1}\n\n{\"b\":2}\r\n", b"Not Found"] {
            lines.push(chunk);
            while let Some(line) = lines.next_line() {
                got.push(line);
            }
        }
        got.extend(lines.rest());
        assert_eq!(got, vec![&b"{\"a\":1}"[..], b"{\"b\":2}", b"Not Found"]);
    }

    #[test]
    fn bearer_tokens_come_from_the_subprotocol_as_the_proxy_reads_it() {
        assert_eq!(bearer_from_protocol("Bearer, abc"), "Bearer abc");
        assert_eq!(bearer_from_protocol("Bearer,abc"), "Bearer abc");
        assert_eq!(bearer_from_protocol("Bearer"), "");
        assert_eq!(bearer_from_protocol("chat"), "");
    }

    #[test]
    fn websocket_requests_are_told_by_their_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(!is_websocket_request(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(is_websocket_request(&headers));
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; token=xyz"));
        assert_eq!(cookie(&headers, "token"), Some("xyz"));
    }
}
