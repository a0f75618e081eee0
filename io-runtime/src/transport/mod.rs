//! The peer transport: how members' messages travel between processes.
//!
//! # Choice: framed TCP, not tonic
//!
//! Each message is one length-prefixed protobuf frame ([`wire`]) on a plain
//! tokio TCP connection. etcd uses HTTP (long-lived `/raft/stream` streams plus a
//! `/raft` pipeline for snapshots); tonic would give the same shape over HTTP/2.
//! The peer port speaks only to other detcd members, never to clients, so HTTP
//! buys nothing here, and framed TCP costs less: no HTTP/2 framing, flow-control
//! windows or per-message headers, one buffer written per batch, and a small,
//! fully visible code path (handshake, frames, backoff) that is easy to reason
//! about under failure. Peer URLs keep etcd's `http://host:port` form so
//! configuration is unchanged; only `host:port` is used.
//!
//! # TLS
//!
//! `https://` peer URLs are served and dialed over TLS ([`conn`]), with the
//! configuration the member's owner passes in ([`conn::PeerTls`]); `http://` URLs
//! stay plain TCP. An https URL without that configuration is refused.
//!
//! # Connections
//!
//! - **Outbound**: one connection per peer, owned by a writer task with a bounded
//!   queue ([`PEER_QUEUE_MSGS_MAX`], etcd's `streamBufSize`). The driver never
//!   waits on it: when the queue is full the message is dropped and the node told
//!   [`Input::PeerUnreachable`](detcd_core::node::Input::PeerUnreachable), as
//!   etcd does; raft retries. The writer takes everything queued, writes it as
//!   one buffer, and goes back to waiting (batching: one write per wake-up).
//! - **Inbound**: every accepted connection gets a reader task that decodes
//!   frames and passes them to the driver through a bounded channel (a slow
//!   driver slows the TCP reader, which slows the sender: backpressure).
//! - **Handshake**: the dialer sends `PeerHello { protocol_version, cluster_id,
//!   from, to, peer_urls }`; the listener answers `PeerHelloReply`. A wrong
//!   cluster, a wrong member or another protocol version is refused, logged as an
//!   error on both ends, and the dialer backs off for the longest delay.
//! - **Unknown members**: a dialer of this cluster the member list does not hold
//!   (typically one added after what the listener applied) is taken, as etcd's
//!   pipeline handler takes an unknown sender's messages (etcd refuses only its
//!   stream, 404 "error sender not found", and adds it as a remote). Its reply says
//!   `sender_unknown`, it counts as a connected peer only once listed, and until
//!   then this member answers it at the `peer_urls` its hello named (a remote,
//!   [`inbound::REMOTES_MAX`] at most). A member lagging behind a new leader thus
//!   still hears it and answers it, and catches up.
//! - **Reconnect**: exponential backoff from [`RECONNECT_BACKOFF_MS_MIN`] to
//!   [`RECONNECT_BACKOFF_MS_MAX`]. While a peer is down its queued messages are
//!   dropped (with one PeerUnreachable per wait, and a failed SnapshotReport for
//!   each snapshot), so stale heartbeats do not pile up.
//! - **Snapshots**: a raft `MsgSnap` travels as an ordinary frame (frames up to
//!   [`wire::PEER_FRAME_BYTES_MAX`]); once it is written the node is told
//!   `SnapshotReport { delivered: true }`, on failure `delivered: false`. Unlike
//!   etcd, which sends snapshots on a separate pipeline connection, a large
//!   snapshot here delays the messages queued behind it for that one peer.
//! - **Removed members**: the owner passes the members removed from the cluster
//!   with the peer URLs ([`Transport::set_peer_urls`]). Their inbound connections
//!   close, and their hellos are refused with etcd's words for it
//!   ([`handshake::MEMBER_REMOVED`]; etcd answers their streams 410 Gone). On the
//!   other end, a member told so by a peer it dials (it was cut off when it was
//!   removed and never applied its removal) stops dialing that peer and reports
//!   [`Report::RemovedFromCluster`], on which its owner stops it, as etcd's member
//!   stops on the 410.
//! - **Dead peers**: a batch write has [`WRITE_TIMEOUT_MS`]. Inbound connections
//!   have no read timeout (raft traffic between two followers may be idle); a
//!   reader whose dialer vanished without a FIN stays until the member stops.

pub mod conn;
pub mod counters;
pub mod handshake;
mod inbound;
pub mod peer_http;
pub mod probe;
pub mod socket;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use detcd_core::node::PeerMessage;
use detcd_proto::raftpb::MessageType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

