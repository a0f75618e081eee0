//! Running as operators run etcd: kubeadm's flags without TLS (with TLS: `kubeadm.rs`), the metrics listener
//! and its probes, `--wal-dir`, `--log-outputs` to a file in etcd's JSON shape, and
//! gRPC and process series on `/metrics`.

use std::process::Command;
use std::time::{Duration, Instant};

use detcd_testkit::free_port;

use super::harness::{http_get, signal, test_dir, DETCD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeadm_flags_start_and_the_metrics_listener_serves_probes_and_series() {
    let dir = test_dir("operations");
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let (c, p) = (
        format!("http://127.0.0.1:{client}"),
        format!("http://127.0.0.1:{peer}"),
    );
    let wal_dir = dir.join("wal");
    let log_file = dir.join("detcd.log");
    let args = vec![
        format!("--advertise-client-urls={c}"),
        format!("--data-dir={}", dir.join("data").display()),
        "--experimental-initial-corrupt-check=true".to_string(),
        "--experimental-watch-progress-notify-interval=5s".to_string(),
        format!("--initial-advertise-peer-urls={p}"),
        format!("--initial-cluster=cp1={p}"),
        format!("--listen-client-urls={c}"),
        format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"),
        format!("--listen-peer-urls={p}"),
        "--name=cp1".to_string(),
        "--snapshot-count=10000".to_string(),
        format!("--wal-dir={}", wal_dir.display()),
        format!("--log-outputs={}", log_file.display()),
        "--metrics=extensive".to_string(),
        "--max-wals=2".to_string(),
    ];
    let mut child = Command::new(DETCD)
        .env(
            "DETCD_WAL_SEGMENT_BYTES",
            super::harness::WAL_SEGMENT_BYTES.to_string(),
        )
        .args(&args)
        .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr"))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(std::net::TcpStream::connect(("127.0.0.1", metrics)).is_ok()
        && http_get(metrics, "/health").0 == 200)
    {
        assert!(
            Instant::now() < deadline,
            "{}{}",
            super::harness::read(&dir.join("stderr")),
            super::harness::read(&log_file)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // kubeadm's probes, on the metrics listener.
    assert_eq!(
        http_get(metrics, "/health?exclude=NOSPACE&serializable=true"),
        (200, r#"{"health":"true","reason":""}"#.to_string())
    );
    assert_eq!(http_get(metrics, "/livez"), (200, "ok\n".to_string()));
    assert_eq!(
        http_get(metrics, "/readyz?verbose"),
        (
            200,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n"
                .to_string()
        )
    );
    // Each check has its own path, as etcd 3.5.13+ and 3.6; an excluded check is left out.
    assert_eq!(
        http_get(metrics, "/readyz/linearizable_read?verbose"),
        (200, "[+]linearizable_read ok\nok\n".to_string())
    );
    assert_eq!(
        http_get(metrics, "/livez/serializable_read"),
        (200, "ok\n".to_string())
    );
    assert_eq!(
        http_get(
            metrics,
            "/readyz?exclude=data_corruption&exclude=non_learner&verbose"
        ),
        (
            200,
            "[+]serializable_read ok\n[+]linearizable_read ok\nok\n".to_string()
        )
    );
    assert_eq!(http_get(metrics, "/readyz/bogus").0, 404);
    // One gRPC call, then its series (and the handling histogram of --metrics extensive).
    let mut h = detcd_proto::health::health_client::HealthClient::connect(c.clone())
        .await
        .expect("connect");
    h.check(detcd_proto::health::HealthCheckRequest::default())
        .await
        .expect("check");
    let (code, text) = http_get(metrics, "/metrics");
    assert_eq!(code, 200);
    for series in [
        "etcd_server_has_leader 1",
        "etcd_server_is_leader 1",
        "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Check\",grpc_service=\"grpc.health.v1.Health\",grpc_type=\"unary\"} 1",
        "grpc_server_started_total{grpc_method=\"Check\"",
        "grpc_server_handling_seconds_bucket{grpc_method=\"Check\"",
        "etcd_disk_wal_fsync_duration_seconds_bucket",
        "etcd_server_id{server_id=",
        "etcd_server_quota_backend_bytes 2147483648",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(series), "{series} missing from\n{text}");
    }
    // The client port serves the same registry.
    assert!(http_get(client, "/metrics")
        .1
        .contains("grpc_server_started_total"));
    // --wal-dir holds the WAL; the data dir does not.
    assert!(std::fs::read_dir(&wal_dir).expect("wal dir").any(|e| e
        .expect("entry")
        .file_name()
        .to_string_lossy()
        .ends_with(".wal")));
    assert!(!dir.join("data/member/wal").exists());
    signal(child.id(), "TERM");
    assert!(child.wait().expect("wait").success());
    // --log-outputs: etcd's JSON lines, with the lifecycle messages tools wait for.
    let log = super::harness::read(&log_file);
    for message in [
        "\"msg\":\"ready to serve client requests\"",
        "\"msg\":\"initial corruption checking passed; no corruption",
        "serving client traffic insecurely",
        "\"level\":\"info\"",
    ] {
        assert!(log.contains(message), "{message} missing from\n{log}");
    }
    assert!(
        log.lines().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{log}"
    );
    // A member restarts from --wal-dir.
    let mut child = Command::new(DETCD)
        .args(&args)
        .stderr(std::fs::File::create(dir.join("stderr2")).expect("stderr"))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(std::net::TcpStream::connect(("127.0.0.1", metrics)).is_ok()
        && http_get(metrics, "/health").0 == 200)
    {
        assert!(Instant::now() < deadline, "{}", super::harness::read(&log_file));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(super::harness::read(&log_file).contains("restarting member"));
    signal(child.id(), "TERM");
    assert!(child.wait().expect("wait").success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refused_flags_name_themselves_and_exit_1() {
    let o = Command::new(DETCD)
        .args(["--experimental-enable-v2v3=/v2"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--experimental-enable-v2v3=/v2 is not supported by detcd: "),
        "{err}"
    );
}
