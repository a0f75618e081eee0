//! The write-ahead log on disk: preallocated segment files, records appended
//! through `core::wal`'s [`Encoder`] with positioned writes, made durable by
//! `fdatasync` (as etcd does), all through the [`Fs`] interface.
//!
//! # Life of a record
//!
//! 1. [`Wal::append_batch`] (or [`Wal::save`]) encodes each record and writes the
//!    frames of the call with one write (pwrite) into the active segment at the
//!    write offset (one write per segment when the call cuts). Nothing is
//!    durable yet: the kernel may write those pages back at any time, in any
//!    order, or not at all before a power loss.
//! 2. [`Wal::sync`] syncs the active segment (only the range from the last
//!    synced offset to the write offset is dirty). When it returns, every record
//!    appended before it is durable; only then may a caller acknowledge them
//!    (reply to a client, send a vote).
//! 3. When a record does not fit in the rest of the active segment, the WAL cuts:
//!    it syncs the full segment, takes the next preallocated file (zero-filled
//!    ahead of time, in a background thread on real files, like etcd's file
//!    pipeline), writes the segment header (a
//!    CRC record carrying the running CRC, the metadata, the last hard state),
//!    syncs it, renames it to its final name and fsyncs the directory.
//!
//! The remainder of a cut segment stays zero, which `core::wal::scan` reads as a
//! clean end. A torn record can therefore only ever be in the last segment, which
//! is the one place `core::wal::recover` accepts one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use detcd_core::mutation::{self, Mutation};
use detcd_core::wal::{
    frame_bytes, recover, Encoder, Record, RecordType, RecoveredLog, FRAME_ALIGN_BYTES, SEGMENT_BYTES_DEFAULT,
};
use detcd_proto::raftpb::{Entry, HardState};
use detcd_proto::walpb;

use crate::error::{StorageError, Warning};
use crate::fs::Fs;
use crate::segment::{parse_segment_name, segment_file_name};

/// The name of the file the next segment is preallocated in.
const PREALLOCATED_NAME: &str = "segment.wal.tmp";

/// How the WAL lays out its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Size of every segment file, preallocated in full (etcd: 64,000,000).
    pub segment_bytes: usize,
    /// etcd's `--max-wals`: `None` deletes every segment a snapshot covers as soon as
    /// it is covered; `Some(n)` keeps covered segments while there are at most `n`
    /// segment files (`Some(0)`: keeps them all, etcd's "unlimited").
    pub max_files: Option<usize>,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            max_files: None,
        }
    }
}

/// Counters for how well appends are being batched into syncs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records appended (entries, hard states, snapshot markers).
    pub records_appended: u64,
    /// Syncs that had something to make durable.
    pub syncs: u64,
    /// Records made durable by those syncs.
    pub records_synced: u64,
    /// The most records one sync made durable.
    pub records_per_sync_max: u64,
    /// Bytes made durable (frames, not whole pages).
    pub bytes_synced: u64,
    /// Time spent in sync, in total and the longest one.
    pub sync_nanos_total: u64,
    pub sync_nanos_max: u64,
    /// Segments started after the first.
    pub segments_cut: u64,
    /// Segments deleted by [`Wal::release_to`].
    pub segments_released: u64,
}

