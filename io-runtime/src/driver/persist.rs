//! The storage thread: owns the member's [`Storage`] and carries out the node's
//! disk work in the order the node asked for it.
//!
//! The driver hands over the [`Job`]s of each turn as soon as the turn ends, without
//! waiting for the previous ones to be on disk. The thread takes everything queued
//! when it comes back from a sync as one pass (`detcd_storage::pass`, the order
//! of records, writes and syncs the simulator runs too): every Persist appended,
//! snapshot markers written where they come, one write, then one sync if any
//! Persist needed it, then one [`Done`] back to the driver. This is the group
//! commit, and the thread starts the next sync straight after the previous one,
//! without a round trip through the driver task in between (with one batch in
//! flight the disk sat idle while the driver woke up, applied and handed over the
//! next batch: about half the time under load). [`crate::group_commit::GroupCommitter`] is not used because
//! the node is already the single writer, so its multi-writer queue would add a
//! hop and nothing else, and it does not own the snapshot files.
//!
//! Application snapshot files are written by a second thread, the snapshot
//! writer: a large state takes long to write and sync, and the WAL syncs (every
//! client's write) must not queue behind it. The writer reports each file durable
//! back into the storage thread's queue, which then appends its WAL marker (a
//! marker never precedes its file) and releases the WAL it covers. A snapshot
//! from the leader is different: the entries after it continue from it, so the
//! storage thread waits for the writer to save it before going on.
//!
//! Syncs block for milliseconds, hence plain threads rather than tokio tasks.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use detcd_core::node::Persist;
use detcd_proto::raftpb::{Snapshot, SnapshotMetadata};
use detcd_storage::{PersistPass, Work};
use tokio::sync::mpsc;

use super::Internal;
use crate::snap::Snapshotter;
use crate::storage::Storage;

/// A failure of a pass: the storage's, or the snapshot writer's.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One piece of disk work, as the node's outputs describe it.
#[derive(Debug)]
pub(crate) enum Job {
    /// The node's [`Output::Persist`](detcd_core::node::Output::Persist), as it came.
    Persist(Persist),
    SaveSnapshot(Snapshot),
    ReleaseWal(u64),
    /// From the snapshot writer: this application snapshot's file is durable
    /// (saving it took the seconds given).
    SnapshotFileSaved(SnapshotMetadata, f64),
    /// From the snapshot writer: a file could not be saved.
    SnapshotFileFailed(String),
}

/// What the storage thread's queue carries, by sender: the driver's batches are
/// counted in [`Persister::submitted`] (the inline-write path waits for them),
/// the snapshot writer's reports and the stop are not.
enum ToStorage {
    /// One turn's jobs from the driver.
    Batch(Vec<Job>),
    /// The snapshot writer's word on a file.
    FileReport(Job),
    /// From [`Persister::stop`] or the drop: finish what came before, then exit.
    Stop,
}

/// Work for the snapshot writer.
enum FileWork {
    /// Save, then report [`Job::SnapshotFileSaved`] into the storage queue.
    Save(Snapshot),
    /// Save and answer at once (the storage thread waits).
    SaveNow(Snapshot, std_mpsc::Sender<Result<(), String>>),
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
    /// How long the batch's WAL appends and sync took, when it wrote any.
    pub(crate) commit_seconds: Option<f64>,
    /// Bytes the WAL has made durable since it opened (after this batch).
    pub(crate) wal_bytes_synced: Option<u64>,
    /// Seconds each snapshot file of the batch took to save.
    pub(crate) snapshot_save_seconds: Vec<f64>,
    /// A failure stops the member: a failed sync is never retried.
    pub(crate) error: Option<String>,
}

/// The driver's side of the storage thread.
#[derive(Debug)]
pub(crate) struct Persister {
    jobs: Option<std_mpsc::Sender<ToStorage>>,
    thread: Option<JoinHandle<()>>,
    /// The storage, locked by whoever writes: the storage thread for each pass,
    /// or the driver itself for a small batch while the thread is idle.
    shared: Arc<Mutex<StorageThread>>,
    /// Batches the driver submitted that the storage thread has not reported yet.
    submitted: Arc<AtomicUsize>,
}

/// Batches of at most this many entries, with nothing else in them, are written by
/// the driver itself when the storage thread is idle (see [`Persister::write_inline`]).
const INLINE_ENTRIES_MAX: usize = 4;

