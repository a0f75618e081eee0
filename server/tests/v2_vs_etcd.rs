//! The v2 API (`--enable-v2`) against etcd 3.4's: one curl session (set, get, dirs,
//! compare-and-swap and -delete, TTL and refresh, expiry, in-order keys, waits with
//! and without a waitIndex, streams (`stream=true`) from now and from the history, the history limit, errors, members, machines, stats)
//! run against a real etcd and against detcd, each answer's status, X-Etcd-Index
//! and body compared, indexes as they are (the first write at 4 on both: etcd
//! counts its own member and cluster-version records first), times, IDs and
//! ports masked. Then: without the flag, `/v2/keys` is 404 as in etcd 3.4.
//!
//! Skipped (with a notice) without `etcd`, `etcdctl` or `curl` on PATH, a failure under CI.

#[path = "support/v2_norm.rs"]
mod v2_norm;

use std::process::Command;
use std::time::Duration;

use detcd_testkit::{start_server, start_server_with};

/// One HTTP exchange: status, X-Etcd-Index (when sent) and body.
fn http(endpoint: &str, method: &str, path: &str, form: &str, json: bool) -> (u16, Option<u64>, String) {
    v2_norm::exchange(&format!("http://{endpoint}{path}"), method, form, json)
}

struct Session<'a> {
    endpoint: &'a str,
    /// etcd's v2 index before the first write of the session.
    offset: u64,
    steps: Vec<String>,
}

impl Session<'_> {
    fn step(&mut self, label: &str, method: &str, path: &str, form: &str) -> String {
        self.step_as(label, method, path, form, false)
    }

    fn step_as(&mut self, label: &str, method: &str, path: &str, form: &str, json: bool) -> String {
        let (status, index, body) = http(self.endpoint, method, path, form, json);
        let index = index.map(|i| if i > self.offset { i - self.offset } else { i });
        let line = format!(
            "{label}: {status} {index:?} {}",
            v2_norm::body(body.trim_end(), self.offset)
        );
        self.steps.push(line);
        body
    }

    /// An absolute v2 index for a relative one.
    fn at(&self, relative: u64) -> u64 {
        relative + self.offset
    }
}

/// A streaming GET of `url` cut after `secs` seconds (its output so far is the answer).
fn stream_for(url: &str, secs: &str) -> std::process::Child {
    Command::new("curl")
        .args(["-s", "-N", "--max-time", secs, url])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run curl")
}

/// The `node.modifiedIndex` of an answer.
fn modified_index(body: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["node"]["modifiedIndex"]
        .as_u64()
        .unwrap_or_else(|| panic!("no index in {body}"))
}

