//! detcdctl's `make-mirror` against the real etcdctl 3.4: each mirrors the same etcd
//! (prefix `/a/` to `/b/`) into a destination etcd of its own, through the base copy and
//! then puts, a delete and a two-key transaction; the destinations must end equal, key
//! by key and revision by revision (one destination transaction per source revision).
//! The argument errors are compared too. etcd and etcdctl must be on PATH.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use detcd_testkit::{etcdctl, etcdctl_ok, on_path, start_server};

fn program(name: &str) -> &'static str {
    if name == "detcdctl" {
        env!("CARGO_BIN_EXE_detcdctl")
    } else {
        "etcdctl"
    }
}

fn mirror(name: &str, source: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program(name));
    c.env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={source}"))
        .arg("make-mirror")
        .args(args);
    c
}

fn wait_for(what: &str, probe: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !probe() {
        assert!(Instant::now() < deadline, "{what}: timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A destination's keys as `fields` output, without the lines naming the cluster.
fn contents(endpoint: &str) -> String {
    etcdctl_ok(endpoint, &["get", "", "--from-key", "-w", "fields"])
        .lines()
        .filter(|l| {
            !["\"ClusterID\"", "\"MemberID\"", "\"RaftTerm\""]
                .iter()
                .any(|f| l.starts_with(f))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn make_mirror_matches_etcdctl() {
    assert!(
        on_path("etcd") && on_path("etcdctl"),
        "etcd and etcdctl must be on PATH (Debian: etcd-server, etcd-client)"
    );
    let source = start_server("etcd", "mirror-src");
    let dests = [
        start_server("etcd", "mirror-d1"),
        start_server("etcd", "mirror-d2"),
    ];
    let src = source.endpoint.as_str();
    etcdctl_ok(src, &["put", "/a/1", "one"]);
    etcdctl_ok(src, &["put", "/a/2", "two"]);
    etcdctl_ok(src, &["put", "/x/out", "no"]);
    let mut mirrors: Vec<Child> = ["etcdctl", "detcdctl"]
        .iter()
        .zip(&dests)
        .map(|(name, dest)| {
            mirror(
                name,
                src,
                &["--prefix", "/a/", "--dest-prefix", "/b/", &dest.endpoint],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn make-mirror")
        })
        .collect();
    for dest in &dests {
        wait_for("the base copy", || {
            etcdctl_ok(&dest.endpoint, &["get", "/b/2", "--print-value-only"]) == "two\n"
        });
    }
    etcdctl_ok(src, &["put", "/a/3", "three"]);
    etcdctl_ok(src, &["del", "/a/1"]);
    let mut txn = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={src}"))
        .arg("txn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("txn");
    let _ = txn
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"\nput /a/4 four\nput /a/5 five\n\n\n");
    assert!(txn.wait().expect("txn").success());
    etcdctl_ok(src, &["put", "/x/later", "no"]);
    for dest in &dests {
        wait_for("the updates", || {
            etcdctl_ok(&dest.endpoint, &["get", "/b/5", "--print-value-only"]) == "five\n"
        });
    }
    for m in &mut mirrors {
        let _ = m.kill();
        let _ = m.wait();
    }
    let expected = contents(&dests[0].endpoint);
    for key in ["/b/2", "/b/3", "/b/4", "/b/5"] {
        assert!(
            expected.contains(key),
            "{key} not mirrored by etcdctl:\n{expected}"
        );
    }
    assert!(
        !expected.contains("/b/1") && !expected.contains("/x/"),
        "{expected}"
    );
    assert_eq!(contents(&dests[1].endpoint), expected);

    // Argument errors, with etcdctl's words and exit status.
    let d = dests[0].endpoint.as_str();
    for args in [vec![], vec!["--dest-prefix", "/c/", "--no-dest-prefix", d]] {
        let outcome = |name: &str| {
            let out = mirror(name, src, &args).output().expect("run");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        assert_eq!(outcome("detcdctl"), outcome("etcdctl"), "{args:?}");
    }
    assert!(etcdctl(d, &["get", "/c/2"]).stdout.is_empty());
}
