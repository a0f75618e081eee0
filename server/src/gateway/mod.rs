//! etcd's JSON gateway: the v3 API as JSON over HTTP under `/v3/` (and `/v3beta/`, as
//! etcd 3.4 serves it), POST only, on the client port.
//!
//! How: each route names a gRPC method; the JSON body becomes that method's protobuf
//! request ([`json`]), framed as gRPC ([`frames`]), and goes in-process through the very
//! router that serves gRPC clients, credentials middleware included, with the caller's
//! `Authorization` header and connection. So every check (auth, size limits, learner
//! rules, errors) is the gRPC path's own; the gateway only translates. Responses come
//! back as the gateway writes them: the message as JSON for a unary call, one
//! `{"result":...}` line per message for a stream, `{"error","message","code"}` with
//! grpc-gateway's HTTP status on failure.
//!
//! Streams: Watch and LeaseKeepAlive read their requests as a sequence of JSON objects
//! from the body; a watch stays open after the body ends (until the client goes away), a
//! keepalive stream ends with it. Observe and Snapshot take one request.

pub mod frames;
mod go_json_errors;
pub mod json;
pub mod websocket;

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::ServiceExt as _;

use self::frames::Deframer;
use self::json::MethodTypes;

/// How a route's gRPC method streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unary,
    /// One request, a stream of responses (Observe, Snapshot).
    ServerStream,
    /// Requests from the body; the stream ends with the body (LeaseKeepAlive).
    Bidi,
    /// Requests from the body; the stream outlives the body (Watch).
    BidiOpen,
}

