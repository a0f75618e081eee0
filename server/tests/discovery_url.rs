//! v2 discovery (`--discovery <url>`) with a real etcd 3.4 run with `--enable-v2` as the
//! discovery service: the token's directory prepared with `_config/size` as etcd's
//! clustering guide does with curl, three detcd members bootstrap through it, a fourth
//! is told the cluster is full (exiting with `--discovery-fallback exit`, running etcd
//! 3.4's v2 proxy to the cluster by default), and a real etcd registers itself under the
//! same key and value a detcd with its flags would.
//!
//! Skipped with a notice without etcd, etcdctl or curl (a failure under CI).

#[path = "support/curl.rs"]
mod curl;
#[path = "support/members.rs"]
mod members;

use std::process::Stdio;
use std::time::{Duration, Instant};

use curl::curl;
use detcd_server::config::member_id;
use detcd_server::urls::parse_url;
use detcd_testkit::{etcdctl_ok, free_port, start_server_with, wait_healthy};
use members::{detcd, loopback_urls, tools_present, wait_for_started, Member};

/// Creates the token's directory with its size, as the guide does.
fn prepare(endpoint: &str, token: &str, size: u32) -> String {
    let (code, body) = curl(
        endpoint,
        "PUT",
        &format!("/v2/keys/discovery/{token}/_config/size"),
        &format!("value={size}"),
        None,
        None,
    );
    assert_eq!(code, 201, "{body}");
    format!("http://{endpoint}/v2/keys/discovery/{token}")
}

