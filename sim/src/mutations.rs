//! The catalogue of planted bugs (mutations) the simulator must catch.
//!
//! A mutation is a deliberate bug, switched on by name for one run, that a correct
//! checker must detect. The catalogue is the simulator's own test: if a mutation
//! survives a sweep of seeds, some check is missing or some fault is not reaching
//! the code it should.
//!
//! Mutations exist only with the cargo feature `mutations`; default and release
//! builds compile every hook to `false`. Two layers:
//!
//! - [`Layer::Sim`] mutations live in the simulator's driver and disk (a disk that
//!   acknowledges syncs it never did, a driver that acknowledges persistence early).
//!   They are implemented here and work end to end.
//! - [`Layer::Core`] mutations need a hook inside `detcd-core`, which is pure and
//!   has no global state. The selection travels as a value: the simulator puts the
//!   active mutation's name in the node's configuration (a `Mutations` value in
//!   `NodeConfig`, passed on to raft's `Config`, the lessor and the watch hub), and
//!   each hook asks it, under `#[cfg(feature = "mutations")]`. Until core has those
//!   hooks, selecting a core mutation is refused with a message naming the hook.

use std::fmt;

/// Where a mutation's hook lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Sim,
    /// In core, at the named place (file and rule).
    Core {
        hook: &'static str,
    },
}

/// One planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mutation {
    pub name: &'static str,
    pub description: &'static str,
    pub layer: Layer,
    /// What the simulator is expected to report.
    pub caught_by: &'static str,
}

/// Every mutation, sim-side first.
pub const CATALOGUE: &[Mutation] = &[
    Mutation {
        name: "disk-sync-lies",
        description: "the simulated disk acknowledges fsync without making the writes durable",
        layer: Layer::Sim,
        caught_by: "lost acknowledged write / committed entry lost after a crash",
    },
    Mutation {
        name: "persisted-before-sync",
        description: "the driver feeds Persisted as soon as a Persist is written, before its fsync completes",
        layer: Layer::Sim,
        caught_by: "committed entry changed or lost after a crash; linearizability",
    },
    Mutation {
        name: "wal-drops-hard-state",
        description: "the driver never writes HardState records, so term, vote and commit are lost on restart",
        layer: Layer::Sim,
        caught_by: "two leaders in one term (a restarted member votes twice); term went backwards",
    },
    Mutation {
        name: "wal-keeps-torn-tail",
        description: "recovery does not truncate a torn tail and appends after it (etcd must cut the tail first)",
        layer: Layer::Sim,
        caught_by: "WAL unrecoverable on the next restart",
    },
    Mutation {
        name: "snapshot-saved-before-sync",
        description: "SnapshotSaved is fed before the snapshot file is durable",
        layer: Layer::Sim,
        caught_by: "restart finds a WAL snapshot marker without its snapshot file",
    },
    Mutation {
        name: "restart-forgets-unsynced-entries-late",
        description: "on restart the driver replays the WAL without its last record, as if recovery dropped a valid record",
        layer: Layer::Sim,
        caught_by: "committed entry lost / acknowledged write lost",
    },
    Mutation {
        name: "commit-without-quorum",
        description: "the leader commits an index once any one follower has it (openraft #1802)",
        layer: Layer::Core { hook: "raft/protocol.rs, maybe_commit: quorum index computed as the max of match indexes" },
        caught_by: "committed entries change; linearizability",
    },
    Mutation {
        name: "commit-previous-term-by-count",
        description: "the leader commits an entry of an earlier term by counting replicas (Raft paper Figure 8)",
        layer: Layer::Core { hook: "raft/log.rs, maybe_commit: drop the `term == current term` condition" },
        caught_by: "committed entries change",
    },
    Mutation {
        name: "vote-before-persist",
        description: "the vote reply leaves before the vote is durable (Send not held until Persisted)",
        layer: Layer::Core { hook: "node: emit MsgVoteResp outputs in the same drain as the Persist that records the vote" },
        caught_by: "sim persist-before-send check; two leaders in one term after a crash",
    },
    Mutation {
        name: "stale-term-append-accepted",
        description: "a follower accepts MsgApp from a leader of a lower term",
        layer: Layer::Core { hook: "raft/protocol.rs, step: skip the `m.term < self.term` rejection for MsgApp" },
        caught_by: "log matching / committed entries change",
    },
    Mutation {
        name: "conflict-truncate-off-by-one",
        description: "on a conflicting append the follower truncates one entry too late, keeping a stale entry",
        layer: Layer::Core { hook: "raft/log.rs, maybe_append: conflict index + 1" },
        caught_by: "log matching on committed prefixes",
    },
    Mutation {
        name: "read-index-without-quorum",
        description: "ReadIndex is answered at once by whoever thinks it is leader (no heartbeat round)",
        layer: Layer::Core { hook: "raft/read_only.rs / protocol.rs: ReadOnlySafe answered as ReadOnlyLeaseBased without CheckQuorum" },
        caught_by: "linearizability (stale read from a deposed leader)",
    },
    Mutation {
        name: "read-index-before-term-commit",
        description: "a new leader serves ReadIndex before committing an entry of its own term",
        layer: Layer::Core { hook: "raft/protocol.rs, read_index: skip the committed-in-current-term check" },
        caught_by: "linearizability",
    },
    Mutation {
        name: "two-pending-conf-changes",
        description: "the leader accepts a second conf change while one is uncommitted",
        layer: Layer::Core { hook: "raft/protocol.rs, propose conf change: skip pending_conf_index check" },
        caught_by: "two leaders in one term (disjoint majorities)",
    },
    Mutation {
        name: "mvcc-revision-reuse-after-restart",
        description: "after restart the store resumes from the snapshot's revision without replaying applied entries (etcd #14370)",
        layer: Layer::Core { hook: "node: on Recover, set applied = committed without replaying entries after the snapshot" },
        caught_by: "linearizability (revision goes backwards), lost acknowledged writes",
    },
    Mutation {
        name: "watch-resume-replays-old",
        description: "a watch created at start_revision r also delivers events below r (etcd #15271)",
        layer: Layer::Core { hook: "watch/hub.rs: unsynced watcher catch-up starts at r - 1" },
        caught_by: "watch check: event below start revision / duplicate",
    },
    Mutation {
        name: "compaction-drops-delete-event",
        description: "catching up across a compaction loses the delete event at the compaction revision (etcd #18089/#19179)",
        layer: Layer::Core { hook: "watch/hub.rs or mvcc compaction: skip tombstones at the compact revision" },
        caught_by: "watch check: gap against the committed history",
    },
    Mutation {
        name: "lease-expiry-on-follower-clock",
        description: "leases are revoked by whichever member's clock says they expired, not only the leader's",
        layer: Layer::Core { hook: "lease/lessor.rs: expired() consulted on followers" },
        caught_by: "lease check: key with live lease vanished / revoke proposed by a non-leader",
    },
];

