//! Everything a run decides from its seed, decided up front and printed first.
//!
//! Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012): rather than every run
//! enabling every fault at a low rate, each seed turns some fault kinds off
//! entirely and picks its own rates for the rest. Runs without partitions get deep
//! into crash recovery; runs without crashes get long partition histories. The
//! forced list (`--faults`) replaces the swarm draw for the kinds it names.

use std::fmt;

use detcd_core::node::AutoCompaction;
use detcd_core::rng::Rng;

/// A kind of fault the simulator can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Symmetric partitions: the cluster splits into two sides.
    Partition,
    /// One-way partitions: messages from A to B are lost while B to A get through.
    OneWay,
    /// Message loss.
    Drop,
    /// Message duplication (a replayed packet).
    Duplicate,
    /// Long delays, which reorder messages on a link.
    Delay,
    /// Member crashes (power loss: unsynced writes lost) and restarts.
    Crash,
    /// A crash tears the last unsynced write at a sector boundary, maybe with garbage.
    TornWrite,
    /// Occasional fsyncs that take far longer than usual.
    SlowFsync,
    /// A member's clock jumps forward or is offset, which lease expiry must survive.
    ClockJump,
    /// Membership changes: add a learner, promote it, remove a member.
    Membership,
    /// Process pauses (a stop-the-world stall, a frozen VM): the member handles
    /// nothing for a while, then everything that queued up meanwhile, in order.
    Pause,
    /// A crashed member's snapshot file is lost or corrupted while it is down: it
    /// must restart from an older snapshot or refuse to start, never lose
    /// acknowledged writes.
    SnapshotLoss,
}

impl FaultKind {
    pub const ALL: [FaultKind; 12] = [
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Drop,
        FaultKind::Duplicate,
        FaultKind::Delay,
        FaultKind::Crash,
        FaultKind::TornWrite,
        FaultKind::SlowFsync,
        FaultKind::ClockJump,
        FaultKind::Membership,
        FaultKind::Pause,
        FaultKind::SnapshotLoss,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one-way",
            FaultKind::Drop => "drop",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Delay => "delay",
            FaultKind::Crash => "crash",
            FaultKind::TornWrite => "torn",
            FaultKind::SlowFsync => "slow-fsync",
            FaultKind::ClockJump => "clock-jump",
            FaultKind::Membership => "membership",
            FaultKind::Pause => "pause",
            FaultKind::SnapshotLoss => "snapshot-loss",
        }
    }

    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The set of enabled fault kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultSet(u16);

impl FaultSet {
    pub const NONE: FaultSet = FaultSet(0);

    pub fn all() -> FaultSet {
        FaultKind::ALL.into_iter().fold(FaultSet::NONE, FaultSet::with)
    }

    pub fn with(self, kind: FaultKind) -> FaultSet {
        FaultSet(self.0 | 1 << kind as u16)
    }

    pub fn has(self, kind: FaultKind) -> bool {
        self.0 & (1 << kind as u16) != 0
    }

    /// Parses a comma list such as `crash,partition` (or `none`, `all`).
    pub fn parse(list: &str) -> Result<FaultSet, String> {
        let mut set = FaultSet::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "none" => {}
                "all" => set = FaultSet::all(),
                _ => {
                    let kind = FaultKind::parse(name).ok_or_else(|| {
                        let known: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                        format!("unknown fault {name:?}; known: {}", known.join(","))
                    })?;
                    set = set.with(kind);
                }
            }
        }
        Ok(set)
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = FaultKind::ALL
            .iter()
            .filter(|k| self.has(**k))
            .map(|k| k.name())
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// Relative weights of the client operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadMix {
    pub put: u32,
    pub get_linearizable: u32,
    pub get_serializable: u32,
    pub delete: u32,
    pub txn_cas: u32,
    pub lease: u32,
    pub watch: u32,
    pub compact: u32,
}

impl WorkloadMix {
    /// Linearizable reads only.
    pub const READS: WorkloadMix = WorkloadMix {
        put: 0,
        get_linearizable: 1,
        get_serializable: 0,
        delete: 0,
        txn_cas: 0,
        lease: 0,
        watch: 0,
        compact: 0,
    };

    pub fn total(&self) -> u32 {
        self.put
            + self.get_linearizable
            + self.get_serializable
            + self.delete
            + self.txn_cas
            + self.lease
            + self.watch
            + self.compact
    }
}

