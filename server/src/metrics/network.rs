//! The peer transport's counters as etcd's `etcd_network_*` peer series (rafthttp's
//! names, types and labels: `To`/`From` the peer's ID, `Local`/`Remote` this
//! member's and the peer's, in hexadecimal). As with etcd's labelled vectors, a
//! peer's series appears once it was first counted.

use detcd_io::driver::MemberHandle;
use detcd_io::metrics::Histogram;
use detcd_io::transport::counters::PeerCounters;
use prometheus::proto::{Metric, MetricFamily, MetricType};

use super::member::{family, histogram_metric, metric};

/// How a series names its peer: the peer it sends `To` or receives `From`, or this
/// member and the peer (`Local`, `Remote`).
#[derive(Clone, Copy)]
enum Peer {
    To,
    From,
    Pair,
}

impl Peer {
    fn labels<'a>(self, local: &'a str, id: &'a str) -> Vec<(&'static str, &'a str)> {
        match self {
            Peer::To => vec![("To", id)],
            Peer::From => vec![("From", id)],
            Peer::Pair => vec![("Local", local), ("Remote", id)],
        }
    }
}

/// A counter's or gauge's value for a peer, if it shows one.
type Value = fn(&PeerCounters) -> Option<f64>;

/// A latency histogram of a peer.
type Seconds = fn(&PeerCounters) -> &Histogram;

/// A family with one series per peer that has one, or none when no peer has.
fn per_peer(
    name: &str,
    help: &str,
    kind: MetricType,
    peers: &[(String, PeerCounters)],
    series: impl Fn(&str, &PeerCounters) -> Option<Metric>,
) -> Option<MetricFamily> {
    let series: Vec<_> = peers.iter().filter_map(|(id, c)| series(id, c)).collect();
    (!series.is_empty()).then(|| family(name, help, kind, series))
}

/// A count, shown once it moved.
fn moved(v: u64) -> Option<f64> {
    (v > 0).then_some(v as f64)
}

/// etcd's peer series for one snapshot of the transport's counters, with `local` this
/// member's ID.
pub fn families(local: u64, peers: &[(String, PeerCounters)]) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE, HISTOGRAM};
    use Peer::{From, Pair, To};
    let counted: [(&str, &str, MetricType, Peer, Value); 10] = [
        (
            "etcd_network_peer_sent_bytes_total",
            "The total number of bytes sent to peers.",
            COUNTER,
            To,
            |c| moved(c.sent_bytes),
        ),
        (
            "etcd_network_peer_received_bytes_total",
            "The total number of bytes received from peers.",
            COUNTER,
            From,
            |c| moved(c.received_bytes),
        ),
        (
            "etcd_network_peer_sent_failures_total",
            "The total number of send failures from peers.",
            COUNTER,
            To,
            |c| moved(c.sent_failures),
        ),
        (
            "etcd_network_peer_received_failures_total",
            "The total number of receive failures from peers.",
            COUNTER,
            From,
            |c| moved(c.received_failures),
        ),
        (
            "etcd_network_snapshot_send_success",
            "Total number of successful snapshot sends",
            COUNTER,
            To,
            |c| moved(c.snapshot_send_success),
        ),
        (
            "etcd_network_snapshot_send_failures",
            "Total number of snapshot send failures",
            COUNTER,
            To,
            |c| moved(c.snapshot_send_failures),
        ),
        (
            "etcd_network_snapshot_send_inflights_total",
            "Total number of inflight snapshot sends",
            GAUGE,
            To,
            |c| {
                (c.snapshot_send_success + c.snapshot_send_failures + c.snapshot_send_inflights > 0)
                    .then_some(c.snapshot_send_inflights as f64)
            },
        ),
        (
            "etcd_network_snapshot_receive_success",
            "Total number of successful snapshot receives",
            COUNTER,
            From,
            |c| moved(c.snapshot_receive_success),
        ),
        (
            "etcd_network_active_peers",
            "The current number of active peer connections.",
            GAUGE,
            Pair,
            |c| c.ever_active.then_some(if c.active() { 1.0 } else { 0.0 }),
        ),
        (
            "etcd_network_disconnected_peers_total",
            "The total number of disconnected peers.",
            COUNTER,
            Pair,
            |c| moved(c.disconnected),
        ),
    ];
    let timed: [(&str, &str, Peer, Seconds); 3] = [
        (
            "etcd_network_peer_round_trip_time_seconds",
            "Round-Trip-Time histogram between peers",
            To,
            |c| &c.round_trip_seconds,
        ),
        (
            "etcd_network_snapshot_send_total_duration_seconds",
            "Total latency distributions of v3 snapshot sends",
            To,
            |c| &c.snapshot_send_seconds,
        ),
        (
            "etcd_network_snapshot_receive_total_duration_seconds",
            "Total latency distributions of v3 snapshot receives",
            From,
            |c| &c.snapshot_receive_seconds,
        ),
    ];
    let local = format!("{local:x}");
    let values = counted.into_iter().filter_map(|(name, help, kind, peer, value)| {
        per_peer(name, help, kind, peers, |id, c| {
            value(c).map(|v| metric(&peer.labels(&local, id), v, kind))
        })
    });
    let histograms = timed.into_iter().filter_map(|(name, help, peer, seconds)| {
        per_peer(name, help, HISTOGRAM, peers, |id, c| {
            let h = seconds(c);
            (h.count > 0).then(|| histogram_metric(&peer.labels(&local, id), h))
        })
    });
    values.chain(histograms).collect()
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

