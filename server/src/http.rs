//! The plain HTTP endpoints etcd serves on its client port beside gRPC: `/health`,
//! `/livez`, `/readyz`, `/version` and `/metrics`.
//!
//! `/health` follows etcd's `checkHealth`: unhealthy with an active alarm, without a
//! leader, or when a read fails (linearizable unless `?serializable=true`); answered
//! with 503 and the reason then. `/version` names the version the node reports in
//! Status (3.6.0), so `endpoint status` and `/version` agree; clients only parse the
//! JSON keys. `/metrics` is the Prometheus text format with etcd's metric names.
//!
//! Everything else is refused, never answered 200: an unknown path gets Go's `404 page not
//! found`, a known path with the wrong method `405 Method Not Allowed` (etcd's texts), a
//! gRPC request for an unknown service gRPC's Unimplemented, and an unknown path under the
//! JSON gateway's prefixes (`/v3/...`, [`crate::gateway`]) grpc-gateway's `404 Not Found`.

use axum::extract::RawQuery;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use detcd_core::node::{Request, Response as NodeResponse};
use detcd_proto::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, AlarmType, RangeRequest};

use crate::grpc::Services;

/// The server version `/version` reports (the node's Status version).
pub const SERVER_VERSION: &str = "3.6.0";
/// The cluster version `/version` reports (etcd writes major.minor.0).
pub const CLUSTER_VERSION: &str = detcd_core::v2store::CLUSTER_VERSION;

/// Adds the HTTP endpoints to `router` (the gRPC services' router).
/// With `gateway`, unknown paths under its prefixes answer as grpc-gateway does.
pub fn routes(router: axum::Router, services: Services, gateway: bool) -> axum::Router {
    let (s1, s2, s3, s5, s6) = (
        services.clone(),
        services.clone(),
        services.clone(),
        services.clone(),
        services.clone(),
    );
    let s4 = services;
    router
        .route("/health", get(move |q: RawQuery| health(s1, q.0)))
        .route("/livez", get(move |q: RawQuery| probe(s2, "/livez".into(), q.0)))
        .route(
            "/livez/{check}",
            get(move |p: axum::extract::Path<String>, q: RawQuery| probe(s5, format!("/livez/{}", p.0), q.0)),
        )
        .route(
            "/readyz",
            get(move |q: RawQuery| probe(s3, "/readyz".into(), q.0)),
        )
        .route(
            "/readyz/{check}",
            get(move |p: axum::extract::Path<String>, q: RawQuery| {
                probe(s6, format!("/readyz/{}", p.0), q.0)
            }),
        )
        .route("/version", get(version))
        .route("/metrics", get(move || metrics(s4)))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(move |request: axum::extract::Request| async move {
            if gateway && !is_grpc(request.headers()) && crate::gateway::is_gateway_path(request.uri().path())
            {
                return crate::gateway::unknown_path(request);
            }
            not_found(request).await
        })
}

/// Whether a request is gRPC (its content type is `application/grpc` or a subtype).
fn is_grpc(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The answer to a path nothing serves.
pub async fn not_found(request: axum::extract::Request) -> Response {
    let path = request.uri().path();
    if is_grpc(request.headers()) {
        // gRPC's own answer (trailers-only, HTTP 200), in grpc-go's words.
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let message = format!("unknown service {service}").replace(' ', "%20");
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/grpc".to_string()),
                (header::HeaderName::from_static("grpc-status"), "12".to_string()),
                (header::HeaderName::from_static("grpc-message"), message),
            ],
        )
            .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

/// The answer to a known path with a method it does not take.
pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Method Not Allowed\n",
    )
        .into_response()
}

/// etcd's `checkHealth`: `Ok(())` or the reason the member is unhealthy.
async fn check_health(services: &Services, query: Option<&str>, serializable: bool) -> Result<(), String> {
    let excluded = |name: &str| query.is_some_and(|q| q.split('&').any(|kv| kv == format!("exclude={name}")));
    let alarms = services
        .handle()
        .call(Request::Alarm(AlarmRequest {
            action: AlarmAction::Get as i32,
            member_id: 0,
            alarm: AlarmType::None as i32,
        }))
        .await;
    if let Ok(NodeResponse::Alarm(a)) = alarms {
        for alarm in a.alarms {
            let name = AlarmType::try_from(alarm.alarm)
                .map(|t| t.as_str_name())
                .unwrap_or("UNKNOWN");
            if !excluded(name) {
                return Err(format!("ALARM {name}"));
            }
        }
    }
    if !services.handle().metrics().has_leader {
        return Err("RAFT NO LEADER".to_string());
    }
    local_read(services, serializable)
        .await
        .map_err(|_| if serializable { "RANGE ERROR" } else { "QGET ERROR" }.to_string())
}

