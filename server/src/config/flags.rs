//! The command line as Go's `flag` package reads it, and every flag detcd knows with its kind
//! and etcd's default.

use std::collections::BTreeMap;

use super::{ConfigError, Invocation};
use crate::urls::parse_urls;

/// What a flag's value is, which decides how it parses and whether it takes a separate
/// argument on the command line (booleans do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Uint,
    Int,
    Bool,
    Urls,
    /// `*` or URLs (etcd's `UniqueURLsWithExceptions(.., "*")`: `--cors`).
    UrlsOrStar,
    /// A Go duration (`5s`, `2h`, `10m0s`).
    Duration,
    OneOf(&'static [&'static str]),
}

/// Every flag detcd accepts, with etcd's default.
pub(super) const FLAGS: &[(&str, Kind, &str)] = &[
    ("name", Kind::Str, "default"),
    ("data-dir", Kind::Str, ""),
    ("wal-dir", Kind::Str, ""),
    ("listen-client-urls", Kind::Urls, "http://localhost:2379"),
    ("advertise-client-urls", Kind::Urls, "http://localhost:2379"),
    ("cert-file", Kind::Str, ""),
    ("key-file", Kind::Str, ""),
    ("trusted-ca-file", Kind::Str, ""),
    ("client-cert-auth", Kind::Bool, "false"),
    ("client-crl-file", Kind::Str, ""),
    ("client-cert-allowed-hostname", Kind::Str, ""),
    ("auto-tls", Kind::Bool, "false"),
    ("cipher-suites", Kind::Str, ""),
    ("tls-min-version", Kind::Str, "TLS1.2"),
    ("tls-max-version", Kind::Str, ""),
    ("self-signed-cert-validity", Kind::Uint, "1"),
    ("listen-peer-urls", Kind::Urls, "http://localhost:2380"),
    ("initial-advertise-peer-urls", Kind::Urls, "http://localhost:2380"),
    ("peer-cert-file", Kind::Str, ""),
    ("peer-key-file", Kind::Str, ""),
    ("peer-trusted-ca-file", Kind::Str, ""),
    ("peer-client-cert-auth", Kind::Bool, "false"),
    ("peer-crl-file", Kind::Str, ""),
    ("peer-cert-allowed-cn", Kind::Str, ""),
    ("peer-cert-allowed-hostname", Kind::Str, ""),
    ("peer-auto-tls", Kind::Bool, "false"),
    ("peer-skip-client-san-verification", Kind::Bool, "false"),
    (
        "experimental-peer-skip-client-san-verification",
        Kind::Bool,
        "false",
    ),
    ("initial-cluster", Kind::Str, "default=http://localhost:2380"),
    ("initial-cluster-state", Kind::OneOf(&["new", "existing"]), "new"),
    ("initial-cluster-token", Kind::Str, "etcd-cluster"),
    // Discovery (config/bootstrap.rs): DNS SRV, v2 discovery URL, v3 discovery (3.6).
    ("discovery", Kind::Str, ""),
    // etcd 3.4's default: a member a v2 discovery service finds full runs as a proxy.
    ("discovery-fallback", Kind::OneOf(&["exit", "proxy"]), "proxy"),
    ("discovery-proxy", Kind::Str, ""),
    ("discovery-srv", Kind::Str, ""),
    ("discovery-srv-name", Kind::Str, ""),
    ("discovery-token", Kind::Str, ""),
    ("discovery-endpoints", Kind::Str, ""),
    ("discovery-dial-timeout", Kind::Duration, "2s"),
    ("discovery-request-timeout", Kind::Duration, "5s"),
    ("discovery-keepalive-time", Kind::Duration, "2s"),
    ("discovery-keepalive-timeout", Kind::Duration, "6s"),
    ("discovery-insecure-transport", Kind::Bool, "true"),
    ("discovery-insecure-skip-tls-verify", Kind::Bool, "false"),
    ("discovery-cert", Kind::Str, ""),
    ("discovery-key", Kind::Str, ""),
    ("discovery-cacert", Kind::Str, ""),
    ("discovery-user", Kind::Str, ""),
    ("discovery-password", Kind::Str, ""),
    // etcd 3.4's v2 HTTP proxy (config/proxy.rs, crate::httpproxy).
    ("proxy", Kind::OneOf(&["off", "readonly", "on"]), "off"),
    ("proxy-failure-wait", Kind::Uint, "5000"),
    ("proxy-refresh-interval", Kind::Uint, "30000"),
    ("proxy-dial-timeout", Kind::Uint, "1000"),
    ("proxy-write-timeout", Kind::Uint, "5000"),
    ("proxy-read-timeout", Kind::Uint, "0"),
    ("snapshot-count", Kind::Uint, "10000"),
    ("heartbeat-interval", Kind::Uint, "100"),
    ("election-timeout", Kind::Uint, "1000"),
    ("quota-backend-bytes", Kind::Int, "0"),
    ("max-txn-ops", Kind::Uint, "128"),
    ("max-request-bytes", Kind::Uint, "1572864"),
    (
        "auto-compaction-mode",
        Kind::OneOf(&["periodic", "revision"]),
        "periodic",
    ),
    ("auto-compaction-retention", Kind::Str, "0"),
    ("max-snapshots", Kind::Uint, "5"),
    ("max-wals", Kind::Uint, "5"),
    ("max-learners", Kind::Uint, "1"),
    ("strict-reconfig-check", Kind::Bool, "true"),
    ("force-new-cluster", Kind::Bool, "false"),
    ("auth-token", Kind::Str, "simple"),
    ("auth-token-ttl", Kind::Uint, "300"),
    ("bcrypt-cost", Kind::Uint, "10"),
    ("enable-grpc-gateway", Kind::Bool, "true"),
    ("enable-v2", Kind::Bool, "false"),
    ("cors", Kind::UrlsOrStar, "*"),
    ("host-whitelist", Kind::Str, ""),
    ("listen-client-http-urls", Kind::Str, ""),
    (
        "log-level",
        Kind::OneOf(&["debug", "info", "warn", "error", "panic", "fatal"]),
        "info",
    ),
    ("config-file", Kind::Str, ""),
    // Raft and gRPC tuning.
    ("pre-vote", Kind::Bool, "true"),
    ("initial-election-tick-advance", Kind::Bool, "true"),
    ("max-concurrent-streams", Kind::Uint, "4294967295"),
    ("grpc-keepalive-min-time", Kind::Duration, "5s"),
    ("grpc-keepalive-interval", Kind::Duration, "2h"),
    ("grpc-keepalive-timeout", Kind::Duration, "20s"),
    ("watch-progress-notify-interval", Kind::Duration, "10m"),
    (
        "experimental-watch-progress-notify-interval",
        Kind::Duration,
        "10m",
    ),
    // Monitoring.
    ("listen-metrics-urls", Kind::Str, ""),
    ("metrics", Kind::OneOf(&["basic", "extensive"]), "basic"),
    // Disk and memory.
    ("unsafe-no-fsync", Kind::Bool, "false"),
    ("memory-mlock", Kind::Bool, "false"),
    ("experimental-memory-mlock", Kind::Bool, "false"),
    // Logging.
    ("logger", Kind::OneOf(&["zap", "capnslog"]), "zap"),
    ("log-outputs", Kind::Str, "default"),
    // etcd 3.4's deprecated spelling, with its rules (`operations::deprecated_log_output`).
    ("log-output", Kind::Str, "default"),
    ("log-format", Kind::OneOf(&["json", "console"]), "json"),
    ("debug", Kind::Bool, "false"),
    // Corruption checks and feature gates.
    ("experimental-initial-corrupt-check", Kind::Bool, "false"),
    ("corrupt-check-time", Kind::Duration, "0s"),
    ("experimental-corrupt-check-time", Kind::Duration, "0s"),
    ("experimental-compact-hash-check-enabled", Kind::Bool, "false"),
    ("compact-hash-check-time", Kind::Duration, "1m"),
    ("experimental-compact-hash-check-time", Kind::Duration, "1m"),
    ("feature-gates", Kind::Str, ""),
];