/// Looks a mutation up by name.
pub fn find(name: &str) -> Option<&'static Mutation> {
    CATALOGUE.iter().find(|m| m.name == name)
}

/// The mutation active in one run (at most one). Passed by value to everything
/// that has a hook; nothing global.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mutations {
    active: Option<&'static Mutation>,
}

impl Mutations {
    pub const NONE: Mutations = Mutations { active: None };

    /// Selects `name`. Fails when the build has no mutations, the name is unknown,
    /// or the mutation needs a core hook that core does not have yet.
    pub fn select(name: &str) -> Result<Mutations, String> {
        let mutation =
            find(name).ok_or_else(|| format!("unknown mutation {name:?} (see --list-mutations)"))?;
        if !cfg!(feature = "mutations") {
            return Err("this build has no mutations: rebuild with `--features mutations`".to_string());
        }
        if let Layer::Core { hook } = mutation.layer {
            return Err(format!(
                "mutation {name:?} needs a hook in detcd-core that core does not have yet: {hook}"
            ));
        }
        Ok(Mutations {
            active: Some(mutation),
        })
    }

    /// Whether the named mutation is active. Always false without the feature.
    pub fn is(&self, name: &str) -> bool {
        debug_assert!(find(name).is_some(), "hook names an unknown mutation {name:?}");
        cfg!(feature = "mutations") && self.active.is_some_and(|m| m.name == name)
    }

    pub fn active(&self) -> Option<&'static Mutation> {
        self.active
    }
}

impl fmt::Display for Mutations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.active.map_or("none", |m| m.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_catalogue_is_large_enough() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
        assert!(CATALOGUE.len() >= 10);
    }

    #[test]
    fn nothing_is_active_by_default() {
        for m in CATALOGUE {
            assert!(!Mutations::NONE.is(m.name));
        }
    }

    #[cfg(not(feature = "mutations"))]
    #[test]
    fn default_builds_refuse_mutations() {
        assert!(Mutations::select("disk-sync-lies").is_err());
    }
}
