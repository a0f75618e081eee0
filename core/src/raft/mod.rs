//! Raft consensus as a pure state machine, in the manner of etcd-io/raft's
//! `RawNode`: inputs go in through methods, outputs come out as numbered
//! [`Ready`]s, and nothing here does I/O, reads a clock or draws OS randomness.
//!
//! Modules, each owning one concept:
//! - [`protocol`]: the Raft rules (roles, elections, replication, reads, transfer).
//! - [`log`]: the in-memory log (snapshot metadata + entries) and its
//!   persistence/apply cursors.
//! - [`progress`]: one follower's replication state and inflight window.
//! - [`tracker`]: configuration + all progress + votes.
//! - [`quorum`]: majority and joint quorum arithmetic.
//! - [`conf_change`]: membership changes (simple and joint).
//! - [`read_only`]: ReadIndex bookkeeping.
//! - [`status`], [`errors`], [`config`], [`describe`].

pub mod conf_change;
pub mod config;
pub mod describe;
pub mod errors;
pub mod log;
pub mod progress;
pub mod protocol;
pub mod quorum;
pub mod read_only;
pub mod status;
pub mod tracker;

use std::collections::VecDeque;

use detcd_proto::raftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot,
    SnapshotMetadata,
};
use prost::Message as _;

pub use config::Config;
pub use errors::{
    CompactError, ConfChangeError, ConfigError, InitError, ProposeError, ReadIndexError, StepError,
};
pub use progress::ProgressState;
pub use read_only::ReadState;
pub use status::{ProgressStatus, Role, SoftState, Status};

use crate::mutation::{is_active, Mutation};
use log::{payload_bytes, RaftLog};
use protocol::{CampaignKind, Raft};

/// How a node starts.
#[derive(Clone, Debug)]
pub enum Start {
    /// A brand-new member. A non-empty `ConfState` founds a cluster: every founding
    /// member must be given the same one, and each starts from a snapshot at index 1,
    /// term 1 holding it (handed out in the first Ready to persist). An empty
    /// `ConfState` is a node joining an existing cluster: it waits, with an empty
    /// log, for the leader to send it the log or a snapshot. The same as
    /// `BootstrapAt(conf_state, 1)`.
    Bootstrap(ConfState),
    /// [`Start::Bootstrap`] with the founding snapshot at `index` (at least 1; term
    /// 1). etcd's members bootstrap their logs with one committed membership entry
    /// per founding member at indexes 1..N, term 1; a snapshot at N stands for those
    /// entries, so that the indexes after it are etcd's. Founding members must agree
    /// on the index as on the configuration.
    BootstrapAt(ConfState, u64),
    /// A member restarting from what it persisted.
    Recovered(RecoveredState),
}

/// The durable state of a member, as the application recovered it.
#[derive(Clone, Debug, Default)]
pub struct RecoveredState {
    pub hard_state: HardState,
    /// The latest snapshot (metadata; the data is kept to send to lagging followers).
    pub snapshot: Snapshot,
    /// Every persisted entry after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// The configuration as of `applied` (the snapshot's, plus every conf change the
    /// application applied since). Committed conf changes after `applied` are handed
    /// out again as committed entries and must be applied again.
    pub conf_state: ConfState,
    /// The application's applied index (at least the snapshot index).
    pub applied: u64,
}

/// Everything raft needs the application to do, in this order:
///
/// 1. Persist `snapshot` (if any), then `entries` (replacing any stored entries at
///    the same or later indexes), then `hard_state` (if any). When `must_sync` is
///    true these writes must be durable (fsync) before step 2.
/// 2. Send `messages`. **Persist before send:** a message may depend on this
///    Ready's writes (a vote reply on the vote, an append ack on the entries), so
///    none may leave before step 1 is durable.
/// 3. Install `snapshot` into the state machine, then apply `committed_entries` in
///    order (for conf change entries, call [`RawNode::apply_conf_change`]), and
///    serve `read_states` once applied reaches their index.
/// 4. Call [`RawNode::advance`] with `number`.
///
/// Readies are numbered from 1, strictly increasing. A driver may take further
/// readies before advancing (pipelining persistence); `advance(n)` acknowledges
/// every Ready numbered `<= n`. Raft counts its own entries toward commit only
/// once acknowledged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ready {
    pub number: u64,
    /// Leader and role, when changed since the previous Ready.
    pub soft_state: Option<SoftState>,
    /// Term, vote and commit, when changed since the previous Ready.
    pub hard_state: Option<HardState>,
    /// New entries to persist.
    pub entries: Vec<Entry>,
    /// A snapshot from the leader (or the bootstrap snapshot) to persist and install.
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply, all already handed out for persistence.
    pub committed_entries: Vec<Entry>,
    /// Messages to send after step 1.
    pub messages: Vec<Message>,
    /// Reads confirmed by a quorum.
    pub read_states: Vec<ReadState>,
    /// As etcd's `MustSync`: true iff there are new entries (or a snapshot), or
    /// the term or vote changed. A commit-only change needs no sync: a lost commit
    /// index is relearned from the leader.
    pub must_sync: bool,
}

