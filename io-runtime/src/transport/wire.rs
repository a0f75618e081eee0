//! The peer wire format: length-prefixed frames of `detcdpb` peer messages
//! (`proto/detcd/peer.proto`), and the conversion between
//! [`PeerMessage`] and [`PeerEnvelope`].
//!
//! A frame is a 4-byte big-endian length, then that many bytes of one encoded
//! protobuf message. Frames above [`PEER_FRAME_BYTES_MAX`] are refused on both
//! ends (the reader closes the connection rather than allocate).

use detcd_core::error::{self as etcd_error, Code, EtcdError};
use detcd_core::node::{ForwardRequest, PeerMessage, Response};
use detcd_proto::detcdpb::{
    peer_envelope, peer_forward, peer_forward_reply, PeerEnvelope, PeerError, PeerForward, PeerForwardReply,
};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame a member sends or accepts. Raft snapshot messages carry the
/// whole application state, which etcd bounds by `--quota-backend-bytes` (2 GiB
/// by default); the frame limit sits above that with room for the envelope.
pub const PEER_FRAME_BYTES_MAX: usize = 2 * 1024 * 1024 * 1024 + 64 * 1024 * 1024;

/// Bytes of the length prefix.
const FRAME_HEADER_BYTES: usize = 4;

/// The message of an error a peer sent that this member does not know (another
/// version); the code is kept.
const UNKNOWN_PEER_ERROR: &str = "etcdserver: unknown error from peer";

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    Io(std::io::Error),
    TooLarge { bytes: usize },
    Decode(prost::DecodeError),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::TooLarge { bytes } => {
                write!(
                    f,
                    "frame of {bytes} bytes is above the limit of {PEER_FRAME_BYTES_MAX}"
                )
            }
            FrameError::Decode(e) => write!(f, "undecodable frame: {e}"),
        }
    }
}

/// Appends one frame holding `message` to `buf`; false (nothing appended) when it
/// would exceed [`PEER_FRAME_BYTES_MAX`].
pub fn put_frame(buf: &mut Vec<u8>, message: &impl prost::Message) -> bool {
    let len = message.encoded_len();
    if len > PEER_FRAME_BYTES_MAX {
        return false;
    }
    buf.reserve(FRAME_HEADER_BYTES + len);
    buf.extend_from_slice(&u32::try_from(len).expect("frame limit fits u32").to_be_bytes());
    message.encode(buf).expect("reserved enough");
    true
}

/// Reads one frame and decodes it as `M`.
pub async fn read_frame<M: prost::Message + Default>(
    reader: &mut (impl AsyncRead + Unpin),
) -> Result<M, FrameError> {
    read_frame_measured(reader).await.map(|(message, _)| message)
}

/// How one frame was read: its bytes (length prefix included) and how long its
/// body took to arrive after its length prefix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameRead {
    pub bytes: usize,
    pub body_seconds: f64,
}

/// [`read_frame`], with what reading it took.
pub async fn read_frame_measured<M: prost::Message + Default>(
    reader: &mut (impl AsyncRead + Unpin),
) -> Result<(M, FrameRead), FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    reader.read_exact(&mut header).await.map_err(FrameError::Io)?;
    let len = u32::from_be_bytes(header) as usize;
    if len > PEER_FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge { bytes: len });
    }
    let started = std::time::Instant::now();
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await.map_err(FrameError::Io)?;
    let read = FrameRead {
        bytes: FRAME_HEADER_BYTES + len,
        body_seconds: started.elapsed().as_secs_f64(),
    };
    M::decode(body.as_slice())
        .map(|message| (message, read))
        .map_err(FrameError::Decode)
}

