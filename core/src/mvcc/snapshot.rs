//! The store as bytes and back: a versioned, checksummed format of our own.
//!
//! Layout (integers little-endian):
//! `magic "DMVCSNAP"`, `format u32`, `current_rev i64`, `compact_rev i64`,
//! `txn_ops_max u64`, `keys u64`, per key `len u32, bytes, modified (i64, i64),
//! generations u32`, per generation `version i64, created (i64, i64), revs u32,
//! revs (i64, i64)*`; then `records u64`, per record `revision (i64, i64),
//! key number u32 (position in the key list), create_revision i64, version i64,
//! lease i64, value len u32, value bytes`; last, the CRC-32C of everything before it.
//!
//! Reading never panics: short, corrupted or inconsistent input is a
//! [`SnapshotError`], and the decoded store must pass its invariant check.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::key_index::{Generation, KeyIndex};
use super::revision::Revision;
use super::store::{Record, Store, StoreConfig};
use crate::crc32c;

const MAGIC: &[u8; 8] = b"DMVCSNAP";
/// Bumped whenever the layout changes; readers reject other versions.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// Why snapshot bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// Fewer bytes than the format needs.
    Truncated,
    BadMagic,
    UnsupportedVersion(u32),
    ChecksumMismatch,
    /// Bytes that check out but describe an impossible store.
    Malformed(&'static str),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Truncated => f.write_str("mvcc snapshot: truncated"),
            SnapshotError::BadMagic => f.write_str("mvcc snapshot: bad magic"),
            SnapshotError::UnsupportedVersion(v) => {
                write!(f, "mvcc snapshot: unsupported format version {v}")
            }
            SnapshotError::ChecksumMismatch => f.write_str("mvcc snapshot: checksum mismatch"),
            SnapshotError::Malformed(why) => write!(f, "mvcc snapshot: malformed: {why}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Encodes a store's snapshot a slice at a time, so a large store does not stop
/// its member for the whole encoding.
///
/// [`Store::snapshot_encoder`] writes the header and the key index at once (they
/// are a small part of the bytes: keys and revisions, no values) and fixes the
/// records to encode: every record at or below the store's newest revision at that
/// moment. [`SnapshotEncoder::step`] then encodes records in revision order within
/// a byte budget, and [`SnapshotEncoder::finish`] appends the checksum.
///
/// Between steps the store may take new writes (their revisions are above the
/// fixed ones and are left out) but no compaction: compaction removes records the
/// snapshot still needs, so the owner finishes the encoding first.
pub struct SnapshotEncoder {
    out: Vec<u8>,
    /// Where the store's bytes start in `out` (after the caller's prefix, if any).
    start: usize,
    /// CRC-32C of the store's bytes so far (its own checksum).
    crc: u32,
    /// CRC-32C of all of `out` so far, prefix included (the caller's checksum).
    outer_crc: u32,
    /// Bytes of `out` already folded into both.
    crc_upto: usize,
    /// The index's keys with their position in the key list, by allocation address
    /// (records share their key's allocation with the index); holding the `Arc`s
    /// keeps the addresses from being reused meanwhile.
    numbers: Vec<(usize, u32, Arc<[u8]>)>,
    /// The next record to encode is the first at or above this revision.
    next: Revision,
    /// The newest record of the snapshot.
    last: Option<Revision>,
    records_left: u64,
}

impl fmt::Debug for SnapshotEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotEncoder")
            .field("encoded_bytes", &self.encoded_bytes())
            .field("next", &self.next)
            .field("last", &self.last)
            .field("records_left", &self.records_left)
            .finish_non_exhaustive()
    }
}

fn address(key: &Arc<[u8]>) -> usize {
    Arc::as_ptr(key).cast::<u8>() as usize
}

