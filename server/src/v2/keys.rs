//! `/v2/keys` (etcd 3.4's `keysHandler`): the request parsed as etcd's
//! `parseKeyRequest` parses it (same checks and error causes), served by the
//! member's v2 store, answered with etcd's JSON, status and index headers.
//!
//! A wait (`wait=true`) answers its headers at once and its event when one comes:
//! the member's event history is scanned from the wait's index each time the
//! member's v2 store index moves (the member publishes it after applying; no
//! polling), until an event matches or the client goes away.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use detcd_core::node::{Request, Response as NodeResponse, V2Reply, PREV_EXIST_FALSE, PREV_EXIST_TRUE};
use detcd_core::v2store::{code, Action, Event, V2Error};
use detcd_proto::detcdpb::V2Request;

use super::form::Form;
use super::stats::LocalStats;
use super::{json, now_unix_ms};
use crate::grpc::Services;

const PREFIX: &str = "/v2/keys";

/// A parsed key request (etcd's `etcdserverpb.Request` before it is served).
#[derive(Debug, Default)]
struct KeyRequest {
    v2: V2Request,
    wait: bool,
    since: u64,
    quorum: bool,
    stream: bool,
    no_value: bool,
}

fn bad(code: u32, cause: &str) -> V2Error {
    V2Error::new(code, cause, 0)
}

/// etcd's `parseKeyRequest`.
fn parse(method: &Method, path: &str, form: &Form, now_ms: u64) -> Result<KeyRequest, V2Error> {
    let uint = |key: &str| {
        form.uint(key)
            .map_err(|_| bad(code::INDEX_NAN, &format!("invalid value for \"{key}\"")))
    };
    let prev_index = uint("prevIndex")?;
    let since = uint("waitIndex")?;
    let flag = |key: &str| {
        form.bool(key)
            .map_err(|_| bad(code::INVALID_FIELD, &format!("invalid value for \"{key}\"")))
    };
    let recursive = flag("recursive")?;
    let sorted = flag("sorted")?;
    let wait = flag("wait")?;
    let dir = flag("dir")?;
    let quorum = flag("quorum")?;
    let stream = flag("stream")?;
    if wait && method != Method::GET {
        return Err(bad(
            code::INVALID_FIELD,
            "\"wait\" can only be used with GET requests",
        ));
    }
    let prev_value = form.value("prevValue").unwrap_or_default();
    if form.has("prevValue") && prev_value.is_empty() {
        return Err(bad(code::PREV_VALUE_REQUIRED, "\"prevValue\" cannot be empty"));
    }
    let no_value = flag("noValueOnSuccess")?;
    let ttl = match form.value("ttl").filter(|t| !t.is_empty()) {
        Some(_) => Some(
            form.uint("ttl")
                .map_err(|_| bad(code::TTL_NAN, "invalid value for \"ttl\""))?,
        ),
        None => None,
    };
    let mut prev_exist = 0;
    if form.has("prevExist") {
        let b = form
            .bool("prevExist")
            .map_err(|_| bad(code::INVALID_FIELD, "invalid value for prevExist"))?;
        prev_exist = if b { PREV_EXIST_TRUE } else { PREV_EXIST_FALSE };
    }
    let mut refresh = false;
    if form.has("refresh") {
        refresh = form
            .bool("refresh")
            .map_err(|_| bad(code::INVALID_FIELD, "invalid value for refresh"))?;
        if refresh {
            if form.value("value").is_some_and(|v| !v.is_empty()) {
                return Err(bad(code::REFRESH_VALUE, "A value was provided on a refresh"));
            }
            if ttl.is_none() {
                return Err(bad(code::REFRESH_TTL_REQUIRED, "No TTL value set"));
            }
        }
    }
    let expiration_unix_ms = ttl.map_or(0, |t| now_ms.saturating_add(t.saturating_mul(1000)));
    Ok(KeyRequest {
        v2: V2Request {
            method: method.as_str().to_string(),
            path: path.to_string(),
            val: form.value("value").unwrap_or_default(),
            dir,
            prev_value,
            prev_index,
            prev_exist,
            expiration_unix_ms,
            recursive,
            sorted,
            refresh,
            time_unix_ms: now_ms,
        },
        wait,
        since,
        quorum,
        stream,
        no_value,
    })
}

fn json_response(status: StatusCode, headers: Vec<(&'static str, String)>, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    r
}

/// A v2 error as etcd writes it (`v2error.Error.WriteTo`).
pub fn error_response(e: &V2Error, cluster: &str) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = vec![
        ("x-etcd-cluster-id", cluster.to_string()),
        ("x-etcd-index", e.index.to_string()),
    ];
    json_response(status, headers, json::error(e))
}

fn index_headers(cluster: &str, etcd_index: u64, reply: &V2Reply) -> Vec<(&'static str, String)> {
    vec![
        ("x-etcd-cluster-id", cluster.to_string()),
        ("x-etcd-index", etcd_index.to_string()),
        ("x-raft-index", reply.raft_index.to_string()),
        ("x-raft-term", reply.raft_term.to_string()),
    ]
}

