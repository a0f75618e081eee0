//! The settings of how the member runs rather than what cluster it is in: raft and gRPC
//! tuning, the metrics listener, disk and memory, logging, corruption checks and feature
//! gates (etcd 3.4-3.6 flags, either spelling where etcd renamed one).

use std::collections::BTreeMap;
use std::time::Duration;

use super::flags::{parse_bool, ALIASES, FLAGS};
use super::ConfigError;
use crate::urls::{parse_urls, Url};

/// `--log-outputs`, `--log-format`, `--logger`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `stderr`, `stdout`, or file paths (`default` is stderr, as etcd outside systemd).
    pub outputs: Vec<String>,
    /// `json` (etcd's default) or `console`.
    pub json: bool,
}

/// How the member runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operations {
    /// `--pre-vote`.
    pub pre_vote: bool,
    /// `--initial-election-tick-advance`.
    pub initial_election_tick_advance: bool,
    /// `--max-concurrent-streams`: HTTP/2 streams one client connection may open.
    pub max_concurrent_streams: u32,
    /// `--grpc-keepalive-min-time`: clients pinging more often get GOAWAY
    /// ENHANCE_YOUR_CALM (see `crate::h2_pings`).
    pub grpc_keepalive_min_time: Duration,
    /// `--grpc-keepalive-interval` (zero: no server pings).
    pub grpc_keepalive_interval: Duration,
    /// `--grpc-keepalive-timeout`.
    pub grpc_keepalive_timeout: Duration,
    /// `--watch-progress-notify-interval` or its `--experimental-` spelling.
    pub watch_progress_notify_interval: Duration,
    /// `--listen-metrics-urls`: `/metrics`, `/health`, `/livez`, `/readyz` only.
    pub listen_metrics_urls: Vec<Url>,
    /// `--metrics extensive`: also the gRPC handling-time histogram.
    pub metrics_extensive: bool,
    /// `--unsafe-no-fsync`.
    pub unsafe_no_fsync: bool,
    /// `--memory-mlock` or `--experimental-memory-mlock`.
    pub memory_mlock: bool,
    pub log: LogSettings,
    /// `--experimental-initial-corrupt-check` or `--feature-gates=InitialCorruptCheck=true`.
    pub initial_corrupt_check: bool,
    /// `--corrupt-check-time` or `--experimental-corrupt-check-time` (zero: off).
    pub corrupt_check_time: Duration,
    /// `--experimental-compact-hash-check-enabled` or `--feature-gates=CompactHashCheck=true`.
    pub compact_hash_check: bool,
    /// `--compact-hash-check-time` or `--experimental-compact-hash-check-time`.
    pub compact_hash_check_time: Duration,
    /// The gates `--feature-gates` turned on.
    pub feature_gates: Vec<&'static str>,
}

