//! Members of one server under test (etcd 3.4 or detcd) started on free ports in a
//! test directory, from flags or from a backup restored with that server's restore
//! tool: the launcher the restore and raft-index comparisons share.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use detcd_testkit::{free_port, member_command};

use super::v2_norm::Proc;

/// A member's name and ports.
pub struct Spec {
    pub name: String,
    pub client: u16,
    pub peer: u16,
}

impl Spec {
    pub fn new(name: &str) -> Spec {
        Spec {
            name: name.to_string(),
            client: free_port(),
            peer: free_port(),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer)
    }
}

/// `--initial-cluster` for `specs`.
pub fn initial_cluster<'a>(specs: impl IntoIterator<Item = &'a Spec>) -> String {
    let pairs: Vec<String> = specs
        .into_iter()
        .map(|s| format!("{}={}", s.name, s.peer_url()))
        .collect();
    pairs.join(",")
}

/// The server and the restore tool under test, and the directory members live in.
pub struct Launcher {
    pub server: String,
    /// The restore command, before `snapshot restore`'s arguments.
    pub restore: fn() -> Command,
    pub dir: PathBuf,
}

impl Launcher {
    /// Starts member `s` of `cluster` with the v2 API on, its log in the directory.
    pub fn start(&self, s: &Spec, cluster: &str, extra: &[&str]) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", s.name)))
            .expect("log file");
        let child = member_command(
            &self.server,
            &s.name,
            &self.dir.join(&s.name),
            &format!("http://{}", s.endpoint()),
            &s.peer_url(),
        )
        .args(["--initial-cluster", cluster, "--enable-v2"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", self.server));
        Proc(child)
    }

    /// Restores `backup` into each member's data directory, then starts them.
    pub fn restore_and_start(&self, backup: &Path, specs: &[Spec]) -> Vec<Proc> {
        let cluster = initial_cluster(specs);
        for s in specs {
            let out = (self.restore)()
                .args(["snapshot", "restore"])
                .arg(backup)
                .args(["--name", &s.name, "--data-dir"])
                .arg(self.dir.join(&s.name))
                .args(["--initial-cluster", &cluster])
                .args(["--initial-advertise-peer-urls", &s.peer_url()])
                .output()
                .expect("run snapshot restore");
            assert!(
                out.status.success(),
                "{}: restore {}: {}",
                self.server,
                s.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        specs.iter().map(|s| self.start(s, &cluster, &[])).collect()
    }
}

/// etcdctl 3.4 (on PATH, or Debian's at /usr/bin), speaking v3.
pub fn etcdctl34() -> Command {
    let program = ["etcdctl", "/usr/bin/etcdctl"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .env("ETCDCTL_API", "3")
                .arg("version")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("etcdctl version: 3.4."))
        })
        .expect("etcdctl 3.4 on PATH or at /usr/bin/etcdctl");
    let mut c = Command::new(program);
    c.env("ETCDCTL_API", "3");
    c
}

/// detcdctl, as built for these tests.
pub fn detcdctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_detcdctl"))
}
