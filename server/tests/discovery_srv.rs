//! DNS SRV discovery against an in-process DNS server on loopback (support/dns.rs):
//! the SRV lookups themselves (https and http records combined, members named as etcd
//! names them, scheme mismatches, client endpoints), then three detcd members
//! bootstrapping a cluster from `_etcd-server._tcp` records, etcd's errors, and etcd
//! 3.4's v2 proxy (`--proxy on`) finding its cluster in the same records.
//!
//! The cluster tests need `etcdctl` (skipped with a notice without it, a failure under
//! CI).

#[path = "support/curl.rs"]
mod curl;
#[path = "support/dns.rs"]
mod dns;
#[path = "support/members.rs"]
mod members;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use detcd_server::discovery::dns::{Dns, TEST_DNS_SERVER_ENV};
use detcd_server::discovery::srv::{client_endpoints, cluster_from_dns};
use detcd_server::urls::parse_url;
use detcd_testkit::{etcdctl_ok, free_port, wait_healthy};
use dns::{DnsServer, Rec};
use members::{tools_present, wait_for_started, Member};

const DOMAIN: &str = "example.test";
const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn srv(service: &str, port: u16, target: &str) -> Rec {
    Rec::Srv(
        format!("_{service}._tcp.{DOMAIN}"),
        0,
        0,
        port,
        target.to_string(),
    )
}

#[test]
fn https_and_http_records_are_combined_and_this_member_found_by_address() {
    let server = DnsServer::start(vec![
        srv("etcd-server-ssl", 2380, "a.example.test."),
        srv("etcd-server-ssl", 2381, "b.example.test."),
        srv("etcd-server", 2480, "c.example.test."),
        srv("etcd-server", 2481, "d.example.test."),
        Rec::A("a.example.test".into(), Ipv4Addr::new(127, 0, 0, 11)),
        Rec::A("b.example.test".into(), Ipv4Addr::new(127, 0, 0, 12)),
        Rec::A("c.example.test".into(), Ipv4Addr::new(127, 0, 0, 13)),
        Rec::A("d.example.test".into(), Ipv4Addr::new(127, 0, 0, 14)),
    ]);
    let dns = Dns::with_server(server.addr);
    // This member advertises an IP address; the record names it by host name.
    let own = vec![parse_url("http://127.0.0.13:2480").unwrap()];
    let found = runtime()
        .block_on(cluster_from_dns(&dns, DOMAIN, "", "me", &own))
        .expect("cluster");
    assert_eq!(
        found,
        vec![
            "0=https://a.example.test:2380",
            "1=https://b.example.test:2381",
            "me=http://c.example.test:2480",
            "2=http://d.example.test:2481",
        ]
    );
}

#[test]
fn service_name_suffix_scheme_mismatch_and_missing_records() {
    let server = DnsServer::start(vec![
        srv("etcd-server-ssl-blue", 2380, "a.example.test."),
        srv("etcd-server-blue", 2381, "b.example.test."),
        Rec::A("a.example.test".into(), LOCAL),
        Rec::A("b.example.test".into(), LOCAL),
    ]);
    let dns = Dns::with_server(server.addr);
    let rt = runtime();
    // With the suffix, both services are found.
    let own = vec![parse_url("http://127.0.0.1:2381").unwrap()];
    let found = rt
        .block_on(cluster_from_dns(&dns, DOMAIN, "blue", "me", &own))
        .unwrap();
    assert_eq!(
        found,
        vec!["0=https://a.example.test:2380", "me=http://b.example.test:2381"]
    );
    // This member advertises http where the https record points at it: that record is
    // refused with etcd's words, the http one still counts.
    let own = vec![parse_url("http://127.0.0.1:2380").unwrap()];
    let found = rt
        .block_on(cluster_from_dns(&dns, DOMAIN, "blue", "me", &own))
        .unwrap();
    assert_eq!(found, vec!["0=http://b.example.test:2381"]);
    let server2 = DnsServer::start(vec![
        srv("etcd-server-ssl", 2380, "a.example.test."),
        Rec::A("a.example.test".into(), LOCAL),
    ]);
    let e = rt
        .block_on(cluster_from_dns(
            &Dns::with_server(server2.addr),
            DOMAIN,
            "",
            "me",
            &own,
        ))
        .unwrap_err();
    assert!(
        e.contains("error querying DNS SRV records for _etcd-server-ssl bootstrap at https://a.example.test:2380 from DNS for etcd-server-ssl has scheme mismatch with expected peer http://127.0.0.1:2380"),
        "{e}"
    );
    assert!(
        e.contains("error querying DNS SRV records for _etcd-server "),
        "{e}"
    );
    // No records at all under another domain.
    let e = rt
        .block_on(cluster_from_dns(&dns, "other.test", "", "me", &own))
        .unwrap_err();
    assert!(
        e.starts_with("error querying DNS SRV records for _etcd-server-ssl "),
        "{e}"
    );
}

