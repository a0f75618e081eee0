//! Absolute v2 indexes through membership changes, against etcd 3.4's
//! (`--enable-v2`): etcd's v2 store counts its own records (a member added, each
//! member's publish at every start, the cluster version, a member updated,
//! promoted or removed), so the index a client's write gets depends on the
//! cluster's history. The same history runs on etcd and on detcd, with a client
//! write after each step; the indexes those writes got are compared, and with the
//! numbers etcd 3.4.23 gave by hand (4, 6, 8, 10, 12, 15, 17 for one member; 8 for
//! the first write on a fresh three-member cluster).
//!
//! Skipped (with a notice) without `etcd`, `etcdctl` or `curl` on PATH, a failure under CI.

#[path = "support/v2_norm.rs"]
mod v2_norm;

use std::path::Path;
use std::process::Stdio;

use detcd_testkit::{etcdctl_ok, etcdctl_retry, free_port, member_command};

fn spawn(
    program: &str,
    name: &str,
    dir: &Path,
    client: u16,
    peer: u16,
    cluster: &str,
    state: &str,
) -> v2_norm::Proc {
    std::fs::create_dir_all(dir).expect("member dir");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("log file");
    let child = member_command(
        program,
        name,
        &dir.join(format!("{name}.data")),
        &format!("http://127.0.0.1:{client}"),
        &format!("http://127.0.0.1:{peer}"),
    )
    .args([
        "--initial-cluster",
        cluster,
        "--initial-cluster-state",
        state,
        "--enable-v2",
    ])
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .unwrap_or_else(|e| panic!("start {program}: {e}"));
    v2_norm::Proc(child)
}

/// One member, then a learner added, started, promoted, its peer URLs updated,
/// removed, then the first member restarted: the index of a write after each step.
fn membership_history(program: &str, tag: &str) -> Vec<(String, u64)> {
    let dir = std::env::temp_dir().join(format!("detcd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (c1, p1, c2, p2) = (free_port(), free_port(), free_port(), free_port());
    let n1_cluster = format!("n1=http://127.0.0.1:{p1}");
    let e1 = format!("127.0.0.1:{c1}");
    let mut steps = Vec::new();
    let mut n1 = spawn(program, "n1", &dir, c1, p1, &n1_cluster, "new");
    let settled = v2_norm::settle(&e1, 3);
    assert_eq!(settled, 3, "{program}: a fresh member's records");
    let mut step = |label: &str, before: u64| {
        let index = v2_norm::write(&e1, &label.replace(' ', "-"));
        assert!(index > before, "{program}: {label}");
        steps.push((label.to_string(), index));
        index
    };
    let mut at = step("fresh", settled);
    let added = etcdctl_ok(
        &e1,
        &[
            "member",
            "add",
            "l1",
            "--learner",
            &format!("--peer-urls=http://127.0.0.1:{p2}"),
        ],
    );
    let id = added
        .split_whitespace()
        .nth(1)
        .expect("Member <id> added")
        .to_string();
    at = step("learner added", at);
    let both = format!("{n1_cluster},l1=http://127.0.0.1:{p2}");
    let l1 = spawn(program, "l1", &dir, c2, p2, &both, "existing");
    // The learner's publish.
    v2_norm::settle(&e1, at + 1);
    at = step("learner started", at);
    etcdctl_retry(&e1, &["member", "promote", &id]);
    at = step("promoted", at);
    etcdctl_ok(
        &e1,
        &[
            "member",
            "update",
            &id,
            &format!("--peer-urls=http://127.0.0.1:{p2},http://localhost:{p2}"),
        ],
    );
    at = step("updated", at);
    // etcd refuses to remove a member promoted moments ago ("unhealthy cluster").
    etcdctl_retry(&e1, &["member", "remove", &id]);
    at = step("removed", at);
    drop(l1);
    drop(n1);
    n1 = spawn(program, "n1", &dir, c1, p1, &n1_cluster, "new");
    // The restart's publish.
    v2_norm::settle(&e1, at + 1);
    step("restarted", at);
    drop(n1);
    let _ = std::fs::remove_dir_all(&dir);
    steps
}

/// The first write's index on a fresh three-member cluster.
fn three_members(program: &str, tag: &str) -> u64 {
    let dir = std::env::temp_dir().join(format!("detcd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let cluster: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
        .collect();
    let cluster = cluster.join(",");
    let members: Vec<v2_norm::Proc> = ports
        .iter()
        .enumerate()
        .map(|(i, &(c, p))| spawn(program, &format!("m{i}"), &dir, c, p, &cluster, "new"))
        .collect();
    let endpoint = format!("127.0.0.1:{}", ports[0].0);
    // Three members added, three published, the cluster version.
    assert_eq!(
        v2_norm::settle(&endpoint, 7),
        7,
        "{program}: a fresh cluster's records"
    );
    let index = v2_norm::write(&endpoint, "first");
    drop(members);
    let _ = std::fs::remove_dir_all(&dir);
    index
}

fn tools_present(test: &str) -> bool {
    detcd_testkit::require_tools(&["etcd", "etcdctl", "curl"], test)
}

#[test]
fn v2_indexes_through_membership_changes_match_etcd() {
    if !tools_present("v2_indexes_through_membership_changes_match_etcd") {
        return;
    }
    let etcd34 = v2_norm::etcd34().expect("etcd 3.4 (etcd --version) on PATH or at /usr/bin/etcd");
    let expected = membership_history(&etcd34, "v2-index-etcd");
    let got = membership_history(env!("CARGO_BIN_EXE_detcd"), "v2-index-detcd");
    let numbers: Vec<u64> = expected.iter().map(|(_, i)| *i).collect();
    assert_eq!(numbers, [4, 6, 8, 10, 12, 15, 17], "etcd 3.4: {expected:?}");
    assert_eq!(got, expected);
}

#[test]
fn v2_first_write_on_three_members_matches_etcd() {
    if !tools_present("v2_first_write_on_three_members_matches_etcd") {
        return;
    }
    let etcd34 = v2_norm::etcd34().expect("etcd 3.4 (etcd --version) on PATH or at /usr/bin/etcd");
    assert_eq!(three_members(&etcd34, "v2-index3-etcd"), 8);
    assert_eq!(three_members(env!("CARGO_BIN_EXE_detcd"), "v2-index3-detcd"), 8);
}
