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
//!
//! This file holds the run's state, the event loop and the dispatch of each
//! event and output; the rest is by concept: `host` (a member's start, crash,
//! restart, join and retirement), `durability` (Persist and snapshot writes,
//! their acknowledgement, and the durability oracle), `network` (peer links,
//! partitions, delivery, client links), `faults` (fault injection and the heal),
//! `clients` (the [`crate::cluster::Cluster`] interface the workloads and the
//! membership operator act through) and `scenario` (the API test scenarios use).

mod clients;
mod durability;
mod faults;
mod host;
mod network;
mod scenario;

use std::collections::{BTreeMap, BTreeSet};

use detcd_core::error::EtcdError;
use detcd_core::node::{Credentials, Input, Node, NodeStart, Output, PeerMessage, Request, Response};
use detcd_core::raft::Role;
use detcd_core::rng::Rng;
use detcd_proto::etcdserverpb::{Member, WatchResponse};
use host::{member, Host};

use crate::cluster::Route;
use crate::invariants::{Invariants, MemberView};
use crate::lost_writes::WriteLog;
use crate::membership::Operator;
use crate::mutations::Mutations;
use crate::options::Options;
use crate::queue::EventQueue;
use crate::trace::{hash_input, hash_output, TraceHash};
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
    /// A member the operator removed stops (see `Sim::retire`).
    Retire {
        member: u64,
        inc: u64,
    },
    Deliver {
        from: u64,
        to: u64,
        message: PeerMessage,
    },
    /// A storage pass's sync latency is over (see `Sim::start_pass`).
    PassDone {
        member: u64,
        inc: u64,
    },
    /// The Persists up to `ready_number` acknowledged before their pass's sync
    /// (the planted bug persisted-before-sync).
    PersistedEarly {
        member: u64,
        inc: u64,
        ready_number: u64,
    },
    /// The snapshot writer has saved a file.
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
    /// Watch streams the workload hung up, to close on their members once it
    /// is done acting.
    closed_streams: Vec<(u64, u64)>,
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
            closed_streams: Vec::new(),
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

    /// Feeds one input to a running member at its clock (the simulator's time
    /// plus its clock jumps) and carries out everything it asks. As in
    /// production, [`Node::handle_at`] ticks the member first when its clock
    /// moved, so that what the input applies (a lease grant) reads a fresh
    /// clock. A Tick's own `now_ms` is replaced by the member's clock.
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
        node.handle_at(now_ms, input);
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
        // The turn is over: its storage work goes to the storage thread, which
        // starts a pass with it unless one is in flight.
        self.start_pass(id);
        self.check_member(id);
    }

    fn carry_out(&mut self, id: u64, output: Output) {
        match output {
            Output::Persist(persist) => self.persist(id, persist),
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
                    self.with_workload(|w, sim| w.observe_auth_serve(sim, client, request_id, id));
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
            Output::SaveSnapshot { snapshot } => self.save_snapshot(id, snapshot),
            Output::ReleaseWal { index } => self.release_wal(id, index),
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

    fn check_member(&mut self, id: u64) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        let Some(node) = host.node.as_ref() else { return };
        self.write_log.observe(node.store());
        if let Some(v2) = self.workload.v2.as_mut() {
            v2.events.observe(node.v2_store(), self.now_us);
        }
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

    /// The member whose process handles `event`, for the pause fault (its
    /// storage thread and snapshot writer included). Everything on the clients' side is not
    /// held back by a paused process.
    fn handled_by(event: &Event) -> Option<u64> {
        match event {
            Event::Tick { member, .. }
            | Event::PassDone { member, .. }
            | Event::PersistedEarly { member, .. }
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
            Event::Retire { member, inc } => self.stop_retired(member, inc),
            Event::Deliver { from, to, message } => self.deliver(from, to, message),
            Event::SnapshotReport { from, to, delivered } => {
                self.feed(from, Input::SnapshotReport { peer: to, delivered });
            }
            Event::PassDone { member, inc } => self.pass_done(member, inc),
            Event::PersistedEarly {
                member,
                inc,
                ready_number,
            } => self.acknowledge(member, inc, Some(ready_number), &[]),
            Event::SnapshotDone {
                member,
                inc,
                snapshot,
            } => self.snapshot_done(member, inc, snapshot),
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
                Some(Route::Client { client, .. }) => {
                    self.with_workload(|w, sim| w.client_response(sim, client, request_id, result));
                }
                Some(Route::Operator) => {
                    self.with_operator(|o, sim| o.operator_response(sim, request_id, result));
                }
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
            Event::ClientWake { client, token } => {
                self.with_workload(|w, sim| w.client_wake(sim, client, token));
            }
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
            Event::OperatorWake { token } => self.with_operator(|o, sim| o.operator_wake(sim, token)),
        }
    }
}
