//! Walks every server flag of etcd 3.4, 3.5 and 3.6 and checks that detcd implements
//! it, accepts it saying it has no effect, or refuses it naming it.

use super::etcd_flags::{Support, OTHER_FLAGS};
use super::flags::{kind_of, parse_bool, Kind, FLAGS};
use super::*;

/// The union of `etcd --help` (3.4.23, 3.5.1), the flags registered by `etcdmain/config.go`
/// at v3.4.23 and v3.4.45 (`--log-output`, left out of 3.4's help text;
/// `--next-cluster-version-compatible`, added in a later 3.4 release), and those registered by
/// `server/etcdmain/config.go` and `server/embed/config.go` at v3.5.21, v3.5.33, v3.6.9 and
/// v3.6.14.
const ETCD_FLAGS: &[&str] = &[
    "advertise-client-urls",
    "auth-token",
    "auth-token-ttl",
    "auto-compaction-mode",
    "auto-compaction-retention",
    "auto-tls",
    "backend-batch-interval",
    "backend-batch-limit",
    "backend-bbolt-freelist-type",
    "bcrypt-cost",
    "bootstrap-defrag-threshold-megabytes",
    "cert-file",
    "cipher-suites",
    "client-cert-allowed-hostname",
    "client-cert-auth",
    "client-cert-file",
    "client-crl-file",
    "client-key-file",
    "compact-hash-check-time",
    "compaction-batch-limit",
    "compaction-sleep-interval",
    "config-file",
    "corrupt-check-time",
    "cors",
    "data-dir",
    "debug",
    "discovery",
    "discovery-cacert",
    "discovery-cert",
    "discovery-dial-timeout",
    "discovery-endpoints",
    "discovery-fallback",
    "discovery-insecure-skip-tls-verify",
    "discovery-insecure-transport",
    "discovery-keepalive-time",
    "discovery-keepalive-timeout",
    "discovery-key",
    "discovery-password",
    "discovery-proxy",
    "discovery-request-timeout",
    "discovery-srv",
    "discovery-srv-name",
    "discovery-token",
    "discovery-user",
    "distributed-tracing-address",
    "distributed-tracing-instance-id",
    "distributed-tracing-sampling-rate",
    "distributed-tracing-service-name",
    "downgrade-check-time",
    "election-timeout",
    "enable-distributed-tracing",
    "enable-grpc-gateway",
    "enable-log-rotation",
    "enable-pprof",
    "enable-v2",
    "experimental-backend-bbolt-freelist-type",
    "experimental-bootstrap-defrag-threshold-megabytes",
    "experimental-compact-hash-check-enabled",
    "experimental-compact-hash-check-time",
    "experimental-compaction-batch-limit",
    "experimental-compaction-sleep-interval",
    "experimental-corrupt-check-time",
    "experimental-distributed-tracing-address",
    "experimental-distributed-tracing-instance-id",
    "experimental-distributed-tracing-sampling-rate",
    "experimental-distributed-tracing-service-name",
    "experimental-downgrade-check-time",
    "experimental-enable-distributed-tracing",
    "experimental-enable-lease-checkpoint",
    "experimental-enable-lease-checkpoint-persist",
    "experimental-enable-v2v3",
    "experimental-initial-corrupt-check",
    "experimental-memory-mlock",
    "experimental-peer-skip-client-san-verification",
    "experimental-snapshot-catchup-entries",
    "experimental-stop-grpc-service-on-defrag",
    "experimental-txn-mode-write-with-shared-buffer",
    "experimental-warning-apply-duration",
    "experimental-warning-unary-request-duration",
    "experimental-watch-progress-notify-interval",
    "feature-gates",
    "force-new-cluster",
    "grpc-keepalive-interval",
    "grpc-keepalive-min-time",
    "grpc-keepalive-timeout",
    "heartbeat-interval",
    "host-whitelist",
    "initial-advertise-peer-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "initial-election-tick-advance",
    "key-file",
    "listen-client-http-urls",
    "listen-client-urls",
    "listen-metrics-urls",
    "listen-peer-urls",
    "log-format",
    "log-level",
    "log-output",
    "log-outputs",
    "log-package-levels",
    "log-rotation-config-json",
    "logger",
    "max-concurrent-streams",
    "max-learners",
    "max-request-bytes",
    "max-snapshots",
    "max-txn-ops",
    "max-wals",
    "memory-mlock",
    "metrics",
    "name",
    "next-cluster-version-compatible",
    "peer-auto-tls",
    "peer-cert-allowed-cn",
    "peer-cert-allowed-hostname",
    "peer-cert-file",
    "peer-client-cert-auth",
    "peer-client-cert-file",
    "peer-client-key-file",
    "peer-crl-file",
    "peer-key-file",
    "peer-skip-client-san-verification",
    "peer-trusted-ca-file",
    "pre-vote",
    "proxy",
    "proxy-dial-timeout",
    "proxy-failure-wait",
    "proxy-read-timeout",
    "proxy-refresh-interval",
    "proxy-write-timeout",
    "quota-backend-bytes",
    "raft-read-timeout",
    "raft-write-timeout",
    "self-signed-cert-validity",
    "snapshot-catchup-entries",
    "snapshot-count",
    "socket-reuse-address",
    "socket-reuse-port",
    "strict-reconfig-check",
    "tls-max-version",
    "tls-min-version",
    "trusted-ca-file",
    "unsafe-no-fsync",
    "v2-deprecation",
    "wal-dir",
    "warning-apply-duration",
    "warning-unary-request-duration",
    "watch-progress-notify-interval",
];

