//! A member's durable state on its simulated [`Disk`]: the storage code the
//! server runs (`detcd-storage`: WAL segments, snapshot files, recovery,
//! release and purge), over [`SimFs`], the file-system interface implemented on
//! the simulated disk.
//!
//! Syncs are instant. The simulator models fsync latency by running a storage
//! pass's sync (`detcd_storage::pass`) when the latency is over, and
//! acknowledging the pass then: a crash before loses what was not synced.

use std::cell::{RefCell, RefMut};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use detcd_core::node::NodeStart;
use detcd_core::wal;
use detcd_proto::raftpb::{HardState, Snapshot};
use detcd_storage::{Fs, StorageError, StorageOptions, Warning};

use crate::disk::Disk;

/// A member's storage on the simulated disk.
pub type Storage = detcd_storage::Storage<SimFs>;

/// Where the data directory is on the simulated disk.
const DATA_DIR: &str = "data";

/// The storage code's file-system interface over a simulated [`Disk`]. Clones
/// share the disk.
#[derive(Clone, Debug)]
pub struct SimFs {
    disk: Rc<RefCell<Disk>>,
}

/// An open simulated file: its inode (it follows the file through a rename) and
/// the path it was opened by (for errors).
#[derive(Debug)]
pub struct SimFile {
    inode: u64,
    path: PathBuf,
}

fn name(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn not_found(path: &Path, op: &'static str) -> StorageError {
    StorageError::Io {
        path: path.to_path_buf(),
        op,
        source: io::Error::from(io::ErrorKind::NotFound),
    }
}

impl SimFs {
    pub fn new(disk: Disk) -> SimFs {
        SimFs {
            disk: Rc::new(RefCell::new(disk)),
        }
    }

    pub fn disk(&self) -> RefMut<'_, Disk> {
        self.disk.borrow_mut()
    }
}

impl Fs for SimFs {
    type File = SimFile;
    type Bytes = Vec<u8>;
    type Lock = ();
    type Preallocation = (PathBuf, usize);

    fn create_dir_all(&self, _dir: &Path) -> Result<(), StorageError> {
        Ok(()) // directories exist implicitly
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
        Ok(self.disk().list(&name(dir)))
    }

    fn lock(&self, _dir: &Path) -> Result<(), StorageError> {
        Ok(()) // one process per disk
    }

    fn open(&self, path: &Path) -> Result<SimFile, StorageError> {
        let inode = self
            .disk()
            .lookup(&name(path))
            .ok_or_else(|| not_found(path, "open"))?;
        Ok(SimFile {
            inode,
            path: path.to_path_buf(),
        })
    }

    fn create(&self, path: &Path) -> Result<SimFile, StorageError> {
        let inode = self.disk().create(&name(path));
        Ok(SimFile {
            inode,
            path: path.to_path_buf(),
        })
    }

    fn len(&self, file: &SimFile) -> Result<usize, StorageError> {
        Ok(self.disk().read(file.inode).map_or(0, <[u8]>::len))
    }

    fn read_all(&self, file: &SimFile) -> Result<Vec<u8>, StorageError> {
        self.disk()
            .read(file.inode)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| not_found(&file.path, "read"))
    }

    fn write_at(&self, file: &SimFile, offset: usize, bytes: &[u8]) -> Result<(), StorageError> {
        self.disk().write(file.inode, offset, bytes);
        Ok(())
    }

    fn sync(&self, file: &SimFile) -> Result<(), StorageError> {
        self.disk().sync(file.inode);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        if self.disk().rename(&name(from), &name(to)) {
            Ok(())
        } else {
            Err(not_found(from, "rename"))
        }
    }

    fn remove(&self, path: &Path) -> Result<(), StorageError> {
        if self.disk().remove(&name(path)) {
            Ok(())
        } else {
            Err(not_found(path, "remove"))
        }
    }

    fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        self.disk().sync_dir(&name(dir));
        Ok(())
    }

    fn preallocate(&self, path: &Path, bytes: usize) -> (PathBuf, usize) {
        (path.to_path_buf(), bytes)
    }

    /// Zero-fills in line, synced at once (on real files a background thread does
    /// it, independently of the caller's syncs).
    fn preallocated(&self, (path, bytes): (PathBuf, usize)) -> Result<SimFile, StorageError> {
        let mut disk = self.disk();
        let inode = disk.create(&name(&path));
        disk.write(inode, 0, &vec![0; bytes]);
        let token = disk.sync_begin(inode);
        disk.sync_complete(&token);
        Ok(SimFile { inode, path })
    }
}

