//! The member's counters, named after etcd's Prometheus metrics
//! (`etcd_server_*`, `etcd_disk_wal_fsync_duration_seconds`), kept by the driver
//! and read as a cheap copy through [`crate::driver::MemberHandle::metrics`].

use std::sync::{Arc, Mutex};

/// Upper bounds (seconds) of the WAL fsync duration buckets: etcd's
/// `prometheus.ExponentialBuckets(0.001, 2, 14)`, 1 ms to 8.192 s; one more
/// bucket (+Inf) counts the rest.
pub const WAL_FSYNC_BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
];

/// A duration histogram with fixed bucket bounds (non-cumulative counts).
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Bucket upper bounds in seconds.
    pub bounds_seconds: &'static [f64],
    /// `counts[i]` observations fell in bucket `i` (`<= bounds_seconds[i]` and
    /// above the previous bound); the last element counts the ones above every bound.
    pub counts: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds_seconds: &'static [f64]) -> Histogram {
        Histogram {
            bounds_seconds,
            counts: vec![0; bounds_seconds.len() + 1],
            sum_seconds: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, seconds: f64) {
        let bucket = self
            .bounds_seconds
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(self.bounds_seconds.len());
        self.counts[bucket] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }

    /// Prometheus' cumulative form: observations `<=` each bound, then the total.
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |acc, &c| {
                *acc += c;
                Some(*acc)
            })
            .collect()
    }
}

/// A snapshot of a member's counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// `etcd_server_has_leader`.
    pub has_leader: bool,
    /// `etcd_server_is_leader`.
    pub is_leader: bool,
    /// The known leader's ID (0 when none).
    pub leader_id: u64,
    /// The raft term the member last saw.
    pub term: u64,
    /// `etcd_server_leader_changes_seen_total`.
    pub leader_changes_seen: u64,
    /// `etcd_server_proposals_committed_total` (the raft commit index, as etcd).
    pub proposals_committed: u64,
    /// `etcd_server_proposals_applied_total` (the applied index, as etcd).
    pub proposals_applied: u64,
    /// `etcd_server_proposals_pending`: client requests waiting in the node.
    pub proposals_pending: u64,
    /// `etcd_server_proposals_failed_total`: write requests answered with an error.
    pub proposals_failed: u64,
    /// `etcd_mvcc_db_total_size_in_bytes` (the node's approximate store size,
    /// refreshed about once a second).
    pub db_size_bytes: u64,
    /// `etcd_disk_wal_fsync_duration_seconds`.
    pub wal_fsync: Histogram,
    /// Syncs of the WAL made by the driver (one per group of Persists).
    pub syncs: u64,
    /// Raft entries those syncs made durable.
    pub entries_synced: u64,
    /// Persist outputs written (each is one raft Ready).
    pub persists: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            has_leader: false,
            is_leader: false,
            leader_id: 0,
            term: 0,
            leader_changes_seen: 0,
            proposals_committed: 0,
            proposals_applied: 0,
            proposals_pending: 0,
            proposals_failed: 0,
            db_size_bytes: 0,
            wal_fsync: Histogram::new(&WAL_FSYNC_BUCKETS_SECONDS),
            syncs: 0,
            entries_synced: 0,
            persists: 0,
        }
    }
}

impl Metrics {
    /// Mean raft entries per WAL sync (0 before the first).
    pub fn entries_per_sync(&self) -> f64 {
        if self.syncs == 0 {
            0.0
        } else {
            self.entries_synced as f64 / self.syncs as f64
        }
    }
}

/// Where the driver publishes its counters; the handle copies them out.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedMetrics(Arc<Mutex<Metrics>>);

impl SharedMetrics {
    pub(crate) fn get(&self) -> Metrics {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set(&self, metrics: &Metrics) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone_from(metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_like_prometheus() {
        let mut h = Histogram::new(&WAL_FSYNC_BUCKETS_SECONDS);
        h.observe(0.0005);
        h.observe(0.001);
        h.observe(0.0015);
        h.observe(10.0);
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[1], 1);
        assert_eq!(*h.counts.last().expect("inf bucket"), 1);
        assert_eq!(*h.cumulative().last().expect("total"), 4);
        assert_eq!(h.count, 4);
    }
}
