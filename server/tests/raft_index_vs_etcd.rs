//! Absolute raft indexes against etcd 3.4's (`--enable-v2`): `Status.raftIndex` of
//! `etcdctl endpoint status -w json` once a step settled, and the `X-Raft-Index` a
//! v2 write is answered with. etcd's log starts with one membership entry per
//! founding member (indexes 1..N, term 1), then the leader's empty entry, one
//! publish per member, the cluster version; every restart publishes again, every
//! membership change is one entry, `--force-new-cluster` appends one removal per
//! other member. The same history runs on etcd and on detcd (restored with
//! etcdctl 3.4 and detcdctl), and etcd's numbers are also checked against those
//! etcd 3.4.23 gave by hand.
//!
//! Every step is one etcd settles the same way each run: a follower is restarted,
//! never the leader (that adds an election); a new voter joins a three-member
//! cluster (a one-member leader could lose its quorum to a slow joiner); members
//! are stopped with SIGTERM, the leader last, before `--force-new-cluster` (etcd
//! keeps a commit-only hard state in its WAL's write buffer until the next sync, so
//! a member killed with SIGKILL may come back with its last entry uncommitted, and
//! `--force-new-cluster` then drops it; a graceful stop flushes it).
//!
//! Skipped (with a notice) without `etcd`, `etcdctl` or `curl` on PATH, a failure under CI.

#[path = "support/restore_members.rs"]
mod restore_members;
#[path = "support/v2_norm.rs"]
mod v2_norm;

use std::process::Command;
use std::time::{Duration, Instant};

use detcd_testkit::{etcdctl, etcdctl_ok, etcdctl_retry};
use restore_members::{detcdctl, etcdctl34, initial_cluster, Launcher, Spec};

/// The server and the restore tool under test, and the steps seen so far.
struct Flavour {
    launch: Launcher,
    steps: Vec<(String, u64)>,
}

impl Flavour {
    fn start(&self, s: &Spec, cluster: &str, state: &str, extra: &[&str]) -> v2_norm::Proc {
        let mut args = vec!["--initial-cluster-state", state];
        args.extend_from_slice(extra);
        self.launch.start(s, cluster, &args)
    }

    /// Waits until `endpoint`'s raft index reaches `at_least` and stays put; records it.
    fn settled(&mut self, label: &str, endpoint: &str, at_least: u64) -> u64 {
        let index = settle(endpoint, at_least);
        self.steps.push((format!("{label}: settled"), index));
        index
    }

    /// A v2 write on `endpoint`; records the X-Raft-Index it was answered with.
    fn write(&mut self, label: &str, endpoint: &str) -> u64 {
        let index = v2_write_raft_index(endpoint, &label.replace(' ', "-"));
        self.steps.push((format!("{label}: write"), index));
        index
    }
}

/// `Status.raftIndex` and whether the member leads, from `endpoint status -w json`.
fn status(endpoint: &str) -> Option<(u64, bool)> {
    let out = etcdctl(endpoint, &["endpoint", "status", "-w", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let status = &doc.get(0)?["Status"];
    let index = status["raftIndex"].as_u64()?;
    let leads = status["leader"].as_u64()? == status["header"]["member_id"].as_u64()?;
    Some((index, leads))
}

/// The raft index once it reached `at_least` and did not move for a moment.
fn settle(endpoint: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    loop {
        let now = status(endpoint).map(|(i, _)| i);
        if let Some(i) = now {
            if i >= at_least && last == Some(i) {
                return i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint}: raft index {now:?}, waiting for {at_least}"
        );
        last = now;
        std::thread::sleep(Duration::from_millis(700));
    }
}

fn leads(endpoint: &str) -> bool {
    status(endpoint).is_some_and(|(_, l)| l)
}

/// A v2 PUT; the X-Raft-Index of its answer.
fn v2_write_raft_index(endpoint: &str, key: &str) -> u64 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-i",
            "--max-time",
            "10",
            "-X",
            "PUT",
            "--data-binary",
            "value=v",
        ])
        .arg(format!("http://{endpoint}/v2/keys/{key}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 201"), "{endpoint} {key}: {text}");
    text.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-raft-index")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no X-Raft-Index: {text}"))
}

/// The ID in `member add`'s "Member <id> added to cluster <id>".
fn added_id(out: &str) -> String {
    out.split_whitespace()
        .nth(1)
        .expect("Member <id> added")
        .to_string()
}

