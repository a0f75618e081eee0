//! A member's durable state on its simulated [`Disk`]: the WAL, written through the
//! real codec (`core::wal::Encoder`) and read back through the real recovery
//! (`core::wal::recover`), and snapshot files.
//!
//! Layout: WAL segments `wal-00000000`, `wal-00000001`, ... each starting with a
//! CRC record and the metadata record, cut when the next frame would pass the
//! segment size; snapshot files `snap-<index as 16 hex digits>` holding the encoded
//! raft snapshot behind a CRC-32C and a length. A WAL snapshot marker record is
//! written only after its snapshot file is durable, so recovery trusts the marker
//! to name a file that exists (the file may be missing only if a planted bug
//! acknowledged it early).
//!
//! Segments are never released here: runs are short, and keeping them makes every
//! restart replay the full chain of segments through recovery.

use detcd_core::crc32c;
use detcd_core::node::NodeStart;
use detcd_core::wal::{self, Encoder, Record};
use detcd_proto::raftpb::{Entry, HardState, Snapshot};
use detcd_proto::walpb;
use prost::Message as _;

use crate::disk::{Disk, SyncToken};

const SEGMENT_PREFIX: &str = "wal-";
const SNAPSHOT_PREFIX: &str = "snap-";

/// Why a member could not restart from its disk.
#[derive(Clone, Debug, PartialEq)]
pub enum RecoverError {
    Wal(String),
    SnapshotMissing { index: u64 },
    SnapshotCorrupt { index: u64 },
}

impl std::fmt::Display for RecoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoverError::Wal(e) => write!(f, "WAL unrecoverable: {e}"),
            RecoverError::SnapshotMissing { index } => {
                write!(f, "WAL names snapshot {index} but its file is missing")
            }
            RecoverError::SnapshotCorrupt { index } => write!(f, "snapshot file {index} is corrupt"),
        }
    }
}

/// What recovery found, besides the node's start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovered {
    pub torn_tail: bool,
    pub segments: usize,
}

/// The WAL writer and snapshot store of one member incarnation.
#[derive(Debug)]
pub struct Storage {
    pub disk: Disk,
    encoder: Encoder,
    segment: usize,
    offset: usize,
    segment_started: bool,
    segment_bytes: usize,
    metadata: Vec<u8>,
}

impl Storage {
    /// A member's storage on `disk`, appending after whatever it holds (an empty
    /// disk for a new member).
    pub fn create(disk: Disk, member_id: u64, cluster_id: u64, segment_bytes: usize) -> Storage {
        let mut metadata = member_id.to_le_bytes().to_vec();
        metadata.extend_from_slice(&cluster_id.to_le_bytes());
        Storage {
            disk,
            encoder: Encoder::new(0),
            segment: 0,
            offset: 0,
            segment_started: false,
            segment_bytes,
            metadata,
        }
    }

    /// Whether nothing was ever made durable (restart as a fresh member).
    pub fn is_empty(&self) -> bool {
        self.disk.list(SEGMENT_PREFIX).is_empty()
    }

    fn segment_name(index: usize) -> String {
        format!("{SEGMENT_PREFIX}{index:08}")
    }

    fn snapshot_name(index: u64) -> String {
        format!("{SNAPSHOT_PREFIX}{index:016x}")
    }

    /// Encodes `records` onto the WAL (cutting segments as needed); returns the
    /// names of the files written, for the caller's sync.
    pub fn append(&mut self, records: &[Record]) -> Vec<String> {
        let mut touched = Vec::new();
        let mut buf = Vec::new();
        for record in records {
            let frame = wal::frame_bytes(record.payload().len());
            if self.segment_started && self.offset + buf.len() + frame > self.segment_bytes {
                self.flush(&mut buf, &mut touched);
                // As etcd's cut(): the finished segment is synced before the next one
                // is written, so a later segment never survives without its
                // predecessor's tail. (Modelled as instant.)
                let token = self.disk.sync_begin(&Self::segment_name(self.segment));
                self.disk.sync_complete(&token);
                self.segment += 1;
                self.offset = 0;
                self.segment_started = false;
            }
            if !self.segment_started {
                self.encoder.begin_segment(&mut buf);
                self.encoder
                    .append(&Record::Metadata(self.metadata.clone()), &mut buf)
                    .expect("metadata fits");
                self.segment_started = true;
            }
            self.encoder
                .append(record, &mut buf)
                .expect("records fit a frame");
        }
        self.flush(&mut buf, &mut touched);
        touched
    }

    fn flush(&mut self, buf: &mut Vec<u8>, touched: &mut Vec<String>) {
        if buf.is_empty() {
            return;
        }
        let name = Self::segment_name(self.segment);
        self.disk.write(&name, self.offset, buf);
        self.offset += buf.len();
        buf.clear();
        if !touched.contains(&name) {
            touched.push(name);
        }
    }

