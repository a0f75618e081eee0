//! What a client request counts for in etcd's per-request series, worked out when
//! it arrives and added to the member's counters once it is answered. (Store
//! operations are counted by the node, on every member, and told in its status.)

use std::time::Instant;

use detcd_core::node::{Request, Response};

use crate::metrics::Metrics;

/// etcd's `readIndexRetryTime`: a linearizable read slower than this is "slow".
const SLOW_READ_INDEX_SECONDS: f64 = 0.5;

/// The counters one request moves.
#[derive(Debug)]
pub(crate) enum Tally {
    /// Nothing etcd counts per request.
    None,
    /// A linearizable Range: a read index.
    LinearizableRead(Instant),
    LeaseGrant(i64),
    LeaseRevoke,
    LeaseRenew,
    Promote,
}

impl Tally {
    pub(crate) fn of(request: &Request) -> Tally {
        match request {
            Request::Range(r) if !r.serializable => Tally::LinearizableRead(Instant::now()),
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
                } else if started.elapsed().as_secs_f64() > SLOW_READ_INDEX_SECONDS {
                    metrics.slow_read_indexes += 1;
                }
            }
            (_, None) | (Tally::None, _) => {}
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
    use detcd_proto::etcdserverpb::RangeRequest;

    #[test]
    fn a_failed_linearizable_read_counts_as_a_failed_read_index_only() {
        let mut m = Metrics::default();
        let err: Result<Response, ()> = Err(());
        Tally::of(&Request::Range(RangeRequest::default())).count(&err, &mut m);
        assert_eq!(
            (m.read_indexes_failed, m.slow_read_indexes, m.mvcc.ranges),
            (1, 0, 0)
        );
    }

    #[test]
    fn a_serializable_read_is_no_read_index() {
        let mut m = Metrics::default();
        let err: Result<Response, ()> = Err(());
        let serializable = RangeRequest {
            serializable: true,
            ..RangeRequest::default()
        };
        Tally::of(&Request::Range(serializable)).count(&err, &mut m);
        assert_eq!(m.read_indexes_failed, 0);
    }
}
