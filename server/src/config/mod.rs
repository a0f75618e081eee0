//! detcd's configuration: etcd's server flags with etcd's names, defaults and messages
//! (`server/etcdmain/config.go`, `server/embed/config.go`, `pkg/flags/flag.go` @ v3.6),
//! their `ETCD_*` environment variables, and etcd's flat YAML configuration file.
//!
//! Precedence, as etcd implements it:
//! 1. `--config-file` (or, when that flag is absent, `ETCD_CONFIG_FILE`) names a YAML file;
//!    when one is given, every other flag and every other `ETCD_*` variable is ignored and
//!    the file's keys (the flag names) override the defaults.
//! 2. Otherwise command-line flags win; an `ETCD_<FLAG>` variable fills a flag that was not
//!    given; a variable whose flag *was* given is an error (`conflicting environment
//!    variable ...`); unknown `ETCD_*` variables are reported as warnings.
//! 3. Setting `--listen-client-urls` without `--advertise-client-urls` on the command line
//!    (or through the environment) is an error, because the default advertised URL would
//!    then point at a port nobody listens on.
//!
//! Member and cluster IDs are derived exactly as etcd derives them, so a detcd member joins
//! the same identities an etcd member with the same flags would have.

mod auth;
mod bootstrap;
#[cfg(test)]
mod bootstrap_tests;
mod etcd_flags;
#[cfg(test)]
mod flag_walk_tests;
mod flags;
mod ids;
mod operations;
mod proxy;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use auth::parse_auth_token;
pub use auth::{AuthToken, BCRYPT_COST_DEFAULT, BCRYPT_COST_MAX, BCRYPT_COST_MIN};
pub use bootstrap::{Bootstrap, SrvDiscovery, V2Discovery, V3Discovery, CONFLICT_BOOTSTRAP_FLAGS};
pub use flags::flag_to_env;
use flags::{check_value, kind_of, parse_bool, parse_flags, parse_retention_ms, Kind, Parsed, FLAGS};
pub use ids::{cluster_id, member_id, parse_initial_cluster};
pub use operations::{LogSettings, Operations};
pub use proxy::{Fallback, ProxyMode, ProxySettings};

use crate::tls::suites::TlsCommon;
use crate::tls::TlsInfo;
use crate::urls::{parse_urls, Url};
pub use crate::yaml::parse_yaml;

/// etcd rejects election timeouts above this (`maxElectionMs`).
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;
/// The raft heartbeat must fit this many times into the election timeout.
pub const ELECTION_TO_HEARTBEAT_RATIO_MIN: u64 = 5;

/// A configuration that could not be read or is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The command line itself is wrong (unknown flag, bad value): etcd prints the usage
    /// and exits 2.
    Flag(String),
    /// The YAML file could not be read or parsed.
    File(String),
    /// The values are individually fine but do not make a valid configuration.
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(m) | Self::File(m) | Self::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ConfigError {}

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// `--auto-compaction-mode` with its retention (the schedule is the member's).
pub use detcd_core::node::AutoCompaction;

/// What the command line asked for besides a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Run(Box<Config>),
    Help,
    Version,
}