    /// Writes a snapshot file; returns its name for the caller's sync.
    pub fn write_snapshot(&mut self, snapshot: &Snapshot) -> String {
        let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
        let body = snapshot.encode_to_vec();
        let mut bytes = crc32c::checksum(&body).to_le_bytes().to_vec();
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&body);
        let name = Self::snapshot_name(index);
        self.disk.write(&name, 0, &bytes);
        name
    }

    /// Writes a snapshot file and syncs it before returning, as etcd's `SaveSnap`
    /// does before the WAL marker that names it is appended: however a crash then
    /// treats the marker, the file it names is durable. (The sync is modelled as
    /// instant, like a segment cut.)
    pub fn write_snapshot_durably(&mut self, snapshot: &Snapshot) {
        let name = self.write_snapshot(snapshot);
        let token = self.disk.sync_begin(&name);
        self.disk.sync_complete(&token);
    }

    /// The WAL marker record for `snapshot`.
    pub fn marker(snapshot: &Snapshot) -> Record {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        Record::Snapshot(walpb::Snapshot {
            index: meta.index,
            term: meta.term,
            conf_state: meta.conf_state,
        })
    }

    pub fn sync_begin(&mut self, names: &[String]) -> Vec<SyncToken> {
        names.iter().map(|n| self.disk.sync_begin(n)).collect()
    }

    /// The files a synced Persist must sync: those it wrote, or, when it wrote
    /// nothing (a sync asked for what is already written), the current segment,
    /// as an fdatasync of the WAL file does.
    pub fn sync_targets(&self, written: Vec<String>) -> Vec<String> {
        if written.is_empty() && self.segment_started {
            vec![Self::segment_name(self.segment)]
        } else {
            written
        }
    }

    /// Reads the disk back after a crash: the node's start (None when nothing
    /// durable was ever written) and the storage to continue with. The torn tail of
    /// the last segment is cut off durably before anything is appended
    /// (`keep_torn_tail` is the planted bug that skips this).
    pub fn recover(
        disk: Disk,
        member_id: u64,
        cluster_id: u64,
        segment_bytes: usize,
        keep_torn_tail: bool,
        drop_last_record: bool,
    ) -> Result<(Storage, Option<NodeStart>, Recovered), RecoverError> {
        let mut storage = Storage::create(disk, member_id, cluster_id, segment_bytes);
        let names = storage.disk.list(SEGMENT_PREFIX);
        if names.is_empty() {
            return Ok((storage, None, Recovered::default()));
        }
        let segments: Vec<Vec<u8>> = names
            .iter()
            .map(|n| storage.disk.read(n).expect("listed").to_vec())
            .collect();
        let slices: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
        let mut log = wal::recover(&slices).map_err(|e| RecoverError::Wal(e.to_string()))?;
        if drop_last_record {
            log.entries.pop();
        }
        let last = names.len() - 1;
        let valid_len = *log.valid_lens.last().expect("one per segment");
        if log.torn_tail.is_some() && !keep_torn_tail {
            storage
                .disk
                .replace_durable(&names[last], segments[last][..valid_len].to_vec());
        }
        storage.encoder = Encoder::new(log.end_crc);
        storage.segment = last;
        storage.offset = if keep_torn_tail {
            segments[last].len().max(valid_len)
        } else {
            valid_len
        };
        storage.segment_started = valid_len > 0;
        let recovered = Recovered {
            torn_tail: log.torn_tail.is_some(),
            segments: names.len(),
        };
        let snapshot = match log.snapshot {
            Some(marker) => storage.load_snapshot(marker.index)?,
            // A member that joined (`NodeStart::Join`) starts from an empty log
            // with no snapshot: what it persisted since (a hard state, entries
            // from index 1) follows the implicit empty snapshot at index 0, as
            // etcd's `wal.Create` writes a zero snapshot record first.
            None if log.hard_state.is_some() || !log.entries.is_empty() => Snapshot::default(),
            // Nothing but metadata made it: the member never persisted its first
            // Ready and starts as new.
            None => return Ok((storage, None, recovered)),
        };
        let start = NodeStart::Recover {
            snapshot,
            hard_state: log.hard_state.unwrap_or_else(HardState::default),
            entries: log.entries,
        };
        Ok((storage, Some(start), recovered))
    }

    fn load_snapshot(&self, index: u64) -> Result<Snapshot, RecoverError> {
        let bytes = self
            .disk
            .read(&Self::snapshot_name(index))
            .ok_or(RecoverError::SnapshotMissing { index })?;
        let corrupt = RecoverError::SnapshotCorrupt { index };
        if bytes.len() < 12 {
            return Err(corrupt);
        }
        let crc = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        let len = u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes")) as usize;
        let body = bytes.get(12..12 + len).ok_or(corrupt.clone())?;
        if crc32c::checksum(body) != crc {
            return Err(corrupt);
        }
        Snapshot::decode(body).map_err(|_| corrupt)
    }

    /// Whether the codec would read `bytes` of WAL file `name` as valid data plus at
    /// most a torn tail (the disk's garbage oracle). Non-WAL files are checksummed
    /// whole and always detect garbage.
    pub fn accepts_garbage(name: &str, bytes: &[u8]) -> bool {
        if !name.starts_with(SEGMENT_PREFIX) {
            return true;
        }
        let start = wal::leading_crc(bytes).unwrap_or(0);
        !matches!(wal::scan(bytes, start).end, wal::ScanEnd::Corrupt { .. })
    }
}

