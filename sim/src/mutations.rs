//! The catalogue of planted bugs (mutations) the simulator must catch.
//!
//! A mutation is a deliberate bug, switched on by name for one run, that a correct
//! checker must detect. The catalogue is the simulator's own test: if a mutation
//! survives a sweep of seeds, some check is missing or some fault is not reaching
//! the code it should (`tests/mutations.rs` runs that campaign).
//!
//! Mutations exist only with the cargo feature `mutations` (which enables
//! `detcd-core/mutations`); default and release builds refuse to select one. Two
//! layers:
//!
//! - [`Layer::Sim`] mutations live in the simulator's driver and disk (a disk that
//!   acknowledges syncs it never did, a driver that acknowledges persistence early).
//!   The simulator asks [`Mutations::is`] at each hook.
//! - [`Layer::Core`] mutations are every [`detcd_core::mutation::Mutation`], under
//!   core's own names. [`crate::run::run`] activates the selected one with
//!   `detcd_core::mutation::set_active` on the simulation thread for the run's
//!   duration (core's hooks are per thread).
//!
//! A mutation may declare the fault kinds (and the cluster size) it needs to be
//! reachable at all; [`Mutations::adjust`] adds them to a seed's options.

use std::fmt;

use detcd_core::mutation::Mutation as CoreMutation;

use crate::options::{FaultKind, Options};

/// Where a mutation's hook lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Sim,
    /// A planted bug in `detcd-core` (see `core/src/mutation.rs` for where).
    Core(CoreMutation),
}

/// One planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mutation {
    pub name: &'static str,
    pub description: &'static str,
    pub layer: Layer,
    /// What the simulator is expected to report.
    pub caught_by: &'static str,
    /// Fault kinds without which the bug cannot show (added to the seed's draw).
    pub needs: &'static [FaultKind],
    /// The smallest cluster on which the bug can show (seeds drawing fewer members
    /// get this many).
    pub min_nodes: usize,
    /// Whether the bug can only show under the auth workload (turned on for it).
    pub auth: bool,
    /// Whether the bug can only show under the v2 workload (turned on for it).
    pub v2: bool,
    /// Whether the bug can only show under the Lock and Election workload.
    pub recipes: bool,
}

const fn sim(
    name: &'static str,
    description: &'static str,
    caught_by: &'static str,
    needs: &'static [FaultKind],
) -> Mutation {
    Mutation {
        name,
        description,
        layer: Layer::Sim,
        caught_by,
        needs,
        min_nodes: 1,
        auth: false,
        v2: false,
        recipes: false,
    }
}

const fn core(
    m: CoreMutation,
    name: &'static str,
    description: &'static str,
    caught_by: &'static str,
    needs: &'static [FaultKind],
    min_nodes: usize,
) -> Mutation {
    Mutation {
        name,
        description,
        layer: Layer::Core(m),
        caught_by,
        needs,
        min_nodes,
        auth: false,
        v2: false,
        recipes: false,
    }
}

/// A planted v2 store bug: a core mutation that needs the v2 workload.
const fn core_v2(
    m: CoreMutation,
    name: &'static str,
    description: &'static str,
    caught_by: &'static str,
) -> Mutation {
    Mutation {
        name,
        description,
        layer: Layer::Core(m),
        caught_by,
        needs: &[],
        min_nodes: 1,
        auth: false,
        v2: true,
        recipes: false,
    }
}

/// A planted auth bug: a core mutation that needs the auth workload.
const fn core_auth(m: CoreMutation, name: &'static str, description: &'static str) -> Mutation {
    Mutation {
        name,
        description,
        layer: Layer::Core(m),
        caught_by: "auth check: a user's request served while its permission was revoked throughout",
        needs: &[],
        min_nodes: 1,
        auth: true,
        v2: false,
        recipes: false,
    }
}

