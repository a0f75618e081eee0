//! etcd's peer HTTP endpoints `/members` (the member list etcd 3.4's v2 proxy and
//! joining members read), `/members/hashkv` and `/raft/probing` (see
//! [`super::probe`]), on the peer listener (after its TLS
//! handshake, as etcd serves it behind peer TLS): the corruption checks of other
//! members ask it for this member's HashKV at a revision, with no client credentials,
//! so the checks work while auth is enabled.
//!
//! A peer connection whose first bytes are an HTTP request line is served here;
//! everything else is the framed peer protocol. As etcd's handler: `GET` only (405
//! with `Allow: GET` otherwise), the `X-Etcd-Cluster-ID` header must name this
//! member's cluster (412 "clusterID mismatch"), the body is the JSON of a
//! HashKVRequest (`{"revision":N}`), the answer the JSON of a HashKVResponse, and a
//! hash that cannot be computed (a compacted revision) is a 400 with the error text.
//! `GET /members` needs no cluster header and answers the member list as etcd's
//! peer handler encodes it (see [`members_json`]).

use std::convert::Infallible;

use bytes::Bytes;
use detcd_core::error::EtcdError;
use detcd_core::node::Request;
use detcd_core::node::{Credentials, Response};
use detcd_proto::etcdserverpb::{HashKvRequest, HashKvResponse, Member};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::Identity;

/// The path etcd serves HashKV at on the peer port.
pub const HASHKV_PATH: &str = "/members/hashkv";

/// The path etcd serves its member list at on the peer port.
pub const MEMBERS_PATH: &str = "/members";

/// The header etcd's peer requests carry their cluster ID in (hexadecimal).
pub const CLUSTER_ID_HEADER: &str = "X-Etcd-Cluster-ID";

/// The largest request body read.
const BODY_BYTES_MAX: usize = 64 * 1024;

/// The credentials of a member's own requests that etcd makes below its auth layer
/// (HashKV for the corruption checks: etcd hashes its store directly): root's, the
/// user every auth-enabled cluster has and that keeps the root role.
pub fn as_member() -> Credentials {
    Credentials::Verified {
        user: "root".to_string(),
        revision: None,
    }
}

/// A request asked on the peer port (a HashKV, the member list), for the member to
/// answer on `reply` with the credentials of [`as_member`] (the transport owns this
/// type; the driver turns it into its own call).
#[derive(Debug)]
pub struct PeerCall {
    pub request: Request,
    pub reply: oneshot::Sender<Result<Response, EtcdError>>,
}

/// Whether the first bytes of a peer connection start an HTTP request.
pub(super) fn is_http(first: &[u8]) -> bool {
    [&b"GET "[..], b"POST ", b"PUT ", b"HEAD ", b"DELETE "]
        .iter()
        .any(|m| first.starts_with(m) || (first.len() < m.len() && m.starts_with(first) && !first.is_empty()))
}

/// Test-only fault switch (debug builds): a member whose environment has
/// `DETCD_TEST_FAULT_CORRUPT_HASH=1` reports a wrong hash, a planted divergence for
/// the corruption checks' tests. Release builds have no such switch.
pub fn plant_hash_fault(response: &mut HashKvResponse) {
    #[cfg(debug_assertions)]
    if std::env::var("DETCD_TEST_FAULT_CORRUPT_HASH").is_ok_and(|v| v == "1") {
        response.hash ^= 0x5a5a_5a5a;
    }
    #[cfg(not(debug_assertions))]
    let _ = response;
}