impl WalStats {
    /// Mean records per sync (0 before the first sync).
    pub fn records_per_sync(&self) -> f64 {
        if self.syncs == 0 {
            0.0
        } else {
            self.records_synced as f64 / self.syncs as f64
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct SealedSegment {
    path: PathBuf,
    first_index: u64,
    /// The lowest snapshot-marker index in the segment: `Some(None)` for none,
    /// `None` when not known yet (segments found at open; read on demand).
    min_marker: Option<Option<u64>>,
}

/// A segment file being appended to.
#[derive(Debug)]
struct ActiveSegment<F: Fs> {
    path: PathBuf,
    seq: u64,
    first_index: u64,
    file: F::File,
    /// Its size, fixed by preallocation.
    len: usize,
}

/// An open write-ahead log: the single writer of one WAL directory.
///
/// Method families: [`Wal::open`] recovers (and creates an empty WAL in an empty
/// directory); [`Wal::save`], [`Wal::append_batch`] and
/// [`Wal::save_snapshot_marker`] append; [`Wal::sync`] makes what was appended
/// durable; [`Wal::release_to`] deletes segments a snapshot covers.
///
/// After any sync failure every later call returns [`StorageError::Poisoned`]:
/// Linux may mark pages clean after a failed writeback ("fsyncgate"), so retrying
/// could report success for data that never reached the disk.
pub struct Wal<F: Fs> {
    fs: F,
    dir: PathBuf,
    segment_bytes: usize,
    /// `WalOptions::max_files`.
    max_files: Option<usize>,
    /// Segments before the active one, oldest first.
    sealed: Vec<SealedSegment>,
    active: ActiveSegment<F>,
    /// [`SealedSegment::min_marker`] of the active segment.
    active_min_marker: Option<Option<u64>>,
    /// Where the next frame goes in the active segment.
    offset: usize,
    /// Everything in the active segment before this offset is durable.
    synced_offset: usize,
    encoder: Encoder,
    metadata: Vec<u8>,
    hard_state: Option<HardState>,
    /// Index of the last entry written (etcd's `enti`): names the next segment.
    last_index: u64,
    preallocating: Option<F::Preallocation>,
    unsynced_records: u64,
    poisoned: bool,
    stats: WalStats,
    scratch: Vec<u8>,
    /// Frames appended but not written yet: they go to the active segment at
    /// `offset` in one write, when the call that appended them ends (one
    /// Persist, one write; [`Wal::append`] leaves them) or before a cut or a sync.
    pending: Vec<u8>,
    // Declared last so it is dropped last: the lock outlives the files.
    _lock: F::Lock,
}

impl<F: Fs> fmt::Debug for Wal<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("active", &self.active.path)
            .field("offset", &self.offset)
            .field("synced_offset", &self.synced_offset)
            .field("last_index", &self.last_index)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl<F: Fs + Default> Wal<F> {
    /// [`Wal::open_in`] on the default file system.
    pub fn open(
        dir: &Path,
        metadata: &[u8],
        options: &WalOptions,
    ) -> Result<(Wal<F>, RecoveredLog, Vec<Warning>), StorageError> {
        Wal::open_in(F::default(), dir, metadata, options)
    }
}

impl<F: Fs> Wal<F> {
    /// Opens the WAL in `dir` on `fs`, creating the directory and a first segment
    /// (`0000000000000000-0000000000000000.wal`, carrying `metadata`) when there is
    /// none, and recovers it: the records of every segment, a torn tail of the last
    /// one zeroed (reported as a [`Warning`]), anything else damaged an error that
    /// names the file and offset. The returned [`RecoveredLog`] is what raft
    /// restarts from; appends continue after its last record.
    pub fn open_in(
        fs: F,
        dir: &Path,
        metadata: &[u8],
        options: &WalOptions,
    ) -> Result<(Wal<F>, RecoveredLog, Vec<Warning>), StorageError> {
        let segment_bytes = options.segment_bytes;
        assert!(
            segment_bytes % FRAME_ALIGN_BYTES == 0 && segment_bytes >= 4096,
            "segment_bytes must be a multiple of 8 and at least 4096"
        );
        fs.create_dir_all(dir)?;
        let lock = fs.lock(dir)?;
        let mut warnings = Vec::new();
        let mut segments = list_segments(&fs, dir, &mut warnings)?;
        if segments.is_empty() {
            create_first_segment(&fs, dir, metadata, segment_bytes)?;
            segments = list_segments(&fs, dir, &mut warnings)?;
        }
        for pair in segments.windows(2) {
            let (expected, found) = (pair[0].0 + 1, &pair[1]);
            if found.0 != expected {
                return Err(StorageError::MissingSegment {
                    path: found.2.clone(),
                    expected_seq: expected,
                    found_seq: found.0,
                });
            }
        }
        let mut contents = Vec::with_capacity(segments.len());
        for (_, _, path) in &segments {
            let file = fs.open(path)?;
            contents.push(fs.read_all(&file)?);
        }
        let log = {
            let slices: Vec<&[u8]> = contents.iter().map(|c| &c[..]).collect();
            recover(&slices).map_err(|e| StorageError::Corrupt {
                path: segments[e.segment].2.clone(),
                offset: e.offset,
                reason: e.reason,
            })?
        };
        // The end of the torn bytes, read before the reads are dropped (the
        // zeroing below writes the file they may map).
        let tail_end = log.torn_tail.map(|torn| {
            let last = contents.last().expect("at least one segment");
            last_nonzero_end(last).max(torn)
        });
        drop(contents);
        let (seq, first_index, path) = segments.pop().expect("at least one segment");
        let file = fs.open(&path)?;
        let mut active = ActiveSegment {
            len: fs.len(&file)?,
            path,
            seq,
            first_index,
            file,
        };
        let sealed = segments
            .into_iter()
            .map(|(_, first_index, path)| SealedSegment {
                path,
                first_index,
                min_marker: None,
            })
            .collect();
        let mut offset = *log.valid_lens.last().expect("one length per segment");
        if let (Some(torn), Some(end)) = (log.torn_tail, tail_end) {
            if mutation::is_active(Mutation::WalKeepsTornTail) {
                // The planted bug: appends go on after the torn bytes.
                offset = end.next_multiple_of(FRAME_ALIGN_BYTES).min(active.len);
            } else {
                zero_tail(&fs, &mut active, torn, end)?;
                warnings.push(Warning::TornTailTruncated {
                    path: active.path.clone(),
                    offset: torn,
                    bytes_zeroed: end - torn,
                });
            }
        }
        let last_index = log
            .entries
            .last()
            .map(|e| e.index)
            .or(log.snapshot.as_ref().map(|s| s.index))
            .unwrap_or(active.first_index.saturating_sub(1));
        let mut wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            segment_bytes,
            max_files: options.max_files,
            sealed,
            active,
            active_min_marker: None,
            offset,
            synced_offset: offset,
            encoder: Encoder::new(log.end_crc),
            metadata: log.metadata.clone().unwrap_or_else(|| metadata.to_vec()),
            hard_state: log.hard_state,
            last_index,
            preallocating: None,
            unsynced_records: 0,
            poisoned: false,
            stats: WalStats::default(),
            scratch: Vec::new(),
            pending: Vec::new(),
            _lock: lock,
        };
        if offset == 0 {
            // An all-zero last segment (created outside a cut): give it its header.
            wal.write_segment_header()?;
            wal.sync()?;
        }
        wal.start_preallocation();
        Ok((wal, log, warnings))
    }

    /// etcd's `Save`: appends `entries`, then `hard_state`, and syncs when
    /// `must_sync` (raft's `MustSync`: new entries, or a term or vote change).
    pub fn save(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[Entry],
        must_sync: bool,
    ) -> Result<(), StorageError> {
        self.append(hard_state, entries)?;
        self.flush()?;
        if must_sync {
            self.sync()?;
        }
        Ok(())
    }

    /// [`Wal::save`]'s records (`entries`, then `hard_state`), kept in memory:
    /// they reach the file with the next [`Wal::sync`] or [`Wal::write_pending`]
    /// (or a cut), in one write with everything appended before them. A writer
    /// that syncs many Persists at once appends them all and then syncs, one
    /// write and one fdatasync for the lot instead of a write per Persist.
    pub fn append(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_usable()?;
        for entry in entries {
            self.append_record(&Record::Entry(entry.clone()))?;
        }
        if let Some(state) = hard_state.filter(|_| !mutation::is_active(Mutation::WalDropsHardState)) {
            self.append_record(&Record::HardState(*state))?;
        }
        Ok(())
    }

    /// Writes what [`Wal::append`] kept in memory to the file (not synced).
    pub fn write_pending(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        self.flush()
    }

    /// Appends `records` without syncing; a later [`Wal::sync`] covers them all.
    /// The batch is checked first, so a refused batch appends nothing.
    pub fn append_batch(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.check(records)?;
        for record in records {
            self.append_record(record)?;
        }
        self.flush()
    }

    /// Records that a snapshot was taken at `snapshot`'s index and syncs. Write
    /// the snapshot file first (see [`crate::storage::Storage::save_snapshot`]): a
    /// crash in between leaves an orphan file, which start-up skips, never a
    /// marker without its file.
    pub fn save_snapshot_marker(&mut self, snapshot: &walpb::Snapshot) -> Result<(), StorageError> {
        self.check_usable()?;
        self.append_record(&Record::Snapshot(snapshot.clone()))?;
        self.flush()?;
        if mutation::is_active(Mutation::PurgeBeforeMarkerDurable) {
            // The planted bug: the marker is left for the next sync, and what it
            // releases goes at once.
            return Ok(());
        }
        self.sync()
    }

    /// Makes every record appended so far durable (fdatasync of the active
    /// segment, the only file with unsynced writes).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        self.flush()?;
        if self.offset == self.synced_offset {
            return Ok(());
        }
        let started = Instant::now();
        if let Err(error) = self.fs.sync(&self.active.file) {
            self.poisoned = true;
            return Err(error);
        }
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let stats = &mut self.stats;
        stats.syncs += 1;
        stats.records_synced += self.unsynced_records;
        stats.records_per_sync_max = stats.records_per_sync_max.max(self.unsynced_records);
        stats.bytes_synced += (self.offset - self.synced_offset) as u64;
        stats.sync_nanos_total += nanos;
        stats.sync_nanos_max = stats.sync_nanos_max.max(nanos);
        self.synced_offset = self.offset;
        self.unsynced_records = 0;
        Ok(())
    }

    /// Deletes the segments whose every entry is at or below `index` (covered by a
    /// snapshot at `index`), as etcd's `ReleaseLockTo`: the last segment whose
    /// first index is at most `index` is kept, since it may hold entries after it,
    /// and so is everything after it. Returns how many files were deleted.
    ///
    /// One more rule, from `core::wal::recover`: at a snapshot marker it requires
    /// the entries it holds to continue right after the marker's index. A kept
    /// segment holding an old marker whose next entries were released would fail
    /// recovery, so the release stops early enough to keep them (such a segment
    /// goes with a later release).
    pub fn release_to(&mut self, index: u64) -> Result<usize, StorageError> {
        self.check_usable()?;
        let firsts: Vec<u64> = self
            .sealed
            .iter()
            .map(|s| s.first_index)
            .chain(std::iter::once(self.active.first_index))
            .collect();
        let Some(mut keep_from) = firsts.iter().rposition(|&first| first <= index) else {
            return Ok(0);
        };
        while keep_from > 0 {
            let oldest_marker = self.oldest_marker_from(keep_from)?;
            if oldest_marker.is_some_and(|m| m.saturating_add(1) < firsts[keep_from]) {
                keep_from -= 1;
            } else {
                break;
            }
        }
        if mutation::is_active(Mutation::ReleaseNeededSegment) {
            // The planted bug: the segment holding the entries after `index` goes too.
            keep_from = (keep_from + 1).min(self.sealed.len());
        }
        if let Some(max_files) = self.max_files {
            // --max-wals: covered segments stay while the files are few enough.
            let files = self.sealed.len() + 1;
            let excess = if max_files == 0 {
                0
            } else {
                files.saturating_sub(max_files)
            };
            keep_from = keep_from.min(excess);
        }
        let released: Vec<SealedSegment> = self.sealed.drain(..keep_from).collect();
        for segment in &released {
            self.fs.remove(&segment.path)?;
        }
        if !released.is_empty() {
            self.fs.sync_dir(&self.dir)?;
        }
        self.stats.segments_released += released.len() as u64;
        Ok(released.len())
    }

    /// The lowest snapshot-marker index in the segments from `position` (into
    /// sealed, then the active one) on, reading segments whose markers are not
    /// known yet.
    fn oldest_marker_from(&mut self, position: usize) -> Result<Option<u64>, StorageError> {
        for at in position..self.sealed.len() {
            let known = match self.sealed[at].min_marker {
                Some(known) => known,
                None => {
                    let file = self.fs.open(&self.sealed[at].path)?;
                    let found = min_marker(&self.fs.read_all(&file)?);
                    self.sealed[at].min_marker = Some(found);
                    found
                }
            };
            if known.is_some() {
                return Ok(known);
            }
        }
        let active = match self.active_min_marker {
            Some(known) => known,
            None => {
                let bytes = self.fs.read_all(&self.active.file)?;
                let found = min_marker(&bytes[..self.offset.min(bytes.len())]);
                self.active_min_marker = Some(found);
                found
            }
        };
        Ok(active)
    }

    /// Checks that `records` could be appended: no reserved types, each fits in a
    /// segment. Appending a checked batch can then fail only on I/O.
    pub fn check(&self, records: &[Record]) -> Result<(), StorageError> {
        self.check_usable()?;
        let room = self.segment_bytes - self.segment_header_bytes();
        for record in records {
            let record_type = record.record_type();
            if matches!(record_type, RecordType::Crc | RecordType::Metadata) {
                return Err(StorageError::ReservedRecord(record_type));
            }
            let frame = frame_bytes(record.payload().len());
            if frame > room {
                return Err(StorageError::RecordTooLarge {
                    frame_bytes: frame,
                    segment_bytes: self.segment_bytes,
                });
            }
        }
        Ok(())
    }

    /// The directory this WAL lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the last entry (or snapshot marker) written.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The metadata every segment carries.
    pub fn metadata(&self) -> &[u8] {
        &self.metadata
    }

    /// Whether everything appended has been synced.
    pub fn is_synced(&self) -> bool {
        self.offset == self.synced_offset && self.pending.is_empty()
    }

    /// Paths of the live segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.sealed
            .iter()
            .map(|s| s.path.clone())
            .chain(std::iter::once(self.active.path.clone()))
            .collect()
    }

