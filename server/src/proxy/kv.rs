//! The proxy's `etcdserverpb.KV`: each request up through the namespace, answered from
//! the range cache when it can be ([`super::cache`]), the cache kept in step with the
//! writes that go through (etcd's `grpcproxy/kv.go`).
//!
//! With `--experimental-serializable-ordering` a serializable range that answers with a
//! revision below one the proxy already returned is asked again at the next endpoint
//! (etcd's `clientv3/ordering`); when no endpoint has caught up, etcd's
//! `ErrNoGreaterRev`.

use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::kv_server::Kv;
use detcd_proto::etcdserverpb::request_op::Request as Op;
use detcd_proto::etcdserverpb::response_op::Response as OpAnswer;
use detcd_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
use std::sync::atomic::Ordering;

use tonic::{Request as Rpc, Response as Reply, Status};

use super::cache::{Miss, RangeCache};
use super::upstream::{client, forwarded, identity, with_metadata, Retry};
use super::Proxy;

/// The locked cache; `etcd_grpc_proxy_cache_keys_total` follows its size when released.
struct CacheGuard<'a> {
    cache: std::sync::MutexGuard<'a, RangeCache>,
    keys: &'a prometheus::IntGauge,
}

impl std::ops::Deref for CacheGuard<'_> {
    type Target = RangeCache;

    fn deref(&self) -> &RangeCache {
        &self.cache
    }
}

impl std::ops::DerefMut for CacheGuard<'_> {
    fn deref_mut(&mut self) -> &mut RangeCache {
        &mut self.cache
    }
}

impl Drop for CacheGuard<'_> {
    fn drop(&mut self) {
        self.keys.set(self.cache.len() as i64);
    }
}

/// etcd's `ordering.ErrNoGreaterRev` (`--experimental-serializable-ordering`).
pub const NO_GREATER_REVISION: &str =
    "etcdclient: no cluster members have a revision higher than the previously received revision";

/// etcd's `ErrGRPCCompacted`.
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

impl Proxy {
    fn cache(&self) -> CacheGuard<'_> {
        CacheGuard {
            cache: self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            keys: &self.metrics.cache_keys,
        }
    }

    /// Keeps the cache in step with the answered ops of a txn branch (etcd's `txnToCache`).
    fn txn_to_cache(&self, who: &[u8], ops: &[RequestOp], answers: &[ResponseOp]) {
        for (op, answer) in ops.iter().zip(answers) {
            match (&op.request, &answer.response) {
                (Some(Op::RequestPut(p)), Some(OpAnswer::ResponsePut(_))) => {
                    self.cache().invalidate(&p.key, &[])
                }
                (Some(Op::RequestDeleteRange(d)), Some(OpAnswer::ResponseDeleteRange(_))) => {
                    self.cache().invalidate(&d.key, &d.range_end)
                }
                (Some(Op::RequestRange(r)), Some(OpAnswer::ResponseRange(a))) => self.cache().add(who, r, a),
                (Some(Op::RequestTxn(t)), Some(OpAnswer::ResponseTxn(a))) => {
                    for c in &t.compare {
                        self.cache().invalidate(&c.key, &c.range_end);
                    }
                    let branch = if a.succeeded { &t.success } else { &t.failure };
                    self.txn_to_cache(who, branch, &a.responses);
                }
                _ => {}
            }
        }
    }
}

#[tonic::async_trait]
impl Kv for Proxy {
    async fn range(&self, r: Rpc<RangeRequest>) -> Result<Reply<RangeResponse>, Status> {
        let request = r.get_ref().clone();
        let who = identity(r.metadata());
        if request.serializable {
            match self.cache().get(&who, &request) {
                Ok(answer) => {
                    self.metrics.cache_hits.inc();
                    return Ok(Reply::new(answer));
                }
                Err(Miss::Compacted) => {
                    self.metrics.cache_hits.inc();
                    return Err(Status::out_of_range(COMPACTED));
                }
                Err(Miss::Absent) => self.metrics.cache_misses.inc(),
            }
        }
        let metadata = forwarded(r.metadata());
        let mut message = r.into_inner();
        self.ns.range_up(&mut message);
        let mut attempts = 0;
        let mut answer = loop {
            let answer = self
                .up
                .unary(
                    with_metadata(message.clone(), &metadata),
                    Retry::Read,
                    |ch, r| async move { client!(KvClient, ch).range(r).await },
                )
                .await?
                .into_inner();
            let Some(seen) = &self.ordering else { break answer };
            let revision = answer.header.as_ref().map_or(0, |h| h.revision);
            if !request.serializable || revision >= seen.load(Ordering::Relaxed) {
                seen.fetch_max(revision, Ordering::Relaxed);
                break answer;
            }
            // An endpoint behind what a client already saw: ask the next one.
            attempts += 1;
            if attempts >= self.up.len() {
                return Err(Status::unknown(NO_GREATER_REVISION));
            }
            self.up.failed(self.up.current().0);
        };
        self.ns.range_down(&mut answer);
        self.cache().add(&who, &request, &answer);
        Ok(Reply::new(answer))
    }

    async fn put(&self, r: Rpc<PutRequest>) -> Result<Reply<PutResponse>, Status> {
        self.cache().invalidate(&r.get_ref().key, &[]);
        let r = r.map(|mut m| {
            self.ns.put_up(&mut m);
            m
        });
        let mut answer = self
            .up
            .unary(r, Retry::Write, |ch, r| async move {
                client!(KvClient, ch).put(r).await
            })
            .await?
            .into_inner();
        self.ns.put_down(&mut answer);
        Ok(Reply::new(answer))
    }

    async fn delete_range(&self, r: Rpc<DeleteRangeRequest>) -> Result<Reply<DeleteRangeResponse>, Status> {
        self.cache().invalidate(&r.get_ref().key, &r.get_ref().range_end);
        let r = r.map(|mut m| {
            self.ns.delete_up(&mut m);
            m
        });
        let mut answer = self
            .up
            .unary(r, Retry::Write, |ch, r| async move {
                client!(KvClient, ch).delete_range(r).await
            })
            .await?
            .into_inner();
        self.ns.delete_down(&mut answer);
        Ok(Reply::new(answer))
    }

    async fn txn(&self, r: Rpc<TxnRequest>) -> Result<Reply<TxnResponse>, Status> {
        let request = r.get_ref().clone();
        let who = identity(r.metadata());
        let r = r.map(|mut m| {
            self.ns.txn_up(&mut m);
            m
        });
        let mut answer = self
            .up
            .unary(r, Retry::Write, |ch, r| async move {
                client!(KvClient, ch).txn(r).await
            })
            .await?
            .into_inner();
        self.ns.txn_down(&mut answer);
        for c in &request.compare {
            self.cache().invalidate(&c.key, &c.range_end);
        }
        let branch = if answer.succeeded {
            &request.success
        } else {
            &request.failure
        };
        self.txn_to_cache(&who, branch, &answer.responses);
        Ok(Reply::new(answer))
    }

    async fn compact(&self, r: Rpc<CompactionRequest>) -> Result<Reply<CompactionResponse>, Status> {
        let revision = r.get_ref().revision;
        let answer = self
            .up
            .unary(r, Retry::Write, |ch, r| async move {
                client!(KvClient, ch).compact(r).await
            })
            .await?;
        self.cache().compact(revision);
        Ok(answer)
    }
}