fn load_one(name: &str, value: &str) -> Result<Config, ConfigError> {
    let args = vec![format!("--{name}={value}")];
    match Config::load(&args, &[], &|_| Err("no file".into()))? {
        Invocation::Run(c) => Ok(*c),
        other => panic!("unexpected {other:?}"),
    }
}

/// A value of `kind` other than `default`.
fn other_value(kind: Kind, default: &str) -> String {
    match kind {
        Kind::Bool => (!parse_bool(default).unwrap_or(false)).to_string(),
        Kind::Uint | Kind::Int => "7".to_string(),
        Kind::Duration => "7s".to_string(),
        Kind::OneOf(values) => values
            .iter()
            .find(|v| **v != default)
            .expect("two values")
            .to_string(),
        Kind::Str | Kind::Urls => "x".to_string(),
        Kind::UrlsOrStar => "http://x:1".to_string(),
    }
}

#[test]
fn cors_takes_star_or_urls_as_etcd_3_4() {
    assert!(load_one("cors", "*").is_ok());
    assert_eq!(
        load_one("cors", "https://a.example:8443,http://b:80")
            .unwrap()
            .cors
            .len(),
        2
    );
    for (value, why) in [
        (
            "foo.com",
            "URL scheme must be http, https, unix, or unixs: foo.com",
        ),
        (
            "http://foo.com/x",
            "URL address does not have the form \"host:port\": http://foo.com/x",
        ),
        (
            "http://foo.com:80/x",
            "URL must not contain a path: http://foo.com:80/x",
        ),
        (
            "ftp://a:1",
            "URL scheme must be http, https, unix, or unixs: ftp://a:1",
        ),
    ] {
        let e = load_one("cors", value).unwrap_err().to_string();
        assert_eq!(e, format!("invalid value {value:?} for flag -cors: {why}"));
    }
}

#[test]
fn every_etcd_flag_is_implemented_refused_or_said_to_have_no_effect() {
    for name in ETCD_FLAGS {
        let implemented = FLAGS.iter().find(|f| f.0 == *name);
        let other = OTHER_FLAGS.iter().find(|f| f.0 == *name);
        assert_eq!(
            usize::from(implemented.is_some()) + usize::from(other.is_some()),
            1,
            "--{name} must be in exactly one of FLAGS, OTHER_FLAGS"
        );
        if let Some((_, _, default)) = implemented {
            // etcd's default is accepted (a few need a companion flag; their message names them).
            if let Err(e) = load_one(name, default) {
                let text = e.to_string();
                assert!(
                    !text.contains("not defined") && !text.contains("not supported"),
                    "--{name}={default}: {text}"
                );
            }
        } else if let Some(&(_, kind, default, support)) = other {
            let c = load_one(name, default).unwrap_or_else(|e| panic!("--{name}={default}: {e}"));
            let changed = other_value(kind, default);
            match support {
                Support::NoEffect(_) => {
                    assert!(
                        c.warnings
                            .iter()
                            .any(|w| w.starts_with(&format!("--{name}={default} has no effect in detcd: "))),
                        "--{name}: {:?}",
                        c.warnings
                    );
                    load_one(name, &changed).unwrap_or_else(|e| panic!("--{name}={changed}: {e}"));
                }
                Support::DefaultOnly(_) => {
                    let e = load_one(name, &changed).expect_err(name).to_string();
                    assert!(
                        e.starts_with(&format!("--{name}={changed} is not supported by detcd: ")),
                        "{e}"
                    );
                }
            }
        } else {
            let e = load_one(name, "x").expect_err(name).to_string();
            assert_eq!(e, format!("flag provided but not defined: -{name}"));
        }
    }
    // Nothing outside etcd's list is accepted except detcd's own --config-file spelling.
    for (name, _, _) in FLAGS {
        assert!(ETCD_FLAGS.contains(name), "--{name} is not an etcd flag");
    }
    for (name, _, _, _) in OTHER_FLAGS {
        assert!(ETCD_FLAGS.contains(name), "--{name} is not an etcd flag");
    }
}

