//! The client port: etcd's gRPC services and the plain HTTP endpoints on the same
//! listeners.
//!
//! Choice: one tonic server with `accept_http1(true)` over a router that holds both.
//! tonic 0.14's [`Routes`] is an axum router underneath; the HTTP endpoints are added to
//! it as ordinary axum routes ([`crate::http::routes`]) and the whole router goes back
//! into tonic. The connection's first bytes (the HTTP/2 preface or not) decide which
//! server takes it ([`crate::client_dispatch`]): tonic's, for HTTP/2, or hyper's HTTP/1
//! server with upgrades (so the gateway's WebSockets can complete), over the same router;
//! the path decides per request: `/etcdserverpb.KV/Range` reaches the gRPC service,
//! `GET /health` the handler. No content-type sniffing, no proxying between two servers.
//!
//! TLS: an `https://` listener completes the TLS handshake (ALPN `h2` and `http/1.1`)
//! before the connection reaches tonic; plain and TLS connections are produced as one
//! type, [`ClientConn`], by one accept loop per listener, so the same server serves
//! both, and `http://` and `https://` listeners can run side by side.
//!
//! Unix sockets: `unix://name` and `unixs://name` listen on the socket file `name`
//! (etcd's rule, [`detcd_io::transport::socket`]), plain or TLS, with the same services.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use detcd_io::transport::socket::{self, Listener, Local, Remote, StaleSocket};
use detcd_proto::etcdserverpb::auth_server::AuthServer;
use detcd_proto::etcdserverpb::cluster_server::ClusterServer;
use detcd_proto::etcdserverpb::kv_server::KvServer;
use detcd_proto::etcdserverpb::lease_server::LeaseServer;
use detcd_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use detcd_proto::etcdserverpb::watch_server::WatchServer;
use detcd_proto::health::health_server::HealthServer;
use detcd_proto::v3electionpb::election_server::ElectionServer;
use detcd_proto::v3lockpb::lock_server::LockServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::server::Connected;
use tonic::transport::Server;

use crate::client_dispatch::Dispatch;
use crate::grpc::{Services, GRPC_OVERHEAD_BYTES};
use crate::tls::{Reloading, TlsInfo};
use crate::urls::Url;

/// A TLS handshake that takes longer than this fails (the connection is dropped).
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Accepted connections waiting for the server to take them.
const ACCEPT_QUEUE_CONNS_MAX: usize = 128;

/// How long open streams (watches, keepalives) get to end after shutdown began.
pub const SHUTDOWN_GRACE_MS: u64 = 3_000;

/// One bound client listener, the URL it serves and, for `https://`, its TLS setup.
#[derive(Debug)]
pub struct ClientListener {
    pub url: String,
    pub listener: Listener,
    pub tls: Option<Arc<Reloading<rustls::ServerConfig>>>,
}

impl ClientListener {
    pub fn local_addr(&self) -> std::io::Result<Local> {
        self.listener.local()
    }
}

/// The TLS setup of the `https://` client URLs, checked before anything is bound:
/// etcd's message when certificates are missing, the file's error when one cannot be
/// used. `None` when no URL is https.
pub fn client_tls(
    urls: &[Url],
    info: &TlsInfo,
) -> Result<Option<Arc<Reloading<rustls::ServerConfig>>>, String> {
    let Some(url) = urls.iter().find(|u| u.scheme == "https" || u.scheme == "unixs") else {
        for url in urls {
            if !info.is_empty() {
                crate::log(&format!(
                    "scheme is HTTP while key and cert files are present; ignoring key and cert files (client-url {url})"
                ));
            }
            if info.client_cert_auth {
                crate::log(&format!(
                    "scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL (client-url {url})"
                ));
            }
        }
        return Ok(None);
    };
    if info.is_empty() {
        return Err(format!(
            "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
        ));
    }
    crate::tls::reloading_server("client TLS", info).map(Some)
}

