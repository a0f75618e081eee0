//! The v2 keys API on a learner, against etcd 3.4's: etcd's learner serves
//! `/v2/keys` as a follower does (writes and quorum gets forwarded to the leader
//! through raft, plain gets and waits from its own store). A one-member cluster
//! with `--enable-v2` gets a learner; the same curl steps on the learner, each
//! answer's status and body (indexes as they are: the learner's first write is at
//! 6 on both; times, IDs and ports masked) compared between etcd and detcd. The
//! learner answers `/v2/members` too, as etcd's does.
//!
//! Skipped (with a notice) without `etcd`, `etcdctl` or `curl` on PATH, a failure under CI.

#[path = "support/v2_norm.rs"]
mod v2_norm;

use std::process::Stdio;
use std::time::{Duration, Instant};

use detcd_testkit::{etcdctl_ok, free_port, member_command, start_server_with, Server};

/// One HTTP exchange: status, X-Etcd-Index (when sent) and the body, trimmed.
fn http(url: &str, method: &str, form: &str) -> (u16, Option<u64>, String) {
    let (status, index, body) = v2_norm::exchange(url, method, form, false);
    (status, index, body.trim_end().to_string())
}

/// `program` as a one-member cluster plus a learner (started, caught up); the
/// member and the learner.
fn with_learner(program: &str, tag: &str) -> (Server, Server) {
    let leader = start_server_with(program, tag, &["--enable-v2"]);
    let peer = format!("http://127.0.0.1:{}", free_port());
    let client = format!("http://127.0.0.1:{}", free_port());
    etcdctl_ok(
        &leader.endpoint,
        &["member", "add", "l1", "--learner", &format!("--peer-urls={peer}")],
    );
    let leader_peer = etcdctl_ok(&leader.endpoint, &["member", "list"])
        .lines()
        .find(|l| l.contains(", n1,"))
        .and_then(|l| l.split(", ").nth(3))
        .expect("n1's peer URL")
        .to_string();
    let dir = leader.dir.join("learner");
    std::fs::create_dir_all(&dir).expect("learner dir");
    let log = std::fs::File::create(dir.join("server.log")).expect("log file");
    let child = member_command(program, "l1", &dir.join("data"), &client, &peer)
        .args([
            "--initial-cluster",
            &format!("n1={leader_peer},l1={peer}"),
            "--initial-cluster-state",
            "existing",
            "--enable-v2",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let endpoint = client.trim_start_matches("http://").to_string();
    let learner = Server::new(child, dir, endpoint);
    // Caught up: its store shows the leader's index.
    let (_, want, _) = http(&format!("http://{}/v2/keys/", leader.endpoint), "GET", "");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, index, _) = http(&format!("http://{}/v2/keys/", learner.endpoint), "GET", "");
        if status == 200 && index >= want {
            break;
        }
        assert!(Instant::now() < deadline, "{program}'s learner did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    (leader, learner)
}

/// The steps on the learner, normalized.
fn session(learner: &str) -> Vec<String> {
    let url = |path: &str| format!("http://{learner}{path}");
    // n1 added and published, the cluster version, l1 added and published.
    assert_eq!(
        v2_norm::settle(learner, 5),
        5,
        "the learner's index before the first write"
    );
    // Indexes are compared as they are.
    let offset = 0;
    let steps = [
        ("set", "PUT", "/v2/keys/l/a", "value=1"),
        ("get", "GET", "/v2/keys/l/a", ""),
        ("quorum get", "GET", "/v2/keys/l/a?quorum=true", ""),
        (
            "create existing",
            "PUT",
            "/v2/keys/l/a?prevExist=false",
            "value=2",
        ),
        ("cas", "PUT", "/v2/keys/l/a?prevValue=1", "value=3"),
        (
            "wait from history",
            "GET",
            "/v2/keys/l?wait=true&recursive=true&waitIndex=1",
            "",
        ),
        ("delete", "DELETE", "/v2/keys/l/a", ""),
        ("get gone", "GET", "/v2/keys/l/a", ""),
        ("members", "GET", "/v2/members", ""),
    ];
    steps
        .iter()
        .map(|(label, method, path, form)| {
            let (status, index, body) = http(&url(path), method, form);
            let index = index.map(|i| i.saturating_sub(offset));
            let body = if *label == "members" {
                members_by_name(&body)
            } else {
                body
            };
            format!("{label}: {status} {index:?} {}", v2_norm::body(&body, offset))
        })
        .collect()
}

/// A `/v2/members` body with its members in name order. Both servers list
/// members by ID (checked here); the learner's ID is random in both, so the
/// order of the two names is a coin toss and is taken out of the comparison.
fn members_by_name(body: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_string();
    };
    let Some(members) = doc.get_mut("members").and_then(|m| m.as_array_mut()) else {
        return body.to_string();
    };
    let ids: Vec<u64> = members
        .iter()
        .map(|m| {
            let id = m["id"].as_str().unwrap_or_default();
            u64::from_str_radix(id, 16).unwrap_or_else(|_| panic!("member id {id:?} in {body}"))
        })
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "members not in ID order: {body}"
    );
    members.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    // Fields in the order both servers write them.
    let members: Vec<String> = members
        .iter()
        .map(|m| {
            format!(
                r#"{{"id":{},"name":{},"peerURLs":{},"clientURLs":{}}}"#,
                m["id"], m["name"], m["peerURLs"], m["clientURLs"]
            )
        })
        .collect();
    format!(r#"{{"members":[{}]}}"#, members.join(","))
}

#[test]
fn v2_on_a_learner_matches_etcd() {
    if !detcd_testkit::require_tools(&["etcd", "etcdctl", "curl"], "v2_on_a_learner_matches_etcd") {
        return;
    }
    let etcd34 = v2_norm::etcd34().expect("etcd 3.4 (etcd --version) on PATH or at /usr/bin/etcd");
    let (leader, learner) = with_learner(&etcd34, "v2-learner-etcd");
    let expected = session(&learner.endpoint);
    drop((learner, leader));
    let (leader, learner) = with_learner(env!("CARGO_BIN_EXE_detcd"), "v2-learner-detcd");
    let got = session(&learner.endpoint);
    drop((learner, leader));
    assert!(
        expected[0].starts_with("set: 201"),
        "etcd's learner: {expected:?}"
    );
    assert!(
        expected[2].starts_with("quorum get: 200"),
        "etcd's learner: {expected:?}"
    );
    assert!(
        expected[8].starts_with("members: 200") && expected[8].contains(r#""name":"l1""#),
        "etcd's learner: {expected:?}"
    );
    assert_eq!(got, expected);
}
