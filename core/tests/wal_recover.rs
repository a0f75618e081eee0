//! Recovery over segments: the CRC chain across segments, torn tails only in the
//! last segment, raft's log rewrites, snapshot markers, and clear errors.

use detcd_core::wal::{recover, Defect, Encoder, Record, WalError};
use detcd_proto::raftpb::{Entry, HardState};
use detcd_proto::walpb::Snapshot;
use proptest::prelude::*;

const META: &[u8] = b"member=1";

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        r#type: 0,
        term,
        index,
        data: format!("put k{index} t{term}").into_bytes(),
    }
}

fn state(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote: 1,
        commit,
    }
}

/// Builds a WAL the way a node writes one: every segment starts with the CRC
/// record and the metadata, then the given records.
struct Writer {
    encoder: Encoder,
    segments: Vec<Vec<u8>>,
}

impl Writer {
    fn new() -> Self {
        let mut w = Writer {
            encoder: Encoder::new(0),
            segments: Vec::new(),
        };
        w.cut();
        w
    }

    fn cut(&mut self) {
        let mut segment = Vec::new();
        self.encoder.begin_segment(&mut segment);
        self.encoder
            .append(&Record::Metadata(META.to_vec()), &mut segment)
            .unwrap();
        self.segments.push(segment);
    }

    fn put(&mut self, record: Record) -> &mut Self {
        let segment = self.segments.last_mut().unwrap();
        self.encoder.append(&record, segment).unwrap();
        self
    }

    fn entries(&mut self, term: u64, indexes: std::ops::RangeInclusive<u64>) -> &mut Self {
        for i in indexes {
            self.put(Record::Entry(entry(i, term)));
        }
        self
    }

    fn slices(&self) -> Vec<&[u8]> {
        self.segments.iter().map(|s| s.as_slice()).collect()
    }
}

fn indexes_and_terms(entries: &[Entry]) -> Vec<(u64, u64)> {
    entries.iter().map(|e| (e.index, e.term)).collect()
}

#[test]
fn recovers_entries_state_and_metadata_across_segments() {
    let mut w = Writer::new();
    w.entries(1, 1..=3).put(Record::HardState(state(1, 3)));
    w.cut();
    w.entries(1, 4..=6).put(Record::HardState(state(1, 6)));
    let log = recover(&w.slices()).unwrap();
    assert_eq!(log.metadata.as_deref(), Some(META));
    assert_eq!(log.hard_state, Some(state(1, 6)));
    assert_eq!(
        indexes_and_terms(&log.entries),
        (1..=6).map(|i| (i, 1)).collect::<Vec<_>>()
    );
    assert_eq!(log.torn_tail, None);
    assert_eq!(log.valid_lens, vec![w.segments[0].len(), w.segments[1].len()]);
    assert_eq!(log.end_crc, w.encoder.crc());
}

#[test]
fn later_entries_overwrite_earlier_ones_and_truncate_the_suffix() {
    let mut w = Writer::new();
    w.entries(1, 1..=5);
    // A new leader rewrote the log from index 3 in term 2.
    w.entries(2, 3..=4);
    let log = recover(&w.slices()).unwrap();
    assert_eq!(
        indexes_and_terms(&log.entries),
        vec![(1, 1), (2, 1), (3, 2), (4, 2)]
    );
}

#[test]
fn entries_up_to_the_snapshot_marker_are_dropped() {
    let mut w = Writer::new();
    w.entries(1, 1..=6);
    w.put(Record::Snapshot(Snapshot {
        index: 4,
        term: 1,
        conf_state: None,
    }));
    w.entries(1, 7..=8);
    let log = recover(&w.slices()).unwrap();
    assert_eq!(log.snapshot.as_ref().map(|s| s.index), Some(4));
    assert_eq!(
        indexes_and_terms(&log.entries),
        vec![(5, 1), (6, 1), (7, 1), (8, 1)]
    );

    // A snapshot installed from the leader, past the local log.
    let mut w = Writer::new();
    w.entries(1, 1..=3);
    w.put(Record::Snapshot(Snapshot {
        index: 10,
        term: 2,
        conf_state: None,
    }));
    w.entries(2, 11..=12);
    let log = recover(&w.slices()).unwrap();
    assert_eq!(indexes_and_terms(&log.entries), vec![(11, 2), (12, 2)]);
}

