//! Logging through `tracing`: detcd's own lines and the events of the libraries under it
//! (hyper, h2, tonic, rustls) go to one subscriber that writes one line per event, by
//! default in etcd's JSON shape (`{"level":"info","ts":...,"logger":"<target>","msg":"..."}`),
//! or `<LEVEL> <target>: <message>` in console format. The line format is etcd's (zap's),
//! which no formatting crate reproduces, so the subscriber is this module's own; the
//! events themselves are plain `tracing` events ([`log!`] emits one).
//!
//! The level threshold is `DETCD_LOG` (`error`, `warn`, `info`, `debug`; default `info`)
//! until [`configure`] sets it from `--log-level`; [`configure`] also sets the outputs
//! (`--log-outputs`: stderr, stdout, file paths) and the format (`--log-format`).
//! Libraries' events are written up to the threshold but never below `info` (their
//! `debug` and `trace` events describe every frame). The subscriber is installed as the
//! global default on the first line or by [`configure`]; a program that installed its
//! own keeps it.

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
    install();
    // Callsites registered under the old threshold are asked again.
    tracing::callsite::rebuild_interest_cache();
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

/// Writes one line to the configured outputs (stderr in console format before
/// [`configure`]). The subscriber calls it for every event it lets through.
fn emit(level: Level, target: &str, message: &str) {
    let Some(sink) = SINK.get() else {
        eprintln!("{} {target}: {message}", level.name());
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let line = format_line(sink.json, level, target, message, now) + "\n";
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

/// The targets detcd's own lines use; anything else is a library's.
const OWN_TARGETS: &[&str] = &["detcd", "driver", "transport", "storage", "tls", "sim", "core"];

fn level_of(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::INFO => Level::Info,
        _ => Level::Debug,
    }
}

/// The subscriber: no spans (each event is one line), a level check per event so that
/// [`configure`] can change the threshold at any time.
#[derive(Debug)]
struct LineSubscriber;

/// An event's message and its other fields (`key=value`, in the order given).
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.rest.push_str(&format!(" {}={value}", field.name()));
        }
    }
}

impl tracing::Subscriber for LineSubscriber {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        let level = level_of(metadata.level());
        let own = OWN_TARGETS.contains(&metadata.target());
        enabled(level) && (own || level <= Level::Info)
    }

    /// Decided once per callsite and cached by `tracing` ([`configure`] has the
    /// cache rebuilt when it changes the threshold). `sometimes` here made every
    /// trace and debug callsite of h2, hyper and tonic call [`Self::enabled`] on
    /// every request (a target lookup per event, 7% of a put's instructions).
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if self.enabled(metadata) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    /// The most verbose level any line can have at the current threshold: the
    /// macros of more verbose callsites return at a compare, before any callsite
    /// registration or dispatch.
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        use tracing::level_filters::LevelFilter;
        Some(match threshold() {
            Level::Error => LevelFilter::ERROR,
            Level::Warn => LevelFilter::WARN,
            Level::Info => LevelFilter::INFO,
            // `level_of` takes trace events for debug ones.
            Level::Debug => LevelFilter::TRACE,
        })
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        emit(
            level_of(metadata.level()),
            metadata.target(),
            &(fields.message + &fields.rest),
        );
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

static INSTALLED: std::sync::Once = std::sync::Once::new();

/// Installs the subscriber as the global default, once (a no-op when the program
/// installed another first).
pub fn install() {
    INSTALLED.call_once(|| {
        let _ = tracing::subscriber::set_global_default(LineSubscriber);
    });
}

/// Re-exported for [`log!`].
#[doc(hidden)]
pub use tracing as __tracing;

/// `log!(Level::Warn, "transport", "peer {:x} refused: {}", id, why)`: one `tracing`
/// event at that level with that target (a string literal).
#[macro_export]
macro_rules! log {
    ($level:expr, $target:expr, $($arg:tt)+) => {{
        $crate::log::install();
        match $level {
            $crate::log::Level::Error => {
                $crate::log::__tracing::event!(target: $target, $crate::log::__tracing::Level::ERROR, "{}", format_args!($($arg)+))
            }
            $crate::log::Level::Warn => {
                $crate::log::__tracing::event!(target: $target, $crate::log::__tracing::Level::WARN, "{}", format_args!($($arg)+))
            }
            $crate::log::Level::Info => {
                $crate::log::__tracing::event!(target: $target, $crate::log::__tracing::Level::INFO, "{}", format_args!($($arg)+))
            }
            $crate::log::Level::Debug => {
                $crate::log::__tracing::event!(target: $target, $crate::log::__tracing::Level::DEBUG, "{}", format_args!($($arg)+))
            }
        }
    }};
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

    #[test]
    fn library_trace_and_debug_events_stop_at_the_level_compare() {
        configure(Level::Info, &["stderr".to_string()], false).unwrap();
        // The macros compare with this before registering a callsite or asking the
        // subscriber: the per-request trace events of h2 and hyper cost nothing.
        assert_eq!(
            tracing::level_filters::LevelFilter::current(),
            tracing::level_filters::LevelFilter::INFO
        );
        assert!(!tracing::enabled!(target: "h2", tracing::Level::TRACE));
        assert!(!tracing::enabled!(target: "driver", tracing::Level::DEBUG));
        assert!(tracing::enabled!(target: "h2", tracing::Level::INFO));
        assert!(tracing::enabled!(target: "driver", tracing::Level::WARN));
    }
}