/// Pairs of spellings of one setting: etcd 3.6's name and the `--experimental-` one of
/// etcd 3.4/3.5. Either may be given; both at once is an error.
pub(super) const ALIASES: &[(&str, &str)] = &[
    (
        "watch-progress-notify-interval",
        "experimental-watch-progress-notify-interval",
    ),
    ("memory-mlock", "experimental-memory-mlock"),
    ("corrupt-check-time", "experimental-corrupt-check-time"),
    ("compact-hash-check-time", "experimental-compact-hash-check-time"),
];

/// Flags that stop parsing and answer at once.
const INFO_FLAGS: &[&str] = &["help", "h", "version"];

pub(super) fn kind_of(name: &str) -> Option<Kind> {
    FLAGS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, k, _)| *k)
        .or_else(|| super::etcd_flags::other_kind(name))
}

/// `ETCD_` + the flag name upper-cased with `-` turned into `_` (`FlagToEnv`).
pub fn flag_to_env(name: &str) -> String {
    format!("ETCD_{}", name.to_uppercase().replace('-', "_"))
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    crate::ctl::args::parse_go_bool(v)
}

/// A periodic retention: a Go duration, or a bare number of hours (etcd's rule).
pub(super) fn parse_retention_ms(v: &str) -> Option<u64> {
    if let Ok(hours) = v.parse::<u64>() {
        return hours.checked_mul(3_600_000);
    }
    crate::ctl::parse_go_duration(v).map(|d| d.as_millis() as u64)
}

