//! A restart takes the member's identity from its data directory, as etcd's: a member
//! restarted with another `--initial-cluster-token` keeps its member and cluster IDs,
//! its peer URLs and its keys, and one restarted with an `--initial-cluster` that
//! does not name it is not refused. Run against detcd and, when on PATH, etcd 3.4, and
//! compared (what is compared does not depend on the IDs' values).
//!
//! Needs `etcdctl` on PATH; skipped with a notice without it (under CI a missing tool
//! is a failure).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use detcd_testkit::{etcdctl_ok, free_port, member_command, on_path, wait_healthy};

struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `"key":` in etcdctl's JSON.
fn json_u64(json: &str, key: &str) -> u64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at + key.len() + 3..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// The text of `"key":[...]` in etcdctl's JSON.
fn json_list<'a>(json: &'a str, key: &str) -> &'a str {
    let at = json
        .find(&format!("\"{key}\":["))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at..];
    &rest[..=rest.find(']').expect("list end")]
}

/// What one member shows of itself after a restart with another cluster token.
#[derive(Debug, PartialEq)]
struct Seen {
    same_member_id: bool,
    same_cluster_id: bool,
    /// Restarted once more, with an `--initial-cluster` lacking `--name`.
    same_ids_without_own_name: bool,
    member_count: usize,
    peer_urls: String,
    value: String,
}

fn start(program: &str, dir: &Path, ports: (u16, u16), initial: &str, token: &str, log: &str) -> Proc {
    let (client, peer) = ports;
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.join(log)).expect("log");
    let child = member_command(program, "a", &dir.join("data"), &client_url, &peer_url)
        .args(["--initial-cluster", initial])
        .args(["--initial-cluster-token", token])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start member");
    // Built first, so that a member that never gets healthy is still killed.
    let proc = Proc { child };
    wait_healthy(&format!("127.0.0.1:{client}"));
    proc
}

fn restart_with_another_token(program: &str, tag: &str) -> Seen {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("detcd-restart-identity-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (client, peer) = (free_port(), free_port());
    let endpoint = format!("127.0.0.1:{client}");

    let own = format!("a=http://127.0.0.1:{peer}");
    let first = start(program, &dir, (client, peer), &own, "first-token", "first.log");
    etcdctl_ok(&endpoint, &["put", "k", "v1"]);
    let before = etcdctl_ok(&endpoint, &["member", "list", "-w", "json"]);
    drop(first);

    let second = start(program, &dir, (client, peer), &own, "another-token", "second.log");
    let after = etcdctl_ok(&endpoint, &["member", "list", "-w", "json"]);
    drop(second);
    // Nor is an initial cluster without this member's name refused on a restart.
    let elsewhere = format!("zz=http://127.0.0.1:{}", free_port());
    let third = start(
        program,
        &dir,
        (client, peer),
        &elsewhere,
        "another-token",
        "third.log",
    );
    let third_list = etcdctl_ok(&endpoint, &["member", "list", "-w", "json"]);
    let value = etcdctl_ok(&endpoint, &["get", "k", "--print-value-only"]);
    // The member still serves writes.
    etcdctl_ok(&endpoint, &["put", "k2", "v2"]);
    assert_eq!(
        etcdctl_ok(&endpoint, &["get", "k2", "--print-value-only"]).trim(),
        "v2"
    );
    let seen = Seen {
        same_member_id: json_u64(&before, "member_id") == json_u64(&after, "member_id"),
        same_cluster_id: json_u64(&before, "cluster_id") == json_u64(&after, "cluster_id"),
        same_ids_without_own_name: ["member_id", "cluster_id"]
            .iter()
            .all(|k| json_u64(&before, k) == json_u64(&third_list, k))
            && json_list(&after, "peerURLs") == json_list(&third_list, "peerURLs"),
        member_count: after.matches("\"ID\":").count(),
        peer_urls: json_list(&after, "peerURLs").to_string(),
        value: value.trim().to_string(),
    };
    drop(third);
    let _ = std::fs::remove_dir_all(&dir);
    seen
}

#[test]
fn a_restart_with_another_cluster_token_keeps_the_data_dirs_identity_as_etcd() {
    if !on_path("etcdctl") {
        assert!(std::env::var_os("CI").is_none(), "etcdctl is required under CI");
        eprintln!("NOTICE: etcdctl not on PATH; skipping restart_identity_vs_etcd");
        return;
    }
    let detcd = restart_with_another_token(env!("CARGO_BIN_EXE_detcd"), "detcd");
    assert!(
        detcd.same_member_id && detcd.same_cluster_id && detcd.same_ids_without_own_name,
        "{detcd:?}"
    );
    assert_eq!(detcd.member_count, 1, "{detcd:?}");
    assert!(detcd.peer_urls.contains("http://127.0.0.1:"), "{detcd:?}");
    assert_eq!(detcd.value, "v1");
    if !on_path("etcd") {
        // The comparison with etcd is the point: under CI a missing etcd fails.
        assert!(
            std::env::var_os("CI").is_none(),
            "etcd is required under CI (apt-get install etcd-server)"
        );
        eprintln!("NOTICE: etcd not on PATH; restart_identity_vs_etcd ran detcd alone");
        return;
    }
    let etcd = restart_with_another_token("etcd", "etcd");
    // The ports differ between the two runs; the shape does not.
    let shape = |s: &Seen| Seen {
        peer_urls: s.peer_urls.chars().filter(|c| !c.is_ascii_digit()).collect(),
        value: s.value.clone(),
        ..*s
    };
    assert_eq!(shape(&detcd), shape(&etcd));
}
