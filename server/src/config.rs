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

use std::collections::BTreeMap;
use std::fmt;

use sha1::Digest as _;

use crate::tls::suites::TlsCommon;
use crate::tls::TlsInfo;
use crate::urls::{parse_urls, Url};
pub use crate::yaml::parse_yaml;

/// etcd rejects election timeouts above this (`maxElectionMs`).
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;
/// The raft heartbeat must fit this many times into the election timeout.
pub const ELECTION_TO_HEARTBEAT_RATIO_MIN: u64 = 5;

/// What a flag's value is, which decides how it parses and whether it takes a separate
/// argument on the command line (booleans do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Uint,
    Int,
    Bool,
    Urls,
    OneOf(&'static [&'static str]),
}

/// Every flag detcd accepts, with etcd's default.
const FLAGS: &[(&str, Kind, &str)] = &[
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
    ("cors", Kind::Str, ""),
    ("host-whitelist", Kind::Str, ""),
    ("listen-client-http-urls", Kind::Str, ""),
    (
        "log-level",
        Kind::OneOf(&["debug", "info", "warn", "error", "panic", "fatal"]),
        "info",
    ),
    ("config-file", Kind::Str, ""),
];

/// Flags that stop parsing and answer at once.
const INFO_FLAGS: &[&str] = &["help", "h", "version"];

fn kind_of(name: &str) -> Option<Kind> {
    FLAGS.iter().find(|(n, _, _)| *n == name).map(|(_, k, _)| *k)
}

