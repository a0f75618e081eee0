//! The grpc-proxy's cache of range answers (etcd's `grpcproxy/cache`).
//!
//! Serializable ranges are answered from it when the same request with the same
//! credentials was answered before (a user never gets an answer the cluster gave another);
//! every range answer the proxy forwards is stored under its request made serializable.
//! Writes through the proxy (put, delete, txn, and the keys a txn compares) drop the
//! entries whose key range they touch; a compaction drops the entries below it and makes
//! a request for a compacted revision fail with etcd's "required revision has been
//! compacted". As in etcd, writes that bypass the proxy are not seen: a serializable read
//! through the proxy may be that stale (a linearizable one never is).
//!
//! Bounded to [`CACHE_ENTRIES_MAX`] entries; the least recently used goes first.

use std::collections::BTreeMap;

use detcd_proto::etcdserverpb::{RangeRequest, RangeResponse};
use prost::Message as _;

/// Entries kept (etcd's `DefaultMaxEntries`).
pub const CACHE_ENTRIES_MAX: usize = 2048;

/// One cached answer and the key range it covers.
#[derive(Debug, Clone)]
struct Entry {
    answer: RangeResponse,
    key: Vec<u8>,
    end: Vec<u8>,
    /// The revision asked for (0: the latest). Answers at a fixed revision never
    /// change: writes do not invalidate them.
    revision: i64,
    /// When it was last used (a counter), for eviction.
    used: u64,
}

/// Why [`RangeCache::get`] has no answer to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// Not cached.
    Absent,
    /// The revision asked for is compacted.
    Compacted,
}

/// The cache: requests (encoded, made serializable) to answers.
#[derive(Debug)]
pub struct RangeCache {
    entries: BTreeMap<Vec<u8>, Entry>,
    /// The last compaction seen through the proxy (-1: none).
    compacted: i64,
    clock: u64,
    max: usize,
}

impl Default for RangeCache {
    fn default() -> Self {
        Self::with_capacity(CACHE_ENTRIES_MAX)
    }
}

/// The cache key of a request from `who` ([`super::upstream::identity`]): who, then the
/// request's encoding with `serializable` set.
fn cache_key(who: &[u8], request: &RangeRequest) -> Vec<u8> {
    let mut r = request.clone();
    r.serializable = true;
    let mut key = (who.len() as u64).to_be_bytes().to_vec();
    key.extend_from_slice(who);
    key.extend_from_slice(&r.encode_to_vec());
    key
}

/// Whether `[a, a_end)` and `[b, b_end)` share a key (an empty end: the one key; `"\0"`:
/// to the end of the key space).
fn overlaps(a: &[u8], a_end: &[u8], b: &[u8], b_end: &[u8]) -> bool {
    let below_end = |k: &[u8], start: &[u8], end: &[u8]| match end {
        [] => k == start,
        [0] => k >= start,
        _ => k >= start && k < end,
    };
    match (a_end.is_empty(), b_end.is_empty()) {
        (true, _) => below_end(a, b, b_end),
        (_, true) => below_end(b, a, a_end),
        _ => {
            let a_before_b_end = b_end == [0] || a < b_end;
            let b_before_a_end = a_end == [0] || b < a_end;
            a_before_b_end && b_before_a_end
        }
    }
}

