//! etcd's two proxies, as subcommands of `detcd`:
//!
//! - `detcd gateway start` ([`tcp`]): the L4 gateway, TCP connections spliced to the
//!   cluster's client URLs.
//! - `detcd grpc-proxy start`: the L7 gRPC proxy. It serves the whole v3 API
//!   ([`kv`], [`watch`], [`lease`], and [`forward`] for Cluster, Maintenance, Auth, Lock
//!   and Election) with etcd's proto and tonic types, as a client of the cluster
//!   ([`upstream`]: lazily connected channels, the next endpoint when one goes away). It
//!   coalesces identical watchers into one upstream watch ([`watch`]), keeps one
//!   upstream keepalive stream with one renewal per lease in flight ([`lease`]), caches
//!   range answers ([`cache`]) and serves a key namespace ([`namespace`]); it can register
//!   itself in the cluster for clients to find ([`register`]). `/metrics` ([`metrics`])
//!   and `/health` are served on its port beside gRPC, as etcd's are.
//!
//! [`command`] reads both command lines; [`proxy_main`] runs them.

pub mod cache;
pub mod command;
pub mod discover;
pub mod forward;
pub mod kv;
pub mod lease;
pub mod metrics;
pub mod namespace;
pub mod register;
pub mod tcp;
pub mod upstream;
pub mod watch;

use std::sync::{Arc, Mutex};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use detcd_proto::etcdserverpb::auth_server::AuthServer;
use detcd_proto::etcdserverpb::cluster_server::ClusterServer;
use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::kv_server::KvServer;
use detcd_proto::etcdserverpb::lease_server::LeaseServer;
use detcd_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use detcd_proto::etcdserverpb::watch_server::WatchServer;
use detcd_proto::etcdserverpb::RangeRequest;
use detcd_proto::v3electionpb::election_server::ElectionServer;
use detcd_proto::v3lockpb::lock_server::LockServer;
use tonic::service::RoutesBuilder;

use self::command::{parse_command, GatewayConfig, GrpcProxyConfig, ProxyCommand};
use self::namespace::Namespace;
use self::upstream::{client, Retry, Upstream};
use crate::serve::{bind_client_urls, ClientServers, Http2Settings};
use crate::urls::Url;

/// The grpc-proxy's services: the cluster, the namespace, and what coalescing shares.
#[derive(Debug, Clone)]
pub struct Proxy {
    up: Upstream,
    ns: Namespace,
    cache: Arc<Mutex<cache::RangeCache>>,
    watches: watch::WatchHub,
    keepalives: lease::KeepAlives,
    metrics: metrics::ProxyMetrics,
    /// `--advertise-client-url` (empty: MemberList answers with the cluster's members).
    advertise: String,
    /// `--resolver-prefix` (empty: none): MemberList lists the proxies registered there.
    resolver_prefix: String,
    /// `--experimental-serializable-ordering`: the highest revision a range answered.
    ordering: Option<Arc<std::sync::atomic::AtomicI64>>,
}

impl Proxy {
    /// The services for `up`, serving `namespace` (empty: the whole key space),
    /// advertising `advertise` as the cluster's one member (empty: the cluster's own
    /// members). Starts the shared keepalive task: call inside a tokio runtime.
    pub fn new(up: Upstream, namespace: &str, advertise: &str) -> Proxy {
        let metrics = metrics::ProxyMetrics::new();
        let ns = Namespace::new(namespace);
        Proxy {
            watches: watch::WatchHub::new(up.clone(), ns.clone(), metrics.clone()),
            keepalives: lease::KeepAlives::start(up.clone(), metrics.clone()),
            cache: Arc::new(Mutex::new(cache::RangeCache::default())),
            metrics,
            ns,
            up,
            advertise: advertise.to_string(),
            resolver_prefix: String::new(),
            ordering: None,
        }
    }

    /// Registers the proxy under `prefix` for `ttl_s` seconds (`--resolver-prefix`,
    /// `--resolver-ttl`) and lists the proxies registered there as the members.
    pub fn with_registration(mut self, prefix: &str, ttl_s: i64) -> Proxy {
        self.resolver_prefix = prefix.to_string();
        let registration = register::Registration {
            up: self.up.clone(),
            ns: self.ns.clone(),
            prefix: prefix.to_string(),
            addr: self.advertise.clone(),
            ttl_s,
            host: hostname(),
        };
        tokio::spawn(registration.run());
        self
    }

