//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use detcd_proto::raftpb::Entry;

/// A fresh, empty directory under cargo's per-target temp dir.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// The payload entry `index` carries in every test: its length varies (0 to 700
/// bytes) so frames straddle sectors and segment ends, its bytes depend on the
/// index so a misplaced or garbled entry cannot pass for a good one.
pub fn payload(index: u64) -> Vec<u8> {
    let len = (index.wrapping_mul(2_654_435_761) % 701) as usize;
    (0..len)
        .map(|i| (index as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        r#type: 0,
        term,
        index,
        data: payload(index),
    }
}

pub fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to).map(|i| entry(i, term)).collect()
}

/// Asserts `got` is entries `from..=to` exactly as [`entry`] makes them.
pub fn assert_entries(got: &[Entry], from: u64, to: u64) {
    let indexes: Vec<u64> = got.iter().map(|e| e.index).collect();
    assert_eq!(indexes, (from..=to).collect::<Vec<_>>(), "entry indexes");
    for e in got {
        assert_eq!(e.data, payload(e.index), "payload of entry {}", e.index);
    }
}
