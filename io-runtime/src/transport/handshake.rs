//! The peer handshake, both ends: the dialer's hello and the listener's reply
//! (and the refusals), plus the two half-handshakes a joining member uses to
//! learn who it is ([`probe`], [`read_hello`]). Nothing else speaks it.

use std::time::Duration;

use detcd_proto::detcdpb::{PeerHello, PeerHelloReply};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::conn::{self, PeerStream, SharedPeerTls};
use super::socket::{self, Address, Remote};
use super::{parse_url, wire, Identity, DIAL_TIMEOUT_MS, PEER_PROTOCOL_VERSION};
use crate::log::Level;

/// Why dialing a peer failed.
#[derive(Debug)]
pub(super) enum DialError {
    /// Worth retrying soon (nobody listening, a timeout, a broken connection).
    Failed(String),
    /// Will not heal by itself (another cluster or member, a refused certificate).
    Refused(String),
    /// The member dialed, of this cluster, says this member was removed from it
    /// ([`MEMBER_REMOVED`]; etcd's stream dial gets 410 Gone): nothing will heal it.
    Removed,
}

/// Dials `to` (each URL in turn) and shakes hands; the hello names `own_urls`, this
/// member's peer URLs, for a listener that does not know it yet.
pub(super) async fn dial(
    identity: Identity,
    to: u64,
    urls: &[String],
    own_urls: &[String],
    tls: &SharedPeerTls,
) -> Result<PeerStream, DialError> {
    let mut last = DialError::Failed("no peer URL".into());
    for url in urls {
        let Ok(addr) = parse_url(url) else {
            last = DialError::Failed(format!("bad peer URL {url}"));
            continue;
        };
        let attempt = tokio::time::timeout(
            Duration::from_millis(DIAL_TIMEOUT_MS),
            greet(identity, to, url, &addr, own_urls, tls),
        );
        match attempt.await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(DialError::Removed)) => return Err(DialError::Removed),
            Ok(Err(e)) => last = e,
            Err(_) => last = DialError::Failed(format!("{addr}: timed out")),
        }
    }
    Err(last)
}

/// Writes `hello` and reads the listener's reply.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    hello: &PeerHello,
) -> Result<PeerHelloReply, wire::FrameError> {
    let mut buf = Vec::new();
    wire::put_frame(&mut buf, hello);
    stream.write_all(&buf).await.map_err(wire::FrameError::Io)?;
    wire::read_frame(stream).await
}

/// The dialer's side: hello to member `to`, and a reply that accepts it and is
/// from that member of this cluster.
async fn greet(
    identity: Identity,
    to: u64,
    url: &str,
    addr: &Address,
    own_urls: &[String],
    tls: &SharedPeerTls,
) -> Result<PeerStream, DialError> {
    // A refused certificate or a missing TLS setup will not heal by itself. Under TLS
    // 1.3 the listener's refusal of this member's certificate arrives as an alert on
    // the first read after the handshake, so the reply's read is judged the same way.
    let failed = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::PermissionDenied || e.kind() == std::io::ErrorKind::InvalidData {
            DialError::Refused(format!("{addr}: {e}"))
        } else {
            DialError::Failed(format!("{addr}: {e}"))
        }
    };
    let mut stream = conn::dial(url, addr, tls).await.map_err(failed)?;
    let hello = PeerHello {
        protocol_version: PEER_PROTOCOL_VERSION,
        cluster_id: identity.cluster_id,
        from: identity.member_id,
        to,
        peer_urls: own_urls.to_vec(),
    };
    let reply = exchange(&mut stream, &hello).await.map_err(|e| match e {
        wire::FrameError::Io(e) => failed(e),
        other => DialError::Failed(format!("{addr}: {other}")),
    })?;
    if !reply.accepted {
        // Only the member dialed, speaking for this cluster, can say this one is gone.
        if reply.reason == MEMBER_REMOVED && reply.cluster_id == identity.cluster_id && reply.member_id == to
        {
            return Err(DialError::Removed);
        }
        return Err(DialError::Refused(format!("{addr} refused: {}", reply.reason)));
    }
    if reply.cluster_id != identity.cluster_id || reply.member_id != to {
        return Err(DialError::Refused(format!(
            "{addr} is member {:x} of cluster {:x}, expected member {to:x} of cluster {:x}",
            reply.member_id, reply.cluster_id, identity.cluster_id
        )));
    }
    if reply.sender_unknown {
        // etcd's stream reader logs the 404 the same way; the messages still go.
        crate::log!(
            Level::Warn,
            "transport",
            "member {:x}: peer {to:x} failed to find this member in its member list (its log is behind?); it takes the messages and answers at this member's peer URLs",
            identity.member_id
        );
    }
    Ok(stream)
}

/// Why a removed member's hello is refused, in etcd's words (rafthttp answers its
/// streams 410 Gone with `errMemberRemoved`).
pub const MEMBER_REMOVED: &str = "the member has been permanently removed from the cluster";

/// Where a dialer stands in the listener's member list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Standing {
    /// Listed.
    Member,
    /// Removed from the cluster: refused.
    Removed,
    /// Neither: a member added after what this member applied, or no member of
    /// this cluster at all. Its messages are taken, as etcd's pipeline takes them
    /// (etcd refuses only its stream, 404 "error sender not found").
    Unknown,
}

