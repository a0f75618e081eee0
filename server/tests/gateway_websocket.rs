//! WebSockets on the JSON gateway (etcd's grpc-websocket-proxy) against etcd's: the same
//! session over WebSocket clients run against a real etcd (Debian's 3.4) and against
//! detcd, every message compared after masking what differs between two clusters:
//! a watch created, fed by another client's puts, a second watch, a cancel, a bad JSON
//! message, the client closing; lease keepalives and a bad keepalive message; election
//! observe; a unary call; an unknown path; handshakes refused (wrong method, no version).
//! With auth on: the token from the subprotocol or a cookie, not from `Authorization`.
//!
//! Then detcd alone: wss with client certificates (`--client-cert-auth`) on an https
//! `--listen-client-http-urls` listener, a client without a certificate refused, no
//! WebSocket on the then gRPC-only client URLs, where gRPC still works.
//!
//! Skipped (with a notice) without `etcd`, `etcdctl` or `curl` on PATH, a failure under CI.

#[path = "support/curl.rs"]
mod curl;
#[path = "support/gateway_mask.rs"]
mod gateway_mask;

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use curl::{field, post, post_with};
use detcd_testkit::{etcdctl_ok, start_server};

/// How long a message may take to arrive.
const WAIT: Duration = Duration::from_secs(5);
/// How long to wait for a message that should not come.
const QUIET: Duration = Duration::from_millis(700);

/// A gateway answer line with the cluster's values masked, and election keys (which
/// hold the campaign's lease ID) too.
fn masked(line: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_string();
    };
    gateway_mask::mask_value(&mut value);
    mask_election_keys(&mut value);
    value.to_string()
}

fn mask_election_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let is_leader_key = k == "key"
                    && val
                        .as_str()
                        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                        .is_some_and(|key| key.starts_with(b"el/"));
                if is_leader_key {
                    *val = serde_json::Value::String("<el/lease>".into());
                } else {
                    mask_election_keys(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_election_keys),
        _ => {}
    }
}

/// What a client saw next: a message (masked), the server's close frame, the connection
/// dropped without one, or nothing within the wait.
async fn next_event<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    wait: Duration,
) -> String {
    loop {
        let event = match tokio::time::timeout(wait, ws.next()).await {
            Err(_) => "nothing".to_string(),
            Ok(None) => "end of stream".to_string(),
            Ok(Some(Err(_))) => "dropped without a close frame".to_string(),
            Ok(Some(Ok(Message::Text(text)))) => format!("text {}", masked(text.as_str())),
            Ok(Some(Ok(Message::Binary(bytes)))) => format!("binary {bytes:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => format!("close frame {frame:?}"),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => continue,
        };
        return event;
    }
}

async fn connect(endpoint: &str, path: &str) -> WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(endpoint).await.expect("connect");
    let request = format!("ws://{endpoint}{path}")
        .into_client_request()
        .expect("request");
    let (ws, response) = tokio_tungstenite::client_async(request, tcp)
        .await
        .unwrap_or_else(|e| panic!("websocket handshake on {path}: {e}"));
    assert_eq!(response.status(), 101);
    ws
}

/// Sends a text message; a send that fails shows in the next event the client sees.
async fn send<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, text: &str) {
    let _ = ws.send(Message::text(text)).await;
}

/// Another client's write, through etcdctl.
fn etcdctl(endpoint: &str, args: &[&str]) {
    etcdctl_ok(endpoint, args);
}

