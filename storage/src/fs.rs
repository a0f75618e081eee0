//! The file-system interface the storage code is written against.
//!
//! Two implementations exist: real files (`detcd_io::fs::RealFs`, what a server
//! runs) and the simulated disk (`detcd_sim::storage::SimFs`, whose crashes lose
//! unsynced writes, tear the last one and forget directory entries that were not
//! synced). Everything above this interface (file names, formats, the order of
//! writes and syncs, what start-up repairs) is the same code for both.
//!
//! The contract each implementation keeps, and the storage code relies on:
//! - [`Fs::write_at`] lands in what later reads see at once, and is durable only
//!   after a [`Fs::sync`] of the same file returns;
//! - a created, renamed or removed name is durable only after a [`Fs::sync_dir`]
//!   of its directory returns;
//! - [`Fs::rename`] replaces the target atomically.
//!
//! Every error names the path and the operation that failed.

use std::fmt;
use std::ops::Deref;
use std::path::Path;

use crate::error::StorageError;

/// A file system as the storage code uses it. Methods take `&self`: clones of
/// one value share the same files (the snapshot writer and the WAL writer of one
/// member hold clones).
pub trait Fs: Clone + fmt::Debug {
    /// An open file, read-write. It follows its file through a rename.
    type File: fmt::Debug;
    /// The whole contents of a file, as [`Fs::read_all`] returns them.
    type Bytes: Deref<Target = [u8]>;
    /// A held exclusive lock on a directory (released when dropped).
    type Lock: fmt::Debug;
    /// A file being zero-filled for later use (see [`Fs::preallocate`]).
    type Preallocation: fmt::Debug;

    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError>;
    /// The names of the entries of `dir`, sorted.
    fn list(&self, dir: &Path) -> Result<Vec<String>, StorageError>;
    /// Takes the exclusive lock on `dir`: [`StorageError::Locked`] when another
    /// writer holds it.
    fn lock(&self, dir: &Path) -> Result<Self::Lock, StorageError>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> Result<Self::File, StorageError>;
    /// Creates `path` empty, replacing a file of that name.
    fn create(&self, path: &Path) -> Result<Self::File, StorageError>;
    /// The file's length in bytes.
    fn len(&self, file: &Self::File) -> Result<usize, StorageError>;
    /// The file's whole contents.
    fn read_all(&self, file: &Self::File) -> Result<Self::Bytes, StorageError>;
    /// Writes `bytes` at `offset` (extending the file if needed). A crash during
    /// the call leaves a prefix of `bytes` at most.
    fn write_at(&self, file: &Self::File, offset: usize, bytes: &[u8]) -> Result<(), StorageError>;
    /// fdatasync: every write to the file made before the call is durable when it
    /// returns.
    fn sync(&self, file: &Self::File) -> Result<(), StorageError>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError>;
    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> Result<(), StorageError>;
    /// Makes the entries of `dir` (names created, renamed, removed) durable.
    fn sync_dir(&self, dir: &Path) -> Result<(), StorageError>;
    /// Starts filling `path` with `bytes` zero bytes (created or replaced), synced;
    /// it may go on in the background until [`Fs::preallocated`]. The name is not
    /// made durable (the caller renames the file and syncs the directory).
    fn preallocate(&self, path: &Path, bytes: usize) -> Self::Preallocation;
    /// Waits for a [`Fs::preallocate`] and opens its file.
    fn preallocated(&self, pending: Self::Preallocation) -> Result<Self::File, StorageError>;
}
