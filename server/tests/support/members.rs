//! detcd member processes for the bootstrap tests (DNS SRV, discovery URL, v3
//! discovery): spawned with fast raft timing, killed on drop; and `member list` once
//! every member has started.

// Each test file includes this module and uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running member process, killed on drop.
pub struct Member(pub Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `detcd --name <name> --data-dir <dir>/<name>` with quick elections, small WAL
/// segments, its log in `<dir>/<name>.log`, and `args`.
pub fn detcd(dir: &Path, name: &str, args: &[String]) -> Command {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
    let mut c = Command::new(env!("CARGO_BIN_EXE_detcd"));
    c.env("DETCD_WAL_SEGMENT_BYTES", "1000000")
        .args(["--name", name, "--data-dir"])
        .arg(dir.join(name))
        .args(["--heartbeat-interval", "50", "--election-timeout", "750"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(log);
    c
}

/// `--listen-*` and `--advertise-*` flags for a member on 127.0.0.1 ports.
pub fn loopback_urls(peer: u16, client: u16) -> Vec<String> {
    let peer = format!("http://127.0.0.1:{peer}");
    let client = format!("http://127.0.0.1:{client}");
    vec![
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer,
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
    ]
}

/// A fresh temporary directory.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("detcd-members-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// etcdctl's `member list` lines (sorted) once `n` members have all started.
pub fn wait_for_started(endpoint: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = detcd_testkit::etcdctl_ok(endpoint, &["member", "list"]);
        let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
        lines.sort();
        if lines.len() == n && lines.iter().all(|l| l.contains(", started, ")) {
            return lines;
        }
        assert!(Instant::now() < deadline, "members never all started: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether etcdctl (and `more` tools) are on PATH; without them the test is skipped
/// with a notice, which is a failure under CI.
pub fn tools_present(more: &[&str]) -> bool {
    let tools: Vec<&str> = std::iter::once("etcdctl").chain(more.iter().copied()).collect();
    detcd_testkit::require_tools(&tools, "this test")
}
