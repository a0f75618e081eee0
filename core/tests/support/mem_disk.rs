//! What one `core::node` member has made durable, for tests that drive members
//! with an in-memory disk that is durable as soon as written: the latest
//! snapshot, the hard state, and the entries after the snapshot; and the one
//! driver those tests drain a member's outputs with ([`MemDisk::drain`]).

use std::collections::VecDeque;

use detcd_core::node::{Input, Node, NodeConfig, NodeStart, Output, Persist};
use detcd_proto::etcdserverpb::Member;
use detcd_proto::raftpb::{Entry, HardState, Snapshot};

/// The config of member 1 ("n1", cluster 0xc1) alone in its cluster, with
/// `seed`: the one-member tests' member.
#[allow(dead_code)]
pub fn one_member_config(seed: u64) -> NodeConfig {
    let member = Member {
        id: 1,
        name: "n1".to_string(),
        peer_ur_ls: vec!["http://n1:2380".to_string()],
        ..Default::default()
    };
    let mut config = NodeConfig::new(1, 0xc1, "n1", vec![member]);
    config.seed = seed;
    config
}

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
    #[allow(dead_code)]
    pub fn recover(&self) -> NodeStart {
        NodeStart::Recover {
            snapshot: self.snapshot.clone(),
            hard_state: self.hard_state,
            entries: self.entries.clone(),
        }
    }
}

/// What draining a member did or gave, in the order it came out.
#[allow(dead_code)]
#[derive(Debug)]
pub enum Drained {
    /// A Persist was written; `acknowledged` is false while the caller holds
    /// the member's Persists (it answers `Persisted` itself later).
    Persisted {
        ready_number: u64,
        /// The index of the leader's snapshot it carried (0: none).
        snapshot_index: u64,
        entries: usize,
        hard_state: bool,
        acknowledged: bool,
    },
    /// The member's own snapshot was saved (`bytes` of state).
    SnapshotSaved { index: u64, bytes: usize },
    /// Any other output, for the caller to carry out.
    Output(Box<Output>),
}

/// How a drain ended.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainEnd {
    /// The member has nothing more to say.
    Idle,
    /// The member was removed from the cluster: its driver stops it.
    Removed,
}

impl MemDisk {
    /// Drains every output of `node`, doing the disk's work on this disk: a
    /// Persist is written (and acknowledged unless `hold`), a SaveSnapshot saved
    /// and acknowledged. The acknowledgements go in once the member has nothing
    /// more to say, as a driver's come back after its writes complete. Every
    /// happening goes to `sink`, in order, with the member as it is then; an
    /// `Output::Removed` ends the drain.
    #[allow(dead_code)]
    pub fn drain(&mut self, node: &mut Node, hold: bool, mut sink: impl FnMut(&Node, Drained)) -> DrainEnd {
        let mut acks = VecDeque::new();
        loop {
            let Some(out) = node.poll() else {
                let Some(ack) = acks.pop_front() else {
                    return DrainEnd::Idle;
                };
                node.handle(ack);
                continue;
            };
            let drained = match out {
                Output::Persist(persist) => {
                    let ready_number = persist.ready_number;
                    let snapshot_index = persist
                        .snapshot
                        .as_ref()
                        .and_then(|s| s.metadata.as_ref())
                        .map_or(0, |m| m.index);
                    let (entries, hard_state) = (persist.entries.len(), persist.hard_state.is_some());
                    self.persist(persist);
                    if !hold {
                        acks.push_back(Input::Persisted { ready_number });
                    }
                    Drained::Persisted {
                        ready_number,
                        snapshot_index,
                        entries,
                        hard_state,
                        acknowledged: !hold,
                    }
                }
                Output::SaveSnapshot { snapshot } => {
                    let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
                    let bytes = snapshot.data.len();
                    self.save_snapshot(snapshot);
                    acks.push_back(Input::SnapshotSaved { index });
                    Drained::SnapshotSaved { index, bytes }
                }
                Output::Removed => {
                    sink(node, Drained::Output(Box::new(Output::Removed)));
                    return DrainEnd::Removed;
                }
                other => Drained::Output(Box::new(other)),
            };
            sink(node, drained);
        }
    }
}