    /// `--experimental-serializable-ordering`: waits for a linearizable read to answer
    /// (the revision to keep ordered from), as etcd's proxy does at start-up.
    pub async fn with_ordering(mut self) -> Proxy {
        crate::log("waiting for linearized read from cluster to recover ordering");
        loop {
            let read = tonic::Request::new(RangeRequest {
                key: b"_".to_vec(),
                keys_only: true,
                ..RangeRequest::default()
            });
            let answer = self
                .up
                .unary(read, Retry::Read, |ch, r| async move {
                    client!(KvClient, ch).range(r).await
                })
                .await;
            match answer {
                Ok(a) => {
                    let revision = a.get_ref().header.as_ref().map_or(0, |h| h.revision);
                    self.ordering = Some(Arc::new(std::sync::atomic::AtomicI64::new(revision)));
                    return self;
                }
                Err(e) => {
                    crate::log(&format!(
                        "ordering recovery failed, retrying in 1s: {}",
                        e.message()
                    ));
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The gRPC services with `/metrics` and `/health` beside them.
    pub fn router(&self, max_send_bytes: usize, max_recv_bytes: usize) -> axum::Router {
        let mut builder = RoutesBuilder::default();
        macro_rules! add {
            ($server:ident) => {
                builder.add_service(
                    $server::new(self.clone())
                        .max_decoding_message_size(max_send_bytes)
                        .max_encoding_message_size(max_recv_bytes),
                );
            };
        }
        add!(KvServer);
        add!(WatchServer);
        add!(LeaseServer);
        add!(ClusterServer);
        add!(MaintenanceServer);
        add!(AuthServer);
        add!(LockServer);
        add!(ElectionServer);
        self.http_routes(builder.routes().prepare().into_axum_router())
    }

    /// `/metrics` (the members', relayed from an endpoint), `/proxy/metrics` (the
    /// proxy's own, as etcd 3.5's proxy serves them) and `/health` (a linearizable
    /// read through the proxy's upstream); any other path Go's 404, an unknown gRPC
    /// service gRPC's Unimplemented.
    pub fn http_routes(&self, router: axum::Router) -> axum::Router {
        let (m, h, up) = (self.metrics.clone(), self.up.clone(), self.up.clone());
        router
            .route(
                "/metrics",
                get(move || {
                    let up = up.clone();
                    async move { metrics::relay(&up.metrics_targets(), up.current().0).await }
                }),
            )
            .route(
                "/proxy/metrics",
                get(move || async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.render()).into_response()
                }),
            )
            .route("/health", get(move || health(h.clone())))
            .fallback(crate::http::not_found)
    }
}

/// The host's name, as Go's `os.Hostname` reads it on Linux.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// How long `/health`'s read may take (etcd's proxy: one second).
const HEALTH_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// etcd 3.4's proxy `/health`: healthy when the cluster answers a read of `a` within a
/// second (a permission error is an answer); `{"health":"true"}`, else 503 with
/// `{"health":"false"}` as Go's `http.Error` writes it.
async fn health(up: Upstream) -> axum::response::Response {
    let read = tonic::Request::new(RangeRequest {
        key: b"a".to_vec(),
        ..RangeRequest::default()
    });
    let answer = up.unary(read, Retry::Read, |ch, r| async move {
        client!(KvClient, ch).range(r).await
    });
    let healthy = match tokio::time::timeout(HEALTH_READ_TIMEOUT, answer).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => e.code() == tonic::Code::PermissionDenied,
        Err(_) => false,
    };
    if healthy {
        (StatusCode::OK, r#"{"health":"true"}"#).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (
                    header::HeaderName::from_static("x-content-type-options"),
                    "nosniff",
                ),
            ],
            "{\"health\":\"false\"}\n",
        )
            .into_response()
    }
}

