//! Starts, kills and restarts `detcd` members on free loopback ports, each in its own
//! directory under a per-test temporary directory (removed when the test passes; kept,
//! with every member's log printed, when it fails).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use detcd_testkit::free_port;
use etcd_client::Client;

/// The server under test.
pub const DETCD: &str = env!("CARGO_BIN_EXE_detcd-e2e");
/// Raft timing for the tests: quick elections without flapping on a loaded machine.
pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_MS: u64 = 750;
/// WAL segments of the tests' members: small, since each start zero-fills two of them.
pub const WAL_SEGMENT_BYTES: usize = 4_000_000;
/// How long a member gets to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh directory for one test.
pub fn test_dir(tag: &str) -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "detcd-e2e-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

/// One member process.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// `--initial-cluster` and `--initial-cluster-state` it starts with.
    pub initial_cluster: String,
    pub state: &'static str,
    /// More flags, after the harness's own.
    pub extra_args: Vec<String>,
    /// More environment variables.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Proc {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Spawns the process (appending to its log).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let (client, peer) = (self.endpoint(), self.peer_url());
        let child = Command::new(DETCD)
            .env("DETCD_WAL_SEGMENT_BYTES", WAL_SEGMENT_BYTES.to_string())
            .args(["--name", &self.name, "--data-dir"])
            .arg(&self.data_dir)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &self.initial_cluster])
            .args([
                "--initial-cluster-state",
                self.state,
                "--initial-cluster-token",
                "e2e",
            ])
            .args(["--heartbeat-interval", &HEARTBEAT_MS.to_string()])
            .args(["--election-timeout", &ELECTION_MS.to_string()])
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn detcd");
        self.child = Some(child);
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut()?.try_wait().expect("wait") {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not exit after SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{name} {pid}");
}

/// A cluster of member processes.
#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    pub members: Vec<Proc>,
}

impl Cluster {
    /// Bootstraps `n` members statically (`--initial-cluster`) and waits for a leader.
    pub async fn start(tag: &str, n: usize) -> Cluster {
        Cluster::start_with(tag, n, &[]).await
    }

    /// [`Cluster::start`] with more flags for every member.
    pub async fn start_with(tag: &str, n: usize, extra_args: &[&str]) -> Cluster {
        let dir = test_dir(tag);
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, &(client_port, peer_port))| Proc {
                name: format!("m{i}"),
                client_port,
                peer_port,
                data_dir: dir.join(format!("m{i}.detcd")),
                log: dir.join(format!("m{i}.log")),
                initial_cluster: initial_cluster.clone(),
                state: "new",
                extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
                env: Vec::new(),
                child: None,
            })
            .collect();
        let mut cluster = Cluster { dir, members };
        for m in &mut cluster.members {
            m.spawn();
        }
        cluster.wait_leader().await;
        cluster
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.running())
            .map(Proc::endpoint)
            .collect()
    }

    /// A client of member `i` only.
    pub async fn client(&self, i: usize) -> Client {
        connect(&[self.members[i].endpoint()]).await
    }

    /// A client of every running member.
    pub async fn client_all(&self) -> Client {
        connect(&self.endpoints()).await
    }

    /// Waits until every running member knows the same leader; returns its index.
    pub async fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(i) = self.leader().await {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no leader within {READY_TIMEOUT:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The leader's index when every running member agrees on one.
    async fn leader(&self) -> Option<usize> {
        let mut leader = None;
        let mut ids = Vec::new();
        for m in self.members.iter().filter(|m| m.running()) {
            let mut c = try_connect(&[m.endpoint()]).await?;
            let status = c.status().await.ok()?;
            let header = status.header()?;
            ids.push((header.member_id(), m.name.clone()));
            if status.leader() == 0 || leader.is_some_and(|l| l != status.leader()) {
                return None;
            }
            leader = Some(status.leader());
        }
        let leader = leader?;
        let (_, name) = ids.into_iter().find(|(id, _)| *id == leader)?;
        self.members.iter().position(|m| m.name == name)
    }

    /// The member ID of member `i`.
    pub async fn member_id(&self, i: usize) -> u64 {
        let mut c = self.client(i).await;
        c.status()
            .await
            .expect("status")
            .header()
            .expect("header")
            .member_id()
    }

    /// Every member's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            s.push_str(&format!("---- {} ({})\n", m.name, m.log.display()));
            for line in tail.into_iter().rev() {
                s.push_str(line);
                s.push('\n');
            }
        }
        s
    }

    /// Adds a member process (not yet started) that joins with `existing`.
    pub fn new_joiner(&mut self, name: &str) -> usize {
        let (client_port, peer_port) = (free_port(), free_port());
        let mut initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        initial.push(format!("{name}=http://127.0.0.1:{peer_port}"));
        self.members.push(Proc {
            name: name.to_string(),
            client_port,
            peer_port,
            data_dir: self.dir.join(format!("{name}.detcd")),
            log: self.dir.join(format!("{name}.log")),
            initial_cluster: initial.join(","),
            state: "existing",
            extra_args: Vec::new(),
            env: Vec::new(),
            child: None,
        });
        self.members.len() - 1
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
        if std::thread::panicking() {
            eprintln!("member logs kept in {}:\n{}", self.dir.display(), self.logs());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub async fn try_connect(endpoints: &[String]) -> Option<Client> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10));
    Client::connect(endpoints, Some(options)).await.ok()
}

pub async fn connect(endpoints: &[String]) -> Client {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(c) = try_connect(endpoints).await {
            return c;
        }
        assert!(Instant::now() < deadline, "cannot connect to {endpoints:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/1.1 GET on the client port: (status code, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Reads `path` to a string (empty when missing).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