impl Persister {
    pub(crate) fn start(storage: Storage, done: mpsc::UnboundedSender<Internal>) -> Persister {
        let (jobs, receiver) = std_mpsc::channel::<ToStorage>();
        let (files, file_work) = std_mpsc::channel::<FileWork>();
        let snapshotter = storage.snapshotter().clone();
        let reports = jobs.clone();
        let writer = std::thread::Builder::new()
            .name("detcd-snapshots".into())
            .spawn(move || write_snapshot_files(&snapshotter, &file_work, &reports))
            .expect("spawn the snapshot writer thread");
        let shared = Arc::new(Mutex::new(StorageThread {
            storage: Some(storage),
            files: Some(files),
            poisoned: false,
        }));
        let submitted = Arc::new(AtomicUsize::new(0));
        let (thread_shared, thread_submitted) = (Arc::clone(&shared), Arc::clone(&submitted));
        let thread = std::thread::Builder::new()
            .name("detcd-storage".into())
            .spawn(move || {
                let mut stopping = false;
                while let Ok(first) = receiver.recv() {
                    let (mut batch, mut taken) = (Vec::new(), 0);
                    // What was handed over meanwhile joins this pass, up to a stop.
                    let mut next = Some(first);
                    while let Some(item) = next.take() {
                        match item {
                            ToStorage::Batch(jobs) => {
                                taken += 1;
                                batch.extend(jobs);
                            }
                            ToStorage::FileReport(job) => batch.push(job),
                            ToStorage::Stop => {
                                stopping = true;
                                break;
                            }
                        }
                        next = receiver.try_recv().ok();
                    }
                    let report = lock(&thread_shared).write_batch(batch);
                    let sent = done.send(Internal::Stored(report));
                    thread_submitted.fetch_sub(taken, Ordering::AcqRel);
                    if sent.is_err() || stopping {
                        break;
                    }
                }
                // The writer finishes the file in hand (a file without its marker
                // is ignored at recovery) before the WAL lock goes with `storage`.
                let (storage, files) = {
                    let mut t = lock(&thread_shared);
                    (t.storage.take(), t.files.take())
                };
                drop(files);
                let _ = writer.join();
                drop(storage);
            })
            .expect("spawn the storage thread");
        Persister {
            jobs: Some(jobs),
            thread: Some(thread),
            shared,
            submitted,
        }
    }

    /// Writes a small batch on the calling (driver) thread when the storage thread
    /// has nothing in hand, saving the two thread hand-offs a lone write would
    /// otherwise make (they dominate a single client's latency on a busy machine).
    /// Returns the batch untouched when it must go through [`Persister::submit`]:
    /// work is in flight (the order of writes is the order of batches), the batch
    /// holds a snapshot or other work, or it is large (large batches mean load,
    /// where overlapping the sync with the driver's work pays more).
    pub(crate) fn write_inline(&self, batch: Vec<Job>) -> Result<Done, Vec<Job>> {
        let small = batch.iter().try_fold(0usize, |entries, job| match job {
            Job::Persist(Persist {
                snapshot: None,
                entries: e,
                ..
            }) => Some(entries + e.len()),
            _ => None,
        });
        if small.is_none_or(|n| n > INLINE_ENTRIES_MAX) || self.submitted.load(Ordering::Acquire) != 0 {
            return Err(batch);
        }
        match self.shared.try_lock() {
            Ok(mut storage) => Ok(storage.write_batch(batch)),
            Err(_) => Err(batch),
        }
    }

    /// Hands over a batch; its [`Done`] (or that of a later pass it joined) arrives
    /// as [`Internal::Stored`].
    pub(crate) fn submit(&self, batch: Vec<Job>) -> bool {
        self.submitted.fetch_add(1, Ordering::AcqRel);
        self.jobs
            .as_ref()
            .is_some_and(|j| j.send(ToStorage::Batch(batch)).is_ok())
    }

