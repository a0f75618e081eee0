//! etcd's write-ahead log, read (never written): what a data directory made by
//! `etcdctl snapshot restore` (3.4) or `etcdutl snapshot restore` (3.5+) holds beside
//! its bbolt backend, so that detcd can import such a directory on first start.
//!
//! etcd's framing (its `wal/encoder.go` / `decoder.go`), per record:
//!
//! ```text
//! length word: i64 LE. Low 56 bits: bytes of the record that follows.
//!              Top bit set: the record is followed by (word >> 56) & 7 bytes of
//!              padding, so that the next word is 8-byte aligned.
//! record:      walpb.Record { type (1), crc (2), data (3) }
//! ```
//!
//! A zero length word (a preallocated, zero-filled tail) or the end of the file
//! ends a segment. The CRC is a running CRC-32C over the `data` of every record but
//! the CRC records; a CRC record (type 4, the first of each segment) carries the
//! running CRC at that point and resets it. Record types: 1 metadata
//! (`etcdserverpb.Metadata`), 2 entry (`raftpb.Entry`), 3 hard state, 4 CRC, 5
//! snapshot mark (`walpb.Snapshot`). An entry whose index repeats an earlier one
//! replaces it and every entry after it (a new leader's log overwrote them).
//!
//! Unlike detcd's own WAL, nothing here repairs a torn tail: a directory that an
//! etcd restore wrote is complete, and anything else is refused.

use detcd_core::crc32c;
use detcd_proto::raftpb::{Entry, HardState};
use detcd_proto::walpb::{Record, Snapshot};
use prost::Message;

const METADATA: i64 = 1;
const ENTRY: i64 = 2;
const STATE: i64 = 3;
const CRC: i64 = 4;
const SNAPSHOT: i64 = 5;

/// The largest record accepted (etcd's segments are 64 MB).
const RECORD_BYTES_MAX: u64 = 64 << 20;

/// etcd's `etcdserverpb.Metadata`: the WAL's identity record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WalMetadata {
    #[prost(uint64, tag = "1")]
    pub node_id: u64,
    #[prost(uint64, tag = "2")]
    pub cluster_id: u64,
}

/// Everything an etcd WAL holds, in log order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EtcdWal {
    pub metadata: WalMetadata,
    /// The last snapshot mark (index and term of the raft snapshot it names).
    pub snapshot: Snapshot,
    /// The last hard state.
    pub hard_state: HardState,
    /// The log after every overwrite.
    pub entries: Vec<Entry>,
}

/// Why an etcd WAL could not be read: the segment (its index in the list given)
/// and byte offset, and what was wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdWalError {
    pub segment: usize,
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for EtcdWalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "etcd WAL segment {} at byte {}: {}",
            self.segment, self.offset, self.reason
        )
    }
}

impl std::error::Error for EtcdWalError {}

/// Reads etcd's WAL from its segments, oldest first (the order of their names).
pub fn read(segments: &[&[u8]]) -> Result<EtcdWal, EtcdWalError> {
    let mut wal = EtcdWal::default();
    let mut metadata_seen = false;
    let mut crc = 0u32;
    for (segment, bytes) in segments.iter().enumerate() {
        let mut at = 0usize;
        while let Some((record, next)) = next_record(bytes, at).map_err(|(offset, reason)| EtcdWalError {
            segment,
            offset,
            reason,
        })? {
            let fail = |reason: String| EtcdWalError {
                segment,
                offset: at as u64,
                reason,
            };
            if record.r#type == CRC {
                if crc != 0 && record.crc != crc {
                    return Err(fail("CRC record does not match the records before it".into()));
                }
                crc = record.crc;
            } else {
                crc = crc32c::extend(crc, &record.data);
                if record.crc != crc {
                    return Err(fail("record CRC mismatch".into()));
                }
            }
            let data = record.data.as_slice();
            let bad = |what: &str, e: prost::DecodeError| fail(format!("{what} record does not parse: {e}"));
            match record.r#type {
                METADATA => {
                    let m = WalMetadata::decode(data).map_err(|e| bad("metadata", e))?;
                    if metadata_seen && m != wal.metadata {
                        return Err(fail("metadata differs between segments".into()));
                    }
                    metadata_seen = true;
                    wal.metadata = m;
                }
                ENTRY => {
                    let e = Entry::decode(data).map_err(|e| bad("entry", e))?;
                    let keep = wal
                        .entries
                        .iter()
                        .position(|kept| kept.index >= e.index)
                        .unwrap_or(wal.entries.len());
                    wal.entries.truncate(keep);
                    if let Some(last) = wal.entries.last() {
                        if e.index != last.index + 1 {
                            return Err(fail(format!(
                                "entry {} does not follow entry {}",
                                e.index, last.index
                            )));
                        }
                    }
                    wal.entries.push(e);
                }
                STATE => wal.hard_state = HardState::decode(data).map_err(|e| bad("hard state", e))?,
                SNAPSHOT => wal.snapshot = Snapshot::decode(data).map_err(|e| bad("snapshot", e))?,
                CRC => {}
                other => return Err(fail(format!("unknown record type {other}"))),
            }
            at = next;
        }
    }
    if !metadata_seen {
        return Err(EtcdWalError {
            segment: 0,
            offset: 0,
            reason: "no metadata record".into(),
        });
    }
    Ok(wal)
}

