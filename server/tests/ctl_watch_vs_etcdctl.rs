//! detcdctl's `watch` against the real etcdctl 3.4, on one real etcd: `watch ... --
//! command` with the ETCD_WATCH_* variables, `watch -i` with its messages, and the
//! argument errors. Each tool replays the same history from a revision (`--rev`), so
//! nothing depends on timing but the end of `watch -i`'s input; numbers (revisions, which
//! differ between the two runs) are masked. etcd and etcdctl must be on PATH (CI installs them).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use detcd_testkit::{etcdctl_ok, on_path, start_server};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `name` (etcdctl or detcdctl) with `args`, `env`, and `stdin` written then held
/// open for `hold` before it is closed.
fn run(
    name: &str,
    endpoint: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
    hold: Duration,
) -> Outcome {
    let program = if name == "detcdctl" {
        env!("CARGO_BIN_EXE_detcdctl")
    } else {
        "etcdctl"
    };
    let mut child = Command::new(program)
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .envs(env.iter().copied())
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let _ = input.write_all(stdin.as_bytes());
    std::thread::sleep(hold);
    drop(input);
    let out = child.wait_with_output().expect("wait");
    // etcdctl's client library logs as JSON lines on stderr; those are not output.
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("{\"level\""))
        .map(|l| format!("{l}\n"))
        .collect();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: mask_revisions(&String::from_utf8_lossy(&out.stdout)),
        stderr,
    }
}

/// Replaces every run of digits with `N` (revisions differ between the two runs; the
/// test's keys and values carry no digits that matter).
fn mask_revisions(s: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// The current revision of the store.
fn revision(endpoint: &str) -> i64 {
    let json = etcdctl_ok(endpoint, &["get", "none", "-w", "json"]);
    let at = json.find("\"revision\":").expect("revision") + "\"revision\":".len();
    json[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .expect("revision number")
}

/// One run: arguments, environment, stdin and how long stdin stays open.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, String, Duration);

const PRINT_EVENT: &str = r#"echo "rev=$ETCD_WATCH_REVISION type=$ETCD_WATCH_EVENT_TYPE key=$ETCD_WATCH_KEY value=$ETCD_WATCH_VALUE"; [ "$ETCD_WATCH_VALUE" != '"stop"' ]"#;

#[test]
fn watch_matches_etcdctl() {
    assert!(
        on_path("etcd") && on_path("etcdctl"),
        "etcd and etcdctl must be on PATH (Debian: etcd-server, etcd-client)"
    );
    let etcd = start_server("etcd", "ctl-watch");
    let ep = etcd.endpoint.as_str();
    let from = (revision(ep) + 1).to_string();
    etcdctl_ok(ep, &["put", "k", "v 1"]);
    etcdctl_ok(ep, &["put", "b", "one"]);
    etcdctl_ok(ep, &["del", "k"]);
    etcdctl_ok(ep, &["put", "b", "two"]);
    etcdctl_ok(ep, &["put", "k", "stop"]);
    etcdctl_ok(ep, &["put", "k", "after"]);
    let none = Duration::ZERO;
    let interactive = format!(
        "bogus\nwatch\nwatch b --rev {from} --prev-kv -- sh -c \"echo got $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\"\n"
    );
    let cases: Vec<Case<'_>> = vec![
        // The command runs per event; the one that fails ends the watch with status 1.
        (
            vec!["watch", "k", "--rev", &from, "--", "sh", "-c", PRINT_EVENT],
            vec![],
            String::new(),
            none,
        ),
        (
            vec![
                "watch",
                "k",
                "--rev",
                &from,
                "-w",
                "json",
                "--prev-kv",
                "--",
                "sh",
                "-c",
                PRINT_EVENT,
            ],
            vec![],
            String::new(),
            none,
        ),
        // ETCDCTL_WATCH_KEY and ETCDCTL_WATCH_RANGE_END stand in for the key.
        (
            vec!["watch", "--rev", &from, "--", "sh", "-c", PRINT_EVENT],
            vec![("ETCDCTL_WATCH_KEY", "k"), ("ETCDCTL_WATCH_RANGE_END", "l")],
            String::new(),
            none,
        ),
        (vec!["watch"], vec![], String::new(), none),
        (vec!["watch", "a", "--"], vec![], String::new(), none),
        (vec!["watch", "--", "echo"], vec![], String::new(), none),
        (vec!["watch", "a", "b", "--prefix"], vec![], String::new(), none),
        (
            vec!["watch", "a"],
            vec![("ETCDCTL_WATCH_KEY", "x")],
            String::new(),
            none,
        ),
        (
            vec!["watch", "a"],
            vec![("ETCDCTL_WATCH_RANGE_END", "x")],
            String::new(),
            none,
        ),
        // Interactive: messages for bad lines, a watch with a command, then end of input.
        (
            vec!["watch", "-i"],
            vec![],
            interactive,
            Duration::from_millis(2500),
        ),
        (vec!["watch", "-i"], vec![], "watch a --\n".to_string(), none),
    ];
    let mut failures = Vec::new();
    for (args, env, stdin, hold) in &cases {
        let a = run("etcdctl", ep, args, env, stdin, *hold);
        let b = run("detcdctl", ep, args, env, stdin, *hold);
        if a != b {
            failures.push(format!("{args:?} {env:?}\n  etcdctl:  {a:?}\n  detcdctl: {b:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `--debug` prints every global flag as its ETCDCTL_* variable first (etcdctl then logs
/// grpc-go's own lines, which detcdctl has no equivalent for: only the flag lines are
/// compared).
#[test]
fn debug_prints_the_flags_as_etcdctl() {
    assert!(
        on_path("etcdctl"),
        "etcdctl must be on PATH (Debian: etcd-client)"
    );
    let args = [
        "--debug",
        "--dial-timeout=1500ms",
        "--keepalive-time=90s",
        "--keepalive-timeout=3s",
        "--hex",
        "-w",
        "json",
        "--user=u:p",
        "get",
        "k",
    ];
    let lines = |name: &str| -> String {
        let program = if name == "detcdctl" {
            env!("CARGO_BIN_EXE_detcdctl")
        } else {
            "etcdctl"
        };
        let out = Command::new(program)
            .env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_ENDPOINTS")
            .args(["--endpoints=127.0.0.1:1,127.0.0.1:2", "--command-timeout=1s"])
            .args(args)
            .output()
            .expect("run");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("ETCDCTL_"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let expected = lines("etcdctl");
    assert!(expected.contains("ETCDCTL_KEEPALIVE_TIME=1m30s\n"), "{expected}");
    assert_eq!(lines("detcdctl"), expected);
}
