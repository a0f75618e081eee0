//! The proxy's `etcdserverpb.Lease`.
//!
//! Grant, Revoke, TimeToLive and Leases pass through (TimeToLive's keys through the
//! namespace). Keepalives are coalesced, as etcd's lease proxy does: the proxy keeps one
//! upstream keepalive stream for all its clients, and at most one renewal per lease is
//! in flight on it. A client's renewal of a lease that another client (or stream) is
//! already renewing waits for that renewal's answer and gets it too: a hundred clients
//! keeping one lease alive cost the cluster one renewal at a time.
//!
//! When the upstream stream breaks (its member went away) it is opened again at the next
//! endpoint and the renewals still waiting are sent again.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::{Duration, Instant};

use detcd_proto::etcdserverpb::lease_client::LeaseClient;
use detcd_proto::etcdserverpb::lease_server::Lease;
use detcd_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use tokio::sync::{mpsc, oneshot};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::metadata::MetadataMap;
use tonic::{Request as Rpc, Response as Reply, Status, Streaming};

use super::upstream::{client, forwarded, with_metadata, Retry, Upstream};
use super::Proxy;

/// Renewals waiting for the shared stream.
const ASKS_QUEUED_MAX: usize = 1024;
/// Answers one client stream buffers.
const KEEPALIVE_RESPONSES_MAX: usize = 16;
/// How long a renewal waits for the cluster's answer before the client's stream fails.
const RENEWAL_TIMEOUT: Duration = Duration::from_secs(10);

type Answer = Result<LeaseKeepAliveResponse, Status>;

/// By lease: when its renewal was sent (`None`: not yet), and who waits for the answer.
type Waiting = BTreeMap<i64, (Option<Instant>, Vec<oneshot::Sender<Answer>>)>;

/// One client's renewal of lease `id`.
#[derive(Debug)]
struct Ask {
    id: i64,
    metadata: MetadataMap,
    reply: oneshot::Sender<Answer>,
}

/// The handle of the shared upstream keepalive stream's task.
#[derive(Debug, Clone)]
pub struct KeepAlives {
    asks: mpsc::Sender<Ask>,
}

impl KeepAlives {
    /// Starts the task that owns the upstream keepalive stream.
    pub fn start(up: Upstream, metrics: super::metrics::ProxyMetrics) -> KeepAlives {
        let (asks, rx) = mpsc::channel(ASKS_QUEUED_MAX);
        tokio::spawn(run(up, rx, metrics));
        KeepAlives { asks }
    }

    /// Renews lease `id` (sharing a renewal already in flight).
    async fn renew(&self, id: i64, metadata: MetadataMap) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.asks
            .send(Ask { id, metadata, reply })
            .await
            .map_err(|_| Status::unavailable("grpc-proxy: lease keepalive stopped"))?;
        match tokio::time::timeout(RENEWAL_TIMEOUT, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Status::unavailable("grpc-proxy: lease keepalive stopped")),
            Err(_) => Err(Status::unavailable("grpc-proxy: lease keepalive timed out")),
        }
    }
}

/// The shared upstream stream: its request side and its answers.
struct Shared {
    send: mpsc::Sender<LeaseKeepAliveRequest>,
    answers: Streaming<LeaseKeepAliveResponse>,
}

/// Opens the shared stream at the current endpoint, moving on from endpoints that
/// cannot be reached.
async fn open(up: &Upstream, metadata: &MetadataMap) -> Result<Shared, Status> {
    let mut last = Status::unavailable("no endpoints available");
    for _ in 0..up.len() {
        let (at, channel) = up.current();
        let (send, rx) = mpsc::channel(ASKS_QUEUED_MAX);
        let mut request = with_metadata(ReceiverStream::new(rx), metadata);
        request
            .metadata_mut()
            .insert("hasleader", "true".parse().expect("ascii"));
        match client!(LeaseClient, channel).lease_keep_alive(request).await {
            Ok(answers) => {
                return Ok(Shared {
                    send,
                    answers: answers.into_inner(),
                })
            }
            Err(e) => {
                up.failed(at);
                last = e;
            }
        }
    }
    Err(last)
}

async fn next_answer(shared: &mut Option<Shared>) -> Option<Answer> {
    match shared {
        Some(s) => s.answers.message().await.transpose(),
        None => std::future::pending().await,
    }
}

