//! `--discovery-srv` of `detcd gateway start` and `detcd grpc-proxy start`, against an
//! in-process DNS server on loopback (support/dns.rs): both take the endpoints of the
//! domain's `_etcd-client[-ssl]` SRV records (as etcd 3.4's `discoverEndpoints`), the
//! real etcdctl puts and gets through them; without `--insecure-discovery` the http
//! records are dropped and the proxy falls back to `--endpoints`; no records at all is
//! etcd's "dns lookup errors" and exit status 1. (etcd itself cannot be pointed at a
//! test DNS server, so the answers are not compared with it.)
//!
//! Skipped (with a notice) without `etcd` and `etcdctl` on PATH; a failure under CI.

#[path = "support/dns.rs"]
mod dns;
#[path = "support/proxy_proc.rs"]
mod proxy_proc;
#[path = "support/server_proc.rs"]
mod server_proc;

use std::process::Command;

use dns::{DnsServer, Rec};
use proxy_proc::{start_proxy_env, tools_present, DETCD};
use server_proc::{etcdctl_ok, free_port, start_server};

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
        assert!(
            err.contains("dns lookup errors: lookup _etcd-client-ssl._tcp.proxy.test."),
            "{kind}: {err}"
        );
        assert!(
            err.contains(" and lookup _etcd-client._tcp.proxy.test."),
            "{kind}: {err}"
        );
    }
}
