//! One WAL segment file: its name, its bytes mapped into memory for reading, and
//! positioned writes plus fdatasync for appending.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::error::{io_err, StorageError};

/// `%016x-%016x.wal`: the segment's sequence number and the index of the first
/// entry it was cut for (etcd's naming; the first file is all zeros).
pub(crate) fn segment_file_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

/// Parses a segment file name; `None` when `name` does not end in `.wal`,
/// `Some(Err)` when it does but is malformed.
pub(crate) fn parse_segment_name(name: &str) -> Option<Result<(u64, u64), ()>> {
    let stem = name.strip_suffix(".wal")?;
    let parsed = (|| {
        let (seq, index) = stem.split_once('-')?;
        if seq.len() != 16 || index.len() != 16 {
            return None;
        }
        Some((
            u64::from_str_radix(seq, 16).ok()?,
            u64::from_str_radix(index, 16).ok()?,
        ))
    })();
    Some(parsed.ok_or(()))
}

/// A segment file and its map.
///
/// Appends go through the descriptor ([`MappedSegment::write_at`], then
/// [`MappedSegment::sync_data`]), not through the map: a store into a shared
/// map takes a write fault (`page_mkwrite`) on every page that the previous sync
/// made clean again, and msync costs more than fdatasync; etcd writes with
/// write(2) and fdatasync too. The map stays for reading (recovery, marker scans)
/// and for the start-up repairs of `wal.rs`; Linux keeps one page cache behind
/// both, so the map sees every positioned write at once.
#[derive(Debug)]
pub(crate) struct MappedSegment {
    pub(crate) path: PathBuf,
    pub(crate) seq: u64,
    pub(crate) first_index: u64,
    /// The segment, opened for reading and writing.
    file: File,
    /// `None` for an empty file, which cannot be mapped.
    map: Option<MmapMut>,
}

impl MappedSegment {
    /// Opens and maps an existing segment for reading and writing.
    pub(crate) fn open(path: &Path, seq: u64, first_index: u64) -> Result<MappedSegment, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path, "open segment"))?;
        MappedSegment::from_file(path.to_path_buf(), file, seq, first_index)
    }

    pub(crate) fn from_file(
        path: PathBuf,
        file: File,
        seq: u64,
        first_index: u64,
    ) -> Result<MappedSegment, StorageError> {
        let len = file.metadata().map_err(io_err(&path, "stat segment"))?.len();
        let map = if len == 0 {
            None
        } else {
            Some(map_segment(&file).map_err(io_err(&path, "mmap"))?)
        };
        Ok(MappedSegment {
            path,
            seq,
            first_index,
            file,
            map,
        })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        self.map.as_deref_mut().unwrap_or(&mut [])
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Writes `bytes` at `offset` with pwrite(2) (into the page cache; durable
    /// after [`MappedSegment::sync_data`]). The kernel copies in ascending order,
    /// so a process killed mid-write leaves a prefix of `bytes`: the frame's
    /// length word before its body, which `core::wal::scan` reads as a torn tail.
    pub(crate) fn write_at(&self, offset: usize, bytes: &[u8]) -> Result<(), StorageError> {
        let end = offset.checked_add(bytes.len()).filter(|&end| end <= self.len());
        assert!(
            end.is_some(),
            "write beyond the end of segment {}",
            self.path.display()
        );
        self.file
            .write_all_at(bytes, offset as u64)
            .map_err(io_err(&self.path, "write segment"))
    }

    /// fdatasync: returns once every write to this segment is on stable storage
    /// (the drive's write cache flushed too). The file is preallocated with real
    /// zeros and never changes size, so no metadata rides along.
    pub(crate) fn sync_data(&self) -> Result<(), StorageError> {
        self.file.sync_data().map_err(io_err(&self.path, "fdatasync"))
    }

    /// msync(MS_SYNC) of `offset..offset + len` (memmap2 widens it to whole
    /// pages): returns once those pages are on stable storage. On Linux this runs
    /// the file system's fsync for the range (`vfs_fsync_range` with datasync),
    /// which also flushes the drive's write cache, so no separate fdatasync is
    /// needed: the file is preallocated and its size never changes.
    pub(crate) fn sync_range(&self, offset: usize, len: usize) -> Result<(), StorageError> {
        match &self.map {
            Some(map) if len > 0 => map.flush_range(offset, len).map_err(io_err(&self.path, "msync")),
            _ => Ok(()),
        }
    }
}

/// Maps `file` whole, shared and writable.
///
/// The one `unsafe` of this crate: memmap2 cannot prove that nobody else changes
/// or truncates the file while it is mapped (a truncation turns later accesses
/// into SIGBUS, a concurrent writer into undefined behaviour for the `&[u8]`s).
#[allow(unsafe_code)]
fn map_segment(file: &File) -> std::io::Result<MmapMut> {
    // SAFETY: segment files live in the WAL directory, which `Wal` opens only while
    // holding an exclusive flock on `<wal>/LOCK` (`DirLock`), so no other detcd
    // process maps or writes them; this process never truncates or resizes a
    // mapped segment (they are preallocated to their final size before they are
    // mapped, and deleted only after their map is dropped). Outside tampering with
    // the data directory while the server runs is not defended against, as with
    // any database file.
    unsafe { MmapMut::map_mut(file) }
}
