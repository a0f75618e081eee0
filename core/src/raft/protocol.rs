//! The Raft protocol itself: roles, terms, elections (with PreVote and
//! CheckQuorum), replication and commitment, ReadIndex, leadership transfer,
//! snapshots and membership changes.
//!
//! `Raft` consumes inputs and queues outputs (`msgs`, `read_states`) and mutates
//! its log; it never decides when anything is durable. `RawNode` (in `mod.rs`)
//! wraps it with the Ready/advance contract that tells it.
//!
//! The structure follows etcd's `raft.go` so that a reader who knows etcd finds
//! each rule where they expect it; deviations are commented where they occur.

use std::collections::BTreeMap;

use detcd_proto::raftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot,
};
use prost::Message as _;

use crate::mutation::{is_active, Mutation};
use crate::rng::Rng;

use super::conf_change::{classify, v1_to_v2, Changer, ConfChangeKind};
use super::config::Config;
use super::errors::{ConfChangeError, ProposeError, StepError};
use super::log::{payload_bytes, RaftLog};
use super::progress::{Progress, ProgressState};
use super::quorum::VoteResult;
use super::read_only::{ReadOnly, ReadState};
use super::status::{ProgressStatus, Role, SoftState, Status};
use super::tracker::{ProgressTracker, TrackerConfig};

/// The vote context that marks a campaign started by leadership transfer: voters
/// grant it even inside their leader lease, because the old leader asked for it.
pub const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// Which kind of campaign to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CampaignKind {
    PreElection,
    Election,
    Transfer,
}

/// See the module docs.
#[derive(Debug)]
pub struct Raft {
    pub id: u64,
    pub term: u64,
    pub vote: u64,
    pub lead: u64,
    pub role: Role,
    pub log: RaftLog,
    pub trk: ProgressTracker,
    pub cfg: Config,
    rng: Rng,
    /// Messages to send once the Ready that carries them is durable.
    pub msgs: Vec<Message>,
    /// Completed reads, surfaced in the next Ready.
    pub read_states: Vec<ReadState>,
    read_only: ReadOnly,
    /// Reads that arrived before the leader committed an entry of its own term:
    /// until then its commit index may lag what earlier leaders committed.
    pending_read_index: Vec<Message>,
    election_elapsed: u64,
    heartbeat_elapsed: u64,
    randomized_election_timeout: u64,
    pub lead_transferee: u64,
    /// Index of the latest conf change in the log; a new one waits until the
    /// applied index passes it.
    pub pending_conf_index: u64,
    uncommitted_bytes: u64,
}