/// Everything a run decided from its seed (and the command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub seed: u64,
    pub nodes: usize,
    /// Raft tick (etcd's --heartbeat-interval).
    pub tick_ms: u64,
    /// Election timeout in ticks (etcd's --election-timeout / --heartbeat-interval).
    pub election_ticks: u64,
    /// Length of the faulty phase.
    pub safety_ms: u64,
    /// Length of the quiet phase at the end (faults healed, everyone up) during
    /// which progress must resume.
    pub liveness_ms: u64,
    pub faults: FaultSet,

    // Network.
    pub delay_min_us: u64,
    pub delay_mean_us: u64,
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    /// Chance of a long delay (reordering), and its upper bound.
    pub delay_spike_per_mille: u64,
    pub delay_spike_max_us: u64,
    /// Mean time between partition changes, and how long a partition lasts.
    pub partition_interval_ms: u64,
    pub partition_length_ms_max: u64,
    /// With partitions on: the chance that a newly elected leader is cut off from
    /// everyone shortly after its election (Jepsen's isolated primary), often before
    /// its first appends land, so terms leave uncommitted tails on minorities and
    /// a deposed leader keeps its clients for a while.
    pub leader_isolation_per_mille: u64,

    // Members.
    pub crash_interval_ms: u64,
    pub down_ms_max: u64,
    pub fsync_min_us: u64,
    pub fsync_max_us: u64,
    pub slow_fsync_per_mille: u64,
    pub slow_fsync_max_us: u64,
    pub clock_jump_interval_ms: u64,
    pub clock_jump_ms_max: u64,
    pub membership_interval_ms: u64,
    /// Mean time between process pauses, and how long one lasts at most.
    pub pause_interval_ms: u64,
    pub pause_ms_max: u64,
    /// The chance that a crash, when it comes, is aimed: it waits for its member's
    /// next synced write or snapshot file and lands while that is still in flight
    /// (where torn tails and unsynced records are).
    pub crash_aimed_per_mille: u64,
    /// Entries between snapshots (etcd's --snapshot-count, scaled down).
    pub snapshot_count: u64,
    /// WAL segment size (etcd's 64 MB, scaled down to exercise segment chains).
    pub wal_segment_bytes: usize,
    /// Snapshot files kept (etcd's --max-snapshots, scaled down so purges happen).
    pub max_snapshots: usize,
    /// The members' auto-compaction (etcd's --auto-compaction-*; periodic
    /// retentions scaled down to seconds so that runs reach them).
    pub auto_compaction: AutoCompaction,
    /// Entry bytes in one raft append (etcd's 1 MiB `maxSizePerMsg`; small values
    /// make a follower catch up one entry per message).
    pub append_bytes_max: u64,
    /// State bytes a snapshot encodes per input, and the state size above which
    /// snapshots are also spaced by size (core's defaults; not drawn from the seed,
    /// so seeds keep their schedules: sim/tests/sweep.rs sweeps small values).
    pub snapshot_step_bytes: usize,
    pub snapshot_size_free_bytes: u64,

    // Workload.
    pub clients: usize,
    /// How many of the clients only read (linearizably): a reader stays with its
    /// member while it answers, and so keeps asking a leader that was cut off.
    pub reader_clients: usize,
    pub keys: usize,
    pub mix: WorkloadMix,
    pub think_ms_max: u64,
    /// Bytes of padding a written value carries at most (values up to several
    /// disk sectors make WAL writes that a crash can tear mid-record).
    pub value_bytes_max: usize,
    pub request_timeout_ms: u64,
    /// The auth workload (`--auth`, or a planted auth bug): an admin client
    /// changes permissions while the others mix in requests as a user. Never
    /// drawn from the seed, so seeds without it run as they always did.
    pub auth: bool,
    /// The v2 workload (`--v2`, a planted v2 bug, or drawn for a quarter of the
    /// seeds, last of all draws so that seeds without it run as they always did):
    /// a third of the clients' requests go to the v2 store, checked by
    /// [`crate::v2_check`].
    pub v2: bool,
    /// The Lock and Election workload (`--recipes`, a planted recipe bug, or drawn
    /// for a quarter of the seeds, after every other draw so that seeds without it
    /// run as they always did): clients run Lock and Election sessions through
    /// core's recipe machines, checked by [`crate::recipe_check`].
    pub recipes: bool,
}

