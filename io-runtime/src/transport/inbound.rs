//! The accepting side of the peer transport: each accepted connection completes its
//! TLS handshake (https listeners), then the hello, then is read frame by frame into
//! the driver's inbound queue. A member removed from the cluster is refused at the
//! hello, and the connections it already has are closed when its removal is known.
//!
//! A dialer the member list does not hold is taken, as etcd's pipeline handler
//! takes an unknown sender's messages: most likely it was added after what this
//! member applied, and this member may need to hear it (it may lead) to catch up.
//! Its hello's peer URLs become a remote ([`Remotes`], etcd's `AddRemote`) so this
//! member can answer it; it counts as a connected peer once the member list holds
//! it (etcd refuses its stream, 404, until then).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use detcd_core::node::PeerMessage;
use detcd_proto::detcdpb::PeerEnvelope;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::conn::{self, PeerStream, SharedPeerTls};
use super::counters::{LinkEvent, PeerMetrics};
use super::handshake::{self, Answered, Standing};
use super::peer_http::{self, PeerCall};
use super::socket::{Listener, Remote};
use super::{is_snapshot, wire, Connected, Identity, DIAL_TIMEOUT_MS, RECONNECT_BACKOFF_MS_MIN};
use crate::log::Level;

/// The member list as the transport's owner last said it: who is listed, who was
/// removed from the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Roster {
    pub(super) members: BTreeSet<u64>,
    pub(super) removed: BTreeSet<u64>,
}

impl Roster {
    pub(super) fn standing(&self, id: u64) -> Standing {
        if self.removed.contains(&id) {
            Standing::Removed
        } else if self.members.contains(&id) {
            Standing::Member
        } else {
            Standing::Unknown
        }
    }
}

/// The roster the accept loops read.
pub(super) type RosterWatch = watch::Receiver<Roster>;

/// Remotes one member keeps at most: the unlisted members it answers at the URLs
/// their hellos named.
pub const REMOTES_MAX: usize = 32;
/// Peer URLs one remote keeps at most (the first ones its hello named).
pub const REMOTE_URLS_MAX: usize = 8;

/// The peer URLs of members the member list does not hold, from their hellos
/// (etcd's remotes): where this member answers them until it lists them.
#[derive(Clone, Debug, Default)]
pub(super) struct Remotes(Arc<Mutex<BTreeMap<u64, Vec<String>>>>);

impl Remotes {
    /// Member `id`'s hello named `urls`: keeps the usable ones (at most
    /// [`REMOTE_URLS_MAX`]), unless [`REMOTES_MAX`] others are kept. False if none kept.
    fn note(&self, id: u64, urls: Vec<String>) -> bool {
        let usable: Vec<String> = urls
            .into_iter()
            .filter(|url| super::parse_url(url).is_ok())
            .take(REMOTE_URLS_MAX)
            .collect();
        let mut remotes = self.0.lock().expect("remotes lock");
        if usable.is_empty() || (remotes.len() >= REMOTES_MAX && !remotes.contains_key(&id)) {
            return false;
        }
        remotes.insert(id, usable);
        true
    }

    pub(super) fn get(&self, id: u64) -> Option<Vec<String>> {
        self.0.lock().expect("remotes lock").get(&id).cloned()
    }

    /// Forgets the remotes `roster` lists or removed.
    pub(super) fn prune(&self, roster: &Roster) {
        let mut remotes = self.0.lock().expect("remotes lock");
        remotes.retain(|id, _| roster.standing(*id) == Standing::Unknown);
    }
}

/// What the accept loops share with the transport.
#[derive(Clone)]
pub(super) struct Shared {
    pub(super) roster: RosterWatch,
    pub(super) remotes: Remotes,
    pub(super) counters: PeerMetrics,
}

pub(super) async fn accept_loop(
    identity: Identity,
    listener: Listener,
    tls: SharedPeerTls,
    inbound: mpsc::Sender<PeerMessage>,
    hashkv_calls: mpsc::Sender<PeerCall>,
    shared: Shared,
) {
    // Readers live in this set: aborting the accept loop (shutdown) drops it,
    // which aborts every reader.
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let (tls, inbound, hashkv_calls) = (tls.clone(), inbound.clone(), hashkv_calls.clone());
                    let shared = shared.clone();
                    readers.spawn(async move {
                        let accepted = tokio::time::timeout(
                            Duration::from_millis(DIAL_TIMEOUT_MS),
                            conn::accept(stream, &addr, tls.as_ref()),
                        );
                        match accepted.await {
                            Ok(Ok(stream)) => {
                                read_loop(identity, stream, addr, inbound, hashkv_calls, shared).await;
                            }
                            Ok(Err(e)) => crate::log!(
                                Level::Error,
                                "transport",
                                "member {:x}: rejected peer connection from {addr}: {e}",
                                identity.member_id
                            ),
                            Err(_) => crate::log!(
                                Level::Warn,
                                "transport",
                                "member {:x}: TLS handshake from {addr} timed out",
                                identity.member_id
                            ),
                        }
                    });
                }
                Err(e) => {
                    crate::log!(Level::Warn, "transport", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS_MIN)).await;
                }
            },
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
        }
    }
}

