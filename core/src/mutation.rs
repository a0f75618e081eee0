//! Planted bugs, for proving that the checkers catch them.
//!
//! Each [`Mutation`] names one realistic bug (the one a real engineer could write)
//! planted at the place it would live, behind
//! `if crate::mutation::is_active(Mutation::X) { ...buggy path... }`. The simulator
//! activates one per run and must report a violation; a checker that stays silent
//! under a mutation is a checker with a hole.
//!
//! Without the cargo feature `mutations` (the default, and the only way
//! `detcd-io` and `detcd-server` build this crate) [`is_active`] is a constant
//! `false`, so every planted branch is dead code the compiler removes, and
//! [`set_active`] does nothing. With it, the active mutation is per thread: the
//! simulator runs a whole cluster in one thread, and tests running in parallel
//! threads do not see each other's mutation.

use std::fmt;

/// One planted bug. See the module docs; each variant says where it is planted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mutation {
    /// `raft::protocol::Raft::maybe_commit`: the leader commits its own last index
    /// without counting matches.
    CommitWithoutQuorum,
    /// `raft::log::RaftLog::maybe_commit`: the commit rule counts replicas for
    /// entries of earlier terms (the figure-8 bug, Raft 5.4.2).
    CommitPreviousTerm,
    /// `node::Node::drive`: the vote response goes out with the Persist output,
    /// before the HardState holding the vote is durable.
    VoteBeforePersist,
    /// `raft::RawNode::ready`: `must_sync` is false when only term or vote changed.
    SkipMustSyncOnTermChange,
    /// `raft::protocol::Raft::leader_read_index`: the leader answers ReadIndex at
    /// once with its commit index, without a heartbeat round.
    ReadIndexWithoutQuorum,
    /// `raft::protocol::Raft::leader_read_index`: ReadIndex is served before the
    /// leader committed an entry of its own term.
    ReadIndexBeforeFirstCommit,
    /// `raft::protocol::Raft::step`: a follower accepts MsgApp from a term lower
    /// than its own.
    AcceptStaleTermAppend,
    /// `raft::log::RaftLog::maybe_append`: on a conflicting append, truncation
    /// keeps the first conflicting entry.
    ConflictTruncationOffByOne,
    /// `wal::frame::read_frame`: a record at the tail whose CRC fails is accepted
    /// when its payload decodes.
    AcceptTornWalTail,
    /// `node::apply` (LeaseRevoke): revoking a lease forgets the lease but keeps
    /// its attached keys.
    LeaseRevokeKeepsKeys,
    /// `watch::Hub::create`: a watcher catching up from history starts one
    /// revision after its start revision.
    WatchResumesLate,
    /// `node::Node::new` (Recover): the applied index is not restored from the
    /// snapshot, so entries at and below the snapshot index are applied again.
    ApplyTwiceAfterRestart,
    /// `raft::tracker::ProgressTracker::committed`: the commit quorum, sized by the
    /// voters, is picked from every member's match, learners included (so with
    /// three voters, the leader and one learner commit).
    LearnerCountsTowardCommit,
    /// `raft::protocol::Raft::handle_vote_request`: votes (and PreVotes) are granted
    /// without the election restriction (Raft 5.4.1): the candidate's log is not
    /// compared, so a candidate missing committed entries can win.
    VoteIgnoresLog,
    /// `detcd_storage::snap::Snapshotter::save`: the snapshot file is renamed into
    /// place without its sync, so the WAL marker that follows can name a file
    /// whose contents a crash loses.
    SnapshotSavedBeforeSync,
    /// `detcd_storage::wal::Wal::open`: a torn tail is not zeroed and appends go
    /// on after it (etcd must cut the tail first).
    WalKeepsTornTail,
    /// `detcd_storage::wal::Wal::save`: HardState records are never written, so
    /// term, vote and commit are lost on restart.
    WalDropsHardState,
    /// `detcd_storage::storage::Storage::open`: recovery drops the WAL's last
    /// valid entry, as if it had never been written.
    RestartForgetsUnsyncedEntriesLate,
    /// `detcd_storage::wal::Wal::save_snapshot_marker`: the snapshot marker is not
    /// synced, yet the segments and snapshot files it makes obsolete are released
    /// at once (purge before the newer marker is durable).
    PurgeBeforeMarkerDurable,
    /// `detcd_storage::wal::Wal::release_to`: the segment holding the entries
    /// after the snapshot index is released too.
    ReleaseNeededSegment,
    /// `detcd_storage::wal`: a new segment is renamed into place without syncing
    /// the directory, so a crash can forget its name (and the synced records in it).
    RenameWithoutDirSync,
    /// `node::auth` (`check_txn`): a transaction's failure branch is not checked, so
    /// a user may write through it what it may not write.
    AuthTxnFailureBranchUnchecked,
    /// `node::auth` (`check_read`): a range read is checked on its first key only,
    /// as if `range_end` were empty.
    AuthRangeEndIgnored,
    /// `node::auth` (`check_read`): a follower serves a serializable read without
    /// checking permissions (only the leader checks them).
    AuthFollowerSerializableUnchecked,
    /// `v2store::Store::compare_and_swap`: a v2 compare-and-swap ignores
    /// `prevIndex` (only `prevValue` is compared), so a client's swap on a key it
    /// read before another client's write succeeds over that write.
    V2CasIgnoresPrevIndex,
    /// `node::apply` (Put): the member with the highest ID stores every value put
    /// with one more byte than the entry says, a silent divergence the corruption
    /// check must raise the CORRUPT alarm for.
    CorruptAppliedPut,
    /// `v2store::Store::get`: a get treats a node whose expiry has passed by the
    /// member's own clock (the request's time) as gone, before the leader's sync
    /// has expired it through raft.
    V2ExpiryByLocalClock,
    /// `v2store::Store::delete`: a delete with `dir=true` (etcdctl rmdir) removes a
    /// directory that still has children, instead of refusing it with "Directory
    /// not empty" (108).
    V2RmdirIgnoresChildren,
    /// `recipe::lock::Lock`: a Lock that finds an older waiter does not wait for
    /// its deletion and takes the lock at once (after checking its own key).
    LockIgnoresOlderWaiter,
}

