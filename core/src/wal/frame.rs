//! Record framing: the [`Encoder`] that lays records out in bytes, and [`scan`],
//! which reads them back and says where and why valid data ends.
//!
//! # Frame layout
//!
//! ```text
//! offset 0   length word: u64 LE. Low 56 bits: body length (8 + payload bytes).
//!            High byte: 0 when the body is a multiple of 8, else 0x80 | padding.
//! offset 8   record type: u32 LE            \
//! offset 12  crc: u32 LE                     | body
//! offset 16  payload                        /
//!            zero padding to the next multiple of 8
//! ```
//!
//! Every frame starts 8-byte aligned, so its length word never straddles a sector
//! and is written whole: it reads as zero (nothing written there yet) or as what the
//! encoder wrote. The body length counts the 8-byte header, so a written length word
//! is never zero even for an empty payload, and zero can mean "end of data" in a
//! preallocated (zero-filled) segment.
//!
//! `crc` is CRC-32C over the type (4 bytes LE) and the payload, seeded with the
//! previous record's `crc` (the segment's start CRC for the first one). A segment
//! starts with a CRC record whose payload is the running CRC at that point.
//!
//! # What a failed record means
//!
//! Scanning stops at the first record that is not valid and classifies the end:
//! - a zero length word followed only by zeros: [`ScanEnd::Clean`];
//! - a record that runs past the end of the bytes: a torn tail;
//! - a record whose CRC fails and after which there are only zeros, or which
//!   contains a whole 512-byte sector of zeros past its length word's sector (a
//!   sector that never reached the disk, etcd's `isTornEntry` rule): a torn tail;
//! - a zero length word whose sector is zero from there on, followed by later data
//!   (a later sector reached the disk before this one did): a torn tail;
//! - anything else, in particular a failed CRC followed by more data, a nonzero
//!   length word that no encoder writes, or a checksummed record that does not
//!   parse: corruption.
//!
//! A torn tail is data that was never acknowledged as durable and may be truncated;
//! whether it may be depends on where it is (only in the last segment), which
//! [`recover`](super::recover) decides. Known limit: a length word corrupted into
//! a plausible length that points past the end of the bytes reads as a torn tail;
//! the record size bound catches most such flips.

use super::crc32c;
use super::record::{Defect, Record, RecordType};
use crate::mutation::{is_active, Mutation};

/// Bytes of the length word.
pub const LENGTH_WORD_BYTES: usize = 8;
/// Bytes of type and CRC before the payload.
pub const HEADER_BYTES: usize = 8;
/// Frames start and end on multiples of this.
pub const FRAME_ALIGN_BYTES: usize = 8;
/// The write unit torn-write detection reasons about (etcd's `minSectorSize`).
pub const SECTOR_BYTES: usize = 512;
/// The largest body (header + payload) a frame may hold: 64 MiB, above etcd's
/// segment size, so any record etcd would write fits, and a corrupted length word
/// that claims more is recognised as corruption rather than a torn tail.
pub const RECORD_BODY_BYTES_MAX: usize = 1 << 26;

const LENGTH_MASK: u64 = (1 << 56) - 1;

/// Total bytes of the frame of a record with `payload_bytes` of payload.
pub fn frame_bytes(payload_bytes: usize) -> usize {
    let body = HEADER_BYTES + payload_bytes;
    LENGTH_WORD_BYTES + body + padding_bytes(body)
}

fn padding_bytes(body_bytes: usize) -> usize {
    (FRAME_ALIGN_BYTES - body_bytes % FRAME_ALIGN_BYTES) % FRAME_ALIGN_BYTES
}

fn length_word(body_bytes: usize) -> u64 {
    let pad = padding_bytes(body_bytes) as u64;
    let marker = if pad == 0 { 0 } else { 0x80 | pad };
    (marker << 56) | body_bytes as u64
}

/// Why a record could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The record's body exceeds [`RECORD_BODY_BYTES_MAX`].
    TooLarge { body_bytes: usize },
    /// The destination slice has no room for the frame.
    NoSpace { needed: usize, available: usize },
}

/// Lays records out as frames and carries the running CRC from one to the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoder {
    crc: u32,
}

impl Encoder {
    /// An encoder whose first record chains from `prev_crc`: 0 for a new WAL, or
    /// [`ScanResult::end_crc`] when appending after recovered records.
    pub fn new(prev_crc: u32) -> Self {
        Encoder { crc: prev_crc }
    }

