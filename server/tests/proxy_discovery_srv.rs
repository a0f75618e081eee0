//! `--discovery-srv` of `detcd gateway start` and `detcd grpc-proxy start`, against an
//! in-process DNS server on loopback (support/dns.rs): both take the endpoints of the
//! domain's `_etcd-client[-ssl]` SRV records (as etcd 3.4's `discoverEndpoints`), the
//! real etcdctl puts and gets through them; without `--insecure-discovery` the http
//! records are dropped and the proxy falls back to `--endpoints`; no records at all is
//! etcd's "dns lookup errors" and exit status 1. Without `--insecure-discovery` a
//! TLS server whose certificate names the domain is kept, one from another CA dropped. (etcd itself cannot be pointed at a
//! test DNS server, so the answers are not compared with it.)
//!
//! Skipped (with a notice) without `etcd` and `etcdctl` on PATH; a failure under CI.

#[path = "support/dns.rs"]
mod dns;
#[path = "support/members.rs"]
mod members;
#[path = "support/proxy_proc.rs"]
mod proxy_proc;

use std::process::Command;
use std::time::{Duration, Instant};

use detcd_testkit::{etcdctl_ok, free_port, start_server};
use dns::{DnsServer, Rec};
use proxy_proc::{start_proxy_env, tools_present, DETCD};

const DOMAIN: &str = "proxy.test";
const DNS_ENV: &str = "DETCD_TEST_DNS_SERVER";

/// `_<service>._tcp.proxy.test SRV 0 0 <port> localhost.`
fn client_record(service: &str, port: u16) -> Rec {
    Rec::Srv(
        format!("_{service}._tcp.{DOMAIN}"),
        0,
        0,
        port,
        "localhost.".to_string(),
    )
}

fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

#[test]
fn both_proxies_reach_the_members_named_by_srv_records() {
    if !tools_present("both_proxies_reach_the_members_named_by_srv_records") {
        return;
    }
    let detcd = start_server(DETCD, "proxy-srv");
    let dns = DnsServer::start(vec![client_record("etcd-client", port_of(&detcd.endpoint))]);
    let dns_addr = dns.addr.to_string();
    // The fallback endpoint is dead: only the discovered one can answer.
    let dead = format!("127.0.0.1:{}", free_port());
    for kind in ["gateway", "grpc-proxy"] {
        let proxy = start_proxy_env(
            DETCD,
            kind,
            &[
                format!("--discovery-srv={DOMAIN}"),
                "--insecure-discovery".into(),
                format!("--endpoints={dead}"),
            ],
            &[(DNS_ENV, &dns_addr)],
        );
        etcdctl_ok(&proxy.addr, &["put", &format!("via-{kind}"), "v"]);
        assert_eq!(
            etcdctl_ok(&proxy.addr, &["get", &format!("via-{kind}")]),
            format!("via-{kind}\nv\n"),
            "{}",
            proxy.log()
        );
        let log = proxy.log();
        assert!(
            log.contains("discovered cluster from SRV")
                && log.contains(&format!("http://localhost:{}", port_of(&detcd.endpoint))),
            "{log}"
        );
    }
}

#[test]
fn insecure_records_are_dropped_without_insecure_discovery() {
    if !tools_present("insecure_records_are_dropped_without_insecure_discovery") {
        return;
    }
    let detcd = start_server(DETCD, "proxy-srv-insecure");
    // The record names a dead port; the fallback --endpoints is the member.
    let dns = DnsServer::start(vec![client_record("etcd-client", free_port())]);
    let dns_addr = dns.addr.to_string();
    for kind in ["gateway", "grpc-proxy"] {
        let proxy = start_proxy_env(
            DETCD,
            kind,
            &[
                format!("--discovery-srv={DOMAIN}"),
                format!("--endpoints=http://{}", detcd.endpoint),
            ],
            &[(DNS_ENV, &dns_addr)],
        );
        etcdctl_ok(&proxy.addr, &["put", "k", kind]);
        assert_eq!(
            etcdctl_ok(&proxy.addr, &["get", "k", "--print-value-only"]),
            format!("{kind}\n")
        );
        let log = proxy.log();
        assert!(log.contains("failed to validate discovered endpoints"), "{log}");
        assert!(log.contains("is insecure"), "{log}");
    }
}

