//! Group commit: many writers share one append and one sync.
//!
//! A [`GroupCommitter`] owns the [`Wal`] on a thread of its own (a blocking
//! thread: syncs block for milliseconds). Writers submit records and wait for the
//! sync that covers them; while one sync is in flight the next requests queue up,
//! and the committer takes all of them (up to `batch_records_max`) as the next
//! batch: one append pass, one sync, every writer in it acknowledged. Under load
//! the batch grows to match the sync latency, which is where the throughput comes
//! from (etcd gets the same effect from its raft loop: proposals that arrive
//! during a `Save` go into the next `Ready`).
//!
//! Each request is checked on its own before it is appended, so a refused
//! request fails alone and appends nothing; an I/O error fails the whole batch and
//! poisons the WAL (see [`Wal`]).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use detcd_core::wal::Record;
use tokio::sync::{mpsc, oneshot};

use crate::error::StorageError;
use crate::wal::{Wal, WalStats};

/// Bounds of a [`GroupCommitter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// Requests that may wait for the committer; further submits wait for room.
    pub queue_requests_max: usize,
    /// Records appended before one sync, at most (a single larger request is
    /// still taken whole).
    pub batch_records_max: usize,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        GroupCommitOptions {
            queue_requests_max: 4096,
            batch_records_max: 4096,
        }
    }
}

/// What a writer learns once its records are durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitAck {
    /// Which sync made them durable (1 for the committer's first).
    pub sync_seq: u64,
    /// How many records that sync covered, the writer's included.
    pub batch_records: usize,
}

/// Counters of the committer (the WAL's own are in [`WalStats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    pub requests: u64,
    pub batches: u64,
    pub requests_per_batch_max: u64,
    pub wal: WalStats,
}

/// Why a submit failed. Errors are shared by every request of a failed batch.
#[derive(Clone, Debug)]
pub enum CommitError {
    Storage(Arc<StorageError>),
    /// The committer has stopped.
    Closed,
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitError::Storage(e) => e.fmt(f),
            CommitError::Closed => f.write_str("the WAL committer has stopped"),
        }
    }
}

impl std::error::Error for CommitError {}

struct Request {
    records: Vec<Record>,
    reply: oneshot::Sender<Result<CommitAck, CommitError>>,
}

/// Owns a [`Wal`] on a dedicated thread and batches writers' records into shared
/// syncs. Cloneable handles are not needed: share it by reference or `Arc`.
pub struct GroupCommitter {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<Wal>>,
    stats: Arc<Mutex<GroupCommitStats>>,
}

impl fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommitter")
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl GroupCommitter {
    /// Starts the committer thread, which takes ownership of `wal`.
    pub fn start(wal: Wal, options: GroupCommitOptions) -> GroupCommitter {
        let (sender, receiver) = mpsc::channel(options.queue_requests_max.max(1));
        let stats = Arc::new(Mutex::new(GroupCommitStats::default()));
        let thread_stats = Arc::clone(&stats);
        let batch_records_max = options.batch_records_max.max(1);
        let thread = std::thread::Builder::new()
            .name("detcd-wal-commit".into())
            .spawn(move || run(wal, receiver, batch_records_max, &thread_stats))
            .expect("spawn the WAL committer thread");
        GroupCommitter {
            requests: Some(sender),
            thread: Some(thread),
            stats,
        }
    }

    /// Appends `records` and resolves once a sync has made them durable.
    pub async fn commit(&self, records: Vec<Record>) -> Result<CommitAck, CommitError> {
        let (reply, answer) = oneshot::channel();
        let sender = self.requests.as_ref().ok_or(CommitError::Closed)?;
        sender
            .send(Request { records, reply })
            .await
            .map_err(|_| CommitError::Closed)?;
        answer.await.map_err(|_| CommitError::Closed)?
    }

    /// [`GroupCommitter::commit`] for a plain thread (must not be called from
    /// inside an async task: it blocks).
    pub fn commit_blocking(&self, records: Vec<Record>) -> Result<CommitAck, CommitError> {
        let (reply, answer) = oneshot::channel();
        let sender = self.requests.as_ref().ok_or(CommitError::Closed)?;
        sender
            .blocking_send(Request { records, reply })
            .map_err(|_| CommitError::Closed)?;
        answer.blocking_recv().map_err(|_| CommitError::Closed)?
    }

    /// A copy of the counters so far.
    pub fn stats(&self) -> GroupCommitStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the committer once it has answered every request already queued,
    /// and returns the WAL.
    pub fn stop(mut self) -> Wal {
        self.requests = None;
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("the committer thread does not panic")
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What became of one request of a batch before the sync.
enum Outcome {
    Appended,
    Refused(Arc<StorageError>),
}

fn run(
    mut wal: Wal,
    mut receiver: mpsc::Receiver<Request>,
    batch_records_max: usize,
    stats: &Mutex<GroupCommitStats>,
) -> Wal {
    let mut batch: Vec<Request> = Vec::new();
    let mut sync_seq = 0u64;
    while let Some(first) = receiver.blocking_recv() {
        let mut records = first.records.len();
        batch.push(first);
        while records < batch_records_max {
            let Ok(next) = receiver.try_recv() else { break };
            records += next.records.len();
            batch.push(next);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut appended = 0usize;
        let mut failure: Option<Arc<StorageError>> = None;
        for request in &batch {
            if failure.is_some() {
                break;
            }
            // A request that fails its checks appended nothing and fails alone.
            if let Err(e) = wal.check(&request.records) {
                outcomes.push(Outcome::Refused(Arc::new(e)));
                continue;
            }
            match wal.append_batch(&request.records) {
                Ok(()) => {
                    appended += request.records.len();
                    outcomes.push(Outcome::Appended);
                }
                Err(e) => failure = Some(Arc::new(e)),
            }
        }
        let synced = match failure {
            Some(e) => Err(e),
            None => wal.sync().map_err(Arc::new),
        };
        if synced.is_ok() {
            sync_seq += 1;
        }
        let requests = batch.len() as u64;
        {
            let mut shared = stats.lock().unwrap_or_else(|p| p.into_inner());
            shared.requests += requests;
            shared.batches += 1;
            shared.requests_per_batch_max = shared.requests_per_batch_max.max(requests);
            shared.wal = wal.stats().clone();
        }
        let mut outcomes = outcomes.into_iter();
        for request in batch.drain(..) {
            let answer = match (outcomes.next(), &synced) {
                (Some(Outcome::Refused(e)), _) => Err(CommitError::Storage(e)),
                (Some(Outcome::Appended), Ok(())) => Ok(CommitAck {
                    sync_seq,
                    batch_records: appended,
                }),
                (_, Err(e)) => Err(CommitError::Storage(Arc::clone(e))),
                (None, Ok(())) => unreachable!("every request of a successful batch has an outcome"),
            };
            let _ = request.reply.send(answer);
        }
    }
    wal
}
