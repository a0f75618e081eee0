//! Lost answers of the directory tree's requests resolved after a run from the v2
//! events the members applied, as [`crate::lost_writes`] does for the MVCC store.
//!
//! A request on the tree whose answer never came may have taken effect at any
//! index after its invocation, or never; with its indexes unknown, the search of
//! [`crate::check::v2_dir`] must try it everywhere, and one such request on a short
//! history can exhaust a million steps. The simulator can look: every change of
//! the v2 store is an event with its index in the store's history, the same on
//! every member. [`V2EventLog`] records the tree's events from whichever member
//! applies them first (before the bounded history drops them), with the time it
//! was first seen. A lost request then resolves to the event it made (its answer
//! would have been that event: the store answers a write with the event it
//! records) or to nothing.
//!
//! Which event a request made: a request that writes a value (set, create,
//! update, POST) made the event showing that value (values are unique). One that
//! writes none (mkdir, `dir=true` set, an empty update, the deletes) made an event
//! of its kind on its path, above the highest index answered before it was sent,
//! that no answered request made; it is resolved only when that is one event no
//! other lost request could have made. Otherwise it stays unknown.
//!
//! Soundness, as in [`crate::lost_writes`]: resolving only narrows what "unknown"
//! allowed. "Made nothing" (a refusal or never applied: the check then leaves it
//! out) is concluded only when the log holds every index the request could have
//! made up to the newest index any answer showed; a change after every answer is
//! seen by none and may be left out. An applied request must take effect before
//! the first member applied it: any request proposed after that is ordered after
//! it by raft, so the time it was first seen is a sound end for its interval.

use std::collections::BTreeMap;

use detcd_core::v2store::{Action, Event, Store};

use crate::check::v2_dir::{DirInput, DirLinHistory, DirOutput, LostDir, DIR};
use crate::lost_writes::AnsweredFloor;

/// The tree's events every member applied, by index, with the time first seen.
#[derive(Clone, Debug, Default)]
pub struct V2EventLog {
    /// Indexes up to this one are recorded (or listed in `gaps`).
    recorded: u64,
    events: BTreeMap<u64, (Event, u64)>,
    /// Index ranges (inclusive) the history had dropped before they were recorded.
    gaps: Vec<(u64, u64)>,
}

fn in_tree(key: &str) -> bool {
    key == DIR || key.strip_prefix(DIR).is_some_and(|rest| rest.starts_with('/'))
}

impl V2EventLog {
    /// Records what `store` applied beyond what is recorded, seen at `now`. Called
    /// after every input to every member: whichever is ahead extends the log.
    pub fn observe(&mut self, store: &Store, now: u64) {
        let index = store.index();
        if index <= self.recorded {
            return;
        }
        let (oldest, events) = store.events_from(self.recorded + 1);
        if oldest > self.recorded + 1 || oldest == 0 {
            let end = if oldest == 0 { index } else { oldest - 1 };
            self.gaps.push((self.recorded + 1, end));
        }
        for event in events.filter(|e| in_tree(&e.node.key)) {
            self.events.insert(event.index(), (event.clone(), now));
        }
        self.recorded = index;
    }

    /// Whether every index in `from..=to` is recorded.
    pub fn complete(&self, from: u64, to: u64) -> bool {
        to <= self.recorded && !self.gaps.iter().any(|&(a, b)| a <= to && from <= b)
    }

    /// The first event showing `value` (the write that wrote it: a refresh later
    /// shows it again).
    fn with_value(&self, value: &str) -> Option<(u64, &Event, u64)> {
        self.events
            .iter()
            .find(|(_, (e, _))| e.node.value.as_deref() == Some(value))
            .map(|(&i, (e, at))| (i, e, *at))
    }
}

/// What [`resolve`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Lost requests found applied (their answer recovered).
    pub applied: u64,
    /// Lost requests found to have changed nothing (left out of the check).
    pub not_applied: u64,
    /// Lost requests left unknown.
    pub left: u64,
}