/// Checks one raw value against its flag's kind, with Go's `flag` package wording.
pub(super) fn check_value(kind: Kind, v: &str) -> Result<(), String> {
    match kind {
        Kind::Str => Ok(()),
        Kind::Uint => v
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| "parse error".to_string()),
        Kind::Int => v
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| "parse error".to_string()),
        Kind::Bool => parse_bool(v).map(|_| ()).ok_or_else(|| "parse error".to_string()),
        Kind::Urls => parse_urls(v).map(|_| ()),
        Kind::UrlsOrStar if v == "*" => Ok(()),
        Kind::UrlsOrStar => parse_urls(v).map(|_| ()),
        Kind::Duration => crate::ctl::parse_go_duration(v)
            .map(|_| ())
            .ok_or_else(|| format!("time: invalid duration {v:?}")),
        Kind::OneOf(valid) => {
            if valid.contains(&v) {
                Ok(())
            } else {
                Err(format!("valid values are {}", valid.join(", ")))
            }
        }
    }
}

pub(super) enum Parsed {
    Flags(BTreeMap<String, String>),
    Info(Invocation),
}

/// Go's `flag` package rules: `-name`, `--name`, `-name=value`, `-name value`; boolean flags
/// take a value only with `=`; the first non-flag argument is an error for etcd.
pub(super) fn parse_flags(args: &[String]) -> Result<Parsed, ConfigError> {
    let mut flags = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if let Some(next) = args.get(i) {
                // etcd's check of what Go's flag package leaves over: exit status 1.
                return Err(ConfigError::Invalid(format!("'{next}' is not a valid flag")));
            }
            break;
        }
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|b| !b.is_empty())
        else {
            return Err(ConfigError::Invalid(format!("'{arg}' is not a valid flag")));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if INFO_FLAGS.contains(&name) {
            return Ok(Parsed::Info(if name == "version" {
                Invocation::Version
            } else {
                Invocation::Help
            }));
        }
        let kind = kind_of(name)
            .ok_or_else(|| ConfigError::Flag(format!("flag provided but not defined: -{name}")))?;
        let value = match (inline, kind) {
            (Some(v), _) => v,
            (None, Kind::Bool) => "true".to_string(),
            (None, _) => {
                let v = args
                    .get(i)
                    .ok_or_else(|| ConfigError::Flag(format!("flag needs an argument: -{name}")))?;
                i += 1;
                v.clone()
            }
        };
        check_value(kind, &value)
            .map_err(|e| ConfigError::Flag(format!("invalid value {value:?} for flag -{name}: {e}")))?;
        flags.insert(name.to_string(), value);
    }
    Ok(Parsed::Flags(flags))
}