/// A planted recipe bug: a core mutation that needs the Lock and Election workload.
const fn core_recipe(m: CoreMutation, name: &'static str, description: &'static str) -> Mutation {
    Mutation {
        name,
        description,
        layer: Layer::Core(m),
        caught_by: "recipe check: two tenures of one lock overlap while their leases live",
        needs: &[],
        min_nodes: 1,
        auth: false,
        v2: false,
        recipes: true,
    }
}

use FaultKind::{Crash, Membership, Partition, TornWrite};

/// Every mutation, sim-side first, then core's in `CoreMutation::ALL` order.
pub const CATALOGUE: &[Mutation] = &[
    sim(
        "disk-sync-lies",
        "the simulated disk acknowledges fsync without making the writes durable",
        "lost acknowledged write / committed entry lost after a crash",
        &[Crash],
    ),
    sim(
        "persisted-before-sync",
        "the driver feeds Persisted as soon as a Persist is written, before its fsync completes",
        "committed entry changed or lost after a crash; linearizability",
        &[Crash],
    ),
    core(
        CoreMutation::CommitWithoutQuorum,
        "commit-without-quorum",
        "the leader commits its own last index without counting matches",
        "committed entries change; linearizability",
        &[Partition],
        3,
    ),
    core(
        CoreMutation::CommitPreviousTerm,
        "commit-previous-term",
        "the commit rule counts replicas for entries of earlier terms (Raft figure 8)",
        "leader completeness / committed entries change (isolated new leaders, one-entry appends)",
        &[Partition, Crash],
        3,
    ),
    core(
        CoreMutation::VoteBeforePersist,
        "vote-before-persist",
        "the vote response leaves with the Persist output, before the vote is durable",
        "sim persist-before-send check",
        &[],
        2,
    ),
    core(
        CoreMutation::SkipMustSyncOnTermChange,
        "skip-must-sync-on-term-change",
        "must_sync is false when only term or vote changed, so a vote is not fsynced",
        "two leaders in one term after a crash; term went backwards",
        &[Crash],
        3,
    ),
    core(
        CoreMutation::ReadIndexWithoutQuorum,
        "read-index-without-quorum",
        "the leader answers ReadIndex at once, without a heartbeat round",
        "linearizability (a reader's stale read from an isolated leader)",
        &[Partition],
        3,
    ),
    core(
        CoreMutation::ReadIndexBeforeFirstCommit,
        "read-index-before-first-commit",
        "ReadIndex is served before the leader committed an entry of its own term",
        "linearizability (stale read from a new leader)",
        &[Partition],
        3,
    ),
    core(
        CoreMutation::AcceptStaleTermAppend,
        "accept-stale-term-append",
        "a follower accepts MsgApp from a term lower than its own",
        "committed entries change / log matching",
        &[Partition],
        3,
    ),
    core(
        CoreMutation::ConflictTruncationOffByOne,
        "conflict-truncation-off-by-one",
        "on a conflicting append, truncation keeps the first conflicting entry",
        "log matching on committed prefixes",
        &[Partition],
        3,
    ),
    core(
        CoreMutation::AcceptTornWalTail,
        "accept-torn-wal-tail",
        "a WAL record at the tail whose CRC fails is accepted when its payload decodes",
        "recovered log or committed entries differ after a crash",
        &[Crash, TornWrite],
        1,
    ),
    core(
        CoreMutation::LeaseRevokeKeepsKeys,
        "lease-revoke-keeps-keys",
        "revoking a lease forgets the lease but keeps its attached keys",
        "lease check: a revoked lease's key is still there",
        &[],
        1,
    ),
    core(
        CoreMutation::WatchResumesLate,
        "watch-resumes-late",
        "a watcher catching up from history starts one revision after its start revision",
        "watch check: gap against the acknowledged writes",
        &[],
        1,
    ),
    core(
        CoreMutation::ApplyTwiceAfterRestart,
        "apply-twice-after-restart",
        "on recovery the applied index is not restored, so entries are applied again",
        "linearizability / revision went back after a restart",
        &[Crash],
        1,
    ),
    core(
        CoreMutation::LearnerCountsTowardCommit,
        "learner-counts-toward-commit",
        "the commit quorum (a majority of the voters' count) is picked from learners' matches too",
        "committed entries change; linearizability",
        &[Membership, Partition],
        3,
    ),
    core(
        CoreMutation::VoteIgnoresLog,
        "vote-ignores-log",
        "votes and PreVotes are granted without comparing the candidate's log (Raft 5.4.1)",
        "leader completeness / committed entries change",
        &[Partition],
        3,
    ),
    core(
        CoreMutation::SnapshotSavedBeforeSync,
        "snapshot-saved-before-sync",
        "the snapshot file is renamed into place without being synced, before its WAL marker",
        "restart finds a WAL snapshot marker without a valid snapshot file",
        &[Crash],
        1,
    ),
    core(
        CoreMutation::WalKeepsTornTail,
        "wal-keeps-torn-tail",
        "recovery does not zero a torn tail and appends after it (etcd must cut the tail first)",
        "WAL unrecoverable on the next restart",
        &[Crash, TornWrite],
        1,
    ),
    core(
        CoreMutation::WalDropsHardState,
        "wal-drops-hard-state",
        "the WAL never writes HardState records, so term, vote and commit are lost on restart",
        "two leaders in one term (a restarted member votes twice); term went backwards",
        &[Crash],
        1,
    ),
    core(
        CoreMutation::RestartForgetsUnsyncedEntriesLate,
        "restart-forgets-unsynced-entries-late",
        "recovery drops the WAL's last valid entry, as if it had never been written",
        "committed entry lost / acknowledged write lost",
        &[Crash],
        1,
    ),
    core(
        CoreMutation::PurgeBeforeMarkerDurable,
        "purge-before-marker-durable",
        "a snapshot marker is left unsynced while the segments and snapshot files it obsoletes are removed",
        "restart finds the WAL's last durable marker without its snapshot file, or the WAL starting late",
        &[Crash],
        1,
    ),
    core(
        CoreMutation::ReleaseNeededSegment,
        "release-needed-segment",
        "WAL release removes the segment holding the entries right after the snapshot",
        "restart finds the WAL starting after the snapshot",
        &[Crash],
        1,
    ),
    core(
        CoreMutation::RenameWithoutDirSync,
        "rename-without-dir-sync",
        "a new WAL segment is renamed into place without syncing the directory",
        "a crash forgets the segment: acknowledged records lost after the restart",
        &[Crash],
        1,
    ),
    core_auth(
        CoreMutation::AuthTxnFailureBranchUnchecked,
        "auth-txn-failure-branch-unchecked",
        "a transaction's failure branch is not checked for permissions",
    ),
    core_auth(
        CoreMutation::AuthRangeEndIgnored,
        "auth-range-end-ignored",
        "a range read is checked on its first key only",
    ),
    core_auth(
        CoreMutation::AuthFollowerSerializableUnchecked,
        "auth-follower-serializable-unchecked",
        "a follower serves a serializable read without checking permissions",
    ),
    core_v2(
        CoreMutation::V2CasIgnoresPrevIndex,
        "v2-cas-ignores-prev-index",
        "a v2 compare-and-swap ignores prevIndex and compares prevValue only",
        "v2 check: the swap is not linearizable (its key's modified index differed from prevIndex)",
    ),
    core_v2(
        CoreMutation::V2ExpiryByLocalClock,
        "v2-expiry-by-local-clock",
        "a v2 get treats a key past its expiry by the member's own clock as gone, before the leader's sync expires it through raft",
        "v2 check: not linearizable: a get finds no key that raft still holds (a later expire event, refresh or get shows it)",
    ),
    core_v2(
        CoreMutation::V2RmdirIgnoresChildren,
        "v2-rmdir-ignores-children",
        "a v2 delete with dir=true (rmdir) removes a directory that still has children",
        "v2 check: the directory tree is not linearizable (an rmdir of a directory the model holds children in succeeds)",
    ),
    core(
        CoreMutation::CorruptAppliedPut,
        "corrupt-applied-put",
        "the member with the highest ID stores every put's value with a byte more",
        "the corruption check: the CORRUPT alarm raised for the diverged member",
        &[],
        2,
    ),
    core_recipe(
        CoreMutation::LockIgnoresOlderWaiter,
        "lock-ignores-older-waiter",
        "a Lock that finds an older waiter takes the lock without waiting for its deletion",
    ),
];

