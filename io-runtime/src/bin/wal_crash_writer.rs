//! The writer process of the crash-consistency test (`tests/crash.rs`).
//!
//! `wal_crash_writer <data-dir> <segment-bytes> <seed>` opens the storage in
//! `<data-dir>` (recovering what a killed predecessor left), then appends entries
//! after the recovered ones in batches of random size, some synced and some not,
//! and after every sync prints `ack <index>` (the last index that sync made
//! durable) on stdout, flushed. The test kills it with SIGKILL at random points and
//! checks that every acknowledged index comes back. Entry payloads are a function
//! of the index (the same one the test checks), with lengths from 0 to 700 bytes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use detcd_core::rng::Rng;
use detcd_io::{Storage, StorageOptions};
use detcd_proto::raftpb::Entry;

/// Stops a writer the test forgot to kill.
const ENTRIES_MAX: u64 = 200_000;

fn payload(index: u64) -> Vec<u8> {
    let len = (index.wrapping_mul(2_654_435_761) % 701) as usize;
    (0..len)
        .map(|i| (index as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, segment_bytes, seed] = &args[..] else {
        eprintln!("usage: wal_crash_writer <data-dir> <segment-bytes> <seed>");
        return ExitCode::from(2);
    };
    let (Ok(segment_bytes), Ok(seed)) = (segment_bytes.parse::<usize>(), seed.parse::<u64>()) else {
        eprintln!("segment-bytes and seed must be integers");
        return ExitCode::from(2);
    };
    let options = StorageOptions {
        segment_bytes,
        ..StorageOptions::default()
    };
    let (mut storage, recovered) = match Storage::open(&PathBuf::from(dir), &options) {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("open: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rng = Rng::new(seed);
    let mut next = recovered.entries.last().map_or(1, |e| e.index + 1);
    let mut stdout = std::io::stdout().lock();
    while next < ENTRIES_MAX {
        let count = rng.range(1, 7);
        let batch: Vec<Entry> = (next..next + count)
            .map(|index| Entry {
                r#type: 0,
                term: 1,
                index,
                data: payload(index),
            })
            .collect();
        next += count;
        let must_sync = !rng.chance(1, 4);
        if let Err(e) = storage.save(None, &batch, must_sync) {
            eprintln!("save: {e}");
            return ExitCode::FAILURE;
        }
        if must_sync {
            // Only now is everything up to next - 1 durable.
            if writeln!(stdout, "ack {}", next - 1)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