/// The session against one server: each step's label and what the client saw.
async fn session(endpoint: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut step = |label: &str, event: String| {
        eprintln!("{label}: {event}");
        out.push((label.to_string(), event));
    };

    // Watch: a prefix watch, events from another client, a second watch, a cancel.
    let mut watch = connect(endpoint, "/v3/watch").await;
    send(
        &mut watch,
        r#"{"create_request":{"key":"Zm9v","range_end":"Zm9w"}}"#,
    )
    .await;
    step("watch created", next_event(&mut watch, WAIT).await);
    etcdctl(endpoint, &["put", "foo1", "a"]);
    step("put foo1", next_event(&mut watch, WAIT).await);
    etcdctl(endpoint, &["put", "bar", "b"]);
    etcdctl(endpoint, &["put", "foo2", "c"]);
    step("put bar, foo2", next_event(&mut watch, WAIT).await);
    etcdctl(endpoint, &["del", "foo1"]);
    step("del foo1", next_event(&mut watch, WAIT).await);
    send(&mut watch, "{\"create_request\":{\"key\":\"YmFy\"}}").await;
    step("second watch created", next_event(&mut watch, WAIT).await);
    send(&mut watch, r#"{"cancel_request":{"watch_id":"0"}}"#).await;
    step("first watch canceled", next_event(&mut watch, WAIT).await);
    etcdctl(endpoint, &["put", "foo3", "d"]);
    etcdctl(endpoint, &["put", "bar", "e"]);
    step("put foo3, bar", next_event(&mut watch, WAIT).await);
    // A message that is not JSON ends the requests; the watches stay.
    send(&mut watch, r#"{"create_request": nope"#).await;
    step("bad JSON", next_event(&mut watch, QUIET).await);
    etcdctl(endpoint, &["put", "bar", "f"]);
    step("put bar after bad JSON", next_event(&mut watch, WAIT).await);
    // (etcd's proxy is stuck from here on: its reader waits for the gateway to read the
    // newline after the bad message, so it no longer sees a close frame.)
    drop(watch);
    // The client closing a watch.
    let mut closing = connect(endpoint, "/v3/watch").await;
    send(&mut closing, r#"{"create_request":{"key":"YmFy"}}"#).await;
    step("watch to close created", next_event(&mut closing, WAIT).await);
    closing.close(None).await.expect("close");
    step("client closed", next_event(&mut closing, WAIT).await);
    step("after close", next_event(&mut closing, WAIT).await);

    // Lease keepalive: two renewals on one socket, then a bad message.
    let (code, grant) = post(endpoint, "/v3/lease/grant", r#"{"TTL":"60"}"#, None);
    assert_eq!(code, 200, "{grant}");
    let id = field(&grant, "ID");
    let mut keepalive = connect(endpoint, "/v3/lease/keepalive").await;
    for n in 1..=2 {
        send(&mut keepalive, &format!(r#"{{"ID":"{id}"}}"#)).await;
        step(&format!("keepalive {n}"), next_event(&mut keepalive, WAIT).await);
    }
    send(&mut keepalive, r#"{"ID": nope}"#).await;
    step("keepalive bad JSON", next_event(&mut keepalive, WAIT).await);
    step("keepalive after bad JSON", next_event(&mut keepalive, WAIT).await);

    // Election observe: the leader, then a proclamation.
    let campaign = format!(r#"{{"name":"ZWw=","lease":"{id}","value":"djE="}}"#);
    let (code, won) = post(endpoint, "/v3/election/campaign", &campaign, None);
    assert_eq!(code, 200, "{won}");
    let leader: serde_json::Value = serde_json::from_str(&won).expect("campaign answer");
    let mut observe = connect(endpoint, "/v3/election/observe").await;
    send(&mut observe, r#"{"name":"ZWw="}"#).await;
    step("observe leader", next_event(&mut observe, WAIT).await);
    let proclaim = serde_json::json!({ "leader": leader["leader"], "value": "djI=" }).to_string();
    let (code, text) = post(endpoint, "/v3/election/proclaim", &proclaim, None);
    assert_eq!(code, 200, "{text}");
    step("observe proclamation", next_event(&mut observe, WAIT).await);
    drop(observe);

    // A unary call: one answer, then the connection closes.
    let mut range = connect(endpoint, "/v3/kv/range?method=GET").await;
    send(&mut range, r#"{"key":"YmFy"}"#).await;
    step("range", next_event(&mut range, WAIT).await);
    step("after range", next_event(&mut range, WAIT).await);
    let mut beta_watch = connect(endpoint, "/v3beta/watch").await;
    send(
        &mut beta_watch,
        r#"{"create_request":{"key":"YmFy","start_revision":"7"}}"#,
    )
    .await;
    step("v3beta watch created", next_event(&mut beta_watch, WAIT).await);
    step("v3beta watch history", next_event(&mut beta_watch, WAIT).await);
    drop(beta_watch);
    let mut beta = connect(endpoint, "/v3beta/kv/range").await;
    send(
        &mut beta,
        "{\"key\":\"Zm9v\",\"range_end\":\"Zm9w\",\"count_only\":true}",
    )
    .await;
    step("v3beta range", next_event(&mut beta, WAIT).await);
    let mut bad = connect(endpoint, "/v3/kv/put").await;
    send(&mut bad, r#"{"key":1}"#).await;
    step("put with a bad body", next_event(&mut bad, WAIT).await);
    let mut unknown = connect(endpoint, "/v3/kv/nope").await;
    send(&mut unknown, "{}").await;
    step("unknown path", next_event(&mut unknown, WAIT).await);

    // Handshakes refused.
    let upgrade = [
        "Connection: Upgrade".to_string(),
        "Upgrade: websocket".to_string(),
    ];
    let (code, body) = post_with(endpoint, "/v3/watch", "{}", &upgrade);
    step("POST upgrade", format!("{code} {body}"));
    let (code, body) = curl::curl_with(endpoint, "GET", "/v3/watch", "", &upgrade, Some(5.0));
    step("upgrade without a version", format!("{code} {body}"));
    out
}

fn tools_present(test: &str) -> bool {
    detcd_testkit::require_tools(&["etcd", "etcdctl", "curl"], test)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_session_matches_etcd() {
    if !tools_present("websocket_session_matches_etcd") {
        return;
    }
    let etcd = start_server("etcd", "ws-etcd");
    let expected = session(&etcd.endpoint).await;
    drop(etcd);
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "ws-detcd");
    let got = session(&detcd.endpoint).await;
    assert_eq!(expected.len(), got.len());
    let failures: Vec<String> = expected
        .iter()
        .zip(&got)
        .filter(|(e, g)| e != g)
        .map(|(e, g)| format!("{}:\n  etcd:  {}\n  detcd: {}", e.0, e.1, g.1))
        .collect();
    assert!(
        failures.is_empty(),
        "{} steps differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// TLS: a WebSocket over an https HTTP listener with `--client-cert-auth`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls_with_client_certificates() {
    use detcd_server::tls::certs::{Ca, Leaf};
    use detcd_server::tls::{client_config, ServerCheck, TlsInfo};

    if !tools_present("websocket_over_tls_with_client_certificates") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("detcd-ws-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    };
    let ca = Ca::new("ws CA").expect("ca");
    let server = ca
        .issue(&Leaf::new("server", &["127.0.0.1"], 1))
        .expect("server cert");
    let client = ca
        .issue(&Leaf::new("client", &["127.0.0.1"], 2))
        .expect("client cert");
    let ca_file = write("ca.crt", &ca.cert_pem);
    let (server_cert, server_key) = (
        write("server.crt", &server.cert_pem),
        write("server.key", &server.key_pem),
    );
    let (client_cert, client_key) = (
        write("client.crt", &client.cert_pem),
        write("client.key", &client.key_pem),
    );

    let (port, http_port, peer, http_only_port) = (
        detcd_testkit::free_port(),
        detcd_testkit::free_port(),
        detcd_testkit::free_port(),
        detcd_testkit::free_port(),
    );
    let urls = format!("https://127.0.0.1:{port},http://127.0.0.1:{http_port}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = detcd_testkit::member_command(
        env!("CARGO_BIN_EXE_detcd"),
        "n1",
        &dir.join("data"),
        &urls,
        &peer_url,
    )
    .args(["--initial-cluster", &format!("n1={peer_url}")])
    .args(["--cert-file", &server_cert, "--key-file", &server_key])
    .args(["--trusted-ca-file", &ca_file, "--client-cert-auth"])
    .args([
        "--listen-client-http-urls",
        &format!("https://127.0.0.1:{http_only_port}"),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(dir.join("server.log")).expect("log"))
    .spawn()
    .expect("start detcd");
    let member = detcd_testkit::Server::new(child, dir.clone(), format!("127.0.0.1:{http_port}"));
    detcd_testkit::wait_healthy(&member.endpoint);

    let with_cert = TlsInfo {
        cert_file: client_cert,
        key_file: client_key,
        ..TlsInfo::default()
    };
    let check = ServerCheck::CaFile(ca_file);
    let alpn: &[&[u8]] = &[b"http/1.1"];
    let connect_tls = |info: TlsInfo, path: &'static str| {
        let config = client_config(&info, &check, alpn).expect("client config");
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", http_only_port)).await?;
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
            let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, tcp)
                .await?;
            let request = format!("wss://127.0.0.1:{http_only_port}{path}")
                .into_client_request()
                .expect("request");
            tokio_tungstenite::client_async(request, tls)
                .await
                .map(|(ws, _)| ws)
                .map_err(std::io::Error::other)
        }
    };

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut watch = loop {
        match connect_tls(with_cert.clone(), "/v3/watch").await {
            Ok(ws) => break ws,
            Err(e) => assert!(Instant::now() < deadline, "wss: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    send(&mut watch, r#"{"create_request":{"key":"d3Nz"}}"#).await;
    let created = next_event(&mut watch, WAIT).await;
    assert!(created.contains(r#""created":true"#), "{created}");
    // A unary call over wss writes the key the watch sees.
    let mut put = connect_tls(with_cert.clone(), "/v3/kv/put")
        .await
        .expect("wss put");
    send(&mut put, r#"{"key":"d3Nz","value":"dGxz"}"#).await;
    let answer = next_event(&mut put, WAIT).await;
    assert!(answer.starts_with("text {\"header\""), "{answer}");
    let event = next_event(&mut watch, WAIT).await;
    assert!(event.contains(r#""value":"dGxz""#), "{event}");
    // Without a client certificate the TLS handshake fails: no WebSocket.
    assert!(connect_tls(TlsInfo::default(), "/v3/watch").await.is_err());
    // With --listen-client-http-urls, the HTTP listeners (here the https one above) serve
    // WebSockets and the client URLs gRPC alone: there the handshake finds no route.
    let tcp = tokio::net::TcpStream::connect(&member.endpoint)
        .await
        .expect("connect");
    let request = format!("ws://{}/v3/watch", member.endpoint)
        .into_client_request()
        .expect("request");
    match tokio_tungstenite::client_async(request, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("a WebSocket on a gRPC-only URL: {other:?}"),
    }
    assert_eq!(
        etcdctl_ok(&member.endpoint, &["get", "wss", "--print-value-only"]),
        "tls\n"
    );
    watch.close(None).await.expect("close");
    assert!(next_event(&mut watch, WAIT).await.starts_with("close frame"));
}

/// With auth enabled: the token as the proxy takes it, from `Sec-WebSocket-Protocol:
/// Bearer, <token>` (the subprotocol `Bearer` answered) or a `token` cookie; an
/// `Authorization` header does not pass. Each case: the answered subprotocol and the
/// answer to a range.
async fn auth_session(endpoint: &str) -> Vec<(String, String)> {
    etcdctl(endpoint, &["user", "add", "root", "--new-user-password=pw"]);
    etcdctl(endpoint, &["auth", "enable"]);
    let (code, answer) = post(
        endpoint,
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"pw"}"#,
        None,
    );
    assert_eq!(code, 200, "{answer}");
    let token = field(&answer, "token");
    let mut out = Vec::new();
    let cases = [
        ("no credentials", None),
        (
            "subprotocol",
            Some(("sec-websocket-protocol", format!("Bearer, {token}"))),
        ),
        (
            "subprotocol without a token",
            Some(("sec-websocket-protocol", "Bearer".to_string())),
        ),
        ("cookie", Some(("cookie", format!("theme=dark; token={token}")))),
        ("authorization header", Some(("authorization", token.clone()))),
    ];
    for (label, header) in cases {
        let tcp = tokio::net::TcpStream::connect(endpoint).await.expect("connect");
        let mut request = format!("ws://{endpoint}/v3/kv/range")
            .into_client_request()
            .expect("request");
        if let Some((name, value)) = header {
            request
                .headers_mut()
                .insert(name, value.parse().expect("header value"));
        }
        let (mut ws, response) = tokio_tungstenite::client_async(request, tcp)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap_or("?").to_string());
        send(&mut ws, r#"{"key":"YQ=="}"#).await;
        let event = next_event(&mut ws, WAIT).await;
        eprintln!("{label}: {protocol:?} {event}");
        out.push((label.to_string(), format!("{protocol:?} {event}")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_credentials_match_etcd() {
    if !tools_present("websocket_credentials_match_etcd") {
        return;
    }
    let etcd = start_server("etcd", "ws-auth-etcd");
    let expected = auth_session(&etcd.endpoint).await;
    drop(etcd);
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "ws-auth-detcd");
    let got = auth_session(&detcd.endpoint).await;
    assert_eq!(expected.len(), got.len());
    for (e, g) in expected.iter().zip(&got) {
        if g.0 == "subprotocol" || g.0 == "cookie" {
            // etcd 3.4 takes `Bearer <token>` as the token itself and refuses it; etcd 3.6
            // (whose token lookup detcd follows) drops the `Bearer ` prefix, so the
            // proxy's token works there and here.
            assert!(e.1.contains("invalid auth token"), "etcd, {}: {}", e.0, e.1);
            assert!(
                g.1.starts_with("Some(\"Bearer\") text {\"header\"")
                    || (g.0 == "cookie" && g.1.starts_with("None text {\"header\"")),
                "detcd, {}: {}",
                g.0,
                g.1
            );
        } else {
            assert_eq!(e, g);
        }
    }
}
