//! Start-up from snapshot + WAL: which snapshot is chosen, and the mismatches
//! that stop start-up.

mod common;

use std::fs;
use std::path::Path;

use common::{assert_entries, entries, fresh_dir};
use detcd_io::snap::Snapshotter;
use detcd_io::{Storage, StorageError, StorageOptions, Wal, WalOptions, Warning};
use detcd_proto::raftpb::{Snapshot, SnapshotMetadata};

fn options() -> StorageOptions {
    StorageOptions {
        segment_bytes: 8192,
        max_snapshots: 3,
        metadata: b"m".to_vec(),
        ..StorageOptions::default()
    }
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot {
        data: format!("state at {index}").into_bytes(),
        metadata: Some(SnapshotMetadata {
            conf_state: None,
            index,
            term,
        }),
    }
}

fn open(dir: &Path) -> Result<(Storage, detcd_io::Recovered), StorageError> {
    Storage::open(dir, &options())
}

fn snap_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("member/snap")
}

fn corrupt(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

#[test]
fn restart_loads_the_snapshot_and_replays_the_wal_after_it() {
    let dir = fresh_dir("storage_restart");
    {
        let (mut storage, recovered) = open(&dir).unwrap();
        assert_eq!(recovered.snapshot, None);
        assert!(dir.join("member/wal").is_dir() && snap_dir(&dir).is_dir());
        for batch in entries(1, 300, 1).chunks(10) {
            storage.save(None, batch, true).unwrap();
        }
        storage.save_snapshot(&snapshot(250, 1)).unwrap();
        assert!(storage.wal().stats().segments_released > 0);
        storage.save(None, &entries(301, 320, 1), true).unwrap();
    }
    let (_, recovered) = open(&dir).unwrap();
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
    assert_eq!(recovered.snapshot, Some(snapshot(250, 1)));
    assert_entries(&recovered.entries, 251, 320);
    assert_eq!(recovered.metadata, b"m");
}

#[test]
fn only_the_newest_max_snapshots_are_kept() {
    let dir = fresh_dir("storage_max_snapshots");
    let (mut storage, _) = open(&dir).unwrap();
    storage.save(None, &entries(1, 60, 1), true).unwrap();
    for index in [10, 20, 30, 40, 50] {
        storage.save_snapshot(&snapshot(index, 1)).unwrap();
    }
    let kept: Vec<u64> = storage
        .snapshotter()
        .list()
        .unwrap()
        .iter()
        .map(|f| f.index)
        .collect();
    assert_eq!(kept, [50, 40, 30]);
    let name = storage.snapshotter().list().unwrap()[0]
        .path
        .file_name()
        .unwrap()
        .to_owned();
    assert_eq!(name, "0000000000000001-0000000000000032.snap");
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_the_previous_one() {
    let dir = fresh_dir("storage_fallback");
    {
        let (mut storage, _) = open(&dir).unwrap();
        storage.save(None, &entries(1, 40, 1), true).unwrap();
        storage.save_snapshot(&snapshot(20, 1)).unwrap();
        storage.save(None, &entries(41, 60, 1), true).unwrap();
        // A crash between writing a snapshot file and its WAL marker.
        storage.snapshotter().save(&snapshot(50, 1)).unwrap();
    }
    let newest = snap_dir(&dir).join("0000000000000001-0000000000000032.snap");
    corrupt(&newest);
    let (_, recovered) = open(&dir).unwrap();
    assert_eq!(recovered.snapshot, Some(snapshot(20, 1)));
    assert_entries(&recovered.entries, 21, 60);
    match &recovered.warnings[..] {
        [Warning::SnapshotBroken { path, renamed_to, .. }] => {
            assert_eq!(path, &newest);
            assert!(renamed_to.to_str().unwrap().ends_with(".snap.broken"));
            assert!(renamed_to.exists() && !newest.exists());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_orphan_snapshot_within_the_wal_is_used() {
    let dir = fresh_dir("storage_orphan_within");
    {
        let (mut storage, _) = open(&dir).unwrap();
        storage.save(None, &entries(1, 60, 1), true).unwrap();
        storage.snapshotter().save(&snapshot(50, 1)).unwrap();
    }
    let (_, recovered) = open(&dir).unwrap();
    assert_eq!(recovered.snapshot, Some(snapshot(50, 1)));
    assert_entries(&recovered.entries, 51, 60);
}

#[test]
fn a_snapshot_ahead_of_the_wal_is_skipped_when_an_older_one_fits() {
    let dir = fresh_dir("storage_ahead_fallback");
    {
        let (mut storage, _) = open(&dir).unwrap();
        storage.save(None, &entries(1, 40, 1), true).unwrap();
        storage.save_snapshot(&snapshot(30, 1)).unwrap();
        storage.snapshotter().save(&snapshot(90, 2)).unwrap();
    }
    let (_, recovered) = open(&dir).unwrap();
    assert_eq!(recovered.snapshot, Some(snapshot(30, 1)));
    assert_entries(&recovered.entries, 31, 40);
    assert!(matches!(
        &recovered.warnings[..],
        [Warning::SnapshotAheadOfWal {
            snapshot_index: 90,
            wal_last_index: 40,
            ..
        }]
    ));
}

#[test]
fn with_one_snapshot_kept_the_marked_file_outlives_a_newer_unmarked_one() {
    // --max-snapshots=1 and a crash between a received snapshot's file (ahead of
    // the WAL's end) and its marker: the file the WAL marks must still be there.
    let dir = fresh_dir("storage_keep_marked");
    let options = StorageOptions {
        max_snapshots: 1,
        ..options()
    };
    {
        let (mut storage, _) = Storage::open(&dir, &options).unwrap();
        storage.save(None, &entries(1, 40, 1), true).unwrap();
        storage.save_snapshot(&snapshot(20, 1)).unwrap();
        storage.save_snapshot(&snapshot(30, 1)).unwrap();
        storage.snapshotter().save(&snapshot(90, 2)).unwrap();
    }
    let kept = |dir: &Path| -> Vec<u64> {
        let (snapshotter, _) = Snapshotter::new(&snap_dir(dir), 1).unwrap();
        snapshotter.list().unwrap().iter().map(|f| f.index).collect()
    };
    assert_eq!(
        kept(&dir),
        [90, 30],
        "the file older than the marker is purged, the marked one kept"
    );
    let (mut storage, recovered) = Storage::open(&dir, &options).unwrap();
    assert_eq!(recovered.snapshot, Some(snapshot(30, 1)));
    assert_entries(&recovered.entries, 31, 40);
    // Once the newer snapshot is marked, the older file goes.
    storage.save(None, &entries(41, 95, 2), true).unwrap();
    storage.save_snapshot(&snapshot(90, 2)).unwrap();
    drop(storage);
    assert_eq!(kept(&dir), [90]);
    let (_, recovered) = Storage::open(&dir, &options).unwrap();
    assert_eq!(recovered.snapshot, Some(snapshot(90, 2)));
}

#[test]
fn a_snapshot_newer_than_the_wal_end_with_nothing_to_fall_back_to_is_an_error() {
    let dir = fresh_dir("storage_ahead_error");
    {
        let wal_options = WalOptions {
            segment_bytes: 8192,
            max_files: None,
        };
        let (mut wal, _, _) = Wal::open(&dir.join("member/wal"), b"m", &wal_options).unwrap();
        for batch in entries(1, 200, 1).chunks(10) {
            wal.save(None, batch, true).unwrap();
        }
        // The WAL's start released, but the snapshot that covered it is gone.
        assert!(wal.release_to(100).unwrap() > 0);
        let (snapshotter, _) = Snapshotter::new(&snap_dir(&dir), 3).unwrap();
        snapshotter.save(&snapshot(500, 3)).unwrap();
    }
    let error = open(&dir).unwrap_err();
    match &error {
        StorageError::SnapshotAfterWalEnd {
            path,
            snapshot_index: 500,
            wal_last_index: 200,
        } => {
            assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        }
        other => panic!("expected SnapshotAfterWalEnd, got {other}"),
    }
}

#[test]
fn a_corrupt_snapshot_the_wal_marker_needs_is_an_error() {
    let dir = fresh_dir("storage_marker_missing");
    {
        let (mut storage, _) = open(&dir).unwrap();
        storage.save(None, &entries(1, 40, 1), true).unwrap();
        storage.save_snapshot(&snapshot(20, 1)).unwrap();
        storage.save(None, &entries(41, 60, 1), true).unwrap();
        storage.save_snapshot(&snapshot(50, 1)).unwrap();
    }
    corrupt(&snap_dir(&dir).join("0000000000000001-0000000000000032.snap"));
    let error = open(&dir).unwrap_err();
    assert!(
        matches!(
            error,
            StorageError::SnapshotMissing {
                index: 50,
                term: 1,
                ..
            }
        ),
        "expected SnapshotMissing, got {error}"
    );
}

#[test]
fn a_snapshot_whose_term_disagrees_with_the_wal_is_an_error() {
    let dir = fresh_dir("storage_term_mismatch");
    {
        let (mut storage, _) = open(&dir).unwrap();
        storage.save(None, &entries(1, 40, 1), true).unwrap();
        // A snapshot file (no marker) claiming term 7 at index 30, where the WAL has term 1.
        storage.snapshotter().save(&snapshot(30, 7)).unwrap();
    }
    let error = open(&dir).unwrap_err();
    assert!(
        matches!(
            error,
            StorageError::SnapshotMismatch {
                snapshot_index: 30,
                snapshot_term: 7,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("term 1 at index 30"), "{error}");
}

#[test]
fn a_wal_that_starts_late_without_a_snapshot_is_an_error() {
    let dir = fresh_dir("storage_starts_late");
    {
        let (mut storage, _) = open(&dir).unwrap();
        for batch in entries(1, 200, 1).chunks(10) {
            storage.save(None, batch, true).unwrap();
        }
        storage.wal_mut().release_to(100).unwrap();
    }
    let error = open(&dir).unwrap_err();
    assert!(matches!(error, StorageError::WalStartsLate { .. }), "{error}");
}

#[test]
fn snapshot_files_round_trip_and_reject_damage_without_panicking() {
    let bytes = detcd_io::snap::encode(&snapshot(7, 2));
    assert_eq!(detcd_io::snap::decode(&bytes), Ok(snapshot(7, 2)));
    for cut in 0..bytes.len() {
        assert!(
            detcd_io::snap::decode(&bytes[..cut]).is_err(),
            "truncated to {cut}"
        );
    }
    for at in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        assert!(detcd_io::snap::decode(&flipped).is_err(), "flip at {at}");
    }
}

#[test]
fn repeated_snapshots_and_releases_always_reopen() {
    let dir = fresh_dir("storage_repeated");
    let mut last = 0;
    for round in 1..=12u64 {
        let (mut storage, recovered) = open(&dir).unwrap();
        assert!(
            recovered.warnings.is_empty(),
            "round {round}: {:?}",
            recovered.warnings
        );
        let base = recovered
            .snapshot
            .as_ref()
            .map_or(0, |s| s.metadata.as_ref().unwrap().index);
        assert_entries(&recovered.entries, base + 1, last);
        for batch in entries(last + 1, last + 60, 1).chunks(7) {
            storage.save(None, batch, true).unwrap();
        }
        last += 60;
        // Snapshots lag the log, so markers land in segments that start after them.
        storage.save_snapshot(&snapshot(last - 25 - round, 1)).unwrap();
    }
    let (storage, recovered) = open(&dir).unwrap();
    assert!(storage.wal().segment_paths().len() < 30, "segments are released");
    let base = recovered.snapshot.unwrap().metadata.unwrap().index;
    assert_entries(&recovered.entries, base + 1, last);
}
