//! The store: key index plus revision storage, and the KV requests over them.
//!
//! Reads and writes take and return etcd's wire types. Every request is validated
//! before anything changes; a write that still fails half-way (only possible in one
//! corner etcd itself panics on, see [`Store::txn`]) is rolled back, so an `Err`
//! always leaves the store as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use detcd_proto::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader,
};
use detcd_proto::mvccpb::{event::EventType, Event, KeyValue};

use super::key_index::KeyIndex;
use super::revision::Revision;
use crate::error::{self, EtcdError};

/// etcd's `--max-txn-ops` default.
pub const TXN_OPS_MAX_DEFAULT: usize = 128;

/// Limits a store enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Most compares, or most ops in one branch, a txn may hold (`--max-txn-ops`).
    pub txn_ops_max: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            txn_ops_max: TXN_OPS_MAX_DEFAULT,
        }
    }
}

/// A write's response and the events it produced, in the order they happened.
/// Every event carries `prev_kv` when the key had a live value before the write
/// (the watch hub strips it for watchers that did not ask).
#[derive(Clone, Debug, PartialEq)]
pub struct Applied<R> {
    pub response: R,
    pub events: Vec<Event>,
}

/// One stored revision of a key. A tombstone has `version == 0` (etcd stores a
/// delete as a `KeyValue` holding only the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: Arc<[u8]>,
    pub(crate) value: Box<[u8]>,
    pub(crate) create_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
}

impl Record {
    pub(crate) fn is_tombstone(&self) -> bool {
        self.version == 0
    }

    pub(crate) fn to_kv(&self, rev: Revision) -> KeyValue {
        if self.is_tombstone() {
            return KeyValue {
                key: self.key.to_vec(),
                mod_revision: rev.main,
                ..Default::default()
            };
        }
        KeyValue {
            key: self.key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: rev.main,
            version: self.version,
            value: self.value.to_vec(),
            lease: self.lease,
        }
    }
}

/// The multi-version key-value store of one member.
///
/// * `index`: every key (stored once, shared with its records) to its generations.
/// * `records`: every revision still kept, by revision.
/// * `current_rev`: the revision of the last write; 1 for an empty store, as in etcd.
/// * `compact_rev`: the last compaction's revision; -1 before the first, as in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    pub(crate) config: StoreConfig,
    pub(crate) index: BTreeMap<Arc<[u8]>, KeyIndex>,
    pub(crate) records: BTreeMap<Revision, Record>,
    pub(crate) current_rev: i64,
    pub(crate) compact_rev: i64,
}

/// The state of one write request while it runs: changes get revision
/// `(begin + 1, n)` for the n-th change; `touched` lists keys to revert on failure.
pub(crate) struct Writes {
    pub(crate) begin: i64,
    pub(crate) events: Vec<Event>,
    touched: Vec<Arc<[u8]>>,
}

impl Writes {
    /// The revision a read inside this write sees (its own changes included).
    pub(crate) fn read_rev(&self) -> i64 {
        if self.events.is_empty() {
            self.begin
        } else {
            self.begin + 1
        }
    }

    fn next_rev(&self) -> Revision {
        Revision::new(self.begin + 1, self.events.len() as i64)
    }
}

pub(crate) fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl Default for Store {
    fn default() -> Self {
        Self::new(StoreConfig::default())
    }
}

impl Store {
    pub fn new(config: StoreConfig) -> Self {
        Store {
            config,
            index: BTreeMap::new(),
            records: BTreeMap::new(),
            current_rev: 1,
            compact_rev: -1,
        }
    }

