//! etcd's peer probing: every [`PROBE_INTERVAL`] a member asks each peer's
//! `/raft/probing` over HTTP (over TLS with `https://` peer URLs) and times the
//! answer, keeping a smoothed round trip per peer (etcd's prober: `SRTT` becomes
//! `7/8 SRTT + 1/8 RTT`, starting from 0). As etcd's `monitorProbingStatus` does, the
//! smoothed value is observed into `etcd_network_peer_round_trip_time_seconds{To}`
//! [`FIRST_REPORT`] after the peer is added, then every [`REPORT_INTERVAL`] while
//! its probes succeed and every [`FIRST_REPORT`] while they fail (the value
//! then is what the last successes left, 0 if none).
//!
//! The answering side is [`answer`], served by the peer listener's HTTP handler
//! ([`super::peer_http`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::conn::{self, SharedPeerTls};
use super::counters::PeerMetrics;

/// The path etcd's peers answer probes at.
pub const PROBING_PATH: &str = "/raft/probing";

/// etcd's `proberInterval`: its peer read timeout (5 s) less a second.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(4);
/// How long one probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// etcd's `statusErrorInterval`: the first report, and the next while probes fail.
pub const FIRST_REPORT: Duration = Duration::from_secs(5);
/// etcd's `statusMonitoringInterval`: the next report while probes succeed.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(30);
/// The weight of a new round trip in the smoothed one (the prober's α).
const SRTT_WEIGHT: f64 = 0.125;
/// The largest probe answer read.
const ANSWER_BYTES_MAX: usize = 4096;
/// How often the prober looks at what is due.
const STEP: Duration = Duration::from_millis(250);

/// The body of a probe's answer (etcd's `probing.Health` as Go's JSON encoder
/// writes it): `OK` and this member's clock.
pub fn answer(now: SystemTime) -> String {
    let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!(
        "{{\"OK\":true,\"Now\":\"{}\"}}\n",
        crate::time_text::rfc3339_nanos(nanos)
    )
}

/// Whether a probe's answer says the peer is well (`"OK":true`).
fn answered_ok(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.split_once("\"OK\"")
        .map(|(_, rest)| rest.trim_start().trim_start_matches(':').trim_start())
        .is_some_and(|rest| rest.starts_with("true"))
}

/// One peer's probing state.
struct Peer {
    url: String,
    srtt_seconds: f64,
    healthy: bool,
    next_probe: Instant,
    next_report: Instant,
    /// A probe of this peer is under way.
    probing: bool,
    /// The kept-alive connection of the last probe.
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl Peer {
    fn new(url: String, now: Instant) -> Peer {
        Peer {
            url,
            srtt_seconds: 0.0,
            healthy: false,
            next_probe: now + PROBE_INTERVAL,
            next_report: now + FIRST_REPORT,
            probing: false,
            sender: None,
        }
    }
}

/// What one probe found: the peer, the URL probed, the round trip when it
/// succeeded, and the connection to keep.
type Probed = (u64, String, Option<Duration>, Option<SendRequest<Empty<Bytes>>>);

/// Probes the peers `targets` names (member ID to the peer URL probed) until the
/// transport stops it, observing round trips into `counters`.
pub(super) async fn run(
    mut targets: watch::Receiver<BTreeMap<u64, String>>,
    tls: SharedPeerTls,
    counters: PeerMetrics,
) {
    let mut peers: BTreeMap<u64, Peer> = BTreeMap::new();
    let mut probes: JoinSet<Probed> = JoinSet::new();
    let mut step = tokio::time::interval(STEP);
    step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = step.tick() => {}
            changed = targets.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            Some(done) = probes.join_next(), if !probes.is_empty() => {
                let Ok((id, url, rtt, sender)) = done else { continue };
                if let Some(p) = peers.get_mut(&id).filter(|p| p.url == url) {
                    p.probing = false;
                    p.sender = sender;
                    match rtt {
                        Some(rtt) => {
                            p.healthy = true;
                            p.srtt_seconds = (1.0 - SRTT_WEIGHT) * p.srtt_seconds + SRTT_WEIGHT * rtt.as_secs_f64();
                        }
                        None => p.healthy = false,
                    }
                }
            }
        }
        let now = Instant::now();
        let wanted = targets.borrow().clone();
        peers.retain(|id, p| wanted.get(id) == Some(&p.url));
        for (&id, url) in &wanted {
            let p = peers.entry(id).or_insert_with(|| Peer::new(url.clone(), now));
            if now >= p.next_probe && !p.probing {
                p.probing = true;
                p.next_probe = now + PROBE_INTERVAL;
                let (url, tls, sender) = (p.url.clone(), tls.clone(), p.sender.take());
                probes.spawn(async move {
                    let (rtt, sender) = probe(&url, &tls, sender).await;
                    (id, url, rtt, sender)
                });
            }
            if now >= p.next_report {
                let srtt = p.srtt_seconds;
                counters.update(id, |c| c.round_trip_seconds.observe(srtt));
                p.next_report = now + if p.healthy { REPORT_INTERVAL } else { FIRST_REPORT };
            }
        }
    }
}

/// One probe of `url`, on `sender`'s connection when it is still open: the round
/// trip when the peer answered well, and the connection to keep.
async fn probe(
    url: &str,
    tls: &SharedPeerTls,
    sender: Option<SendRequest<Empty<Bytes>>>,
) -> (Option<Duration>, Option<SendRequest<Empty<Bytes>>>) {
    let started = Instant::now();
    match tokio::time::timeout(PROBE_TIMEOUT, ask(url, tls, sender)).await {
        Ok(Ok((true, sender))) => (Some(started.elapsed()), Some(sender)),
        Ok(Ok((false, sender))) => (None, Some(sender)),
        _ => (None, None),
    }
}

async fn ask(
    url: &str,
    tls: &SharedPeerTls,
    sender: Option<SendRequest<Empty<Bytes>>>,
) -> Result<(bool, SendRequest<Empty<Bytes>>), String> {
    let mut sender = match sender.filter(|s| !s.is_closed()) {
        Some(s) => s,
        None => {
            let addr = super::parse_url(url).map_err(|e| e.to_string())?;
            let stream = conn::dial(url, &addr, tls).await.map_err(|e| e.to_string())?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            sender
        }
    };
    sender.ready().await.map_err(|e| e.to_string())?;
    let host = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
    let request = hyper::Request::get(PROBING_PATH)
        .header(hyper::header::HOST, host)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let ok = response.status().is_success();
    let body = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((ok && answered_ok(&body), sender))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_etcds_health_json_and_reads_back_as_ok() {
        let at = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_500_000_000);
        let body = answer(at);
        assert_eq!(body, "{\"OK\":true,\"Now\":\"2023-11-14T22:13:20.5Z\"}\n");
        assert!(answered_ok(body.as_bytes()));
        assert!(answered_ok(b"{\"OK\": true}"));
        assert!(!answered_ok(b"{\"OK\":false,\"Now\":\"x\"}"));
        assert!(!answered_ok(b"404 page not found"));
    }
}