fn session(endpoint: &str) -> Vec<String> {
    // A fresh single member: added, published, cluster version set.
    assert_eq!(
        v2_norm::settle(endpoint, 3),
        3,
        "{endpoint}: the store's index at start"
    );
    let (status, index, first) = http(endpoint, "PUT", "/v2/keys/base", "value=b", false);
    assert_eq!((status, index), (201, Some(4)), "{first}");
    assert_eq!(modified_index(&first), 4, "{first}");
    // Indexes are compared as they are.
    let offset = 0;
    let mut s = Session {
        endpoint,
        offset,
        steps: Vec::new(),
    };
    s.step("set new", "PUT", "/v2/keys/dir/a", "value=va");
    s.step("set again", "PUT", "/v2/keys/dir/a", "value=vb");
    s.step("get key", "GET", "/v2/keys/dir/a", "");
    s.step("set dir", "PUT", "/v2/keys/dir/sub?dir=true", "");
    s.step("set on dir", "PUT", "/v2/keys/dir/sub", "value=x");
    s.step("get dir", "GET", "/v2/keys/dir?sorted=true", "");
    s.step("get recursive", "GET", "/v2/keys/?recursive=true&sorted=true", "");
    s.step("quorum get", "GET", "/v2/keys/dir/a?quorum=true", "");
    s.step("hidden key", "PUT", "/v2/keys/dir/_hidden", "value=h");
    s.step("hidden not listed", "GET", "/v2/keys/dir?sorted=true", "");
    s.step("hidden read", "GET", "/v2/keys/dir/_hidden", "");
    // Compare-and-swap.
    let swapped = s.step("cas value", "PUT", "/v2/keys/dir/a", "prevValue=vb&value=vc");
    s.step(
        "cas value fails",
        "PUT",
        "/v2/keys/dir/a",
        "prevValue=nope&value=vd",
    );
    let right = modified_index(&swapped);
    s.step(
        "cas index",
        "PUT",
        &format!("/v2/keys/dir/a?prevIndex={right}"),
        "value=ve",
    );
    s.step("cas index fails", "PUT", "/v2/keys/dir/a?prevIndex=2", "value=vf");
    s.step(
        "cas both fail",
        "PUT",
        "/v2/keys/dir/a?prevIndex=2&prevValue=no",
        "value=vf",
    );
    s.step("cas missing", "PUT", "/v2/keys/nokey?prevValue=a", "value=vf");
    s.step("cas dir", "PUT", "/v2/keys/dir?prevValue=a", "value=vf");
    s.step(
        "create exists",
        "PUT",
        "/v2/keys/dir/a?prevExist=false",
        "value=c",
    );
    s.step("create", "PUT", "/v2/keys/dir/c?prevExist=false", "value=c");
    s.step(
        "update missing",
        "PUT",
        "/v2/keys/dir/nope?prevExist=true",
        "value=u",
    );
    s.step("update", "PUT", "/v2/keys/dir/c?prevExist=true", "value=u");
    s.step(
        "no value on success",
        "PUT",
        "/v2/keys/dir/c?noValueOnSuccess=true",
        "value=w",
    );
    // Compare-and-delete and deletes.
    s.step("cad fails", "DELETE", "/v2/keys/dir/c?prevValue=x", "");
    s.step("cad", "DELETE", "/v2/keys/dir/c?prevValue=w", "");
    s.step("delete dir as key", "DELETE", "/v2/keys/dir", "");
    s.step("delete full dir", "DELETE", "/v2/keys/dir?dir=true", "");
    s.step("delete empty dir", "DELETE", "/v2/keys/dir/sub?dir=true", "");
    s.step("delete key", "DELETE", "/v2/keys/dir/a", "");
    s.step("delete missing", "DELETE", "/v2/keys/dir/a", "");
    s.step("delete recursive", "DELETE", "/v2/keys/dir?recursive=true", "");
    // TTLs.
    s.step("ttl", "PUT", "/v2/keys/t", "value=x&ttl=100");
    s.step(
        "refresh",
        "PUT",
        "/v2/keys/t?refresh=true&prevExist=true",
        "ttl=200",
    );
    s.step("get ttl", "GET", "/v2/keys/t", "");
    s.step("ttl removed", "PUT", "/v2/keys/t?prevExist=true", "value=y&ttl=");
    let expiring = s.step("expiring", "PUT", "/v2/keys/e", "value=1&ttl=1");
    std::thread::sleep(Duration::from_millis(2_600));
    s.step("expired", "GET", "/v2/keys/e", "");
    let set_at = modified_index(&expiring);
    s.step(
        "wait old",
        "GET",
        &format!("/v2/keys/e?wait=true&waitIndex={set_at}"),
        "",
    );
    let expired_at = set_at + 1;
    s.step(
        "wait expiry",
        "GET",
        &format!("/v2/keys/e?wait=true&waitIndex={expired_at}"),
        "",
    );
    // In-order keys.
    s.step("post", "POST", "/v2/keys/queue", "value=j1");
    s.step("post again", "POST", "/v2/keys/queue", "value=j2");
    s.step("queue", "GET", "/v2/keys/queue?recursive=true&sorted=true", "");
    // A wait for the next change, made by another client.
    let endpoint = s.endpoint.to_string();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        http(&endpoint, "PUT", "/v2/keys/w/k", "value=z", false);
    });
    s.step("wait next", "GET", "/v2/keys/w?wait=true&recursive=true", "");
    writer.join().expect("writer");
    let from = s.at(1);
    s.step(
        "wait recursive history",
        "GET",
        &format!("/v2/keys/dir?wait=true&recursive=true&waitIndex={from}"),
        "",
    );
    // Streams: from now (two changes by another client), and from the history
    // (etcd's answers its one event from the history, then nothing).
    let url = format!(
        "http://{}/v2/keys/st?wait=true&stream=true&recursive=true",
        s.endpoint
    );
    let streaming = stream_for(&url, "2");
    std::thread::sleep(Duration::from_millis(400));
    let first = http(s.endpoint, "PUT", "/v2/keys/st/a", "value=1", false).2;
    http(s.endpoint, "PUT", "/v2/keys/st/b", "value=2", false);
    let body = streaming.wait_with_output().expect("curl").stdout;
    let line = format!(
        "stream now: {}",
        v2_norm::body(String::from_utf8_lossy(&body).trim_end(), s.offset)
    );
    s.steps.push(line);
    let from = modified_index(&first);
    let body = stream_for(&format!("{url}&waitIndex={from}"), "1")
        .wait_with_output()
        .expect("curl")
        .stdout;
    let line = format!(
        "stream history: {}",
        v2_norm::body(String::from_utf8_lossy(&body).trim_end(), s.offset)
    );
    s.steps.push(line);
    // Errors.
    s.step("get missing", "GET", "/v2/keys/nothing", "");
    s.step("not a directory", "GET", "/v2/keys/base/x", "");
    s.step("set under a key", "PUT", "/v2/keys/base/x", "value=1");
    s.step("root", "PUT", "/v2/keys/", "value=1");
    s.step("delete root", "DELETE", "/v2/keys/?recursive=true", "");
    s.step("wait on put", "PUT", "/v2/keys/x?wait=true", "value=1");
    s.step("empty prevValue", "PUT", "/v2/keys/x?prevValue=", "value=1");
    s.step("bad ttl", "PUT", "/v2/keys/x?ttl=soon", "value=1");
    s.step("bad index", "GET", "/v2/keys/x?wait=true&waitIndex=x", "");
    s.step("bad bool", "GET", "/v2/keys/x?recursive=maybe", "");
    s.step("refresh without ttl", "PUT", "/v2/keys/t?refresh=true", "");
    s.step(
        "refresh with value",
        "PUT",
        "/v2/keys/t?refresh=true&ttl=5",
        "value=v",
    );
    s.step("method", "PATCH", "/v2/keys/x", "");
    // The history keeps the last 1000 events. A wait pending through more than
    // that many other changes still gets its event, as etcd's watcher does.
    let pending = stream_for(&format!("http://{}/v2/keys/quiet?wait=true", s.endpoint), "60");
    std::thread::sleep(Duration::from_millis(400));
    let urls: String = (0..1_000)
        .map(|i| format!("url = \"http://{}/v2/keys/many/{}\"\n", s.endpoint, i % 7))
        .collect();
    let config = std::env::temp_dir().join(format!("detcd-v2-many-{}-{}", std::process::id(), s.offset));
    std::fs::write(&config, urls).expect("curl config");
    let bulk = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-X", "PUT", "-d", "value=m", "-K"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run curl");
    assert!(bulk.success());
    let _ = std::fs::remove_file(&config);
    http(s.endpoint, "PUT", "/v2/keys/quiet", "value=q", false);
    let body = pending.wait_with_output().expect("curl").stdout;
    let line = format!(
        "wait through the history: {}",
        v2_norm::body(String::from_utf8_lossy(&body).trim_end(), s.offset)
    );
    s.steps.push(line);
    let old = s.at(1);
    s.step(
        "history cleared",
        "GET",
        &format!("/v2/keys/base?wait=true&waitIndex={old}"),
        "",
    );
    // Members and machines.
    s.step("members", "GET", "/v2/members", "");
    s.step("leader", "GET", "/v2/members/leader", "");
    s.step("member unknown path", "GET", "/v2/members/nope", "");
    s.step("machines", "GET", "/v2/machines", "");
    s.step("stats leader", "GET", "/v2/stats/leader", "");
    s.step_as(
        "member add bad type",
        "POST",
        "/v2/members",
        r#"{"peerURLs":["http://127.0.0.1:1"]}"#,
        false,
    );
    s.step_as("member remove missing", "DELETE", "/v2/members/abc", "", false);
    s.step_as("member remove bad id", "DELETE", "/v2/members/xyz", "", false);
    s.step_as(
        "member update missing",
        "PUT",
        "/v2/members/abc",
        r#"{"peerURLs":["http://127.0.0.1:1"]}"#,
        true,
    );
    s.steps
}

