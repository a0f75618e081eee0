//! The byte form of the replicated lease state, written into member snapshots.
//!
//! Only replicated state is written: IDs, granted TTLs, checkpointed remaining TTLs
//! and attached keys. Deadlines are the primary's private state and are rebuilt by
//! [`Lessor::promote`](super::Lessor::promote), so two members with the same applied
//! index write identical bytes.
//!
//! Layout (all integers little-endian), version [`SNAPSHOT_VERSION`]:
//!
//! ```text
//! version: u8
//! lease_count: u32
//! per lease, IDs strictly ascending:
//!     id: i64, ttl_s: i64, remaining_ttl_s: i64, key_count: u32,
//!     per key, strictly ascending: len: u32, bytes
//! ```
//!
//! Decoding checks everything it relies on and reports the first problem with its
//! offset; it never panics and never allocates more than the input can justify.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::lessor::{Lease, Lessor, LessorConfig, LEASE_TTL_MAX_S, NO_LEASE};
use crate::rng::Rng;

/// The format version this code writes and reads.
pub const SNAPSHOT_VERSION: u8 = 1;

/// Why lease snapshot bytes could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotError {
    /// Byte offset of the field that was wrong.
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lease snapshot: {} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for SnapshotError {}

/// Lease snapshot bytes for `(id, ttl_s, remaining_ttl_s, keys)`, IDs ascending:
/// what [`Lessor::to_bytes`] writes, also for leases imported from elsewhere.
pub fn encode_leases<'a>(
    leases: impl ExactSizeIterator<Item = (i64, i64, i64, &'a BTreeSet<Vec<u8>>)>,
) -> Vec<u8> {
    let mut out = vec![SNAPSHOT_VERSION];
    put_u32(&mut out, leases.len());
    for (id, ttl_s, remaining_ttl_s, keys) in leases {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&ttl_s.to_le_bytes());
        out.extend_from_slice(&remaining_ttl_s.to_le_bytes());
        put_u32(&mut out, keys.len());
        for key in keys {
            put_u32(&mut out, key.len());
            out.extend_from_slice(key);
        }
    }
    out
}

impl Lessor {
    /// The replicated lease state as bytes (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_leases(
            self.leases
                .iter()
                .map(|(&id, l)| (id, l.ttl_s, l.remaining_ttl_s, &l.keys)),
        )
    }

    /// A non-primary lessor holding the state in `bytes`. TTLs below this
    /// configuration's minimum are raised to it, as etcd does on recovery.
    pub fn from_bytes(config: LessorConfig, rng: Rng, bytes: &[u8]) -> Result<Lessor, SnapshotError> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u8()?;
        if version != SNAPSHOT_VERSION {
            return Err(r.fail_at(0, "unknown version"));
        }
        let count = r.count(28)?;
        let mut leases = BTreeMap::new();
        let mut key_leases = BTreeMap::new();
        let mut previous_id = None;
        for _ in 0..count {
            let id_at = r.at;
            let id = r.i64()?;
            if id == NO_LEASE {
                return Err(r.fail_at(id_at, "lease ID 0"));
            }
            if previous_id.is_some_and(|p| p >= id) {
                return Err(r.fail_at(id_at, "lease IDs not strictly ascending"));
            }
            previous_id = Some(id);
            let ttl_at = r.at;
            let ttl_s = r.i64()?;
            if !(1..=LEASE_TTL_MAX_S).contains(&ttl_s) {
                return Err(r.fail_at(ttl_at, "TTL out of range"));
            }
            let remaining_at = r.at;
            let remaining_ttl_s = r.i64()?;
            if !(0..=ttl_s).contains(&remaining_ttl_s) {
                return Err(r.fail_at(remaining_at, "remaining TTL out of range"));
            }
            let key_count = r.count(4)?;
            let mut keys = BTreeSet::new();
            for _ in 0..key_count {
                let key_at = r.at;
                let len = r.count(1)?;
                let key = r.take(len)?.to_vec();
                if keys.last().is_some_and(|last: &Vec<u8>| *last >= key) {
                    return Err(r.fail_at(key_at, "keys not strictly ascending"));
                }
                if key_leases.insert(key.clone(), id).is_some() {
                    return Err(r.fail_at(key_at, "key attached to two leases"));
                }
                keys.insert(key);
            }
            let ttl_s = ttl_s.max(config.ttl_min_s);
            leases.insert(id, Lease::new(ttl_s, remaining_ttl_s, keys));
        }
        if r.at != bytes.len() {
            return Err(r.fail_at(r.at, "trailing bytes"));
        }
        Ok(Lessor::from_parts(config, rng, leases, key_leases))
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("lease state counts fit in u32");
    out.extend_from_slice(&n.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn fail_at(&self, offset: usize, reason: &'static str) -> SnapshotError {
        SnapshotError { offset, reason }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.fail_at(self.at, "truncated"));
        };
        let field = &self.bytes[self.at..end];
        self.at = end;
        Ok(field)
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, SnapshotError> {
        let field = self.take(8)?;
        Ok(i64::from_le_bytes(field.try_into().expect("took 8 bytes")))
    }

    /// A u32 count of items that each take at least `item_bytes_min` bytes; a count
    /// the remaining input cannot hold is rejected before anything is allocated.
    fn count(&mut self, item_bytes_min: usize) -> Result<usize, SnapshotError> {
        let at = self.at;
        let field = self.take(4)?;
        let n = u32::from_le_bytes(field.try_into().expect("took 4 bytes")) as usize;
        let remaining = self.bytes.len() - self.at;
        if n.saturating_mul(item_bytes_min) > remaining {
            return Err(self.fail_at(at, "count larger than the remaining bytes"));
        }
        Ok(n)
    }
}
