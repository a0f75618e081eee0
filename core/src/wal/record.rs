//! What a WAL record carries: its type and payload, and the typed reasons a byte
//! range is not a valid record.

use std::fmt;

use detcd_proto::raftpb::{Entry, HardState};
use detcd_proto::walpb::Snapshot;
use prost::Message;

/// Record types, numbered as etcd numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum RecordType {
    Metadata = 1,
    Entry = 2,
    HardState = 3,
    Crc = 4,
    Snapshot = 5,
}

impl RecordType {
    pub fn from_u32(raw: u32) -> Option<RecordType> {
        Some(match raw {
            1 => RecordType::Metadata,
            2 => RecordType::Entry,
            3 => RecordType::HardState,
            4 => RecordType::Crc,
            5 => RecordType::Snapshot,
            _ => return None,
        })
    }
}

/// One decoded WAL record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Opaque bytes the node writes at the start of each segment (member and
    /// cluster IDs); every segment of one WAL carries the same metadata.
    Metadata(Vec<u8>),
    /// A raft log entry.
    Entry(Entry),
    /// Raft's term, vote and commit.
    HardState(HardState),
    /// The running CRC at the start of a segment; chains segments together.
    Crc(u32),
    /// A snapshot was taken at this index and term: entries up to it may be gone.
    Snapshot(Snapshot),
}

impl Record {
    pub fn record_type(&self) -> RecordType {
        match self {
            Record::Metadata(_) => RecordType::Metadata,
            Record::Entry(_) => RecordType::Entry,
            Record::HardState(_) => RecordType::HardState,
            Record::Crc(_) => RecordType::Crc,
            Record::Snapshot(_) => RecordType::Snapshot,
        }
    }

    /// The payload bytes (protobuf for raft and snapshot records).
    pub fn payload(&self) -> Vec<u8> {
        match self {
            Record::Metadata(bytes) => bytes.clone(),
            Record::Entry(entry) => entry.encode_to_vec(),
            Record::HardState(state) => state.encode_to_vec(),
            Record::Crc(crc) => crc.to_le_bytes().to_vec(),
            Record::Snapshot(snapshot) => snapshot.encode_to_vec(),
        }
    }

    /// Parses a payload of a known type.
    pub fn decode(record_type: RecordType, payload: &[u8]) -> Result<Record, Defect> {
        Ok(match record_type {
            RecordType::Metadata => Record::Metadata(payload.to_vec()),
            RecordType::Entry => {
                Record::Entry(Entry::decode(payload).map_err(|_| Defect::Undecodable(record_type))?)
            }
            RecordType::HardState => {
                Record::HardState(HardState::decode(payload).map_err(|_| Defect::Undecodable(record_type))?)
            }
            RecordType::Crc => {
                let bytes: [u8; 4] = payload.try_into().map_err(|_| Defect::Undecodable(record_type))?;
                Record::Crc(u32::from_le_bytes(bytes))
            }
            RecordType::Snapshot => {
                Record::Snapshot(Snapshot::decode(payload).map_err(|_| Defect::Undecodable(record_type))?)
            }
        })
    }
}

/// Why bytes are not a valid record, or a valid log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// The length word's padding byte does not match its length, or the length is
    /// shorter than a record header. Length words are written whole, so this is
    /// never a torn write.
    BadLengthWord,
    /// The length word claims more than [`RECORD_BODY_BYTES_MAX`](super::RECORD_BODY_BYTES_MAX).
    RecordTooLarge,
    /// The record runs past the end of the bytes.
    RunsPastEnd,
    /// The stored CRC is not the chained CRC of the record.
    CrcMismatch,
    /// A zero length word (the end of written data) followed by more data.
    DataAfterEnd,
    /// Padding after a checksummed record is not zero.
    NonzeroPadding,
    /// A checksummed record of a type this code does not know.
    UnknownType(u32),
    /// A checksummed record whose payload does not parse.
    Undecodable(RecordType),
    /// A CRC record whose value is not the running CRC before it.
    CrcRecordMismatch,
    /// A segment with records does not start with a CRC record.
    MissingCrcRecord,
    /// A torn record in a segment that is not the last one.
    TornBeforeLastSegment,
    /// Segments carry different metadata.
    MetadataConflict,
    /// An entry's index skips past the end of the log recovered so far.
    EntryIndexGap,
    /// The entries after the last snapshot marker do not start right after it.
    SnapshotEntryGap,
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::BadLengthWord => f.write_str("invalid length word"),
            Defect::RecordTooLarge => f.write_str("record length above the maximum"),
            Defect::RunsPastEnd => f.write_str("record runs past the end of the segment"),
            Defect::CrcMismatch => f.write_str("CRC mismatch"),
            Defect::DataAfterEnd => f.write_str("data after a zero length word"),
            Defect::NonzeroPadding => f.write_str("non-zero record padding"),
            Defect::UnknownType(t) => write!(f, "unknown record type {t}"),
            Defect::Undecodable(t) => write!(f, "undecodable {t:?} record"),
            Defect::CrcRecordMismatch => f.write_str("CRC record does not continue the chain"),
            Defect::MissingCrcRecord => f.write_str("segment does not start with a CRC record"),
            Defect::TornBeforeLastSegment => f.write_str("torn record before the last segment"),
            Defect::MetadataConflict => f.write_str("segments carry different metadata"),
            Defect::EntryIndexGap => f.write_str("gap in entry indexes"),
            Defect::SnapshotEntryGap => f.write_str("entries do not follow the snapshot marker"),
        }
    }
}