fn wants_serializable(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "serializable=true"))
}

async fn health(services: Services, query: Option<String>) -> Response {
    let q = query.as_deref();
    let checked = check_health(&services, q, wants_serializable(q)).await;
    let series = &services.metrics().service;
    match &checked {
        Ok(()) => series.health_success.inc(),
        Err(_) => series.health_failures.inc(),
    }
    // Go's http server sniffs the JSON as text/plain; a failure goes through http.Error.
    let text = (header::CONTENT_TYPE, "text/plain; charset=utf-8");
    match checked {
        Ok(()) => (
            StatusCode::OK,
            [text],
            r#"{"health":"true","reason":""}"#.to_string(),
        )
            .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                text,
                (
                    header::HeaderName::from_static("x-content-type-options"),
                    "nosniff",
                ),
            ],
            format!("{{\"health\":\"false\",\"reason\":\"{reason}\"}}\n"),
        )
            .into_response(),
    }
}

/// The checks of `/livez` and of `/readyz`, as etcd 3.5.13+ and 3.6 register them.
const LIVEZ_CHECKS: &[&str] = &["serializable_read"];
const READYZ_CHECKS: &[&str] = &[
    "data_corruption",
    "serializable_read",
    "linearizable_read",
    "non_learner",
];

/// The checks one probe path runs: `/livez` and `/readyz` all of theirs but those named
/// by `?exclude=` (an unknown name is only logged, as etcd), `/livez/<check>` and
/// `/readyz/<check>` that one; None for a path that is no probe.
fn probe_checks(path: &str, query: &str) -> Option<Vec<&'static str>> {
    let (root, one) = match path.trim_start_matches('/').split_once('/') {
        Some((root, one)) => (root, Some(one)),
        None => (path.trim_start_matches('/'), None),
    };
    let all = match root {
        "livez" => LIVEZ_CHECKS,
        "readyz" => READYZ_CHECKS,
        _ => return None,
    };
    if let Some(one) = one {
        return all.iter().find(|c| **c == one).map(|c| vec![*c]);
    }
    let excluded: Vec<&str> = query
        .split('&')
        .filter_map(|p| p.strip_prefix("exclude="))
        .collect();
    let unknown: Vec<String> = excluded
        .iter()
        .filter(|e| !all.contains(e))
        .map(|e| format!("{e:?}"))
        .collect();
    if !unknown.is_empty() {
        detcd_io::log::event_with(
            detcd_io::log::Level::Warn,
            "some health checks cannot be excluded",
            &[(
                "missing-health-checks",
                detcd_io::log::Field::Str(&unknown.join(",")),
            )],
        );
    }
    Some(all.iter().copied().filter(|c| !excluded.contains(c)).collect())
}

/// `/livez` and `/readyz` and their per-check paths, as etcd 3.5.13+ and 3.6: each check
/// run in turn; 200 `ok` (with `?verbose`, `[+]<check> ok` lines before it), or 503 with
/// every check's line (`[-]<check> failed: <reason>`) as Go's `http.Error` writes it.
async fn probe(services: Services, path: String, query: Option<String>) -> Response {
    let q = query.as_deref().unwrap_or("");
    let Some(checks) = probe_checks(&path, q) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "404 page not found\n",
        )
            .into_response();
    };
    let verbose = q.split('&').any(|p| p == "verbose" || p.starts_with("verbose="));
    let mut lines = String::new();
    let mut failed = false;
    for check in checks {
        let result = match check {
            "data_corruption" => corrupt_alarm(&services).await,
            // Liveness does not depend on a leader: a local read answering is enough.
            "serializable_read" => local_read(&services, true).await,
            "non_learner" if services.handle().metrics().is_learner => {
                Err("not supported for learner".to_string())
            }
            "non_learner" => Ok(()),
            _ => check_health(&services, Some("exclude=NOSPACE"), false).await,
        };
        match result {
            Ok(()) => lines.push_str(&format!("[+]{check} ok\n")),
            Err(reason) => {
                failed = true;
                lines.push_str(&format!("[-]{check} failed: {reason}\n"));
            }
        }
    }
    let nosniff = (
        header::HeaderName::from_static("x-content-type-options"),
        "nosniff",
    );
    let text = (header::CONTENT_TYPE, "text/plain; charset=utf-8");
    if failed {
        return (StatusCode::SERVICE_UNAVAILABLE, [text, nosniff], lines + "\n").into_response();
    }
    let body = if verbose {
        lines + "ok\n"
    } else {
        "ok\n".to_string()
    };
    (StatusCode::OK, [text, nosniff], body).into_response()
}

