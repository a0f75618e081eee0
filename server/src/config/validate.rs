//! etcd's checks of a whole configuration (`embed.Config.Validate` and the bootstrap checks).

use std::collections::BTreeMap;

use super::{Config, ConfigError, ELECTION_TIMEOUT_MS_MAX, ELECTION_TO_HEARTBEAT_RATIO_MIN};
use crate::urls::Url;

impl Config {
    /// etcd's `embed.Config.Validate` and bootstrap checks, with etcd's messages.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        if self.bootstrap.discovers() {
            // The initial cluster is learned at start-up; `check_initial_cluster` runs then.
            return Ok(());
        }
        if self.proxy.is_on() {
            // A proxy learns the members from the initial cluster's peers; it is no
            // member itself (etcd checks nothing more for one).
            return Ok(());
        }
        if crate::member::has_data(&crate::member::wal_dir(self)) {
            // As etcd: a member with a WAL restarts from it, and the initial cluster
            // flags (checked only when bootstrapping) are ignored.
            return Ok(());
        }
        self.check_initial_cluster()
    }

    /// etcd's checks of the initial cluster against this member: no URL twice, this
    /// member's name present with exactly its advertised peer URLs.
    pub fn check_initial_cluster(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
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
}
