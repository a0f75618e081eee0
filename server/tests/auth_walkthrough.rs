//! etcd's authentication guide, walked through with the real etcdctl 3.4 against
//! a real etcd, and with the real etcdctl and with detcdctl against detcd: every
//! command's exit status, stdout and stderr (without the Go client library's
//! JSON log lines) must be the same.
//!
//! One deliberate difference is left out: granting an empty range (`b a`) is
//! accepted by etcd 3.4 and refused by etcd 3.6 (`invalid auth management`), as
//! detcd does.
//!
//! Needs `etcd` and `etcdctl` on PATH (Debian's `etcd-server` and `etcd-client`);
//! without them the test fails rather than passing untested.

use std::io::Write;
use std::process::{Command, Stdio};

use detcd_testkit::{on_path, start_server, start_server_with};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ctl(program: &str, endpoint: &str, args: &[&str], stdin: &str) -> Outcome {
    let mut child = Command::new(program)
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("{\"level\""))
        .map(|l| format!("{l}\n"))
        .collect();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

const ROOT: &str = "--user=root:rootpw";
const ALICE: &str = "--user=alice:alicepw";

/// The walk-through: (arguments, stdin). Creates root, enables auth, gives a user
/// a role with key, prefix, range and from-key permissions, tries allowed and
/// denied operations, every misuse etcd names, a password change, and disables.
fn steps() -> Vec<(Vec<&'static str>, &'static str)> {
    let s = |args: &[&'static str]| (args.to_vec(), "");
    vec![
        s(&["auth", "enable"]),
        s(&["user", "add", "root:rootpw"]),
        s(&["auth", "enable"]),
        s(&["role", "add", "root"]),
        s(&["user", "grant-role", "root", "root"]),
        s(&["user", "get", "root"]),
        s(&["role", "get", "root"]),
        s(&["auth", "enable"]),
        // Auth is on: no user, a wrong password, then root.
        s(&["put", "foo", "bar"]),
        s(&["get", "foo"]),
        s(&["--user=root:wrong", "get", "foo"]),
        s(&["--user=nobody:pw", "get", "foo"]),
        s(&[ROOT, "put", "foo", "bar"]),
        s(&[ROOT, "get", "foo"]),
        s(&[ROOT, "user", "add", "alice:alicepw"]),
        s(&[ROOT, "user", "add", "alice:again"]),
        s(&[ROOT, "role", "add", "fooer"]),
        s(&[ROOT, "role", "add", "fooer"]),
        s(&[ROOT, "role", "grant-permission", "fooer", "readwrite", "foo"]),
        s(&[
            ROOT,
            "role",
            "grant-permission",
            "fooer",
            "read",
            "/pre/",
            "--prefix=true",
        ]),
        s(&[ROOT, "role", "grant-permission", "fooer", "write", "k1", "k5"]),
        s(&[
            ROOT,
            "role",
            "grant-permission",
            "fooer",
            "read",
            "z",
            "--from-key",
        ]),
        s(&[ROOT, "role", "grant-permission", "nope", "read", "x"]),
        s(&[ROOT, "role", "get", "fooer"]),
        s(&[ROOT, "user", "grant-role", "alice", "fooer"]),
        s(&[ROOT, "user", "grant-role", "alice", "nope"]),
        s(&[ROOT, "user", "grant-role", "nobody", "fooer"]),
        s(&[ROOT, "user", "get", "alice"]),
        s(&[ROOT, "user", "get", "alice", "--detail"]),
        s(&[ROOT, "user", "get", "nobody"]),
        s(&[ROOT, "user", "list"]),
        s(&[ROOT, "role", "list"]),
        // What alice may and may not do.
        s(&[ALICE, "put", "foo", "by-alice"]),
        s(&[ALICE, "get", "foo"]),
        s(&[ALICE, "put", "bar", "x"]),
        s(&[ALICE, "get", "bar"]),
        s(&[ALICE, "get", "/pre/", "--prefix"]),
        s(&[ALICE, "put", "/pre/a", "x"]),
        s(&[ALICE, "put", "k3", "x"]),
        s(&[ALICE, "get", "k3"]),
        s(&[ALICE, "get", "zz"]),
        s(&[ALICE, "get", "z", "--from-key"]),
        s(&[ALICE, "del", "foo"]),
        s(&[ALICE, "del", "k1", "k5"]),
        s(&[ALICE, "del", "k1", "k6"]),
        s(&[ALICE, "user", "list"]),
        s(&[ALICE, "user", "get", "alice"]),
        s(&[ALICE, "role", "get", "fooer"]),
        s(&[ALICE, "role", "get", "root"]),
        (vec![ALICE, "txn"], "get foo\n\nput foo in-txn\n\nput bar no\n\n"),
        (vec![ALICE, "txn"], "\nput foo ok-txn\n\n\n"),
        // Root's rules while auth is on.
        s(&[ROOT, "user", "delete", "root"]),
        s(&[ROOT, "user", "revoke-role", "root", "root"]),
        s(&[ROOT, "role", "delete", "root"]),
        // Revocations.
        s(&[ROOT, "role", "revoke-permission", "fooer", "foo"]),
        s(&[ROOT, "role", "revoke-permission", "fooer", "foo"]),
        s(&[
            ROOT,
            "role",
            "revoke-permission",
            "fooer",
            "/pre/",
            "--prefix=true",
        ]),
        s(&[ALICE, "get", "foo"]),
        s(&[ROOT, "user", "revoke-role", "alice", "fooer"]),
        s(&[ROOT, "user", "revoke-role", "alice", "fooer"]),
        // A password change.
        (
            vec![ROOT, "user", "passwd", "alice", "--interactive=false"],
            "newpw\n",
        ),
        s(&[ALICE, "get", "foo"]),
        s(&["--user=alice:newpw", "get", "foo"]),
        s(&["--user=alice", "--password=newpw", "get", "foo"]),
        s(&[ROOT, "role", "delete", "fooer"]),
        s(&[ROOT, "role", "delete", "fooer"]),
        s(&[ROOT, "user", "delete", "alice"]),
        s(&[ROOT, "user", "delete", "alice"]),
        s(&[ROOT, "auth", "disable"]),
        s(&["get", "foo"]),
        s(&["auth", "disable"]),
        s(&["user", "list"]),
    ]
}

#[test]
fn the_auth_guide_walkthrough_matches_etcd() {
    assert!(
        on_path("etcd") && on_path("etcdctl"),
        "etcd and etcdctl 3.4 must be on PATH (apt-get install etcd-server etcd-client)"
    );
    let etcd = start_server("etcd", "auth-walk-etcd");
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "auth-walk-detcd");
    // detcdctl gets its own detcd: the walk-through writes.
    let detcd2 = start_server(env!("CARGO_BIN_EXE_detcd"), "auth-walk-detcdctl");
    // The three runs are independent: run them side by side.
    let steps = steps();
    let run = |program: &'static str, endpoint: String| {
        let steps = steps.clone();
        std::thread::spawn(move || {
            steps
                .iter()
                .map(|(args, stdin)| ctl(program, &endpoint, args, stdin))
                .collect::<Vec<Outcome>>()
        })
    };
    let runs = [
        run("etcdctl", etcd.endpoint.clone()),
        run("etcdctl", detcd.endpoint.clone()),
        run(env!("CARGO_BIN_EXE_detcdctl"), detcd2.endpoint.clone()),
    ];
    let [want, got, ours] = runs.map(|r| r.join().expect("a run finished"));
    let mut failures = Vec::new();
    for (i, (args, _)) in steps.iter().enumerate() {
        let what = args.join(" ");
        if want[i] != got[i] {
            failures.push(format!("{what}\n  etcd:  {:?}\n  detcd: {:?}", want[i], got[i]));
        }
        if want[i] != ours[i] {
            failures.push(format!(
                "{what}\n  etcdctl:  {:?}\n  detcdctl: {:?}",
                want[i], ours[i]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} steps differ:\n{}",
        failures.len(),
        steps.len(),
        failures.join("\n")
    );
}

/// Root, auth on; an interactive `etcdctl txn` as root logs in, `meanwhile` runs, then
/// the txn puts `k`=`value`: it must succeed after one refusal whose text contains
/// `refused_with`, and `k` must hold `value`.
fn interactive_txn_logs_in_again(endpoint: &str, meanwhile: impl FnOnce(), value: &str, refused_with: &str) {
    let e = |args: &[&str], stdin: &str| ctl("etcdctl", endpoint, args, stdin);
    assert_eq!(e(&["user", "add", "root:rootpw"], "").code, 0);
    assert_eq!(e(&["user", "grant-role", "root", "root"], "").code, 0);
    assert_eq!(e(&["auth", "enable"], "").code, 0);
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([&format!("--endpoints={endpoint}"), ROOT, "txn", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    meanwhile();
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("\nput k {value}\n\n\n").as_bytes());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(refused_with),
        "the first try was refused: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\nSUCCESS\n"));
    let get = e(&[ROOT, "get", "k", "--print-value-only"], "");
    assert_eq!(get.stdout, format!("{value}\n"));
}

