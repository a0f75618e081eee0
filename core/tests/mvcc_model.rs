//! Property test: the store against a deliberately naive model that keeps a list of
//! every write ever made and answers each query by scanning it. Same responses
//! (revisions, counts, `more`), same events, same errors.

use detcd_core::error::{self, EtcdError};
use detcd_core::mvcc::{Applied, Store, StoreConfig};
use detcd_proto::etcdserverpb::{
    compare::TargetUnion, request_op::Request, response_op::Response, CompactionRequest, Compare,
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use detcd_proto::mvccpb::{Event, KeyValue};
use proptest::prelude::*;

const TXN_OPS_MAX: usize = 3;
const LEASES_GRANTED: [i64; 2] = [7, 8];

fn lease_exists(id: i64) -> bool {
    LEASES_GRANTED.contains(&id)
}

/// A delete's `(key, range_end)`.
type Span = (Vec<u8>, Vec<u8>);

#[derive(Clone, Debug)]
struct Write {
    main: i64,
    sub: i64,
    key: Vec<u8>,
    /// None for a delete.
    put: Option<(Vec<u8>, i64)>,
}

/// Every write ever made, in order, plus the two counters.
#[derive(Clone, Debug)]
struct Model {
    writes: Vec<Write>,
    current: i64,
    compacted: i64,
}

fn hdr(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

fn contains(key: &[u8], end: &[u8], k: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == [0] {
        k >= key
    } else {
        key <= k && k < end
    }
}

impl Model {
    fn new() -> Self {
        Model {
            writes: Vec::new(),
            current: 1,
            compacted: -1,
        }
    }

    /// The key as of `rev`, by replaying its writes up to there.
    fn kv_at(&self, key: &[u8], rev: i64, pending: &[Write]) -> Option<KeyValue> {
        let mut kv: Option<KeyValue> = None;
        for w in self
            .writes
            .iter()
            .chain(pending)
            .filter(|w| w.key == key && w.main <= rev)
        {
            kv = match (&w.put, kv) {
                (None, _) => None,
                (Some((value, lease)), prev) => Some(KeyValue {
                    key: key.to_vec(),
                    create_revision: prev.as_ref().map_or(w.main, |p| p.create_revision),
                    mod_revision: w.main,
                    version: prev.as_ref().map_or(1, |p| p.version + 1),
                    value: value.clone(),
                    lease: *lease,
                }),
            };
        }
        kv
    }

    fn live(&self, key: &[u8], end: &[u8], rev: i64, pending: &[Write]) -> Vec<KeyValue> {
        let mut keys: Vec<Vec<u8>> = self
            .writes
            .iter()
            .chain(pending)
            .map(|w| w.key.clone())
            .filter(|k| contains(key, end, k))
            .collect();
        keys.sort();
        keys.dedup();
        keys.iter().filter_map(|k| self.kv_at(k, rev, pending)).collect()
    }

    fn range(&self, r: &RangeRequest, cur: i64, pending: &[Write]) -> Result<RangeResponse, EtcdError> {
        let rev = if r.revision > cur {
            return Err(error::FUTURE_REV);
        } else if r.revision <= 0 {
            cur
        } else {
            r.revision
        };
        if rev < self.compacted {
            return Err(error::COMPACTED);
        }
        let all = self.live(&r.key, &r.range_end, rev, pending);
        let count = all.len() as i64;
        let mut kvs: Vec<KeyValue> = if r.count_only { Vec::new() } else { all };
        // etcd fetches only limit + 1 keys (in key order) unless a sort order or a
        // filter is given, and sorts those: with order NONE and a non-KEY target the
        // sort only reorders that prefix.
        let unfiltered = r.min_mod_revision == 0
            && r.max_mod_revision == 0
            && r.min_create_revision == 0
            && r.max_create_revision == 0;
        if r.sort_order == 0 && unfiltered && r.limit > 0 {
            kvs.truncate(r.limit as usize + 1);
        }
        kvs.retain(|kv| {
            (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
                && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
                && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
                && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
        });
        let order = if r.sort_order == 0 && r.sort_target != 0 {
            1
        } else {
            r.sort_order
        };
        if order != 0 {
            kvs.sort_by(|a, b| {
                let o = match r.sort_target {
                    0 => a.key.cmp(&b.key),
                    1 => a.version.cmp(&b.version),
                    2 => a.create_revision.cmp(&b.create_revision),
                    3 => a.mod_revision.cmp(&b.mod_revision),
                    _ => a.value.cmp(&b.value),
                };
                if order == 2 {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let more = r.limit > 0 && kvs.len() as i64 > r.limit;
        if more {
            kvs.truncate(r.limit as usize);
        }
        if r.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        Ok(RangeResponse {
            header: hdr(cur),
            kvs,
            more,
            count,
        })
    }

    fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
        if r.key.is_empty() {
            return Err(error::KEY_NOT_PROVIDED);
        }
        if !(0..=2).contains(&r.sort_order) || !(0..=4).contains(&r.sort_target) {
            return Err(error::INVALID_SORT_OPTION);
        }
        Ok(())
    }

    fn check_put(p: &PutRequest) -> Result<(), EtcdError> {
        if p.key.is_empty() {
            Err(error::KEY_NOT_PROVIDED)
        } else if p.ignore_value && !p.value.is_empty() {
            Err(error::VALUE_PROVIDED)
        } else if p.ignore_lease && p.lease != 0 {
            Err(error::LEASE_PROVIDED)
        } else {
            Ok(())
        }
    }

    /// Puts and deletes applied to `pending`, revisions after `self.current`.
    fn do_put(&self, p: &PutRequest, pending: &mut Vec<Write>) -> Result<PutResponse, EtcdError> {
        let read = if pending.is_empty() {
            self.current
        } else {
            self.current + 1
        };
        let prev = self.kv_at(&p.key, read, pending);
        if (p.ignore_value || p.ignore_lease) && prev.is_none() {
            return Err(error::KEY_NOT_FOUND);
        }
        let value = if p.ignore_value {
            prev.as_ref().unwrap().value.clone()
        } else {
            p.value.clone()
        };
        let lease = if p.ignore_lease {
            prev.as_ref().unwrap().lease
        } else {
            p.lease
        };
        pending.push(Write {
            main: self.current + 1,
            sub: pending.len() as i64,
            key: p.key.clone(),
            put: Some((value, lease)),
        });
        Ok(PutResponse {
            header: hdr(self.current + 1),
            prev_kv: if p.prev_kv { prev } else { None },
        })
    }

    fn do_delete(&self, d: &DeleteRangeRequest, pending: &mut Vec<Write>) -> DeleteRangeResponse {
        let read = if pending.is_empty() {
            self.current
        } else {
            self.current + 1
        };
        let live = self.live(&d.key, &d.range_end, read, pending);
        for kv in &live {
            pending.push(Write {
                main: self.current + 1,
                sub: pending.len() as i64,
                key: kv.key.clone(),
                put: None,
            });
        }
        let rev = if pending.is_empty() {
            self.current
        } else {
            self.current + 1
        };
        DeleteRangeResponse {
            header: hdr(rev),
            deleted: live.len() as i64,
            prev_kvs: if d.prev_kv { live } else { vec![] },
        }
    }

    fn events(&self, pending: &[Write]) -> Vec<Event> {
        pending
            .iter()
            .enumerate()
            .map(|(i, w)| {
                assert_eq!(w.sub, i as i64);
                let prev = self.kv_at(&w.key, self.current, &[]);
                let kv = match &w.put {
                    Some(_) => self.kv_at(&w.key, w.main, &pending[..=i]).unwrap(),
                    None => KeyValue {
                        key: w.key.clone(),
                        mod_revision: w.main,
                        ..Default::default()
                    },
                };
                Event {
                    r#type: if w.put.is_some() { 0 } else { 1 },
                    kv: Some(kv),
                    prev_kv: prev,
                }
            })
            .collect()
    }

    fn commit(&mut self, pending: Vec<Write>) {
        if !pending.is_empty() {
            self.current += 1;
            self.writes.extend(pending);
        }
    }

    fn compare(&self, c: &Compare) -> bool {
        let kvs = self.live(&c.key, &c.range_end, self.current, &[]);
        if kvs.is_empty() && c.target == 3 {
            return false;
        }
        let zero = [KeyValue::default()];
        let kvs: &[KeyValue] = if kvs.is_empty() { &zero } else { &kvs };
        kvs.iter().all(|kv| {
            let o = match (c.target, &c.target_union) {
                (0, Some(TargetUnion::Version(v))) => kv.version.cmp(v),
                (0, _) => kv.version.cmp(&0),
                (1, Some(TargetUnion::CreateRevision(v))) => kv.create_revision.cmp(v),
                (1, _) => kv.create_revision.cmp(&0),
                (2, Some(TargetUnion::ModRevision(v))) => kv.mod_revision.cmp(v),
                (2, _) => kv.mod_revision.cmp(&0),
                (3, Some(TargetUnion::Value(v))) => kv.value.cmp(v),
                (3, _) => kv.value.as_slice().cmp(&[][..]),
                (_, Some(TargetUnion::Lease(v))) => kv.lease.cmp(v),
                (_, _) => kv.lease.cmp(&0),
            };
            match c.result {
                0 => o.is_eq(),
                1 => o.is_gt(),
                2 => o.is_lt(),
                _ => o.is_ne(),
            }
        })
    }

    fn check_txn(t: &TxnRequest) -> Result<(), EtcdError> {
        if t.compare.len().max(t.success.len()).max(t.failure.len()) > TXN_OPS_MAX {
            return Err(error::TOO_MANY_OPS);
        }
        if t.compare.iter().any(|c| c.key.is_empty()) {
            return Err(error::KEY_NOT_PROVIDED);
        }
        for op in t.success.iter().chain(&t.failure) {
            match op.request.as_ref().unwrap() {
                Request::RequestRange(r) => Self::check_range(r)?,
                Request::RequestPut(p) => Self::check_put(p)?,
                Request::RequestDeleteRange(d) if d.key.is_empty() => return Err(error::KEY_NOT_PROVIDED),
                Request::RequestDeleteRange(_) => {}
                Request::RequestTxn(n) => Self::check_txn(n)?,
            }
        }
        Ok(())
    }

    /// The keys a branch may put and the deletes it may do, rejecting duplicates:
    /// a key put twice (except once in each branch of one nested txn) or put and
    /// deleted. A delete with end "\0" is invisible to the rule, as in etcd.
    fn branch_keys(ops: &[RequestOp]) -> Result<(Vec<Vec<u8>>, Vec<Span>), EtcdError> {
        let deleted = |dels: &[Span], k: &[u8]| {
            dels.iter().any(|(key, end)| {
                if end.is_empty() {
                    key == k
                } else {
                    key.as_slice() <= k && k < end.as_slice()
                }
            })
        };
        let mut dels: Vec<Span> = ops
            .iter()
            .filter_map(|op| match op.request.as_ref().unwrap() {
                Request::RequestDeleteRange(d) => Some((d.key.clone(), d.range_end.clone())),
                _ => None,
            })
            .collect();
        let mut puts: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            let Request::RequestTxn(n) = op.request.as_ref().unwrap() else {
                continue;
            };
            let (then_puts, then_dels) = Self::branch_keys(&n.success)?;
            let (else_puts, else_dels) = Self::branch_keys(&n.failure)?;
            for k in &then_puts {
                if puts.contains(k) || deleted(&dels, k) {
                    return Err(error::DUPLICATE_KEY);
                }
                puts.push(k.clone());
            }
            for k in else_puts {
                if (puts.contains(&k) && !then_puts.contains(&k)) || deleted(&dels, &k) {
                    return Err(error::DUPLICATE_KEY);
                }
                if !puts.contains(&k) {
                    puts.push(k);
                }
            }
            dels.extend(then_dels);
            dels.extend(else_dels);
        }
        for op in ops {
            let Request::RequestPut(p) = op.request.as_ref().unwrap() else {
                continue;
            };
            if puts.contains(&p.key) || deleted(&dels, &p.key) {
                return Err(error::DUPLICATE_KEY);
            }
            puts.push(p.key.clone());
        }
        Ok((puts, dels))
    }

    fn check_taken(&self, t: &TxnRequest) -> Result<(), EtcdError> {
        let ok = t.compare.iter().all(|c| self.compare(c));
        for op in if ok { &t.success } else { &t.failure } {
            match op.request.as_ref().unwrap() {
                Request::RequestRange(r) if r.revision != 0 => {
                    if r.revision > self.current {
                        return Err(error::FUTURE_REV);
                    }
                    if r.revision < self.compacted {
                        return Err(error::COMPACTED);
                    }
                }
                Request::RequestPut(p) => {
                    if (p.ignore_value || p.ignore_lease) && self.kv_at(&p.key, self.current, &[]).is_none() {
                        return Err(error::KEY_NOT_FOUND);
                    }
                    if p.lease != 0 && !lease_exists(p.lease) {
                        return Err(error::LEASE_NOT_FOUND);
                    }
                }
                Request::RequestTxn(n) => self.check_taken(n)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn exec(&self, t: &TxnRequest, pending: &mut Vec<Write>) -> Result<TxnResponse, EtcdError> {
        let ok = t.compare.iter().all(|c| self.compare(c));
        let mut responses = Vec::new();
        for op in if ok { &t.success } else { &t.failure } {
            let read = if pending.is_empty() {
                self.current
            } else {
                self.current + 1
            };
            let resp = match op.request.as_ref().unwrap() {
                Request::RequestRange(r) => Response::ResponseRange(self.range(r, read, pending)?),
                Request::RequestPut(p) => Response::ResponsePut(self.do_put(p, pending)?),
                Request::RequestDeleteRange(d) => Response::ResponseDeleteRange(self.do_delete(d, pending)),
                Request::RequestTxn(n) => Response::ResponseTxn(self.exec(n, pending)?),
            };
            responses.push(ResponseOp { response: Some(resp) });
        }
        Ok(TxnResponse {
            header: hdr(0),
            succeeded: ok,
            responses,
        })
    }

    fn txn(&mut self, t: &TxnRequest) -> Result<Applied<TxnResponse>, EtcdError> {
        Self::check_txn(t)?;
        Self::branch_keys(&t.success)?;
        Self::branch_keys(&t.failure)?;
        self.check_taken(t)?;
        let mut pending = Vec::new();
        let mut response = self.exec(t, &mut pending)?;
        response.header = hdr(if pending.is_empty() {
            self.current
        } else {
            self.current + 1
        });
        let events = self.events(&pending);
        self.commit(pending);
        Ok(Applied { response, events })
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Range(r) => {
                Outcome::Range(Self::check_range(r).and_then(|_| self.range(r, self.current, &[])))
            }
            Op::Put(p) => Outcome::Put((|| {
                Self::check_put(p)?;
                if p.lease != 0 && !lease_exists(p.lease) {
                    return Err(error::LEASE_NOT_FOUND);
                }
                let mut pending = Vec::new();
                let response = self.do_put(p, &mut pending)?;
                let events = self.events(&pending);
                self.commit(pending);
                Ok(Applied { response, events })
            })()),
            Op::Delete(d) => Outcome::Delete((|| {
                if d.key.is_empty() {
                    return Err(error::KEY_NOT_PROVIDED);
                }
                let mut pending = Vec::new();
                let response = self.do_delete(d, &mut pending);
                let events = self.events(&pending);
                self.commit(pending);
                Ok(Applied { response, events })
            })()),
            Op::Txn(t) => Outcome::Txn(self.txn(t)),
            Op::Compact(rev) => Outcome::Compact(if *rev <= self.compacted {
                Err(error::COMPACTED)
            } else if *rev > self.current {
                Err(error::FUTURE_REV)
            } else {
                self.compacted = *rev;
                Ok(self.current)
            }),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(i64),
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Range(Result<RangeResponse, EtcdError>),
    Put(Result<Applied<PutResponse>, EtcdError>),
    Delete(Result<Applied<DeleteRangeResponse>, EtcdError>),
    Txn(Result<Applied<TxnResponse>, EtcdError>),
    Compact(Result<i64, EtcdError>),
}

fn apply_store(store: &mut Store, op: &Op) -> Outcome {
    match op {
        Op::Range(r) => Outcome::Range(store.range(r)),
        Op::Put(p) => Outcome::Put(store.put(p, &lease_exists)),
        Op::Delete(d) => Outcome::Delete(store.delete_range(d)),
        Op::Txn(t) => Outcome::Txn(store.txn(t, &lease_exists)),
        Op::Compact(rev) => Outcome::Compact(
            store
                .compact(&CompactionRequest {
                    revision: *rev,
                    physical: false,
                })
                .map(|r| r.header.unwrap().revision),
        ),
    }
}

// ---- generators ----

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(vec!["a", "b", "c", "ab", "abc", "b\u{0}", "ba", "d"]).prop_map(|s| s.as_bytes().to_vec()),
        1 => Just(Vec::new()),
    ]
}

fn key_and_end() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    prop_oneof![
        4 => key().prop_map(|k| (k, Vec::new())),
        2 => key().prop_map(|k| { let e = detcd_core::mvcc::prefix_end(&k); (k, e) }),
        1 => key().prop_map(|k| (k, vec![0])),
        1 => Just((vec![0], vec![0])),
        2 => (key(), key()),
    ]
}

fn rev() -> impl Strategy<Value = i64> {
    prop_oneof![3 => Just(0i64), 4 => -1i64..14]
}

fn range_req() -> impl Strategy<Value = RangeRequest> {
    (
        key_and_end(),
        prop_oneof![3 => Just(0i64), 2 => -1i64..4],
        rev(),
        prop_oneof![8 => 0i32..3, 1 => Just(3i32)],
        0i32..5,
        any::<bool>(),
        prop_oneof![4 => Just(false), 1 => Just(true)],
        prop::array::uniform4(prop_oneof![3 => Just(0i64), 1 => 1i64..12]),
    )
        .prop_map(
            |((key, range_end), limit, revision, sort_order, sort_target, keys_only, count_only, mm)| {
                RangeRequest {
                    key,
                    range_end,
                    limit,
                    revision,
                    sort_order,
                    sort_target,
                    keys_only,
                    count_only,
                    min_mod_revision: mm[0],
                    max_mod_revision: mm[1],
                    min_create_revision: mm[2],
                    max_create_revision: mm[3],
                    ..Default::default()
                }
            },
        )
}

fn put_req() -> impl Strategy<Value = PutRequest> {
    (
        key(),
        prop::sample::select(vec!["", "x", "y", "zz"]),
        prop::sample::select(vec![0i64, 0, 7, 8, 9]),
        any::<bool>(),
        prop_oneof![5 => Just(false), 1 => Just(true)],
        prop_oneof![5 => Just(false), 1 => Just(true)],
    )
        .prop_map(
            |(key, value, lease, prev_kv, ignore_value, ignore_lease)| PutRequest {
                key,
                value: value.as_bytes().to_vec(),
                lease,
                prev_kv,
                ignore_value,
                ignore_lease,
            },
        )
}

fn delete_req() -> impl Strategy<Value = DeleteRangeRequest> {
    (key_and_end(), any::<bool>()).prop_map(|((key, range_end), prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn compare() -> impl Strategy<Value = Compare> {
    (
        key_and_end(),
        0i32..4,
        0i32..5,
        0i64..8,
        prop::sample::select(vec!["", "x", "y"]),
        any::<bool>(),
    )
        .prop_map(|((key, range_end), result, target, n, v, matching)| {
            let union = match (target, matching) {
                (_, false) => Some(TargetUnion::Version(n)),
                (0, _) => Some(TargetUnion::Version(n)),
                (1, _) => Some(TargetUnion::CreateRevision(n)),
                (2, _) => Some(TargetUnion::ModRevision(n)),
                (3, _) => Some(TargetUnion::Value(v.as_bytes().to_vec())),
                _ => Some(TargetUnion::Lease(n)),
            };
            Compare {
                result,
                target,
                key,
                range_end,
                target_union: union,
            }
        })
}

fn leaf_op() -> impl Strategy<Value = RequestOp> {
    prop_oneof![
        range_req().prop_map(Request::RequestRange),
        put_req().prop_map(Request::RequestPut),
        delete_req().prop_map(Request::RequestDeleteRange),
    ]
    .prop_map(|r| RequestOp { request: Some(r) })
}

fn txn_req() -> impl Strategy<Value = TxnRequest> {
    let leaf = (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(leaf_op(), 0..4),
        prop::collection::vec(leaf_op(), 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        });
    leaf.prop_recursive(2, 8, 3, |inner| {
        (
            prop::collection::vec(compare(), 0..3),
            prop::collection::vec(prop_oneof![3 => leaf_op(), 1 => inner.clone().prop_map(|t| RequestOp { request: Some(Request::RequestTxn(t)) })], 0..4),
            prop::collection::vec(prop_oneof![3 => leaf_op(), 1 => inner.prop_map(|t| RequestOp { request: Some(Request::RequestTxn(t)) })], 0..3),
        )
            .prop_map(|(compare, success, failure)| TxnRequest { compare, success, failure })
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => range_req().prop_map(Op::Range),
        5 => put_req().prop_map(Op::Put),
        2 => delete_req().prop_map(Op::Delete),
        3 => txn_req().prop_map(Op::Txn),
        1 => (-1i64..12).prop_map(Op::Compact),
    ]
}

proptest! {
    #[test]
    fn store_matches_the_naive_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut store = Store::new(StoreConfig { txn_ops_max: TXN_OPS_MAX });
        let mut model = Model::new();
        for (i, op) in ops.iter().enumerate() {
            let before = store.clone();
            let want = model.apply(op);
            let got = apply_store(&mut store, op);
            prop_assert_eq!(&got, &want, "step {} {:?}", i, op);
            let failed = matches!(&got,
                Outcome::Put(Err(_)) | Outcome::Delete(Err(_)) | Outcome::Txn(Err(_)) | Outcome::Compact(Err(_)));
            if failed {
                prop_assert_eq!(&store, &before, "a failed call changed the store");
            }
            prop_assert_eq!(store.revision(), model.current);
            prop_assert_eq!(store.check_invariants(), Ok(()));
        }
    }
}
