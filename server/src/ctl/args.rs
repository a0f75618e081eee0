//! Command-line parsing with the rules of spf13/pflag, which etcdctl uses: long flags as
//! `--name=value` or `--name value`, boolean flags as `--name` or `--name=false`, shorthands
//! (`-w json`, `-wjson`, `-i`), flags anywhere among the positional arguments, and `--` ending
//! the flags. Parsing is a separate step from running so that the exact etcdctl messages
//! ("unknown flag: --x") come from one place.

use std::collections::BTreeMap;

use super::error::CtlError;
use super::format::go_quote;

/// One flag a command accepts, with what its help shows (pflag's default and usage).
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    pub long: &'static str,
    pub short: Option<char>,
    /// `false` for boolean flags, which take no separate value.
    pub takes_value: bool,
    /// The default as help shows it.
    pub default: Shown,
    /// The flag's one-line description.
    pub usage: &'static str,
}

/// A flag's default as pflag prints it in a help: `[=false]` for a boolean (its value
/// when given bare is true), `="text"` for a string (Go-quoted), `=value` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Bool(bool),
    Str(&'static str),
    Plain(&'static str),
}

impl FlagSpec {
    /// The same flag with a one-line description.
    pub const fn about(self, usage: &'static str) -> Self {
        Self { usage, ..self }
    }

    /// The same flag with a string default (shown quoted).
    pub const fn default_str(self, value: &'static str) -> Self {
        Self {
            default: Shown::Str(value),
            ..self
        }
    }

    /// The same flag with a non-string default (a number, a duration, a list).
    pub const fn default_plain(self, value: &'static str) -> Self {
        Self {
            default: Shown::Plain(value),
            ..self
        }
    }

    /// The same boolean flag, true unless set otherwise.
    pub const fn default_true(self) -> Self {
        Self {
            default: Shown::Bool(true),
            ..self
        }
    }

    /// The same flag with a one-letter shorthand (`-w`).
    pub const fn shorthand(self, c: char) -> Self {
        Self {
            short: Some(c),
            ..self
        }
    }
}

/// Shorthand for a boolean flag spec.
pub const fn bool_flag(long: &'static str) -> FlagSpec {
    FlagSpec {
        long,
        short: None,
        takes_value: false,
        default: Shown::Bool(false),
        usage: "",
    }
}

/// Shorthand for a flag that takes a value.
pub const fn value_flag(long: &'static str) -> FlagSpec {
    FlagSpec {
        long,
        short: None,
        takes_value: true,
        default: Shown::Str(""),
        usage: "",
    }
}

/// Go's `strconv.ParseInt`/`ParseUint` (`func`) error for `v`, which did not
/// parse: out of range when it is all digits (after a sign, for `ParseInt`),
/// else invalid syntax.
fn strconv_error(func: &str, v: &str) -> String {
    let digits = if func == "ParseInt" {
        v.strip_prefix(['+', '-']).unwrap_or(v)
    } else {
        v
    };
    let reason = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        "value out of range"
    } else {
        "invalid syntax"
    };
    format!("strconv.{func}: parsing {}: {reason}", go_quote(v.as_bytes()))
}

/// The flags given on the command line (last one wins) and the positional arguments.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    pub flags: BTreeMap<String, String>,
    pub args: Vec<String>,
    /// How many positional arguments came before a `--` (pflag's `ArgsLenAtDash`), if
    /// one was given.
    pub dash: Option<usize>,
}

impl Parsed {
    pub fn is_set(&self, long: &str) -> bool {
        self.flags.contains_key(long)
    }

    pub fn value(&self, long: &str) -> Option<&str> {
        self.flags.get(long).map(String::as_str)
    }

    /// A boolean flag: absent is `false`; pflag accepts Go's `strconv.ParseBool` spellings.
    pub fn bool(&self, long: &str) -> Result<bool, CtlError> {
        match self.value(long) {
            None => Ok(false),
            Some(v) => parse_go_bool(v).ok_or_else(|| {
                CtlError::bad_flag_value(
                    long,
                    v,
                    format!(
                        "strconv.ParseBool: parsing {}: invalid syntax",
                        go_quote(v.as_bytes())
                    ),
                )
            }),
        }
    }

    /// An integer flag (pflag's int64); `None` when absent.
    pub fn int(&self, long: &str) -> Result<Option<i64>, CtlError> {
        self.number(long, "ParseInt")
    }

    /// An unsigned integer flag (pflag's uint64); `None` when absent.
    pub fn uint(&self, long: &str) -> Result<Option<u64>, CtlError> {
        self.number(long, "ParseUint")
    }

