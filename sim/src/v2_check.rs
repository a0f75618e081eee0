//! The v2 store's checks (the `--v2` workload, [`crate::v2_workload`]):
//!
//! - State-machine safety: members that applied the same index hold byte-equal v2
//!   stores (their snapshot encodings, tree and event history, compared by
//!   checksum).
//! - Two acknowledged writes never share an index (across keys, which the
//!   per-key linearizability check, [`crate::check::v2`], cannot see; it judges
//!   the answers of the single-key requests, compares and quorum gets included).
//! - No acknowledged write lost or rolled back in the final store after the run:
//!   its index covers every acknowledged write, and each key written shows its
//!   last acknowledged write or a later one.
//! - The event history: a `waitIndex` wait answers the first event at or after its
//!   index under its path, so no acknowledged (non-refresh) write under the path
//!   lies between, and an acknowledged event it reports shows what was written.
//!
//! Every node a read shows at a modified index of an acknowledged write to the same
//! key must show that write's value.

use std::collections::BTreeMap;

use detcd_core::crc32c;
use detcd_core::v2store::{code, Action, Event, NodeView, Store, V2Error};

/// One acknowledged write as its answer showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Acked {
    key: String,
    action: Action,
    value: Option<String>,
    refresh: bool,
}

/// What the v2 workload learnt from acknowledged answers, and the violations found.
#[derive(Debug, Default)]
pub struct V2History {
    /// Acknowledged write events by their index.
    acked: BTreeMap<u64, Acked>,
    /// Per key, the index of the last acknowledged write to it.
    last: BTreeMap<String, u64>,
    /// A checksum of the v2 store at an applied index, and the member it came from.
    states: BTreeMap<u64, (u64, u32)>,
    /// Per member, the applied index its store was last compared at.
    compared: BTreeMap<u64, u64>,
    pub violations: Vec<String>,
    /// Stores compared with another member's at the same applied index.
    pub state_matches: u64,
}

impl V2History {
    /// Compares `member`'s store at `applied` with the store any member had there.
    pub fn observe_state(&mut self, member: u64, applied: u64, store: &Store) -> Result<(), String> {
        if self.compared.get(&member) == Some(&applied) {
            return Ok(());
        }
        self.compared.insert(member, applied);
        let mut bytes = Vec::new();
        store.encode(&mut bytes);
        let sum = crc32c::checksum(&bytes);
        match self.states.get(&applied) {
            Some(&(other, known)) if known != sum => Err(format!(
                "v2 stores differ at applied index {applied}: member {member:x} (crc {sum:08x}, v2 index {}) vs member {other:x} (crc {known:08x})",
                store.index()
            )),
            Some(_) => {
                self.state_matches += 1;
                Ok(())
            }
            None => {
                self.states.insert(applied, (member, sum));
                Ok(())
            }
        }
    }

    /// The highest acknowledged write index.
    pub fn max_acked(&self) -> u64 {
        self.acked.keys().next_back().copied().unwrap_or(0)
    }

    fn violation(&mut self, why: String) {
        self.violations.push(why);
    }

    /// An acknowledged write, `event` as answered.
    pub fn write_acked(&mut self, event: &Event) {
        let index = event.index();
        let key = event.node.key.clone();
        let acked = Acked {
            key: key.clone(),
            action: event.action,
            value: event.node.value.clone(),
            refresh: event.refresh,
        };
        match self.acked.get(&index) {
            Some(known) if *known != acked => {
                let why = format!("two acknowledged writes at v2 index {index}: {known:?} and {acked:?}");
                self.violation(why);
            }
            _ => {
                self.acked.insert(index, acked);
            }
        }
        let last = self.last.entry(key).or_default();
        *last = (*last).max(index);
    }

    /// A node a read showed: at the index of an acknowledged write to it, it shows that write.
    fn check_view(&mut self, what: &str, view: &NodeView) {
        let Some(acked) = self.acked.get(&view.modified_index) else {
            return;
        };
        if acked.key == view.key
            && acked.action != Action::Delete
            && acked.action != Action::CompareAndDelete
            && acked.value != view.value
        {
            let why = format!(
                "{what} shows {} at index {} as {:?}, acknowledged as {:?}",
                view.key, view.modified_index, view.value, acked.value
            );
            self.violation(why);
        }
    }