/// Binds every `--listen-client-urls` address (each address a host name resolves to,
/// or the socket file of a unix URL). `https://` and `unixs://` URLs serve TLS with
/// `tls` (see [`client_tls`]). Fails on an address in use (a leftover socket file
/// too, as in etcd), or a host with no address that can be bound.
pub async fn bind_client_urls(
    urls: &[Url],
    tls: Option<Arc<Reloading<rustls::ServerConfig>>>,
) -> Result<Vec<ClientListener>, String> {
    let mut bound = Vec::new();
    for url in urls {
        let tls = match url.scheme.as_str() {
            "https" | "unixs" => Some(tls.clone().ok_or_else(|| {
                format!("TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme")
            })?),
            _ => None,
        };
        if url.scheme.starts_with("unix") {
            let listener = Listener::bind_unix(std::path::Path::new(&url.host), StaleSocket::Keep)
                .map_err(|e| format!("cannot listen on client URL {url}: listen unix {}: {e}", url.host))?;
            bound.push(ClientListener {
                url: url.to_string(),
                listener,
                tls,
            });
            continue;
        }
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(url.host.as_str())
            .await
            .map_err(|e| format!("cannot listen on client URL {url}: {e}"))?
            .collect();
        let mut last_error = None;
        let before = bound.len();
        for addr in addrs {
            match TcpListener::bind(addr).await {
                Ok(listener) => bound.push(ClientListener {
                    url: url.to_string(),
                    listener: Listener::Tcp(listener),
                    tls: tls.clone(),
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

/// The gRPC services and HTTP endpoints as one router (or one of them, `http.serve`). Requests larger than
/// `max_request_bytes` + 512 KiB are refused by gRPC itself, as etcd's are. With
/// `http.gateway`, the JSON gateway ([`crate::gateway`]) serves `/v3/...` through the
/// same gRPC services; every HTTP request passes etcd's access controller
/// ([`crate::http_access`]) first.
pub fn routes(services: Services, max_request_bytes: u64, http: &HttpOptions) -> Routes {
    let gateway = http.gateway;
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
        .add_service(LockServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(ElectionServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(HealthServer::new(services.clone()));
    let grpc = builder.routes().prepare().into_axum_router();
    let router = if http.serve == Serve::HttpOnly {
        axum::Router::new()
    } else {
        grpc.clone()
    };
    let router = if gateway && http.serve != Serve::GrpcOnly {
        let grpc = grpc.layer(axum::middleware::from_fn_with_state(
            services.clone(),
            crate::grpc::with_credentials,
        ));
        crate::gateway::routes(router, grpc, limit)
    } else {
        router
    };
    let router = if http.v2 && http.serve != Serve::GrpcOnly {
        crate::v2::routes(router, services.clone())
    } else {
        router
    };
    let router = if http.serve == Serve::GrpcOnly {
        router.fallback(crate::http::not_found)
    } else {
        crate::http::routes(router, services.clone(), gateway)
    };
    let router = router.layer(axum::middleware::from_fn_with_state(
        Arc::new(crate::client_layer::ClientLayer::new(
            services,
            http.access.clone(),
        )),
        crate::client_layer::per_request,
    ));
    Routes::from(router)
}

/// What a listener serves: both (the client URLs by default), or, with
/// `--listen-client-http-urls`, gRPC alone on the client URLs and HTTP alone on those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Serve {
    #[default]
    Both,
    GrpcOnly,
    HttpOnly,
}

/// What the client port serves over HTTP besides gRPC.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Which of gRPC and HTTP this router serves.
    pub serve: Serve,
    /// `--enable-grpc-gateway`.
    pub gateway: bool,
    /// `--enable-v2`.
    pub v2: bool,
    /// `--host-whitelist` and `--cors`.
    pub access: crate::http_access::AccessRules,
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

/// The HTTP/2 settings of the client servers (`--max-concurrent-streams`,
/// `--grpc-keepalive-min-time`, `--grpc-keepalive-interval`, `--grpc-keepalive-timeout`;
/// zero turns the interval or the timeout off).
#[derive(Clone, Copy, Debug)]
pub struct Http2Settings {
    pub max_concurrent_streams: u32,
    /// Clients that ping more often get GOAWAY ENHANCE_YOUR_CALM (crate::h2_pings).
    pub keepalive_min_time: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for Http2Settings {
    /// etcd's defaults.
    fn default() -> Self {
        Http2Settings {
            max_concurrent_streams: u32::MAX,
            keepalive_min_time: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(2 * 3600),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

impl ClientServers {
    pub fn start(listeners: Vec<ClientListener>, routes: Routes) -> ClientServers {
        Self::start_with(listeners, routes, Http2Settings::default())
    }

    /// [`ClientServers::start`] with these HTTP/2 settings.
    pub fn start_with(listeners: Vec<ClientListener>, routes: Routes, http2: Http2Settings) -> ClientServers {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = JoinSet::new();
        for ClientListener { url, listener, tls } in listeners {
            let routes = routes.clone();
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                let (queue, incoming) = mpsc::channel(ACCEPT_QUEUE_CONNS_MAX);
                // HTTP/2 connections (through crate::h2_conn: `:authority` repair, pings)
                // go to tonic's server below, HTTP/1 ones to hyper's with upgrades
                // (crate::client_dispatch), both over the same router.
                let router = routes.clone().prepare().into_axum_router();
                let (dispatch, http1_drained) =
                    Dispatch::new(router, queue, stopped.clone(), http2.keepalive_min_time);
                let acceptor = AbortOnDrop(tokio::spawn(accept_loop(listener, tls, dispatch)));
                let incoming = ReceiverStream::new(incoming);
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                let server = Server::builder()
                    .accept_http1(true)
                    .max_concurrent_streams(http2.max_concurrent_streams)
                    .http2_keepalive_interval(Some(http2.keepalive_interval).filter(|d| !d.is_zero()))
                    .http2_keepalive_timeout(Some(http2.keepalive_timeout).filter(|d| !d.is_zero()))
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, shutdown);
                if let Err(e) = server.await {
                    crate::log(&format!("client server on {url} failed: {e}"));
                }
                drop(acceptor);
                http1_drained.wait().await;
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

/// Aborts a task when dropped (the accept loop ends with its server).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts connections, until the listener stops, and hands each, as a [`ClientConn`],
/// to `dispatch` in a task of its own; with `tls`, that task first completes the
/// handshake (a slow client delays nobody). A failed handshake is logged as etcd logs
/// it and the connection dropped: nothing is ever served in plain text on a TLS listener.
async fn accept_loop(
    listener: Listener,
    tls: Option<Arc<Reloading<rustls::ServerConfig>>>,
    dispatch: Arc<Dispatch>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = dispatch.stopping() => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                detcd_io::log!(detcd_io::log::Level::Warn, "detcd", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(tls) = &tls else {
            tokio::spawn(dispatch.clone().serve(ClientConn::plain(stream, remote)));
            continue;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.get());
        let dispatch = dispatch.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(
                Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS),
                acceptor.accept(stream),
            );
            match handshake.await {
                Ok(Ok(stream)) => dispatch.serve(ClientConn::tls(stream, remote)).await,
                Ok(Err(e)) => {
                    detcd_io::log!(
                        detcd_io::log::Level::Warn,
                        "detcd",
                        "rejected connection from \"{remote}\" (error \"{e}\")"
                    );
                }
                Err(_) => {
                    detcd_io::log!(
                        detcd_io::log::Level::Warn,
                        "detcd",
                        "rejected connection from \"{remote}\" (error \"TLS handshake timed out\")"
                    );
                }
            }
        });
    }
}

/// One accepted client connection, in plain text or after its TLS handshake.
#[derive(Debug)]
pub struct ClientConn {
    stream: Stream,
    info: ClientConnInfo,
}

#[derive(Debug)]
enum Stream {
    Plain(socket::Stream),
    Tls(Box<tokio_rustls::server::TlsStream<socket::Stream>>),
}

/// What a request can learn about its connection (a request extension).
#[derive(Debug, Clone)]
pub struct ClientConnInfo {
    pub remote_addr: Remote,
    /// Whether the connection is TLS (the host check applies to plain text only).
    pub tls: bool,
    /// The Common Name of the verified client certificate (TLS with client
    /// certificates only): etcd's user name when auth is on and no token is given.
    pub cert_common_name: Option<String>,
}

impl ClientConn {
    /// What requests on this connection learn about it.
    pub fn info(&self) -> &ClientConnInfo {
        &self.info
    }

    fn plain(stream: socket::Stream, remote_addr: Remote) -> Self {
        Self {
            stream: Stream::Plain(stream),
            info: ClientConnInfo {
                remote_addr,
                tls: false,
                cert_common_name: None,
            },
        }
    }

    fn tls(stream: tokio_rustls::server::TlsStream<socket::Stream>, remote_addr: Remote) -> Self {
        let cert_common_name = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(crate::tls::verify::common_name);
        Self {
            stream: Stream::Tls(Box::new(stream)),
            info: ClientConnInfo {
                remote_addr,
                tls: true,
                cert_common_name,
            },
        }
    }
}

impl Connected for ClientConn {
    type ConnectInfo = ClientConnInfo;

    fn connect_info(&self) -> ClientConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for ClientConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
