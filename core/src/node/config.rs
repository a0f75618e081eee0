//! A member's configuration (etcd's server flags that the state machine needs) and
//! how it starts.

use std::fmt;

use detcd_proto::etcdserverpb::Member;
use detcd_proto::raftpb::{Entry, HardState, Snapshot};

/// etcd's `--snapshot-count` default (3.6).
pub const SNAPSHOT_COUNT_DEFAULT: u64 = 10_000;
/// etcd's `--max-request-bytes` default (1.5 MiB).
pub const REQUEST_BYTES_MAX_DEFAULT: u64 = 1_572_864;
/// etcd's `--quota-backend-bytes` default (2 GiB).
pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 2 * 1024 * 1024 * 1024;
/// etcd's `maxGapBetweenApplyAndCommitIndex`: a member whose applied index lags its
/// committed index by more than this refuses new requests (TOO_MANY_REQUESTS).
pub const APPLY_LAG_ENTRIES_MAX_DEFAULT: u64 = 5_000;
/// Client requests one member keeps waiting at once (detcd's own bound).
pub const PENDING_REQUESTS_MAX_DEFAULT: usize = 10_000;
/// etcd's `maxSizePerMsg`: entry bytes in one raft append message.
pub const APPEND_BYTES_MAX_DEFAULT: u64 = 1024 * 1024;
/// etcd's `--max-learners` default.
pub const LEARNERS_MAX_DEFAULT: usize = 1;
/// etcd's `readyPercentThreshold`: a learner may be promoted once its match index is
/// at least this percentage of the leader's.
pub const LEARNER_READY_PERCENT: u64 = 90;

/// Everything a member needs to know that is not replicated state.
///
/// Limits carry their unit last; [`NodeConfig::validate`] checks the relations.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// This member's ID; never 0.
    pub member_id: u64,
    pub cluster_id: u64,
    /// `--name`, published to the cluster after start.
    pub name: String,
    /// This member's client URLs (`--advertise-client-urls`), published after start.
    pub client_urls: Vec<String>,
    /// `--initial-cluster` as members (ID, name, peer URLs, learner flag). A founding
    /// member bootstraps raft with them; a joining member uses them as the membership
    /// until the leader's snapshot arrives. The state of an empty-data raft snapshot
    /// (the bootstrap snapshot at index N, N the number of founding members) is
    /// "these members, empty store".
    pub initial_members: Vec<Member>,
    /// Milliseconds between ticks (`--heartbeat-interval`); one raft tick each.
    pub tick_ms: u64,
    /// Raft election timeout in ticks (`--election-timeout` / `tick_ms`).
    pub election_ticks: u64,
    /// Raft heartbeat interval in ticks (etcd: 1).
    pub heartbeat_ticks: u64,
    /// Applied entries between application snapshots (`--snapshot-count`).
    pub snapshot_count: u64,
    /// Up to this state size snapshots go by `snapshot_count` alone; above it a
    /// snapshot also waits until the entries applied since the last one hold as
    /// many bytes as it did.
    pub snapshot_size_free_bytes: u64,
    /// Bytes of state a snapshot in progress encodes per input.
    pub snapshot_step_bytes: usize,
    /// How long a client request may wait (etcd: 5 s + 2 × election timeout).
    pub request_timeout_ms: u64,
    /// `--max-txn-ops`.
    pub txn_ops_max: usize,
    /// `--max-request-bytes`: larger encoded proposals get REQUEST_TOO_LARGE.
    pub request_bytes_max: u64,
    /// `--quota-backend-bytes`: an approximate store size above this raises NOSPACE.
    pub quota_backend_bytes: u64,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Seed of the member's PRNG (election jitter, lease IDs).
    pub seed: u64,
    /// Client requests waiting at once; more get TOO_MANY_REQUESTS.
    pub pending_requests_max: usize,
    /// Committed-but-unapplied entries above which requests get TOO_MANY_REQUESTS.
    pub apply_lag_entries_max: u64,
    /// `--max-learners`.
    pub learners_max: usize,
    /// `--strict-reconfig-check`.
    pub strict_reconfig_check: bool,
    /// Lease checkpoint interval (etcd: 5 min).
    pub lease_checkpoint_interval_ms: u64,
    /// Entry bytes in one raft append message (etcd's `maxSizePerMsg`, 1 MiB); at
    /// least one entry is always sent.
    pub append_bytes_max: u64,
    /// How long a simple token lives after its last use (`--auth-token-ttl`).
    pub auth_token_ttl_ms: u64,
    /// Simple tokens the member keeps at once.
    pub auth_tokens_max: usize,
    /// `--auto-compaction-mode` and `--auto-compaction-retention`.
    pub auto_compaction: super::AutoCompaction,
    /// `--watch-progress-notify-interval`: how often idle `progress_notify` watchers
    /// get a progress response.
    pub watch_progress_notify_interval_ms: u64,
    /// `--initial-election-tick-advance`: on its first tick the member counts all but
    /// one tick of its election timeout as already elapsed, so a cluster elects its
    /// first leader after about one heartbeat instead of a whole election timeout.
    pub initial_election_tick_advance: bool,
}

