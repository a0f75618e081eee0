//! The accepting side of the peer transport: each accepted connection completes its
//! TLS handshake (https listeners), then the hello, then is read frame by frame into
//! the driver's inbound queue. A member removed from the cluster is refused at the
//! hello, and the connections it already has are closed when its removal is known.

use std::collections::BTreeSet;
use std::time::Duration;

use detcd_core::node::PeerMessage;
use detcd_proto::detcdpb::PeerEnvelope;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::conn::{self, PeerStream, SharedPeerTls};
use super::counters::{LinkEvent, PeerMetrics};
use super::handshake::{self, Answered};
use super::peer_http::{self, HashKvCall};
use super::socket::{Listener, Remote};
use super::{is_snapshot, wire, Connected, Identity, DIAL_TIMEOUT_MS, RECONNECT_BACKOFF_MS_MIN};
use crate::log::Level;

/// The members removed from the cluster, as the transport's owner last said.
pub(super) type Removed = watch::Receiver<BTreeSet<u64>>;

pub(super) async fn accept_loop(
    identity: Identity,
    listener: Listener,
    tls: SharedPeerTls,
    inbound: mpsc::Sender<PeerMessage>,
    hashkv_calls: mpsc::Sender<HashKvCall>,
    removed: Removed,
    counters: PeerMetrics,
) {
    // Readers live in this set: aborting the accept loop (shutdown) drops it,
    // which aborts every reader.
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let (tls, inbound, hashkv_calls) = (tls.clone(), inbound.clone(), hashkv_calls.clone());
                    let removed = removed.clone();
                    let counters = counters.clone();
                    readers.spawn(async move {
                        let accepted = tokio::time::timeout(
                            Duration::from_millis(DIAL_TIMEOUT_MS),
                            conn::accept(stream, &addr, tls.as_ref()),
                        );
                        match accepted.await {
                            Ok(Ok(stream)) => {
                                read_loop(identity, stream, addr, inbound, hashkv_calls, removed, &counters).await;
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
    hashkv_calls: mpsc::Sender<HashKvCall>,
    mut removed: Removed,
    counters: &PeerMetrics,
) {
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
    let is_removed = |id| removed.borrow().contains(&id);
    let from = match handshake::answer(identity, is_removed, &mut reader, &mut writer).await {
        Answered::Accepted { from } => from,
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
    let _open = Connected::new(counters, from, LinkEvent::InboundOpen, LinkEvent::InboundClosed);
    tokio::select! {
        () = read_frames(identity, from, &mut reader, &inbound, counters) => {}
        () = removal(&mut removed, from) => crate::log!(
            Level::Info,
            "transport",
            "member {:x}: closed the connection from peer {from:x}: {}",
            identity.member_id,
            handshake::MEMBER_REMOVED
        ),
    }
}

/// Resolves once member `from` is removed from the cluster; never if the transport
/// stops first.
async fn removal(removed: &mut Removed, from: u64) {
    if removed.wait_for(|set| set.contains(&from)).await.is_err() {
        std::future::pending::<()>().await;
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
