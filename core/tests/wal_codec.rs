//! The WAL record codec and scan: round trips, torn tails at every offset,
//! corruption with its offset, clean ends of preallocated segments, and decoding
//! that never panics.

use detcd_core::wal::{
    crc32c, frame_bytes, scan, Defect, EncodeError, Encoder, Record, ScanEnd, HEADER_BYTES,
    LENGTH_WORD_BYTES, SECTOR_BYTES,
};
use detcd_proto::raftpb::{ConfState, Entry, HardState};
use detcd_proto::walpb::Snapshot;
use proptest::prelude::*;

fn entry(index: u64, term: u64, data_len: usize) -> Entry {
    Entry {
        r#type: 0,
        term,
        index,
        data: (0..data_len).map(|i| (i % 251) as u8 + 1).collect(),
    }
}

/// A segment's worth of records, the kinds mixed, payload sizes varied so that
/// padding takes every value.
fn sample_records() -> Vec<Record> {
    let mut records = vec![
        Record::Crc(0),
        Record::Metadata(b"member=1 cluster=9".to_vec()),
        Record::HardState(HardState {
            term: 1,
            vote: 1,
            commit: 0,
        }),
        Record::Snapshot(Snapshot {
            index: 0,
            term: 0,
            conf_state: Some(ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            }),
        }),
    ];
    for index in 1..=9 {
        records.push(Record::Entry(entry(index, 1, index as usize * 7)));
    }
    records.push(Record::HardState(HardState {
        term: 1,
        vote: 1,
        commit: 9,
    }));
    records.push(Record::Metadata(Vec::new()));
    records
}

/// Encodes records from CRC 0; returns the bytes, each frame's offset, and the
/// final CRC.
fn encode(records: &[Record]) -> (Vec<u8>, Vec<usize>, u32) {
    let mut encoder = Encoder::new(0);
    let mut bytes = Vec::new();
    let mut offsets = Vec::new();
    for record in records {
        offsets.push(bytes.len());
        let n = encoder.append(record, &mut bytes).unwrap();
        assert_eq!(n, frame_bytes(record.payload().len()));
        assert_eq!(bytes.len() % 8, 0, "frames stay 8-byte aligned");
    }
    (bytes, offsets, encoder.crc())
}

fn scanned(records: &[detcd_core::wal::ScannedRecord]) -> Vec<Record> {
    records.iter().map(|r| r.record.clone()).collect()
}

#[test]
fn crc32c_standard_test_vector() {
    assert_eq!(crc32c::checksum(b"123456789"), 0xE306_9283);
}

#[test]
fn round_trip() {
    let records = sample_records();
    let (bytes, offsets, end_crc) = encode(&records);
    let result = scan(&bytes, 0);
    assert_eq!(result.end, ScanEnd::Clean);
    assert_eq!(result.valid_len, bytes.len());
    assert_eq!(result.end_crc, end_crc);
    assert_eq!(scanned(&result.records), records);
    let found: Vec<usize> = result.records.iter().map(|r| r.offset).collect();
    assert_eq!(found, offsets);
}

#[test]
fn the_chain_covers_every_type_and_payload_byte() {
    // The running CRC is the CRC-32C of all types and payloads concatenated.
    let records = sample_records();
    let (_, _, end_crc) = encode(&records);
    let mut covered = Vec::new();
    for r in &records {
        covered.extend_from_slice(&(r.record_type() as u32).to_le_bytes());
        covered.extend_from_slice(&r.payload());
    }
    assert_eq!(end_crc, crc32c::checksum(&covered));
}

#[test]
fn a_zeroed_preallocated_tail_is_a_clean_end() {
    let (mut bytes, _, end_crc) = encode(&sample_records());
    let written = bytes.len();
    bytes.resize(64 * 1024, 0);
    let result = scan(&bytes, 0);
    assert_eq!(result.end, ScanEnd::Clean);
    assert_eq!(result.valid_len, written);
    assert_eq!(result.end_crc, end_crc);
    assert_eq!(result.records.len(), sample_records().len());
}

#[test]
fn writing_into_a_mapped_slice() {
    let mut segment = vec![0u8; 128];
    let mut encoder = Encoder::new(0);
    let mut at = encoder.write(&Record::Crc(0), &mut segment).unwrap();
    let big = Record::Entry(entry(1, 1, 200));
    let crc_before = encoder.crc();
    let needed = frame_bytes(big.payload().len());
    assert_eq!(
        encoder.write(&big, &mut segment[at..]),
        Err(EncodeError::NoSpace {
            needed,
            available: 128 - at
        })
    );
    assert_eq!(encoder.crc(), crc_before, "a failed write leaves the chain alone");
    at += encoder
        .write(&Record::Entry(entry(1, 1, 20)), &mut segment[at..])
        .unwrap();
    let result = scan(&segment, 0);
    assert_eq!(result.end, ScanEnd::Clean);
    assert_eq!(result.valid_len, at);
    assert_eq!(result.records.len(), 2);
}

