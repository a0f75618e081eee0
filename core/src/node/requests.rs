//! Client requests: the checks etcd makes before proposing (learner, overload,
//! size, quota), proposals and their waiters, requests only the leader serves
//! (forwarded by followers), leadership transfer, and every deadline.

use detcd_proto::detcdpb::{
    self, auth_raft_request, raft_request, AuthHeader, AuthRaftRequest, ConfChangeContext, LeaseCheckpoint,
    LeaseCheckpointRequest, RaftRequest,
};
use detcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, request_op, AlarmRequest, AlarmType, HashKvResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseStatus, LeaseTimeToLiveResponse, Member,
    MoveLeaderResponse, StatusResponse, TxnRequest,
};
use detcd_proto::raftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use prost::Message;

use super::auth::{header_of, WATCH_PERMISSION_DENIED_REASON};
use super::config::LEARNER_READY_PERCENT;
use super::io::{ClientRequestId, Credentials, ForwardRequest, Output, PeerMessage, Request, Response};
use super::reads::ReadKind;
use super::Node;
use crate::error::{self, EtcdError};
use crate::raft::{ProposeError, Role};

/// How many of a start's publish proposals are remembered (one applying ends it).
const PUBLISH_IDS_MAX: usize = 16;

/// Who waits for a proposal's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Client(ClientRequestId),
    /// A follower forwarded the request; the result goes back to it.
    Peer {
        member: u64,
        forward_id: u64,
    },
    /// The member itself (lease expiry, checkpoints, publish, alarms): nobody waits.
    Internal,
}

impl Origin {
    pub(crate) fn is_client(&self) -> bool {
        matches!(self, Origin::Client(_))
    }
}

/// What is proposed: a normal entry's bytes, or a conf change.
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    Normal(Vec<u8>),
    ConfChange(ConfChangeV2),
}

/// A proposal waiting to be applied.
#[derive(Clone, Debug)]
pub(crate) struct Proposal {
    pub(crate) origin: Origin,
    pub(crate) deadline_ms: u64,
    /// The leader when it was proposed, to tell a leader failure from a plain timeout.
    pub(crate) leader_at_start: u64,
    /// Kept until raft accepts it (no leader yet, transfer under way, a conf change
    /// pending): retried on every tick until the deadline.
    pub(crate) unproposed: Option<Payload>,
    /// The answer to give once the entry applies, for requests whose apply has
    /// none of its own (a keepalive waiting for its lease checkpoint).
    pub(crate) reply: Option<Response>,
}

/// A request forwarded to the leader, waiting for its reply.
#[derive(Clone, Debug)]
pub(crate) struct Forwarded {
    pub(crate) client: ClientRequestId,
    pub(crate) request: ForwardRequest,
    pub(crate) deadline_ms: u64,
    /// Sent to a leader and not refused yet.
    pub(crate) sent: bool,
}

/// A leadership transfer a client waits for.
#[derive(Clone, Debug)]
pub(crate) struct MoveLeader {
    pub(crate) client: ClientRequestId,
    pub(crate) target: u64,
    pub(crate) deadline_ms: u64,
}

/// etcd's `isRPCSupportedForLearner`: a learner serves Status and serializable
/// Range only (streams, watch and keepalive included, are refused).
fn supported_on_learner(request: &Request) -> bool {
    match request {
        Request::Status => true,
        Request::Range(r) => r.serializable,
        // etcd 3.4's learner serves the v2 keys API as a follower does: its writes
        // and quorum gets are forwarded to the leader through raft.
        Request::V2(_)
        | Request::V2Get { .. }
        | Request::V2Watch { .. }
        | Request::V2Status
        | Request::V2AuthLookup
        | Request::V2Members => true,
        _ => false,
    }
}

/// A UserAdd or UserChangePassword with its password in clear.
fn carries_clear_password(request: &auth_raft_request::Request) -> bool {
    match request {
        auth_raft_request::Request::UserAdd(u) => !u.password.is_empty(),
        auth_raft_request::Request::UserChangePassword(c) => !c.password.is_empty(),
        _ => false,
    }
}