    /// The CRC of the last record encoded (what the next one chains from).
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// Appends the CRC record a new segment starts with.
    pub fn begin_segment(&mut self, out: &mut Vec<u8>) -> usize {
        self.append(&Record::Crc(self.crc), out)
            .expect("a CRC record is small")
    }

    /// Appends `record`'s frame to `out`; returns the bytes appended.
    pub fn append(&mut self, record: &Record, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        let (frame, crc) = self.frame(record)?;
        out.extend_from_slice(&frame);
        self.crc = crc;
        Ok(frame.len())
    }

    /// Writes `record`'s frame at the start of `buf` (a mapped segment past its last
    /// record); returns the bytes written. On error nothing is written and the
    /// running CRC is unchanged.
    pub fn write(&mut self, record: &Record, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let (frame, crc) = self.frame(record)?;
        if frame.len() > buf.len() {
            return Err(EncodeError::NoSpace {
                needed: frame.len(),
                available: buf.len(),
            });
        }
        buf[..frame.len()].copy_from_slice(&frame);
        self.crc = crc;
        Ok(frame.len())
    }

    fn frame(&self, record: &Record) -> Result<(Vec<u8>, u32), EncodeError> {
        if let Record::Crc(value) = record {
            assert_eq!(*value, self.crc, "a CRC record must carry the running CRC");
        }
        let payload = record.payload();
        let body_bytes = HEADER_BYTES + payload.len();
        if body_bytes > RECORD_BODY_BYTES_MAX {
            return Err(EncodeError::TooLarge { body_bytes });
        }
        let type_bytes = (record.record_type() as u32).to_le_bytes();
        let crc = crc32c::extend(crc32c::extend(self.crc, &type_bytes), &payload);
        let mut frame = Vec::with_capacity(frame_bytes(payload.len()));
        frame.extend_from_slice(&length_word(body_bytes).to_le_bytes());
        frame.extend_from_slice(&type_bytes);
        frame.extend_from_slice(&crc.to_le_bytes());
        frame.extend_from_slice(&payload);
        frame.resize(frame_bytes(payload.len()), 0);
        // Pair assertion: what is written reads back as what was meant.
        debug_assert!(
            matches!(read_frame(&frame, 0, self.crc), Step::Record { record: ref r, crc: c, .. }
                if r == record && c == crc),
            "encoded frame does not decode to its record"
        );
        Ok((frame, crc))
    }
}

/// A record found by [`scan`], with the offset of its frame.
#[derive(Clone, Debug, PartialEq)]
pub struct ScannedRecord {
    pub offset: usize,
    pub record: Record,
}

/// How the valid data of a byte range ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// At the end of the bytes or at a zero length word with only zeros after it.
    Clean,
    /// A record at `offset` was never completely written; everything from `offset`
    /// on may be discarded.
    TornTail { offset: usize },
    /// The bytes at `offset` are damaged; nothing after them can be trusted.
    Corrupt { offset: usize, reason: Defect },
}

/// The valid records of a byte range and how it ends.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanResult {
    pub records: Vec<ScannedRecord>,
    /// Bytes covered by valid records; appending resumes here.
    pub valid_len: usize,
    /// The CRC of the last valid record (the start CRC when there is none).
    pub end_crc: u32,
    pub end: ScanEnd,
}

/// Reads the records of `bytes`, the first chaining from `start_crc`, up to the
/// first invalid one. Never panics, whatever the bytes.
pub fn scan(bytes: &[u8], start_crc: u32) -> ScanResult {
    let mut records = Vec::new();
    let mut offset = 0;
    let mut crc = start_crc;
    let end = loop {
        match read_frame(bytes, offset, crc) {
            Step::Record {
                record,
                next,
                crc: record_crc,
            } => {
                records.push(ScannedRecord { offset, record });
                offset = next;
                crc = record_crc;
            }
            Step::End => break ScanEnd::Clean,
            Step::Torn => break ScanEnd::TornTail { offset },
            Step::Corrupt(reason) => break ScanEnd::Corrupt { offset, reason },
        }
    };
    ScanResult {
        records,
        valid_len: offset,
        end_crc: crc,
        end,
    }
}

