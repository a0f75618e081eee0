//! Learning the initial cluster at start-up: DNS SRV records ([`srv`]), a v2 discovery
//! URL ([`v2`]) and etcd 3.6's v3 discovery ([`v3`]). Each fills
//! [`Config::initial_cluster`] (and, for the discovery services, the cluster token etcd
//! derives the IDs from) before the member starts.

pub mod dns;
pub mod http;
pub mod srv;
pub mod v2;
pub mod v3;

use std::time::Duration;

use crate::config::{Bootstrap, Config, ConfigError, Fallback};

/// etcd's retry schedule for an unreachable discovery service: 2^n seconds after the
/// n-th failure in a row, at most 2^8 s (`maxExponentialRetries`), retrying forever.
#[derive(Debug, Default)]
pub struct Backoff {
    retries: u32,
}

impl Backoff {
    /// The longest wait is 2^this seconds.
    pub const EXPONENT_MAX: u32 = 8;

    /// Logs why and waits before the next try.
    pub async fn wait(&mut self, service: &str, step: &str, why: &str) {
        self.retries += 1;
        let wait = Duration::from_secs(1 << self.retries.min(Self::EXPONENT_MAX));
        crate::log(&format!(
            "retry connecting to discovery service {service}: {step} ({why}); backoff {wait:?}"
        ));
        tokio::time::sleep(wait).await;
    }

    /// A try succeeded: the next failure waits 2 s again.
    pub fn reset(&mut self) {
        self.retries = 0;
    }
}

/// How etcd reports a failure to find the initial cluster (embed's StartEtcd).
const SETTING_UP: &str = "error setting up initial cluster: ";

/// What start-up goes on with once the initial cluster is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// Start the member.
    Member,
    /// The v2 discovery service found the cluster full and `--discovery-fallback` is
    /// `proxy`: run etcd 3.4's v2 proxy instead (`crate::httpproxy`).
    Proxy,
}

/// Fills the initial cluster of a configuration whose [`Bootstrap`] discovers it.
/// `has_data`: the member restarts from its data directory, which already holds its
/// cluster (the discovery services are not asked again, as in etcd; SRV records are).
pub async fn resolve_initial_cluster(config: &mut Config, has_data: bool) -> Result<Resolved, String> {
    match config.bootstrap.clone() {
        Bootstrap::V2(v2) if !has_data => join_v2(config, &v2).await,
        _ => resolve(config, has_data).await.map(|()| Resolved::Member),
    }
}

