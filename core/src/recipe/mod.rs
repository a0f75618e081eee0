//! The concurrency recipes behind etcd's Lock and Election services, as pure state
//! machines: etcd's `client/v3/concurrency` (a session lease, the key
//! `<name>/<lease hex>` created in a transaction, ownership by lowest create
//! revision, waiting for the deletion of every older key under the prefix) written
//! as requests to make and answers to consume, with no I/O.
//!
//! A machine answers each step with an [`Action`]: a request to serve as the caller
//! ([`Action::Call`], its answer goes to [`Recipe::on_answer`]), a wait for the
//! deletion of a key ([`Action::WaitDeleted`], then [`Recipe::on_deleted`]), or the
//! final answer or etcd's error ([`Action::Done`]). A driver that gets an error from
//! a request stops and answers it (etcd's in-process client does the same); a
//! machine that created its key and did not finish names it in
//! [`Recipe::cleanup_key`] so the driver deletes it, as etcd's server does for an
//! abandoned Lock or Campaign.
//!
//! The server's services ([`lock`], [`election`]) and the simulator drive the same
//! machines; the server waits with a watch, the simulator may poll.

pub mod election;
pub mod lock;
mod wait;

use std::fmt;

use detcd_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use detcd_proto::etcdserverpb::{
    request_op, response_op, Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest,
    RequestOp, TxnResponse,
};
use detcd_proto::mvccpb::KeyValue;

use crate::node::{Request, Response};

/// The TTL of the lease a Lock or Campaign without one gets (concurrency's
/// `defaultSessionTTL`); it is not kept alive (the server orphans its session).
pub const SESSION_TTL_S: i64 = 60;

/// What a recipe asks its driver to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<T> {
    /// Serve this request as the caller and feed the answer to [`Recipe::on_answer`].
    Call(Request),
    /// Wait until `key` is deleted at or after `revision` (a watch from
    /// `revision`), then call [`Recipe::on_deleted`].
    WaitDeleted { key: Vec<u8>, revision: i64 },
    /// The recipe's answer, or etcd's error.
    Done(Result<T, RecipeError>),
}

/// The errors a recipe ends with (each sent as gRPC code Unknown with
/// [`RecipeError::message`], as etcd's server does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipeError {
    /// etcd's `ErrElectionNotLeader`.
    NotLeader,
    /// etcd's `ErrElectionNoLeader`.
    NoLeader,
    /// concurrency's `ErrSessionExpired`: the lease expired while waiting.
    SessionExpired,
    /// etcd's `ErrMissingLeaderKey`.
    MissingLeaderKey,
    /// The session's lease grant failed with this message.
    LeaseGrant(String),
    /// An Observe watch was canceled with this reason.
    WatchCanceled(String),
    /// An answer of the wrong kind to the request the recipe made (a driver bug).
    Mismatch(&'static str),
}

impl RecipeError {
    /// etcd's words for the error.
    pub fn message(&self) -> String {
        match self {
            RecipeError::NotLeader => "election: not leader".to_string(),
            RecipeError::NoLeader => "election: no leader".to_string(),
            RecipeError::SessionExpired => "mutex: session is expired".to_string(),
            RecipeError::MissingLeaderKey => "\"leader\" field must be provided".to_string(),
            RecipeError::LeaseGrant(m) | RecipeError::WatchCanceled(m) => m.clone(),
            RecipeError::Mismatch(what) => format!("recipe: unexpected answer to {what}"),
        }
    }
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for RecipeError {}

/// One Lock, Unlock, Campaign, Proclaim, Leader or Resign in progress.
pub trait Recipe {
    /// The service's answer.
    type Output;
    /// The first action.
    fn start(&mut self) -> Action<Self::Output>;
    /// The answer to the last [`Action::Call`].
    fn on_answer(&mut self, answer: Response) -> Action<Self::Output>;
    /// The key of the last [`Action::WaitDeleted`] is gone.
    fn on_deleted(&mut self) -> Action<Self::Output> {
        Action::Done(Err(RecipeError::Mismatch("a wait this recipe never asked for")))
    }
    /// The key to delete if the driver stops here (an error, or a caller that went
    /// away): the session key a Lock or Campaign created and has not handed over.
    fn cleanup_key(&self) -> Option<&[u8]> {
        None
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

/// The grant of a session lease of [`SESSION_TTL_S`].
fn session_grant() -> Request {
    Request::LeaseGrant(LeaseGrantRequest {
        ttl: SESSION_TTL_S,
        id: 0,
    })
}

/// The lease of a grant's answer, or the grant's error.
fn granted(answer: Response) -> Result<i64, RecipeError> {
    match answer {
        Response::LeaseGrant(r) if r.error.is_empty() => Ok(r.id),
        Response::LeaseGrant(r) => Err(RecipeError::LeaseGrant(r.error)),
        _ => Err(RecipeError::Mismatch("LeaseGrant")),
    }
}

/// A read of the key under `prefix` by create revision, lowest first or highest
/// first, at most one, only among those created at or before `max_create_rev` when
/// it is not 0.
pub fn by_create(prefix: &[u8], first: bool, max_create_rev: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: crate::mvcc::prefix_end(prefix),
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

/// A plain read of `key`.
fn get(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..RangeRequest::default()
    }
}

/// A delete of `key`.
fn delete(key: &[u8]) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: key.to_vec(),
        ..DeleteRangeRequest::default()
    }
}

/// A comparison that `key`'s create revision equals `revision` (0: absent).
fn created_at(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
    }
}

fn put_op(put: PutRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put)),
    }
}

fn range_op(range: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(range)),
    }
}

fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(delete(key))),
    }
}

/// The first key-value of the `index`th response of a transaction, if it was a read.
fn txn_kv(txn: &TxnResponse, index: usize) -> Option<&KeyValue> {
    match txn.responses.get(index)?.response.as_ref()? {
        response_op::Response::ResponseRange(r) => r.kvs.first(),
        _ => None,
    }
}

/// The revision of an answer's header (0 without one).
fn revision_of(header: Option<&detcd_proto::etcdserverpb::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision)
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
