//! detcdctl's help compared with etcdctl 3.4's: `--help` of the root and of every command
//! etcdctl 3.4 has, `help <command>`, a bare command group, an unknown subcommand, and
//! flag errors (pflag's error on stderr, the command's usage on stdout, exit status 1).
//! stdout, stderr and the exit status must be the same once the program name is the same
//! (`detcdctl` is read as `etcdctl`) and the version lines are set aside, except for the
//! lines listed below, each with its reason. No server is involved.
//!
//! Skipped (with a notice) without etcdctl on PATH; a failure under CI.

use std::path::Path;
use std::process::Command;

use detcd_testkit::require_tools;

/// Lines only detcdctl's help has (as read after the name change), and why.
const ONLY_DETCDCTL: &[(&str, &str)] = &[
    (
        "      --count-only[=false]\t\tGet only the count",
        "get --count-only is etcdctl 3.5's",
    ),
    (
        "      --max-create-rev=0\t\tMaximum create revision",
        "get's revision filters are etcdctl 3.6's",
    ),
    (
        "      --max-mod-rev=0\t\t\tMaximum modification revision",
        "get's revision filters are etcdctl 3.6's",
    ),
    (
        "      --min-create-rev=0\t\tMinimum create revision",
        "get's revision filters are etcdctl 3.6's",
    ),
    (
        "      --min-mod-rev=0\t\t\tMinimum modification revision",
        "get's revision filters are etcdctl 3.6's",
    ),
    (
        "      --range[=false]\t\tdelete range of keys",
        "del --range is etcdctl 3.6's",
    ),
    (
        "      --progress-notify[=false]\tget periodic watch progress notification from server",
        "watch --progress-notify is etcdctl 3.5's",
    ),
    (
        "      --consistency=\"l\"\tLinearizable(l) or Serializable(s)",
        "member list --consistency is etcdctl 3.6's",
    ),
    (
        "      --bump-revision=0\t\t\t\t\t\tHow much to increase the latest revision after restore",
        "snapshot restore --bump-revision is etcdutl 3.5's",
    ),
    (
        "      --mark-compacted[=false]\t\t\t\t\tMark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)",
        "snapshot restore --mark-compacted is etcdutl 3.5's",
    ),
    (
        "      --duration=60\t\t\tHow many seconds the check writes for (etcdctl's own flag)",
        "check perf --duration is detcdctl's own (etcdctl always runs 60 seconds)",
    ),
    (
        "      --count=0\t\t\t\t\tHow many keys to write; 0 is the load's own count (etcdctl's own flag)",
        "check datascale --count is detcdctl's own",
    ),
    (
        "\tauth status\t\tReturns authentication status",
        "auth status is etcdctl 3.5's",
    ),
    (
        "\tstatus\tReturns authentication status",
        "auth status is etcdctl 3.5's",
    ),
];

/// Lines only etcdctl 3.4's help has, and why.
const ONLY_ETCDCTL: &[(&str, &str)] = &[
    (
        "\tcompletion fish\t\tGenerate the autocompletion script for fish",
        "detcdctl's completion scripts are its own, for bash and zsh",
    ),
    (
        "\tcompletion powershell\tGenerate the autocompletion script for powershell",
        "detcdctl's completion scripts are its own, for bash and zsh",
    ),
    (
        "\tmigrate\t\t\tMigrates keys in a v2 store to a mvcc store",
        "detcdctl has no v2-store migration (etcd 3.5 dropped it too)",
    ),
];

/// Commands etcdctl 3.4 has whose help is not compared, and why.
const NOT_COMPARED: &[(&str, &str)] = &[
    (
        "completion",
        "detcdctl's completion scripts are its own (bash and zsh), so are their helps",
    ),
    ("migrate", "detcdctl has no v2-store migration"),
];

/// Every command etcdctl 3.4 has whose help is compared.
const COMMANDS: &[&str] = &[
    "get",
    "put",
    "del",
    "txn",
    "compaction",
    "alarm",
    "alarm disarm",
    "alarm list",
    "defrag",
    "endpoint",
    "endpoint health",
    "endpoint status",
    "endpoint hashkv",
    "move-leader",
    "watch",
    "version",
    "lease",
    "lease grant",
    "lease revoke",
    "lease timetolive",
    "lease list",
    "lease keep-alive",
    "member",
    "member add",
    "member remove",
    "member update",
    "member list",
    "member promote",
    "snapshot",
    "snapshot save",
    "snapshot restore",
    "snapshot status",
    "make-mirror",
    "lock",
    "elect",
    "auth",
    "auth enable",
    "auth disable",
    "user",
    "user add",
    "user delete",
    "user get",
    "user list",
    "user passwd",
    "user grant-role",
    "user revoke-role",
    "role",
    "role add",
    "role delete",
    "role get",
    "role list",
    "role grant-permission",
    "role revoke-permission",
    "check",
    "check perf",
    "check datascale",
    "help",
];