/// `ETCD_` + the flag name upper-cased with `-` turned into `_` (`FlagToEnv`).
pub fn flag_to_env(name: &str) -> String {
    format!("ETCD_{}", name.to_uppercase().replace('-', "_"))
}

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
    /// Member name to its sorted peer URLs.
    pub initial_cluster: BTreeMap<String, Vec<Url>>,
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
    /// `--cors`: origins allowed cross-origin (empty: all).
    pub cors: Vec<String>,
    /// `--host-whitelist`: hosts plain-HTTP requests may name (empty: all).
    pub host_whitelist: Vec<String>,
    /// `--listen-client-http-urls`: HTTP served here alone, gRPC alone on the client URLs.
    pub listen_client_http_urls: Vec<Url>,
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
                match kind_of(&key) {
                    Some(kind) => {
                        check_value(kind, &value).map_err(|e| {
                            ConfigError::File(format!(
                                "{path}:{line}: invalid value {value:?} for {key}: {e}"
                            ))
                        })?;
                        values.insert(key, value);
                    }
                    None => warnings.push(format!("{path}:{line}: ignoring unknown key {key:?}")),
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
        Ok(Self {
            initial_cluster: parse_initial_cluster(&get("initial-cluster"))?,
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
            log_level: get("log-level"),
            enable_grpc_gateway: parse_bool(&get("enable-grpc-gateway")).unwrap_or(true),
            cors: crate::http_access::parse_list(&get("cors")),
            host_whitelist: crate::http_access::parse_list(&get("host-whitelist")),
            listen_client_http_urls: match get("listen-client-http-urls") {
                v if v.is_empty() => Vec::new(),
                v => parse_urls(&v)
                    .map_err(|e| ConfigError::Invalid(format!("--listen-client-http-urls: {e}")))?,
            },
            name,
            config_file: None,
            warnings: Vec::new(),
        })
    }

    /// etcd's `embed.Config.Validate` and bootstrap checks, with etcd's messages.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.heartbeat_interval_ms == 0 {
            return invalid("--heartbeat-interval must be >0 (set to 0ms)".to_string());
        }
        if self.election_timeout_ms == 0 {
            return invalid("--election-timeout must be >0 (set to 0ms)".to_string());
        }
        if ELECTION_TO_HEARTBEAT_RATIO_MIN * self.heartbeat_interval_ms > self.election_timeout_ms {
            return invalid(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout_ms, self.heartbeat_interval_ms
            ));
        }
        if self.election_timeout_ms > ELECTION_TIMEOUT_MS_MAX {
            return invalid(format!(
                "--election-timeout[{}ms] is too long, and should be set less than {}ms",
                self.election_timeout_ms, ELECTION_TIMEOUT_MS_MAX
            ));
        }
        if self.max_txn_ops == 0 {
            return invalid("--max-txn-ops must be >0".to_string());
        }
        if self.max_request_bytes == 0 {
            return invalid("--max-request-bytes must be >0".to_string());
        }
        self.client_tls.common.validate().map_err(ConfigError::Invalid)?;
        // An https peer URL is never served as plain TCP.
        if let Some(url) = self.listen_peer_urls.iter().find(|u| {
            (u.scheme == "https" || u.scheme == "unixs") && self.peer_tls.is_empty() && !self.peer_auto_tls
        }) {
            return invalid(format!(
                "cannot listen on TLS for {}: KeyFile and CertFile are not presented",
                url.host
            ));
        }
        let mut seen = BTreeMap::new();
        for (name, urls) in &self.initial_cluster {
            for u in urls {
                if let Some(other) = seen.insert(u.to_string(), name) {
                    return invalid(format!(
                        "initial cluster {} has duplicate url {u} (members {other:?} and {name:?})",
                        self.initial_cluster_string()
                    ));
                }
            }
        }
        let Some(mine) = self.initial_cluster.get(&self.name) else {
            return invalid(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            ));
        };
        let advertised: Vec<String> = self
            .initial_advertise_peer_urls
            .iter()
            .map(Url::to_string)
            .collect();
        let listed: Vec<String> = mine.iter().map(Url::to_string).collect();
        if advertised != listed {
            let missing: Vec<String> = listed
                .iter()
                .filter(|u| !advertised.contains(u))
                .map(|u| format!("{}={u}", self.name))
                .collect();
            if !missing.is_empty() {
                return invalid(format!(
                    "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} (resolved urls: {:?} != {:?})",
                    missing.join(","),
                    advertised.join(","),
                    advertised.join(","),
                    listed.join(",")
                ));
            }
            let extra: Vec<String> = advertised
                .iter()
                .filter(|u| !listed.contains(u))
                .cloned()
                .collect();
            return invalid(format!(
                "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}={}",
                extra.join(","),
                self.name,
                listed.join(",")
            ));
        }
        Ok(())
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

    /// This member's ID as etcd computes it at bootstrap.
    pub fn member_id(&self) -> u64 {
        member_id(&self.initial_advertise_peer_urls, &self.initial_cluster_token)
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

/// etcd's `computeMemberID` for a bootstrapping member: the first 8 bytes (big-endian) of
/// SHA-1 over the sorted peer URLs concatenated, followed by the cluster token.
pub fn member_id(peer_urls: &[Url], token: &str) -> u64 {
    let mut urls: Vec<String> = peer_urls.iter().map(Url::to_string).collect();
    urls.sort();
    let mut bytes = urls.concat().into_bytes();
    bytes.extend_from_slice(token.as_bytes());
    first_u64(&sha1::Sha1::digest(&bytes).into())
}

/// etcd's `RaftCluster.genID`: SHA-1 over the sorted member IDs as big-endian u64s.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    first_u64(&sha1::Sha1::digest(&bytes).into())
}

fn first_u64(digest: &[u8; 20]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// `name=url,name=url,...` into name -> sorted URLs (etcd's `types.NewURLsMap`).
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<String, Vec<Url>>, ConfigError> {
    let mut map: BTreeMap<String, Vec<Url>> = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (name, url) = pair.split_once('=').ok_or_else(|| {
            ConfigError::Invalid(format!("--initial-cluster: {pair:?} is not of the form name=url"))
        })?;
        let url = crate::urls::parse_url(url)
            .map_err(|e| ConfigError::Invalid(format!("--initial-cluster: {e}")))?;
        map.entry(name.to_string()).or_default().push(url);
    }
    for urls in map.values_mut() {
        urls.sort_by_key(|u| u.to_string());
    }
    Ok(map)
}

/// bcrypt's cost bounds and etcd's default (`bcrypt.MinCost`, `MaxCost`, `DefaultCost`).
pub const BCRYPT_COST_MIN: u32 = 4;
pub const BCRYPT_COST_MAX: u32 = 31;
pub const BCRYPT_COST_DEFAULT: u32 = 10;

