//! What goes into a [`Node`](super::Node) and what comes out of it.
//!
//! Requests and responses are etcd's wire types, so the server only moves them
//! between gRPC and the node; every decision about them is taken in the node.

use std::collections::{BTreeMap, BTreeSet};

use detcd_proto::detcdpb::{auth_raft_request, V2Request};
use detcd_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, HashKvRequest, HashKvResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, MemberAddRequest,
    MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest, MemberPromoteResponse,
    MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse, MoveLeaderRequest,
    MoveLeaderResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, StatusResponse, TxnRequest,
    TxnResponse, WatchCreateRequest, WatchResponse,
};
use detcd_proto::etcdserverpb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse,
    AuthRoleGetResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionResponse, AuthStatusResponse, AuthUserAddResponse,
    AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGetResponse, AuthUserGrantRoleResponse,
    AuthUserListResponse, AuthUserRevokeRoleResponse, AuthenticateResponse,
};
use detcd_proto::raftpb::{Entry, HardState, Message, Snapshot};

use super::portable::{PortableBound, PortableError, PortableHead, PortableSlice};
use super::status::MemberStatus;
use crate::auth::PasswordCheck;
use crate::error::EtcdError;
use crate::mvcc::Revision;
use crate::raft::Role;
use crate::v2store::{Event, V2Error};
use crate::watch::StreamId;

/// The driver's name for one client request, unique per node while it is pending.
/// Every [`Input::Client`] is answered by exactly one [`Output::Respond`] with it.
pub type ClientRequestId = u64;

/// Everything that can happen to a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The driver's monotonic clock, delivered about every `tick_ms`. Raft ticks,
    /// request deadlines, lease expiry and checkpoints all run from it. Any other
    /// input fed with [`Node::handle_at`](super::Node::handle_at) at a later
    /// clock runs the same tick first.
    Tick { now_ms: u64 },
    /// A message from another member.
    Peer(PeerMessage),
    /// A client request, with what the client presented to identify itself.
    Client {
        id: ClientRequestId,
        request: Request,
        credentials: Credentials,
    },
    /// The writes of [`Output::Persist`] numbered `ready_number` (and all before it)
    /// are durable (synced when `must_sync` said so).
    Persisted { ready_number: u64 },
    /// The snapshot of [`Output::SaveSnapshot`] at `index` is durable.
    SnapshotSaved { index: u64 },
    /// A client watch stream is gone; its watchers are dropped.
    StreamClosed { stream: StreamId },
    /// The transport could not deliver to `peer` (optional; speeds up probing).
    PeerUnreachable { peer: u64 },
    /// A raft snapshot message to `peer` was (`delivered`) or was not delivered.
    SnapshotReport { peer: u64, delivered: bool },
    /// Start (or go on with) encoding the application state for `export`, one
    /// slice per input; answered by [`Output::SnapshotExport`].
    ExportSnapshot { export: u64 },
    /// Asks for the head of a portable export as of the applied index; answered
    /// by [`Output::PortableHead`] with the same `ask`.
    PortableHead { ask: u64 },
    /// Asks for the next slice of the portable export bounded by `bound`, from
    /// revision `from`, at most `records_max` records; answered by
    /// [`Output::PortableRecords`] with the same `ask`.
    PortableRecords {
        ask: u64,
        bound: PortableBound,
        from: Revision,
        records_max: usize,
    },
}

/// Everything a node asks its driver to do, drained with [`Node::poll`](super::Node::poll).
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Write it durably, then answer [`Input::Persisted`] (see [`Persist`]).
    Persist(Persist),
    /// Deliver `message` to member `to` (best effort: raft retries).
    Send { to: u64, message: PeerMessage },
    /// The answer to the client request `id`.
    Respond {
        id: ClientRequestId,
        result: Result<Response, EtcdError>,
    },
    /// A response for a client watch stream, in stream order.
    Watch {
        stream: StreamId,
        response: WatchResponse,
    },
    /// Save this application snapshot durably (its `data` is the node's versioned,
    /// checksummed state), then answer [`Input::SnapshotSaved`].
    SaveSnapshot { snapshot: Snapshot },
    /// The snapshot at `index` is durable: WAL records of entries up to `index` may
    /// be released.
    ReleaseWal { index: u64 },
    /// Leader, role or term changed (for metrics and logs).
    RoleChanged { leader: u64, role: Role, term: u64 },
    /// Auto-compaction proposed a compaction to `revision` (`completed: false`)
    /// or saw it applied (`completed: true`); for the log.
    AutoCompaction { revision: i64, completed: bool },
    /// This member was removed from the cluster: the driver stops it. The node
    /// answers nothing further.
    Removed,
    /// The peer URLs of every member, as this member has applied them, and the
    /// members removed from the cluster: the first output of a node, and again
    /// each time a member is added, removed or its peer URLs change. The transport
    /// dials these URLs, closes the links of members no longer listed, and closes
    /// and refuses the connections of removed members (etcd answers their streams
    /// 410 Gone).
    PeerUrls {
        urls: BTreeMap<u64, Vec<String>>,
        removed: BTreeSet<u64>,
    },
    /// Progress of the export asked for by [`Input::ExportSnapshot`].
    SnapshotExport { export: u64, progress: ExportProgress },
    /// The answer to [`Input::PortableHead`].
    PortableHead { ask: u64, head: PortableHead },
    /// The answer to [`Input::PortableRecords`].
    PortableRecords {
        ask: u64,
        slice: Result<PortableSlice, PortableError>,
    },
    /// The member's state for metrics and waiters, when it changed: at most one
    /// per drain, after every other output of it (see [`MemberStatus`]).
    Status(MemberStatus),
}