/// The `data_corruption` check: no CORRUPT alarm is raised.
async fn corrupt_alarm(services: &Services) -> Result<(), String> {
    match check_health(services, Some("exclude=NOSPACE"), true).await {
        Err(reason) if reason == "ALARM CORRUPT" => Err("alarm activated: CORRUPT".to_string()),
        _ => Ok(()),
    }
}

/// A read of one key answers (serializable: from this member alone).
async fn local_read(services: &Services, serializable: bool) -> Result<(), String> {
    let read = RangeRequest {
        key: b"health".to_vec(),
        keys_only: true,
        limit: 1,
        serializable,
        ..RangeRequest::default()
    };
    match services.handle().call(Request::Range(read.clone())).await {
        Ok(_) => Ok(()),
        // etcd's health read runs below its gRPC layer, where a learner's linearizable
        // read goes to the leader (ReadIndex) and answers: a learner is healthy (etcd
        // 3.5.1: /health 200). detcd's node refuses it as the gRPC API must, so on a
        // learner the check is that it has a leader (checked before) and reads locally.
        Err(e) if !serializable && e == detcd_core::error::LEARNER_RPC_NOT_SUPPORTED => {
            let local = RangeRequest {
                serializable: true,
                ..read
            };
            match services.handle().call(Request::Range(local)).await {
                Ok(_) => Ok(()),
                Err(e) if e == detcd_core::error::USER_EMPTY || e == detcd_core::error::PERMISSION_DENIED => {
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        // As etcd's checkAPI: with auth enabled the anonymous probe read is
        // refused, and that refusal came from a serving member.
        Err(e) if e == detcd_core::error::USER_EMPTY || e == detcd_core::error::PERMISSION_DENIED => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

async fn version() -> Response {
    let body = format!(r#"{{"etcdserver":"{SERVER_VERSION}","etcdcluster":"{CLUSTER_VERSION}"}}"#);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(services: Services) -> Response {
    let text = services.metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_paths_and_exclusions_are_etcds() {
        assert_eq!(probe_checks("/livez", ""), Some(vec!["serializable_read"]));
        assert_eq!(probe_checks("/readyz", "verbose").map(|c| c.len()), Some(4));
        assert_eq!(
            probe_checks("/readyz", "exclude=data_corruption&exclude=non_learner&verbose"),
            Some(vec!["serializable_read", "linearizable_read"])
        );
        // An unknown exclusion is only logged.
        assert_eq!(probe_checks("/readyz", "exclude=bogus").map(|c| c.len()), Some(4));
        assert_eq!(probe_checks("/readyz/non_learner", ""), Some(vec!["non_learner"]));
        assert_eq!(
            probe_checks("/livez/serializable_read", ""),
            Some(vec!["serializable_read"])
        );
        assert_eq!(probe_checks("/livez/linearizable_read", ""), None);
        assert_eq!(probe_checks("/readyz/bogus", ""), None);
    }
    use detcd_io::metrics::Metrics;

    async fn answer(method: &str, path: &str, content_type: &str) -> (u16, Vec<(String, String)>, String) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::empty())
            .expect("request");
        let response = not_found(request).await;
        let code = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (code, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn unknown_paths_are_refused_as_etcd_refuses_them() {
        let (code, _, body) = answer("GET", "/foo", "").await;
        assert_eq!((code, body.as_str()), (404, "404 page not found\n"));
        let (code, _, body) = answer("POST", "/v3alpha/kv/range", "application/json").await;
        assert_eq!((code, body.as_str()), (404, "404 page not found\n"));
        let (code, headers, body) = answer("POST", "/etcdserverpb.Nope/X", "application/grpc").await;
        assert_eq!((code, body.as_str()), (200, ""));
        assert!(
            headers.contains(&("grpc-status".to_string(), "12".to_string())),
            "{headers:?}"
        );
        assert!(
            headers.contains(&(
                "grpc-message".to_string(),
                "unknown%20service%20etcdserverpb.Nope".to_string()
            )),
            "{headers:?}"
        );
        let r = method_not_allowed().await;
        assert_eq!(r.status().as_u16(), 405);
    }

    #[test]
    fn metrics_use_etcd_names_and_a_cumulative_histogram() {
        let mut m = Metrics {
            has_leader: true,
            proposals_committed: 7,
            ..Metrics::default()
        };
        m.wal_fsync.observe(0.0005);
        m.wal_fsync.observe(10.0);
        let registry = prometheus::Registry::new();
        let mut out = Vec::new();
        let mut families = crate::metrics::member::families(&m, 0x8e9e05c52164694d);
        families.extend(registry.gather());
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &families, &mut out).expect("encode");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("\netcd_server_has_leader 1\n"), "{text}");
        assert!(text.contains("\netcd_server_proposals_committed_total 7\n"));
        assert!(
            text.contains("etcd_server_id{server_id=\"8e9e05c52164694d\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_count 2\n"));
    }
}