impl Request {
    /// Whether the member proposes this request through raft: the one place that
    /// says which requests are writes (a txn of ranges only is a read, served as
    /// one by [`Node::on_client`]). Drivers count failed proposals by it.
    pub fn is_write(&self) -> bool {
        match self {
            Request::Put(_)
            | Request::DeleteRange(_)
            | Request::Compact(_)
            | Request::LeaseGrant(_)
            | Request::LeaseRevoke(_)
            | Request::MemberAdd(_)
            | Request::MemberRemove(_)
            | Request::MemberUpdate(_)
            | Request::MemberPromote(_)
            | Request::Alarm(_)
            | Request::Auth(_)
            | Request::V2(_) => true,
            Request::Txn(t) => !txn_is_read_only(t),
            _ => false,
        }
    }
}

pub(crate) fn txn_is_read_only(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(_)) | None => true,
            Some(request_op::Request::RequestTxn(t)) => txn_is_read_only(t),
            _ => false,
        })
}

fn txn_is_serializable(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(r)) => r.serializable,
            Some(request_op::Request::RequestTxn(t)) => txn_is_serializable(t),
            _ => true,
        })
}

/// Approximate bytes a write adds to the backend (key, value, revision key and
/// record overhead), as etcd's quota estimates a request's cost.
pub(crate) const RECORD_OVERHEAD_BYTES: u64 = 48;

