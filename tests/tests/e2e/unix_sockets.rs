//! etcd's `unix://` and `unixs://` URLs for clients and peers, with real processes: three
//! members whose peers talk TLS over unix sockets, clients on plain and TLS sockets,
//! the real etcdctl 3.4 and detcdctl on both. As in etcd, a unix URL keeps the
//! `host:port` form and names a socket file relative to the working directory
//! (`unix://localhost:2389` is the file `localhost:2389`), so every process here runs in
//! the test's directory. etcdctl must be on PATH.

use std::path::Path;
use std::process::{Command, Output};

use detcd_server::tls::certs::{Ca, Leaf};

use super::harness::test_dir;
use super::tls::{etcdctl_in, issue, ok, put, refused, spawn, wait_until, Member, Spec};

/// `flags` followed by a read of the test's key.
fn get<'a>(flags: &[&'a str]) -> Vec<&'a str> {
    [flags, &["get", "k", "--print-value-only"]].concat()
}

/// detcdctl in the working directory `cwd`.
fn detcdctl_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detcdctl-e2e"))
        .current_dir(cwd)
        .args(["--dial-timeout=1s", "--command-timeout=2s"])
        .args(args)
        .output()
        .expect("run detcdctl")
}

#[test]
fn clients_and_peers_over_unix_sockets() {
    let dir = test_dir("unix");
    let ca = Ca::new("unix CA").expect("ca");
    let ca_file = put(&dir, "ca.crt", &ca.cert_pem);
    // Sockets are named localhost:N, so TLS checks the host name "localhost".
    let pairs: Vec<(String, String)> = (0..3)
        .map(|i| {
            issue(
                &ca,
                &dir,
                &format!("m{i}"),
                &Leaf::new("member", &["localhost"], 10 + i),
            )
        })
        .collect();
    let client = issue(&ca, &dir, "client", &Leaf::new("client", &["localhost"], 20));
    let peer = |i: usize| format!("unixs://localhost:{}", 2380 + 10 * i);
    let cluster = (0..3)
        .map(|i| format!("m{i}={}", peer(i)))
        .collect::<Vec<_>>()
        .join(",");
    // etcd's peer listeners remove a stale file before listening.
    for i in 0..3 {
        std::fs::write(dir.join(format!("localhost:{}", 2380 + 10 * i)), "stale").expect("stale file");
    }
    let clients = [
        "unixs://localhost:2379",
        "unix://localhost:2389",
        "unix://localhost:2399",
    ];
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let mut flags = vec![
                "--peer-cert-file",
                &pairs[i].0,
                "--peer-key-file",
                &pairs[i].1,
                "--peer-trusted-ca-file",
                &ca_file,
                "--peer-client-cert-auth",
                // A unix socket's dialer has no address to check the certificate
                // against: etcd refuses it unless told to skip that check (both
                // spellings of the flag).
                if i == 2 {
                    "--peer-skip-client-san-verification"
                } else {
                    "--experimental-peer-skip-client-san-verification"
                },
            ];
            if i == 0 {
                flags.extend([
                    "--cert-file",
                    &pairs[0].0,
                    "--key-file",
                    &pairs[0].1,
                    "--trusted-ca-file",
                    &ca_file,
                    "--client-cert-auth",
                ]);
            }
            let name = format!("m{i}");
            let spec = Spec {
                name: &name,
                client_urls: clients[i],
                peer_url: &peer(i),
                initial_cluster: &cluster,
                state: "new",
                cwd: Some(&dir),
            };
            spawn(&dir.join(&name), &spec, &flags)
        })
        .collect();
    let etcdctl = |args: &[&str]| etcdctl_in(&dir, args);
    wait_until("the cluster commits over unix sockets", || {
        etcdctl(&["--endpoints", clients[1], "put", "k", "over-unix"])
            .status
            .success()
    });
    let tls_client = [
        "--endpoints",
        clients[0],
        "--cacert",
        &ca_file,
        "--cert",
        &client.0,
        "--key",
        &client.1,
    ];
    wait_until("the unixs client socket serves the value", || {
        etcdctl(&get(&tls_client)).stdout.starts_with(b"over-unix")
    });
    // Linearizable reads through m2 need its link to the leader both ways.
    assert_eq!(ok(&etcdctl(&get(&["--endpoints", clients[2]]))), "over-unix\n");
    let list = ok(&etcdctl(&["--endpoints", clients[1], "member", "list"]));
    for url in [peer(0).as_str(), peer(2).as_str(), clients[0], clients[1]] {
        assert!(list.contains(url), "{url} missing from the member list:\n{list}");
    }
    let status = ok(&etcdctl(&[&tls_client[..], &["endpoint", "status"]].concat()));
    assert!(status.starts_with("unixs://localhost:2379, "), "{status}");

    // The members probe each other's /raft/probing over the TLS peer sockets.
    wait_until("round trips over unix peer sockets", || {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "--unix-socket"])
            .arg(dir.join("localhost:2389"))
            .arg("http://localhost/metrics")
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("etcd_network_peer_round_trip_time_seconds_sum{To=\""))
            .filter(|rest| rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0))
            .count()
            == 2
    });

    // The TLS socket speaks no plain text, and wants a client certificate.
    let plain = etcdctl(&get(&["--endpoints", "unix://localhost:2379"]));
    assert!(!plain.status.success(), "plain text served on a unixs socket");
    let no_cert = etcdctl(&get(&["--endpoints", clients[0], "--cacert", &ca_file]));
    assert!(!no_cert.status.success(), "no client certificate, yet served");

    // detcdctl dials the same sockets.
    assert_eq!(ok(&detcdctl_in(&dir, &get(&tls_client))), "over-unix\n");
    assert_eq!(
        ok(&detcdctl_in(&dir, &get(&["--endpoints", clients[1]]))),
        "over-unix\n"
    );
    let refused_ctl = detcdctl_in(&dir, &get(&["--endpoints", clients[0], "--cacert", &ca_file]));
    assert_eq!(
        String::from_utf8_lossy(&refused_ctl.stderr),
        "Error: context deadline exceeded\n"
    );

    // A fourth member joins over a unix peer socket (`--initial-cluster-state existing`).
    ok(&etcdctl(&[
        "--endpoints",
        clients[1],
        "member",
        "add",
        "m3",
        "--peer-urls=unixs://localhost:2410",
    ]));
    let joined_cluster = format!("{cluster},m3=unixs://localhost:2410");
    let spec = Spec {
        name: "m3",
        client_urls: "unix://localhost:2419",
        peer_url: "unixs://localhost:2410",
        initial_cluster: &joined_cluster,
        state: "existing",
        cwd: Some(&dir),
    };
    let m3 = spawn(
        &dir.join("m3"),
        &spec,
        &[
            "--peer-cert-file",
            &pairs[1].0,
            "--peer-key-file",
            &pairs[1].1,
            "--peer-trusted-ca-file",
            &ca_file,
            "--peer-client-cert-auth",
            "--peer-skip-client-san-verification",
        ],
    );
    wait_until("the joined member serves the value", || {
        etcdctl(&get(&["--endpoints", "unix://localhost:2419"]))
            .stdout
            .starts_with(b"over-unix")
    });

    // Sockets go away with their members; a leftover client socket fails the bind,
    // as in etcd (only peer listeners remove a stale file).
    m3.terminate();
    for member in members {
        member.terminate();
    }
    for name in [
        "localhost:2379",
        "localhost:2380",
        "localhost:2389",
        "localhost:2400",
        "localhost:2410",
        "localhost:2419",
    ] {
        assert!(!dir.join(name).exists(), "{name} outlived its member");
    }
    std::fs::write(dir.join("localhost:2409"), "stale").expect("stale file");
    let spec = Spec {
        name: "lone",
        client_urls: "unix://localhost:2409",
        peer_url: "unix://localhost:2420",
        initial_cluster: "lone=unix://localhost:2420",
        state: "new",
        cwd: Some(&dir),
    };
    let log = refused(spawn(&dir.join("lone"), &spec, &[]));
    assert!(
        log.contains("cannot listen on client URL unix://localhost:2409") && log.contains("in use"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
