//! How a new member learns its initial cluster: `--initial-cluster` (static), DNS SRV
//! records (`--discovery-srv`), a v2 discovery URL (`--discovery`) or etcd 3.6's v3
//! discovery (`--discovery-endpoints`, `--discovery-token`), with etcd's conflict checks
//! (`embed.Config.Validate`, `etcdmain.config.validate` @ v3.6).

use std::collections::BTreeMap;
use std::time::Duration;

use super::flags::{parse_bool, FLAGS};
use super::ConfigError;

/// etcd's `ErrConflictBootstrapFlags`.
pub const CONFLICT_BOOTSTRAP_FLAGS: &str = "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\", \"discovery-endpoints\" or \"discovery-srv\"";

/// Where the initial cluster comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// `--initial-cluster`.
    Static,
    /// `--discovery-srv`.
    Srv(SrvDiscovery),
    /// `--discovery`.
    V2(V2Discovery),
    /// `--discovery-endpoints` with `--discovery-token`.
    V3(V3Discovery),
}

/// `--discovery-srv` and `--discovery-srv-name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvDiscovery {
    /// The domain the SRV records live under.
    pub domain: String,
    /// The optional suffix of the service names (`_etcd-server-ssl-<name>._tcp`).
    pub service_name: String,
}

/// `--discovery`, `--discovery-proxy` (`--discovery-fallback` is `Config::discovery_fallback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Discovery {
    /// The discovery URL (`http://host/v2/keys/<dir>/<token>`).
    pub url: String,
    /// An HTTP proxy for the requests to the discovery service.
    pub proxy: String,
}

/// The client settings of etcd 3.6's v3 discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Discovery {
    pub endpoints: Vec<String>,
    pub token: String,
    pub dial_timeout: Duration,
    pub request_timeout: Duration,
    pub keepalive_time: Duration,
    pub keepalive_timeout: Duration,
    pub insecure_transport: bool,
    pub insecure_skip_tls_verify: bool,
    pub cert: String,
    pub key: String,
    pub cacert: String,
    pub user: String,
    pub password: String,
}

/// The v3 discovery flags besides `--discovery-endpoints` (etcd's list for its "both v2
/// and v3 discovery settings" check).
const V3_SECURITY_FLAGS: &[&str] = &[
    "discovery-token",
    "discovery-cert",
    "discovery-key",
    "discovery-cacert",
    "discovery-user",
    "discovery-password",
];

impl Bootstrap {
    /// Reads the bootstrap flags, refusing the combinations etcd refuses. Returns the
    /// method and whether `--initial-cluster` should keep its default (false when a
    /// discovery method is set and `--initial-cluster` was not given, as etcd clears it).
    pub(super) fn from_values(values: &BTreeMap<String, String>) -> Result<(Bootstrap, bool), ConfigError> {
        let get = |name: &str| -> String {
            values.get(name).cloned().unwrap_or_else(|| {
                FLAGS
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map(|(_, _, d)| d.to_string())
                    .unwrap_or_default()
            })
        };
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        let durl = get("discovery");
        // etcd 3.6's v3 discovery has no v2 proxy to fall back to (etcd 3.6's message);
        // a v2 discovery URL falls back to etcd 3.4's proxy (`crate::httpproxy`).
        if values.contains_key("discovery-endpoints")
            && values.get("discovery-fallback").is_some_and(|f| f == "proxy")
        {
            return invalid("v2 proxy is deprecated, and --discovery-fallback can't be configured as \"proxy\" (detcd's v2 proxy serves v2 discovery URLs only; use --discovery-fallback exit)");
        }
        let srv = get("discovery-srv");
        let srv_name = get("discovery-srv-name");
        let endpoints: Vec<String> = unique_list(&get("discovery-endpoints"));
        let discovering =
            !durl.is_empty() || !srv.is_empty() || !srv_name.is_empty() || !endpoints.is_empty();
        let cluster_given = values.get("initial-cluster").is_some_and(|c| !c.is_empty());
        let keep_initial_cluster = !discovering || cluster_given;
        let set = [
            !durl.is_empty(),
            keep_initial_cluster,
            !srv.is_empty(),
            !endpoints.is_empty(),
        ];
        if set.iter().filter(|s| **s).count() > 1 {
            return invalid(CONFLICT_BOOTSTRAP_FLAGS);
        }
        let v2_flags = !get("discovery-proxy").is_empty();
        let v3_flags = !endpoints.is_empty() || V3_SECURITY_FLAGS.iter().any(|f| !get(f).is_empty());
        if v2_flags && v3_flags {
            return invalid("both v2 discovery settings (discovery, discovery-proxy) and v3 discovery settings (discovery-token, discovery-endpoints, discovery-cert, discovery-key, discovery-cacert, discovery-user, discovery-password) are set");
        }
        let duration = |name: &str| {
            crate::ctl::parse_go_duration(&get(name))
                .ok_or_else(|| ConfigError::Invalid(format!("bad --{name}")))
        };
        let flag = |name: &str| parse_bool(&get(name)).unwrap_or(false);
        let bootstrap = if !durl.is_empty() {
            Bootstrap::V2(V2Discovery {
                url: durl,
                proxy: get("discovery-proxy"),
            })
        } else if !srv.is_empty() {
            Bootstrap::Srv(SrvDiscovery {
                domain: srv,
                service_name: srv_name,
            })
        } else if !endpoints.is_empty() {
            let token = get("discovery-token");
            if token.is_empty() {
                return invalid("token for discovery cannot be empty");
            }
            Bootstrap::V3(V3Discovery {
                endpoints,
                token,
                dial_timeout: duration("discovery-dial-timeout")?,
                request_timeout: duration("discovery-request-timeout")?,
                keepalive_time: duration("discovery-keepalive-time")?,
                keepalive_timeout: duration("discovery-keepalive-timeout")?,
                insecure_transport: flag("discovery-insecure-transport"),
                insecure_skip_tls_verify: flag("discovery-insecure-skip-tls-verify"),
                cert: get("discovery-cert"),
                key: get("discovery-key"),
                cacert: get("discovery-cacert"),
                user: get("discovery-user"),
                password: get("discovery-password"),
            })
        } else if !srv_name.is_empty() {
            return invalid("--discovery-srv-name is set but --discovery-srv is not");
        } else {
            Bootstrap::Static
        };
        Ok((bootstrap, keep_initial_cluster))
    }

    /// Whether the initial cluster is learned at start-up rather than given.
    pub fn discovers(&self) -> bool {
        !matches!(self, Bootstrap::Static)
    }

    /// Whether the method registers with a discovery service (only a member with an
    /// empty data directory does; a restarted one has its cluster in its data).
    pub fn registers(&self) -> bool {
        matches!(self, Bootstrap::V2(_) | Bootstrap::V3(_))
    }
}

/// A comma-separated list with empty and repeated items dropped, in order
/// (`flags.UniqueStringsFromFlag`).
fn unique_list(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    out
}
