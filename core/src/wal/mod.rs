//! The write-ahead-log record codec and the recovery scan over bytes.
//!
//! This module owns the WAL's byte format and everything decided by reading it:
//! how a record is framed so that its length word cannot tear, how CRC-32C chains
//! records together across segments, where valid data ends, and whether what
//! follows is a torn tail (truncate it) or corruption (refuse to start). It works
//! on byte slices only; the production driver maps segment files and the simulator
//! keeps them in a simulated disk, and both run this same code.
//!
//! - [`crc32c`]: CRC-32C (Castagnoli), re-exported from the crate root.
//! - [`record`]: record types, payloads, and the typed [`Defect`]s.
//! - [`frame`]: the [`Encoder`] and [`scan`], with the frame layout and the
//!   torn-versus-corrupt rules in its documentation.
//! - [`recover`](mod@recover): segments in order to a [`RecoveredLog`].

/// The WAL's checksum lives at the crate root; re-exported where WAL readers look.
pub use crate::crc32c;
pub mod frame;
pub mod record;
pub mod recover;

pub use frame::{
    frame_bytes, leading_crc, scan, EncodeError, Encoder, ScanEnd, ScanResult, ScannedRecord,
    FRAME_ALIGN_BYTES, HEADER_BYTES, LENGTH_WORD_BYTES, RECORD_BODY_BYTES_MAX, SECTOR_BYTES,
};
pub use record::{Defect, Record, RecordType};
pub use recover::{recover, RecoveredLog, WalError};

/// etcd's segment size: 64,000,000 bytes (decimal), preallocated.
pub const SEGMENT_BYTES_DEFAULT: usize = 64 * 1000 * 1000;
