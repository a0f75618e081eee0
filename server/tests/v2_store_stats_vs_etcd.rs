//! `/v2/stats/store` against etcd 3.4's (`--enable-v2`): a fixed sequence of v2
//! operations (sets, gets local and quorum, creates, updates, compare-and-swap and
//! -delete, deletes, each succeeding and failing, counted as etcd counts them, some
//! failures as successes; a set and a create under a file; a form error; a member
//! list; a key expiring) run against a real etcd and against detcd, and how much
//! each counter moved compared; then `watchers` while a wait is pending and after
//! it is answered.
//!
//! Deltas, not absolute counts: etcd's writes of its own records (members added
//! and published, the cluster version) count as detcd's do, but its local reads of
//! them at start-up count as failed gets, which detcd has not.
//!
//! Then the counts across a restart from a snapshot (`--snapshot-count 1`, and v3
//! puts after the v2 requests so that a snapshot holds them all): etcd's store
//! snapshot keeps its statistics, so the counts come back (plain gets included,
//! which only the snapshot can carry), and the restart adds its publish.
//!
//! Skipped (with a notice) without `etcd` and `curl` on PATH, a failure under CI.

#[path = "support/v2_norm.rs"]
mod v2_norm;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use detcd_testkit::{etcdctl_ok, free_port, member_command, on_path, start_server_with, wait_healthy};