/// Every route: the path under `/v3/`, the gRPC service and method.
const ROUTES: &[(&str, &str, &str, Kind)] = &[
    ("kv/range", "etcdserverpb.KV", "Range", Kind::Unary),
    ("kv/put", "etcdserverpb.KV", "Put", Kind::Unary),
    ("kv/deleterange", "etcdserverpb.KV", "DeleteRange", Kind::Unary),
    ("kv/txn", "etcdserverpb.KV", "Txn", Kind::Unary),
    ("kv/compaction", "etcdserverpb.KV", "Compact", Kind::Unary),
    ("watch", "etcdserverpb.Watch", "Watch", Kind::BidiOpen),
    ("lease/grant", "etcdserverpb.Lease", "LeaseGrant", Kind::Unary),
    ("lease/revoke", "etcdserverpb.Lease", "LeaseRevoke", Kind::Unary),
    (
        "kv/lease/revoke",
        "etcdserverpb.Lease",
        "LeaseRevoke",
        Kind::Unary,
    ),
    (
        "lease/keepalive",
        "etcdserverpb.Lease",
        "LeaseKeepAlive",
        Kind::Bidi,
    ),
    (
        "lease/timetolive",
        "etcdserverpb.Lease",
        "LeaseTimeToLive",
        Kind::Unary,
    ),
    (
        "kv/lease/timetolive",
        "etcdserverpb.Lease",
        "LeaseTimeToLive",
        Kind::Unary,
    ),
    ("lease/leases", "etcdserverpb.Lease", "LeaseLeases", Kind::Unary),
    (
        "kv/lease/leases",
        "etcdserverpb.Lease",
        "LeaseLeases",
        Kind::Unary,
    ),
    (
        "cluster/member/add",
        "etcdserverpb.Cluster",
        "MemberAdd",
        Kind::Unary,
    ),
    (
        "cluster/member/remove",
        "etcdserverpb.Cluster",
        "MemberRemove",
        Kind::Unary,
    ),
    (
        "cluster/member/update",
        "etcdserverpb.Cluster",
        "MemberUpdate",
        Kind::Unary,
    ),
    (
        "cluster/member/list",
        "etcdserverpb.Cluster",
        "MemberList",
        Kind::Unary,
    ),
    (
        "cluster/member/promote",
        "etcdserverpb.Cluster",
        "MemberPromote",
        Kind::Unary,
    ),
    (
        "maintenance/alarm",
        "etcdserverpb.Maintenance",
        "Alarm",
        Kind::Unary,
    ),
    (
        "maintenance/status",
        "etcdserverpb.Maintenance",
        "Status",
        Kind::Unary,
    ),
    (
        "maintenance/defragment",
        "etcdserverpb.Maintenance",
        "Defragment",
        Kind::Unary,
    ),
    (
        "maintenance/hash",
        "etcdserverpb.Maintenance",
        "Hash",
        Kind::Unary,
    ),
    (
        "maintenance/hashkv",
        "etcdserverpb.Maintenance",
        "HashKV",
        Kind::Unary,
    ),
    (
        "maintenance/snapshot",
        "etcdserverpb.Maintenance",
        "Snapshot",
        Kind::ServerStream,
    ),
    (
        "maintenance/transfer-leadership",
        "etcdserverpb.Maintenance",
        "MoveLeader",
        Kind::Unary,
    ),
    ("auth/enable", "etcdserverpb.Auth", "AuthEnable", Kind::Unary),
    ("auth/disable", "etcdserverpb.Auth", "AuthDisable", Kind::Unary),
    ("auth/status", "etcdserverpb.Auth", "AuthStatus", Kind::Unary),
    (
        "auth/authenticate",
        "etcdserverpb.Auth",
        "Authenticate",
        Kind::Unary,
    ),
    ("auth/user/add", "etcdserverpb.Auth", "UserAdd", Kind::Unary),
    ("auth/user/get", "etcdserverpb.Auth", "UserGet", Kind::Unary),
    ("auth/user/list", "etcdserverpb.Auth", "UserList", Kind::Unary),
    ("auth/user/delete", "etcdserverpb.Auth", "UserDelete", Kind::Unary),
    (
        "auth/user/changepw",
        "etcdserverpb.Auth",
        "UserChangePassword",
        Kind::Unary,
    ),
    (
        "auth/user/grant",
        "etcdserverpb.Auth",
        "UserGrantRole",
        Kind::Unary,
    ),
    (
        "auth/user/revoke",
        "etcdserverpb.Auth",
        "UserRevokeRole",
        Kind::Unary,
    ),
    ("auth/role/add", "etcdserverpb.Auth", "RoleAdd", Kind::Unary),
    ("auth/role/get", "etcdserverpb.Auth", "RoleGet", Kind::Unary),
    ("auth/role/list", "etcdserverpb.Auth", "RoleList", Kind::Unary),
    ("auth/role/delete", "etcdserverpb.Auth", "RoleDelete", Kind::Unary),
    (
        "auth/role/grant",
        "etcdserverpb.Auth",
        "RoleGrantPermission",
        Kind::Unary,
    ),
    (
        "auth/role/revoke",
        "etcdserverpb.Auth",
        "RoleRevokePermission",
        Kind::Unary,
    ),
    ("lock/lock", "v3lockpb.Lock", "Lock", Kind::Unary),
    ("lock/unlock", "v3lockpb.Lock", "Unlock", Kind::Unary),
    (
        "election/campaign",
        "v3electionpb.Election",
        "Campaign",
        Kind::Unary,
    ),
    (
        "election/proclaim",
        "v3electionpb.Election",
        "Proclaim",
        Kind::Unary,
    ),
    ("election/leader", "v3electionpb.Election", "Leader", Kind::Unary),
    (
        "election/observe",
        "v3electionpb.Election",
        "Observe",
        Kind::ServerStream,
    ),
    ("election/resign", "v3electionpb.Election", "Resign", Kind::Unary),
];

/// The path prefixes the gateway answers under.
pub const PREFIXES: &[&str] = &["/v3/", "/v3beta/"];

/// Every gateway path (for the route sweep test and the README).
pub fn paths() -> impl Iterator<Item = String> {
    PREFIXES
        .iter()
        .flat_map(|p| ROUTES.iter().map(move |(path, ..)| format!("{p}{path}")))
}

/// What one route's handler needs.
#[derive(Clone, Debug)]
struct Route {
    grpc_path: &'static str,
    types: MethodTypes,
    kind: Kind,
    grpc: axum::Router,
    body_limit: usize,
}

/// Adds the gateway routes to `router`. `grpc` is the gRPC services' router (with the
/// credentials middleware) the requests go to; `body_limit` caps a request body.
pub fn routes(mut router: axum::Router, grpc: axum::Router, body_limit: usize) -> axum::Router {
    for (path, service, method, kind) in ROUTES {
        // A route whose method the descriptors lack is a build defect, caught by the
        // unit tests (json::tests); it is left out rather than served half.
        let Some(types) = json::method_types(service, method) else {
            continue;
        };
        let grpc_path: &'static str = Box::leak(format!("/{service}/{method}").into_boxed_str());
        let route = Route {
            grpc_path,
            types,
            kind: *kind,
            grpc: grpc.clone(),
            body_limit,
        };
        for prefix in PREFIXES {
            let (route, other) = (route.clone(), route.clone());
            // Other methods: a WebSocket handshake (a GET), else the router's 405.
            let methods = axum::routing::post(move |request: axum::extract::Request| serve(route, request))
                .fallback(move |request: axum::extract::Request| async move {
                    if websocket::is_websocket_request(request.headers()) {
                        return websocket::accept(request, move |inner| serve(other, inner));
                    }
                    crate::http::method_not_allowed().await
                });
            router = router.route(&format!("{prefix}{path}"), methods);
        }
    }
    router
}

