//! A small reader and runner for datadriven golden files: a command line, `----`,
//! then the expected output up to a blank line. `DETCD_REWRITE=1` rewrites the
//! expected outputs in place instead of comparing.

use std::path::Path;

/// One command line, split into a name, positional args and key=value args.
#[derive(Clone, Debug, Default)]
pub struct Command {
    pub name: String,
    pub positional: Vec<String>,
    pub keyed: Vec<(String, String)>,
    pub line: usize,
}

impl Command {
    pub fn parse(text: &str, line: usize) -> Command {
        let mut tokens = text.split_whitespace();
        let name = tokens.next().unwrap_or_default().to_string();
        let mut cmd = Command {
            name,
            line,
            ..Default::default()
        };
        for t in tokens {
            match t.split_once('=') {
                Some((k, v)) => cmd.keyed.push((k.to_string(), v.to_string())),
                None => cmd.positional.push(t.to_string()),
            }
        }
        cmd
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.keyed.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn u64_arg(&self, key: &str) -> Option<u64> {
        self.get(key).map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("line {}: {key}={v} is not a number", self.line))
        })
    }

    /// `key=(1,2,3)` or `key=1`.
    pub fn list_arg(&self, key: &str) -> Vec<u64> {
        match self.get(key) {
            None => Vec::new(),
            Some(v) => v
                .trim_matches(|c| c == '(' || c == ')')
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.trim().parse().expect("number in list"))
                .collect(),
        }
    }

    pub fn bool_arg(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| v == "true")
    }

    /// Positional args parsed as node ids.
    pub fn ids(&self) -> Vec<u64> {
        self.positional
            .iter()
            .map(|s| s.parse().expect("node id"))
            .collect()
    }
}

struct Case {
    /// Comment and blank lines before the command, kept verbatim on rewrite.
    preamble: Vec<String>,
    command: String,
    line: usize,
    expected: String,
}

fn parse_file(text: &str) -> (Vec<Case>, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut cases = Vec::new();
    let mut preamble = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim().is_empty() || l.starts_with('#') {
            preamble.push(l.to_string());
            i += 1;
            continue;
        }
        let command = l.to_string();
        let line = i + 1;
        i += 1;
        assert!(
            i < lines.len() && lines[i] == "----",
            "line {line}: command without ---- separator"
        );
        i += 1;
        let mut expected = String::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            expected.push_str(lines[i]);
            expected.push('\n');
            i += 1;
        }
        cases.push(Case {
            preamble: std::mem::take(&mut preamble),
            command,
            line,
            expected,
        });
    }
    (cases, preamble)
}

/// Runs every case in `path` through `run`, comparing (or rewriting) outputs.
pub fn run_file(path: &Path, mut run: impl FnMut(&Command) -> String) {
    let text = std::fs::read_to_string(path).expect("readable golden file");
    let (cases, trailer) = parse_file(&text);
    let rewrite = std::env::var("DETCD_REWRITE").is_ok_and(|v| v == "1");
    let mut rewritten = String::new();
    for case in &cases {
        let cmd = Command::parse(&case.command, case.line);
        let mut actual = run(&cmd);
        if actual.trim().is_empty() {
            actual = "ok\n".to_string();
        }
        if !actual.ends_with('\n') {
            actual.push('\n');
        }
        for p in &case.preamble {
            rewritten.push_str(p);
            rewritten.push('\n');
        }
        rewritten.push_str(&case.command);
        rewritten.push_str("\n----\n");
        rewritten.push_str(&actual);
        if !rewrite && actual != case.expected {
            panic!(
                "{}:{}: `{}` output differs\n--- expected\n{}--- actual\n{}(set DETCD_REWRITE=1 to accept)",
                path.display(),
                case.line,
                case.command,
                case.expected,
                actual
            );
        }
    }
    for p in &trailer {
        rewritten.push_str(p);
        rewritten.push('\n');
    }
    if rewrite && rewritten != text {
        std::fs::write(path, rewritten).expect("rewrite golden file");
    }
}