#[test]
fn no_records_is_etcds_lookup_error() {
    let dns = DnsServer::start(vec![]);
    let dns_addr = dns.addr.to_string();
    for kind in ["gateway", "grpc-proxy"] {
        let out = Command::new(DETCD)
            .args([
                kind,
                "start",
                &format!("--discovery-srv={DOMAIN}"),
                "--listen-addr=127.0.0.1:0",
            ])
            .env(DNS_ENV, &dns_addr)
            .output()
            .expect("run detcd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{kind}: {err}");
        // Go's resolver's words, as etcd 3.4's proxies print them.
        assert!(
            err.contains(&format!(
                "dns lookup errors: lookup _etcd-client-ssl._tcp.proxy.test on {dns_addr}: no such host and lookup _etcd-client._tcp.proxy.test on {dns_addr}: no such host"
            )),
            "{kind}: {err}"
        );
    }
}

#[test]
fn without_insecure_discovery_the_gateway_keeps_servers_valid_for_the_domain() {
    if !tools_present("without_insecure_discovery_the_gateway_keeps_servers_valid_for_the_domain") {
        return;
    }
    use detcd_server::tls::certs::{Ca, Leaf};
    let dir = members::temp_dir("proxy-srv-tls");
    let ca = Ca::new("proxy srv test CA").expect("ca");
    let other_ca = Ca::new("another CA").expect("ca");
    // The member's certificate names the SRV domain only.
    let issued = ca.issue(&Leaf::new("member", &[DOMAIN], 2)).expect("issue");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    };
    let (ca_file, other_ca_file, cert, key) = (
        write("ca.crt", &ca.cert_pem),
        write("other.crt", &other_ca.cert_pem),
        write("m.crt", &issued.cert_pem),
        write("m.key", &issued.key_pem),
    );
    let (peer, client) = (free_port(), free_port());
    let client_url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let args: Vec<String> = [
        "--initial-cluster",
        &format!("tls1={peer_url}"),
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--cert-file",
        &cert,
        "--key-file",
        &key,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _member = members::Member(members::detcd(&dir, "tls1", &args).spawn().expect("spawn"));
    // The gateway dials the discovered endpoints once, when it starts: the member must
    // be listening by then, or the endpoint is dropped as unreachable.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
        assert!(Instant::now() < deadline, "the member listens on {client_url}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dns = DnsServer::start(vec![client_record("etcd-client-ssl", client)]);
    let dns_addr = dns.addr.to_string();
    let dead = format!("127.0.0.1:{}", free_port());
    let gateway = start_proxy_env(
        DETCD,
        "gateway",
        &[
            format!("--discovery-srv={DOMAIN}"),
            format!("--trusted-ca-file={ca_file}"),
            format!("--endpoints={dead}"),
        ],
        &[(DNS_ENV, &dns_addr)],
    );
    // TLS passes through the gateway to the member (whose certificate names the
    // domain, not the gateway's address).
    let tls = ["--insecure-transport=false", "--insecure-skip-tls-verify"];
    let deadline = Instant::now() + Duration::from_secs(20);
    while detcd_testkit::etcdctl(&gateway.addr, &[&tls[..], &["put", "tls-k", "v"]].concat())
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "{}", gateway.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = gateway.log();
    assert!(log.contains("using validated discovered SRV endpoints"), "{log}");
    // Checked against another CA the server is dropped, and the gateway falls back.
    let fallback = start_proxy_env(
        DETCD,
        "gateway",
        &[
            format!("--discovery-srv={DOMAIN}"),
            format!("--trusted-ca-file={other_ca_file}"),
            format!("--endpoints={dead}"),
        ],
        &[(DNS_ENV, &dns_addr)],
    );
    let log = fallback.log();
    assert!(log.contains("failed to validate discovered endpoints"), "{log}");
    assert!(
        log.contains(&format!("\"https://localhost:{client}\" failed to dial")),
        "{log}"
    );
}
