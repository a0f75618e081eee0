//! detcdctl against the real etcdctl, byte for byte, on one real etcd.
//!
//! Skipped (with a notice) when `etcd` or `etcdctl` is not on PATH; CI installs Debian's
//! `etcd-server` and `etcd-client` (etcd 3.4). The test starts its own single-member etcd on
//! free loopback ports in a temporary directory, runs a session of everyday commands through
//! both tools, and compares stdout, stderr (without etcdctl's JSON log lines) and the exit
//! status. Reads run against the same state and must match exactly; writes run once per
//! tool, so revision numbers (and IDs a server picks) are masked before comparing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use detcd_testkit::{on_path, start_server};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn command(name: &str, endpoint: &str, args: &[&str]) -> Command {
    let program = if name == "detcdctl" {
        env!("CARGO_BIN_EXE_detcdctl")
    } else {
        "etcdctl"
    };
    let mut c = Command::new(program);
    c.env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .args(args);
    c
}

fn tool(name: &str, endpoint: &str, args: &[&str], stdin: &str) -> Outcome {
    use std::io::Write;
    let mut child = command(name, endpoint, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait");
    // etcdctl's client library logs retries as JSON lines on stderr; those are not output.
    let stderr: String = String::from_utf8_lossy(&out.stderr)
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

/// Replaces the digits that follow each of `prefixes` with `N`.
fn mask(s: &str, prefixes: &[&str]) -> String {
    let mut out = s.to_string();
    for p in prefixes {
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(p) {
            result.push_str(&rest[..i + p.len()]);
            rest = &rest[i + p.len()..];
            let digits = rest.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(rest.len());
            if digits > 0 {
                result.push('N');
            }
            rest = &rest[digits..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// Every revision field in json (`"revision":`, `"mod_revision":`, ...) and fields
/// (`"Revision" : `, `"PrevModRevision" : `, ...) output.
const REVISIONS: &[&str] = &["revision\":", "Revision\" : "];

struct Session<'a> {
    endpoint: &'a str,
    failures: Vec<String>,
    checked: usize,
}

impl Session<'_> {
    fn check(&mut self, what: &str, a: &Outcome, b: &Outcome, masks: &[&str]) {
        self.checked += 1;
        let norm = |o: &Outcome| Outcome {
            code: o.code,
            stdout: mask(&o.stdout, masks),
            stderr: mask(&o.stderr, masks),
        };
        let (a, b) = (norm(a), norm(b));
        if a != b {
            self.failures
                .push(format!("{what}\n  etcdctl:  {a:?}\n  detcdctl: {b:?}"));
        }
    }

    /// A read: both tools against the same state, compared exactly.
    fn read(&mut self, args: &[&str]) {
        self.read_with(args, "", &[]);
    }

    fn read_with(&mut self, args: &[&str], stdin: &str, masks: &[&str]) {
        let a = tool("etcdctl", self.endpoint, args, stdin);
        let b = tool("detcdctl", self.endpoint, args, stdin);
        self.check(&args.join(" "), &a, &b, masks);
    }

    /// A write: `setup` (run with etcdctl) restores the same starting state before each tool.
    fn write(&mut self, setup: &[&[&str]], args: &[&str], stdin: &str, masks: &[&str]) {
        let mut outcomes = Vec::new();
        for name in ["etcdctl", "detcdctl"] {
            for s in setup {
                tool("etcdctl", self.endpoint, s, "");
            }
            outcomes.push(tool(name, self.endpoint, args, stdin));
        }
        self.check(&args.join(" "), &outcomes[0], &outcomes[1], masks);
    }
}

/// `line` with the objects of its `"members":[...]` array (flat objects: no
/// nested braces) in sorted order, so that lists in ID order compare alike
/// whatever the IDs.
fn sort_json_members(line: &str) -> String {
    const START: &str = "\"members\":[{";
    let Some(at) = line.find(START) else {
        return line.to_string();
    };
    let body_at = at + START.len();
    let Some(len) = line[body_at..].find("}]") else {
        return line.to_string();
    };
    let mut members: Vec<&str> = line[body_at..body_at + len].split("},{").collect();
    members.sort_unstable();
    format!(
        "{}{}{}",
        &line[..body_at],
        members.join("},{"),
        &line[body_at + len..]
    )
}

#[test]
fn detcdctl_matches_etcdctl() {
    if !on_path("etcd") || !on_path("etcdctl") {
        // CI installs both (.ci/run): there a missing tool is a failure, not a pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "etcd and etcdctl are required under CI (apt-get install etcd-server etcd-client)"
        );
        eprintln!("NOTICE: etcd/etcdctl not on PATH; skipping ctl_vs_etcdctl (apt-get install etcd-server etcd-client)");
        return;
    }
    let etcd = start_server("etcd", "ctl-vs-etcdctl");
    // Every command twice: with the endpoint as host:port and as a URL, the spelling the
    // cluster guides use (etcdctl's Go client then sends the URL as the HTTP/2 authority).
    for endpoint in [etcd.endpoint.clone(), format!("http://{}", etcd.endpoint)] {
        compare_session(&endpoint, &etcd.dir);
    }
}

/// The whole comparison, with every command given `--endpoints={endpoint}`.
fn compare_session(endpoint: &str, dir: &Path) {
    let mut s = Session {
        endpoint,
        failures: Vec::new(),
        checked: 0,
    };
    let e = |args: &[&str]| tool("etcdctl", endpoint, args, "");

    // Writes, each from the same starting state.
    let reset: &[&[&str]] = &[&["del", "", "--from-key"], &["put", "foo", "bar"]];
    s.write(reset, &["put", "foo", "bar2"], "", REVISIONS);
    s.write(reset, &["put", "foo", "bar2", "--prev-kv"], "", REVISIONS);
    for w in ["json", "fields"] {
        s.write(reset, &["put", "foo", "x", "--prev-kv", "-w", w], "", REVISIONS);
    }
    s.write(reset, &["put", "k"], "from stdin", REVISIONS);
    s.write(reset, &["put", "foo", "--ignore-value"], "", REVISIONS);
    s.write(reset, &["put", "nokey", "--ignore-value"], "", REVISIONS);
    s.write(
        reset,
        &["put", "foo", "v", "--ignore-lease", "--lease=1"],
        "",
        REVISIONS,
    );
    s.write(reset, &["del", "foo"], "", REVISIONS);
    for w in ["simple", "json", "fields"] {
        s.write(
            reset,
            &["del", "", "--from-key", "--prev-kv", "-w", w],
            "",
            REVISIONS,
        );
    }
    s.write(reset, &["del", "f", "--prefix", "--prev-kv"], "", REVISIONS);
    let txn =
        "mod(\"foo\") > \"0\"\nval(\"foo\") = \"bar\"\n\nput foo \"v 2\"\nget foo\ndel nope\n\nput foo f\n\n";
    for w in ["simple", "json", "fields"] {
        s.write(reset, &["txn", "-w", w], txn, REVISIONS);
    }
    s.write(
        reset,
        &["txn", "-i"],
        "ver(\"foo\") = \"99\"\n\nput foo x\n\nget foo --prefix\nput k2 y\n\n",
        REVISIONS,
    );
    s.write(
        reset,
        &["txn"],
        "c(\"foo\") = \"5\"\n\nput k3 z --prev-kv\n\n\n",
        REVISIONS,
    );
    for bad in [
        "bogus\n\n",
        "val(\"k1\") = a\n\n\n\n",
        "\nput\n\n\n",
        "\nfoo x\n\n\n",
        "\n\nput k1 f\n",
    ] {
        s.write(reset, &["txn"], bad, REVISIONS);
    }

    // Reads over one fixed data set.
    e(&["del", "", "--from-key"]);
    for (k, v) in [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("foo", "bar"),
        ("foo/x", "tab\there"),
        ("zz", "\u{e9}"),
    ] {
        e(&["put", k, v]);
    }
    e(&["put", "foo", "bar2"]);
    for w in ["simple", "json", "fields", "protobuf", "table"] {
        s.read(&["get", "foo", "-w", w]);
        s.read(&["get", "", "--prefix", "-w", w]);
        s.read(&["member", "list", "-w", w]);
        s.read(&["endpoint", "status", "-w", w]);
        // etcdctl 3.4 dereferences the absent header and panics for `-w fields`.
        if w != "fields" {
            s.read(&["alarm", "list", "-w", w]);
        }
    }
    s.read(&["get", "a", "c"]);
    s.read(&["get", "foo", "--prefix", "--keys-only"]);
    s.read(&["get", "a", "--from-key", "--limit", "2"]);
    s.read(&["get", "a", "--from-key", "--print-value-only"]);
    s.read(&["get", "a", "--from-key", "--sort-by=VALUE", "--order=DESCEND"]);
    s.read(&[
        "get",
        "a",
        "--from-key",
        "--sort-by=CREATE",
        "--order=DESCEND",
        "--limit=2",
        "-w",
        "json",
    ]);
    s.read(&["get", "a", "--from-key", "--keys-only", "-w", "fields"]);
    s.read(&["get", "foo", "--hex"]);
    s.read(&["get", "foo", "--rev", "2"]);
    s.read(&["get", "foo", "--consistency=s"]);
    s.read(&["get", "foo", "--rev", "100000"]);
    s.read(&["get", "foo", "--consistency=x"]);
    s.read(&["get", "foo", "--sort-by=FOO"]);
    s.read(&["get", "foo", "--order=UP"]);
    s.read(&["get"]);
    s.read(&["get", "a", "b", "--prefix"]);
    s.read(&["put"]);
    s.read(&["del"]);
    s.read(&["get", "foo", "-w", "json", "--print-value-only"]);
    s.read(&["compaction", "x"]);
    s.read(&["compaction"]);
    s.read(&["compaction", "100000"]);
    s.read(&["move-leader"]);
    s.read(&["defrag"]);
    for w in ["simple", "json", "table", "fields", "protobuf"] {
        s.read(&["endpoint", "hashkv", "-w", w]);
    }
    s.read(&["endpoint", "hashkv", "--cluster"]);
    s.read(&["endpoint", "hashkv", "--rev", "999999"]);
    s.read(&["defrag", "--cluster"]);
    // An unknown command: cobra's error with the program's own name and its suggestions,
    // exit status 1; a unique prefix of a command is that command (etcdctl turns cobra's
    // prefix matching on).
    for args in [
        &["nosuch"][..],
        &["gett", "foo"],
        &["c"],
        &["e"],
        &["lok"],
        &["wach"],
    ] {
        let a = tool("etcdctl", endpoint, args, "");
        let mut b = tool("detcdctl", endpoint, args, "");
        b.stderr = b.stderr.replace("detcdctl", "etcdctl");
        s.check(&args.join(" "), &a, &b, &[]);
    }
    s.read(&["ge", "foo"]);
    s.read(&["memb", "li", "-w", "json"]);
    s.read(&["end", "hashk"]);
    // A flag that does not parse (unknown, a value that does not parse, a missing value,
    // on a command or among the global flags): pflag's error, printed twice as etcdctl
    // prints it, exit status 1. (Both also print the command's usage on stdout, which
    // ctl_help_vs_etcdctl compares: compared here are the exit code and stderr.)
    let error_line = |o: &Outcome| Outcome {
        code: o.code,
        stdout: String::new(),
        stderr: o.stderr.clone(),
    };
    for args in [
        &["get", "foo", "--limit=abc"][..],
        &["get", "foo", "--rev=99999999999999999999"],
        &["get", "foo", "--prefix=maybe"],
        &["get", "foo", "--bogus"],
        &["--bogus=1", "get", "foo"],
        &["get", "foo", "--limit"],
        &["get", "foo", "-Z"],
        &["--dial-timeout=abc", "get", "foo"],
        &["defrag", "--cluster=x"],
        &["watch", "foo", "--rev=x"],
    ] {
        let a = tool("etcdctl", endpoint, args, "");
        let b = tool("detcdctl", endpoint, args, "");
        s.check(&args.join(" "), &error_line(&a), &error_line(&b), &[]);
    }
    s.read(&["move-leader", "1234"]);
    s.read(&["member", "remove", "zz"]);
    s.read(&["member", "remove", "1234"]);
    s.read(&["member", "add", "n4"]);
    s.read(&["member", "add"]);
    s.read(&["member", "add", "n4", "--peer-urls=foo"]);
    s.read(&["snapshot", "save"]);
    s.read(&["alarm", "disarm"]);
    s.read(&["alarm", "disarm", "-w", "json"]);
    let took: &[&str] = &["took = ", "\"took\":\""];
    let health_a = tool("etcdctl", endpoint, &["endpoint", "health"], "");
    let health_b = tool("detcdctl", endpoint, &["endpoint", "health"], "");
    let strip_took = |o: &Outcome| Outcome {
        code: o.code,
        stdout: o.stdout.split("\"took\":\"").next().unwrap_or("").to_string(),
        stderr: o.stderr.split("took = ").next().unwrap_or("").to_string(),
    };
    s.check(
        "endpoint health",
        &strip_took(&health_a),
        &strip_took(&health_b),
        took,
    );
    let health_a = tool("etcdctl", endpoint, &["endpoint", "health", "-w", "json"], "");
    let health_b = tool("detcdctl", endpoint, &["endpoint", "health", "-w", "json"], "");
    s.check(
        "endpoint health -w json",
        &strip_took(&health_a),
        &strip_took(&health_b),
        &[],
    );

    // Compaction at a revision that exists, once per tool; then reading below it fails alike.
    let rev_of = |o: Outcome| -> String {
        let t = o.stdout;
        let i = t.find("\"revision\":").map(|i| i + 11).unwrap_or(0);
        t[i..].chars().take_while(char::is_ascii_digit).collect()
    };
    let r1 = rev_of(e(&["get", "foo", "-w", "json"]));
    let a = tool("etcdctl", endpoint, &["compaction", &r1], "");
    e(&["put", "foo", "bar3"]);
    let r2 = rev_of(e(&["get", "foo", "-w", "json"]));
    let b = tool("detcdctl", endpoint, &["compaction", &r2, "--physical"], "");
    s.check("compaction", &a, &b, &["compacted revision "]);
    s.read(&["get", "foo", "--rev", "2"]);
    s.read(&["compaction", "2"]);

    // Leases: one granted by etcdctl, inspected by both.
    let granted = e(&["lease", "grant", "300"]).stdout;
    let lease = granted.split_whitespace().nth(1).unwrap_or("0").to_string();
    e(&["put", "lk", "lv", &format!("--lease={lease}")]);
    // One key only: etcd lists a lease's keys in Go map order, which varies between calls.
    let ttl_masks: &[&str] = &["remaining(", "\"ttl\":", "\"TTL\" : "];
    for w in ["simple", "json", "fields"] {
        s.read_with(&["lease", "timetolive", &lease, "--keys", "-w", w], "", ttl_masks);
        s.read_with(&["lease", "keep-alive", "--once", &lease, "-w", w], "", &[]);
        s.read(&["lease", "list", "-w", w]);
    }
    s.read(&["lease", "timetolive", &lease]);
    s.read(&["lease", "timetolive", "1234"]);
    s.read(&["lease", "timetolive", "1234", "-w", "json"]);
    s.read(&["lease", "revoke", "1234"]);
    s.read(&["lease", "revoke", "zz"]);
    s.read(&["lease", "keep-alive", "--once", "1234"]);
    s.read(&["lease", "grant"]);
    s.read(&["lease", "grant", "x"]);
    s.read(&["put", "x", "y", "--lease=zz"]);
    let ids: &[&str] = &[
        "lease ",
        "\"ID\":",
        "\"ID\" : ",
        "\"revision\":",
        "\"Revision\" : ",
    ];
    for w in ["simple", "json", "fields"] {
        let a = tool("etcdctl", endpoint, &["lease", "grant", "100", "-w", w], "");
        let b = tool("detcdctl", endpoint, &["lease", "grant", "100", "-w", w], "");
        s.check(&format!("lease grant -w {w}"), &a, &b, ids);
    }
    for (i, w) in ["simple", "json", "fields"].iter().enumerate() {
        let mut outcomes = Vec::new();
        for name in ["etcdctl", "detcdctl"] {
            let id = e(&["lease", "grant", "100"])
                .stdout
                .split_whitespace()
                .nth(1)
                .unwrap_or("0")
                .to_string();
            let o = tool(name, endpoint, &["lease", "revoke", &id, "-w", w], "");
            outcomes.push(Outcome {
                stdout: o.stdout.replace(&id, "ID"),
                ..o
            });
        }
        s.check(
            &format!("lease revoke #{i}"),
            &outcomes[0],
            &outcomes[1],
            REVISIONS,
        );
    }

    // Learners: added, updated and removed by each tool in turn.
    for (round, w) in ["simple", "json"].into_iter().enumerate() {
        let mut outcomes = Vec::new();
        for (n, name) in ["etcdctl", "detcdctl"].iter().enumerate() {
            // A fresh peer URL each time: etcd derives a new member's ID from its
            // peer URLs and the current second, and refuses an ID it removed, so
            // re-adding the same URL within a second fails ("member not found").
            let peer = format!("http://127.0.0.1:{}", 40000 + 10 * round + n);
            let add = tool(
                name,
                endpoint,
                &[
                    "member",
                    "add",
                    "l1",
                    "--learner",
                    &format!("--peer-urls={peer}"),
                    "-w",
                    w,
                ],
                "",
            );
            let list = e(&["member", "list"]).stdout;
            let id = list
                .lines()
                .find(|l| l.contains("unstarted"))
                .and_then(|l| l.split(',').next())
                .unwrap_or("")
                .to_string();
            let dec = u64::from_str_radix(&id, 16)
                .map(|v| v.to_string())
                .unwrap_or_default();
            let upd = tool(
                name,
                endpoint,
                &[
                    "member",
                    "update",
                    &id,
                    "--peer-urls=http://127.0.0.1:40009",
                    "-w",
                    w,
                ],
                "",
            );
            let rm = tool(name, endpoint, &["member", "remove", &id, "-w", w], "");
            // The new member's ID is random, so its place in ETCD_INITIAL_CLUSTER is too.
            let fix = |o: Outcome| Outcome {
                stdout: o
                    .stdout
                    // "%16x" pads an ID shorter than 16 hex digits with spaces.
                    .replace(&format!("{id:>16}"), "ID")
                    .replace(&id, "ID")
                    .replace(&dec, "ID")
                    .replace(&peer, "PEER")
                    .lines()
                    .map(|l| match l.strip_prefix("ETCD_INITIAL_CLUSTER=\"") {
                        Some(list) => {
                            let mut items: Vec<&str> = list.trim_end_matches('"').split(',').collect();
                            items.sort();
                            format!("ETCD_INITIAL_CLUSTER=\"{}\"\n", items.join(","))
                        }
                        // etcd lists members by ID, and the new one's is random.
                        None => format!("{}\n", sort_json_members(l)),
                    })
                    .collect(),
                ..o
            };
            outcomes.push((fix(add), fix(upd), fix(rm)));
        }
        s.check(&format!("member add -w {w}"), &outcomes[0].0, &outcomes[1].0, &[]);
        s.check(
            &format!("member update -w {w}"),
            &outcomes[0].1,
            &outcomes[1].1,
            &[],
        );
        s.check(
            &format!("member remove -w {w}"),
            &outcomes[0].2,
            &outcomes[1].2,
            &[],
        );
    }
    let leader = e(&["endpoint", "status"])
        .stdout
        .split(", ")
        .nth(1)
        .unwrap_or("")
        .to_string();
    s.read(&["move-leader", &leader]);
    s.read(&["member", "promote", &leader]);

    // Watch: both tools watch the same prefix while the same writes happen.
    for w in ["simple", "json", "fields"] {
        let spawn = |name: &str, extra: &[&str]| {
            let mut args = vec!["watch", "w", "--prefix", "-w", w];
            args.extend_from_slice(extra);
            command(name, endpoint, &args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("watch")
        };
        let watchers = [
            spawn("etcdctl", &["--prev-kv"]),
            spawn("detcdctl", &["--prev-kv"]),
        ];
        std::thread::sleep(Duration::from_millis(700));
        e(&["put", "w1", "a"]);
        e(&["put", "w1", "b"]);
        e(&["del", "w", "--prefix"]);
        tool("etcdctl", endpoint, &["txn"], "\n\nput w2 x\nput w3 y\n\n\n");
        std::thread::sleep(Duration::from_millis(700));
        let outs: Vec<Outcome> = watchers
            .into_iter()
            .map(|mut c| {
                let _ = c.kill();
                let o = c.wait_with_output().expect("watch output");
                Outcome {
                    code: 0,
                    stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                    stderr: String::new(),
                }
            })
            .collect();
        s.check(&format!("watch -w {w}"), &outs[0], &outs[1], &[]);
    }
    // History replay from a revision: both stop after the same events, killed after a pause.
    let replay = |name: &str| {
        let mut c = command(name, endpoint, &["watch", "w2", "--rev", "1", "--prev-kv"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watch");
        std::thread::sleep(Duration::from_millis(700));
        let _ = c.kill();
        let o = c.wait_with_output().expect("watch output");
        Outcome {
            code: 0,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::new(),
        }
    };
    let (a, b) = (replay("etcdctl"), replay("detcdctl"));
    s.check("watch w2 --rev 1 (compacted)", &a, &b, &[]);

    // Snapshot: same message; detcdctl's file passed the SHA-256 check and has the same size.
    let (pa, pb) = (dir.join("a.db"), dir.join("b.db"));
    let a = tool(
        "etcdctl",
        endpoint,
        &["snapshot", "save", pa.to_str().unwrap_or("a.db")],
        "",
    );
    let b = tool(
        "detcdctl",
        endpoint,
        &["snapshot", "save", pb.to_str().unwrap_or("b.db")],
        "",
    );
    let strip = |o: &Outcome, p: &Path| Outcome {
        code: o.code,
        stdout: o.stdout.replace(p.to_str().unwrap_or(""), "PATH"),
        stderr: String::new(),
    };
    s.check("snapshot save", &strip(&a, &pa), &strip(&b, &pb), &[]);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert!(size(&pb) > 32, "detcdctl wrote no snapshot");
    assert_eq!(size(&pa), size(&pb), "snapshot sizes differ");

    assert!(
        s.failures.is_empty(),
        "{} of {} comparisons differ with --endpoints={endpoint}:\n{}",
        s.failures.len(),
        s.checked,
        s.failures.join("\n")
    );
    eprintln!(
        "ctl_vs_etcdctl: {} comparisons identical with --endpoints={endpoint}",
        s.checked
    );
}