impl Mutation {
    /// Every mutation, in declaration order.
    pub const ALL: &'static [Mutation] = &[
        Mutation::CommitWithoutQuorum,
        Mutation::CommitPreviousTerm,
        Mutation::VoteBeforePersist,
        Mutation::SkipMustSyncOnTermChange,
        Mutation::ReadIndexWithoutQuorum,
        Mutation::ReadIndexBeforeFirstCommit,
        Mutation::AcceptStaleTermAppend,
        Mutation::ConflictTruncationOffByOne,
        Mutation::AcceptTornWalTail,
        Mutation::LeaseRevokeKeepsKeys,
        Mutation::WatchResumesLate,
        Mutation::ApplyTwiceAfterRestart,
        Mutation::LearnerCountsTowardCommit,
        Mutation::VoteIgnoresLog,
        Mutation::SnapshotSavedBeforeSync,
        Mutation::WalKeepsTornTail,
        Mutation::WalDropsHardState,
        Mutation::RestartForgetsUnsyncedEntriesLate,
        Mutation::PurgeBeforeMarkerDurable,
        Mutation::ReleaseNeededSegment,
        Mutation::RenameWithoutDirSync,
        Mutation::AuthTxnFailureBranchUnchecked,
        Mutation::AuthRangeEndIgnored,
        Mutation::AuthFollowerSerializableUnchecked,
        Mutation::V2CasIgnoresPrevIndex,
        Mutation::CorruptAppliedPut,
        Mutation::V2ExpiryByLocalClock,
        Mutation::V2RmdirIgnoresChildren,
        Mutation::LockIgnoresOlderWaiter,
    ];

    /// The kebab-case name (what `detcd-sim --mutation NAME` takes).
    pub fn name(self) -> &'static str {
        match self {
            Mutation::CommitWithoutQuorum => "commit-without-quorum",
            Mutation::CommitPreviousTerm => "commit-previous-term",
            Mutation::VoteBeforePersist => "vote-before-persist",
            Mutation::SkipMustSyncOnTermChange => "skip-must-sync-on-term-change",
            Mutation::ReadIndexWithoutQuorum => "read-index-without-quorum",
            Mutation::ReadIndexBeforeFirstCommit => "read-index-before-first-commit",
            Mutation::AcceptStaleTermAppend => "accept-stale-term-append",
            Mutation::ConflictTruncationOffByOne => "conflict-truncation-off-by-one",
            Mutation::AcceptTornWalTail => "accept-torn-wal-tail",
            Mutation::LeaseRevokeKeepsKeys => "lease-revoke-keeps-keys",
            Mutation::WatchResumesLate => "watch-resumes-late",
            Mutation::ApplyTwiceAfterRestart => "apply-twice-after-restart",
            Mutation::LearnerCountsTowardCommit => "learner-counts-toward-commit",
            Mutation::VoteIgnoresLog => "vote-ignores-log",
            Mutation::SnapshotSavedBeforeSync => "snapshot-saved-before-sync",
            Mutation::WalKeepsTornTail => "wal-keeps-torn-tail",
            Mutation::WalDropsHardState => "wal-drops-hard-state",
            Mutation::RestartForgetsUnsyncedEntriesLate => "restart-forgets-unsynced-entries-late",
            Mutation::PurgeBeforeMarkerDurable => "purge-before-marker-durable",
            Mutation::ReleaseNeededSegment => "release-needed-segment",
            Mutation::RenameWithoutDirSync => "rename-without-dir-sync",
            Mutation::AuthTxnFailureBranchUnchecked => "auth-txn-failure-branch-unchecked",
            Mutation::AuthRangeEndIgnored => "auth-range-end-ignored",
            Mutation::AuthFollowerSerializableUnchecked => "auth-follower-serializable-unchecked",
            Mutation::V2CasIgnoresPrevIndex => "v2-cas-ignores-prev-index",
            Mutation::CorruptAppliedPut => "corrupt-applied-put",
            Mutation::V2ExpiryByLocalClock => "v2-expiry-by-local-clock",
            Mutation::V2RmdirIgnoresChildren => "v2-rmdir-ignores-children",
            Mutation::LockIgnoresOlderWaiter => "lock-ignores-older-waiter",
        }
    }

    /// The mutation named `name` (as [`Mutation::name`] spells it).
    pub fn from_name(name: &str) -> Option<Mutation> {
        Mutation::ALL.iter().copied().find(|m| m.name() == name)
    }
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "mutations")]
mod active {
    use std::cell::Cell;