/// One Ready's disk work: write `snapshot` (if any), then `entries` (replacing
/// stored entries at the same or later indexes), then `hard_state` (if any); sync
/// when `must_sync`; then answer [`Input::Persisted`] with `ready_number`.
/// Messages that depend on these writes are only released after that answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Persist {
    pub ready_number: u64,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    pub must_sync: bool,
}

/// Where an export of the application state stands.
#[derive(Clone, Debug, PartialEq)]
pub enum ExportProgress {
    /// A slice was encoded; answer [`Input::ExportSnapshot`] with the same export
    /// again (after other work, so a large state does not stall the member).
    Pending,
    /// The whole state as of the applied index when the export started, in the
    /// snapshot encoding (what Maintenance/Snapshot streams).
    Done(Vec<u8>),
}

/// What members say to each other: raft messages plus requests that only the
/// leader can serve, forwarded by followers.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerMessage {
    Raft(Message),
    /// A follower asks the leader to serve `request`; the answer comes back as
    /// [`PeerMessage::ForwardReply`] with the same `forward_id` (chosen by `from`).
    Forward {
        from: u64,
        forward_id: u64,
        request: ForwardRequest,
    },
    ForwardReply {
        forward_id: u64,
        result: Result<Response, EtcdError>,
    },
}

/// Requests a follower forwards to the leader (etcd's peer `/leases`,
/// `/leases/internal` and `/members/promote` endpoints).
#[derive(Clone, Debug, PartialEq)]
pub enum ForwardRequest {
    LeaseKeepAlive(LeaseKeepAliveRequest),
    LeaseTimeToLive(LeaseTimeToLiveRequest),
    MemberPromote(MemberPromoteRequest),
}

/// How a client request identifies its user (etcd's `AuthInfoFromCtx`). Only
/// looked at while auth is enabled.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Credentials {
    /// Nothing: with auth enabled, only requests that need no user succeed.
    #[default]
    None,
    /// A simple token (gRPC metadata `token`, or `authorization` without its
    /// `Bearer ` prefix), looked up in the member's token table.
    Token(String),
    /// A user verified outside the node: a JWT's claims (with their auth
    /// revision), or a verified TLS client certificate's common name (`None`:
    /// the member's current auth revision, as etcd's `AuthInfoFromTLS`).
    Verified { user: String, revision: Option<u64> },
    /// A token the driver could not verify (a JWT with a bad signature or
    /// expired): INVALID_AUTH_TOKEN while auth is enabled.
    Invalid,
}

