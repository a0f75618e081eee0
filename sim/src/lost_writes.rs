//! Lost writes resolved after a run from the writes the cluster applied, as etcd's robustness
//! tests patch their histories with the requests they find persisted.
//!
//! A write whose answer never came (timed out, connection lost, or still in flight at the
//! end) may take effect at any time after its invocation, or never: each one multiplies the
//! orders the linearizability search must try, and a few overlapping ones on a key can exhaust
//! its budget. The simulator can look. [`WriteLog`] records every put the members apply, by
//! revision, read from whichever member's store gets there first (before a compaction removes
//! it); since every written value is unique, it says whether a lost write applied and at which
//! revision.
//!
//! Soundness. Resolving only narrows what "unknown" allowed (applied at that revision, or not
//! at all), so it can only add violations the search finds, never hide one. It must not invent
//! one either, so "not applied" is concluded only when the log holds every revision the write
//! could have created: above the highest revision answered before it was sent, up to the
//! newest revision any client saw, with no revision lost to a compaction before it was
//! recorded. A lost delete is resolved only when no delete of its key happened in its
//! window (it then deleted nothing); otherwise it stays unknown, since two deletes of a key
//! look alike in the log.

use std::collections::BTreeMap;

use detcd_core::mvcc::store::Store;
use detcd_proto::mvccpb::event::EventType;

use crate::check::history::{History, KvOp, OpId, Outcome};

/// Every put applied anywhere in the cluster, by (key, value), and every delete, by key.
#[derive(Clone, Debug, Default)]
pub struct WriteLog {
    /// Revisions up to this one are recorded (or listed in `gaps`).
    recorded: i64,
    puts: BTreeMap<(Vec<u8>, Vec<u8>), i64>,
    /// The revisions at which each key was deleted, ascending.
    deletes: BTreeMap<Vec<u8>, Vec<i64>>,
    /// Revision ranges (inclusive) a compaction removed before they were recorded.
    gaps: Vec<(i64, i64)>,
}

impl WriteLog {
    /// Records what `store` applied beyond what is recorded. Called after every input to
    /// every member: members apply the same writes in the same order, so whichever is ahead
    /// extends the log.
    pub fn observe(&mut self, store: &Store) {
        let revision = store.revision();
        if revision <= self.recorded {
            return;
        }
        let mut from = self.recorded + 1;
        if from < store.compact_revision() {
            self.gaps.push((from, store.compact_revision()));
            from = store.compact_revision();
        }
        if let Ok(events) = store.events(&[0], &[0], from, revision, usize::MAX, false) {
            for event in &events {
                let Some(kv) = &event.kv else { continue };
                if event.r#type() == EventType::Put {
                    self.puts
                        .entry((kv.key.clone(), kv.value.clone()))
                        .or_insert(kv.mod_revision);
                } else {
                    self.deletes
                        .entry(kv.key.clone())
                        .or_default()
                        .push(kv.mod_revision);
                }
            }
        }
        self.recorded = revision;
    }

    /// The revision at which `value` was put at `key`, if it was.
    pub fn applied_at(&self, key: &[u8], value: &[u8]) -> Option<i64> {
        self.puts.get(&(key.to_vec(), value.to_vec())).copied()
    }

    /// Whether `key` was deleted at some revision in `from..=to`.
    pub fn deleted_within(&self, key: &[u8], from: i64, to: i64) -> bool {
        self.deletes
            .get(key)
            .is_some_and(|revs| revs.iter().any(|&r| from <= r && r <= to))
    }

    /// Whether every revision in `from..=to` is recorded.
    pub fn complete(&self, from: i64, to: i64) -> bool {
        to <= self.recorded && !self.gaps.iter().any(|&(a, b)| a <= to && from <= b)
    }
}

/// What [`resolve`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Lost writes found applied.
    pub applied: u64,
    /// Lost writes found not applied (dropped from the check).
    pub not_applied: u64,
    /// Lost writes left unknown (deletes, or revisions the log lacks).
    pub left: u64,
}

/// The newest revision (or v2 index) any answer had shown by a given moment: a
/// request invoked then cannot have taken effect at or below it.
pub(crate) struct AnsweredFloor<T> {
    /// (answered at, highest value answered by then), in time order.
    answers: Vec<(u64, T)>,
}

impl<T: Copy + Ord + Default> AnsweredFloor<T> {
    /// From (answered at, value shown) pairs in any order.
    pub(crate) fn new(mut answers: Vec<(u64, T)>) -> AnsweredFloor<T> {
        answers.sort_unstable();
        let mut newest_seen = T::default();
        for answer in &mut answers {
            newest_seen = newest_seen.max(answer.1);
            answer.1 = newest_seen;
        }
        AnsweredFloor { answers }
    }

    /// The highest value any answer showed (the default when none did).
    pub(crate) fn newest(&self) -> T {
        self.answers.last().map_or_else(T::default, |a| a.1)
    }

    /// The highest value answered strictly before `t` (the default when none was).
    pub(crate) fn before(&self, t: u64) -> T {
        match self.answers.partition_point(|&(at, _)| at < t) {
            0 => T::default(),
            n => self.answers[n - 1].1,
        }
    }
}

