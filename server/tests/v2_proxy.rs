//! etcd 3.4's v2 HTTP proxy (`detcd --proxy on|readonly`) in front of a detcd member:
//! it learns the member's client URL from the peer port's `GET /members`, forwards
//! HTTP/1 requests, refuses writes when readonly with etcd's empty 501, restarts from
//! `<data-dir>/proxy/cluster` without `--initial-cluster`, and answers etcd's 502 and 503
//! once the member is gone (an endpoint that failed is left out for the failure wait).
//!
//! Skipped with a notice without etcdctl or curl (a failure under CI).

#[path = "support/curl.rs"]
mod curl;
#[path = "support/members.rs"]
mod members;

use std::time::{Duration, Instant};

use curl::{curl, curl_url};
use detcd_testkit::{free_port, wait_healthy};
use members::{detcd, loopback_urls, tools_present, Member};

/// Waits until `/health` answers 200 over plain HTTP (the proxy serves no gRPC).
fn wait_http_health(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl(endpoint, "GET", "/health", "", None, Some(2.0)).0 != 200 {
        assert!(Instant::now() < deadline, "{endpoint} did not answer /health");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn proxy_args(client: u16, more: &[&str]) -> Vec<String> {
    let url = format!("http://127.0.0.1:{client}");
    let mut args: Vec<String> = vec![
        "--listen-client-urls".into(),
        url.clone(),
        "--advertise-client-urls".into(),
        url,
        "--proxy-failure-wait".into(),
        "60000".into(),
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

#[test]
fn a_proxy_forwards_to_the_member_it_learns_from_the_peer_port() {
    if !tools_present(&["curl"]) {
        return;
    }
    let dir = members::temp_dir("v2proxy");
    let (peer, client) = (free_port(), free_port());
    let mut args = vec![
        "--enable-v2".to_string(),
        "--initial-cluster".into(),
        format!("m1=http://127.0.0.1:{peer}"),
    ];
    args.extend(loopback_urls(peer, client));
    let member = Member(detcd(&dir, "m1", &args).spawn().expect("spawn"));
    let direct = format!("127.0.0.1:{client}");
    wait_healthy(&direct);
    let (code, body) = curl(&direct, "PUT", "/v2/keys/k", "value=v", None, None);
    assert_eq!(code, 201, "{body}");

    let via_port = free_port();
    let via = format!("127.0.0.1:{via_port}");
    let initial = format!("m1=http://127.0.0.1:{peer}");
    let readonly = Member(
        detcd(
            &dir,
            "p",
            &proxy_args(via_port, &["--proxy", "readonly", "--initial-cluster", &initial]),
        )
        .spawn()
        .expect("spawn"),
    );
    wait_http_health(&via);
    assert_eq!(
        curl(&via, "PUT", "/v2/keys/k", "value=w", None, None),
        (501, String::new())
    );
    let (code, body) = curl(&via, "GET", "/v2/keys/k", "", None, None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""key":"/k","value":"v""#), "{body}");
    assert_eq!(
        curl(&via, "GET", "/v2/config/local/proxy", "", None, None),
        (200, format!("{{\"endpoints\":[\"http://{direct}\"]}}\n"))
    );
    drop(readonly);

    // Restarted with no --initial-cluster: the data directory's proxy/cluster names the
    // member's peer URL; writes pass now.
    let cluster = std::fs::read_to_string(dir.join("p").join("proxy").join("cluster")).unwrap();
    assert_eq!(cluster, format!("{{\"PeerURLs\":[\"http://127.0.0.1:{peer}\"]}}"));
    let proxy = Member(
        detcd(&dir, "p", &proxy_args(via_port, &["--proxy", "on"]))
            .spawn()
            .expect("spawn"),
    );
    wait_http_health(&via);
    let (code, body) = curl(&via, "PUT", "/v2/keys/k", "value=w", None, None);
    assert_eq!(code, 200, "{body}");
    let (code, body) = curl(&direct, "GET", "/v2/keys/k", "", None, None);
    assert!(code == 200 && body.contains(r#""value":"w""#), "{body}");

    // The member gone: the request fails on its only endpoint (502), which is then left
    // out for the failure wait (503), in etcd's words.
    drop(member);
    assert_eq!(
        curl(&via, "GET", "/v2/keys/k", "", None, None),
        (
            502,
            r#"{"message":"httpproxy: unable to get response from 1 endpoint(s)"}"#.to_string()
        )
    );
    assert_eq!(
        curl(&via, "GET", "/v2/keys/k", "", None, None),
        (
            503,
            r#"{"message":"httpproxy: zero endpoints currently available"}"#.to_string()
        )
    );
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

/// curl over https trusting `tls.0` (the CA) with the client certificate `tls.1`, key
/// `tls.2`: the status and the body.
fn curl_https(tls: &(String, String, String), method: &str, url: &str, form: &str) -> (u16, String) {
    curl_url(
        &["--cacert", &tls.0, "--cert", &tls.1, "--key", &tls.2],
        method,
        url,
        form,
    )
}

/// etcd's proxy with TLS on every side: it serves https with `--cert-file`/`--key-file`
/// (client certificates required by `--trusted-ca-file`), dials the member's https
/// client URL presenting that same certificate, and asks the https peer URL for the
/// members with the `--peer-*` set. Plain http to its https listener gets no answer.
#[test]
fn a_proxy_serves_https_in_front_of_a_member_with_https_urls() {
    if !tools_present(&["curl"]) {
        return;
    }
    use detcd_server::tls::certs::{Ca, Leaf};
    let dir = members::temp_dir("v2proxytls");
    let ca = Ca::new("proxy test CA").expect("ca");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    };
    let ca_file = write("ca.crt", &ca.cert_pem);
    let files = |name: &str, serial: u64| {
        let issued = ca.issue(&Leaf::new(name, &["127.0.0.1"], serial)).expect("issue");
        (
            write(&format!("{name}.crt"), &issued.cert_pem),
            write(&format!("{name}.key"), &issued.key_pem),
        )
    };
    let (member_cert, member_key) = files("member", 2);
    let (proxy_cert, proxy_key) = files("proxy", 3);
    let (peer_cert, peer_key) = files("peer", 4);
    let (user_cert, user_key) = files("user", 5);
    let tls_args = |cert: &str, key: &str| -> Vec<String> {
        [
            "--cert-file",
            cert,
            "--key-file",
            key,
            "--trusted-ca-file",
            &ca_file,
            "--client-cert-auth",
            "--peer-cert-file",
            &peer_cert,
            "--peer-key-file",
            &peer_key,
            "--peer-trusted-ca-file",
            &ca_file,
            "--peer-client-cert-auth",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    let (peer, client) = (free_port(), free_port());
    let peer_url = format!("https://127.0.0.1:{peer}");
    let client_url = format!("https://127.0.0.1:{client}");
    let mut args: Vec<String> = vec![
        "--enable-v2".into(),
        "--initial-cluster".into(),
        format!("m1={peer_url}"),
        "--listen-peer-urls".into(),
        peer_url.clone(),
        "--initial-advertise-peer-urls".into(),
        peer_url.clone(),
        "--listen-client-urls".into(),
        client_url.clone(),
        "--advertise-client-urls".into(),
        client_url.clone(),
    ];
    args.extend(tls_args(&member_cert, &member_key));
    let member = Member(detcd(&dir, "m1", &args).spawn().expect("spawn"));
    let user = (ca_file.clone(), user_cert, user_key);
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl_https(&user, "GET", &format!("{client_url}/health"), "").0 != 200 {
        assert!(Instant::now() < deadline, "the member did not answer /health");
        std::thread::sleep(Duration::from_millis(200));
    }

    let via_port = free_port();
    let via_url = format!("https://127.0.0.1:{via_port}");
    let mut args: Vec<String> = vec![
        "--proxy".into(),
        "on".into(),
        "--initial-cluster".into(),
        format!("m1={peer_url}"),
        "--listen-client-urls".into(),
        via_url.clone(),
        "--advertise-client-urls".into(),
        via_url.clone(),
    ];
    args.extend(tls_args(&proxy_cert, &proxy_key));
    let proxy = Member(detcd(&dir, "p", &args).spawn().expect("spawn"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = curl_https(&user, "GET", &format!("{via_url}/v2/config/local/proxy"), "");
        if code == 200 && body.contains("https://") {
            assert_eq!(body, format!("{{\"endpoints\":[\"{client_url}\"]}}\n"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy found no endpoint: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, body) = curl_https(&user, "PUT", &format!("{via_url}/v2/keys/k"), "value=v");
    assert_eq!(code, 201, "{body}");
    let (code, body) = curl_https(&user, "GET", &format!("{via_url}/v2/keys/k"), "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""key":"/k","value":"v""#), "{body}");
    // Written through the proxy: the member has it.
    let (code, body) = curl_https(&user, "GET", &format!("{client_url}/v2/keys/k"), "");
    assert!(code == 200 && body.contains(r#""value":"v""#), "{body}");
    // Plain http to the https listener: no HTTP answer, as etcd 3.4.23's proxy (and
    // member) gives none: its TLS listener does the handshake before Go's net/http sees
    // the connection, so net/http's `400 Client sent an HTTP request to an HTTPS server.`
    // is never written (checked with curl against both).
    let (code, _) = curl(
        &format!("127.0.0.1:{via_port}"),
        "GET",
        "/v2/keys/k",
        "",
        None,
        Some(5.0),
    );
    assert_eq!(code, 0);
    drop(proxy);
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until a proxy lists an endpoint (`/v2/config/local/proxy`, which the proxy's
/// series do not count, unlike `/health`).
fn wait_endpoints(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !curl(endpoint, "GET", "/v2/config/local/proxy", "", None, Some(2.0))
        .1
        .contains("http://")
    {
        assert!(Instant::now() < deadline, "{endpoint} found no endpoint");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A proxy's `etcd_proxy_*` lines, sorted (series order is no part of the format), the
/// timing-dependent histogram buckets and sums without their values.
fn proxy_series(endpoint: &str) -> Vec<String> {
    let (code, text) = curl(endpoint, "GET", "/metrics", "", None, None);
    assert_eq!(code, 200, "{text}");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("etcd_proxy_"))
        .map(|l| {
            let timed = l.starts_with("etcd_proxy_handling_duration_seconds_bucket")
                || l.starts_with("etcd_proxy_handling_duration_seconds_sum");
            match l.rsplit_once(' ') {
                Some((series, _)) if timed => series.to_string(),
                _ => l.to_string(),
            }
        })
        .collect();
    lines.sort();
    lines
}

/// etcd 3.4's proxy answers `/metrics` itself with its `etcd_proxy_*` series: a detcd
/// proxy and an etcd 3.4 proxy in front of the same member, given the same requests,
/// show the same series (names, help, types, labels, counts). The member's own series
/// are not among them (`/metrics` is not forwarded).
#[test]
fn a_proxys_metrics_are_etcd_3_4_proxys() {
    if !tools_present(&["curl", "etcd"]) {
        return;
    }
    let dir = members::temp_dir("v2proxymetrics");
    let (peer, client) = (free_port(), free_port());
    let initial = format!("m1=http://127.0.0.1:{peer}");
    let mut args = vec![
        "--enable-v2".to_string(),
        "--initial-cluster".into(),
        initial.clone(),
    ];
    args.extend(loopback_urls(peer, client));
    let member = Member(detcd(&dir, "m1", &args).spawn().expect("spawn"));
    wait_healthy(&format!("127.0.0.1:{client}"));
    let (ours, theirs) = (free_port(), free_port());
    let detcd_proxy = Member(
        detcd(
            &dir,
            "p",
            &proxy_args(ours, &["--proxy", "on", "--initial-cluster", &initial]),
        )
        .spawn()
        .expect("spawn"),
    );
    let etcd_proxy = Member(
        std::process::Command::new("etcd")
            .args(["--name", "e", "--data-dir"])
            .arg(dir.join("e"))
            .args(proxy_args(
                theirs,
                &["--proxy", "on", "--initial-cluster", &initial],
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn etcd"),
    );
    let mut found = Vec::new();
    for (i, port) in [ours, theirs].into_iter().enumerate() {
        let via = format!("127.0.0.1:{port}");
        wait_endpoints(&via);
        let key = format!("/v2/keys/m{i}");
        assert_eq!(curl(&via, "PUT", &key, "value=v", None, None).0, 201);
        assert_eq!(curl(&via, "GET", &key, "", None, None).0, 200);
        assert_eq!(curl(&via, "GET", "/v2/keys/missing", "", None, None).0, 404);
        found.push(proxy_series(&via));
    }
    assert!(
        found[0].contains(&"etcd_proxy_handled_total{code=\"404\",method=\"GET\"} 1".to_string()),
        "{:#?}",
        found[0]
    );
    assert_eq!(found[0], found[1]);
    let (_, text) = curl(&format!("127.0.0.1:{ours}"), "GET", "/metrics", "", None, None);
    assert!(!text.contains("etcd_server_"), "{text}");
    drop(etcd_proxy);
    drop(detcd_proxy);
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}