impl Node {
    pub(crate) fn on_client(&mut self, id: ClientRequestId, request: Request, credentials: &Credentials) {
        if self.is_learner() && !supported_on_learner(&request) {
            return self.respond(id, Err(error::LEARNER_RPC_NOT_SUPPORTED));
        }
        if self.pending_requests() >= self.config.pending_requests_max {
            return self.respond(id, Err(error::TOO_MANY_REQUESTS));
        }
        let info = match self.resolve_credentials(credentials) {
            Ok(info) => info,
            Err(e) => return self.respond(id, Err(e)),
        };
        if let Err(e) = self.check_on_receipt(&request, info.as_ref()) {
            return self.respond(id, Err(e));
        }
        let auth = header_of(info.as_ref());
        let rev = self.store.revision();
        match request {
            Request::Range(r) if r.serializable => {
                let result = self.serve_read_as(&ReadKind::Range(r), info.as_ref());
                self.respond(id, result);
            }
            Request::Range(r) => self.enqueue_read(id, ReadKind::Range(r), info),
            Request::Txn(t) if txn_is_read_only(&t) => {
                if txn_is_serializable(&t) {
                    let result = self.serve_read_as(&ReadKind::Txn(t), info.as_ref());
                    self.respond(id, result);
                } else {
                    self.enqueue_read(id, ReadKind::Txn(t), info);
                }
            }
            Request::MemberList(r) if r.linearizable => self.enqueue_read(id, ReadKind::MemberList, info),
            Request::MemberList(_) | Request::V2Members => {
                let result = self.serve_read(&ReadKind::MemberList);
                self.respond(id, result);
            }
            Request::AuthPasswordCheck { name } => self.enqueue_read(id, ReadKind::PasswordCheck(name), info),
            Request::AdminCheck => self.respond(id, Ok(Response::AdminCheck)),
            Request::Auth(a) => {
                if carries_clear_password(&a) {
                    // The driver hashes passwords before proposing; a clear one
                    // must not reach the log.
                    return self.respond(id, Err(error::AUTH_FAILED));
                }
                let request = raft_request::Request::Auth(AuthRaftRequest { request: Some(a) });
                self.propose_write_as(id, request, 0, auth);
            }
            Request::Put(p) => {
                let cost = p.key.len() as u64 + p.value.len() as u64 + RECORD_OVERHEAD_BYTES;
                self.propose_write_as(id, raft_request::Request::Put(p), cost, auth);
            }
            Request::Txn(t) => {
                let cost = t.encoded_len() as u64 + RECORD_OVERHEAD_BYTES;
                self.propose_write_as(id, raft_request::Request::Txn(t), cost, auth);
            }
            Request::DeleteRange(d) => {
                self.propose_write_as(id, raft_request::Request::DeleteRange(d), 0, auth)
            }
            Request::Compact(c) => self.propose_write(id, raft_request::Request::Compaction(c), 0),
            Request::LeaseGrant(mut g) => {
                if g.id == 0 {
                    let candidate = self.next_request_id();
                    g.id = self.lessor.choose_id(Some(candidate));
                }
                self.propose_write(id, raft_request::Request::LeaseGrant(g), RECORD_OVERHEAD_BYTES);
            }
            Request::LeaseRevoke(r) => {
                self.propose_write_as(id, raft_request::Request::LeaseRevoke(r), 0, auth)
            }
            Request::Alarm(a) => self.propose_write_as(id, raft_request::Request::Alarm(a), 0, auth),
            Request::LeaseKeepAlive(k) => self.leader_or_forward(id, ForwardRequest::LeaseKeepAlive(k)),
            Request::LeaseTimeToLive(t) => self.leader_or_forward(id, ForwardRequest::LeaseTimeToLive(t)),
            Request::MemberPromote(p) => self.leader_or_forward(id, ForwardRequest::MemberPromote(p)),
            Request::LeaseLeases => {
                let leases = self
                    .lessor
                    .leases()
                    .into_iter()
                    .map(|id| LeaseStatus { id })
                    .collect();
                let header = self.header(rev);
                self.respond(
                    id,
                    Ok(Response::LeaseLeases(LeaseLeasesResponse { header, leases })),
                );
            }
            Request::MemberAdd(a) => {
                if a.peer_ur_ls.is_empty() {
                    return self.respond(id, Err(error::MEMBER_BAD_URLS));
                }
                if self.config.strict_reconfig_check && !a.is_learner && !self.ready_to_add_voter() {
                    return self.respond(id, Err(error::NOT_ENOUGH_STARTED_MEMBERS));
                }
                let mut member_id = 0;
                while member_id == 0 || self.members.contains_key(&member_id) {
                    member_id = self.rng.next_u64();
                }
                let member = Member {
                    id: member_id,
                    name: String::new(),
                    peer_ur_ls: a.peer_ur_ls,
                    client_ur_ls: Vec::new(),
                    is_learner: a.is_learner,
                };
                let kind = if a.is_learner {
                    ConfChangeType::ConfChangeAddLearnerNode
                } else {
                    ConfChangeType::ConfChangeAddNode
                };
                self.propose_conf_change(Origin::Client(id), kind, member);
            }
            // A member this one has not applied yet (added a moment ago through
            // another member) may still exist: as etcd, the change is proposed
            // and its existence decided when it applies, in log order.
            // ID 0 is raft's "no node", never a member's.
            Request::MemberRemove(r) if r.id == 0 => self.respond(id, Err(error::MEMBER_NOT_FOUND)),
            Request::MemberUpdate(u) if u.id == 0 => self.respond(id, Err(error::MEMBER_NOT_FOUND)),
            Request::MemberRemove(r) => {
                let member = self.members.get(&r.id).cloned();
                if self.config.strict_reconfig_check
                    && member.as_ref().is_some_and(|m| !m.is_learner)
                    && !self.ready_to_remove_voter(r.id)
                {
                    return self.respond(id, Err(error::NOT_ENOUGH_STARTED_MEMBERS));
                }
                let member = member.unwrap_or(Member {
                    id: r.id,
                    ..Member::default()
                });
                self.propose_conf_change(Origin::Client(id), ConfChangeType::ConfChangeRemoveNode, member);
            }
            Request::MemberUpdate(u) => {
                // Applying an update changes the peer URLs only.
                let mut member = self.members.get(&u.id).cloned().unwrap_or(Member {
                    id: u.id,
                    ..Member::default()
                });
                member.peer_ur_ls = u.peer_ur_ls;
                self.propose_conf_change(Origin::Client(id), ConfChangeType::ConfChangeUpdateNode, member);
            }
            Request::Status => {
                let response = self.status_response();
                self.respond(id, Ok(Response::Status(response)));
            }
            Request::HashKv(h) => {
                let result = self.store.hash_kv(h.revision).map(|mut r| {
                    r.header = self.header(r.header.map_or(rev, |h| h.revision));
                    Response::HashKv(HashKvResponse { ..r })
                });
                self.respond(id, result);
            }
            Request::MoveLeader(m) => self.move_leader(id, m.target_id),
            Request::WatchCreate { stream, request } => {
                match self.check_watch(&request.key, &request.range_end, info.as_ref()) {
                    Ok(()) => {
                        self.hub.create(stream, &request, rev);
                    }
                    Err(_) => self.hub.refuse(stream, WATCH_PERMISSION_DENIED_REASON, rev),
                }
                self.respond(id, Ok(Response::Watch));
            }
            Request::WatchCancel { stream, watch_id } => {
                self.hub.cancel(stream, watch_id);
                self.respond(id, Ok(Response::Watch));
            }
            Request::WatchProgress { stream } => {
                self.hub.request_progress(stream);
                self.respond(id, Ok(Response::Watch));
            }
            Request::V2(r) => self.propose_v2(id, r),
            Request::V2Get {
                path,
                recursive,
                now_unix_ms,
            } => self.serve_v2_get(id, &path, recursive, now_unix_ms),
            Request::V2Watch {
                path,
                recursive,
                since,
            } => self.serve_v2_watch(id, &path, recursive, since),
            Request::V2Status => self.serve_v2_status(id),
            Request::V2AuthLookup => self.serve_v2_auth_lookup(id),
        }
    }

