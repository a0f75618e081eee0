//! What the peer transport counts, per peer, for etcd's `etcd_network_*` peer
//! series (rafthttp's names): bytes and failures each way, whether the peer is
//! connected, disconnections, and snapshot transfers.
//!
//! A peer is active while an outbound link to it is connected or a connection
//! from it is open (etcd: while one of its streams works); it counts as
//! disconnected each time it stops being active.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::metrics::Histogram;

/// etcd's snapshot transfer buckets (`ExponentialBuckets(0.1, 2, 10)`), 0.1 s to 51.2 s.
pub const SNAPSHOT_TRANSFER_BUCKETS_SECONDS: [f64; 10] =
    [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2];

/// etcd's peer round-trip buckets (`ExponentialBuckets(0.0001, 2, 16)`), 0.1 ms to 3.2768 s.
pub const ROUND_TRIP_BUCKETS_SECONDS: [f64; 16] = [
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048, 0.4096,
    0.8192, 1.6384, 3.2768,
];

/// One peer's counters.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerCounters {
    /// `etcd_network_peer_sent_bytes_total{To}`: frame bytes written to the peer.
    pub sent_bytes: u64,
    /// `etcd_network_peer_received_bytes_total{From}`: frame bytes read from it.
    pub received_bytes: u64,
    /// `etcd_network_peer_sent_failures_total{To}`: messages dropped (queue full,
    /// no URL, link down) or lost in a failed write.
    pub sent_failures: u64,
    /// `etcd_network_peer_received_failures_total{From}`: frames that could not be read.
    pub received_failures: u64,
    /// Whether the peer was ever active (etcd shows `active_peers` from then on).
    pub ever_active: bool,
    /// `etcd_network_disconnected_peers_total{Local,Remote}`.
    pub disconnected: u64,
    /// `etcd_network_snapshot_send_success{To}`, `_failures`, `_inflights_total`
    /// and `_total_duration_seconds`.
    pub snapshot_send_success: u64,
    pub snapshot_send_failures: u64,
    pub snapshot_send_inflights: u64,
    pub snapshot_send_seconds: Histogram,
    /// `etcd_network_snapshot_receive_success{From}` and `_total_duration_seconds`
    /// (from the first to the last byte of the snapshot's frame).
    pub snapshot_receive_success: u64,
    pub snapshot_receive_seconds: Histogram,
    /// `etcd_network_peer_round_trip_time_seconds{To}`: the smoothed round trip of
    /// the `/raft/probing` requests, observed as etcd's prober reports it
    /// ([`super::probe`]).
    pub round_trip_seconds: Histogram,
    outbound_up: bool,
    inbound_open: u32,
}

impl Default for PeerCounters {
    fn default() -> PeerCounters {
        PeerCounters {
            sent_bytes: 0,
            received_bytes: 0,
            sent_failures: 0,
            received_failures: 0,
            ever_active: false,
            disconnected: 0,
            snapshot_send_success: 0,
            snapshot_send_failures: 0,
            snapshot_send_inflights: 0,
            snapshot_send_seconds: Histogram::new(&SNAPSHOT_TRANSFER_BUCKETS_SECONDS),
            snapshot_receive_success: 0,
            snapshot_receive_seconds: Histogram::new(&SNAPSHOT_TRANSFER_BUCKETS_SECONDS),
            round_trip_seconds: Histogram::new(&ROUND_TRIP_BUCKETS_SECONDS),
            outbound_up: false,
            inbound_open: 0,
        }
    }
}

impl PeerCounters {
    /// `etcd_network_active_peers{Local,Remote}`.
    pub fn active(&self) -> bool {
        self.outbound_up || self.inbound_open > 0
    }
}

/// A connection to or from a peer opened or closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkEvent {
    OutboundUp,
    OutboundDown,
    InboundOpen,
    InboundClosed,
}

/// The transport's counters, shared with whoever shows them.
#[derive(Clone, Debug, Default)]
pub struct PeerMetrics(Arc<Mutex<BTreeMap<u64, PeerCounters>>>);

impl PeerMetrics {
    /// A copy of every peer's counters, by member ID.
    pub fn snapshot(&self) -> BTreeMap<u64, PeerCounters> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn update(&self, peer: u64, change: impl FnOnce(&mut PeerCounters)) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        change(all.entry(peer).or_default());
    }

    pub(crate) fn link(&self, peer: u64, event: LinkEvent) {
        self.update(peer, |c| {
            let was = c.active();
            match event {
                LinkEvent::OutboundUp => c.outbound_up = true,
                LinkEvent::OutboundDown => c.outbound_up = false,
                LinkEvent::InboundOpen => c.inbound_open += 1,
                LinkEvent::InboundClosed => c.inbound_open = c.inbound_open.saturating_sub(1),
            }
            if c.active() {
                c.ever_active = true;
            } else if was {
                c.disconnected += 1;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_active_while_either_direction_is_connected_and_disconnects_once_both_are_down() {
        let m = PeerMetrics::default();
        m.link(2, LinkEvent::OutboundUp);
        m.link(2, LinkEvent::InboundOpen);
        m.link(2, LinkEvent::OutboundDown);
        let c = &m.snapshot()[&2];
        assert!(c.active() && c.ever_active);
        assert_eq!(c.disconnected, 0);
        m.link(2, LinkEvent::InboundClosed);
        let c = &m.snapshot()[&2];
        assert!(!c.active());
        assert_eq!(c.disconnected, 1);
        m.link(2, LinkEvent::OutboundDown);
        assert_eq!(m.snapshot()[&2].disconnected, 1, "already down");
    }
}
