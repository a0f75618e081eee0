//! The simulator: members of `core::node` on simulated disks and a simulated
//! network, driven one event at a time in virtual time.
//!
//! One [`Sim`] is one run. Everything it does is decided by its [`Options`] (hence
//! by the seed) and by the order of the event queue, so a seed replays exactly.
//!
//! The driver contract, as `core::node::Node` documents it: after each input the
//! driver drains every output and carries them out in order. A Persist is written
//! through the WAL codec onto the member's disk; when `must_sync` it becomes
//! durable after a simulated fsync latency, and only then is `Persisted` fed back.
//! The simulator also checks persist-before-send itself: a vote granted or an
//! append acknowledged must already be covered by a Persist the member was told
//! is durable.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use detcd_core::error::{Code, EtcdError};
use detcd_core::node::{
    Credentials, Input, Node, NodeConfig, NodeStart, Output, PeerMessage, Persist, Request, Response,
};
use detcd_core::raft::Role;
use detcd_core::rng::Rng;
use detcd_proto::etcdserverpb::{Member, WatchResponse};
use detcd_proto::raftpb::{HardState, MessageType};
use prost::Message as _;

use crate::disk::{CrashPolicy, Damage, Disk};
use crate::invariants::{Cursors, Invariants, LogMirror, MemberView};
use crate::lost_writes::WriteLog;
use crate::membership::{MembershipCounters, Operator};
use crate::mutations::Mutations;
use crate::options::{FaultKind, Options};
use crate::queue::EventQueue;
use crate::storage::{self as member_storage, Storage};
use crate::trace::TraceHash;
use crate::workload::Workload;

/// Events the queue holds beyond this many mean a leak or a storm.
const EVENTS_MAX: usize = 2_000_000;
/// Client <-> member latency bounds.
const CLIENT_LATENCY_US_MIN: u64 = 100;
const CLIENT_LATENCY_US_MAX: u64 = 1_000;
const CLUSTER_ID: u64 = 0xdc_5eed;

/// Counters printed at the end of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub inputs: u64,
    pub outputs: u64,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    pub messages_partitioned: u64,
    pub messages_duplicated: u64,
    pub messages_delayed: u64,
    pub partitions: u64,
    pub one_way_cuts: u64,
    pub leader_isolations: u64,
    pub crashes: u64,
    /// Crashes that waited for a write in flight (`crash_aimed_per_mille`).
    pub crashes_aimed: u64,
    pub restarts: u64,
    pub torn_tails_recovered: u64,
    /// Snapshot files lost or corrupted while their member was down (snapshot-loss).
    pub snapshot_files_damaged: u64,
    /// Restarts after such damage that recovered (from an older snapshot, or the
    /// damaged file was not needed).
    pub snapshot_damage_recovered: u64,
    /// Restarts after such damage that were refused: the member stays down.
    pub snapshot_refusals: u64,
    pub slow_fsyncs: u64,
    pub clock_jumps: u64,
    pub pauses: u64,
    /// Events held back until a paused member resumed.
    pub events_held: u64,
    pub persists: u64,
    pub snapshots_saved: u64,
    pub snapshots_installed: u64,
    /// Auto-compactions the members saw applied.
    pub auto_compactions: u64,
    pub leader_changes: u64,
    pub invariant_checks: u64,
}

/// A scheduled happening.
#[derive(Debug)]
pub(crate) enum Event {
    Tick {
        member: u64,
        inc: u64,
    },
    Deliver {
        from: u64,
        to: u64,
        message: PeerMessage,
    },
    PersistDone {
        member: u64,
        inc: u64,
        ready_number: u64,
        /// Whether the Persist asked for a sync: the WAL is synced now, at the end
        /// of the simulated fsync latency.
        sync: bool,
    },
    /// The WAL sync of a Persist whose acknowledgement went ahead of it (the
    /// planted bug persisted-before-sync).
    SyncDone {
        member: u64,
        inc: u64,
    },
    SnapshotDone {
        member: u64,
        inc: u64,
        snapshot: Box<detcd_proto::raftpb::Snapshot>,
    },
    ToMember {
        member: u64,
        request_id: u64,
        request: Request,
        credentials: Credentials,
    },
    ToClient {
        request_id: u64,
        result: Result<Response, EtcdError>,
    },
    WatchToClient {
        member: u64,
        stream: u64,
        response: Box<WatchResponse>,
    },
    ClientWake {
        client: usize,
        token: u64,
    },
    Crash,
    /// An aimed crash landing: crash `member` if it is still incarnation `inc`.
    CrashAimed {
        member: u64,
        inc: u64,
    },
    Restart {
        member: u64,
    },
    PartitionChange,
    /// The leader-isolation fault: cut `member` off if it still leads in `term`.
    IsolateLeader {
        member: u64,
        term: u64,
    },
    /// The transport's word on a snapshot message from `from` to `to` (etcd's
    /// rafthttp reports whether the snapshot was sent).
    SnapshotReport {
        from: u64,
        to: u64,
        delivered: bool,
    },
    /// The end of the leader isolation that set the cuts numbered `epoch`.
    IsolationEnd {
        epoch: u64,
    },
    ClockJump,
    Pause,
    Heal,
    /// The membership operator's next step or its request's timeout.
    OperatorWake {
        token: u64,
    },
}

/// One member slot: its disk survives crashes; its node does not.
#[derive(Debug)]
pub(crate) struct Host {
    pub id: u64,
    config: NodeConfig,
    pub node: Option<Node>,
    storage: Option<Storage>,
    /// The disk while the member is down.
    parked_disk: Option<Disk>,
    pub inc: u64,
    clock_offset_ms: u64,
    /// When this member's process next looks whether to propose a v2 sync.
    v2_sync_at_us: u64,
    /// While `now_us` is below this, the member's process is paused: what it
    /// would handle is held back until then (the pause fault).
    paused_until_us: u64,
    /// An aimed crash waits for this member's next synced write.
    crash_armed: bool,
    disk_free_at_us: u64,
    mirror: LogMirror,
    cursors: Cursors,
    was_leader: bool,
    /// Persists handed out and not yet acknowledged: (ready, last index, hard state).
    persists: VecDeque<(u64, (u64, u64), HardState)>,
    durable_last_index: u64,
    /// The term of the entry at `durable_last_index` (0 when unknown: a snapshot).
    durable_last_term: u64,
    durable_hs: HardState,
    latest_hs: HardState,
    serializable_rev_max: i64,
    founder: bool,
    pub removed: bool,
    /// The last log entry (term, index) acknowledged durable when the member last
    /// crashed.
    durable_at_crash: (u64, u64),
    /// Persists not yet acknowledged that overwrite acknowledged entries (a
    /// conflicting tail replaced by the leader's): (ready number, first entry's
    /// index and term). Until acknowledged, recovery may find the old log or a
    /// new one.
    overwrites_pending: Vec<(u64, u64, u64)>,
    /// `overwrites_pending`'s first entries (index, term) when the member last crashed.
    overwrites_at_crash: Vec<(u64, u64)>,
    /// The term acknowledged durable when the member last crashed.
    term_at_crash: u64,
    /// The index of the newest snapshot written into the WAL.
    wal_snapshot_index: u64,
    /// A snapshot file of this member was damaged since it last started.
    snapshot_damaged: bool,
    /// Its start-up was refused after that damage: it stays down for good.
    refused: bool,
}

