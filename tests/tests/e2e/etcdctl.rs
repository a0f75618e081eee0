//! The real etcdctl (Debian's etcd-client, etcd 3.4) runs the same session of everyday
//! commands against detcd and against Debian's etcd-server; stdout, stderr (without the
//! client library's JSON log lines) and exit status must match once what legitimately
//! differs is masked: endpoints, member and cluster IDs, raft terms, lease IDs and
//! timings. Skipped with a notice when `etcd` or `etcdctl` is not on PATH (CI installs
//! both; see .ci/run).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use detcd_testkit::{on_path, start_server};

use super::harness::{test_dir, Cluster};

/// Every command of the session, with its stdin.
const SESSION: &[(&[&str], &str)] = &[
    (&["put", "foo", "bar"], ""),
    (&["put", "foo2", "baz"], ""),
    (&["put", "--prev-kv", "foo", "bar2"], ""),
    (&["get", "foo"], ""),
    (&["get", "--prefix", "foo"], ""),
    (&["get", "--prefix", "--keys-only", "foo"], ""),
    (&["get", "--print-value-only", "foo"], ""),
    (&["get", "--prefix", "--limit", "1", "foo", "-w", "json"], ""),
    (&["get", "--from-key", "a"], ""),
    (
        &["get", "--prefix", "--sort-by=VALUE", "--order=DESCEND", "foo"],
        "",
    ),
    (&["get", "--prefix", "--count-only", "foo", "-w", "json"], ""),
    (&["get", "--rev", "2", "foo"], ""),
    (&["get", "missing"], ""),
    (&["get", "foo", "-w", "fields"], ""),
    (
        &["txn"],
        "value(\"foo\") = \"bar2\"\n\nput foo3 x\nget foo\n\nput foo3 y\n\n",
    ),
    (&["txn"], "mod(\"foo\") > \"100\"\n\nput foo3 z\n\nget foo3\n\n"),
    (&["del", "foo2"], ""),
    (&["del", "--prev-kv", "foo3"], ""),
    (&["del", "nothing"], ""),
    (&["del", "--prefix", "zzz"], ""),
    (&["compaction", "3"], ""),
    (&["get", "--rev", "2", "foo"], ""),
    (&["compaction", "1000"], ""),
    (&["lease", "grant", "100"], ""),
    (&["lease", "list"], ""),
    (&["lease", "revoke", "1234"], ""),
    (&["lease", "timetolive", "1234"], ""),
    (&["endpoint", "health"], ""),
    (&["alarm", "list"], ""),
    (&["defrag"], ""),
    (&["snapshot", "save", "snap.db"], ""),
    (&["put", "k"], ""),
    (&["get", ""], ""),
];

/// Commands that dial one endpoint directly instead of going through the client's
/// balancer; their outputs hold what differs between servers (versions, sizes, hashes),
/// so each server is compared with itself across the two endpoint spellings.
const DIAL_ONE: &[&[&str]] = &[
    &["endpoint", "status"],
    &["endpoint", "status", "-w", "json"],
    &["endpoint", "hashkv"],
    &["endpoint", "health"],
    &["defrag"],
    &["move-leader", "MEMBER"],
    &["snapshot", "save", "dial.db"],
];

/// Runs [`DIAL_ONE`] against `endpoint` (host:port) written both ways: every command must
/// succeed both times, with the same output once the spelling is masked. `MEMBER` stands
/// for the member's own ID (a single member moves its leadership to itself).
fn dial_one_endpoint(endpoint: &str, cwd: &Path) -> Vec<String> {
    let (_, status, _) = etcdctl_raw(endpoint, cwd, &["endpoint", "status"]);
    let member = status.split(", ").nth(1).unwrap_or("").to_string();
    let mut problems = Vec::new();
    for args in DIAL_ONE {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "MEMBER" { member.as_str() } else { a })
            .collect();
        let url = format!("http://{endpoint}");
        let plain = etcdctl_raw(endpoint, cwd, &args);
        let with_scheme = etcdctl_raw(&url, cwd, &args);
        let norm = |(code, out, err): (i32, String, String), ep: &str| {
            let m = |s: String| mask_after(&s.replace(ep, "ENDPOINT"), "took = ");
            (code, m(out), m(err))
        };
        let (plain, with_scheme) = (norm(plain, endpoint), norm(with_scheme, &url));
        if plain.0 != 0 || plain != with_scheme {
            problems.push(format!(
                "etcdctl {} on {endpoint}\n  host:port: {plain:?}\n  http://:   {with_scheme:?}",
                args.join(" ")
            ));
        }
    }
    problems
}

/// (exit code, stdout, stderr) of one etcdctl command, with what differs between servers
/// masked.
fn etcdctl(endpoint: &str, cwd: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let (code, stdout, stderr) = run_etcdctl(endpoint, cwd, args, stdin);
    (code, mask(&stdout, endpoint), mask(&stderr, endpoint))
}

