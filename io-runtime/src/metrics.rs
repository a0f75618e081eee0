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

/// etcd's backend commit buckets (the same exponential series as the WAL's).
pub const BACKEND_COMMIT_BUCKETS_SECONDS: [f64; 14] = WAL_FSYNC_BUCKETS_SECONDS;

/// etcd's snapshot save buckets (`ExponentialBuckets(0.001, 2, 14)`).
pub const SNAP_SAVE_BUCKETS_SECONDS: [f64; 14] = WAL_FSYNC_BUCKETS_SECONDS;

/// etcd's lease TTL buckets in seconds (`ExponentialBuckets(1, 2, 24)`).
pub const LEASE_TTL_BUCKETS_SECONDS: [f64; 24] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
    32768.0, 65536.0, 131072.0, 262144.0, 524288.0, 1048576.0, 2097152.0, 4194304.0, 8388608.0,
];

/// etcd's `db_compaction_pause_duration_milliseconds` buckets
/// (`ExponentialBuckets(1, 2, 13)`), 1 ms to 4.096 s, in milliseconds.
pub const DB_COMPACTION_PAUSE_BUCKETS_MS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// etcd's `db_compaction_total_duration_milliseconds` buckets
/// (`ExponentialBuckets(100, 2, 14)`), 100 ms to 819.2 s, in milliseconds.
pub const DB_COMPACTION_TOTAL_BUCKETS_MS: [f64; 14] = [
    100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0, 12800.0, 25600.0, 51200.0, 102400.0, 204800.0,
    409600.0, 819200.0,
];

/// etcd's `index_compaction_pause_duration_milliseconds` buckets
/// (`ExponentialBuckets(0.5, 2, 14)`), 0.5 ms to 4.096 s, in milliseconds.
pub const INDEX_COMPACTION_PAUSE_BUCKETS_MS: [f64; 14] = [
    0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// A duration histogram with fixed bucket bounds (non-cumulative counts), in the
/// unit of its series: seconds, except etcd's `*_milliseconds` compaction series.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Bucket upper bounds (seconds, or milliseconds for a `*_milliseconds` series).
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
    /// `etcd_mvcc_db_total_size_in_bytes` (the node's approximate store size).
    pub db_size_bytes: u64,
    /// `etcd_disk_wal_fsync_duration_seconds`.
    pub wal_fsync: Histogram,
    /// Syncs of the WAL made by the driver (one per group of Persists).
    pub syncs: u64,
    /// Raft entries those syncs made durable.
    pub entries_synced: u64,
    /// Persist outputs written (each is one raft Ready).
    pub persists: u64,
    /// `etcd_server_is_learner`.
    pub is_learner: bool,
    /// `etcd_server_heartbeat_send_failures_total`: heartbeats the transport dropped.
    pub heartbeat_send_failures: u64,
    /// `etcd_server_slow_apply_total`: turns that applied entries and took longer
    /// than etcd's 100 ms apply warning.
    pub slow_applies: u64,
    /// `etcd_server_read_indexes_failed_total`: linearizable reads that failed.
    pub read_indexes_failed: u64,
    /// `etcd_server_slow_read_indexes_total`: linearizable reads answered after
    /// more than etcd's 500 ms read-index retry time.
    pub slow_read_indexes: u64,
    /// `etcd_server_learner_promote_successes`: promotions this member made as leader.
    pub learner_promote_successes: u64,
    /// `etcd_mvcc_put_total` and the other operation counts: writes this member
    /// applied (whoever proposed them) and ranges it served, as the node tells them.
    pub mvcc: MvccCounts,
    /// `etcd_debugging_mvcc_current_revision`.
    pub current_revision: i64,
    /// `etcd_debugging_mvcc_compact_revision` (-1 before the first compaction).
    pub compact_revision: i64,
    /// `etcd_debugging_mvcc_keys_total` (refreshed about once a second).
    pub keys_total: u64,
    /// `etcd_debugging_auth_revision`.
    pub auth_revision: u64,
    /// `etcd_debugging_lease_*`: leases granted, revoked and renewed through this member.
    pub leases_granted: u64,
    pub leases_revoked: u64,
    pub leases_renewed: u64,
    /// `etcd_debugging_lease_ttl_total`: the TTLs granted.
    pub lease_ttl: Histogram,
    /// `etcd_debugging_mvcc_events_total`: watch events sent to this member's watchers.
    pub watch_events: u64,
    /// `etcd_debugging_mvcc_watch_stream_total`: open watch streams.
    pub watch_streams: u64,
    /// `etcd_disk_wal_write_bytes_total`: bytes the WAL made durable.
    pub wal_write_bytes: u64,
    /// `etcd_disk_backend_commit_duration_seconds`: each write batch (WAL appends,
    /// then the sync) that made applied state durable.
    pub backend_commit: Histogram,
    /// `etcd_debugging_snap_save_total_duration_seconds`: snapshot files saved.
    pub snap_save: Histogram,
    /// `etcd_debugging_mvcc_db_compaction_keys_total`: stored revisions compactions removed.
    pub compaction_keys: u64,
    /// `etcd_debugging_mvcc_db_compaction_total_duration_milliseconds`,
    /// `_db_compaction_pause_duration_milliseconds` and
    /// `_index_compaction_pause_duration_milliseconds` (in milliseconds): each the
    /// time from the start of the driver's turn that applied a compaction until the
    /// node told it (the compaction is one uninterrupted step of that turn).
    pub db_compaction_total_ms: Histogram,
    pub db_compaction_pause_ms: Histogram,
    pub index_compaction_pause_ms: Histogram,
    /// `etcd_debugging_mvcc_watcher_total`.
    pub watchers: u64,
    /// `etcd_debugging_mvcc_slow_watcher_total`: watchers catching up from history.
    pub slow_watchers: u64,
    /// `etcd_debugging_mvcc_pending_events_total`: events handed to watch streams
    /// that their readers have not taken yet.
    pub watch_pending_events: u64,
    /// `etcd_debugging_server_lease_expired_total`.
    pub leases_expired: u64,
    /// `etcd_debugging_store_*`: the v2 store's operation counts.
    pub v2: V2Counts,
}

/// Operations counted as etcd's mvcc layer counts them (by the node, on every member).
pub use detcd_core::node::{MvccCounts, V2Counts};

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
            is_learner: false,
            heartbeat_send_failures: 0,
            slow_applies: 0,
            read_indexes_failed: 0,
            slow_read_indexes: 0,
            learner_promote_successes: 0,
            mvcc: MvccCounts::default(),
            current_revision: 0,
            compact_revision: -1,
            keys_total: 0,
            auth_revision: 0,
            leases_granted: 0,
            leases_revoked: 0,
            leases_renewed: 0,
            lease_ttl: Histogram::new(&LEASE_TTL_BUCKETS_SECONDS),
            watch_events: 0,
            watch_streams: 0,
            wal_write_bytes: 0,
            backend_commit: Histogram::new(&BACKEND_COMMIT_BUCKETS_SECONDS),
            snap_save: Histogram::new(&SNAP_SAVE_BUCKETS_SECONDS),
            compaction_keys: 0,
            db_compaction_total_ms: Histogram::new(&DB_COMPACTION_TOTAL_BUCKETS_MS),
            db_compaction_pause_ms: Histogram::new(&DB_COMPACTION_PAUSE_BUCKETS_MS),
            index_compaction_pause_ms: Histogram::new(&INDEX_COMPACTION_PAUSE_BUCKETS_MS),
            watchers: 0,
            slow_watchers: 0,
            watch_pending_events: 0,
            leases_expired: 0,
            v2: V2Counts::default(),
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
