//! TLS between members, with real processes and certificates made in the test: three
//! members with peer client-certificate auth and an allowed CN (probing each other's
//! `/raft/probing` for the round-trip series), a learner joining over
//! TLS and promoted, a member with another CN refused, auto-TLS on both sides (helpers in
//! `tls.rs`; etcdctl must be on PATH).

use std::path::Path;

use detcd_server::tls::certs::{Ca, Leaf};

use detcd_testkit::free_port;

use super::harness::{http_get, read, test_dir};
use super::tls::{etcdctl, issue, ok, plain_http, put, spawn, wait_until, Member, Spec};

/// Starts member `name` of a peer-TLS cluster whose members' peer ports are `peers`.
fn start_peer_member(
    dir: &Path,
    name: &str,
    client_url: &str,
    peers: &[(String, u16)],
    state: &str,
    flags: &[&str],
) -> Member {
    let own = peers.iter().find(|(n, _)| n == name).expect("own peer port").1;
    let cluster = peers
        .iter()
        .map(|(n, p)| format!("{n}=https://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let spec = Spec {
        name,
        client_urls: client_url,
        peer_url: &format!("https://127.0.0.1:{own}"),
        initial_cluster: &cluster,
        state,
        cwd: None,
    };
    spawn(&dir.join(name), &spec, flags)
}

#[test]
fn three_members_with_peer_tls_and_client_cert_auth() {
    let dir = test_dir("tls-peers");
    let ca = Ca::new("peer CA").expect("ca");
    let ca_file = put(&dir, "ca.crt", &ca.cert_pem);
    let peers: Vec<(String, u16)> = (0..3).map(|i| (format!("m{i}"), free_port())).collect();
    let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let pairs: Vec<(String, String)> = (0..4)
        .map(|i| {
            issue(
                &ca,
                &dir,
                &format!("m{i}"),
                &Leaf::new("member", &["127.0.0.1"], 10 + i),
            )
        })
        .collect();
    let flags = |i: usize| -> Vec<String> {
        [
            "--peer-cert-file",
            &pairs[i].0,
            "--peer-key-file",
            &pairs[i].1,
            "--peer-trusted-ca-file",
            &ca_file,
            "--peer-client-cert-auth",
            "--peer-cert-allowed-cn",
            "member",
            // The leader asks its peers' /members/hashkv over peer TLS every second.
            "--experimental-corrupt-check-time",
            "1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let f = flags(i);
            let f: Vec<&str> = f.iter().map(String::as_str).collect();
            start_peer_member(
                &dir,
                &peers[i].0,
                &format!("http://127.0.0.1:{}", clients[i]),
                &peers,
                "new",
                &f,
            )
        })
        .collect();
    let endpoints = clients
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    wait_until("cluster commits", || {
        etcdctl(&["--endpoints", &endpoints, "put", "k", "over-tls"])
            .status
            .success()
    });
    for c in &clients {
        let ep = format!("http://127.0.0.1:{c}");
        wait_until("value replicated", || {
            etcdctl(&[
                "--endpoints",
                &ep,
                "get",
                "k",
                "--consistency=s",
                "--print-value-only",
            ])
            .stdout
            .starts_with(b"over-tls")
        });
    }
    // The corruption check reached every peer over peer TLS.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    for m in &members {
        let log = read(&m.log);
        assert!(!log.contains("failed hash kv request"), "{log}");
        assert!(!log.contains("CORRUPT"), "{log}");
    }
    // Each member probes its peers' /raft/probing over peer TLS and reports the round
    // trips (a probe refused or failed leaves the smoothed value at 0).
    for c in &clients {
        wait_until("round trips over peer TLS", || {
            let (_, text) = http_get(*c, "/metrics");
            text.lines()
                .filter_map(|l| l.strip_prefix("etcd_network_peer_round_trip_time_seconds_sum{To=\""))
                .filter(|rest| rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0))
                .count()
                == 2
        });
    }
    // The peer port speaks no plain text: a TLS alert (record type 21) at most.
    let hello = plain_http(peers[0].1);
    assert!(
        hello.is_empty() || hello.as_bytes()[0] == 0x15,
        "plain text answered on a TLS peer port: {hello:?}"
    );

    // A learner joins over TLS (`--initial-cluster-state existing`) and is promoted.
    let learner_peer = free_port();
    let added = ok(&etcdctl(&[
        "--endpoints",
        &endpoints,
        "member",
        "add",
        "m3",
        "--learner",
        &format!("--peer-urls=https://127.0.0.1:{learner_peer}"),
    ]));
    let learner_id = added
        .split_whitespace()
        .nth(1)
        .expect("member add prints the ID")
        .to_string();
    let mut with_learner = peers.clone();
    with_learner.push(("m3".into(), learner_peer));
    let learner_client = format!("http://127.0.0.1:{}", free_port());
    let f = flags(3);
    let f: Vec<&str> = f.iter().map(String::as_str).collect();
    let learner = start_peer_member(&dir, "m3", &learner_client, &with_learner, "existing", &f);
    wait_until("the learner is promoted", || {
        etcdctl(&["--endpoints", &endpoints, "member", "promote", &learner_id])
            .status
            .success()
    });
    wait_until("the promoted member serves", || {
        etcdctl(&["--endpoints", &learner_client, "get", "k", "--print-value-only"])
            .stdout
            .starts_with(b"over-tls")
    });

    // A member whose certificate has another CN is refused by the cluster (and refuses
    // the cluster's members in turn).
    let intruder = issue(&ca, &dir, "intruder", &Leaf::new("intruder", &["127.0.0.1"], 50));
    let intruder_peer = free_port();
    let out = etcdctl(&[
        "--endpoints",
        &endpoints,
        "member",
        "add",
        "m4",
        &format!("--peer-urls=https://127.0.0.1:{intruder_peer}"),
    ]);
    ok(&out);
    let mut with_intruder = with_learner.clone();
    with_intruder.push(("m4".into(), intruder_peer));
    let intruder_member = start_peer_member(
        &dir,
        "m4",
        &format!("http://127.0.0.1:{}", free_port()),
        &with_intruder,
        "existing",
        &[
            "--peer-cert-file",
            &intruder.0,
            "--peer-key-file",
            &intruder.1,
            "--peer-trusted-ca-file",
            &ca_file,
            "--peer-client-cert-auth",
            "--peer-cert-allowed-cn",
            "member",
        ],
    );
    wait_until("the intruder is refused", || {
        members
            .iter()
            .any(|m| read(&m.log).contains("CommonName authentication failed"))
    });
    let list = ok(&etcdctl(&["--endpoints", &endpoints, "member", "list"]));
    assert!(
        list.lines()
            .any(|l| l.contains("unstarted") && l.contains(&intruder_peer.to_string())),
        "the intruder joined: {list}"
    );
    drop(intruder_member);
    drop(learner);
    drop(members);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn auto_tls_on_both_sides() {
    let dir = test_dir("tls-auto");
    let peers: Vec<(String, u16)> = (0..3).map(|i| (format!("m{i}"), free_port())).collect();
    let clients: Vec<String> = (0..3)
        .map(|_| format!("https://127.0.0.1:{}", free_port()))
        .collect();
    let members: Vec<Member> = (0..3)
        .map(|i| {
            start_peer_member(
                &dir,
                &peers[i].0,
                &clients[i],
                &peers,
                "new",
                &[
                    "--auto-tls",
                    "--peer-auto-tls",
                    "--self-signed-cert-validity",
                    "2",
                ],
            )
        })
        .collect();
    let endpoints = clients.join(",");
    wait_until("cluster commits over auto-TLS", || {
        etcdctl(&[
            "--endpoints",
            &endpoints,
            "--insecure-transport=false",
            "--insecure-skip-tls-verify",
            "put",
            "k",
            "auto",
        ])
        .status
        .success()
    });
    for c in &clients {
        assert_eq!(
            ok(&etcdctl(&[
                "--endpoints",
                c,
                "--insecure-transport=false",
                "--insecure-skip-tls-verify",
                "get",
                "k",
                "--print-value-only"
            ])),
            "auto\n"
        );
    }
    // The certificates are etcd's fixtures; a client that checks them finds no CA.
    for side in ["client", "peer"] {
        let fixtures = dir.join("m0").join("data").join("fixtures").join(side);
        assert!(fixtures.join("cert.pem").is_file() && fixtures.join("key.pem").is_file());
    }
    let ca = dir.join("m0/data/fixtures/client/cert.pem");
    assert!(ok(&etcdctl(&[
        "--endpoints",
        &clients[0],
        "--cacert",
        &ca.to_string_lossy(),
        "get",
        "k"
    ]))
    .contains("auto"));
    let plain = etcdctl(&["--endpoints", &clients[0].replace("https", "http"), "get", "k"]);
    assert!(!plain.status.success(), "plain text answered on an auto-TLS port");
    drop(members);
    let _ = std::fs::remove_dir_all(&dir);
}
