//! `/v2/stats/self`, `/v2/stats/leader` and `/v2/stats/store` in etcd 3.4's JSON
//! shapes. detcd measures no per-follower latency nor per-operation v2 counts:
//! those numbers (and the store's counts) are 0, as the README says; the names,
//! IDs, state, leader and times are real.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use detcd_core::node::{Request, Response as NodeResponse};
use detcd_proto::etcdserverpb::{Member, MemberListRequest};

use super::{http_error, json, now_unix_ms};
use crate::grpc::Services;

fn json_body(body: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn members(services: &Services) -> Vec<Member> {
    match services
        .handle()
        .call(Request::MemberList(MemberListRequest { linearizable: false }))
        .await
    {
        Ok(NodeResponse::MemberList(l)) => l.members,
        _ => Vec::new(),
    }
}

/// Go's `Duration.String` for whole milliseconds.
fn go_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{frac:03}s")
    };
    if frac != 0 {
        while secs.ends_with("0s") {
            secs.replace_range(secs.len() - 2.., "s");
        }
    }
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

pub async fn self_stats(services: Services, started_ms: u64) -> Response {
    let handle = services.handle();
    let id = handle.member_id();
    let metrics = handle.metrics();
    let name = members(&services)
        .await
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| m.name)
        .unwrap_or_default();
    let state = if metrics.is_leader {
        "StateLeader"
    } else {
        "StateFollower"
    };
    let now = now_unix_ms();
    let leader_info = if metrics.leader_id == 0 {
        "{\"leader\":\"\",\"uptime\":\"\",\"startTime\":\"0001-01-01T00:00:00Z\"}".to_string()
    } else {
        format!(
            "{{\"leader\":\"{:x}\",\"uptime\":\"{}\",\"startTime\":\"{}\"}}",
            metrics.leader_id,
            go_duration(now.saturating_sub(started_ms)),
            json::rfc3339(started_ms)
        )
    };
    json_body(format!(
        "{{\"name\":{},\"id\":\"{id:x}\",\"state\":\"{state}\",\"startTime\":\"{}\",\"leaderInfo\":{leader_info},\"recvAppendRequestCnt\":0,\"sendAppendRequestCnt\":0}}",
        json::string(&name),
        json::rfc3339(started_ms)
    ))
}

pub async fn leader_stats(services: Services) -> Response {
    let handle = services.handle();
    if !handle.metrics().is_leader {
        return http_error(StatusCode::FORBIDDEN, "not current leader");
    }
    let id = handle.member_id();
    let mut followers: Vec<String> = members(&services)
        .await
        .into_iter()
        .filter(|m| m.id != id)
        .map(|m| {
            format!(
                "\"{:x}\":{{\"latency\":{{\"current\":0,\"average\":0,\"standardDeviation\":0,\"minimum\":0,\"maximum\":0}},\"counts\":{{\"fail\":0,\"success\":0}}}}",
                m.id
            )
        })
        .collect();
    followers.sort();
    json_body(format!(
        "{{\"leader\":\"{id:x}\",\"followers\":{{{}}}}}",
        followers.join(",")
    ))
}

pub async fn store_stats(_services: Services) -> Response {
    const FIELDS: [&str; 16] = [
        "getsSuccess",
        "getsFail",
        "setsSuccess",
        "setsFail",
        "deleteSuccess",
        "deleteFail",
        "updateSuccess",
        "updateFail",
        "createSuccess",
        "createFail",
        "compareAndSwapSuccess",
        "compareAndSwapFail",
        "compareAndDeleteSuccess",
        "compareAndDeleteFail",
        "expireCount",
        "watchers",
    ];
    let body: Vec<String> = FIELDS.iter().map(|f| format!("\"{f}\":0")).collect();
    json_body(format!("{{{}}}", body.join(",")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(super::go_duration(1_500), "1.5s");
        assert_eq!(super::go_duration(62_000), "1m2s");
        assert_eq!(super::go_duration(3_723_040), "1h2m3.04s");
    }
}
