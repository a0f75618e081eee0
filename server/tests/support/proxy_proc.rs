//! Proxies and gateways of detcd or etcd as processes for tests, the 3-member detcd
//! cluster they sit in front of, and the etcdctl runs those tests make.

// Each test file includes this module and uses part of it.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use detcd_testkit::{free_port, member_command, require_tools, wait_healthy, Server};

pub const DETCD: &str = env!("CARGO_BIN_EXE_detcd");

/// A proxy or gateway process, killed on drop.
pub struct Proc {
    child: Child,
    pub addr: String,
    log: std::path::PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Proc {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

/// A detcd grpc-proxy in front of `endpoints` that is listening itself: the free
/// port [`start_proxy`] picks can be taken by another process before the proxy
/// binds it (the proxy then exits, and that process answers); such a start is
/// retried on another port.
pub fn own_grpc_proxy(endpoints: &str, extra: &[&str]) -> Proc {
    for _ in 0..3 {
        let mut proxy = grpc_proxy(DETCD, endpoints, extra);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if proxy.log().contains("listening for gRPC proxy client requests") {
                return proxy;
            }
            if proxy.exited() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no grpc-proxy in front of {endpoints} started listening");
}

/// Starts `program` `kind start` (`kind`: grpc-proxy or gateway) on a free port with
/// `args`; waits until the port takes connections.
pub fn start_proxy(program: &str, kind: &str, args: &[String]) -> Proc {
    start_proxy_env(program, kind, args, &[])
}

/// [`start_proxy`] with `env` set for the proxy.
pub fn start_proxy_env(program: &str, kind: &str, args: &[String], env: &[(&str, &str)]) -> Proc {
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::env::temp_dir().join(format!("detcd-proxy-{}-{}.log", std::process::id(), free_port()));
    let child = Command::new(program)
        .args([kind, "start", &format!("--listen-addr={addr}")])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .unwrap_or_else(|e| panic!("start {program} {kind}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "{kind} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Proc { child, addr, log }
}

pub fn grpc_proxy(program: &str, endpoints: &str, extra: &[&str]) -> Proc {
    let mut args = vec![format!("--endpoints={endpoints}")];
    args.extend(extra.iter().map(|s| s.to_string()));
    start_proxy(program, "grpc-proxy", &args)
}

/// A series' value in Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    try_metric(text, name).unwrap_or_else(|| panic!("no {name} in metrics"))
}

fn try_metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
}

/// `GET path` of `endpoint` over HTTP/1.0 (the whole answer, then the connection
/// closes): the status code and the body.
pub fn http_get(endpoint: &str, path: &str) -> (u16, String) {
    use std::io::Read as _;
    let Ok(mut conn) = TcpStream::connect(endpoint) else {
        return (0, String::new());
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes());
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (code, body)
}

/// `GET /metrics` of `endpoint` (a proxy's: its upstream's, relayed).
pub fn scrape(endpoint: &str) -> String {
    http_get(endpoint, "/metrics").1
}

/// `GET /proxy/metrics` of `endpoint` (a proxy's own series).
pub fn scrape_proxy(endpoint: &str) -> String {
    http_get(endpoint, "/proxy/metrics").1
}

/// Waits (up to 10 s) until `endpoint` (a proxy) serves at least `n` watchers: detcd's
/// proxy counts them itself (`/proxy/metrics`); etcd 3.4's has no `/proxy/metrics`,
/// and its `/metrics` relays its upstream's count of watchers.
pub fn wait_watchers(endpoint: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = try_metric(&scrape_proxy(endpoint), "detcd_grpc_proxy_watchers ")
            .or_else(|| try_metric(&scrape(endpoint), "etcd_debugging_mvcc_watcher_total "))
            .unwrap_or(0.0);
        if seen >= n as f64 {
            return;
        }
        assert!(Instant::now() < deadline, "{endpoint} never had {n} watchers");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// etcd and etcdctl on PATH (see [`require_tools`]).
pub fn tools_present(test: &str) -> bool {
    require_tools(&["etcd", "etcdctl"], test)
}

/// etcdctl with `stdin` as its input.
pub fn etcdctl_stdin(endpoint: &str, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("etcdctl output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A background `etcdctl watch`, stopped (killed) when its lines are read or at its
/// time limit, and in any case when dropped.
pub struct Watching {
    child: Child,
    until: Instant,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `etcdctl watch <args>` against `endpoint`, for at most `secs` seconds.
pub fn watch_for(endpoint: &str, args: &[&str], secs: u64) -> Watching {
    let child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run etcdctl watch");
    Watching {
        child,
        until: Instant::now() + Duration::from_secs(secs),
    }
}

/// The first `lines` lines the watch prints (fewer if its time runs out first); then it
/// is stopped, so a test waits only as long as the events take.
pub fn lines_of(mut watching: Watching, lines: usize) -> String {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stdout) = watching.child.stdout.take() {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut text = String::new();
    for _ in 0..lines {
        let left = watching.until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
            }
            Err(_) => break,
        }
    }
    text
}

/// A 3-member detcd cluster on free ports; `Server`s in member order.
pub fn three_members(tag: &str) -> Vec<Server> {
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let cluster = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers = Vec::new();
    for (i, (c, p)) in ports.iter().enumerate() {
        let dir = std::env::temp_dir().join(format!("detcd-{tag}-{i}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = member_command(
            DETCD,
            &format!("m{i}"),
            &dir.join("data"),
            &format!("http://127.0.0.1:{c}"),
            &format!("http://127.0.0.1:{p}"),
        )
        .args(["--initial-cluster", &cluster, "--initial-cluster-token", tag])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).expect("log"))
        .spawn()
        .expect("start detcd");
        servers.push(Server::new(child, dir, format!("127.0.0.1:{c}")));
    }
    for s in &servers {
        wait_healthy(&s.endpoint);
    }
    servers
}