/// Whether `path` is under a gateway prefix (an unknown one answers the gateway's 404).
pub fn is_gateway_path(path: &str) -> bool {
    PREFIXES.iter().any(|p| path.starts_with(p))
}

/// The answer to `request`, an unknown path under the gateway's prefixes: a WebSocket
/// handshake gets its socket (etcd's proxy wraps the whole gateway) and the 404 as a
/// message, any other request the 404.
pub fn unknown_path(request: axum::extract::Request) -> Response {
    if websocket::is_websocket_request(request.headers()) {
        return websocket::accept(request, |_| async { not_found() });
    }
    not_found()
}

/// The gateway's answer to an unknown path under its prefixes (grpc-gateway's text).
pub fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not Found\n",
    )
        .into_response()
}

fn json_response(code: u16, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(status: &tonic::Status) -> Response {
    json_response(json::http_status(status.code()), json::error_body(status))
}

/// The inner gRPC request: the method's path, the caller's token and metadata
/// (`Grpc-Metadata-*` headers, as grpc-gateway forwards them) and connection.
fn grpc_request(route: &Route, outer: &axum::http::request::Parts, body: Body) -> axum::extract::Request {
    let mut request = axum::http::Request::new(body);
    *request.method_mut() = axum::http::Method::POST;
    *request.uri_mut() = axum::http::Uri::from_static(route.grpc_path);
    *request.extensions_mut() = outer.extensions.clone();
    let headers = request.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    for (name, value) in &outer.headers {
        if name == header::AUTHORIZATION {
            headers.insert(header::AUTHORIZATION, value.clone());
        } else if let Some(key) = name.as_str().strip_prefix("grpc-metadata-") {
            if let Ok(key) = header::HeaderName::from_bytes(key.as_bytes()) {
                headers.append(key, value.clone());
            }
        }
    }
    request
}

/// The gRPC status in `headers` (trailers, or the headers of a trailers-only answer).
fn grpc_status(headers: &HeaderMap) -> Option<tonic::Status> {
    tonic::Status::from_header_map(headers)
}

async fn serve(route: Route, request: axum::extract::Request) -> Response {
    if websocket::is_websocket_request(request.headers()) {
        // A WebSocket handshake must be a GET: refused as the proxy refuses it.
        return websocket::accept(request, move |inner| serve_json(route, inner));
    }
    serve_json(route, request).await
}

/// The gateway's own work: a JSON request through the gRPC method, its answer as JSON.
async fn serve_json(route: Route, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let inner_body = match route.kind {
        Kind::Unary | Kind::ServerStream => {
            let whole = if parts.extensions.get::<websocket::FromWebSocket>().is_some() {
                first_value(body, route.body_limit).await
            } else {
                axum::body::to_bytes(body, route.body_limit)
                    .await
                    .map_err(|e| e.to_string())
            };
            let bytes = match whole {
                Ok(b) => b,
                Err(e) => return error_response(&tonic::Status::invalid_argument(e)),
            };
            match json::request_to_proto(&route.types.input, &bytes) {
                Ok(proto) => Body::from(frames::frame(&proto)),
                Err(e) => return error_response(&tonic::Status::invalid_argument(e)),
            }
        }
        Kind::Bidi | Kind::BidiOpen => streamed_requests(route.clone(), body),
    };
    let response = match route
        .grpc
        .clone()
        .oneshot(grpc_request(&route, &parts, inner_body))
        .await
    {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if let Some(status) = grpc_status(response.headers()).filter(|s| s.code() != tonic::Code::Ok) {
        return error_response(&status);
    }
    match route.kind {
        Kind::Unary => unary_answer(&route, response.into_body()).await,
        _ => streamed_answer(route, response.into_body()),
    }
}

/// What Go's JSON decoder reads of a body that does not end (a WebSocket's messages):
/// the first value, or what came up to a syntax error, or all there was at its end.
/// More than `limit` bytes without a whole value is refused as a body over the limit is.
async fn first_value(body: Body, limit: usize) -> Result<Bytes, String> {
    let mut splitter = json::ValueSplitter::default();
    let mut data = body.into_data_stream();
    let mut read = 0usize;
    while let Some(Ok(chunk)) = tokio_stream::StreamExt::next(&mut data).await {
        read = read.saturating_add(chunk.len());
        if read > limit {
            return Err("length limit exceeded".to_string());
        }
        splitter.push(&chunk);
        match splitter.next_value() {
            Ok(Some(value)) => return Ok(Bytes::from(value)),
            Ok(None) => {}
            Err(_) => break,
        }
    }
    Ok(Bytes::from(splitter.into_rest()))
}

/// The request body as a gRPC body: each JSON object of it, as it arrives, one frame.
/// For a watch the gRPC body stays open once the JSON body ends, until the answer is
/// dropped. A syntax error ends the requests (the stream then ends as at end of body).
fn streamed_requests(route: Route, body: Body) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    tokio::spawn(async move {
        let mut splitter = json::ValueSplitter::default();
        let mut data = body.into_data_stream();
        'read: while let Some(Ok(chunk)) = tokio_stream::StreamExt::next(&mut data).await {
            splitter.push(&chunk);
            loop {
                let value = match splitter.next_value() {
                    Ok(Some(v)) => v,
                    Ok(None) => break,
                    Err(_) => break 'read,
                };
                let Ok(proto) = json::request_to_proto(&route.types.input, &value) else {
                    break 'read;
                };
                if tx.send(Ok(frames::frame(&proto))).await.is_err() {
                    return;
                }
            }
        }
        if route.kind == Kind::BidiOpen {
            tx.closed().await;
        }
    });
    Body::from_stream(ReceiverStream::new(rx))
}