/// Looks a mutation up by name.
pub fn find(name: &str) -> Option<&'static Mutation> {
    CATALOGUE.iter().find(|m| m.name == name)
}

/// The mutation active in one run (at most one). Passed by value to everything
/// that has a hook in the simulator; core's is activated per thread by `run`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mutations {
    active: Option<&'static Mutation>,
}

impl Mutations {
    pub const NONE: Mutations = Mutations { active: None };

    /// Selects `name`. Fails when the build has no mutations or the name is unknown.
    pub fn select(name: &str) -> Result<Mutations, String> {
        let mutation =
            find(name).ok_or_else(|| format!("unknown mutation {name:?} (see --list-mutations)"))?;
        if !cfg!(feature = "mutations") {
            return Err("this build has no mutations: rebuild with `--features mutations`".to_string());
        }
        Ok(Mutations {
            active: Some(mutation),
        })
    }

    /// Whether the named sim-side mutation is active. Always false without the feature.
    pub fn is(&self, name: &str) -> bool {
        debug_assert!(find(name).is_some(), "hook names an unknown mutation {name:?}");
        cfg!(feature = "mutations") && self.active.is_some_and(|m| m.name == name)
    }

    pub fn active(&self) -> Option<&'static Mutation> {
        self.active
    }

    /// The core mutation to activate on the simulation thread, if any.
    pub fn core(&self) -> Option<CoreMutation> {
        match self.active?.layer {
            Layer::Core(m) if cfg!(feature = "mutations") => Some(m),
            _ => None,
        }
    }

    /// Adds the fault kinds the active mutation needs to `opts`, and raises the
    /// cluster to its minimum size. Nothing without an active mutation.
    pub fn adjust(&self, opts: &mut Options) {
        let Some(m) = self.active else { return };
        for &kind in m.needs {
            opts.faults = opts.faults.with(kind);
        }
        opts.nodes = opts.nodes.max(m.min_nodes);
        opts.auth |= m.auth;
        opts.v2 |= m.v2;
        opts.recipes |= m.recipes;
    }
}

