//! The etcd member: raft plus apply, pending client requests, reads and snapshots,
//! as one deterministic state machine ([`Node`]).
//!
//! What it owns and why it exists: every decision etcd's `etcdserver` takes (what to
//! propose, when a client is answered and with which error, which reads are safe,
//! when to snapshot, which member may lead, when a lease expires) lives here, so
//! the production driver (`detcd-io`) and the simulator (`detcd-sim`) run the same
//! decisions and the simulator can check them.
//!
//! Parts, one concept per file:
//! - [`io`]: the [`Input`] and [`Output`] enums, client [`Request`]/[`Response`],
//!   [`PeerMessage`].
//! - [`config`]: [`NodeConfig`], [`NodeStart`], [`NodeError`].
//! - `requests`: client requests: checks, proposals, forwarding, deadlines.
//! - `reads`: linearizable reads by batched ReadIndex rounds.
//! - `apply`: applying committed entries (KV, leases, alarms, membership).
//! - `auth`: who a request comes from, the permission checks, applying Auth RPCs.
//! - `state`: the application snapshot codec.
//! - `drive`: the drive step, each Ready turned into outputs in a fixed order.
//! - `release`: what waits for the disk (held and gated outputs, released by
//!   [`Input::Persisted`]).
//! - `snapshots`: when an application snapshot is taken, a slice per input.
//! - `install`: replacing the application state by a snapshot.
//!
//! Simplifications against etcd, each deliberate:
//! - Every raft message of a Ready waits for that Ready's persistence, except the
//!   leader's appends, heartbeats and snapshots, which leave in parallel with its
//!   own write as in etcd (see `drive`) unless a term or vote change is unpersisted.
//! - A keepalive that needs a full-TTL checkpoint (so that the renewal survives a
//!   leader change) is answered once that checkpoint is applied; others at once.
//! - Members publish name and client URLs through raft after start, as etcd does;
//!   until then the member list shows them with empty name and client URLs.

pub mod auto_compact;
pub mod config;
pub mod io;

mod applied_requests;
mod apply;
mod auth;
mod drive;
mod export;
pub mod force_new_cluster;
pub mod import;
mod install;
pub mod portable;
mod reads;
mod release;
mod requests;
mod snapshots;
mod state;
mod status;
mod v2;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use detcd_proto::etcdserverpb::{Member, ResponseHeader};
use detcd_proto::raftpb::{ConfState, Message};

use crate::auth::{AuthStore, SimpleTokens};
use crate::lease::{Lessor, LessorConfig};
use crate::mutation::{is_active, Mutation};
use crate::mvcc::{Store, StoreConfig};
use crate::raft::{self, RawNode, RecoveredState, Role, SoftState};
use crate::rng::Rng;
use crate::v2store::Store as V2Store;
use crate::watch::{Hub, HubConfig};

pub use applied_requests::{APPLIED_REQUEST_IDS_PER_PROPOSER_MAX, APPLIED_REQUEST_PROPOSERS_MAX};
pub use auto_compact::AutoCompaction;
pub use config::{NodeConfig, NodeError, NodeStart};
pub use import::{ImportTarget, Importer};
pub use io::{
    AuthResponse, ClientRequestId, Credentials, ExportProgress, ForwardRequest, Input, Output, PeerMessage,
    Persist, Request, Response, V2Reply,
};
pub use portable::{PortableBound, PortableError, PortableHead, PortableRecord, PortableSlice};
pub use state::STATE_FORMAT_VERSION;
pub use status::{CompactionCounts, MemberStatus, MvccCounts, V2Counts, WatcherCounts, KEYS_RECOUNT_MS};
pub use v2::{PREV_EXIST_FALSE, PREV_EXIST_TRUE};

use applied_requests::AppliedRequests;
use reads::Reads;
use requests::{Forwarded, MoveLeader, Proposal};
use snapshots::SnapshotJob;

/// How often idle watchers with `progress_notify` get a progress response
/// (etcd's `--watch-progress-notify-interval` default, 10 minutes).
pub const WATCH_PROGRESS_NOTIFY_INTERVAL_MS_DEFAULT: u64 = 10 * 60 * 1000;

