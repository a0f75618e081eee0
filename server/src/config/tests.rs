//! The configuration's unit tests.

use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn no_file(_: &str) -> Result<String, String> {
    Err("no such file".into())
}

fn load(args: &[&str], e: &[(&str, &str)]) -> Result<Config, ConfigError> {
    match Config::load(&s(args), &env(e), &no_file)? {
        Invocation::Run(c) => Ok(*c),
        other => panic!("unexpected {other:?}"),
    }
}

fn load_file(args: &[&str], e: &[(&str, &str)], yaml: &'static str) -> Result<Config, ConfigError> {
    match Config::load(&s(args), &env(e), &|_| Ok(yaml.to_string()))? {
        Invocation::Run(c) => Ok(*c),
        other => panic!("unexpected {other:?}"),
    }
}

fn invalid(args: &[&str]) -> String {
    load(args, &[]).unwrap_err().to_string()
}

#[test]
fn defaults_are_etcds() {
    let c = load(&[], &[]).unwrap();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, "default.detcd");
    assert_eq!(c.listen_client_urls[0].to_string(), "http://localhost:2379");
    assert_eq!(c.advertise_client_urls[0].to_string(), "http://localhost:2379");
    assert_eq!(c.listen_peer_urls[0].to_string(), "http://localhost:2380");
    assert_eq!(c.initial_cluster_string(), "default=http://localhost:2380");
    assert_eq!(c.initial_cluster_state, ClusterState::New);
    assert_eq!(c.initial_cluster_token, "etcd-cluster");
    assert_eq!(
        (c.snapshot_count, c.heartbeat_interval_ms, c.election_timeout_ms),
        (10000, 100, 1000)
    );
    assert_eq!((c.max_txn_ops, c.max_request_bytes), (128, 1_572_864));
    assert_eq!((c.max_snapshots, c.max_wals, c.quota_backend_bytes), (5, 5, 0));
    assert_eq!(c.auto_compaction, AutoCompaction::Off);
    assert_eq!(c.log_level, "info");
    // The well-known IDs of a default etcd.
    assert_eq!(format!("{:x}", c.member_id()), "8e9e05c52164694d");
    assert_eq!(format!("{:x}", c.cluster_id()), "cdf818194e3a8c32");
}

#[test]
fn https_peer_urls_are_refused_without_peer_tls() {
    assert_eq!(
        invalid(&[
            "--listen-peer-urls",
            "https://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "https://127.0.0.1:2380",
            "--initial-cluster",
            "default=https://127.0.0.1:2380",
        ]),
        "cannot listen on TLS for 127.0.0.1:2380: KeyFile and CertFile are not presented"
    );
}

