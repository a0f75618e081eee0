//! What the member tells its driver about itself for metrics and waiters
//! ([`Output::Status`]), and the store operations it counts as etcd's mvcc layer
//! does ([`MvccCounts`]): the driver learns the member's state from outputs only.
//!
//! A status comes out when the node has no other output left and it differs
//! from the last one that came out: at most once per drain of [`Node::poll`].

use std::collections::BTreeSet;

use detcd_proto::etcdserverpb::{request_op, response_op, RequestOp, ResponseOp, TxnRequest, TxnResponse};

use super::io::Output;
use super::Node;

/// How often (in the node's clock) the live key count, a walk of the index, is
/// taken again for [`MemberStatus::keys`].
pub const KEYS_RECOUNT_MS: u64 = 1000;

/// Store operations as etcd's mvcc layer counts them (`etcd_mvcc_put_total` and
/// the others): every operation applied to this member's store (followers
/// count the writes they apply too) and every range it serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MvccCounts {
    pub puts: u64,
    pub ranges: u64,
    pub deletes: u64,
    /// Transactions of more than one operation (etcd counts a txn when it ends
    /// with more than one range, put or delete done in it).
    pub txns: u64,
    /// `etcd_debugging_mvcc_total_put_size_in_bytes`: key plus value bytes put.
    pub put_bytes: u64,
}

impl MvccCounts {
    pub fn add(&mut self, other: &MvccCounts) {
        self.puts += other.puts;
        self.ranges += other.ranges;
        self.deletes += other.deletes;
        self.txns += other.txns;
        self.put_bytes += other.put_bytes;
    }

    /// One store transaction of `self`'s operations: counted as a txn as well when
    /// it held more than one.
    pub(crate) fn as_one_txn(mut self) -> MvccCounts {
        self.txns = u64::from(self.ranges + self.puts + self.deletes > 1);
        self
    }

    /// The operations a txn carried out: the branch its compares chose, nested
    /// txns by the branch each took (read from the answer).
    pub(crate) fn of_txn(request: &TxnRequest, response: &TxnResponse) -> MvccCounts {
        let mut counts = MvccCounts::default();
        counts.add_branch(request, response);
        counts.as_one_txn()
    }

    fn add_branch(&mut self, request: &TxnRequest, response: &TxnResponse) {
        let ops: &[RequestOp] = if response.succeeded {
            &request.success
        } else {
            &request.failure
        };
        for (op, answer) in ops.iter().zip(&response.responses) {
            match (&op.request, answer) {
                (Some(request_op::Request::RequestRange(_)), _) => self.ranges += 1,
                (Some(request_op::Request::RequestPut(p)), _) => {
                    self.puts += 1;
                    self.put_bytes += (p.key.len() + p.value.len()) as u64;
                }
                (Some(request_op::Request::RequestDeleteRange(_)), _) => self.deletes += 1,
                (
                    Some(request_op::Request::RequestTxn(inner)),
                    ResponseOp {
                        response: Some(response_op::Response::ResponseTxn(inner_answer)),
                    },
                ) => self.add_branch(inner, inner_answer),
                _ => {}
            }
        }
    }
}

/// What the member's compactions removed (etcd's `db_compaction_keys_total`); the
/// driver times the turns that carried them (the node reads no clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionCounts {
    /// Compactions this member applied.
    pub compactions: u64,
    /// Stored revisions they removed.
    pub revisions_removed: u64,
}

/// The watch hub's watchers (etcd's `watcher_total` and `slow_watcher_total`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatcherCounts {
    /// Watchers on every watch stream.
    pub watchers: u64,
    /// Watchers behind the store's revision, catching up from its history (etcd's
    /// unsynced watchers).
    pub unsynced: u64,
}

/// The v2 store's operation counts (see [`crate::v2store::Stats`]), with the gets
/// that were recursive (etcd's `reads_total{action="getRecursive"}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V2Counts {
    pub stats: crate::v2store::Stats,
    pub gets_recursive: u64,
}

/// The member's state as its driver shows it (metrics, v2 waiters, slow-apply
/// detection).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberStatus {
    pub applied_index: u64,
    /// The raft commit index (etcd's `proposals_committed_total`).
    pub commit_index: u64,
    /// Client requests waiting for an answer in the node.
    pub pending_requests: u64,
    /// The estimated size of the key space in bytes, as Status reports it.
    pub db_size_bytes: u64,
    pub is_learner: bool,
    pub revision: i64,
    /// -1 before the first compaction (etcd's value).
    pub compact_revision: i64,
    /// Keys that exist, counted again every [`KEYS_RECOUNT_MS`] of the node's clock.
    pub keys: u64,
    pub auth_revision: u64,
    /// The v2 store's index.
    pub v2_index: u64,
    /// Operations on the store since the member started.
    pub mvcc: MvccCounts,
    /// Compactions applied since the member started.
    pub compaction: CompactionCounts,
    pub watchers: WatcherCounts,
    /// Leases this member, as leader, revoked because they expired (etcd's
    /// `etcd_debugging_server_lease_expired_total`).
    pub leases_expired: u64,
    pub v2: V2Counts,
}