/// The Go client re-authenticates when its token is refused: an interactive
/// txn whose simple token expired while it waited for its input still succeeds.
#[test]
fn etcdctl_logs_in_again_when_its_token_expired() {
    assert!(on_path("etcdctl"), "etcdctl 3.4 must be on PATH");
    let detcd = start_server_with(
        env!("CARGO_BIN_EXE_detcd"),
        "auth-ttl",
        &["--auth-token-ttl", "1"],
    );
    // Logged in at start; the token lives 1 s (the member checks every tick).
    let wait = || std::thread::sleep(std::time::Duration::from_secs(3));
    interactive_txn_logs_in_again(&detcd.endpoint, wait, "after-expiry", "invalid auth token");
}

/// A JWT carries the auth revision it was issued at (a simple token takes the
/// member's current one, as etcd's does): a request under an older revision is
/// refused with ErrAuthOldRevision and the Go client logs in again, so an
/// interactive txn whose token predates a role change made meanwhile succeeds.
#[test]
fn etcdctl_logs_in_again_when_the_auth_revision_moved() {
    assert!(on_path("etcdctl"), "etcdctl 3.4 must be on PATH");
    let secret = std::env::temp_dir().join(format!("detcd-jwt-secret-{}", std::process::id()));
    std::fs::write(&secret, b"a shared secret for HS256").expect("write secret");
    let spec = format!("jwt,priv-key={},sign-method=HS256,ttl=5m", secret.display());
    let detcd = start_server_with(env!("CARGO_BIN_EXE_detcd"), "auth-rev", &["--auth-token", &spec]);
    // etcdctl logs in as it starts; give it the time, then move the auth revision.
    let bump = || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let out = ctl("etcdctl", &detcd.endpoint, &[ROOT, "role", "add", "bump"], "");
        assert_eq!(out.code, 0);
    };
    interactive_txn_logs_in_again(
        &detcd.endpoint,
        bump,
        "after-bump",
        "revision of auth store is old",
    );
    let _ = std::fs::remove_file(&secret);
}
