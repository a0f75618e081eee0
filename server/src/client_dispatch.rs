//! Which server takes a client connection: tonic's (HTTP/2: every gRPC client) or
//! hyper's HTTP/1 server with upgrades (curl, browsers, the gateway's WebSockets).
//!
//! Why two: tonic's server serves HTTP/1 connections without upgrades, so a WebSocket
//! handshake on the client port could never complete there. Rather than serving gRPC
//! with a server of our own (and carrying over every HTTP/2 setting and tonic's per-request
//! layers), the connection's first bytes decide: the HTTP/2 preface sends it to tonic's
//! server exactly as before (the same [`H2Conn`] stream, the bytes already read kept
//! in it), anything else is an HTTP/1 connection served here by hyper with upgrades, over
//! the same router. gRPC requests pay nothing per request for this; each connection
//! waits for its first bytes in a task of its own, so a silent client delays nobody.
//!
//! What tonic's server gave HTTP/1 connections, they get here: the connection's
//! [`ClientConnInfo`] as a request extension, hyper's default HTTP/1 settings with a timer
//! (so its 30 s header read timeout applies), graceful shutdown when the listener stops.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt as _;

use crate::h2_conn::H2Conn;
use crate::serve::ClientConn;

/// A connection on its way to tonic's HTTP/2 server: its `:authority` repaired, its
/// pings policed (`--grpc-keepalive-min-time`).
pub type Http2Conn = H2Conn<ClientConn>;

/// Hands each connection of one listener to the server that speaks its protocol.
pub struct Dispatch {
    http1: hyper::server::conn::http1::Builder,
    router: axum::Router,
    http2: mpsc::Sender<Result<Http2Conn, std::io::Error>>,
    stopped: watch::Receiver<bool>,
    /// Held by every open HTTP/1 connection; the listener waits for all to be dropped.
    open: mpsc::WeakSender<()>,
    /// `--grpc-keepalive-min-time`.
    ping_min_time: std::time::Duration,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch").finish_non_exhaustive()
    }
}

/// Resolves once every HTTP/1 connection a [`Dispatch`] served has ended.
#[derive(Debug)]
pub struct Http1Drained {
    open: Option<mpsc::Sender<()>>,
    closed: mpsc::Receiver<()>,
}

impl Http1Drained {
    pub async fn wait(mut self) {
        drop(self.open.take());
        while self.closed.recv().await.is_some() {}
    }
}

impl Dispatch {
    /// HTTP/2 connections go to `http2` (tonic's incoming stream); HTTP/1 ones are
    /// served with `router` until `stopped` turns true, then shut down gracefully.
    pub fn new(
        router: axum::Router,
        http2: mpsc::Sender<Result<Http2Conn, std::io::Error>>,
        stopped: watch::Receiver<bool>,
        ping_min_time: std::time::Duration,
    ) -> (Arc<Dispatch>, Http1Drained) {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // As tonic's server: hyper applies its HTTP/1 header read timeout only with a timer.
        http1.timer(TokioTimer::new());
        let (open, closed) = mpsc::channel(1);
        let dispatch = Dispatch {
            http1,
            router,
            http2,
            stopped,
            open: open.downgrade(),
            ping_min_time,
        };
        let drained = Http1Drained {
            open: Some(open),
            closed,
        };
        (Arc::new(dispatch), drained)
    }

    /// Resolves once the listener stops (its accept loop then ends, closing the socket).
    pub async fn stopping(&self) {
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// Serves one accepted connection (call it in a task of the connection's own).
    pub async fn serve(self: Arc<Self>, conn: ClientConn) {
        let mut conn = H2Conn::new(conn, self.ping_min_time);
        let mut stopped = self.stopped.clone();
        let http2 = tokio::select! {
            first = conn.starts_with_preface() => first,
            _ = stopped.wait_for(|s| *s) => return,
        };
        match http2 {
            Ok(true) => {
                let _ = self.http2.send(Ok(conn)).await;
            }
            Ok(false) => self.serve_http1(conn, stopped).await,
            Err(_) => {}
        }
    }

    async fn serve_http1(&self, conn: Http2Conn, mut stopped: watch::Receiver<bool>) {
        let Some(_open) = self.open.upgrade() else {
            return;
        };
        let info = conn.get_ref().info().clone();
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(info.clone());
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let served = self
            .http1
            .serve_connection(TokioIo::new(conn), service)
            .with_upgrades();
        tokio::pin!(served);
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = &mut served => return,
                _ = stopped.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