impl RangeCache {
    pub fn with_capacity(max: usize) -> Self {
        RangeCache {
            entries: BTreeMap::new(),
            compacted: -1,
            clock: 0,
            max: max.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached answer to `request` from `who`.
    pub fn get(&mut self, who: &[u8], request: &RangeRequest) -> Result<RangeResponse, Miss> {
        let key = cache_key(who, request);
        if request.revision > 0 && request.revision < self.compacted {
            self.entries.remove(&key);
            return Err(Miss::Compacted);
        }
        self.clock += 1;
        let clock = self.clock;
        match self.entries.get_mut(&key) {
            Some(entry) => {
                entry.used = clock;
                Ok(entry.answer.clone())
            }
            None => Err(Miss::Absent),
        }
    }

    /// Stores `answer` to `request` from `who`.
    pub fn add(&mut self, who: &[u8], request: &RangeRequest, answer: &RangeResponse) {
        if request.revision != 0 && request.revision < self.compacted {
            return;
        }
        if self.entries.len() >= self.max {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        self.clock += 1;
        self.entries.insert(
            cache_key(who, request),
            Entry {
                answer: answer.clone(),
                key: request.key.clone(),
                end: request.range_end.clone(),
                revision: request.revision,
                used: self.clock,
            },
        );
    }

    /// Drops the answers about keys in `[key, end)` (a write went through).
    pub fn invalidate(&mut self, key: &[u8], end: &[u8]) {
        self.entries
            .retain(|_, e| e.revision != 0 || !overlaps(&e.key, &e.end, key, end));
    }

    /// A compaction at `revision` went through: answers at revisions below it go.
    pub fn compact(&mut self, revision: i64) {
        self.compacted = self.compacted.max(revision);
        let compacted = self.compacted;
        self.entries
            .retain(|_, e| e.revision == 0 || e.revision >= compacted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(key: &str, end: &str, revision: i64) -> RangeRequest {
        RangeRequest {
            key: key.into(),
            range_end: end.into(),
            revision,
            ..RangeRequest::default()
        }
    }

    fn answer(count: i64) -> RangeResponse {
        RangeResponse {
            count,
            ..RangeResponse::default()
        }
    }

    #[test]
    fn writes_drop_overlapping_answers_only() {
        let mut c = RangeCache::default();
        c.add(b"", &range("a", "", 0), &answer(1));
        c.add(b"", &range("b", "d", 0), &answer(2));
        c.add(b"", &range("x", "\0", 0), &answer(3));
        c.add(b"", &range("c", "", 5), &answer(4));
        assert_eq!(c.get(b"", &range("a", "", 0)).map(|r| r.count), Ok(1));
        c.invalidate(b"c", b"");
        assert_eq!(c.get(b"", &range("b", "d", 0)), Err(Miss::Absent));
        assert_eq!(c.get(b"", &range("a", "", 0)).map(|r| r.count), Ok(1));
        // A request at a fixed revision stays.
        assert_eq!(c.get(b"", &range("c", "", 5)).map(|r| r.count), Ok(4));
        c.invalidate(b"y", b"");
        assert_eq!(c.get(b"", &range("x", "\0", 0)), Err(Miss::Absent));
        c.invalidate(b"\0", b"\0");
        assert_eq!(c.get(b"", &range("a", "", 0)), Err(Miss::Absent));
    }

    #[test]
    fn compaction_refuses_old_revisions() {
        let mut c = RangeCache::default();
        c.add(b"", &range("a", "", 3), &answer(1));
        c.compact(5);
        assert_eq!(c.get(b"", &range("a", "", 3)), Err(Miss::Compacted));
        c.add(b"", &range("a", "", 4), &answer(1));
        assert_eq!(c.get(b"", &range("a", "", 4)), Err(Miss::Compacted));
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut c = RangeCache::with_capacity(2);
        c.add(b"", &range("a", "", 0), &answer(1));
        c.add(b"", &range("b", "", 0), &answer(2));
        let _ = c.get(b"", &range("a", "", 0));
        c.add(b"", &range("c", "", 0), &answer(3));
        assert!(c.get(b"", &range("a", "", 0)).is_ok());
        assert_eq!(c.get(b"", &range("b", "", 0)), Err(Miss::Absent));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn answers_are_kept_per_credentials() {
        let mut c = RangeCache::default();
        c.add(b"token=alice", &range("a", "", 0), &answer(1));
        assert_eq!(c.get(b"token=bob", &range("a", "", 0)), Err(Miss::Absent));
        assert_eq!(c.get(b"token=alice", &range("a", "", 0)).map(|r| r.count), Ok(1));
        c.invalidate(b"a", b"");
        assert_eq!(c.get(b"token=alice", &range("a", "", 0)), Err(Miss::Absent));
    }
}
