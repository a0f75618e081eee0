//! etcd 3.4's v2 API on the client port, served with `--enable-v2`: `/v2/keys`
//! ([`keys`]), `/v2/members` and `/v2/machines` ([`members`]), `/v2/stats/*`
//! ([`stats`]); `/v2/auth/*` answers that v2 auth is not supported. Without the
//! flag these paths are 404, as in etcd 3.4.
//!
//! [`spawn_sync`] runs on every member whatever the flag: while this member leads
//! and a v2 key has a TTL, it proposes its clock every [`SYNC_INTERVAL_MS`] so the
//! keys expire (etcd's SYNC request). Expiry is thus decided by the leader's time
//! as it enters the log, the same on every member.

mod form;
mod json;
mod keys;
mod members;
mod stats;
pub use stats::LocalStats;

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use detcd_core::node::Request;
use detcd_io::driver::MemberHandle;
use detcd_proto::detcdpb::V2Request;

use crate::grpc::Services;

/// How often the leader expires TTL keys (etcd's 500 ms).
pub const SYNC_INTERVAL_MS: u64 = 500;

/// The wall clock in Unix milliseconds (TTLs are absolute times, as in etcd).
pub(crate) fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// etcd's `allowMethod` refusal.
pub(crate) fn method_not_allowed(allow: &str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (header::ALLOW, allow.to_string()),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        "Method Not Allowed\n",
    )
        .into_response()
}

/// An `httptypes.HTTPError` body: `{"message":...}` with `status`.
pub(crate) fn http_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"message\":{}}}", json::string(message)),
    )
        .into_response()
}

type Parts = (Method, Uri, HeaderMap, Bytes);

/// Adds the v2 endpoints to `router`.
pub fn routes(router: axum::Router, services: Services) -> axum::Router {
    let started_ms = now_unix_ms();
    // Shared with the metrics, which show the same counts as etcd's `etcd_debugging_store_*`.
    let local = services.metrics().v2_local().clone();
    let (s, l) = (services.clone(), local.clone());
    let keys = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        keys::serve(s.clone(), l.clone(), method, uri, headers, body)
    };
    let s = services.clone();
    let members = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let parts: Parts = (method, uri, headers, body);
        members::serve(s.clone(), parts)
    };
    let (s1, s2, s3, s4) = (services.clone(), services.clone(), services.clone(), services);
    router
        .route("/v2/keys", any(keys.clone()))
        .route("/v2/keys/", any(keys.clone()))
        .route("/v2/keys/{*path}", any(keys))
        .route("/v2/members", any(members.clone()))
        .route("/v2/members/", any(members.clone()))
        .route("/v2/members/{*rest}", any(members))
        .route(
            "/v2/machines",
            any(move |m: Method| members::machines(s1.clone(), m)),
        )
        .route(
            "/v2/stats/self",
            get(move || stats::self_stats(s2.clone(), started_ms)),
        )
        .route("/v2/stats/leader", get(move || stats::leader_stats(s3.clone())))
        .route(
            "/v2/stats/store",
            get(move || stats::store_stats(s4.clone(), local.clone())),
        )
        .route("/v2/auth", any(auth_not_supported))
        .route("/v2/auth/{*rest}", any(auth_not_supported))
}

/// v2 auth is not implemented (the v3 auth API is).
async fn auth_not_supported() -> Response {
    http_error(
        StatusCode::NOT_IMPLEMENTED,
        "v2 auth is not supported by detcd; use the v3 auth API (etcdctl --api 3 auth, user, role)",
    )
}

/// Proposes the leader's clock while v2 keys have TTLs (see the module doc).
pub fn spawn_sync(handle: MemberHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(SYNC_INTERVAL_MS));
        loop {
            tick.tick().await;
            if !handle.metrics().is_leader {
                continue;
            }
            let has_ttl = matches!(
                handle.call(Request::V2Status).await,
                Ok(detcd_core::node::Response::V2(r)) if r.has_ttl_keys
            );
            if has_ttl {
                let sync = V2Request {
                    method: "SYNC".to_string(),
                    time_unix_ms: now_unix_ms(),
                    ..V2Request::default()
                };
                if let Err(detcd_core::error::EtcdError { message, .. }) =
                    handle.call(Request::V2(sync)).await
                {
                    if message == detcd_core::error::STOPPED.message {
                        return;
                    }
                }
            }
        }
    });
}