impl Raft {
    /// A follower at `term` with `vote`, the given log and configuration.
    pub fn new(
        cfg: Config,
        log: RaftLog,
        term: u64,
        vote: u64,
        conf: &ConfState,
    ) -> Result<Raft, ConfChangeError> {
        let changer = Changer {
            last_index: log.last_index(),
            inflight_msgs_max: cfg.inflight_msgs_max,
            inflight_bytes_max: cfg.inflight_bytes_max,
        };
        let (config, progress) = changer.restore(conf)?;
        let mut raft = Raft {
            id: cfg.id,
            term,
            vote,
            lead: 0,
            role: Role::Follower,
            log,
            trk: ProgressTracker {
                config,
                progress,
                votes: BTreeMap::new(),
            },
            rng: Rng::new(cfg.seed),
            cfg,
            msgs: Vec::new(),
            read_states: Vec::new(),
            read_only: ReadOnly::default(),
            pending_read_index: Vec::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: 0,
            lead_transferee: 0,
            pending_conf_index: 0,
            uncommitted_bytes: 0,
        };
        raft.become_follower(term, 0);
        Ok(raft)
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    pub fn soft_state(&self) -> SoftState {
        SoftState {
            leader: self.lead,
            role: self.role,
        }
    }

    pub fn status(&self) -> Status {
        let progress = if self.role == Role::Leader {
            self.trk
                .progress
                .iter()
                .map(|(&id, p)| {
                    let s = ProgressStatus {
                        matched: p.matched,
                        next: p.next,
                        state: p.state,
                        is_learner: p.is_learner,
                        recent_active: p.recent_active,
                        inflight_msgs: p.inflights.count(),
                    };
                    (id, s)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        Status {
            id: self.id,
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
            applied: self.log.applied,
            leader: self.lead,
            role: self.role,
            lead_transferee: self.lead_transferee,
            progress,
            conf_state: self.trk.config.to_conf_state(),
        }
    }

    // ----- role transitions -------------------------------------------------------

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = 0;
        }
        self.lead = 0;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_election_timeout =
            self.cfg.election_ticks + self.rng.range(0, self.cfg.election_ticks);
        self.lead_transferee = 0;
        self.trk.reset_votes();
        let next = self.log.last_index() + 1;
        let (msgs_max, bytes_max) = (self.cfg.inflight_msgs_max, self.cfg.inflight_bytes_max);
        let persisted = self.log.persisted;
        for (&id, pr) in self.trk.progress.iter_mut() {
            let mut fresh = Progress::new(next, msgs_max, bytes_max, pr.is_learner);
            fresh.recent_active = false;
            if id == self.id {
                // Only the durable part of our own log counts toward commit.
                fresh.matched = persisted;
                fresh.recent_active = true;
            }
            *pr = fresh;
        }
        self.pending_conf_index = 0;
        self.uncommitted_bytes = 0;
        self.read_only = ReadOnly::default();
        self.pending_read_index.clear();
    }

    pub fn become_follower(&mut self, term: u64, lead: u64) {
        self.reset(term);
        self.lead = lead;
        self.role = Role::Follower;
    }

    fn become_pre_candidate(&mut self) {
        assert_ne!(self.role, Role::Leader, "leader cannot become pre-candidate");
        // A PreVote round changes neither term nor vote: losing it must leave no trace.
        self.trk.reset_votes();
        self.lead = 0;
        self.role = Role::PreCandidate;
    }

    fn become_candidate(&mut self) {
        assert_ne!(self.role, Role::Leader, "leader cannot become candidate");
        self.reset(self.term + 1);
        self.vote = self.id;
        self.role = Role::Candidate;
    }

    fn become_leader(&mut self) {
        assert_ne!(
            self.role,
            Role::Follower,
            "follower cannot become leader without an election"
        );
        self.reset(self.term);
        self.lead = self.id;
        self.role = Role::Leader;
        if let Some(pr) = self.trk.progress.get_mut(&self.id) {
            pr.become_replicate();
            pr.recent_active = true;
        }
        // Conf changes in the uncommitted tail may exist; be conservative and treat
        // everything up to the last index as possibly pending.
        self.pending_conf_index = self.log.last_index();
        // The empty entry of the new term lets the leader commit (and so learn the
        // commit index of) everything before it (Raft 5.4.2, 8).
        let appended = self.append_entries(vec![Entry::default()]);
        assert!(appended, "empty entry refused by the uncommitted limit");
    }

    fn promotable(&self) -> bool {
        self.trk.progress.get(&self.id).is_some_and(|p| !p.is_learner)
            && self.log.unhanded_snapshot().is_none()
    }

    // ----- ticks --------------------------------------------------------------------

    pub fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_heartbeat();
        } else {
            self.tick_election();
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.hup(if self.cfg.pre_vote {
                CampaignKind::PreElection
            } else {
                CampaignKind::Election
            });
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                self.check_quorum();
            }
            // A transfer that did not finish within an election timeout failed
            // (the target is down or too slow); accept proposals again.
            if self.role == Role::Leader && self.lead_transferee != 0 {
                let failed = std::mem::take(&mut self.lead_transferee);
                // A removed leader tries the next voter: it cannot take
                // proposals, so while it leads nobody can write.
                self.hand_over_if_removed(failed);
            }
        }
        if self.role != Role::Leader {
            return;
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    fn check_quorum(&mut self) {
        if !self.trk.quorum_active(self.id) {
            self.become_follower(self.term, 0);
            return;
        }
        let me = self.id;
        for (&id, pr) in self.trk.progress.iter_mut() {
            if id != me {
                pr.recent_active = false;
            }
        }
    }

    // ----- elections ----------------------------------------------------------------

    /// Starts a campaign unless this node is leader, cannot lead, or has committed
    /// conf changes it has not applied yet (it could be campaigning under the
    /// wrong configuration).
    pub fn hup(&mut self, kind: CampaignKind) {
        if self.role == Role::Leader || !self.promotable() {
            return;
        }
        if self.has_unapplied_conf_changes() {
            return;
        }
        self.campaign(kind);
    }

    fn has_unapplied_conf_changes(&self) -> bool {
        ((self.log.applied + 1)..=self.log.committed).any(|i| {
            self.log
                .entry(i)
                .is_some_and(|e| e.r#type() != EntryType::EntryNormal)
        })
    }

    fn campaign(&mut self, kind: CampaignKind) {
        let (vote_type, term) = if kind == CampaignKind::PreElection {
            self.become_pre_candidate();
            // PreVote asks about the term it would campaign in, without entering it.
            (MessageType::MsgPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::MsgVote, self.term)
        };
        // Our own vote counts at once: the Ready that carries the vote (in the hard
        // state) is durable before any vote request leaves, so nobody can observe
        // the election before the vote is persisted.
        match self.poll(self.id, true) {
            VoteResult::Won => {
                if kind == CampaignKind::PreElection {
                    self.campaign(CampaignKind::Election);
                } else {
                    self.become_leader();
                    self.bcast_append();
                }
                return;
            }
            VoteResult::Lost | VoteResult::Pending => {}
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let context = if kind == CampaignKind::Transfer {
            CAMPAIGN_TRANSFER.to_vec()
        } else {
            Vec::new()
        };
        for id in self.trk.config.voters.ids() {
            if id == self.id {
                continue;
            }
            let mut m = Message {
                to: id,
                term,
                index: last_index,
                log_term: last_term,
                context: context.clone(),
                ..Default::default()
            };
            m.set_type(vote_type);
            self.send(m);
        }
    }

    fn poll(&mut self, id: u64, granted: bool) -> VoteResult {
        self.trk.record_vote(id, granted);
        self.trk.tally()
    }

    // ----- the step function ---------------------------------------------------------

    /// Handles one message. Local-only types must not come from the network; the
    /// public wrapper checks that.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        let t = m.r#type();
        if m.term == 0 {
            // Local message (or a forwarded proposal / read, which carry no term).
        } else if m.term > self.term {
            if matches!(t, MessageType::MsgVote | MessageType::MsgPreVote) {
                let force = m.context.as_slice() == CAMPAIGN_TRANSFER;
                let in_lease = self.cfg.check_quorum
                    && self.lead != 0
                    && self.election_elapsed < self.cfg.election_ticks;
                if !force && in_lease {
                    // We heard from a live leader within the election timeout: a
                    // node asking for votes now is partitioned or rejoining, and
                    // must not depose it (Raft thesis 4.2.3).
                    return Ok(());
                }
            }
            match t {
                // A PreVote does not move our term: the candidate has not entered it.
                MessageType::MsgPreVote => {}
                // A granted PreVote carries the future term; we are not there yet.
                MessageType::MsgPreVoteResp if !m.reject => {}
                MessageType::MsgApp | MessageType::MsgHeartbeat | MessageType::MsgSnap => {
                    self.become_follower(m.term, m.from);
                }
                _ => self.become_follower(m.term, 0),
            }
        } else if m.term < self.term {
            let stale_append = t == MessageType::MsgApp && self.role == Role::Follower;
            if stale_append && is_active(Mutation::AcceptStaleTermAppend) {
                // Planted bug: the term check forgot appends; a deposed leader's
                // entries are taken as if it still led.
                self.lead = m.from;
                self.handle_append(m);
                return Ok(());
            }
            if (self.cfg.check_quorum || self.cfg.pre_vote)
                && matches!(t, MessageType::MsgHeartbeat | MessageType::MsgApp)
            {
                // A stale leader (e.g. after a partition heals) would otherwise never
                // learn our term: with CheckQuorum or PreVote our votes cannot raise
                // its term for it. The response carries our term and deposes it.
                self.send(msg(MessageType::MsgAppResp, m.from));
            } else if t == MessageType::MsgPreVote {
                let mut resp = msg(MessageType::MsgPreVoteResp, m.from);
                resp.term = self.term;
                resp.reject = true;
                self.send(resp);
            }
            return Ok(());
        }

        match t {
            MessageType::MsgHup => {
                self.hup(if self.cfg.pre_vote {
                    CampaignKind::PreElection
                } else {
                    CampaignKind::Election
                });
                Ok(())
            }
            MessageType::MsgVote | MessageType::MsgPreVote => {
                self.handle_vote_request(m);
                Ok(())
            }
            _ => match self.role {
                Role::Leader => self.step_leader(m),
                Role::Candidate | Role::PreCandidate => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            },
        }
    }

    fn handle_vote_request(&mut self, m: Message) {
        let pre = m.r#type() == MessageType::MsgPreVote;
        let resp_type = if pre {
            MessageType::MsgPreVoteResp
        } else {
            MessageType::MsgVoteResp
        };
        let can_vote =
            self.vote == m.from || (self.vote == 0 && self.lead == 0) || (pre && m.term > self.term);
        // Planted bug: the election restriction forgotten.
        let up_to_date = self.log.is_up_to_date(m.index, m.log_term) || is_active(Mutation::VoteIgnoresLog);
        if can_vote && up_to_date {
            let mut resp = msg(resp_type, m.from);
            // Granting answers in the candidate's term, so it counts the grant even
            // though (for PreVote) we never entered that term.
            resp.term = m.term;
            self.send(resp);
            if !pre {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            let mut resp = msg(resp_type, m.from);
            resp.term = self.term;
            resp.reject = true;
            self.send(resp);
        }
    }

    fn step_leader(&mut self, m: Message) -> Result<(), StepError> {
        match m.r#type() {
            MessageType::MsgProp => return self.propose(m.entries).map_err(StepError::Proposal),
            MessageType::MsgReadIndex => {
                self.leader_read_index(m);
                return Ok(());
            }
            _ => {}
        }
        if !self.trk.progress.contains_key(&m.from) {
            return Err(StepError::UnknownPeer(m.from));
        }
        match m.r#type() {
            MessageType::MsgAppResp => self.handle_append_response(&m),
            MessageType::MsgHeartbeatResp => self.handle_heartbeat_response(&m),
            MessageType::MsgSnapStatus => {
                let pr = self.trk.progress.get_mut(&m.from).expect("checked above");
                if pr.state == ProgressState::Snapshot {
                    if m.reject {
                        pr.pending_snapshot = 0;
                    }
                    pr.become_probe();
                    // Wait for the follower's answer (success) or the next heartbeat
                    // (failure) before probing, instead of flooding it at once.
                    pr.msg_app_flow_paused = true;
                }
            }
            MessageType::MsgUnreachable => {
                let pr = self.trk.progress.get_mut(&m.from).expect("checked above");
                // Pipelined appends were probably lost; probe again.
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
            }
            MessageType::MsgTransferLeader => self.handle_transfer_leader(m.from),
            _ => {}
        }
        Ok(())
    }

    fn step_candidate(&mut self, m: Message) -> Result<(), StepError> {
        let resp_type = if self.role == Role::PreCandidate {
            MessageType::MsgPreVoteResp
        } else {
            MessageType::MsgVoteResp
        };
        match m.r#type() {
            MessageType::MsgProp => return Err(StepError::Proposal(ProposeError::NoLeader)),
            MessageType::MsgApp => {
                self.become_follower(m.term, m.from);
                self.handle_append(m);
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnap => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            t if t == resp_type => match self.poll(m.from, !m.reject) {
                VoteResult::Won => {
                    if self.role == Role::PreCandidate {
                        self.campaign(CampaignKind::Election);
                    } else {
                        self.become_leader();
                        self.bcast_append();
                    }
                }
                VoteResult::Lost => self.become_follower(self.term, 0),
                VoteResult::Pending => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn step_follower(&mut self, mut m: Message) -> Result<(), StepError> {
        match m.r#type() {
            MessageType::MsgProp => {
                if self.lead == 0 {
                    return Err(StepError::Proposal(ProposeError::NoLeader));
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgApp => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append(m);
            }
            MessageType::MsgHeartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnap => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
            }
            MessageType::MsgTransferLeader if self.lead != 0 => {
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgTimeoutNow => self.hup(CampaignKind::Transfer),
            MessageType::MsgReadIndex => {
                if self.lead == 0 {
                    return Err(StepError::Proposal(ProposeError::NoLeader));
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgReadIndexResp => {
                if let [e] = m.entries.as_slice() {
                    self.read_states.push(ReadState {
                        index: m.index,
                        request_ctx: e.data.clone(),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ----- proposals ----------------------------------------------------------------

    /// Appends client entries on the leader (or forwards them, via `step`).
    fn propose(&mut self, mut entries: Vec<Entry>) -> Result<(), ProposeError> {
        if !self.trk.progress.contains_key(&self.id) {
            return Err(ProposeError::NotVoter);
        }
        if self.lead_transferee != 0 {
            return Err(ProposeError::TransferInProgress);
        }
        // Check every conf change before changing anything.
        let mut conf_offsets = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let cc = match e.r#type() {
                EntryType::EntryNormal => continue,
                EntryType::EntryConfChange => ConfChange::decode(e.data.as_slice()).map(|cc| v1_to_v2(&cc)),
                EntryType::EntryConfChangeV2 => ConfChangeV2::decode(e.data.as_slice()),
            }
            .map_err(|_| ProposeError::InvalidConfChange(ConfChangeError::Undecodable))?;
            if self.pending_conf_index > self.log.applied || !conf_offsets.is_empty() {
                return Err(ProposeError::PendingConfChange);
            }
            let joint = self.trk.config.voters.is_joint();
            let leave = classify(&cc) == ConfChangeKind::LeaveJoint;
            if joint && !leave {
                return Err(ProposeError::InvalidConfChange(ConfChangeError::AlreadyJoint));
            }
            if !joint && leave {
                return Err(ProposeError::InvalidConfChange(ConfChangeError::NotJoint));
            }
            // A committed change must be applicable: try it on a copy now.
            self.changer()
                .apply(&self.trk.config, &self.trk.progress, &cc)
                .map_err(ProposeError::InvalidConfChange)?;
            conf_offsets.push(i as u64);
        }
        let first = self.log.last_index() + 1;
        if !self.append_entries(std::mem::take(&mut entries)) {
            return Err(ProposeError::UncommittedSizeExceeded);
        }
        if let Some(&offset) = conf_offsets.last() {
            self.pending_conf_index = first + offset;
        }
        self.bcast_append();
        Ok(())
    }

    fn changer(&self) -> Changer {
        Changer {
            last_index: self.log.last_index(),
            inflight_msgs_max: self.cfg.inflight_msgs_max,
            inflight_bytes_max: self.cfg.inflight_bytes_max,
        }
    }

    fn append_entries(&mut self, mut entries: Vec<Entry>) -> bool {
        let bytes: u64 = entries.iter().map(payload_bytes).sum();
        let max = self.cfg.uncommitted_bytes_max;
        // A proposal is always accepted when nothing is uncommitted, so one entry
        // larger than the limit cannot wedge the leader forever.
        if max > 0 && self.uncommitted_bytes > 0 && bytes > 0 && self.uncommitted_bytes + bytes > max {
            return false;
        }
        self.uncommitted_bytes += bytes;
        let mut index = self.log.last_index();
        for mut e in entries.drain(..) {
            index += 1;
            e.term = self.term;
            e.index = index;
            self.log.push(e);
        }
        // Our own log counts toward commit only once the application reports it
        // durable (`on_persisted`), never here.
        true
    }

    /// Committed entries handed to the application leave the uncommitted budget.
    pub fn reduce_uncommitted(&mut self, bytes: u64) {
        self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(bytes);
    }

    /// The application reported entries up to `log.persisted` durable and applied up
    /// to `log.applied`.
    pub fn on_persisted(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let persisted = self.log.persisted;
        let updated = self
            .trk
            .progress
            .get_mut(&self.id)
            .is_some_and(|pr| pr.maybe_update(persisted));
        if updated && self.maybe_commit() {
            self.release_pending_read_index();
            self.bcast_append();
        }
        // Auto-leave: the joint configuration is applied, so propose leaving it
        // (an empty ConfChangeV2) without the application having to ask.
        if self.trk.config.auto_leave
            && self.log.applied >= self.pending_conf_index
            && self.role == Role::Leader
        {
            let mut e = Entry {
                data: ConfChangeV2::default().encode_to_vec(),
                ..Default::default()
            };
            e.set_type(EntryType::EntryConfChangeV2);
            if self.append_entries(vec![e]) {
                self.pending_conf_index = self.log.last_index();
                self.bcast_append();
            }
        }
    }

    // ----- replication ----------------------------------------------------------------

    fn maybe_commit(&mut self) -> bool {
        if is_active(Mutation::CommitWithoutQuorum) {
            // Planted bug: the leader's own log taken as committed, matches uncounted.
            let index = self.log.last_index();
            return self.log.maybe_commit(index, self.term);
        }
        let index = self.trk.committed();
        self.log.maybe_commit(index, self.term)
    }

    fn bcast_append(&mut self) {
        let ids: Vec<u64> = self
            .trk
            .progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect();
        for id in ids {
            self.maybe_send_append(id, true);
        }
    }

    fn send_append(&mut self, to: u64) {
        self.maybe_send_append(to, true);
    }

    /// Sends the next batch of entries to `to` if flow control allows; with
    /// `send_if_empty` also an empty append (to carry the commit index or probe).
    fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        let Some(pr) = self.trk.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let prev_index = pr.next - 1;
        let prev_term = self.log.term(prev_index);
        let entries = if pr.state != ProgressState::Replicate || !pr.inflights.full() {
            self.log
                .slice(pr.next, self.log.last_index(), self.cfg.append_bytes_max)
        } else {
            Some(Vec::new())
        };
        let (Some(prev_term), Some(entries)) = (prev_term, entries) else {
            // What the follower needs is compacted: only a snapshot can help.
            return self.maybe_send_snapshot(to);
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let bytes: u64 = entries.iter().map(payload_bytes).sum();
        let count = entries.len();
        let mut m = msg(MessageType::MsgApp, to);
        m.index = prev_index;
        m.log_term = prev_term;
        m.entries = entries;
        m.commit = self.log.committed;
        self.send(m);
        self.trk
            .progress
            .get_mut(&to)
            .expect("checked above")
            .sent_entries(count, bytes);
        true
    }

    fn maybe_send_snapshot(&mut self, to: u64) -> bool {
        let pr = self.trk.progress.get_mut(&to).expect("caller checked");
        // Sending a snapshot is expensive: only to a peer we recently heard from.
        if !pr.recent_active {
            return false;
        }
        let index = self.log.snapshot_index();
        assert!(index > 0, "entries missing but no snapshot to send");
        pr.become_snapshot(index);
        let mut m = msg(MessageType::MsgSnap, to);
        m.snapshot = Some(self.log.snapshot().clone());
        self.send(m);
        true
    }

    fn bcast_heartbeat(&mut self) {
        let ctx = self
            .read_only
            .last_pending_ctx()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        self.bcast_heartbeat_with_ctx(&ctx);
    }

    fn bcast_heartbeat_with_ctx(&mut self, ctx: &[u8]) {
        let ids: Vec<u64> = self
            .trk
            .progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect();
        for id in ids {
            let matched = self.trk.progress[&id].matched;
            let mut m = msg(MessageType::MsgHeartbeat, id);
            // Never tell a follower to commit beyond what it is known to hold.
            m.commit = matched.min(self.log.committed);
            m.context = ctx.to_vec();
            self.send(m);
        }
    }

    fn handle_append_response(&mut self, m: &Message) {
        let last_index = self.log.last_index();
        let first_index = self.log.first_index();
        let pr = self.trk.progress.get_mut(&m.from).expect("caller checked");
        pr.recent_active = true;
        if m.reject {
            // The follower's hint names its last entry whose term is at most the
            // term we probed with; skipping to the last of our entries with a term at
            // most the follower's term there jumps over a whole divergent term per
            // round trip (etcd's findConflictByTerm, both sides).
            let mut next_probe = m.reject_hint;
            if m.log_term > 0 {
                next_probe = self.log.find_conflict_by_term(m.reject_hint, m.log_term).0;
            }
            let pr = self.trk.progress.get_mut(&m.from).expect("caller checked");
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(m.from);
            }
            return;
        }
        let was_paused = pr.is_paused();
        if !(pr.maybe_update(m.index) || (pr.matched == m.index && pr.state == ProgressState::Probe)) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.matched + 1 >= first_index => {
                // The follower caught up past our snapshot (by our snapshot or
                // otherwise): resume normal replication from its match.
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Snapshot => {}
            ProgressState::Replicate => pr.inflights.free_le(m.index),
        }
        if self.maybe_commit() {
            self.release_pending_read_index();
            self.bcast_append();
        } else if was_paused {
            self.send_append(m.from);
        }
        // Fill the window while there is something to send.
        while self.maybe_send_append(m.from, false) {}
        let matched = self.trk.progress[&m.from].matched;
        if m.from == self.lead_transferee && matched == last_index {
            self.send(msg(MessageType::MsgTimeoutNow, m.from));
        }
    }

    fn handle_heartbeat_response(&mut self, m: &Message) {
        let last_index = self.log.last_index();
        let pr = self.trk.progress.get_mut(&m.from).expect("caller checked");
        pr.recent_active = true;
        pr.msg_app_flow_paused = false;
        if pr.matched < last_index || pr.state == ProgressState::Probe {
            self.send_append(m.from);
        }
        if m.context.is_empty() {
            return;
        }
        let Some(acks) = self.read_only.recv_ack(m.from, &m.context) else {
            return;
        };
        let votes: BTreeMap<u64, bool> = acks.iter().map(|&id| (id, true)).collect();
        if self.trk.config.voters.vote_result(&votes) != VoteResult::Won {
            return;
        }
        for status in self.read_only.advance(&m.context) {
            self.answer_read(status.req, status.index);
        }
    }

    fn handle_transfer_leader(&mut self, transferee: u64) {
        let (is_learner, matched) = {
            let pr = &self.trk.progress[&transferee];
            (pr.is_learner, pr.matched)
        };
        if is_learner {
            return;
        }
        if self.lead_transferee != 0 {
            if self.lead_transferee == transferee {
                return;
            }
            self.lead_transferee = 0;
        }
        if transferee == self.id {
            return;
        }
        // The transfer must finish within an election timeout (see tick_heartbeat).
        self.election_elapsed = 0;
        self.lead_transferee = transferee;
        if matched == self.log.last_index() {
            self.send(msg(MessageType::MsgTimeoutNow, transferee));
        } else {
            self.send_append(transferee);
        }
    }

    // ----- follower side ----------------------------------------------------------------

    fn handle_append(&mut self, m: Message) {
        if m.index < self.log.committed {
            let mut resp = msg(MessageType::MsgAppResp, m.from);
            resp.index = self.log.committed;
            self.send(resp);
            return;
        }
        let mut resp = msg(MessageType::MsgAppResp, m.from);
        match self.log.maybe_append(m.index, m.log_term, m.commit, m.entries) {
            Some(last) => resp.index = last,
            None => {
                // Tell the leader where our log might match: the last index at or
                // below its probe whose term is at most the probed term.
                let hint = m.index.min(self.log.last_index());
                let (hint_index, hint_term) = self.log.find_conflict_by_term(hint, m.log_term);
                resp.index = m.index;
                resp.reject = true;
                resp.reject_hint = hint_index;
                resp.log_term = hint_term;
            }
        }
        self.send(resp);
    }

    fn handle_heartbeat(&mut self, m: Message) {
        // The leader sends at most our match index; clamping only guards against a
        // misbehaving peer making us assert.
        self.log.commit_to(m.commit.min(self.log.last_index()));
        let mut resp = msg(MessageType::MsgHeartbeatResp, m.from);
        resp.context = m.context;
        self.send(resp);
    }

    fn handle_snapshot(&mut self, m: Message) {
        let snapshot = m.snapshot.unwrap_or_default();
        let mut resp = msg(MessageType::MsgAppResp, m.from);
        resp.index = if self.restore(snapshot) {
            self.log.last_index()
        } else {
            self.log.committed
        };
        self.send(resp);
    }

    /// Installs a leader's snapshot unless our log already covers it.
    fn restore(&mut self, snapshot: Snapshot) -> bool {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        if meta.index <= self.log.committed {
            return false;
        }
        if self.log.match_term(meta.index, meta.term) {
            // We hold the snapshot's last entry: fast-forward the commit instead of
            // throwing away a log that matches.
            self.log.commit_to(meta.index);
            return false;
        }
        let conf = meta.conf_state.unwrap_or_default();
        let Ok((config, progress)) = self.changer().restore(&conf) else {
            // A snapshot whose configuration is invalid comes from a broken peer.
            return false;
        };
        self.log.restore(snapshot);
        self.install_config(config, progress);
        true
    }

    // ----- membership ----------------------------------------------------------------

    /// Applies a committed conf change; returns the new configuration.
    pub fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState, ConfChangeError> {
        let (config, progress) = self.changer().apply(&self.trk.config, &self.trk.progress, cc)?;
        Ok(self.install_config(config, progress))
    }

    fn install_config(&mut self, config: TrackerConfig, progress: BTreeMap<u64, Progress>) -> ConfState {
        self.trk.config = config;
        self.trk.progress = progress;
        let cs = self.trk.config.to_conf_state();
        // A leader that applied its own removal keeps leading until its member
        // stops (etcd 3.4's raft: no StepDownOnRemoval). It takes no proposals
        // (not a voter) and counts for no quorum, but its appends and heartbeats
        // still tell the remaining voters that the removal committed, and hand
        // them the entries after it. Stepping down at once (as this did before)
        // could leave a two-voter configuration's survivor, which missed the
        // commit and has a shorter log, with no vote it can win: the removed
        // member refuses it for the log, and its own quorum needs that vote
        // (sweep seed 1912 at f110014).
        if self.role != Role::Leader || cs.voters.is_empty() {
            return cs;
        }
        // The quorum changed: something may now be committed, and new peers need
        // appends.
        if self.maybe_commit() {
            self.release_pending_read_index();
            self.bcast_append();
        } else {
            let ids: Vec<u64> = self
                .trk
                .progress
                .keys()
                .copied()
                .filter(|&id| id != self.id)
                .collect();
            for id in ids {
                self.maybe_send_append(id, false);
            }
        }
        if self.lead_transferee != 0 && !self.trk.config.voters.ids().contains(&self.lead_transferee) {
            self.lead_transferee = 0;
        }
        if self.lead_transferee == 0 {
            self.hand_over_if_removed(0);
        }
        cs
    }

    /// A leader that is not a voter (it applied its own removal) hands its lead
    /// to the most caught-up voter other than `skip` (raft's transfer, so that
    /// voter campaigns at once with every entry this leader has), rather than
    /// leave the others waiting for this member to stop. A transfer that fails
    /// within an election timeout is retried with the next voter.
    fn hand_over_if_removed(&mut self, skip: u64) {
        let voters = self.trk.config.voters.ids();
        if self.role != Role::Leader || voters.contains(&self.id) {
            return;
        }
        let best = self
            .trk
            .progress
            .iter()
            .filter(|(id, pr)| **id != skip && voters.contains(id) && !pr.is_learner)
            .max_by_key(|(id, pr)| (pr.matched, std::cmp::Reverse(**id)))
            .map(|(&id, _)| id)
            .or_else(|| voters.contains(&skip).then_some(skip));
        if let Some(to) = best {
            self.handle_transfer_leader(to);
        }
    }

    /// Folds the log up to `index` into a snapshot carrying `data`.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) {
        let cs = self.trk.config.to_conf_state();
        self.log.compact(index, cs, data);
    }

    // ----- reads ------------------------------------------------------------------------

    fn leader_read_index(&mut self, m: Message) {
        if m.entries.len() != 1 {
            return;
        }
        // Before its first commit in this term a leader's commit index may trail
        // what an earlier leader (or this member before a restart, when commit-only
        // hard states were not yet synced) acknowledged: hold the read until then.
        // This comes first even for a lone voter (the simulator found a stale read
        // after a single-member restart when it did not).
        if !self.committed_entry_in_current_term() && !is_active(Mutation::ReadIndexBeforeFirstCommit) {
            self.pending_read_index.push(m);
            return;
        }
        self.serve_read_index(m);
    }

    fn serve_read_index(&mut self, m: Message) {
        // Alone only as a voter: a leader that removed itself counts for nothing.
        let alone = self.trk.is_singleton() && self.trk.config.voters.ids().contains(&self.id);
        if alone || is_active(Mutation::ReadIndexWithoutQuorum) {
            // Nobody else can have committed anything: our commit index is current.
            // (Planted bug: also without being alone, skipping the quorum round.)
            let index = self.log.committed;
            self.answer_read(m, index);
            return;
        }
        self.start_read_round(m);
    }

    fn committed_entry_in_current_term(&self) -> bool {
        self.log.term(self.log.committed) == Some(self.term)
    }

    fn start_read_round(&mut self, m: Message) {
        let ctx = m.entries[0].data.clone();
        self.read_only.add_request(self.log.committed, m);
        self.read_only.recv_ack(self.id, &ctx);
        self.bcast_heartbeat_with_ctx(&ctx);
    }

    fn release_pending_read_index(&mut self) {
        if !self.committed_entry_in_current_term() && !is_active(Mutation::ReadIndexBeforeFirstCommit) {
            return;
        }
        for m in std::mem::take(&mut self.pending_read_index) {
            self.serve_read_index(m);
        }
    }

    fn answer_read(&mut self, req: Message, index: u64) {
        let ctx = req.entries.first().map(|e| e.data.clone()).unwrap_or_default();
        if req.from == 0 || req.from == self.id {
            self.read_states.push(ReadState {
                index,
                request_ctx: ctx,
            });
            return;
        }
        let mut resp = msg(MessageType::MsgReadIndexResp, req.from);
        resp.index = index;
        resp.entries = req.entries;
        self.send(resp);
    }

    // ----- output -----------------------------------------------------------------------

    /// Queues `m`, stamping sender and (except for votes, which name their own
    /// term, and forwarded proposals and reads, which travel without one) our term.
    fn send(&mut self, mut m: Message) {
        if m.from == 0 {
            m.from = self.id;
        }
        match m.r#type() {
            MessageType::MsgVote
            | MessageType::MsgVoteResp
            | MessageType::MsgPreVote
            | MessageType::MsgPreVoteResp => {
                assert_ne!(m.term, 0, "vote message without a term");
            }
            MessageType::MsgProp | MessageType::MsgReadIndex => {}
            _ => m.term = self.term,
        }
        self.msgs.push(m);
    }

    // ----- invariants -------------------------------------------------------------------

    /// Every invariant that must hold between inputs, as the first violation.
    pub fn invariant_violation(&self) -> Option<String> {
        if let Err(e) = self.log.check() {
            return Some(format!("log: {e}"));
        }
        if let Err(e) = self.trk.config.check() {
            return Some(format!("config: {e}"));
        }
        let members = self.trk.config.members();
        if members.iter().ne(self.trk.progress.keys()) {
            return Some(format!(
                "members {members:?} differ from progress {:?}",
                self.trk.progress.keys()
            ));
        }
        if self.log.last_term() > self.term {
            return Some(format!(
                "last log term {} above current term {}",
                self.log.last_term(),
                self.term
            ));
        }
        if (self.role == Role::Leader) != (self.lead == self.id) {
            return Some(format!("role {:?} but lead {}", self.role, self.lead));
        }
        if self.role == Role::Leader {
            if self.log.last_term() != self.term {
                return Some(format!(
                    "leader of term {} has last entry of term {}",
                    self.term,
                    self.log.last_term()
                ));
            }
            if self.vote != self.id {
                return Some(format!("leader of term {} voted for {}", self.term, self.vote));
            }
            for (id, pr) in &self.trk.progress {
                if pr.matched >= pr.next {
                    return Some(format!(
                        "progress of {id}: match {} >= next {}",
                        pr.matched, pr.next
                    ));
                }
                if pr.next > self.log.last_index() + 1 {
                    return Some(format!("progress of {id}: next {} beyond last+1", pr.next));
                }
            }
            if let Some(me) = self.trk.progress.get(&self.id) {
                if me.matched > self.log.persisted {
                    return Some(format!(
                        "own match {} beyond persisted {}",
                        me.matched, self.log.persisted
                    ));
                }
            }
        }
        None
    }
}

fn msg(t: MessageType, to: u64) -> Message {
    let mut m = Message {
        to,
        ..Default::default()
    };
    m.set_type(t);
    m
}