async fn read_loop(
    identity: Identity,
    stream: PeerStream,
    addr: Remote,
    inbound: mpsc::Sender<PeerMessage>,
    hashkv_calls: mpsc::Sender<PeerCall>,
    shared: Shared,
) {
    let Shared {
        mut roster,
        remotes,
        counters,
    } = shared;
    let mut stream = tokio::io::BufReader::new(stream);
    let first = tokio::time::timeout(Duration::from_millis(DIAL_TIMEOUT_MS), stream.fill_buf());
    match first.await {
        Ok(Ok(bytes)) if peer_http::is_http(bytes) => {
            peer_http::serve(stream, identity, hashkv_calls).await;
            return;
        }
        Ok(Ok(_)) => {}
        Ok(Err(_)) | Err(_) => return,
    }
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = tokio::io::BufReader::new(reader);
    let standing = |id| roster.borrow().standing(id);
    let (from, known) = match handshake::answer(identity, standing, &mut reader, &mut writer).await {
        Answered::Accepted {
            from,
            known,
            peer_urls,
        } => {
            if !known {
                let answerable = remotes.note(from, peer_urls);
                crate::log!(
                    Level::Warn,
                    "transport",
                    "member {:x}: failed to find remote peer {from:x} in the member list (added after what this member applied?); taking its messages{}",
                    identity.member_id,
                    if answerable { ", answering it at the peer URLs it named" } else { ", with nowhere to answer it" }
                );
            }
            (from, known)
        }
        Answered::Refused(why) => {
            crate::log!(
                Level::Error,
                "transport",
                "member {:x}: refused peer connection from {addr}: {why}",
                identity.member_id
            );
            return;
        }
        Answered::Failed(why) => {
            crate::log!(Level::Warn, "transport", "handshake from {addr} {why}");
            return;
        }
    };
    crate::log!(
        Level::Debug,
        "transport",
        "member {:x} accepted peer {from:x} from {addr}",
        identity.member_id
    );
    let connected = || Connected::new(&counters, from, LinkEvent::InboundOpen, LinkEvent::InboundClosed);
    let mut open = known.then(connected);
    let frames = read_frames(identity, from, &mut reader, &inbound, &counters);
    tokio::pin!(frames);
    loop {
        tokio::select! {
            () = &mut frames => return,
            standing = news(&mut roster, from, open.is_some()) => match standing {
                Standing::Member => open = Some(connected()),
                Standing::Removed | Standing::Unknown => {
                    crate::log!(
                        Level::Info,
                        "transport",
                        "member {:x}: closed the connection from peer {from:x}: {}",
                        identity.member_id,
                        handshake::MEMBER_REMOVED
                    );
                    return;
                }
            },
        }
    }
}

/// Resolves with member `from`'s new standing once it is removed from the cluster,
/// or (when not `listed` yet) listed; never if the transport stops first.
async fn news(roster: &mut RosterWatch, from: u64, listed: bool) -> Standing {
    let changed = roster
        .wait_for(|r| match r.standing(from) {
            Standing::Removed => true,
            Standing::Member => !listed,
            Standing::Unknown => false,
        })
        .await
        .map(|r| r.standing(from));
    match changed {
        Ok(standing) => standing,
        Err(_) => std::future::pending().await,
    }
}

/// Reads member `from`'s frames into the inbound queue until the connection ends,
/// counting them in `counters`.
async fn read_frames<R: tokio::io::AsyncRead + Unpin>(
    identity: Identity,
    from: u64,
    reader: &mut R,
    inbound: &mpsc::Sender<PeerMessage>,
    counters: &PeerMetrics,
) {
    loop {
        let (envelope, read) = match wire::read_frame_measured::<PeerEnvelope>(reader).await {
            Ok(frame) => frame,
            Err(wire::FrameError::Io(_)) => return,
            Err(e) => {
                counters.update(from, |c| c.received_failures += 1);
                crate::log!(
                    Level::Warn,
                    "transport",
                    "member {:x}: closing the connection from peer {from:x}: {e}",
                    identity.member_id
                );
                return;
            }
        };
        counters.update(from, |c| c.received_bytes += read.bytes as u64);
        let Some(message) = wire::decode(envelope) else {
            crate::log!(
                Level::Warn,
                "transport",
                "member {:x}: peer {from:x} sent an empty or unknown envelope",
                identity.member_id
            );
            counters.update(from, |c| c.received_failures += 1);
            continue;
        };
        if is_snapshot(&message) {
            counters.update(from, |c| {
                c.snapshot_receive_success += 1;
                c.snapshot_receive_seconds.observe(read.body_seconds);
            });
        }
        if inbound.send(message).await.is_err() {
            return;
        }
    }
}
