//! Applying committed entries, on every member in log order (etcd's `applyAll`,
//! the uber applier with its NOSPACE cap, and `applyConfChange`). The member that
//! proposed an entry (it holds a waiter under the request ID) answers its client.
//!
//! Everything here depends only on replicated state and the entry, so every member
//! reaches the same state and the same answer; the one local input is `now_ms` for
//! a grant on the primary lessor, which only affects local expiry.

use detcd_proto::detcdpb::{raft_request, ConfChangeContext, RaftRequest};
use detcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmMember, AlarmResponse, AlarmType, LeaseGrantResponse,
    LeaseRevokeResponse, Member, MemberAddResponse, MemberPromoteResponse, MemberRemoveResponse,
    MemberUpdateResponse,
};
use detcd_proto::mvccpb::{event::EventType, Event};
use detcd_proto::raftpb::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType};
use prost::Message;

use super::io::{Output, Response};
use super::requests::{txn_is_read_only, RECORD_OVERHEAD_BYTES};
use super::status::MvccCounts;
use super::Node;
use crate::error::{self, EtcdError};
use crate::mutation::{is_active, Mutation};
use crate::raft::conf_change::v1_to_v2;
use crate::v2store::Record;

/// How long at least a member that applied its own removal keeps taking part in
/// raft (voting, acknowledging appends; no client is served) before it stops:
/// etcd's `stopWithDelay` of one second. It is at least three election timeouts,
/// so that when the removed member was the leader and the others missed that the
/// removal committed (the messages saying so lost, or never sent), one of them
/// can still win an election with its vote and commit the removal: a two-voter
/// cluster has no quorum without it.
pub(super) const REMOVED_STOP_DELAY_MS_MIN: u64 = 1_000;