/// The dialer's standing if its hello is accepted, else why it is refused.
/// `standing` tells where a member ID stands in the member list.
pub(super) fn check_hello(
    identity: Identity,
    hello: &PeerHello,
    standing: impl Fn(u64) -> Standing,
) -> Result<Standing, String> {
    if hello.protocol_version != PEER_PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} is not {PEER_PROTOCOL_VERSION}",
            hello.protocol_version
        ));
    }
    if hello.cluster_id != identity.cluster_id {
        return Err(format!(
            "cluster ID mismatch: member {:x} is in cluster {:x}, the dialer {:x} in {:x}",
            identity.member_id, identity.cluster_id, hello.from, hello.cluster_id
        ));
    }
    let dialer = standing(hello.from);
    if dialer == Standing::Removed {
        return Err(MEMBER_REMOVED.to_string());
    }
    if hello.to != identity.member_id {
        return Err(format!(
            "member ID mismatch: the dialer {:x} wanted member {:x}, this is member {:x}",
            hello.from, hello.to, identity.member_id
        ));
    }
    if hello.from == identity.member_id || hello.from == 0 {
        return Err(format!("the dialer claims member ID {:x}", hello.from));
    }
    Ok(dialer)
}

/// What the listener's side of the handshake ended in.
pub(super) enum Answered {
    /// Accepted: frames from member `from` follow. `known`: the member list holds
    /// it; if not, `peer_urls` are where its hello says it is reached.
    Accepted {
        from: u64,
        known: bool,
        peer_urls: Vec<String>,
    },
    /// Refused (and told why).
    Refused(String),
    /// No hello came, or the reply could not be written.
    Failed(String),
}

/// The listener's side: reads the hello (within [`DIAL_TIMEOUT_MS`]) and answers it;
/// `standing` tells where a member stands in the member list (a removed member's
/// hello is refused).
pub(super) async fn answer<R, W>(
    identity: Identity,
    standing: impl Fn(u64) -> Standing,
    reader: &mut R,
    writer: &mut W,
) -> Answered
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let read = tokio::time::timeout(
        Duration::from_millis(DIAL_TIMEOUT_MS),
        wire::read_frame::<PeerHello>(reader),
    );
    let hello = match read.await {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => return Answered::Failed(format!("failed: {e}")),
        Err(_) => return Answered::Failed("timed out".into()),
    };
    let checked = check_hello(identity, &hello, standing);
    let reply = PeerHelloReply {
        accepted: checked.is_ok(),
        cluster_id: identity.cluster_id,
        member_id: identity.member_id,
        reason: checked.clone().err().unwrap_or_default(),
        sender_unknown: checked == Ok(Standing::Unknown),
    };
    let mut buf = Vec::new();
    wire::put_frame(&mut buf, &reply);
    if let Err(e) = writer.write_all(&buf).await {
        return Answered::Failed(format!("reply not written: {e}"));
    }
    match checked {
        Err(why) => Answered::Refused(why),
        Ok(standing) => Answered::Accepted {
            from: hello.from,
            known: standing == Standing::Member,
            peer_urls: hello.peer_urls,
        },
    }
}

/// Greets the member at `url` with a hello that names no cluster and no member, which
/// it refuses: the refusal says which member of which cluster listens there (over TLS
/// when the URL is https).
pub async fn probe(url: &str, tls: &SharedPeerTls) -> std::io::Result<PeerHelloReply> {
    let addr =
        parse_url(url).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut stream = conn::dial(url, &addr, tls).await?;
    let hello = PeerHello {
        protocol_version: PEER_PROTOCOL_VERSION,
        cluster_id: 0,
        from: 0,
        to: 0,
        peer_urls: Vec::new(),
    };
    exchange(&mut stream, &hello).await.map_err(|e| match e {
        wire::FrameError::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    })
}

/// Completes TLS (when `tls` is given) on an accepted connection and reads its hello
/// without answering it: how a joining member learns the ID the cluster gave it from
/// the leader's first dial.
pub async fn read_hello(
    stream: socket::Stream,
    remote: &Remote,
    tls: Option<&std::sync::Arc<dyn conn::PeerTls>>,
) -> Result<PeerHello, String> {
    let mut stream = conn::accept(stream, remote, tls)
        .await
        .map_err(|e| e.to_string())?;
    wire::read_frame::<PeerHello>(&mut stream)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_of_another_cluster_or_member_or_of_a_removed_one_are_refused() {
        let me = Identity {
            member_id: 1,
            cluster_id: 7,
        };
        let good = PeerHello {
            protocol_version: PEER_PROTOCOL_VERSION,
            cluster_id: 7,
            from: 2,
            to: 1,
            peer_urls: Vec::new(),
        };
        // Members 1 to 3 are listed, 4 was removed.
        let listed = |id| match id {
            1..=3 => Standing::Member,
            4 => Standing::Removed,
            _ => Standing::Unknown,
        };
        assert_eq!(check_hello(me, &good, listed), Ok(Standing::Member));
        for bad in [
            PeerHello {
                cluster_id: 8,
                ..good.clone()
            },
            PeerHello {
                to: 3,
                ..good.clone()
            },
            PeerHello {
                from: 1,
                ..good.clone()
            },
            PeerHello {
                from: 0,
                ..good.clone()
            },
            PeerHello {
                protocol_version: 2,
                ..good.clone()
            },
        ] {
            assert!(check_hello(me, &bad, listed).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            check_hello(
                me,
                &PeerHello {
                    from: 4,
                    ..good.clone()
                },
                listed
            ),
            Err(MEMBER_REMOVED.to_string()),
            "a removed member is refused in etcd's words"
        );
        // A member this one does not know (yet) is taken as unknown, as etcd's
        // pipeline takes its messages; of another cluster or to another member, it
        // is refused like anyone.
        let unknown = PeerHello { from: 9, ..good };
        assert_eq!(check_hello(me, &unknown, listed), Ok(Standing::Unknown));
        assert!(check_hello(
            me,
            &PeerHello {
                cluster_id: 8,
                ..unknown.clone()
            },
            listed
        )
        .is_err());
        assert!(check_hello(me, &PeerHello { to: 2, ..unknown }, listed).is_err());
    }
}