/// Default `NodeConfig::snapshot_size_free_bytes`: up to this state size a
/// snapshot is taken every `snapshot_count` entries, as etcd does; above it, also
/// only once the entries applied since the last one hold as many bytes as it did
/// (see `Node::maybe_snapshot`).
pub const SNAPSHOT_SIZE_FREE_BYTES: u64 = 4 << 20;

/// Default `NodeConfig::snapshot_step_bytes`: bytes of the state a snapshot in
/// progress encodes per input, so no input waits for a whole large state.
pub const SNAPSHOT_STEP_BYTES: usize = 256 << 10;

/// The members' peer URLs and the removed members, as [`Output::PeerUrls`] says them.
type AnnouncedPeers = (BTreeMap<u64, Vec<String>>, BTreeSet<u64>);

/// One etcd member.
///
/// # Driving it
///
/// After [`Node::new`] and after every [`Node::handle_at`], the driver calls
/// [`Node::poll`] until it returns `None`, and carries out each [`Output`] in the
/// order it came out. The order is binding:
///
/// 1. [`Output::Persist`] numbered `n` must be durable (synced when `must_sync`)
///    before the driver answers [`Input::Persisted`]` { ready_number: n }`. Outputs
///    that depend on it (the raft messages of the same Ready) only come out after
///    that answer, so a driver that sends every [`Output::Send`] as soon as it sees
///    it never sends ahead of its disk. A Persist that commits a configuration
///    change is synced, and every output but disk work waits for its answer.
///    Persists may be pipelined: answering `n` acknowledges every Persist
///    numbered `<= n`.
/// 2. [`Output::Send`], [`Output::Respond`], [`Output::Watch`]: in order per
///    destination (watch responses of one stream in order).
/// 3. [`Output::SaveSnapshot`]: saved durably, then answered with
///    [`Input::SnapshotSaved`]; [`Output::ReleaseWal`] follows.
/// 4. [`Output::Removed`]: the driver stops the member (a while after it applied
///    its own removal, which it spends helping the rest learn of it).
///
/// Every [`Input::Client`] is answered by exactly one [`Output::Respond`], at the
/// latest when `request_timeout_ms` has passed on the ticks the driver delivers.
///
/// Time enters only as the driver's clock reading: the `now_ms` of
/// [`Node::handle_at`] (which ticks the member first when it moved) and of
/// [`Input::Tick`]. Given the same config (seed included) and the same inputs
/// at the same times, a node produces the same outputs, byte for byte.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    raft: RawNode,
    store: Store,
    lessor: Lessor,
    hub: Hub,
    /// Users, roles, permissions: replicated, part of the state snapshot.
    auth: AuthStore,
    /// The v2 key space (`--enable-v2`).
    v2: V2Store,
    /// This member's v2 store statistics (not replicated; see [`crate::v2store::Stats`]).
    v2_stats: crate::v2store::Stats,
    /// Simple tokens installed on this member (not replicated state: each member
    /// installs them as the Authenticate entries apply, and a restart drops them).
    tokens: SimpleTokens,
    members: BTreeMap<u64, Member>,
    removed_members: BTreeSet<u64>,
    alarms: BTreeSet<(u64, i32)>,
    /// Request IDs applied recently, so a request appended twice applies once.
    applied_requests: AppliedRequests,
    applied_index: u64,
    applied_term: u64,
    /// Index of the latest application snapshot (saved, installed or recovered).
    snapshot_index: u64,
    /// Size of that snapshot's state, in bytes.
    snapshot_bytes: u64,
    /// Bytes of entries applied after `snapshot_index` (or after the index of the
    /// snapshot being encoded).
    applied_bytes_since_snapshot: u64,
    /// The application snapshot being encoded, a slice per input.
    snapshot_job: Option<SnapshotJob>,
    /// Exports of the application state asked for by the driver, by export.
    exports: export::Exports,
    /// The peer URLs and removed members last announced with [`Output::PeerUrls`].
    announced_peer_urls: Option<AnnouncedPeers>,
    auto_compaction: auto_compact::AutoCompactDuty,
    db_size_bytes: u64,
    now_ms: u64,
    next_tick_ms: Option<u64>,
    next_progress_ms: u64,
    rng: Rng,
    request_id_base: u64,
    request_seq: u64,
    soft: SoftState,
    term: u64,
    commit: u64,
    /// When the current leader (or lack of one) was first seen.
    leader_since_ms: u64,
    proposals: BTreeMap<u64, Proposal>,
    reads: Reads,
    forwards: BTreeMap<u64, Forwarded>,
    next_forward_id: u64,
    move_leader: Option<MoveLeader>,
    /// Raft messages of handed-out Readies, released once that Ready is persisted.
    held: VecDeque<(u64, Vec<Message>)>,
    /// Term and vote of the latest handed-out Ready.
    term_vote: (u64, u64),
    /// Number of the latest handed-out Ready that changed term or vote and is not
    /// yet persisted: while set, no message leaves before its Ready is persisted.
    term_vote_unpersisted: Option<u64>,
    /// Number of the latest handed-out Ready whose committed entries hold a
    /// configuration change, while it is not yet persisted. Its Persist is synced,
    /// and until then no raft message leaves and every output but disk work waits
    /// in `gated`: nobody (a client, an operator, a peer) learns that the change
    /// committed before this member's commit index covering it is durable. Else,
    /// in a two-voter cluster shrinking to one, the survivor could crash with the
    /// removal applied but its commit index not durable, while the operator,
    /// told the removal succeeded, stopped the removed member for good: on
    /// restart the survivor would need the stopped member's vote forever.
    conf_commit_unpersisted: Option<u64>,
    /// Outputs held back while `conf_commit_unpersisted` is set, in order.
    gated: VecDeque<Output>,
    /// When the next attempt to publish this member's attributes may be made.
    publish_retry_ms: u64,
    /// This start's publish proposals (retries included; the last few).
    publish_ids: VecDeque<u64>,
    /// One of them applied: this start's publish is done (etcd publishes at
    /// every start, and its v2 store counts each).
    published: bool,
    /// When the leader may next propose the cluster version, while none is set.
    cluster_version_retry_ms: u64,
    /// Set when this member applied its own removal: it serves no client, and
    /// stops (`removed`, [`Output::Removed`]) at this time.
    stop_at_ms: Option<u64>,
    removed: bool,
    /// What the driver was last told of the member's state, and the store
    /// operations counted since start.
    status: status::StatusDuty,
    outputs: VecDeque<Output>,
}

