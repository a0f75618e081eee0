//! What a client request counts for in etcd's series, worked out when it arrives
//! and added to the member's counters once it is answered successfully.

use std::time::Instant;

use detcd_core::node::{Request, Response};
use detcd_proto::etcdserverpb::{request_op, RequestOp};

use crate::metrics::{Metrics, MvccCounts};

/// etcd's `readIndexRetryTime`: a linearizable read slower than this is "slow".
const SLOW_READ_INDEX_SECONDS: f64 = 0.5;

/// The counters one request moves.
#[derive(Debug)]
pub(crate) enum Tally {
    /// Nothing etcd counts per request.
    None,
    /// A plain Range, Put or DeleteRange.
    Mvcc(MvccCounts),
    /// A linearizable Range: counted as a range, and as a read index.
    LinearizableRead(Instant),
    /// A txn: the operations of each branch, counted by the branch it takes.
    Txn {
        success: MvccCounts,
        failure: MvccCounts,
    },
    LeaseGrant(i64),
    LeaseRevoke,
    LeaseRenew,
    Promote,
}

fn one_range() -> MvccCounts {
    MvccCounts {
        ranges: 1,
        ..MvccCounts::default()
    }
}

/// The operations of one txn branch as etcd's mvcc layer counts them (nested txns'
/// success branches included), with the txn itself when it holds more than one.
fn branch(ops: &[RequestOp]) -> MvccCounts {
    let mut counts = MvccCounts::default();
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestRange(_)) => counts.ranges += 1,
            Some(request_op::Request::RequestPut(p)) => {
                counts.puts += 1;
                counts.put_bytes += (p.key.len() + p.value.len()) as u64;
            }
            Some(request_op::Request::RequestDeleteRange(_)) => counts.deletes += 1,
            Some(request_op::Request::RequestTxn(t)) => {
                let mut inner = branch(&t.success);
                inner.txns = 0;
                counts.add(&inner);
            }
            None => {}
        }
    }
    if counts.ranges + counts.puts + counts.deletes > 1 {
        counts.txns = 1;
    }
    counts
}

impl Tally {
    pub(crate) fn of(request: &Request) -> Tally {
        match request {
            Request::Range(r) if r.serializable => Tally::Mvcc(one_range()),
            Request::Range(_) => Tally::LinearizableRead(Instant::now()),
            Request::Put(p) => Tally::Mvcc(MvccCounts {
                puts: 1,
                put_bytes: (p.key.len() + p.value.len()) as u64,
                ..MvccCounts::default()
            }),
            Request::DeleteRange(_) => Tally::Mvcc(MvccCounts {
                deletes: 1,
                ..MvccCounts::default()
            }),
            Request::Txn(t) => Tally::Txn {
                success: branch(&t.success),
                failure: branch(&t.failure),
            },
            Request::LeaseGrant(g) => Tally::LeaseGrant(g.ttl),
            Request::LeaseRevoke(_) => Tally::LeaseRevoke,
            Request::LeaseKeepAlive(_) => Tally::LeaseRenew,
            Request::MemberPromote(_) => Tally::Promote,
            _ => Tally::None,
        }
    }

    /// Adds the request's counts for its answer `result`.
    pub(crate) fn count<E>(self, result: &Result<Response, E>, metrics: &mut Metrics) {
        let ok = result.as_ref().ok();
        match (self, ok) {
            (Tally::LinearizableRead(started), answer) => {
                if answer.is_none() {
                    metrics.read_indexes_failed += 1;
                    return;
                }
                if started.elapsed().as_secs_f64() > SLOW_READ_INDEX_SECONDS {
                    metrics.slow_read_indexes += 1;
                }
                metrics.mvcc.add(&one_range());
            }
            (_, None) | (Tally::None, _) => {}
            (Tally::Mvcc(counts), Some(_)) => metrics.mvcc.add(&counts),
            (Tally::Txn { success, failure }, Some(answer)) => {
                let took_success = matches!(answer, Response::Txn(t) if t.succeeded);
                metrics.mvcc.add(if took_success { &success } else { &failure });
            }
            (Tally::LeaseGrant(ttl), Some(_)) => {
                metrics.leases_granted += 1;
                metrics.lease_ttl.observe(ttl as f64);
            }
            (Tally::LeaseRevoke, Some(_)) => metrics.leases_revoked += 1,
            (Tally::LeaseRenew, Some(_)) => metrics.leases_renewed += 1,
            (Tally::Promote, Some(_)) => {
                if metrics.is_leader {
                    metrics.learner_promote_successes += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use detcd_proto::etcdserverpb::{PutRequest, RangeRequest, TxnRequest, TxnResponse};

    fn op_put(k: &str, v: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.into(),
                value: v.into(),
                ..PutRequest::default()
            })),
        }
    }

    fn op_range() -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest::default())),
        }
    }

    #[test]
    fn a_txn_counts_the_branch_it_took_and_itself_when_it_holds_several_operations() {
        let txn = TxnRequest {
            success: vec![op_put("a", "bb"), op_range()],
            failure: vec![op_range()],
            ..TxnRequest::default()
        };
        let mut m = Metrics::default();
        let ok: Result<Response, ()> = Ok(Response::Txn(TxnResponse {
            succeeded: true,
            ..TxnResponse::default()
        }));
        Tally::of(&Request::Txn(txn.clone())).count(&ok, &mut m);
        assert_eq!(
            m.mvcc,
            MvccCounts {
                puts: 1,
                ranges: 1,
                deletes: 0,
                txns: 1,
                put_bytes: 3
            }
        );
        let failed: Result<Response, ()> = Ok(Response::Txn(TxnResponse::default()));
        Tally::of(&Request::Txn(txn)).count(&failed, &mut m);
        assert_eq!((m.mvcc.ranges, m.mvcc.txns), (2, 1));
    }

    #[test]
    fn a_failed_linearizable_read_counts_as_a_failed_read_index_only() {
        let mut m = Metrics::default();
        let err: Result<Response, ()> = Err(());
        Tally::of(&Request::Range(RangeRequest::default())).count(&err, &mut m);
        assert_eq!((m.read_indexes_failed, m.mvcc.ranges), (1, 0));
    }
}