/// The task of the shared stream: one renewal per lease in flight, answers to everyone
/// waiting for that lease.
async fn run(up: Upstream, mut asks: mpsc::Receiver<Ask>, metrics: super::metrics::ProxyMetrics) {
    let mut waiting: Waiting = BTreeMap::new();
    let mut shared: Option<Shared> = None;
    let mut metadata = MetadataMap::new();
    loop {
        tokio::select! {
            ask = asks.recv() => {
                let Some(ask) = ask else { return };
                let (sent, replies) = waiting.entry(ask.id).or_insert_with(|| (None, Vec::new()));
                replies.push(ask.reply);
                // A renewal in flight answers this one too, unless its answer is overdue
                // (lost with a stalled stream): then it is sent again.
                if sent.is_some_and(|at| at.elapsed() < RENEWAL_TIMEOUT) {
                    metrics.keepalives_coalesced.inc();
                    continue;
                }
                *sent = Some(Instant::now());
                metadata = ask.metadata;
                if let Err(e) = send_renewal(&up, &mut shared, &metadata, ask.id).await {
                    fail_all(&mut waiting, &e);
                }
            }
            answer = next_answer(&mut shared) => match answer {
                Some(Ok(answer)) => {
                    let (_, replies) = waiting.remove(&answer.id).unwrap_or_default();
                    for reply in replies {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Some(Err(_)) | None => {
                    // The member went away: again on a new stream for what is waiting.
                    shared = None;
                    let ids: Vec<i64> = waiting.keys().copied().collect();
                    for id in ids {
                        if let Err(e) = send_renewal(&up, &mut shared, &metadata, id).await {
                            fail_all(&mut waiting, &e);
                            break;
                        }
                        if let Some((sent, _)) = waiting.get_mut(&id) {
                            *sent = Some(Instant::now());
                        }
                    }
                }
            }
        }
    }
}

/// Sends a renewal of `id` on the shared stream, opening it first when needed.
async fn send_renewal(
    up: &Upstream,
    shared: &mut Option<Shared>,
    metadata: &MetadataMap,
    id: i64,
) -> Result<(), Status> {
    for _ in 0..2 {
        if shared.is_none() {
            *shared = Some(open(up, metadata).await?);
        }
        if let Some(s) = shared {
            if s.send.send(LeaseKeepAliveRequest { id }).await.is_ok() {
                return Ok(());
            }
        }
        *shared = None;
    }
    Err(Status::unavailable(
        "grpc-proxy: cannot reach the cluster to renew the lease",
    ))
}

fn fail_all(waiting: &mut Waiting, e: &Status) {
    for (_, (_, replies)) in std::mem::take(waiting) {
        for reply in replies {
            let _ = reply.send(Err(e.clone()));
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Answer> + Send>>;

#[tonic::async_trait]
impl Lease for Proxy {
    async fn lease_grant(&self, r: Rpc<LeaseGrantRequest>) -> Result<Reply<LeaseGrantResponse>, Status> {
        self.up
            .unary(r, Retry::Write, |ch, r| async move {
                client!(LeaseClient, ch).lease_grant(r).await
            })
            .await
    }

    async fn lease_revoke(&self, r: Rpc<LeaseRevokeRequest>) -> Result<Reply<LeaseRevokeResponse>, Status> {
        self.up
            .unary(r, Retry::Write, |ch, r| async move {
                client!(LeaseClient, ch).lease_revoke(r).await
            })
            .await
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        r: Rpc<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Reply<KeepAliveStream>, Status> {
        let metadata = forwarded(r.metadata());
        let mut inbound = r.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_RESPONSES_MAX);
        let keepalives = self.keepalives.clone();
        tokio::spawn(async move {
            while let Ok(Some(request)) = inbound.message().await {
                let answer = keepalives.renew(request.id, metadata.clone()).await;
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Reply::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        r: Rpc<LeaseTimeToLiveRequest>,
    ) -> Result<Reply<LeaseTimeToLiveResponse>, Status> {
        let mut answer = self
            .up
            .unary(r, Retry::Read, |ch, r| async move {
                client!(LeaseClient, ch).lease_time_to_live(r).await
            })
            .await?;
        self.ns.lease_keys_down(&mut answer.get_mut().keys);
        Ok(answer)
    }

    async fn lease_leases(&self, r: Rpc<LeaseLeasesRequest>) -> Result<Reply<LeaseLeasesResponse>, Status> {
        self.up
            .unary(r, Retry::Read, |ch, r| async move {
                client!(LeaseClient, ch).lease_leases(r).await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use detcd_proto::etcdserverpb::lease_server::LeaseServer;
    use tonic::service::RoutesBuilder;

    use super::*;
    use crate::serve::{bind_client_urls, ClientServers};
    use crate::urls::Url;

    /// An upstream whose keepalives count renewals and answer each after a pause.
    #[derive(Debug, Clone, Default)]
    struct Counting {
        renewals: Arc<AtomicUsize>,
    }

    const UPSTREAM_DELAY: Duration = Duration::from_millis(300);

    #[tonic::async_trait]
    impl Lease for Counting {
        async fn lease_grant(&self, _: Rpc<LeaseGrantRequest>) -> Result<Reply<LeaseGrantResponse>, Status> {
            Err(Status::unimplemented("test upstream"))
        }

        async fn lease_revoke(
            &self,
            _: Rpc<LeaseRevokeRequest>,
        ) -> Result<Reply<LeaseRevokeResponse>, Status> {
            Err(Status::unimplemented("test upstream"))
        }

        type LeaseKeepAliveStream = KeepAliveStream;

        async fn lease_keep_alive(
            &self,
            r: Rpc<Streaming<LeaseKeepAliveRequest>>,
        ) -> Result<Reply<KeepAliveStream>, Status> {
            let mut inbound = r.into_inner();
            let (tx, rx) = mpsc::channel(16);
            let renewals = self.renewals.clone();
            tokio::spawn(async move {
                while let Ok(Some(request)) = inbound.message().await {
                    renewals.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(UPSTREAM_DELAY).await;
                    let answer = LeaseKeepAliveResponse {
                        id: request.id,
                        ttl: 60,
                        ..LeaseKeepAliveResponse::default()
                    };
                    if tx.send(Ok(answer)).await.is_err() {
                        break;
                    }
                }
            });
            Ok(Reply::new(Box::pin(ReceiverStream::new(rx))))
        }

        async fn lease_time_to_live(
            &self,
            _: Rpc<LeaseTimeToLiveRequest>,
        ) -> Result<Reply<LeaseTimeToLiveResponse>, Status> {
            Err(Status::unimplemented("test upstream"))
        }

        async fn lease_leases(
            &self,
            _: Rpc<LeaseLeasesRequest>,
        ) -> Result<Reply<LeaseLeasesResponse>, Status> {
            Err(Status::unimplemented("test upstream"))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_renewals_of_one_lease_cost_one_upstream_renewal() {
        let url = Url {
            scheme: "http".into(),
            host: "127.0.0.1:0".into(),
        };
        let listeners = bind_client_urls(&[url], None).await.expect("bind");
        let addr = listeners[0].local_addr().expect("addr");
        let upstream = Counting::default();
        let mut routes = RoutesBuilder::default();
        routes.add_service(LeaseServer::new(upstream.clone()));
        let servers = ClientServers::start(listeners, routes.routes());
        let up =
            Upstream::new(&[addr.to_string()], &crate::ctl::dial::ClientTls::default()).expect("upstream");
        let metrics = crate::proxy::metrics::ProxyMetrics::new();
        let keepalives = KeepAlives::start(up, metrics.clone());
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let k = keepalives.clone();
            clients.spawn(async move { k.renew(7, MetadataMap::new()).await });
        }
        while let Some(answer) = clients.join_next().await {
            let answer = answer.expect("task").expect("renewed");
            assert_eq!((answer.id, answer.ttl), (7, 60));
        }
        assert_eq!(upstream.renewals.load(Ordering::SeqCst), 1);
        assert_eq!(metrics.keepalives_coalesced.get(), 9);
        // The next renewal is a renewal of its own.
        keepalives.renew(7, MetadataMap::new()).await.expect("renewed");
        assert_eq!(upstream.renewals.load(Ordering::SeqCst), 2);
        servers.shutdown(async {}).await;
    }
}
