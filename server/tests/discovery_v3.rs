//! etcd 3.6's v3 discovery (`--discovery-endpoints`, `--discovery-token`) with a detcd
//! member as the discovery service: the size written with etcdctl under
//! `/_etcd/registry/<token>/_config/size`, three detcd members bootstrap through it and
//! register under `members/<id>`, a fourth is told the cluster is full, and the three
//! restart without the discovery service; then the same
//! with auth on the discovery service (`--discovery-user`, `--discovery-password`).
//!
//! Skipped with a notice without etcdctl (a failure under CI).

#[path = "support/members.rs"]
mod members;

use std::process::Stdio;

use detcd_server::config::member_id;
use detcd_server::urls::parse_url;
use detcd_testkit::{etcdctl, etcdctl_ok, free_port, start_server, wait_healthy};
use members::{detcd, loopback_urls, tools_present, wait_for_started, Member};

/// Starts `n` members through `token` on `service` with `extra` flags; their client
/// endpoints and peer ports.
fn bootstrap(
    dir: &std::path::Path,
    service: &str,
    token: &str,
    n: usize,
    extra: &[&str],
) -> (Vec<Member>, Vec<String>, Vec<u16>) {
    let mut running = Vec::new();
    let mut endpoints = Vec::new();
    let mut peers = Vec::new();
    for i in 0..n {
        let (peer, client) = (free_port(), free_port());
        let mut args: Vec<String> = vec![
            "--discovery-endpoints".into(),
            service.into(),
            "--discovery-token".into(),
            token.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(loopback_urls(peer, client));
        let child = detcd(dir, &format!("{token}-{}", i + 1), &args)
            .spawn()
            .expect("spawn");
        running.push(Member(child));
        endpoints.push(format!("127.0.0.1:{client}"));
        peers.push(peer);
    }
    (running, endpoints, peers)
}

#[test]
fn three_members_bootstrap_through_v3_discovery_and_a_fourth_finds_it_full() {
    if !tools_present(&[]) {
        return;
    }
    let service = start_server(env!("CARGO_BIN_EXE_detcd"), "disc-v3");
    etcdctl_ok(
        &service.endpoint,
        &["put", "/_etcd/registry/tok3/_config/size", "3"],
    );
    let dir = members::temp_dir("disc-v3");
    let (running, endpoints, peers) = bootstrap(&dir, &service.endpoint, "tok3", 3, &[]);
    for ep in &endpoints {
        wait_healthy(ep);
    }
    let listed = wait_for_started(&endpoints[0], 3);
    // IDs as etcd 3.6 derives them: the discovery token is the cluster token.
    let id = |peer: u16| member_id(&[parse_url(&format!("http://127.0.0.1:{peer}")).unwrap()], "tok3");
    let mut expected: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "{:x}, started, tok3-{}, http://127.0.0.1:{}, http://{}, false",
                id(peers[i]),
                i + 1,
                peers[i],
                endpoints[i]
            )
        })
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    let registry = etcdctl_ok(
        &service.endpoint,
        &["get", "--prefix", "/_etcd/registry/tok3/members/"],
    );
    for (i, peer) in peers.iter().enumerate() {
        assert!(
            registry.contains(&format!(
                "/_etcd/registry/tok3/members/{:x}\ntok3-{}=http://127.0.0.1:{peer}\n",
                id(*peer),
                i + 1
            )),
            "{registry}"
        );
    }
    etcdctl_ok(&endpoints[0], &["put", "k", "v"]);
    assert_eq!(
        etcdctl_ok(&endpoints[1], &["get", "k", "--print-value-only"]).trim(),
        "v"
    );
    // The fourth.
    let (peer, client) = (free_port(), free_port());
    let mut args: Vec<String> = vec![
        "--discovery-endpoints".into(),
        service.endpoint.clone(),
        "--discovery-token".into(),
        "tok3".into(),
    ];
    args.extend(loopback_urls(peer, client));
    let out = detcd(&dir, "tok3-4", &args)
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(discovery: cluster is full)"), "{stderr}");
    // A token without a size, and a missing token.
    let mut args: Vec<String> = vec![
        "--discovery-endpoints".into(),
        service.endpoint.clone(),
        "--discovery-token".into(),
        "nosize".into(),
    ];
    args.extend(loopback_urls(peer, client));
    let out = detcd(&dir, "nosize-1", &args)
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(discovery: size key not found)"), "{stderr}");
    let out = detcd(
        &dir,
        "x",
        &["--discovery-endpoints".into(), service.endpoint.clone()],
    )
    .stderr(Stdio::piped())
    .output()
    .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("token for discovery cannot be empty"), "{stderr}");
    // Restarted on their data with the same flags, with the discovery service gone,
    // the members form the same cluster again.
    drop(running);
    drop(service);
    let mut restarted = Vec::new();
    for (i, ep) in endpoints.iter().enumerate() {
        let client: u16 = ep.rsplit_once(':').unwrap().1.parse().unwrap();
        let mut args: Vec<String> = vec![
            "--discovery-endpoints".into(),
            "http://127.0.0.1:1".into(),
            "--discovery-token".into(),
            "tok3".into(),
        ];
        args.extend(loopback_urls(peers[i], client));
        let child = detcd(&dir, &format!("tok3-{}", i + 1), &args)
            .spawn()
            .expect("spawn");
        restarted.push(Member(child));
    }
    for ep in &endpoints {
        wait_healthy(ep);
    }
    assert_eq!(wait_for_started(&endpoints[2], 3), expected);
    assert_eq!(
        etcdctl_ok(&endpoints[2], &["get", "k", "--print-value-only"]).trim(),
        "v"
    );
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn v3_discovery_authenticates_with_discovery_user_and_password() {
    if !tools_present(&[]) {
        return;
    }
    let service = start_server(env!("CARGO_BIN_EXE_detcd"), "disc-v3-auth");
    let ep = service.endpoint.clone();
    etcdctl_ok(&ep, &["put", "/_etcd/registry/auth2/_config/size", "2"]);
    etcdctl_ok(&ep, &["user", "add", "root:rootpw"]);
    etcdctl_ok(&ep, &["auth", "enable"]);
    let out = etcdctl(&ep, &["get", "/_etcd/registry/auth2/_config/size"]);
    assert!(!out.status.success(), "auth is on");
    let dir = members::temp_dir("disc-v3-auth");
    let (running, endpoints, _) = bootstrap(
        &dir,
        &ep,
        "auth2",
        2,
        &["--discovery-user", "root", "--discovery-password", "rootpw"],
    );
    for e in &endpoints {
        wait_healthy(e);
    }
    assert_eq!(wait_for_started(&endpoints[0], 2).len(), 2);
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}