/// A client request (the etcd RPC it comes from in each variant's name).
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
    LeaseGrant(LeaseGrantRequest),
    LeaseRevoke(LeaseRevokeRequest),
    /// One renewal of a keepalive stream.
    LeaseKeepAlive(LeaseKeepAliveRequest),
    LeaseTimeToLive(LeaseTimeToLiveRequest),
    LeaseLeases,
    MemberAdd(MemberAddRequest),
    MemberRemove(MemberRemoveRequest),
    MemberUpdate(MemberUpdateRequest),
    MemberList(MemberListRequest),
    MemberPromote(MemberPromoteRequest),
    Status,
    HashKv(HashKvRequest),
    Alarm(AlarmRequest),
    MoveLeader(MoveLeaderRequest),
    /// A watch create on the driver's stream `stream`; the created/canceled answer
    /// and the events arrive as [`Output::Watch`].
    WatchCreate {
        stream: StreamId,
        request: WatchCreateRequest,
    },
    WatchCancel {
        stream: StreamId,
        watch_id: i64,
    },
    WatchProgress {
        stream: StreamId,
    },
    /// An Auth RPC, replicated. UserAdd and UserChangePassword carry the bcrypt
    /// hash in `hashedPassword` (the driver hashes; a clear `password` is refused),
    /// Authenticate carries the token prefix after the driver checked the password.
    Auth(auth_raft_request::Request),
    /// The first half of Authenticate: after a linearizable barrier, the user's
    /// password hash for the driver to compare off the event loop.
    AuthPasswordCheck {
        name: String,
    },
    /// Whether the request's user may run admin-only RPCs that the driver serves
    /// itself (Snapshot, Defragment, Hash).
    AdminCheck,
    /// A v2 write, quorum get or sync, through raft (see [`V2Request`]).
    V2(V2Request),
    /// A v2 get from this member's store (etcd's non-quorum GET); TTLs shown
    /// as at `now_unix_ms`.
    V2Get {
        path: String,
        recursive: bool,
        now_unix_ms: u64,
    },
    /// A v2 wait: the first event at or after `since` (0: the next index) under
    /// `path`, or none yet (the driver asks again; see [`V2Reply::since`]).
    V2Watch {
        path: String,
        recursive: bool,
        since: u64,
    },
    /// The v2 store's index, node count and whether keys have a TTL (for the
    /// leader's syncs and `/v2/stats/store`).
    V2Status,
    /// etcd's look-up of its v2 auth switch for each `/v2/keys` request with a
    /// valid form and each `/v2/members` write: a get of a key that does not
    /// exist, counted as a failed get in this member's v2 statistics (which its
    /// snapshots keep). Answered with the v2 store's index.
    V2AuthLookup,
    /// The member list for `/v2/members` (etcd's v2 handler reads its cluster
    /// directly, so a learner answers it too, where it refuses the v3 MemberList).
    V2Members,
}

/// The answer to an Auth RPC.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthResponse {
    Enable(AuthEnableResponse),
    Disable(AuthDisableResponse),
    Status(AuthStatusResponse),
    Authenticate(AuthenticateResponse),
    UserAdd(AuthUserAddResponse),
    UserGet(AuthUserGetResponse),
    UserList(AuthUserListResponse),
    UserDelete(AuthUserDeleteResponse),
    UserChangePassword(AuthUserChangePasswordResponse),
    UserGrantRole(AuthUserGrantRoleResponse),
    UserRevokeRole(AuthUserRevokeRoleResponse),
    RoleAdd(AuthRoleAddResponse),
    RoleGet(AuthRoleGetResponse),
    RoleList(AuthRoleListResponse),
    RoleDelete(AuthRoleDeleteResponse),
    RoleGrantPermission(AuthRoleGrantPermissionResponse),
    RoleRevokePermission(AuthRoleRevokePermissionResponse),
}

/// A successful answer, one variant per [`Request`] variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseKeepAlive(LeaseKeepAliveResponse),
    LeaseTimeToLive(LeaseTimeToLiveResponse),
    LeaseLeases(LeaseLeasesResponse),
    MemberAdd(MemberAddResponse),
    MemberRemove(MemberRemoveResponse),
    MemberUpdate(MemberUpdateResponse),
    MemberList(MemberListResponse),
    MemberPromote(MemberPromoteResponse),
    Status(StatusResponse),
    HashKv(HashKvResponse),
    Alarm(AlarmResponse),
    MoveLeader(MoveLeaderResponse),
    /// A watch request was taken; its answers arrive as [`Output::Watch`].
    Watch,
    Auth(AuthResponse),
    AuthPasswordCheck(PasswordCheck),
    /// The user may run admin-only RPCs.
    AdminCheck,
    /// Every v2 request's answer.
    V2(V2Reply),
}

/// The answer to a v2 request: the store's result (a v2 error is an answer too,
/// the v2 API reports it in its own JSON), with the raft position for etcd's
/// `X-Raft-Index` and `X-Raft-Term` headers.
#[derive(Clone, Debug, PartialEq)]
pub struct V2Reply {
    /// `None` for a wait that found no event yet, a sync and a status.
    pub result: Result<Option<Event>, V2Error>,
    /// The `since` a wait used (its `since`, or the next index for 0).
    pub since: u64,
    /// The v2 store's index (the `X-Etcd-Index` header of a wait or a status).
    pub etcd_index: u64,
    /// The member's raft commit index (etcd's `X-Raft-Index`).
    pub raft_index: u64,
    pub raft_term: u64,
    /// V2Status: whether any node has a TTL, and how many nodes there are.
    pub has_ttl_keys: bool,
    pub node_count: usize,
    /// V2Status: this member's v2 store statistics (boxed: replies stay small).
    pub stats: Option<Box<crate::v2store::Stats>>,
}