/// What a handed-out Ready contained, remembered until it is acknowledged.
#[derive(Clone, Debug)]
struct Handed {
    number: u64,
    last_entry: Option<(u64, u64)>,
    snapshot: Option<(u64, u64)>,
    applying: u64,
    last_conf_index: Option<u64>,
}

/// A raft node driven from outside.
///
/// Inputs: [`tick`](Self::tick), [`step`](Self::step), [`campaign`](Self::campaign),
/// [`propose`](Self::propose), [`propose_conf_change`](Self::propose_conf_change),
/// [`read_index`](Self::read_index), [`transfer_leader`](Self::transfer_leader),
/// [`apply_conf_change`](Self::apply_conf_change), [`compact`](Self::compact),
/// [`report_unreachable`](Self::report_unreachable),
/// [`report_snapshot`](Self::report_snapshot), [`advance`](Self::advance).
/// Output: [`ready`](Self::ready) while [`has_ready`](Self::has_ready).
///
/// After any input the driver drains readies until `has_ready` is false (each
/// handled as [`Ready`] describes). The same config (seed included) and the same
/// input sequence produce the same readies, byte for byte.
#[derive(Debug)]
pub struct RawNode {
    raft: Raft,
    prev_soft: SoftState,
    prev_hard: HardState,
    next_number: u64,
    handed: VecDeque<Handed>,
    /// Index of the last conf change entry the application acknowledged applying.
    conf_applied_index: u64,
}

/// The starting log of a founding member (a snapshot of `cs` at `index`, term 1,
/// handed out to persist) or, with an empty `cs`, of a joining one (empty).
fn bootstrap(cs: ConfState, index: u64) -> (RaftLog, u64, u64, ConfState) {
    if cs.voters.is_empty() && cs.learners.is_empty() {
        return (
            RaftLog::recovered(Snapshot::default(), Vec::new(), 0, 0),
            0,
            0,
            cs,
        );
    }
    let snapshot = Snapshot {
        data: Vec::new(),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(cs.clone()),
            index,
            term: 1,
        }),
    };
    (RaftLog::bootstrap(snapshot), 1, 0, cs)
}

impl RawNode {
    /// Builds a node from a validated config and its starting state.
    pub fn new(config: Config, start: Start) -> Result<RawNode, InitError> {
        config.validate().map_err(InitError::Config)?;
        let (log, term, vote, conf) = match start {
            Start::Bootstrap(cs) => bootstrap(cs, 1),
            Start::BootstrapAt(cs, index) => bootstrap(cs, index.max(1)),
            Start::Recovered(state) => {
                let snap_index = state.snapshot.metadata.as_ref().map_or(0, |m| m.index);
                for (i, e) in state.entries.iter().enumerate() {
                    let expected = snap_index + 1 + i as u64;
                    if e.index != expected {
                        return Err(InitError::EntriesNotContiguous {
                            expected,
                            found: e.index,
                        });
                    }
                }
                let last_index = snap_index + state.entries.len() as u64;
                if state.hard_state.commit > last_index {
                    return Err(InitError::CommitOutOfRange {
                        commit: state.hard_state.commit,
                        last_index,
                    });
                }
                let applied = state.applied.min(state.hard_state.commit.max(snap_index));
                let log = RaftLog::recovered(state.snapshot, state.entries, state.hard_state.commit, applied);
                (
                    log,
                    state.hard_state.term,
                    state.hard_state.vote,
                    state.conf_state,
                )
            }
        };
        let bootstrapping = log.unhanded_snapshot().is_some();
        let raft = Raft::new(config, log, term, vote, &conf).map_err(InitError::ConfState)?;
        let prev_hard = if bootstrapping {
            HardState::default()
        } else {
            raft.hard_state()
        };
        let node = RawNode {
            prev_soft: raft.soft_state(),
            prev_hard,
            raft,
            next_number: 1,
            handed: VecDeque::new(),
            conf_applied_index: 0,
        };
        node.after_input();
        Ok(node)
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.raft.tick();
        self.after_input();
    }