/// The JSON etcd's handler writes for a HashKVResponse (Go's encoding of the
/// gogo-protobuf struct: snake_case names, zero values left out).
pub fn hashkv_json(response: &HashKvResponse) -> String {
    let mut fields = Vec::new();
    if let Some(h) = response.header.as_ref().filter(|h| h.revision != 0) {
        fields.push(format!(r#""header":{{"revision":{}}}"#, h.revision));
    }
    if response.hash != 0 {
        fields.push(format!(r#""hash":{}"#, response.hash));
    }
    if response.compact_revision != 0 {
        fields.push(format!(r#""compact_revision":{}"#, response.compact_revision));
    }
    if response.hash_revision != 0 {
        fields.push(format!(r#""hash_revision":{}"#, response.hash_revision));
    }
    format!("{{{}}}", fields.join(","))
}

/// The revision of a HashKVRequest's JSON (`{}` or `{"revision":N}`).
fn parse_revision(body: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let inner = text.strip_prefix('{')?.strip_suffix('}')?.trim();
    if inner.is_empty() {
        return Some(0);
    }
    let (key, value) = inner.split_once(':')?;
    (key.trim() == "\"revision\"").then_some(())?;
    value.trim().parse().ok()
}

/// The JSON etcd's peer handler writes for its member list (Go's encoding of
/// `[]*membership.Member`, sorted by ID): `id` as a number, `peerURLs`, `isLearner`
/// only when true, `name` and `clientURLs` only when set (a member that has not
/// started yet has neither), and the encoder's newline.
pub fn members_json(members: &[Member]) -> String {
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by_key(|m| m.id);
    let strings = |v: &[String]| {
        let quoted: Vec<String> = v.iter().map(|s| crate::go_json::string(s)).collect();
        format!("[{}]", quoted.join(","))
    };
    let items: Vec<String> = sorted
        .iter()
        .map(|m| {
            let mut fields = vec![
                format!(r#""id":{}"#, m.id),
                format!(r#""peerURLs":{}"#, strings(&m.peer_ur_ls)),
            ];
            if m.is_learner {
                fields.push(r#""isLearner":true"#.to_string());
            }
            if !m.name.is_empty() {
                fields.push(format!(r#""name":{}"#, crate::go_json::string(&m.name)));
            }
            if !m.client_ur_ls.is_empty() {
                fields.push(format!(r#""clientURLs":{}"#, strings(&m.client_ur_ls)));
            }
            format!("{{{}}}", fields.join(","))
        })
        .collect();
    format!("[{}]\n", items.join(","))
}

/// Asks the member `request` on its behalf.
async fn ask(calls: &mpsc::Sender<PeerCall>, request: Request) -> Result<Result<Response, EtcdError>, ()> {
    let (reply, answer) = oneshot::channel();
    calls.send(PeerCall { request, reply }).await.map_err(|_| ())?;
    answer.await.map_err(|_| ())
}

/// A JSON answer carrying this member's cluster ID, as etcd's peer handlers write.
fn json_answer(body: String, cluster: &str) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    let headers = r.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(cluster) {
        headers.insert(CLUSTER_ID_HEADER, v);
    }
    r
}

fn not_allowed() -> hyper::Response<Full<Bytes>> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static("GET"),
    );
    r
}

fn text(status: StatusCode, body: &str) -> hyper::Response<Full<Bytes>> {
    text_raw(status, format!("{body}\n"))
}

/// A plain-text answer of exactly `body` (Go sniffs a JSON body as plain text too).
fn text_raw(status: StatusCode, body: String) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(
    request: hyper::Request<hyper::body::Incoming>,
    identity: Identity,
    calls: mpsc::Sender<PeerCall>,
) -> hyper::Response<Full<Bytes>> {
    if request.uri().path() == super::probe::PROBING_PATH {
        // etcd's probing handler answers any method, with no further checks.
        return text_raw(StatusCode::OK, super::probe::answer(std::time::SystemTime::now()));
    }
    let cluster = format!("{:x}", identity.cluster_id);
    if request.uri().path() == MEMBERS_PATH {
        if request.method() != Method::GET {
            return not_allowed();
        }
        return match ask(&calls, Request::V2Members).await {
            Ok(Ok(Response::MemberList(list))) => json_answer(members_json(&list.members), &cluster),
            Ok(Ok(_)) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected answer to the member list",
            ),
            Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            Err(()) => text(StatusCode::SERVICE_UNAVAILABLE, "etcdserver: server stopped"),
        };
    }
    if request.uri().path() != HASHKV_PATH {
        return text(StatusCode::NOT_FOUND, "404 page not found");
    }
    if request.method() != Method::GET {
        return not_allowed();
    }
    let named = request
        .headers()
        .get(CLUSTER_ID_HEADER)
        .and_then(|v| v.to_str().ok());
    if named != Some(cluster.as_str()) {
        return text(StatusCode::PRECONDITION_FAILED, "clusterID mismatch");
    }
    let body = match Limited::new(request.into_body(), BODY_BYTES_MAX).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let Some(revision) = parse_revision(&body) else {
        return text(StatusCode::BAD_REQUEST, "error unmarshalling request");
    };
    let mut hash = match ask(&calls, Request::HashKv(HashKvRequest { revision })).await {
        Ok(Ok(Response::HashKv(h))) => h,
        Ok(Ok(_)) => return text(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer to HashKV"),
        Ok(Err(e)) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(()) => return text(StatusCode::SERVICE_UNAVAILABLE, "etcdserver: server stopped"),
    };
    plant_hash_fault(&mut hash);
    json_answer(hashkv_json(&hash), &cluster)
}

/// Serves the HTTP requests of one peer connection.
pub(super) async fn serve<I>(io: I, identity: Identity, calls: mpsc::Sender<PeerCall>)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let calls = calls.clone();
        async move { Ok::<_, Infallible>(handle(request, identity, calls).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use detcd_proto::etcdserverpb::ResponseHeader;

    #[test]
    fn requests_and_answers_are_etcd_json() {
        assert_eq!(parse_revision(br#"{"revision":12}"#), Some(12));
        assert_eq!(parse_revision(b"{}"), Some(0));
        assert_eq!(parse_revision(b"nope"), None);
        let answer = HashKvResponse {
            header: Some(ResponseHeader {
                revision: 7,
                ..ResponseHeader::default()
            }),
            hash: 42,
            compact_revision: 0,
            ..HashKvResponse::default()
        };
        assert_eq!(hashkv_json(&answer), r#"{"header":{"revision":7},"hash":42}"#);
        assert!(is_http(b"GET /members/hashkv HTTP/1.1"));
        let members = [
            Member {
                id: 20,
                name: "b".into(),
                peer_ur_ls: vec!["http://127.0.0.1:2".into()],
                client_ur_ls: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:3".into()],
                is_learner: true,
            },
            Member {
                id: 13668033151171901709,
                name: "a".into(),
                peer_ur_ls: vec!["http://127.0.0.1:23801".into()],
                client_ur_ls: vec!["http://127.0.0.1:23791".into()],
                is_learner: false,
            },
            Member {
                id: 3,
                peer_ur_ls: vec!["http://127.0.0.1:4".into()],
                ..Member::default()
            },
        ];
        assert_eq!(
            crate::go_json::string("a\"<b>\\\u{1}"),
            r#""a\"\u003cb\u003e\\\u0001""#
        );
        // The second entry is etcd 3.4's answer for a one-member cluster, byte for byte.
        assert_eq!(
            members_json(&members),
            concat!(
                r#"[{"id":3,"peerURLs":["http://127.0.0.1:4"]},"#,
                r#"{"id":20,"peerURLs":["http://127.0.0.1:2"],"isLearner":true,"name":"b","clientURLs":["http://127.0.0.1:1","http://127.0.0.1:3"]},"#,
                r#"{"id":13668033151171901709,"peerURLs":["http://127.0.0.1:23801"],"name":"a","clientURLs":["http://127.0.0.1:23791"]}]"#,
                "\n"
            )
        );
        assert!(is_http(b"GE"));
        assert!(!is_http(&[0, 0, 0, 12]));
    }
}
