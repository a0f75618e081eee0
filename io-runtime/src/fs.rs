//! [`RealFs`]: the storage code's file-system interface over real files.
//!
//! Writes are positioned writes (pwrite) and syncs are fdatasync, as etcd does;
//! whole-file reads (recovery, marker scans) map the file read-only. Segments are
//! preallocated with real zeros in a background thread.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use detcd_storage::{io_err, Fs, StorageError};
use memmap2::Mmap;

/// Zeros are written in chunks of this size when preallocating.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// etcd's `--unsafe-no-fsync`: every sync of this process's real files is skipped
/// (data written but not synced is lost in a machine crash).
static UNSAFE_NO_FSYNC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns `--unsafe-no-fsync` on for the whole process (set once at start-up).
pub fn set_unsafe_no_fsync(on: bool) {
    UNSAFE_NO_FSYNC.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn unsafe_no_fsync() -> bool {
    UNSAFE_NO_FSYNC.load(std::sync::atomic::Ordering::Relaxed)
}

/// An open file and its path (for errors).
#[derive(Debug)]
pub struct RealFile {
    file: File,
    path: PathBuf,
}

/// A file's contents, mapped read-only (`None` for an empty file, which cannot
/// be mapped).
#[derive(Debug)]
pub struct Mapped(Option<Mmap>);

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

/// An exclusive advisory lock (flock) on `<dir>/LOCK`, held while this value
/// lives: a second process opening the same data directory fails with
/// [`StorageError::Locked`] instead of writing into the same files. The kernel
/// drops the lock when the process dies, so a crash leaves nothing stale.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// A segment being zero-filled: by a thread, or in line when none could start.
#[derive(Debug)]
pub struct Preallocation {
    path: PathBuf,
    bytes: usize,
    thread: Option<JoinHandle<Result<File, StorageError>>>,
}

impl Fs for RealFs {
    type File = RealFile;
    type Bytes = Mapped;
    type Lock = DirLock;
    type Preallocation = Preallocation;

    fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
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

    fn lock(&self, dir: &Path) -> Result<DirLock, StorageError> {
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

    fn open(&self, path: &Path) -> Result<RealFile, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path, "open"))?;
        Ok(RealFile {
            file,
            path: path.to_path_buf(),
        })
    }

    fn create(&self, path: &Path) -> Result<RealFile, StorageError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path, "create"))?;
        Ok(RealFile {
            file,
            path: path.to_path_buf(),
        })
    }

    fn len(&self, file: &RealFile) -> Result<usize, StorageError> {
        let len = file.file.metadata().map_err(io_err(&file.path, "stat"))?.len();
        usize::try_from(len).map_err(|_| StorageError::Io {
            path: file.path.clone(),
            op: "stat",
            source: std::io::Error::other("file larger than memory"),
        })
    }

    fn read_all(&self, file: &RealFile) -> Result<Mapped, StorageError> {
        if self.len(file)? == 0 {
            return Ok(Mapped(None));
        }
        map_read_only(&file.file)
            .map(|map| Mapped(Some(map)))
            .map_err(io_err(&file.path, "mmap"))
    }

    /// pwrite(2): the kernel copies in ascending order, so a process killed
    /// mid-write leaves a prefix of `bytes` (a frame's length word before its
    /// body, which `core::wal::scan` reads as a torn tail).
    fn write_at(&self, file: &RealFile, offset: usize, bytes: &[u8]) -> Result<(), StorageError> {
        file.file
            .write_all_at(bytes, offset as u64)
            .map_err(io_err(&file.path, "write"))
    }

    /// fdatasync: WAL segments are preallocated with real zeros and never change
    /// size, so no metadata rides along.
    fn sync(&self, file: &RealFile) -> Result<(), StorageError> {
        if unsafe_no_fsync() {
            return Ok(());
        }
        file.file.sync_data().map_err(io_err(&file.path, "fdatasync"))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        fs::rename(from, to).map_err(io_err(to, "rename"))
    }

    fn remove(&self, path: &Path) -> Result<(), StorageError> {
        fs::remove_file(path).map_err(io_err(path, "remove"))
    }

    /// Without it a file that was fsynced can still vanish after a crash because
    /// its name never reached the disk.
    fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        if unsafe_no_fsync() {
            return Ok(());
        }
        let handle = File::open(dir).map_err(io_err(dir, "open directory"))?;
        handle.sync_all().map_err(io_err(dir, "fsync directory"))
    }

    fn preallocate(&self, path: &Path, bytes: usize) -> Preallocation {
        let target = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("detcd-wal-prealloc".into())
            .spawn(move || create_zeroed(&target, bytes));
        Preallocation {
            path: path.to_path_buf(),
            bytes,
            // If no thread can be spawned the file is zero-filled in line instead.
            thread: thread.ok(),
        }
    }

    fn preallocated(&self, pending: Preallocation) -> Result<RealFile, StorageError> {
        let file = match pending.thread {
            Some(thread) => thread.join().expect("the preallocation thread does not panic")?,
            None => create_zeroed(&pending.path, pending.bytes)?,
        };
        Ok(RealFile {
            file,
            path: pending.path,
        })
    }
}

/// Creates `path` (replacing a leftover), fills it with `bytes` zero bytes and
/// fsyncs it. Writing the zeros, rather than `fallocate` or a sparse `set_len`,
/// allocates real blocks: a later write can never hit ENOSPC, and syncing an
/// overwrite changes no extent metadata, so fdatasync is all a later sync needs.
fn create_zeroed(path: &Path, bytes: usize) -> Result<File, StorageError> {
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

/// Maps `file` whole, read-only.
///
/// The one `unsafe` of this crate: memmap2 cannot prove that nobody else changes
/// or truncates the file while it is mapped (a truncation turns later accesses
/// into SIGBUS, a concurrent writer into undefined behaviour for the `&[u8]`).
#[allow(unsafe_code)]
fn map_read_only(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: the files mapped are WAL segments and snapshot files of a data
    // directory whose WAL the caller holds the exclusive flock on (`DirLock`), so
    // no other detcd process writes them; this process never truncates or resizes
    // a file (segments are preallocated to their final size before use, snapshot
    // files are written once under a temp name), and a map is dropped before the
    // file it maps is zeroed or removed: the storage code reads through the map
    // and drops it before writing. Outside tampering with the data directory while
    // the server runs is not defended against, as with any database file.
    unsafe { Mmap::map(file) }
}