    /// A read of `key` after its last acknowledged write (at `floor`) shows it or a later one.
    fn read_answered(&mut self, key: &str, floor: u64, result: &Result<Option<Event>, V2Error>) {
        match result {
            Ok(Some(event)) => {
                if !event.node.dir && event.node.modified_index < floor {
                    self.violation(format!(
                        "final store shows {key} at modified index {} below its acknowledged write at {floor}",
                        event.node.modified_index
                    ));
                }
                let node = event.node.clone();
                self.check_view("the final store", &node);
            }
            Err(e) if e.code == code::KEY_NOT_FOUND && e.index < floor => self.violation(format!(
                "final store at index {} has no {key}, written (acknowledged) at {floor}",
                e.index
            )),
            _ => {}
        }
    }

    /// A wait under `prefix` (recursive) from `since`, answered with `event` (if any).
    pub fn watch_answered(&mut self, prefix: &str, since: u64, event: Option<&Event>) {
        let Some(event) = event else { return };
        let index = event.index();
        if index < since {
            self.violation(format!("wait from index {since} answered an event at {index}"));
            return;
        }
        if event.refresh {
            self.violation(format!("wait from index {since} answered the refresh at {index}"));
        }
        let skipped = self
            .acked
            .range(since..index)
            .find(|(_, a)| !a.refresh && under(&a.key, prefix) && !hidden_below(&a.key, prefix))
            .map(|(&i, a)| (i, a.clone()));
        if let Some((i, a)) = skipped {
            self.violation(format!(
                "wait from index {since} under {prefix} answered the event at {index}, skipping the acknowledged {} of {} at {i}",
                a.action.as_str(),
                a.key
            ));
        }
        match self.acked.get(&index) {
            Some(a) if a.key != event.node.key || a.action != event.action => {
                let why = format!(
                    "wait answered {} of {} at index {index}, acknowledged as {} of {}",
                    event.action.as_str(),
                    event.node.key,
                    a.action.as_str(),
                    a.key
                );
                self.violation(why);
            }
            Some(_) => {
                let node = event.node.clone();
                self.check_view("wait", &node);
            }
            None => {}
        }
    }

    /// The final store (a member that applied everything committed): no
    /// acknowledged write lost or rolled back.
    pub fn final_check(&mut self, store: &Store, now_unix_ms: u64) {
        let max = self.max_acked();
        if store.index() < max {
            self.violation(format!(
                "final v2 store at index {} lacks the acknowledged write at {max}",
                store.index()
            ));
            return;
        }
        let keys: Vec<(String, u64)> = self.last.iter().map(|(k, &i)| (k.clone(), i)).collect();
        for (key, floor) in keys {
            let result = store.get(&key, false, now_unix_ms).map(Some);
            self.read_answered(&key, floor, &result);
        }
    }
}

/// Whether a node of `key` below `prefix` has a hidden name (`_name`): a
/// recursive wait on `prefix` is not told of its changes (etcd's `isHidden`).
fn hidden_below(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix).is_some_and(|rest| rest.contains("/_"))
}

/// Whether `key` is `prefix` or below it.
fn under(key: &str, prefix: &str) -> bool {
    key == prefix || key.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use detcd_core::v2store::Ttl;

    use super::*;

    fn set(store: &mut Store, key: &str, value: &str) -> Event {
        store.set(key, false, value, Ttl::default()).expect("set")
    }

    #[test]
    fn stores_that_differ_at_one_applied_index_fail() {
        let mut h = V2History::default();
        let (mut a, mut b) = (Store::default(), Store::default());
        set(&mut a, "/v2/k0", "x");
        set(&mut b, "/v2/k0", "y");
        assert!(h.observe_state(1, 7, &a).is_ok());
        assert!(h.observe_state(2, 7, &a).is_ok());
        assert!(h
            .observe_state(3, 7, &b)
            .unwrap_err()
            .contains("differ at applied index 7"));
    }

    #[test]
    fn a_rolled_back_key_and_a_skipped_event_are_violations() {
        let mut h = V2History::default();
        let mut s = Store::default();
        let first = set(&mut s, "/v2/k0", "a");
        let mut ahead = s.clone();
        let second = set(&mut ahead, "/v2/k0", "b");
        h.write_acked(&first);
        h.write_acked(&second);
        // A store that lost the second write.
        h.final_check(&s, 0);
        assert_eq!(h.violations.len(), 1, "{:?}", h.violations);
        // A wait from the first index answering the second skips the first.
        h.watch_answered("/v2", first.index(), Some(&second));
        assert!(h.violations[1].contains("skipping"), "{:?}", h.violations);
        // The full store passes.
        let mut ok = V2History::default();
        ok.write_acked(&first);
        ok.write_acked(&second);
        ok.final_check(&ahead, 0);
        ok.watch_answered("/v2", second.index(), Some(&second));
        assert!(ok.violations.is_empty(), "{:?}", ok.violations);
    }
}