    /// Stops the threads after the work already handed over and waits for them,
    /// so the data directory is unlocked when this returns.
    pub(crate) async fn stop(mut self) {
        if let Some(jobs) = self.jobs.take() {
            let _ = jobs.send(ToStorage::Stop);
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        // The snapshot writer holds a sender too, so the queue never closes by
        // itself: without a stop the storage thread would wait forever.
        if let Some(jobs) = self.jobs.take() {
            let _ = jobs.send(ToStorage::Stop);
        }
    }
}

fn write_snapshot_files(
    snapshotter: &Snapshotter,
    work: &std_mpsc::Receiver<FileWork>,
    reports: &std_mpsc::Sender<ToStorage>,
) {
    while let Ok(item) = work.recv() {
        match item {
            FileWork::Save(snapshot) => {
                let started = Instant::now();
                let job = match snapshotter.save(&snapshot) {
                    Ok(_) => Job::SnapshotFileSaved(
                        snapshot.metadata.unwrap_or_default(),
                        started.elapsed().as_secs_f64(),
                    ),
                    Err(e) => Job::SnapshotFileFailed(e.to_string()),
                };
                if reports.send(ToStorage::FileReport(job)).is_err() {
                    return;
                }
            }
            FileWork::SaveNow(snapshot, reply) => {
                let _ = reply.send(snapshotter.save(&snapshot).map(|_| ()).map_err(|e| e.to_string()));
            }
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
            commit_seconds: None,
            wal_bytes_synced: None,
            snapshot_save_seconds: Vec::new(),
            error: Some(error),
        }
    }
}

/// The storage and what goes with it, behind the [`Persister`]'s lock.
struct StorageThread {
    /// Taken when the storage thread ends.
    storage: Option<Storage>,
    files: Option<std_mpsc::Sender<FileWork>>,
    /// A write failed: every later batch fails too (a failed sync is never retried).
    poisoned: bool,
}

impl fmt::Debug for StorageThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageThread")
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

fn lock(shared: &Mutex<StorageThread>) -> std::sync::MutexGuard<'_, StorageThread> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl StorageThread {
    fn storage(&mut self) -> Result<&mut Storage, String> {
        self.storage
            .as_mut()
            .ok_or_else(|| "the storage is closed".to_string())
    }

    fn send_file(&self, work: FileWork) -> Result<(), String> {
        let files = self
            .files
            .as_ref()
            .ok_or_else(|| "the storage is closed".to_string())?;
        files
            .send(work)
            .map_err(|_| "the snapshot writer is gone".to_string())
    }

    /// Saves a snapshot a Persist carries through the snapshot writer (one
    /// thread writes snapshot files) and waits for it to be durable.
    fn save_file_now(&self, snapshot: &Snapshot) -> Result<(), String> {
        let (reply, answer) = std_mpsc::channel();
        self.send_file(FileWork::SaveNow(snapshot.clone(), reply))?;
        answer
            .recv()
            .map_err(|_| "the snapshot writer is gone".to_string())?
    }

    fn write_batch(&mut self, batch: Vec<Job>) -> Done {
        if self.poisoned {
            return Done::failed("storage failed earlier".into());
        }
        let done = self.write_batch_unpoisoned(batch);
        self.poisoned |= done.error.is_some();
        done
    }

    /// One storage pass ([`PersistPass`]: the policy the simulator runs too):
    /// the batch's work appended in order, written once, synced once if a
    /// Persist asked for it. Snapshot files go to the snapshot writer.
    fn write_batch_unpoisoned(&mut self, batch: Vec<Job>) -> Done {
        let mut done = Done {
            persisted: None,
            snapshots_saved: Vec::new(),
            sync_seconds: None,
            entries: 0,
            persists: 0,
            commit_seconds: None,
            wal_bytes_synced: None,
            snapshot_save_seconds: Vec::new(),
            error: None,
        };
        let batch_started = Instant::now();
        let result = || -> Result<(), String> {
            let mut pass = PersistPass::new();
            for job in batch {
                let work = match job {
                    Job::Persist(persist) => Work::Persist(persist),
                    Job::SaveSnapshot(snapshot) => {
                        self.send_file(FileWork::Save(snapshot))?;
                        continue;
                    }
                    Job::SnapshotFileSaved(metadata, seconds) => {
                        done.snapshot_save_seconds.push(seconds);
                        Work::SnapshotFileSaved(metadata)
                    }
                    Job::SnapshotFileFailed(error) => return Err(error),
                    Job::ReleaseWal(index) => Work::ReleaseWal(index),
                };
                let mut storage = self.storage.take().ok_or("the storage is closed")?;
                // The snapshot writer saves a snapshot a Persist carries.
                let save_file = &mut |_: &Snapshotter, s: &Snapshot| -> Result<(), BoxError> {
                    Ok(self.save_file_now(s)?)
                };
                let added = pass.add(&mut storage, work, save_file);
                self.storage = Some(storage);
                added.map_err(|e| e.to_string())?;
            }
            let written = pass.write(self.storage()?).map_err(|e| e.to_string())?;
            let started = Instant::now();
            let report = written.sync(self.storage()?).map_err(|e| e.to_string())?;
            if report.synced {
                done.sync_seconds = Some(started.elapsed().as_secs_f64());
                done.wal_bytes_synced = Some(self.storage()?.wal().stats().bytes_synced);
            }
            if report.persists > 0 {
                done.commit_seconds = Some(batch_started.elapsed().as_secs_f64());
            }
            done.persisted = report.persisted;
            done.snapshots_saved = report.snapshots_marked;
            done.entries = report.entries;
            done.persists = report.persists;
            Ok(())
        };
        if let Err(e) = result() {
            return Done::failed(e);
        }
        done
    }
}