#[test]
fn renamed_flags_take_either_spelling_but_not_both() {
    let c = load_one("experimental-watch-progress-notify-interval", "5s").unwrap();
    assert_eq!(
        c.ops.watch_progress_notify_interval,
        std::time::Duration::from_secs(5)
    );
    let c = load_one("watch-progress-notify-interval", "2m").unwrap();
    assert_eq!(
        c.ops.watch_progress_notify_interval,
        std::time::Duration::from_secs(120)
    );
    let args: Vec<String> = ["--memory-mlock", "--experimental-memory-mlock"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let e = Config::load(&args, &[], &|_| Err(String::new()))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot specify both --experimental-memory-mlock and --memory-mlock"),
        "{e}"
    );
}

#[test]
fn feature_gates_are_etcds() {
    let c = load_one("feature-gates", "InitialCorruptCheck=true,LeaseCheckpoint=true").unwrap();
    assert!(c.ops.initial_corrupt_check);
    assert!(
        !load_one("feature-gates", "InitialCorruptCheck=false")
            .unwrap()
            .ops
            .initial_corrupt_check
    );
    let e = load_one("feature-gates", "Bogus=true").unwrap_err().to_string();
    assert_eq!(e, "--feature-gates: unrecognized feature gate: Bogus");
    let e = load_one("feature-gates", "StopGRPCServiceOnDefrag=true")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--feature-gates=StopGRPCServiceOnDefrag=true is not supported by detcd: "),
        "{e}"
    );
    load_one("feature-gates", "StopGRPCServiceOnDefrag=false").unwrap();
    assert!(
        load_one("feature-gates", "CompactHashCheck=true")
            .unwrap()
            .ops
            .compact_hash_check
    );
    let c = load_one("experimental-compact-hash-check-enabled", "true").unwrap();
    assert!(c.ops.compact_hash_check);
    assert_eq!(c.ops.compact_hash_check_time, std::time::Duration::from_secs(60));
    let c = load_one("experimental-compact-hash-check-time", "2s").unwrap();
    assert_eq!(c.ops.compact_hash_check_time, std::time::Duration::from_secs(2));
}

#[test]
fn debug_and_log_flags() {
    assert_eq!(load_one("debug", "true").unwrap().log_level, "debug");
    let c = load_one("log-outputs", "stdout,/tmp/x.log").unwrap();
    assert_eq!(c.ops.log.outputs, vec!["stdout", "/tmp/x.log"]);
    assert!(c.ops.log.json);
    assert!(!load_one("log-format", "console").unwrap().ops.log.json);
    assert!(load_one("log-format", "xml").is_err());
}

/// The flags kubeadm (1.29-1.32) writes into its etcd static pod manifest.
#[test]
fn kubeadms_flag_list_loads() {
    let args: Vec<String> = [
        "--advertise-client-urls=https://10.0.0.5:2379",
        "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
        "--client-cert-auth=true",
        "--data-dir=/var/lib/etcd",
        "--experimental-initial-corrupt-check=true",
        "--experimental-watch-progress-notify-interval=5s",
        "--initial-advertise-peer-urls=https://10.0.0.5:2380",
        "--initial-cluster=cp1=https://10.0.0.5:2380",
        "--key-file=/etc/kubernetes/pki/etcd/server.key",
        "--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.5:2379",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        "--listen-peer-urls=https://10.0.0.5:2380",
        "--name=cp1",
        "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
        "--peer-client-cert-auth=true",
        "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
        "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
        "--snapshot-count=10000",
        "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let c = match Config::load(&args, &[], &|_| Err(String::new())).unwrap() {
        Invocation::Run(c) => *c,
        other => panic!("{other:?}"),
    };
    assert!(c.ops.initial_corrupt_check);
    assert_eq!(
        c.ops.watch_progress_notify_interval,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(c.ops.listen_metrics_urls[0].to_string(), "http://127.0.0.1:2381");
    // etcd 3.6's spelling of the same, as kubeadm writes it for 3.6.
    let mut v36: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with("--experimental"))
        .cloned()
        .collect();
    v36.push("--feature-gates=InitialCorruptCheck=true".into());
    v36.push("--watch-progress-notify-interval=5s".into());
    assert!(Config::load(&v36, &[], &|_| Err(String::new())).is_ok());
}