/// A validated detcd configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub name: String,
    pub data_dir: String,
    pub wal_dir: String,
    pub listen_client_urls: Vec<Url>,
    pub advertise_client_urls: Vec<Url>,
    /// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`,
    /// `--client-crl-file`, `--client-cert-allowed-hostname`.
    pub client_tls: TlsInfo,
    /// `--auto-tls`, `--peer-auto-tls`, `--self-signed-cert-validity` (years).
    pub auto_tls: bool,
    pub peer_auto_tls: bool,
    pub self_signed_cert_validity_years: u64,
    pub listen_peer_urls: Vec<Url>,
    pub initial_advertise_peer_urls: Vec<Url>,
    /// The `--peer-*` TLS flags.
    pub peer_tls: TlsInfo,
    /// `--peer-skip-client-san-verification` (3.6) or its 3.4/3.5 spelling
    /// `--experimental-peer-skip-client-san-verification`.
    pub peer_skip_client_san_verification: bool,
    /// Member name to its sorted peer URLs (empty until discovery fills it when
    /// [`Config::bootstrap`] discovers).
    pub initial_cluster: BTreeMap<String, Vec<Url>>,
    /// Where the initial cluster comes from.
    pub bootstrap: Bootstrap,
    /// `--discovery-fallback`.
    pub discovery_fallback: Fallback,
    /// `--proxy` and its `--proxy-*` timings: etcd 3.4's v2 HTTP proxy.
    pub proxy: ProxySettings,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    pub snapshot_count: u64,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    /// 0 means etcd's default quota (2 GiB).
    pub quota_backend_bytes: i64,
    pub max_txn_ops: u64,
    pub max_request_bytes: u64,
    pub auto_compaction: AutoCompaction,
    pub max_snapshots: u64,
    pub max_wals: u64,
    pub max_learners: u64,
    pub strict_reconfig_check: bool,
    /// `--force-new-cluster`: restart from the data directory as a one-member cluster.
    pub force_new_cluster: bool,
    /// `--auth-token`.
    pub auth_token: AuthToken,
    /// `--auth-token-ttl`: seconds a simple token lives after its last use.
    pub auth_token_ttl_s: u64,
    /// `--bcrypt-cost` (an out-of-range cost falls back to 10, as in etcd).
    pub bcrypt_cost: u32,
    pub log_level: String,
    /// `--enable-grpc-gateway`: the JSON gateway under `/v3/` on the client port.
    pub enable_grpc_gateway: bool,
    /// `--enable-v2`: etcd 3.4's v2 API (`/v2/keys`, `/v2/members`, ...) on the client port.
    pub enable_v2: bool,
    /// `--cors`: origins allowed cross-origin (empty: all).
    pub cors: Vec<String>,
    /// `--host-whitelist`: hosts plain-HTTP requests may name (empty: all).
    pub host_whitelist: Vec<String>,
    /// `--listen-client-http-urls`: HTTP served here alone, gRPC alone on the client URLs.
    pub listen_client_http_urls: Vec<Url>,
    /// Raft and gRPC tuning, metrics, disk, logging, corruption checks, feature gates.
    pub ops: Operations,
    /// The YAML file the values came from, if any.
    pub config_file: Option<String>,
    /// Non-fatal findings (unknown `ETCD_*` variables, unknown YAML keys).
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads the configuration from command-line `args` (without the program name), the
    /// environment `env` and, when a config file is named, `read_file`.
    pub fn load(
        args: &[String],
        env: &[(String, String)],
        read_file: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Invocation, ConfigError> {
        let flags = match parse_flags(args)? {
            Parsed::Info(i) => return Ok(i),
            Parsed::Flags(f) => f,
        };
        let env_value = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let config_file = flags
            .get("config-file")
            .cloned()
            .or_else(|| env_value("ETCD_CONFIG_FILE"))
            .filter(|f| !f.is_empty());
        let mut warnings = Vec::new();
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        let from_file = config_file.is_some();
        if let Some(path) = &config_file {
            let text = read_file(path)
                .map_err(|e| ConfigError::File(format!("cannot read config file {path:?}: {e}")))?;
            for (line, key, value) in parse_yaml(&text)? {
                match (kind_of(&key), value) {
                    // A null (`key:` alone) leaves etcd's default, as etcd reads it; so does
                    // an empty `cors:` (its `CORSJSON != ""`).
                    (Some(_), None) => {}
                    (Some(Kind::UrlsOrStar), Some(value)) if value.is_empty() => {}
                    (Some(kind), Some(value)) => {
                        check_value(kind, &value).map_err(|e| {
                            ConfigError::File(format!(
                                "{path}:{line}: invalid value {value:?} for {key}: {e}"
                            ))
                        })?;
                        values.insert(key, value);
                    }
                    (None, _) => {
                        return Err(ConfigError::File(format!(
                            "{path}:{line}: unknown key {key:?} (not an etcd configuration key detcd knows)"
                        )))
                    }
                }
            }
        } else {
            values = flags.clone();
            for (key, value) in env {
                let Some(rest) = key.strip_prefix("ETCD_") else {
                    continue;
                };
                let name = rest.to_lowercase().replace('_', "-");
                if flags.contains_key(&name) && kind_of(&name).is_some() {
                    return Err(ConfigError::Flag(format!(
                        "conflicting environment variable {key:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
                    )));
                }
                match kind_of(&name) {
                    Some(kind) if !value.is_empty() => {
                        check_value(kind, value).map_err(|e| {
                            ConfigError::Flag(format!("invalid value {value:?} for {key}: {e}"))
                        })?;
                        values.insert(name, value.clone());
                    }
                    Some(_) => {}
                    None if key == "ETCD_CONFIG_FILE" => {}
                    None => warnings.push(format!("unrecognized environment variable {key}={value}")),
                }
            }
            if values.contains_key("listen-client-urls") && !values.contains_key("advertise-client-urls") {
                return Err(ConfigError::Invalid(
                    "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                        .to_string(),
                ));
            }
        }
        warnings.extend(etcd_flags::check_other_flags(values.iter())?);
        warnings.extend(operations::deprecated_log_output(&mut values)?);
        let mut config = Self::from_values(&values)?;
        config.config_file = config_file.filter(|_| from_file);
        config.warnings = warnings;
        config.validate()?;
        Ok(Invocation::Run(Box::new(config)))
    }

    /// Builds a configuration from checked raw values, defaults filling the rest.
    fn from_values(values: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| -> String {
            values.get(name).cloned().unwrap_or_else(|| {
                FLAGS
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map(|(_, _, d)| d.to_string())
                    .unwrap_or_default()
            })
        };
        let uint = |name: &str| {
            get(name)
                .parse::<u64>()
                .map_err(|_| ConfigError::Invalid(format!("bad {name}")))
        };
        let urls =
            |name: &str| parse_urls(&get(name)).map_err(|e| ConfigError::Invalid(format!("--{name}: {e}")));
        let name = get("name");
        let data_dir = match get("data-dir") {
            d if d.is_empty() => format!("{name}.detcd"),
            d => d,
        };
        let retention = get("auto-compaction-retention");
        let auto_compaction = match get("auto-compaction-mode").as_str() {
            "revision" => match retention.parse::<u64>() {
                Ok(0) => AutoCompaction::Off,
                Ok(n) => AutoCompaction::Revision { retention_revs: n },
                Err(_) => {
                    return Err(ConfigError::Invalid(format!("invalid auto-compaction-retention {retention:?} for revision mode (want a revision count)")))
                }
            },
            _ => match parse_retention_ms(&retention) {
                Some(0) => AutoCompaction::Off,
                Some(ms) => AutoCompaction::Periodic { retention_ms: ms },
                None => {
                    return Err(ConfigError::Invalid(format!(
                        "invalid auto-compaction-retention {retention:?} for periodic mode (want a duration such as 1h or 30m, or a number of hours)"
                    )))
                }
            },
        };
        let common = TlsCommon {
            cipher_suites: get("cipher-suites")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            min_version: get("tls-min-version"),
            max_version: get("tls-max-version"),
        };
        let (bootstrap, keep_initial_cluster) = Bootstrap::from_values(values)?;
        Ok(Self {
            initial_cluster: if keep_initial_cluster {
                parse_initial_cluster(&get("initial-cluster"))?
            } else {
                BTreeMap::new()
            },
            bootstrap,
            discovery_fallback: Fallback::from_values(values, &get),
            proxy: ProxySettings::from_values(&get)?,
            data_dir,
            wal_dir: get("wal-dir"),
            listen_client_urls: urls("listen-client-urls")?,
            advertise_client_urls: urls("advertise-client-urls")?,
            client_tls: TlsInfo {
                cert_file: get("cert-file"),
                key_file: get("key-file"),
                trusted_ca_file: get("trusted-ca-file"),
                client_cert_auth: parse_bool(&get("client-cert-auth")).unwrap_or(false),
                crl_file: get("client-crl-file"),
                allowed_cn: String::new(),
                allowed_hostname: get("client-cert-allowed-hostname"),
                self_signed: false,
                server_name: String::new(),
                common: common.clone(),
            },
            auto_tls: parse_bool(&get("auto-tls")).unwrap_or(false),
            peer_auto_tls: parse_bool(&get("peer-auto-tls")).unwrap_or(false),
            self_signed_cert_validity_years: uint("self-signed-cert-validity")?,
            listen_peer_urls: urls("listen-peer-urls")?,
            initial_advertise_peer_urls: urls("initial-advertise-peer-urls")?,
            peer_tls: TlsInfo {
                cert_file: get("peer-cert-file"),
                key_file: get("peer-key-file"),
                trusted_ca_file: get("peer-trusted-ca-file"),
                client_cert_auth: parse_bool(&get("peer-client-cert-auth")).unwrap_or(false),
                crl_file: get("peer-crl-file"),
                allowed_cn: get("peer-cert-allowed-cn"),
                allowed_hostname: get("peer-cert-allowed-hostname"),
                self_signed: false,
                server_name: String::new(),
                common,
            },
            peer_skip_client_san_verification: parse_bool(&get("peer-skip-client-san-verification"))
                .unwrap_or(false)
                || parse_bool(&get("experimental-peer-skip-client-san-verification")).unwrap_or(false),
            initial_cluster_state: if get("initial-cluster-state") == "existing" {
                ClusterState::Existing
            } else {
                ClusterState::New
            },
            initial_cluster_token: get("initial-cluster-token"),
            snapshot_count: uint("snapshot-count")?,
            heartbeat_interval_ms: uint("heartbeat-interval")?,
            election_timeout_ms: uint("election-timeout")?,
            quota_backend_bytes: get("quota-backend-bytes")
                .parse()
                .map_err(|_| ConfigError::Invalid("bad quota-backend-bytes".into()))?,
            max_txn_ops: uint("max-txn-ops")?,
            max_request_bytes: uint("max-request-bytes")?,
            auto_compaction,
            max_snapshots: uint("max-snapshots")?,
            max_wals: uint("max-wals")?,
            max_learners: uint("max-learners")?,
            strict_reconfig_check: parse_bool(&get("strict-reconfig-check")).unwrap_or(true),
            force_new_cluster: parse_bool(&get("force-new-cluster")).unwrap_or(false),
            enable_grpc_gateway: parse_bool(&get("enable-grpc-gateway")).unwrap_or(true),
            enable_v2: parse_bool(&get("enable-v2")).unwrap_or(false),
            cors: crate::http_access::parse_list(&get("cors")),
            host_whitelist: crate::http_access::parse_list(&get("host-whitelist")),
            listen_client_http_urls: match get("listen-client-http-urls") {
                v if v.is_empty() => Vec::new(),
                v => parse_urls(&v)
                    .map_err(|e| ConfigError::Invalid(format!("--listen-client-http-urls: {e}")))?,
            },
            auth_token: parse_auth_token(&get("auth-token"))?,
            auth_token_ttl_s: match uint("auth-token-ttl")? {
                0 => {
                    return Err(ConfigError::Invalid(
                        "--auth-token-ttl must be positive".to_string(),
                    ))
                }
                ttl => ttl,
            },
            bcrypt_cost: u32::try_from(uint("bcrypt-cost")?)
                .ok()
                .filter(|c| (BCRYPT_COST_MIN..=BCRYPT_COST_MAX).contains(c))
                .unwrap_or(BCRYPT_COST_DEFAULT),
            log_level: if parse_bool(&get("debug")).unwrap_or(false) {
                "debug".to_string()
            } else {
                get("log-level")
            },
            ops: Operations::from_values(values)?,
            name,
            config_file: None,
            warnings: Vec::new(),
        })
    }
    /// `--initial-cluster` written back in etcd's `URLsMap.String()` form.
    pub fn initial_cluster_string(&self) -> String {
        let mut pairs: Vec<String> = Vec::new();
        for (name, urls) in &self.initial_cluster {
            for u in urls {
                pairs.push(format!("{name}={u}"));
            }
        }
        pairs.sort();
        pairs.join(",")
    }

    /// This member's ID as etcd computes it at bootstrap: from its URLs in the initial
    /// cluster (the advertised ones for a static cluster; as the SRV records spell them
    /// for DNS discovery).
    pub fn member_id(&self) -> u64 {
        match self.initial_cluster.get(&self.name) {
            Some(urls) => member_id(urls, &self.initial_cluster_token),
            None => member_id(&self.initial_advertise_peer_urls, &self.initial_cluster_token),
        }
    }

    /// The ID a member with `peer_urls` gets in this configuration's cluster.
    pub fn member_id_for(&self, peer_urls: &[Url]) -> u64 {
        member_id(peer_urls, &self.initial_cluster_token)
    }

    /// The IDs of every member of the initial cluster, by name.
    pub fn initial_member_ids(&self) -> BTreeMap<String, u64> {
        self.initial_cluster
            .iter()
            .map(|(name, urls)| (name.clone(), member_id(urls, &self.initial_cluster_token)))
            .collect()
    }

    /// The cluster ID a new cluster bootstrapped from `--initial-cluster` gets.
    pub fn cluster_id(&self) -> u64 {
        cluster_id(&self.initial_member_ids().into_values().collect::<Vec<_>>())
    }

    /// The configuration as `detcd` would start with it, one `name: value` per line.
    pub fn render(&self) -> String {
        let urls = |v: &[Url]| v.iter().map(Url::to_string).collect::<Vec<_>>().join(",");
        let mut s = String::new();
        let mut line = |k: &str, v: String| s.push_str(&format!("{k}: {v}\n"));
        line("name", self.name.clone());
        line("data-dir", self.data_dir.clone());
        line("wal-dir", self.wal_dir.clone());
        line("listen-client-urls", urls(&self.listen_client_urls));
        line("advertise-client-urls", urls(&self.advertise_client_urls));
        line("client-transport-security", tls_line(&self.client_tls));
        line("listen-peer-urls", urls(&self.listen_peer_urls));
        line("peer-transport-security", tls_line(&self.peer_tls));
        line(
            "initial-advertise-peer-urls",
            urls(&self.initial_advertise_peer_urls),
        );
        line("initial-cluster", self.initial_cluster_string());
        line(
            "initial-cluster-state",
            match self.initial_cluster_state {
                ClusterState::New => "new".into(),
                ClusterState::Existing => "existing".into(),
            },
        );
        line("initial-cluster-token", self.initial_cluster_token.clone());
        line("snapshot-count", self.snapshot_count.to_string());
        line("heartbeat-interval", format!("{}", self.heartbeat_interval_ms));
        line("election-timeout", format!("{}", self.election_timeout_ms));
        line("quota-backend-bytes", self.quota_backend_bytes.to_string());
        line("max-txn-ops", self.max_txn_ops.to_string());
        line("max-request-bytes", self.max_request_bytes.to_string());
        line(
            "auto-compaction",
            match self.auto_compaction {
                AutoCompaction::Off => "off".into(),
                AutoCompaction::Periodic { retention_ms } => format!("periodic, retention {retention_ms}ms"),
                AutoCompaction::Revision { retention_revs } => {
                    format!("revision, retention {retention_revs} revisions")
                }
            },
        );
        line("max-snapshots", self.max_snapshots.to_string());
        line("max-wals", self.max_wals.to_string());
        line("max-learners", self.max_learners.to_string());
        line("strict-reconfig-check", self.strict_reconfig_check.to_string());
        line("force-new-cluster", self.force_new_cluster.to_string());
        line("log-level", self.log_level.clone());
        line("member-id", format!("{:x}", self.member_id()));
        line("cluster-id", format!("{:x}", self.cluster_id()));
        s
    }
}

/// One side's TLS settings on one line (`render`).
fn tls_line(info: &TlsInfo) -> String {
    if info.is_empty() {
        return "none".into();
    }
    format!(
        "cert-file {:?}, key-file {:?}, trusted-ca-file {:?}, client-cert-auth {}, crl-file {:?}",
        info.cert_file, info.key_file, info.trusted_ca_file, info.client_cert_auth, info.crl_file
    )
}
