//! Exports of the application state (the Maintenance/Snapshot stream), encoded a
//! slice per [`Input::ExportSnapshot`](super::Input::ExportSnapshot) so that a large state never stalls the member.

use std::collections::BTreeMap;

use super::io::{ExportProgress, Output};
use super::state::StateEncoder;
use super::Node;
use crate::mvcc::Store;

/// One export: still encoding, or encoded (finished early, before something
/// changed the store it reads) and waiting for its next input.
#[derive(Debug)]
enum Export {
    Encoding(StateEncoder),
    Done(Vec<u8>),
}

/// The exports in progress, by the driver's export number.
#[derive(Debug, Default)]
pub(super) struct Exports {
    jobs: BTreeMap<u64, Export>,
}

impl Exports {
    /// Finishes every export at once: before the store they read is compacted or
    /// replaced.
    pub(super) fn finish_all(&mut self, store: &Store) {
        for job in self.jobs.values_mut() {
            if let Export::Encoding(encoder) = job {
                while !encoder.step(store, usize::MAX) {}
                let Export::Encoding(encoder) = std::mem::replace(job, Export::Done(Vec::new())) else {
                    unreachable!("matched above");
                };
                *job = Export::Done(encoder.finish());
            }
        }
    }
}

impl Node {
    /// Starts `export` (the state as of the applied index now) or encodes its
    /// next slice; says where it stands with [`Output::SnapshotExport`].
    pub(super) fn step_export(&mut self, export: u64) {
        if !self.exports.jobs.contains_key(&export) {
            let encoder = self.state_encoder();
            self.exports.jobs.insert(export, Export::Encoding(encoder));
        }
        let done = match self.exports.jobs.get_mut(&export).expect("inserted above") {
            Export::Encoding(encoder) => encoder.step(&self.store, self.config.snapshot_step_bytes),
            Export::Done(_) => true,
        };
        let progress = if done {
            match self.exports.jobs.remove(&export).expect("present") {
                Export::Encoding(encoder) => ExportProgress::Done(encoder.finish()),
                Export::Done(data) => ExportProgress::Done(data),
            }
        } else {
            ExportProgress::Pending
        };
        self.outputs
            .push_back(Output::SnapshotExport { export, progress });
    }
}