/// `--auth-token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthToken {
    Simple,
    /// `jwt,pub-key=..,priv-key=..,sign-method=..,ttl=..` (keys are file paths).
    Jwt {
        sign_method: String,
        pub_key: Option<String>,
        priv_key: Option<String>,
        ttl_ms: u64,
    },
}

/// `--auth-token`: etcd's `type[,option=value...]` (`decomposeOpts`): each
/// option once, `key=value`; a simple token takes none. Errors end in etcd's
/// `auth: invalid auth options`.
fn parse_auth_token(spec: &str) -> Result<AuthToken, ConfigError> {
    let invalid = |m: String| {
        Err(ConfigError::Invalid(format!(
            "--auth-token: {m}: auth: invalid auth options"
        )))
    };
    let mut parts = spec.split(',');
    let kind = parts.next().unwrap_or_default();
    let mut options: BTreeMap<&str, &str> = BTreeMap::new();
    for part in parts {
        let Some((k, v)) = part.split_once('=') else {
            return invalid(format!("option {part:?} is not key=value"));
        };
        if options.insert(k, v).is_some() {
            return invalid(format!("option {k:?} given twice"));
        }
    }
    match kind {
        "simple" if options.is_empty() => Ok(AuthToken::Simple),
        "simple" => invalid("simple tokens take no options".to_string()),
        "jwt" => {
            if let Some(k) = options
                .keys()
                .find(|k| !["pub-key", "priv-key", "sign-method", "ttl"].contains(k))
            {
                return invalid(format!("unknown jwt option {k:?}"));
            }
            let Some(sign_method) = options.get("sign-method") else {
                return invalid("jwt needs sign-method".to_string());
            };
            let ttl_ms = match options.get("ttl") {
                None => 5 * 60 * 1000,
                Some(v) => match crate::ctl::parse_go_duration(v) {
                    Some(d) if !d.is_zero() => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                    _ => return invalid(format!("bad jwt ttl {v:?}")),
                },
            };
            Ok(AuthToken::Jwt {
                sign_method: sign_method.to_string(),
                pub_key: options.get("pub-key").map(|s| s.to_string()),
                priv_key: options.get("priv-key").map(|s| s.to_string()),
                ttl_ms,
            })
        }
        other => invalid(format!("unknown token type {other:?}")),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    crate::ctl::args::parse_go_bool(v)
}

/// A periodic retention: a Go duration, or a bare number of hours (etcd's rule).
fn parse_retention_ms(v: &str) -> Option<u64> {
    if let Ok(hours) = v.parse::<u64>() {
        return hours.checked_mul(3_600_000);
    }
    crate::ctl::parse_go_duration(v).map(|d| d.as_millis() as u64)
}

/// Checks one raw value against its flag's kind, with Go's `flag` package wording.
fn check_value(kind: Kind, v: &str) -> Result<(), String> {
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
        Kind::OneOf(valid) => {
            if valid.contains(&v) {
                Ok(())
            } else {
                Err(format!("valid values are {}", valid.join(", ")))
            }
        }
    }
}

enum Parsed {
    Flags(BTreeMap<String, String>),
    Info(Invocation),
}

/// Go's `flag` package rules: `-name`, `--name`, `-name=value`, `-name value`; boolean flags
/// take a value only with `=`; the first non-flag argument is an error for etcd.
fn parse_flags(args: &[String]) -> Result<Parsed, ConfigError> {
    let mut flags = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if let Some(next) = args.get(i) {
                return Err(ConfigError::Flag(format!("{next:?} is not a valid flag")));
            }
            break;
        }
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|b| !b.is_empty())
        else {
            return Err(ConfigError::Flag(format!("{arg:?} is not a valid flag")));
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

#[cfg(test)]
mod tests {
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
        let yaml = "# etcd.conf.yml\nname: 'f1'\ndata-dir: /var/lib/f1 # comment\nsnapshot-count: 77\ninitial-cluster: f1=http://localhost:2380\ninitial-cluster-state: \"existing\"\nbogus-key: 1\n";
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
        assert_eq!(
            c.warnings,
            vec!["/etc/x.yml:7: ignoring unknown key \"bogus-key\""]
        );
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
                .starts_with("config file line 3: nested values are supported only under"),
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
        assert_eq!(invalid(&["extra"]), "\"extra\" is not a valid flag");
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
}