impl Node {
    /// Builds a member from a valid config and how it starts.
    pub fn new(config: NodeConfig, start: NodeStart) -> Result<Node, NodeError> {
        config.validate()?;
        let mut rng = Rng::new(config.seed);
        let raft_config = raft::Config {
            election_ticks: config.election_ticks,
            heartbeat_ticks: config.heartbeat_ticks,
            pre_vote: config.pre_vote,
            check_quorum: config.check_quorum,
            append_bytes_max: config.append_bytes_max,
            seed: rng.next_u64(),
            ..raft::Config::new(config.member_id)
        };
        let lessor_rng = rng.fork();
        // Only filled under the planted bug `ApplyTwiceAfterRestart`.
        let mut replay = Vec::new();
        let (raft_start, snapshot) = match start {
            NodeStart::Found => {
                let mut cs = ConfState::default();
                for m in &config.initial_members {
                    if m.is_learner {
                        cs.learners.push(m.id);
                    } else {
                        cs.voters.push(m.id);
                    }
                }
                // etcd's founding log: one membership entry per member at
                // indexes 1..N, term 1, which this snapshot stands for.
                let founding = (cs.voters.len() + cs.learners.len()) as u64;
                (raft::Start::BootstrapAt(cs, founding), None)
            }
            NodeStart::Join => (raft::Start::Bootstrap(ConfState::default()), None),
            NodeStart::Recover {
                snapshot,
                hard_state,
                entries,
            } => {
                let meta = snapshot.metadata.clone().unwrap_or_default();
                if is_active(Mutation::ApplyTwiceAfterRestart) {
                    replay = entries
                        .iter()
                        .filter(|e| e.index <= hard_state.commit)
                        .cloned()
                        .collect();
                }
                let recovered = RecoveredState {
                    hard_state,
                    snapshot: snapshot.clone(),
                    entries,
                    conf_state: meta.conf_state.clone().unwrap_or_default(),
                    applied: meta.index,
                };
                (raft::Start::Recovered(recovered), Some(snapshot))
            }
        };
        let raft = RawNode::new(raft_config, raft_start).map_err(NodeError::Raft)?;
        let status = raft.status();
        // Request IDs: the member ID's low 16 bits on top (as etcd's idutil), a
        // start drawn from the seed and the recovered log position below, so a
        // restarted member does not reuse the IDs of entries still in its log.
        let request_id_base = (config.member_id & 0xffff) << 48;
        let request_seq =
            (rng.next_u64() ^ status.commit.wrapping_mul(0x9e37_79b9_7f4a_7c15)) & 0xffff_ffff_0000;
        let lessor_config = LessorConfig {
            checkpoint_interval_ms: config.lease_checkpoint_interval_ms,
            ..LessorConfig::new(config.election_timeout_ms())
        };
        let store_config = StoreConfig {
            txn_ops_max: config.txn_ops_max,
        };
        let mut node = Node {
            raft,
            store: Store::new(store_config),
            lessor: Lessor::new(lessor_config, lessor_rng),
            hub: Hub::new(HubConfig::default()),
            auth: AuthStore::default(),
            v2: V2Store::default(),
            v2_stats: crate::v2store::Stats::default(),
            tokens: SimpleTokens::new(config.auth_token_ttl_ms, config.auth_tokens_max),
            members: BTreeMap::new(),
            removed_members: BTreeSet::new(),
            alarms: BTreeSet::new(),
            applied_requests: AppliedRequests::default(),
            applied_index: 0,
            applied_term: 0,
            snapshot_index: 0,
            snapshot_bytes: 0,
            applied_bytes_since_snapshot: 0,
            snapshot_job: None,
            exports: export::Exports::default(),
            announced_peer_urls: None,
            auto_compaction: auto_compact::AutoCompactDuty::default(),
            db_size_bytes: 0,
            now_ms: 0,
            next_tick_ms: None,
            next_progress_ms: config.watch_progress_notify_interval_ms,
            rng,
            request_id_base,
            request_seq,
            soft: SoftState {
                leader: status.leader,
                role: status.role,
            },
            term: status.term,
            commit: status.commit,
            leader_since_ms: 0,
            proposals: BTreeMap::new(),
            reads: Reads::default(),
            forwards: BTreeMap::new(),
            next_forward_id: 1,
            move_leader: None,
            held: VecDeque::new(),
            term_vote: (status.term, status.vote),
            term_vote_unpersisted: None,
            conf_commit_unpersisted: None,
            gated: VecDeque::new(),
            publish_retry_ms: 0,
            publish_ids: VecDeque::new(),
            published: false,
            cluster_version_retry_ms: 0,
            stop_at_ms: None,
            removed: false,
            status: status::StatusDuty::default(),
            outputs: VecDeque::new(),
            config,
        };
        node.reset_members(None);
        if let Some(snapshot) = snapshot {
            node.install_snapshot(&snapshot)?;
            if !replay.is_empty() {
                // Planted bug: the committed WAL tail is replayed into the restored
                // state here, but the applied index (and its request window) is
                // left at the snapshot's, so raft hands the same entries out again
                // and they apply twice.
                let window = node.applied_requests.clone();
                for entry in replay {
                    node.apply_entry(entry);
                }
                node.applied_requests = window;
                let meta = snapshot.metadata.clone().unwrap_or_default();
                node.applied_index = meta.index;
                node.applied_term = meta.term;
            }
        }
        node.announce_peer_urls();
        node.drive();
        node.after_input();
        Ok(node)
    }