/// Stops a member with SIGTERM and waits for it to exit.
fn terminate(mut p: v2_norm::Proc) {
    let pid = p.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "member {pid} did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One member: settled, a write, a learner added, started, promoted, a write, the
/// learner removed, a write, the member restarted, a write.
fn one_member(f: &mut Flavour) {
    let (n1, l1) = (Spec::new("n1"), Spec::new("l1"));
    let e1 = n1.endpoint();
    let alone = initial_cluster([&n1]);
    let p1 = f.start(&n1, &alone, "new", &[]);
    let at = f.settled("fresh", &e1, 4);
    f.write("fresh", &e1);
    let added = etcdctl_ok(
        &e1,
        &[
            "member",
            "add",
            "l1",
            "--learner",
            &format!("--peer-urls={}", l1.peer_url()),
        ],
    );
    let at = f.settled("learner added", &e1, at + 2);
    let pl = f.start(&l1, &initial_cluster([&n1, &l1]), "existing", &[]);
    // The learner's publish.
    let at = f.settled("learner started", &e1, at + 1);
    etcdctl_retry(&e1, &["member", "promote", &added_id(&added)]);
    let at = f.settled("promoted", &e1, at + 1);
    f.write("promoted", &e1);
    etcdctl_retry(&e1, &["member", "remove", &added_id(&added)]);
    let at = f.settled("removed", &e1, at + 2);
    // A write after the removal commits it on the member alone: etcd's removal
    // may still be uncommitted in its WAL otherwise, and a restart would wait for
    // the removed member's vote.
    f.write("removed", &e1);
    drop(pl);
    terminate(p1);
    let p1 = f.start(&n1, &alone, "new", &[]);
    // The new term's empty entry, the publish.
    f.settled("restarted", &e1, at + 3);
    f.write("restarted", &e1);
    drop(p1);
}

/// Three members: settled (each), a write, a follower restarted, a voter added,
/// started and removed, a write; a backup; all stopped, the first restarted with
/// `--force-new-cluster`, a write; the backup restored as one and as three members.
fn three_members(f: &mut Flavour) {
    let specs: Vec<Spec> = (0..3).map(|i| Spec::new(&format!("m{i}"))).collect();
    let all: Vec<&Spec> = specs.iter().collect();
    let cluster = initial_cluster(all.iter().copied());
    let mut procs: Vec<Option<v2_norm::Proc>> = specs
        .iter()
        .map(|s| Some(f.start(s, &cluster, "new", &[])))
        .collect();
    let e0 = specs[0].endpoint();
    let mut at = 0;
    for s in &specs {
        at = f.settled("fresh", &s.endpoint(), 8);
    }
    f.write("fresh", &e0);
    let follower = (0..3)
        .find(|&i| !leads(&specs[i].endpoint()))
        .expect("a follower");
    drop(procs[follower].take());
    procs[follower] = Some(f.start(&specs[follower], &cluster, "new", &[]));
    // Its publish, seen on the restarted member and the first.
    at = f.settled("follower restarted", &specs[follower].endpoint(), at + 2);
    at = f.settled("follower restarted", &e0, at);
    let v = Spec::new("v3");
    // etcd refuses the addition while the restarted member counts as unhealthy.
    let added = etcdctl_retry(
        &e0,
        &["member", "add", "v3", &format!("--peer-urls={}", v.peer_url())],
    );
    let pv = f.start(
        &v,
        &initial_cluster([&specs[0], &specs[1], &specs[2], &v]),
        "existing",
        &[],
    );
    // The addition and the new member's publish.
    at = f.settled("voter started", &v.endpoint(), at + 2);
    etcdctl_retry(&e0, &["member", "remove", &added_id(&added)]);
    f.settled("voter removed", &e0, at + 1);
    drop(pv);
    at = f.write("voter removed", &e0);
    let backup = f.launch.dir.join("backup.db");
    etcdctl_ok(&e0, &["snapshot", "save", backup.to_str().expect("utf-8 path")]);
    // Every member learns the last commit index, then all stop, the leader last.
    std::thread::sleep(Duration::from_millis(500));
    let leader = (0..3).find(|&i| leads(&specs[i].endpoint()));
    for i in (0..3).filter(|&i| Some(i) != leader).chain(leader) {
        terminate(procs[i].take().expect("running"));
    }
    let survivor = f.start(&specs[0], &cluster, "new", &["--force-new-cluster"]);
    // Two removals, the new term's empty entry, the publish.
    f.settled("force-new-cluster", &e0, at + 4);
    f.write("force-new-cluster", &e0);
    drop(survivor);

    for names in [&["r0"][..], &["t0", "t1", "t2"][..]] {
        let label = format!("restored {}", names.len());
        let specs: Vec<Spec> = names.iter().map(|n| Spec::new(n)).collect();
        let procs = f.launch.restore_and_start(&backup, &specs);
        let endpoint = specs[0].endpoint();
        f.settled(&label, &endpoint, 2 * names.len() as u64 + 2);
        f.write(&label, &endpoint);
        drop(procs);
    }
}

fn history(server: String, restore: fn() -> Command, tag: &str, run: fn(&mut Flavour)) -> Vec<(String, u64)> {
    let dir = std::env::temp_dir().join(format!("detcd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let mut f = Flavour {
        launch: Launcher { server, restore, dir },
        steps: Vec::new(),
    };
    run(&mut f);
    let _ = std::fs::remove_dir_all(&f.launch.dir);
    f.steps
}

fn compare(test: &str, run: fn(&mut Flavour), etcd_numbers: &[u64]) {
    if !detcd_testkit::require_tools(&["etcd", "etcdctl", "curl"], test) {
        return;
    }
    let etcd34 = v2_norm::etcd34().expect("etcd 3.4 (etcd --version) on PATH or at /usr/bin/etcd");
    let expected = history(etcd34, etcdctl34, &format!("{test}-etcd"), run);
    let numbers: Vec<u64> = expected.iter().map(|(_, i)| *i).collect();
    assert_eq!(numbers, etcd_numbers, "etcd 3.4: {expected:#?}");
    let got = history(
        env!("CARGO_BIN_EXE_detcd").to_string(),
        detcdctl,
        &format!("{test}-detcd"),
        run,
    );
    assert_eq!(got, expected);
}

#[test]
fn raft_indexes_of_one_member_through_membership_changes_match_etcd() {
    compare("raft-index-one", one_member, &[4, 5, 6, 7, 8, 9, 10, 11, 13, 14]);
}

#[test]
fn raft_indexes_of_three_members_force_new_cluster_and_restore_match_etcd() {
    compare(
        "raft-index-three",
        three_members,
        &[8, 8, 8, 9, 10, 10, 12, 13, 14, 18, 19, 4, 5, 8, 9],
    );
}
