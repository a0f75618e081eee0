//! Snapshot files: `<term>-<index>.snap` (16 hex digits each, as etcd names them),
//! checksummed, written atomically, the newest `max_snapshots` kept.
//!
//! # File format
//!
//! ```text
//! offset 0   magic "detcdsnp"           8 bytes
//! offset 8   format version: u32 LE     (1)
//! offset 12  CRC-32C of the body: u32 LE
//! offset 16  body length: u64 LE
//! offset 24  body: raftpb.Snapshot (protobuf: data + metadata)
//! ```
//!
//! The checksum is CRC-32C, computed by `detcd_core::wal::crc32c` (the same
//! function the WAL uses, so there is one checksum in the data directory, and the
//! simulator can check snapshots with core alone). A file that fails it, or does
//! not parse, is renamed to `<name>.broken` (etcd's convention) and reported as a
//! [`Warning::SnapshotBroken`]; an older one is tried.

use std::path::{Path, PathBuf};

use detcd_core::mutation::{self, Mutation};
use detcd_core::wal::crc32c;
use detcd_proto::raftpb::Snapshot;
use prost::Message;

use crate::error::{StorageError, Warning};
use crate::fs::Fs;

const MAGIC: &[u8; 8] = b"detcdsnp";
const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 24;
const SUFFIX: &str = ".snap";

/// The default number of snapshot files kept (etcd's `--max-snapshots`).
pub const MAX_SNAPSHOTS_DEFAULT: usize = 5;

/// Reads and writes the snapshot files of one directory. Clones share the
/// directory: let one of them write at a time.
#[derive(Clone, Debug)]
pub struct Snapshotter<F: Fs> {
    fs: F,
    dir: PathBuf,
    max_snapshots: usize,
}

/// A snapshot file found on disk: where, and the index and term in its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub index: u64,
    pub term: u64,
}

impl<F: Fs + Default> Snapshotter<F> {
    /// [`Snapshotter::new_in`] on the default file system.
    pub fn new(dir: &Path, max_snapshots: usize) -> Result<(Snapshotter<F>, Vec<Warning>), StorageError> {
        Snapshotter::new_in(F::default(), dir, max_snapshots)
    }
}

impl<F: Fs> Snapshotter<F> {
    /// A snapshotter for `dir` (created if missing) on `fs` that keeps the newest
    /// `max_snapshots` files (at least 1). Removes temp files a crash left.
    pub fn new_in(
        fs: F,
        dir: &Path,
        max_snapshots: usize,
    ) -> Result<(Snapshotter<F>, Vec<Warning>), StorageError> {
        fs.create_dir_all(dir)?;
        let mut warnings = Vec::new();
        for name in fs.list(dir)? {
            if name.ends_with(".tmp") {
                let path = dir.join(&name);
                fs.remove(&path)?;
                warnings.push(Warning::TempFileRemoved { path });
            }
        }
        Ok((
            Snapshotter {
                fs,
                dir: dir.to_path_buf(),
                max_snapshots: max_snapshots.max(1),
            },
            warnings,
        ))
    }

    /// Writes `snapshot` durably (temp file, fsync, rename, directory fsync).
    /// Returns its path. Old files stay until [`Snapshotter::purge_before`] is
    /// told the WAL marks a newer one.
    pub fn save(&self, snapshot: &Snapshot) -> Result<PathBuf, StorageError> {
        let metadata = snapshot.metadata.clone().unwrap_or_default();
        let path = self.dir.join(snapshot_file_name(metadata.term, metadata.index));
        self.write_file_atomic(&path, &encode(snapshot))?;
        Ok(path)
    }