/// The records of one Persist output, in the order the node requires.
pub fn persist_records(
    snapshot: Option<&Snapshot>,
    entries: &[Entry],
    hard_state: Option<&HardState>,
    drop_hard_state: bool,
) -> Vec<Record> {
    let mut records = Vec::with_capacity(entries.len() + 2);
    if let Some(s) = snapshot {
        records.push(Storage::marker(s));
    }
    records.extend(entries.iter().cloned().map(Record::Entry));
    if let (Some(hs), false) = (hard_state, drop_hard_state) {
        records.push(Record::HardState(*hs));
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::CrashPolicy;
    use detcd_core::rng::Rng;
    use detcd_proto::raftpb::SnapshotMetadata;

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            term: 1,
            data: vec![index as u8; 100],
            ..Default::default()
        }
    }

    fn snapshot_at(index: u64) -> Snapshot {
        Snapshot {
            metadata: Some(SnapshotMetadata {
                index,
                term: 1,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Seed 215's failure: a member crashed before its first (bootstrap) Persist
    /// was synced, and the WAL marker survived while the snapshot file did not.
    #[test]
    fn an_unsynced_marker_never_outlives_its_snapshot_file() {
        let policy = CrashPolicy {
            lose_unsynced: true,
            tear: true,
            garbage: true,
        };
        let (mut marker_survived, mut marker_lost) = (false, false);
        for seed in 0..200 {
            let mut s = Storage::create(Disk::new(), 1, 9, 4096);
            let snap = snapshot_at(1);
            s.write_snapshot_durably(&snap);
            s.append(&[Storage::marker(&snap), Record::Entry(entry(2))]);
            let mut disk = std::mem::take(&mut s.disk);
            disk.crash(&mut Rng::new(seed), policy, &Storage::accepts_garbage);
            match Storage::recover(disk, 1, 9, 4096, false, false) {
                Ok((_, Some(NodeStart::Recover { snapshot, .. }), _)) => {
                    assert_eq!(snapshot, snap, "seed {seed}");
                    marker_survived = true;
                }
                Ok((_, None, _)) => marker_lost = true,
                other => panic!("seed {seed}: {other:?}"),
            }
        }
        assert!(
            marker_survived && marker_lost,
            "crashes both keep and lose the marker"
        );
    }

    #[test]
    fn synced_records_survive_crashes_across_segments() {
        for seed in 0..40 {
            let mut s = Storage::create(Disk::new(), 1, 9, 1024);
            let snap = snapshot_at(1);
            let file = s.write_snapshot(&snap);
            let mut names = vec![file];
            names.extend(s.append(&[Storage::marker(&snap)]));
            let mut synced = 1;
            for i in 2..40 {
                let written = s.append(&[Record::Entry(entry(i))]);
                names.extend(written);
                if i % 7 == 0 {
                    for t in s.sync_begin(&names) {
                        s.disk.sync_complete(&t);
                    }
                    names.clear();
                    synced = i;
                }
            }
            let mut disk = std::mem::take(&mut s.disk);
            let policy = CrashPolicy {
                lose_unsynced: true,
                tear: true,
                garbage: true,
            };
            disk.crash(&mut Rng::new(seed), policy, &Storage::accepts_garbage);
            let (_, start, _) = Storage::recover(disk, 1, 9, 1024, false, false).expect("recovers");
            let Some(NodeStart::Recover { entries, .. }) = start else {
                panic!("has a snapshot")
            };
            assert!(
                entries.len() as u64 >= synced - 1,
                "seed {seed}: {} < {}",
                entries.len(),
                synced - 1
            );
            for (k, e) in entries.iter().enumerate() {
                assert_eq!(e.index, k as u64 + 2);
            }
        }
    }
}