impl Options {
    /// Draws every option from `seed`. `forced` (if any) replaces the swarm's fault
    /// draw; `nodes` (if any) the cluster size.
    pub fn from_seed(seed: u64, nodes: Option<usize>, forced: Option<FaultSet>) -> Options {
        let mut rng = Rng::new(seed ^ 0x5157_5f6f_7074_696f);
        let nodes = nodes.unwrap_or_else(|| [1, 3, 3, 3, 4, 5, 5, 7][rng.range(0, 8) as usize]);
        assert!((1..=7).contains(&nodes), "1 to 7 members");
        let mut faults = FaultSet::NONE;
        // Each kind is on in about 60% of seeds. Kinds added later are drawn at
        // the end, so that adding them left every earlier draw as it was.
        const DRAWN_LATE: [FaultKind; 1] = [FaultKind::Pause];
        const DRAWN_LAST: [FaultKind; 1] = [FaultKind::SnapshotLoss];
        for kind in FaultKind::ALL
            .into_iter()
            .filter(|k| !DRAWN_LATE.contains(k) && !DRAWN_LAST.contains(k))
        {
            if rng.chance(3, 5) {
                faults = faults.with(kind);
            }
        }
        let tick_ms = [10, 50, 100][rng.range(0, 3) as usize];
        let election_ticks = rng.range(5, 16);
        let per_mille = |rng: &mut Rng, max: u64| rng.range(1, max + 1);
        let mut opts = Options {
            seed,
            nodes,
            tick_ms,
            election_ticks,
            safety_ms: 10_000 + rng.range(0, 20) * 1000,
            liveness_ms: 20 * election_ticks * tick_ms + 2000,
            faults,
            delay_min_us: rng.range(100, 1000),
            delay_mean_us: rng.range(1000, 5000),
            drop_per_mille: per_mille(&mut rng, 100),
            duplicate_per_mille: per_mille(&mut rng, 50),
            delay_spike_per_mille: per_mille(&mut rng, 50),
            delay_spike_max_us: rng.range(10, 20 * election_ticks * tick_ms) * 1000 / 10,
            partition_interval_ms: rng.range(500, 5000),
            partition_length_ms_max: rng.range(500, 8000),
            crash_interval_ms: rng.range(1000, 8000),
            down_ms_max: rng.range(100, 5000),
            fsync_min_us: rng.range(50, 500),
            fsync_max_us: rng.range(500, 5000),
            slow_fsync_per_mille: per_mille(&mut rng, 100),
            slow_fsync_max_us: rng.range(10_000, 500_000),
            clock_jump_interval_ms: rng.range(500, 5000),
            clock_jump_ms_max: rng.range(100, 10_000),
            membership_interval_ms: rng.range(2000, 8000),
            pause_interval_ms: 0,
            pause_ms_max: 0,
            crash_aimed_per_mille: 0,
            snapshot_count: [20, 100, 1000][rng.range(0, 3) as usize],
            // At least 8 KiB: the storage refuses a record larger than a segment,
            // and a transaction of two padded values comes near 4 KiB.
            wal_segment_bytes: [8192, 16 * 1024, 256 * 1024][rng.range(0, 3) as usize],
            max_snapshots: 0,
            auto_compaction: AutoCompaction::Off,
            clients: rng.range(2, 9) as usize,
            keys: rng.range(2, 12) as usize,
            mix: WorkloadMix {
                put: rng.range(10, 40) as u32,
                get_linearizable: rng.range(10, 30) as u32,
                get_serializable: rng.range(0, 15) as u32,
                delete: rng.range(0, 10) as u32,
                txn_cas: rng.range(0, 20) as u32,
                lease: rng.range(0, 8) as u32,
                watch: rng.range(0, 4) as u32,
                compact: rng.range(0, 3) as u32,
            },
            think_ms_max: rng.range(1, 50),
            request_timeout_ms: rng.range(5, 15) * election_ticks * tick_ms / 2,
            reader_clients: 0,
            value_bytes_max: 0,
            // Drawn last, so that adding them left every earlier draw as it was.
            leader_isolation_per_mille: [0, 0, 300, 1000][rng.range(0, 4) as usize],
            append_bytes_max: [1, 1024, 1024 * 1024][rng.range(0, 3) as usize],
            snapshot_step_bytes: detcd_core::node::SNAPSHOT_STEP_BYTES,
            snapshot_size_free_bytes: detcd_core::node::SNAPSHOT_SIZE_FREE_BYTES,
            auth: false,
            v2: false,
            recipes: false,
        };
        opts.reader_clients = rng.range(0, opts.clients as u64 / 2 + 1) as usize;
        opts.value_bytes_max = [0, 0, 2048][rng.range(0, 3) as usize];
        for kind in DRAWN_LATE {
            if rng.chance(3, 5) {
                opts.faults = opts.faults.with(kind);
            }
        }
        if let Some(forced) = forced {
            opts.faults = forced;
        }
        opts.pause_interval_ms = rng.range(1000, 8000);
        // Up to four election timeouts: long enough that a paused leader wakes up
        // deposed, still believing it leads.
        opts.pause_ms_max = rng.range(1, 4 * opts.election_timeout_ms() + 1);
        opts.crash_aimed_per_mille = [0, 0, 500, 1000][rng.range(0, 4) as usize];
        opts.max_snapshots = [1, 2, 5][rng.range(0, 3) as usize];
        opts.auto_compaction = match rng.range(0, 4) {
            0 => AutoCompaction::Periodic {
                retention_ms: rng.range(500, 5000),
            },
            1 => AutoCompaction::Revision {
                retention_revs: rng.range(1, 50),
            },
            _ => AutoCompaction::Off,
        };
        opts.v2 = rng.chance(1, 4);
        opts.recipes = rng.chance(1, 4);
        // After every other draw, so that seeds without it run as they did before
        // it existed; in a quarter of the seeds.
        if forced.is_none() && rng.chance(1, 4) {
            opts.faults = opts.faults.with(FaultKind::SnapshotLoss);
        }
        opts
    }