impl Node {
    pub(crate) fn apply_entry(&mut self, entry: Entry) {
        if entry.index <= self.applied_index {
            // Already in the state (a snapshot covered it).
            return;
        }
        self.applied_bytes_since_snapshot += entry.data.len() as u64;
        if entry.r#type() != EntryType::EntryNormal {
            // Raft compacts only up to the last applied conf change.
            self.finish_snapshot();
        }
        match entry.r#type() {
            EntryType::EntryNormal if entry.data.is_empty() => {}
            EntryType::EntryNormal => match RaftRequest::decode(entry.data.as_slice()) {
                Ok(request) if !self.applied_requests.insert(request.id, entry.index) => {
                    // The same request appended twice (a duplicated forward): it
                    // was applied, and its waiter answered, the first time.
                }
                Ok(request) => {
                    let id = request.id;
                    let result = self.apply_request(request, entry.index);
                    match (result, self.proposals.remove(&id)) {
                        (Some(result), Some(p)) => self.answer(p.origin, result),
                        // Answered once its entry applied (a keepalive's checkpoint);
                        // nobody waits for the member's other own requests.
                        (None, Some(p)) => {
                            if let Some(reply) = p.reply {
                                self.answer(p.origin, Ok(reply));
                            }
                        }
                        (_, None) => {}
                    }
                }
                Err(e) => panic!(
                    "member {:x}: committed entry {} does not decode: {e}",
                    self.config.member_id, entry.index
                ),
            },
            EntryType::EntryConfChange => {
                let cc = ConfChange::decode(entry.data.as_slice()).expect("committed conf change decodes");
                self.apply_conf_change(&v1_to_v2(&cc));
            }
            EntryType::EntryConfChangeV2 => {
                let cc = ConfChangeV2::decode(entry.data.as_slice()).expect("committed conf change decodes");
                self.apply_conf_change(&cc);
            }
        }
        self.applied_index = entry.index;
        self.applied_term = entry.term;
    }

    fn nospace_active(&self) -> bool {
        self.alarms.iter().any(|&(_, a)| a == AlarmType::Nospace as i32)
    }

    /// etcd's `applierV3Corrupt`: while a CORRUPT alarm is active every replicated
    /// KV and lease request fails with `etcdserver: corrupt cluster` (reads outside
    /// raft are still served, as etcd's are); alarms, auth and membership go on.
    fn refused_as_corrupt(&self, request: &raft_request::Request) -> bool {
        use raft_request::Request as R;
        matches!(
            request,
            R::Put(_)
                | R::DeleteRange(_)
                | R::Txn(_)
                | R::Compaction(_)
                | R::LeaseGrant(_)
                | R::LeaseRevoke(_)
        ) && self.alarms.iter().any(|&(_, a)| a == AlarmType::Corrupt as i32)
    }

    /// Applies one replicated request (the entry at `index`) if its sender may.
    /// `None` for the member's own bookkeeping requests that nobody waits for.
    fn apply_request(&mut self, request: RaftRequest, index: u64) -> Option<Result<Response, EtcdError>> {
        let rev = self.store.revision();
        let request_id = request.id;
        let header = request.auth_header;
        let request = request.request?;
        if let Err(e) = self.check_applied(header.as_ref(), &request) {
            return Some(Err(e));
        }
        if self.refused_as_corrupt(&request) {
            return Some(Err(error::CORRUPT));
        }
        let result = match request {
            raft_request::Request::Auth(a) => self.apply_auth(a.request?, index),
            raft_request::Request::Put(mut p) => {
                if self.nospace_active() {
                    return Some(Err(error::NO_SPACE));
                }
                if is_active(Mutation::CorruptAppliedPut)
                    && self.members.keys().next_back() == Some(&self.config.member_id)
                    && self.members.len() > 1
                {
                    // The planted bug: this one member stores another value than
                    // the entry says (a silent divergence of its key space).
                    p.value.push(b'!');
                }
                let lessor = &self.lessor;
                let put = MvccCounts {
                    puts: 1,
                    put_bytes: (p.key.len() + p.value.len()) as u64,
                    ..MvccCounts::default()
                };
                self.store.put(&p, &|id| lessor.contains(id)).map(|applied| {
                    self.count_mvcc(&put);
                    self.after_write(&applied.events);
                    let mut r = applied.response;
                    r.header = self.header(r.header.map_or(0, |h| h.revision));
                    Response::Put(r)
                })
            }
            raft_request::Request::DeleteRange(d) => self.store.delete_range(&d).map(|applied| {
                self.count_mvcc(&MvccCounts {
                    deletes: 1,
                    ..MvccCounts::default()
                });
                self.after_write(&applied.events);
                let mut r = applied.response;
                r.header = self.header(r.header.map_or(0, |h| h.revision));
                Response::DeleteRange(r)
            }),
            raft_request::Request::Txn(t) => {
                if self.nospace_active() && !txn_is_read_only(&t) {
                    return Some(Err(error::NO_SPACE));
                }
                let lessor = &self.lessor;
                self.store.txn(&t, &|id| lessor.contains(id)).map(|applied| {
                    self.count_mvcc(&MvccCounts::of_txn(&t, &applied.response));
                    self.after_write(&applied.events);
                    let mut r = applied.response;
                    r.header = self.header(r.header.map_or(0, |h| h.revision));
                    Response::Txn(r)
                })
            }
            raft_request::Request::Compaction(c) => {
                // The snapshot in progress still reads records this removes.
                self.finish_snapshot();
                self.store.compact_counted(&c).map(|(mut r, removed)| {
                    self.count_compaction(removed);
                    self.db_size_bytes = self.measure_db_size();
                    r.header = self.header(r.header.map_or(0, |h| h.revision));
                    Response::Compact(r)
                })
            }
            raft_request::Request::LeaseGrant(g) => {
                if self.nospace_active() {
                    return Some(Err(error::NO_SPACE));
                }
                self.lessor.grant(g.id, g.ttl, self.now_ms).map(|granted| {
                    self.db_size_bytes += RECORD_OVERHEAD_BYTES;
                    Response::LeaseGrant(LeaseGrantResponse {
                        header: self.header(rev),
                        id: granted.id,
                        ttl: granted.ttl_s,
                        error: String::new(),
                    })
                })
            }
            raft_request::Request::LeaseRevoke(r) => {
                let revoked = self.lessor.revoke(r.id);
                self.count_revoke(r.id, revoked.is_ok());
                revoked.map(|keys| {
                    let mut revision = rev;
                    // (Planted bug: the lease goes, its keys stay.)
                    if !keys.is_empty() && !is_active(Mutation::LeaseRevokeKeepsKeys) {
                        // etcd's lessor deletes the keys one by one in one write txn.
                        let deletes = MvccCounts {
                            deletes: keys.len() as u64,
                            ..MvccCounts::default()
                        };
                        self.count_mvcc(&deletes.as_one_txn());
                        let (after, events) = self.store.delete_keys(&keys);
                        revision = after;
                        self.after_write(&events);
                    }
                    Response::LeaseRevoke(LeaseRevokeResponse {
                        header: self.header(revision),
                    })
                })
            }
            raft_request::Request::LeaseCheckpoint(c) => {
                for cp in c.checkpoints {
                    self.lessor.apply_checkpoint(crate::lease::Checkpoint {
                        id: cp.id,
                        remaining_ttl_s: cp.remaining_ttl,
                    });
                }
                return None;
            }
            raft_request::Request::Alarm(a) => Ok(Response::Alarm(self.apply_alarm(&a))),
            raft_request::Request::V2(r) => Ok(self.apply_v2(r)),
            raft_request::Request::MemberAttributes(a) => {
                if self.publish_ids.contains(&request_id) {
                    self.published = true;
                }
                if let Some(m) = self.members.get_mut(&a.member_id) {
                    m.name = a.name;
                    m.client_ur_ls = a.client_urls;
                    self.record_cluster_v2(Record::MemberPublished(a.member_id));
                }
                return None;
            }
            raft_request::Request::ClusterVersion(v) => {
                self.apply_cluster_version(&v.version);
                return None;
            }
        };
        Some(result)
    }

    fn apply_alarm(&mut self, a: &detcd_proto::etcdserverpb::AlarmRequest) -> AlarmResponse {
        let member = |(member_id, alarm): (u64, i32)| AlarmMember { member_id, alarm };
        let alarms = match a.action() {
            AlarmAction::Get => self
                .alarms
                .iter()
                .filter(|(_, alarm)| a.alarm == AlarmType::None as i32 || *alarm == a.alarm)
                .map(|&x| member(x))
                .collect(),
            AlarmAction::Activate if a.alarm != AlarmType::None as i32 => {
                self.alarms.insert((a.member_id, a.alarm));
                vec![member((a.member_id, a.alarm))]
            }
            AlarmAction::Deactivate if self.alarms.remove(&(a.member_id, a.alarm)) => {
                vec![member((a.member_id, a.alarm))]
            }
            _ => Vec::new(),
        };
        AlarmResponse {
            header: self.header(self.store.revision()),
            alarms,
        }
    }

    /// After a store write: keep key-lease attachments, the size estimate and the
    /// watchers up to date.
    fn after_write(&mut self, events: &[Event]) {
        for e in events {
            let Some(kv) = &e.kv else { continue };
            let prev_lease = e.prev_kv.as_ref().map_or(0, |p| p.lease);
            let new_lease = if e.r#type() == EventType::Put { kv.lease } else { 0 };
            if prev_lease != 0 && prev_lease != new_lease {
                // The lease may be gone already (a revoke deletes its keys after it).
                let _ = self.lessor.detach(prev_lease, &kv.key);
            }
            if new_lease != 0 {
                self.lessor
                    .attach(new_lease, &kv.key)
                    .expect("the store checked the lease exists");
            }
            self.db_size_bytes += kv.key.len() as u64 + kv.value.len() as u64 + RECORD_OVERHEAD_BYTES;
        }
        self.hub.on_events(events);
    }

    /// The approximate backend size: every kept record's key, value and overhead.
    pub(crate) fn measure_db_size(&self) -> u64 {
        let records: u64 = self
            .store
            .records
            .values()
            .map(|r| r.key.len() as u64 + r.value.len() as u64 + RECORD_OVERHEAD_BYTES)
            .sum();
        records + self.lessor.leases().len() as u64 * RECORD_OVERHEAD_BYTES
    }

    /// etcd's `ValidateConfigurationChange` then `applyConfChange`: an invalid change
    /// is skipped on every member alike and its proposer gets the error.
    fn apply_conf_change(&mut self, cc: &ConfChangeV2) {
        let ctx = ConfChangeContext::decode(cc.context.as_slice()).unwrap_or_default();
        let Some(member) = ctx.member.clone() else {
            // Not ours (an empty leave-joint change): raft still applies it.
            let _ = self.raft.apply_conf_change(cc);
            return;
        };
        let kind = cc
            .changes
            .first()
            .map_or(ConfChangeType::ConfChangeUpdateNode, |c| c.r#type());
        let waiter = self.proposals.remove(&ctx.request_id);
        let result = self.validate_member_change(kind, &member);
        if let Err(e) = result {
            if let Some(p) = waiter {
                self.answer(p.origin, Err(e));
            }
            return;
        }
        if kind != ConfChangeType::ConfChangeUpdateNode {
            if let Err(e) = self.raft.apply_conf_change(cc) {
                panic!(
                    "member {:x}: committed conf change refused by raft: {e}",
                    self.config.member_id
                );
            }
        }
        let promote = kind == ConfChangeType::ConfChangeAddNode
            && self.members.get(&member.id).is_some_and(|m| m.is_learner);
        match kind {
            ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode => {
                let entry = self.members.entry(member.id).or_insert_with(|| member.clone());
                entry.is_learner = member.is_learner;
                self.record_cluster_v2(if promote {
                    Record::MemberUpdated(member.id)
                } else {
                    Record::MemberAdded(member.id)
                });
            }
            ConfChangeType::ConfChangeRemoveNode => {
                self.members.remove(&member.id);
                self.removed_members.insert(member.id);
                self.record_cluster_v2(Record::MemberRemoved(member.id));
            }
            ConfChangeType::ConfChangeUpdateNode => {
                if let Some(m) = self.members.get_mut(&member.id) {
                    m.peer_ur_ls = member.peer_ur_ls.clone();
                }
                self.record_cluster_v2(Record::MemberUpdated(member.id));
            }
        }
        let header = self.header(0);
        let members: Vec<Member> = self.members.values().cloned().collect();
        let response = match kind {
            _ if promote => Response::MemberPromote(MemberPromoteResponse { header, members }),
            ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode => {
                Response::MemberAdd(MemberAddResponse {
                    header,
                    member: Some(member.clone()),
                    members,
                })
            }
            ConfChangeType::ConfChangeRemoveNode => {
                Response::MemberRemove(MemberRemoveResponse { header, members })
            }
            ConfChangeType::ConfChangeUpdateNode => {
                Response::MemberUpdate(MemberUpdateResponse { header, members })
            }
        };
        if let Some(p) = waiter {
            self.answer(p.origin, Ok(response));
        }
        if kind == ConfChangeType::ConfChangeRemoveNode && member.id == self.config.member_id {
            self.stop_removed();
        }
    }

    fn validate_member_change(&self, kind: ConfChangeType, member: &Member) -> Result<(), EtcdError> {
        let url_taken = |m: &Member| {
            self.members
                .values()
                .any(|o| o.id != m.id && o.peer_ur_ls.iter().any(|u| m.peer_ur_ls.contains(u)))
        };
        match kind {
            ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode => {
                if self.removed_members.contains(&member.id) {
                    return Err(error::MEMBER_EXISTS);
                }
                if let Some(existing) = self.members.get(&member.id) {
                    // Promotion: AddNode of an existing learner.
                    if kind == ConfChangeType::ConfChangeAddNode && existing.is_learner {
                        return Ok(());
                    }
                    return Err(error::MEMBER_EXISTS);
                }
                if url_taken(member) {
                    return Err(error::PEER_URL_EXISTS);
                }
                let learners = self.members.values().filter(|m| m.is_learner).count();
                if kind == ConfChangeType::ConfChangeAddLearnerNode && learners >= self.config.learners_max {
                    return Err(error::TOO_MANY_LEARNERS);
                }
                Ok(())
            }
            ConfChangeType::ConfChangeRemoveNode => {
                if self.members.contains_key(&member.id) {
                    Ok(())
                } else {
                    Err(error::MEMBER_NOT_FOUND)
                }
            }
            ConfChangeType::ConfChangeUpdateNode => {
                if !self.members.contains_key(&member.id) {
                    return Err(error::MEMBER_NOT_FOUND);
                }
                if url_taken(member) {
                    return Err(error::PEER_URL_EXISTS);
                }
                Ok(())
            }
        }
    }

    /// This member applied its own removal: every waiter gets STOPPED, and the
    /// driver is told to stop once the rest had time to learn that the removal
    /// committed (see [`REMOVED_STOP_DELAY_MS_MIN`]).
    fn stop_removed(&mut self) {
        let delay_ms = self.config.removed_stop_delay_ms();
        self.stop_at_ms.get_or_insert(self.now_ms + delay_ms);
        let proposals = std::mem::take(&mut self.proposals);
        for p in proposals.into_values() {
            self.answer(p.origin, Err(error::STOPPED));
        }
        let forwards = std::mem::take(&mut self.forwards);
        for f in forwards.into_values() {
            self.respond(f.client, Err(error::STOPPED));
        }
        for id in self.reads.expire(u64::MAX) {
            self.respond(id, Err(error::STOPPED));
        }
        if let Some(m) = self.move_leader.take() {
            self.respond(m.client, Err(error::STOPPED));
        }
        if self.lessor.is_primary() {
            self.lessor.demote();
        }
    }

    /// The end of [`Node::stop_removed`]'s delay: the member stops.
    pub(super) fn stop(&mut self) {
        self.removed = true;
        self.outputs.push_back(Output::Removed);
    }
}