/// Resolves the lost puts and compare-and-swaps of `history` against `log`.
pub fn resolve(history: &mut History, log: &WriteLog) -> Resolved {
    let ops = history.operations();
    // (answered at, highest revision answered by then), in time order.
    let answers = AnsweredFloor::new(
        ops.iter()
            .filter_map(|op| Some((op.returned_at()?, op.result()?.revision())))
            .collect(),
    );
    let newest_seen = answers.newest();
    let floor_before = |t: u64| answers.before(t);
    let mut resolved = Resolved::default();
    let mut decisions: Vec<(OpId, Option<i64>)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if !matches!(op.outcome, Outcome::Unknown { .. } | Outcome::Pending) {
            continue;
        }
        // If it applied, it created a revision above every one answered before it was sent
        // (or none: a delete of an absent key); if no client saw beyond the log, whatever it
        // did within the history is in the log.
        let floor = floor_before(op.invoked_at);
        let complete = log.complete(floor + 1, newest_seen);
        let applied_at = match &op.op {
            KvOp::Put { key, value }
            | KvOp::CompareAndSwap {
                key,
                new_value: value,
                ..
            } => log.applied_at(key, value),
            // A delete is told apart from another only when no delete of its key happened
            // in its window: then it deleted nothing, which is the same as not applying.
            KvOp::Delete { key } if complete && !log.deleted_within(key, floor + 1, newest_seen) => None,
            KvOp::Delete { .. } => {
                resolved.left += 1;
                continue;
            }
            KvOp::Get { .. } => continue,
        };
        match applied_at {
            Some(_) => resolved.applied += 1,
            None if complete => resolved.not_applied += 1,
            None => {
                resolved.left += 1;
                continue;
            }
        }
        decisions.push((OpId(i), applied_at));
    }
    for (id, applied_at) in decisions {
        history.resolve_lost(id, applied_at);
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::KvResult;
    use detcd_core::mvcc::store::StoreConfig;
    use detcd_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest};

    fn put(store: &mut Store, key: &str, value: &str) -> i64 {
        let req = PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        store
            .put(&req, &|_| true)
            .expect("put")
            .response
            .header
            .expect("header")
            .revision
    }

    /// Records `op` invoked at `at` and lost 10 later.
    fn lost(h: &mut History, op: KvOp, at: u64) -> OpId {
        let id = h.invoke(1, op, at);
        h.fail_unknown(id, at + 10);
        id
    }

    fn lost_put(h: &mut History, key: &str, value: &str, at: u64) -> OpId {
        let op = KvOp::Put {
            key: key.into(),
            value: value.into(),
        };
        lost(h, op, at)
    }

    /// A read of another key, answered at `at` with the store at `revision`.
    fn client_saw(h: &mut History, revision: i64, at: u64) {
        let id = h.invoke(
            2,
            KvOp::Get {
                key: b"other".to_vec(),
            },
            at - 1,
        );
        let absent = KvResult::GetOk {
            value: None,
            mod_revision: 0,
            version: 0,
            revision,
        };
        h.complete(id, absent, at);
    }

    #[test]
    fn lost_puts_resolve_to_their_revision_or_to_not_applied() {
        let mut store = Store::new(StoreConfig::default());
        let mut log = WriteLog::default();
        let mut h = History::new();
        let applied = lost_put(&mut h, "a", "v1", 1);
        let never = lost_put(&mut h, "a", "v2", 2);
        let rev = put(&mut store, "a", "v1");
        log.observe(&store);
        client_saw(&mut h, rev, 50);
        let resolved = resolve(&mut h, &log);
        assert_eq!(
            resolved,
            Resolved {
                applied: 1,
                not_applied: 1,
                left: 0
            }
        );
        assert_eq!(
            h.operations()[applied.0].outcome,
            Outcome::AppliedUnanswered {
                at: 11,
                revision: rev
            }
        );
        assert_eq!(h.operations()[never.0].outcome, Outcome::FailedDefinite);
    }

    #[test]
    fn a_lost_delete_resolves_only_when_no_delete_of_its_key_happened() {
        let mut store = Store::new(StoreConfig::default());
        let mut log = WriteLog::default();
        let mut h = History::new();
        let on_a = lost(&mut h, KvOp::Delete { key: b"a".to_vec() }, 1);
        let on_b = lost(&mut h, KvOp::Delete { key: b"b".to_vec() }, 2);
        put(&mut store, "a", "v1");
        let req = DeleteRangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        };
        let deleted = store
            .delete_range(&req)
            .expect("delete")
            .response
            .header
            .expect("header")
            .revision;
        log.observe(&store);
        client_saw(&mut h, deleted, 50);
        let resolved = resolve(&mut h, &log);
        assert_eq!(
            resolved,
            Resolved {
                applied: 0,
                not_applied: 1,
                left: 1
            }
        );
        assert!(matches!(h.operations()[on_a.0].outcome, Outcome::Unknown { .. }));
        assert_eq!(h.operations()[on_b.0].outcome, Outcome::FailedDefinite);
    }

    #[test]
    fn a_compaction_before_recording_leaves_lost_puts_unknown() {
        let mut store = Store::new(StoreConfig::default());
        let mut log = WriteLog::default();
        let mut h = History::new();
        let lost = lost_put(&mut h, "a", "v9", 1);
        put(&mut store, "a", "v1");
        put(&mut store, "a", "v2");
        let top = put(&mut store, "b", "x");
        store
            .compact(&CompactionRequest {
                revision: top,
                physical: false,
            })
            .expect("compact");
        log.observe(&store);
        client_saw(&mut h, top, 40);
        assert_eq!(
            resolve(&mut h, &log),
            Resolved {
                applied: 0,
                not_applied: 0,
                left: 1
            }
        );
        assert!(matches!(h.operations()[lost.0].outcome, Outcome::Unknown { .. }));
    }
}