    use super::Mutation;

    thread_local! {
        static ACTIVE: Cell<Option<Mutation>> = const { Cell::new(None) };
    }

    pub(super) fn set(m: Option<Mutation>) {
        ACTIVE.with(|a| a.set(m));
    }

    pub(super) fn get() -> Option<Mutation> {
        ACTIVE.with(Cell::get)
    }
}

/// Activates `m` (or none) for the calling thread. A no-op without the
/// `mutations` feature.
#[cfg(feature = "mutations")]
pub fn set_active(m: Option<Mutation>) {
    active::set(m);
}

/// Activates `m` (or none) for the calling thread. A no-op without the
/// `mutations` feature.
#[cfg(not(feature = "mutations"))]
pub fn set_active(_m: Option<Mutation>) {}

/// True when `m` is the calling thread's active mutation.
#[cfg(feature = "mutations")]
#[inline]
pub fn is_active(m: Mutation) -> bool {
    active::get() == Some(m)
}

/// Always false without the `mutations` feature: planted branches compile away.
#[cfg(not(feature = "mutations"))]
#[inline(always)]
pub const fn is_active(_m: Mutation) -> bool {
    false
}

/// The calling thread's active mutation (always `None` without the feature).
pub fn active() -> Option<Mutation> {
    #[cfg(feature = "mutations")]
    {
        active::get()
    }
    #[cfg(not(feature = "mutations"))]
    {
        None
    }
}

/// Activates `m` for the calling thread until the guard drops (then none is
/// active), so a failing test cannot leak its mutation into the next test that
/// happens to run on the same thread.
#[derive(Debug)]
#[must_use = "the mutation is deactivated when the guard drops"]
pub struct ActiveGuard(());

impl ActiveGuard {
    pub fn new(m: Mutation) -> ActiveGuard {
        set_active(Some(m));
        ActiveGuard(())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        set_active(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_kebab_case() {
        let mut names: Vec<&str> = Mutation::ALL.iter().map(|m| m.name()).collect();
        for (m, name) in Mutation::ALL.iter().zip(&names) {
            assert_eq!(Mutation::from_name(name), Some(*m));
            assert_eq!(m.to_string(), *name);
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(
                name.starts_with(|c: char| c.is_ascii_lowercase())
                    && !name.ends_with('-')
                    && !name.contains("--"),
                "{name}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Mutation::ALL.len(), "names are unique");
        assert_eq!(Mutation::from_name("no-such-bug"), None);
        assert_eq!(Mutation::from_name("Commit-Without-Quorum"), None);
    }

    #[test]
    fn all_lists_every_variant_in_order() {
        let mut sorted = Mutation::ALL.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, Mutation::ALL, "ALL is in declaration (Ord) order");
        // Adding a variant without listing it fails to compile in `name` and here.
        let last = Mutation::LockIgnoresOlderWaiter;
        assert_eq!(Mutation::ALL.last(), Some(&last));
    }

    #[test]
    fn inactive_by_default() {
        assert_eq!(active(), None);
        for &m in Mutation::ALL {
            assert!(!is_active(m), "{m} active in a fresh thread");
        }
    }

    #[cfg(feature = "mutations")]
    #[test]
    fn set_active_switches_and_clears() {
        // That other threads are unaffected is tested in `tests/mutations.rs`
        // (spawning threads is kept out of this crate's sources).
        let _guard = ActiveGuard::new(Mutation::CommitPreviousTerm);
        assert!(is_active(Mutation::CommitPreviousTerm));
        assert!(!is_active(Mutation::CommitWithoutQuorum));
        assert_eq!(active(), Some(Mutation::CommitPreviousTerm));
        set_active(Some(Mutation::WatchResumesLate));
        assert!(is_active(Mutation::WatchResumesLate));
        assert!(!is_active(Mutation::CommitPreviousTerm));
        set_active(None);
        assert_eq!(active(), None);
    }

    #[cfg(feature = "mutations")]
    #[test]
    fn guard_deactivates_on_drop() {
        {
            let _guard = ActiveGuard::new(Mutation::AcceptTornWalTail);
            assert!(is_active(Mutation::AcceptTornWalTail));
        }
        assert_eq!(active(), None);
    }

    #[cfg(not(feature = "mutations"))]
    #[test]
    fn set_active_is_a_no_op_without_the_feature() {
        set_active(Some(Mutation::CommitPreviousTerm));
        assert!(!is_active(Mutation::CommitPreviousTerm));
        assert_eq!(active(), None);
    }
}
