//! detcdctl's `check perf` and `check datascale` on a real etcd: short runs
//! (`--duration` and `--count`, detcdctl only; etcdctl's loads take a minute or more)
//! print etcdctl's lines and leave no key behind; the refusals (an unknown load, a
//! prefix that has keys) are compared with the real etcdctl 3.4 word for word. etcd and
//! etcdctl must be on PATH.

use std::process::Command;

use detcd_testkit::{etcdctl_ok, on_path, start_server};

fn run(name: &str, endpoint: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let program = if name == "detcdctl" {
        env!("CARGO_BIN_EXE_detcdctl")
    } else {
        "etcdctl"
    };
    let out = Command::new(program)
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_perf_runs_and_refuses_as_etcdctl() {
    assert!(
        on_path("etcd") && on_path("etcdctl"),
        "etcd and etcdctl must be on PATH (Debian: etcd-server, etcd-client)"
    );
    let etcd = start_server("etcd", "ctl-check");
    let ep = etcd.endpoint.as_str();
    let (code, stdout, stderr) = run(
        "detcdctl",
        ep,
        &["check", "perf", "--duration", "2", "--auto-compact"],
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 5, "{stdout}{stderr}");
    let verdict = lines[lines.len() - 4..].to_vec();
    assert!(verdict[0].contains("Throughput"), "{stdout}");
    assert!(verdict[1].contains("Slowest request took"), "{stdout}");
    assert!(verdict[2].contains("Stddev"), "{stdout}");
    assert_eq!(code == Some(0), verdict[3] == "PASS", "{stdout}");
    assert!(lines[0].starts_with("compacted revision "), "{stdout}");
    let left = etcdctl_ok(ep, &["get", "--prefix", "/etcdctl-check-perf/", "--keys-only"]);
    assert!(left.is_empty(), "{left}");

    let compare = |args: &[&str]| {
        let (a, b) = (run("etcdctl", ep, args), run("detcdctl", ep, args));
        assert_eq!((b.0, &b.2), (a.0, &a.2), "{args:?}");
    };
    compare(&["check", "perf", "--load", "huge"]);
    compare(&["check", "datascale", "--load", "huge"]);
    etcdctl_ok(ep, &["put", "/p/x", "1"]);
    compare(&["check", "perf", "--prefix", "/p/"]);
    compare(&["check", "datascale", "--prefix", "/p/"]);

    let (code, stdout, stderr) = run("detcdctl", ep, &["check", "datascale", "--count", "300"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "Start data scale check for work load [300 key-value pairs, 1024 bytes per key-value, 50 concurrent clients]."
    );
    assert!(
        lines[1].starts_with("PASS: Approximate system memory used : ") && lines[1].ends_with(" MB."),
        "{stdout}"
    );
    let left = etcdctl_ok(
        ep,
        &["get", "--prefix", "/etcdctl-check-datascale/", "--keys-only"],
    );
    assert!(left.is_empty(), "{left}");
}