impl Host {
    fn new(id: u64, config: NodeConfig, storage: Storage, founder: bool) -> Host {
        Host {
            id,
            config,
            node: None,
            storage: Some(storage),
            parked_disk: None,
            inc: 0,
            clock_offset_ms: 0,
            v2_sync_at_us: 0,
            paused_until_us: 0,
            crash_armed: false,
            disk_free_at_us: 0,
            mirror: LogMirror::default(),
            cursors: Cursors::default(),
            was_leader: false,
            persists: VecDeque::new(),
            durable_last_index: 0,
            durable_last_term: 0,
            durable_hs: HardState::default(),
            latest_hs: HardState::default(),
            serializable_rev_max: 0,
            founder,
            removed: false,
            durable_at_crash: (0, 0),
            overwrites_pending: Vec::new(),
            overwrites_at_crash: Vec::new(),
            term_at_crash: 0,
            wal_snapshot_index: 0,
            snapshot_damaged: false,
            refused: false,
        }
    }
}

/// Where a client request's answer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Client {
        client: usize,
        serializable: bool,
    },
    Scenario,
    /// The membership operator (the `membership` fault).
    Operator,
    /// A member's own v2 sync (its answer is dropped, as the server's sync task does).
    V2Sync,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Safety,
    Liveness,
    Done,
}

/// One simulation run.
#[derive(Debug)]
pub struct Sim {
    pub opts: Options,
    pub mutations: Mutations,
    rng: Rng,
    pub now_us: u64,
    queue: EventQueue<Event>,
    pub(crate) hosts: BTreeMap<u64, Host>,
    cuts: BTreeSet<(u64, u64)>,
    /// Counts changes of `cuts` by faults, so that the end of a leader isolation
    /// does not heal a partition made after it.
    cuts_epoch: u64,
    pub trace: TraceHash,
    pub counters: Counters,
    invariants: Invariants,
    pub failure: Option<String>,
    pub phase: Phase,
    pub(crate) routes: BTreeMap<u64, Route>,
    next_request_id: u64,
    pub(crate) streams: BTreeMap<(u64, u64), (usize, usize)>,
    next_stream: u64,
    pub(crate) scenario_results: BTreeMap<u64, Result<Response, EtcdError>>,
    pub(crate) workload: Workload,
    /// Whether fault injection is on (the safety phase of a seeded run).
    faults_on: bool,
    verbose: bool,
    /// Per member, when the last answer to a client arrives (FIFO links).
    client_links: BTreeMap<u64, u64>,
    pub(crate) operator: Operator,
    /// What the membership operator did.
    pub membership: MembershipCounters,
    /// Every put any member applied, to resolve lost writes after the run.
    pub write_log: WriteLog,
}

impl Sim {
    /// A cluster of `opts.nodes` founding members, nothing scheduled but ticks.
    pub fn new(opts: Options, mutations: Mutations) -> Sim {
        let mut rng = Rng::new(opts.seed);
        let ids: Vec<u64> = (1..=opts.nodes as u64).collect();
        let initial: Vec<Member> = ids.iter().map(|&id| member(id)).collect();
        let mut sim = Sim {
            workload: Workload::new(&opts, rng.fork()),
            opts,
            mutations,
            rng,
            now_us: 0,
            queue: EventQueue::new(EVENTS_MAX),
            hosts: BTreeMap::new(),
            cuts: BTreeSet::new(),
            cuts_epoch: 0,
            trace: TraceHash::new(),
            counters: Counters::default(),
            invariants: Invariants::default(),
            failure: None,
            phase: Phase::Safety,
            routes: BTreeMap::new(),
            next_request_id: 1,
            streams: BTreeMap::new(),
            next_stream: 1,
            scenario_results: BTreeMap::new(),
            faults_on: false,
            verbose: std::env::var_os("DETCD_SIM_LOG").is_some(),
            client_links: BTreeMap::new(),
            operator: Operator::default(),
            membership: MembershipCounters::default(),
            write_log: WriteLog::default(),
        };
        for &id in &ids {
            let config = sim.node_config(id, initial.clone());
            let storage = sim.fresh_storage(id);
            sim.hosts.insert(id, Host::new(id, config, storage, true));
            sim.start_node(id, NodeStart::Found);
        }
        sim
    }

    /// The storage options of member `id`.
    fn storage_options(&self, id: u64) -> detcd_storage::StorageOptions {
        member_storage::options(
            id,
            CLUSTER_ID,
            self.opts.wal_segment_bytes,
            self.opts.max_snapshots,
        )
    }

    /// A new member's storage, on a fresh disk.
    fn fresh_storage(&self, id: u64) -> Storage {
        let mut disk = Disk::new();
        disk.sync_lies = self.mutations.is("disk-sync-lies");
        member_storage::open(disk, &self.storage_options(id))
            .expect("an empty disk opens")
            .storage
    }

    /// Starts a member the cluster has just added (`NodeStart::Join`), on a fresh
    /// disk, named `name` (its peer URL is `http://{name}:2380`).
    pub(crate) fn add_joiner(&mut self, id: u64, name: &str, members: Vec<Member>) {
        let mut config = self.node_config_named(id, name, members);
        config.client_urls = vec![format!("http://{name}:2379")];
        let storage = self.fresh_storage(id);
        self.hosts.insert(id, Host::new(id, config, storage, false));
        self.trace.event("join", &id.to_le_bytes());
        self.start_node(id, NodeStart::Join);
    }

