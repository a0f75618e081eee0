//! TLS on the client port with real processes and certificates made in the test (rcgen,
//! through `detcd_server::tls::certs`): the real etcdctl 3.4 with and without client
//! certificates, certificates from another CA, expired or revoked ones refused, a server
//! certificate rotated on disk picked up without a restart, plain text refused on the
//! https port while an http port serves beside it, and start-up refusals with etcd's
//! messages. etcdctl must be on PATH (CI installs it): these tests fail without it
//! rather than pass without checking anything. Peer TLS: `tls_peers.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use detcd_server::tls::certs::{Ca, Leaf};

use detcd_testkit::{free_port, on_path};

use super::harness::{read, test_dir, DETCD};

/// Writes `text` to `dir/name` (atomically, by renaming, as rotation tools do).
pub(super) fn put(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    path.to_string_lossy().into_owned()
}

/// The certificates of one test: a CA with a server, a client, an expired and a revoked
/// client certificate and a CRL; another CA with its own client certificate.
pub(super) struct Certs {
    dir: PathBuf,
    pub(super) ca: String,
    pub(super) server: (String, String),
    pub(super) client: (String, String),
    expired: (String, String),
    revoked: (String, String),
    stranger: (String, String),
    crl: String,
}

const REVOKED_SERIAL: u64 = 99;

pub(super) fn issue(ca: &Ca, dir: &Path, name: &str, leaf: &Leaf) -> (String, String) {
    let issued = ca.issue(leaf).expect("issue");
    (
        put(dir, &format!("{name}.crt"), &issued.cert_pem),
        put(dir, &format!("{name}.key"), &issued.key_pem),
    )
}

pub(super) fn make_certs(dir: &Path) -> Certs {
    let ca = Ca::new("e2e CA").expect("ca");
    let other = Ca::new("another CA").expect("ca");
    let expired = Leaf {
        from_days: -10,
        until_days: -1,
        ..Leaf::new("old-client", &["127.0.0.1"], 3)
    };
    Certs {
        dir: dir.to_path_buf(),
        ca: put(dir, "ca.crt", &ca.cert_pem),
        server: issue(
            &ca,
            dir,
            "server",
            &Leaf::new("server", &["127.0.0.1", "localhost"], 1),
        ),
        client: issue(&ca, dir, "client", &Leaf::new("client", &["127.0.0.1"], 2)),
        expired: issue(&ca, dir, "expired", &expired),
        revoked: issue(
            &ca,
            dir,
            "revoked",
            &Leaf::new("revoked", &["127.0.0.1"], REVOKED_SERIAL),
        ),
        stranger: issue(&other, dir, "stranger", &Leaf::new("client", &["127.0.0.1"], 2)),
        crl: put(dir, "ca.crl", &ca.crl(&[REVOKED_SERIAL]).expect("crl")),
    }
}

/// A detcd process killed when dropped.
pub(super) struct Member {
    child: Child,
    pub(super) log: PathBuf,
}

impl Member {
    /// Stops the member as an operator would (SIGTERM) and waits for it to exit.
    pub(super) fn terminate(mut self) {
        super::harness::signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "member did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("member log:\n{}", read(&self.log));
        }
    }
}

/// What one member process is started with.
pub(super) struct Spec<'a> {
    pub(super) name: &'a str,
    pub(super) client_urls: &'a str,
    pub(super) peer_url: &'a str,
    pub(super) initial_cluster: &'a str,
    pub(super) state: &'a str,
    /// The working directory (unix socket URLs name files relative to it).
    pub(super) cwd: Option<&'a Path>,
}

/// Starts a member in `dir` with `spec` and more `flags`.
pub(super) fn spawn(dir: &Path, spec: &Spec<'_>, flags: &[&str]) -> Member {
    std::fs::create_dir_all(dir).expect("member dir");
    let log = dir.join("member.log");
    let mut command = Command::new(DETCD);
    if let Some(cwd) = spec.cwd {
        command.current_dir(cwd);
    }
    let child = command
        .env("DETCD_WAL_SEGMENT_BYTES", "4000000")
        .args(["--name", spec.name, "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen-client-urls", spec.client_urls])
        .args(["--advertise-client-urls", spec.client_urls])
        .args(["--listen-peer-urls", spec.peer_url])
        .args(["--initial-advertise-peer-urls", spec.peer_url])
        .args(["--initial-cluster", spec.initial_cluster])
        .args(["--initial-cluster-state", spec.state])
        .args(["--heartbeat-interval", "50", "--election-timeout", "750"])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn detcd");
    Member { child, log }
}

