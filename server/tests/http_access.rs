//! `--host-whitelist` and `--cors` as etcd applies them, checked against a real etcd
//! 3.4 with the same flags: a plain-HTTP request naming a host not listed gets 421 and
//! etcd's explanation, a listed one is served; CORS headers go to listed origins only;
//! a preflight `OPTIONS` is answered 200; gRPC is not affected (etcdctl, which names
//! 127.0.0.1, finds the server healthy).
//!
//! `--listen-client-http-urls`: HTTP (gateway, /health) on that listener alone, gRPC
//! alone on the client URLs.
//!
//! Skipped (with a notice) without `etcd`, `etcdctl` or `curl` on PATH, a failure under CI.

use std::process::Command;

use detcd_testkit::{free_port, on_path, start_server_with};

/// Status, the CORS origin header (if any) and the first body line of one request.
fn request(endpoint: &str, method: &str, path: &str, headers: &[&str]) -> (String, String, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-i", "-X", method]);
    for h in headers {
        c.args(["-H", h]);
    }
    if method == "POST" {
        c.args(["-d", "{}"]);
    }
    let out = c.arg(format!("http://{endpoint}{path}")).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string();
    let origin = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("access-control-allow-origin: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    let first = body.lines().find(|l| !l.is_empty()).unwrap_or("").to_string();
    (status, origin, first)
}

#[test]
fn host_whitelist_and_cors_match_etcd() {
    if !(on_path("etcd") && on_path("etcdctl") && on_path("curl")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcd, etcdctl and curl are required under CI"
        );
        eprintln!("NOTICE: etcd/etcdctl/curl not on PATH; skipping host_whitelist_and_cors_match_etcd");
        return;
    }
    let flags = [
        "--host-whitelist=localhost,good.example",
        "--cors=https://app.example:8443",
    ];
    let cases: &[(&str, &str, &[&str])] = &[
        ("POST", "/v3/kv/range", &["Host: evil.example"]),
        ("GET", "/health", &["Host: evil.example:2379"]),
        ("POST", "/v3/kv/range", &["Host: good.example"]),
        ("GET", "/version", &["Host: localhost:2379"]),
        (
            "POST",
            "/v3/kv/range",
            &["Host: good.example", "Origin: https://app.example:8443"],
        ),
        (
            "POST",
            "/v3/kv/range",
            &["Host: good.example", "Origin: https://other.example:8443"],
        ),
        (
            "OPTIONS",
            "/v3/kv/range",
            &["Host: good.example", "Origin: https://app.example:8443"],
        ),
    ];
    let run = |program: &str, tag: &str| {
        let server = start_server_with(program, tag, &flags);
        cases
            .iter()
            .map(|(m, p, h)| {
                let (status, origin, body) = request(&server.endpoint, m, p, h);
                // The body of a served request differs (IDs); the refusal's text must not.
                let body = if status == "421" { body } else { String::new() };
                format!("{m} {p} {h:?}: {status} origin={origin:?} {body}")
            })
            .collect::<Vec<_>>()
    };
    let etcd = run("etcd", "access-etcd");
    let detcd = run(env!("CARGO_BIN_EXE_detcd"), "access-detcd");
    assert_eq!(detcd, etcd);
    assert!(etcd[0].contains(": 421 "), "{etcd:?}");
}

#[test]
fn http_urls_take_http_off_the_client_urls() {
    if !(on_path("etcdctl") && on_path("curl")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcdctl and curl are required under CI"
        );
        eprintln!("NOTICE: etcdctl/curl not on PATH; skipping http_urls_take_http_off_the_client_urls");
        return;
    }
    let port = free_port();
    let http_url = format!("http://127.0.0.1:{port}");
    // Healthy through etcdctl: gRPC on the client URL.
    let detcd = start_server_with(
        env!("CARGO_BIN_EXE_detcd"),
        "http-urls",
        &["--listen-client-http-urls", &http_url],
    );
    let http = format!("127.0.0.1:{port}");
    let served = |endpoint: &str, method: &str, path: &str| request(endpoint, method, path, &[]).0;
    assert_eq!(served(&http, "GET", "/health"), "200");
    assert_eq!(served(&http, "POST", "/v3/maintenance/status"), "200");
    assert_eq!(served(&detcd.endpoint, "GET", "/health"), "404");
    assert_eq!(served(&detcd.endpoint, "POST", "/v3/maintenance/status"), "404");
    // gRPC is not served on the HTTP listener.
    let grpc = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([&format!("--endpoints={http}"), "--command-timeout=2s", "get", "x"])
        .output()
        .expect("etcdctl");
    assert!(!grpc.status.success());
    assert!(
        String::from_utf8_lossy(&grpc.stderr).contains("unknown service"),
        "{grpc:?}"
    );
}

#[test]
fn the_gateway_can_be_turned_off() {
    if !(on_path("etcdctl") && on_path("curl")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcdctl and curl are required under CI"
        );
        eprintln!("NOTICE: etcdctl/curl not on PATH; skipping the_gateway_can_be_turned_off");
        return;
    }
    let detcd = start_server_with(
        env!("CARGO_BIN_EXE_detcd"),
        "no-gateway",
        &["--enable-grpc-gateway=false"],
    );
    let (status, _, body) = request(&detcd.endpoint, "POST", "/v3/kv/range", &[]);
    assert_eq!((status.as_str(), body.as_str()), ("404", "404 page not found"));
    assert_eq!(request(&detcd.endpoint, "GET", "/health", &[]).0, "200");
}
