//! detcd's snapshots with etcd's own tools: the real `etcdctl snapshot save` 3.4
//! saves one from detcd, `etcdctl snapshot status` reads it, `etcdctl snapshot
//! restore` turns it into a data directory, and etcd 3.4 started on it serves every
//! key (values, create/mod revisions, versions), lease and user detcd had.
//!
//! The other way: etcd 3.4's snapshot, restored by `detcdctl snapshot restore`
//! into three data directories, is served by a three-member detcd cluster; and a
//! damaged snapshot is refused with etcd's messages.
//!
//! Skipped (with a notice) when `etcd` or `etcdctl` is not on PATH; under CI a
//! missing tool is a failure.

#[path = "support/curl.rs"]
mod curl;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use detcd_testkit::{etcd35_dir, etcdctl, etcdctl_ok, free_port, member_command, start_server, wait_healthy};

fn ok(endpoint: &str, args: &[&str]) -> String {
    etcdctl_ok(endpoint, args)
}

/// What a restore must preserve, read through etcdctl: every key with its
/// revisions, an old revision, the leases and their keys, users and roles.
fn observe(endpoint: &str, auth: &[&str]) -> Vec<String> {
    let with = |args: &[&str]| {
        let mut all = auth.to_vec();
        all.extend_from_slice(args);
        ok(endpoint, &all)
    };
    let json = with(&["get", "", "--prefix", "-w", "json"]);
    // The header names the member and cluster: keep only the key-values.
    let kvs = json[json.find("\"kvs\"").expect("kvs")..].to_string();
    let mut seen = vec![kvs, with(&["get", "k1", "--rev=3"]), with(&["lease", "list"])];
    for id in with(&["lease", "list"]).lines().skip(1) {
        seen.push(with(&["lease", "timetolive", id, "--keys"]).replace(|c: char| c.is_ascii_digit(), "#"));
    }
    seen.push(with(&["user", "list"]));
    seen.push(with(&["user", "get", "alice"]));
    seen.push(with(&["role", "get", "reader"]));
    seen
}

struct Etcd {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tools_present() -> bool {
    detcd_testkit::require_tools(&["etcd", "etcdctl"], "snapshot_etcd")
}

/// `etcdctl txn` with `input` on its standard input; must succeed.
fn txn_ok(ep: &str, input: &str) {
    use std::io::Write as _;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", ep, "txn"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl txn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write txn");
    let out = child.wait_with_output().expect("etcdctl txn");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("SUCCESS"),
        "etcdctl txn: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same data set, written through etcdctl to either server.
fn populate(ep: &str) {
    ok(ep, &["put", "k1", "v1"]);
    ok(ep, &["put", "k2", "v2"]);
    ok(ep, &["put", "k1", "v1b"]);
    ok(ep, &["del", "k2"]);
    let lease = ok(ep, &["lease", "grant", "900"]);
    let id = lease.split_whitespace().nth(1).expect("lease id").to_string();
    ok(ep, &["put", "leased", "x", &format!("--lease={id}")]);
    let big = "b".repeat(10_000);
    ok(ep, &["put", "big", &big]);
    // 300 keys in three transactions (one etcdctl each: 300 processes were most of
    // the time of every test that populates).
    for chunk in 0..3 {
        let puts: Vec<String> = (chunk * 100..(chunk + 1) * 100)
            .map(|i| format!("put many/{i:04} \"value {i}\""))
            .collect();
        txn_ok(ep, &format!("\n{}\n\n\n", puts.join("\n")));
    }
    ok(ep, &["user", "add", "root:rootpw"]);
    ok(ep, &["user", "add", "alice:alicepw"]);
    ok(ep, &["role", "add", "reader"]);
    ok(
        ep,
        &["role", "grant-permission", "reader", "read", "many/", "--prefix"],
    );
    ok(ep, &["user", "grant-role", "alice", "reader"]);
    ok(ep, &["user", "grant-role", "root", "root"]);
}

fn detcdctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detcdctl"))
        .args(args)
        .output()
        .expect("run detcdctl")
}

