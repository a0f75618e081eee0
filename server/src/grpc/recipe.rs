//! The server-side concurrency recipes the Lock and Election services are built from,
//! as etcd's `client/v3/concurrency` does them, over this member's own KV, lease and
//! watch (no client connection): a session lease, the key `<prefix><lease hex>`
//! created in a transaction, ownership by lowest create revision, and waiting for the
//! deletion of every older key under the prefix.
//!
//! Every request goes through [`Services::call_with`] with the caller's credentials,
//! so auth applies as for a client's own KV calls. Its errors come back as etcd's
//! server gets them from its in-process client: plain errors, so gRPC code Unknown
//! with etcd's message (`etcdserver: requested lease not found`, code 2).

use detcd_core::node::{Credentials, Request, Response};
use detcd_io::driver::WatchStreamRequest;
use detcd_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use detcd_proto::etcdserverpb::{
    request_op, response_op, Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse, WatchCreateRequest,
};
use detcd_proto::mvccpb::{event::EventType, KeyValue};
use tonic::Status;

use super::{mismatch, status, Services};

/// The TTL of the lease a Lock or Campaign without one gets (concurrency's
/// `defaultSessionTTL`); it is not kept alive (the server orphans its session).
pub const SESSION_TTL_S: i64 = 60;

/// etcd's `ErrElectionNotLeader`.
pub const NOT_LEADER: &str = "election: not leader";
/// etcd's `ErrElectionNoLeader`.
pub const NO_LEADER: &str = "election: no leader";

impl Services {
    /// Serves `request` as `credentials` (a task outliving the request's scope).
    pub(super) async fn call_with(
        &self,
        request: Request,
        credentials: &Credentials,
    ) -> Result<Response, Status> {
        self.handle
            .call_as(request, credentials.clone())
            .await
            .map_err(unknown)
    }

    /// The lease a session uses: `lease`, or a new one of [`SESSION_TTL_S`] for 0.
    pub(super) async fn session_lease(&self, lease: i64, who: &Credentials) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let grant = LeaseGrantRequest {
            ttl: SESSION_TTL_S,
            id: 0,
        };
        match self.call_with(Request::LeaseGrant(grant), who).await? {
            Response::LeaseGrant(r) if r.error.is_empty() => Ok(r.id),
            Response::LeaseGrant(r) => Err(Status::unknown(r.error)),
            _ => Err(mismatch("LeaseGrant")),
        }
    }

    pub(super) async fn txn(&self, txn: TxnRequest, who: &Credentials) -> Result<TxnResponse, Status> {
        match self.call_with(Request::Txn(txn), who).await? {
            Response::Txn(r) => Ok(r),
            _ => Err(mismatch("Txn")),
        }
    }

    pub(super) async fn range(
        &self,
        range: RangeRequest,
        who: &Credentials,
    ) -> Result<RangeResponse, Status> {
        match self.call_with(Request::Range(range), who).await? {
            Response::Range(r) => Ok(r),
            _ => Err(mismatch("Range")),
        }
    }

    /// Deletes `key`; the answer's header.
    pub(super) async fn delete_key(
        &self,
        key: &[u8],
        who: &Credentials,
    ) -> Result<Option<ResponseHeader>, Status> {
        let delete = DeleteRangeRequest {
            key: key.to_vec(),
            ..DeleteRangeRequest::default()
        };
        match self.call_with(Request::DeleteRange(delete), who).await? {
            Response::DeleteRange(r) => Ok(r.header),
            _ => Err(mismatch("DeleteRange")),
        }
    }

    /// The key under `prefix` with the lowest (`first`) or highest create revision,
    /// only among those created at or before `max_create_rev` when it is not 0.
    pub(super) async fn owner(
        &self,
        prefix: &[u8],
        first: bool,
        max_create_rev: i64,
        who: &Credentials,
    ) -> Result<RangeResponse, Status> {
        self.range(by_create(prefix, first, max_create_rev), who).await
    }

    /// Waits until every key under `prefix` created at or before `max_create_rev` is
    /// gone (etcd's `waitDeletes`); the header of the last read.
    pub(super) async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_rev: i64,
        who: &Credentials,
    ) -> Result<Option<ResponseHeader>, Status> {
        loop {
            let newest = self.owner(prefix, false, max_create_rev, who).await?;
            let Some(kv) = newest.kvs.first() else {
                return Ok(newest.header);
            };
            let revision = newest.header.as_ref().map_or(0, |h| h.revision);
            self.wait_delete(&kv.key, revision, who).await?;
        }
    }

    /// Waits for a delete of `key` at or after `revision`.
    async fn wait_delete(&self, key: &[u8], revision: i64, who: &Credentials) -> Result<(), Status> {
        let mut watch = self.watch_key(key, false, revision, who).await?;
        loop {
            let Some(response) = watch.recv().await else {
                return Err(status(detcd_core::error::STOPPED));
            };
            if response.canceled {
                return Err(Status::unknown(response.cancel_reason));
            }
            if response
                .events
                .iter()
                .any(|e| e.r#type == EventType::Delete as i32)
            {
                return Ok(());
            }
        }
    }

    /// A watch on `key` (or the prefix `key` with `prefix`) from `revision`.
    pub(super) async fn watch_key(
        &self,
        key: &[u8],
        prefix: bool,
        revision: i64,
        who: &Credentials,
    ) -> Result<detcd_io::driver::WatchStream, Status> {
        let mut watch = self.handle.open_watch_stream().await;
        watch.set_credentials(who.clone());
        let create = WatchCreateRequest {
            key: key.to_vec(),
            range_end: if prefix {
                detcd_core::mvcc::prefix_end(key)
            } else {
                Vec::new()
            },
            start_revision: revision,
            ..WatchCreateRequest::default()
        };
        watch
            .send(WatchStreamRequest::Create(create))
            .await
            .map_err(unknown)?;
        Ok(watch)
    }
}

