//! Txn: validation (etcd's gRPC-layer checks and apply-time checks), compares, and
//! execution of the chosen branch, nested txns included.
//!
//! Order of checks, as etcd: shape (op count, empty keys, per-op checks, recursively),
//! then the duplicate-key rule for each branch, then every compare (all against the
//! state before the txn, nested ones too), then put and range checks along the taken
//! path, and only then the writes. A txn that changes nothing keeps the revision.

use std::collections::BTreeSet;

use detcd_proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
    response_op::Response,
    Compare, PutRequest, RangeRequest, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
use detcd_proto::mvccpb::KeyValue;

use super::store::{check_delete, check_put, check_range, header, Applied, Store, Writes};
use crate::error::{self, EtcdError};

impl Store {
    /// Serves a `Txn`. `lease_exists` answers whether a lease ID is granted.
    ///
    /// One deliberate difference from etcd: a delete with `range_end = "\0"` is not
    /// seen by etcd's duplicate-key rule, so a put with `ignore_value`/`ignore_lease`
    /// of a key that delete removed passes validation and then fails mid-txn, where
    /// etcd panics. Here the txn is rolled back and `KEY_NOT_FOUND` returned.
    pub fn txn(
        &mut self,
        req: &TxnRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<Applied<TxnResponse>, EtcdError> {
        check_txn(req, self.config.txn_ops_max)?;
        check_intervals(&req.success)?;
        check_intervals(&req.failure)?;
        let mut path = Vec::new();
        self.compare_to_path(req, &mut path);
        let mut pos = 0;
        self.check_taken(req, &path, &mut pos, lease_exists)?;
        let mut w = self.begin();
        let mut pos = 0;
        match self.execute(&mut w, req, &path, &mut pos) {
            Ok(mut response) => {
                response.header = header(w.read_rev());
                Ok(Applied {
                    response,
                    events: self.commit(w),
                })
            }
            Err(e) => {
                self.rollback(w);
                Err(e)
            }
        }
    }

    fn compare_to_path(&self, req: &TxnRequest, path: &mut Vec<bool>) {
        let ok = req.compare.iter().all(|c| self.compare(c));
        path.push(ok);
        let ops = if ok { &req.success } else { &req.failure };
        for op in ops {
            if let Some(Request::RequestTxn(t)) = &op.request {
                self.compare_to_path(t, path);
            }
        }
    }

    /// etcd's `applyCompare`: every key of the range must satisfy the compare; an empty
    /// range compares a zero-valued key, except on VALUE, which then always fails.
    fn compare(&self, c: &Compare) -> bool {
        let (kvs, _) = self.kvs_at(&c.key, &c.range_end, self.current_rev, 0);
        if kvs.is_empty() {
            if c.target == CompareTarget::Value as i32 {
                return false;
            }
            return compare_kv(c, &KeyValue::default());
        }
        kvs.iter().all(|kv| compare_kv(c, kv))
    }

    /// Put and range checks along the taken path, in op order, against the state
    /// before the txn.
    fn check_taken(
        &self,
        req: &TxnRequest,
        path: &[bool],
        pos: &mut usize,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<(), EtcdError> {
        let ops = if path[*pos] { &req.success } else { &req.failure };
        *pos += 1;
        for op in ops {
            match &op.request {
                Some(Request::RequestRange(r)) => self.check_txn_range(r)?,
                Some(Request::RequestPut(p)) => self.check_txn_put(p, lease_exists)?,
                Some(Request::RequestTxn(t)) => self.check_taken(t, path, pos, lease_exists)?,
                Some(Request::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
    }

    fn check_txn_range(&self, r: &RangeRequest) -> Result<(), EtcdError> {
        match r.revision {
            0 => Ok(()),
            rev if rev > self.current_rev => Err(error::FUTURE_REV),
            rev if rev < self.compact_rev => Err(error::COMPACTED),
            _ => Ok(()),
        }
    }

    fn check_txn_put(&self, p: &PutRequest, lease_exists: &dyn Fn(i64) -> bool) -> Result<(), EtcdError> {
        if (p.ignore_value || p.ignore_lease) && self.kv_at(&p.key, self.current_rev).is_none() {
            return Err(error::KEY_NOT_FOUND);
        }
        if p.lease != 0 && !lease_exists(p.lease) {
            return Err(error::LEASE_NOT_FOUND);
        }
        Ok(())
    }

    fn execute(
        &mut self,
        w: &mut Writes,
        req: &TxnRequest,
        path: &[bool],
        pos: &mut usize,
    ) -> Result<TxnResponse, EtcdError> {
        let succeeded = path[*pos];
        *pos += 1;
        let ops = if succeeded { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(Request::RequestRange(r)) => {
                    Some(Response::ResponseRange(self.range_at(r, w.read_rev())?))
                }
                Some(Request::RequestPut(p)) => Some(Response::ResponsePut(self.put_in(w, p)?)),
                Some(Request::RequestDeleteRange(d)) => {
                    Some(Response::ResponseDeleteRange(self.delete_in(w, d)))
                }
                Some(Request::RequestTxn(t)) => Some(Response::ResponseTxn(self.execute(w, t, path, pos)?)),
                None => None,
            };
            responses.push(ResponseOp { response });
        }
        // Nested txn responses carry an empty header, as in etcd; the caller sets the top one.
        Ok(TxnResponse {
            header: header(0),
            succeeded,
            responses,
        })
    }
}

/// etcd's `compareKV`: the request's target value is read from the matching union
/// member, zero when another member (or none) is set.
fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ordering = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        Ok(CompareTarget::Create) => {
            let want = match c.target_union {
                Some(TargetUnion::CreateRevision(v)) => v,
                _ => 0,
            };
            kv.create_revision.cmp(&want)
        }
        Ok(CompareTarget::Mod) => {
            let want = match c.target_union {
                Some(TargetUnion::ModRevision(v)) => v,
                _ => 0,
            };
            kv.mod_revision.cmp(&want)
        }
        Ok(CompareTarget::Version) => {
            let want = match c.target_union {
                Some(TargetUnion::Version(v)) => v,
                _ => 0,
            };
            kv.version.cmp(&want)
        }
        Ok(CompareTarget::Lease) => {
            let want = match c.target_union {
                Some(TargetUnion::Lease(v)) => v,
                _ => 0,
            };
            kv.lease.cmp(&want)
        }
        Err(_) => std::cmp::Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ordering.is_eq(),
        Ok(CompareResult::NotEqual) => ordering.is_ne(),
        Ok(CompareResult::Greater) => ordering.is_gt(),
        Ok(CompareResult::Less) => ordering.is_lt(),
        Err(_) => true,
    }
}

/// etcd's `checkTxnRequest`: op counts against `ops_max`, keys present, each op valid.
pub(crate) fn check_txn(req: &TxnRequest, ops_max: usize) -> Result<(), EtcdError> {
    let ops = req.compare.len().max(req.success.len()).max(req.failure.len());
    if ops > ops_max {
        return Err(error::TOO_MANY_OPS);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(error::KEY_NOT_PROVIDED);
    }
    for op in req.success.iter().chain(&req.failure) {
        match &op.request {
            Some(Request::RequestRange(r)) => check_range(r)?,
            Some(Request::RequestPut(p)) => check_put(p)?,
            Some(Request::RequestDeleteRange(d)) => check_delete(d)?,
            Some(Request::RequestTxn(t)) => check_txn(t, ops_max)?,
            None => return Err(error::KEY_NOT_PROVIDED),
        }
    }
    Ok(())
}

/// A delete's span as etcd's duplicate check sees it: `[key, range_end)` compared
/// bytewise (so `range_end = "\0"` covers nothing, as in etcd), or the key alone.
#[derive(Clone, Debug)]
struct DeleteSpan {
    key: Vec<u8>,
    range_end: Vec<u8>,
}

impl DeleteSpan {
    fn covers(&self, k: &[u8]) -> bool {
        if self.range_end.is_empty() {
            k == self.key.as_slice()
        } else {
            self.key.as_slice() <= k && k < self.range_end.as_slice()
        }
    }
}

/// etcd's `checkIntervals`: within one branch (nested txns included) a key may be put
/// once and not also be deleted; the two branches of a nested txn may put the same key.
fn check_intervals(ops: &[RequestOp]) -> Result<(BTreeSet<Vec<u8>>, Vec<DeleteSpan>), EtcdError> {
    let mut dels: Vec<DeleteSpan> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(DeleteSpan {
                key: d.key.clone(),
                range_end: d.range_end.clone(),
            }),
            _ => None,
        })
        .collect();
    let mut puts: BTreeSet<Vec<u8>> = BTreeSet::new();
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || dels.iter().any(|d| d.covers(k)) {
                return Err(error::DUPLICATE_KEY);
            }
            puts.insert(k.clone());
        }
        for k in puts_else {
            if puts.contains(&k) && !puts_then.contains(&k) {
                return Err(error::DUPLICATE_KEY);
            }
            if dels.iter().any(|d| d.covers(&k)) {
                return Err(error::DUPLICATE_KEY);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || dels.iter().any(|d| d.covers(&p.key)) {
            return Err(error::DUPLICATE_KEY);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}