    /// Starts an election now (with PreVote first when configured).
    pub fn campaign(&mut self) {
        let kind = if self.raft.cfg.pre_vote {
            CampaignKind::PreElection
        } else {
            CampaignKind::Election
        };
        self.raft.hup(kind);
        self.after_input();
    }

    /// Handles a message from a peer. Local-only types are refused.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        if matches!(
            m.r#type(),
            MessageType::MsgHup
                | MessageType::MsgBeat
                | MessageType::MsgCheckQuorum
                | MessageType::MsgUnreachable
                | MessageType::MsgSnapStatus
        ) {
            return Err(StepError::LocalMessageFromNetwork);
        }
        let result = self.raft.step(m);
        self.after_input();
        result
    }

    /// Proposes `data` as a normal entry (forwarded to the leader on followers).
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), ProposeError> {
        self.propose_entries(vec![Entry {
            data,
            ..Default::default()
        }])
    }

    /// Proposes several normal entries at once (one append, one broadcast).
    pub fn propose_batch(&mut self, batch: Vec<Vec<u8>>) -> Result<(), ProposeError> {
        let entries = batch
            .into_iter()
            .map(|data| Entry {
                data,
                ..Default::default()
            })
            .collect();
        self.propose_entries(entries)
    }

    /// Proposes a membership change (joint or simple, see `conf_change::classify`).
    pub fn propose_conf_change(&mut self, cc: ConfChangeV2) -> Result<(), ProposeError> {
        let mut e = Entry {
            data: cc.encode_to_vec(),
            ..Default::default()
        };
        e.set_type(EntryType::EntryConfChangeV2);
        self.propose_entries(vec![e])
    }

    /// Proposes a single-step membership change in etcd's v1 form.
    pub fn propose_conf_change_v1(&mut self, cc: ConfChange) -> Result<(), ProposeError> {
        let mut e = Entry {
            data: cc.encode_to_vec(),
            ..Default::default()
        };
        e.set_type(EntryType::EntryConfChange);
        self.propose_entries(vec![e])
    }

    fn propose_entries(&mut self, entries: Vec<Entry>) -> Result<(), ProposeError> {
        let mut m = Message {
            entries,
            ..Default::default()
        };
        m.set_type(MessageType::MsgProp);
        let result = self.raft.step(m).map_err(|e| match e {
            StepError::Proposal(p) => p,
            other => panic!("proposal failed with a non-proposal error: {other}"),
        });
        self.after_input();
        result
    }

    /// Requests a linearizable read point; the answer arrives as a [`ReadState`]
    /// with the same `context` in a later Ready.
    pub fn read_index(&mut self, context: Vec<u8>) -> Result<(), ReadIndexError> {
        let mut m = Message {
            entries: vec![Entry {
                data: context,
                ..Default::default()
            }],
            ..Default::default()
        };
        m.set_type(MessageType::MsgReadIndex);
        let result = match self.raft.role {
            Role::Candidate | Role::PreCandidate => Err(ReadIndexError::NoLeader),
            _ => self.raft.step(m).map_err(|_| ReadIndexError::NoLeader),
        };
        self.after_input();
        result
    }

    /// Asks the leader to hand leadership to `to` (forwarded from followers).
    pub fn transfer_leader(&mut self, to: u64) {
        let mut m = Message {
            from: to,
            ..Default::default()
        };
        m.set_type(MessageType::MsgTransferLeader);
        // Unknown targets are ignored, as etcd does.
        let _ = self.raft.step(m);
        self.after_input();
    }

    /// Applies a committed conf change (decoded from a committed entry; v1 changes
    /// via `conf_change::v1_to_v2`). Returns the configuration now in force.
    pub fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState, ConfChangeError> {
        let result = self.raft.apply_conf_change(cc);
        self.after_input();
        result
    }

    /// Folds applied entries up to `index` into a snapshot carrying `data` (the
    /// application's state at `index`); raft keeps it to send to followers whose
    /// entries are gone.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), CompactError> {
        let log = &self.raft.log;
        if index <= log.snapshot_index() {
            return Err(CompactError::AlreadyCompacted {
                index,
                snapshot_index: log.snapshot_index(),
            });
        }
        // Entries handed out to apply count: the application calls this with the
        // state it has built, which may run ahead of the Readies it has advanced
        // (persistence is pipelined), and waiting for the two to meet would starve
        // snapshots under sustained load.
        if index > log.applying {
            return Err(CompactError::NotApplied {
                index,
                applied: log.applying,
            });
        }
        if self.conf_applied_index > index {
            return Err(CompactError::ConfChangeAfterIndex {
                index,
                conf_index: self.conf_applied_index,
            });
        }
        self.raft.compact(index, data);
        self.after_input();
        Ok(())
    }

    /// The transport failed to deliver to `id`.
    pub fn report_unreachable(&mut self, id: u64) {
        let mut m = Message {
            from: id,
            ..Default::default()
        };
        m.set_type(MessageType::MsgUnreachable);
        let _ = self.raft.step(m);
        self.after_input();
    }

    /// A snapshot sent to `id` was (`ok`) or was not delivered.
    pub fn report_snapshot(&mut self, id: u64, ok: bool) {
        let mut m = Message {
            from: id,
            reject: !ok,
            ..Default::default()
        };
        m.set_type(MessageType::MsgSnapStatus);
        let _ = self.raft.step(m);
        self.after_input();
    }

    /// True when [`ready`](Self::ready) has something to hand out.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.soft_state() != self.prev_soft
            || r.hard_state() != self.prev_hard
            || r.log.has_unhanded_entries()
            || r.log.unhanded_snapshot().is_some()
            || r.log.has_entries_to_apply()
            || !r.msgs.is_empty()
            || !r.read_states.is_empty()
    }

    /// Hands out everything pending as the next numbered Ready.
    pub fn ready(&mut self) -> Ready {
        let number = self.next_number;
        self.next_number += 1;
        let soft = self.raft.soft_state();
        let soft_state = (soft != self.prev_soft).then_some(soft);
        self.prev_soft = soft;
        let hard = self.raft.hard_state();
        let hard_state = (hard != self.prev_hard).then_some(hard);
        let (entries, snapshot, committed_entries) = self.raft.log.hand_out();
        // (Planted bug: a term or vote change alone is taken for a commit-only change.)
        let vote_changed = (hard.term != self.prev_hard.term || hard.vote != self.prev_hard.vote)
            && !is_active(Mutation::SkipMustSyncOnTermChange);
        let must_sync = !entries.is_empty() || snapshot.is_some() || vote_changed;
        self.prev_hard = hard;
        self.raft
            .reduce_uncommitted(committed_entries.iter().map(payload_bytes).sum());
        let last_conf_index = committed_entries
            .iter()
            .rev()
            .find(|e| e.r#type() != EntryType::EntryNormal)
            .map(|e| e.index);
        self.handed.push_back(Handed {
            number,
            last_entry: entries.last().map(|e| (e.index, e.term)),
            snapshot: snapshot
                .as_ref()
                .and_then(|s| s.metadata.as_ref())
                .map(|m| (m.index, m.term)),
            applying: self.raft.log.applying,
            last_conf_index,
        });
        let ready = Ready {
            number,
            soft_state,
            hard_state,
            entries,
            snapshot,
            committed_entries,
            messages: std::mem::take(&mut self.raft.msgs),
            read_states: std::mem::take(&mut self.raft.read_states),
            must_sync,
        };
        self.after_input();
        ready
    }

    /// Acknowledges every Ready numbered `<= number` as persisted (step 1) and
    /// applied (step 3).
    ///
    /// # Panics
    /// If `number` was never handed out: that is a driver bug.
    pub fn advance(&mut self, number: u64) {
        assert!(
            number < self.next_number,
            "advance({number}) of a Ready never handed out"
        );
        while self.handed.front().is_some_and(|h| h.number <= number) {
            let h = self.handed.pop_front().expect("checked");
            if let Some((index, term)) = h.snapshot {
                self.raft.log.persisted_to(index, term);
            }
            if let Some((index, term)) = h.last_entry {
                self.raft.log.persisted_to(index, term);
            }
            self.raft.log.applied_to(h.applying.min(self.raft.log.committed));
            if let Some(i) = h.last_conf_index {
                self.conf_applied_index = self.conf_applied_index.max(i);
            }
        }
        self.raft.on_persisted();
        self.after_input();
    }

    /// A consistent picture of this node.
    pub fn status(&self) -> Status {
        self.raft.status()
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.raft.id
    }

    /// The latest snapshot raft holds (from `compact`, a leader, or bootstrap).
    pub fn snapshot(&self) -> &Snapshot {
        self.raft.log.snapshot()
    }

    /// Panics with a description if any invariant is broken. Called after every
    /// input in debug builds; cheap enough for the simulator to call always.
    pub fn check_invariants(&self) {
        if let Some(violation) = self.raft.invariant_violation() {
            panic!("raft invariant broken on node {}: {violation}", self.raft.id);
        }
    }

    fn after_input(&self) {
        #[cfg(debug_assertions)]
        self.check_invariants();
    }
}
