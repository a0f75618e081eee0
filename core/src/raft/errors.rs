//! Errors a caller or a peer can cause at the raft boundary.
//!
//! Each is a typed value and each failed call leaves the state machine exactly as it
//! was: a refused proposal appends nothing, a refused conf change changes nothing.
//! Panics are kept for broken invariants (see `RawNode::check_invariants`).

use std::fmt;

/// A configuration bound is missing or contradicts another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `id` 0 means "nobody" in raft messages and cannot name a node.
    ZeroId,
    /// `heartbeat_ticks` must be at least 1.
    HeartbeatTicksZero,
    /// Heartbeats must be more frequent than elections or followers time out
    /// under a healthy leader.
    ElectionNotAboveHeartbeat {
        election_ticks: u64,
        heartbeat_ticks: u64,
    },
    /// Without any inflight message the leader could never send an append.
    InflightMsgsZero,
    /// An append must be allowed to carry at least one byte of entries.
    AppendBytesZero,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroId => write!(f, "raft: id must not be zero"),
            ConfigError::HeartbeatTicksZero => write!(f, "raft: heartbeat_ticks must be at least 1"),
            ConfigError::ElectionNotAboveHeartbeat { election_ticks, heartbeat_ticks } => write!(
                f,
                "raft: election_ticks ({election_ticks}) must be greater than heartbeat_ticks ({heartbeat_ticks})"
            ),
            ConfigError::InflightMsgsZero => write!(f, "raft: inflight_msgs_max must be at least 1"),
            ConfigError::AppendBytesZero => write!(f, "raft: append_bytes_max must be at least 1"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a proposal (normal entry or conf change) was not appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// No leader is known, so there is nobody to forward to.
    NoLeader,
    /// The leader is handing over leadership; proposals wait for the new leader.
    TransferInProgress,
    /// A conf change is proposed while an earlier one is not yet applied.
    PendingConfChange,
    /// The leader's uncommitted entries already exceed `uncommitted_bytes_max`.
    UncommittedSizeExceeded,
    /// This node is a learner (or not a member) and may not lead.
    NotVoter,
    /// The conf change is malformed or invalid against the current configuration.
    InvalidConfChange(ConfChangeError),
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NoLeader => write!(f, "raft: proposal dropped: no leader"),
            ProposeError::TransferInProgress => {
                write!(f, "raft: proposal dropped: leadership transfer in progress")
            }
            ProposeError::PendingConfChange => {
                write!(f, "raft: proposal dropped: a conf change is already pending")
            }
            ProposeError::UncommittedSizeExceeded => {
                write!(f, "raft: proposal dropped: too many uncommitted bytes")
            }
            ProposeError::NotVoter => write!(f, "raft: proposal dropped: node is not a voter"),
            ProposeError::InvalidConfChange(e) => write!(f, "raft: proposal dropped: {e}"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// Why a conf change cannot be applied (or proposed: proposals are checked with the
/// same rules so that a committed change is always applicable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfChangeError {
    /// Entering a joint configuration while already in one.
    AlreadyJoint,
    /// Leaving a joint configuration while not in one.
    NotJoint,
    /// A joint configuration needs voters to copy into the outgoing half.
    ZeroVoterJoint,
    /// A simple change may alter at most one voter; more need joint consensus.
    MoreThanOneVoterChanged,
    /// The change would leave no voter at all.
    RemovedAllVoters,
    /// Node id 0 is "nobody".
    ZeroNodeId,
    /// The entry's bytes do not decode as a conf change.
    Undecodable,
}

impl fmt::Display for ConfChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ConfChangeError::AlreadyJoint => "config is already joint",
            ConfChangeError::NotJoint => "can't leave a non-joint config",
            ConfChangeError::ZeroVoterJoint => "can't make a zero-voter config joint",
            ConfChangeError::MoreThanOneVoterChanged => {
                "more than one voter changed without entering joint config"
            }
            ConfChangeError::RemovedAllVoters => "removed all voters",
            ConfChangeError::ZeroNodeId => "node id 0 is not a node",
            ConfChangeError::Undecodable => "conf change does not decode",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ConfChangeError {}

/// Why a message from the network (or the driver) was not stepped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepError {
    /// Local-only message types (MsgHup, MsgBeat, MsgCheckQuorum, ...) may not arrive
    /// from the network; the driver uses the dedicated methods instead.
    LocalMessageFromNetwork,
    /// A response from a node this node does not track (already removed, or never a
    /// member); it carries no information worth acting on.
    UnknownPeer(u64),
    /// A proposal stepped as a message was refused.
    Proposal(ProposeError),
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::LocalMessageFromNetwork => {
                write!(f, "raft: local message type received from the network")
            }
            StepError::UnknownPeer(id) => write!(f, "raft: response from unknown peer {id:x}"),
            StepError::Proposal(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StepError {}

/// Why a compaction request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompactError {
    /// The index is at or below the current snapshot.
    AlreadyCompacted { index: u64, snapshot_index: u64 },
    /// Only applied entries may be folded into a snapshot.
    NotApplied { index: u64, applied: u64 },
    /// A conf change was applied after `index`, so the current configuration is not
    /// the configuration at `index` and the snapshot's ConfState would lie.
    ConfChangeAfterIndex { index: u64, conf_index: u64 },
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactError::AlreadyCompacted {
                index,
                snapshot_index,
            } => write!(
                f,
                "raft: requested index {index} is out of date (snapshot at {snapshot_index})"
            ),
            CompactError::NotApplied { index, applied } => {
                write!(f, "raft: compact {index} is beyond applied index {applied}")
            }
            CompactError::ConfChangeAfterIndex { index, conf_index } => write!(
                f,
                "raft: compact {index} precedes the applied conf change at {conf_index}"
            ),
        }
    }
}

impl std::error::Error for CompactError {}

/// Why a read request was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadIndexError {
    /// No leader is known to forward the read to.
    NoLeader,
}

impl fmt::Display for ReadIndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft: read index dropped: no leader")
    }
}

impl std::error::Error for ReadIndexError {}

/// Why a node could not be constructed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitError {
    Config(ConfigError),
    /// The recovered configuration is not a valid configuration.
    ConfState(ConfChangeError),
    /// Recovered entries do not follow the snapshot contiguously.
    EntriesNotContiguous {
        expected: u64,
        found: u64,
    },
    /// The recovered commit index lies outside the recovered log.
    CommitOutOfRange {
        commit: u64,
        last_index: u64,
    },
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Config(e) => e.fmt(f),
            InitError::ConfState(e) => write!(f, "raft: recovered conf state: {e}"),
            InitError::EntriesNotContiguous { expected, found } => {
                write!(f, "raft: recovered entry has index {found}, expected {expected}")
            }
            InitError::CommitOutOfRange { commit, last_index } => {
                write!(
                    f,
                    "raft: recovered commit {commit} beyond last index {last_index}"
                )
            }
        }
    }
}

impl std::error::Error for InitError {}
