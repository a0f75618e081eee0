//! The typed errors and warnings of durable storage.
//!
//! Errors stop start-up or fail a write; each names the file and, for damaged
//! bytes, the offset, so an operator can look at exactly what is wrong. Warnings
//! are things recovery repaired or skipped; they are returned, never printed, and
//! the caller decides how to log them.

use std::fmt;
use std::io;
use std::path::PathBuf;

use detcd_core::wal::{Defect, EncodeError};

/// Why storage could not be opened or written.
#[derive(Debug)]
pub enum StorageError {
    /// A system call on `path` failed; `op` says which.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// Another process holds the lock on the WAL directory.
    Locked { path: PathBuf },
    /// WAL bytes that are damaged (not a torn tail of the last segment).
    Corrupt {
        path: PathBuf,
        offset: usize,
        reason: Defect,
    },
    /// A WAL segment is missing: the sequence numbers skip from `before` to the
    /// one in `path`.
    MissingSegment {
        path: PathBuf,
        expected_seq: u64,
        found_seq: u64,
    },
    /// A file name in the WAL directory that ends in `.wal` but is not
    /// `%016x-%016x.wal`.
    BadSegmentName { path: PathBuf },
    /// The WAL holds a snapshot marker at `index`/`term` but no valid snapshot file
    /// for it exists (or the one that did was corrupt).
    SnapshotMissing { dir: PathBuf, index: u64, term: u64 },
    /// The snapshot file disagrees with the WAL: the WAL's entry or marker at the
    /// snapshot's index has another term, or the WAL continues from a later point.
    SnapshotMismatch {
        path: PathBuf,
        snapshot_index: u64,
        snapshot_term: u64,
        wal: String,
    },
    /// The newest usable snapshot is ahead of the last index the WAL holds, and no
    /// older snapshot fits the WAL: the WAL has lost records.
    SnapshotAfterWalEnd {
        path: PathBuf,
        snapshot_index: u64,
        wal_last_index: u64,
    },
    /// The WAL's entries start after index 1 but there is no snapshot to cover
    /// the ones before.
    WalStartsLate { path: PathBuf, first_index: u64 },
    /// A record does not fit in one segment.
    RecordTooLarge {
        frame_bytes: usize,
        segment_bytes: usize,
    },
    /// The codec refused a record.
    Encode(EncodeError),
    /// Callers may not append this record type (the WAL writes it itself).
    ReservedRecord(detcd_core::wal::RecordType),
    /// An earlier sync failed. After a failed fsync the kernel may have dropped the
    /// dirty pages, so nothing written since the last good sync can be trusted;
    /// the process must restart and recover from the log (and its peers).
    Poisoned,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { path, op, source } => write!(f, "{op} {}: {source}", path.display()),
            StorageError::Locked { path } => {
                write!(f, "{} is locked by another process", path.display())
            }
            StorageError::Corrupt { path, offset, reason } => {
                write!(f, "WAL file {} is corrupt at byte offset {offset}: {reason}", path.display())
            }
            StorageError::MissingSegment { path, expected_seq, found_seq } => write!(
                f,
                "WAL segment {expected_seq:016x} is missing: the next file is {} (sequence {found_seq:016x})",
                path.display()
            ),
            StorageError::BadSegmentName { path } => {
                write!(f, "{} is not named <seq>-<index>.wal", path.display())
            }
            StorageError::SnapshotMissing { dir, index, term } => write!(
                f,
                "the WAL records a snapshot at index {index} term {term} but {} has no valid snapshot file for it",
                dir.display()
            ),
            StorageError::SnapshotMismatch { path, snapshot_index, snapshot_term, wal } => write!(
                f,
                "snapshot {} (index {snapshot_index}, term {snapshot_term}) does not match the WAL: {wal}",
                path.display()
            ),
            StorageError::SnapshotAfterWalEnd { path, snapshot_index, wal_last_index } => write!(
                f,
                "snapshot {} is at index {snapshot_index} but the WAL ends at index {wal_last_index}",
                path.display()
            ),
            StorageError::WalStartsLate { path, first_index } => write!(
                f,
                "WAL {} starts at entry {first_index} and there is no snapshot for the entries before",
                path.display()
            ),
            StorageError::RecordTooLarge { frame_bytes, segment_bytes } => write!(
                f,
                "a record of {frame_bytes} bytes does not fit in a WAL segment of {segment_bytes} bytes"
            ),
            StorageError::Encode(e) => write!(f, "cannot encode WAL record: {e:?}"),
            StorageError::ReservedRecord(t) => write!(f, "{t:?} records are written by the WAL itself"),
            StorageError::Poisoned => f.write_str("an earlier WAL sync failed; restart to recover"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Builds the `map_err` closure for an I/O call on `path`.
pub fn io_err(path: impl Into<PathBuf>, op: &'static str) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.into();
    move |source| StorageError::Io { path, op, source }
}

/// Something recovery repaired or skipped; start-up went on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// The last segment ended in a record that was never completely written
    /// (never acknowledged): bytes `offset..offset + bytes_zeroed` were zeroed.
    TornTailTruncated {
        path: PathBuf,
        offset: usize,
        bytes_zeroed: usize,
    },
    /// A snapshot file failed its checksum or did not parse; it was renamed to
    /// `renamed_to` (etcd's `.broken`) and an older one was used.
    SnapshotBroken {
        path: PathBuf,
        renamed_to: PathBuf,
        reason: String,
    },
    /// A valid snapshot file that the WAL does not reach (written just before a
    /// crash, before its WAL marker; etcd calls these orphans): an older one was used.
    SnapshotAheadOfWal {
        path: PathBuf,
        snapshot_index: u64,
        wal_last_index: u64,
    },
    /// A leftover temporary file from an interrupted segment cut or snapshot save
    /// was removed.
    TempFileRemoved { path: PathBuf },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::TornTailTruncated { path, offset, bytes_zeroed } => write!(
                f,
                "WAL file {}: torn record at byte offset {offset} truncated ({bytes_zeroed} bytes zeroed)",
                path.display()
            ),
            Warning::SnapshotBroken { path, renamed_to, reason } => write!(
                f,
                "snapshot {} is broken ({reason}); renamed to {}",
                path.display(),
                renamed_to.display()
            ),
            Warning::SnapshotAheadOfWal { path, snapshot_index, wal_last_index } => write!(
                f,
                "snapshot {} at index {snapshot_index} is ahead of the WAL (last index {wal_last_index}); skipped",
                path.display()
            ),
            Warning::TempFileRemoved { path } => write!(f, "removed leftover {}", path.display()),
        }
    }
}
