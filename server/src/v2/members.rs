//! `/v2/members` (list, leader, add, remove, update peer URLs) and `/v2/machines`,
//! as etcd 3.4's `membersHandler` and `machinesHandler` answer them, on the
//! member's cluster membership.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use detcd_core::error;
use detcd_core::node::{Request, Response as NodeResponse};
use detcd_proto::etcdserverpb::{Member, MemberAddRequest, MemberRemoveRequest, MemberUpdateRequest};

use super::{http_error, json, method_not_allowed, Parts};
use crate::grpc::Services;

/// etcd's `httptypes.Member` JSON.
fn member_json(m: &Member) -> String {
    format!(
        "{{\"id\":\"{:x}\",\"name\":{},\"peerURLs\":{},\"clientURLs\":{}}}",
        m.id,
        json::string(&m.name),
        json::strings(&m.peer_ur_ls),
        json::strings(&m.client_ur_ls)
    )
}

fn json_ok(status: StatusCode, cluster: &str, body: String) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(cluster) {
        r.headers_mut().insert("x-etcd-cluster-id", v);
    }
    r
}

async fn list(services: &Services) -> Result<Vec<Member>, Box<Response>> {
    match services.handle().call(Request::V2Members).await {
        Ok(NodeResponse::MemberList(l)) => {
            let mut members = l.members;
            members.sort_by_key(|m| m.id);
            Ok(members)
        }
        _ => Err(Box::new(http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        ))),
    }
}

/// The JSON body's `peerURLs` (`httptypes.MemberCreateRequest`), each a valid URL.
fn peer_urls(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Vec<String>, Box<Response>> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ctype = match ctype.find(';') {
        Some(at) => ctype[..at].trim().to_ascii_lowercase(),
        None => ctype.to_string(),
    };
    if ctype != "application/json" {
        return Err(Box::new(http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("Bad Content-Type {ctype}, accept application/json"),
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Box::new(http_error(StatusCode::BAD_REQUEST, &e.to_string())))?;
    let urls: Vec<String> = value
        .get("peerURLs")
        .and_then(|u| u.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    for u in &urls {
        crate::urls::parse_url(u).map_err(|e| Box::new(http_error(StatusCode::BAD_REQUEST, &e)))?;
    }
    Ok(urls)
}

/// Serves `/v2/members[/...]`.
pub async fn serve(services: Services, (method, uri, headers, body): Parts) -> Response {
    if ![Method::GET, Method::POST, Method::DELETE, Method::PUT].contains(&method) {
        return method_not_allowed("GET,POST,DELETE,PUT");
    }
    // etcd checks root access to a write, reading its v2 auth switch.
    if method != Method::GET {
        super::stats::count_auth_lookup(&services).await;
    }
    let cluster = format!("{:x}", services.handle().cluster_id());
    let rest = uri
        .path()
        .trim_start_matches("/v2/members")
        .trim_start_matches('/')
        .to_string();
    let id = || u64::from_str_radix(&rest, 16).ok();
    // etcd names the member by its parsed ID (hex, no leading zeros).
    let no_such = || {
        let name = id().map_or_else(|| rest.clone(), |id| format!("{id:x}"));
        http_error(StatusCode::NOT_FOUND, &format!("No such member: {name}"))
    };
    match method {
        Method::GET => {
            let members = match list(&services).await {
                Ok(m) => m,
                Err(r) => return *r,
            };
            match rest.as_str() {
                "" => {
                    let items: Vec<String> = members.iter().map(member_json).collect();
                    json_ok(
                        StatusCode::OK,
                        &cluster,
                        format!("{{\"members\":[{}]}}\n", items.join(",")),
                    )
                }
                "leader" => {
                    let leader = services.handle().metrics().leader_id;
                    match members.iter().find(|m| m.id == leader && leader != 0) {
                        Some(m) => json_ok(StatusCode::OK, &cluster, format!("{}\n", member_json(m))),
                        None => http_error(StatusCode::SERVICE_UNAVAILABLE, "During election"),
                    }
                }
                _ => http_error(StatusCode::NOT_FOUND, "Not found"),
            }
        }
        Method::POST => {
            let urls = match peer_urls(&headers, &body) {
                Ok(u) => u,
                Err(r) => return *r,
            };
            let add = MemberAddRequest {
                peer_ur_ls: urls,
                is_learner: false,
            };
            match services.handle().call(Request::MemberAdd(add)).await {
                Ok(NodeResponse::MemberAdd(r)) => {
                    let m = r.member.unwrap_or_default();
                    json_ok(StatusCode::CREATED, &cluster, format!("{}\n", member_json(&m)))
                }
                Err(e) if e == error::PEER_URL_EXISTS => {
                    http_error(StatusCode::CONFLICT, "membership: peerURL exists")
                }
                Err(e) if e == error::MEMBER_EXISTS => {
                    http_error(StatusCode::CONFLICT, "membership: ID exists")
                }
                _ => http_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            }
        }
        Method::DELETE if rest.is_empty() => method_not_allowed_plain(),
        Method::DELETE => {
            let Some(id) = id() else { return no_such() };
            match services
                .handle()
                .call(Request::MemberRemove(MemberRemoveRequest { id }))
                .await
            {
                Ok(_) => StatusCode::NO_CONTENT.into_response(),
                Err(e) if e == error::MEMBER_NOT_FOUND => no_such(),
                _ => http_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            }
        }
        _ if rest.is_empty() => method_not_allowed_plain(),
        _ => {
            let Some(id) = id() else { return no_such() };
            let urls = match peer_urls(&headers, &body) {
                Ok(u) => u,
                Err(r) => return *r,
            };
            let update = MemberUpdateRequest { id, peer_ur_ls: urls };
            match services.handle().call(Request::MemberUpdate(update)).await {
                Ok(_) => StatusCode::NO_CONTENT.into_response(),
                Err(e) if e == error::MEMBER_NOT_FOUND => no_such(),
                Err(e) if e == error::PEER_URL_EXISTS => {
                    http_error(StatusCode::CONFLICT, "membership: peerURL exists")
                }
                _ => http_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            }
        }
    }
}

/// etcd's `getID` without an ID: Go's `http.Error(w, "Method Not Allowed", 405)`.
fn method_not_allowed_plain() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "Method Not Allowed\n",
    )
        .into_response()
}

/// `/v2/machines`: every member's client URLs, joined by ", ".
pub async fn machines(services: Services, method: Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET,HEAD");
    }
    match list(&services).await {
        Ok(members) => {
            let urls: Vec<String> = members.into_iter().flat_map(|m| m.client_ur_ls).collect();
            urls.join(", ").into_response()
        }
        Err(r) => *r,
    }
}
