//! v2 discovery over https: a detcd serving `/v2/keys` over TLS (`--cert-file`,
//! `--key-file`, `--enable-v2`) is the discovery service; members trust its CA as Go's
//! programs do, through `SSL_CERT_FILE` (etcd's discovery client uses the system's
//! roots). One member bootstraps through the https URL directly, another through
//! `--discovery-proxy`, a small in-test HTTP proxy that tunnels it with `CONNECT`.
//!
//! Skipped with a notice without etcdctl or curl (a failure under CI).

#[path = "support/curl.rs"]
mod curl;
#[path = "support/members.rs"]
mod members;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use detcd_server::tls::certs::{Ca, Leaf};
use detcd_testkit::{free_port, wait_healthy};
use members::{detcd, loopback_urls, tools_present, Member};

/// curl over https trusting `ca`: the status and the body.
fn curl(ca: &str, method: &str, url: &str, form: &str) -> (u16, String) {
    curl::curl_url(&["--cacert", ca], method, url, form)
}

/// The discovery service: a detcd serving https on 127.0.0.1 with a certificate of
/// a fresh CA; its `https://` base URL and the CA file.
fn https_service(dir: &Path) -> (Member, String, String) {
    let ca = Ca::new("discovery CA").expect("ca");
    let issued = ca.issue(&Leaf::new("service", &["127.0.0.1"], 2)).expect("issue");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    };
    let ca_file = write("ca.crt", &ca.cert_pem);
    let (peer, client) = (free_port(), free_port());
    let base = format!("https://127.0.0.1:{client}");
    let args: Vec<String> = vec![
        "--enable-v2".into(),
        "--cert-file".into(),
        write("service.crt", &issued.cert_pem),
        "--key-file".into(),
        write("service.key", &issued.key_pem),
        "--listen-client-urls".into(),
        base.clone(),
        "--advertise-client-urls".into(),
        base.clone(),
        "--listen-peer-urls".into(),
        format!("http://127.0.0.1:{peer}"),
        "--initial-advertise-peer-urls".into(),
        format!("http://127.0.0.1:{peer}"),
        "--initial-cluster".into(),
        format!("svc=http://127.0.0.1:{peer}"),
    ];
    let service = Member(detcd(dir, "svc", &args).spawn().expect("spawn the service"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(&ca_file, "GET", &format!("{base}/v2/keys/"), "").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the https discovery service did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (service, base, ca_file)
}

/// A forward proxy that only tunnels (`CONNECT host:port`); records each request line.
fn connect_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                log.lock().expect("log").push(line.trim().to_string());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let mut parts = line.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let upstream = match (method, TcpStream::connect(target)) {
                    ("CONNECT", Ok(up)) => up,
                    _ => {
                        let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
                        return;
                    }
                };
                if conn
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .is_err()
                {
                    return;
                }
                let (mut up_read, mut up_write) = (upstream.try_clone().expect("clone"), upstream);
                let mut down = conn;
                let back = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_read, &mut down);
                    let _ = down.shutdown(std::net::Shutdown::Both);
                });
                let _ = std::io::copy(&mut reader, &mut up_write);
                let _ = up_write.shutdown(std::net::Shutdown::Write);
                let _ = back.join();
            });
        }
    });
    (port, seen)
}

/// The keys registered under a token (its `_config` left out).
fn registered(ca: &str, base: &str, token: &str) -> Vec<String> {
    let (code, body) = curl(ca, "GET", &format!("{base}/v2/keys/discovery/{token}"), "");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["node"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n["value"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn members_bootstrap_through_an_https_discovery_url_directly_and_through_connect() {
    if !tools_present(&["curl"]) {
        return;
    }
    let dir = members::temp_dir("disc-https");
    let (_service, base, ca) = https_service(&dir);
    let (proxy_port, seen) = connect_proxy();
    for (name, token, proxied) in [("h1", "direct", false), ("h2", "tunneled", true)] {
        let (code, body) = curl(
            &ca,
            "PUT",
            &format!("{base}/v2/keys/discovery/{token}/_config/size"),
            "value=1",
        );
        assert_eq!(code, 201, "{body}");
        let (peer, client) = (free_port(), free_port());
        let mut args = vec![
            "--discovery".to_string(),
            format!("{base}/v2/keys/discovery/{token}"),
        ];
        if proxied {
            args.extend(["--discovery-proxy".to_string(), format!("127.0.0.1:{proxy_port}")]);
        }
        args.extend(loopback_urls(peer, client));
        let member = Member(
            detcd(&dir, name, &args)
                .env("SSL_CERT_FILE", &ca)
                .spawn()
                .expect("spawn"),
        );
        wait_healthy(&format!("127.0.0.1:{client}"));
        assert_eq!(
            registered(&ca, &base, token),
            vec![format!("{name}=http://127.0.0.1:{peer}")]
        );
        drop(member);
    }
    let lines = seen.lock().expect("log").clone();
    let authority = base.trim_start_matches("https://");
    assert!(!lines.is_empty(), "the proxy carried nothing");
    assert!(
        lines
            .iter()
            .all(|l| *l == format!("CONNECT {authority} HTTP/1.1")),
        "{lines:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
