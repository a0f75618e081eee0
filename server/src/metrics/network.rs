//! The peer transport's counters as etcd's `etcd_network_*` peer series (rafthttp's
//! names, types and labels: `To`/`From` the peer's ID, `Local`/`Remote` this
//! member's and the peer's, in hexadecimal). As with etcd's labelled vectors, a
//! peer's series appears once it was first counted.

use detcd_io::driver::MemberHandle;
use detcd_io::transport::counters::PeerCounters;
use prometheus::proto::{MetricFamily, MetricType};

use super::member::{family, histogram_metric, metric};

type Value = fn(&PeerCounters) -> Option<f64>;

/// A counter or gauge family with one series per peer that has a value; `label`
/// names the peer (`To` or `From`).
fn per_peer(
    name: &str,
    help: &str,
    kind: MetricType,
    label: &str,
    peers: &[(String, PeerCounters)],
    value: Value,
) -> Option<MetricFamily> {
    let series: Vec<_> = peers
        .iter()
        .filter_map(|(id, c)| value(c).map(|v| metric(&[(label, id)], v, kind)))
        .collect();
    (!series.is_empty()).then(|| family(name, help, kind, series))
}

/// A count, shown once it moved.
fn moved(v: u64) -> Option<f64> {
    (v > 0).then_some(v as f64)
}

/// etcd's peer series for one snapshot of the transport's counters.
pub fn families(local: u64, peers: &[(String, PeerCounters)]) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE};
    let counted: [(&str, &str, MetricType, &str, Value); 8] = [
        (
            "etcd_network_peer_sent_bytes_total",
            "The total number of bytes sent to peers.",
            COUNTER,
            "To",
            |c| moved(c.sent_bytes),
        ),
        (
            "etcd_network_peer_received_bytes_total",
            "The total number of bytes received from peers.",
            COUNTER,
            "From",
            |c| moved(c.received_bytes),
        ),
        (
            "etcd_network_peer_sent_failures_total",
            "The total number of send failures from peers.",
            COUNTER,
            "To",
            |c| moved(c.sent_failures),
        ),
        (
            "etcd_network_peer_received_failures_total",
            "The total number of receive failures from peers.",
            COUNTER,
            "From",
            |c| moved(c.received_failures),
        ),
        (
            "etcd_network_snapshot_send_success",
            "Total number of successful snapshot sends",
            COUNTER,
            "To",
            |c| moved(c.snapshot_send_success),
        ),
        (
            "etcd_network_snapshot_send_failures",
            "Total number of snapshot send failures",
            COUNTER,
            "To",
            |c| moved(c.snapshot_send_failures),
        ),
        (
            "etcd_network_snapshot_send_inflights_total",
            "Total number of inflight snapshot sends",
            GAUGE,
            "To",
            |c| {
                (c.snapshot_send_success + c.snapshot_send_failures + c.snapshot_send_inflights > 0)
                    .then_some(c.snapshot_send_inflights as f64)
            },
        ),
        (
            "etcd_network_snapshot_receive_success",
            "Total number of successful snapshot receives",
            COUNTER,
            "From",
            |c| moved(c.snapshot_receive_success),
        ),
    ];
    let mut all: Vec<MetricFamily> = counted
        .into_iter()
        .filter_map(|(name, help, kind, label, value)| per_peer(name, help, kind, label, peers, value))
        .collect();
    let local = format!("{local:x}");
    let pair = |remote: &str| [("Local", local.clone()), ("Remote", remote.to_string())];
    let with_pair = |v: f64, remote: &str, kind| {
        let labels = pair(remote);
        let refs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        metric(&refs, v, kind)
    };
    let active: Vec<_> = peers
        .iter()
        .filter(|(_, c)| c.ever_active)
        .map(|(id, c)| with_pair(if c.active() { 1.0 } else { 0.0 }, id, GAUGE))
        .collect();
    if !active.is_empty() {
        all.push(family(
            "etcd_network_active_peers",
            "The current number of active peer connections.",
            GAUGE,
            active,
        ));
    }
    let disconnected: Vec<_> = peers
        .iter()
        .filter(|(_, c)| c.disconnected > 0)
        .map(|(id, c)| with_pair(c.disconnected as f64, id, COUNTER))
        .collect();
    if !disconnected.is_empty() {
        all.push(family(
            "etcd_network_disconnected_peers_total",
            "The total number of disconnected peers.",
            COUNTER,
            disconnected,
        ));
    }
    for (name, help, label, seconds) in [
        (
            "etcd_network_snapshot_send_total_duration_seconds",
            "Total latency distributions of v3 snapshot sends",
            "To",
            (|c| &c.snapshot_send_seconds) as fn(&PeerCounters) -> &detcd_io::metrics::Histogram,
        ),
        (
            "etcd_network_snapshot_receive_total_duration_seconds",
            "Total latency distributions of v3 snapshot receives",
            "From",
            |c| &c.snapshot_receive_seconds,
        ),
    ] {
        let series: Vec<_> = peers
            .iter()
            .filter(|(_, c)| seconds(c).count > 0)
            .map(|(id, c)| histogram_metric(&[(label, id)], seconds(c)))
            .collect();
        if !series.is_empty() {
            all.push(family(name, help, MetricType::HISTOGRAM, series));
        }
    }
    all
}

/// The series of the transport behind `handle`, read now.
pub fn collect(handle: &MemberHandle) -> Vec<MetricFamily> {
    let peers: Vec<(String, PeerCounters)> = handle
        .peer_metrics()
        .into_iter()
        .map(|(id, c)| (format!("{id:x}"), c))
        .collect();
    families(handle.member_id(), &peers)
}