/// Other command lines: `help <command>`, bare and unknown groups, prefixes, flag errors.
const OTHER_CASES: &[&[&str]] = &[
    &[],
    &["--help"],
    &["help"],
    &["help", "get"],
    &["help", "member", "list"],
    &["help", "member", "bogus"],
    &["help", "bogus"],
    &["member"],
    &["member", "bogus"],
    &["endpoint"],
    &["memb", "li", "--help"],
    &["get", "--bogus"],
    &["get", "--help", "--bogus"],
    &["member", "list", "--bogus"],
    &["member", "--bogus", "list"],
    &["member", "bogus", "--bogus"],
    &["endpoint", "health", "--bogus"],
    &["get", "--rev=x", "k"],
    &["get", "k", "--rev"],
    &["-x", "get"],
    &["--bogus", "member", "list"],
    &["put", "--lease"],
    &["get", "foo", "--limit=abc"],
    &["get", "foo", "--prefix=maybe"],
    &["--bogus=1", "get", "foo"],
    &["get", "foo", "-Z"],
    &["--dial-timeout=abc", "get", "foo"],
    &["defrag", "--cluster=x"],
    &["watch", "foo", "--rev=x"],
];

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(program: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCDCTL_") {
            command.env_remove(k);
        }
    }
    let out = command.env("ETCDCTL_API", "3").args(args).output().expect("run");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `text` with the version lines (after `VERSION:` and `API VERSION:`) and the lines in
/// `dropped` set aside; the used entries of `dropped` are counted in `used`.
fn comparable(text: &str, dropped: &[(&str, &str)], used: &mut [bool]) -> String {
    let mut kept = Vec::new();
    let mut after_version = false;
    for line in text.split('\n') {
        if after_version {
            kept.push("\t<version>");
            after_version = false;
            continue;
        }
        after_version = line == "VERSION:" || line == "API VERSION:";
        if let Some(at) = dropped.iter().position(|(l, _)| *l == line) {
            used[at] = true;
            continue;
        }
        kept.push(line);
    }
    kept.join("\n")
}

#[test]
fn helps_usages_and_flag_errors_match_etcdctl_34() {
    if !require_tools(&["etcdctl"], "ctl_help_vs_etcdctl") {
        return;
    }
    let etcdctl = Path::new("etcdctl");
    let detcdctl = Path::new(env!("CARGO_BIN_EXE_detcdctl"));
    let version = run(etcdctl, &["version"]).stdout;
    assert!(
        version.starts_with("etcdctl version: 3.4."),
        "etcdctl 3.4 is the reference: {version}"
    );
    let mut cases: Vec<Vec<&str>> = COMMANDS
        .iter()
        .map(|c| {
            let mut args: Vec<&str> = c.split(' ').collect();
            args.push("--help");
            args
        })
        .collect();
    cases.extend(OTHER_CASES.iter().map(|c| c.to_vec()));
    let mut used_ours = vec![false; ONLY_DETCDCTL.len()];
    let mut used_theirs = vec![false; ONLY_ETCDCTL.len()];
    for args in &cases {
        let theirs = run(etcdctl, args);
        let ours = run(detcdctl, args);
        let rename = |s: &str| s.replace("detcdctl", "etcdctl");
        assert_eq!(
            comparable(&rename(&ours.stdout), ONLY_DETCDCTL, &mut used_ours),
            comparable(&theirs.stdout, ONLY_ETCDCTL, &mut used_theirs),
            "stdout of {args:?}"
        );
        assert_eq!(rename(&ours.stderr), theirs.stderr, "stderr of {args:?}");
        assert_eq!(ours.code, theirs.code, "exit status of {args:?}");
        assert!(
            !theirs.stdout.is_empty() || !theirs.stderr.is_empty(),
            "{args:?} printed something"
        );
    }
    for (at, (line, why)) in ONLY_DETCDCTL.iter().enumerate() {
        assert!(used_ours[at], "listed difference not seen: {line:?} ({why})");
    }
    for (at, (line, why)) in ONLY_ETCDCTL.iter().enumerate() {
        assert!(used_theirs[at], "listed difference not seen: {line:?} ({why})");
    }
    // What detcdctl does instead for the commands not compared.
    for (command, why) in NOT_COMPARED {
        let ours = run(detcdctl, &[command, "--help"]);
        if *command == "migrate" {
            assert_eq!(ours.code, Some(1), "{command} ({why})");
            assert!(ours
                .stderr
                .starts_with("Error: unknown command \"migrate\" for \"detcdctl\""));
        } else {
            assert_eq!(ours.code, Some(0), "{command} --help ({why})");
            assert!(ours.stdout.starts_with(&format!("NAME:\n\t{command} - ")));
        }
    }
}
