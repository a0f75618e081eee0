//! The real etcdctl 3.4 with `ETCDCTL_API=2` against etcd 3.4 `--enable-v2` and
//! against detcd `--enable-v2`: set, get, mk, mkdir, rmdir, rm (`--dir`,
//! `--recursive`), ls (`--recursive`), update, updatedir, watch (`--after-index`,
//! and a wait for another client's write), exec-watch, member list / update /
//! remove / add and cluster-health. Each command's exit status, stdout and stderr
//! are compared, v2 indexes as they are (the first write at 4 on both), member IDs
//! and ports masked.
//!
//! Skipped (with a notice) without `etcd` or `etcdctl` on PATH, a failure under CI.

#[path = "support/v2_norm.rs"]
mod v2_norm;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use detcd_testkit::{on_path, start_server_with};

fn ctl(endpoint: &str, args: &[&str]) -> Command {
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "2")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints=http://{endpoint}"))
        .args(args);
    c
}

/// Runs etcdctl, stopped after 10 s (a wait that never ends fails its step, not the run).
fn run(endpoint: &str, args: &[&str]) -> Output {
    let mut child = ctl(endpoint, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("etcdctl status").is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().expect("etcdctl output")
}

/// The Modified-Index that `-o extended` printed.
fn modified_index(out: &Output) -> u64 {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("Modified-Index: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no index in {text:?} {:?}", out.stderr))
}

/// Member IDs (16 hex digits or fewer after "ID " / before ":") masked.
fn mask_ids(text: &str, ids: &[String]) -> String {
    let mut t = text.to_string();
    for id in ids {
        t = t.replace(id.as_str(), "<id>");
    }
    t
}

struct Session<'a> {
    endpoint: &'a str,
    offset: u64,
    ids: Vec<String>,
    steps: Vec<String>,
}

