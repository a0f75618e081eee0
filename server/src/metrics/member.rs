//! The member's snapshot counters as etcd's series, built at each scrape.

use detcd_io::driver::MemberHandle;
use detcd_io::metrics::{Histogram, Metrics};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

/// Reads the member's counters at each scrape (no fixed descriptors: the
/// series are built from the snapshot, so the registry cannot check them ahead).
#[allow(missing_debug_implementations)]
pub struct MemberCollector {
    handle: MemberHandle,
    /// `etcd_server_quota_backend_bytes`.
    quota_bytes: u64,
    /// What the v2 handlers count, for `etcd_debugging_store_*`.
    v2_local: crate::v2::LocalStats,
    descs: Vec<Desc>,
}

impl MemberCollector {
    pub fn new(handle: MemberHandle, quota_bytes: u64, v2_local: crate::v2::LocalStats) -> MemberCollector {
        MemberCollector {
            handle,
            quota_bytes,
            v2_local,
            descs: Vec::new(),
        }
    }
}

/// One series of a family: its labels and value.
pub(super) fn metric(labels: &[(&str, &str)], value: f64, kind: MetricType) -> proto::Metric {
    let mut m = proto::Metric::default();
    m.set_label(label_pairs(labels));
    match kind {
        MetricType::COUNTER => {
            let mut c = proto::Counter::default();
            c.set_value(value);
            m.set_counter(c);
        }
        _ => {
            let mut g = proto::Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
    }
    m
}

pub(super) fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

pub(super) fn gauge(name: &str, help: &str, value: f64) -> MetricFamily {
    family(
        name,
        help,
        MetricType::GAUGE,
        vec![metric(&[], value, MetricType::GAUGE)],
    )
}

pub(super) fn counter(name: &str, help: &str, value: u64) -> MetricFamily {
    family(
        name,
        help,
        MetricType::COUNTER,
        vec![metric(&[], value as f64, MetricType::COUNTER)],
    )
}

fn histogram(name: &str, help: &str, h: &Histogram) -> MetricFamily {
    family(name, help, MetricType::HISTOGRAM, vec![histogram_metric(&[], h)])
}

/// One histogram series with its labels.
pub(super) fn histogram_metric(labels: &[(&str, &str)], h: &Histogram) -> proto::Metric {
    let mut ph = proto::Histogram::default();
    ph.set_sample_count(h.count);
    ph.set_sample_sum(h.sum_seconds);
    ph.set_bucket(
        h.bounds_seconds
            .iter()
            .zip(h.cumulative())
            .map(|(bound, count)| {
                let mut b = proto::Bucket::default();
                b.set_upper_bound(*bound);
                b.set_cumulative_count(count);
                b
            })
            .collect(),
    );
    let mut m = proto::Metric::default();
    m.set_label(label_pairs(labels));
    m.set_histogram(ph);
    m
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    labels
        .iter()
        .map(|(k, v)| {
            let mut l = proto::LabelPair::default();
            l.set_name(k.to_string());
            l.set_value(v.to_string());
            l
        })
        .collect()
}

/// etcd's series for one snapshot of the member's counters.
pub fn families(m: &Metrics, member_id: u64) -> Vec<MetricFamily> {
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    let id = format!("{member_id:x}");
    let mut all = vec![
        gauge(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            b(m.has_leader),
        ),
        gauge(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            b(m.is_leader),
        ),
        counter(
            "etcd_server_leader_changes_seen_total",
            "The number of leader changes seen.",
            m.leader_changes_seen,
        ),
        gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            m.proposals_committed as f64,
        ),
        gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            m.proposals_applied as f64,
        ),
        gauge(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            m.proposals_pending as f64,
        ),
        counter(
            "etcd_server_proposals_failed_total",
            "The total number of failed proposals seen.",
            m.proposals_failed,
        ),
        family(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
            MetricType::GAUGE,
            vec![metric(&[("server_id", &id)], 1.0, MetricType::GAUGE)],
        ),
        family(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            MetricType::GAUGE,
            vec![metric(
                &[("server_version", crate::http::SERVER_VERSION)],
                1.0,
                MetricType::GAUGE,
            )],
        ),
        family(
            "etcd_cluster_version",
            "Which version is running. 1 for 'cluster_version' label with current cluster version",
            MetricType::GAUGE,
            vec![metric(
                &[("cluster_version", crate::http::CLUSTER_VERSION)],
                1.0,
                MetricType::GAUGE,
            )],
        ),
        gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            m.db_size_bytes as f64,
        ),
        gauge(
            "etcd_debugging_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            m.db_size_bytes as f64,
        ),
        histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            &m.wal_fsync,
        ),
    ];
    all.extend(server_families(m));
    all.extend(mvcc_families(m));
    all.extend(disk_families(m));
    all
}