#[cfg(test)]
mod tests {
    use prometheus::{Encoder as _, TextEncoder};

    use super::*;

    fn text(local: u64, peers: &[(String, PeerCounters)]) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families(local, peers), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_series_names_its_peer_as_etcd_does_and_appears_once_counted() {
        let mut a = PeerCounters::default();
        a.sent_bytes = 10;
        a.received_failures = 2;
        a.ever_active = true;
        a.disconnected = 1;
        a.snapshot_send_failures = 1;
        a.snapshot_receive_seconds.observe(0.3);
        a.round_trip_seconds.observe(0.0003);
        let mut b = PeerCounters::default();
        b.received_bytes = 7;
        b.snapshot_send_inflights = 1;
        let idle = PeerCounters::default();
        let peers = [
            ("a1".to_string(), a),
            ("b2".to_string(), b),
            ("c3".to_string(), idle),
        ];
        let t = text(0xf0, &peers);
        let lines: Vec<&str> = t.lines().filter(|l| !l.starts_with('#')).collect();
        for want in [
            "etcd_network_peer_sent_bytes_total{To=\"a1\"} 10",
            "etcd_network_peer_received_bytes_total{From=\"b2\"} 7",
            "etcd_network_peer_received_failures_total{From=\"a1\"} 2",
            "etcd_network_snapshot_send_failures{To=\"a1\"} 1",
            "etcd_network_snapshot_send_inflights_total{To=\"a1\"} 0",
            "etcd_network_snapshot_send_inflights_total{To=\"b2\"} 1",
            "etcd_network_active_peers{Local=\"f0\",Remote=\"a1\"} 0",
            "etcd_network_disconnected_peers_total{Local=\"f0\",Remote=\"a1\"} 1",
            "etcd_network_snapshot_receive_total_duration_seconds_bucket{From=\"a1\",le=\"0.4\"} 1",
            "etcd_network_snapshot_receive_total_duration_seconds_count{From=\"a1\"} 1",
            "etcd_network_peer_round_trip_time_seconds_bucket{To=\"a1\",le=\"0.0004\"} 1",
        ] {
            assert!(lines.contains(&want), "{want} missing from\n{t}");
        }
        // Nothing counted yet: no series, and no family at all.
        assert!(!t.contains("c3"), "{t}");
        assert!(!t.contains("etcd_network_peer_sent_failures_total"), "{t}");
        assert!(
            !t.contains("etcd_network_snapshot_send_total_duration_seconds"),
            "{t}"
        );
        assert!(t.contains("# TYPE etcd_network_active_peers gauge"), "{t}");
        assert!(
            t.contains("# TYPE etcd_network_disconnected_peers_total counter"),
            "{t}"
        );
    }
}