    /// etcd's `IsReadyToAddVotingMember`: after the add, the started voters
    /// (those that published a name) must still be a quorum.
    fn ready_to_add_voter(&self) -> bool {
        let voters: Vec<&Member> = self.members.values().filter(|m| !m.is_learner).collect();
        let started = voters.iter().filter(|m| !m.name.is_empty()).count();
        let members = voters.len() + 1;
        if started == 1 && members == 2 {
            return true;
        }
        started > members / 2
    }

    /// etcd's `IsReadyToRemoveVotingMember`: the started voters left must be a quorum.
    fn ready_to_remove_voter(&self, id: u64) -> bool {
        let voters: Vec<&Member> = self
            .members
            .values()
            .filter(|m| !m.is_learner && m.id != id)
            .collect();
        let started = voters.iter().filter(|m| !m.name.is_empty()).count();
        started > voters.len() / 2
    }

    fn status_response(&self) -> StatusResponse {
        let errors = self
            .alarms
            .iter()
            .map(|(member, alarm)| {
                let name = AlarmType::try_from(*alarm).map_or("UNKNOWN", |a| a.as_str_name());
                format!("memberID:{member} alarm:{name} ")
            })
            .collect();
        StatusResponse {
            header: self.header(self.store.revision()),
            version: "3.6.0".to_string(),
            db_size: i64::try_from(self.db_size_bytes).unwrap_or(i64::MAX),
            leader: self.soft.leader,
            raft_index: self.commit,
            raft_term: self.term,
            raft_applied_index: self.applied_index,
            errors,
            db_size_in_use: i64::try_from(self.db_size_bytes).unwrap_or(i64::MAX),
            is_learner: self.is_learner(),
            storage_version: "3.6.0".to_string(),
            db_size_quota: i64::try_from(self.config.quota_backend_bytes).unwrap_or(i64::MAX),
            downgrade_info: None,
        }
    }

    fn nospace(&self) -> bool {
        self.alarms.iter().any(|&(_, a)| a == AlarmType::Nospace as i32)
    }

    /// Proposes a client write that needs no permission (Compact, LeaseGrant, Alarm).
    pub(crate) fn propose_write(
        &mut self,
        id: ClientRequestId,
        request: raft_request::Request,
        cost_bytes: u64,
    ) {
        self.propose_write_as(id, request, cost_bytes, AuthHeader::default());
    }

