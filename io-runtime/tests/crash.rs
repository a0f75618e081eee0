//! Crash consistency against a real process: a writer (`wal_crash_writer`)
//! appends and acknowledges entries after each sync; this test SIGKILLs it at
//! random points, reopens the WAL, and checks that every acknowledged entry is
//! there, intact and in order, and that nothing but whole, correct entries follows
//! (a torn write is never accepted).
//!
//! `DETCD_CRASH_POINTS` sets the number of kill points (default 200; e.g. 5000
//! for a long run). SIGKILL keeps the page cache, so this exercises the process
//! crash; power loss is simulated in `tests/wal.rs`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_entries, fresh_dir};
use detcd_core::rng::Rng;
use detcd_io::{Storage, StorageOptions, Warning};

const SEGMENT_BYTES: usize = 16 * 1024;
/// Kill points per data directory before starting a fresh one (keeps the WAL,
/// and each recovery scan in a debug build, small).
const POINTS_PER_DIR: u64 = 25;

#[test]
fn every_acknowledged_entry_survives_sigkill_at_random_points() {
    let points: u64 = std::env::var("DETCD_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("DETCD_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xc0ffee);
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let options = StorageOptions {
        segment_bytes: SEGMENT_BYTES,
        ..StorageOptions::default()
    };
    let (mut dir, mut acked) = (fresh_dir("crash"), 0u64);
    let (mut torn_tails, mut cuts_seen, mut killed_before_first_ack) = (0u64, 0usize, 0u64);
    for point in 0..points {
        if point % POINTS_PER_DIR == 0 {
            dir = fresh_dir(&format!("crash-{}", point / POINTS_PER_DIR));
            acked = 0;
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_wal_crash_writer"))
            .arg(&dir)
            .arg(SEGMENT_BYTES.to_string())
            .arg(rng.next_u64().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let acks_before_kill = rng.range(0, 16);
        let mut line = String::new();
        let mut read_ack = |line: &mut String, acked: &mut u64| -> bool {
            line.clear();
            match stdout.read_line(line) {
                Ok(0) | Err(_) => false,
                Ok(_) if line.ends_with('\n') => {
                    let index: u64 = line.trim().strip_prefix("ack ").unwrap().parse().unwrap();
                    assert!(index > *acked, "acks increase");
                    *acked = index;
                    true
                }
                Ok(_) => false, // a line cut by the kill was never a whole ack
            }
        };
        for _ in 0..acks_before_kill {
            if !read_ack(&mut line, &mut acked) {
                break;
            }
        }
        if acks_before_kill == 0 {
            killed_before_first_ack += 1;
        }
        std::thread::sleep(Duration::from_micros(rng.range(0, 400)));
        child.kill().expect("SIGKILL the writer");
        // Acks printed before death still count: they were made after a sync.
        while read_ack(&mut line, &mut acked) {}
        child.wait().expect("reap the writer");

        let (storage, recovered) = Storage::open(&dir, &options)
            .unwrap_or_else(|e| panic!("kill point {point} (seed {seed}): recovery failed: {e}"));
        let last = recovered.entries.last().map_or(0, |e| e.index);
        assert!(
            last >= acked,
            "kill point {point} (seed {seed}): acked {acked}, recovered up to {last}"
        );
        assert_entries(&recovered.entries, 1, last);
        torn_tails += recovered
            .warnings
            .iter()
            .filter(|w| matches!(w, Warning::TornTailTruncated { .. }))
            .count() as u64;
        cuts_seen = cuts_seen.max(storage.wal().segment_paths().len());
    }
    assert!(cuts_seen > 1, "segments must be cut during the test");
    eprintln!(
        "crash test: {points} kill points in {:.1?} (seed {seed}); torn tails truncated: {torn_tails}; \
         most segments in one dir: {cuts_seen}; kills before any ack: {killed_before_first_ack}",
        started.elapsed()
    );
}
