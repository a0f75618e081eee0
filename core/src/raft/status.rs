//! What a node reports about itself: its role, the leader it follows, and (on the
//! leader) each peer's replication progress. Read-only snapshots for operators,
//! the member layer and the simulator's checkers.

use std::collections::BTreeMap;

use detcd_proto::raftpb::ConfState;

use super::progress::ProgressState;

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Follower,
    /// Running a PreVote round: asks whether it could win before raising its term.
    PreCandidate,
    Candidate,
    Leader,
}

impl Role {
    /// etcd's names, used in transcripts.
    pub fn name(self) -> &'static str {
        match self {
            Role::Follower => "StateFollower",
            Role::PreCandidate => "StatePreCandidate",
            Role::Candidate => "StateCandidate",
            Role::Leader => "StateLeader",
        }
    }
}

/// Volatile state the application may want to react to (not persisted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// The known leader, 0 when none.
    pub leader: u64,
    pub role: Role,
}

/// The leader's view of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressStatus {
    pub matched: u64,
    pub next: u64,
    pub state: ProgressState,
    pub is_learner: bool,
    pub recent_active: bool,
    pub inflight_msgs: usize,
}

/// A consistent picture of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: u64,
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
    pub applied: u64,
    pub leader: u64,
    pub role: Role,
    /// The transfer target while a leadership transfer is under way, else 0.
    pub lead_transferee: u64,
    /// Per peer, only on the leader (empty elsewhere).
    pub progress: BTreeMap<u64, ProgressStatus>,
    pub conf_state: ConfState,
}
