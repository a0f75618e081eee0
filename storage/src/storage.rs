//! A member's durable state: the WAL and the snapshots of one data directory, and
//! the start-up that puts them back together.

use std::path::{Path, PathBuf};

use detcd_core::mutation::{self, Mutation};
use detcd_core::wal::SEGMENT_BYTES_DEFAULT;
use detcd_proto::raftpb::{Entry, HardState, Snapshot, SnapshotMetadata};
use detcd_proto::walpb;

use crate::error::{StorageError, Warning};
use crate::fs::Fs;
use crate::snap::{Snapshotter, MAX_SNAPSHOTS_DEFAULT};
use crate::wal::{Wal, WalOptions};

/// Options of [`Storage::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// WAL segment size (etcd: 64,000,000 bytes).
    pub segment_bytes: usize,
    /// Snapshot files kept (etcd's `--max-snapshots`, default 5).
    pub max_snapshots: usize,
    /// Metadata written into every segment of a new WAL (member and cluster IDs);
    /// ignored when the WAL exists (its own metadata is returned).
    pub metadata: Vec<u8>,
    /// etcd's `--wal-dir`: the WAL's directory when not `<data_dir>/member/wal`.
    pub wal_dir: Option<PathBuf>,
    /// etcd's `--max-wals` (see `WalOptions::max_files`).
    pub max_wals: Option<usize>,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            max_snapshots: MAX_SNAPSHOTS_DEFAULT,
            metadata: Vec::new(),
            wal_dir: None,
            max_wals: None,
        }
    }
}

/// What a member restarts from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovered {
    /// The snapshot to restore state from (None: start from an empty state).
    pub snapshot: Option<Snapshot>,
    /// The last hard state (term, vote, commit).
    pub hard_state: Option<HardState>,
    /// The log after the snapshot, contiguous from its index + 1.
    pub entries: Vec<Entry>,
    /// The WAL's metadata.
    pub metadata: Vec<u8>,
    /// What recovery repaired or skipped.
    pub warnings: Vec<Warning>,
}

/// The WAL and snapshot files of `<data-dir>/member/`.
#[derive(Debug)]
pub struct Storage<F: Fs> {
    wal: Wal<F>,
    snapshotter: Snapshotter<F>,
    /// Index of the newest snapshot marker in the WAL (0: none).
    snapshot_marked: u64,
}

impl<F: Fs + Default> Storage<F> {
    /// [`Storage::open_in`] on the default file system.
    pub fn open(data_dir: &Path, options: &StorageOptions) -> Result<(Storage<F>, Recovered), StorageError> {
        Storage::open_in(F::default(), data_dir, options)
    }
}