#[test]
fn a_torn_tail_at_every_byte_of_the_last_record_is_truncated() {
    let records = sample_records();
    let (bytes, offsets, _) = encode(&records);
    let last = *offsets.last().unwrap();
    let before = &records[..records.len() - 1];
    let (_, _, crc_before) = encode(before);
    for cut in last..bytes.len() {
        // The file simply ends early.
        let result = scan(&bytes[..cut], 0);
        let expected = if cut == last {
            ScanEnd::Clean
        } else {
            ScanEnd::TornTail { offset: last }
        };
        assert_eq!(result.end, expected, "cut at {cut}");
        assert_eq!(scanned(&result.records), before, "cut at {cut}");
        assert_eq!(result.valid_len, last);
        assert_eq!(result.end_crc, crc_before);
    }
    // In a preallocated segment the unwritten part reads as zeros; length words
    // are written whole, so tears fall on word boundaries.
    for cut in (last..bytes.len()).step_by(8) {
        let mut torn = bytes[..cut].to_vec();
        torn.resize(bytes.len() + 4096, 0);
        let result = scan(&torn, 0);
        if torn[..bytes.len()] == bytes[..] {
            // Only padding was missing, and padding is zeros anyway.
            assert_eq!(result.end, ScanEnd::Clean);
            assert_eq!(scanned(&result.records), records);
            continue;
        }
        let expected = if cut == last {
            ScanEnd::Clean
        } else {
            ScanEnd::TornTail { offset: last }
        };
        assert_eq!(result.end, expected, "zeroed from {cut}");
        assert_eq!(scanned(&result.records), before, "zeroed from {cut}");
    }
}

#[test]
fn a_flipped_byte_mid_log_is_corruption_at_that_record() {
    let records = sample_records();
    let (bytes, offsets, _) = encode(&records);
    let victim = 6;
    let (start, end) = (offsets[victim], offsets[victim + 1]);
    let payload_end = start + LENGTH_WORD_BYTES + HEADER_BYTES + records[victim].payload().len();
    for at in start..end {
        for bit in [0x01u8, 0x80] {
            let mut damaged = bytes.clone();
            damaged[at] ^= bit;
            let result = scan(&damaged, 0);
            assert_eq!(scanned(&result.records), records[..victim], "flip at {at}");
            assert_eq!(result.valid_len, start);
            let in_length_word = at < start + LENGTH_WORD_BYTES;
            match result.end {
                ScanEnd::Corrupt { offset, reason } => {
                    assert_eq!(offset, start, "flip at {at}");
                    if !in_length_word && at < payload_end {
                        assert_eq!(reason, Defect::CrcMismatch, "flip at {at}");
                    }
                    if at >= payload_end {
                        assert_eq!(reason, Defect::NonzeroPadding, "flip at {at}");
                    }
                }
                // A length that now points past the end of the bytes is
                // indistinguishable from a record cut short (documented limit).
                ScanEnd::TornTail { offset } => {
                    assert!(in_length_word, "flip at {at} read as torn");
                    assert_eq!(offset, start);
                }
                ScanEnd::Clean => panic!("flip at {at} went unnoticed"),
            }
        }
    }
}

#[test]
fn a_checksummed_record_is_never_torn() {
    // A record with a valid CRC but an unknown type, at the very end: it was written
    // whole, so it is corruption (or a newer format), not a torn write.
    let mut bytes = Vec::new();
    let mut encoder = Encoder::new(0);
    encoder.append(&Record::Crc(0), &mut bytes).unwrap();
    let payload = [1u8, 2, 3, 4, 5, 6, 7, 8];
    let kind = 77u32.to_le_bytes();
    let crc = crc32c::extend(crc32c::extend(encoder.crc(), &kind), &payload);
    let at = bytes.len();
    bytes.extend_from_slice(&16u64.to_le_bytes());
    bytes.extend_from_slice(&kind);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes.resize(bytes.len() + 512, 0);
    let result = scan(&bytes, 0);
    assert_eq!(
        result.end,
        ScanEnd::Corrupt {
            offset: at,
            reason: Defect::UnknownType(77)
        }
    );
}

