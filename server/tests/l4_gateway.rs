//! `detcd gateway start`, etcd's L4 gateway, with the real etcdctl 3.4: connections pass
//! through to a member while a dead endpoint in the list is skipped (marked inactive, and
//! active again at a retry once it takes connections);
//! and the start-up checks and refusals of both proxies' command lines (the gateway's
//! address checks compared with etcd 3.4's).
//! (The gateway in front of a cluster losing a member: `grpc_proxy.rs`.)
//!
//! Skipped (with a notice) without `etcd` and `etcdctl` on PATH; a failure under CI.

#[path = "support/proxy_proc.rs"]
mod proxy_proc;

use std::process::Command;

use detcd_testkit::{etcdctl_ok, free_port, start_server};
use proxy_proc::{start_proxy, tools_present, DETCD};

#[test]
fn gateway_passes_connections_through_and_skips_a_dead_endpoint() {
    if !tools_present("gateway_passes_connections_through_and_skips_a_dead_endpoint") {
        return;
    }
    let detcd = start_server(DETCD, "gw-l4");
    let dead = format!("127.0.0.1:{}", free_port());
    let gateway = start_proxy(
        DETCD,
        "gateway",
        &[
            format!("--endpoints={dead},http://{}", detcd.endpoint),
            "--retry-delay=300ms".into(),
        ],
    );
    for i in 0..4 {
        etcdctl_ok(&gateway.addr, &["put", &format!("g{i}"), "v"]);
    }
    assert_eq!(
        etcdctl_ok(&gateway.addr, &["get", "g", "--prefix", "--keys-only"]),
        "g0\n\ng1\n\ng2\n\ng3\n\n"
    );
    let log = gateway.log();
    assert!(log.contains(&format!("deactivated endpoint [{dead}]")), "{log}");
    // Once the endpoint takes connections again, the next retry makes it active.
    let _back = std::net::TcpListener::bind(&dead).expect("the dead endpoint's port");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !gateway.log().contains(&format!("activated {dead}")) {
        assert!(std::time::Instant::now() < deadline, "{}", gateway.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The member ID that answers a status request at `addr`: curl makes exactly one
/// connection (etcdctl may make more than one, which would defeat the count).
fn member_behind(addr: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("http://{addr}/v3/maintenance/status"),
            "-d",
            "{}",
        ])
        .output()
        .expect("curl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    v["header"]["member_id"].as_str().expect("member_id").to_string()
}

#[test]
fn gateway_spreads_connections_over_live_endpoints() {
    if !detcd_testkit::require_tools(
        &["etcd", "etcdctl", "curl"],
        "gateway_spreads_connections_over_live_endpoints",
    ) {
        return;
    }
    let a = start_server(DETCD, "gw-spread-a");
    let b = start_server(DETCD, "gw-spread-b");
    let gateway = start_proxy(
        DETCD,
        "gateway",
        &[format!("--endpoints=http://{},http://{}", a.endpoint, b.endpoint)],
    );
    // Two single-member clusters have two member IDs; four connections, round robin.
    let seen: std::collections::BTreeSet<String> = (0..4).map(|_| member_behind(&gateway.addr)).collect();
    assert_eq!(
        seen,
        [member_behind(&a.endpoint), member_behind(&b.endpoint)].into(),
        "connections through the gateway reach both endpoints"
    );
}

/// Start-up refusals of both proxies, with the error etcd 3.4's exits with (status 1).
#[test]
fn grpc_proxy_start_up_errors_are_etcds() {
    let listen = format!("--listen-addr=127.0.0.1:{}", free_port());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to take");
    let taken = format!("--listen-addr={}", taken.local_addr().expect("address"));
    let cases: [(&[&str], &str); 8] = [
        (
            &["gateway", "--listen-addr=127.0.0.1:99999"],
            "listen tcp: address 99999: invalid port",
        ),
        (
            &["gateway", "--endpoints=127.0.0.1:1", &taken],
            "bind: address already in use",
        ),
        (&["grpc-proxy", &taken], "bind: address already in use"),
        (&["--endpoints="], "etcdclient: no available endpoints"),
        (
            &["--listen-addr=bad"],
            "listen tcp: address bad: missing port in address",
        ),
        (
            &["--listen-addr=127.0.0.1:99999"],
            "listen tcp: address 99999: invalid port",
        ),
        (
            &[&listen, "--trusted-ca-file=/nonexistent.ca"],
            "KeyFile and CertFile are not presented",
        ),
        (
            &[&listen, "--cacert=/nonexistent.ca"],
            "open /nonexistent.ca: no such file or directory",
        ),
    ];
    let with_etcd = tools_present("grpc_proxy_start_up_errors_are_etcds");
    for (args, wanted) in cases {
        let mut programs = vec![DETCD];
        if with_etcd {
            programs.push("etcd");
        }
        let (proxy, args) = match args {
            ["gateway", rest @ ..] => ("gateway", rest),
            ["grpc-proxy", rest @ ..] => ("grpc-proxy", rest),
            _ => ("grpc-proxy", args),
        };
        for program in programs {
            let out = Command::new(program)
                .args([proxy, "start"])
                .args(args)
                .output()
                .expect("run");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{program} {args:?}: {err}");
            assert!(err.contains(wanted), "{program} {args:?}: {err}");
            // detcd refuses before it listens (etcd's proxy has already logged its
            // listener when its client fails).
            if program == DETCD {
                assert!(!err.contains("listening for gRPC proxy"), "{args:?}: {err}");
            }
        }
    }
}

#[test]
fn start_up_checks_and_refusals() {
    let run = |args: &[&str]| {
        let out = Command::new(DETCD).args(args).output().expect("run detcd");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["grpc-proxy", "start", "--resolver-prefix=p"]);
    assert_eq!((code, err.as_str()), (Some(1), "invalid resolver-ttl 0\n"));
    let (code, err) = run(&[
        "grpc-proxy",
        "start",
        "--cert-file=/nonexistent.crt",
        "--listen-addr=127.0.0.1:0",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("KeyFile and CertFile must both be present[key: , cert: /nonexistent.crt]"),
        "{err}"
    );
    // The gateway's address checks: etcd's words on stdout, exit status 1.
    for args in [
        &["gateway", "start", "--endpoints=127.0.0.1:23790"][..],
        &["gateway", "start", "--listen-addr=bad"],
        &["grpc-proxy", "start", "--resolver-prefix=p"],
    ] {
        let answer = |program: &str| {
            let out = Command::new(program).args(args).output().expect("run");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let ours = answer(DETCD);
        assert_eq!(ours.0, Some(1), "{args:?}");
        if tools_present("start_up_checks_and_refusals") {
            assert_eq!(ours, answer("etcd"), "{args:?}");
        }
    }
    let (code, err) = run(&["gateway", "start", "--bogus"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("Error: unknown flag: --bogus"), "{err}");
}
