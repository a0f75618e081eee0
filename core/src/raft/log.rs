//! The in-memory raft log: the latest snapshot's metadata (and its opaque data, kept
//! to send to followers that fell behind it) plus every entry after it.
//!
//! Besides the entries, the log tracks four cursors that the Ready/advance contract
//! needs: `handed_out` (entries given to the application to persist), `persisted`
//! (entries the application acknowledged as durable), `applying` (committed entries
//! given out to apply) and `applied` (acknowledged as applied). Keeping them here,
//! next to the entries they index, makes truncation adjust them in one place.
//!
//! Invariants (checked by `check`): `snapshot.index <= applied <= applying <=
//! committed <= last_index`, entry indexes are contiguous from `first_index`, and
//! terms never decrease along the log.

use detcd_proto::raftpb::{ConfState, Entry, Snapshot, SnapshotMetadata};

use crate::mutation::{is_active, Mutation};

/// Payload bytes of an entry, the unit of every byte limit in raft.
pub fn payload_bytes(e: &Entry) -> u64 {
    e.data.len() as u64
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct RaftLog {
    snapshot: Snapshot,
    /// True while `snapshot` was installed from a leader (or by bootstrap) and has
    /// not yet been handed to the application in a Ready.
    snapshot_unhanded: bool,
    entries: Vec<Entry>,
    pub committed: u64,
    pub applied: u64,
    pub applying: u64,
    pub handed_out: u64,
    pub persisted: u64,
}

impl RaftLog {
    /// A log whose durable state is `snapshot` plus `entries`, with `committed` and
    /// `applied` as recovered.
    pub fn recovered(snapshot: Snapshot, entries: Vec<Entry>, committed: u64, applied: u64) -> RaftLog {
        let snap_index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
        let last = snap_index + entries.len() as u64;
        let applied = applied.max(snap_index);
        RaftLog {
            snapshot,
            snapshot_unhanded: false,
            entries,
            committed: committed.max(snap_index),
            applied,
            applying: applied,
            handed_out: last,
            persisted: last,
        }
    }

    /// A fresh log that starts from `snapshot`, which the application has not yet
    /// stored: it is handed out in the first Ready.
    pub fn bootstrap(snapshot: Snapshot) -> RaftLog {
        let mut log = RaftLog::recovered(Snapshot::default(), Vec::new(), 0, 0);
        log.restore(snapshot);
        log
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.metadata.as_ref().map_or(0, |m| m.index)
    }

    pub fn snapshot_term(&self) -> u64 {
        self.snapshot.metadata.as_ref().map_or(0, |m| m.term)
    }

    pub fn first_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    pub fn last_index(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_term(), |e| e.term)
    }

    /// The term of the entry at `index`, or None when it is compacted or beyond the end.
    pub fn term(&self, index: u64) -> Option<u64> {
        let snap = self.snapshot_index();
        if index == snap {
            return Some(self.snapshot_term());
        }
        if index < snap || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index - snap - 1) as usize].term)
    }

    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft's election restriction (5.4.1): a candidate's log must be at least as
    /// up to date as ours.
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term() || (last_term == self.last_term() && last_index >= self.last_index())
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index < self.first_index() || index > self.last_index() {
            return None;
        }
        Some(&self.entries[(index - self.first_index()) as usize])
    }

    /// Entries in `[lo, hi]`, up to `bytes_max` payload bytes but at least one.
    /// None when `lo` is compacted.
    pub fn slice(&self, lo: u64, hi: u64, bytes_max: u64) -> Option<Vec<Entry>> {
        if lo < self.first_index() {
            return None;
        }
        let hi = hi.min(self.last_index());
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut index = lo;
        while index <= hi {
            let e = &self.entries[(index - self.first_index()) as usize];
            bytes += payload_bytes(e);
            if !out.is_empty() && bytes > bytes_max {
                break;
            }
            out.push(e.clone());
            index += 1;
        }
        Some(out)
    }

    /// etcd's findConflictByTerm: the largest index at or below `index` whose term
    /// is at most `term`, with that term (0 when compacted). A leader uses it to skip
    /// a whole term of mismatching entries per round trip instead of one entry.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut index = index.min(self.last_index());
        loop {
            match self.term(index) {
                None => return (index, 0),
                Some(t) if t <= term => return (index, t),
                Some(_) => {}
            }
            if index == 0 {
                return (0, 0);
            }
            index -= 1;
        }
    }

    /// The first entry of `ents` that is new or conflicts with the log, or 0 if all
    /// are already present.
    fn find_conflict(&self, ents: &[Entry]) -> u64 {
        for e in ents {
            if !self.match_term(e.index, e.term) {
                return e.index;
            }
        }
        0
    }

    /// Appends a leader's entries following (`prev_index`, `prev_term`). Returns the
    /// index of the last new entry, or None when the previous entry does not match.
    pub fn maybe_append(
        &mut self,
        prev_index: u64,
        prev_term: u64,
        committed: u64,
        mut ents: Vec<Entry>,
    ) -> Option<u64> {
        if !self.match_term(prev_index, prev_term) {
            return None;
        }
        let last_new = prev_index + ents.len() as u64;
        let conflict = self.find_conflict(&ents);
        if conflict != 0 {
            assert!(
                conflict > self.committed,
                "entry {conflict} conflicts with committed {}",
                self.committed
            );
            let mut offset = (conflict - prev_index - 1) as usize;
            if is_active(Mutation::ConflictTruncationOffByOne) && conflict <= self.last_index() {
                // Planted bug: the cut starts after the conflicting entry, keeping it.
                offset = (offset + 1).min(ents.len());
            }
            self.append(ents.split_off(offset));
        }
        self.commit_to(committed.min(last_new));
        Some(last_new)
    }

    /// Appends entries, truncating any conflicting suffix first.
    pub fn append(&mut self, ents: Vec<Entry>) {
        let Some(first) = ents.first() else { return };
        let after = first.index - 1;
        assert!(
            after >= self.committed,
            "truncating committed entry: after={after} committed={}",
            self.committed
        );
        assert!(
            after >= self.snapshot_index() && after <= self.last_index(),
            "gap appending at {}",
            first.index
        );
        self.entries.truncate((after - self.snapshot_index()) as usize);
        // Entries beyond the cut are gone: neither handed out nor durable in this log.
        self.handed_out = self.handed_out.min(after);
        self.persisted = self.persisted.min(after);
        self.entries.extend(ents);
    }

    /// Appends one leader-made entry (no truncation possible).
    pub fn push(&mut self, e: Entry) {
        debug_assert_eq!(e.index, self.last_index() + 1);
        self.entries.push(e);
    }

    pub fn commit_to(&mut self, index: u64) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} beyond last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Raises the commit index to `index` if its entry is from `term`: the leader
    /// commits by counting replicas only entries of its own term (Raft 5.4.2).
    pub fn maybe_commit(&mut self, index: u64, term: u64) -> bool {
        let counts = self.term(index) == Some(term)
            // Planted bug: any term counts (Raft figure 8).
            || (is_active(Mutation::CommitPreviousTerm) && self.term(index).is_some());
        if index > self.committed && counts {
            self.commit_to(index);
            return true;
        }
        false
    }

    /// Replaces the log with a snapshot received from the leader.
    pub fn restore(&mut self, snapshot: Snapshot) {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        self.entries.clear();
        self.snapshot = snapshot;
        self.snapshot_unhanded = true;
        self.committed = meta.index;
        self.handed_out = meta.index;
        self.persisted = self.persisted.min(meta.index);
        // The snapshot's state replaces everything applied so far; once the
        // application installs it (Ready.snapshot) it has applied up to its index.
        self.applying = meta.index;
        self.applied = meta.index;
    }

    /// Folds entries up to `index` into a snapshot with the application's data.
    /// The caller checked `snapshot_index < index <= applying`; the application's
    /// state covers `index`, so `applied` moves up to it.
    pub fn compact(&mut self, index: u64, conf_state: ConfState, data: Vec<u8>) {
        let term = self.term(index).expect("compact index is in the log");
        let drop = (index - self.snapshot_index()) as usize;
        self.entries.drain(..drop);
        self.applied = self.applied.max(index);
        self.snapshot = Snapshot {
            data,
            metadata: Some(SnapshotMetadata {
                conf_state: Some(conf_state),
                index,
                term,
            }),
        };
    }

    /// Entries not yet handed to the application.
    pub fn unhanded_entries(&self) -> &[Entry] {
        let from = (self.handed_out - self.snapshot_index()) as usize;
        &self.entries[from..]
    }

    pub fn has_unhanded_entries(&self) -> bool {
        self.handed_out < self.last_index()
    }

    /// The snapshot to hand out, if one arrived since the last Ready.
    pub fn unhanded_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot_unhanded.then_some(&self.snapshot)
    }

    /// The last index committed entries may be applied up to: only what is committed
    /// and already handed out for persistence (the application persists a Ready's
    /// entries before applying its committed entries).
    fn apply_limit(&self) -> u64 {
        self.committed.min(self.handed_out)
    }

    pub fn has_entries_to_apply(&self) -> bool {
        !self.snapshot_unhanded && self.apply_limit() > self.applying
    }

    /// Marks everything pending as handed out; returns the new entries, the snapshot
    /// and the committed entries to apply, in that order of persistence.
    pub fn hand_out(&mut self) -> (Vec<Entry>, Option<Snapshot>, Vec<Entry>) {
        let snapshot = if self.snapshot_unhanded {
            self.snapshot_unhanded = false;
            Some(self.snapshot.clone())
        } else {
            None
        };
        let entries = self.unhanded_entries().to_vec();
        self.handed_out = self.last_index();
        let limit = self.apply_limit();
        let committed = if limit > self.applying {
            let lo = (self.applying + 1 - self.first_index()) as usize;
            let hi = (limit + 1 - self.first_index()) as usize;
            self.entries[lo..hi].to_vec()
        } else {
            Vec::new()
        };
        self.applying = self.applying.max(limit);
        (entries, snapshot, committed)
    }

    /// Acknowledges entries up to (`index`, `term`) as durable, unless the log was
    /// truncated under them since (the term no longer matches).
    pub fn persisted_to(&mut self, index: u64, term: u64) {
        if index > self.persisted && index <= self.handed_out && self.match_term(index, term) {
            self.persisted = index;
        }
    }

    pub fn applied_to(&mut self, index: u64) {
        if index > self.applied {
            assert!(
                index <= self.committed,
                "applied {index} beyond committed {}",
                self.committed
            );
            self.applied = index;
        }
    }

    /// The log's structural invariants, as a description of the first violation.
    pub fn check(&self) -> Result<(), String> {
        let snap = self.snapshot_index();
        if !(snap <= self.applied && self.applied <= self.applying && self.applying <= self.committed) {
            return Err(format!(
                "cursor order broken: snapshot={snap} applied={} applying={} committed={}",
                self.applied, self.applying, self.committed
            ));
        }
        if self.committed > self.last_index() {
            return Err(format!(
                "committed {} beyond last index {}",
                self.committed,
                self.last_index()
            ));
        }
        if self.handed_out > self.last_index() || self.persisted > self.handed_out {
            return Err(format!(
                "persistence cursors broken: persisted={} handed_out={} last={}",
                self.persisted,
                self.handed_out,
                self.last_index()
            ));
        }
        let mut prev_term = self.snapshot_term();
        for (i, e) in self.entries.iter().enumerate() {
            if e.index != snap + 1 + i as u64 {
                return Err(format!("entry at position {i} has index {}", e.index));
            }
            if e.term < prev_term {
                return Err(format!(
                    "term decreases at index {}: {} after {prev_term}",
                    e.index, e.term
                ));
            }
            prev_term = e.term;
        }
        Ok(())
    }
}