    /// Handles one input that arrived when the driver's monotonic clock read
    /// `now_ms`; then drain [`Node::poll`]. This is how a driver feeds a member.
    ///
    /// Time first: when `now_ms` is past the member's clock (the latest time
    /// it was ticked at), the member runs its tick at `now_ms` (raft ticks,
    /// deadlines, lease expiry, the stop of a removed member) before it handles
    /// the input, so that what the input applies (a lease grant whose write
    /// just became durable) reads the clock as it is now, not as it was at the
    /// last [`Input::Tick`]. If that tick stopped the member, the input is not
    /// handled: a client request is answered STOPPED, anything else is dropped.
    ///
    /// An [`Input::Tick`] is that tick itself, run once at the later of the two
    /// times. A Tick at an unchanged time runs the tick's duties again but
    /// fires no raft tick: raft ticks count elapsed time, not Ticks.
    pub fn handle_at(&mut self, now_ms: u64, input: Input) {
        match input {
            Input::Tick { now_ms: at } => self.handle_now(Input::Tick {
                now_ms: at.max(now_ms),
            }),
            input => {
                if now_ms > self.now_ms && !self.removed {
                    self.handle_now(Input::Tick { now_ms });
                }
                self.handle_now(input);
            }
        }
    }

    /// [`Node::handle_at`] with the member's own clock: no time has passed
    /// since its last [`Input::Tick`] (which moves the clock itself). For tests
    /// that step time by Ticks.
    pub fn handle(&mut self, input: Input) {
        self.handle_at(self.now_ms, input);
    }

