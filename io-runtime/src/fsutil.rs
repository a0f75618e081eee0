//! File-system steps that durability depends on: directory fsync, the directory
//! lock, preallocation, and the temp-file-then-rename pattern.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{io_err, StorageError};

/// Zeros are written in chunks of this size when preallocating.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// Makes the directory's entries (created, renamed, removed files) durable.
/// Without it a file that was fsynced can still vanish after a crash because its
/// name never reached the disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let handle = File::open(dir).map_err(io_err(dir, "open directory"))?;
    handle.sync_all().map_err(io_err(dir, "fsync directory"))
}

/// Creates `dir` and its parents.
pub(crate) fn create_dir_all(dir: &Path) -> Result<(), StorageError> {
    fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))
}

/// An exclusive advisory lock (flock) on a file in a directory, held while this
/// value lives. It is what makes the single-writer assumption of the mapped WAL
/// true: a second process opening the same data directory fails with
/// [`StorageError::Locked`] instead of writing into the same maps. The kernel
/// drops the lock when the process dies, so a crash leaves nothing stale.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StorageError> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path, "open lock file"))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(StorageError::Locked { path }),
            Err(errno) => Err(StorageError::Io {
                path,
                op: "flock",
                source: errno.into(),
            }),
        }
    }
}

/// Creates `path` (replacing a leftover), fills it with `bytes` zero bytes and
/// fsyncs it. Writing the zeros, rather than `fallocate` or a sparse `set_len`,
/// allocates real blocks: stores into the map later can never hit ENOSPC (which a
/// mapped store reports as SIGBUS), and syncing an overwrite changes no extent
/// metadata, so `msync` on the data range is all a later sync needs.
pub(crate) fn create_zeroed(path: &Path, bytes: usize) -> Result<File, StorageError> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path, "create"))?;
    let zeros = vec![0u8; ZERO_CHUNK_BYTES.min(bytes.max(1))];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(zeros.len());
        file.write_all(&zeros[..n]).map_err(io_err(path, "preallocate"))?;
        left -= n;
    }
    file.sync_all().map_err(io_err(path, "fsync"))?;
    Ok(file)
}

/// Writes `bytes` to `path` durably and atomically: a temp file beside it,
/// fsync, rename over `path`, fsync of the directory. A crash leaves either the
/// old state or the whole new file, plus at most a `.tmp` file that start-up
/// removes.
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .map_err(io_err(&tmp, "create"))?;
    file.write_all(bytes).map_err(io_err(&tmp, "write"))?;
    file.sync_all().map_err(io_err(&tmp, "fsync"))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path, "rename"))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// `path` with `.tmp` appended.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// The names in `dir`, sorted.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>, StorageError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir, "read directory"))? {
        let entry = entry.map_err(io_err(dir, "read directory"))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}
