//! The command lines of `detcd gateway start` and `detcd grpc-proxy start`: etcd 3.4's
//! flags (`etcdmain/gateway.go`, `etcdmain/grpc_proxy.go`) with their defaults, parsed
//! with pflag's rules ([`crate::ctl::args`]), checked as etcd checks them at start-up.
//! Every flag is either implemented or refused with a message saying so.

use std::time::Duration;

use super::discover::SrvDiscovery;
use crate::ctl::args::{bool_flag, parse, value_flag, FlagSpec, Parsed};

/// What a `detcd gateway ...` or `detcd grpc-proxy ...` command line asks for.
#[derive(Debug, Clone)]
pub enum ProxyCommand {
    /// `gateway start`.
    Gateway(GatewayConfig),
    /// `grpc-proxy start`.
    GrpcProxy(Box<GrpcProxyConfig>),
    /// No subcommand, or `--help`: the usage text.
    Help(String),
}

/// `detcd gateway start`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    pub listen_addr: String,
    /// `host:port` of each endpoint (schemes stripped, as etcd does).
    pub endpoints: Vec<String>,
    pub retry_delay: Duration,
    /// `--discovery-srv` (with `--discovery-srv-name`, `--insecure-discovery` and
    /// `--trusted-ca-file`): endpoints from SRV records, `endpoints` the fallback.
    pub discovery: Option<SrvDiscovery>,
}

/// `detcd grpc-proxy start`.
#[derive(Debug, Clone)]
pub struct GrpcProxyConfig {
    pub listen_addr: String,
    pub endpoints: Vec<String>,
    /// `--discovery-srv` (with `--discovery-srv-name`, `--insecure-discovery` and
    /// `--cacert`): endpoints from SRV records, `endpoints` the fallback.
    pub discovery: Option<SrvDiscovery>,
    pub advertise_client_url: String,
    pub namespace: String,
    /// `--resolver-prefix` (empty: the proxy does not register) and `--resolver-ttl`.
    pub resolver_prefix: String,
    pub resolver_ttl: i64,
    pub metrics_addr: String,
    pub data_dir: String,
    pub max_send_bytes: usize,
    pub max_recv_bytes: usize,
    pub max_concurrent_streams: u32,
    /// Upstream TLS: `--cert`, `--key`, `--cacert`, `--insecure-skip-tls-verify`.
    pub upstream_tls: Parsed,
    /// Serving TLS: `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-crl-file`,
    /// `--listen-cipher-suites`.
    pub serve_tls: crate::tls::TlsInfo,
    pub auto_tls: bool,
    /// `--debug`: debug-level logging (each upstream watch made and ended, each watcher
    /// joining one).
    pub debug: bool,
    /// `--experimental-serializable-ordering`.
    pub serializable_ordering: bool,
}

const GATEWAY_FLAGS: &[FlagSpec] = &[
    value_flag("listen-addr"),
    value_flag("discovery-srv"),
    value_flag("discovery-srv-name"),
    bool_flag("insecure-discovery"),
    value_flag("trusted-ca-file"),
    value_flag("endpoints"),
    value_flag("retry-delay"),
    bool_flag("help"),
];

const GRPC_PROXY_FLAGS: &[FlagSpec] = &[
    value_flag("listen-addr"),
    value_flag("discovery-srv"),
    value_flag("discovery-srv-name"),
    value_flag("metrics-addr"),
    bool_flag("insecure-discovery"),
    value_flag("endpoints"),
    value_flag("advertise-client-url"),
    value_flag("resolver-prefix"),
    value_flag("resolver-ttl"),
    value_flag("namespace"),
    bool_flag("enable-pprof"),
    value_flag("data-dir"),
    value_flag("max-send-bytes"),
    value_flag("max-recv-bytes"),
    value_flag("cert"),
    value_flag("key"),
    value_flag("cacert"),
    bool_flag("insecure-skip-tls-verify"),
    value_flag("cert-file"),
    value_flag("key-file"),
    value_flag("trusted-ca-file"),
    value_flag("listen-cipher-suites"),
    bool_flag("auto-tls"),
    value_flag("client-crl-file"),
    bool_flag("experimental-serializable-ordering"),
    value_flag("experimental-leasing-prefix"),
    bool_flag("debug"),
    value_flag("max-concurrent-streams"),
    bool_flag("help"),
];

pub const GATEWAY_USAGE: &str = "Usage:\n  detcd gateway start [flags]\n\nstart the gateway (an L4 TCP proxy to the etcd cluster)\n\nFlags: --endpoints, --listen-addr, --retry-delay, --discovery-srv, --discovery-srv-name, --insecure-discovery, --trusted-ca-file (as etcd's)\n";
pub const GRPC_PROXY_USAGE: &str = "Usage:\n  detcd grpc-proxy start [flags]\n\nstart the grpc proxy\n\nFlags: as etcd 3.4's `etcd grpc-proxy start` (see README)\n";