/// The node's side of the status: what it last told, and the key count's age.
#[derive(Debug, Default)]
pub(crate) struct StatusDuty {
    told: Option<MemberStatus>,
    keys: u64,
    keys_counted_ms: Option<u64>,
    pub(crate) mvcc: MvccCounts,
    pub(crate) compaction: CompactionCounts,
    pub(crate) leases_expired: u64,
    /// Leases whose revoke this member proposed because they expired, until the
    /// revoke applies (bounded by the leases that exist).
    pub(crate) expiring: BTreeSet<i64>,
    pub(crate) v2_gets_recursive: u64,
}

impl Node {
    /// The status when it differs from the last one told (none while outputs are
    /// gated behind an unpersisted configuration change).
    pub(super) fn status_if_changed(&mut self) -> Option<Output> {
        if self.conf_commit_unpersisted.is_some() || self.removed {
            return None;
        }
        let duty = &mut self.status;
        if duty
            .keys_counted_ms
            .is_none_or(|at| self.now_ms >= at + KEYS_RECOUNT_MS)
        {
            duty.keys = self.store.live_keys() as u64;
            duty.keys_counted_ms = Some(self.now_ms);
        }
        let status = MemberStatus {
            applied_index: self.applied_index,
            commit_index: self.commit,
            pending_requests: self.pending_requests() as u64,
            db_size_bytes: self.db_size_bytes,
            is_learner: self.is_learner(),
            revision: self.store.revision(),
            compact_revision: self.store.compact_revision(),
            keys: self.status.keys,
            auth_revision: self.auth.revision(),
            v2_index: self.v2.index(),
            mvcc: self.status.mvcc,
            compaction: self.status.compaction,
            watchers: WatcherCounts {
                watchers: self.hub.watcher_count() as u64,
                unsynced: self.hub.unsynced_count() as u64,
            },
            leases_expired: self.status.leases_expired,
            v2: V2Counts {
                stats: self.v2_stats,
                gets_recursive: self.status.v2_gets_recursive,
            },
        };
        if self.status.told.as_ref() == Some(&status) {
            return None;
        }
        self.status.told = Some(status.clone());
        Some(Output::Status(status))
    }

    /// Counts store operations (see [`MvccCounts`]).
    pub(super) fn count_mvcc(&mut self, counts: &MvccCounts) {
        self.status.mvcc.add(counts);
    }

    /// Counts one compaction that removed `revisions_removed` stored revisions.
    pub(super) fn count_compaction(&mut self, revisions_removed: u64) {
        self.status.compaction.compactions += 1;
        self.status.compaction.revisions_removed += revisions_removed;
    }

    /// This member proposes the revoke of lease `id` because it expired.
    pub(super) fn note_expiring(&mut self, id: i64) {
        self.status.expiring.insert(id);
    }

    /// A revoke of lease `id` applied (`revoked`: it succeeded): one this member
    /// proposed for the lease's expiry counts as an expiry, as etcd's leader counts
    /// each expired lease whose revoke succeeded.
    pub(super) fn count_revoke(&mut self, id: i64, revoked: bool) {
        if self.status.expiring.remove(&id) && revoked {
            self.status.leases_expired += 1;
        }
    }

    /// This member stopped leading: the expiry revokes it proposed are no longer its own.
    pub(super) fn forget_expiring(&mut self) {
        self.status.expiring.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use detcd_proto::etcdserverpb::{PutRequest, RangeRequest};

    fn put(k: &str, v: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.into(),
                value: v.into(),
                ..PutRequest::default()
            })),
        }
    }

    fn range() -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest::default())),
        }
    }

    fn answers(n: usize) -> Vec<ResponseOp> {
        vec![ResponseOp::default(); n]
    }

    #[test]
    fn a_txn_counts_the_branch_it_took_and_itself_when_it_held_several_operations() {
        let txn = TxnRequest {
            success: vec![put("a", "bb"), range()],
            failure: vec![range()],
            ..TxnRequest::default()
        };
        let took_success = TxnResponse {
            succeeded: true,
            responses: answers(2),
            ..TxnResponse::default()
        };
        assert_eq!(
            MvccCounts::of_txn(&txn, &took_success),
            MvccCounts {
                puts: 1,
                ranges: 1,
                deletes: 0,
                txns: 1,
                put_bytes: 3
            }
        );
        let took_failure = TxnResponse {
            responses: answers(1),
            ..TxnResponse::default()
        };
        assert_eq!(
            MvccCounts::of_txn(&txn, &took_failure),
            MvccCounts {
                ranges: 1,
                ..MvccCounts::default()
            }
        );
    }

    #[test]
    fn a_nested_txn_counts_the_branch_its_own_answer_says_it_took() {
        let inner = TxnRequest {
            success: vec![put("x", "y")],
            failure: vec![range(), range()],
            ..TxnRequest::default()
        };
        let outer = TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(inner)),
            }],
            ..TxnRequest::default()
        };
        let answer = TxnResponse {
            succeeded: true,
            responses: vec![ResponseOp {
                response: Some(response_op::Response::ResponseTxn(TxnResponse {
                    succeeded: false,
                    responses: answers(2),
                    ..TxnResponse::default()
                })),
            }],
            ..TxnResponse::default()
        };
        let counts = MvccCounts::of_txn(&outer, &answer);
        assert_eq!((counts.ranges, counts.puts, counts.txns), (2, 0, 1));
    }
}