#[test]
fn auth_flags_take_etcds_defaults_and_refuse_what_is_not_served() {
    let c = load(&[], &[]).unwrap();
    assert_eq!((c.auth_token_ttl_s, c.bcrypt_cost), (300, 10));
    let c = load(&["--auth-token-ttl", "5", "--bcrypt-cost", "4"], &[]).unwrap();
    assert_eq!((c.auth_token_ttl_s, c.bcrypt_cost), (5, 4));
    // An out-of-range cost falls back to the default, as in etcd.
    assert_eq!(load(&["--bcrypt-cost", "99"], &[]).unwrap().bcrypt_cost, 10);
    assert!(invalid(&["--auth-token", "jwt,pub-key=a"]).contains("jwt needs sign-method"));
    assert!(invalid(&["--auth-token", "magic"]).contains("unknown token type \"magic\""));
    assert!(invalid(&["--auth-token", "simple,ttl=5m"]).contains("take no options"));
    assert!(invalid(&["--auth-token", "jwt,sign-method=RS256,colour=red"]).contains("unknown jwt option"));
    assert!(invalid(&["--auth-token", "jwt,ttl"]).ends_with("auth: invalid auth options"));
    let c = load(
        &[
            "--auth-token",
            "jwt,pub-key=p,priv-key=k,sign-method=RS256,ttl=10m",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        c.auth_token,
        AuthToken::Jwt {
            sign_method: "RS256".to_string(),
            pub_key: Some("p".to_string()),
            priv_key: Some("k".to_string()),
            ttl_ms: 600_000
        }
    );
    assert!(invalid(&["--auth-token-ttl", "0"]).contains("must be positive"));
}

#[test]
fn data_dir_follows_name() {
    let c = load(
        &["--name", "n1", "--initial-cluster", "n1=http://localhost:2380"],
        &[],
    )
    .unwrap();
    assert_eq!(c.data_dir, "n1.detcd");
    let c = load(
        &[
            "-name=n1",
            "-initial-cluster=n1=http://localhost:2380",
            "--data-dir",
            "/x",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(c.data_dir, "/x");
}

/// Pinned from etcd 3.4.23 started with these flags (`etcdctl member list -w json`).
#[test]
fn ids_match_a_real_etcd_single_member() {
    let c = load(
        &[
            "--name=n1",
            "--initial-advertise-peer-urls=http://127.0.0.1:23800",
            "--listen-peer-urls=http://127.0.0.1:23800",
            "--initial-cluster=n1=http://127.0.0.1:23800",
            "--initial-cluster-token=tok-1",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(c.member_id(), 10908436505915459540);
    assert_eq!(format!("{:x}", c.member_id()), "97628d34edfe87d4");
    assert_eq!(c.cluster_id(), 14194993031503503814);
}

/// Pinned from etcd 3.4.23's log ("added member ... to cluster ...") for a three-member
/// initial cluster in which one member has two peer URLs.
#[test]
fn ids_match_a_real_etcd_three_members() {
    let c = load(
        &[
            "--name=a",
            "--initial-advertise-peer-urls=http://127.0.0.1:24800",
            "--initial-cluster=a=http://127.0.0.1:24800,b=http://127.0.0.1:24801,c=http://127.0.0.1:24802,c=http://127.0.0.1:24812",
            "--initial-cluster-token=detcd-test",
        ],
        &[],
    )
    .unwrap();
    let ids = c.initial_member_ids();
    assert_eq!(format!("{:x}", ids["a"]), "18c275acbd0c503f");
    assert_eq!(format!("{:x}", ids["b"]), "1a446e87f51ffc9f");
    assert_eq!(format!("{:x}", ids["c"]), "6ed454fd2278c57d");
    assert_eq!(format!("{:x}", c.cluster_id()), "c2de62bc5369768f");
}

#[test]
fn env_fills_flags_and_conflicts_are_errors() {
    let c = load(&[], &[("ETCD_SNAPSHOT_COUNT", "42"), ("ETCD_MAX_TXN_OPS", "7")]).unwrap();
    assert_eq!((c.snapshot_count, c.max_txn_ops), (42, 7));
    let c = load(&["--snapshot-count=5"], &[("ETCD_MAX_WALS", "9")]).unwrap();
    assert_eq!((c.snapshot_count, c.max_wals), (5, 9));
    let e = load(
        &["--name", "z", "--initial-cluster=z=http://localhost:2380"],
        &[("ETCD_NAME", "z")],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
    );
    let e = load(&[], &[("ETCD_SNAPSHOT_COUNT", "abc")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value \"abc\" for ETCD_SNAPSHOT_COUNT: parse error"
    );
    let c = load(&[], &[("ETCD_BOGUS", "1")]).unwrap();
    assert_eq!(c.warnings, vec!["unrecognized environment variable ETCD_BOGUS=1"]);
}

#[test]
fn config_file_overrides_and_ignores_flags_and_env() {
    let yaml = "# etcd.conf.yml\nname: 'f1'\ndata-dir: /var/lib/f1 # comment\nsnapshot-count: 77\ninitial-cluster: f1=http://localhost:2380\ninitial-cluster-state: \"existing\"\n";
    let c = load_file(
        &["--config-file=/etc/x.yml", "--snapshot-count=5"],
        &[("ETCD_MAX_WALS", "9")],
        yaml,
    )
    .unwrap();
    assert_eq!((c.name.as_str(), c.data_dir.as_str()), ("f1", "/var/lib/f1"));
    assert_eq!((c.snapshot_count, c.max_wals), (77, 5));
    assert_eq!(c.initial_cluster_state, ClusterState::Existing);
    assert_eq!(c.config_file.as_deref(), Some("/etc/x.yml"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // An unknown key is refused by name.
    let e = load_file(&["--config-file=/c.yml"], &[], "name: a\nbogus-key: 1\n").unwrap_err();
    assert!(e.to_string().contains("unknown key \"bogus-key\""), "{e}");
    // ETCD_CONFIG_FILE names the file when the flag is absent.
    let c = load_file(&[], &[("ETCD_CONFIG_FILE", "/etc/y.yml")], yaml).unwrap();
    assert_eq!(c.name, "f1");
    // Values in the file are validated like flags, and the file's errors name the line.
    let e = load_file(&["--config-file=/c.yml"], &[], "max-wals: many\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/c.yml:1: invalid value \"many\" for max-wals: parse error"
    );
    let e = load_file(&["--config-file=/c.yml"], &[], "name: a\nlogging:\n  level: x\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("config file line 2: \"logging\": nested values are supported only under"),
        "{e}"
    );
    // etcd's transport-security sections set the TLS flags.
    let c = load_file(
        &["--config-file=/c.yml"],
        &[],
        "client-transport-security:\n  cert-file: /c.crt\n  key-file: /c.key\n  client-cert-auth: true\n\
         peer-transport-security:\n  trusted-ca-file: /ca.crt\n  allowed-cn: member\n",
    )
    .unwrap();
    assert_eq!(
        (c.client_tls.cert_file.as_str(), c.client_tls.key_file.as_str()),
        ("/c.crt", "/c.key")
    );
    assert!(c.client_tls.client_cert_auth);
    assert_eq!(c.peer_tls.trusted_ca_file, "/ca.crt");
    assert_eq!(c.peer_tls.allowed_cn, "member");
    // And so do the ETCD_* variables.
    let c = load(
        &[],
        &[
            ("ETCD_CERT_FILE", "/e.crt"),
            ("ETCD_PEER_CLIENT_CERT_AUTH", "true"),
        ],
    )
    .unwrap();
    assert_eq!(c.client_tls.cert_file, "/e.crt");
    assert!(c.peer_tls.client_cert_auth);
    let e = load(&["--config-file=/missing.yml"], &[]).unwrap_err();
    assert_eq!(
        e,
        ConfigError::File("cannot read config file \"/missing.yml\": no such file".into())
    );
}

#[test]
fn flag_errors_use_go_flag_wording() {
    assert_eq!(invalid(&["--bogus"]), "flag provided but not defined: -bogus");
    // etcd: "error verifying flags, 'extra' is not a valid flag. See 'etcd --help'.", exit 1.
    assert_eq!(invalid(&["extra"]), "'extra' is not a valid flag");
    assert!(matches!(
        Config::load(&s(&["extra"]), &[], &|_| Err(String::new())),
        Err(ConfigError::Invalid(_))
    ));
    assert_eq!(
        invalid(&["--initial-cluster-state", "foo"]),
        "invalid value \"foo\" for flag -initial-cluster-state: valid values are new, existing"
    );
    assert_eq!(
        invalid(&["--listen-peer-urls", "foo://x"]),
        "invalid value \"foo://x\" for flag -listen-peer-urls: URL scheme must be http, https, unix, or unixs: foo://x"
    );
    assert_eq!(
        invalid(&["--snapshot-count", "abc"]),
        "invalid value \"abc\" for flag -snapshot-count: parse error"
    );
    assert_eq!(invalid(&["--name"]), "flag needs an argument: -name");
    assert!(matches!(load(&["--bogus"], &[]), Err(ConfigError::Flag(_))));
    assert_eq!(
        Config::load(&s(&["--version"]), &[], &no_file),
        Ok(Invocation::Version)
    );
    assert_eq!(Config::load(&s(&["-h"]), &[], &no_file), Ok(Invocation::Help));
}

#[test]
fn validation_messages_are_etcds() {
    assert_eq!(
        invalid(&["--heartbeat-interval", "300"]),
        "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"
    );
    assert_eq!(
        invalid(&["--heartbeat-interval", "0"]),
        "--heartbeat-interval must be >0 (set to 0ms)"
    );
    assert_eq!(
        invalid(&["--election-timeout", "0"]),
        "--election-timeout must be >0 (set to 0ms)"
    );
    assert_eq!(
        invalid(&["--election-timeout", "60000", "--heartbeat-interval", "10000"]),
        "--election-timeout[60000ms] is too long, and should be set less than 50000ms"
    );
    assert_eq!(
        invalid(&["--listen-client-urls", "http://127.0.0.1:2379"]),
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    );
    assert_eq!(
        invalid(&["--name", "x", "--initial-cluster", "y=http://localhost:2380"]),
        "couldn't find local name \"x\" in the initial cluster configuration"
    );
    assert_eq!(
        invalid(&["--initial-advertise-peer-urls", "http://127.0.0.1:9999"]),
        "--initial-cluster has default=http://localhost:2380 but missing from --initial-advertise-peer-urls=http://127.0.0.1:9999 (resolved urls: \"http://127.0.0.1:9999\" != \"http://localhost:2380\")"
    );
    assert_eq!(
        invalid(&[
            "--initial-advertise-peer-urls",
            "http://localhost:2380,http://127.0.0.1:9",
        ]),
        "--initial-advertise-peer-urls has http://127.0.0.1:9 but missing from --initial-cluster=default=http://localhost:2380"
    );
    assert!(invalid(&[
        "--initial-cluster",
        "default=http://localhost:2380,b=http://localhost:2380"
    ])
    .contains("has duplicate url http://localhost:2380"));
    assert_eq!(
        invalid(&["--initial-cluster", "default"]),
        "--initial-cluster: \"default\" is not of the form name=url"
    );
    assert_eq!(
        invalid(&["--initial-cluster", "default=localhost:2380"]),
        "--initial-cluster: URL scheme must be http, https, unix, or unixs: localhost:2380"
    );
    assert_eq!(invalid(&["--max-txn-ops", "0"]), "--max-txn-ops must be >0");
    assert!(invalid(&[
        "--auto-compaction-mode",
        "revision",
        "--auto-compaction-retention",
        "1h"
    ])
    .starts_with("invalid auto-compaction-retention \"1h\""));
}

#[test]
fn auto_compaction_retention_rules() {
    let c = load(&["--auto-compaction-retention", "2"], &[]).unwrap();
    assert_eq!(
        c.auto_compaction,
        AutoCompaction::Periodic {
            retention_ms: 7_200_000
        }
    );
    let c = load(&["--auto-compaction-retention", "30m"], &[]).unwrap();
    assert_eq!(
        c.auto_compaction,
        AutoCompaction::Periodic {
            retention_ms: 1_800_000
        }
    );
    let c = load(
        &[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=1000",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        c.auto_compaction,
        AutoCompaction::Revision { retention_revs: 1000 }
    );
}

/// The sample shipped in server/etc, laid out like etcd's etcd.conf.yml.sample (nested
/// sections, lists, quoted and empty values), loads.
#[test]
fn the_sample_config_file_loads() {
    let sample = include_str!("../../etc/detcd.conf.yml.sample");
    let c = load_file(&["--config-file=/etc/detcd.conf.yml"], &[], sample).unwrap();
    assert_eq!(
        (c.name.as_str(), c.data_dir.as_str()),
        ("node-a", "/var/lib/detcd")
    );
    assert_eq!(c.ops.listen_metrics_urls[0].to_string(), "http://localhost:2381");
    assert_eq!(c.ops.log.outputs, vec!["stderr"]);
    assert!(c.ops.initial_corrupt_check);
    assert_eq!(
        c.auto_compaction,
        AutoCompaction::Periodic {
            retention_ms: 3_600_000
        }
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.proxy.mode, crate::config::ProxyMode::Off);
    // `proxy: 'readonly'` runs etcd 3.4's v2 proxy, its timings read in milliseconds.
    let readonly = sample
        .replace("proxy: 'off'", "proxy: 'readonly'")
        .replace("proxy-failure-wait: 5000", "proxy-failure-wait: 250");
    let c = load_file(
        &["--config-file=/c.yml"],
        &[],
        Box::leak(readonly.into_boxed_str()),
    )
    .unwrap();
    assert_eq!(c.proxy.mode, crate::config::ProxyMode::Readonly);
    assert_eq!(c.proxy.failure_wait, std::time::Duration::from_millis(250));
}

/// A file with the shape and values of etcd 3.4's own `etcd.conf.yml.sample` (written
/// here, not copied): keys left empty (etcd keeps their defaults: `initial-cluster:`
/// is the default one-member cluster), quoted scalars, `enable-v2: true`,
/// `enable-pprof: true`, `discovery-fallback: 'proxy'` without a discovery URL, the v2
/// proxy keys at their defaults, both transport sections with empty paths, a list, and a
/// quoted retention. It loads as etcd 3.4.23 loads it; an unknown key, top-level or in a
/// section, is refused by name.
#[test]
fn a_file_shaped_like_etcds_sample_loads() {
    const FILE: &str = "\
# member
name: 'default'
data-dir:
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
listen-peer-urls: http://localhost:2380
listen-client-urls: http://localhost:2379
max-snapshots: 5
max-wals: 5
cors:
initial-advertise-peer-urls: http://localhost:2380
advertise-client-urls: http://localhost:2379
discovery:
discovery-fallback: 'proxy'
discovery-proxy:
discovery-srv:
initial-cluster:
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: true
enable-pprof: true
proxy: 'off'
proxy-failure-wait: 5000
proxy-refresh-interval: 30000
proxy-dial-timeout: 1000
proxy-write-timeout: 5000
proxy-read-timeout: 0
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
debug: false
logger: zap
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: \"1\"
";
    let c = load_file(&["--config-file=/etc/etcd/etcd.conf.yml"], &[], FILE).unwrap();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, "default.detcd");
    assert_eq!(c.initial_cluster_string(), "default=http://localhost:2380");
    assert!(c.enable_v2);
    assert!(!c.strict_reconfig_check);
    assert_eq!(c.cors, vec!["*".to_string()]);
    assert_eq!(c.ops.log.outputs, vec!["stderr"]);
    assert_eq!(
        c.auto_compaction,
        AutoCompaction::Periodic {
            retention_ms: 3_600_000
        }
    );
    assert_eq!(
        c.warnings,
        vec!["--enable-pprof=true has no effect in detcd: detcd is not a Go program; it has no pprof endpoints".to_string()]
    );
    // Unknown keys are refused by name, with their line.
    let e = load_file(
        &["--config-file=/c.yml"],
        &[],
        Box::leak(FILE.replace("wal-dir:\n", "wal-dri:\n").into_boxed_str()),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "/c.yml:4: unknown key \"wal-dri\" (not an etcd configuration key detcd knows)"
    );
    let e = load_file(
        &["--config-file=/c.yml"],
        &[],
        Box::leak(
            FILE.replace(
                "  auto-tls: false\ndebug",
                "  auto-tls: false\n  cert-fiel:\ndebug",
            )
            .into_boxed_str(),
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("unknown key \"peer-transport-security.cert-fiel\""),
        "{e}"
    );
}

/// etcd 3.5's keys that are not spelled as their flags: `experimental-snapshot-catch-up-entries`
/// (its JSON tag) and the `socket-options:` section.
#[test]
fn etcd_3_5_file_keys_spelled_otherwise_than_their_flags_are_read() {
    let c = load_file(
        &["--config-file=/c.yml"],
        &[],
        "experimental-snapshot-catch-up-entries: 100\nsocket-options:\n  reuse-port: false\n  reuse-address: false\n",
    )
    .unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("--experimental-snapshot-catchup-entries=100 has no effect in detcd"),
        "{:?}",
        c.warnings
    );
    let e = load_file(
        &["--config-file=/c.yml"],
        &[],
        "socket-options:\n  reuse-port: true\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("--socket-reuse-port=true is not supported by detcd"),
        "{e}"
    );
}