#[test]
fn client_endpoints_come_from_etcd_client_records() {
    let server = DnsServer::start(vec![
        srv("etcd-client-ssl", 2379, "a.example.test."),
        srv("etcd-client", 12379, "b.example.test."),
        srv("etcd-client-x", 22379, "c.example.test."),
    ]);
    let dns = Dns::with_server(server.addr);
    let rt = runtime();
    let eps = rt.block_on(client_endpoints(&dns, DOMAIN, "")).unwrap();
    assert_eq!(
        eps,
        vec!["https://a.example.test.:2379", "http://b.example.test.:12379"]
    );
    let eps = rt.block_on(client_endpoints(&dns, DOMAIN, "x")).unwrap();
    assert_eq!(eps, vec!["http://c.example.test.:22379"]);
    let e = rt.block_on(client_endpoints(&dns, "none.test", "")).unwrap_err();
    assert!(e.starts_with("dns lookup errors: "), "{e}");
}

fn detcd(dir: &std::path::Path, name: &str, dns: &DnsServer, args: &[String]) -> Command {
    let mut c = members::detcd(dir, name, args);
    c.env(TEST_DNS_SERVER_ENV, dns.addr.to_string());
    c
}

#[test]
fn three_members_bootstrap_from_srv_records() {
    if tools_present(&[]) {
        bootstrap_three("http", "srv", &[], &[]);
    }
}

/// A fresh CA and a peer certificate for `hosts` it signed, as files in `dir`: the
/// CA's file, and the `--peer-cert-file` / `--peer-key-file` flags.
fn peer_certs(dir: &std::path::Path, hosts: &[&str]) -> (String, Vec<String>) {
    use detcd_server::tls::certs::{Ca, Leaf};
    let ca = Ca::new("srv peer CA").expect("ca");
    let issued = ca.issue(&Leaf::new("peer", hosts, 2)).expect("issue");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let flags = vec![
        "--peer-cert-file".to_string(),
        write("peer.crt", &issued.cert_pem),
        "--peer-key-file".into(),
        write("peer.key", &issued.key_pem),
    ];
    (write("ca.crt", &ca.cert_pem), flags)
}