impl Store {
    /// The whole state as snapshot bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut encoder = self.snapshot_encoder();
        while !encoder.step(self, usize::MAX) {}
        encoder.finish()
    }

    /// Starts encoding the store as of now: see [`SnapshotEncoder`].
    pub fn snapshot_encoder(&self) -> SnapshotEncoder {
        self.snapshot_encoder_after(Vec::new())
    }

    /// [`Store::snapshot_encoder`] writing after `prefix` (a containing format's
    /// leading bytes), so the store's bytes need no copy into it afterwards.
    pub fn snapshot_encoder_after(&self, prefix: Vec<u8>) -> SnapshotEncoder {
        let start = prefix.len();
        let outer_crc = crc32c::checksum(&prefix);
        let mut out = prefix;
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
        put_i64(&mut out, self.current_rev);
        put_i64(&mut out, self.compact_rev);
        out.extend_from_slice(&(self.config.txn_ops_max as u64).to_le_bytes());
        out.extend_from_slice(&(self.index.len() as u64).to_le_bytes());
        let mut numbers = Vec::with_capacity(self.index.len());
        for (n, (key, ki)) in self.index.iter().enumerate() {
            numbers.push((address(key), n as u32, key.clone()));
            put_bytes(&mut out, key);
            put_rev(&mut out, ki.modified);
            out.extend_from_slice(&(ki.generations.len() as u32).to_le_bytes());
            for g in &ki.generations {
                put_i64(&mut out, g.version);
                put_rev(&mut out, g.created);
                out.extend_from_slice(&(g.revs.len() as u32).to_le_bytes());
                for r in &g.revs {
                    put_rev(&mut out, *r);
                }
            }
        }
        numbers.sort_unstable_by_key(|(addr, _, _)| *addr);
        out.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        SnapshotEncoder {
            out,
            start,
            crc: 0,
            outer_crc,
            crc_upto: start,
            numbers,
            next: Revision::new(i64::MIN, i64::MIN),
            last: self.records.last_key_value().map(|(rev, _)| *rev),
            records_left: self.records.len() as u64,
        }
    }
}

impl SnapshotEncoder {
    /// Encodes records until about `budget_bytes` more bytes are out (at least one
    /// record); true once every record is in. `store` must be the store this
    /// encoder started from, uncompacted since.
    pub fn step(&mut self, store: &Store, budget_bytes: usize) -> bool {
        let start = self.out.len();
        if let Some(last) = self.last.filter(|_| self.records_left > 0) {
            for (rev, rec) in store.records.range(self.next..=last) {
                put_rev(&mut self.out, *rev);
                let n = self.number(store, &rec.key);
                self.out.extend_from_slice(&n.to_le_bytes());
                put_i64(&mut self.out, rec.create_revision);
                put_i64(&mut self.out, rec.version);
                put_i64(&mut self.out, rec.lease);
                put_bytes(&mut self.out, &rec.value);
                self.records_left -= 1;
                self.next = Revision::new(rev.main, rev.sub.saturating_add(1));
                if self.records_left == 0 || self.out.len() - start >= budget_bytes {
                    break;
                }
            }
        }
        assert!(
            self.records_left == 0 || self.out.len() > start,
            "records of the snapshot went missing: the store was compacted during the encoding"
        );
        self.fold();
        self.records_left == 0
    }

    fn fold(&mut self) {
        let new = &self.out[self.crc_upto..];
        self.crc = crc32c::extend(self.crc, new);
        self.outer_crc = crc32c::extend(self.outer_crc, new);
        self.crc_upto = self.out.len();
    }

    /// Bytes of the store encoded so far.
    pub fn encoded_bytes(&self) -> usize {
        self.out.len() - self.start
    }

    /// The snapshot bytes (after the prefix, if any), checksum included. Call once
    /// [`SnapshotEncoder::step`] returned true.
    pub fn finish(self) -> Vec<u8> {
        self.finish_with_outer_crc().0
    }

