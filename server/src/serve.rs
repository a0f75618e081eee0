//! The client port: etcd's gRPC services and the plain HTTP endpoints on the same
//! listeners.
//!
//! Choice: one tonic server with `accept_http1(true)` over a router that holds both.
//! tonic 0.14's [`Routes`] is an axum router underneath; the HTTP endpoints are added to
//! it as ordinary axum routes ([`crate::http::routes`]) and the whole router goes back
//! into tonic. hyper's automatic protocol detection (HTTP/2 preface or HTTP/1.1) then
//! decides per connection, and the path decides per request: `/etcdserverpb.KV/Range`
//! reaches the gRPC service, `GET /health` the handler. No content-type sniffing, no
//! second HTTP stack, no proxying between two servers: the same code path etcd clients
//! and `curl` already exercise in tonic and axum.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use detcd_proto::etcdserverpb::auth_server::AuthServer;
use detcd_proto::etcdserverpb::cluster_server::ClusterServer;
use detcd_proto::etcdserverpb::kv_server::KvServer;
use detcd_proto::etcdserverpb::lease_server::LeaseServer;
use detcd_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use detcd_proto::etcdserverpb::watch_server::WatchServer;
use detcd_proto::health::health_server::HealthServer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_stream::StreamExt as _;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::grpc::{Services, GRPC_OVERHEAD_BYTES};
use crate::h2_authority::AuthorityFix;
use crate::urls::Url;

/// How long open streams (watches, keepalives) get to end after shutdown began.
pub const SHUTDOWN_GRACE_MS: u64 = 3_000;

/// One bound client listener and the URL it serves.
#[derive(Debug)]
pub struct ClientListener {
    pub url: String,
    pub listener: TcpListener,
}

impl ClientListener {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Binds every `--listen-client-urls` address (each address a host name resolves to).
/// Fails on a URL that cannot be served (TLS, unix sockets), an address in use, or a host
/// with no address that can be bound.
pub async fn bind_client_urls(urls: &[Url]) -> Result<Vec<ClientListener>, String> {
    let mut bound = Vec::new();
    for url in urls {
        if url.scheme != "http" {
            return Err(format!(
                "cannot listen on client URL {url}: only http:// client URLs are supported (no TLS or unix sockets yet)"
            ));
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(url.host.as_str())
            .await
            .map_err(|e| format!("cannot listen on client URL {url}: {e}"))?
            .collect();
        let mut last_error = None;
        let before = bound.len();
        for addr in addrs {
            match TcpListener::bind(addr).await {
                Ok(listener) => bound.push(ClientListener {
                    url: url.to_string(),
                    listener,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(format!("cannot listen on client URL {url} ({addr}): {e}"));
                }
                Err(e) => last_error = Some(format!("{addr}: {e}")),
            }
        }
        if bound.len() == before {
            return Err(format!(
                "cannot listen on client URL {url}: {}",
                last_error.unwrap_or_else(|| "the host has no address".into())
            ));
        }
    }
    Ok(bound)
}

/// The gRPC services and HTTP endpoints as one router. Requests larger than
/// `max_request_bytes` + 512 KiB are refused by gRPC itself, as etcd's are.
pub fn routes(services: Services, max_request_bytes: u64) -> Routes {
    let limit = usize::try_from(max_request_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(GRPC_OVERHEAD_BYTES);
    let mut builder = RoutesBuilder::default();
    builder
        .add_service(KvServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(WatchServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(LeaseServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(ClusterServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(MaintenanceServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(AuthServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(HealthServer::new(services.clone()));
    let router = builder.routes().prepare().into_axum_router();
    let router = crate::http::routes(router, services.clone()).layer(axum::middleware::from_fn_with_state(
        services,
        crate::grpc::with_credentials,
    ));
    Routes::from(router)
}

/// Serves `routes` on every listener until `shutdown` resolves, then gives open
/// streams [`SHUTDOWN_GRACE_MS`] to finish before dropping them.
pub struct ClientServers {
    tasks: JoinSet<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for ClientServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientServers")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

impl ClientServers {
    pub fn start(listeners: Vec<ClientListener>, routes: Routes) -> ClientServers {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = JoinSet::new();
        for ClientListener { url, listener } in listeners {
            let routes = routes.clone();
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                // Each connection through the `:authority` repair (crate::h2_authority).
                let incoming = TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .map(|conn| conn.map(AuthorityFix::new));
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                let server = Server::builder()
                    .accept_http1(true)
                    .max_concurrent_streams(u32::MAX)
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, shutdown);
                if let Err(e) = server.await {
                    crate::log(&format!("client server on {url} failed: {e}"));
                }
            });
        }
        ClientServers { tasks, stop }
    }

    /// Stops accepting; `drained` (the member's shutdown, which ends every stream) runs
    /// meanwhile; connections still open after the grace period are dropped.
    pub async fn shutdown(mut self, drained: impl Future<Output = ()>) {
        let _ = self.stop.send(true);
        drained.await;
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), all)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }
}
