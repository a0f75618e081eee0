//! Recovery: from the bytes of a WAL's segments, in order, to the raft state they
//! hold, or to a clear error that says which segment and offset are damaged.

use std::fmt;

use detcd_proto::raftpb::{Entry, HardState};
use detcd_proto::walpb::Snapshot;

use super::frame::{leading_crc, scan, ScanEnd};
use super::record::{Defect, Record};

/// What a WAL holds, as raft needs it on restart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecoveredLog {
    /// The metadata every segment carries (None when there are no segments with
    /// records).
    pub metadata: Option<Vec<u8>>,
    /// The last snapshot marker.
    pub snapshot: Option<Snapshot>,
    /// The last hard state.
    pub hard_state: Option<HardState>,
    /// The log after the snapshot marker, contiguous, as raft last wrote it: an
    /// entry at an index already present replaced that entry and everything after
    /// it. Entries at or below the marker's index are dropped (the snapshot holds
    /// them).
    pub entries: Vec<Entry>,
    /// Per segment, the bytes of valid records; appending to the last segment
    /// resumes at its value.
    pub valid_lens: Vec<usize>,
    /// Where a torn record was cut off in the last segment, if one was.
    pub torn_tail: Option<usize>,
    /// The running CRC after the last valid record: seeds the encoder that
    /// continues this WAL.
    pub end_crc: u32,
}

/// A WAL that cannot be recovered: which segment, where in it, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalError {
    pub segment: usize,
    pub offset: usize,
    pub reason: Defect,
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WAL segment {} at byte {}: {}",
            self.segment, self.offset, self.reason
        )
    }
}

impl std::error::Error for WalError {}

/// Recovers a WAL from its segments, oldest first.
///
/// Each segment must start with a CRC record continuing the chain of the one
/// before (the first retained segment is trusted for its start value, since the
/// segments before it may have been released). Only the last segment may end in a
/// torn record, which is dropped; a torn record elsewhere, or any corruption, is an
/// error. An all-zero last segment (preallocated, never written) is allowed.
pub fn recover(segments: &[&[u8]]) -> Result<RecoveredLog, WalError> {
    let mut log = RecoveredLog::default();
    let mut crc = None;
    for (index, bytes) in segments.iter().enumerate() {
        let is_last = index + 1 == segments.len();
        let fail = |offset, reason| WalError {
            segment: index,
            offset,
            reason,
        };
        let start = crc.unwrap_or_else(|| leading_crc(bytes).unwrap_or(0));
        let result = scan(bytes, start);
        match result.records.first() {
            Some(first) if !matches!(first.record, Record::Crc(_)) => {
                return Err(fail(0, Defect::MissingCrcRecord));
            }
            None if !is_last && result.end == ScanEnd::Clean => {
                return Err(fail(0, Defect::MissingCrcRecord));
            }
            _ => {}
        }
        match result.end {
            ScanEnd::Clean => {}
            ScanEnd::TornTail { offset } if is_last => log.torn_tail = Some(offset),
            ScanEnd::TornTail { offset } => return Err(fail(offset, Defect::TornBeforeLastSegment)),
            ScanEnd::Corrupt { offset, reason } => return Err(fail(offset, reason)),
        }
        for scanned in result.records {
            log.apply(scanned.record)
                .map_err(|reason| fail(scanned.offset, reason))?;
        }
        log.valid_lens.push(result.valid_len);
        crc = Some(result.end_crc);
    }
    log.end_crc = crc.unwrap_or(0);
    Ok(log)
}

impl RecoveredLog {
    fn apply(&mut self, record: Record) -> Result<(), Defect> {
        match record {
            Record::Crc(_) => {}
            Record::Metadata(metadata) => match &self.metadata {
                Some(existing) if *existing != metadata => return Err(Defect::MetadataConflict),
                _ => self.metadata = Some(metadata),
            },
            Record::HardState(state) => self.hard_state = Some(state),
            Record::Snapshot(snapshot) => {
                self.entries.retain(|e| e.index > snapshot.index);
                if self
                    .entries
                    .first()
                    .is_some_and(|e| e.index != snapshot.index + 1)
                {
                    return Err(Defect::SnapshotEntryGap);
                }
                self.snapshot = Some(snapshot);
            }
            Record::Entry(entry) => self.push_entry(entry)?,
        }
        Ok(())
    }

    fn push_entry(&mut self, entry: Entry) -> Result<(), Defect> {
        let snapshot_index = self.snapshot.as_ref().map(|s| s.index);
        if snapshot_index.is_some_and(|s| entry.index <= s) {
            // Covered by the snapshot; committed entries are never rewritten.
            return Ok(());
        }
        let (Some(first), Some(last)) = (self.entries.first(), self.entries.last()) else {
            if snapshot_index.is_some_and(|s| entry.index != s + 1) {
                return Err(Defect::SnapshotEntryGap);
            }
            self.entries.push(entry);
            return Ok(());
        };
        let (first, last) = (first.index, last.index);
        if entry.index > last.saturating_add(1) {
            return Err(Defect::EntryIndexGap);
        }
        // Raft rewrote the log from this index on: the new entry replaces the old
        // one there and everything after it.
        let keep = usize::try_from(entry.index.saturating_sub(first)).unwrap_or(usize::MAX);
        self.entries.truncate(keep);
        self.entries.push(entry);
        Ok(())
    }
}
