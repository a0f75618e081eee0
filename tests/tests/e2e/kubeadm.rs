//! kubeadm's stacked control-plane etcd, as its static pod manifest runs it: exactly the
//! flags kubeadm (1.29-1.32) writes, TLS included (server and peer certificates from one
//! etcd CA, client and peer certificate auth), the node's address beside loopback; its
//! probes on the plain-http metrics listener (`/livez`, `/readyz`, and the older
//! `/health?exclude=NOSPACE&serializable=true`), and the API server's access with its
//! client certificate through the real etcdctl 3.4.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use detcd_server::tls::certs::{Ca, Leaf};
use detcd_testkit::free_port;

use super::harness::{http_get, read, signal, test_dir, DETCD};
use super::tls::{etcdctl, issue, ok, put, wait_until};

/// The node's address in the test: kubeadm listens on loopback and on the node's IP.
const NODE_IP: &str = "127.0.0.2";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kubeadms_manifest_with_tls_starts_unchanged_and_its_probes_answer() {
    let dir = test_dir("kubeadm");
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).expect("pki dir");
    // kubeadm's etcd PKI: one CA; server and peer certificates for the node's names and
    // addresses; the API server's client certificate.
    let ca = Ca::new("etcd-ca").expect("ca");
    let ca_file = put(&pki, "ca.crt", &ca.cert_pem);
    let hosts = ["cp1", "localhost", "127.0.0.1", NODE_IP];
    let server = issue(&ca, &pki, "server", &Leaf::new("cp1", &hosts, 1));
    let peer = issue(&ca, &pki, "peer", &Leaf::new("cp1", &hosts, 2));
    let apiserver = issue(
        &ca,
        &pki,
        "apiserver-etcd-client",
        &Leaf::new("kube-apiserver-etcd-client", &[], 3),
    );
    let (client_port, peer_port, metrics_port) = (free_port(), free_port(), free_port());
    let node_client = format!("https://{NODE_IP}:{client_port}");
    let node_peer = format!("https://{NODE_IP}:{peer_port}");
    let data_dir = dir.join("etcd");
    // The manifest's command, flag for flag (kubeadm sorts them by name).
    let flags = vec![
        format!("--advertise-client-urls={node_client}"),
        format!("--cert-file={}", server.0),
        "--client-cert-auth=true".to_string(),
        format!("--data-dir={}", data_dir.display()),
        "--experimental-initial-corrupt-check=true".to_string(),
        "--experimental-watch-progress-notify-interval=5s".to_string(),
        format!("--initial-advertise-peer-urls={node_peer}"),
        format!("--initial-cluster=cp1={node_peer}"),
        format!("--key-file={}", server.1),
        format!("--listen-client-urls=https://127.0.0.1:{client_port},{node_client}"),
        format!("--listen-metrics-urls=http://127.0.0.1:{metrics_port}"),
        format!("--listen-peer-urls={node_peer}"),
        "--name=cp1".to_string(),
        format!("--peer-cert-file={}", peer.0),
        "--peer-client-cert-auth=true".to_string(),
        format!("--peer-key-file={}", peer.1),
        format!("--peer-trusted-ca-file={ca_file}"),
        "--snapshot-count=10000".to_string(),
        format!("--trusted-ca-file={ca_file}"),
    ];
    let log = dir.join("log");
    let child = Command::new(DETCD)
        .env(
            "DETCD_WAL_SEGMENT_BYTES",
            super::harness::WAL_SEGMENT_BYTES.to_string(),
        )
        .args(&flags)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn detcd");
    let mut member = Killed(child);

    // The startup probe (kubeadm before 1.29 used /health for all three probes).
    let probe = |path: &str| {
        std::net::TcpStream::connect(("127.0.0.1", metrics_port))
            .is_ok()
            .then(|| http_get(metrics_port, path))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe("/health?exclude=NOSPACE&serializable=true").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "never healthy:\n{}", read(&log));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        http_get(metrics_port, "/health?exclude=NOSPACE&serializable=true"),
        (200, r#"{"health":"true","reason":""}"#.to_string())
    );
    assert_eq!(http_get(metrics_port, "/livez"), (200, "ok\n".to_string()));
    wait_until("readyz", || http_get(metrics_port, "/readyz").0 == 200);
    assert_eq!(http_get(metrics_port, "/readyz"), (200, "ok\n".to_string()));

    // The API server: its client certificate, on loopback (--etcd-servers) and on the
    // node's address.
    let with_cert = |endpoint: &str, args: &[&str]| {
        let mut all = vec![
            "--endpoints",
            endpoint,
            "--cacert",
            &ca_file,
            "--cert",
            &apiserver.0,
            "--key",
            &apiserver.1,
        ];
        all.extend_from_slice(args);
        etcdctl(&all)
    };
    let loopback = format!("https://127.0.0.1:{client_port}");
    ok(&with_cert(&loopback, &["put", "/registry/ns/default", "v1"]));
    assert_eq!(
        ok(&with_cert(
            &node_client,
            &["get", "/registry/ns/default", "--print-value-only"]
        )),
        "v1\n"
    );
    // (etcdctl 3.4 writes its health lines to stderr.)
    let health = with_cert(&loopback, &["endpoint", "health"]);
    ok(&health);
    assert!(String::from_utf8_lossy(&health.stderr).contains("is healthy"));
    // Without a client certificate the client port refuses.
    let refused = etcdctl(&["--endpoints", &loopback, "--cacert", &ca_file, "get", "x"]);
    assert!(!refused.status.success());

    // Stopped as the kubelet stops it; the lines operators look for are there.
    signal(member.0.id(), "TERM");
    let status = member.0.wait().expect("wait");
    assert!(status.success(), "{status:?}\n{}", read(&log));
    let text = read(&log);
    for line in [
        "\"msg\":\"serving client traffic securely\",\"address\":\"127.0.0.1:",
        &format!("\"msg\":\"serving client traffic securely\",\"address\":\"{NODE_IP}:"),
        "initial corruption checking passed; no corruption",
        "\"msg\":\"ready to serve client requests\"",
        "\"msg\":\"closed etcd server\"",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}