    fn number<T: std::str::FromStr>(&self, long: &str, func: &str) -> Result<Option<T>, CtlError> {
        let Some(v) = self.value(long) else {
            return Ok(None);
        };
        v.parse()
            .map(Some)
            .map_err(|_| CtlError::bad_flag_value(long, v, strconv_error(func, v)))
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Splits `args` into the command path (a prefix of the leading positional words that
/// `is_command` accepts), flags and positional arguments.
///
/// `specs_for` gives the flags valid for a command path (global flags included); it is
/// consulted again each time the path grows, so a command's own flags are known from the
/// moment its name has been read.
pub fn parse(
    args: &[String],
    is_command: impl Fn(&[String]) -> bool,
    specs_for: impl Fn(&[String]) -> Vec<FlagSpec>,
) -> Result<(Vec<String>, Parsed), CtlError> {
    let resolve = |path: &[String], word: &str| {
        let mut candidate = path.to_vec();
        candidate.push(word.to_string());
        is_command(&candidate).then(|| word.to_string())
    };
    parse_commands(args, resolve, specs_for)
}

/// [`parse`] where `resolve(path, word)` names the command `word` stands for after
/// `path` (cobra's prefix matching can make `memb` mean `member`), or None.
pub fn parse_commands(
    args: &[String],
    resolve: impl Fn(&[String], &str) -> Option<String>,
    specs_for: impl Fn(&[String]) -> Vec<FlagSpec>,
) -> Result<(Vec<String>, Parsed), CtlError> {
    let mut path: Vec<String> = Vec::new();
    let mut path_done = false;
    let mut parsed = Parsed::default();
    let mut i = 0;
    let mut only_positional = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if only_positional || arg == "-" || !arg.starts_with('-') {
            if !path_done && !only_positional {
                if let Some(name) = resolve(&path, arg) {
                    path.push(name);
                    continue;
                }
            }
            path_done = true;
            parsed.args.push(arg.clone());
            continue;
        }
        if arg == "--" && !only_positional {
            only_positional = true;
            path_done = true;
            parsed.dash = Some(parsed.args.len());
            continue;
        }
        let specs = specs_for(&path);
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let spec = specs
                .iter()
                .find(|s| s.long == name)
                .ok_or_else(|| CtlError::new(1, format!("unknown flag: --{name}")))?;
            let value = match (inline, spec.takes_value) {
                (Some(v), _) => v,
                (None, false) => "true".to_string(),
                (None, true) => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| CtlError::new(1, format!("flag needs an argument: --{name}")))?;
                    i += 1;
                    v.clone()
                }
            };
            parsed.flags.insert(spec.long.to_string(), value);
        } else {
            // One or more shorthands: `-i`, `-wjson`, `-w json`, `-w=json`.
            let body = &arg[1..];
            let chars = body.char_indices();
            for (at, c) in chars {
                let spec = specs
                    .iter()
                    .find(|s| s.short == Some(c))
                    .ok_or_else(|| CtlError::new(1, format!("unknown shorthand flag: '{c}' in {arg}")))?;
                if !spec.takes_value {
                    parsed.flags.insert(spec.long.to_string(), "true".to_string());
                    continue;
                }
                let rest = &body[at + c.len_utf8()..];
                let value = if let Some(v) = rest.strip_prefix('=') {
                    v.to_string()
                } else if !rest.is_empty() {
                    rest.to_string()
                } else {
                    let v = args
                        .get(i)
                        .ok_or_else(|| CtlError::new(1, format!("flag needs an argument: '{c}' in -{c}")))?;
                    i += 1;
                    v.clone()
                };
                parsed.flags.insert(spec.long.to_string(), value);
                break;
            }
        }
    }
    Ok((path, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn specs(_: &[String]) -> Vec<FlagSpec> {
        vec![
            value_flag("write-out").shorthand('w'),
            bool_flag("interactive").shorthand('i'),
            bool_flag("prefix"),
            value_flag("rev"),
        ]
    }

    fn is_cmd(p: &[String]) -> bool {
        matches!(
            p.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
            ["get"] | ["lease"] | ["lease", "grant"]
        )
    }

    #[test]
    fn flags_anywhere_and_command_path() {
        let (path, p) = parse(
            &s(&["-w", "json", "lease", "grant", "--rev=3", "10", "--prefix"]),
            is_cmd,
            specs,
        )
        .unwrap();
        assert_eq!(path, s(&["lease", "grant"]));
        assert_eq!(p.args, s(&["10"]));
        assert_eq!(p.value("write-out"), Some("json"));
        assert_eq!(p.value("rev"), Some("3"));
        assert!(p.bool("prefix").unwrap());
    }

    #[test]
    fn shorthand_forms_and_double_dash() {
        let (_, p) = parse(&s(&["get", "-wfields", "-i", "--", "--prefix"]), is_cmd, specs).unwrap();
        assert_eq!(p.value("write-out"), Some("fields"));
        assert!(p.bool("interactive").unwrap());
        assert_eq!(p.args, s(&["--prefix"]));
        assert_eq!(p.dash, Some(0));
    }

    #[test]
    fn unknown_and_missing_values_are_errors() {
        let e = parse(&s(&["get", "--count"]), is_cmd, specs).unwrap_err();
        assert_eq!(e.message, "unknown flag: --count");
        let e = parse(&s(&["get", "--rev"]), is_cmd, specs).unwrap_err();
        assert_eq!(e.message, "flag needs an argument: --rev");
        let (_, p) = parse(&s(&["get", "--prefix=maybe"]), is_cmd, specs).unwrap();
        assert!(p.bool("prefix").is_err());
    }

    #[test]
    fn bad_flag_values_are_pflag_errors_with_exit_status_1() {
        let (_, p) = parse(&s(&["get", "--rev=x", "--prefix=maybe"]), is_cmd, specs).unwrap();
        let e = p.int("rev").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                1,
                r#"invalid argument "x" for "--rev" flag: strconv.ParseInt: parsing "x": invalid syntax"#
            )
        );
        let e = p.bool("prefix").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                1,
                r#"invalid argument "maybe" for "--prefix" flag: strconv.ParseBool: parsing "maybe": invalid syntax"#
            )
        );
        let (_, p) = parse(&s(&["get", "--rev=-99999999999999999999"]), is_cmd, specs).unwrap();
        assert!(p
            .int("rev")
            .unwrap_err()
            .message
            .ends_with(": value out of range"));
        let (_, p) = parse(&s(&["get", "--rev=-1"]), is_cmd, specs).unwrap();
        assert_eq!(p.int("rev").unwrap(), Some(-1));
        assert!(p
            .uint("rev")
            .unwrap_err()
            .message
            .ends_with(r#"ParseUint: parsing "-1": invalid syntax"#));
        assert_eq!(p.int("write-out").unwrap(), None);
    }
}
