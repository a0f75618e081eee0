//! A member slot and its lifecycle: start, crash (power loss), restart from its
//! disk, join and retirement.

use std::collections::{BTreeMap, VecDeque};

use detcd_core::node::{Node, NodeConfig, NodeStart, Request};
use detcd_core::raft::Role;
use detcd_proto::etcdserverpb::Member;
use detcd_proto::raftpb::HardState;
use detcd_storage::{Work, WrittenPass};

use super::{Event, Sim, CLUSTER_ID};
use crate::cluster::Route;
use crate::disk::{CrashPolicy, Damage, Disk};
use crate::invariants::{Cursors, LogMirror};
use crate::options::FaultKind;
use crate::storage::{self as member_storage, Storage};

/// One member slot: its disk survives crashes; its node does not.
#[derive(Debug)]
pub(crate) struct Host {
    pub id: u64,
    pub(super) config: NodeConfig,
    pub node: Option<Node>,
    pub(super) storage: Option<Storage>,
    /// The disk while the member is down.
    pub(super) parked_disk: Option<Disk>,
    pub inc: u64,
    pub(super) clock_offset_ms: u64,
    /// When this member's process next looks whether to propose a v2 sync.
    v2_sync_at_us: u64,
    /// While `now_us` is below this, the member's process is paused: what it
    /// would handle is held back until then (the pause fault).
    pub(super) paused_until_us: u64,
    /// An aimed crash waits for this member's next synced write.
    pub(super) crash_armed: bool,
    pub(super) disk_free_at_us: u64,
    pub(super) mirror: LogMirror,
    pub(super) cursors: Cursors,
    pub(super) was_leader: bool,
    /// Persists handed out and not yet acknowledged: (ready, last index, hard state).
    pub(super) persists: VecDeque<(u64, (u64, u64), HardState)>,
    pub(super) durable_last_index: u64,
    /// The term of the entry at `durable_last_index` (0 when unknown: a snapshot).
    pub(super) durable_last_term: u64,
    pub(super) durable_hs: HardState,
    /// Per term, the highest last index of this incarnation's Persists made
    /// durable while the member was in that term: an append answer generated in
    /// a term may be released after a later Persist of the same storage pass cut
    /// the log back (a newer leader's overwrite), like an answer delayed in the
    /// network; it needs only to have been durable when generated.
    pub(super) durable_by_term: BTreeMap<u64, u64>,
    pub(super) latest_hs: HardState,
    pub(super) serializable_rev_max: i64,
    pub(super) founder: bool,
    pub removed: bool,
    /// The last log entry (term, index) acknowledged durable when the member last
    /// crashed.
    pub(super) durable_at_crash: (u64, u64),
    /// Persists not yet acknowledged that overwrite acknowledged entries (a
    /// conflicting tail replaced by the leader's): (ready number, first entry's
    /// index and term). Until acknowledged, recovery may find the old log or a
    /// new one.
    pub(super) overwrites_pending: Vec<(u64, u64, u64)>,
    /// `overwrites_pending`'s first entries (index, term) when the member last crashed.
    pub(super) overwrites_at_crash: Vec<(u64, u64)>,
    /// The term acknowledged durable when the member last crashed.
    pub(super) term_at_crash: u64,
    /// Storage work handed over and not yet in a pass (the storage thread's
    /// queue; lost in a crash).
    pub(super) storage_queue: Vec<Work>,
    /// A pass is in flight: written, its sync or acknowledgement not done.
    pub(super) storage_busy: bool,
    /// The pass in flight, until its sync.
    pub(super) pass: Option<WrittenPass>,
    /// A snapshot file of this member was damaged since it last started.
    pub(super) snapshot_damaged: bool,
    /// Its start-up was refused after that damage: it stays down for good.
    pub(super) refused: bool,
}

impl Host {
    pub(super) fn new(id: u64, config: NodeConfig, storage: Storage, founder: bool) -> Host {
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
            durable_by_term: BTreeMap::new(),
            latest_hs: HardState::default(),
            serializable_rev_max: 0,
            founder,
            removed: false,
            durable_at_crash: (0, 0),
            overwrites_pending: Vec::new(),
            overwrites_at_crash: Vec::new(),
            term_at_crash: 0,
            storage_queue: Vec::new(),
            storage_busy: false,
            pass: None,
            snapshot_damaged: false,
            refused: false,
        }
    }
}

impl Sim {
    /// The storage options of member `id`.
    pub(super) fn storage_options(&self, id: u64) -> detcd_storage::StorageOptions {
        member_storage::options(
            id,
            CLUSTER_ID,
            self.opts.wal_segment_bytes,
            self.opts.max_snapshots,
        )
    }

    /// A new member's storage, on a fresh disk.
    pub(super) fn fresh_storage(&self, id: u64) -> Storage {
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
    /// The operator saw `id`'s removal commit: the member is never restarted,
    /// and its process is stopped after the delay a removed member keeps running
    /// in production (so that, when it was the leader and the others missed that
    /// the removal committed, one of them can still win an election with its
    /// vote; stopping it at once can leave a two-voter configuration without a
    /// quorum for good).
    pub(crate) fn retire(&mut self, id: u64) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        host.removed = true;
        let at = self.now_us + host.config.removed_stop_delay_ms() * 1000;
        let inc = host.inc;
        self.queue.push(at, Event::Retire { member: id, inc });
    }

    /// The removed member's process stops (unless it crashed or stopped by
    /// itself meanwhile).
    pub(super) fn stop_retired(&mut self, id: u64, inc: u64) {
        let Some(host) = self.hosts.get_mut(&id).filter(|h| h.inc == inc) else {
            return;
        };
        if host.node.take().is_some() {
            host.inc += 1;
            self.workload.member_crashed(id);
        }
        self.streams.retain(|(m, _), _| *m != id);
    }

    pub(super) fn node_config(&self, id: u64, initial: Vec<Member>) -> NodeConfig {
        self.node_config_named(id, &format!("m{id}"), initial)
    }

    pub(super) fn node_config_named(&self, id: u64, name: &str, initial: Vec<Member>) -> NodeConfig {
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

    /// The server's v2 sync task on `id`: every sync interval, a leader whose v2
    /// store has keys with a TTL proposes its clock, so they expire.
    pub(super) fn maybe_v2_sync(&mut self, id: u64) {
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

    pub(super) fn start_node(&mut self, id: u64, start: NodeStart) {
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
            host.mirror.append(entries);
            host.durable_last_index = host.mirror.last_index();
            host.durable_last_term = host.mirror.get(host.durable_last_index).map_or(0, |(t, _)| t);
            host.durable_hs = *hard_state;
            host.latest_hs = *hard_state;
        } else {
            host.durable_last_index = 0;
            host.durable_last_term = 0;
            host.durable_hs = HardState::default();
            host.latest_hs = HardState::default();
        }
        host.durable_by_term.clear();
        host.cursors = Cursors::default();
        host.was_leader = false;
        host.persists.clear();
        host.storage_queue.clear();
        host.storage_busy = false;
        host.pass = None;
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
        host.storage_queue.clear();
        host.storage_busy = false;
        host.pass = None;
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
                if !self.recovered_durably(id, start.as_ref(), torn_tail) {
                    return;
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
}

pub(super) fn member(id: u64) -> Member {
    Member {
        id,
        name: format!("m{id}"),
        peer_ur_ls: vec![format!("http://m{id}:2380")],
        client_ur_ls: vec![format!("http://m{id}:2379")],
        is_learner: false,
    }
}