fn start_etcd_on(data_dir: &Path, name: &str, peer_port: u16) -> Etcd {
    start_etcd_on_with(Path::new("etcd"), data_dir, name, peer_port)
}

/// [`start_etcd_on`] with the etcd binary `program`.
fn start_etcd_on_with(program: &Path, data_dir: &Path, name: &str, peer_port: u16) -> Etcd {
    let client = free_port();
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(data_dir.with_extension("log")).expect("log");
    let child = member_command(
        program.to_str().expect("utf-8"),
        name,
        data_dir,
        &client_url,
        &peer_url,
    )
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .expect("start etcd");
    let etcd = Etcd {
        child,
        endpoint: format!("127.0.0.1:{client}"),
    };
    wait_healthy(&etcd.endpoint);
    etcd
}

#[test]
fn etcd_restores_what_detcd_saved() {
    if !tools_present() {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "snapshot-etcd");
    let ep = detcd.endpoint.as_str();
    populate(ep);
    let before = observe(ep, &[]);

    let dir = detcd.dir.join("restore");
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("snapshot.db");
    let db = db.to_str().expect("utf-8 path");
    ok(ep, &["snapshot", "save", db]);
    let status = ok(ep, &["snapshot", "status", db, "-w", "json"]);
    assert!(status.contains("\"revision\":"), "{status}");
    let revision: i64 = ok(ep, &["get", "k1", "-w", "json"])
        .split("\"revision\":")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .expect("header revision");
    assert!(
        status.contains(&format!("\"revision\":{revision}")),
        "{status} vs {revision}"
    );

    let peer = free_port();
    let data_dir = dir.join("etcd-data");
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "restore", db, "--name", "r1", "--data-dir"])
        .arg(&data_dir)
        .args(["--initial-cluster", &format!("r1=http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .output()
        .expect("etcdctl snapshot restore");
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let etcd = start_etcd_on(&data_dir, "r1", peer);
    let after = observe(&etcd.endpoint, &[]);
    assert_eq!(before, after, "etcd serves what detcd had");
    // The password hashes came over too: alice can log in to etcd.
    ok(&etcd.endpoint, &["auth", "enable"]);
    let mine = ok(&etcd.endpoint, &["--user", "alice:alicepw", "get", "many/0001"]);
    assert_eq!(mine, "many/0001\nvalue 1\n");
}

/// Three detcd members started from one restored snapshot, killed on drop.
struct Cluster {
    children: Vec<std::process::Child>,
    endpoints: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Restores `db` with `restorer` (`detcdctl`, or the real `etcdctl`, whose data
/// directory detcd imports on its first start) for three members, and starts them.
fn restore_and_start_detcd_cluster(db: &str, dir: &Path, restorer: &str) -> Cluster {
    let names = ["d1", "d2", "d3"];
    let peers: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let initial: Vec<String> = names
        .iter()
        .zip(&peers)
        .map(|(n, p)| format!("{n}=http://127.0.0.1:{p}"))
        .collect();
    let initial = initial.join(",");
    let mut cluster = Cluster {
        children: Vec::new(),
        endpoints: Vec::new(),
    };
    for (name, peer) in names.iter().zip(&peers) {
        let data = dir.join(name);
        let peer_url = format!("http://127.0.0.1:{peer}");
        let program = if restorer == "detcdctl" {
            env!("CARGO_BIN_EXE_detcdctl")
        } else {
            restorer
        };
        let out = Command::new(program)
            .env("ETCDCTL_API", "3")
            .args([
                "snapshot",
                "restore",
                db,
                "--name",
                name,
                "--data-dir",
                data.to_str().expect("utf-8"),
                "--initial-cluster",
                &initial,
                "--initial-cluster-token",
                "restored",
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .output()
            .expect("run the restore");
        assert!(
            out.status.success(),
            "restore: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let client_url = format!("http://127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
        let child = member_command(env!("CARGO_BIN_EXE_detcd"), name, &data, &client_url, &peer_url)
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-token",
                "restored",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start detcd");
        cluster.children.push(child);
        cluster
            .endpoints
            .push(client_url.trim_start_matches("http://").to_string());
    }
    for ep in &cluster.endpoints {
        wait_healthy(ep);
    }
    cluster
}

#[test]
fn a_detcd_cluster_restores_what_etcd_saved() {
    if !tools_present() {
        return;
    }
    let etcd = start_server("etcd", "snapshot-from-etcd");
    populate(&etcd.endpoint);
    let before = observe(&etcd.endpoint, &[]);
    let dir = etcd.dir.join("restore");
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("etcd.db");
    let db = db.to_str().expect("utf-8 path");
    ok(&etcd.endpoint, &["snapshot", "save", db]);
    // detcdctl reads etcd's file as etcdctl does.
    let theirs = ok(&etcd.endpoint, &["snapshot", "status", db, "-w", "json"]);
    let ours = detcdctl(&["snapshot", "status", db, "-w", "json"]);
    assert_eq!(String::from_utf8_lossy(&ours.stdout), theirs);

    let cluster = restore_and_start_detcd_cluster(db, &dir, "detcdctl");
    for ep in &cluster.endpoints {
        assert_eq!(observe(ep, &[]), before, "member {ep} serves what etcd had");
    }
    // A write after the restore reaches every member.
    ok(&cluster.endpoints[0], &["put", "after", "restore"]);
    for ep in &cluster.endpoints {
        let got = ok(ep, &["get", "after", "--consistency=l"]);
        assert_eq!(got, "after\nrestore\n");
    }
}

#[test]
fn detcd_imports_data_directories_etcdctl_restored() {
    if !tools_present() {
        return;
    }
    let etcd = start_server("etcd", "import-from-etcd");
    populate(&etcd.endpoint);
    let before = observe(&etcd.endpoint, &[]);
    let dir = etcd.dir.join("import");
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("etcd.db");
    let db = db.to_str().expect("utf-8 path");
    ok(&etcd.endpoint, &["snapshot", "save", db]);
    // etcd's own running data is refused, not half-read: its WAL holds writes.
    let live = dir.join("live");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(etcd.dir.join("data"))
        .arg(&live)
        .status()
        .expect("cp");
    assert!(copied.success());
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    let refused = member_command(
        env!("CARGO_BIN_EXE_detcd"),
        "n1",
        &live,
        &format!("http://127.0.0.1:{}", free_port()),
        &peer_url,
    )
    .args(["--initial-cluster", &format!("n1={peer_url}")])
    .output()
    .expect("detcd");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("is an etcd data directory (member/snap/db) that detcd cannot import"),
        "{said}"
    );
    assert!(
        live.join("member").join("snap").join("db").exists(),
        "the refused directory is left as it was"
    );

    // etcdctl's restore, then detcd on each directory: members keep etcd's IDs.
    let cluster = restore_and_start_detcd_cluster(db, &dir, "etcdctl");
    let members = ok(&cluster.endpoints[0], &["member", "list", "-w", "json"]);
    for name in ["d1", "d2", "d3"] {
        let data = dir.join(name);
        assert!(
            data.join("member.etcd").join("snap").join("db").exists(),
            "etcd's files kept"
        );
        let wal = std::fs::read(
            std::fs::read_dir(data.join("member.etcd").join("wal"))
                .expect("etcd wal")
                .filter_map(Result::ok)
                .find(|e| e.path().extension().is_some_and(|x| x == "wal"))
                .expect("a .wal file")
                .path(),
        )
        .expect("read etcd wal");
        // The member JSON etcd's restore wrote names the member's ID in decimal.
        let json = String::from_utf8_lossy(&wal);
        let at = json
            .find(&format!(r#""name":"{name}""#))
            .expect("member in the WAL");
        let id_at = json[..at].rfind(r#"{"id":"#).expect("id") + 6;
        let id: String = json[id_at..].chars().take_while(char::is_ascii_digit).collect();
        assert!(
            members.contains(&format!(r#""ID":{id}"#)),
            "{name} keeps ID {id}: {members}"
        );
    }
    for ep in &cluster.endpoints {
        assert_eq!(observe(ep, &[]), before, "member {ep} serves what etcd had");
    }
    ok(&cluster.endpoints[0], &["put", "after", "import"]);
    for ep in &cluster.endpoints {
        assert_eq!(ok(ep, &["get", "after", "--consistency=l"]), "after\nimport\n");
    }
}

#[test]
fn a_restore_with_wal_dir_starts_with_the_same_wal_dir() {
    if !tools_present() {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "restore-wal-dir");
    ok(&detcd.endpoint, &["put", "kept", "yes"]);
    let dir = detcd.dir.join("restore");
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("s.db");
    let db = db.to_str().expect("utf-8");
    ok(&detcd.endpoint, &["snapshot", "save", db]);
    let (data, wal) = (dir.join("data"), dir.join("wal"));
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    let initial = format!("w1={peer_url}");
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "snapshot",
            "restore",
            db,
            "--name",
            "w1",
            "--initial-cluster",
            &initial,
        ];
        args.extend_from_slice(&["--initial-advertise-peer-urls", &peer_url]);
        args.extend_from_slice(extra);
        detcdctl(&args)
    };
    let out = restore(&[
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--wal-dir",
        wal.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        std::fs::read_dir(&wal).expect("wal dir").count() > 0,
        "the WAL went to --wal-dir"
    );
    assert!(
        !data.join("member").join("wal").exists(),
        "and not into the data directory"
    );
    // A second restore into the same WAL directory is refused.
    let again = restore(&[
        "--data-dir",
        dir.join("data2").to_str().expect("utf-8"),
        "--wal-dir",
        wal.to_str().expect("utf-8"),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    let client_url = format!("http://127.0.0.1:{}", free_port());
    let mut child = member_command(env!("CARGO_BIN_EXE_detcd"), "w1", &data, &client_url, &peer_url)
        .args([
            "--initial-cluster",
            &initial,
            "--wal-dir",
            wal.to_str().expect("utf-8"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start detcd");
    let ep = client_url.trim_start_matches("http://");
    wait_healthy(ep);
    let got = ok(ep, &["get", "kept"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got, "kept\nyes\n");
}

#[test]
fn hash_is_etcds_backend_hash_of_what_snapshot_sends() {
    if !tools_present() {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "backend-hash");
    let ep = detcd.endpoint.as_str();
    populate(ep);
    let hash = |ep: &str| -> u64 {
        let (code, body) = curl::post(ep, "/v3/maintenance/hash", "{}", None);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["hash"].as_u64().expect("hash")
    };
    let before = hash(ep);
    let file = detcd.dir.join("hash.db");
    ok(ep, &["snapshot", "save", file.to_str().expect("utf-8")]);
    let bytes = std::fs::read(&file).expect("read");
    let db = detcd_storage::bolt::BoltReader::open(bytes[..bytes.len() - 32].to_vec()).expect("db");
    let of_file = detcd_storage::etcd_db::backend_hash(&db).expect("hash");
    assert_eq!(
        before,
        u64::from(of_file),
        "Hash covers the database Snapshot sends"
    );
    assert_eq!(hash(ep), before, "and nothing changed it");
    // Any change of state changes it: a key, a lease, a user.
    ok(ep, &["put", "k1", "changed"]);
    let after_put = hash(ep);
    assert_ne!(after_put, before);
    ok(ep, &["lease", "grant", "100"]);
    assert_ne!(hash(ep), after_put);
    // Defragment has nothing to reclaim and says so in the member's log.
    assert!(ok(ep, &["defrag"]).starts_with("Finished defragmenting etcd member"));
    let log = std::fs::read_to_string(detcd.dir.join("server.log")).expect("log");
    assert!(log.contains("defragment: nothing to reclaim"), "{log}");
}

#[test]
fn damaged_snapshots_are_refused_with_etcds_messages() {
    if !tools_present() {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "snapshot-damage");
    populate(&detcd.endpoint);
    let dir = detcd.dir.join("damage");
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("good.db");
    ok(
        &detcd.endpoint,
        &["snapshot", "save", good.to_str().expect("utf-8")],
    );
    let bytes = std::fs::read(&good).expect("read");
    let restore = |name: &str, bytes: &[u8], extra: &[&str]| {
        let file = dir.join(name);
        std::fs::write(&file, bytes).expect("write");
        let data = dir.join(format!("{name}.data"));
        let mut args = vec!["snapshot", "restore", file.to_str().expect("utf-8")];
        let data = data.to_str().expect("utf-8").to_string();
        args.extend(["--data-dir", &data]);
        args.extend_from_slice(extra);
        let out = detcdctl(&args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    let (ok_cut, err) = restore("cut.db", &bytes[..bytes.len() / 2], &[]);
    assert!(!ok_cut && err.contains("snapshot missing hash"), "{err}");
    let (ok_cut, err) = restore("cut2.db", &bytes[..bytes.len() / 2], &["--skip-hash-check"]);
    assert!(!ok_cut && err.starts_with("Error: "), "{err}");

    let mut body = bytes.clone();
    body[3 * 4096 + 100] ^= 0x40;
    let (ok_body, err) = restore("body.db", &body, &[]);
    assert!(!ok_body && err.contains("expected sha256"), "{err}");

    let mut trailer = bytes.clone();
    let last = trailer.len() - 1;
    trailer[last] ^= 1;
    let (ok_trailer, err) = restore("trailer.db", &trailer, &[]);
    assert!(!ok_trailer && err.contains("expected sha256"), "{err}");
    let (ok_trailer, err) = restore("trailer2.db", &trailer, &["--skip-hash-check"]);
    assert!(
        ok_trailer,
        "damage in the trailer only is accepted with --skip-hash-check: {err}"
    );

    let (ok_garbage, err) = restore("garbage.db", &vec![7u8; 5 * 4096 + 32], &["--skip-hash-check"]);
    assert!(!ok_garbage && err.contains("invalid database"), "{err}");
    let (twice, err) = restore("trailer2.db", &bytes, &[]);
    assert!(!twice && err.contains("exists"), "{err}");
}

fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .env("ETCDCTL_API", "3")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn etcd_3_5_restores_what_detcd_saved_and_detcd_what_etcd_3_5_saved() {
    if !tools_present() {
        return;
    }
    let Some(bin) = etcd35_dir() else {
        return;
    };
    let (etcdutl, etcd35) = (bin.join("etcdutl"), bin.join("etcd"));
    // detcd -> etcdctl snapshot save -> etcdutl 3.5 status and restore -> etcd 3.5.
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "snapshot-etcd35");
    populate(&detcd.endpoint);
    let before = observe(&detcd.endpoint, &[]);
    let dir = detcd.dir.join("etcd35");
    std::fs::create_dir_all(&dir).expect("dir");
    let saved = dir.join("detcd.db");
    let saved = saved.to_str().expect("utf-8");
    ok(&detcd.endpoint, &["snapshot", "save", saved]);
    let theirs = run_ok(&etcdutl, &["snapshot", "status", saved, "-w", "json"]);
    let ours = detcdctl(&["snapshot", "status", saved, "-w", "json"]);
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        theirs,
        "etcdutl 3.5 reads it as detcdctl does"
    );
    let peer = free_port();
    let data = dir.join("etcd35-data");
    run_ok(
        &etcdutl,
        &[
            "snapshot",
            "restore",
            saved,
            "--name",
            "r1",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--initial-cluster",
            &format!("r1=http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ],
    );
    let etcd = start_etcd_on_with(&etcd35, &data, "r1", peer);
    assert_eq!(
        observe(&etcd.endpoint, &[]),
        before,
        "etcd 3.5 serves what detcd had"
    );
    drop(etcd);

    // etcd 3.5 -> its snapshot -> detcdctl restore, and etcdutl's restored directory
    // imported by detcd on its first start.
    let etcd = start_server(etcd35.to_str().expect("utf-8"), "snapshot-from-etcd35");
    populate(&etcd.endpoint);
    let before = observe(&etcd.endpoint, &[]);
    let db = etcd.dir.join("etcd35.db");
    let db = db.to_str().expect("utf-8");
    run_ok(
        &bin.join("etcdctl"),
        &["--endpoints", &etcd.endpoint, "snapshot", "save", db],
    );
    let theirs = run_ok(&etcdutl, &["snapshot", "status", db, "-w", "json"]);
    let ours = detcdctl(&["snapshot", "status", db, "-w", "json"]);
    assert_eq!(String::from_utf8_lossy(&ours.stdout), theirs);
    let cluster = restore_and_start_detcd_cluster(db, &etcd.dir.join("d"), "detcdctl");
    assert_eq!(
        observe(&cluster.endpoints[0], &[]),
        before,
        "detcd serves what etcd 3.5 had"
    );
    drop(cluster);
    let imported = restore_and_start_detcd_cluster(db, &etcd.dir.join("u"), etcdutl.to_str().expect("utf-8"));
    for ep in &imported.endpoints {
        assert_eq!(
            observe(ep, &[]),
            before,
            "an etcdutl 3.5 directory imported by detcd"
        );
    }
}

#[test]
fn restore_bumps_the_revision_and_marks_it_compacted_as_etcdutl_does() {
    if !tools_present() {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "restore-bump");
    let ep = detcd.endpoint.as_str();
    ok(ep, &["put", "k", "v1"]);
    ok(ep, &["put", "k", "v2"]);
    let dir = detcd.dir.join("bump");
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("s.db");
    let db = db.to_str().expect("utf-8");
    ok(ep, &["snapshot", "save", db]);
    let saved_rev: i64 = ok(ep, &["get", "k", "-w", "json"])
        .split("\"revision\":")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .expect("revision");
    // --mark-compacted needs --bump-revision, as etcdutl says.
    let refused = detcdctl(&[
        "snapshot",
        "restore",
        db,
        "--mark-compacted",
        "--data-dir",
        dir.join("x").to_str().expect("utf-8"),
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--mark-compacted requires --bump-revision"));
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    let initial = format!("b1={peer_url}");
    let data = dir.join("data");
    let out = detcdctl(&[
        "snapshot",
        "restore",
        db,
        "--name",
        "b1",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--initial-cluster",
        &initial,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--bump-revision",
        "1000",
        "--mark-compacted",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client_url = format!("http://127.0.0.1:{}", free_port());
    let mut child = member_command(env!("CARGO_BIN_EXE_detcd"), "b1", &data, &client_url, &peer_url)
        .args(["--initial-cluster", &initial])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start detcd");
    let ep = client_url.trim_start_matches("http://").to_string();
    wait_healthy(&ep);
    let json = ok(&ep, &["get", "k", "-w", "json"]);
    // The value and its own revisions are kept; the store's revision moved by 1000.
    assert!(
        json.contains(&format!("\"revision\":{}", saved_rev + 1000)),
        "{json}"
    );
    assert!(json.contains(&format!("\"mod_revision\":{saved_rev}")), "{json}");
    // Everything before the bumped revision reads as compacted, so no watcher can
    // miss the jump: a watch from an old revision is cancelled as compacted.
    let old = etcdctl(&ep, &["get", "k", &format!("--rev={saved_rev}")]);
    assert!(String::from_utf8_lossy(&old.stderr).contains("required revision has been compacted"));
    let put = ok(&ep, &["put", "k", "v3", "-w", "json"]);
    assert!(
        put.contains(&format!("\"revision\":{}", saved_rev + 1001)),
        "{put}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
