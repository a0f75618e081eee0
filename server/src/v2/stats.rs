//! `/v2/stats/self`, `/v2/stats/leader` and `/v2/stats/store` in etcd 3.4's JSON
//! shapes. detcd measures no per-follower latency: those numbers are 0, as the
//! README says; the names, IDs, state, leader and times are real, and so are the
//! store's counts (this member's, as in etcd).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use detcd_core::node::{Request, Response as NodeResponse, V2Reply as NodeV2Reply};
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

/// What the HTTP layer counts: the v2 waits this member holds (etcd's watcher hub
/// count, `watchers` in `/v2/stats/store`) and the waits asked for (etcd's
/// `etcd_debugging_store_watch_requests_total`).
#[derive(Clone, Debug, Default)]
pub struct LocalStats {
    watchers: Arc<AtomicU64>,
    watch_requests: Arc<AtomicU64>,
}

/// For each `/v2/keys` request with a valid form and each `/v2/members` write,
/// etcd reads its v2 auth switch from the store, a get that fails while v2 auth
/// is off (detcd has no v2 auth): the member counts the same failed get in its
/// statistics, which its snapshots keep as etcd's do.
pub async fn count_auth_lookup(services: &Services) {
    // Only a count: a member that cannot answer has nothing to count it in.
    let _ = services.handle().call(Request::V2AuthLookup).await;
}

/// One wait counted in [`LocalStats`] until dropped.
#[derive(Debug)]
pub struct Waiting(Arc<AtomicU64>);

impl LocalStats {
    pub fn enter_wait(&self) -> Waiting {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Waiting(self.watchers.clone())
    }

    /// A wait asked for (etcd's `watch_requests_total`: every watch its v2 store
    /// takes, answered from the history or not).
    pub fn count_watch_request(&self) {
        self.watch_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits held now (etcd's `watchers`).
    pub fn watchers(&self) -> u64 {
        self.watchers.load(Ordering::Relaxed)
    }

    pub fn watch_requests(&self) -> u64 {
        self.watch_requests.load(Ordering::Relaxed)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `/v2/stats/store`: this member's counts of v2 operations (see
/// [`detcd_core::v2store::Stats`]) and [`LocalStats`].
pub async fn store_stats(services: Services, local: LocalStats) -> Response {
    let stats = match services.handle().call(Request::V2Status).await {
        Ok(NodeResponse::V2(NodeV2Reply {
            stats: Some(stats), ..
        })) => *stats,
        _ => {
            return http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the v2 store's statistics",
            )
        }
    };
    let mut body: Vec<String> = stats
        .fields()
        .iter()
        .map(|(f, n)| format!("\"{f}\":{n}"))
        .collect();
    body.push(format!("\"watchers\":{}", local.watchers.load(Ordering::Relaxed)));
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