/// A member's storage options on the simulated disk.
pub fn options(
    member_id: u64,
    cluster_id: u64,
    segment_bytes: usize,
    max_snapshots: usize,
) -> StorageOptions {
    let mut metadata = member_id.to_le_bytes().to_vec();
    metadata.extend_from_slice(&cluster_id.to_le_bytes());
    StorageOptions {
        segment_bytes,
        max_snapshots,
        metadata,
        ..StorageOptions::default()
    }
}

/// What a restart found.
#[derive(Debug)]
pub struct Opened {
    pub storage: Storage,
    /// None when nothing was ever persisted (start as a new member).
    pub start: Option<NodeStart>,
    pub torn_tail: bool,
}

/// Opens (and recovers) the storage on `disk`, as a server's start-up does.
pub fn open(disk: Disk, options: &StorageOptions) -> Result<Opened, StorageError> {
    let (storage, recovered) = Storage::open_in(SimFs::new(disk), Path::new(DATA_DIR), options)?;
    let torn_tail = recovered
        .warnings
        .iter()
        .any(|w| matches!(w, Warning::TornTailTruncated { .. }));
    let start = match recovered.snapshot {
        Some(snapshot) => Some(snapshot),
        // A member that joined (`NodeStart::Join`) starts from an empty log with
        // no snapshot: what it persisted since (a hard state, entries from index
        // 1) follows the implicit empty snapshot at index 0.
        None if recovered.hard_state.is_some() || !recovered.entries.is_empty() => Some(Snapshot::default()),
        // The member never persisted its first Ready and starts as new.
        None => None,
    }
    .map(|snapshot| NodeStart::Recover {
        snapshot,
        hard_state: recovered.hard_state.unwrap_or_else(HardState::default),
        entries: recovered.entries,
    });
    Ok(Opened {
        storage,
        start,
        torn_tail,
    })
}

/// The snapshot files on `disk` (full names), oldest first.
pub fn snapshot_files(disk: &Disk) -> Vec<String> {
    let dir = format!("{DATA_DIR}/member/snap");
    disk.list(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".snap"))
        .map(|n| format!("{dir}/{n}"))
        .collect()
}

/// Whether `e` is start-up refusing a data directory whose snapshots do not fit
/// its WAL (a snapshot file lost or damaged), rather than another failure.
pub fn is_snapshot_refusal(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::SnapshotMissing { .. }
            | StorageError::SnapshotMismatch { .. }
            | StorageError::SnapshotAfterWalEnd { .. }
            | StorageError::WalStartsLate { .. }
    )
}

/// The disk under `storage`, taken out of it (the storage is closed).
pub fn into_disk(storage: Storage) -> Disk {
    let fs = storage.wal().fs().clone();
    drop(storage);
    let disk = std::mem::take(&mut *fs.disk());
    disk
}

