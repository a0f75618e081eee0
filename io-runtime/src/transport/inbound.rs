//! The accepting side of the peer transport: each accepted connection completes its
//! TLS handshake (https listeners), then the hello, then is read frame by frame into
//! the driver's inbound queue.

use std::time::Duration;

use detcd_core::node::PeerMessage;
use detcd_proto::detcdpb::{PeerEnvelope, PeerHello, PeerHelloReply};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::conn::{self, PeerStream, SharedPeerTls};
use super::peer_http;
use super::socket::{Listener, Remote};
use super::{wire, Identity, DIAL_TIMEOUT_MS, PEER_PROTOCOL_VERSION, RECONNECT_BACKOFF_MS_MIN};
use crate::driver::Command;
use crate::log::Level;

pub(super) async fn accept_loop(
    identity: Identity,
    listener: Listener,
    tls: SharedPeerTls,
    inbound: mpsc::Sender<PeerMessage>,
    commands: mpsc::Sender<Command>,
) {
    // Readers live in this set: aborting the accept loop (shutdown) drops it,
    // which aborts every reader.
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let (tls, inbound, commands) = (tls.clone(), inbound.clone(), commands.clone());
                    readers.spawn(async move {
                        let accepted = tokio::time::timeout(
                            Duration::from_millis(DIAL_TIMEOUT_MS),
                            conn::accept(stream, &addr, tls.as_ref()),
                        );
                        match accepted.await {
                            Ok(Ok(stream)) => read_loop(identity, stream, addr, inbound, commands).await,
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

/// Why a hello is refused, or `None` to accept it.
fn check_hello(identity: Identity, hello: &PeerHello) -> Option<String> {
    if hello.protocol_version != PEER_PROTOCOL_VERSION {
        return Some(format!(
            "protocol version {} is not {PEER_PROTOCOL_VERSION}",
            hello.protocol_version
        ));
    }
    if hello.cluster_id != identity.cluster_id {
        return Some(format!(
            "cluster ID mismatch: member {:x} is in cluster {:x}, the dialer {:x} in {:x}",
            identity.member_id, identity.cluster_id, hello.from, hello.cluster_id
        ));
    }
    if hello.to != identity.member_id {
        return Some(format!(
            "member ID mismatch: the dialer {:x} wanted member {:x}, this is member {:x}",
            hello.from, hello.to, identity.member_id
        ));
    }
    if hello.from == identity.member_id || hello.from == 0 {
        return Some(format!("the dialer claims member ID {:x}", hello.from));
    }
    None
}

async fn read_loop(
    identity: Identity,
    stream: PeerStream,
    addr: Remote,
    inbound: mpsc::Sender<PeerMessage>,
    commands: mpsc::Sender<Command>,
) {
    let mut stream = tokio::io::BufReader::new(stream);
    let first = tokio::time::timeout(Duration::from_millis(DIAL_TIMEOUT_MS), stream.fill_buf());
    match first.await {
        Ok(Ok(bytes)) if peer_http::is_http(bytes) => {
            peer_http::serve(stream, identity, commands).await;
            return;
        }
        Ok(Ok(_)) => {}
        Ok(Err(_)) | Err(_) => return,
    }
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = tokio::io::BufReader::new(reader);
    let handshake = tokio::time::timeout(
        Duration::from_millis(DIAL_TIMEOUT_MS),
        wire::read_frame::<PeerHello>(&mut reader),
    );
    let hello = match handshake.await {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => {
            crate::log!(Level::Warn, "transport", "handshake from {addr} failed: {e}");
            return;
        }
        Err(_) => {
            crate::log!(Level::Warn, "transport", "handshake from {addr} timed out");
            return;
        }
    };
    let refusal = check_hello(identity, &hello);
    let reply = PeerHelloReply {
        accepted: refusal.is_none(),
        cluster_id: identity.cluster_id,
        member_id: identity.member_id,
        reason: refusal.clone().unwrap_or_default(),
    };
    let mut buf = Vec::new();
    wire::put_frame(&mut buf, &reply);
    if writer.write_all(&buf).await.is_err() {
        return;
    }
    if let Some(why) = refusal {
        crate::log!(
            Level::Error,
            "transport",
            "member {:x}: refused peer connection from {addr}: {why}",
            identity.member_id
        );
        return;
    }
    let from = hello.from;
    crate::log!(
        Level::Debug,
        "transport",
        "member {:x} accepted peer {from:x} from {addr}",
        identity.member_id
    );
    loop {
        let envelope = match wire::read_frame::<PeerEnvelope>(&mut reader).await {
            Ok(envelope) => envelope,
            Err(wire::FrameError::Io(_)) => return,
            Err(e) => {
                crate::log!(
                    Level::Warn,
                    "transport",
                    "member {:x}: closing the connection from peer {from:x}: {e}",
                    identity.member_id
                );
                return;
            }
        };
        let Some(message) = wire::decode(envelope) else {
            crate::log!(
                Level::Warn,
                "transport",
                "member {:x}: peer {from:x} sent an empty or unknown envelope",
                identity.member_id
            );
            continue;
        };
        if inbound.send(message).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_of_another_cluster_or_member_are_refused() {
        let me = Identity {
            member_id: 1,
            cluster_id: 7,
        };
        let good = PeerHello {
            protocol_version: PEER_PROTOCOL_VERSION,
            cluster_id: 7,
            from: 2,
            to: 1,
        };
        assert_eq!(check_hello(me, &good), None);
        assert!(check_hello(
            me,
            &PeerHello {
                cluster_id: 8,
                ..good
            }
        )
        .is_some());
        assert!(check_hello(me, &PeerHello { to: 3, ..good }).is_some());
        assert!(check_hello(me, &PeerHello { from: 1, ..good }).is_some());
        assert!(check_hello(
            me,
            &PeerHello {
                protocol_version: 2,
                ..good
            }
        )
        .is_some());
    }
}