    /// Proposes a client write after etcd's checks: apply lag, request size, quota
    /// (a write that would exceed it raises the NOSPACE alarm and fails). `auth`
    /// rides in the entry for the permission check at apply.
    fn propose_write_as(
        &mut self,
        id: ClientRequestId,
        request: raft_request::Request,
        cost_bytes: u64,
        auth: AuthHeader,
    ) {
        if self.commit > self.applied_index + self.config.apply_lag_entries_max {
            return self.respond(id, Err(error::TOO_MANY_REQUESTS));
        }
        if cost_bytes > 0 && self.db_size_bytes + cost_bytes > self.config.quota_backend_bytes {
            if !self.nospace() {
                let alarm = AlarmRequest {
                    action: AlarmAction::Activate as i32,
                    member_id: self.config.member_id,
                    alarm: AlarmType::Nospace as i32,
                };
                self.propose_request(Origin::Internal, raft_request::Request::Alarm(alarm));
            }
            return self.respond(id, Err(error::NO_SPACE));
        }
        let request_id = self.next_request_id();
        let data = RaftRequest {
            id: request_id,
            request: Some(request),
            auth_header: Some(auth),
        }
        .encode_to_vec();
        if data.len() as u64 > self.config.request_bytes_max {
            return self.respond(id, Err(error::REQUEST_TOO_LARGE));
        }
        self.propose(request_id, Origin::Client(id), Payload::Normal(data));
    }

    /// Proposes a request of the member itself (nobody waits for it); its ID.
    pub(crate) fn propose_request(&mut self, origin: Origin, request: raft_request::Request) -> u64 {
        self.propose_request_inner(origin, request, None)
    }

    /// Proposes a request whose apply answers nothing itself; `origin` gets
    /// `reply` once it is applied (or a timeout error at its deadline).
    fn propose_request_with_reply(
        &mut self,
        origin: Origin,
        request: raft_request::Request,
        reply: Response,
    ) {
        self.propose_request_inner(origin, request, Some(reply));
    }

    fn propose_request_inner(
        &mut self,
        origin: Origin,
        request: raft_request::Request,
        reply: Option<Response>,
    ) -> u64 {
        let request_id = self.next_request_id();
        let data = RaftRequest {
            id: request_id,
            request: Some(request),
            auth_header: None,
        }
        .encode_to_vec();
        self.propose(request_id, origin, Payload::Normal(data));
        if let Some(p) = self.proposals.get_mut(&request_id) {
            p.reply = reply;
        }
        request_id
    }