use self::conn::{PeerStream, SharedPeerTls};
use self::counters::{LinkEvent, PeerMetrics};
use self::handshake::DialError;
use self::socket::{Address, Listener, Local, StaleSocket};
use crate::log::Level;

/// The protocol version in every hello; a listener refuses any other.
pub const PEER_PROTOCOL_VERSION: u32 = 1;
/// Messages waiting for one peer's connection (etcd's `streamBufSize`).
pub const PEER_QUEUE_MSGS_MAX: usize = 4096;
/// Messages from all peers waiting for the driver.
pub const INBOUND_QUEUE_MSGS_MAX: usize = 4096;
/// Messages one write takes from the queue at most.
pub const WRITE_BATCH_MSGS_MAX: usize = 512;
/// First delay before redialing a peer after a failure.
pub const RECONNECT_BACKOFF_MS_MIN: u64 = 50;
/// Longest delay between dials (also the delay after a refused handshake).
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 2000;
/// A dial plus handshake that takes longer fails.
pub const DIAL_TIMEOUT_MS: u64 = 1000;
/// A batch write that takes longer breaks the connection (etcd's
/// `ConnWriteTimeout`): a peer that stopped reading without closing is found
/// out in seconds instead of TCP's minutes. Batches holding a snapshot are
/// exempt, since they may legitimately take longer.
pub const WRITE_TIMEOUT_MS: u64 = 5000;

/// What the transport tells its owner about delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// Messages to `peer` could not be delivered (its link is down or full).
    PeerUnreachable(u64),
    /// A raft snapshot message to `peer` was (`delivered`) or was not written.
    SnapshotReport { peer: u64, delivered: bool },
    /// `peer` refused this member's hello because this member was removed from the
    /// cluster ([`handshake::MEMBER_REMOVED`]): its link stopped redialing. etcd's
    /// member stops on the 410 Gone that says the same.
    RemovedFromCluster { peer: u64 },
}

/// Why the transport cannot use a URL.
#[derive(Debug)]
pub enum TransportError {
    /// A peer URL is not `http://host:port` (or a TLS URL without TLS configured).
    BadUrl { url: String },
    /// A peer listener could not bind (port in use, address not local, ...).
    Bind { url: String, source: std::io::Error },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::BadUrl { url } => write!(
                f,
                "peer URL {url:?} is not http(s)://host:port or unix(s)://socket (with TLS configured for https and unixs)"
            ),
            TransportError::Bind { url, source } => write!(f, "cannot listen for peers on {url}: {source}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// Who this member is, as its hello says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
}

/// `http://host:port` (or `https://`, or bare `host:port`) -> TCP `host:port`;
/// `unix://name` (or `unixs://`) -> the socket file `name`. Whether a TLS URL can be
/// used is decided where it is served or dialed ([`conn`]).
pub fn parse_url(url: &str) -> Result<Address, TransportError> {
    Address::of_url(url).ok_or_else(|| TransportError::BadUrl { url: url.to_string() })
}

/// One bound peer listener.
#[derive(Debug)]
pub struct PeerListener {
    pub listener: Listener,
    pub local: Local,
    /// An `https://` or `unixs://` URL: connections complete a TLS handshake first.
    pub tls: bool,
}

/// Binds a listener for each URL; a port in use fails with the URL named, a TLS URL
/// without `tls` is refused. A unix socket's stale file is removed first, as etcd's
/// peer listeners do.
pub async fn bind(urls: &[String], tls: &SharedPeerTls) -> Result<Vec<PeerListener>, TransportError> {
    let mut listeners = Vec::with_capacity(urls.len());
    for url in urls {
        let addr = parse_url(url)?;
        if conn::wants_tls(url) && tls.is_none() {
            return Err(TransportError::BadUrl { url: url.clone() });
        }
        let bind_error = |source| TransportError::Bind {
            url: url.clone(),
            source,
        };
        let listener = match &addr {
            Address::Tcp(a) => Listener::Tcp(
                tokio::net::TcpListener::bind(a.as_str())
                    .await
                    .map_err(bind_error)?,
            ),
            Address::Unix(path) => Listener::bind_unix(path, StaleSocket::Remove).map_err(bind_error)?,
        };
        let local = listener.local().map_err(bind_error)?;
        listeners.push(PeerListener {
            listener,
            local,
            tls: conn::wants_tls(url),
        });
    }
    Ok(listeners)
}

/// The driver's side of the transport.
#[derive(Debug)]
pub struct Transport {
    identity: Identity,
    /// The peer URLs the options name: used for members the node's list has
    /// none for.
    fallback_urls: BTreeMap<u64, Vec<String>>,
    /// The peer URLs of the node's member list (its latest `Output::PeerUrls`).
    member_urls: BTreeMap<u64, Vec<String>>,
    links: BTreeMap<u64, Link>,
    /// The member list's members and the removed ones: the accept loops refuse
    /// removed members and close their connections.
    roster: watch::Sender<inbound::Roster>,
    /// Where members the list does not hold (yet) are answered, from their hellos.
    remotes: inbound::Remotes,
    reports: mpsc::UnboundedSender<Report>,
    tasks: JoinSet<()>,
    tls: SharedPeerTls,
    counters: PeerMetrics,
    /// The peers the prober probes, at the URL it asks ([`probe`]).
    probe_targets: watch::Sender<BTreeMap<u64, String>>,
}

/// One peer's outbound connection: its queue, its writer task, the URLs it dials.
#[derive(Debug)]
struct Link {
    queue: mpsc::Sender<PeerMessage>,
    writer: AbortHandle,
    urls: Vec<String>,
}

/// What happened to one `Transport::send`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// Dropped: the peer's queue is full, or no URL is known for it.
    Dropped {
        snapshot: bool,
    },
}

