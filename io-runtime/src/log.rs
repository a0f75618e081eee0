//! Minimal structured logging: one line per event on stderr,
//! `<level> <target>: <message> key=value ...`.
//!
//! No logging crate is chosen for the workspace yet; this keeps every line in one
//! shape so a later switch (to `tracing`, say) is a change of this file only. The
//! level threshold comes from `DETCD_LOG` (`error`, `warn`, `info`, `debug`;
//! default `info`), read once.

use std::sync::OnceLock;

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
}

/// The threshold: `DETCD_LOG`, or `info`.
pub fn threshold() -> Level {
    static THRESHOLD: OnceLock<Level> = OnceLock::new();
    *THRESHOLD.get_or_init(|| match std::env::var("DETCD_LOG").as_deref() {
        Ok("error") => Level::Error,
        Ok("warn") => Level::Warn,
        Ok("debug") => Level::Debug,
        _ => Level::Info,
    })
}

/// Whether a line at `level` would be written.
pub fn enabled(level: Level) -> bool {
    level <= threshold()
}

/// Writes one line (use the macros).
pub fn write(level: Level, target: &str, message: std::fmt::Arguments<'_>) {
    if enabled(level) {
        eprintln!("{} {target}: {message}", level.name());
    }
}

/// `log!(Level::Warn, "transport", "peer {:x} refused: {}", id, why)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $target:expr, $($arg:tt)+) => {
        $crate::log::write($level, $target, format_args!($($arg)+))
    };
}