/// The registered `(key, value)` pairs of a token, by creation.
fn registered(endpoint: &str, token: &str) -> Vec<(String, String)> {
    let (code, body) = curl(
        endpoint,
        "GET",
        &format!("/v2/keys/discovery/{token}?sorted=true"),
        "",
        None,
        None,
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut nodes: Vec<(u64, String, String)> = v["node"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|n| !n["key"].as_str().unwrap_or_default().ends_with("/_config"))
        .map(|n| {
            (
                n["createdIndex"].as_u64().unwrap_or(0),
                n["key"].as_str().unwrap_or_default().to_string(),
                n["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, k, v)| (k, v)).collect()
}

#[test]
fn three_members_bootstrap_through_a_discovery_url_and_a_fourth_finds_it_full() {
    if !tools_present(&["etcd", "curl"]) {
        return;
    }
    bootstrap_through("etcd", "disc-v2");
}

/// The same with a detcd run with `--enable-v2` as the discovery service.
#[test]
fn a_detcd_serving_v2_is_a_discovery_service_too() {
    if !tools_present(&["curl"]) {
        return;
    }
    bootstrap_through(env!("CARGO_BIN_EXE_detcd"), "disc-v2d");
}

/// Three members bootstrap through a discovery URL on `service` (run with
/// `--enable-v2`) and a fourth is told the cluster is full: with `--discovery-fallback
/// exit` it exits, by default it becomes a v2 proxy to the three.
fn bootstrap_through(service: &str, tag: &str) {
    let service = start_server_with(service, tag, &["--enable-v2"]);
    let durl = prepare(&service.endpoint, "tok3", 3);
    let dir = members::temp_dir(tag);
    let ports: Vec<(u16, u16)> = (0..4).map(|_| (free_port(), free_port())).collect();
    let mut running = Vec::new();
    for (i, (peer, client)) in ports.iter().take(3).enumerate() {
        let mut args = vec!["--discovery".to_string(), durl.clone(), "--enable-v2".into()];
        args.extend(loopback_urls(*peer, *client));
        let child = detcd(&dir, &format!("d{}", i + 1), &args).spawn().expect("spawn");
        running.push(Member(child));
    }
    let endpoints: Vec<String> = ports.iter().map(|(_, c)| format!("127.0.0.1:{c}")).collect();
    for ep in endpoints.iter().take(3) {
        wait_healthy(ep);
    }
    let listed = wait_for_started(&endpoints[0], 3);
    // IDs as etcd derives them for a discovery bootstrap: the URL is the cluster token.
    let id = |peer: u16| member_id(&[parse_url(&format!("http://127.0.0.1:{peer}")).unwrap()], &durl);
    let mut expected: Vec<String> = ports
        .iter()
        .take(3)
        .enumerate()
        .map(|(i, (peer, client))| {
            format!(
                "{:x}, started, d{}, http://127.0.0.1:{peer}, http://127.0.0.1:{client}, false",
                id(*peer),
                i + 1
            )
        })
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    // Each registered itself under its ID with `name=peer URL`.
    let mut keys = registered(&service.endpoint, "tok3");
    keys.sort();
    let mut want: Vec<(String, String)> = ports
        .iter()
        .take(3)
        .enumerate()
        .map(|(i, (peer, _))| {
            (
                format!("/discovery/tok3/{:x}", id(*peer)),
                format!("d{}=http://127.0.0.1:{peer}", i + 1),
            )
        })
        .collect();
    want.sort();
    assert_eq!(keys, want);
    etcdctl_ok(&endpoints[0], &["put", "k", "v"]);
    assert_eq!(
        etcdctl_ok(&endpoints[2], &["get", "k", "--print-value-only"]).trim(),
        "v"
    );
    // A fourth member: the cluster is full; with fallback exit it exits with etcd's error.
    let (peer, client) = ports[3];
    let mut args = vec![
        "--discovery".to_string(),
        durl.clone(),
        "--discovery-fallback".into(),
        "exit".into(),
    ];
    args.extend(loopback_urls(peer, client));
    let out = detcd(&dir, "d4", &args)
        .stderr(Stdio::piped())
        .output()
        .expect("run detcd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed to join discovery cluster (discovery: cluster is full)"),
        "{stderr}"
    );
    // By default (etcd 3.4's fallback) it runs as a v2 proxy to the cluster instead.
    let mut args = vec!["--discovery".to_string(), durl.clone()];
    args.extend(loopback_urls(peer, client));
    let proxy = Member(detcd(&dir, "d4", &args).spawn().expect("spawn"));
    let via = format!("127.0.0.1:{client}");
    wait_http_health(&via);
    let log = std::fs::read_to_string(dir.join("d4.log")).unwrap_or_default();
    assert!(
        log.contains("discovery cluster full, falling back to proxy"),
        "{log}"
    );
    let (code, body) = curl(&via, "PUT", "/v2/keys/through-proxy", "value=p", None, None);
    assert_eq!(code, 201, "{body}");
    let (code, body) = curl(&endpoints[1], "GET", "/v2/keys/through-proxy", "", None, None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""key":"/through-proxy","value":"p""#), "{body}");
    let (code, body) = curl(&via, "GET", "/health", "", None, None);
    assert_eq!((code, body.as_str()), (200, r#"{"health":"true","reason":""}"#));
    // It learned the three members' client URLs from their peer ports, and keeps their
    // peer URLs in <data-dir>/proxy/cluster as etcd does.
    let (code, body) = curl(&via, "GET", "/v2/config/local/proxy", "", None, None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut found: Vec<String> = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_string())
        .collect();
    found.sort();
    let mut clients: Vec<String> = endpoints.iter().take(3).map(|e| format!("http://{e}")).collect();
    clients.sort();
    assert_eq!(found, clients);
    let mut peers: Vec<String> = ports
        .iter()
        .take(3)
        .map(|(p, _)| format!("http://127.0.0.1:{p}"))
        .collect();
    peers.sort();
    let file = std::fs::read_to_string(dir.join("d4").join("proxy").join("cluster")).unwrap();
    assert_eq!(file, serde_json::json!({ "PeerURLs": peers }).to_string());
    drop(proxy);
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn etcd_registers_what_detcd_would_and_errors_are_etcds() {
    if !tools_present(&["etcd", "curl"]) {
        return;
    }
    let service = start_server_with("etcd", "disc-v2-cmp", &["--enable-v2"]);
    let durl = prepare(&service.endpoint, "tok1", 1);
    // A real etcd 3.4 bootstraps a one-member cluster through the token.
    let dir = members::temp_dir("disc-v2-cmp");
    let (peer, client) = (free_port(), free_port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let client_url = format!("http://127.0.0.1:{client}");
    let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
    let etcd = std::process::Command::new("etcd")
        .args(["--name", "e1", "--data-dir"])
        .arg(dir.join("e1"))
        .args(["--discovery", &durl])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn etcd");
    let _etcd = Member(etcd);
    let deadline = Instant::now() + Duration::from_secs(20);
    while registered(&service.endpoint, "tok1").is_empty() {
        assert!(Instant::now() < deadline, "etcd never registered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let id = member_id(&[parse_url(&peer_url).unwrap()], &durl);
    assert_eq!(
        registered(&service.endpoint, "tok1"),
        vec![(format!("/discovery/tok1/{id:x}"), format!("e1={peer_url}"))]
    );
    wait_healthy(&format!("127.0.0.1:{client}"));
    let status = etcdctl_ok(&format!("127.0.0.1:{client}"), &["endpoint", "status"]);
    assert!(
        status.contains(&format!("{id:x}")),
        "etcd's ID is detcd's formula's: {status}"
    );
    // Failed joins: etcd 3.4 (with --discovery-fallback exit) and detcd each try a token
    // and must fail with the same "failed to join discovery cluster (...)" error.
    let (p, c) = (free_port(), free_port());
    let base = format!("http://{}/v2/keys/discovery", service.endpoint);
    for (path, form) in [
        ("/v2/keys/discovery/nocfg/x", "value=1"),
        ("/v2/keys/discovery/badsize/_config/size", "value=abc"),
    ] {
        let (code, body) = curl(&service.endpoint, "PUT", path, form, None, None);
        assert_eq!(code, 201, "{body}");
    }
    for (token, what) in [
        ("nosize", "a token never prepared"),
        ("nocfg", "a directory without _config"),
        ("badsize", "a size that is no number"),
        ("tok1", "a full cluster"),
    ] {
        let durl = format!("{base}/{token}");
        let mut args = vec![
            "--discovery".to_string(),
            durl.clone(),
            "--discovery-fallback".into(),
            "exit".into(),
        ];
        args.extend(loopback_urls(p, c));
        let etcd = std::process::Command::new("etcd")
            .args(["--name", "x1", "--data-dir"])
            .arg(dir.join(format!("etcd-{token}")))
            .args(&args)
            .output()
            .expect("run etcd");
        let out = detcd(&dir, "x1", &args)
            .stderr(Stdio::piped())
            .output()
            .expect("run detcd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert_eq!(etcd.status.code(), Some(1), "{what}");
        let etcds = join_error(&String::from_utf8_lossy(&etcd.stderr));
        assert!(
            etcds.is_some(),
            "{what}: etcd said {:?}",
            String::from_utf8_lossy(&etcd.stderr)
        );
        assert_eq!(join_error(&stderr), etcds, "{what}: {stderr}");
    }
    // --discovery with --initial-cluster is refused.
    let mut args = vec![
        "--discovery".to_string(),
        durl.clone(),
        "--initial-cluster".into(),
        format!("x1=http://127.0.0.1:{p}"),
    ];
    args.extend(loopback_urls(p, c));
    let out = detcd(&dir, "x1", &args)
        .stderr(Stdio::piped())
        .output()
        .expect("run detcd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("multiple discovery or bootstrap flags are set"),
        "{stderr}"
    );
    // By default both etcd 3.4 and detcd, finding the cluster full, fall back to a v2
    // proxy to it, and answer the same through it.
    let mut answers = Vec::new();
    for who in ["etcd", "detcd"] {
        let (p, c) = (free_port(), free_port());
        let mut args = vec!["--discovery".to_string(), durl.clone()];
        args.extend(loopback_urls(p, c));
        let log_path = dir.join(format!("{who}-proxy.log"));
        let child = if who == "etcd" {
            std::process::Command::new("etcd")
                .args(["--name", "x2", "--data-dir"])
                .arg(dir.join("etcd-proxy"))
                .args(&args)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log_path).unwrap())
                .spawn()
                .expect("spawn etcd")
        } else {
            detcd(&dir, "detcd-proxy", &args).spawn().expect("spawn detcd")
        };
        let _proxy = Member(child);
        let via = format!("127.0.0.1:{c}");
        wait_http_health(&via);
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        assert!(
            log.contains("discovery cluster full, falling back to proxy"),
            "{who}: {log}"
        );
        let health = curl(&via, "GET", "/health", "", None, None);
        let config = curl(&via, "GET", "/v2/config/local/proxy", "", None, None);
        let cluster = std::fs::read_to_string(dir.join(format!("{who}-proxy")).join("proxy").join("cluster"))
            .unwrap_or_default();
        answers.push((health, config, cluster));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1].1 .1, format!("{{\"endpoints\":[\"{client_url}\"]}}\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until `/health` answers 200 over plain HTTP (a v2 proxy serves no gRPC).
fn wait_http_health(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl(endpoint, "GET", "/health", "", None, Some(2.0)).0 != 200 {
        assert!(Instant::now() < deadline, "{endpoint} did not answer /health");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The error of etcd's "failed to join discovery cluster (<error>)" in `log`.
fn join_error(log: &str) -> Option<String> {
    const MARK: &str = "failed to join discovery cluster (";
    let start = log.find(MARK)? + MARK.len();
    let mut depth = 1;
    for (i, ch) in log[start..].char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return Some(log[start..start + i].to_string());
        }
    }
    None
}

/// A forward HTTP proxy on `port` (0: any) for absolute-form requests (one request per
/// connection, as the discovery client sends them); records each request line.
fn start_proxy(port: u16) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                log.lock().unwrap().push(line.trim().to_string());
                let mut parts = line.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let rest = target.strip_prefix("http://").unwrap_or(target);
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let mut head = format!("{method} {path} HTTP/1.1\r\n");
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    head.push_str(&h);
                }
                head.push_str("Connection: close\r\n\r\n");
                let Ok(mut upstream) = std::net::TcpStream::connect(authority) else {
                    return;
                };
                upstream.write_all(head.as_bytes()).unwrap();
                let mut up_read = upstream.try_clone().unwrap();
                let mut down = conn.try_clone().unwrap();
                let copy_back = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_read, &mut down);
                    let _ = down.shutdown(std::net::Shutdown::Write);
                });
                // Whatever body the client sends after the head.
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 || upstream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = copy_back.join();
            });
        }
    });
    (port, seen)
}

#[test]
fn discovery_proxy_carries_the_requests() {
    if !tools_present(&["etcd", "curl"]) {
        return;
    }
    let service = start_server_with("etcd", "disc-v2-proxy", &["--enable-v2"]);
    let durl = prepare(&service.endpoint, "viaproxy", 1);
    let (proxy_port, seen) = start_proxy(0);
    let dir = members::temp_dir("disc-v2-proxy");
    let (peer, client) = (free_port(), free_port());
    let mut args = vec![
        "--discovery".to_string(),
        durl.clone(),
        "--discovery-proxy".into(),
        format!("127.0.0.1:{proxy_port}"),
    ];
    args.extend(loopback_urls(peer, client));
    let _member = Member(detcd(&dir, "p1", &args).spawn().expect("spawn"));
    wait_healthy(&format!("127.0.0.1:{client}"));
    let lines = seen.lock().unwrap().clone();
    assert!(
        lines.contains(&format!("GET {durl}/_config/size HTTP/1.1")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("PUT {durl}/")) && l.contains("?prevExist=false")),
        "{lines:?}"
    );
    assert_eq!(registered(&service.endpoint, "viaproxy").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreachable_discovery_service_is_retried_with_backoff() {
    if !tools_present(&["etcd", "curl"]) {
        return;
    }
    let service = start_server_with("etcd", "disc-v2-retry", &["--enable-v2"]);
    let durl = prepare(&service.endpoint, "late", 1);
    let dir = members::temp_dir("disc-v2-retry");
    // The member reaches the service through a proxy that is not there yet.
    let proxy_port = free_port();
    let (peer, client) = (free_port(), free_port());
    let mut args = vec![
        "--discovery".to_string(),
        durl,
        "--discovery-proxy".into(),
        format!("http://127.0.0.1:{proxy_port}"),
    ];
    args.extend(loopback_urls(peer, client));
    let _member = Member(detcd(&dir, "late1", &args).spawn().expect("spawn"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(registered(&service.endpoint, "late").is_empty());
    start_proxy(proxy_port);
    // The member's retry (2 s after its first try) finds the service.
    wait_healthy(&format!("127.0.0.1:{client}"));
    let log = std::fs::read_to_string(dir.join("late1.log")).unwrap();
    assert!(log.contains("retry connecting to discovery service"), "{log}");
    assert_eq!(registered(&service.endpoint, "late").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
