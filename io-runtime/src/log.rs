//! Logging through `tracing`: detcd's own lines and the events of the libraries under it
//! (hyper, h2, tonic, rustls) go to one subscriber that writes one line per event, by
//! default in etcd's JSON shape (`{"level":"info","ts":"<ISO 8601>","logger":"<target>","msg":"...",
//! <etcd's fields>}`), or zap's console layout (tab-separated time, level, target, message,
//! fields) with `--log-format console`; `<LEVEL> <target>: <message>` before [`configure`]. The line format is etcd's (zap's),
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

/// One line in the configured format, without the newline. `fields` are etcd's
/// structured fields as a JSON fragment (`"address":"127.0.0.1:2379"`, see
/// [`event_with`]): keys of the JSON line, or an object after the message in console format.
pub fn format_line(
    json: bool,
    level: Level,
    target: &str,
    message: &str,
    fields: &str,
    epoch_millis: u64,
) -> String {
    if !json {
        if fields.is_empty() {
            return format!("{} {target}: {message}", level.name());
        }
        return format!("{} {target}: {message} {{{fields}}}", level.name());
    }
    let comma = if fields.is_empty() { "" } else { "," };
    format!(
        r#"{{"level":"{}","ts":"{}","logger":"{}","msg":"{}"{comma}{fields}}}"#,
        level.lower(),
        iso8601(epoch_millis),
        json_escape(target),
        json_escape(message)
    )
}

pub use crate::time_text::iso8601;

/// The value of one of etcd's structured fields.
#[derive(Clone, Copy, Debug)]
pub enum Field<'a> {
    Str(&'a str),
    List(&'a [String]),
}

/// `--log-format console` as zap's console encoder writes etcd 3.6's lines: time, level,
/// where (zap's caller; detcd's target), message, and the fields as a spaced JSON object,
/// separated by tabs: `2021-08-04T09:12:01.123Z\tinfo\tdetcd\tserving\t{"address": "..."}`.
pub fn format_console(level: Level, target: &str, message: &str, fields: &str, epoch_millis: u64) -> String {
    let mut line = format!(
        "{}\t{}\t{target}\t{message}",
        iso8601(epoch_millis),
        level.lower()
    );
    if !fields.is_empty() {
        line.push_str(&format!("\t{{{}}}", spaced(fields)));
    }
    line
}

/// A JSON fragment as zap's console encoder spaces it: `"k": "v", "k2": ["a", "b"]`.
fn spaced(fragment: &str) -> String {
    let mut out = String::with_capacity(fragment.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for c in fragment.chars() {
        out.push(c);
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            ':' | ',' => out.push(' '),
            _ => {}
        }
    }
    out
}

/// etcd's structured fields as a JSON fragment: `"key":"value",...` in the order given
/// (a list as a JSON array of strings).
pub fn encode_fields(fields: &[(&str, Field<'_>)]) -> String {
    let quoted = |v: &str| format!("\"{}\"", json_escape(v));
    fields
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Field::Str(v) => quoted(v),
                Field::List(items) => format!(
                    "[{}]",
                    items.iter().map(|i| quoted(i)).collect::<Vec<_>>().join(",")
                ),
            };
            format!("{}:{value}", quoted(k))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One line of detcd's (target `detcd`) with etcd's message text and etcd's structured
/// fields as separate keys (`{"msg":"serving client traffic securely","address":"..."}`),
/// so that tools matching etcd's `msg` exactly find it.
pub fn event_with(level: Level, message: &str, fields: &[(&str, Field<'_>)]) {
    install();
    let zap = encode_fields(fields);
    match level {
        Level::Error => tracing::event!(target: "detcd", tracing::Level::ERROR, zap = %zap, "{}", message),
        Level::Warn => tracing::event!(target: "detcd", tracing::Level::WARN, zap = %zap, "{}", message),
        Level::Info => tracing::event!(target: "detcd", tracing::Level::INFO, zap = %zap, "{}", message),
        Level::Debug => tracing::event!(target: "detcd", tracing::Level::DEBUG, zap = %zap, "{}", message),
    }
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
fn emit(level: Level, target: &str, message: &str, fields: &str) {
    let Some(sink) = SINK.get() else {
        eprintln!("{}", format_line(false, level, target, message, fields, 0));
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let line = if sink.json {
        format_line(true, level, target, message, fields, now)
    } else {
        format_console(level, target, message, fields, now)
    } + "\n";
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

/// An event's message, etcd's structured fields ([`event_with`]'s `zap`) and its other
/// fields (`key=value`, in the order given).
#[derive(Default)]
struct Fields {
    message: String,
    zap: String,
    rest: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else if field.name() == "zap" {
            let _ = write!(self.zap, "{value:?}");
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
            &fields.zap,
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
        let line = format_line(true, Level::Warn, "detcd", "a \"b\"\n", "", 1_500);
        assert_eq!(
            line,
            r#"{"level":"warn","ts":"1970-01-01T00:00:01.500Z","logger":"detcd","msg":"a \"b\"\n"}"#
        );
        assert_eq!(format_line(false, Level::Info, "x", "y", "", 0), "INFO x: y");
        // Dates as zap writes them (checked against `date -u -d @SECONDS`).
        assert_eq!(iso8601(1_796_432_982_502), "2026-12-05T01:09:42.502Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        let fields = encode_fields(&[("address", Field::Str("127.0.0.1:2379")), ("q", Field::Str("\""))]);
        assert_eq!(
            encode_fields(&[("urls", Field::List(&["a".to_string(), "b".to_string()]))]),
            r#""urls":["a","b"]"#
        );
        assert_eq!(
            format_line(true, Level::Info, "detcd", "serving", &fields, 2_000),
            r#"{"level":"info","ts":"1970-01-01T00:00:02.000Z","logger":"detcd","msg":"serving","address":"127.0.0.1:2379","q":"\""}"#
        );
        assert_eq!(
            format_console(Level::Warn, "detcd", "serving", &fields, 2_000),
            "1970-01-01T00:00:02.000Z\twarn\tdetcd\tserving\t{\"address\": \"127.0.0.1:2379\", \"q\": \"\\\"\"}"
        );
        assert_eq!(
            format_console(Level::Info, "detcd", "ready", "", 2_000),
            "1970-01-01T00:00:02.000Z\tinfo\tdetcd\tready"
        );
        assert_eq!(
            format_line(false, Level::Info, "detcd", "serving", &fields, 2_000),
            r#"INFO detcd: serving {"address":"127.0.0.1:2379","q":"\""}"#
        );
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