    /// The active segment and the offsets of its write and sync points (for tests
    /// that simulate power loss after the last sync).
    pub fn write_position(&self) -> (PathBuf, usize, usize) {
        (self.active.path.clone(), self.synced_offset, self.offset)
    }

    pub fn stats(&self) -> &WalStats {
        &self.stats
    }

    /// The file system this WAL writes to.
    pub fn fs(&self) -> &F {
        &self.fs
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if self.poisoned {
            Err(StorageError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn append_record(&mut self, record: &Record) -> Result<(), StorageError> {
        let mut encoder = self.encoder.clone();
        self.scratch.clear();
        encoder
            .append(record, &mut self.scratch)
            .map_err(StorageError::Encode)?;
        if self.offset + self.pending.len() + self.scratch.len() > self.active.len {
            self.flush()?;
            self.cut()?;
            encoder = self.encoder.clone();
            self.scratch.clear();
            encoder
                .append(record, &mut self.scratch)
                .map_err(StorageError::Encode)?;
            if self.offset + self.pending.len() + self.scratch.len() > self.active.len {
                return Err(StorageError::RecordTooLarge {
                    frame_bytes: self.scratch.len(),
                    segment_bytes: self.active.len,
                });
            }
        }
        self.pending.extend_from_slice(&self.scratch);
        self.encoder = encoder;
        self.unsynced_records += 1;
        self.stats.records_appended += 1;
        match record {
            Record::Entry(entry) => self.last_index = entry.index,
            Record::Snapshot(snapshot) => {
                self.last_index = self.last_index.max(snapshot.index);
                if let Some(known) = &mut self.active_min_marker {
                    *known = Some(known.map_or(snapshot.index, |m| m.min(snapshot.index)));
                }
            }
            Record::HardState(state) => self.hard_state = Some(*state),
            Record::Crc(_) | Record::Metadata(_) => {}
        }
        Ok(())
    }

    /// Writes the frames appended since the last write, in one write.
    fn flush(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.fs.write_at(&self.active.file, self.offset, &self.pending) {
            // What reached the page cache is unknown: restart and recover instead.
            self.poisoned = true;
            return Err(error);
        }
        self.offset += self.pending.len();
        self.pending.clear();
        Ok(())
    }

    /// Bytes of the records every segment starts with.
    fn segment_header_bytes(&self) -> usize {
        let crc = frame_bytes(4);
        let metadata = frame_bytes(self.metadata.len());
        let state = self
            .hard_state
            .map_or(0, |s| frame_bytes(prost::Message::encoded_len(&s)));
        // A hard state written later may be larger than the current one; three
        // varints of at most 10 bytes each bound it.
        crc + metadata + state.max(frame_bytes(3 * 11))
    }

    /// Writes the CRC, metadata and hard-state records a segment starts with at
    /// the write offset (0) of the active segment.
    fn write_segment_header(&mut self) -> Result<(), StorageError> {
        debug_assert_eq!(self.offset, 0);
        let mut header = vec![
            Record::Crc(self.encoder.crc()),
            Record::Metadata(self.metadata.clone()),
        ];
        if let Some(state) = self.hard_state {
            header.push(Record::HardState(state));
        }
        let (unsynced, appended) = (self.unsynced_records, self.stats.records_appended);
        for record in &header {
            self.append_record(record)?;
        }
        // The stats count callers' records only.
        self.unsynced_records = unsynced;
        self.stats.records_appended = appended;
        Ok(())
    }

    /// Starts the next segment. See the module documentation for the order of
    /// steps and why the full segment is synced first.
    fn cut(&mut self) -> Result<(), StorageError> {
        // Recovery accepts a torn record only in the last segment, so the full one
        // must be wholly durable before a later one can exist.
        self.sync()?;
        let result = self.cut_synced();
        if result.is_err() {
            // Half a cut (a file renamed or not, a header written or not) is not a
            // state to keep appending in; restart and recover instead.
            self.poisoned = true;
        }
        result
    }

    fn cut_synced(&mut self) -> Result<(), StorageError> {
        let tmp = self.dir.join(PREALLOCATED_NAME);
        let pending = match self.preallocating.take() {
            Some(pending) => pending,
            None => self.fs.preallocate(&tmp, self.segment_bytes),
        };
        let file = self.fs.preallocated(pending)?;
        let next = ActiveSegment {
            path: tmp.clone(),
            seq: self.active.seq + 1,
            first_index: self.last_index + 1,
            len: self.fs.len(&file)?,
            file,
        };
        let (seq, first_index) = (next.seq, next.first_index);
        let previous = std::mem::replace(&mut self.active, next);
        self.sealed.push(SealedSegment {
            path: previous.path.clone(),
            first_index: previous.first_index,
            min_marker: self.active_min_marker,
        });
        self.active_min_marker = Some(None);
        drop(previous);
        self.offset = 0;
        self.synced_offset = 0;
        self.write_segment_header()?;
        self.sync()?;
        let path = self.dir.join(segment_file_name(seq, first_index));
        self.fs.rename(&tmp, &path)?;
        self.active.path = path;
        if !mutation::is_active(Mutation::RenameWithoutDirSync) {
            self.fs.sync_dir(&self.dir)?;
        }
        self.stats.segments_cut += 1;
        self.start_preallocation();
        Ok(())
    }

    /// Zero-fills the next segment's file ahead of time (etcd's file pipeline),
    /// so a cut costs a rename rather than writing a whole segment.
    fn start_preallocation(&mut self) {
        if self.preallocating.is_none() {
            let tmp = self.dir.join(PREALLOCATED_NAME);
            self.preallocating = Some(self.fs.preallocate(&tmp, self.segment_bytes));
        }
    }
}

impl<F: Fs> Drop for Wal<F> {
    fn drop(&mut self) {
        // A background preallocation writes into this directory; it must finish
        // before the lock is released, or it could clobber the next owner's file.
        if let Some(pending) = self.preallocating.take() {
            let _ = self.fs.preallocated(pending);
        }
    }
}

/// The lowest snapshot-marker index among the valid records of a segment.
fn min_marker(bytes: &[u8]) -> Option<u64> {
    let start = detcd_core::wal::leading_crc(bytes).unwrap_or(0);
    detcd_core::wal::scan(bytes, start)
        .records
        .iter()
        .filter_map(|r| match &r.record {
            Record::Snapshot(s) => Some(s.index),
            _ => None,
        })
        .min()
}

/// The end of the last nonzero byte of `bytes` (0 when all are zero).
fn last_nonzero_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1)
}

/// Zeros the torn tail `offset..end` of the active segment and syncs it, so the
/// next append starts over zeros.
fn zero_tail<F: Fs>(
    fs: &F,
    segment: &mut ActiveSegment<F>,
    offset: usize,
    end: usize,
) -> Result<(), StorageError> {
    if end > offset {
        fs.write_at(&segment.file, offset, &vec![0; end - offset])?;
        fs.sync(&segment.file)?;
    }
    Ok(())
}

/// The segment files of `dir` as (seq, first index, path), by sequence; removes
/// leftover temp files.
fn list_segments<F: Fs>(
    fs: &F,
    dir: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<(u64, u64, PathBuf)>, StorageError> {
    let mut segments = Vec::new();
    for name in fs.list(dir)? {
        let path = dir.join(&name);
        if name == PREALLOCATED_NAME {
            // The next segment being zero-filled: rewritten from scratch below.
            continue;
        }
        if name.ends_with(".tmp") {
            fs.remove(&path)?;
            warnings.push(Warning::TempFileRemoved { path });
            continue;
        }
        match parse_segment_name(&name) {
            None => {}
            Some(Ok((seq, first_index))) => segments.push((seq, first_index, path)),
            Some(Err(())) => return Err(StorageError::BadSegmentName { path }),
        }
    }
    segments.sort();
    Ok(segments)
}

/// Creates `0000000000000000-0000000000000000.wal` with its header, durably: the
/// header is written in a temp file that is synced and renamed, then the
/// directory is synced.
fn create_first_segment<F: Fs>(
    fs: &F,
    dir: &Path,
    metadata: &[u8],
    segment_bytes: usize,
) -> Result<(), StorageError> {
    let tmp = dir.join(PREALLOCATED_NAME);
    let file = fs.preallocated(fs.preallocate(&tmp, segment_bytes))?;
    let mut encoder = Encoder::new(0);
    let mut header = Vec::new();
    encoder.begin_segment(&mut header);
    encoder
        .append(&Record::Metadata(metadata.to_vec()), &mut header)
        .map_err(StorageError::Encode)?;
    if header.len() > segment_bytes {
        return Err(StorageError::RecordTooLarge {
            frame_bytes: header.len(),
            segment_bytes,
        });
    }
    fs.write_at(&file, 0, &header)?;
    fs.sync(&file)?;
    drop(file);
    let path = dir.join(segment_file_name(0, 0));
    fs.rename(&tmp, &path)?;
    if mutation::is_active(Mutation::RenameWithoutDirSync) {
        return Ok(());
    }
    fs.sync_dir(dir)
}
