//! The release policy, the outputs side of it: what waits for the disk. A Ready's
//! raft messages are held until its Persist is acknowledged (the leader's appends,
//! heartbeats and snapshots excepted, see `Node::drive`); while a Ready that
//! changed term or vote is unpersisted nothing leaves early; while one that
//! commits a configuration change is unpersisted every output but disk work is
//! gated. Acknowledgements release them in order.

use super::io::{Output, PeerMessage};
use super::Node;

impl Node {
    /// The next output, or `None` when there is nothing left to do.
    pub fn poll(&mut self) -> Option<Output> {
        loop {
            let Some(output) = self.outputs.pop_front() else {
                return self.status_if_changed();
            };
            let disk_work = matches!(
                output,
                Output::Persist(_) | Output::SaveSnapshot { .. } | Output::ReleaseWal { .. }
            );
            if self.conf_commit_unpersisted.is_none() || disk_work {
                return Some(output);
            }
            self.gated.push_back(output);
        }
    }

    /// Persists up to `ready_number` are durable: term and vote, a committed
    /// configuration change and the held messages of those Readies are released.
    pub(super) fn on_persisted(&mut self, ready_number: u64) {
        self.raft.advance(ready_number);
        if self.term_vote_unpersisted.is_some_and(|n| n <= ready_number) {
            self.term_vote_unpersisted = None;
        }
        if self.conf_commit_unpersisted.is_some_and(|n| n <= ready_number) {
            self.conf_commit_unpersisted = None;
            // What waited was produced before anything still queued.
            while let Some(output) = self.gated.pop_back() {
                self.outputs.push_front(output);
            }
        }
        while self.held.front().is_some_and(|(n, _)| *n <= ready_number) {
            let (_, messages) = self.held.pop_front().expect("checked");
            for m in messages {
                self.outputs.push_back(Output::Send {
                    to: m.to,
                    message: PeerMessage::Raft(m),
                });
            }
        }
        self.drive();
        self.maybe_snapshot();
    }
}