/// Every flag of the list read from its `ETCD_*` variable means what the flag means:
/// the same configuration (or the same refusal) as the flag with the same value, and
/// not the defaults.
#[test]
fn every_flag_reads_its_etcd_variable() {
    let read = |_: &str| -> Result<String, String> { Ok("name: from-file\n".to_string()) };
    // Flags whose value means something only beside another one.
    let companion = |name: &str| -> Vec<String> {
        match name {
            "auto-compaction-mode" => vec!["--auto-compaction-retention=5".to_string()],
            "discovery-fallback" | "discovery-proxy" => vec!["--discovery=http://127.0.0.1:7/k".to_string()],
            "discovery-token" => vec!["--discovery-endpoints=http://127.0.0.1:7".to_string()],
            n if n.starts_with("discovery-")
                && n != "discovery-srv"
                && n != "discovery-srv-name"
                && n != "discovery-endpoints" =>
            {
                vec![
                    "--discovery-endpoints=http://127.0.0.1:7".to_string(),
                    "--discovery-token=t".to_string(),
                ]
            }
            _ => Vec::new(),
        }
    };
    let mut unchanged = Vec::new();
    for name in ETCD_FLAGS {
        let default = match Config::load(&companion(name), &[], &read) {
            Ok(invocation) => format!("{invocation:?}"),
            Err(e) => e.to_string(),
        };
        let kind = kind_of(name).unwrap_or_else(|| panic!("--{name} has no kind"));
        let etcd_default = FLAGS
            .iter()
            .find(|f| f.0 == *name)
            .map(|f| f.2)
            .or_else(|| OTHER_FLAGS.iter().find(|f| f.0 == *name).map(|f| f.2))
            .expect("a default");
        let value = match kind {
            Kind::Urls => "http://127.0.0.1:7".to_string(),
            _ => other_value(kind, etcd_default),
        };
        let mut args = companion(name);
        args.push(format!("--{name}={value}"));
        let by_flag = Config::load(&args, &[], &read);
        let env = vec![(flag_to_env(name), value.clone())];
        let by_env = Config::load(&companion(name), &env, &read);
        match (by_flag, by_env) {
            (Ok(f), Ok(e)) => {
                let (f, e) = (format!("{f:?}"), format!("{e:?}"));
                assert_eq!(f, e, "--{name}={value} and {}", env[0].0);
                if e == default {
                    unchanged.push(*name);
                }
            }
            (Err(f), Err(e)) => assert_eq!(
                f.to_string()
                    .replace(&format!("for flag -{name}:"), &format!("for {}:", env[0].0)),
                e.to_string(),
                "--{name}={value}"
            ),
            (f, e) => panic!("--{name}={value}: flag {f:?}, variable {e:?}"),
        }
    }
    assert!(
        unchanged.is_empty(),
        "these variables changed nothing: {unchanged:?}"
    );
}

/// etcd 3.4's deprecated `--log-output`, by 3.4's rules.
#[test]
fn the_deprecated_log_output_flag_follows_etcd_3_4() {
    let load = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match Config::load(&args, &[], &|_| Err(String::new()))? {
            Invocation::Run(c) => Ok::<Config, ConfigError>(*c),
            other => panic!("{other:?}"),
        }
    };
    // More outputs than --log-outputs: they replace them, with etcd's notice.
    let c = load(&["--log-output=stdout,/tmp/a.log"]).unwrap();
    assert_eq!(c.ops.log.outputs, vec!["/tmp/a.log", "stdout"]);
    assert!(c
        .warnings
        .contains(&"'--log-output' flag has been deprecated! Please use '--log-outputs'!".to_string()));
    // One output against --log-outputs' default: ignored, with etcd's warning.
    let c = load(&["--log-output=stdout"]).unwrap();
    assert_eq!(c.ops.log.outputs, vec!["default"]);
    assert!(c
        .warnings
        .contains(&"[WARNING] Deprecated '--log-output' flag is set to [\"stdout\"]".to_string()));
    // Fewer than --log-outputs: ignored.
    let c = load(&["--log-output=stdout", "--log-outputs=stderr,/tmp/b.log"]).unwrap();
    assert_eq!(c.ops.log.outputs, vec!["stderr", "/tmp/b.log"]);
    assert_eq!(
        load(&["--log-output=a,b", "--log-outputs=c,d"])
            .unwrap_err()
            .to_string(),
        "both '--log-output' and '--log-outputs' are set; only set '--log-outputs'"
    );
    assert_eq!(
        load(&["--log-output=stdout", "--log-outputs=stdout"]).unwrap_err().to_string(),
        "'--log-output=[\"stdout\"]' and '--log-outputs=[\"stdout\"]' are incompatible; only set --log-outputs"
    );
}