/// Where the transport's traffic and news go.
pub(crate) struct Outlets {
    /// Messages from peers.
    pub(crate) inbound: mpsc::Sender<PeerMessage>,
    /// Unreachable peers, snapshot delivery.
    pub(crate) reports: mpsc::UnboundedSender<Report>,
    /// HashKVs asked for on the peer port.
    pub(crate) hashkv_calls: mpsc::Sender<peer_http::PeerCall>,
    /// What it counts per peer.
    pub(crate) counters: PeerMetrics,
}

impl Transport {
    /// Starts accepting on `listeners`; what arrives and what happens goes to `outlets`.
    pub(crate) fn start(
        identity: Identity,
        listeners: Vec<PeerListener>,
        fallback_urls: BTreeMap<u64, Vec<String>>,
        tls: SharedPeerTls,
        outlets: Outlets,
    ) -> Transport {
        let Outlets {
            inbound,
            reports,
            hashkv_calls,
            counters,
        } = outlets;
        let mut tasks = JoinSet::new();
        // Until the node says its member list, the options' members are the list.
        let (roster, roster_watch) = watch::channel(inbound::Roster {
            members: fallback_urls.keys().copied().collect(),
            removed: BTreeSet::new(),
        });
        let remotes = inbound::Remotes::default();
        for PeerListener {
            listener,
            local: addr,
            tls: secure,
        } in listeners
        {
            crate::log!(
                Level::Info,
                "transport",
                "member {:x} listening for peers on {addr}{}",
                identity.member_id,
                if secure { " (TLS)" } else { "" }
            );
            let accept_tls = if secure { tls.clone() } else { None };
            tasks.spawn(inbound::accept_loop(
                identity,
                listener,
                accept_tls,
                inbound.clone(),
                hashkv_calls.clone(),
                inbound::Shared {
                    roster: roster_watch.clone(),
                    remotes: remotes.clone(),
                    counters: counters.clone(),
                },
            ));
        }
        let (probe_targets, targets) = watch::channel(BTreeMap::new());
        tasks.spawn(probe::run(targets, tls.clone(), counters.clone()));
        let transport = Transport {
            identity,
            fallback_urls,
            member_urls: BTreeMap::new(),
            links: BTreeMap::new(),
            roster,
            remotes,
            reports,
            tasks,
            tls,
            counters,
            probe_targets,
        };
        transport.update_probe_targets();
        transport
    }

    /// Every other member of the list (the options' before it is known), at its
    /// first peer URL, for the prober.
    fn update_probe_targets(&self) {
        let members = if self.member_urls.is_empty() {
            &self.fallback_urls
        } else {
            &self.member_urls
        };
        let targets: BTreeMap<u64, String> = members
            .keys()
            .filter(|&&id| id != self.identity.member_id)
            .filter_map(|&id| Some((id, self.urls_of(id)?.into_iter().next()?)))
            .collect();
        self.probe_targets.send_if_modified(|known| {
            let changed = *known != targets;
            *known = targets;
            changed
        });
    }

