//! The WAL against its files: round trips across cuts, group commit, release,
//! torn tails (process crash and simulated power loss), corruption errors.

mod common;

use std::fs;
use std::path::Path;

use common::{assert_entries, entries, entry, fresh_dir, payload};
use detcd_core::rng::Rng;
use detcd_core::wal::{recover, Defect, Record};
use detcd_io::{GroupCommitOptions, GroupCommitter, StorageError, Wal, WalOptions, Warning};
use detcd_proto::raftpb::HardState;

const SEGMENT_BYTES: usize = 8192;

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: SEGMENT_BYTES,
        max_files: None,
    }
}

fn open(dir: &Path) -> (Wal, detcd_core::wal::RecoveredLog, Vec<Warning>) {
    Wal::open(dir, b"member-1", &options()).expect("open WAL")
}

#[test]
fn a_new_wal_starts_with_etcds_first_segment_name() {
    let dir = fresh_dir("wal_first_name");
    let (wal, log, warnings) = open(&dir);
    assert!(warnings.is_empty());
    assert_eq!(log.metadata.as_deref(), Some(&b"member-1"[..]));
    let names: Vec<_> = wal
        .segment_paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["0000000000000000-0000000000000000.wal"]);
    assert_eq!(
        fs::metadata(&wal.segment_paths()[0]).unwrap().len(),
        SEGMENT_BYTES as u64
    );
}

#[test]
fn entries_and_hard_state_survive_reopen_across_segment_cuts() {
    let dir = fresh_dir("wal_roundtrip");
    {
        let (mut wal, _, _) = open(&dir);
        for batch in entries(1, 300, 2).chunks(7) {
            let state = HardState {
                term: 2,
                vote: 1,
                commit: batch[0].index,
            };
            wal.save(Some(&state), batch, true).unwrap();
        }
        assert!(
            wal.stats().segments_cut > 5,
            "small segments must cut: {:?}",
            wal.stats()
        );
        assert_eq!(wal.last_index(), 300);
    }
    let (wal, log, warnings) = open(&dir);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_entries(&log.entries, 1, 300);
    assert_eq!(
        log.hard_state,
        Some(HardState {
            term: 2,
            vote: 1,
            commit: 295
        })
    );
    // Segment names carry consecutive sequence numbers and the first index cut for.
    for (seq, path) in wal.segment_paths().iter().enumerate() {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with(&format!("{seq:016x}-")), "{name}");
    }
}

#[test]
fn appends_continue_after_reopen() {
    let dir = fresh_dir("wal_continue");
    {
        let (mut wal, _, _) = open(&dir);
        wal.save(None, &entries(1, 50, 1), true).unwrap();
    }
    {
        let (mut wal, log, _) = open(&dir);
        assert_entries(&log.entries, 1, 50);
        wal.save(None, &entries(51, 120, 1), true).unwrap();
    }
    let (_, log, warnings) = open(&dir);
    assert!(warnings.is_empty());
    assert_entries(&log.entries, 1, 120);
}

#[test]
fn raft_log_rewrites_replace_the_tail() {
    let dir = fresh_dir("wal_rewrite");
    {
        let (mut wal, _, _) = open(&dir);
        wal.save(None, &entries(1, 30, 1), true).unwrap();
        wal.save(None, &entries(20, 25, 2), true).unwrap();
    }
    let (_, log, _) = open(&dir);
    let terms: Vec<(u64, u64)> = log.entries.iter().map(|e| (e.index, e.term)).collect();
    assert_eq!(terms.len(), 25);
    assert_eq!(terms[18], (19, 1));
    assert_eq!(terms[19], (20, 2));
    assert_eq!(terms[24], (25, 2));
}