/// Runs `detcd gateway ...` or `detcd grpc-proxy ...` (`which`); the exit status.
pub fn proxy_main(which: &str, args: &[String]) -> i32 {
    let command = match parse_command(which, args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.message);
            return e.code;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("detcd: cannot start the runtime: {e}");
            return 1;
        }
    };
    let outcome = match command {
        ProxyCommand::Help(usage) => {
            println!("{usage}");
            return 0;
        }
        ProxyCommand::Gateway(mut c) => match runtime.block_on(gateway_endpoints(&mut c)) {
            // etcd prints these on stdout.
            Err(e) => {
                println!("{e}");
                return 1;
            }
            Ok(()) => runtime.block_on(run_gateway(c)),
        },
        ProxyCommand::GrpcProxy(mut c) => match runtime.block_on(grpc_proxy_endpoints(&mut c)) {
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
            Ok(()) => runtime.block_on(run_grpc_proxy(*c)),
        },
    };
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// The gateway's endpoints: discovered through SRV records when asked (a lookup error
/// goes to stderr, etcd's exit), then etcd's checks of its addresses (on stdout).
async fn gateway_endpoints(c: &mut GatewayConfig) -> Result<(), String> {
    if let Some(d) = &c.discovery {
        let found = match discover::discover_endpoints(d).await {
            Ok(found) => found,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        if !found.is_empty() {
            c.endpoints = found.iter().map(|e| command::strip_scheme(e)).collect();
        }
    }
    gateway_checks(c).await
}

/// The grpc-proxy's upstream endpoints, discovered through SRV records when asked.
async fn grpc_proxy_endpoints(c: &mut GrpcProxyConfig) -> Result<(), String> {
    if let Some(d) = &c.discovery {
        let found = discover::discover_endpoints(d).await?;
        if !found.is_empty() {
            c.endpoints = found;
        }
    }
    Ok(())
}

/// etcd's start-up checks of the gateway's addresses.
async fn gateway_checks(c: &GatewayConfig) -> Result<(), String> {
    let Some((lhost, lport)) = c.listen_addr.rsplit_once(':') else {
        return Err(format!("failed to validate listen address: {}", c.listen_addr));
    };
    let listen_addrs: Vec<std::net::IpAddr> = tokio::net::lookup_host((lhost.trim_matches(['[', ']']), 0))
        .await
        .map_err(|_| format!("failed to resolve listen host: {lhost}"))?
        .map(|a| a.ip())
        .collect();
    for ep in &c.endpoints {
        let Some((host, port)) = ep.rsplit_once(':') else {
            return Err(format!("error parsing endpoint {ep:?}"));
        };
        let addrs: Vec<std::net::IpAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), 0))
            .await
            .map_err(|_| format!("failed to resolve endpoint host: {host}"))?
            .map(|a| a.ip())
            .collect();
        if port != lport {
            continue;
        }
        if let Some(a) = addrs.iter().find(|a| listen_addrs.contains(a)) {
            return Err(format!(
                "SRV or endpoint ({host}:{port}->{a}:{port}) should not resolve to the gateway listen addr ({})",
                c.listen_addr
            ));
        }
    }
    if c.endpoints.is_empty() {
        return Err("no endpoints found".into());
    }
    Ok(())
}

/// The gateway until a signal.
async fn run_gateway(c: GatewayConfig) -> Result<(), String> {
    let listener = listen_tcp(&c.listen_addr).await?;
    let gateway = tokio::spawn(tcp::TcpProxy::new(&c.endpoints, c.retry_delay).run(listener));
    // As etcd: ready for systemd once listening.
    crate::cli::notify(sd_notify::NotifyState::Ready);
    let signal = crate::cli::termination().await;
    crate::log(&format!("received {signal}, stopping the gateway"));
    gateway.abort();
    Ok(())
}

/// Both proxies' `--listen-addr` listener, failing with Go's net.Listen words as etcd's
/// proxies do ("listen tcp 127.0.0.1:23790: bind: address already in use").
async fn listen_tcp(addr: &str) -> Result<tokio::net::TcpListener, String> {
    check_listen_addr(addr)?;
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => format!("listen tcp {addr}: bind: address already in use"),
            std::io::ErrorKind::PermissionDenied => format!("listen tcp {addr}: bind: permission denied"),
            _ => format!("listen tcp {addr}: {e}"),
        })
}

/// `--listen-addr` as Go's net.Listen("tcp", addr) judges it before resolving: a port
/// must be there and be a number below 65536 (a name such as `http` is a service).
fn check_listen_addr(addr: &str) -> Result<(), String> {
    let Some((_, port)) = addr.rsplit_once(':') else {
        return Err(format!("listen tcp: address {addr}: missing port in address"));
    };
    let numeric = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if numeric && port.parse::<u16>().is_err() {
        return Err(format!("listen tcp: address {port}: invalid port"));
    }
    Ok(())
}