impl Operations {
    /// Reads the settings from the given values, etcd's defaults filling the rest.
    pub(super) fn from_values(values: &BTreeMap<String, String>) -> Result<Operations, ConfigError> {
        for (new, old) in ALIASES {
            if values.contains_key(*new) && values.contains_key(*old) {
                return Err(ConfigError::Invalid(format!(
                    "cannot specify both --{old} and --{new}; --{old} is etcd 3.5's spelling of --{new}"
                )));
            }
        }
        let get = |name: &str| -> String {
            let alias = ALIASES.iter().find(|(new, _)| *new == name).map(|(_, old)| *old);
            values
                .get(name)
                .or_else(|| alias.and_then(|old| values.get(old)))
                .cloned()
                .unwrap_or_else(|| {
                    FLAGS
                        .iter()
                        .find(|(n, _, _)| *n == name)
                        .map(|(_, _, d)| d.to_string())
                        .unwrap_or_default()
                })
        };
        let flag = |name: &str| parse_bool(&get(name)).unwrap_or(false);
        let duration = |name: &str| {
            crate::ctl::parse_go_duration(&get(name))
                .ok_or_else(|| ConfigError::Invalid(format!("--{name}: invalid duration {:?}", get(name))))
        };
        let gates = super::etcd_flags::parse_feature_gates(&get("feature-gates"))?;
        let metrics_urls = get("listen-metrics-urls");
        let listen_metrics_urls = if metrics_urls.is_empty() {
            Vec::new()
        } else {
            parse_urls(&metrics_urls)
                .map_err(|e| ConfigError::Invalid(format!("--listen-metrics-urls: {e}")))?
        };
        let watch_progress_notify_interval = duration("watch-progress-notify-interval")?;
        if watch_progress_notify_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "--watch-progress-notify-interval must be positive".to_string(),
            ));
        }
        if get("logger") == "capnslog" {
            // etcd 3.5's refusal (3.4 still had capnslog's line format; detcd writes zap's).
            return Err(ConfigError::Invalid(
                "--logger=capnslog is removed in v3.5".to_string(),
            ));
        }
        let outputs: Vec<String> = get("log-outputs")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if outputs.is_empty() {
            return Err(ConfigError::Invalid(
                "--log-outputs must name at least one output".to_string(),
            ));
        }
        Ok(Operations {
            pre_vote: flag("pre-vote"),
            initial_election_tick_advance: flag("initial-election-tick-advance"),
            max_concurrent_streams: u32::try_from(get("max-concurrent-streams").parse::<u64>().unwrap_or(0))
                .map_err(|_| {
                    ConfigError::Invalid("--max-concurrent-streams must fit in 32 bits".to_string())
                })?,
            grpc_keepalive_min_time: duration("grpc-keepalive-min-time")?,
            grpc_keepalive_interval: duration("grpc-keepalive-interval")?,
            grpc_keepalive_timeout: duration("grpc-keepalive-timeout")?,
            watch_progress_notify_interval,
            listen_metrics_urls,
            metrics_extensive: get("metrics") == "extensive",
            unsafe_no_fsync: flag("unsafe-no-fsync"),
            memory_mlock: flag("memory-mlock"),
            log: LogSettings {
                outputs,
                json: get("log-format") == "json",
            },
            initial_corrupt_check: flag("experimental-initial-corrupt-check")
                || gates.contains(&"InitialCorruptCheck"),
            corrupt_check_time: duration("corrupt-check-time")?,
            compact_hash_check: flag("experimental-compact-hash-check-enabled")
                || gates.contains(&"CompactHashCheck"),
            compact_hash_check_time: duration("compact-hash-check-time")?,
            feature_gates: gates,
        })
    }
}

/// A list flag as etcd's `UniqueStringsValue` holds it: the distinct items, sorted.
fn unique_list(value: &str) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    set.into_iter().collect()
}

/// etcd 3.4's deprecated `--log-output` beside `--log-outputs`, by its rules (3.4's
/// `setupLogging`): more outputs in `--log-output` than in `--log-outputs` replace them;
/// fewer are ignored; as many, more than one each, or the same non-default list in both, is
/// an error; a lone non-default `--log-output` is ignored with a warning. Returns the
/// warning lines etcd prints.
pub(super) fn deprecated_log_output(
    values: &mut BTreeMap<String, String>,
) -> Result<Vec<String>, ConfigError> {
    let Some(old) = values.get("log-output").map(|v| unique_list(v)) else {
        return Ok(Vec::new());
    };
    let new = unique_list(values.get("log-outputs").map_or("default", String::as_str));
    let mut notes = Vec::new();
    if old.len() > new.len() {
        notes.push("'--log-output' flag has been deprecated! Please use '--log-outputs'!".to_string());
        values.insert("log-outputs".to_string(), old.join(","));
    } else if old.len() == new.len() {
        if old.len() > 1 {
            return Err(ConfigError::Invalid(
                "both '--log-output' and '--log-outputs' are set; only set '--log-outputs'".to_string(),
            ));
        }
        if old == new && old != ["default"] {
            return Err(ConfigError::Invalid(format!(
                "'--log-output={}' and '--log-outputs={}' are incompatible; only set --log-outputs",
                go_quoted(&old),
                go_quoted(&new)
            )));
        }
        if old != ["default"] {
            notes.push(format!(
                "[WARNING] Deprecated '--log-output' flag is set to {}",
                go_quoted(&old)
            ));
            notes.push("Please use '--log-outputs' flag".to_string());
        }
    }
    Ok(notes)
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}