/// Starts a one-member cluster with these client URLs and flags.
pub(super) fn start(dir: &Path, client_urls: &str, flags: &[&str]) -> Member {
    let peer = format!("http://127.0.0.1:{}", free_port());
    let spec = Spec {
        name: "default",
        client_urls,
        peer_url: &peer,
        initial_cluster: &format!("default={peer}"),
        state: "new",
        cwd: None,
    };
    spawn(dir, &spec, flags)
}

/// Runs the real etcdctl (API v3) with short timeouts.
pub(super) fn etcdctl(args: &[&str]) -> Output {
    etcdctl_in(Path::new("."), args)
}

/// [`etcdctl`] in the working directory `cwd`.
pub(super) fn etcdctl_in(cwd: &Path, args: &[&str]) -> Output {
    assert!(
        on_path("etcdctl"),
        "etcdctl is not on PATH (Debian: apt-get install etcd-client); the TLS tests need it"
    );
    Command::new("etcdctl")
        .current_dir(cwd)
        .env("ETCDCTL_API", "3")
        .args(["--dial-timeout=1s", "--command-timeout=2s"])
        .args(args)
        .output()
        .expect("run etcdctl")
}

pub(super) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "etcdctl failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// etcdctl with the client certificate `pair` (and the CA) against `endpoint`.
pub(super) fn with_cert(endpoint: &str, ca: &str, pair: &(String, String), args: &[&str]) -> Output {
    let mut all = vec![
        "--endpoints",
        endpoint,
        "--cacert",
        ca,
        "--cert",
        &pair.0,
        "--key",
        &pair.1,
    ];
    all.extend_from_slice(args);
    etcdctl(&all)
}