/// The value a request writes, which names the event it made.
fn written(input: &DirInput) -> Option<&str> {
    match input {
        DirInput::Set { value } | DirInput::Create { value } | DirInput::Post { value } => Some(value),
        DirInput::Update { value } if !value.is_empty() => Some(value),
        _ => None,
    }
}

/// Whether `event` is of the kind a value-less request `input` on `path` makes.
fn could_make(path: &str, input: &DirInput, event: &Event) -> bool {
    if event.node.key != path {
        return false;
    }
    let (action, dir) = (event.action, event.node.dir);
    let emptied = !event.refresh && event.node.value.as_deref().unwrap_or("").is_empty();
    let expires = event.node.expire_unix_ms.is_some();
    match input {
        DirInput::SetDir { ttl } => action == Action::Set && dir && expires == *ttl,
        DirInput::Mkdir { ttl } => action == Action::Create && dir && expires == *ttl,
        DirInput::Update { .. } => action == Action::Update && emptied && !expires,
        DirInput::UpdateDir { ttl, refresh } => {
            action == Action::Update && expires == *ttl && (if *refresh { event.refresh } else { emptied })
        }
        DirInput::Delete => action == Action::Delete && !dir,
        DirInput::Rmdir | DirInput::DeleteAll => action == Action::Delete,
        _ => false,
    }
}

/// Resolves the lost requests of `history` against `log`.
pub fn resolve(history: &mut DirLinHistory, log: &V2EventLog) -> Resolved {
    // (answered at, highest index answered by then), in time order; the indexes
    // answered writes made.
    let answers = AnsweredFloor::new(history.answers().map(|(at, o)| (at, o.index())).collect());
    let made: std::collections::BTreeSet<u64> = history
        .answers()
        .filter_map(|(_, o)| match o {
            DirOutput::Ok { index, action, .. } if *action != Action::Get => Some(*index),
            _ => None,
        })
        .collect();
    let newest_seen = answers.newest();
    let floor_before = |t: u64| answers.before(t);
    let lost = history.lost();
    let mut resolved = Resolved::default();
    let mut decisions: Vec<(usize, Option<(DirOutput, u64)>)> = Vec::new();
    // The events a value-less lost request could have made.
    let mut candidates: Vec<(&LostDir, Vec<u64>)> = Vec::new();
    for op in &lost {
        let floor = floor_before(op.invoked_at);
        let complete = log.complete(floor + 1, newest_seen);
        if let Some(value) = written(&op.input) {
            // A POST names its key by its index, below its path.
            let made_by = |e: &Event| match op.input {
                DirInput::Post { .. } => e
                    .node
                    .key
                    .strip_prefix(op.path.as_str())
                    .is_some_and(|k| k.starts_with('/')),
                _ => e.node.key == op.path,
            };
            match log.with_value(value) {
                Some((_, event, _)) if !made_by(event) => resolved.left += 1,
                Some((_, event, at)) => {
                    let output = DirOutput::of(&Ok(Some(event.clone()))).expect("an event");
                    decisions.push((op.id, Some((output, at))));
                    resolved.applied += 1;
                }
                None if complete => {
                    decisions.push((op.id, None));
                    resolved.not_applied += 1;
                }
                None => resolved.left += 1,
            }
            continue;
        }
        let could: Vec<u64> = log
            .events
            .range(floor + 1..)
            .filter(|(i, (e, _))| !made.contains(i) && could_make(&op.path, &op.input, e))
            .map(|(&i, _)| i)
            .collect();
        if could.is_empty() && complete {
            decisions.push((op.id, None));
            resolved.not_applied += 1;
        } else {
            candidates.push((op, could));
        }
    }
    // One event only this request could have made, and the only one it could have.
    for (op, could) in &candidates {
        let only = match could.as_slice() {
            [i] if candidates.iter().filter(|(_, c)| c.contains(i)).count() == 1 => Some(*i),
            _ => None,
        };
        let Some(index) = only else {
            resolved.left += 1;
            continue;
        };
        let (event, at) = &log.events[&index];
        let output = DirOutput::of(&Ok(Some(event.clone()))).expect("an event");
        decisions.push((op.id, Some((output, *at))));
        resolved.applied += 1;
    }
    for (id, outcome) in decisions {
        history.resolve_lost(id, outcome);
    }
    resolved
}