/// The envelope of a message.
pub fn encode(message: PeerMessage) -> PeerEnvelope {
    let body = match message {
        PeerMessage::Raft(m) => peer_envelope::Body::Raft(m),
        PeerMessage::Forward {
            from,
            forward_id,
            request,
        } => peer_envelope::Body::Forward(PeerForward {
            from,
            forward_id,
            request: Some(match request {
                ForwardRequest::LeaseKeepAlive(r) => peer_forward::Request::LeaseKeepAlive(r),
                ForwardRequest::LeaseTimeToLive(r) => peer_forward::Request::LeaseTimeToLive(r),
                ForwardRequest::MemberPromote(r) => peer_forward::Request::MemberPromote(r),
            }),
        }),
        PeerMessage::ForwardReply { forward_id, result } => {
            let result = match result {
                Ok(Response::LeaseKeepAlive(r)) => peer_forward_reply::Result::LeaseKeepAlive(r),
                Ok(Response::LeaseTimeToLive(r)) => peer_forward_reply::Result::LeaseTimeToLive(r),
                Ok(Response::MemberPromote(r)) => peer_forward_reply::Result::MemberPromote(r),
                // Only the three forwardable requests are answered over the wire.
                Ok(_) => error_to_wire(etcd_error::NOT_CAPABLE),
                Err(e) => error_to_wire(e),
            };
            peer_envelope::Body::ForwardReply(PeerForwardReply {
                forward_id,
                result: Some(result),
            })
        }
    };
    PeerEnvelope { body: Some(body) }
}

/// The message in an envelope; `None` for an envelope this version cannot read.
pub fn decode(envelope: PeerEnvelope) -> Option<PeerMessage> {
    Some(match envelope.body? {
        peer_envelope::Body::Raft(m) => PeerMessage::Raft(m),
        peer_envelope::Body::Forward(f) => PeerMessage::Forward {
            from: f.from,
            forward_id: f.forward_id,
            request: match f.request? {
                peer_forward::Request::LeaseKeepAlive(r) => ForwardRequest::LeaseKeepAlive(r),
                peer_forward::Request::LeaseTimeToLive(r) => ForwardRequest::LeaseTimeToLive(r),
                peer_forward::Request::MemberPromote(r) => ForwardRequest::MemberPromote(r),
            },
        },
        peer_envelope::Body::ForwardReply(r) => PeerMessage::ForwardReply {
            forward_id: r.forward_id,
            result: match r.result? {
                peer_forward_reply::Result::LeaseKeepAlive(r) => Ok(Response::LeaseKeepAlive(r)),
                peer_forward_reply::Result::LeaseTimeToLive(r) => Ok(Response::LeaseTimeToLive(r)),
                peer_forward_reply::Result::MemberPromote(r) => Ok(Response::MemberPromote(r)),
                peer_forward_reply::Result::Error(e) => Err(error_from_wire(&e)),
            },
        },
    })
}

fn error_to_wire(e: EtcdError) -> peer_forward_reply::Result {
    peer_forward_reply::Result::Error(PeerError {
        code: e.code as i32,
        message: e.message.to_string(),
    })
}

/// Every error a peer may send, so a decoded one carries the same static message.
const KNOWN_ERRORS: &[EtcdError] = &[
    etcd_error::KEY_NOT_PROVIDED,
    etcd_error::KEY_NOT_FOUND,
    etcd_error::VALUE_PROVIDED,
    etcd_error::LEASE_PROVIDED,
    etcd_error::TOO_MANY_OPS,
    etcd_error::DUPLICATE_KEY,
    etcd_error::INVALID_SORT_OPTION,
    etcd_error::REQUEST_TOO_LARGE,
    etcd_error::MEMBER_BAD_URLS,
    etcd_error::COMPACTED,
    etcd_error::FUTURE_REV,
    etcd_error::LEASE_TTL_TOO_LARGE,
    etcd_error::NO_SPACE,
    etcd_error::TOO_MANY_REQUESTS,
    etcd_error::LEASE_NOT_FOUND,
    etcd_error::MEMBER_NOT_FOUND,
    etcd_error::LEASE_EXISTS,
    etcd_error::MEMBER_EXISTS,
    etcd_error::PEER_URL_EXISTS,
    etcd_error::NOT_ENOUGH_STARTED_MEMBERS,
    etcd_error::MEMBER_NOT_LEARNER,
    etcd_error::LEARNER_NOT_READY,
    etcd_error::TOO_MANY_LEARNERS,
    etcd_error::CLUSTER_ID_MISMATCH,
    etcd_error::NOT_LEADER,
    etcd_error::NOT_CAPABLE,
    etcd_error::LEARNER_RPC_NOT_SUPPORTED,
    etcd_error::BAD_LEADER_TRANSFEREE,
    etcd_error::NO_LEADER,
    etcd_error::LEADER_CHANGED,
    etcd_error::STOPPED,
    etcd_error::TIMEOUT,
    etcd_error::TIMEOUT_DUE_TO_LEADER_FAIL,
    etcd_error::TIMEOUT_DUE_TO_CONNECTION_LOST,
    etcd_error::TIMEOUT_WAIT_APPLIED_INDEX,
    etcd_error::UNHEALTHY,
    etcd_error::CORRUPT,
    etcd_error::CANCELED,
    etcd_error::WATCH_CANCELED,
];

