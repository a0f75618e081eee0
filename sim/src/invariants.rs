//! Raft invariants checked across the whole cluster after every step.
//!
//! The simulator mirrors each member's log from its Persist outputs (the mirror
//! is raft's log as the node last handed it out) and keeps one cluster-wide record
//! of committed entries. From those:
//! - Election Safety: at most one leader per term, ever.
//! - Committed entries never change, and Log Matching on committed prefixes: every
//!   member's entry at a committed index equals the recorded one.
//! - Leader Completeness: a member that becomes leader of term T holds every entry
//!   committed in a term below T (above its own snapshot). Entries committed in T
//!   or later need not be there: a member that won term T's votes can learn of its
//!   victory after a later term committed entries (its vote answers were held up).
//! - Monotonicity: per member, term never decreases (even across restarts, since
//!   term and vote are synced before anything depends on them); commit and applied
//!   never decrease within one incarnation.

use std::collections::BTreeMap;

use detcd_core::crc32c;
use detcd_proto::raftpb::Entry;

/// One member's log as the simulator saw it handed out.
#[derive(Clone, Debug, Default)]
pub struct LogMirror {
    /// Index of the snapshot the log starts after.
    pub snapshot_index: u64,
    /// (term, checksum of data) of entries `snapshot_index + 1 ..`.
    entries: Vec<(u64, u32)>,
}

impl LogMirror {
    pub fn reset(&mut self, snapshot_index: u64) {
        self.snapshot_index = snapshot_index;
        self.entries.clear();
    }

    /// Applies entries handed out for persistence: they replace any at the same
    /// or later indexes.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        if first.index <= self.snapshot_index {
            // Raft never hands out entries at or below its snapshot.
            panic!(
                "entry {} handed out at or below the snapshot {}",
                first.index, self.snapshot_index
            );
        }
        let keep = (first.index - self.snapshot_index - 1) as usize;
        assert!(
            keep <= self.entries.len(),
            "entries handed out with a gap after {}",
            self.last_index()
        );
        self.entries.truncate(keep);
        self.entries
            .extend(entries.iter().map(|e| (e.term, crc32c::checksum(&e.data))));
    }

    pub fn last_index(&self) -> u64 {
        self.snapshot_index + self.entries.len() as u64
    }

    pub fn get(&self, index: u64) -> Option<(u64, u32)> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries
            .get((index - self.snapshot_index - 1) as usize)
            .copied()
    }
}

/// Cluster-wide records the invariants are checked against.
#[derive(Debug, Default)]
pub struct Invariants {
    leaders: BTreeMap<u64, u64>,
    /// Committed entries: index -> (term, checksum) and the term they were
    /// first seen committed in (the committing leader's, or later).
    committed: BTreeMap<u64, ((u64, u32), u64)>,
    /// Highest term each member ever had.
    terms: BTreeMap<u64, u64>,
    pub checks: u64,
}

/// A member's state after a step, as the invariants need it.
#[derive(Clone, Copy, Debug)]
pub struct MemberView<'a> {
    pub id: u64,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub is_leader: bool,
    pub became_leader: bool,
    pub log: &'a LogMirror,
}

/// Per-incarnation cursors for monotonicity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cursors {
    pub commit: u64,
    pub applied: u64,
    /// Committed indexes up to this one were compared with the record.
    pub checked: u64,
}

impl Invariants {
    /// A member restarts after a crash that left `durable_term` acknowledged
    /// durable: its term may go back to that (what it had not synced is lost, as
    /// with any power loss), never below.
    pub fn restarted(&mut self, id: u64, durable_term: u64) {
        if let Some(t) = self.terms.get_mut(&id) {
            *t = (*t).min(durable_term);
        }
    }

    pub fn check(&mut self, view: MemberView<'_>, cursors: &mut Cursors) -> Result<(), String> {
        self.checks += 1;
        let id = view.id;
        let term_max = self.terms.entry(id).or_default();
        if view.term < *term_max {
            return Err(format!(
                "member {id:x}: term went back from {} to {}",
                term_max, view.term
            ));
        }
        *term_max = view.term;
        if view.commit < cursors.commit {
            return Err(format!(
                "member {id:x}: commit went back from {} to {}",
                cursors.commit, view.commit
            ));
        }
        if view.applied < cursors.applied {
            return Err(format!(
                "member {id:x}: applied went back from {} to {}",
                cursors.applied, view.applied
            ));
        }
        cursors.commit = view.commit;
        cursors.applied = view.applied;
        if view.is_leader {
            let leader = self.leaders.entry(view.term).or_insert(id);
            if *leader != id {
                return Err(format!(
                    "two leaders in term {}: {:x} and {id:x}",
                    view.term, *leader
                ));
            }
        }
        // Committed entries: record new ones, compare known ones.
        let from = cursors.checked.max(view.log.snapshot_index) + 1;
        let mut index = from;
        while index <= view.commit {
            let Some(entry) = view.log.get(index) else { break };
            match self.committed.get(&index) {
                Some((known, _)) if *known != entry => {
                    return Err(format!(
                        "committed entry {index} differs on member {id:x}: term {} (crc {:08x}) vs recorded term {} (crc {:08x})",
                        entry.0, entry.1, known.0, known.1
                    ));
                }
                Some(_) => {}
                None => {
                    self.committed.insert(index, (entry, view.term));
                }
            }
            index += 1;
        }
        cursors.checked = index - 1;
        if view.became_leader {
            for (&i, &(want, seen_in)) in self.committed.range(view.log.snapshot_index + 1..) {
                if seen_in >= view.term {
                    continue;
                }
                let have = view.log.get(i);
                if have != Some(want) {
                    return Err(format!(
                        "leader completeness: new leader {id:x} of term {} lacks committed entry {i} (has {have:?}, committed {want:?})",
                        view.term
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn committed_len(&self) -> u64 {
        self.committed.len() as u64
    }

    /// Forgets nothing; exposes the highest committed index recorded.
    pub fn committed_max(&self) -> u64 {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }
}