impl NodeConfig {
    /// etcd's defaults (100 ms heartbeat, 1 s election timeout) for member
    /// `member_id` of a cluster founded with `initial_members`.
    pub fn new(member_id: u64, cluster_id: u64, name: &str, initial_members: Vec<Member>) -> NodeConfig {
        let tick_ms = 100;
        let election_ticks = 10;
        NodeConfig {
            member_id,
            cluster_id,
            name: name.to_string(),
            client_urls: Vec::new(),
            initial_members,
            tick_ms,
            election_ticks,
            heartbeat_ticks: 1,
            snapshot_count: SNAPSHOT_COUNT_DEFAULT,
            snapshot_size_free_bytes: super::SNAPSHOT_SIZE_FREE_BYTES,
            snapshot_step_bytes: super::SNAPSHOT_STEP_BYTES,
            request_timeout_ms: 5_000 + 2 * tick_ms * election_ticks,
            txn_ops_max: crate::mvcc::TXN_OPS_MAX_DEFAULT,
            request_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
            quota_backend_bytes: QUOTA_BACKEND_BYTES_DEFAULT,
            pre_vote: true,
            check_quorum: true,
            seed: member_id,
            pending_requests_max: PENDING_REQUESTS_MAX_DEFAULT,
            apply_lag_entries_max: APPLY_LAG_ENTRIES_MAX_DEFAULT,
            learners_max: LEARNERS_MAX_DEFAULT,
            strict_reconfig_check: true,
            lease_checkpoint_interval_ms: crate::lease::CHECKPOINT_INTERVAL_MS_DEFAULT,
            append_bytes_max: APPEND_BYTES_MAX_DEFAULT,
            auth_token_ttl_ms: crate::auth::TOKEN_TTL_MS_DEFAULT,
            auth_tokens_max: crate::auth::TOKENS_MAX_DEFAULT,
            auto_compaction: super::AutoCompaction::Off,
            watch_progress_notify_interval_ms: super::WATCH_PROGRESS_NOTIFY_INTERVAL_MS_DEFAULT,
            initial_election_tick_advance: false,
        }
    }

    /// The election timeout in milliseconds.
    pub fn election_timeout_ms(&self) -> u64 {
        self.tick_ms.saturating_mul(self.election_ticks)
    }

    /// How long a member that applied its own removal keeps running before it
    /// stops (see `REMOVED_STOP_DELAY_MS_MIN` in the apply module).
    pub fn removed_stop_delay_ms(&self) -> u64 {
        super::apply::REMOVED_STOP_DELAY_MS_MIN.max(3 * self.election_timeout_ms())
    }

    /// Checks each bound and the relations between them.
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |why: &'static str| Err(NodeError::Config(why));
        if self.member_id == 0 {
            return bad("member_id must not be zero");
        }
        if self.tick_ms == 0 {
            return bad("tick_ms must be positive");
        }
        if self.watch_progress_notify_interval_ms == 0 {
            return bad("watch_progress_notify_interval_ms must be positive");
        }
        if self.snapshot_count == 0 || self.snapshot_step_bytes == 0 {
            return bad("snapshot_count and snapshot_step_bytes must be positive");
        }
        if self.request_timeout_ms < self.election_timeout_ms() {
            return bad("request_timeout_ms must be at least one election timeout");
        }
        if self.txn_ops_max == 0 || self.request_bytes_max == 0 || self.quota_backend_bytes == 0 {
            return bad("txn_ops_max, request_bytes_max and quota_backend_bytes must be positive");
        }
        if self.pending_requests_max == 0 || self.apply_lag_entries_max == 0 {
            return bad("pending_requests_max and apply_lag_entries_max must be positive");
        }
        if self.lease_checkpoint_interval_ms == 0 {
            return bad("lease_checkpoint_interval_ms must be positive");
        }
        if self.append_bytes_max == 0 {
            return bad("append_bytes_max must be positive");
        }
        if self.auth_token_ttl_ms == 0 || self.auth_tokens_max == 0 {
            return bad("auth_token_ttl_ms and auth_tokens_max must be positive");
        }
        let mut ids: Vec<u64> = self.initial_members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.initial_members.len() || ids.contains(&0) {
            return bad("initial_members must have distinct non-zero IDs");
        }
        Ok(())
    }
}

/// How a member starts.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeStart {
    /// Founds a new cluster with `NodeConfig::initial_members`
    /// (`--initial-cluster-state new`, first start).
    Found,
    /// Joins an existing cluster that already added this member
    /// (`--initial-cluster-state existing`, first start): an empty log, waiting for
    /// the leader.
    Join,
    /// Restarts from what was persisted: the latest saved snapshot (its data the
    /// node's state, or empty for the bootstrap snapshot), the hard state, and every
    /// WAL entry after the snapshot.
    Recover {
        snapshot: Snapshot,
        hard_state: HardState,
        entries: Vec<Entry>,
    },
}

/// Why a node could not start.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeError {
    /// A configuration bound is missing or contradicts another.
    Config(&'static str),
    /// Raft refused its starting state.
    Raft(crate::raft::InitError),
    /// The snapshot's data does not decode (corrupt, or another format version).
    Snapshot(String),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Config(why) => write!(f, "node: invalid config: {why}"),
            NodeError::Raft(e) => write!(f, "node: {e}"),
            NodeError::Snapshot(why) => write!(f, "node: snapshot: {why}"),
        }
    }
}

impl std::error::Error for NodeError {}