/// An etcd error as the recipe's caller sees it: code Unknown, etcd's message.
fn unknown(e: detcd_core::error::EtcdError) -> Status {
    Status::unknown(e.message)
}

/// A read of the key under `prefix` by create revision, lowest first or highest first,
/// at most one.
fn by_create(prefix: &[u8], first: bool, max_create_rev: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: detcd_core::mvcc::prefix_end(prefix),
        limit: 1,
        sort_order: if first {
            SortOrder::Ascend
        } else {
            SortOrder::Descend
        } as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision: max_create_rev,
        ..RangeRequest::default()
    }
}

/// `<name>/` (the prefix of a lock's or election's keys).
pub fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// `<prefix><lease in lower-case hex>`: one session's key.
pub fn session_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

/// A comparison that `key`'s create revision equals `revision` (0: absent).
pub fn created_at(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
    }
}

pub fn put_op(put: PutRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put)),
    }
}

pub fn range_op(range: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(range)),
    }
}

pub fn get_op(key: &[u8]) -> RequestOp {
    range_op(RangeRequest {
        key: key.to_vec(),
        ..RangeRequest::default()
    })
}

pub fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            ..DeleteRangeRequest::default()
        })),
    }
}

/// The first key-value of the `index`th response of a transaction, if it was a read.
pub fn txn_kv(txn: &TxnResponse, index: usize) -> Option<&KeyValue> {
    match txn.responses.get(index)?.response.as_ref()? {
        response_op::Response::ResponseRange(r) => r.kvs.first(),
        _ => None,
    }
}

/// The lowest-create-revision read of `prefix` as a transaction operation.
pub fn owner_op(prefix: &[u8]) -> RequestOp {
    range_op(by_create(prefix, true, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_etcds() {
        assert_eq!(prefix_of(b"mylock"), b"mylock/");
        assert_eq!(session_key(b"mylock/", 0x694d_7a8b_1c2f), b"mylock/694d7a8b1c2f");
        let read = by_create(b"p/", false, 7);
        assert_eq!(read.range_end, b"p0");
        assert_eq!(read.sort_order, SortOrder::Descend as i32);
        assert_eq!(read.max_create_revision, 7);
    }
}