/// `curl -X method` with `form`; the HTTP status.
fn curl(endpoint: &str, method: &str, path: &str, form: &str) -> u16 {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
        "-X",
        method,
    ]);
    if !form.is_empty() {
        c.args(["--data-binary", form]);
    }
    let out = c
        .arg(format!("http://{endpoint}{path}"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// `/v2/stats/store` as field -> count.
fn stats(endpoint: &str) -> BTreeMap<String, i64> {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            &format!("http://{endpoint}/v2/stats/store"),
        ])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    inner
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            Some((k.trim_matches('"').to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn delta(after: &BTreeMap<String, i64>, before: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

/// The sequence; the counters' deltas, then `watchers` while a wait is pending and
/// after it was answered.
fn session(endpoint: &str) -> (BTreeMap<String, i64>, i64, i64) {
    // The member added and published, the cluster version set: counting starts after.
    assert_eq!(
        v2_norm::settle(endpoint, 3),
        3,
        "{endpoint}: the store's index at start"
    );
    let before = stats(endpoint);
    let steps: &[(&str, &str, &str, u16)] = &[
        ("PUT", "/v2/keys/a", "value=1", 201),
        ("PUT", "/v2/keys/a/b", "value=x", 400),
        ("GET", "/v2/keys/a", "", 200),
        ("GET", "/v2/keys/missing", "", 404),
        ("GET", "/v2/keys/a?quorum=true", "", 200),
        ("GET", "/v2/keys/missing?quorum=true", "", 404),
        ("PUT", "/v2/keys/c?prevExist=false", "value=1", 201),
        ("PUT", "/v2/keys/c?prevExist=false", "value=1", 412),
        ("POST", "/v2/keys/q", "value=1", 201),
        ("POST", "/v2/keys/a", "value=1", 400),
        ("PUT", "/v2/keys/a?prevExist=true", "value=2", 200),
        ("PUT", "/v2/keys/nope?prevExist=true", "value=2", 404),
        ("PUT", "/v2/keys/a?prevValue=2", "value=3", 200),
        ("PUT", "/v2/keys/a?prevValue=9", "value=4", 412),
        ("PUT", "/v2/keys/a?prevIndex=1&prevExist=true", "value=4", 412),
        ("DELETE", "/v2/keys/a?prevValue=9", "", 412),
        ("DELETE", "/v2/keys/a?prevValue=3", "", 200),
        ("DELETE", "/v2/keys/gone?prevValue=1", "", 404),
        ("DELETE", "/v2/keys/c", "", 200),
        ("DELETE", "/v2/keys/c", "", 404),
        ("PUT", "/v2/keys/dir?dir=true", "", 201),
        ("DELETE", "/v2/keys/dir", "", 403),
        ("PUT", "/v2/keys/bad", "value=1&ttl=abc", 400),
        ("PUT", "/v2/keys/t", "value=1&ttl=1", 201),
        ("GET", "/v2/members", "", 200),
    ];
    for (method, path, form, status) in steps {
        assert_eq!(
            curl(endpoint, method, path, form),
            *status,
            "{method} {path} {form}"
        );
    }
    // The key with a TTL expires at the leader's next sync.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats(endpoint)["expireCount"] <= before["expireCount"] {
        assert!(Instant::now() < deadline, "t did not expire");
        std::thread::sleep(Duration::from_millis(100));
    }
    let counts = delta(&stats(endpoint), &before);
    // A pending wait is a watcher until answered.
    let mut wait: Child = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            &format!("http://{endpoint}/v2/keys/w?wait=true"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("run curl");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pending = stats(endpoint)["watchers"];
    while pending == before["watchers"] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        pending = stats(endpoint)["watchers"];
    }
    assert_eq!(curl(endpoint, "PUT", "/v2/keys/w", "value=1"), 201);
    wait.wait().expect("wait answered");
    // etcd drops an answered watcher at once; detcd when its poll sends the event.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = stats(endpoint)["watchers"];
    while after != before["watchers"] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = stats(endpoint)["watchers"];
    }
    (counts, pending - before["watchers"], after - before["watchers"])
}

#[test]
fn store_stats_count_as_etcds() {
    if !(on_path("etcd") && on_path("curl")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcd and curl are required under CI (apt-get install etcd-server curl)"
        );
        eprintln!("NOTICE: etcd/curl not on PATH; skipping store_stats_count_as_etcds");
        return;
    }
    let etcd34 = v2_norm::etcd34().expect("etcd 3.4 (etcd --version) on PATH or at /usr/bin/etcd");
    let etcd = start_server_with(&etcd34, "v2-stats-etcd", &["--enable-v2"]);
    let expected = session(&etcd.endpoint);
    drop(etcd);
    let detcd = start_server_with(env!("CARGO_BIN_EXE_detcd"), "v2-stats-detcd", &["--enable-v2"]);
    let got = session(&detcd.endpoint);
    assert_eq!(got, expected);
    // The sequence reached what it is about.
    let (counts, pending, _) = &got;
    assert_eq!(counts.len(), 16, "{counts:?}");
    assert!(
        counts.iter().all(|(k, v)| *v > 0 || k == "watchers"),
        "{counts:?}"
    );
    assert_eq!(*pending, 1);
}

/// `program` as a single member on `dir` with a snapshot every entry or two.
fn start_member(program: &str, dir: &std::path::Path, ports: (u16, u16)) -> Child {
    let client_url = format!("http://127.0.0.1:{}", ports.0);
    let peer_url = format!("http://127.0.0.1:{}", ports.1);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("log file");
    let child = member_command(program, "n1", &dir.join("data"), &client_url, &peer_url)
        .args(["--initial-cluster", &format!("n1={peer_url}")])
        .args(["--enable-v2", "--snapshot-count", "1"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    wait_healthy(&format!("127.0.0.1:{}", ports.0));
    child
}

/// The counts just before a stop and after the restart (once it published).
fn restart_session(program: &str, tag: &str) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let dir = std::env::temp_dir().join(format!("detcd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ports = (free_port(), free_port());
    let endpoint = format!("127.0.0.1:{}", ports.0);
    let mut child = start_member(program, &dir, ports);
    assert_eq!(
        v2_norm::settle(&endpoint, 3),
        3,
        "{program}: the store's index at start"
    );
    let steps: &[(&str, &str, &str, u16)] = &[
        ("PUT", "/v2/keys/a", "value=1", 201),
        ("GET", "/v2/keys/a", "", 200),
        ("GET", "/v2/keys/missing", "", 404),
        ("GET", "/v2/keys/a?quorum=true", "", 200),
        ("PUT", "/v2/keys/c?prevExist=false", "value=1", 201),
        ("PUT", "/v2/keys/c?prevExist=false", "value=1", 412),
        ("PUT", "/v2/keys/a?prevExist=true", "value=2", 200),
        ("PUT", "/v2/keys/a?prevValue=9", "value=3", 412),
        ("DELETE", "/v2/keys/a?prevValue=2", "", 200),
        ("DELETE", "/v2/keys/c", "", 200),
        ("DELETE", "/v2/keys/c", "", 404),
    ];
    for (method, path, form, status) in steps {
        assert_eq!(
            curl(&endpoint, method, path, form),
            *status,
            "{method} {path} {form}"
        );
    }
    for i in 0..4 {
        etcdctl_ok(&endpoint, &["put", &format!("k{i}"), "v"]);
    }
    let before = stats(&endpoint);
    let _ = child.kill();
    let _ = child.wait();
    let mut child = start_member(program, &dir, ports);
    // Its publish counts a set (on counts that came back, or on none: the
    // caller's comparison then shows which).
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats(&endpoint).get("setsSuccess").copied().unwrap_or(0) <= before["setsSuccess"]
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = stats(&endpoint);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    (before, after)
}

#[test]
fn store_stats_survive_a_restart_from_a_snapshot_as_etcds() {
    if !(on_path("etcd") && on_path("etcdctl") && on_path("curl")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcd, etcdctl and curl are required under CI (apt-get install etcd-server etcd-client curl)"
        );
        eprintln!("NOTICE: etcd/etcdctl/curl not on PATH; skipping store_stats_survive_a_restart_from_a_snapshot_as_etcds");
        return;
    }
    let etcd34 = v2_norm::etcd34().expect("etcd 3.4 (etcd --version) on PATH or at /usr/bin/etcd");
    let (etcd_before, etcd_after) = restart_session(&etcd34, "v2-stats-restart-etcd");
    let (before, after) = restart_session(env!("CARGO_BIN_EXE_detcd"), "v2-stats-restart-detcd");
    // Every count came back; the restart published once more.
    let mut expected = before.clone();
    *expected.get_mut("setsSuccess").expect("setsSuccess") += 1;
    assert_eq!(after, expected, "detcd before the restart: {before:?}");
    // etcd's too, and its start-up reads of its own records count gets besides.
    let gets = |k: &str| k.starts_with("gets");
    let moved = delta(&etcd_after, &etcd_before);
    assert!(moved.values().all(|&n| n >= 0), "{moved:?}");
    let others = |m: &BTreeMap<String, i64>| -> BTreeMap<String, i64> {
        m.iter()
            .filter(|(k, _)| !gets(k))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    assert_eq!(others(&moved), others(&delta(&after, &before)));
    // The sequence counted something in each field it is about, as etcd's did.
    assert!(
        before["getsSuccess"] > 0 && before["compareAndSwapFail"] > 0 && before["deleteFail"] > 0,
        "{before:?}"
    );
    assert_eq!(
        others(&delta(&before, &BTreeMap::new())),
        others(&delta(&etcd_before, &BTreeMap::new())),
        "the counts before the restart"
    );
}
