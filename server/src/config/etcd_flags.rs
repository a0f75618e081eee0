//! The etcd 3.4-3.6 server flags detcd does not implement, each with what detcd does
//! when it is given: accepted with one log line (flags that tune only etcd's own
//! internals), or refused at start-up naming the flag and why, unless its value is
//! etcd's default (which asks for what detcd does anyway). Also `--feature-gates`.
//!
//! Every other etcd flag is implemented (`flags::FLAGS`).

use super::flags::{parse_bool, Kind};
use super::ConfigError;

/// What detcd does with a flag it does not implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Support {
    /// Accepted; one log line says it has no effect, and why.
    NoEffect(&'static str),
    /// Refused unless given etcd's default value; the text says why.
    DefaultOnly(&'static str),
}

use Support::{DefaultOnly, NoEffect};

const BBOLT: &str = "detcd's store is not bbolt";
const BATCH: &str = "detcd's store has no backend transaction batching to tune";
const NO_V2: &str = "detcd serves etcd 3.4's v2 API with --enable-v2 only, not the v2-on-v3 emulation nor 3.6's v2 deprecation stages";
const NO_TRACING: &str = "distributed tracing (OpenTelemetry) is not implemented";
const NO_COMPACTION_BATCH: &str = "detcd compacts in one step within the apply, not in batches";

/// The flags detcd knows but does not implement: name, kind, etcd's default, support.
pub(super) const OTHER_FLAGS: &[(&str, Kind, &str, Support)] = &[
    // Internals of etcd's bbolt backend and compaction.
    ("backend-bbolt-freelist-type", Kind::OneOf(&["map", "array"]), "map", NoEffect(BBOLT)),
    ("experimental-backend-bbolt-freelist-type", Kind::OneOf(&["map", "array"]), "map", NoEffect(BBOLT)),
    ("backend-batch-interval", Kind::Duration, "0s", NoEffect(BATCH)),
    ("backend-batch-limit", Kind::Uint, "0", NoEffect(BATCH)),
    ("compaction-batch-limit", Kind::Uint, "1000", NoEffect(NO_COMPACTION_BATCH)),
    ("experimental-compaction-batch-limit", Kind::Uint, "1000", NoEffect(NO_COMPACTION_BATCH)),
    ("compaction-sleep-interval", Kind::Duration, "10ms", NoEffect(NO_COMPACTION_BATCH)),
    ("experimental-compaction-sleep-interval", Kind::Duration, "10ms", NoEffect(NO_COMPACTION_BATCH)),
    (
        "experimental-txn-mode-write-with-shared-buffer",
        Kind::Bool,
        "true",
        NoEffect("a detcd write transaction always reads its own buffer"),
    ),
    (
        "bootstrap-defrag-threshold-megabytes",
        Kind::Uint,
        "0",
        NoEffect("detcd's store has no free pages to reclaim at start-up"),
    ),
    (
        "experimental-bootstrap-defrag-threshold-megabytes",
        Kind::Uint,
        "0",
        NoEffect("detcd's store has no free pages to reclaim at start-up"),
    ),
    (
        "snapshot-catchup-entries",
        Kind::Uint,
        "5000",
        NoEffect("detcd keeps the entries its followers still need and sends a snapshot otherwise"),
    ),
    (
        "experimental-snapshot-catchup-entries",
        Kind::Uint,
        "5000",
        NoEffect("detcd keeps the entries its followers still need and sends a snapshot otherwise"),
    ),
    // Lease checkpoints: detcd always checkpoints and persists remaining TTLs.
    (
        "experimental-enable-lease-checkpoint",
        Kind::Bool,
        "false",
        NoEffect("detcd always checkpoints lease TTLs"),
    ),
    (
        "experimental-enable-lease-checkpoint-persist",
        Kind::Bool,
        "false",
        NoEffect("detcd always persists lease checkpoints"),
    ),
    // v2 API.
    ("experimental-enable-v2v3", Kind::Str, "", DefaultOnly(NO_V2)),
    (
        "v2-deprecation",
        Kind::OneOf(&["not-yet", "write-only", "write-only-drop-data", "gone"]),
        "write-only",
        DefaultOnly(NO_V2),
    ),
    // Distributed tracing.
    ("enable-distributed-tracing", Kind::Bool, "false", DefaultOnly(NO_TRACING)),
    ("experimental-enable-distributed-tracing", Kind::Bool, "false", DefaultOnly(NO_TRACING)),
    ("distributed-tracing-address", Kind::Str, "localhost:4317", DefaultOnly(NO_TRACING)),
    ("experimental-distributed-tracing-address", Kind::Str, "localhost:4317", DefaultOnly(NO_TRACING)),
    ("distributed-tracing-service-name", Kind::Str, "etcd", DefaultOnly(NO_TRACING)),
    ("experimental-distributed-tracing-service-name", Kind::Str, "etcd", DefaultOnly(NO_TRACING)),
    ("distributed-tracing-instance-id", Kind::Str, "", DefaultOnly(NO_TRACING)),
    ("experimental-distributed-tracing-instance-id", Kind::Str, "", DefaultOnly(NO_TRACING)),
    ("distributed-tracing-sampling-rate", Kind::Uint, "0", DefaultOnly(NO_TRACING)),
    ("experimental-distributed-tracing-sampling-rate", Kind::Uint, "0", DefaultOnly(NO_TRACING)),
    // The rest, one reason each.
    // etcd's own etcd.conf.yml.sample sets `enable-pprof: true`; it must load.
    ("enable-pprof", Kind::Bool, "false", NoEffect("detcd is not a Go program; it has no pprof endpoints")),
    (
        "next-cluster-version-compatible",
        Kind::Bool,
        "false",
        DefaultOnly("detcd has no etcd 3.4 storage schema to make compatible with etcd 3.5's"),
    ),
    (
        "log-package-levels",
        Kind::Str,
        "",
        DefaultOnly("per-package levels were capnslog's (etcd 3.4); use --log-level"),
    ),
    ("enable-log-rotation", Kind::Bool, "false", DefaultOnly("log rotation is not implemented; rotate with logrotate (copytruncate)")),
    (
        "log-rotation-config-json",
        Kind::Str,
        r#"{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}"#,
        DefaultOnly("log rotation is not implemented"),
    ),
    ("socket-reuse-port", Kind::Bool, "false", DefaultOnly("SO_REUSEPORT listeners are not implemented")),
    ("socket-reuse-address", Kind::Bool, "false", DefaultOnly("SO_REUSEADDR listeners are not implemented")),
    ("raft-read-timeout", Kind::Duration, "5s", DefaultOnly("the peer transport's timeouts are fixed")),
    ("raft-write-timeout", Kind::Duration, "5s", DefaultOnly("the peer transport's timeouts are fixed")),
    (
        "client-cert-file",
        Kind::Str,
        "",
        DefaultOnly("a separate client certificate for outgoing connections is not implemented; --cert-file is used"),
    ),
    (
        "client-key-file",
        Kind::Str,
        "",
        DefaultOnly("a separate client key for outgoing connections is not implemented; --key-file is used"),
    ),
    (
        "peer-client-cert-file",
        Kind::Str,
        "",
        DefaultOnly("a separate client certificate for outgoing peer connections is not implemented; --peer-cert-file is used"),
    ),
    (
        "peer-client-key-file",
        Kind::Str,
        "",
        DefaultOnly("a separate client key for outgoing peer connections is not implemented; --peer-key-file is used"),
    ),
    ("downgrade-check-time", Kind::Duration, "5s", DefaultOnly("cluster downgrades are not implemented")),
    ("experimental-downgrade-check-time", Kind::Duration, "5s", DefaultOnly("cluster downgrades are not implemented")),
    (
        "warning-apply-duration",
        Kind::Duration,
        "100ms",
        DefaultOnly("slow-apply warnings are not implemented"),
    ),
    (
        "experimental-warning-apply-duration",
        Kind::Duration,
        "100ms",
        DefaultOnly("slow-apply warnings are not implemented"),
    ),
    (
        "warning-unary-request-duration",
        Kind::Duration,
        "300ms",
        DefaultOnly("slow-request warnings are not implemented"),
    ),
    (
        "experimental-warning-unary-request-duration",
        Kind::Duration,
        "300ms",
        DefaultOnly("slow-request warnings are not implemented"),
    ),
    (
        "experimental-stop-grpc-service-on-defrag",
        Kind::Bool,
        "false",
        DefaultOnly("taking the gRPC health service down during defrag is not implemented"),
    ),
];

/// etcd 3.6's feature gates with detcd's support for each when enabled.
const FEATURE_GATES: &[(&str, Option<&str>)] = &[
    ("InitialCorruptCheck", None),
    ("LeaseCheckpoint", None),
    ("LeaseCheckpointPersist", None),
    ("TxnModeWriteWithSharedBuffer", None),
    ("CompactHashCheck", None),
    (
        "StopGRPCServiceOnDefrag",
        Some("taking the gRPC health service down during defrag is not implemented"),
    ),
    (
        "SetMemberLocalAddr",
        Some("binding outgoing peer connections to the advertised address is not implemented"),
    ),
    ("AllAlpha", Some("detcd does not implement every alpha feature")),
    ("AllBeta", Some("detcd does not implement every beta feature")),
];

/// The gates `--feature-gates` turns on (`Name=true,Name=false,...`), with
/// Kubernetes' wording for a bad list; an enabled gate detcd does not implement is
/// refused.
pub(super) fn parse_feature_gates(spec: &str) -> Result<Vec<&'static str>, ConfigError> {
    let mut on = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| ConfigError::Invalid(format!("--feature-gates: missing bool value for {item}")))?;
        let Some((gate, unsupported)) = FEATURE_GATES.iter().find(|(g, _)| *g == name.trim()) else {
            return Err(ConfigError::Invalid(format!(
                "--feature-gates: unrecognized feature gate: {name}"
            )));
        };
        let enabled = parse_bool(value.trim()).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "--feature-gates: invalid value of {name}={value}, err: strconv.ParseBool: parsing {value:?}: invalid syntax"
            ))
        })?;
        if !enabled {
            on.retain(|g| g != gate);
            continue;
        }
        if let Some(why) = unsupported {
            return Err(ConfigError::Invalid(format!(
                "--feature-gates={gate}=true is not supported by detcd: {why}"
            )));
        }
        on.push(*gate);
    }
    Ok(on)
}