/// The grpc-proxy until a signal.
async fn run_grpc_proxy(c: GrpcProxyConfig) -> Result<(), String> {
    let level = if c.debug {
        detcd_io::log::Level::Debug
    } else {
        detcd_io::log::Level::Info
    };
    detcd_io::log::configure(level, &["stderr".to_string()], false)?;
    let mut tls = c.serve_tls.clone();
    let tls_wanted = !tls.cert_file.is_empty() || !tls.key_file.is_empty() || !tls.trusted_ca_file.is_empty();
    let listen_https = Url {
        scheme: "https".into(),
        host: c.listen_addr.clone(),
    };
    if !tls_wanted && c.auto_tls {
        let dir = std::path::Path::new(&c.data_dir).join("fixtures").join("proxy");
        crate::tls::auto::apply(
            &mut tls,
            true,
            &dir,
            std::slice::from_ref(&listen_https),
            1,
            "proxy",
        )?;
    }
    // etcd's order of checks: the listen address (as Go's net.Listen checks it), the
    // serving TLS files, then the cluster's client; all before the proxy listens.
    check_listen_addr(&c.listen_addr)?;
    let server_tls = if tls_wanted || c.auto_tls {
        if tls.cert_file.is_empty() && tls.key_file.is_empty() {
            return Err(format!(
                "failed to create TLS listener: cannot listen on TLS for {}: KeyFile and CertFile are not presented",
                c.listen_addr
            ));
        }
        if tls.cert_file.is_empty() || tls.key_file.is_empty() {
            return Err(format!(
                "failed to create TLS listener: KeyFile and CertFile must both be present[key: {}, cert: {}]",
                tls.key_file, tls.cert_file
            ));
        }
        Some(
            crate::tls::reloading_server("grpc-proxy TLS", &tls)
                .map_err(|e| format!("failed to create TLS listener: {e}"))?,
        )
    } else {
        None
    };
    let upstream_tls = crate::ctl::dial::ClientTls::from_flags(&c.upstream_tls).map_err(|e| e.message)?;
    let up = Upstream::new(&c.endpoints, &upstream_tls)?;
    let listen = Url {
        scheme: if server_tls.is_some() { "https" } else { "http" }.into(),
        host: c.listen_addr.clone(),
    };
    let listeners = vec![crate::serve::ClientListener {
        url: listen.to_string(),
        listener: detcd_io::transport::socket::Listener::Tcp(listen_tcp(&c.listen_addr).await?),
        tls: server_tls.clone(),
    }];
    crate::log(&format!(
        "listening for gRPC proxy client requests on {}",
        c.listen_addr
    ));
    let mut proxy = Proxy::new(up, &c.namespace, &c.advertise_client_url);
    if c.serializable_ordering {
        proxy = proxy.with_ordering().await;
    }
    if !c.resolver_prefix.is_empty() {
        proxy = proxy.with_registration(&c.resolver_prefix, c.resolver_ttl);
    }
    let http2 = Http2Settings {
        max_concurrent_streams: c.max_concurrent_streams,
        ..Http2Settings::default()
    };
    let servers = ClientServers::start_with(
        listeners,
        proxy.router(c.max_send_bytes, c.max_recv_bytes).into(),
        http2,
    );
    let metrics_servers = if c.metrics_addr.is_empty() {
        None
    } else {
        let url = crate::urls::parse_url(&c.metrics_addr)?;
        let tls = if url.scheme == "https" {
            server_tls.clone()
        } else {
            None
        };
        let listeners = bind_client_urls(std::slice::from_ref(&url), tls).await?;
        crate::log(&format!("gRPC proxy server metrics URL serving on {url}"));
        Some(ClientServers::start(
            listeners,
            proxy.http_routes(axum::Router::new()).into(),
        ))
    };
    crate::log(&format!(
        "started gRPC proxy on {} for {}{}",
        c.listen_addr,
        c.endpoints.join(","),
        if c.namespace.is_empty() {
            String::new()
        } else {
            format!(" (namespace {:?})", c.namespace)
        }
    ));
    crate::cli::notify(sd_notify::NotifyState::Ready);
    let signal = crate::cli::termination().await;
    crate::log(&format!("received {signal}, stopping the gRPC proxy"));
    if let Some(m) = metrics_servers {
        m.shutdown(async {}).await;
    }
    servers.shutdown(async {}).await;
    Ok(())
}