/// Adds to `history` the tree's expiries `log` holds (which no client asked for,
/// see [`DirInput::Expire`]); false when the log misses indexes (an expiry may be
/// among them: the tree's check is then undecided).
pub fn add_expiries(history: &mut DirLinHistory, log: &V2EventLog) -> bool {
    for (event, at) in log.events.values().filter(|(e, _)| e.action == Action::Expire) {
        let output = DirOutput::of(&Ok(Some(event.clone()))).expect("an event");
        history.expired(&event.node.key, output, *at);
    }
    log.gaps.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use detcd_core::v2store::Ttl;

    const NOW: u64 = 1_700_000_000_000;

    fn ttl() -> Ttl {
        Ttl {
            now_unix_ms: NOW,
            ..Ttl::default()
        }
    }

    /// Two lost mkdirs of one path (only one can have made it), a lost set, a lost
    /// rmdir of a path never made, then a get answered at the store's index.
    #[test]
    fn lost_requests_resolve_to_the_events_they_made_or_to_nothing() {
        let mut store = Store::default();
        let mut log = V2EventLog::default();
        let mut h = DirLinHistory::default();
        h.invoke(1, "/v2/d/s", DirInput::Mkdir { ttl: false }, 0);
        let set_value = DirInput::Set {
            value: "v1".to_string(),
        };
        h.invoke(2, "/v2/d/c0", set_value, 1);
        h.invoke(3, "/v2/d/c1", DirInput::Rmdir, 2);
        store.create("/v2/d/s", true, "", false, ttl()).expect("mkdir");
        log.observe(&store, 10);
        store.set("/v2/d/c0", false, "v1", ttl()).expect("set");
        log.observe(&store, 20);
        let get = h.invoke(4, "/v2/d", DirInput::Get { recursive: true }, 30);
        let listing = store.get("/v2/d", true, NOW).map(Some);
        h.complete(get, DirOutput::of(&listing).expect("an answer"), 31);
        assert_eq!(
            resolve(&mut h, &log),
            Resolved {
                applied: 2,
                not_applied: 1,
                left: 0
            }
        );
        assert!(h.lost().is_empty());
        let report = h.check(1_000);
        assert_eq!(report.violation, None);
        // The rmdir left out; the mkdir before the set, as their events say.
        assert_eq!(report.ops_checked, 3);
    }

    #[test]
    fn an_event_two_lost_requests_could_have_made_is_left_unknown() {
        let mut store = Store::default();
        let mut log = V2EventLog::default();
        let mut h = DirLinHistory::default();
        h.invoke(1, "/v2/d/s", DirInput::Mkdir { ttl: false }, 0);
        h.invoke(2, "/v2/d/s", DirInput::Mkdir { ttl: false }, 1);
        store.create("/v2/d/s", true, "", false, ttl()).expect("mkdir");
        log.observe(&store, 10);
        assert_eq!(
            resolve(&mut h, &log),
            Resolved {
                applied: 0,
                not_applied: 0,
                left: 2
            }
        );
        assert_eq!(h.lost().len(), 2);
    }

    #[test]
    fn events_the_history_dropped_before_they_were_recorded_leave_a_gap() {
        let mut store = Store::default();
        let mut log = V2EventLog::default();
        for i in 0..1_100 {
            store.set("/v2/k", false, &format!("{i}"), ttl()).expect("set");
        }
        log.observe(&store, 10);
        assert!(!log.complete(1, 50));
        assert!(log.complete(200, 1_100));
        assert!(!log.complete(200, 1_101));
    }
}