#[test]
fn three_members_bootstrap_from_ssl_srv_records_with_peer_tls() {
    if !tools_present(&[]) {
        return;
    }
    let dir = members::temp_dir("srv-ssl-certs");
    let (ca, mut tls) = peer_certs(&dir, &["localhost", "127.0.0.1"]);
    tls.extend([
        "--peer-trusted-ca-file".to_string(),
        ca,
        "--peer-client-cert-auth".into(),
    ]);
    bootstrap_three("https", "srv-ssl", &tls, &[]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// etcd's rule for https peers found through SRV records without
/// `--peer-trusted-ca-file`: their certificates are checked, against the system's
/// roots, for the SRV domain (not for each record's target). The certificates here
/// name only the domain; the CA is the system's through `SSL_CERT_FILE` (as Go reads
/// it), so the members can only reach each other by checking the domain.
#[test]
fn https_srv_peers_without_a_ca_file_are_checked_against_the_domain() {
    if !tools_present(&[]) {
        return;
    }
    let dir = members::temp_dir("srv-ssl-domain-certs");
    let (ca, tls) = peer_certs(&dir, &[DOMAIN]);
    bootstrap_three("https", "srv-ssl-domain", &tls, &[("SSL_CERT_FILE", ca)]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three members started from `_etcd-server[-ssl]._tcp` records for `scheme` peers.
struct Three {
    dir: std::path::PathBuf,
    members: Vec<Member>,
    peers: Vec<u16>,
    clients: Vec<u16>,
    endpoints: Vec<String>,
    _dns: DnsServer,
}

fn start_three(scheme: &str, tag: &str, extra: &[String], env: &[(&str, String)]) -> Three {
    let dir = members::temp_dir(tag);
    let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let service = if scheme == "https" {
        "etcd-server-ssl"
    } else {
        "etcd-server"
    };
    let mut records: Vec<Rec> = peers.iter().map(|p| srv(service, *p, "localhost.")).collect();
    records.push(Rec::A("localhost".into(), LOCAL));
    let server = DnsServer::start(records);
    let mut members = Vec::new();
    for i in 0..3 {
        let name = format!("m{}", i + 1);
        // m3 advertises its address, the others the host name the records use.
        let advertised = if i == 2 {
            format!("{scheme}://127.0.0.1:{}", peers[i])
        } else {
            format!("{scheme}://localhost:{}", peers[i])
        };
        let client = format!("http://127.0.0.1:{}", clients[i]);
        let mut args: Vec<String> = vec![
            "--discovery-srv".into(),
            DOMAIN.into(),
            "--initial-cluster-token".into(),
            "srv-test".into(),
            "--listen-peer-urls".into(),
            format!("{scheme}://127.0.0.1:{}", peers[i]),
            "--initial-advertise-peer-urls".into(),
            advertised,
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
        ];
        args.extend(extra.iter().cloned());
        let mut command = detcd(&dir, &name, &server, &args);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let child = command.spawn().expect("spawn detcd");
        members.push(Member(child));
    }
    let endpoints: Vec<String> = clients.iter().map(|c| format!("127.0.0.1:{c}")).collect();
    for ep in &endpoints {
        wait_healthy(ep);
    }
    Three {
        dir,
        members,
        peers,
        clients,
        endpoints,
        _dns: server,
    }
}

/// Three members found through `_etcd-server[-ssl]._tcp` records for `scheme` peers;
/// checks their IDs, names and URLs and that they form one cluster.
fn bootstrap_three(scheme: &str, tag: &str, extra: &[String], env: &[(&str, String)]) {
    let Three {
        dir,
        members,
        peers,
        clients,
        endpoints,
        _dns,
    } = start_three(scheme, tag, extra, env);
    let listed = wait_for_started(&endpoints[0], 3);
    // The IDs are etcd's for the URLs as the records spell them and the token.
    let mut expected: Vec<String> = (0..3)
        .map(|i| {
            let url = parse_url(&format!("{scheme}://localhost:{}", peers[i])).unwrap();
            format!(
                "{:x}, started, m{}, {scheme}://localhost:{}, http://127.0.0.1:{}, false",
                detcd_server::config::member_id(&[url], "srv-test"),
                i + 1,
                peers[i],
                clients[i]
            )
        })
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    // One cluster: a write on one member is read on another.
    etcdctl_ok(&endpoints[0], &["put", "srv-key", "v"]);
    let got = etcdctl_ok(&endpoints[2], &["get", "srv-key", "--print-value-only"]);
    assert_eq!(got.trim(), "v");
    drop(members);
    let _ = std::fs::remove_dir_all(&dir);
}

/// etcd's `--discovery-srv` with `--initial-cluster-state existing`: a member added
/// to a cluster bootstrapped from SRV records finds the cluster in the records (now
/// listing it too) and joins.
#[test]
fn a_member_added_later_joins_through_srv_records_with_state_existing() {
    if !tools_present(&[]) {
        return;
    }
    let three = start_three("http", "srv-existing", &[], &[]);
    wait_for_started(&three.endpoints[0], 3);
    let (peer, client) = (free_port(), free_port());
    etcdctl_ok(
        &three.endpoints[0],
        &[
            "member",
            "add",
            "m4",
            &format!("--peer-urls=http://localhost:{peer}"),
        ],
    );
    let mut records: Vec<Rec> = three
        .peers
        .iter()
        .chain([&peer])
        .map(|p| srv("etcd-server", *p, "localhost."))
        .collect();
    records.push(Rec::A("localhost".into(), LOCAL));
    let dns = DnsServer::start(records);
    let client_url = format!("http://127.0.0.1:{client}");
    let args: Vec<String> = vec![
        "--discovery-srv".into(),
        DOMAIN.into(),
        "--initial-cluster-token".into(),
        "srv-test".into(),
        "--initial-cluster-state".into(),
        "existing".into(),
        "--listen-peer-urls".into(),
        format!("http://127.0.0.1:{peer}"),
        "--initial-advertise-peer-urls".into(),
        format!("http://localhost:{peer}"),
        "--listen-client-urls".into(),
        client_url.clone(),
        "--advertise-client-urls".into(),
        client_url,
    ];
    let m4 = Member(detcd(&three.dir, "m4", &dns, &args).spawn().expect("spawn detcd"));
    let endpoint = format!("127.0.0.1:{client}");
    wait_healthy(&endpoint);
    let listed = wait_for_started(&three.endpoints[0], 4);
    assert!(
        listed
            .iter()
            .any(|l| l.contains(&format!(", m4, http://localhost:{peer}, "))),
        "{listed:?}"
    );
    etcdctl_ok(&three.endpoints[1], &["put", "srv-existing", "v"]);
    let got = etcdctl_ok(&endpoint, &["get", "srv-existing", "--print-value-only"]);
    assert_eq!(got.trim(), "v");
    drop(m4);
    drop(three.members);
    let _ = std::fs::remove_dir_all(&three.dir);
}

#[test]
fn a_member_missing_from_the_records_or_half_found_and_conflicting_flags_are_refused() {
    let dir = members::temp_dir("srv-missing");
    let server = DnsServer::start(vec![
        srv("etcd-server", free_port(), "localhost."),
        Rec::A("localhost".into(), LOCAL),
    ]);
    let peer = format!("http://127.0.0.1:{}", free_port());
    let client = format!("http://127.0.0.1:{}", free_port());
    let base: Vec<String> = vec![
        "--discovery-srv".into(),
        DOMAIN.into(),
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer,
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
    ];
    let out = detcd(&dir, "lost", &server, &base)
        .stderr(Stdio::piped())
        .output()
        .expect("run detcd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot find local etcd member \"lost\" in SRV records"),
        "{stderr}"
    );
    // No records of either kind: both lookups' errors in Go's words, joined and
    // prefixed as etcd 3.5 reports them (checked against etcd 3.5.1 on a real resolver).
    let mut nowhere = base.clone();
    nowhere[1] = "none.test".into();
    let out = detcd(&dir, "lost", &server, &nowhere)
        .stderr(Stdio::piped())
        .output()
        .expect("run detcd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let dns = server.addr;
    assert!(
        stderr.contains(&format!("error setting up initial cluster: error querying DNS SRV records for _etcd-server-ssl lookup _etcd-server-ssl._tcp.none.test on {dns}: no such host; error querying DNS SRV records for _etcd-server lookup _etcd-server._tcp.none.test on {dns}: no such host")),
        "{stderr}"
    );
    // Found by one advertised URL, but the records miss the other.
    let found_port = free_port();
    let server_one = DnsServer::start(vec![
        srv("etcd-server", found_port, "localhost."),
        Rec::A("localhost".into(), LOCAL),
    ]);
    let two = format!("http://localhost:{found_port},http://127.0.0.1:{}", free_port());
    let mut partial = base.clone();
    partial[5] = two;
    let out = detcd(&dir, "half", &server_one, &partial)
        .stderr(Stdio::piped())
        .output()
        .expect("run detcd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--initial-cluster has half=http://localhost:{found_port} but missing from --initial-advertise-peer-urls=")),
        "{stderr}"
    );
    let mut conflicting = base.clone();
    conflicting.extend([
        "--initial-cluster".to_string(),
        "lost=http://127.0.0.1:1".to_string(),
    ]);
    let out = detcd(&dir, "lost", &server, &conflicting)
        .stderr(Stdio::piped())
        .output()
        .expect("run detcd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(detcd_server::config::CONFLICT_BOOTSTRAP_FLAGS),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn detcdctl(dns: &DnsServer, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_detcdctl"))
        .env(TEST_DNS_SERVER_ENV, dns.addr.to_string())
        .env_remove("ETCDCTL_ENDPOINTS")
        .args(args)
        .output()
        .expect("run detcdctl")
}

#[test]
fn detcdctl_finds_its_endpoints_in_client_srv_records() {
    if !tools_present(&[]) {
        return;
    }
    let member = detcd_testkit::start_server(env!("CARGO_BIN_EXE_detcd"), "srv-client");
    let port: u16 = member.endpoint.rsplit_once(':').unwrap().1.parse().unwrap();
    let server = DnsServer::start(vec![
        srv("etcd-client", port, "localhost."),
        srv("etcd-client-blue", port, "localhost."),
        Rec::A("localhost".into(), LOCAL),
    ]);
    let ok = |args: &[&str]| {
        let out = detcdctl(&server, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(ok(&["-d", DOMAIN, "put", "srv-k", "v1"]).trim(), "OK");
    assert_eq!(
        ok(&["--discovery-srv", DOMAIN, "get", "srv-k", "--print-value-only"]).trim(),
        "v1"
    );
    assert_eq!(
        ok(&[
            "--discovery-srv",
            DOMAIN,
            "--discovery-srv-name",
            "blue",
            "get",
            "srv-k",
            "--print-value-only"
        ])
        .trim(),
        "v1"
    );
    // The endpoint the records name is the one used.
    let health = detcdctl(&server, &["-d", DOMAIN, "endpoint", "health"]);
    let text =
        String::from_utf8_lossy(&health.stdout).into_owned() + &String::from_utf8_lossy(&health.stderr);
    assert!(
        text.contains(&format!("http://localhost.:{port} is healthy")),
        "{text}"
    );
    // With --insecure-discovery=false the http record is ignored, saying so.
    let out = detcdctl(
        &server,
        &[
            "-d",
            DOMAIN,
            "--insecure-discovery=false",
            "--endpoints",
            &member.endpoint,
            "get",
            "srv-k",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "ignoring discovered insecure endpoint \"http://localhost.:{port}\""
        )),
        "{stderr}"
    );
    assert!(out.status.success(), "falls back to --endpoints: {stderr}");
    // No records: both lookups' errors.
    let out = detcdctl(&server, &["-d", "none.test", "get", "srv-k"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("dns lookup errors: "), "{stderr}");
}

#[test]
fn without_insecure_discovery_servers_are_checked_against_the_domain() {
    use detcd_server::tls::certs::{Ca, Leaf};
    let dir = members::temp_dir("srv-tls");
    let ca = Ca::new("srv test CA").expect("ca");
    // The member's certificate names the SRV domain only.
    let issued = ca.issue(&Leaf::new("member", &[DOMAIN], 2)).expect("issue");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let (ca_file, cert, key) = (
        write("ca.crt", &ca.cert_pem),
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
    let _member = Member(members::detcd(&dir, "tls1", &args).spawn().expect("spawn"));
    let server = DnsServer::start(vec![
        srv("etcd-client-ssl", client, "localhost."),
        Rec::A("localhost".into(), LOCAL),
    ]);
    let secure = ["-d", DOMAIN, "--insecure-discovery=false", "--cacert", &ca_file];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = detcdctl(&server, &[&secure[..], &["put", "tls-k", "v"]].concat());
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = detcdctl(
        &server,
        &[&secure[..], &["get", "tls-k", "--print-value-only"]].concat(),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
    // With insecure discovery (the default) the endpoint's own host is checked, which
    // the certificate does not name.
    let out = detcdctl(
        &server,
        &[
            "-d",
            DOMAIN,
            "--cacert",
            &ca_file,
            "--dial-timeout",
            "1s",
            "get",
            "tls-k",
        ],
    );
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

/// etcd 3.4's v2 proxy takes its cluster from the `_etcd-server._tcp` records as a
/// member does (`PeerURLsMapAndToken("proxy")`), without being among them: a proxy
/// with `--discovery-srv` in front of a member the records name forwards v2 requests
/// to it.
#[test]
fn a_v2_proxy_finds_its_cluster_in_srv_records() {
    if !tools_present(&["curl"]) {
        return;
    }
    let dir = members::temp_dir("srv-v2proxy");
    let (peer, client, via_port) = (free_port(), free_port(), free_port());
    let server = DnsServer::start(vec![
        srv("etcd-server", peer, "localhost."),
        Rec::A("localhost".into(), LOCAL),
    ]);
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let member_args: Vec<String> = vec![
        "--enable-v2".into(),
        "--discovery-srv".into(),
        DOMAIN.into(),
        "--listen-peer-urls".into(),
        url(peer),
        "--initial-advertise-peer-urls".into(),
        format!("http://localhost:{peer}"),
        "--listen-client-urls".into(),
        url(client),
        "--advertise-client-urls".into(),
        url(client),
    ];
    let member = Member(detcd(&dir, "m1", &server, &member_args).spawn().expect("spawn"));
    let direct = format!("127.0.0.1:{client}");
    wait_healthy(&direct);
    let proxy_args: Vec<String> = vec![
        "--proxy".into(),
        "on".into(),
        "--discovery-srv".into(),
        DOMAIN.into(),
        "--listen-client-urls".into(),
        url(via_port),
        "--advertise-client-urls".into(),
        url(via_port),
    ];
    let proxy = Member(detcd(&dir, "p", &server, &proxy_args).spawn().expect("spawn"));
    let via = format!("127.0.0.1:{via_port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while curl::curl(&via, "GET", "/health", "", None, Some(2.0)).0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy did not answer /health"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, body) = curl::curl(&via, "PUT", "/v2/keys/srv", "value=v", None, None);
    assert_eq!(code, 201, "{body}");
    let (code, body) = curl::curl(&via, "GET", "/v2/keys/srv", "", None, None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""key":"/srv","value":"v""#), "{body}");
    // The member has the key: the proxy wrote through to it.
    let (code, body) = curl::curl(&direct, "GET", "/v2/keys/srv", "", None, None);
    assert!(code == 200 && body.contains(r#""value":"v""#), "{body}");
    // The peer URL as the record spells it is kept for a restart.
    let cluster = std::fs::read_to_string(dir.join("p").join("proxy").join("cluster")).unwrap();
    assert_eq!(cluster, format!("{{\"PeerURLs\":[\"http://localhost:{peer}\"]}}"));
    drop(proxy);
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}