fn tools_present(test: &str) -> bool {
    detcd_testkit::require_tools(&["etcd", "etcdctl", "curl"], test)
}

#[test]
fn v2_session_matches_etcd() {
    if !tools_present("v2_session_matches_etcd") {
        return;
    }
    let etcd34 = v2_norm::etcd34().expect("etcd 3.4 (etcd --version) on PATH or at /usr/bin/etcd");
    let etcd = start_server_with(&etcd34, "v2-etcd", &["--enable-v2"]);
    let expected = session(&etcd.endpoint);
    drop(etcd);
    let detcd = start_server_with(env!("CARGO_BIN_EXE_detcd"), "v2-detcd", &["--enable-v2"]);
    let got = session(&detcd.endpoint);
    let failures: Vec<String> = expected
        .iter()
        .zip(&got)
        .filter(|(e, g)| e != g)
        .map(|(e, g)| format!("  etcd:  {e}\n  detcd: {g}"))
        .collect();
    assert_eq!(expected.len(), got.len());
    // The session reached what it is about (not only errors on both sides).
    let step = |label: &str| {
        got.iter()
            .find(|l| l.starts_with(&format!("{label}:")))
            .expect(label)
            .clone()
    };
    assert!(
        step("wait expiry").contains(r#""action":"expire""#),
        "{}",
        step("wait expiry")
    );
    assert!(
        step("wait next").contains(r#""key":"/w/k""#),
        "{}",
        step("wait next")
    );
    assert!(
        step("wait through the history").contains(r#""key":"/quiet""#),
        "{}",
        step("wait through the history")
    );
    assert!(
        step("history cleared").contains(r#""errorCode":401"#),
        "{}",
        step("history cleared")
    );
    assert!(
        step("cas index").contains("compareAndSwap"),
        "{}",
        step("cas index")
    );
    assert!(
        step("post").contains("/queue/00000000000000000"),
        "{}",
        step("post")
    );
    assert!(
        failures.is_empty(),
        "{} steps differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn without_the_flag_v2_is_not_served() {
    if !tools_present("without_the_flag_v2_is_not_served") {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "v2-off");
    for path in ["/v2/keys/a", "/v2/members", "/v2/machines", "/v2/stats/self"] {
        let (status, _, body) = http(&detcd.endpoint, "GET", path, "", false);
        assert_eq!((status, body.as_str()), (404, "404 page not found\n"), "{path}");
    }
}
