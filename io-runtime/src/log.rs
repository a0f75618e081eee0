//! Minimal structured logging: one line per event, by default etcd's JSON shape
//! (`{"level":"info","ts":...,"logger":"<target>","msg":"..."}`), or
//! `<LEVEL> <target>: <message>` in console format.
//!
//! The level threshold is `DETCD_LOG` (`error`, `warn`, `info`, `debug`; default `info`)
//! until [`configure`] sets it from `--log-level`; [`configure`] also sets the outputs
//! (`--log-outputs`: stderr, stdout, file paths) and the format (`--log-format`).

use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

/// How important a line is; lines below the threshold are not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }

    /// etcd's (zap's) level names: `debug`, `info`, `warn`, `error`; `panic` and
    /// `fatal` log only errors.
    pub fn parse(name: &str) -> Option<Level> {
        match name {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" | "dpanic" | "panic" | "fatal" => Some(Level::Error),
            _ => None,
        }
    }

    fn lower(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// 255: not set yet (read `DETCD_LOG` on first use).
static THRESHOLD: AtomicU8 = AtomicU8::new(u8::MAX);

/// Where lines go once [`configure`] ran.
struct Sink {
    outputs: Vec<Output>,
    json: bool,
}

enum Output {
    Stderr,
    Stdout,
    File(Mutex<std::fs::File>),
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sets the threshold, the outputs (`stderr`, `stdout`, `default` = stderr, or file
/// paths, appended to) and the format; the first call wins. Fails naming an output
/// that cannot be opened.
pub fn configure(level: Level, outputs: &[String], json: bool) -> Result<(), String> {
    let mut opened = Vec::new();
    for o in outputs {
        opened.push(match o.as_str() {
            "stderr" | "default" => Output::Stderr,
            "stdout" => Output::Stdout,
            path => Output::File(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open log output {path:?}: {e}"))?,
            )),
        });
    }
    THRESHOLD.store(level as u8, Ordering::Relaxed);
    let _ = SINK.set(Sink {
        outputs: opened,
        json,
    });
    Ok(())
}

/// The threshold: set by [`configure`], else `DETCD_LOG`, or `info`.
pub fn threshold() -> Level {
    let current = THRESHOLD.load(Ordering::Relaxed);
    if current == u8::MAX {
        let level = match std::env::var("DETCD_LOG").as_deref() {
            Ok("error") => Level::Error,
            Ok("warn") => Level::Warn,
            Ok("debug") => Level::Debug,
            _ => Level::Info,
        };
        let _ = THRESHOLD.compare_exchange(u8::MAX, level as u8, Ordering::Relaxed, Ordering::Relaxed);
    }
    match THRESHOLD.load(Ordering::Relaxed) {
        0 => Level::Error,
        1 => Level::Warn,
        3 => Level::Debug,
        _ => Level::Info,
    }
}

/// Whether a line at `level` would be written.
pub fn enabled(level: Level) -> bool {
    level <= threshold()
}

/// One line in the configured format, without the newline.
pub fn format_line(json: bool, level: Level, target: &str, message: &str, epoch_seconds: f64) -> String {
    if !json {
        return format!("{} {target}: {message}", level.name());
    }
    format!(
        r#"{{"level":"{}","ts":{epoch_seconds:.6},"logger":"{}","msg":"{}"}}"#,
        level.lower(),
        json_escape(target),
        json_escape(message)
    )
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Writes one line (use the macros).
pub fn write(level: Level, target: &str, message: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let Some(sink) = SINK.get() else {
        eprintln!("{} {target}: {message}", level.name());
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let line = format_line(sink.json, level, target, &message.to_string(), now) + "\n";
    for output in &sink.outputs {
        let _ = match output {
            Output::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Output::Stdout => std::io::stdout().write_all(line.as_bytes()),
            Output::File(f) => match f.lock() {
                Ok(mut f) => f.write_all(line.as_bytes()),
                Err(_) => Ok(()),
            },
        };
    }
}

/// `log!(Level::Warn, "transport", "peer {:x} refused: {}", id, why)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $target:expr, $($arg:tt)+) => {
        $crate::log::write($level, $target, format_args!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_zaps_keys_and_escape_the_message() {
        let line = format_line(true, Level::Warn, "detcd", "a \"b\"\n", 1.5);
        assert_eq!(
            line,
            r#"{"level":"warn","ts":1.500000,"logger":"detcd","msg":"a \"b\"\n"}"#
        );
        assert_eq!(format_line(false, Level::Info, "x", "y", 0.0), "INFO x: y");
        assert_eq!(Level::parse("fatal"), Some(Level::Error));
        assert_eq!(Level::parse("loud"), None);
    }
}