#[test]
fn a_torn_tail_in_the_last_segment_is_dropped() {
    let mut w = Writer::new();
    w.entries(1, 1..=3);
    w.cut();
    w.entries(1, 4..=5);
    let full = w.segments[1].len();
    // Cutting one byte off shows where the last frame starts.
    let last_frame = recover(&[&w.segments[0], &w.segments[1][..full - 1]])
        .unwrap()
        .valid_lens[1];
    // Zeros from every word boundary of the last frame on (length words are
    // written whole, so tears fall on word boundaries).
    for cut in (last_frame + 8..full).step_by(8) {
        let mut torn = w.segments[1][..cut].to_vec();
        torn.resize(full + 512, 0);
        let log = recover(&[&w.segments[0], &torn]).unwrap();
        if torn[..full] == w.segments[1][..] {
            assert_eq!(log.entries.len(), 5);
            continue;
        }
        assert_eq!(log.torn_tail, Some(last_frame), "cut at {cut}");
        assert_eq!(
            indexes_and_terms(&log.entries),
            (1..=4).map(|i| (i, 1)).collect::<Vec<_>>()
        );
        assert_eq!(log.valid_lens[1], last_frame);
    }
}

#[test]
fn a_torn_record_before_the_last_segment_is_an_error() {
    let mut w = Writer::new();
    w.entries(1, 1..=3);
    let first_len = w.segments[0].len();
    w.cut();
    w.entries(1, 4..=5);
    let torn_first = &w.segments[0][..first_len - 3];
    let err = recover(&[torn_first, &w.segments[1]]).unwrap_err();
    assert_eq!(err.segment, 0);
    assert_eq!(err.reason, Defect::TornBeforeLastSegment);
}

#[test]
fn a_flipped_byte_is_an_error_naming_segment_and_offset() {
    let mut w = Writer::new();
    w.entries(1, 1..=3);
    w.cut();
    w.entries(1, 4..=6);
    let clean = recover(&[&w.segments[0], &w.segments[1][..48]]).unwrap();
    let victim = clean.valid_lens[1];
    let mut damaged = w.segments[1].clone();
    damaged[victim + 20] ^= 0x40;
    let err = recover(&[&w.segments[0], &damaged]).unwrap_err();
    assert_eq!(
        err,
        WalError {
            segment: 1,
            offset: victim,
            reason: Defect::CrcMismatch
        }
    );
    assert!(err.to_string().contains("segment 1"));
}

#[test]
fn segments_must_chain() {
    // Dropping a middle segment breaks the chain at the next one's CRC record.
    let mut w3 = Writer::new();
    w3.entries(1, 1..=2);
    w3.cut();
    w3.entries(1, 3..=4);
    w3.cut();
    w3.entries(1, 5..=6);
    assert!(recover(&w3.slices()).is_ok());
    let err = recover(&[&w3.segments[0], &w3.segments[2]]).unwrap_err();
    assert_eq!((err.segment, err.offset), (1, 0));
    // The first retained segment is trusted for its start CRC: releasing old
    // segments is normal after a snapshot.
    let log = recover(&[&w3.segments[1], &w3.segments[2]]).unwrap();
    assert_eq!(
        indexes_and_terms(&log.entries),
        (3..=6).map(|i| (i, 1)).collect::<Vec<_>>()
    );
}

#[test]
fn a_segment_must_start_with_a_crc_record() {
    let mut encoder = Encoder::new(0);
    let mut segment = Vec::new();
    encoder.append(&Record::Entry(entry(1, 1)), &mut segment).unwrap();
    let err = recover(&[&segment]).unwrap_err();
    assert_eq!(
        err,
        WalError {
            segment: 0,
            offset: 0,
            reason: Defect::MissingCrcRecord
        }
    );
    // An empty segment is fine only at the end (preallocated, never written).
    let w = Writer::new();
    let empty = vec![0u8; 4096];
    assert!(recover(&[&w.segments[0], &empty]).is_ok());
    let err = recover(&[&w.segments[0], &empty, &w.segments[0]]).unwrap_err();
    assert_eq!(
        err,
        WalError {
            segment: 1,
            offset: 0,
            reason: Defect::MissingCrcRecord
        }
    );
}

#[test]
fn metadata_must_agree() {
    let mut w = Writer::new();
    w.put(Record::Metadata(b"member=2".to_vec()));
    let err = recover(&w.slices()).unwrap_err();
    assert_eq!(err.reason, Defect::MetadataConflict);
}

#[test]
fn entry_gaps_are_errors() {
    let mut w = Writer::new();
    w.entries(1, 1..=2).entries(1, 4..=4);
    assert_eq!(recover(&w.slices()).unwrap_err().reason, Defect::EntryIndexGap);

    let mut w = Writer::new();
    w.put(Record::Snapshot(Snapshot {
        index: 5,
        term: 1,
        conf_state: None,
    }));
    w.entries(1, 7..=7);
    assert_eq!(recover(&w.slices()).unwrap_err().reason, Defect::SnapshotEntryGap);
}

#[test]
fn no_segments_is_an_empty_log() {
    let log = recover(&[]).unwrap();
    assert!(log.entries.is_empty() && log.hard_state.is_none() && log.metadata.is_none());
}

proptest! {
    #[test]
    fn recovering_arbitrary_segments_never_panics(
        segments in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..4),
    ) {
        let slices: Vec<&[u8]> = segments.iter().map(|s| s.as_slice()).collect();
        let _ = recover(&slices);
    }
}
