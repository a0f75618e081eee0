//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact.

use detcd_core::node::Request;
use detcd_proto::etcdserverpb::kv_server::Kv;
use detcd_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::{Request as Rpc, Response as Reply, Status};

use super::{unwrap_response, Services};

#[tonic::async_trait]
impl Kv for Services {
    async fn range(&self, r: Rpc<RangeRequest>) -> Result<Reply<RangeResponse>, Status> {
        unwrap_response!(self.call(Request::Range(r.into_inner())).await, Range)
    }

    async fn put(&self, r: Rpc<PutRequest>) -> Result<Reply<PutResponse>, Status> {
        unwrap_response!(self.call(Request::Put(r.into_inner())).await, Put)
    }

    async fn delete_range(&self, r: Rpc<DeleteRangeRequest>) -> Result<Reply<DeleteRangeResponse>, Status> {
        unwrap_response!(self.call(Request::DeleteRange(r.into_inner())).await, DeleteRange)
    }

    async fn txn(&self, r: Rpc<TxnRequest>) -> Result<Reply<TxnResponse>, Status> {
        unwrap_response!(self.call(Request::Txn(r.into_inner())).await, Txn)
    }

    async fn compact(&self, r: Rpc<CompactionRequest>) -> Result<Reply<CompactionResponse>, Status> {
        unwrap_response!(self.call(Request::Compact(r.into_inner())).await, Compact)
    }
}