    /// Writes `bytes` to `path` durably and atomically: a temp file beside it,
    /// sync, rename over `path`, sync of the directory. A crash leaves either the
    /// old state or the whole new file, plus at most a `.tmp` file that start-up
    /// removes.
    fn write_file_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = self.fs.create(&tmp)?;
        self.fs.write_at(&file, 0, bytes)?;
        if !mutation::is_active(Mutation::SnapshotSavedBeforeSync) {
            self.fs.sync(&file)?;
        }
        drop(file);
        self.fs.rename(&tmp, path)?;
        self.fs.sync_dir(&self.dir)
    }

    /// Snapshot files, newest (highest index) first.
    pub fn list(&self) -> Result<Vec<SnapshotFile>, StorageError> {
        let mut files: Vec<SnapshotFile> = self
            .fs
            .list(&self.dir)?
            .into_iter()
            .filter_map(|name| {
                let (term, index) = parse_snapshot_name(&name)?;
                Some(SnapshotFile {
                    path: self.dir.join(name),
                    index,
                    term,
                })
            })
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse((f.index, f.term)));
        Ok(files)
    }

    /// Reads and verifies one snapshot file: `Ok(Err(reason))` when its contents
    /// are damaged, `Err` when it cannot be read at all.
    pub fn read(&self, file: &SnapshotFile) -> Result<Result<Snapshot, String>, StorageError> {
        let handle = self.fs.open(&file.path)?;
        let bytes = self.fs.read_all(&handle)?;
        Ok(decode(&bytes).and_then(|snapshot| {
            let metadata = snapshot.metadata.clone().unwrap_or_default();
            if (metadata.index, metadata.term) == (file.index, file.term) {
                Ok(snapshot)
            } else {
                Err(format!(
                    "holds index {} term {}, not what its name says",
                    metadata.index, metadata.term
                ))
            }
        }))
    }

    /// Renames a damaged file to `<name>.broken` so it is not tried again, and
    /// returns the warning that says so.
    pub fn mark_broken(&self, file: &SnapshotFile, reason: String) -> Result<Warning, StorageError> {
        let mut broken = file.path.as_os_str().to_owned();
        broken.push(".broken");
        let broken = PathBuf::from(broken);
        self.fs.rename(&file.path, &broken)?;
        self.fs.sync_dir(&self.dir)?;
        Ok(Warning::SnapshotBroken {
            path: file.path.clone(),
            renamed_to: broken,
            reason,
        })
    }

    /// The newest snapshot that verifies, renaming damaged newer ones.
    pub fn load_newest(&self) -> Result<(Option<Snapshot>, Vec<Warning>), StorageError> {
        let mut warnings = Vec::new();
        for file in self.list()? {
            match self.read(&file)? {
                Ok(snapshot) => return Ok((Some(snapshot), warnings)),
                Err(reason) => warnings.push(self.mark_broken(&file, reason)?),
            }
        }
        Ok((None, warnings))
    }

    /// Deletes the files beyond the newest `max_snapshots` whose index is below
    /// `marked`, the index of the WAL's newest durable snapshot marker. The file
    /// that marker names is never deleted, whatever newer files exist: a newer
    /// file without its marker yet (a crash may come before it) can be ahead of
    /// the WAL's end, and start-up would then need the marked one.
    pub fn purge_before(&self, marked: u64) -> Result<(), StorageError> {
        let mut removed = false;
        for file in self.list()?.into_iter().skip(self.max_snapshots) {
            if file.index < marked {
                self.fs.remove(&file.path)?;
                removed = true;
            }
        }
        if removed {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// The file system this snapshotter writes to.
    pub fn fs(&self) -> &F {
        &self.fs
    }
}

/// `%016x-%016x.snap`: term, then index (etcd's order).
pub fn snapshot_file_name(term: u64, index: u64) -> String {
    format!("{term:016x}-{index:016x}{SUFFIX}")
}

/// (term, index) from a snapshot file name.
fn parse_snapshot_name(name: &str) -> Option<(u64, u64)> {
    let (term, index) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    if term.len() != 16 || index.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(term, 16).ok()?,
        u64::from_str_radix(index, 16).ok()?,
    ))
}

/// The bytes of a snapshot file.
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let body = snapshot.encode_to_vec();
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&crc32c::checksum(&body).to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&body);
    debug_assert_eq!(
        decode(&bytes).as_ref(),
        Ok(snapshot),
        "snapshot encoding round-trips"
    );
    bytes
}

/// Parses and verifies the bytes of a snapshot file. Never panics.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes, shorter than the {HEADER_BYTES}-byte header",
            bytes.len()
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err("bad magic".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let version = u32_at(8);
    if version != FORMAT_VERSION {
        return Err(format!("unknown format version {version}"));
    }
    let stored_crc = u32_at(12);
    let body_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let body = &bytes[HEADER_BYTES..];
    if body.len() as u64 != body_len {
        return Err(format!("body is {} bytes, header says {body_len}", body.len()));
    }
    let crc = crc32c::checksum(body);
    if crc != stored_crc {
        return Err(format!(
            "CRC mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"
        ));
    }
    Snapshot::decode(body).map_err(|e| format!("undecodable: {e}"))
}