    /// Serves a `Range` (etcd's `Range` RPC, not inside a txn).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, EtcdError> {
        check_range(req)?;
        self.range_at(req, self.current_rev)
    }

    /// Serves a `Put`. `lease_exists` answers whether a lease ID is granted (the
    /// lessor lives outside the store).
    pub fn put(
        &mut self,
        req: &PutRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<Applied<PutResponse>, EtcdError> {
        check_put(req)?;
        if req.lease != 0 && !lease_exists(req.lease) {
            return Err(error::LEASE_NOT_FOUND);
        }
        let mut w = self.begin();
        match self.put_in(&mut w, req) {
            Ok(response) => Ok(Applied {
                response,
                events: self.commit(w),
            }),
            Err(e) => {
                self.rollback(w);
                Err(e)
            }
        }
    }

    /// Serves a `DeleteRange`: one DELETE event per live key, all at one revision.
    pub fn delete_range(
        &mut self,
        req: &DeleteRangeRequest,
    ) -> Result<Applied<DeleteRangeResponse>, EtcdError> {
        check_delete(req)?;
        let mut w = self.begin();
        let response = self.delete_in(&mut w, req);
        Ok(Applied {
            response,
            events: self.commit(w),
        })
    }

    /// Deletes the given keys (those that exist) at one revision, as a lease revoke
    /// does. Returns the revision after the write and the events.
    pub fn delete_keys(&mut self, keys: &[Vec<u8>]) -> (i64, Vec<Event>) {
        let mut w = self.begin();
        for k in keys {
            self.delete_key(&mut w, k);
        }
        let events = self.commit(w);
        (self.current_rev, events)
    }

    /// Serves a `Compact`: drops every revision before `revision` except the last one
    /// of each key that is live then (and a tombstone at exactly `revision`, kept
    /// until the next compaction so watchers from there still see the delete).
    pub fn compact(&mut self, req: &CompactionRequest) -> Result<CompactionResponse, EtcdError> {
        self.compact_counted(req).map(|(response, _)| response)
    }

    /// [`Store::compact`], with the number of stored revisions it removed (etcd's
    /// `db_compaction_keys_total` counts the same: every revision dropped from storage).
    pub fn compact_counted(
        &mut self,
        req: &CompactionRequest,
    ) -> Result<(CompactionResponse, u64), EtcdError> {
        let at = req.revision;
        if at <= self.compact_rev {
            return Err(error::COMPACTED);
        }
        if at > self.current_rev {
            return Err(error::FUTURE_REV);
        }
        let mut available = Vec::new();
        let mut emptied = Vec::new();
        for (key, ki) in self.index.iter_mut() {
            ki.compact(at, &mut available);
            if ki.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.index.remove(&key);
        }
        let keep: BTreeSet<Revision> = available.into_iter().collect();
        let doomed: Vec<Revision> = self
            .records
            .range(..Revision::new(at + 1, 0))
            .map(|(rev, _)| *rev)
            .filter(|rev| !keep.contains(rev))
            .collect();
        let removed = doomed.len() as u64;
        for rev in doomed {
            self.records.remove(&rev);
        }
        self.compact_rev = at;
        Ok((
            CompactionResponse {
                header: header(self.current_rev),
            },
            removed,
        ))
    }

    /// The revision of the last write (1 for an empty store).
    pub fn revision(&self) -> i64 {
        self.current_rev
    }

    /// The revision of the last compaction, -1 if there was none (etcd's value).
    pub fn compact_revision(&self) -> i64 {
        self.compact_rev
    }

    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// Number of keys that currently exist.
    pub fn live_keys(&self) -> usize {
        self.index
            .values()
            .filter(|ki| ki.get(self.current_rev).is_some())
            .count()
    }

    /// The events of every change to `[key, range_end)` with main revision in
    /// `[from_rev, to_rev]`, in revision order, for watchers catching up. Stops after
    /// the revision in which the count reaches `events_max` (a revision is never
    /// split). `COMPACTED` when `from_rev` is before the compaction revision.
    /// `prev_kv` fills each event's previous value (looked up at revision - 1,
    /// omitted when compacted).
    pub fn events(
        &self,
        key: &[u8],
        range_end: &[u8],
        from_rev: i64,
        to_rev: i64,
        events_max: usize,
        prev_kv: bool,
    ) -> Result<Vec<Event>, EtcdError> {
        if from_rev < self.compact_rev {
            return Err(error::COMPACTED);
        }
        let mut out: Vec<Event> = Vec::new();
        if from_rev > to_rev {
            return Ok(out);
        }
        let mut last_main = None;
        for (rev, rec) in self
            .records
            .range(Revision::new(from_rev, 0)..Revision::new(to_rev.saturating_add(1), 0))
        {
            if out.len() >= events_max && last_main != Some(rev.main) {
                break;
            }
            if !super::key_range::in_range(key, range_end, &rec.key) {
                continue;
            }
            last_main = Some(rev.main);
            let prev = if prev_kv {
                self.kv_at(&rec.key, rev.main - 1)
            } else {
                None
            };
            out.push(event_of(rec.to_kv(*rev), prev));
        }
        Ok(out)
    }

    /// The key's value as of main revision `at` (None if absent or compacted away).
    pub fn kv_at(&self, key: &[u8], at: i64) -> Option<KeyValue> {
        if at < self.compact_rev {
            return None;
        }
        let got = self.index.get(key)?.get(at)?;
        self.records.get(&got.modified).map(|rec| rec.to_kv(got.modified))
    }

    /// Checks the store's invariants; for tests and debug builds, and for snapshots
    /// read back.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        if self.current_rev < 1 {
            return Err("current revision below 1");
        }
        if self.compact_rev > self.current_rev || self.compact_rev < -1 {
            return Err("compact revision out of bounds");
        }
        for (key, ki) in &self.index {
            ki.check()?;
            if ki.is_empty() {
                return Err("empty key index left in the tree");
            }
            for g in &ki.generations {
                for r in &g.revs {
                    let rec = self.records.get(r).ok_or("indexed revision without record")?;
                    if *rec.key != **key {
                        return Err("record key differs from its index key");
                    }
                }
            }
        }
        let indexed: usize = self
            .index
            .values()
            .flat_map(|ki| ki.generations.iter())
            .map(|g| g.revs.len())
            .sum();
        if indexed != self.records.len() {
            return Err("records not indexed");
        }
        if let Some((rev, _)) = self.records.last_key_value() {
            if rev.main > self.current_rev {
                return Err("record after the current revision");
            }
        }
        Ok(())
    }

    // ---- internals shared with txn, hash and snapshot ----

    pub(crate) fn begin(&self) -> Writes {
        Writes {
            begin: self.current_rev,
            events: Vec::new(),
            touched: Vec::new(),
        }
    }

    pub(crate) fn commit(&mut self, w: Writes) -> Vec<Event> {
        if !w.events.is_empty() {
            self.current_rev = w.begin + 1;
        }
        w.events
    }

    /// Undoes every change `w` made: revisions `begin + 1` leave index and storage.
    pub(crate) fn rollback(&mut self, w: Writes) {
        let main = w.begin + 1;
        for key in w.touched {
            if let Some(ki) = self.index.get_mut(&key) {
                ki.revert_from(main);
                if ki.is_empty() {
                    self.index.remove(&key);
                }
            }
        }
        let doomed: Vec<Revision> = self
            .records
            .range(Revision::new(main, 0)..)
            .map(|(r, _)| *r)
            .collect();
        for r in doomed {
            self.records.remove(&r);
        }
    }

    /// A range at `cur` (the current revision, or a txn's own read revision).
    pub(crate) fn range_at(&self, req: &RangeRequest, cur: i64) -> Result<RangeResponse, EtcdError> {
        let mut rev = req.revision;
        if rev > cur {
            return Err(error::FUTURE_REV);
        }
        if rev <= 0 {
            rev = cur;
        }
        if rev < self.compact_rev {
            return Err(error::COMPACTED);
        }
        let filtered = req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        let mut fetch_limit = if req.sort_order != SortOrder::None as i32 || filtered {
            0
        } else {
            req.limit
        };
        if fetch_limit > 0 {
            fetch_limit += 1;
        }
        let (mut kvs, count) = if req.count_only {
            (Vec::new(), self.count_at(&req.key, &req.range_end, rev))
        } else {
            self.kvs_at(&req.key, &req.range_end, rev, fetch_limit)
        };
        if req.max_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision <= req.max_mod_revision);
        }
        if req.min_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision >= req.min_mod_revision);
        }
        if req.max_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision <= req.max_create_revision);
        }
        if req.min_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision >= req.min_create_revision);
        }
        sort_kvs(&mut kvs, req.sort_order, req.sort_target);
        let mut more = false;
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value = Vec::new();
            }
        }
        Ok(RangeResponse {
            header: header(cur),
            kvs,
            more,
            count: count as i64,
        })
    }

    /// Live keys of the range at `at`, in key order, at most `limit` of them
    /// (`limit <= 0`: all), and how many there are in all.
    pub(crate) fn kvs_at(&self, key: &[u8], range_end: &[u8], at: i64, limit: i64) -> (Vec<KeyValue>, usize) {
        let mut kvs = Vec::new();
        let mut total = 0;
        for (_, ki) in self.index_range(key, range_end) {
            let Some(got) = ki.get(at) else { continue };
            total += 1;
            if limit <= 0 || (kvs.len() as i64) < limit {
                let rec = &self.records[&got.modified];
                kvs.push(rec.to_kv(got.modified));
            }
        }
        (kvs, total)
    }

    fn count_at(&self, key: &[u8], range_end: &[u8], at: i64) -> usize {
        self.index_range(key, range_end)
            .filter(|(_, ki)| ki.get(at).is_some())
            .count()
    }

    pub(crate) fn index_range<'a>(
        &'a self,
        key: &[u8],
        range_end: &[u8],
    ) -> Box<dyn Iterator<Item = (&'a Arc<[u8]>, &'a KeyIndex)> + 'a> {
        match range_end {
            [] => Box::new(self.index.get_key_value(key).into_iter()),
            [0] => Box::new(
                self.index
                    .range::<[u8], _>((Bound::Included(key), Bound::Unbounded)),
            ),
            end if end <= key => Box::new(std::iter::empty()),
            end => Box::new(
                self.index
                    .range::<[u8], _>((Bound::Included(key), Bound::Excluded(end))),
            ),
        }
    }

    /// A put inside write `w`, after validation (the lease is known to exist).
    pub(crate) fn put_in(&mut self, w: &mut Writes, req: &PutRequest) -> Result<PutResponse, EtcdError> {
        let mut value = req.value.as_slice();
        let mut lease = req.lease;
        let prev = if req.ignore_value || req.ignore_lease || req.prev_kv {
            self.kv_at(&req.key, w.read_rev())
        } else {
            None
        };
        if req.ignore_value || req.ignore_lease {
            let Some(p) = &prev else {
                return Err(error::KEY_NOT_FOUND);
            };
            if req.ignore_value {
                value = &p.value;
            }
            if req.ignore_lease {
                lease = p.lease;
            }
        }
        let value: Box<[u8]> = value.into();
        self.put_key(w, &req.key, value, lease);
        Ok(PutResponse {
            header: header(w.begin + 1),
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    pub(crate) fn delete_in(&mut self, w: &mut Writes, req: &DeleteRangeRequest) -> DeleteRangeResponse {
        let read = w.read_rev();
        let (live, _) = self.kvs_at(&req.key, &req.range_end, read, 0);
        for kv in &live {
            self.delete_key(w, &kv.key);
        }
        let deleted = live.len() as i64;
        let revision = if deleted != 0 || !w.events.is_empty() {
            w.begin + 1
        } else {
            w.begin
        };
        DeleteRangeResponse {
            header: header(revision),
            deleted,
            prev_kvs: if req.prev_kv { live } else { Vec::new() },
        }
    }

    fn put_key(&mut self, w: &mut Writes, key: &[u8], value: Box<[u8]>, lease: i64) {
        let rev = w.next_rev();
        let prev = self.kv_at(key, w.begin);
        let key: Arc<[u8]> = match self.index.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<[u8]> = key.into();
                self.index.insert(k.clone(), KeyIndex::default());
                k
            }
        };
        let ki = self.index.get_mut(&key).expect("just ensured");
        let (create_revision, version) = match ki.get(rev.main) {
            Some(at) => (at.created.main, at.version + 1),
            None => (rev.main, 1),
        };
        ki.put(rev);
        let record = Record {
            key: key.clone(),
            value,
            create_revision,
            version,
            lease,
        };
        let kv = record.to_kv(rev);
        self.records.insert(rev, record);
        w.touched.push(key);
        w.events.push(event_of(kv, prev));
    }

    /// Deletes one key in `w` if it is live; returns whether it was.
    fn delete_key(&mut self, w: &mut Writes, key: &[u8]) -> bool {
        let rev = w.next_rev();
        let Some((k, ki)) = self.index.get_key_value(key) else {
            return false;
        };
        if ki.get(w.read_rev()).is_none() {
            return false;
        }
        let k = k.clone();
        let prev = self.kv_at(key, w.begin);
        let ki = self.index.get_mut(key).expect("present");
        assert!(ki.tombstone(rev), "live key refused its tombstone");
        let record = Record {
            key: k.clone(),
            value: Box::default(),
            create_revision: 0,
            version: 0,
            lease: 0,
        };
        let kv = record.to_kv(rev);
        self.records.insert(rev, record);
        w.touched.push(k);
        w.events.push(event_of(kv, prev));
        true
    }
}