    /// The member list's peer URLs or its removed members changed: links to
    /// members no longer listed, or listed at other URLs, are closed (a later send
    /// dials the new URLs), and so are the connections from removed members, whose
    /// new connections are refused. Remotes now listed or removed are forgotten.
    pub fn set_peer_urls(&mut self, urls: BTreeMap<u64, Vec<String>>, removed: BTreeSet<u64>) {
        let roster = inbound::Roster {
            members: urls.keys().copied().collect(),
            removed,
        };
        self.remotes.prune(&roster);
        self.member_urls = urls;
        self.roster.send_if_modified(|known| {
            let changed = *known != roster;
            *known = roster;
            changed
        });
        self.update_probe_targets();
        let stale: Vec<u64> = self
            .links
            .iter()
            .filter(|(id, link)| self.urls_of(**id).is_none_or(|urls| urls != link.urls))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            let link = self.links.remove(&id).expect("listed");
            link.writer.abort();
            crate::log!(
                Level::Info,
                "transport",
                "member {:x}: closed the link to peer {id:x} (its peer URLs changed or it left)",
                self.identity.member_id
            );
        }
    }

    /// Where member `id` is reached: the member list's URLs, else (for a listed
    /// member without URLs, or before the list is known) the options'. A member the
    /// list does not hold is reached only as a remote: at the URLs its hello named
    /// (a member added after what this one applied; etcd's remotes).
    fn urls_of(&self, id: u64) -> Option<Vec<String>> {
        // A hello read while the member's removal was announced may have left a remote.
        let remote = || {
            self.remotes
                .get(id)
                .filter(|_| !self.roster.borrow().removed.contains(&id))
        };
        match self.member_urls.get(&id) {
            Some(urls) if !urls.is_empty() => Some(urls.clone()),
            None if !self.member_urls.is_empty() => remote(),
            _ => self
                .fallback_urls
                .get(&id)
                .filter(|u| !u.is_empty())
                .cloned()
                .or_else(remote),
        }
    }

    /// Queues `message` for member `to` without waiting.
    pub fn send(&mut self, to: u64, message: PeerMessage) -> Sent {
        let snapshot = is_snapshot(&message);
        if !self.links.contains_key(&to) {
            let Some(urls) = self.urls_of(to) else {
                self.dropped(to, snapshot);
                return Sent::Dropped { snapshot };
            };
            let (queue, receiver) = mpsc::channel(PEER_QUEUE_MSGS_MAX);
            let own_urls = self.urls_of(self.identity.member_id).unwrap_or_default();
            let writer = self.tasks.spawn(write_loop(
                self.identity,
                Urls {
                    to: urls.clone(),
                    own: own_urls,
                },
                to,
                self.tls.clone(),
                receiver,
                self.reports.clone(),
                self.counters.clone(),
            ));
            self.links.insert(to, Link { queue, writer, urls });
        }
        match self.links[&to].queue.try_send(message) {
            Ok(()) => Sent::Queued,
            Err(_) => {
                self.dropped(to, snapshot);
                Sent::Dropped { snapshot }
            }
        }
    }

    fn dropped(&self, to: u64, snapshot: bool) {
        self.counters.update(to, |c| {
            c.sent_failures += 1;
            c.snapshot_send_failures += u64::from(snapshot);
        });
    }

    /// Closes every connection and listener and waits for their tasks.
    pub async fn stop(mut self) {
        self.links.clear();
        self.tasks.shutdown().await;
    }
}

/// One connection to or from a peer while it lasts (closed when dropped, also by
/// an aborted task).
pub(crate) struct Connected<'a> {
    counters: &'a PeerMetrics,
    peer: u64,
    closed: LinkEvent,
}

impl<'a> Connected<'a> {
    pub(crate) fn new(counters: &'a PeerMetrics, peer: u64, opened: LinkEvent, closed: LinkEvent) -> Self {
        counters.link(peer, opened);
        Connected {
            counters,
            peer,
            closed,
        }
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.counters.link(self.peer, self.closed);
    }
}

