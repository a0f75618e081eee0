//! The body of the `wal_decode` fuzz target, here so that a plain test can run
//! the checked-in corpus through exactly the same code without a nightly
//! toolchain (`tests/fuzz_corpus.rs`).
//!
//! It feeds arbitrary bytes to `core::wal::scan` and `core::wal::recover` and
//! asserts what must hold whatever the bytes: no panic, offsets inside the input
//! and 8-byte aligned, the scan's end at its valid length, every accepted record
//! re-encodable into frames that scan back to the same records, and recovery
//! agreeing with the scan on a single segment.

use detcd_core::wal::{leading_crc, recover, scan, Encoder, Record, ScanEnd, FRAME_ALIGN_BYTES};

/// What one input decoded to (for tests to check beyond "did not panic").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalDecodeSummary {
    pub records: usize,
    pub valid_len: usize,
    /// "clean", "torn" or "corrupt".
    pub end: &'static str,
    /// Whether `recover` accepted the input split into segments.
    pub recovered: bool,
}

/// Decodes `data` as one segment and as several, asserting the invariants above.
/// Panics only when an invariant fails, which is a bug in `core::wal`.
pub fn wal_decode(data: &[u8]) -> WalDecodeSummary {
    let start_crc = leading_crc(data).unwrap_or(0);
    let result = scan(data, start_crc);
    assert!(result.valid_len <= data.len(), "valid_len past the input");
    assert_eq!(result.valid_len % FRAME_ALIGN_BYTES, 0, "valid_len not aligned");
    let mut previous = None;
    for scanned in &result.records {
        assert!(scanned.offset < result.valid_len, "record offset past valid_len");
        assert_eq!(scanned.offset % FRAME_ALIGN_BYTES, 0, "record offset not aligned");
        assert!(
            previous.is_none_or(|p| p < scanned.offset),
            "record offsets not increasing"
        );
        previous = Some(scanned.offset);
    }
    let end = match result.end {
        ScanEnd::Clean => "clean",
        ScanEnd::TornTail { offset } => {
            assert_eq!(offset, result.valid_len, "torn tail not at the end of valid data");
            "torn"
        }
        ScanEnd::Corrupt { offset, .. } => {
            assert_eq!(
                offset, result.valid_len,
                "corruption not at the end of valid data"
            );
            "corrupt"
        }
    };
    // Pair check: what scan accepted encodes to frames that scan back the same
    // (bytes may differ: a payload's protobuf need not be canonical).
    let records: Vec<Record> = result.records.iter().map(|s| s.record.clone()).collect();
    let mut encoder = Encoder::new(start_crc);
    let mut bytes = Vec::new();
    for record in &records {
        encoder
            .append(record, &mut bytes)
            .expect("an accepted record re-encodes");
    }
    let rescanned = scan(&bytes, start_crc);
    assert_eq!(
        rescanned.end,
        ScanEnd::Clean,
        "re-encoded records do not scan clean"
    );
    let again: Vec<Record> = rescanned.records.into_iter().map(|s| s.record).collect();
    assert_eq!(again, records, "re-encoded records scan back differently");

    // As one segment, recovery sees what scan saw.
    if let Ok(log) = recover(&[data]) {
        assert_eq!(
            log.valid_lens,
            vec![result.valid_len],
            "recover and scan disagree on the length"
        );
    }
    // Split into segments at a point the first byte chooses (aligned), to reach
    // the multi-segment rules.
    let split = data
        .first()
        .map_or(0, |&b| (data.len() * b as usize / 256) & !(FRAME_ALIGN_BYTES - 1));
    let (head, tail) = data.split_at(split);
    let recovered = match recover(&[head, tail]) {
        Ok(log) => {
            assert_eq!(log.valid_lens.len(), 2);
            assert!(log.valid_lens[0] <= head.len() && log.valid_lens[1] <= tail.len());
            true
        }
        Err(error) => {
            assert!(error.segment < 2, "error names a segment that does not exist");
            false
        }
    };
    WalDecodeSummary {
        records: records.len(),
        valid_len: result.valid_len,
        end,
        recovered,
    }
}
