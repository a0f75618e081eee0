//! How etcdctl's cobra finds the command a command line names: exact names or unique
//! prefixes, its suggestions for an unknown word, the flags a command path accepts, and
//! (after a flag error) the command whose usage cobra prints, found by skipping flags as
//! cobra's `stripFlags` does.

use super::args::FlagSpec;
use super::commands::{self, COMMANDS, GLOBAL_FLAGS};
use super::err_line;
use super::error::{CtlError, EXIT_ERROR};

#[cfg(test)]
pub(super) fn is_command(path: &[String]) -> bool {
    COMMANDS
        .iter()
        .any(|c| c.path.len() == path.len() && c.path.iter().zip(path).all(|(a, b)| a == b))
}

/// The command `word` names after `path`, as etcdctl's cobra finds it (prefix matching is
/// on in etcdctl): its exact name, or the one command whose name it begins.
pub(super) fn resolve_command(path: &[String], word: &str) -> Option<String> {
    let names = subcommands(path);
    if names.contains(&word) {
        return Some(word.to_string());
    }
    let mut matches = names.iter().filter(|n| n.starts_with(word));
    match (matches.next(), matches.next()) {
        (Some(one), None) if !word.is_empty() => Some(one.to_string()),
        _ => None,
    }
}

/// The names of the commands directly under `path`, sorted, as cobra lists them.
pub(super) fn subcommands(path: &[String]) -> Vec<&'static str> {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    commands::children(&path).iter().map(|c| c.name()).collect()
}

/// The top-level commands in the order etcdctl 3.4 registers them (cobra suggests in this
/// order; etcdctl's `migrate`, a v2-to-v3 data migration, is not offered by detcdctl).
const REGISTRATION_ORDER: &[&str] = &[
    "get",
    "put",
    "del",
    "txn",
    "compaction",
    "alarm",
    "defrag",
    "endpoint",
    "move-leader",
    "watch",
    "version",
    "lease",
    "member",
    "snapshot",
    "make-mirror",
    "lock",
    "elect",
    "auth",
    "user",
    "role",
    "check",
    "completion",
];

/// cobra's "Did you mean this?" for an unknown command: the commands within two edits
/// (ignoring case) or that begin with it, as cobra's `SuggestionsFor` picks them.
pub(super) fn suggestions(word: &str) -> String {
    let word = word.to_lowercase();
    let found: Vec<&str> = REGISTRATION_ORDER
        .iter()
        .copied()
        .filter(|n| levenshtein(&word, n) <= 2 || n.starts_with(word.as_str()))
        .collect();
    if found.is_empty() {
        return String::new();
    }
    let mut text = "\n\nDid you mean this?\n".to_string();
    for name in found {
        text.push_str(&format!("\t{name}\n"));
    }
    text
}

/// The edit distance between two strings (insertions, deletions, substitutions).
pub(super) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

pub(super) fn specs_for(path: &[String]) -> Vec<FlagSpec> {
    let mut specs = GLOBAL_FLAGS.to_vec();
    // A command's flags, and those of its parents (`endpoint --cluster`).
    for c in COMMANDS {
        if c.path.len() <= path.len() && c.path.iter().zip(path).all(|(a, b)| a == b) {
            specs.extend_from_slice(c.flags);
        }
    }
    specs
}

/// The command whose usage cobra prints after a flag error: the one its `Find` reaches
/// by skipping flags (`stripFlags`: a flag it does not know as a boolean, written
/// without `=`, is taken to have its value in the next word) and walking the words.
pub(super) fn usage_path(args: &[String]) -> Vec<String> {
    let mut path: Vec<String> = Vec::new();
    let mut rest: Vec<String> = args.to_vec();
    loop {
        let specs = specs_for(&path);
        let Some(word) = strip_flags(&rest, &specs).into_iter().next() else {
            return path;
        };
        let Some(name) = resolve_command(&path, &word) else {
            return path;
        };
        if let Some(at) = rest.iter().position(|a| *a == word) {
            rest.remove(at);
        }
        path.push(name);
    }
}

/// cobra's `stripFlags`: the words of `args` that are not flags or flag values.
pub(super) fn strip_flags(args: &[String], specs: &[FlagSpec]) -> Vec<String> {
    let is_bool = |f: Option<&FlagSpec>| f.is_some_and(|f| !f.takes_value);
    let mut words = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        i += 1;
        if s == "--" {
            break;
        }
        let takes_next = if let Some(long) = s.strip_prefix("--") {
            !s.contains('=') && !is_bool(specs.iter().find(|f| f.long == long))
        } else if let Some(short) = s.strip_prefix('-') {
            let mut chars = short.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => !is_bool(specs.iter().find(|f| f.short == Some(c))),
                _ => false,
            }
        } else {
            false
        };
        if takes_next {
            if args.len() - i <= 1 {
                break;
            }
            i += 1;
        } else if !s.is_empty() && !s.starts_with('-') {
            words.push(s.clone());
        }
    }
    words
}

/// cobra's error for a first word that names no command (with its suggestions): printed
/// here with cobra's hint, and once more by `main` as etcdctl prints it.
pub(super) fn unknown_command(word: &str) -> CtlError {
    let msg = format!("unknown command {word:?} for \"detcdctl\"{}", suggestions(word));
    err_line(&format!("Error: {msg}\nRun 'detcdctl --help' for usage.\n"));
    CtlError::new(EXIT_ERROR, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_resolve_by_unique_prefix_and_unknown_ones_get_cobras_suggestions() {
        let mut top: Vec<&str> = REGISTRATION_ORDER.to_vec();
        top.push("help");
        top.sort_unstable();
        assert_eq!(subcommands(&[]), top, "REGISTRATION_ORDER lists every command");
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(resolve_command(&[], "memb").as_deref(), Some("member"));
        assert_eq!(resolve_command(&[], "get").as_deref(), Some("get"));
        assert_eq!(resolve_command(&[], "co"), None);
        assert_eq!(resolve_command(&path(&["member"]), "li").as_deref(), Some("list"));
        assert_eq!(
            resolve_command(&path(&["lease"]), "k").as_deref(),
            Some("keep-alive")
        );
        assert_eq!(suggestions("gett"), "\n\nDid you mean this?\n\tget\n");
        assert_eq!(
            suggestions("c"),
            "\n\nDid you mean this?\n\tcompaction\n\tcheck\n\tcompletion\n"
        );
        assert_eq!(suggestions("bogus"), "");
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
