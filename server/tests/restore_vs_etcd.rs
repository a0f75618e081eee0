//! A cluster rebuilt from a backup, against etcd 3.4 (`--enable-v2`): etcd's
//! `snapshot restore` writes a fresh v2 store holding one `raftAttributes` record
//! per new member, and `--force-new-cluster` removes the other members through
//! raft (each removal two v2 records); so the index of the first v2 write after
//! either depends on how the member records were written. The same history runs
//! on etcd (restored with etcdctl 3.4) and on detcd (restored with detcdctl):
//! a fresh three-member cluster is backed up, its first member restarted alone
//! with `--force-new-cluster`, then the backup restored as a one-member and as a
//! three-member cluster. After each step the settled v2 index, the index of a
//! client write, `member list` and `/v2/members` are compared (member IDs and
//! ports masked, members in name order: IDs follow from the random ports), and
//! etcd's numbers with those etcd 3.4.23 gave by hand.
//!
//! Skipped (with a notice) without `etcd`, `etcdctl` or `curl` on PATH, a failure under CI.

#[path = "support/restore_members.rs"]
mod restore_members;
#[path = "support/v2_norm.rs"]
mod v2_norm;

use detcd_testkit::etcdctl_ok;
use restore_members::{detcdctl, etcdctl34, initial_cluster, Launcher, Spec};

/// `member list` with IDs and ports masked, in name order.
fn member_list(endpoint: &str) -> Vec<String> {
    let out = etcdctl_ok(endpoint, &["member", "list"]);
    let mut rows: Vec<String> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (_, rest) = l.split_once(", ").unwrap_or_else(|| panic!("member row {l:?}"));
            v2_norm::mask_ports(&format!("<id>, {rest}"))
        })
        .collect();
    rows.sort_by(|a, b| a.split(", ").nth(2).cmp(&b.split(", ").nth(2)));
    rows
}

/// `/v2/members` with IDs and ports masked, in name order.
fn v2_members(endpoint: &str) -> Vec<String> {
    let (status, _, body) = v2_norm::exchange(&format!("http://{endpoint}/v2/members"), "GET", "", false);
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let members = doc["members"].as_array().unwrap_or_else(|| panic!("{body}"));
    let mut rows: Vec<(String, String)> = members
        .iter()
        .map(|m| {
            assert!(m["id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
            let name = m["name"].as_str().unwrap_or_default().to_string();
            let row = format!(
                "name={} peerURLs={} clientURLs={}",
                m["name"], m["peerURLs"], m["clientURLs"]
            );
            (name, v2_norm::mask_ports(&row))
        })
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, row)| row).collect()
}

/// What a step shows: the settled index, a write's index, both member lists.
fn observe(label: &str, endpoint: &str, settle_at: u64, out: &mut Vec<String>) -> u64 {
    let settled = v2_norm::settle(endpoint, settle_at);
    let written = v2_norm::write(endpoint, &label.replace(' ', "-"));
    out.push(format!("{label}: settled at {settled}, write at {written}"));
    out.extend(member_list(endpoint).into_iter().map(|r| format!("{label}: {r}")));
    out.extend(v2_members(endpoint).into_iter().map(|r| format!("{label}: {r}")));
    written
}

fn history(f: &Launcher) -> Vec<String> {
    let _ = std::fs::remove_dir_all(&f.dir);
    std::fs::create_dir_all(&f.dir).expect("test dir");
    let mut out = Vec::new();

    // A fresh three-member cluster: three members added, three published, the
    // cluster version, then the first write.
    let source: Vec<Spec> = (0..3).map(|i| Spec::new(&format!("m{i}"))).collect();
    let cluster = initial_cluster(&source);
    let procs: Vec<v2_norm::Proc> = source
        .iter()
        .map(|s| f.start(s, &cluster, &["--initial-cluster-state", "new"]))
        .collect();
    let e0 = source[0].endpoint();
    let fresh = observe("fresh", &e0, 7, &mut out);
    etcdctl_ok(&e0, &["put", "restored-key", "restored-value"]);
    let backup = f.dir.join("backup.db");
    etcdctl_ok(&e0, &["snapshot", "save", backup.to_str().expect("utf-8 path")]);
    drop(procs);

    // The first member alone: two members removed (two records each), its publish.
    let survivor = f.start(&source[0], &cluster, &["--force-new-cluster"]);
    observe("force-new-cluster", &e0, fresh + 5, &mut out);
    drop(survivor);

    // The backup restored as one member, then as three: each new member added
    // by the restore, each published, the cluster version.
    for (label, names) in [
        ("restored one", &["r0"][..]),
        ("restored three", &["t0", "t1", "t2"][..]),
    ] {
        let specs: Vec<Spec> = names.iter().map(|n| Spec::new(n)).collect();
        let procs = f.restore_and_start(&backup, &specs);
        let endpoint = specs[0].endpoint();
        observe(label, &endpoint, 2 * specs.len() as u64 + 1, &mut out);
        let value = etcdctl_ok(&endpoint, &["get", "restored-key", "--print-value-only"]);
        out.push(format!("{label}: restored-key={}", value.trim_end()));
        drop(procs);
    }
    let _ = std::fs::remove_dir_all(&f.dir);
    out
}

/// The (settled, write) indexes of a history, in step order.
fn write_indexes(history: &[String]) -> Vec<(u64, u64)> {
    history
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.split_once(": settled at ")?;
            let (settled, written) = rest.split_once(", write at ")?;
            Some((settled.parse().ok()?, written.parse().ok()?))
        })
        .collect()
}

#[test]
fn restore_and_force_new_cluster_write_member_records_as_etcd() {
    if !detcd_testkit::require_tools(
        &["etcd", "etcdctl", "curl"],
        "restore_and_force_new_cluster_write_member_records_as_etcd",
    ) {
        return;
    }
    let etcd34 = v2_norm::etcd34().expect("etcd 3.4 (etcd --version) on PATH or at /usr/bin/etcd");
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let expected = history(&Launcher {
        server: etcd34,
        restore: etcdctl34,
        dir: tmp.join(format!("detcd-restore-etcd-{pid}")),
    });
    assert_eq!(
        write_indexes(&expected),
        [(7, 8), (13, 14), (3, 4), (7, 8)],
        "etcd 3.4: {expected:#?}"
    );
    let got = history(&Launcher {
        server: env!("CARGO_BIN_EXE_detcd").to_string(),
        restore: detcdctl,
        dir: tmp.join(format!("detcd-restore-detcd-{pid}")),
    });
    assert_eq!(got, expected);
}