#[test]
fn a_crc_record_must_carry_the_running_crc() {
    let (bytes, _, end_crc) = encode(&sample_records());
    let mut encoder = Encoder::new(end_crc);
    let mut next = Vec::new();
    encoder.begin_segment(&mut next);
    encoder
        .append(&Record::Metadata(b"m".to_vec()), &mut next)
        .unwrap();
    // Chained from the right CRC, the next segment scans clean.
    assert_eq!(scan(&next, end_crc).end, ScanEnd::Clean);
    // Chained from any other CRC, its first record fails.
    assert!(matches!(
        scan(&next, end_crc ^ 1).end,
        ScanEnd::Corrupt { offset: 0, .. }
    ));
    // A CRC record whose own checksum is right but whose value is not the running
    // CRC breaks the chain between segments: corruption.
    let (start, carried) = (6u32, 7u32.to_le_bytes());
    let kind = 4u32.to_le_bytes();
    let crc = crc32c::extend(crc32c::extend(start, &kind), &carried);
    let mut lying = Vec::new();
    lying.extend_from_slice(&((0x80u64 | 4) << 56 | 12).to_le_bytes());
    lying.extend_from_slice(&kind);
    lying.extend_from_slice(&crc.to_le_bytes());
    lying.extend_from_slice(&carried);
    lying.extend_from_slice(&[0; 4]);
    assert_eq!(
        scan(&lying, start).end,
        ScanEnd::Corrupt {
            offset: 0,
            reason: Defect::CrcRecordMismatch
        }
    );
    assert_eq!(scan(&bytes, 0).end, ScanEnd::Clean);
}

#[test]
fn a_zero_length_word_followed_by_data() {
    let records = sample_records();
    let (bytes, offsets, _) = encode(&records);
    // Zero one record's length word only: the rest of its sector is not zero, so
    // this is damage, not a sector that never reached the disk.
    let mut damaged = bytes.clone();
    let victim = offsets[8];
    damaged[victim..victim + 8].fill(0);
    assert_eq!(
        scan(&damaged, 0).end,
        ScanEnd::Corrupt {
            offset: victim,
            reason: Defect::DataAfterEnd
        }
    );
    // A whole unwritten sector followed by a later one that did reach the disk
    // (writeback out of order): a torn tail at the first unwritten frame.
    let mut padded = bytes.clone();
    padded.resize(SECTOR_BYTES * 2, 0);
    let mut later = vec![0u8; SECTOR_BYTES];
    later[..16].fill(0xAB);
    padded.extend_from_slice(&later);
    let result = scan(&padded, 0);
    assert_eq!(result.end, ScanEnd::TornTail { offset: bytes.len() });
    assert_eq!(result.records.len(), records.len());
}

#[test]
fn a_record_with_an_unwritten_sector_is_torn_even_with_data_after() {
    // etcd's rule: a whole zero sector inside a failing record means the write
    // never finished, whatever follows.
    let mut encoder = Encoder::new(0);
    let mut bytes = Vec::new();
    encoder.append(&Record::Crc(0), &mut bytes).unwrap();
    let big_at = bytes.len();
    encoder
        .append(&Record::Entry(entry(1, 1, 3 * SECTOR_BYTES)), &mut bytes)
        .unwrap();
    encoder
        .append(&Record::Entry(entry(2, 1, 40)), &mut bytes)
        .unwrap();
    let mut torn = bytes.clone();
    torn[SECTOR_BYTES..2 * SECTOR_BYTES].fill(0);
    assert_eq!(scan(&torn, 0).end, ScanEnd::TornTail { offset: big_at });
    // The same record with one flipped byte instead is corruption.
    let mut flipped = bytes.clone();
    flipped[SECTOR_BYTES + 3] ^= 0x10;
    assert_eq!(
        scan(&flipped, 0).end,
        ScanEnd::Corrupt {
            offset: big_at,
            reason: Defect::CrcMismatch
        }
    );
}

#[test]
fn bad_length_words_are_corruption() {
    let (bytes, offsets, _) = encode(&sample_records());
    let victim = offsets[5];
    let word = u64::from_le_bytes(bytes[victim..victim + 8].try_into().unwrap());
    let cases = [
        (word ^ (1 << 60), Defect::BadLengthWord),
        (word | (1 << 40), Defect::RecordTooLarge),
        (0x0000_0000_0000_0004, Defect::BadLengthWord),
    ];
    for (bad, defect) in cases {
        let mut damaged = bytes.clone();
        damaged[victim..victim + 8].copy_from_slice(&bad.to_le_bytes());
        assert_eq!(
            scan(&damaged, 0).end,
            ScanEnd::Corrupt {
                offset: victim,
                reason: defect
            }
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scanning_arbitrary_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        crc in any::<u32>(),
    ) {
        let result = scan(&bytes, crc);
        prop_assert!(result.valid_len <= bytes.len());
    }

    #[test]
    fn scanning_a_mutated_log_never_panics_and_keeps_a_valid_prefix(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let records = sample_records();
        let (mut bytes, offsets, _) = encode(&records);
        for (at, value) in edits {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let result = scan(&bytes, 0);
        // Whatever survives is a prefix of what was written, at the same offsets.
        prop_assert!(result.records.len() <= records.len());
        for (i, r) in result.records.iter().enumerate() {
            prop_assert_eq!(r.offset, offsets[i]);
        }
    }
}
