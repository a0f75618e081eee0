//! detcdctl's newer etcdctl flags on a real etcd 3.4: `get --min/max-create-rev
//! --min/max-mod-rev` (etcdctl 3.6's; neither 3.4 nor 3.5.1 has them) over keys written
//! at known revisions, checked against what the RangeRequest fields keep; and
//! `--keepalive-time/--keepalive-timeout` compared with the real etcdctl 3.5 (accepted
//! values, bad values' errors): stdout, stderr and the exit code must be the same.
//!
//! Skipped (with a notice) without etcd and etcdctl on PATH or etcd 3.5's binaries (see
//! `detcd_testkit::etcd35_dir`); a failure under CI.

use std::path::Path;
use std::process::Command;

use detcd_testkit::{etcd35_dir, etcdctl_ok, require_tools, start_server};

fn run(program: &Path, endpoint: &str, args: &[&str]) -> (Option<i32>, String, String) {
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
fn revision_filters_and_keepalive_flags_match_etcdctl_35() {
    if !require_tools(&["etcd", "etcdctl"], "ctl_35_flags_vs_etcdctl") {
        return;
    }
    let Some(bin) = etcd35_dir() else {
        return;
    };
    let etcdctl35 = bin.join("etcdctl");
    let detcdctl = Path::new(env!("CARGO_BIN_EXE_detcdctl"));
    let etcd = start_server("etcd", "ctl-35-flags");
    let ep = etcd.endpoint.as_str();
    // Revisions: a@2, b@3, a@4 (created 2), c@5, b@6 (created 3).
    for (k, v) in [("a", "1"), ("b", "1"), ("a", "2"), ("c", "1"), ("b", "2")] {
        etcdctl_ok(ep, &["put", k, v]);
    }
    // etcdctl 3.5.1 has no revision filters yet (etcdctl 3.6 does): the keys each
    // filter keeps, as the RangeRequest fields define them (bounds inclusive).
    let filters: &[(&[&str], &str)] = &[
        (&["--min-create-rev=3"], "b\n2\nc\n1\n"),
        (&["--max-create-rev=3"], "a\n2\nb\n2\n"),
        (&["--min-mod-rev=5"], "b\n2\nc\n1\n"),
        (&["--max-mod-rev=4"], "a\n2\n"),
        (&["--min-create-rev=3", "--max-mod-rev=5"], "c\n1\n"),
        (&["--min-mod-rev=4", "--keys-only"], "a\n\nb\n\nc\n\n"),
        (&["--min-create-rev=9"], ""),
    ];
    for (flags, expected) in filters {
        let mut args = vec!["get", "", "--prefix"];
        args.extend_from_slice(flags);
        let (code, stdout, stderr) = run(detcdctl, ep, &args);
        assert_eq!(
            (code, stdout.as_str()),
            (Some(0), *expected),
            "{args:?}: {stderr}"
        );
    }
    let (code, _, stderr) = run(detcdctl, ep, &["get", "a", "--min-mod-rev=x"]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains(r#"invalid argument "x" for "--min-mod-rev" flag"#),
        "{stderr}"
    );

    let accepted: &[&[&str]] = &[
        &["--keepalive-time=3s", "--keepalive-timeout=4s", "get", "a"],
        &["--keepalive-time=0s", "get", "a"],
    ];
    for args in accepted {
        let theirs = run(&etcdctl35, ep, args);
        let ours = run(detcdctl, ep, args);
        assert_eq!(ours, theirs, "{args:?}");
    }
    // A bad value: etcdctl's error line and exit status 1. (Both also print the command's
    // usage on stdout, where 3.5's flags differ from detcdctl's; ctl_help_vs_etcdctl
    // compares usages with etcdctl 3.4.)
    for args in [
        &["--keepalive-time=x", "get", "a"][..],
        &["--keepalive-timeout=-", "get", "a"],
    ] {
        let theirs = run(&etcdctl35, ep, args);
        let ours = run(detcdctl, ep, args);
        assert_eq!(ours.0, theirs.0, "{args:?}");
        assert_eq!(ours.2.lines().next(), theirs.2.lines().next(), "{args:?}");
    }
}
