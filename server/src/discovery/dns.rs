//! DNS lookups for discovery: SRV records and host names, through hickory-resolver.
//!
//! In production the resolver reads the system configuration (`/etc/resolv.conf`, and
//! `/etc/hosts` for host names), as Go's resolver does for etcd. Tests point it at an
//! in-process DNS server with [`TEST_DNS_SERVER_ENV`] instead; that variable is not an
//! etcd setting and is meant for tests only.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

/// Test only: `ip:port` of the one DNS server (UDP) every discovery lookup asks,
/// instead of the system's resolvers.
pub const TEST_DNS_SERVER_ENV: &str = "DETCD_TEST_DNS_SERVER";

/// One SRV record's target and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    /// The target as the record spells it, trailing dot included.
    pub target: String,
    pub port: u16,
}

/// A resolver for discovery lookups.
#[derive(Debug, Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// The system's resolver, or the test server named by [`TEST_DNS_SERVER_ENV`].
    pub fn from_env() -> Result<Dns, String> {
        match std::env::var(TEST_DNS_SERVER_ENV).ok().filter(|v| !v.is_empty()) {
            Some(addr) => {
                let addr: SocketAddr = addr
                    .parse()
                    .map_err(|e| format!("{TEST_DNS_SERVER_ENV}={addr:?}: {e}"))?;
                Ok(Dns::with_server(addr))
            }
            None => {
                let builder = TokioResolver::builder_tokio()
                    .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?;
                Ok(Dns::build(builder))
            }
        }
    }

    /// A resolver asking only the DNS server at `addr` over UDP (tests).
    pub fn with_server(addr: SocketAddr) -> Dns {
        let mut config = ResolverConfig::new();
        config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
        Dns::build(TokioResolver::builder_with_config(
            config,
            TokioConnectionProvider::default(),
        ))
    }

    fn build(builder: hickory_resolver::ResolverBuilder<TokioConnectionProvider>) -> Dns {
        let mut opts = ResolverOpts::default();
        // Records change while a cluster is set up; every start asks again.
        opts.cache_size = 0;
        Dns {
            resolver: builder.with_options(opts).build(),
        }
    }

    /// The SRV records of `_<service>._<proto>.<domain>` (Go's `net.LookupSRV`), by
    /// priority, then heavier weight first.
    pub async fn lookup_srv(
        &self,
        service: &str,
        proto: &str,
        domain: &str,
    ) -> Result<Vec<SrvTarget>, String> {
        let domain = domain.trim_end_matches('.');
        let name = format!("_{service}._{proto}.{domain}.");
        let lookup = self
            .resolver
            .srv_lookup(name.as_str())
            .await
            .map_err(|e| self.go_error(&name, &e))?;
        let mut records: Vec<_> = lookup.iter().cloned().collect();
        records.sort_by_key(|r| (r.priority(), std::cmp::Reverse(r.weight())));
        Ok(records
            .iter()
            .map(|r| SrvTarget {
                target: r.target().to_ascii(),
                port: r.port(),
            })
            .collect())
    }

    /// The first address of `host` (an IP literal or a name) with `port` (Go's
    /// `net.ResolveTCPAddr`), IPv4 first as Go prefers.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let bare = host
            .trim_end_matches('.')
            .trim_start_matches('[')
            .trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let name = if host.ends_with('.') {
            host.to_string()
        } else {
            format!("{host}.")
        };
        let ips = self
            .resolver
            .lookup_ip(name.as_str())
            .await
            .map_err(|e| self.go_error(host, &e))?;
        let all: Vec<IpAddr> = ips.iter().collect();
        all.iter()
            .find(|ip| ip.is_ipv4())
            .or_else(|| all.first())
            .map(|ip| SocketAddr::new(*ip, port))
            .ok_or_else(|| format!("lookup {}: no such host", host.trim_end_matches('.')))
    }

    /// A failed lookup of `name` in Go's resolver's words, as etcd and etcdctl print it:
    /// `lookup <name> on <server>: no such host` when the name has no such records (Go
    /// says so for NXDOMAIN and for an empty answer alike), the resolver's own text else.
    fn go_error(&self, name: &str, e: &hickory_resolver::ResolveError) -> String {
        let name = name.trim_end_matches('.');
        let server = self
            .resolver
            .config()
            .name_servers()
            .first()
            .map(|s| s.socket_addr.to_string())
            .unwrap_or_else(|| "DNS".into());
        if e.is_no_records_found() || e.is_nx_domain() {
            format!("lookup {name} on {server}: no such host")
        } else {
            format!("lookup {name} on {server}: {e}")
        }
    }

    /// Resolves `host:port` (a URL's host part).
    pub async fn resolve_host_port(&self, host_port: &str) -> Result<SocketAddr, String> {
        let (host, port) = split_host_port(host_port)?;
        self.resolve(host, port).await
    }
}

/// `host:port` or `[v6]:port` into its parts.
pub fn split_host_port(host_port: &str) -> Result<(&str, u16), String> {
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| format!("address {host_port}: missing port in address"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("address {host_port}: invalid port"))?;
    Ok((host, port))
}

/// Go's `net.JoinHostPort`: brackets around an IPv6 host.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