async fn unary_answer(route: &Route, body: Body) -> Response {
    let mut body = body;
    let mut deframer = Deframer::default();
    let mut message = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return error_response(&tonic::Status::internal(e.to_string())),
        };
        if let Some(data) = frame.data_ref() {
            deframer.push(data);
            match deframer.next_message() {
                Ok(Some(m)) => message = Some(m),
                Ok(None) => {}
                Err(e) => return error_response(&tonic::Status::internal(e)),
            }
        } else if let Some(trailers) = frame.trailers_ref() {
            if let Some(status) = grpc_status(trailers).filter(|s| s.code() != tonic::Code::Ok) {
                return error_response(&status);
            }
        }
    }
    let Some(message) = message else {
        return error_response(&tonic::Status::internal("detcd: the gRPC answer had no message"));
    };
    match json::response_to_json(&route.types.output, message) {
        Ok(json) => json_response(200, json),
        Err(e) => error_response(&tonic::Status::internal(e)),
    }
}

/// A streamed gRPC answer as lines of `{"result":...}`, the last one
/// `{"error":...}` if the stream failed.
fn streamed_answer(route: Route, body: Body) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    tokio::spawn(async move {
        let mut body = body;
        let mut deframer = Deframer::default();
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = tx.closed() => return,
            };
            let Some(frame) = frame else { return };
            let line = match frame {
                Err(e) => json::stream_error_line(&tonic::Status::internal(e.to_string())),
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        deframer.push(data);
                        let mut lines = Vec::new();
                        loop {
                            match deframer.next_message() {
                                Ok(Some(m)) => match json::response_to_json(&route.types.output, m) {
                                    Ok(j) => lines.extend(json::stream_result(&j)),
                                    Err(e) => {
                                        lines.extend(json::stream_error_line(&tonic::Status::internal(e)))
                                    }
                                },
                                Ok(None) => break,
                                Err(e) => {
                                    lines.extend(json::stream_error_line(&tonic::Status::internal(e)));
                                    break;
                                }
                            }
                        }
                        lines
                    } else if let Some(status) = frame
                        .trailers_ref()
                        .and_then(grpc_status)
                        .filter(|s| s.code() != tonic::Code::Ok)
                    {
                        json::stream_error_line(&status)
                    } else {
                        continue;
                    }
                }
            };
            if !line.is_empty() && tx.send(Ok(Bytes::from(line))).await.is_err() {
                return;
            }
        }
    });
    json_response(200, Body::from_stream(ReceiverStream::new(rx)))
}
