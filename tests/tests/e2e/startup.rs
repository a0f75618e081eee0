//! Start-up and shutdown: etcd's defaults with no flags, clear errors and non-zero exits
//! for bad flags, a port in use and an unusable data directory; SIGTERM shuts down
//! cleanly and the member restarts from its data, with its data directory's identity.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use detcd_testkit::free_port;

use super::harness::{http_get, signal, test_dir, Cluster, DETCD};

fn run(args: &[&str]) -> Output {
    Command::new(DETCD)
        .env(
            "DETCD_WAL_SEGMENT_BYTES",
            super::harness::WAL_SEGMENT_BYTES.to_string(),
        )
        .args(args)
        .output()
        .expect("run detcd")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn member_args(name: &str, dir: &std::path::Path, client: u16, peer: u16) -> Vec<String> {
    let (c, p) = (
        format!("http://127.0.0.1:{client}"),
        format!("http://127.0.0.1:{peer}"),
    );
    vec![
        "--name".into(),
        name.into(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--listen-client-urls".into(),
        c.clone(),
        "--advertise-client-urls".into(),
        c,
        "--listen-peer-urls".into(),
        p.clone(),
        "--initial-advertise-peer-urls".into(),
        p.clone(),
        "--initial-cluster".into(),
        format!("{name}={p}"),
    ]
}

#[test]
fn bad_flags_port_in_use_and_unusable_data_dirs_fail_clearly() {
    let o = run(&["--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A word that is no flag: etcd's "error verifying flags", exit status 1 (etcd 3.4).
    let o = run(&["extra"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "detcd: error verifying flags, 'extra' is not a valid flag. See 'detcd --help'.\n"
    );
    let o = run(&["--election-timeout", "10"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    let dir = test_dir("startup");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_port = busy.local_addr().expect("addr").port();
    let args = member_args("a", &dir.join("a"), busy_port, free_port());
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Address already in use"), "{}", stderr(&o));

    std::fs::write(dir.join("file"), b"").expect("file");
    let args = member_args("a", &dir.join("file"), free_port(), free_port());
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot use data directory"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_a_restart_keeps_the_data_dirs_identity() {
    let mut cluster = Cluster::start("sigterm", 1).await;
    let mut c = cluster.client(0).await;
    c.put("kept", "1", None).await.expect("put");
    let ids = |r: &etcd_client::GetResponse| r.header().map(|h| (h.member_id(), h.cluster_id()));
    let before = ids(&c.get("kept", None).await.expect("get"));
    let status = cluster.members[0].terminate();
    assert!(status.success(), "exit status {status:?}\n{}", cluster.logs());
    let log = super::harness::read(&cluster.members[0].log);
    assert!(
        log.contains("received signal; shutting down")
            && log.contains("terminated")
            && log.contains("closing etcd server")
            && log.contains("closed etcd server"),
        "{log}"
    );

    // Under another cluster token (the last of a repeated flag counts) it restarts,
    // as etcd, as the member and cluster its data directory records.
    cluster.members[0].extra_args = vec!["--initial-cluster-token".into(), "another".into()];
    cluster.members[0].spawn();
    cluster.wait_leader().await;
    let mut c = cluster.client(0).await;
    let kept = c.get("kept", None).await.expect("get");
    assert_eq!(kept.count(), 1);
    assert_eq!(ids(&kept), before);
    let log = super::harness::read(&cluster.members[0].log);
    assert!(log.contains("ignoring member"), "{log}");
}

#[test]
fn no_flags_starts_a_single_member_on_etcds_defaults() {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    if !free(2379) || !free(2380) {
        eprintln!("skipped: ports 2379/2380 are in use on this machine");
        return;
    }
    let dir = test_dir("defaults");
    let mut child = Command::new(DETCD)
        .env(
            "DETCD_WAL_SEGMENT_BYTES",
            super::harness::WAL_SEGMENT_BYTES.to_string(),
        )
        .current_dir(&dir)
        .stderr(std::fs::File::create(dir.join("log")).expect("log"))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect("127.0.0.1:2379").is_ok() && http_get(2379, "/health").0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            super::harness::read(&dir.join("log"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(dir.join("default.detcd/member/wal").is_dir());
    signal(child.id(), "INT");
    assert!(child.wait().expect("wait").success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn systemd_hears_ready_once_the_member_serves_and_stopping_on_sigterm() {
    use std::os::unix::net::UnixDatagram;
    let dir = test_dir("notify");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(super::harness::READY_TIMEOUT))
        .expect("timeout");
    let (client, peer) = (free_port(), free_port());
    let args = member_args("n", &dir.join("data"), client, peer);
    let mut child = Command::new(DETCD)
        .env(
            "DETCD_WAL_SEGMENT_BYTES",
            super::harness::WAL_SEGMENT_BYTES.to_string(),
        )
        .env("NOTIFY_SOCKET", &socket_path)
        .args(&args)
        .stderr(std::fs::File::create(dir.join("log")).expect("log"))
        .spawn()
        .expect("start detcd");
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 within the ready timeout");
    assert_eq!(&buf[..n], b"READY=1\n");
    // Ready means serving: a linearizable read answers at once.
    assert_eq!(http_get(client, "/health").0, 200);
    signal(child.id(), "TERM");
    let n = socket.recv(&mut buf).expect("STOPPING=1 on SIGTERM");
    assert_eq!(&buf[..n], b"STOPPING=1\n");
    assert!(child.wait().expect("wait").success());
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    assert!(log.contains("ready to serve client requests"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