fn server_families(m: &Metrics) -> Vec<MetricFamily> {
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    vec![
        gauge(
            "etcd_server_is_learner",
            "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            b(m.is_learner),
        ),
        counter(
            "etcd_server_heartbeat_send_failures_total",
            "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            m.heartbeat_send_failures,
        ),
        counter(
            "etcd_server_slow_apply_total",
            "The total number of slow apply requests (likely overloaded from slow disk).",
            m.slow_applies,
        ),
        counter(
            "etcd_server_read_indexes_failed_total",
            "The total number of failed read indexes seen.",
            m.read_indexes_failed,
        ),
        counter(
            "etcd_server_slow_read_indexes_total",
            "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
            m.slow_read_indexes,
        ),
        counter(
            "etcd_server_learner_promote_successes",
            "The total number of successful learner promotions while this member is leader.",
            m.learner_promote_successes,
        ),
        // A snapshot from the leader is applied within one turn of the member's loop,
        // so between turns (when this is read) none is ever in progress.
        gauge(
            "etcd_server_snapshot_apply_in_progress_total",
            "1 if the server is applying the incoming snapshot. 0 if none.",
            0.0,
        ),
        gauge(
            "etcd_debugging_auth_revision",
            "The current revision of auth store.",
            m.auth_revision as f64,
        ),
        counter(
            "etcd_debugging_lease_granted_total",
            "The total number of granted leases.",
            m.leases_granted,
        ),
        counter(
            "etcd_debugging_lease_revoked_total",
            "The total number of revoked leases.",
            m.leases_revoked,
        ),
        counter(
            "etcd_debugging_lease_renewed_total",
            "The number of renewed leases seen by the leader.",
            m.leases_renewed,
        ),
        histogram(
            "etcd_debugging_lease_ttl_total",
            "Bucketed histogram of lease TTLs.",
            &m.lease_ttl,
        ),
        counter(
            "etcd_debugging_server_lease_expired_total",
            "The total number of expired leases.",
            m.leases_expired,
        ),
    ]
}

/// The mvcc series: etcd has each both as `etcd_mvcc_*` and `etcd_debugging_mvcc_*`.
fn mvcc_families(m: &Metrics) -> Vec<MetricFamily> {
    let c = &m.mvcc;
    let mut all = Vec::new();
    for (name, help, value) in [
        ("put_total", "Total number of puts seen by this member.", c.puts),
        (
            "range_total",
            "Total number of ranges seen by this member.",
            c.ranges,
        ),
        (
            "delete_total",
            "Total number of deletes seen by this member.",
            c.deletes,
        ),
        ("txn_total", "Total number of txns seen by this member.", c.txns),
    ] {
        all.push(counter(&format!("etcd_mvcc_{name}"), help, value));
        all.push(counter(&format!("etcd_debugging_mvcc_{name}"), help, value));
    }
    all.extend([
        // No free pages: everything the store holds is in use.
        gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            m.db_size_bytes as f64,
        ),
        gauge(
            "etcd_debugging_mvcc_total_put_size_in_bytes",
            "The total size of put kv pairs seen by this member.",
            c.put_bytes as f64,
        ),
        gauge(
            "etcd_debugging_mvcc_keys_total",
            "Total number of keys.",
            m.keys_total as f64,
        ),
        gauge(
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store.",
            m.current_revision as f64,
        ),
        gauge(
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store.",
            m.compact_revision as f64,
        ),
        counter(
            "etcd_debugging_mvcc_events_total",
            "Total number of events sent by this member.",
            m.watch_events,
        ),
        gauge(
            "etcd_debugging_mvcc_watch_stream_total",
            "Total number of watch streams.",
            m.watch_streams as f64,
        ),
        gauge(
            "etcd_debugging_mvcc_watcher_total",
            "Total number of watchers.",
            m.watchers as f64,
        ),
        gauge(
            "etcd_debugging_mvcc_slow_watcher_total",
            "Total number of unsynced slow watchers.",
            m.slow_watchers as f64,
        ),
        gauge(
            "etcd_debugging_mvcc_pending_events_total",
            "Total number of pending events to be sent.",
            m.watch_pending_events as f64,
        ),
        counter(
            "etcd_debugging_mvcc_db_compaction_keys_total",
            "Total number of db keys compacted.",
            m.compaction_keys,
        ),
        histogram(
            "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
            "Bucketed histogram of db compaction pause duration.",
            &m.db_compaction_pause_ms,
        ),
        histogram(
            "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
            "Bucketed histogram of db compaction total duration.",
            &m.db_compaction_total_ms,
        ),
        histogram(
            "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
            "Bucketed histogram of index compaction pause duration.",
            &m.index_compaction_pause_ms,
        ),
    ]);
    all
}

fn disk_families(m: &Metrics) -> Vec<MetricFamily> {
    vec![
        // A gauge in etcd 3.4 (a counter from 3.5).
        gauge(
            "etcd_disk_wal_write_bytes_total",
            "Total number of bytes written in WAL.",
            m.wal_write_bytes as f64,
        ),
        histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            &m.backend_commit,
        ),
        histogram(
            "etcd_debugging_snap_save_total_duration_seconds",
            "The total latency distributions of save called by snapshot.",
            &m.snap_save,
        ),
    ]
}

impl Collector for MemberCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let metrics = self.handle.metrics();
        let mut all = families(&metrics, self.handle.member_id());
        all.extend(super::v2store::families(
            &metrics.v2,
            &super::v2store::Local {
                watchers: self.v2_local.watchers(),
                watch_requests: self.v2_local.watch_requests(),
            },
        ));
        all.push(gauge(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes.",
            self.quota_bytes as f64,
        ));
        // The peer series are read here too: the registry tells collectors apart by
        // their descriptors, and these collectors have none.
        all.extend(super::network::collect(&self.handle));
        all
    }
}