    /// [`SnapshotEncoder::finish`], with the CRC-32C of all the bytes returned,
    /// prefix included.
    pub fn finish_with_outer_crc(mut self) -> (Vec<u8>, u32) {
        assert_eq!(self.records_left, 0, "snapshot encoding finished early");
        self.fold();
        let crc = self.crc.to_le_bytes();
        self.out.extend_from_slice(&crc);
        self.fold();
        (self.out, self.outer_crc)
    }

    fn number(&self, store: &Store, key: &Arc<[u8]>) -> u32 {
        let at = |k: &Arc<[u8]>| {
            self.numbers
                .binary_search_by_key(&address(k), |(addr, _, _)| *addr)
                .ok()
                .map(|i| self.numbers[i].1)
        };
        // A record's key is the index's own allocation; look it up by content only
        // if that ever stops holding.
        at(key)
            .or_else(|| store.index.get_key_value(key).and_then(|(k, _)| at(k)))
            .expect("every record's key is indexed")
    }
}

impl Store {
    /// Reads snapshot bytes back into a store.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Store, SnapshotError> {
        if bytes.len() < MAGIC.len() + 4 + 4 {
            return Err(SnapshotError::Truncated);
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::checksum(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(SnapshotError::ChecksumMismatch);
        }
        let mut r = Reader {
            bytes: body,
            pos: MAGIC.len(),
        };
        let version = r.u32()?;
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let current_rev = r.i64()?;
        let compact_rev = r.i64()?;
        let txn_ops_max = usize::try_from(r.u64()?).map_err(|_| SnapshotError::Malformed("txn ops max"))?;
        let key_count = r.u64()?;
        let mut keys: Vec<Arc<[u8]>> = Vec::new();
        let mut index = BTreeMap::new();
        for _ in 0..key_count {
            let key: Arc<[u8]> = r.bytes()?.into();
            let modified = r.rev()?;
            let gen_count = r.u32()?;
            let mut generations = Vec::new();
            for _ in 0..gen_count {
                let version = r.i64()?;
                let created = r.rev()?;
                let rev_count = r.u32()?;
                let mut revs = Vec::new();
                for _ in 0..rev_count {
                    revs.push(r.rev()?);
                }
                generations.push(Generation {
                    version,
                    created,
                    revs,
                });
            }
            if keys.last().is_some_and(|k| **k >= *key) {
                return Err(SnapshotError::Malformed("keys out of order"));
            }
            keys.push(key.clone());
            index.insert(
                key,
                KeyIndex {
                    modified,
                    generations,
                },
            );
        }
        let record_count = r.u64()?;
        let mut records = BTreeMap::new();
        for _ in 0..record_count {
            let rev = r.rev()?;
            let n = r.u32()? as usize;
            let key = keys
                .get(n)
                .ok_or(SnapshotError::Malformed("record key number"))?
                .clone();
            let create_revision = r.i64()?;
            let version = r.i64()?;
            let lease = r.i64()?;
            let value: Box<[u8]> = r.bytes()?.into();
            if records
                .insert(
                    rev,
                    Record {
                        key,
                        value,
                        create_revision,
                        version,
                        lease,
                    },
                )
                .is_some()
            {
                return Err(SnapshotError::Malformed("duplicate revision"));
            }
        }
        if r.pos != body.len() {
            return Err(SnapshotError::Malformed("trailing bytes"));
        }
        let store = Store {
            config: StoreConfig { txn_ops_max },
            index,
            records,
            current_rev,
            compact_rev,
        };
        store.check_invariants().map_err(SnapshotError::Malformed)?;
        Ok(store)
    }
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_rev(out: &mut Vec<u8>, r: Revision) {
    put_i64(out, r.main);
    put_i64(out, r.sub);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self.pos.checked_add(n).ok_or(SnapshotError::Truncated)?;
        let s = self.bytes.get(self.pos..end).ok_or(SnapshotError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(self.u64()? as i64)
    }

    fn rev(&mut self) -> Result<Revision, SnapshotError> {
        Ok(Revision::new(self.i64()?, self.i64()?))
    }

    fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}