/// The running CRC a segment carries in its leading CRC record, if it starts with
/// one; recovery seeds the first retained segment with it.
pub fn leading_crc(bytes: &[u8]) -> Option<u32> {
    let word = u64::from_le_bytes(bytes.get(..LENGTH_WORD_BYTES)?.try_into().ok()?);
    let body = usize::try_from(word & LENGTH_MASK).ok()?;
    let payload = bytes.get(LENGTH_WORD_BYTES + HEADER_BYTES..LENGTH_WORD_BYTES + body)?;
    let raw_type = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    if RecordType::from_u32(raw_type) != Some(RecordType::Crc) {
        return None;
    }
    Some(u32::from_le_bytes(payload.try_into().ok()?))
}

enum Step {
    Record { record: Record, next: usize, crc: u32 },
    End,
    Torn,
    Corrupt(Defect),
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

fn read_frame(bytes: &[u8], offset: usize, crc: u32) -> Step {
    let rest = &bytes[offset.min(bytes.len())..];
    let Some(word_bytes) = rest.get(..LENGTH_WORD_BYTES) else {
        // Fewer than 8 bytes left: only a caller's unaligned slice can do that.
        return if all_zero(rest) { Step::End } else { Step::Torn };
    };
    let word = u64::from_le_bytes(word_bytes.try_into().expect("8 bytes"));
    if word == 0 {
        if all_zero(rest) {
            return Step::End;
        }
        let sector_end = (offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
        let unwritten = &rest[..(sector_end - offset).min(rest.len())];
        return if all_zero(unwritten) {
            Step::Torn
        } else {
            Step::Corrupt(Defect::DataAfterEnd)
        };
    }
    let body_bytes = word & LENGTH_MASK;
    if body_bytes > RECORD_BODY_BYTES_MAX as u64 {
        return Step::Corrupt(Defect::RecordTooLarge);
    }
    let body_bytes = body_bytes as usize;
    if body_bytes < HEADER_BYTES || length_word(body_bytes) != word {
        return Step::Corrupt(Defect::BadLengthWord);
    }
    let frame_len = LENGTH_WORD_BYTES + body_bytes + padding_bytes(body_bytes);
    let Some(frame) = rest.get(..frame_len) else {
        return Step::Torn;
    };
    let type_bytes: [u8; 4] = frame[8..12].try_into().expect("4 bytes");
    let stored_crc = u32::from_le_bytes(frame[12..16].try_into().expect("4 bytes"));
    let payload = &frame[LENGTH_WORD_BYTES + HEADER_BYTES..LENGTH_WORD_BYTES + body_bytes];
    let computed = crc32c::extend(crc32c::extend(crc, &type_bytes), payload);
    if computed != stored_crc {
        let torn = all_zero(&rest[frame_len..]) || has_unwritten_sector(bytes, offset, frame_len);
        if torn && is_active(Mutation::AcceptTornWalTail) {
            // Planted bug: a torn tail whose payload still decodes is taken as written.
            let record = RecordType::from_u32(u32::from_le_bytes(type_bytes))
                .and_then(|t| Record::decode(t, payload).ok());
            if let Some(record) = record {
                return Step::Record {
                    record,
                    next: offset + frame_len,
                    crc: computed,
                };
            }
        }
        return if torn {
            Step::Torn
        } else {
            Step::Corrupt(Defect::CrcMismatch)
        };
    }
    // From here the record is checksummed: it was written whole, so any further
    // defect is damage or a bug, never a torn write.
    if !all_zero(&frame[LENGTH_WORD_BYTES + body_bytes..]) {
        return Step::Corrupt(Defect::NonzeroPadding);
    }
    let raw_type = u32::from_le_bytes(type_bytes);
    let Some(record_type) = RecordType::from_u32(raw_type) else {
        return Step::Corrupt(Defect::UnknownType(raw_type));
    };
    let record = match Record::decode(record_type, payload) {
        Ok(record) => record,
        Err(defect) => return Step::Corrupt(defect),
    };
    if record == Record::Crc(crc) || record_type != RecordType::Crc {
        Step::Record {
            record,
            next: offset + frame_len,
            crc: computed,
        }
    } else {
        Step::Corrupt(Defect::CrcRecordMismatch)
    }
}

/// Whether a whole sector after the one holding the frame's length word, and
/// overlapping the frame, is all zeros (cut at the end of the bytes).
fn has_unwritten_sector(bytes: &[u8], offset: usize, frame_len: usize) -> bool {
    let frame_end = offset + frame_len;
    let mut sector = (offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
    while sector < frame_end {
        let end = (sector + SECTOR_BYTES).min(bytes.len());
        if all_zero(&bytes[sector..end]) {
            return true;
        }
        sector += SECTOR_BYTES;
    }
    false
}
