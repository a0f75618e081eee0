//! Tidy: `core` stays pure. It scans every source file under `core/src` for names
//! that would let a clock, OS randomness, I/O, threads, an async runtime or
//! hash-map iteration order into the state machines, and fails on any.

use std::path::{Path, PathBuf};

/// Names banned from `core/src`, each with the reason a reader gets on failure.
const BANNED: &[(&str, &str)] = &[
    ("std::time", "time is a parameter (now_ms, ticks), never read"),
    ("Instant", "time is a parameter (now_ms, ticks), never read"),
    ("SystemTime", "time is a parameter (now_ms, ticks), never read"),
    (
        "thread_rng",
        "randomness comes from the node's seeded core::rng::Rng",
    ),
    ("OsRng", "randomness comes from the node's seeded core::rng::Rng"),
    (
        "getrandom",
        "randomness comes from the node's seeded core::rng::Rng",
    ),
    (
        "from_entropy",
        "randomness comes from the node's seeded core::rng::Rng",
    ),
    ("RandomState", "hash seeds from the OS make iteration order vary"),
    ("std::fs", "core does no I/O; the driver does"),
    ("std::net", "core does no I/O; the driver does"),
    ("std::io::stdin", "core does no I/O; the driver does"),
    ("std::process", "core does no I/O; the driver does"),
    ("std::thread", "core is single-threaded and driven from outside"),
    (
        "std::env",
        "configuration arrives as parameters, not from the environment",
    ),
    ("tokio", "core knows no runtime"),
    (
        "HashMap",
        "iteration order must not reach an output: use BTreeMap",
    ),
    (
        "HashSet",
        "iteration order must not reach an output: use BTreeSet",
    ),
];

/// One banned name found in one file.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub file: PathBuf,
    pub line: usize,
    pub name: &'static str,
    pub reason: &'static str,
}

/// Scans one file's text. Matches are whole identifiers (or paths), so `Instantiate`
/// does not match `Instant`; comments count too, because a banned name in a comment
/// is usually commented-out code.
fn scan_text(file: &Path, text: &str) -> Vec<Violation> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        for &(name, reason) in BANNED {
            if contains_identifier(line, name) {
                found.push(Violation {
                    file: file.to_path_buf(),
                    line: number + 1,
                    name,
                    reason,
                });
            }
        }
    }
    found
}

fn contains_identifier(line: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut start = 0;
    while let Some(pos) = line[start..].find(name) {
        let at = start + pos;
        let before = line[..at].chars().next_back();
        let after = line[at + name.len()..].chars().next();
        if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
            return true;
        }
        start = at + name.len();
    }
    false
}

fn scan_dir(dir: &Path, found: &mut Vec<Violation>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            scan_dir(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("readable source");
            found.extend(scan_text(&path, &text));
        }
    }
}

#[test]
fn core_sources_use_no_banned_names() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    scan_dir(&src, &mut found);
    let report: Vec<String> = found
        .iter()
        .map(|v| format!("{}:{}: `{}`: {}", v.file.display(), v.line, v.name, v.reason))
        .collect();
    assert!(
        report.is_empty(),
        "banned names in core/src:\n{}",
        report.join("\n")
    );
}

#[test]
fn tidy_catches_an_inserted_clock_read() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let mut text = std::fs::read_to_string(&src).expect("core/src/lib.rs");
    let clean = scan_text(&src, &text);
    assert!(clean.is_empty(), "lib.rs should be clean: {clean:?}");
    text.push_str("\nfn sneaky() -> u128 { std::time::Instant::now().elapsed().as_nanos() }\n");
    let found = scan_text(&src, &text);
    let names: Vec<&str> = found.iter().map(|v| v.name).collect();
    assert_eq!(names, ["std::time", "Instant"]);
    assert_eq!(found[0].line, text.lines().count());
}

#[test]
fn tidy_matches_whole_identifiers_only() {
    let f = Path::new("x.rs");
    assert!(scan_text(f, "let instantiate = Instantiated::new();").is_empty());
    assert!(scan_text(f, "use std::collections::BTreeMap;").is_empty());
    assert_eq!(
        scan_text(f, "let m: HashMap<u8, u8> = Default::default();").len(),
        1
    );
    assert_eq!(scan_text(f, "let r = rand::thread_rng();").len(), 1);
    assert_eq!(scan_text(f, "tokio::spawn(x)").len(), 1);
}
