//! The storage thread: owns the member's [`Storage`] and carries out the node's
//! disk work in the order the node asked for it.
//!
//! The driver hands over the [`Job`]s of each turn as soon as the turn ends, without
//! waiting for the previous ones to be on disk. The thread takes everything queued
//! when it comes back from a sync as one pass: every Persist appended, snapshots
//! saved where they come, then one sync if any Persist needed it, then one [`Done`]
//! back to the driver. This is the group commit, and the thread starts the next
//! sync straight after the previous one, without a round trip through the driver
//! task in between (with one batch in flight the disk sat idle while the driver
//! woke up, applied and handed over the next batch: about half the time under
//! load). [`crate::group_commit::GroupCommitter`] is not used because
//! the node is already the single writer, so its multi-writer queue would add a
//! hop and nothing else, and it does not own the snapshot files.
//!
//! Syncs block for milliseconds, hence a plain thread rather than a tokio task.

use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use detcd_proto::raftpb::{Entry, HardState, Snapshot};
use tokio::sync::mpsc;

use super::Internal;
use crate::error::StorageError;
use crate::storage::Storage;

/// One piece of disk work, as the node's outputs describe it.
#[derive(Debug)]
pub(crate) enum Job {
    Persist {
        ready_number: u64,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        must_sync: bool,
    },
    SaveSnapshot(Snapshot),
    ReleaseWal(u64),
}

/// What a finished batch reports.
#[derive(Debug)]
pub(crate) struct Done {
    /// The newest Persist of the batch, now durable as it asked.
    pub(crate) persisted: Option<u64>,
    /// Indexes of the application snapshots saved, in order.
    pub(crate) snapshots_saved: Vec<u64>,
    /// How long the batch's sync took, when it synced.
    pub(crate) sync_seconds: Option<f64>,
    /// Entries the batch appended.
    pub(crate) entries: u64,
    /// Persists the batch wrote.
    pub(crate) persists: u64,
    /// A failure stops the member: a failed sync is never retried.
    pub(crate) error: Option<String>,
}

/// The driver's side of the storage thread.
#[derive(Debug)]
pub(crate) struct Persister {
    jobs: Option<std_mpsc::Sender<Vec<Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    pub(crate) fn start(storage: Storage, done: mpsc::UnboundedSender<Internal>) -> Persister {
        let (jobs, receiver) = std_mpsc::channel::<Vec<Job>>();
        let thread = std::thread::Builder::new()
            .name("detcd-storage".into())
            .spawn(move || {
                let mut storage = storage;
                let mut poisoned = false;
                while let Ok(mut batch) = receiver.recv() {
                    // What the driver handed over meanwhile joins this pass.
                    while let Ok(more) = receiver.try_recv() {
                        batch.extend(more);
                    }
                    let report = if poisoned {
                        Done::failed("storage failed earlier".into())
                    } else {
                        write_batch(&mut storage, batch)
                    };
                    poisoned |= report.error.is_some();
                    if done.send(Internal::Stored(report)).is_err() {
                        break;
                    }
                }
                // Dropping `storage` releases the WAL lock.
            })
            .expect("spawn the storage thread");
        Persister {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Hands over a batch; its [`Done`] (or that of a later pass it joined) arrives
    /// as [`Internal::Stored`].
    pub(crate) fn submit(&self, batch: Vec<Job>) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(batch).is_ok())
    }

    /// Stops the thread after the batch in flight and waits for it, so the data
    /// directory is unlocked when this returns.
    pub(crate) async fn stop(mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Done {
    fn failed(error: String) -> Done {
        Done {
            persisted: None,
            snapshots_saved: Vec::new(),
            sync_seconds: None,
            entries: 0,
            persists: 0,
            error: Some(error),
        }
    }
}

fn write_batch(storage: &mut Storage, batch: Vec<Job>) -> Done {
    let mut done = Done {
        persisted: None,
        snapshots_saved: Vec::new(),
        sync_seconds: None,
        entries: 0,
        persists: 0,
        error: None,
    };
    let mut must_sync = false;
    let result = (|| -> Result<(), StorageError> {
        for job in batch {
            match job {
                Job::Persist {
                    ready_number,
                    snapshot,
                    entries,
                    hard_state,
                    must_sync: sync,
                } => {
                    // A snapshot from the leader (or the bootstrap one) goes first:
                    // the entries that follow continue after it.
                    if let Some(snapshot) = &snapshot {
                        storage.save_snapshot(snapshot)?;
                    }
                    storage.save(hard_state.as_ref(), &entries, false)?;
                    must_sync |= sync;
                    done.entries += entries.len() as u64;
                    done.persists += 1;
                    done.persisted = Some(ready_number);
                }
                Job::SaveSnapshot(snapshot) => {
                    // Snapshot saving syncs the WAL (its marker), which also covers
                    // the Persists appended before it.
                    storage.save_snapshot(&snapshot)?;
                    done.snapshots_saved
                        .push(snapshot.metadata.as_ref().map_or(0, |m| m.index));
                }
                Job::ReleaseWal(index) => {
                    storage.wal_mut().release_to(index)?;
                }
            }
        }
        if must_sync {
            let started = Instant::now();
            storage.wal_mut().sync()?;
            done.sync_seconds = Some(started.elapsed().as_secs_f64());
        }
        Ok(())
    })();
    if let Err(e) = result {
        return Done::failed(e.to_string());
    }
    done
}