/// Waits until `probe` succeeds.
pub(super) fn wait_until(what: &str, probe: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe() {
        assert!(Instant::now() < deadline, "{what}: timed out");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends a plain HTTP/1.1 request to `port` and returns whatever came back.
pub(super) fn plain_http(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// A member serving an https URL with `--client-cert-auth` (and `extra` flags) and a
/// plain http one: (member, https URL, http URL).
pub(super) fn start_client_cert_auth(dir: &Path, certs: &Certs, extra: &[&str]) -> (Member, String, String) {
    let https = format!("https://127.0.0.1:{}", free_port());
    let http = format!("http://127.0.0.1:{}", free_port());
    let mut flags = vec![
        "--cert-file",
        &certs.server.0,
        "--key-file",
        &certs.server.1,
        "--trusted-ca-file",
        &certs.ca,
        "--client-cert-auth",
    ];
    flags.extend_from_slice(extra);
    let member = start(dir, &format!("{https},{http}"), &flags);
    (member, https, http)
}

#[test]
fn client_cert_auth_with_real_etcdctl() {
    let dir = test_dir("tls-client");
    let certs = make_certs(&dir);
    let (member, https, http) = start_client_cert_auth(&dir, &certs, &["--client-crl-file", &certs.crl]);
    let port_of = |url: &str| -> u16 { url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port") };
    let (tls_port, plain_port) = (port_of(&https), port_of(&http));
    wait_until("member serves TLS", || {
        with_cert(&https, &certs.ca, &certs.client, &["put", "k", "v"])
            .status
            .success()
    });
    assert_eq!(
        ok(&with_cert(&https, &certs.ca, &certs.client, &["get", "k"])),
        "k\nv\n"
    );
    // A bare host:port endpoint uses TLS once certificates are given.
    let bare = format!("127.0.0.1:{tls_port}");
    assert_eq!(
        ok(&with_cert(&bare, &certs.ca, &certs.client, &["get", "k"])),
        "k\nv\n"
    );

    // The commands that dial one endpoint send it, scheme and all, as the HTTP/2
    // :authority; over TLS too the repair (server/src/h2_authority.rs) serves them.
    for endpoint in [&https, &bare] {
        let status = ok(&with_cert(
            endpoint,
            &certs.ca,
            &certs.client,
            &["endpoint", "status"],
        ));
        assert!(status.starts_with(&format!("{endpoint}, ")), "{status}");
        let hash = ok(&with_cert(
            endpoint,
            &certs.ca,
            &certs.client,
            &["endpoint", "hashkv"],
        ));
        assert!(hash.starts_with(&format!("{endpoint}, ")), "{hash}");
        assert_eq!(
            ok(&with_cert(endpoint, &certs.ca, &certs.client, &["defrag"])),
            format!("Finished defragmenting etcd member[{endpoint}]\n")
        );
    }

    let refused = |what: &str, out: Output| {
        assert!(!out.status.success(), "{what}: etcdctl succeeded");
    };
    refused(
        "no client certificate",
        etcdctl(&["--endpoints", &https, "--cacert", &certs.ca, "get", "k"]),
    );
    refused(
        "another CA",
        with_cert(&https, &certs.ca, &certs.stranger, &["get", "k"]),
    );
    refused(
        "expired",
        with_cert(&https, &certs.ca, &certs.expired, &["get", "k"]),
    );
    refused(
        "revoked",
        with_cert(&https, &certs.ca, &certs.revoked, &["get", "k"]),
    );
    refused(
        "server not trusted",
        with_cert(&https, &certs.stranger.0, &certs.client, &["get", "k"]),
    );
    let log = read(&member.log);
    for why in [
        "UnknownIssuer",
        "certificate expired",
        "Revoked",
        "peer sent no certificates",
    ] {
        assert!(log.contains(why), "no refusal for {why} in the log:\n{log}");
    }
    assert!(log.contains("rejected connection from"), "{log}");

    // Plain text never reaches the https port; the http port serves it.
    refused(
        "plain text",
        etcdctl(&["--endpoints", &format!("http://127.0.0.1:{tls_port}"), "get", "k"]),
    );
    let answer = plain_http(tls_port);
    assert!(
        !answer.contains("health"),
        "plain HTTP answered on the TLS port: {answer}"
    );
    assert_eq!(ok(&etcdctl(&["--endpoints", &http, "get", "k"])), "k\nv\n");
    assert!(plain_http(plain_port).contains("\"health\":\"true\""));

    // detcdctl speaks the same TLS.
    let detcdctl = Command::new(env!("CARGO_BIN_EXE_detcdctl-e2e"))
        .args(["--endpoints", &https, "--cacert", &certs.ca])
        .args(["--cert", &certs.client.0, "--key", &certs.client.1, "get", "k"])
        .output()
        .expect("detcdctl");
    assert_eq!(ok(&detcdctl), "k\nv\n");
    let refused_ctl = Command::new(env!("CARGO_BIN_EXE_detcdctl-e2e"))
        .args(["--endpoints", &https, "--cacert", &certs.ca, "get", "k"])
        .output()
        .expect("detcdctl");
    assert_eq!(refused_ctl.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused_ctl.stderr),
        "Error: context deadline exceeded\n"
    );

    // Rotation: a server certificate from a new CA, written over the old files, is
    // served from the next handshake on.
    let new_ca = Ca::new("rotated CA").expect("ca");
    let new_ca_file = put(&certs.dir, "new-ca.crt", &new_ca.cert_pem);
    let issued = new_ca
        .issue(&Leaf::new("server", &["127.0.0.1"], 5))
        .expect("issue");
    put(&certs.dir, "server.key", &issued.key_pem);
    put(&certs.dir, "server.crt", &issued.cert_pem);
    wait_until("rotated certificate served", || {
        with_cert(&https, &new_ca_file, &certs.client, &["get", "k"])
            .status
            .success()
    });
    refused(
        "old CA after rotation",
        with_cert(&https, &certs.ca, &certs.client, &["get", "k"]),
    );
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_without_client_certificates() {
    let dir = test_dir("tls-server-only");
    let certs = make_certs(&dir);
    let https = format!("https://127.0.0.1:{}", free_port());
    let member = start(
        &dir,
        &https,
        &[
            "--cert-file",
            &certs.server.0,
            "--key-file",
            &certs.server.1,
            "--cipher-suites",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "--tls-max-version",
            "TLS1.2",
        ],
    );
    wait_until("member serves TLS", || {
        etcdctl(&["--endpoints", &https, "--cacert", &certs.ca, "put", "a", "1"])
            .status
            .success()
    });
    assert_eq!(
        ok(&etcdctl(&[
            "--endpoints",
            &https,
            "--cacert",
            &certs.ca,
            "get",
            "a"
        ])),
        "a\n1\n"
    );
    assert_eq!(
        ok(&etcdctl(&[
            "--endpoints",
            &https,
            "--insecure-skip-tls-verify",
            "--insecure-transport=false",
            "get",
            "a"
        ])),
        "a\n1\n"
    );
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a member that must refuse to start; returns its stderr.
fn refused_start(dir: &Path, client_urls: &str, flags: &[&str]) -> String {
    refused(start(dir, client_urls, flags))
}

/// Waits for a member that must refuse to start to exit non-zero; returns its stderr.
pub(super) fn refused(mut member: Member) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = member.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "member did not refuse to start");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "member exited 0");
    read(&member.log)
}

#[test]
fn tls_misconfiguration_is_refused_at_start_up() {
    let dir = test_dir("tls-refusals");
    let certs = make_certs(&dir);
    let https = format!("https://127.0.0.1:{}", free_port());
    let log = refused_start(&dir.join("a"), &https, &[]);
    assert!(
        log.contains(&format!(
            "TLS key/cert (--cert-file, --key-file) must be provided for client url {https} with HTTPS scheme"
        )),
        "{log}"
    );
    let log = refused_start(
        &dir.join("b"),
        &https,
        &["--cert-file", &certs.server.0, "--key-file", &certs.client.1],
    );
    assert!(
        log.contains("tls: private key does not match public key"),
        "{log}"
    );
    let missing = dir.join("missing.crt").to_string_lossy().into_owned();
    let log = refused_start(
        &dir.join("c"),
        &https,
        &["--cert-file", &missing, "--key-file", &certs.server.1],
    );
    assert!(
        log.contains(&format!("open {missing}: no such file or directory")),
        "{log}"
    );
    let log = refused_start(
        &dir.join("e"),
        &https,
        &[
            "--cert-file",
            &certs.server.0,
            "--key-file",
            &certs.server.1,
            "--cipher-suites",
            "TLS_FOO",
        ],
    );
    assert!(log.contains("unexpected TLS cipher suite \"TLS_FOO\""), "{log}");
    let peer = format!("https://127.0.0.1:{}", free_port());
    let log = refused_start(
        &dir.join("d"),
        &format!("http://127.0.0.1:{}", free_port()),
        &["--listen-peer-urls", &peer],
    );
    assert!(log.contains("KeyFile and CertFile are not presented"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `check datascale` reads the member's `/metrics` over https with the TLS flags, as
/// etcdctl's `secureCfg` does.
#[test]
fn check_datascale_reads_metrics_over_https() {
    let dir = test_dir("tls-datascale");
    let certs = make_certs(&dir);
    let https = format!("https://127.0.0.1:{}", free_port());
    let member = start(
        &dir,
        &https,
        &["--cert-file", &certs.server.0, "--key-file", &certs.server.1],
    );
    wait_until("member serves TLS", || {
        etcdctl(&["--endpoints", &https, "--cacert", &certs.ca, "put", "a", "1"])
            .status
            .success()
    });
    let out = Command::new(env!("CARGO_BIN_EXE_detcdctl-e2e"))
        .args(["--endpoints", &https, "--cacert", &certs.ca])
        .args(["check", "datascale", "--count", "200"])
        .output()
        .expect("detcdctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "Start data scale check for work load [200 key-value pairs, 1024 bytes per key-value, 50 concurrent clients]."
    );
    assert!(
        lines[1].starts_with("PASS: Approximate system memory used : "),
        "{stdout}"
    );
    // --insecure-skip-tls-verify instead of the CA reads it too.
    let out = Command::new(env!("CARGO_BIN_EXE_detcdctl-e2e"))
        .args([
            "--endpoints",
            &https,
            "--insecure-skip-tls-verify",
            "--insecure-transport=false",
        ])
        .args(["check", "datascale", "--count", "10"])
        .output()
        .expect("detcdctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(member);
    let _ = std::fs::remove_dir_all(&dir);
}
