//! The certificate checks beyond the CA, through real TLS handshakes between real
//! processes: a CRL rewritten on disk while the member runs, the allowed host name of
//! client certificates, and on the peer port the allowed CN, the allowed host name, the
//! CRL and etcd's address check of a dialer's certificate (with the flag that skips it).
//! A refused member is logged on both sides: by the member that refuses its
//! certificate, and by itself when the handshake fails. etcdctl must be on PATH.

use std::path::Path;

use detcd_server::tls::certs::{Ca, Leaf};

use detcd_testkit::free_port;

use super::harness::{read, test_dir};
use super::tls::{etcdctl, issue, ok, put, spawn, start, wait_until, with_cert, Member, Spec};

#[test]
fn a_crl_rewritten_on_disk_refuses_a_newly_revoked_client() {
    let dir = test_dir("tls-crl-reload");
    let ca = Ca::new("crl CA").expect("ca");
    let ca_file = put(&dir, "ca.crt", &ca.cert_pem);
    let server = issue(&ca, &dir, "server", &Leaf::new("server", &["127.0.0.1"], 1));
    let alice = issue(&ca, &dir, "alice", &Leaf::new("alice", &["127.0.0.1"], 2));
    let bob = issue(&ca, &dir, "bob", &Leaf::new("bob", &["127.0.0.1"], 3));
    let crl = put(&dir, "ca.crl", &ca.crl(&[99]).expect("crl"));
    let https = format!("https://127.0.0.1:{}", free_port());
    let member = start(
        &dir,
        &https,
        &[
            "--cert-file",
            &server.0,
            "--key-file",
            &server.1,
            "--trusted-ca-file",
            &ca_file,
            "--client-cert-auth",
            "--client-crl-file",
            &crl,
        ],
    );
    wait_until("alice is served", || {
        with_cert(&https, &ca_file, &alice, &["put", "k", "v"])
            .status
            .success()
    });
    // Revoke alice: the next handshake reads the new list, no restart.
    put(&dir, "ca.crl", &ca.crl(&[99, 2]).expect("crl"));
    wait_until("alice is refused", || {
        !with_cert(&https, &ca_file, &alice, &["get", "k"])
            .status
            .success()
    });
    assert_eq!(ok(&with_cert(&https, &ca_file, &bob, &["get", "k"])), "k\nv\n");
    let log = read(&member.log);
    assert!(log.contains("Revoked"), "no revocation in the log:\n{log}");
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn client_cert_allowed_hostname() {
    let dir = test_dir("tls-client-hostname");
    let ca = Ca::new("hostname CA").expect("ca");
    let ca_file = put(&dir, "ca.crt", &ca.cert_pem);
    let server = issue(&ca, &dir, "server", &Leaf::new("server", &["127.0.0.1"], 1));
    let allowed = issue(&ca, &dir, "allowed", &Leaf::new("a", &["client.example"], 2));
    let other = issue(&ca, &dir, "other", &Leaf::new("b", &["127.0.0.1"], 3));
    let https = format!("https://127.0.0.1:{}", free_port());
    let member = start(
        &dir,
        &https,
        &[
            "--cert-file",
            &server.0,
            "--key-file",
            &server.1,
            "--trusted-ca-file",
            &ca_file,
            "--client-cert-allowed-hostname",
            "client.example",
        ],
    );
    wait_until("the allowed host name is served", || {
        with_cert(&https, &ca_file, &allowed, &["put", "k", "v"])
            .status
            .success()
    });
    let refused = with_cert(&https, &ca_file, &other, &["get", "k"]);
    assert!(
        !refused.status.success(),
        "a certificate for another host was served"
    );
    let log = read(&member.log);
    assert!(log.contains("HostName authentication failed"), "{log}");
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One member of a three-member peer-TLS cluster: the host its peer URL names, its
/// certificate and its flags beyond the peer TLS ones every member has.
struct Peer<'a> {
    host: &'a str,
    pair: (String, String),
    flags: Vec<&'a str>,
}

/// Starts three members with peer TLS and `--peer-client-cert-auth`; returns them and
/// their (plain) client URLs.
fn peer_cluster(dir: &Path, ca_file: &str, peers: &[Peer<'_>; 3]) -> (Vec<Member>, Vec<String>) {
    let peer_urls: Vec<String> = peers
        .iter()
        .map(|p| format!("https://{}:{}", p.host, free_port()))
        .collect();
    let client_urls: Vec<String> = (0..3)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let cluster = (0..3)
        .map(|i| format!("m{i}={}", peer_urls[i]))
        .collect::<Vec<_>>()
        .join(",");
    let members = (0..3)
        .map(|i| {
            let name = format!("m{i}");
            let spec = Spec {
                name: &name,
                client_urls: &client_urls[i],
                peer_url: &peer_urls[i],
                initial_cluster: &cluster,
                state: "new",
                cwd: None,
            };
            let mut flags = vec![
                "--peer-cert-file",
                &peers[i].pair.0,
                "--peer-key-file",
                &peers[i].pair.1,
                "--peer-trusted-ca-file",
                ca_file,
                "--peer-client-cert-auth",
            ];
            flags.extend_from_slice(&peers[i].flags);
            spawn(&dir.join(&name), &spec, &flags)
        })
        .collect();
    (members, client_urls)
}

/// m0 and m1 form the cluster; m2's certificate fails `flag`'s check: the others refuse
/// it with `why` in their logs, m2 logs the failed handshakes, and a write through m2
/// (which needs its link to the leader) fails.
fn refused_peer(tag: &str, m2_leaf: Leaf, flags: &[&str], why: &str) {
    let dir = test_dir(tag);
    let ca = Ca::new("peer CA").expect("ca");
    let ca_file = put(&dir, "ca.crt", &ca.cert_pem);
    let good = Leaf::new("member", &["127.0.0.1", "peer.example"], 10);
    let crl = put(&dir, "ca.crl", &ca.crl(&[66]).expect("crl"));
    let mut peers: [Peer<'_>; 3] = [0, 1, 2].map(|i| Peer {
        host: "127.0.0.1",
        pair: issue(
            &ca,
            &dir,
            &format!("m{i}"),
            &Leaf {
                serial: 10 + i,
                ..good.clone()
            },
        ),
        flags: [flags, &["--peer-crl-file", &crl]].concat(),
    });
    peers[2].pair = issue(&ca, &dir, "m2", &m2_leaf);
    let (members, clients) = peer_cluster(&dir, &ca_file, &peers);
    wait_until("m0 and m1 commit", || {
        etcdctl(&["--endpoints", &clients[0], "put", "k", "v"])
            .status
            .success()
    });
    wait_until("the others refuse m2", || {
        members[..2].iter().any(|m| read(&m.log).contains(why))
    });
    wait_until("m2 logs its refused handshakes", || {
        let log = read(&members[2].log);
        log.contains("handshake refused") && log.contains("rejected peer connection")
    });
    let through_m2 = etcdctl(&["--endpoints", &clients[2], "put", "k", "w"]);
    assert!(!through_m2.status.success(), "a refused member forwarded a write");
    drop(members);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn peer_cert_allowed_cn_refuses_another_cn_on_both_sides() {
    refused_peer(
        "tls-peer-cn",
        Leaf::new("intruder", &["127.0.0.1", "peer.example"], 20),
        &["--peer-cert-allowed-cn", "member"],
        "CommonName authentication failed",
    );
}

#[test]
fn peer_cert_allowed_hostname_refuses_another_host_on_both_sides() {
    refused_peer(
        "tls-peer-hostname",
        Leaf::new("member", &["127.0.0.1"], 20),
        &["--peer-cert-allowed-hostname", "peer.example"],
        "HostName authentication failed",
    );
}

#[test]
fn peer_crl_file_refuses_a_revoked_member_on_both_sides() {
    refused_peer(
        "tls-peer-crl",
        Leaf::new("member", &["127.0.0.1", "peer.example"], 66),
        &[],
        "Revoked",
    );
}

/// m2 listens on 127.0.0.2 with a certificate for that address only; it dials the
/// others from 127.0.0.1, which etcd's address check of a dialer's certificate refuses
/// unless `--(experimental-)peer-skip-client-san-verification` is given.
#[test]
fn peer_address_check_and_skip_client_san_verification() {
    for skip in [false, true] {
        let dir = test_dir("tls-peer-san");
        let ca = Ca::new("san CA").expect("ca");
        let ca_file = put(&dir, "ca.crt", &ca.cert_pem);
        let flags = |spelling: &'static str| if skip { vec![spelling] } else { Vec::new() };
        let peers = [0u64, 1, 2].map(|i| {
            let host = if i == 2 { "127.0.0.2" } else { "127.0.0.1" };
            Peer {
                host,
                pair: issue(&ca, &dir, &format!("m{i}"), &Leaf::new("member", &[host], 10 + i)),
                flags: flags(if i == 2 {
                    "--peer-skip-client-san-verification"
                } else {
                    "--experimental-peer-skip-client-san-verification"
                }),
            }
        });
        let (members, clients) = peer_cluster(&dir, &ca_file, &peers);
        wait_until("m0 and m1 commit", || {
            etcdctl(&["--endpoints", &clients[0], "put", "k", "v"])
                .status
                .success()
        });
        if skip {
            wait_until("m2 forwards a write", || {
                etcdctl(&["--endpoints", &clients[2], "put", "k", "w"])
                    .status
                    .success()
            });
        } else {
            wait_until("the others refuse m2's address", || {
                members[..2]
                    .iter()
                    .any(|m| read(&m.log).contains("certificate is valid for 127.0.0.2, not 127.0.0.1"))
            });
            let through_m2 = etcdctl(&["--endpoints", &clients[2], "put", "k", "w"]);
            assert!(!through_m2.status.success(), "m2 forwarded a write");
        }
        drop(members);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
