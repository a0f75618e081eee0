//! `/metrics` against etcd 3.4's: the same small workload on a single etcd and a
//! single detcd, then every series family etcd shows must be in detcd's, with the
//! same type and the same label names, except the ones the README's "Metrics"
//! table lists as having no detcd equivalent (read from the README itself, so the
//! table is the one list). A few values are checked too.
//!
//! Skipped (with a notice) without `etcd`, `etcdctl` and `curl` on PATH, a failure under CI.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use detcd_testkit::{etcdctl_ok, require_tools, start_server, start_server_with};

/// One family as the text format shows it: its type and its label names.
#[derive(Debug, PartialEq)]
struct Family {
    kind: String,
    labels: BTreeSet<String>,
}

/// The families of a `/metrics` text and the samples (name with labels -> value).
fn parse(text: &str) -> (BTreeMap<String, Family>, BTreeMap<String, f64>) {
    let mut families = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            families.insert(
                name.to_string(),
                Family {
                    kind: kind.to_string(),
                    labels: BTreeSet::new(),
                },
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        samples.insert(series.to_string(), value.parse().unwrap_or(f64::NAN));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| families.contains_key(*f)))
            .unwrap_or(name);
        let Some(f) = families.get_mut(family) else {
            continue;
        };
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let label = pair.split('=').next().unwrap_or_default();
            if label != "le" {
                f.labels.insert(label.to_string());
            }
        }
    }
    (families, samples)
}

/// The series the README's Metrics table names in its first column (`name`, or
/// `prefix*` for a whole group).
fn documented_exceptions() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    let section = readme
        .split("\n## Metrics\n")
        .nth(1)
        .expect("README has a Metrics section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let mut names = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap_or_default();
        for part in first.split('`').skip(1).step_by(2) {
            names.push(part.to_string());
        }
    }
    assert!(
        !names.is_empty(),
        "no exceptions table in the README's Metrics section"
    );
    names
}

fn excepted(name: &str, exceptions: &[String]) -> bool {
    exceptions.iter().any(|e| match e.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == e,
    })
}

