//! What one `core::node` member has made durable, for tests that drive members
//! with an in-memory disk that is durable as soon as written: the latest
//! snapshot, the hard state, and the entries after the snapshot.

use detcd_core::node::{Input, Node, NodeStart, Output, Persist};
use detcd_proto::raftpb::{Entry, HardState, Snapshot};

#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    pub snapshot: Snapshot,
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
}

impl MemDisk {
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.metadata.as_ref().map_or(0, |m| m.index)
    }

    /// An `Output::Persist`: a leader's snapshot replaces everything, entries
    /// overwrite from their first index, the hard state replaces the old one.
    pub fn persist(&mut self, persist: Persist) {
        let Persist {
            snapshot,
            entries,
            hard_state,
            ..
        } = persist;
        if let Some(s) = snapshot {
            self.snapshot = s;
            self.entries.clear();
        }
        if let Some(first) = entries.first() {
            let keep = (first.index - self.snapshot_index() - 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend(entries);
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs;
        }
    }

    /// An `Output::SaveSnapshot`: the member's own snapshot; the entries it
    /// covers are dropped.
    pub fn save_snapshot(&mut self, snapshot: Snapshot) {
        let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
        let drop = (index - self.snapshot_index()) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = snapshot;
    }

    /// Answers `output` if it is the member's disk work (a Persist, a SaveSnapshot),
    /// synchronously and at once; any other output comes back to the caller.
    /// (Some test files that include this module drive their disks by hand.)
    #[allow(dead_code)]
    pub fn serve(&mut self, node: &mut Node, output: Output) -> Option<Output> {
        match output {
            Output::Persist(persist) => {
                let ready_number = persist.ready_number;
                self.persist(persist);
                node.handle(Input::Persisted { ready_number });
                None
            }
            Output::SaveSnapshot { snapshot } => {
                let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
                self.save_snapshot(snapshot);
                node.handle(Input::SnapshotSaved { index });
                None
            }
            other => Some(other),
        }
    }

    /// How the member restarts from this disk.
    pub fn recover(&self) -> NodeStart {
        NodeStart::Recover {
            snapshot: self.snapshot.clone(),
            hard_state: self.hard_state,
            entries: self.entries.clone(),
        }
    }
}