    fn propose_conf_change(&mut self, origin: Origin, kind: ConfChangeType, member: Member) {
        let request_id = self.next_request_id();
        let node_id = member.id;
        let context = ConfChangeContext {
            request_id,
            member: Some(member),
        }
        .encode_to_vec();
        let mut single = ConfChangeSingle { r#type: 0, node_id };
        single.set_type(kind);
        let mut cc = ConfChangeV2 {
            transition: 0,
            changes: vec![single],
            context,
        };
        cc.set_transition(ConfChangeTransition::Auto);
        self.propose(request_id, origin, Payload::ConfChange(cc));
    }

    fn propose(&mut self, request_id: u64, origin: Origin, payload: Payload) {
        let mut proposal = Proposal {
            origin,
            deadline_ms: self.now_ms + self.config.request_timeout_ms,
            leader_at_start: self.soft.leader,
            unproposed: None,
            reply: None,
        };
        if let Err(e) = self.try_propose(&payload) {
            match e {
                ProposeError::InvalidConfChange(_) | ProposeError::NotVoter => {
                    // A conf change raft can never accept, or a member raft no longer
                    // tracks: waiting would not help.
                    return self.answer(origin, Err(error::STOPPED));
                }
                _ => proposal.unproposed = Some(payload),
            }
        }
        self.proposals.insert(request_id, proposal);
    }

    fn try_propose(&mut self, payload: &Payload) -> Result<(), ProposeError> {
        match payload {
            Payload::Normal(data) => self.raft.propose(data.clone()),
            Payload::ConfChange(cc) => self.raft.propose_conf_change(cc.clone()),
        }
    }

    /// Sends a result to whoever waits for it.
    pub(crate) fn answer(&mut self, origin: Origin, result: Result<Response, EtcdError>) {
        match origin {
            Origin::Client(id) => self.respond(id, result),
            Origin::Peer { member, forward_id } => self.outputs.push_back(Output::Send {
                to: member,
                message: PeerMessage::ForwardReply { forward_id, result },
            }),
            Origin::Internal => {}
        }
    }

    /// Serves a leader-only request here, or forwards it to the leader.
    fn leader_or_forward(&mut self, id: ClientRequestId, request: ForwardRequest) {
        if self.soft.role == Role::Leader {
            if let Some(result) = self.serve_on_leader(Origin::Client(id), request) {
                self.respond(id, result);
            }
            return;
        }
        let forward_id = self.next_forward_id;
        self.next_forward_id += 1;
        let deadline_ms = self.now_ms + self.config.request_timeout_ms;
        self.forwards.insert(
            forward_id,
            Forwarded {
                client: id,
                request,
                deadline_ms,
                sent: false,
            },
        );
        self.send_forwards();
    }

    fn send_forwards(&mut self) {
        let leader = self.soft.leader;
        if leader == 0 || leader == self.config.member_id {
            return;
        }
        let from = self.config.member_id;
        let mut sends = Vec::new();
        for (&forward_id, f) in self.forwards.iter_mut().filter(|(_, f)| !f.sent) {
            f.sent = true;
            sends.push(PeerMessage::Forward {
                from,
                forward_id,
                request: f.request.clone(),
            });
        }
        for message in sends {
            self.outputs.push_back(Output::Send { to: leader, message });
        }
    }

    /// The leader's side of a leader-only request. `None` when the answer comes
    /// later (a promote waits for its conf change to apply, a keepalive that needs a
    /// full-TTL checkpoint for that checkpoint).
    fn serve_on_leader(
        &mut self,
        origin: Origin,
        request: ForwardRequest,
    ) -> Option<Result<Response, EtcdError>> {
        let rev = self.store.revision();
        match request {
            ForwardRequest::LeaseKeepAlive(k) => {
                let renewal = match self.lessor.renew(k.id, self.now_ms) {
                    Ok(renewal) => renewal,
                    Err(e) => return Some(Err(e)),
                };
                let reply = Response::LeaseKeepAlive(LeaseKeepAliveResponse {
                    header: self.header(rev),
                    id: k.id,
                    ttl: renewal.ttl_s,
                });
                let Some(cp) = renewal.checkpoint else {
                    return Some(Ok(reply));
                };
                // An earlier partial checkpoint would shorten the lease at the next
                // leader change: the renewal is only certain once its full-TTL
                // checkpoint is applied, so that is when the client hears of it.
                let checkpoints = vec![LeaseCheckpoint {
                    id: cp.id,
                    remaining_ttl: cp.remaining_ttl_s,
                }];
                let request = raft_request::Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints });
                self.propose_request_with_reply(origin, request, reply);
                None
            }
            ForwardRequest::LeaseTimeToLive(t) => {
                Some(self.lessor.time_to_live(t.id, t.keys, self.now_ms).map(|ttl| {
                    Response::LeaseTimeToLive(LeaseTimeToLiveResponse {
                        header: self.header(rev),
                        id: ttl.id,
                        ttl: ttl.ttl_s,
                        granted_ttl: ttl.granted_ttl_s,
                        keys: ttl.keys,
                    })
                }))
            }
            ForwardRequest::MemberPromote(p) => {
                let Some(member) = self.members.get(&p.id).cloned() else {
                    return Some(Err(error::MEMBER_NOT_FOUND));
                };
                if !member.is_learner {
                    return Some(Err(error::MEMBER_NOT_LEARNER));
                }
                if !self.learner_ready(p.id) {
                    return Some(Err(error::LEARNER_NOT_READY));
                }
                let promoted = Member {
                    is_learner: false,
                    ..member
                };
                self.propose_conf_change(origin, ConfChangeType::ConfChangeAddNode, promoted);
                None
            }
        }
    }

    /// etcd's `isLearnerReady`: the learner's match index is at least 90% of the
    /// leader's.
    fn learner_ready(&self, id: u64) -> bool {
        let status = self.raft.status();
        let leader_match = status
            .progress
            .get(&self.config.member_id)
            .map_or(0, |p| p.matched);
        let learner_match = status.progress.get(&id).map_or(0, |p| p.matched);
        learner_match * 100 >= leader_match * LEARNER_READY_PERCENT
    }

    pub(crate) fn on_forward(&mut self, from: u64, forward_id: u64, request: ForwardRequest) {
        if self.soft.role != Role::Leader {
            let message = PeerMessage::ForwardReply {
                forward_id,
                result: Err(error::NOT_LEADER),
            };
            return self.outputs.push_back(Output::Send { to: from, message });
        }
        let origin = Origin::Peer {
            member: from,
            forward_id,
        };
        if let Some(result) = self.serve_on_leader(origin, request) {
            self.answer(origin, result);
        }
    }

    pub(crate) fn on_forward_reply(&mut self, forward_id: u64, result: Result<Response, EtcdError>) {
        if result == Err(error::NOT_LEADER) {
            // The member we took for leader no longer is: try the next one.
            if let Some(f) = self.forwards.get_mut(&forward_id) {
                f.sent = false;
            }
            return;
        }
        if let Some(f) = self.forwards.remove(&forward_id) {
            let result = result.map(|r| self.rewrite_header(r));
            self.respond(f.client, result);
        }
    }

    /// A response produced by another member gets this member's header fields.
    fn rewrite_header(&self, response: Response) -> Response {
        let fill = |h: &mut Option<detcd_proto::etcdserverpb::ResponseHeader>| {
            let revision = h.as_ref().map_or(0, |h| h.revision);
            *h = self.header(revision);
        };
        match response {
            Response::LeaseKeepAlive(mut r) => {
                fill(&mut r.header);
                Response::LeaseKeepAlive(r)
            }
            Response::LeaseTimeToLive(mut r) => {
                fill(&mut r.header);
                Response::LeaseTimeToLive(r)
            }
            Response::MemberPromote(mut r) => {
                fill(&mut r.header);
                Response::MemberPromote(r)
            }
            other => other,
        }
    }

    fn move_leader(&mut self, id: ClientRequestId, target: u64) {
        if self.soft.role != Role::Leader {
            return self.respond(id, Err(error::NOT_LEADER));
        }
        if self.members.get(&target).is_none_or(|m| m.is_learner) {
            return self.respond(id, Err(error::BAD_LEADER_TRANSFEREE));
        }
        if target == self.config.member_id {
            let header = self.header(self.store.revision());
            return self.respond(id, Ok(Response::MoveLeader(MoveLeaderResponse { header })));
        }
        if let Some(previous) = self.move_leader.take() {
            self.respond(previous.client, Err(error::LEADER_CHANGED));
        }
        self.move_leader = Some(MoveLeader {
            client: id,
            target,
            deadline_ms: self.now_ms + self.config.request_timeout_ms,
        });
        self.raft.transfer_leader(target);
    }

    /// On the primary: propose revokes for expired leases and due checkpoints.
    pub(crate) fn lease_duties(&mut self) {
        if !self.lessor.is_primary() {
            return;
        }
        for id in self.lessor.expired(self.now_ms) {
            self.note_expiring(id);
            self.propose_request(
                Origin::Internal,
                raft_request::Request::LeaseRevoke(LeaseRevokeRequest { id }),
            );
        }
        let due = self.lessor.checkpoints_due(self.now_ms);
        if !due.is_empty() {
            let checkpoints = due
                .iter()
                .map(|c| LeaseCheckpoint {
                    id: c.id,
                    remaining_ttl: c.remaining_ttl_s,
                })
                .collect();
            self.propose_request(
                Origin::Internal,
                raft_request::Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints }),
            );
        }
    }

    /// etcd's `publish`: once there is a leader, replicate this member's name and
    /// client URLs, once per start (even when the member list shows them already:
    /// etcd's v2 store counts every publish), retrying until one applies.
    pub(crate) fn publish_attributes(&mut self) {
        if self.published || !self.members.contains_key(&self.config.member_id) {
            return;
        }
        if self.soft.leader == 0 || self.now_ms < self.publish_retry_ms {
            return;
        }
        self.publish_retry_ms = self.now_ms + self.config.request_timeout_ms;
        let attributes = detcdpb::MemberAttributes {
            member_id: self.config.member_id,
            name: self.config.name.clone(),
            client_urls: self.config.client_urls.clone(),
        };
        let request_id = self.propose_request(
            Origin::Internal,
            raft_request::Request::MemberAttributes(attributes),
        );
        if self.publish_ids.len() == PUBLISH_IDS_MAX {
            self.publish_ids.pop_front();
        }
        self.publish_ids.push_back(request_id);
    }

    /// etcd's `monitorVersions` on a cluster without a version: the leader, once it
    /// applied an entry of its own term, sets it (etcd's `/0/version`), retrying
    /// until one applies.
    pub(crate) fn propose_cluster_version(&mut self) {
        if self.soft.role != Role::Leader
            || self.v2.cluster_version().is_some()
            || self.applied_term != self.term
            || self.now_ms < self.cluster_version_retry_ms
        {
            return;
        }
        self.cluster_version_retry_ms = self.now_ms + self.config.request_timeout_ms;
        let version = detcdpb::ClusterVersion {
            version: crate::v2store::CLUSTER_VERSION.to_string(),
        };
        self.propose_request(Origin::Internal, raft_request::Request::ClusterVersion(version));
    }

    /// Proposals, reads and forwards that could not go out before get another try.
    pub(crate) fn retry_pending(&mut self) {
        let waiting: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, p)| p.unproposed.is_some())
            .map(|(id, _)| *id)
            .collect();
        for request_id in waiting {
            let payload = self.proposals[&request_id].unproposed.clone().expect("filtered");
            if self.try_propose(&payload).is_ok() {
                self.proposals.get_mut(&request_id).expect("listed").unproposed = None;
            }
        }
        self.retry_reads();
        self.send_forwards();
    }

    /// Answers everything whose deadline passed, with etcd's error for the case.
    pub(crate) fn expire_deadlines(&mut self) {
        let now = self.now_ms;
        let late: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, p)| p.deadline_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        for request_id in late {
            let p = self.proposals.remove(&request_id).expect("listed");
            // etcd's parseProposeCtxErr: a leader elected since the request started
            // means the previous leader failed.
            let e = if p.leader_at_start != self.soft.leader && self.soft.leader != 0 {
                error::TIMEOUT_DUE_TO_LEADER_FAIL
            } else {
                error::TIMEOUT
            };
            self.answer(p.origin, Err(e));
        }
        let late: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, f)| f.deadline_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        for forward_id in late {
            let f = self.forwards.remove(&forward_id).expect("listed");
            // etcd's waitLeader: no leader to forward to is NO_LEADER.
            let e = if self.soft.leader == 0 {
                error::NO_LEADER
            } else {
                error::TIMEOUT
            };
            self.respond(f.client, Err(e));
        }
        if self.move_leader.as_ref().is_some_and(|m| m.deadline_ms <= now) {
            let m = self.move_leader.take().expect("checked");
            self.respond(m.client, Err(error::TIMEOUT));
        }
        for id in self.reads.expire(now) {
            self.respond(id, Err(error::TIMEOUT));
        }
    }
}

#[cfg(test)]
mod write_tests {
    use detcd_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp};

    use super::*;

    fn op(request: request_op::Request) -> RequestOp {
        RequestOp {
            request: Some(request),
        }
    }

    #[test]
    fn a_txn_of_ranges_is_a_read_and_one_put_anywhere_makes_it_a_write() {
        let range = || op(request_op::Request::RequestRange(RangeRequest::default()));
        let reads = TxnRequest {
            success: vec![range()],
            failure: vec![range()],
            ..Default::default()
        };
        assert!(!Request::Txn(reads.clone()).is_write());
        assert!(!Request::Txn(TxnRequest::default()).is_write());
        let nested = TxnRequest {
            failure: vec![op(request_op::Request::RequestTxn(TxnRequest {
                success: vec![op(request_op::Request::RequestPut(PutRequest::default()))],
                ..Default::default()
            }))],
            ..reads
        };
        assert!(Request::Txn(nested).is_write());
        assert!(Request::Put(PutRequest::default()).is_write());
        assert!(!Request::Range(RangeRequest::default()).is_write());
        assert!(!Request::Status.is_write());
    }
}