    /// Handles one input at the member's current clock.
    fn handle_now(&mut self, input: Input) {
        if self.removed || self.stop_at_ms.is_some() {
            if let Input::Client { id, .. } = input {
                self.respond(id, Err(crate::error::STOPPED));
                return;
            }
            if self.removed {
                return;
            }
        }
        match input {
            Input::Tick { now_ms } => self.on_tick(now_ms),
            Input::Peer(message) => self.on_peer(message),
            Input::Client {
                id,
                request,
                credentials,
            } => self.on_client(id, request, &credentials),
            Input::Persisted { ready_number } => self.on_persisted(ready_number),
            Input::SnapshotSaved { index } => self.outputs.push_back(Output::ReleaseWal { index }),
            Input::StreamClosed { stream } => self.hub.close_stream(stream),
            Input::PeerUnreachable { peer } => self.raft.report_unreachable(peer),
            Input::SnapshotReport { peer, delivered } => self.raft.report_snapshot(peer, delivered),
            Input::ExportSnapshot { export } => self.step_export(export),
            Input::PortableHead { ask } => {
                let head = self.portable_head();
                self.outputs.push_back(Output::PortableHead { ask, head });
            }
            Input::PortableRecords {
                ask,
                bound,
                from,
                records_max,
            } => {
                let slice = self.portable_records(bound, from, records_max);
                self.outputs.push_back(Output::PortableRecords { ask, slice });
            }
        }
        self.drive();
        self.after_input();
    }

    /// This member's ID.
    pub fn member_id(&self) -> u64 {
        self.config.member_id
    }

    /// The configuration this member runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The known leader (0 when none) and this member's role.
    pub fn soft_state(&self) -> SoftState {
        self.soft
    }

    /// Raft's picture of this member.
    pub fn raft_status(&self) -> raft::Status {
        self.raft.status()
    }

    /// The member's key-value store (read-only), for checkers and tests.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The member's v2 store (read-only), for checkers and tests.
    pub fn v2_store(&self) -> &V2Store {
        &self.v2
    }

    /// The member's auth store (read-only), for checkers and tests.
    pub fn auth_store(&self) -> &AuthStore {
        &self.auth
    }

    /// The member's lessor (read-only), for checkers and tests.
    pub fn lessor(&self) -> &Lessor {
        &self.lessor
    }

    /// Request IDs the member remembers as applied (bounded; see
    /// [`APPLIED_REQUEST_IDS_PER_PROPOSER_MAX`]).
    pub fn applied_request_ids(&self) -> usize {
        self.applied_requests.len()
    }

    /// The cluster's members as this member has applied them, by ID.
    pub fn members(&self) -> &BTreeMap<u64, Member> {
        &self.members
    }

    /// True once this member applied its own removal and stopped.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// The estimated size of the key space in bytes, as Status reports it.
    pub fn db_size_bytes(&self) -> u64 {
        self.db_size_bytes
    }

    /// The application state as of the applied index, in the snapshot encoding
    /// (what Maintenance/Snapshot streams and what a restart restores from).
    pub fn app_snapshot(&self) -> Vec<u8> {
        self.encode_state()
    }

    /// Client requests waiting for an answer (proposals, reads, forwards, transfer).
    pub fn pending_requests(&self) -> usize {
        self.proposals.values().filter(|p| p.origin.is_client()).count()
            + self.reads.len()
            + self.forwards.len()
            + usize::from(self.move_leader.is_some())
    }