/// The kind of a flag of [`OTHER_FLAGS`].
pub(super) fn other_kind(name: &str) -> Option<Kind> {
    OTHER_FLAGS.iter().find(|f| f.0 == name).map(|f| f.1)
}

/// For each given flag of [`OTHER_FLAGS`]: a refusal (the first one), or the log lines
/// saying which have no effect.
pub(super) fn check_other_flags<'a>(
    given: impl Iterator<Item = (&'a String, &'a String)>,
) -> Result<Vec<String>, ConfigError> {
    let mut notes = Vec::new();
    for (name, value) in given {
        let Some(&(_, kind, default, support)) = OTHER_FLAGS.iter().find(|f| f.0 == name) else {
            continue;
        };
        match support {
            NoEffect(why) => notes.push(format!("--{name}={value} has no effect in detcd: {why}")),
            DefaultOnly(_) if same_value(kind, value, default) => {}
            DefaultOnly(why) => {
                return Err(ConfigError::Invalid(format!(
                    "--{name}={value} is not supported by detcd: {why}"
                )))
            }
        }
    }
    Ok(notes)
}

/// Whether two values of a flag mean the same.
fn same_value(kind: Kind, a: &str, b: &str) -> bool {
    match kind {
        Kind::Bool => parse_bool(a) == parse_bool(b),
        Kind::Duration => {
            crate::ctl::parse_go_duration(a).is_some()
                && crate::ctl::parse_go_duration(a) == crate::ctl::parse_go_duration(b)
        }
        Kind::Uint | Kind::Int => a.parse::<i64>().ok() == b.parse::<i64>().ok(),
        _ => a == b,
    }
}