fn is_snapshot(message: &PeerMessage) -> bool {
    matches!(message, PeerMessage::Raft(m) if m.r#type == MessageType::MsgSnap as i32)
}

/// Where a link dials, and what its hellos say this member is reached at.
struct Urls {
    to: Vec<String>,
    own: Vec<String>,
}

async fn write_loop(
    identity: Identity,
    urls: Urls,
    to: u64,
    tls: SharedPeerTls,
    mut queue: mpsc::Receiver<PeerMessage>,
    reports: mpsc::UnboundedSender<Report>,
    counters: PeerMetrics,
) {
    let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
    let mut failures = 0u64;
    loop {
        match handshake::dial(identity, to, &urls.to, &urls.own, &tls).await {
            Ok(stream) => {
                if failures > 0 {
                    crate::log!(
                        Level::Info,
                        "transport",
                        "member {:x}: peer {to:x} reachable again",
                        identity.member_id
                    );
                }
                failures = 0;
                backoff_ms = RECONNECT_BACKOFF_MS_MIN;
                let up = Connected::new(&counters, to, LinkEvent::OutboundUp, LinkEvent::OutboundDown);
                let pumped = pump(stream, &mut queue, to, &reports, &counters).await;
                drop(up);
                match pumped {
                    Pumped::QueueClosed => return,
                    Pumped::Broken(e) => {
                        crate::log!(
                            Level::Warn,
                            "transport",
                            "member {:x}: connection to peer {to:x} lost: {e}",
                            identity.member_id
                        );
                        let _ = reports.send(Report::PeerUnreachable(to));
                    }
                }
            }
            Err(DialError::Removed) => {
                crate::log!(
                    Level::Error,
                    "transport",
                    "member {:x}: peer {to:x} refused the connection: {}",
                    identity.member_id,
                    handshake::MEMBER_REMOVED
                );
                let _ = reports.send(Report::RemovedFromCluster { peer: to });
                // Nothing will heal it: this link stops, and what is queued for it, or
                // sent to it later, is dropped (its queue closes with this task).
                return;
            }
            Err(DialError::Refused(why)) => {
                crate::log!(
                    Level::Error,
                    "transport",
                    "member {:x}: peer {to:x}: handshake refused: {why}",
                    identity.member_id
                );
                backoff_ms = RECONNECT_BACKOFF_MS_MAX;
                failures += 1;
            }
            Err(DialError::Failed(why)) => {
                // The first failure is worth a line; the retries that follow are not.
                let level = if failures == 0 { Level::Warn } else { Level::Debug };
                crate::log!(
                    level,
                    "transport",
                    "member {:x}: cannot reach peer {to:x}: {why}",
                    identity.member_id
                );
                failures += 1;
            }
        }
        // Wait out the backoff, dropping what queues meanwhile.
        let wait = tokio::time::sleep(Duration::from_millis(backoff_ms));
        tokio::pin!(wait);
        let mut reported = false;
        loop {
            tokio::select! {
                () = &mut wait => break,
                message = queue.recv() => {
                    let Some(message) = message else { return };
                    let snapshot = is_snapshot(&message);
                    counters.update(to, |c| {
                        c.sent_failures += 1;
                        c.snapshot_send_failures += u64::from(snapshot);
                    });
                    if snapshot {
                        let _ = reports.send(Report::SnapshotReport { peer: to, delivered: false });
                    }
                    if !reported {
                        let _ = reports.send(Report::PeerUnreachable(to));
                        reported = true;
                    }
                }
            }
        }
        backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
    }
}

enum Pumped {
    QueueClosed,
    Broken(std::io::Error),
}

/// Writes queued messages to a connected peer until the queue closes or the
/// connection breaks. Each wake-up takes everything queued (up to
/// [`WRITE_BATCH_MSGS_MAX`]) into one buffer and one write.
async fn pump(
    stream: PeerStream,
    queue: &mut mpsc::Receiver<PeerMessage>,
    to: u64,
    reports: &mpsc::UnboundedSender<Report>,
    counters: &PeerMetrics,
) -> Pumped {
    let (mut reader, mut stream) = tokio::io::split(stream);
    let mut buf = Vec::new();
    let mut batch = Vec::with_capacity(WRITE_BATCH_MSGS_MAX);
    loop {
        // The peer never writes after the handshake; a readable socket means it
        // closed (or misbehaves), which ends this connection.
        let mut probe = [0u8; 1];
        let received = tokio::select! {
            n = queue.recv_many(&mut batch, WRITE_BATCH_MSGS_MAX) => n,
            read = reader.read(&mut probe) => {
                return Pumped::Broken(match read {
                    Ok(_) => std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "closed by the peer"),
                    Err(e) => e,
                });
            }
        };
        if received == 0 {
            return Pumped::QueueClosed;
        }
        buf.clear();
        let mut snapshots = 0;
        let mut messages = 0;
        for message in batch.drain(..) {
            if is_snapshot(&message) {
                snapshots += 1;
            }
            if wire::put_frame(&mut buf, &wire::encode(message)) {
                messages += 1;
            } else {
                counters.update(to, |c| c.sent_failures += 1);
                crate::log!(
                    Level::Error,
                    "transport",
                    "dropped a message to peer {to:x} above the frame limit"
                );
            }
        }
        let started = std::time::Instant::now();
        if snapshots > 0 {
            counters.update(to, |c| c.snapshot_send_inflights = snapshots);
        }
        let written = if snapshots > 0 {
            stream.write_all(&buf).await
        } else {
            tokio::time::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), stream.write_all(&buf))
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "write timed out",
                    ))
                })
        };
        let seconds = started.elapsed().as_secs_f64();
        let ok = written.is_ok();
        counters.update(to, |c| {
            c.snapshot_send_inflights = 0;
            if ok {
                c.sent_bytes += buf.len() as u64;
                c.snapshot_send_success += snapshots;
                for _ in 0..snapshots {
                    c.snapshot_send_seconds.observe(seconds);
                }
            } else {
                c.sent_failures += messages;
                c.snapshot_send_failures += snapshots;
            }
        });
        if let Err(e) = written {
            for _ in 0..snapshots {
                let _ = reports.send(Report::SnapshotReport {
                    peer: to,
                    delivered: false,
                });
            }
            return Pumped::Broken(e);
        }
        for _ in 0..snapshots {
            let _ = reports.send(Report::SnapshotReport {
                peer: to,
                delivered: true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::handshake::Standing;
    use super::*;

    #[test]
    fn urls_name_tcp_addresses_or_sockets() {
        let tcp = |a: &str| Address::Tcp(a.to_string());
        assert_eq!(
            parse_url("http://127.0.0.1:2380").expect("ok"),
            tcp("127.0.0.1:2380")
        );
        assert_eq!(parse_url("https://n1:2380/").expect("ok"), tcp("n1:2380"));
        assert_eq!(
            parse_url("unixs://n1:2380").expect("ok"),
            Address::Unix("n1:2380".into())
        );
        assert_eq!(parse_url("localhost:1").expect("ok"), tcp("localhost:1"));
        assert!(parse_url("http://nohost").is_err());
        assert!(parse_url("http://:80").is_err());
        assert!(parse_url("http://h:port").is_err());
    }

    fn heartbeat(to: u64) -> PeerMessage {
        PeerMessage::Raft(detcd_proto::raftpb::Message {
            r#type: MessageType::MsgHeartbeat as i32,
            from: 1,
            to,
            term: 1,
            ..Default::default()
        })
    }

    /// Accepts member 1's dial on `listener` as member `id` of cluster 7 and reads
    /// its first frame; returns the connection's reading half.
    async fn accept_as(
        listener: &tokio::net::TcpListener,
        id: u64,
    ) -> (tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf) {
        let (stream, _) = listener.accept().await.expect("accept");
        let (mut reader, mut writer) = stream.into_split();
        let me = Identity {
            member_id: id,
            cluster_id: 7,
        };
        match handshake::answer(me, |_| Standing::Member, &mut reader, &mut writer).await {
            handshake::Answered::Accepted {
                from: 1, known: true, ..
            } => {}
            _ => panic!("member 1's hello was not accepted"),
        }
        let envelope: detcd_proto::detcdpb::PeerEnvelope =
            wire::read_frame(&mut reader).await.expect("a frame");
        assert_eq!(wire::decode(envelope), Some(heartbeat(id)));
        (reader, writer)
    }

    /// True once the dialer closed the connection.
    async fn closed(reader: &mut tokio::net::tcp::OwnedReadHalf) -> bool {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut byte)).await;
        matches!(read, Ok(Ok(0) | Err(_)))
    }

    /// A transport for member `id` of cluster 7 on `listeners`, dialing `fallback`;
    /// with what it receives and reports.
    fn started(
        id: u64,
        listeners: Vec<PeerListener>,
        fallback: BTreeMap<u64, Vec<String>>,
    ) -> (
        Transport,
        mpsc::Receiver<PeerMessage>,
        mpsc::UnboundedReceiver<Report>,
    ) {
        let (inbound, inbound_rx) = mpsc::channel(8);
        let (reports, reports_rx) = mpsc::unbounded_channel();
        let me = Identity {
            member_id: id,
            cluster_id: 7,
        };
        let outlets = Outlets {
            inbound,
            reports,
            hashkv_calls: mpsc::channel(1).0,
            counters: PeerMetrics::default(),
        };
        let transport = Transport::start(me, listeners, fallback, None, outlets);
        (transport, inbound_rx, reports_rx)
    }

    /// A transport for member 1 of cluster 7 listening on a loopback port; with what
    /// it receives and the URL it listens at.
    async fn listening_as_1() -> (Transport, mpsc::Receiver<PeerMessage>, String) {
        let listeners = bind(&["http://127.0.0.1:0".to_string()], &None)
            .await
            .expect("bind");
        let Local::Tcp(addr) = listeners[0].local.clone() else {
            panic!("a TCP listener")
        };
        let (transport, inbound, _reports) = started(1, listeners, BTreeMap::new());
        (transport, inbound, format!("http://{addr}"))
    }

    #[tokio::test]
    async fn a_moved_or_removed_member_has_its_link_closed() {
        let listen = || tokio::net::TcpListener::bind("127.0.0.1:0");
        let (old, new) = (listen().await.expect("bind"), listen().await.expect("bind"));
        let at = |l: &tokio::net::TcpListener| vec![format!("http://{}", l.local_addr().expect("addr"))];
        // The options name member 2 at `old`; the member list agrees.
        let (mut transport, _inbound, _reports) = started(1, Vec::new(), BTreeMap::from([(2, at(&old))]));
        let none = BTreeSet::new;
        transport.set_peer_urls(BTreeMap::from([(1, Vec::new()), (2, at(&old))]), none());
        assert_eq!(transport.send(2, heartbeat(2)), Sent::Queued);
        let (mut first, _w) = accept_as(&old, 2).await;

        // Member 2 moves: the old link closes and the next message dials the new
        // URL, although the options still name the old one.
        transport.set_peer_urls(BTreeMap::from([(1, Vec::new()), (2, at(&new))]), none());
        assert!(closed(&mut first).await, "the link to the old URL is closed");
        assert_eq!(transport.send(2, heartbeat(2)), Sent::Queued);
        let (mut second, _w) = accept_as(&new, 2).await;

        // Member 2 leaves: its link closes too.
        transport.set_peer_urls(BTreeMap::from([(1, Vec::new())]), BTreeSet::from([2]));
        assert!(closed(&mut second).await, "the removed member's link is closed");
        assert_eq!(transport.send(2, heartbeat(2)), Sent::Dropped { snapshot: false });
        transport.stop().await;
    }

    #[tokio::test]
    async fn a_member_told_it_was_removed_reports_it_and_stops_dialing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        // This is member 2; member 1 already applied its removal.
        let (mut transport, _inbound, mut reports_rx) =
            started(2, Vec::new(), BTreeMap::from([(1, vec![url])]));
        assert_eq!(transport.send(1, heartbeat(1)), Sent::Queued);
        let (stream, _) = listener.accept().await.expect("the first dial");
        let (mut reader, mut writer) = stream.into_split();
        let removed_2 = |id| {
            if id == 2 {
                Standing::Removed
            } else {
                Standing::Member
            }
        };
        let member_1 = Identity {
            member_id: 1,
            cluster_id: 7,
        };
        let answered = handshake::answer(member_1, removed_2, &mut reader, &mut writer).await;
        assert!(
            matches!(answered, handshake::Answered::Refused(ref why) if why == handshake::MEMBER_REMOVED)
        );
        let report = tokio::time::timeout(Duration::from_secs(5), reports_rx.recv()).await;
        assert_eq!(
            report.expect("a report within 5 s"),
            Some(Report::RemovedFromCluster { peer: 1 })
        );

        // Nothing redials member 1, however long past the longest backoff and
        // whatever is sent to it.
        for _ in 0..3 {
            let _ = transport.send(1, heartbeat(1));
        }
        let redial = tokio::time::timeout(
            Duration::from_millis(RECONNECT_BACKOFF_MS_MAX * 2),
            listener.accept(),
        );
        assert!(redial.await.is_err(), "a member told it was removed redialed");
        transport.stop().await;
    }

    #[tokio::test]
    async fn a_member_not_listed_yet_is_heard_answered_where_its_hello_says_and_connected_once_listed() {
        let (mut transport, mut inbound_rx, url) = listening_as_1().await;
        let listed = |ids: &[u64]| {
            ids.iter()
                .map(|id| (*id, vec![format!("http://127.0.0.1:{id}")]))
                .collect()
        };
        transport.set_peer_urls(listed(&[1, 2]), BTreeSet::new());
        let active = |t: &Transport, id| t.counters.snapshot().get(&id).is_some_and(|c| c.active());

        // Member 9, added after what member 1 applied, is heard but is no connected
        // peer until member 1 lists it.
        let mut nine = dial_as(9, &url).await.expect("member 9 taken");
        send_heartbeat(&mut nine).await;
        assert_eq!(received(&mut inbound_rx).await, heartbeat(1));
        assert!(!active(&transport, 9), "an unlisted member counts as connected");
        transport.set_peer_urls(listed(&[1, 2, 9]), BTreeSet::new());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !active(&transport, 9) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a listed member's connection is not counted"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // Member 8, also unlisted, is answered at the peer URL its hello named.
        let eight_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let eight_url = format!("http://{}", eight_listener.local_addr().expect("addr"));
        let eight = Identity {
            member_id: 8,
            cluster_id: 7,
        };
        let mut to_one = handshake::dial(eight, 1, &[url], &[eight_url], &None)
            .await
            .expect("member 8 taken");
        send_heartbeat(&mut to_one).await;
        assert_eq!(received(&mut inbound_rx).await, heartbeat(1));
        assert_eq!(transport.send(8, heartbeat(8)), Sent::Queued);
        let accepted = tokio::time::timeout(Duration::from_secs(5), eight_listener.accept()).await;
        let (stream, _) = accepted.expect("member 1 dials member 8").expect("accept");
        let (mut reader, mut writer) = stream.into_split();
        let answered = handshake::answer(eight, |_| Standing::Member, &mut reader, &mut writer).await;
        assert!(matches!(answered, handshake::Answered::Accepted { from: 1, .. }));
        let envelope: detcd_proto::detcdpb::PeerEnvelope =
            wire::read_frame(&mut reader).await.expect("a frame");
        assert_eq!(wire::decode(envelope), Some(heartbeat(8)));

        // Removed, it is answered no more.
        transport.set_peer_urls(listed(&[1, 2, 9]), BTreeSet::from([8]));
        assert_eq!(transport.send(8, heartbeat(8)), Sent::Dropped { snapshot: false });
        transport.stop().await;
    }

    /// Dials member 1 at `url` as member `from` of cluster 7.
    async fn dial_as(from: u64, url: &str) -> Result<PeerStream, DialError> {
        let me = Identity {
            member_id: from,
            cluster_id: 7,
        };
        handshake::dial(me, 1, &[url.to_string()], &[], &None).await
    }

    /// Writes one heartbeat frame to member 1.
    async fn send_heartbeat(stream: &mut PeerStream) {
        let mut buf = Vec::new();
        assert!(wire::put_frame(&mut buf, &wire::encode(heartbeat(1))));
        stream.write_all(&buf).await.expect("frame written");
    }

    async fn received(inbound: &mut mpsc::Receiver<PeerMessage>) -> PeerMessage {
        tokio::time::timeout(Duration::from_secs(5), inbound.recv())
            .await
            .expect("a message within 5 s")
            .expect("inbound open")
    }

    #[tokio::test]
    async fn a_removed_members_connections_are_closed_and_refused() {
        let (mut transport, mut inbound_rx, url) = listening_as_1().await;
        let members = |ids: &[u64]| ids.iter().map(|id| (*id, Vec::new())).collect::<BTreeMap<_, _>>();
        transport.set_peer_urls(members(&[1, 2, 3]), BTreeSet::new());

        // Members 2 and 3 connect and are heard.
        let mut two = dial_as(2, &url).await.expect("member 2 accepted");
        let mut three = dial_as(3, &url).await.expect("member 3 accepted");
        send_heartbeat(&mut two).await;
        assert_eq!(received(&mut inbound_rx).await, heartbeat(1));
        send_heartbeat(&mut three).await;
        assert_eq!(received(&mut inbound_rx).await, heartbeat(1));

        // Member 2 is removed: its connection is closed from this end.
        transport.set_peer_urls(members(&[1, 3]), BTreeSet::from([2]));
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), two.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "the removed member's inbound connection is closed: {read:?}"
        );

        // A new connection from it is refused, in etcd's words, which the dialer
        // tells from other refusals.
        match dial_as(2, &url).await {
            Err(DialError::Removed) => {}
            Err(DialError::Refused(why) | DialError::Failed(why)) => {
                panic!("refused as removed, not otherwise: {why}")
            }
            Ok(_) => panic!("a removed member's connection is refused"),
        }

        // Member 3, still a member, keeps its connection.
        send_heartbeat(&mut three).await;
        assert_eq!(received(&mut inbound_rx).await, heartbeat(1));
        transport.stop().await;
    }
}