/// (exit code, stdout, stderr) of one etcdctl command, unmasked.
fn etcdctl_raw(endpoint: &str, cwd: &Path, args: &[&str]) -> (i32, String, String) {
    run_etcdctl(endpoint, cwd, args, "")
}

fn run_etcdctl(endpoint: &str, cwd: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new("etcdctl")
        .current_dir(cwd)
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait");
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// Masks what differs between two servers: the endpoint, IDs, terms, lease IDs, timings.
fn mask(s: &str, endpoint: &str) -> String {
    let s = s.replace(endpoint, "ENDPOINT");
    let mut out = String::new();
    for token in split_keep(&s) {
        let hex16 = token.len() == 16 && token.chars().all(|c| c.is_ascii_hexdigit());
        out.push_str(if hex16 { "HEX16" } else { token });
    }
    let mut s = out;
    for key in [
        "\"cluster_id\":",
        "\"member_id\":",
        "\"raft_term\":",
        "\"ID\":",
        "\"ClusterID\" : ",
        "\"MemberID\" : ",
        "\"RaftTerm\" : ",
        "took = ",
    ] {
        s = mask_after(&s, key);
    }
    s
}

/// Splits into alternating runs of alphanumerics and of everything else.
fn split_keep(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut alnum = None;
    for (i, c) in s.char_indices() {
        let a = c.is_ascii_alphanumeric();
        if alnum.is_some_and(|p| p != a) {
            parts.push(&s[start..i]);
            start = i;
        }
        alnum = Some(a);
    }
    parts.push(&s[start..]);
    parts
}

/// Replaces the token after each `key` (up to a delimiter) with `N`.
fn mask_after(s: &str, key: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        rest = &rest[i + key.len()..];
        let end = rest.find([',', '}', '\n', ' ']).unwrap_or(rest.len());
        out.push('N');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn wait_healthy(endpoint: &str, cwd: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while etcdctl(endpoint, cwd, &["put", "/ready", "1"], "").0 != 0 {
        assert!(Instant::now() < deadline, "{endpoint} did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    etcdctl(endpoint, cwd, &["del", "/ready"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_session_matches_etcd() {
    if !on_path("etcd") || !on_path("etcdctl") {
        // CI installs both (.ci/run): there a missing tool is a failure, not a pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "etcd and etcdctl are required under CI (apt-get install etcd-server etcd-client)"
        );
        eprintln!(
            "skipped: etcd and etcdctl are not on PATH (Debian: apt-get install etcd-server etcd-client)"
        );
        return;
    }
    let cluster = Cluster::start("etcdctl", 1).await;
    let dir = test_dir("etcdctl-etcd");
    let (etcd_dir, detcd_dir) = (dir.join("etcd-cwd"), dir.join("detcd-cwd"));
    std::fs::create_dir_all(&etcd_dir).expect("dir");
    std::fs::create_dir_all(&detcd_dir).expect("dir");
    let etcd = tokio::task::spawn_blocking(|| start_server("etcd", "e2e-etcdctl"))
        .await
        .expect("start etcd");
    let etcd_ep = etcd.endpoint.clone();
    let detcd_ep = format!("127.0.0.1:{}", cluster.members[0].client_port);
    let (e, d) = (etcd_ep.clone(), detcd_ep.clone());
    let (ed, dd) = (etcd_dir.clone(), detcd_dir.clone());
    let mismatches = tokio::task::spawn_blocking(move || {
        wait_healthy(&e, &ed);
        wait_healthy(&d, &dd);
        // The readiness probe wrote and deleted a key on each: the same revisions follow.
        // The session runs twice: endpoints as host:port, then as URLs (etcdctl's Go client
        // sends a URL endpoint as the HTTP/2 authority; commands that dial one endpoint
        // failed on detcd with it once).
        let mut mismatches = Vec::new();
        for scheme in ["", "http://"] {
            let (e, d) = (format!("{scheme}{e}"), format!("{scheme}{d}"));
            for (args, stdin) in SESSION {
                let want = etcdctl(&e, &ed, args, stdin);
                let got = etcdctl(&d, &dd, args, stdin);
                if want != got {
                    mismatches.push(format!(
                        "etcdctl --endpoints={scheme}... {}\n  etcd:  {want:?}\n  detcd: {got:?}",
                        args.join(" ")
                    ));
                }
            }
        }
        mismatches.extend(dial_one_endpoint(&e, &ed));
        mismatches.extend(dial_one_endpoint(&d, &dd));
        mismatches
    })
    .await
    .expect("session");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        mismatches.is_empty(),
        "{} of {} commands differ:\n{}",
        mismatches.len(),
        2 * SESSION.len() + 2 * DIAL_ONE.len(),
        mismatches.join("\n")
    );
}