    /// Panics with a description if any invariant is broken: raft's, the store's,
    /// the lessor's, and the node's own (applied within committed, no client
    /// waiting past its deadline, members and raft configuration agree).
    pub fn check_invariants(&self) {
        self.raft.check_invariants();
        if let Err(why) = self.store.check_invariants() {
            panic!(
                "mvcc invariant broken on member {:x}: {why}",
                self.config.member_id
            );
        }
        self.lessor.check_invariants();
        let status = self.raft.status();
        assert!(
            self.applied_index <= status.commit.max(self.snapshot_index),
            "applied {} beyond commit {}",
            self.applied_index,
            status.commit
        );
        assert!(
            self.snapshot_index <= self.applied_index,
            "snapshot beyond applied"
        );
        let late = |deadline: u64| deadline < self.now_ms;
        assert!(
            !self.proposals.values().any(|p| late(p.deadline_ms)),
            "a proposal outlived its deadline"
        );
        assert!(
            !self.forwards.values().any(|f| late(f.deadline_ms)),
            "a forward outlived its deadline"
        );
        assert!(
            !self.reads.any_deadline_before(self.now_ms),
            "a read outlived its deadline"
        );
        assert!(
            self.move_leader.as_ref().is_none_or(|m| !late(m.deadline_ms)),
            "a transfer outlived its deadline"
        );
        if !self.removed {
            let cs = &status.conf_state;
            for id in cs.voters.iter().chain(&cs.learners) {
                assert!(
                    self.members.contains_key(id),
                    "raft member {id:x} missing from the member list"
                );
            }
        }
        // A removed member stops driving raft (its soft state is frozen at
        // removal), and one that applied its own removal may still lead until it
        // stops (handing its lead over) with its lessor demoted, so the pairing
        // only holds while it is a member.
        if !self.removed && self.stop_at_ms.is_none() {
            assert_eq!(
                self.lessor.is_primary(),
                self.soft.role == Role::Leader,
                "lessor primary iff raft leader"
            );
        }
    }

    fn after_input(&self) {
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.config.cluster_id,
            member_id: self.config.member_id,
            revision,
            raft_term: self.term,
        })
    }

    /// A new cluster-unique request ID.
    fn next_request_id(&mut self) -> u64 {
        self.request_seq = (self.request_seq + 1) & ((1 << 48) - 1);
        self.request_id_base | self.request_seq
    }

    fn respond(&mut self, id: ClientRequestId, result: Result<Response, crate::error::EtcdError>) {
        self.outputs.push_back(Output::Respond { id, result });
    }

    fn is_learner(&self) -> bool {
        self.members
            .get(&self.config.member_id)
            .is_some_and(|m| m.is_learner)
    }

    fn on_tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.stop_at_ms.is_some_and(|at| self.now_ms >= at) {
            self.stop();
            return;
        }
        let tick_ms = self.config.tick_ms;
        match self.next_tick_ms {
            None => {
                let advance = if self.config.initial_election_tick_advance {
                    self.config.election_ticks.saturating_sub(1)
                } else {
                    0
                };
                for _ in 0..=advance {
                    self.raft.tick();
                }
                self.next_tick_ms = Some(self.now_ms + tick_ms);
            }
            Some(mut next) => {
                // A late driver catches up, but a clock jump fires at most one
                // election timeout of ticks.
                let mut ticks = 0;
                while next <= self.now_ms && ticks < self.config.election_ticks {
                    self.raft.tick();
                    next += tick_ms;
                    ticks += 1;
                }
                if next <= self.now_ms {
                    next = self.now_ms + tick_ms;
                }
                self.next_tick_ms = Some(next);
            }
        }
        self.drive();
        self.tokens.expire(self.now_ms);
        self.lease_duties();
        self.auto_compact();
        self.publish_attributes();
        self.propose_cluster_version();
        self.retry_pending();
        self.expire_deadlines();
        if self.now_ms >= self.next_progress_ms {
            self.hub.progress_tick();
            self.next_progress_ms = self.now_ms + self.config.watch_progress_notify_interval_ms;
        }
        // An idle member still finishes the snapshot it is encoding.
        if self.snapshot_job.is_some() {
            self.maybe_snapshot();
        }
    }

    fn on_peer(&mut self, message: PeerMessage) {
        match message {
            PeerMessage::Raft(m) => {
                // Errors here are stale or foreign messages; raft already ignored them.
                let _ = self.raft.step(m);
            }
            PeerMessage::Forward {
                from,
                forward_id,
                request,
            } => self.on_forward(from, forward_id, request),
            PeerMessage::ForwardReply { forward_id, result } => self.on_forward_reply(forward_id, result),
        }
    }
}