/// Whether the codec would read `bytes` of file `name` as valid data plus at
/// most a torn tail (the disk's garbage oracle). Files other than WAL segments
/// are checksummed whole and always detect garbage.
pub fn accepts_garbage(name: &str, bytes: &[u8]) -> bool {
    if !name.ends_with(".wal") {
        return true;
    }
    let start = wal::leading_crc(bytes).unwrap_or(0);
    !matches!(wal::scan(bytes, start).end, wal::ScanEnd::Corrupt { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{CrashPolicy, Damage};
    use detcd_core::node::Persist;
    use detcd_core::rng::Rng;
    use detcd_proto::raftpb::{Entry, SnapshotMetadata};
    use detcd_storage::{save_in_line, PersistPass, Work};

    const ALL: CrashPolicy = CrashPolicy {
        lose_unsynced: true,
        tear: true,
        garbage: true,
    };

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            term: 1,
            data: vec![index as u8; 1000],
            ..Default::default()
        }
    }

    fn snapshot_at(index: u64) -> Snapshot {
        Snapshot {
            metadata: Some(SnapshotMetadata {
                index,
                term: 1,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn crash_and_open(storage: Storage, seed: u64, options: &StorageOptions) -> Opened {
        let mut disk = into_disk(storage);
        disk.crash(&mut Rng::new(seed), ALL, &accepts_garbage);
        open(disk, options).unwrap_or_else(|e| panic!("seed {seed}: {e}"))
    }

    /// Entries synced before a crash come back, across segment cuts and with
    /// segments and snapshot files released behind snapshots; the log after the
    /// snapshot is contiguous.
    #[test]
    fn synced_records_survive_crashes_across_releases() {
        let options = options(1, 9, 8192, 1);
        let mut torn = 0;
        for seed in 0..30 {
            let mut storage = open(Disk::new(), &options).expect("fresh").storage;
            storage
                .save_snapshot(&snapshot_at(1))
                .expect("bootstrap snapshot");
            let mut synced = 1;
            for i in 2..124 {
                storage.save(None, &[entry(i)], false).expect("append");
                if i % 7 == 0 {
                    storage.wal_mut().sync().expect("sync");
                    synced = i;
                }
                if i % 40 == 0 {
                    storage.save_snapshot(&snapshot_at(synced)).expect("snapshot");
                    storage.wal_mut().release_to(synced).expect("release");
                }
            }
            assert!(storage.wal().segment_paths().len() < 8, "segments are released");
            let opened = crash_and_open(storage, seed, &options);
            torn += u32::from(opened.torn_tail);
            let Some(NodeStart::Recover {
                snapshot, entries, ..
            }) = opened.start
            else {
                panic!("seed {seed}: has a snapshot")
            };
            let base = snapshot.metadata.map_or(0, |m| m.index);
            let last = entries.last().map_or(base, |e| e.index);
            assert!(
                last >= synced,
                "seed {seed}: recovered to {last}, synced {synced}"
            );
            for (k, e) in entries.iter().enumerate() {
                assert_eq!(e.index, base + 1 + k as u64, "seed {seed}");
            }
        }
        assert!(torn > 0, "some crash tears the tail");
    }

    /// A member with snapshots at 20 and 40 (both marked) and synced entries to 50,
    /// and (`orphan`) a newer snapshot file at 45 whose marker never came (a crash
    /// between).
    fn member_with_snapshots(options: &StorageOptions, orphan: bool) -> Disk {
        let mut storage = open(Disk::new(), options).expect("fresh").storage;
        storage
            .save_snapshot(&snapshot_at(1))
            .expect("bootstrap snapshot");
        for i in 2..=50 {
            storage.save(None, &[entry(i)], true).expect("append");
            if i == 20 || i == 40 {
                storage.save_snapshot(&snapshot_at(i)).expect("snapshot");
            }
        }
        if orphan {
            storage.snapshotter().save(&snapshot_at(45)).expect("orphan file");
        }
        into_disk(storage)
    }

    fn file_at(disk: &Disk, index: u64) -> String {
        let suffix = format!("{index:016x}.snap");
        let files = snapshot_files(disk);
        files
            .into_iter()
            .find(|n| n.ends_with(&suffix))
            .expect("the file is there")
    }

    /// Damage to a snapshot file the WAL does not need (the orphan ahead of the
    /// marker, an older kept file) leaves start-up recovering every synced entry;
    /// damage to the file the WAL's marker names is refused, naming it, since the
    /// entries before it were released.
    #[test]
    fn a_lost_or_corrupt_snapshot_file_is_survived_or_refused() {
        let options = options(1, 9, 8192, 5);
        for damage in [Damage::Lost, Damage::Corrupt { offset: 30 }] {
            // (damaged file, the snapshot start-up then uses)
            for (index, used) in [(45, 40), (20, 45)] {
                let mut disk = member_with_snapshots(&options, true);
                let name = file_at(&disk, index);
                assert!(disk.damage(&name, damage));
                let opened = open(disk, &options).unwrap_or_else(|e| panic!("{damage:?} at {index}: {e}"));
                let Some(NodeStart::Recover {
                    snapshot, entries, ..
                }) = opened.start
                else {
                    panic!("{damage:?} at {index}: recovers")
                };
                assert_eq!(
                    snapshot.metadata.map(|m| m.index),
                    Some(used),
                    "{damage:?} at {index}"
                );
                assert_eq!(entries.last().map(|e| e.index), Some(50), "{damage:?} at {index}");
            }
            let mut disk = member_with_snapshots(&options, false);
            let name = file_at(&disk, 40);
            assert!(disk.damage(&name, damage));
            let e = open(disk, &options).expect_err("the marked snapshot is gone");
            assert!(is_snapshot_refusal(&e), "{damage:?}: {e}");
        }
    }

    /// The planted bug rename-without-dir-sync: a crash can forget a segment
    /// whose records were synced.
    #[cfg(feature = "mutations")]
    #[test]
    fn a_rename_without_a_directory_sync_loses_synced_records() {
        use detcd_core::mutation::{set_active, Mutation};
        let options = options(1, 9, 8192, 1);
        set_active(Some(Mutation::RenameWithoutDirSync));
        let mut lost = false;
        for seed in 0..20 {
            let mut storage = open(Disk::new(), &options).expect("fresh").storage;
            for i in 1..60 {
                storage.save(None, &[entry(i)], true).expect("append");
            }
            let opened = crash_and_open(storage, seed, &options);
            let recovered = match opened.start {
                Some(NodeStart::Recover { entries, .. }) => entries.len(),
                _ => 0,
            };
            lost |= recovered < 59;
        }
        set_active(None);
        assert!(lost, "some crash forgets a renamed segment");
    }

    fn persist(ready_number: u64, entries: impl IntoIterator<Item = u64>, must_sync: bool) -> Work {
        Work::Persist(Persist {
            ready_number,
            snapshot: None,
            entries: entries.into_iter().map(entry).collect(),
            hard_state: Some(HardState {
                term: 1,
                vote: 1,
                commit: ready_number,
            }),
            must_sync,
        })
    }

    fn recovered_last(opened: &Opened) -> u64 {
        match &opened.start {
            Some(NodeStart::Recover {
                snapshot, entries, ..
            }) => entries
                .last()
                .map_or(snapshot.metadata.as_ref().map_or(0, |m| m.index), |e| e.index),
            _ => 0,
        }
    }

    /// A storage pass: a leader's snapshot first (file, then marker), the
    /// Persists' records in one write, one sync, and nothing durable before it:
    /// a crash between the write and the sync may lose the pass, never what
    /// earlier passes synced; after the sync every crash keeps it.
    #[test]
    fn a_pass_writes_once_and_is_durable_only_after_its_sync() {
        let options = options(1, 9, 65536, 3);
        let mut lost_before_sync = 0;
        for seed in 0..20 {
            let mut storage = open(Disk::new(), &options).expect("fresh").storage;
            let bootstrap = Work::Persist(Persist {
                ready_number: 1,
                snapshot: Some(snapshot_at(1)),
                entries: Vec::new(),
                hard_state: None,
                must_sync: true,
            });
            let report = storage
                .persist_pass([bootstrap, persist(2, 2..=3, true)], &mut save_in_line)
                .expect("pass");
            assert_eq!(report.persisted, Some(2));
            assert_eq!((report.persists, report.entries, report.synced), (2, 2, true));
            assert_eq!(storage.snapshot_marked(), 1);

            let mut pass = PersistPass::new();
            for (ready, entries) in [(3, 4..=5), (4, 6..=6), (5, 7..=9)] {
                pass.add(
                    &mut storage,
                    persist(ready, entries, ready != 4),
                    &mut save_in_line,
                )
                .expect("add");
            }
            let writes = storage.wal().fs().disk().stats.writes;
            let written = pass.write(&mut storage).expect("write");
            assert_eq!(
                storage.wal().fs().disk().stats.writes,
                writes + 1,
                "one write per pass"
            );
            assert!(written.needs_sync());
            assert_eq!(written.report().persisted, Some(5));

            // Crash before the sync: the first pass is kept, the second may go.
            let mut disk = into_disk(storage);
            let mut after_sync = disk.clone();
            disk.crash(&mut Rng::new(seed), ALL, &accepts_garbage);
            let opened = open(disk, &options).expect("reopen");
            let last = recovered_last(&opened);
            assert!((3..=9).contains(&last), "seed {seed}: recovered to {last}");
            lost_before_sync += u32::from(last < 9);

            // The same pass synced: every crash keeps it.
            let mut storage = open(std::mem::take(&mut after_sync), &options)
                .expect("reopen without a crash")
                .storage;
            let mut pass = PersistPass::new();
            pass.add(&mut storage, persist(6, 10..=10, true), &mut save_in_line)
                .expect("add");
            let report = pass
                .write(&mut storage)
                .expect("write")
                .sync(&mut storage)
                .expect("sync");
            assert_eq!((report.persisted, report.synced), (Some(6), true));
            let opened = crash_and_open(storage, seed, &options);
            assert_eq!(recovered_last(&opened), 10, "seed {seed}");
        }
        assert!(lost_before_sync > 0, "some crash before the sync loses the pass");
    }

    /// A pass whose Persists need no sync is not synced; a snapshot file
    /// gets its marker only when it is newer than the WAL's newest (markers only
    /// move forward), and only then is it reported saved.
    #[test]
    fn a_pass_syncs_when_asked_and_marks_only_newer_snapshots() {
        let options = options(1, 9, 65536, 3);
        let mut storage = open(Disk::new(), &options).expect("fresh").storage;
        let report = storage
            .persist_pass([persist(1, 1..=30, true)], &mut save_in_line)
            .expect("pass");
        assert!(report.synced);
        let syncs = storage.wal().fs().disk().stats.syncs;
        let report = storage
            .persist_pass([persist(2, [], false)], &mut save_in_line)
            .expect("pass");
        assert_eq!((report.persisted, report.synced), (Some(2), false));
        assert_eq!(
            storage.wal().fs().disk().stats.syncs,
            syncs,
            "no sync asked, none made"
        );

        for index in [20, 10] {
            storage.snapshotter().save(&snapshot_at(index)).expect("file");
        }
        let meta = |index| snapshot_at(index).metadata.expect("metadata");
        let report = storage
            .persist_pass(
                [
                    Work::SnapshotFileSaved(meta(20)),
                    Work::SnapshotFileSaved(meta(10)),
                    Work::ReleaseWal(20),
                ],
                &mut save_in_line,
            )
            .expect("pass");
        assert_eq!(report.snapshots_marked, vec![20]);
        assert_eq!(report.persisted, None);
        assert_eq!(storage.snapshot_marked(), 20);
        let opened = crash_and_open(storage, 1, &options);
        let Some(NodeStart::Recover { snapshot, .. }) = opened.start else {
            panic!("recovers")
        };
        assert_eq!(snapshot.metadata.map(|m| m.index), Some(20));
    }
}