/// Registers with a v2 discovery URL; a full cluster is etcd's error, or the proxy
/// with `--discovery-fallback proxy`.
async fn join_v2(config: &mut Config, v2: &crate::config::V2Discovery) -> Result<Resolved, String> {
    config.initial_cluster_token = v2.url.clone();
    let (own, urls) = self_entry(config);
    match v2::join_cluster(v2, config.member_id_for(&urls), &own).await {
        Ok(cluster) => adopt_discovered(config, &cluster).map(|()| Resolved::Member),
        Err(e)
            if e.error == v2::DiscoveryError::FullCluster && config.discovery_fallback == Fallback::Proxy =>
        {
            crate::log("discovery cluster full, falling back to proxy");
            Ok(Resolved::Proxy)
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn resolve(config: &mut Config, has_data: bool) -> Result<(), String> {
    match config.bootstrap.clone() {
        Bootstrap::Static => Ok(()),
        Bootstrap::Srv(srv) => {
            let dns = dns::Dns::from_env()?;
            let parts = srv::cluster_from_dns(
                &dns,
                &srv.domain,
                &srv.service_name,
                &config.name,
                &config.initial_advertise_peer_urls,
            )
            .await
            .map_err(|e| format!("{SETTING_UP}{e}"))?;
            for p in &parts {
                crate::log(&format!("got bootstrap from DNS for etcd-server: {p}"));
            }
            set_cluster(config, &parts.join(","))?;
            config.peer_tls.server_name =
                srv::peer_server_name(&parts, &srv.domain, &config.peer_tls.trusted_ca_file);
            let Some(listed) = config.initial_cluster.get(&config.name) else {
                return Err(format!(
                    "{SETTING_UP}cannot find local etcd member {:?} in SRV records",
                    config.name
                ));
            };
            // etcd's bootstrap check, on resolved addresses: the records must name
            // every advertised peer URL of this member.
            let mut resolved_listed = std::collections::BTreeSet::new();
            for u in listed {
                resolved_listed.insert(dns.resolve_host_port(&u.host).await?);
            }
            let mut resolved_advertised = std::collections::BTreeSet::new();
            for u in &config.initial_advertise_peer_urls {
                resolved_advertised.insert(dns.resolve_host_port(&u.host).await?);
            }
            if resolved_listed != resolved_advertised {
                let join = |urls: &[crate::urls::Url]| {
                    urls.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
                };
                return Err(format!(
                    "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (resolved urls: {resolved_listed:?} != {resolved_advertised:?})",
                    config.name,
                    join(listed),
                    join(&config.initial_advertise_peer_urls)
                ));
            }
            Ok(())
        }
        Bootstrap::V2(_) | Bootstrap::V3(_) if has_data => {
            // The cluster was learned when the data directory was made; the discovery
            // service is not asked again (etcd does the same).
            let (token, cluster) = read_discovered(config)?;
            config.initial_cluster_token = token;
            set_cluster(config, &cluster)
        }
        Bootstrap::V2(v2) => join_v2(config, &v2).await.map(|_| ()),
        Bootstrap::V3(v3) => {
            config.initial_cluster_token = v3.token.clone();
            let (own, urls) = self_entry(config);
            let cluster = v3::join_cluster(&v3, config.member_id_for(&urls), &own)
                .await
                .map_err(|e| e.to_string())?;
            adopt_discovered(config, &cluster)
        }
    }
}

/// This member's `name=url,...` as it registers itself, and its URLs.
fn self_entry(config: &Config) -> (String, Vec<crate::urls::Url>) {
    let urls = config.initial_advertise_peer_urls.clone();
    let text = urls
        .iter()
        .map(|u| format!("{}={u}", config.name))
        .collect::<Vec<_>>()
        .join(",");
    (text, urls)
}

/// Takes the cluster a discovery service gave, checks this member's place in it, and
/// records it for restarts.
fn adopt_discovered(config: &mut Config, cluster: &str) -> Result<(), String> {
    set_cluster(config, cluster)?;
    config.check_initial_cluster().map_err(|e| e.to_string())?;
    write_discovered(config, cluster)
}

/// Replaces the initial cluster with a discovered `name=url,...` list.
fn set_cluster(config: &mut Config, cluster: &str) -> Result<(), String> {
    config.initial_cluster =
        crate::config::parse_initial_cluster(cluster).map_err(|e: ConfigError| e.to_string())?;
    let mut seen = std::collections::BTreeSet::new();
    for urls in config.initial_cluster.values() {
        for u in urls {
            if !seen.insert(u.to_string()) {
                return Err(format!("discovery cluster {cluster} has duplicate url"));
            }
        }
    }
    Ok(())
}

/// Where a member keeps the cluster a discovery service gave it: detcd's members learn
/// the founding members' peer URLs from the initial cluster on every start.
fn discovered_path(config: &Config) -> std::path::PathBuf {
    std::path::Path::new(&config.data_dir)
        .join("member")
        .join("discovered-cluster")
}

/// Records the discovered cluster (`token` line, then `name=url,...`).
fn write_discovered(config: &Config, cluster: &str) -> Result<(), String> {
    let path = discovered_path(config);
    let fail = |e: std::io::Error| format!("cannot record the discovered cluster in {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(&path, format!("{}\n{cluster}\n", config.initial_cluster_token)).map_err(fail)
}

/// The token and cluster [`write_discovered`] recorded.
fn read_discovered(config: &Config) -> Result<(String, String), String> {
    let path = discovered_path(config);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "the data directory has a WAL but no discovered cluster ({}: {e}); start it with --initial-cluster instead of discovery",
            path.display()
        )
    })?;
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(token), Some(cluster)) => Ok((token.to_string(), cluster.to_string())),
        _ => Err(format!("{} is not a discovered cluster record", path.display())),
    }
}
