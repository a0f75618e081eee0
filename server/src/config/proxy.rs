//! etcd 3.4's v2 HTTP proxy flags (`--proxy`, `--proxy-*`) and `--discovery-fallback`:
//! what a member does when it runs as a proxy instead (see `crate::httpproxy`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::ConfigError;

/// `--proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Off,
    On,
    /// Only GET requests are forwarded; others are answered 501.
    Readonly,
}

/// `--proxy` with its timings (etcd's flags are milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    pub mode: ProxyMode,
    /// `--proxy-failure-wait`: how long an endpoint that failed is left out.
    pub failure_wait: Duration,
    /// `--proxy-refresh-interval`: how often the cluster's client URLs are asked again.
    pub refresh_interval: Duration,
    /// `--proxy-dial-timeout` (0: none).
    pub dial_timeout: Duration,
    /// `--proxy-write-timeout` (0: none): each write to an endpoint.
    pub write_timeout: Duration,
    /// `--proxy-read-timeout` (0: none): each read from an endpoint.
    pub read_timeout: Duration,
}

impl ProxySettings {
    pub(super) fn from_values(get: &dyn Fn(&str) -> String) -> Result<Self, ConfigError> {
        let ms = |name: &str| {
            get(name)
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| ConfigError::Invalid(format!("bad --{name}")))
        };
        Ok(ProxySettings {
            mode: match get("proxy").as_str() {
                "on" => ProxyMode::On,
                "readonly" => ProxyMode::Readonly,
                _ => ProxyMode::Off,
            },
            failure_wait: ms("proxy-failure-wait")?,
            refresh_interval: ms("proxy-refresh-interval")?,
            dial_timeout: ms("proxy-dial-timeout")?,
            write_timeout: ms("proxy-write-timeout")?,
            read_timeout: ms("proxy-read-timeout")?,
        })
    }

    /// Whether `--proxy` asks for a proxy.
    pub fn is_on(&self) -> bool {
        self.mode != ProxyMode::Off
    }
}

/// `--discovery-fallback`: what a member that a v2 discovery service finds full does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Exit with etcd's "cluster is full" error.
    Exit,
    /// Run etcd 3.4's v2 proxy to the discovered cluster (etcd 3.4's default).
    Proxy,
}

impl Fallback {
    pub(super) fn from_values(values: &BTreeMap<String, String>, get: &dyn Fn(&str) -> String) -> Self {
        // etcd 3.6's v3 discovery has no proxy to fall back to: its default is exit
        // (an explicit `proxy` is refused in bootstrap.rs).
        if values.contains_key("discovery-endpoints") && !values.contains_key("discovery-fallback") {
            return Fallback::Exit;
        }
        match get("discovery-fallback").as_str() {
            "exit" => Fallback::Exit,
            _ => Fallback::Proxy,
        }
    }
}
