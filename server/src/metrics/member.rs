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
    descs: Vec<Desc>,
}

impl MemberCollector {
    pub fn new(handle: MemberHandle, quota_bytes: u64) -> MemberCollector {
        MemberCollector {
            handle,
            quota_bytes,
            descs: Vec::new(),
        }
    }
}

/// One series of a family: its labels and value.
fn metric(labels: &[(&str, &str)], value: f64, kind: MetricType) -> proto::Metric {
    let mut m = proto::Metric::default();
    m.set_label(
        labels
            .iter()
            .map(|(k, v)| {
                let mut l = proto::LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(v.to_string());
                l
            })
            .collect(),
    );
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

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn gauge(name: &str, help: &str, value: f64) -> MetricFamily {
    family(
        name,
        help,
        MetricType::GAUGE,
        vec![metric(&[], value, MetricType::GAUGE)],
    )
}

fn counter(name: &str, help: &str, value: u64) -> MetricFamily {
    family(
        name,
        help,
        MetricType::COUNTER,
        vec![metric(&[], value as f64, MetricType::COUNTER)],
    )
}

fn histogram(name: &str, help: &str, h: &Histogram) -> MetricFamily {
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
    m.set_histogram(ph);
    family(name, help, MetricType::HISTOGRAM, vec![m])
}

/// etcd's series for one snapshot of the member's counters.
pub fn families(m: &Metrics, member_id: u64) -> Vec<MetricFamily> {
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    let id = format!("{member_id:x}");
    vec![
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
        counter(
            "etcd_network_peer_sent_failures_total",
            "The total number of send failures from peers.",
            m.peer_sends_dropped,
        ),
    ]
}

impl Collector for MemberCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut all = families(&self.handle.metrics(), self.handle.member_id());
        all.push(gauge(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes.",
            self.quota_bytes as f64,
        ));
        all
    }
}
