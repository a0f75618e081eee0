//! A storage pass: how the disk work a member's storage thread takes in one go
//! becomes records, one write and at most one sync. The server's storage thread
//! (`detcd-io`) and the simulator (`detcd-sim`) both run their disk work through
//! this, so the order the simulator crashes is the order a server writes in.
//!
//! A pass is everything handed to the storage thread since its last pass (the
//! group commit). It goes in three steps:
//!
//! 1. [`PersistPass::add`], for each piece of [`Work`] in the order the node
//!    asked for it:
//!    - a Persist: a snapshot it carries (one from the leader, or the bootstrap
//!      one) first, its file durable, then its WAL marker (synced), then the WAL
//!      and snapshot files it covers released; then its entries and hard state,
//!      appended in memory;
//!    - an application snapshot whose file the snapshot writer made durable:
//!      its WAL marker (synced; the sync also covers the records appended
//!      before it) and the release of what it covers, if it is newer than the
//!      WAL's newest marker (markers only move forward: a file that finishes
//!      after a newer snapshot came from the leader gets none);
//!    - a release of the WAL up to an index.
//! 2. [`PersistPass::write`]: the records appended reach the file in one write.
//! 3. [`WrittenPass::sync`]: one sync of the WAL if any Persist of the pass
//!    asked for it (`must_sync`); then the [`PassReport`]: the newest Persist
//!    of the pass is durable as it asked, and the snapshots marked are saved.
//!
//! Nothing of a pass may be acknowledged before step 3 returns. A server runs
//! the steps back to back; the simulator runs step 3 when its simulated fsync
//! latency is over, so a crash in between loses what the disk had not made
//! durable (and may tear the last write).

use detcd_core::node::Persist;
use detcd_proto::raftpb::{Snapshot, SnapshotMetadata};

use crate::error::StorageError;
use crate::fs::Fs;
use crate::snap::Snapshotter;
use crate::storage::Storage;

/// One piece of disk work of a pass, as the node's outputs describe it.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// The node's `Output::Persist`, as it came.
    Persist(Persist),
    /// An application snapshot's file is durable (the node's `SaveSnapshot`,
    /// written by the snapshot writer): its WAL marker is due.
    SnapshotFileSaved(SnapshotMetadata),
    /// The node's `ReleaseWal`: WAL segments wholly at or below the index go.
    ReleaseWal(u64),
}

/// What a pass made durable, for the node (`Persisted`, `SnapshotSaved`) and
/// the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// The ready number of the newest Persist of the pass, now durable as it
    /// asked (None: the pass held no Persist).
    pub persisted: Option<u64>,
    /// Indexes of the application snapshots whose WAL markers the pass wrote
    /// (synced), in order.
    pub snapshots_marked: Vec<u64>,
    /// Persists in the pass.
    pub persists: u64,
    /// Entries those Persists appended.
    pub entries: u64,
    /// Whether the pass ended with a sync of the WAL (some Persist asked for one).
    pub synced: bool,
}

/// A pass being assembled (step 1).
#[derive(Debug, Default)]
pub struct PersistPass {
    report: PassReport,
    must_sync: bool,
}

/// A pass whose records are written, not yet synced (between steps 2 and 3).
#[derive(Debug)]
#[must_use = "nothing of a pass is durable before its sync"]
pub struct WrittenPass {
    report: PassReport,
    must_sync: bool,
}

impl PersistPass {
    pub fn new() -> PersistPass {
        PersistPass::default()
    }

    /// Carries out one piece of work (step 1). `save_file` writes the file of a
    /// snapshot a Persist carries, durably, given the storage's snapshotter:
    /// [`save_in_line`] writes it there and then; a server hands it to its
    /// snapshot writer thread instead, so that one thread writes snapshot files.
    pub fn add<F: Fs, E: From<StorageError>>(
        &mut self,
        storage: &mut Storage<F>,
        work: Work,
        save_file: &mut impl FnMut(&Snapshotter<F>, &Snapshot) -> Result<(), E>,
    ) -> Result<(), E> {
        match work {
            Work::Persist(Persist {
                ready_number,
                snapshot,
                entries,
                hard_state,
                must_sync,
            }) => {
                // The entries that follow a snapshot continue after it.
                if let Some(snapshot) = &snapshot {
                    save_file(storage.snapshotter(), snapshot)?;
                    storage.mark_snapshot(&snapshot.metadata.clone().unwrap_or_default())?;
                }
                // Kept in memory: the pass's records reach the file in one write.
                storage.append(hard_state.as_ref(), &entries)?;
                self.must_sync |= must_sync;
                self.report.persists += 1;
                self.report.entries += entries.len() as u64;
                self.report.persisted = Some(ready_number);
            }
            Work::SnapshotFileSaved(metadata) => {
                if metadata.index > storage.snapshot_marked() {
                    storage.mark_snapshot(&metadata)?;
                    self.report.snapshots_marked.push(metadata.index);
                }
            }
            Work::ReleaseWal(index) => {
                storage.wal_mut().release_to(index)?;
            }
        }
        Ok(())
    }

    /// Writes what the pass appended, in one write (step 2).
    pub fn write<F: Fs>(self, storage: &mut Storage<F>) -> Result<WrittenPass, StorageError> {
        storage.wal_mut().write_pending()?;
        Ok(WrittenPass {
            report: self.report,
            must_sync: self.must_sync,
        })
    }
}

impl WrittenPass {
    /// Whether [`WrittenPass::sync`] will sync the WAL.
    pub fn needs_sync(&self) -> bool {
        self.must_sync
    }

    /// What the pass will report once synced.
    pub fn report(&self) -> &PassReport {
        &self.report
    }

    /// Syncs the WAL if any Persist of the pass asked for it (step 3); what the
    /// report names is durable when this returns.
    pub fn sync<F: Fs>(self, storage: &mut Storage<F>) -> Result<PassReport, StorageError> {
        let mut report = self.report;
        if self.must_sync {
            storage.wal_mut().sync()?;
            report.synced = true;
        }
        Ok(report)
    }
}

/// Saves a snapshot a Persist carries on the calling thread (the `save_file` of
/// [`PersistPass::add`] when no snapshot writer thread exists).
pub fn save_in_line<F: Fs>(snapshotter: &Snapshotter<F>, snapshot: &Snapshot) -> Result<(), StorageError> {
    snapshotter.save(snapshot).map(drop)
}

impl<F: Fs> Storage<F> {
    /// One whole pass, its steps back to back (what a server's storage thread
    /// does): `work` carried out in order, written once, synced once if needed.
    pub fn persist_pass<E: From<StorageError>>(
        &mut self,
        work: impl IntoIterator<Item = Work>,
        save_file: &mut impl FnMut(&Snapshotter<F>, &Snapshot) -> Result<(), E>,
    ) -> Result<PassReport, E> {
        let mut pass = PersistPass::new();
        for item in work {
            pass.add(self, item, save_file)?;
        }
        Ok(pass.write(self)?.sync(self)?)
    }
}