fn event_response(event: &Event, reply: &V2Reply, cluster: &str, no_value: bool) -> Response {
    let created =
        event.action == Action::Create || (event.action == Action::Set && event.prev_node.is_none());
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let no_value = no_value
        && matches!(
            event.action,
            Action::Set | Action::CompareAndSwap | Action::Create | Action::Update
        );
    let body = json::event(event, no_value);
    json_response(status, index_headers(cluster, event.etcd_index, reply), body)
}

/// Serves one `/v2/keys` request.
pub async fn serve(
    services: Services,
    local: LocalStats,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if ![
        Method::HEAD,
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
    ]
    .contains(&method)
    {
        return super::method_not_allowed("HEAD,GET,PUT,POST,DELETE");
    }
    let cluster = format!("{:x}", services.handle().cluster_id());
    let form = Form::of(&method, &uri, &headers, &body);
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or("");
    let path = detcd_core::v2store::clean_path(&super::form::percent_decode(raw));
    let request = match parse(&method, &path, &form, now_unix_ms()) {
        Ok(r) => r,
        Err(e) => return error_response(&e, &cluster),
    };
    super::stats::count_auth_lookup(&services).await;
    let node_request = match method {
        Method::GET | Method::HEAD if request.wait => {
            return wait(services, local, request, &path, cluster).await
        }
        Method::GET | Method::HEAD if request.quorum => {
            let mut v2 = request.v2.clone();
            v2.method = "QGET".to_string();
            Request::V2(v2)
        }
        Method::GET | Method::HEAD => Request::V2Get {
            path: path.clone(),
            recursive: request.v2.recursive,
            now_unix_ms: request.v2.time_unix_ms,
        },
        _ => Request::V2(request.v2.clone()),
    };
    match call(&services, node_request).await {
        Ok(reply) => match &reply.result {
            Ok(Some(event)) => event_response(event, &reply, &cluster, request.no_value),
            Ok(None) => error_response(&V2Error::new(code::RAFT_INTERNAL, "no event", 0), &cluster),
            Err(e) => error_response(e, &cluster),
        },
        Err(e) => error_response(&e, &cluster),
    }
}

/// Calls the member; a member error (timeout, no leader) is etcd's
/// "Raft Internal Error" with the error's text as its cause.
pub async fn call(services: &Services, request: Request) -> Result<V2Reply, V2Error> {
    match services.handle().call(request).await {
        Ok(NodeResponse::V2(reply)) => Ok(reply),
        Ok(other) => Err(V2Error::new(
            code::RAFT_INTERNAL,
            format!("unexpected answer {other:?}"),
            0,
        )),
        Err(e) => Err(V2Error::new(code::RAFT_INTERNAL, e.message.to_string(), 0)),
    }
}

/// A wait: headers now, then the first matching event (or every one, `stream=true`).
async fn wait(
    services: Services,
    local: LocalStats,
    request: KeyRequest,
    path: &str,
    cluster: String,
) -> Response {
    let watch = |since: u64| Request::V2Watch {
        path: path.to_string(),
        recursive: request.v2.recursive,
        since,
    };
    // Told when the member's v2 store moves (subscribed before the first look, so
    // no change is missed): the history is looked at again then, never on a timer.
    let mut changed = services.handle().v2_index();
    changed.mark_unchanged();
    let first = match call(&services, watch(request.since)).await {
        Ok(reply) => reply,
        Err(e) => return error_response(&e, &cluster),
    };
    // A look that found nothing saw every event up to the index it answered at, so
    // the next looks start after it (a wait pending through more changes than the
    // history keeps still gets its event, as etcd's watcher does).
    let (since, found) = match &first.result {
        Ok(None) => (first.since.max(first.etcd_index + 1), None),
        Ok(found) => (first.since, found.clone()),
        Err(e) => return error_response(e, &cluster),
    };
    let headers = index_headers(&cluster, first.etcd_index, &first);
    let stream = request.stream;
    let path = path.to_string();
    let recursive = request.v2.recursive;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    // As etcd's watcher hub: a wait answered from the history never waits, and is
    // never told of later events (a stream from the history gets its one event and
    // then nothing until the client goes away).
    let from_history = found.is_some();
    local.count_watch_request();
    let waiting = (!from_history).then(|| local.enter_wait());
    tokio::spawn(async move {
        let _waiting = waiting;
        let mut since = since;
        let mut found = found;
        loop {
            if let Some(event) = found.take() {
                since = event.index() + 1;
                let line = json::event(&event, false);
                if tx.send(Ok(Bytes::from(line))).await.is_err() || !stream {
                    return;
                }
                if from_history {
                    tx.closed().await;
                    return;
                }
            }
            tokio::select! {
                () = tx.closed() => return,
                moved = changed.changed() => {
                    if moved.is_err() {
                        // The member stopped: end the answer as a dropped connection would.
                        return;
                    }
                }
            }
            let request = Request::V2Watch {
                path: path.clone(),
                recursive,
                since,
            };
            match call(&services, request).await {
                Ok(V2Reply {
                    result: Ok(None),
                    etcd_index,
                    ..
                }) => since = since.max(etcd_index + 1),
                Ok(V2Reply {
                    result: Ok(event), ..
                }) => found = event,
                Ok(V2Reply { result: Err(e), .. }) | Err(e) => {
                    let _ = tx.send(Ok(Bytes::from(json::error(&e)))).await;
                    return;
                }
            }
        }
    });
    let mut r = Response::new(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    r
}
