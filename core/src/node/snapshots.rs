//! Snapshot scheduling: when the member takes an application snapshot, encoding
//! it a slice per input, and compacting raft's log once it is done.

use super::io::Output;
use super::{state, Node};

/// An application snapshot being encoded at `index` (see `Node::maybe_snapshot`).
#[derive(Debug)]
pub(super) struct SnapshotJob {
    pub(super) index: u64,
    pub(super) encoder: state::StateEncoder,
}

impl Node {
    /// Takes an application snapshot every `snapshot_count` applied entries, once
    /// raft has acknowledged everything applied (the snapshot must describe exactly
    /// the state at its index).
    /// Starts an application snapshot when one is due, or encodes the next slice
    /// of the one in progress; a finished one compacts raft's log and is saved.
    ///
    /// Due means `snapshot_count` entries applied since the last one and, once the
    /// state is over `snapshot_size_free_bytes`, at least as many bytes of entries
    /// applied as the last snapshot held: a snapshot costs its whole state, so
    /// taking one per fixed number of entries would cost a large store more in
    /// snapshots than in the writes themselves (etcd's snapshot is cheap because
    /// its state is already on disk; here the state is written out whole). The
    /// WAL kept between snapshots is then bounded by about the state's size.
    pub(super) fn maybe_snapshot(&mut self) {
        if self.snapshot_job.is_none() {
            let due = self.applied_index >= self.snapshot_index + self.config.snapshot_count
                && (self.snapshot_bytes <= self.config.snapshot_size_free_bytes
                    || self.applied_bytes_since_snapshot >= self.snapshot_bytes);
            if !due {
                return;
            }
            self.snapshot_job = Some(SnapshotJob {
                index: self.applied_index,
                encoder: self.state_encoder(),
            });
            self.applied_bytes_since_snapshot = 0;
        }
        self.step_snapshot(self.config.snapshot_step_bytes);
    }

    /// Finishes the snapshot in progress, if any, at once: before applying what
    /// would change the state the encoder still reads (a compaction, which
    /// removes records) or what raft refuses to compact past (a conf change).
    pub(crate) fn finish_snapshot(&mut self) {
        if self.snapshot_job.is_some() {
            self.step_snapshot(usize::MAX);
        }
        self.exports.finish_all(&self.store);
    }

    fn step_snapshot(&mut self, budget_bytes: usize) {
        let Some(job) = self.snapshot_job.as_mut() else {
            return;
        };
        if !job.encoder.step(&self.store, budget_bytes) {
            return;
        }
        let job = self.snapshot_job.take().expect("checked");
        let data = job.encoder.finish();
        let bytes = data.len() as u64;
        if self.raft.compact(job.index, data).is_ok() {
            self.snapshot_index = job.index;
            self.snapshot_bytes = bytes;
            self.outputs.push_back(Output::SaveSnapshot {
                snapshot: self.raft.snapshot().clone(),
            });
        }
    }

    pub(super) fn state_encoder(&self) -> state::StateEncoder {
        state::encoder(
            self.applied_index,
            self.applied_term,
            self.config.cluster_id,
            self.db_size_bytes,
            &self.members,
            &self.removed_members,
            &self.alarms,
            &self.store,
            &self.lessor,
            &self.applied_requests,
            &self.auth,
            &self.v2,
            &self.v2_stats,
        )
    }

    pub(super) fn encode_state(&self) -> Vec<u8> {
        let mut encoder = self.state_encoder();
        while !encoder.step(&self.store, usize::MAX) {}
        encoder.finish()
    }
}