pub(crate) fn event_of(kv: KeyValue, prev_kv: Option<KeyValue>) -> Event {
    let kind = if kv.create_revision == 0 {
        EventType::Delete
    } else {
        EventType::Put
    };
    Event {
        r#type: kind as i32,
        kv: Some(kv),
        prev_kv,
    }
}

/// etcd's sort rules: a non-KEY target with order NONE sorts ascending; KEY ascending
/// is the natural order. Ties keep key order (a stable sort, where etcd's is not).
fn sort_kvs(kvs: &mut [KeyValue], order: i32, target: i32) {
    let mut order = order;
    if target != SortTarget::Key as i32 && order == SortOrder::None as i32 {
        order = SortOrder::Ascend as i32;
    } else if target == SortTarget::Key as i32 && order == SortOrder::Ascend as i32 {
        order = SortOrder::None as i32;
    }
    if order == SortOrder::None as i32 {
        return;
    }
    let descend = order == SortOrder::Descend as i32;
    let cmp = |a: &KeyValue, b: &KeyValue| {
        let o = match SortTarget::try_from(target).unwrap_or(SortTarget::Key) {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        if descend {
            o.reverse()
        } else {
            o
        }
    };
    kvs.sort_by(cmp);
}

/// etcd's `checkRangeRequest` (done at the gRPC layer, before raft).
pub(crate) fn check_range(req: &RangeRequest) -> Result<(), EtcdError> {
    if req.key.is_empty() {
        return Err(error::KEY_NOT_PROVIDED);
    }
    if SortOrder::try_from(req.sort_order).is_err() || SortTarget::try_from(req.sort_target).is_err() {
        return Err(error::INVALID_SORT_OPTION);
    }
    Ok(())
}

/// etcd's `checkPutRequest`.
pub(crate) fn check_put(req: &PutRequest) -> Result<(), EtcdError> {
    if req.key.is_empty() {
        return Err(error::KEY_NOT_PROVIDED);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(error::VALUE_PROVIDED);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(error::LEASE_PROVIDED);
    }
    Ok(())
}

/// etcd's `checkDeleteRequest`.
pub(crate) fn check_delete(req: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if req.key.is_empty() {
        return Err(error::KEY_NOT_PROVIDED);
    }
    Ok(())
}