    /// Stops a member the cluster removed, for good (its process is shut down; it
    /// is never restarted).
    pub(crate) fn retire(&mut self, id: u64) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        host.removed = true;
        if host.node.take().is_some() {
            host.inc += 1;
            self.workload.member_crashed(id);
        }
        self.streams.retain(|(m, _), _| *m != id);
    }

    pub(crate) fn queue_push(&mut self, at_us: u64, event: Event) {
        self.queue.push(at_us, event);
    }

    /// Whether the faulty phase is under way.
    pub(crate) fn faults_active(&self) -> bool {
        self.faults_on
    }

    fn node_config(&self, id: u64, initial: Vec<Member>) -> NodeConfig {
        self.node_config_named(id, &format!("m{id}"), initial)
    }

    fn node_config_named(&self, id: u64, name: &str, initial: Vec<Member>) -> NodeConfig {
        let mut c = NodeConfig::new(id, CLUSTER_ID, name, initial);
        c.client_urls = vec![format!("http://m{id}:2379")];
        c.tick_ms = self.opts.tick_ms;
        c.election_ticks = self.opts.election_ticks;
        c.snapshot_count = self.opts.snapshot_count;
        c.append_bytes_max = self.opts.append_bytes_max;
        c.snapshot_step_bytes = self.opts.snapshot_step_bytes;
        c.snapshot_size_free_bytes = self.opts.snapshot_size_free_bytes;
        c.auto_compaction = self.opts.auto_compaction;
        c.request_timeout_ms = self.opts.request_timeout_ms.max(self.opts.election_timeout_ms());
        c.seed = self.opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id;
        c
    }

    pub fn member_ids(&self) -> Vec<u64> {
        self.hosts.keys().copied().collect()
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.hosts.get(&id).is_some_and(|h| h.node.is_some())
    }

    pub fn node(&self, id: u64) -> Option<&Node> {
        self.hosts.get(&id).and_then(|h| h.node.as_ref())
    }

    pub fn now_ms(&self) -> u64 {
        self.now_us / 1000
    }

    /// `member`'s wall clock as Unix milliseconds (the simulator's time plus its
    /// clock jumps), for the v2 store's request times and expiries.
    pub fn wall_ms(&self, member: u64) -> u64 {
        let offset = self.hosts.get(&member).map_or(0, |h| h.clock_offset_ms);
        crate::v2_workload::EPOCH_UNIX_MS + self.now_ms() + offset
    }

    /// The server's v2 sync task on `id`: every sync interval, a leader whose v2
    /// store has keys with a TTL proposes its clock, so they expire.
    fn maybe_v2_sync(&mut self, id: u64) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        if self.now_us < host.v2_sync_at_us {
            return;
        }
        host.v2_sync_at_us = self.now_us + crate::v2_workload::SYNC_INTERVAL_MS * 1000;
        let Some(node) = host.node.as_ref() else { return };
        if node.raft_status().role != Role::Leader || !node.v2_store().has_ttl_keys() {
            return;
        }
        let sync = detcd_proto::detcdpb::V2Request {
            method: "SYNC".to_string(),
            time_unix_ms: self.wall_ms(id),
            ..Default::default()
        };
        self.submit(id, Request::V2(sync), Route::V2Sync);
        if let Some(v2) = self.workload.v2.as_mut() {
            v2.syncs += 1;
        }
    }

    fn start_node(&mut self, id: u64, start: NodeStart) {
        let host = self.hosts.get_mut(&id).expect("host");
        host.inc += 1;
        let mut config = host.config.clone();
        config.seed ^= host.inc.wrapping_mul(0x51_7cc1_b727_220a);
        host.mirror = LogMirror::default();
        if let NodeStart::Recover {
            snapshot,
            entries,
            hard_state,
        } = &start
        {
            let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
            host.mirror.reset(index);
            host.wal_snapshot_index = index;
            host.mirror.append(entries);
            host.durable_last_index = host.mirror.last_index();
            host.durable_last_term = host.mirror.get(host.durable_last_index).map_or(0, |(t, _)| t);
            host.durable_hs = *hard_state;
            host.latest_hs = *hard_state;
        } else {
            host.wal_snapshot_index = 0;
            host.durable_last_index = 0;
            host.durable_last_term = 0;
            host.durable_hs = HardState::default();
            host.latest_hs = HardState::default();
        }
        host.cursors = Cursors::default();
        host.was_leader = false;
        host.persists.clear();
        host.serializable_rev_max = 0;
        let inc = host.inc;
        match Node::new(config, start) {
            Ok(node) => host.node = Some(node),
            Err(e) => {
                self.fail(format!("member {id:x} failed to start: {e}"));
                return;
            }
        }
        let first_tick = self.now_us + self.rng.range(0, self.opts.tick_ms * 1000);
        self.queue.push(first_tick, Event::Tick { member: id, inc });
        self.drain(id);
    }

    /// Prints a line of the run's log when `DETCD_SIM_LOG` is set.
    pub fn log(&self, line: std::fmt::Arguments<'_>) {
        if self.verbose {
            eprintln!("[{:>10} us] {line}", self.now_us);
        }
    }

    pub fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            self.failure = Some(format!("at {} ms: {why}", self.now_ms()));
        }
    }

    /// Feeds one input to a running member and carries out everything it asks.
    pub(crate) fn feed(&mut self, id: u64, input: Input) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        let Some(node) = host.node.as_mut() else { return };
        let now_ms = self.now_us / 1000 + host.clock_offset_ms;
        self.counters.inputs += 1;
        hash_input(&mut self.trace, id, &input);
        let input = match input {
            Input::Tick { .. } => Input::Tick { now_ms },
            other => other,
        };
        node.handle(input);
        self.drain(id);
    }

    fn drain(&mut self, id: u64) {
        loop {
            let Some(host) = self.hosts.get_mut(&id) else {
                return;
            };
            let Some(node) = host.node.as_mut() else { return };
            let Some(output) = node.poll() else { break };
            if !matches!(output, Output::PeerUrls { .. } | Output::Status(_)) {
                // Peer URLs mean nothing to the simulated network, and the status
                // is for the driver's metrics; left out of the counters and the
                // trace so that recorded hashes keep their meaning.
                self.counters.outputs += 1;
                hash_output(&mut self.trace, id, &output);
            }
            self.carry_out(id, output);
        }
        self.check_member(id);
    }

    fn carry_out(&mut self, id: u64, output: Output) {
        match output {
            Output::Persist(Persist {
                ready_number,
                snapshot,
                entries,
                hard_state,
                must_sync,
            }) => {
                self.counters.persists += 1;
                let host = self.hosts.get_mut(&id).expect("host");
                let storage = host.storage.as_mut().expect("running member has storage");
                // The order a server's storage thread follows: a snapshot's file
                // (durable), its marker (synced), then entries and hard state.
                let mut written = Ok(());
                if let Some(s) = &snapshot {
                    let index = s.metadata.as_ref().map_or(0, |m| m.index);
                    host.mirror.reset(index);
                    host.wal_snapshot_index = host.wal_snapshot_index.max(index);
                    written = storage.save_snapshot(s);
                    if index > 1 {
                        self.counters.snapshots_installed += 1;
                    }
                }
                if let Some(first) = entries.first().filter(|e| e.index <= host.durable_last_index) {
                    host.overwrites_pending
                        .push((ready_number, first.index, first.term));
                }
                host.mirror.append(&entries);
                written = written.and_then(|()| storage.save(hard_state.as_ref(), &entries, false));
                if let Some(hs) = &hard_state {
                    host.latest_hs = *hs;
                }
                let last = host.mirror.last_index();
                let last_term = host.mirror.get(last).map_or(0, |(t, _)| t);
                host.persists
                    .push_back((ready_number, (last_term, last), host.latest_hs));
                if let Err(e) = written {
                    self.fail(format!("member {id:x} cannot persist: {e}"));
                    return;
                }
                let latency = if must_sync { self.fsync_latency_us() } else { 0 };
                let host = self.hosts.get_mut(&id).expect("host");
                let done = host.disk_free_at_us.max(self.now_us + latency);
                host.disk_free_at_us = done;
                let inc = host.inc;
                if must_sync {
                    self.land_aimed_crash(id, done);
                }
                if self.mutations.is("persisted-before-sync") {
                    self.queue.push(done, Event::SyncDone { member: id, inc });
                    self.queue.push(
                        self.now_us,
                        Event::PersistDone {
                            member: id,
                            inc,
                            ready_number,
                            sync: false,
                        },
                    );
                } else {
                    self.queue.push(
                        done,
                        Event::PersistDone {
                            member: id,
                            inc,
                            ready_number,
                            sync: must_sync,
                        },
                    );
                }
            }
            Output::Send { to, message } => {
                if let PeerMessage::Raft(m) = &message {
                    self.check_persist_before_send(id, m);
                }
                self.send(id, to, message);
            }
            Output::Respond {
                id: request_id,
                result,
            } => {
                if let Some(Route::Client {
                    client,
                    serializable: true,
                }) = self.routes.get(&request_id).copied()
                {
                    self.observe_auth_serve(client, request_id, id);
                }
                let host = self.hosts.get_mut(&id).expect("host");
                if let (
                    Some(Route::Client {
                        serializable: true, ..
                    }),
                    Ok(Response::Range(r)),
                ) = (self.routes.get(&request_id), &result)
                {
                    let rev = r.header.as_ref().map_or(0, |h| h.revision);
                    if rev < host.serializable_rev_max {
                        let max = host.serializable_rev_max;
                        self.fail(format!(
                            "serializable read on member {id:x} went back from revision {max} to {rev}"
                        ));
                    } else {
                        host.serializable_rev_max = rev;
                    }
                }
                let at = self.client_link_at(id);
                self.queue.push(at, Event::ToClient { request_id, result });
            }
            Output::Watch { stream, response } => {
                let at = self.client_link_at(id);
                self.queue.push(
                    at,
                    Event::WatchToClient {
                        member: id,
                        stream,
                        response: Box::new(response),
                    },
                );
            }
            Output::SaveSnapshot { snapshot } => {
                // A server's snapshot writer saves the file (durably) while the
                // member goes on; it is done after the simulated latency, and only
                // then is its WAL marker written.
                self.counters.snapshots_saved += 1;
                let latency = self.fsync_latency_us();
                let host = self.hosts.get_mut(&id).expect("host");
                let inc = host.inc;
                let done = host.disk_free_at_us.max(self.now_us + latency);
                host.disk_free_at_us = done;
                self.land_aimed_crash(id, done);
                let event = Event::SnapshotDone {
                    member: id,
                    inc,
                    snapshot: Box::new(snapshot),
                };
                self.queue.push(done, event);
            }
            Output::ReleaseWal { index } => {
                let host = self.hosts.get_mut(&id).expect("host");
                let storage = host.storage.as_mut().expect("storage");
                if let Err(e) = storage.wal_mut().release_to(index) {
                    self.fail(format!("member {id:x} cannot release its WAL: {e}"));
                }
            }
            Output::AutoCompaction { completed, .. } => {
                if completed {
                    self.counters.auto_compactions += 1;
                }
            }
            Output::RoleChanged { role, term, .. } => {
                self.counters.leader_changes += 1;
                if role == Role::Leader {
                    self.maybe_isolate_new_leader(id, term);
                }
            }
            // The simulated network needs no addresses, and nothing asks for exports.
            Output::PeerUrls { .. }
            | Output::SnapshotExport { .. }
            | Output::PortableHead { .. }
            | Output::PortableRecords { .. }
            | Output::Status(_) => {}
            Output::Removed => {
                let host = self.hosts.get_mut(&id).expect("host");
                host.removed = true;
                host.node = None;
                let member = id;
                self.streams.retain(|(m, _), _| *m != member);
            }
        }
    }

    /// When an answer leaving member `id` now reaches its client: client
    /// connections are streams, so answers from one member arrive in order.
    fn client_link_at(&mut self, id: u64) -> u64 {
        let at = self.now_us + self.rng.range(CLIENT_LATENCY_US_MIN, CLIENT_LATENCY_US_MAX);
        let link = self.client_links.entry(id).or_default();
        *link = (*link).max(at);
        *link
    }

    fn check_persist_before_send(&mut self, id: u64, m: &detcd_proto::raftpb::Message) {
        let host = &self.hosts[&id];
        let kind = MessageType::try_from(m.r#type).unwrap_or(MessageType::MsgHup);
        let broken = match kind {
            MessageType::MsgVoteResp if !m.reject => {
                host.durable_hs.term < m.term
                    || (host.durable_hs.term == m.term && host.durable_hs.vote != m.to)
            }
            MessageType::MsgAppResp if !m.reject => host.durable_last_index < m.index,
            _ => false,
        };
        if broken {
            let (hs, last) = (host.durable_hs, host.durable_last_index);
            self.fail(format!(
                "persist before send: member {id:x} sent {kind:?} (term {}, index {}) to {:x} ahead of its durable state (term {}, vote {:x}, last index {last})",
                m.term, m.index, m.to, hs.term, hs.vote
            ));
        }
    }

    fn fsync_latency_us(&mut self) -> u64 {
        let mut us = self.rng.range(self.opts.fsync_min_us, self.opts.fsync_max_us + 1);
        if self.faults_on
            && self.opts.faults.has(FaultKind::SlowFsync)
            && self.rng.chance(self.opts.slow_fsync_per_mille, 1000)
        {
            us += self.rng.range(0, self.opts.slow_fsync_max_us);
            self.counters.slow_fsyncs += 1;
        }
        us
    }

    fn send(&mut self, from: u64, to: u64, message: PeerMessage) {
        self.counters.messages_sent += 1;
        let f = self.opts.faults;
        let spread = 2 * self.opts.delay_mean_us.saturating_sub(self.opts.delay_min_us) + 1;
        let mut delay = self.opts.delay_min_us + self.rng.range(0, spread);
        if self.cuts.contains(&(from, to)) {
            self.counters.messages_partitioned += 1;
            self.report_lost_snapshot(from, to, &message, delay);
            return;
        }
        if self.faults_on && f.has(FaultKind::Drop) && self.rng.chance(self.opts.drop_per_mille, 1000) {
            self.counters.messages_dropped += 1;
            self.report_lost_snapshot(from, to, &message, delay);
            return;
        }
        if self.faults_on && f.has(FaultKind::Delay) && self.rng.chance(self.opts.delay_spike_per_mille, 1000)
        {
            delay += self.rng.range(0, self.opts.delay_spike_max_us + 1);
            self.counters.messages_delayed += 1;
        }
        // Raft's own messages are idempotent and may be replayed; a forwarded
        // proposal is not (etcd's stream transport never duplicates one, and a
        // replayed MsgProp would apply a client's write twice), so it never is.
        let replayable = match &message {
            PeerMessage::Raft(m) => m.r#type != MessageType::MsgProp as i32,
            _ => false,
        };
        if replayable
            && self.faults_on
            && f.has(FaultKind::Duplicate)
            && self.rng.chance(self.opts.duplicate_per_mille, 1000)
        {
            self.counters.messages_duplicated += 1;
            // Usually soon after the original; sometimes elections later, when the
            // sender may long be deposed (a stale packet a follower must refuse).
            let late_us = if self.rng.chance(1, 4) {
                2 * self.opts.election_timeout_ms() * 1000
            } else {
                10 * self.opts.delay_mean_us
            };
            let again = delay + self.rng.range(0, late_us + 1);
            self.queue.push(
                self.now_us + again,
                Event::Deliver {
                    from,
                    to,
                    message: message.clone(),
                },
            );
        }
        self.queue
            .push(self.now_us + delay, Event::Deliver { from, to, message });
    }

    /// A snapshot message that is lost is reported failed to its sender, as the
    /// transport does when the stream breaks: without the report the leader
    /// waits for that follower's snapshot for ever.
    fn report_lost_snapshot(&mut self, from: u64, to: u64, message: &PeerMessage, after_us: u64) {
        if is_snapshot(message) {
            let event = Event::SnapshotReport {
                from,
                to,
                delivered: false,
            };
            self.queue.push(self.now_us + after_us, event);
        }
    }

    fn check_member(&mut self, id: u64) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        let Some(node) = host.node.as_ref() else { return };
        self.write_log.observe(node.store());
        let status = node.raft_status();
        let is_leader = status.role == Role::Leader;
        let view = MemberView {
            id,
            term: status.term,
            commit: status.commit,
            applied: node.applied_index(),
            is_leader,
            became_leader: is_leader && !host.was_leader,
            log: &host.mirror,
        };
        host.was_leader = is_leader;
        self.counters.invariant_checks += 1;
        let mut result = self.invariants.check(view, &mut host.cursors);
        if let (Ok(()), Some(v2)) = (&result, self.workload.v2.as_mut()) {
            result = v2
                .history
                .observe_state(id, node.applied_index(), node.v2_store());
        }
        if let Err(why) = result {
            self.fail(why);
        }
    }

    /// Processes events due up to `until_us`; stops early on a failure.
    pub fn run_until(&mut self, until_us: u64) {
        while self.failure.is_none() {
            let Some((at, event)) = self.queue.pop_until(until_us) else {
                break;
            };
            debug_assert!(at >= self.now_us, "time went back");
            self.now_us = at;
            self.handle(event);
        }
        if self.failure.is_none() {
            self.now_us = self.now_us.max(until_us);
        }
    }

    /// The member whose process handles `event`, for the pause fault. The disk's
    /// own completions (`SyncDone`) and everything on the clients' side are not
    /// held back by a paused process.
    fn handled_by(event: &Event) -> Option<u64> {
        match event {
            Event::Tick { member, .. }
            | Event::PersistDone { member, .. }
            | Event::SnapshotDone { member, .. }
            | Event::ToMember { member, .. } => Some(*member),
            Event::Deliver { to, .. } => Some(*to),
            Event::SnapshotReport { from, .. } => Some(*from),
            _ => None,
        }
    }

    /// When `id` resumes, if its process is paused now.
    fn paused_until(&self, id: u64) -> Option<u64> {
        self.hosts
            .get(&id)
            .map(|h| h.paused_until_us)
            .filter(|&until| until > self.now_us)
    }

    fn handle(&mut self, event: Event) {
        if let Some(until) = Self::handled_by(&event).and_then(|id| self.paused_until(id)) {
            // Held in order: events held for one pause come out in the order
            // they arrived (the queue breaks ties by scheduling order).
            self.counters.events_held += 1;
            self.queue.push(until, event);
            return;
        }
        match event {
            Event::Tick { member, inc } => {
                if self
                    .hosts
                    .get(&member)
                    .is_some_and(|h| h.inc == inc && h.node.is_some())
                {
                    self.feed(member, Input::Tick { now_ms: 0 });
                    self.queue.push(
                        self.now_us + self.opts.tick_ms * 1000,
                        Event::Tick { member, inc },
                    );
                    if self.opts.v2 {
                        self.maybe_v2_sync(member);
                    }
                }
            }
            Event::Deliver { from, to, message } => {
                let snapshot = is_snapshot(&message);
                let delivered = !self.cuts.contains(&(from, to)) && self.is_up(to);
                if self.cuts.contains(&(from, to)) {
                    self.counters.messages_partitioned += 1;
                } else if self.is_up(to) {
                    self.counters.messages_delivered += 1;
                    self.feed(to, Input::Peer(message));
                }
                if snapshot {
                    match self.paused_until(from) {
                        Some(until) => {
                            let report = Event::SnapshotReport { from, to, delivered };
                            self.queue.push(until, report);
                        }
                        None => self.feed(from, Input::SnapshotReport { peer: to, delivered }),
                    }
                }
            }
            Event::SnapshotReport { from, to, delivered } => {
                self.feed(from, Input::SnapshotReport { peer: to, delivered });
            }
            Event::PersistDone {
                member,
                inc,
                ready_number,
                sync,
            } => {
                let Some(host) = self
                    .hosts
                    .get_mut(&member)
                    .filter(|h| h.inc == inc && h.node.is_some())
                else {
                    return;
                };
                let storage = host.storage.as_mut().expect("storage");
                if sync {
                    // The sync covers what was written before this moment, this
                    // Persist's records among them (a real disk may make them
                    // durable at any time; this is the latest).
                    if let Err(e) = storage.wal_mut().sync() {
                        self.fail(format!("member {member:x} cannot sync its WAL: {e}"));
                        return;
                    }
                }
                host.overwrites_pending
                    .retain(|&(ready, _, _)| ready > ready_number);
                while host.persists.front().is_some_and(|p| p.0 <= ready_number) {
                    let (_, (last_term, last), hs) = host.persists.pop_front().expect("front");
                    host.durable_last_index = last;
                    host.durable_last_term = last_term;
                    host.durable_hs = hs;
                }
                self.feed(member, Input::Persisted { ready_number });
            }
            Event::SyncDone { member, inc } => {
                if let Some(host) = self.hosts.get_mut(&member).filter(|h| h.inc == inc) {
                    if let Some(storage) = host.storage.as_mut() {
                        // The planted bug's sync; a failure is not reported.
                        let _ = storage.wal_mut().sync();
                    }
                }
            }
            Event::SnapshotDone {
                member,
                inc,
                snapshot,
            } => {
                let Some(host) = self
                    .hosts
                    .get_mut(&member)
                    .filter(|h| h.inc == inc && h.node.is_some())
                else {
                    return;
                };
                let storage = host.storage.as_mut().expect("storage");
                // The marker goes into the WAL only once the file is durable, and
                // only if no newer snapshot (one installed from the leader while
                // this file was being written) is in the WAL already: entries after
                // that one do not follow this marker.
                let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
                let mut saved = storage.snapshotter().save(&snapshot).map(|_| ());
                if saved.is_ok() && index > host.wal_snapshot_index {
                    saved = storage.mark_snapshot(&snapshot.metadata.clone().unwrap_or_default());
                    host.wal_snapshot_index = index;
                }
                if let Err(e) = saved {
                    self.fail(format!("member {member:x} cannot save snapshot {index}: {e}"));
                    return;
                }
                self.feed(member, Input::SnapshotSaved { index });
            }
            Event::ToMember {
                member,
                request_id,
                request,
                credentials,
            } => {
                if !self.is_up(member) {
                    return; // lost with the connection; the client times out
                }
                if let Request::WatchCreate { stream, .. } = &request {
                    if let Some(Route::Client { client, .. }) = self.routes.get(&request_id) {
                        let session = self.workload.pending_watch_session(*client);
                        if let Some(session) = session {
                            self.streams.insert((member, *stream), (*client, session));
                        }
                    }
                }
                self.feed(
                    member,
                    Input::Client {
                        id: request_id,
                        request,
                        credentials,
                    },
                );
            }
            Event::ToClient { request_id, result } => match self.routes.remove(&request_id) {
                Some(Route::Scenario) => {
                    self.scenario_results.insert(request_id, result);
                }
                Some(Route::Client { client, .. }) => self.client_response(client, request_id, result),
                Some(Route::Operator) => self.operator_response(request_id, result),
                Some(Route::V2Sync) | None => {}
            },
            Event::WatchToClient {
                member,
                stream,
                response,
            } => {
                if let Some(&(client, session)) = self.streams.get(&(member, stream)) {
                    if response.canceled {
                        self.streams.remove(&(member, stream));
                    }
                    self.workload.watch_response(client, session, &response);
                }
            }
            Event::ClientWake { client, token } => self.client_wake(client, token),
            Event::Crash => self.crash_random(),
            Event::CrashAimed { member, inc } => {
                if self.faults_on && self.hosts.get(&member).is_some_and(|h| h.inc == inc) {
                    self.counters.crashes_aimed += 1;
                    self.crash_and_schedule_restart(member);
                }
            }
            Event::Restart { member } => self.restart(member),
            Event::PartitionChange => self.partition_change(),
            Event::IsolateLeader { member, term } => self.isolate_leader(member, term),
            Event::IsolationEnd { epoch } => {
                if self.faults_on && epoch == self.cuts_epoch {
                    self.cuts.clear();
                    self.cuts_epoch += 1;
                }
            }
            Event::ClockJump => self.clock_jump(),
            Event::Pause => self.pause_random(),
            Event::Heal => self.heal(),
            Event::OperatorWake { token } => self.operator_wake(token),
        }
    }

    /// Sends a request to `member` on behalf of a client or scenario; returns its id.
    pub(crate) fn submit(&mut self, member: u64, request: Request, route: Route) -> u64 {
        let credentials = self.default_credentials();
        self.submit_as(member, request, route, credentials)
    }

    /// Sends `request` to `member` as `credentials` say.
    pub(crate) fn submit_as(
        &mut self,
        member: u64,
        request: Request,
        route: Route,
        credentials: Credentials,
    ) -> u64 {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.routes.insert(request_id, route);
        let at = self.now_us + self.rng.range(CLIENT_LATENCY_US_MIN, CLIENT_LATENCY_US_MAX);
        self.queue.push(
            at,
            Event::ToMember {
                member,
                request_id,
                request,
                credentials,
            },
        );
        request_id
    }

    pub(crate) fn new_stream(&mut self) -> u64 {
        self.next_stream += 1;
        self.next_stream
    }

    pub(crate) fn schedule_wake(&mut self, client: usize, at_us: u64, token: u64) {
        self.queue.push(at_us, Event::ClientWake { client, token });
    }

    pub(crate) fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    // ---- faults ----

    /// Crashes `id` (power loss): the node is gone, its disk loses what was not
    /// synced (maybe tearing the last write).
    pub fn crash(&mut self, id: u64) {
        let torn = self.faults_on && self.opts.faults.has(FaultKind::TornWrite);
        let snapshot_loss = self.snapshot_loss_allowed();
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        if host.node.take().is_none() {
            return;
        }
        self.counters.crashes += 1;
        self.trace.event("crash", &id.to_le_bytes());
        if self.verbose {
            eprintln!("[{:>10} us] crash member {id:x}", self.now_us);
        }
        let mut disk = member_storage::into_disk(host.storage.take().expect("storage"));
        let policy = CrashPolicy {
            lose_unsynced: true,
            tear: torn,
            garbage: torn,
        };
        disk.crash(&mut self.rng, policy, &member_storage::accepts_garbage);
        let files = member_storage::snapshot_files(&disk);
        if snapshot_loss && !files.is_empty() && self.rng.chance(1, 3) {
            let name = &files[self.rng.range(0, files.len() as u64) as usize];
            let damage = if self.rng.chance(1, 2) {
                Damage::Lost
            } else {
                Damage::Corrupt {
                    offset: self.rng.range(0, 1 << 20) as usize,
                }
            };
            if disk.damage(name, damage) {
                host.snapshot_damaged = true;
                self.counters.snapshot_files_damaged += 1;
                self.trace
                    .event("snapshot-damage", format!("{id}:{name}:{damage:?}").as_bytes());
                if self.verbose {
                    eprintln!(
                        "[{:>10} us] member {id:x}: snapshot file {name}: {damage:?}",
                        self.now_us
                    );
                }
            }
        }
        host.parked_disk = Some(disk);
        host.durable_at_crash = (host.durable_last_term, host.durable_last_index);
        host.overwrites_at_crash = std::mem::take(&mut host.overwrites_pending)
            .into_iter()
            .map(|(_, index, term)| (index, term))
            .collect();
        host.term_at_crash = host.durable_hs.term;
        if self.verbose {
            eprintln!(
                "[{:>10} us] member {id:x} crashed with durable log to {}, commit {}",
                self.now_us, host.durable_last_index, host.cursors.commit
            );
        }
        host.inc += 1; // outstanding events of the old incarnation are void
        host.paused_until_us = 0;
        host.crash_armed = false;
        self.streams.retain(|(m, _), _| *m != id);
        self.workload.member_crashed(id);
    }

    /// Restarts a crashed member from its disk.
    pub fn restart(&mut self, id: u64) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        if host.node.is_some() || host.removed {
            return;
        }
        let Some(disk) = host.parked_disk.take() else {
            return;
        };
        self.counters.restarts += 1;
        self.trace.event("restart", &id.to_le_bytes());
        match member_storage::open(disk, &self.storage_options(id)) {
            Ok(member_storage::Opened {
                storage,
                start,
                torn_tail,
            }) => {
                if torn_tail {
                    self.counters.torn_tails_recovered += 1;
                }
                if std::mem::take(&mut self.hosts.get_mut(&id).expect("host").snapshot_damaged) {
                    // Recovered: the checks below and the cluster's say whether
                    // anything acknowledged was lost.
                    self.counters.snapshot_damage_recovered += 1;
                }
                if let Some(NodeStart::Recover {
                    snapshot,
                    hard_state,
                    entries,
                }) = &start
                {
                    let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
                    let last = entries.last().map_or(index, |e| e.index);
                    let last_term = entries
                        .last()
                        .map_or_else(|| snapshot.metadata.as_ref().map_or(0, |m| m.term), |e| e.term);
                    let (durable_term, durable) = self.hosts[&id].durable_at_crash;
                    let overwrites = &self.hosts[&id].overwrites_at_crash;
                    // The recovered log must be at least as up to date (Raft's
                    // comparison: last term, then last index) as the log the member
                    // acknowledged, unless an unacknowledged write that replaced part
                    // of it (a conflicting tail, replaced by the leader's entries)
                    // survived: those entries were not in the leader's log, so never
                    // committed (leader completeness), and the member held the new
                    // log in memory already. The replacement may even carry older
                    // terms than the tail it replaced (a leader's entries from before
                    // the term of a deposed leader's tail). One survived if the
                    // recovered log holds its first entry.
                    let replaced = overwrites.iter().any(|&(first, first_term)| {
                        first > index
                            && entries
                                .get((first - index - 1) as usize)
                                .is_some_and(|e| e.index == first && e.term == first_term)
                    });
                    if (last_term, last) < (durable_term, durable)
                        && !replaced
                        && !self.mutations_lose_durability()
                    {
                        self.fail(format!(
                            "member {id:x} recovered its log to {last_term}/{last}, but {durable_term}/{durable} was acknowledged durable before the crash"
                        ));
                        return;
                    }
                    self.log(format_args!(
                        "restart member {id:x}: snapshot {index}, hard state term {} commit {}, entries to {last}, torn tail {}",
                        hard_state.term, hard_state.commit, torn_tail
                    ));
                }
                let host = self.hosts.get_mut(&id).expect("host");
                self.invariants.restarted(id, host.term_at_crash);
                host.storage = Some(storage);
                host.disk_free_at_us = self.now_us;
                let start = start.unwrap_or(if host.founder {
                    NodeStart::Found
                } else {
                    NodeStart::Join
                });
                self.start_node(id, start);
            }
            Err(e) if self.hosts[&id].snapshot_damaged && member_storage::is_snapshot_refusal(&e) => {
                // The damaged file was the one the WAL needs: refusing is the only
                // correct answer (the member must be replaced, as in etcd).
                self.counters.snapshot_refusals += 1;
                self.trace.event("refused", &id.to_le_bytes());
                self.log(format_args!("member {id:x} refused to start: {e}"));
                self.hosts.get_mut(&id).expect("host").refused = true;
            }
            Err(e) => self.fail(format!("member {id:x} cannot restart: {e}")),
        }
    }

    /// Whether a crash may damage a snapshot file now (the snapshot-loss fault): one
    /// member at a time, and none after a refusal, whose refusal to start the cluster survives (three
    /// members or more, and no membership changes that could leave it without a
    /// quorum).
    fn snapshot_loss_allowed(&self) -> bool {
        self.faults_on
            && self.opts.faults.has(FaultKind::SnapshotLoss)
            && self.opts.nodes >= 3
            && !self.opts.faults.has(FaultKind::Membership)
            && !self.hosts.values().any(|h| h.snapshot_damaged || h.refused)
    }

    /// Whether a planted bug is allowed to lose acknowledged writes (the sim's own
    /// durability self-check then stands aside and lets the cluster checks find it).
    fn mutations_lose_durability(&self) -> bool {
        [
            "disk-sync-lies",
            "persisted-before-sync",
            "restart-forgets-unsynced-entries-late",
        ]
        .iter()
        .any(|m| self.mutations.is(m))
    }

    fn crash_random(&mut self) {
        if !self.faults_on {
            return; // healed: no more crashes (nor a next one scheduled)
        }
        if let Some(id) = self.pick_running(|_| true) {
            let aimed = self.opts.crash_aimed_per_mille;
            if aimed > 0 && self.rng.chance(aimed, 1000) {
                self.hosts.get_mut(&id).expect("host").crash_armed = true;
            } else {
                self.crash_and_schedule_restart(id);
            }
        }
        let next = self.rng.range(1, 2 * self.opts.crash_interval_ms + 1) * 1000;
        self.queue.push(self.now_us + next, Event::Crash);
    }

    /// A member drawn at random among those running that `also` accepts.
    fn pick_running(&mut self, also: impl Fn(&Host) -> bool) -> Option<u64> {
        let candidates: Vec<u64> = self
            .hosts
            .values()
            .filter(|h| h.node.is_some() && also(h))
            .map(|h| h.id)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.range(0, candidates.len() as u64) as usize])
    }

    fn crash_and_schedule_restart(&mut self, id: u64) {
        self.crash(id);
        let down = self.rng.range(1, self.opts.down_ms_max + 1) * 1000;
        self.queue.push(self.now_us + down, Event::Restart { member: id });
    }

    /// If an aimed crash waits for `id`, it lands while the write that just
    /// started (done at `done_us`) is in flight: before it is durable, or just as
    /// it becomes so.
    fn land_aimed_crash(&mut self, id: u64, done_us: u64) {
        let Some(host) = self.hosts.get_mut(&id).filter(|h| h.crash_armed) else {
            return;
        };
        host.crash_armed = false;
        let inc = host.inc;
        let at = self.rng.range(self.now_us, done_us + 1);
        self.queue.push(at, Event::CrashAimed { member: id, inc });
    }

    fn partition_change(&mut self) {
        if !self.faults_on {
            return;
        }
        let f = self.opts.faults;
        self.cuts_epoch += 1;
        if !self.cuts.is_empty() {
            self.cuts.clear();
            let next = self.rng.range(1, 2 * self.opts.partition_interval_ms + 1) * 1000;
            self.queue.push(self.now_us + next, Event::PartitionChange);
            return;
        }
        let ids = self.member_ids();
        let symmetric = f.has(FaultKind::Partition) && (!f.has(FaultKind::OneWay) || self.rng.chance(1, 2));
        if symmetric {
            self.counters.partitions += 1;
            let side: Vec<u64> = ids.iter().copied().filter(|_| self.rng.chance(1, 2)).collect();
            for &a in &side {
                for &b in ids.iter().filter(|b| !side.contains(b)) {
                    self.cuts.insert((a, b));
                    self.cuts.insert((b, a));
                }
            }
        } else {
            for &a in &ids {
                for &b in &ids {
                    if a != b && self.rng.chance(1, 4) {
                        self.cuts.insert((a, b));
                        self.counters.one_way_cuts += 1;
                    }
                }
            }
        }
        let length = self.rng.range(100, self.opts.partition_length_ms_max + 101) * 1000;
        self.queue.push(self.now_us + length, Event::PartitionChange);
    }

    /// The leader-isolation fault, drawn when `id` becomes leader of `term`: soon
    /// (often before its first appends land, sometimes after a round trip or two)
    /// it is cut off from every other member, replacing whatever partition holds.
    fn maybe_isolate_new_leader(&mut self, id: u64, term: u64) {
        if !self.faults_on
            || !self.opts.faults.has(FaultKind::Partition)
            || !self.rng.chance(self.opts.leader_isolation_per_mille, 1000)
        {
            return;
        }
        let after = self.rng.range(0, 6 * self.opts.delay_mean_us + 1);
        self.queue
            .push(self.now_us + after, Event::IsolateLeader { member: id, term });
    }

    fn isolate_leader(&mut self, id: u64, term: u64) {
        let leads = self.node(id).is_some_and(|n| {
            let status = n.raft_status();
            status.role == Role::Leader && status.term == term
        });
        if !self.faults_on || !leads {
            return;
        }
        self.counters.leader_isolations += 1;
        self.cuts.clear();
        self.isolate(id);
        self.cuts_epoch += 1;
        // At least an election timeout, so the others may elect a leader of their
        // own; often shorter than the two after which the isolated one notices
        // (CheckQuorum), so it returns still leading and sends appends of its term.
        let election_ms = self.opts.election_timeout_ms();
        let length_ms = election_ms + self.rng.range(0, election_ms + self.opts.partition_length_ms_max);
        let epoch = self.cuts_epoch;
        self.queue
            .push(self.now_us + length_ms * 1000, Event::IsolationEnd { epoch });
    }

    fn clock_jump(&mut self) {
        if !self.faults_on {
            return;
        }
        let ids = self.member_ids();
        let id = ids[self.rng.range(0, ids.len() as u64) as usize];
        let jump = self.rng.range(1, self.opts.clock_jump_ms_max + 1);
        self.hosts.get_mut(&id).expect("host").clock_offset_ms += jump;
        self.counters.clock_jumps += 1;
        let next = self.rng.range(1, 2 * self.opts.clock_jump_interval_ms + 1) * 1000;
        self.queue.push(self.now_us + next, Event::ClockJump);
    }

    /// Pauses a random running member's process for up to `pause_ms_max`.
    fn pause_random(&mut self) {
        if !self.faults_on {
            return;
        }
        let now_us = self.now_us;
        if let Some(id) = self.pick_running(|h| h.paused_until_us <= now_us) {
            let length_ms = self.rng.range(1, self.opts.pause_ms_max + 1);
            self.pause(id, length_ms);
        }
        let next = self.rng.range(1, 2 * self.opts.pause_interval_ms + 1) * 1000;
        self.queue.push(self.now_us + next, Event::Pause);
    }

    /// Pauses `id`'s process for `length_ms` from now: its ticks, messages, disk
    /// completions and client requests wait, in order, until it resumes.
    pub fn pause(&mut self, id: u64, length_ms: u64) {
        let until = self.now_us + length_ms * 1000;
        let Some(host) = self.hosts.get_mut(&id).filter(|h| h.node.is_some()) else {
            return;
        };
        host.paused_until_us = host.paused_until_us.max(until);
        self.counters.pauses += 1;
        self.trace.event("pause", &id.to_le_bytes());
        self.log(format_args!("pause member {id:x} for {length_ms} ms"));
    }

    /// Schedules the faults the options enable; they stop at the heal.
    pub fn start_faults(&mut self) {
        self.faults_on = true;
        let f = self.opts.faults;
        if f.has(FaultKind::Crash) {
            let at = self.rng.range(1, 2 * self.opts.crash_interval_ms + 1) * 1000;
            self.queue.push(at, Event::Crash);
        }
        if f.has(FaultKind::Partition) || f.has(FaultKind::OneWay) {
            let at = self.rng.range(1, 2 * self.opts.partition_interval_ms + 1) * 1000;
            self.queue.push(at, Event::PartitionChange);
        }
        if f.has(FaultKind::ClockJump) {
            let at = self.rng.range(1, 2 * self.opts.clock_jump_interval_ms + 1) * 1000;
            self.queue.push(at, Event::ClockJump);
        }
        self.start_membership();
        if f.has(FaultKind::Pause) {
            // After the others, so seeds without pauses draw as they did before.
            let at = self.rng.range(1, 2 * self.opts.pause_interval_ms + 1) * 1000;
            self.queue.push(at, Event::Pause);
        }
    }

    /// Ends the faulty phase: links healed, every member up, no more faults.
    pub fn heal(&mut self) {
        self.faults_on = false;
        self.phase = Phase::Liveness;
        self.cuts.clear();
        for host in self.hosts.values_mut() {
            host.paused_until_us = 0;
            host.crash_armed = false;
        }
        for id in self.member_ids() {
            self.restart(id);
        }
    }

    pub fn schedule_heal(&mut self, at_us: u64) {
        self.queue.push(at_us, Event::Heal);
    }

    /// Cuts every link to and from `id` (both directions).
    pub fn isolate(&mut self, id: u64) {
        for other in self.member_ids() {
            if other != id {
                self.cuts.insert((id, other));
                self.cuts.insert((other, id));
            }
        }
    }

    pub fn reconnect_all(&mut self) {
        self.cuts.clear();
    }

    /// Scenario API: sends `request` to `member`; the answer appears in
    /// [`Sim::result`] under the returned id.
    pub fn request(&mut self, member: u64, request: Request) -> u64 {
        self.submit(member, request, Route::Scenario)
    }

    pub fn result(&self, request_id: u64) -> Option<&Result<Response, EtcdError>> {
        self.scenario_results.get(&request_id)
    }

    /// Runs until `request_id` is answered or `timeout_ms` passes.
    pub fn wait(&mut self, request_id: u64, timeout_ms: u64) -> Option<Result<Response, EtcdError>> {
        let deadline = self.now_us + timeout_ms * 1000;
        while self.failure.is_none() && self.now_us < deadline {
            if let Some(r) = self.scenario_results.remove(&request_id) {
                return Some(r);
            }
            let step = (self.now_us + 1000).min(deadline);
            self.run_until(step);
        }
        self.scenario_results.remove(&request_id)
    }

    /// The current leader that every running member agrees on, if any.
    pub fn leader(&self) -> Option<u64> {
        let leaders: BTreeSet<u64> = self
            .hosts
            .values()
            .filter_map(|h| h.node.as_ref())
            .filter(|n| n.soft_state().role == Role::Leader)
            .map(|n| n.member_id())
            .collect();
        if leaders.len() == 1 {
            leaders.into_iter().next()
        } else {
            None
        }
    }

    pub fn invariant_checks(&self) -> u64 {
        self.invariants.checks
    }

    pub fn disk_bytes(&self) -> usize {
        self.hosts
            .values()
            .map(|h| {
                h.storage
                    .as_ref()
                    .map(|s| s.wal().fs().disk().bytes())
                    .or(h.parked_disk.as_ref().map(Disk::bytes))
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// Whether an error leaves the outcome of a request unknown (it may still apply).
pub fn outcome_unknown(e: &EtcdError) -> bool {
    matches!(
        e.code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Internal | Code::Cancelled
    )
}

fn is_snapshot(message: &PeerMessage) -> bool {
    matches!(message, PeerMessage::Raft(m) if m.r#type == MessageType::MsgSnap as i32)
}

fn member(id: u64) -> Member {
    Member {
        id,
        name: format!("m{id}"),
        peer_ur_ls: vec![format!("http://m{id}:2380")],
        client_ur_ls: vec![format!("http://m{id}:2379")],
        is_learner: false,
    }
}

fn hash_input(trace: &mut TraceHash, id: u64, input: &Input) {
    match input {
        Input::Tick { .. } => trace.event("tick", &id.to_le_bytes()),
        Input::Peer(PeerMessage::Raft(m)) => {
            let mut bytes = id.to_le_bytes().to_vec();
            bytes.extend_from_slice(&m.encode_to_vec());
            trace.event("raft", &bytes);
        }
        other => trace.event("input", format!("{id}:{other:?}").as_bytes()),
    }
}

fn hash_output(trace: &mut TraceHash, id: u64, output: &Output) {
    match output {
        Output::Send {
            to,
            message: PeerMessage::Raft(m),
        } => {
            let mut bytes = id.to_le_bytes().to_vec();
            bytes.extend_from_slice(&to.to_le_bytes());
            bytes.extend_from_slice(&m.encode_to_vec());
            trace.event("send", &bytes);
        }
        Output::Persist(Persist {
            ready_number,
            entries,
            hard_state,
            snapshot,
            must_sync,
        }) => {
            let mut bytes = id.to_le_bytes().to_vec();
            bytes.extend_from_slice(&ready_number.to_le_bytes());
            bytes.push(u8::from(*must_sync));
            for e in entries {
                bytes.extend_from_slice(&e.encode_to_vec());
            }
            if let Some(hs) = hard_state {
                bytes.extend_from_slice(&hs.encode_to_vec());
            }
            if let Some(s) = snapshot {
                bytes.extend_from_slice(&s.encode_to_vec());
            }
            trace.event("persist", &bytes);
        }
        other => trace.event("output", format!("{id}:{other:?}").as_bytes()),
    }
}
