//! DNS SRV discovery (etcd's `client/pkg/srv` and `embed.Config.GetDNSClusterNames`).
//!
//! A bootstrapping member looks up `_etcd-server-ssl[-<name>]._tcp.<domain>` (https) and
//! `_etcd-server[-<name>]._tcp.<domain>` (http). Each record's `target:port` is resolved
//! and compared with this member's resolved advertised peer URLs: a match is this
//! member (named `--name`), any other record is another member, named by its position
//! (`0`, `1`, ...). Peer URLs keep the target as the record spells it, less the trailing
//! dot.
//!
//! Both lookups are combined; discovery fails only when neither found a member. (etcd
//! 3.4.23 drops the http records through an inverted check, and etcd numbers the other
//! members of each lookup from 0, so a cluster with both kinds of record would get two
//! members named `0`; detcd numbers them across both lookups.)

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::dns::{join_host_port, Dns};
use crate::urls::Url;

/// The SRV service name for `service` with its `-ssl` and `-<name>` suffixes
/// (`srv.GetSRVService`).
pub fn srv_service(service: &str, service_name: &str, scheme: &str) -> String {
    let mut s = service.to_string();
    if scheme == "https" {
        s.push_str("-ssl");
    }
    if !service_name.is_empty() {
        s.push('-');
        s.push_str(service_name);
    }
    s
}

/// One lookup's members as `name=scheme://host:port` strings (`srv.GetCluster`).
/// `next_name` numbers the members that are not this one and carries over to the next
/// lookup.
#[allow(clippy::too_many_arguments)]
async fn get_cluster(
    dns: &Dns,
    scheme: &str,
    service: &str,
    name: &str,
    domain: &str,
    own: &BTreeMap<SocketAddr, Url>,
    next_name: &mut usize,
) -> Result<Vec<String>, String> {
    let wrap = |e: String| format!("error querying DNS SRV records for _{service} {e}");
    let records = dns.lookup_srv(service, "tcp", domain).await.map_err(wrap)?;
    let mut parts = Vec::new();
    let mut last_err = None;
    for record in records {
        let addr = match dns.resolve(&record.target, record.port).await {
            Ok(a) => a,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        let short_host = record.target.trim_end_matches('.');
        let url_host = join_host_port(short_host, record.port);
        match own.get(&addr) {
            Some(url) if url.scheme != scheme => {
                last_err = Some(format!(
                    "bootstrap at {scheme}://{url_host} from DNS for {service} has scheme mismatch with expected peer {url}"
                ));
            }
            Some(_) => parts.push(format!("{name}={scheme}://{url_host}")),
            None => {
                parts.push(format!("{}={scheme}://{url_host}", *next_name));
                *next_name += 1;
            }
        }
    }
    if parts.is_empty() {
        return Err(wrap(last_err.unwrap_or_else(|| "no records".to_string())));
    }
    Ok(parts)
}

/// The initial cluster from the `_etcd-server-ssl` and `_etcd-server` records, as
/// `name=url` strings, https first.
pub async fn cluster_from_dns(
    dns: &Dns,
    domain: &str,
    service_name: &str,
    name: &str,
    advertise_peer_urls: &[Url],
) -> Result<Vec<String>, String> {
    let mut own = BTreeMap::new();
    for url in advertise_peer_urls {
        own.insert(dns.resolve_host_port(&url.host).await?, url.clone());
    }
    let mut next_name = 0;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for scheme in ["https", "http"] {
        let service = srv_service("etcd-server", service_name, scheme);
        match get_cluster(dns, scheme, &service, name, domain, &own, &mut next_name).await {
            Ok(parts) => {
                crate::log(&format!(
                    "get cluster for {service} SRV under {domain}: found {}",
                    parts.join(",")
                ));
                found.extend(parts);
            }
            Err(e) => {
                crate::log(&format!("get cluster for {service} SRV under {domain}: {e}"));
                errors.push(e);
            }
        }
    }
    if found.is_empty() {
        // Both lookups' errors, as etcd 3.5's multierr.Combine joins them.
        return Err(errors.join("; "));
    }
    Ok(found)
}

/// The name peers' certificates are checked against when the cluster came from SRV
/// records (etcd's `PeerURLsMapAndToken`): the SRV `domain` when an https peer is
/// among `cluster` (`name=url` parts) and no `--peer-trusted-ca-file` is given (the
/// system's roots then vouch for the domain, not for each target's host); empty
/// (the dialed host) otherwise.
pub fn peer_server_name(cluster: &[String], domain: &str, trusted_ca_file: &str) -> String {
    let https = cluster.iter().any(|p| p.contains("https://"));
    if https && trusted_ca_file.is_empty() {
        domain.to_string()
    } else {
        String::new()
    }
}

/// The client endpoints from `_etcd-client-ssl[-name]` (https) and `_etcd-client[-name]`
/// (http) records (`srv.GetClient`): an error only when both lookups fail.
/// `host.:port` (an SRV target as DNS writes it, ending in the root's dot) as
/// `host:port`, as Go's dialer treats it; the system's resolver and TLS names want the
/// host without the dot. Anything else (a scheme prefix included) is kept as it is.
pub fn without_final_dot(authority: &str) -> String {
    match authority.rsplit_once(':') {
        Some((host, port)) if host.ends_with('.') => format!("{}:{port}", host.trim_end_matches('.')),
        _ => authority.to_string(),
    }
}

pub async fn client_endpoints(dns: &Dns, domain: &str, service_name: &str) -> Result<Vec<String>, String> {
    let mut endpoints = Vec::new();
    let mut errors = Vec::new();
    for scheme in ["https", "http"] {
        let service = srv_service("etcd-client", service_name, scheme);
        match dns.lookup_srv(&service, "tcp", domain).await {
            Ok(records) => endpoints.extend(
                records
                    .iter()
                    .map(|r| format!("{scheme}://{}", join_host_port(&r.target, r.port))),
            ),
            Err(e) => errors.push(e),
        }
    }
    if errors.len() == 2 {
        return Err(format!("dns lookup errors: {} and {}", errors[0], errors[1]));
    }
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_peers_without_a_ca_file_are_checked_against_the_srv_domain() {
        let https = [
            "m1=https://a.example.com:2380".to_string(),
            "m2=http://b.example.com:2380".to_string(),
        ];
        assert_eq!(peer_server_name(&https, "example.com", ""), "example.com");
        // A CA file given: each peer's certificate is checked for its own host.
        assert_eq!(peer_server_name(&https, "example.com", "/ca.crt"), "");
        // Plain http peers only: no TLS to check.
        assert_eq!(peer_server_name(&https[1..], "example.com", ""), "");
    }
}