impl fmt::Display for Mutations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.active {
            None => f.write_str("none"),
            Some(m) => write!(f, "{} ({})", m.name, m.description),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
    }

    #[test]
    fn every_core_mutation_is_catalogued_under_its_own_name() {
        for &m in CoreMutation::ALL {
            let entry = find(m.name()).unwrap_or_else(|| panic!("{m} missing from the catalogue"));
            assert_eq!(entry.layer, Layer::Core(m), "{m}");
        }
        for entry in CATALOGUE {
            if let Layer::Core(m) = entry.layer {
                assert_eq!(entry.name, m.name());
            }
        }
        let core = CATALOGUE
            .iter()
            .filter(|m| matches!(m.layer, Layer::Core(_)))
            .count();
        assert_eq!(core, CoreMutation::ALL.len());
    }

    #[test]
    fn nothing_is_active_by_default() {
        for m in CATALOGUE {
            if m.layer == Layer::Sim {
                assert!(!Mutations::NONE.is(m.name));
            }
        }
        assert_eq!(Mutations::NONE.core(), None);
    }

    #[cfg(not(feature = "mutations"))]
    #[test]
    fn default_builds_refuse_mutations() {
        assert!(Mutations::select("disk-sync-lies").is_err());
        assert!(Mutations::select("commit-without-quorum").is_err());
    }

    #[cfg(feature = "mutations")]
    #[test]
    fn core_mutations_select() {
        let m = Mutations::select("commit-previous-term").unwrap();
        assert_eq!(m.core(), Some(CoreMutation::CommitPreviousTerm));
        assert!(Mutations::select("no-such-bug").is_err());
    }
}