impl<F: Fs> Storage<F> {
    /// Opens (or creates) `<data_dir>/member/{wal,snap}` and recovers: the newest
    /// valid snapshot the WAL agrees with, then the WAL entries after it.
    ///
    /// Snapshot choice follows etcd (`LoadNewestAvailable`): a snapshot file that
    /// fails its checksum is renamed `.broken` and an older one is tried; a valid
    /// one ahead of the WAL's last index is skipped with a warning, since saving a
    /// snapshot writes the file before the WAL marker and a crash between leaves
    /// such an orphan. Start-up fails, naming the files, when no snapshot fits: the
    /// WAL's last snapshot marker has no valid file, the WAL's entry at the
    /// snapshot's index has another term, the WAL starts after the snapshot (or
    /// after index 1 with no snapshot), or every snapshot is ahead of the WAL.
    pub fn open_in(
        fs: F,
        data_dir: &Path,
        options: &StorageOptions,
    ) -> Result<(Storage<F>, Recovered), StorageError> {
        let member = data_dir.join("member");
        let wal_options = WalOptions {
            segment_bytes: options.segment_bytes,
            max_files: options.max_wals,
        };
        let wal_dir = options.wal_dir.clone().unwrap_or_else(|| member.join("wal"));
        let (wal, mut log, mut warnings) =
            Wal::open_in(fs.clone(), &wal_dir, &options.metadata, &wal_options)?;
        if mutation::is_active(Mutation::RestartForgetsUnsyncedEntriesLate) {
            // The planted bug: recovery loses the last valid entry.
            log.entries.pop();
        }
        let (snapshotter, snap_warnings) =
            Snapshotter::new_in(fs, &member.join("snap"), options.max_snapshots)?;
        warnings.extend(snap_warnings);

        let marker = log.snapshot.as_ref().map(|m| (m.index, m.term));
        let wal_last_index = log
            .entries
            .last()
            .map(|e| e.index)
            .or(marker.map(|m| m.0))
            .unwrap_or(0);
        let term_at = |index: u64| -> Option<u64> {
            if marker.is_some_and(|m| m.0 == index) {
                return marker.map(|m| m.1);
            }
            let first = log.entries.first()?.index;
            log.entries
                .get(usize::try_from(index.checked_sub(first)?).ok()?)
                .map(|e| e.term)
        };
        let wal_first_path = wal.segment_paths().swap_remove(0);

        let mut chosen: Option<(PathBuf, Snapshot)> = None;
        let mut ahead: Option<(PathBuf, u64)> = None;
        for file in snapshotter.list()? {
            if marker.is_some_and(|m| file.index < m.0) {
                // The WAL dropped the entries between this snapshot and the marker.
                break;
            }
            let snapshot = match snapshotter.read(&file)? {
                Ok(snapshot) => snapshot,
                Err(reason) => {
                    warnings.push(snapshotter.mark_broken(&file, reason)?);
                    continue;
                }
            };
            if file.index > wal_last_index {
                warnings.push(Warning::SnapshotAheadOfWal {
                    path: file.path.clone(),
                    snapshot_index: file.index,
                    wal_last_index,
                });
                ahead.get_or_insert((file.path.clone(), file.index));
                continue;
            }
            match term_at(file.index) {
                Some(term) if term == file.term => {}
                Some(term) => {
                    return Err(StorageError::SnapshotMismatch {
                        path: file.path,
                        snapshot_index: file.index,
                        snapshot_term: file.term,
                        wal: format!("the WAL has term {term} at index {}", file.index),
                    })
                }
                None => {
                    let first = log.entries.first().map_or(0, |e| e.index);
                    return Err(StorageError::SnapshotMismatch {
                        path: file.path,
                        snapshot_index: file.index,
                        snapshot_term: file.term,
                        wal: format!("the WAL's entries start at index {first}, after the snapshot"),
                    });
                }
            }
            chosen = Some((file.path, snapshot));
            break;
        }

        if chosen.is_none() {
            if let Some((index, term)) = marker {
                return Err(StorageError::SnapshotMissing {
                    dir: member.join("snap"),
                    index,
                    term,
                });
            }
        }
        let base_index = chosen
            .as_ref()
            .and_then(|(_, s)| s.metadata.as_ref())
            .map_or(0, |m| m.index);
        let entries: Vec<Entry> = log.entries.into_iter().filter(|e| e.index > base_index).collect();
        if let Some(first) = entries.first() {
            if first.index != base_index + 1 {
                if let (None, Some((path, snapshot_index))) = (&chosen, ahead) {
                    return Err(StorageError::SnapshotAfterWalEnd {
                        path,
                        snapshot_index,
                        wal_last_index,
                    });
                }
                return Err(StorageError::WalStartsLate {
                    path: wal_first_path,
                    first_index: first.index,
                });
            }
        }
        let recovered = Recovered {
            snapshot: chosen.map(|(_, s)| s),
            hard_state: log.hard_state,
            entries,
            metadata: wal.metadata().to_vec(),
            warnings,
        };
        let storage = Storage {
            wal,
            snapshotter,
            snapshot_marked: marker.map_or(0, |m| m.0),
        };
        Ok((storage, recovered))
    }

    /// etcd's `Save`: entries, then the hard state; synced when `must_sync`.
    pub fn save(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[Entry],
        must_sync: bool,
    ) -> Result<(), StorageError> {
        self.wal.save(hard_state, entries, must_sync)
    }

    /// [`Storage::save`] without the write or the sync (see [`Wal::append`]):
    /// the records reach the file with the next WAL sync or write (a
    /// [`crate::pass::PersistPass`] writes them).
    pub fn append(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<(), StorageError> {
        self.wal.append(hard_state, entries)
    }

    /// Persists a snapshot the way etcd's `storage.SaveSnap` does, then releases
    /// what it covers: the snapshot file (durably), then the WAL marker (synced),
    /// then WAL segments wholly at or below its index. The file goes first so a
    /// crash leaves at worst an orphan file, never a marker without its file.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.snapshotter.save(snapshot)?;
        self.mark_snapshot(&snapshot.metadata.clone().unwrap_or_default())
    }

    /// The second half of [`Storage::save_snapshot`], for a snapshot whose file
    /// another thread already made durable: the WAL marker (synced), then the
    /// release of WAL segments wholly at or below its index and of snapshot files
    /// older than it beyond `max_snapshots`.
    pub fn mark_snapshot(&mut self, metadata: &SnapshotMetadata) -> Result<(), StorageError> {
        self.wal.save_snapshot_marker(&walpb::Snapshot {
            index: metadata.index,
            term: metadata.term,
            conf_state: metadata.conf_state.clone(),
        })?;
        self.snapshot_marked = self.snapshot_marked.max(metadata.index);
        self.wal.release_to(metadata.index)?;
        self.snapshotter.purge_before(metadata.index)
    }

    /// Index of the newest snapshot marker in the WAL (0: none).
    pub fn snapshot_marked(&self) -> u64 {
        self.snapshot_marked
    }

    pub fn wal(&self) -> &Wal<F> {
        &self.wal
    }

    pub fn wal_mut(&mut self) -> &mut Wal<F> {
        &mut self.wal
    }

    pub fn snapshotter(&self) -> &Snapshotter<F> {
        &self.snapshotter
    }

    /// Gives up the snapshotter and returns the WAL, e.g. to hand it to a
    /// [`crate::group_commit::GroupCommitter`].
    pub fn into_wal(self) -> Wal<F> {
        self.wal
    }
}