    pub fn election_timeout_ms(&self) -> u64 {
        self.election_ticks * self.tick_ms
    }

    /// Options with every fault off (deterministic scenarios build on these).
    pub fn quiet(seed: u64, nodes: usize) -> Options {
        Options::from_seed(seed, Some(nodes), Some(FaultSet::NONE))
    }
}

impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed:        {}", self.seed)?;
        writeln!(
            f,
            "cluster:     {} members, tick {} ms, election {} ticks, snapshot every {} entries (keeping {} files), WAL segment {} bytes, appends up to {} bytes",
            self.nodes,
            self.tick_ms,
            self.election_ticks,
            self.snapshot_count,
            self.max_snapshots,
            self.wal_segment_bytes,
            self.append_bytes_max
        )?;
        writeln!(
            f,
            "phases:      safety {} ms, liveness {} ms",
            self.safety_ms, self.liveness_ms
        )?;
        writeln!(f, "faults:      {}", self.faults)?;
        writeln!(f, "compaction:  auto {:?}", self.auto_compaction)?;
        writeln!(
            f,
            "network:     delay {}..~{} us, drop {}‰, duplicate {}‰, spike {}‰ up to {} us, partition every ~{} ms for up to {} ms, new leader isolated {}‰",
            self.delay_min_us,
            self.delay_mean_us,
            self.drop_per_mille,
            self.duplicate_per_mille,
            self.delay_spike_per_mille,
            self.delay_spike_max_us,
            self.partition_interval_ms,
            self.partition_length_ms_max,
            self.leader_isolation_per_mille
        )?;
        writeln!(
            f,
            "members:     crash every ~{} ms ({}‰ aimed at a write in flight), down up to {} ms, fsync {}..{} us, slow fsync {}‰ up to {} us, clock jump every ~{} ms up to {} ms, membership change every ~{} ms, pause every ~{} ms up to {} ms",
            self.crash_interval_ms,
            self.crash_aimed_per_mille,
            self.down_ms_max,
            self.fsync_min_us,
            self.fsync_max_us,
            self.slow_fsync_per_mille,
            self.slow_fsync_max_us,
            self.clock_jump_interval_ms,
            self.clock_jump_ms_max,
            self.membership_interval_ms,
            self.pause_interval_ms,
            self.pause_ms_max
        )?;
        let m = &self.mix;
        write!(
            f,
            "workload:    {} clients ({} only reading), {} keys, values padded up to {} bytes, think up to {} ms, timeout {} ms, mix put {} get {} serializable {} delete {} cas {} lease {} watch {} compact {}",
            self.clients,
            self.reader_clients,
            self.keys,
            self.value_bytes_max,
            self.think_ms_max,
            self.request_timeout_ms,
            m.put,
            m.get_linearizable,
            m.get_serializable,
            m.delete,
            m.txn_cas,
            m.lease,
            m.watch,
            m.compact
        )?;
        if self.auth {
            write!(f, "\nauth:        on (client 0 changes permissions; a third of the others' requests run as a user)")?;
        }
        if self.v2 {
            write!(f, "\nv2:          on (a third of the requests go to the v2 store; the leader syncs its clock for TTLs)")?;
        }
        if self.recipes {
            write!(
                f,
                "\nrecipes:     on (clients run Lock and Election sessions through core's recipe machines)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_options() {
        assert_eq!(
            Options::from_seed(7, None, None),
            Options::from_seed(7, None, None)
        );
    }

    #[test]
    fn swarm_turns_kinds_off() {
        let mut seen_off = FaultSet::NONE;
        for seed in 0..50 {
            let o = Options::from_seed(seed, None, None);
            for kind in FaultKind::ALL {
                if !o.faults.has(kind) {
                    seen_off = seen_off.with(kind);
                }
            }
        }
        assert_eq!(seen_off, FaultSet::all());
    }

    #[test]
    fn fault_lists_parse_and_print() {
        let set = FaultSet::parse("crash,partition").unwrap();
        assert_eq!(set.to_string(), "partition,crash");
        assert!(FaultSet::parse("meteor").is_err());
    }
}