impl Session<'_> {
    fn normalize(&self, text: &str) -> String {
        let f = |n: u64| if n > self.offset { n - self.offset } else { n };
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                for label in ["Created-Index: ", "Modified-Index: ", "Index: "] {
                    if let Some(n) = line.strip_prefix(label).and_then(|n| n.parse::<u64>().ok()) {
                        return format!("{label}{}", f(n));
                    }
                }
                // Errors end with the store index: "Error:  100: Key not found (/x) [12]".
                if let (true, Some(open)) = (line.starts_with("Error:"), line.rfind('[')) {
                    if let Some(n) = line[open + 1..]
                        .strip_suffix(']')
                        .and_then(|n| n.parse::<u64>().ok())
                    {
                        return format!("{}[{}]", &line[..open], f(n));
                    }
                }
                // The order of the members etcdctl prints follows their random IDs.
                if let Some(list) = line.strip_prefix("ETCD_INITIAL_CLUSTER=") {
                    let mut parts: Vec<&str> = list.trim_matches('"').split(',').collect();
                    parts.sort_by_key(|p| p.split('=').next().unwrap_or("").to_string());
                    return v2_norm::mask_ports(&format!("ETCD_INITIAL_CLUSTER=\"{}\"", parts.join(",")));
                }
                v2_norm::body(line, self.offset)
            })
            .collect();
        mask_ids(&v2_norm::mask_ports(&lines.join("\n")), &self.ids)
    }

    fn record(&mut self, label: &str, out: &Output) {
        let label = self.normalize(label);
        let stdout = self.normalize(&String::from_utf8_lossy(&out.stdout));
        let stderr = self.normalize(&String::from_utf8_lossy(&out.stderr));
        self.steps.push(format!(
            "{label}: exit {:?}\n  out: {stdout}\n  err: {stderr}",
            out.status.code()
        ));
    }

    fn step(&mut self, args: &[&str]) {
        self.step_as(&args.join(" "), args);
    }

    /// A step under its own label; retried while the cluster is briefly
    /// unavailable (an election on a loaded machine), which both servers can be.
    fn step_as(&mut self, label: &str, args: &[&str]) {
        let mut out = run(self.endpoint, args);
        for _ in 0..3 {
            if !String::from_utf8_lossy(&out.stderr).contains("etcd cluster is unavailable") {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            out = run(self.endpoint, args);
        }
        self.record(label, &out);
    }

    /// [`Session::step`] with the output's lines sorted once IDs are masked.
    fn step_sorted(&mut self, args: &[&str]) {
        let out = run(self.endpoint, args);
        let sorted = |bytes: &[u8]| {
            let text = self.normalize(&String::from_utf8_lossy(bytes));
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort_unstable();
            lines.join("\n")
        };
        let (stdout, stderr) = (sorted(&out.stdout), sorted(&out.stderr));
        self.steps.push(format!(
            "{} (lines sorted): exit {:?}\n  out: {stdout}\n  err: {stderr}",
            args.join(" "),
            out.status.code()
        ));
    }

    /// `args` run while another etcdctl writes `key`=`value` after a moment;
    /// a command that does not end by itself is stopped after `linger_ms`.
    fn step_with_writer(&mut self, args: &[&str], key: &str, value: &str, linger_ms: u64) {
        let mut child = ctl(self.endpoint, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcdctl");
        std::thread::sleep(Duration::from_millis(700));
        let write = run(self.endpoint, &["set", key, value]);
        assert!(write.status.success());
        std::thread::sleep(Duration::from_millis(linger_ms));
        let _ = child.kill();
        let out = child.wait_with_output().expect("etcdctl output");
        self.record(&args.join(" "), &out);
    }
}

fn session(endpoint: &str) -> Vec<String> {
    assert_eq!(
        v2_norm::settle(endpoint, 3),
        3,
        "{endpoint}: the store's index at start"
    );
    let index = modified_index(&run(endpoint, &["-o", "extended", "set", "/base", "b"]));
    assert_eq!(index, 4, "the first write after the cluster's own three records");
    let members: serde_json::Value = serde_json::from_slice(
        &Command::new("curl")
            .args(["-s", &format!("http://{endpoint}/v2/members")])
            .output()
            .expect("curl")
            .stdout,
    )
    .expect("members json");
    let own_id = members["members"][0]["id"].as_str().expect("id").to_string();
    let peer = members["members"][0]["peerURLs"][0]
        .as_str()
        .expect("peer")
        .to_string();
    let mut s = Session {
        endpoint,
        // Indexes are compared as they are.
        offset: 0,
        ids: vec![own_id.clone()],
        steps: Vec::new(),
    };
    s.step(&["set", "/x/y", "hello"]);
    s.step(&["get", "/x/y"]);
    s.step(&["mk", "/x/z", "v"]);
    s.step(&["mk", "/x/z", "v"]);
    s.step(&["mkdir", "/d1"]);
    s.step(&["mkdir", "/d1"]);
    s.step(&["rmdir", "/d1"]);
    s.step(&["rmdir", "/x"]);
    s.step(&["ls", "--sort", "--recursive", "/"]);
    s.step(&["ls", "--sort", "-p", "/x"]);
    s.step(&["update", "/x/y", "h2"]);
    s.step(&["update", "/nope", "v"]);
    s.step(&["updatedir", "/x", "--ttl", "100"]);
    s.step(&["updatedir", "/x/y", "--ttl", "100"]);
    s.step(&["-o", "json", "get", "/x/y"]);
    s.step(&["-o", "extended", "get", "/x/y"]);
    s.step(&["rm", "/x"]);
    s.step(&["rm", "--dir", "/x"]);
    s.step(&["rm", "--recursive", "/x"]);
    s.step(&["get", "/x/y"]);
    s.step(&["set", "--ttl", "50", "/t", "v"]);
    s.step(&["-o", "extended", "get", "/t"]);
    s.step(&["set", "--swap-with-value", "v", "/t", "w"]);
    s.step(&["set", "--swap-with-value", "nope", "/t", "w"]);
    s.step(&["rm", "--with-value", "nope", "/t"]);
    s.step(&["rm", "--with-value", "w", "/t"]);
    // Error cases of the everyday commands, each with etcdctl's exit status.
    s.step(&["ls", "/nope"]);
    s.step(&["rm", "/nope"]);
    s.step(&["rmdir", "/nope"]);
    s.step(&["updatedir", "/nope", "--ttl", "5"]);
    s.step(&["mkdir", "/e1"]);
    s.step(&["get", "/e1"]);
    s.step(&["set", "/e1", "v"]);
    s.step(&["mkdir", "/e1/k/deeper"]);
    s.step(&["set", "/e1/k", "v"]);
    s.step(&["mkdir", "/e1/k/deeper"]);
    s.step(&["ls", "--recursive", "/e1"]);
    s.step(&["-o", "extended", "set", "--swap-with-index", "1", "/e1/k", "w"]);
    s.step(&["mk", "--in-order", "/q", "first"]);
    s.step(&["ls", "/q"]);
    s.step(&["rm", "--recursive", "/e1"]);
    let one = run(endpoint, &["-o", "extended", "set", "/w", "one"]);
    s.record("set /w one", &one);
    let after = modified_index(&one).to_string();
    s.step(&["set", "/w", "two"]);
    s.step_as(
        "watch --after-index <set one> /w",
        &["watch", "--after-index", &after, "/w"],
    );
    s.step_with_writer(&["watch", "/w2"], "/w2", "live", 1_000);
    s.step_with_writer(&["watch", "--recursive", "/wd"], "/wd/k", "deep", 1_000);
    // (etcdctl 3.4's exec-watch of a single key never fires, on etcd too: watch a directory.)
    s.step_with_writer(
        &[
            "exec-watch",
            "--recursive",
            "/ew",
            "--",
            "sh",
            "-c",
            "echo $ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE",
        ],
        "/ew/k",
        "ran",
        1_000,
    );
    s.step(&["member", "list"]);
    s.step(&["cluster-health"]);
    s.step(&["member", "update", &own_id, &peer]);
    s.step(&["member", "remove", "abc"]);
    s.step(&["member", "remove", "1234"]);
    s.step(&["member", "update", "1234", "http://127.0.0.1:1"]);
    s.step(&["member", "add", "dup", &peer]);
    // Last: a second voter that never starts takes the quorum away.
    let added = run(endpoint, &["member", "add", "n2", "http://127.0.0.1:1"]);
    let text = String::from_utf8_lossy(&added.stdout).into_owned();
    if let Some(id) = text
        .split("with ID ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
    {
        s.ids.push(id.to_string());
    }
    s.record("member add n2", &added);
    // The added member never starts: listed unstarted, the cluster no longer healthy.
    // (etcdctl prints members in the order of their random IDs: lines compared sorted.)
    s.step_sorted(&["member", "list"]);
    s.step_sorted(&["cluster-health"]);
    s.steps
}

#[test]
fn etcdctl_v2_commands_match_etcd() {
    if !(on_path("etcd") && on_path("etcdctl") && on_path("curl")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcd, etcdctl and curl are required under CI (apt-get install etcd-server etcd-client curl)"
        );
        eprintln!("NOTICE: etcd/etcdctl/curl not on PATH; skipping etcdctl_v2_commands_match_etcd");
        return;
    }
    let etcd34 = v2_norm::etcd34().expect("etcd 3.4 (etcd --version) on PATH or at /usr/bin/etcd");
    let etcd = start_server_with(&etcd34, "ctl2-etcd", &["--enable-v2"]);
    let expected = session(&etcd.endpoint);
    drop(etcd);
    let detcd = start_server_with(env!("CARGO_BIN_EXE_detcd"), "ctl2-detcd", &["--enable-v2"]);
    let got = session(&detcd.endpoint);
    assert_eq!(expected.len(), got.len());
    let failures: Vec<String> = expected
        .iter()
        .zip(&got)
        .filter(|(e, g)| e != g)
        .map(|(e, g)| format!("etcd:  {e}\ndetcd: {g}"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} steps differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let all = got.join("\n");
    for wanted in [
        "out: two",
        "out: live",
        "out: [set] /wd/k\ndeep",
        "out: set /ew/k ran",
        "cluster is healthy",
    ] {
        assert!(all.contains(wanted), "{wanted:?} missing from:\n{all}");
    }
}

/// v2 auth is not implemented (the README says so): every `/v2/auth` path answers 501
/// with a JSON message in etcd's HTTPError form, and etcdctl's v2 auth commands fail.
#[test]
fn v2_auth_answers_not_implemented() {
    if !detcd_testkit::require_tools(&["etcdctl", "curl"], "v2_auth_answers_not_implemented") {
        return;
    }
    let detcd = start_server_with(env!("CARGO_BIN_EXE_detcd"), "ctl2-auth", &["--enable-v2"]);
    for (method, path) in [
        ("GET", "/v2/auth/enable"),
        ("PUT", "/v2/auth/enable"),
        ("GET", "/v2/auth/users"),
        ("PUT", "/v2/auth/users/alice"),
        ("GET", "/v2/auth/roles/root"),
    ] {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-X", method])
            .arg(format!("http://{}{path}", detcd.endpoint))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        assert_eq!(code, "501", "{method} {path}: {text}");
        let v: serde_json::Value = serde_json::from_str(body).expect("json body");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("v2 auth is not supported"),
            "{method} {path}: {body}"
        );
    }
    for args in [&["auth", "enable"][..], &["user", "list"], &["role", "list"]] {
        let out = run(&detcd.endpoint, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("[Not Implemented]"), "{args:?}: {err}");
    }
    // The keys API itself is unaffected.
    assert!(run(&detcd.endpoint, &["set", "/k", "v"]).status.success());
}