/// A refused or malformed command line: what to print, the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub message: String,
    pub code: i32,
}

fn fail(message: impl Into<String>) -> CommandError {
    CommandError {
        message: message.into(),
        code: 1,
    }
}

/// Parses `args` (after `gateway` or `grpc-proxy`); `which` is that word.
pub fn parse_command(which: &str, args: &[String]) -> Result<ProxyCommand, CommandError> {
    let (usage, specs) = match which {
        "gateway" => (GATEWAY_USAGE, GATEWAY_FLAGS),
        _ => (GRPC_PROXY_USAGE, GRPC_PROXY_FLAGS),
    };
    let (path, flags) = parse(args, |p| p.len() == 1 && p[0] == "start", |_| specs.to_vec())
        .map_err(|e| fail(format!("Error: {}\n{usage}", e.message)))?;
    if path.is_empty() || flags.is_set("help") {
        return Ok(ProxyCommand::Help(usage.to_string()));
    }
    if let Some(extra) = flags.args.first() {
        return Err(fail(format!(
            "Error: unknown command {extra:?} for \"detcd {which} start\""
        )));
    }
    let value = |name: &str, default: &str| flags.value(name).unwrap_or(default).to_string();
    let flag = |name: &str| flags.bool(name).map_err(|e| fail(e.message));
    let domain = value("discovery-srv", "");
    let discovery = if domain.is_empty() {
        None
    } else {
        Some(SrvDiscovery {
            domain,
            service_name: value("discovery-srv-name", ""),
            insecure: flag("insecure-discovery")?,
            ca_file: value(
                if which == "gateway" {
                    "trusted-ca-file"
                } else {
                    "cacert"
                },
                "",
            ),
        })
    };
    let endpoints: Vec<String> = value("endpoints", "127.0.0.1:2379")
        .split(',')
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect();
    if which == "gateway" {
        let retry = value("retry-delay", "1m");
        let retry_delay = crate::ctl::parse_go_duration(&retry).ok_or_else(|| {
            fail(format!(
                "Error: invalid argument {retry:?} for \"--retry-delay\" flag: time: invalid duration {retry:?}"
            ))
        })?;
        return Ok(ProxyCommand::Gateway(GatewayConfig {
            listen_addr: value("listen-addr", "127.0.0.1:23790"),
            endpoints: endpoints.iter().map(|e| strip_scheme(e)).collect(),
            retry_delay,
            discovery,
        }));
    }
    let resolver_ttl = check_resolver(
        &value("resolver-prefix", ""),
        &value("resolver-ttl", "0"),
        &value("advertise-client-url", "127.0.0.1:23790"),
    )?;
    for (name, why) in [("enable-pprof", "runtime profiling is Go's")] {
        if flag(name)? {
            return Err(fail(format!(
                "--{name} is not supported by detcd's grpc-proxy ({why})"
            )));
        }
    }
    if flags.is_set("experimental-leasing-prefix") {
        return Err(fail(
            "--experimental-leasing-prefix is not supported by detcd's grpc-proxy (not implemented)",
        ));
    }
    let number = |name: &str, default: u64| -> Result<u64, CommandError> {
        let v = value(name, &default.to_string());
        v.parse::<u64>()
            .map_err(|_| fail(format!("Error: invalid argument {v:?} for \"--{name}\" flag: strconv.ParseInt: parsing {v:?}: invalid syntax")))
    };
    let serve_tls = crate::tls::TlsInfo {
        cert_file: value("cert-file", ""),
        key_file: value("key-file", ""),
        trusted_ca_file: value("trusted-ca-file", ""),
        client_cert_auth: !value("trusted-ca-file", "").is_empty(),
        crl_file: value("client-crl-file", ""),
        common: crate::tls::suites::TlsCommon {
            cipher_suites: value("listen-cipher-suites", "")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    serve_tls.common.validate().map_err(fail)?;
    let mut upstream_tls = Parsed::default();
    for name in ["cert", "key", "cacert", "insecure-skip-tls-verify"] {
        if let Some(v) = flags.value(name) {
            upstream_tls.flags.insert(name.to_string(), v.to_string());
        }
    }
    // etcd: `--insecure-skip-tls-verify` alone still dials with TLS (unverified).
    if flag("insecure-skip-tls-verify")? {
        upstream_tls
            .flags
            .insert("insecure-transport".into(), "false".into());
    }
    Ok(ProxyCommand::GrpcProxy(Box::new(GrpcProxyConfig {
        listen_addr: value("listen-addr", "127.0.0.1:23790"),
        endpoints,
        discovery,
        advertise_client_url: value("advertise-client-url", "127.0.0.1:23790"),
        namespace: value("namespace", ""),
        resolver_prefix: value("resolver-prefix", ""),
        resolver_ttl,
        metrics_addr: value("metrics-addr", ""),
        data_dir: value("data-dir", "default.proxy"),
        max_send_bytes: number("max-send-bytes", 3 * 512 * 1024)? as usize,
        max_recv_bytes: number("max-recv-bytes", i32::MAX as u64)? as usize,
        max_concurrent_streams: u32::try_from(number("max-concurrent-streams", u64::from(u32::MAX))?)
            .map_err(|_| fail("--max-concurrent-streams: value out of range"))?,
        upstream_tls,
        serve_tls,
        auto_tls: flag("auto-tls")?,
        debug: flag("debug")?,
        serializable_ordering: flag("experimental-serializable-ordering")?,
    })))
}

/// etcd's `checkArgs` of the resolver flags; the TTL.
fn check_resolver(prefix: &str, ttl: &str, advertise: &str) -> Result<i64, CommandError> {
    let ttl: i64 = ttl.parse().map_err(|_| {
        fail(format!(
            "Error: invalid argument {ttl:?} for \"--resolver-ttl\" flag: strconv.ParseInt: parsing {ttl:?}: invalid syntax"
        ))
    })?;
    if !prefix.is_empty() && ttl < 1 {
        return Err(fail(format!("invalid resolver-ttl {ttl}")));
    }
    if prefix.is_empty() && ttl > 0 {
        return Err(fail(format!("invalid resolver-prefix {prefix:?}")));
    }
    if !prefix.is_empty() && advertise.is_empty() {
        return Err(fail(format!("invalid advertise-client-url {advertise:?}")));
    }
    Ok(ttl)
}

/// `host:port` of an endpoint given as a URL (etcd's `stripSchema`).
pub(super) fn strip_scheme(endpoint: &str) -> String {
    match endpoint.split_once("://") {
        Some((_, rest)) => rest.trim_end_matches('/').to_string(),
        None => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn gateway_flags_and_defaults() {
        let c = parse_command(
            "gateway",
            &args(&["start", "--endpoints=http://a:1,b:2", "--retry-delay", "2s"]),
        )
        .expect("parses");
        let ProxyCommand::Gateway(g) = c else {
            panic!("gateway")
        };
        assert_eq!(g.endpoints, vec!["a:1", "b:2"]);
        assert_eq!(g.listen_addr, "127.0.0.1:23790");
        assert_eq!(g.retry_delay, Duration::from_secs(2));
        let ProxyCommand::Gateway(g) = parse_command("gateway", &args(&["start"])).expect("parses") else {
            panic!("gateway")
        };
        assert_eq!(g.retry_delay, Duration::from_secs(60));
        assert_eq!(g.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!(g.discovery, None);
        let ProxyCommand::Gateway(g) = parse_command(
            "gateway",
            &args(&["start", "--discovery-srv=example.com", "--trusted-ca-file=ca.crt"]),
        )
        .expect("parses") else {
            panic!("gateway")
        };
        let d = g.discovery.expect("discovery");
        assert_eq!(
            (d.domain.as_str(), d.ca_file.as_str(), d.insecure),
            ("example.com", "ca.crt", false)
        );
        let ProxyCommand::GrpcProxy(c) = parse_command(
            "grpc-proxy",
            &args(&[
                "start",
                "--discovery-srv=example.com",
                "--discovery-srv-name=blue",
                "--insecure-discovery",
                "--cacert=up.crt",
            ]),
        )
        .expect("parses") else {
            panic!("grpc-proxy")
        };
        let d = c.discovery.expect("discovery");
        assert_eq!(
            (d.service_name.as_str(), d.ca_file.as_str(), d.insecure),
            ("blue", "up.crt", true)
        );
    }

    #[test]
    fn etcds_resolver_checks_then_refusals() {
        let e = |a: &[&str]| {
            parse_command("grpc-proxy", &args(a))
                .expect_err("refused")
                .message
        };
        assert_eq!(e(&["start", "--resolver-prefix=p"]), "invalid resolver-ttl 0");
        assert_eq!(e(&["start", "--resolver-ttl=3"]), "invalid resolver-prefix \"\"");
        assert_eq!(
            e(&[
                "start",
                "--resolver-prefix=p",
                "--resolver-ttl=3",
                "--advertise-client-url="
            ]),
            "invalid advertise-client-url \"\""
        );
        assert!(e(&["start", "--enable-pprof"]).contains("--enable-pprof is not supported"));
        assert!(e(&["start", "--bogus"]).starts_with("Error: unknown flag: --bogus"));
    }

    #[test]
    fn grpc_proxy_defaults_and_help() {
        let ProxyCommand::GrpcProxy(c) =
            parse_command("grpc-proxy", &args(&["start", "--namespace=app/"])).expect("parses")
        else {
            panic!("grpc-proxy")
        };
        assert_eq!(c.listen_addr, "127.0.0.1:23790");
        assert_eq!(c.namespace, "app/");
        assert_eq!(c.max_send_bytes, 1536 * 1024);
        assert!(matches!(
            parse_command("grpc-proxy", &[]),
            Ok(ProxyCommand::Help(_))
        ));
    }
}