fn scrape_path(endpoint: &str, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", &format!("http://{endpoint}{path}")])
        .output()
        .expect("curl");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn scrape(endpoint: &str) -> String {
    scrape_path(endpoint, "/metrics")
}

/// The same requests on either server: puts, a get, a delete, a lease, a
/// compaction, a hash and health checks.
fn workload(endpoint: &str) {
    etcdctl_ok(endpoint, &["put", "a", "1"]);
    etcdctl_ok(endpoint, &["put", "b", "22"]);
    etcdctl_ok(endpoint, &["get", "a"]);
    etcdctl_ok(endpoint, &["del", "b"]);
    etcdctl_ok(endpoint, &["lease", "grant", "100"]);
    etcdctl_ok(endpoint, &["compact", "2"]);
    etcdctl_ok(endpoint, &["endpoint", "hashkv"]);
    etcdctl_ok(endpoint, &["endpoint", "health"]);
    let health = scrape_path(endpoint, "/health");
    assert!(health.contains(r#""health":"true""#), "{health}");
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series}"))
}

#[test]
fn every_etcd_series_is_there_with_its_type_and_labels() {
    if !require_tools(&["etcd", "etcdctl", "curl"], "metrics_vs_etcd") {
        return;
    }
    let exceptions = documented_exceptions();
    let etcd = start_server("etcd", "metrics-etcd");
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "metrics-detcd");
    workload(&etcd.endpoint);
    workload(&detcd.endpoint);
    let (theirs, _) = parse(&scrape(&etcd.endpoint));
    // detcd counts its keys about once a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (ours, samples) = loop {
        let (ours, samples) = parse(&scrape(&detcd.endpoint));
        if samples.get("etcd_debugging_mvcc_keys_total") == Some(&1.0) || std::time::Instant::now() > deadline
        {
            break (ours, samples);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(theirs.len() > 50, "etcd's /metrics: {} families", theirs.len());

    let mut problems = Vec::new();
    for (name, family) in &theirs {
        if excepted(name, &exceptions) {
            continue;
        }
        match ours.get(name) {
            None => problems.push(format!("{name}: missing")),
            Some(f) if f != family => problems.push(format!("{name}: etcd {family:?}, detcd {f:?}")),
            Some(_) => {}
        }
    }
    // The table lists only series detcd does not have.
    for name in exceptions.iter().filter(|e| !e.ends_with('*')) {
        if ours.contains_key(name) {
            problems.push(format!("{name}: documented as missing but present"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    assert_eq!(value(&samples, "etcd_server_is_leader"), 1.0);
    assert_eq!(value(&samples, "etcd_server_is_learner"), 0.0);
    assert_eq!(value(&samples, "etcd_mvcc_put_total"), 2.0);
    assert_eq!(value(&samples, "etcd_mvcc_delete_total"), 1.0);
    assert_eq!(value(&samples, "etcd_debugging_lease_granted_total"), 1.0);
    assert_eq!(value(&samples, "etcd_debugging_mvcc_compact_revision"), 2.0);
    assert_eq!(value(&samples, "etcd_debugging_mvcc_keys_total"), 1.0);
    assert!(value(&samples, "etcd_server_health_success") >= 1.0);
    assert!(value(&samples, "etcd_disk_wal_write_bytes_total") > 0.0);
    // "put a 1" and "put b 22" carry 6 and 8 payload bytes among the rest.
    assert!(value(&samples, "etcd_network_client_grpc_received_bytes_total") >= 14.0);
    assert!(value(&samples, "etcd_network_client_grpc_sent_bytes_total") > 0.0);
    // The sum of a family's samples whose labels include every one of `labels`.
    let sum = |family: &str, labels: &[&str]| {
        samples
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{family}{{")) && labels.iter().all(|l| k.contains(l)))
            .map(|(_, v)| *v)
            .sum::<f64>()
    };
    let put = [
        r#"grpc_method="Put""#,
        r#"grpc_service="etcdserverpb.KV""#,
        r#"grpc_type="unary""#,
    ];
    assert_eq!(sum("grpc_server_started_total", &put), 2.0);
    assert_eq!(sum("grpc_server_msg_received_total", &put), 2.0);
    assert_eq!(sum("grpc_server_msg_sent_total", &put), 2.0);
    let put_ok = [put[0], put[1], put[2], r#"grpc_code="OK""#];
    assert_eq!(sum("grpc_server_handled_total", &put_ok), 2.0);
    let v34 = [r#"client_api_version="3.4""#, r#"type="unary""#];
    assert!(sum("etcd_server_client_requests_total", &v34) >= 8.0);
}

/// The value of `series` on `endpoint` now, 0 when absent.
fn now_value(endpoint: &str, series: &str) -> f64 {
    let (_, samples) = parse(&scrape(endpoint));
    samples.get(series).copied().unwrap_or(0.0)
}

/// Scrapes `series` until `ok` holds for it (`within` at most); its last value.
fn wait_value(endpoint: &str, series: &str, within: std::time::Duration, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = std::time::Instant::now() + within;
    loop {
        let v = now_value(endpoint, series);
        if ok(v) || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How one server's series moved under the same steps.
#[derive(Debug, PartialEq)]
struct Moves {
    compacted_keys: f64,
    compactions_timed: f64,
    watchers_with_one_watch: f64,
    watchers_after: f64,
    leases_expired: f64,
    v2_sets: f64,
    v2_recursive_reads: f64,
    v2_reads: f64,
    v2_watch_requests: f64,
    v2_expired: f64,
}

/// The steps, on `endpoint`: a key written three times and deleted, a compaction
/// after its delete (one at exactly the compaction revision detcd keeps until the
/// next compaction, where etcd drops it at once: counted later, not here), a watch opened and closed, a lease left to expire, and v2
/// requests.
fn moves(endpoint: &str) -> Moves {
    use std::time::Duration;
    for args in [
        &["put", "k", "1"][..],
        &["put", "k", "2"],
        &["put", "k", "3"],
        &["del", "k"],
        &["put", "j", "1"],
        &["compact", "6"],
    ] {
        etcdctl_ok(endpoint, args);
    }
    // etcd removes the compacted revisions in the background.
    let compacted_keys = wait_value(
        endpoint,
        "etcd_debugging_mvcc_db_compaction_keys_total",
        Duration::from_secs(5),
        |v| v > 0.0,
    );
    let compactions_timed = wait_value(
        endpoint,
        "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count",
        Duration::from_secs(5),
        |v| v > 0.0,
    );

    let mut watch = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["watch", "k"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("etcdctl watch");
    let watchers = "etcd_debugging_mvcc_watcher_total";
    let watchers_with_one_watch = wait_value(endpoint, watchers, Duration::from_secs(10), |v| v == 1.0);
    let _ = watch.kill();
    let _ = watch.wait();
    let watchers_after = wait_value(endpoint, watchers, Duration::from_secs(10), |v| v == 0.0);

    // The shortest TTL both grant (etcd raises 1 s to its minimum).
    etcdctl_ok(endpoint, &["lease", "grant", "1"]);
    let leases_expired = wait_value(
        endpoint,
        "etcd_debugging_server_lease_expired_total",
        Duration::from_secs(15),
        |v| v >= 1.0,
    );

    let base = format!("http://{endpoint}/v2/keys");
    let sets = r#"etcd_debugging_store_writes_total{action="set"}"#;
    let recursive = r#"etcd_debugging_store_reads_total{action="getRecursive"}"#;
    let waits = "etcd_debugging_store_watch_requests_total";
    let reads = r#"etcd_debugging_store_reads_total{action="get"}"#;
    let before = [sets, recursive, waits, reads].map(|s| now_value(endpoint, s));
    let set = curl(&["-X", "PUT", &format!("{base}/foo"), "-d", "value=bar"]);
    assert!(set.contains(r#""action":"set""#), "{set}");
    let dir = curl(&[&format!("{base}/?recursive=true")]);
    assert!(dir.contains(r#""action":"get""#), "{dir}");
    // Answered at once from the history (the set above).
    let waited = curl(&[&format!("{base}/foo?wait=true&waitIndex=1")]);
    assert!(waited.contains(r#""value":"bar""#), "{waited}");
    let after = [sets, recursive, waits, reads].map(|s| now_value(endpoint, s));
    // A key with a TTL, expired by the leader's v2 sync.
    let ttl = curl(&[
        "-X",
        "PUT",
        &format!("{base}/short"),
        "-d",
        "value=x",
        "-d",
        "ttl=1",
    ]);
    assert!(ttl.contains(r#""ttl":1"#), "{ttl}");
    let v2_expired = wait_value(
        endpoint,
        "etcd_debugging_store_expires_total",
        Duration::from_secs(10),
        |v| v >= 1.0,
    );
    Moves {
        compacted_keys,
        compactions_timed,
        watchers_with_one_watch,
        watchers_after,
        leases_expired,
        v2_sets: after[0] - before[0],
        v2_recursive_reads: after[1] - before[1],
        v2_reads: after[3] - before[3],
        v2_watch_requests: after[2] - before[2],
        v2_expired,
    }
}

#[test]
fn compaction_watch_lease_and_v2_series_move_as_etcds() {
    if !require_tools(&["etcd", "etcdctl", "curl"], "metrics_vs_etcd") {
        return;
    }
    let etcd = start_server_with("etcd", "metrics-moves-etcd", &["--enable-v2=true"]);
    let detcd = start_server_with(
        env!("CARGO_BIN_EXE_detcd"),
        "metrics-moves-detcd",
        &["--enable-v2=true"],
    );
    let theirs = moves(&etcd.endpoint);
    let ours = moves(&detcd.endpoint);
    // k's revisions 2, 3 and 4 and its delete at 5 go; j's put at 6 stays.
    assert_eq!(
        ours,
        Moves {
            compacted_keys: 4.0,
            compactions_timed: 1.0,
            watchers_with_one_watch: 1.0,
            watchers_after: 0.0,
            leases_expired: 1.0,
            v2_sets: 1.0,
            v2_recursive_reads: 1.0,
            // etcd reads its v2 auth switch from the store for each of the three
            // requests, a plain get each.
            v2_reads: 3.0,
            v2_watch_requests: 1.0,
            v2_expired: 1.0,
        }
    );
    assert_eq!(ours, theirs, "detcd's moves, then etcd's");
}