#[test]
fn a_second_writer_is_locked_out() {
    let dir = fresh_dir("wal_lock");
    let (_wal, _, _) = open(&dir);
    match Wal::open(&dir, b"", &options()) {
        Err(StorageError::Locked { path }) => assert_eq!(path, dir.join("LOCK")),
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn reserved_and_oversized_records_are_refused_whole() {
    let dir = fresh_dir("wal_refuse");
    let (mut wal, _, _) = open(&dir);
    let batch = [Record::Entry(entry(1, 1)), Record::Crc(0)];
    assert!(matches!(
        wal.append_batch(&batch),
        Err(StorageError::ReservedRecord(_))
    ));
    let mut huge = entry(1, 1);
    huge.data = vec![7; SEGMENT_BYTES];
    assert!(matches!(
        wal.append_batch(&[Record::Entry(huge)]),
        Err(StorageError::RecordTooLarge { .. })
    ));
    assert!(wal.is_synced(), "a refused batch appends nothing");
    wal.save(None, &entries(1, 3, 1), true).unwrap();
    drop(wal);
    assert_entries(&open(&dir).1.entries, 1, 3);
}

#[test]
fn release_to_deletes_only_segments_wholly_at_or_below_the_index() {
    let dir = fresh_dir("wal_release");
    let (mut wal, _, _) = open(&dir);
    for batch in entries(1, 400, 1).chunks(10) {
        wal.save(None, batch, true).unwrap();
    }
    let before = wal.segment_paths().len();
    let released = wal.release_to(200).unwrap();
    assert!(
        released > 0 && released < before,
        "released {released} of {before}"
    );
    assert_eq!(wal.segment_paths().len(), before - released);
    drop(wal);
    let (_, log, _) = open(&dir);
    let first = log.entries.first().unwrap().index;
    assert!(first <= 201, "entry 201 must be kept, log starts at {first}");
    assert_entries(&log.entries, first, 400);
}

/// etcd's `--max-wals`: covered segments stay while there are at most that many files;
/// 0 keeps them all.
#[test]
fn max_wals_keeps_covered_segments_up_to_the_limit() {
    for (max_files, tag) in [(Some(3), "wal_max3"), (Some(0), "wal_max0")] {
        let dir = fresh_dir(tag);
        let limited = WalOptions {
            max_files,
            ..options()
        };
        let (mut wal, _, _) = Wal::open(&dir, b"member-1", &limited).expect("open WAL");
        for batch in entries(1, 400, 1).chunks(10) {
            wal.save(None, batch, true).unwrap();
        }
        let before = wal.segment_paths().len();
        assert!(before > 3, "{before} segments");
        wal.release_to(400).unwrap();
        let after = wal.segment_paths().len();
        match max_files {
            Some(0) => assert_eq!(after, before, "0 keeps every file"),
            _ => assert_eq!(after, 3, "down to the limit"),
        }
    }
}

#[test]
fn group_commit_shares_syncs_between_writers() {
    let dir = fresh_dir("wal_group");
    let (wal, _, _) = open(&dir);
    let committer = GroupCommitter::start(wal, GroupCommitOptions::default());
    let writers = 16u64;
    let per_writer = 25u64;
    std::thread::scope(|scope| {
        for w in 0..writers {
            let committer = &committer;
            scope.spawn(move || {
                for i in 0..per_writer {
                    let index = 1 + w * per_writer + i;
                    let state = HardState {
                        term: 1,
                        vote: 0,
                        commit: index,
                    };
                    let ack = committer
                        .commit_blocking(vec![Record::HardState(state)])
                        .expect("commit");
                    assert!(ack.batch_records >= 1);
                }
            });
        }
    });
    let stats = committer.stats();
    assert_eq!(stats.requests, writers * per_writer);
    assert_eq!(stats.wal.records_synced, writers * per_writer);
    assert!(stats.batches <= stats.requests);
    let wal = committer.stop();
    drop(wal);
    let (_, log, _) = open(&dir);
    assert!(log.hard_state.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_from_tokio_tasks_acknowledges_only_durable_records() {
    let dir = fresh_dir("wal_group_tokio");
    let (wal, _, _) = open(&dir);
    let committer = std::sync::Arc::new(GroupCommitter::start(wal, GroupCommitOptions::default()));
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let committer = std::sync::Arc::clone(&committer);
        tasks.push(tokio::spawn(async move {
            committer
                .commit(vec![Record::HardState(HardState {
                    term: 1,
                    vote: task,
                    commit: 0,
                })])
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("commit");
    }
    let stats = committer.stats();
    assert_eq!(stats.requests, 32);
    assert!(stats.batches < 32 || stats.wal.records_per_sync_max == 1);
}

/// The stores one append makes, in the order `Wal` makes them: per frame, the
/// length word as one 8-byte store, then the rest byte by byte (memcpy may go in
/// any order; increasing is one of them, and the others are covered by the
/// frame being CRC-checked as a whole).
fn store_order(before: &[u8], after: &[u8], from: usize, to: usize) -> Vec<(usize, Vec<u8>)> {
    let mut stores = Vec::new();
    let mut offset = from;
    while offset < to {
        let word = u64::from_le_bytes(after[offset..offset + 8].try_into().unwrap());
        let body = (word & ((1 << 56) - 1)) as usize;
        let frame = detcd_core::wal::frame_bytes(body - 8);
        stores.push((offset, after[offset..offset + 8].to_vec()));
        stores.extend(
            (offset + 8..offset + frame)
                .zip(&after[offset + 8..offset + frame])
                .map(|(at, &b)| (at, vec![b])),
        );
        offset += frame;
    }
    assert!(before[from..to].iter().all(|&b| b == 0));
    stores
}

#[test]
fn every_prefix_of_an_append_recovers_as_a_torn_tail_never_as_corruption() {
    let dir = fresh_dir("wal_prefix");
    let (mut wal, _, _) = open(&dir);
    wal.save(None, &entries(1, 3, 1), true).unwrap();
    let (path, synced, _) = wal.write_position();
    let before = fs::read(&path).unwrap();
    // Three frames, one over two sectors long.
    let mut long = entry(6, 1);
    long.data = vec![0xab; 1200];
    wal.save(None, &[entry(4, 1), entry(5, 1), long], false).unwrap();
    let (_, _, written) = wal.write_position();
    drop(wal);
    let after = fs::read(&path).unwrap();
    let stores = store_order(&before, &after, synced, written);
    let mut image = before.clone();
    let mut complete = 0;
    for k in 0..=stores.len() {
        let log = recover(&[&image]).unwrap_or_else(|e| panic!("prefix of {k} stores: {e}"));
        let got: Vec<u64> = log.entries.iter().map(|e| e.index).collect();
        assert!(
            got.len() >= 3 && got[..3] == [1, 2, 3],
            "prefix {k}: synced entries lost: {got:?}"
        );
        assert!(got.len() >= complete + 3, "prefix {k}");
        complete = got.len() - 3;
        if let Some((at, bytes)) = stores.get(k) {
            image[*at..*at + bytes.len()].copy_from_slice(bytes);
        }
    }
    assert_eq!(complete, 3);
    // The other order (payload before length word) leaves what scan must call
    // corruption; that is why Wal writes the length word first.
    let mut payload_first = before.clone();
    payload_first[synced + 8..written].copy_from_slice(&after[synced + 8..written]);
    let error = recover(&[&payload_first]).unwrap_err();
    assert_eq!(error.reason, Defect::DataAfterEnd);
}

#[test]
fn simulated_power_loss_after_the_last_sync_keeps_every_synced_entry() {
    let mut rng = Rng::new(0x5eed);
    for round in 0..40u64 {
        let dir = fresh_dir("wal_power_loss");
        let (mut wal, _, _) = open(&dir);
        let synced_to = 5 + rng.range(0, 40);
        wal.save(None, &entries(1, synced_to, 1), true).unwrap();
        let (path, synced, _) = wal.write_position();
        let unsynced_to = synced_to + rng.range(1, 12);
        wal.save(None, &entries(synced_to + 1, unsynced_to, 1), false)
            .unwrap();
        let (path_now, _, written) = wal.write_position();
        drop(wal);
        if path_now != path {
            continue; // the unsynced append cut (and so synced); nothing to lose
        }
        let mut bytes = fs::read(&path).unwrap();
        let sectors = (synced / 512)..written.div_ceil(512);
        let mode = round % 4;
        for sector in sectors.clone() {
            let lo = (sector * 512).max(synced);
            let hi = ((sector + 1) * 512).min(bytes.len());
            let lost = match mode {
                0 => true,                                              // nothing after the sync reached the disk
                1 => rng.chance(1, 2),                                  // random sectors did
                2 => sector > sectors.start + rng.range(0, 3) as usize, // a prefix did
                _ => false,
            };
            if lost {
                bytes[lo..hi].fill(0);
            }
        }
        if mode == 3 {
            // Garbage in one unsynced sector (a drive that writes junk on power loss).
            let at = synced + rng.range(0, (written - synced) as u64) as usize;
            bytes[at] ^= 0x5a;
        }
        fs::write(&path, &bytes).unwrap();
        match Wal::open(&dir, b"", &options()) {
            Ok((_, log, _)) => {
                let last = log.entries.last().unwrap().index;
                assert!(
                    last >= synced_to && last <= unsynced_to,
                    "round {round}: last {last}"
                );
                assert_entries(&log.entries, 1, last);
            }
            Err(StorageError::Corrupt { offset, .. }) if mode == 3 => {
                assert!(
                    offset >= synced,
                    "round {round}: corruption reported inside synced data"
                );
            }
            Err(e) => panic!("round {round} mode {mode}: {e}"),
        }
    }
}

#[test]
fn a_zeroed_tail_is_truncated_with_a_warning_and_appending_resumes() {
    let dir = fresh_dir("wal_zeroed_tail");
    let (mut wal, _, _) = open(&dir);
    wal.save(None, &entries(1, 6, 1), true).unwrap();
    let (path, before_last, _) = wal.write_position();
    let long = (7..).find(|&i| payload(i).len() > 600).unwrap();
    wal.save(None, &[entry(long, 1)], true).unwrap();
    let (_, _, end) = wal.write_position();
    drop(wal);
    let mut bytes = fs::read(&path).unwrap();
    bytes[end - 300..end].fill(0);
    fs::write(&path, &bytes).unwrap();
    let (mut wal, log, warnings) = open(&dir);
    assert_entries(&log.entries, 1, 6);
    assert!(
        matches!(&warnings[..], [Warning::TornTailTruncated { offset, .. }] if *offset == before_last),
        "{warnings:?}"
    );
    wal.save(None, &entries(7, 9, 1), true).unwrap();
    drop(wal);
    let (_, log, warnings) = open(&dir);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_entries(&log.entries, 1, 9);
}

#[test]
fn a_flipped_byte_mid_log_names_the_file_and_offset() {
    let dir = fresh_dir("wal_flip");
    let (mut wal, _, _) = open(&dir);
    for batch in entries(1, 200, 1).chunks(5) {
        wal.save(None, batch, true).unwrap();
    }
    let paths = wal.segment_paths();
    drop(wal);
    let victim = &paths[1];
    let mut bytes = fs::read(victim).unwrap();
    let log = recover(&[&bytes]).unwrap();
    let valid = log.valid_lens[0];
    let at = valid / 2;
    bytes[at] ^= 0x01;
    fs::write(victim, &bytes).unwrap();
    let error = Wal::open(&dir, b"", &options()).unwrap_err();
    let StorageError::Corrupt { path, offset, .. } = &error else {
        panic!("expected Corrupt, got {error}")
    };
    assert_eq!(path, victim);
    assert!(
        *offset <= at && at - *offset < 1024,
        "offset {offset} vs flipped byte {at}"
    );
    let message = error.to_string();
    assert!(message.contains(&victim.display().to_string()), "{message}");
    assert!(message.contains(&format!("byte offset {offset}")), "{message}");
}

#[test]
fn a_flipped_byte_in_the_last_segment_before_its_end_is_corruption_not_a_torn_tail() {
    let dir = fresh_dir("wal_flip_last");
    let (mut wal, _, _) = open(&dir);
    wal.save(None, &entries(1, 10, 1), true).unwrap();
    let (path, _, end) = wal.write_position();
    drop(wal);
    let mut bytes = fs::read(&path).unwrap();
    bytes[end / 3] ^= 0x80;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Wal::open(&dir, b"", &options()),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn a_missing_middle_segment_is_an_error() {
    let dir = fresh_dir("wal_missing");
    let (mut wal, _, _) = open(&dir);
    for batch in entries(1, 200, 1).chunks(5) {
        wal.save(None, batch, true).unwrap();
    }
    let paths = wal.segment_paths();
    drop(wal);
    assert!(paths.len() >= 4);
    fs::remove_file(&paths[2]).unwrap();
    match Wal::open(&dir, b"", &options()) {
        Err(StorageError::MissingSegment {
            path,
            expected_seq: 2,
            found_seq: 3,
        }) => assert_eq!(path, paths[3]),
        other => panic!("expected MissingSegment, got {other:?}"),
    }
}

#[test]
fn a_torn_record_before_the_last_segment_is_an_error() {
    let dir = fresh_dir("wal_torn_middle");
    let (mut wal, _, _) = open(&dir);
    for batch in entries(1, 200, 1).chunks(5) {
        wal.save(None, batch, true).unwrap();
    }
    let paths = wal.segment_paths();
    drop(wal);
    let mut bytes = fs::read(&paths[1]).unwrap();
    let valid = recover(&[&bytes]).unwrap().valid_lens[0];
    bytes[valid - 16..valid].fill(0);
    fs::write(&paths[1], &bytes).unwrap();
    match Wal::open(&dir, b"", &options()) {
        Err(StorageError::Corrupt { path, .. }) => assert_eq!(path, paths[1]),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn leftover_temp_files_are_removed() {
    let dir = fresh_dir("wal_tmp");
    drop(open(&dir));
    fs::write(dir.join("0000000000000001-0000000000000005.wal.tmp"), payload(3)).unwrap();
    let (_, _, warnings) = open(&dir);
    assert!(
        warnings
            .iter()
            .any(|w| matches!(w, Warning::TempFileRemoved { .. })),
        "{warnings:?}"
    );
}

#[test]
fn appended_records_reach_the_file_with_the_next_sync_in_one_write() {
    let dir = fresh_dir("wal_append");
    {
        let (mut wal, _, _) = open(&dir);
        wal.save(None, &entries(1, 2, 1), true).unwrap();
        let (path, synced, written) = wal.write_position();
        assert_eq!(synced, written);
        let on_disk = fs::read(&path).unwrap();
        let state = HardState {
            term: 1,
            vote: 1,
            commit: 4,
        };
        let syncs = wal.stats().syncs;
        wal.append(None, &entries(3, 3, 1)).unwrap();
        wal.append(Some(&state), &entries(4, 4, 1)).unwrap();
        assert!(!wal.is_synced(), "appended records count as unsynced");
        assert_eq!(wal.write_position().2, written, "kept in memory until the sync");
        assert_eq!(fs::read(&path).unwrap(), on_disk);
        wal.sync().unwrap();
        assert!(wal.is_synced());
        let (_, synced, written) = wal.write_position();
        assert_eq!(synced, written);
        assert_eq!(wal.stats().syncs, syncs + 1);
    }
    let (_, log, _) = open(&dir);
    assert_entries(&log.entries, 1, 4);
    assert_eq!(log.hard_state.map(|s| s.commit), Some(4));
}