/// The record at `at` and where the next one starts; `None` at the end of the
/// segment's data.
fn next_record(bytes: &[u8], at: usize) -> Result<Option<(Record, usize)>, (u64, String)> {
    let offset = at as u64;
    let Some(word) = bytes.get(at..at + 8) else {
        return if at == bytes.len() {
            Ok(None)
        } else {
            Err((offset, "length word cut short".into()))
        };
    };
    let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
    if word == 0 {
        return Ok(None);
    }
    let length = word & !(0xff << 56);
    let padding = if word >> 63 == 1 { (word >> 56) & 0x7 } else { 0 };
    if length > RECORD_BYTES_MAX {
        return Err((offset, format!("record length {length} is not plausible")));
    }
    let start = at + 8;
    let end = start + length as usize;
    let next = end + padding as usize;
    let Some(body) = bytes.get(start..end) else {
        return Err((offset, "record runs past the end of the segment".into()));
    };
    if next > bytes.len() {
        return Err((offset, "record padding runs past the end of the segment".into()));
    }
    let record = Record::decode(body).map_err(|e| (offset, format!("record does not parse: {e}")))?;
    Ok(Some((record, next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames records as etcd's encoder does (a test-only writer).
    struct Writer {
        bytes: Vec<u8>,
        crc: u32,
    }

    impl Writer {
        fn new() -> Self {
            let mut w = Writer {
                bytes: Vec::new(),
                crc: 0,
            };
            w.raw(CRC, Vec::new(), Some(0));
            w
        }

        fn raw(&mut self, r#type: i64, data: Vec<u8>, crc: Option<u32>) {
            let crc = crc.unwrap_or_else(|| {
                self.crc = crc32c::extend(self.crc, &data);
                self.crc
            });
            let body = Record { r#type, crc, data }.encode_to_vec();
            let padding = (8 - body.len() % 8) % 8;
            let mut word = body.len() as u64;
            if padding > 0 {
                word |= (0x80 | padding as u64) << 56;
            }
            self.bytes.extend_from_slice(&word.to_le_bytes());
            self.bytes.extend_from_slice(&body);
            self.bytes.extend_from_slice(&vec![0; padding]);
        }

        fn record(&mut self, r#type: i64, message: &impl Message) {
            self.raw(r#type, message.encode_to_vec(), None);
        }

        fn entry(&mut self, term: u64, index: u64) {
            self.record(
                ENTRY,
                &Entry {
                    term,
                    index,
                    ..Entry::default()
                },
            );
        }
    }

    fn restored_log() -> Writer {
        let mut w = Writer::new();
        w.record(
            METADATA,
            &WalMetadata {
                node_id: 7,
                cluster_id: 9,
            },
        );
        w.record(SNAPSHOT, &Snapshot::default());
        w.entry(1, 1);
        w.entry(1, 2);
        w.record(
            STATE,
            &HardState {
                term: 1,
                vote: 7,
                commit: 2,
            },
        );
        w.record(
            SNAPSHOT,
            &Snapshot {
                index: 2,
                term: 1,
                conf_state: None,
            },
        );
        w
    }

    #[test]
    fn reads_what_a_restore_writes_with_a_zero_filled_tail() {
        let mut w = restored_log();
        w.bytes.extend_from_slice(&[0; 4096]);
        let wal = read(&[&w.bytes]).expect("read");
        assert_eq!((wal.metadata.node_id, wal.metadata.cluster_id), (7, 9));
        assert_eq!((wal.snapshot.index, wal.snapshot.term), (2, 1));
        assert_eq!(wal.hard_state.commit, 2);
        let indexes: Vec<u64> = wal.entries.iter().map(|e| e.index).collect();
        assert_eq!(indexes, vec![1, 2]);
    }

    #[test]
    fn a_repeated_index_replaces_the_tail_and_segments_chain_their_crc() {
        let mut first = restored_log();
        first.entry(2, 3);
        first.entry(2, 4);
        first.entry(3, 3);
        let mut second = Writer {
            bytes: Vec::new(),
            crc: first.crc,
        };
        second.raw(CRC, Vec::new(), Some(first.crc));
        second.entry(3, 4);
        let wal = read(&[&first.bytes, &second.bytes]).expect("read");
        let log: Vec<(u64, u64)> = wal.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(log, vec![(1, 1), (2, 1), (3, 3), (4, 3)]);
    }

    #[test]
    fn damage_is_refused_never_a_panic() {
        let good = restored_log().bytes;
        // Every single-byte flip and every truncation either reads or is refused.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            let _ = read(&[&bad]);
            let _ = read(&[&good[..i]]);
        }
        // A flip inside a record's data is a CRC mismatch.
        let mut bad = good.clone();
        let last = bad.len() - 3;
        bad[last] ^= 1;
        let e = read(&[&bad]).expect_err("damaged");
        assert!(e.reason.contains("CRC") || e.reason.contains("parse"), "{e}");
        // No metadata at all.
        let mut w = Writer::new();
        w.entry(1, 1);
        assert_eq!(
            read(&[&w.bytes]).expect_err("no metadata").reason,
            "no metadata record"
        );
    }
}
