//! WAL throughput and sync latency, beside the disk's physical limit.
//!
//! `cargo run --release -p detcd-io --example wal_bench -- [DIR] [SECONDS]`
//!
//! For 1 and 64 writer threads feeding one [`GroupCommitter`], each write a
//! 256-byte entry acknowledged only after the sync that covers it: appends per
//! second, mean entries per sync, and sync latency p50/p99/max. Then the limit,
//! measured as `dd if=/dev/zero of=FILE bs=512 count=2000 oflag=dsync` does:
//! 512-byte writes to a file opened O_DSYNC, timed one by one.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use detcd_core::wal::Record;
use detcd_io::{GroupCommitOptions, GroupCommitter, Wal, WalOptions};
use detcd_proto::raftpb::Entry;

const ENTRY_BYTES: usize = 256;
const O_DSYNC: i32 = 0o10000; // Linux

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn run(dir: &Path, writers: u64, seconds: u64) {
    let _ = std::fs::remove_dir_all(dir);
    let (wal, _, _) = Wal::open(dir, b"bench", &WalOptions::default()).expect("open WAL");
    let committer = GroupCommitter::start(wal, GroupCommitOptions::default());
    let next_index = AtomicU64::new(1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let (committer, next_index) = (&committer, &next_index);
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let index = next_index.fetch_add(1, Ordering::Relaxed);
                        let entry = Entry {
                            r#type: 0,
                            term: 1,
                            index,
                            data: vec![0x5a; ENTRY_BYTES],
                        };
                        let t = Instant::now();
                        committer
                            .commit_blocking(vec![Record::Entry(entry)])
                            .expect("commit");
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    let stats = committer.stats();
    drop(committer.stop());
    latencies.sort();
    let wal = &stats.wal;
    println!(
        "writers={writers:>2}  appends/s={:>9.0}  entries/sync={:>6.1} (max {})  syncs={}  \
         ack latency p50={:?} p99={:?} max={:?}  sync mean={:?} max={:?}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        wal.records_per_sync(),
        wal.records_per_sync_max,
        wal.syncs,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        Duration::from_nanos(wal.sync_nanos_total / wal.syncs.max(1)),
        Duration::from_nanos(wal.sync_nanos_max),
    );
}

fn dsync_limit(dir: &Path) {
    let path = dir.join("dsync.bin");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(O_DSYNC)
        .open(&path)
        .expect("open O_DSYNC file");
    let block = [0u8; 512];
    let mut latencies = Vec::with_capacity(2000);
    let started = Instant::now();
    for _ in 0..2000 {
        let t = Instant::now();
        file.write_all(&block).expect("write");
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "limit (512 B O_DSYNC writes, like dd oflag=dsync): writes/s={:>7.0}  p50={:?} p99={:?} max={:?}",
        2000.0 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    let _ = std::fs::remove_file(path);
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/wal-bench".into()),
    );
    let seconds: u64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    std::fs::create_dir_all(&dir).expect("create bench dir");
    dsync_limit(&dir);
    for writers in [1, 64] {
        run(&dir.join(format!("wal-{writers}")), writers, seconds);
    }
    dsync_limit(&dir);
}