fn error_from_wire(e: &PeerError) -> EtcdError {
    if let Some(known) = KNOWN_ERRORS
        .iter()
        .find(|k| k.message == e.message && k.code as i32 == e.code)
    {
        return *known;
    }
    EtcdError {
        code: code_from_i32(e.code),
        message: UNKNOWN_PEER_ERROR,
    }
}

fn code_from_i32(code: i32) -> Code {
    match code {
        0 => Code::Ok,
        1 => Code::Cancelled,
        3 => Code::InvalidArgument,
        4 => Code::DeadlineExceeded,
        5 => Code::NotFound,
        6 => Code::AlreadyExists,
        7 => Code::PermissionDenied,
        8 => Code::ResourceExhausted,
        9 => Code::FailedPrecondition,
        10 => Code::Aborted,
        11 => Code::OutOfRange,
        12 => Code::Unimplemented,
        13 => Code::Internal,
        14 => Code::Unavailable,
        15 => Code::DataLoss,
        16 => Code::Unauthenticated,
        _ => Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use detcd_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};
    use detcd_proto::raftpb::{Entry, Message};

    fn round_trip(message: PeerMessage) -> PeerMessage {
        let mut buf = Vec::new();
        assert!(put_frame(&mut buf, &encode(message)));
        let envelope: PeerEnvelope = futures_lite_block(&buf);
        decode(envelope).expect("decodes")
    }

    fn futures_lite_block(buf: &[u8]) -> PeerEnvelope {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut reader = buf;
        rt.block_on(read_frame(&mut reader)).expect("one frame")
    }

    #[test]
    fn every_peer_message_kind_round_trips() {
        let raft = PeerMessage::Raft(Message {
            r#type: 3,
            to: 2,
            from: 1,
            term: 4,
            entries: vec![Entry {
                r#type: 0,
                term: 4,
                index: 9,
                data: b"x".to_vec(),
            }],
            ..Default::default()
        });
        let forward = PeerMessage::Forward {
            from: 3,
            forward_id: 17,
            request: ForwardRequest::LeaseKeepAlive(LeaseKeepAliveRequest { id: 5 }),
        };
        let ok = PeerMessage::ForwardReply {
            forward_id: 17,
            result: Ok(Response::LeaseKeepAlive(LeaseKeepAliveResponse {
                header: None,
                id: 5,
                ttl: 10,
            })),
        };
        let err = PeerMessage::ForwardReply {
            forward_id: 18,
            result: Err(etcd_error::LEASE_NOT_FOUND),
        };
        for m in [raft, forward, ok, err] {
            assert_eq!(round_trip(m.clone()), m);
        }
    }

    #[test]
    fn an_unknown_error_keeps_its_code() {
        let e = error_from_wire(&PeerError {
            code: 14,
            message: "etcdserver: something new".into(),
        });
        assert_eq!(e.code, Code::Unavailable);
        assert_eq!(e.message, UNKNOWN_PEER_ERROR);
    }

    #[test]
    fn an_oversized_length_is_refused_before_allocation() {
        let header = u32::MAX.to_be_bytes();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut reader = &header[..];
        let got = rt.block_on(read_frame::<PeerEnvelope>(&mut reader));
        assert!(matches!(got, Err(FrameError::TooLarge { .. })));
    }
}
