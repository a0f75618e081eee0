//! The log lines that tools and scripts wait for, against etcd's: a single etcd 3.4
//! (`--logger=zap`), a single etcd 3.5.1 and a single detcd start, serve and stop on
//! SIGTERM; each lifecycle message appears in each log with the same `msg` text and the
//! same field names (etcd's `caller` and detcd's `logger` aside), and `signal` says
//! `terminated` in all three. (etcd 3.4's zap logger has no "ready to serve client
//! requests" line; 3.5's has, and so has detcd's.)
//!
//! Skipped (with a notice) without `etcd` and `etcdctl` on PATH or etcd 3.5's binaries, a
//! failure under CI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use detcd_testkit::{etcd35_dir, free_port, member_command, require_tools};

const LIFECYCLE: &[&str] = &[
    "published local member to cluster through raft",
    "enabled capabilities for version",
    "ready to serve client requests",
    "serving client traffic insecurely; this is strongly discouraged!",
    "received signal; shutting down",
    "closing etcd server",
    "closed etcd server",
];

/// Runs `program` as a one-member cluster until it is ready, stops it with SIGTERM and
/// returns its log.
fn run_and_stop(program: &Path, tag: &str, extra: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!("detcd-lifecycle-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log_path = dir.join("log");
    let mut child = member_command(
        program.to_str().expect("path"),
        "n1",
        &dir.join("data"),
        &client_url,
        &peer_url,
    )
    .args(["--initial-cluster", &format!("n1={peer_url}")])
    .args(extra)
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log_path).expect("log"))
    .spawn()
    .expect("spawn");
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    // etcd 3.4 logs "ready to serve client requests" only with capnslog; all three log
    // these two once they serve.
    let serving = |log: &str| {
        log.contains("\"msg\":\"enabled capabilities for version\"")
            && log.contains("\"msg\":\"serving client traffic insecurely")
    };
    while !serving(&read(&log_path)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{tag} did not become ready:\n{}", read(&log_path));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    // etcd ends by raising the signal again once it has shut down; detcd exits 0.
    use std::os::unix::process::ExitStatusExt;
    let etcd_way = tag.starts_with("etcd") && status.signal() == Some(15);
    assert!(
        status.success() || etcd_way,
        "{tag}: {status:?}\n{}",
        read(&log_path)
    );
    let log = read(&log_path);
    let _ = std::fs::remove_dir_all(&dir);
    log
}

/// The top-level keys of one JSON object line, in order.
fn keys(line: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut current = String::new();
    let mut last_string = None;
    for c in line.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    in_string = false;
                    last_string = Some(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
            current.push(c);
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ':' if depth == 1 => keys.extend(last_string.take()),
            _ => last_string = None,
        }
    }
    keys
}

/// The line with `"msg":"<message>"`, if any.
fn line_of<'a>(log: &'a str, message: &str) -> Option<&'a str> {
    let needle = format!("\"msg\":\"{message}\"");
    log.lines().find(|l| l.contains(&needle))
}

fn fields(line: &str) -> BTreeSet<String> {
    keys(line)
        .into_iter()
        .filter(|k| !["level", "ts", "caller", "logger", "msg"].contains(&k.as_str()))
        .collect()
}

#[test]
fn lifecycle_lines_have_etcds_words_and_fields() {
    if !require_tools(
        &["etcd", "etcdctl"],
        "lifecycle_lines_have_etcds_words_and_fields",
    ) {
        return;
    }
    let Some(etcd35) = etcd35_dir() else {
        return;
    };
    let etcd34 = run_and_stop(Path::new("etcd"), "etcd34", &["--logger=zap"]);
    let etcd35 = run_and_stop(&etcd35.join("etcd"), "etcd35", &[]);
    let detcd = run_and_stop(Path::new(env!("CARGO_BIN_EXE_detcd")), "detcd", &[]);
    for message in LIFECYCLE {
        let ours =
            line_of(&detcd, message).unwrap_or_else(|| panic!("detcd did not log {message:?}:\n{detcd}"));
        for (version, log) in [("3.4", &etcd34), ("3.5", &etcd35)] {
            if version == "3.4" && *message == "ready to serve client requests" {
                // 3.4 writes this line only with its deprecated capnslog logger.
                assert!(line_of(log, message).is_none(), "{log}");
                continue;
            }
            let theirs = line_of(log, message)
                .unwrap_or_else(|| panic!("etcd {version} did not log {message:?}:\n{log}"));
            assert_eq!(
                fields(ours),
                fields(theirs),
                "{message:?}: detcd's fields against etcd {version}'s\n{ours}\n{theirs}"
            );
        }
    }
    for log in [&etcd34, &etcd35, &detcd] {
        let line = line_of(log, "received signal; shutting down").expect("signal line");
        assert!(line.contains("\"signal\":\"terminated\""), "{line}");
        // The bound socket's address, not the URL.
        let line = line_of(log, LIFECYCLE[3]).expect("serving line");
        assert!(line.contains("\"address\":\"127.0.0.1:"), "{line}");
    }
    // Timestamps as zap's ISO 8601 in all three.
    for log in [&etcd34, &etcd35, &detcd] {
        let line = line_of(log, "closed etcd server").expect("closed line");
        let ts = line.split("\"ts\":\"").nth(1).expect("a quoted ts");
        assert!(
            ts.len() > 24 && &ts[4..5] == "-" && &ts[10..11] == "T" && &ts[19..20] == ".",
            "{line}"
        );
    }
}

#[test]
fn keys_are_read_at_the_top_level_only() {
    assert_eq!(
        keys(r#"{"a":"x:y","b":["c","d"],"e":{"f":1},"g":"\"h\":"}"#),
        vec!["a", "b", "e", "g"]
    );
}
