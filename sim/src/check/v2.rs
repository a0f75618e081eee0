//! The linearizability check of the v2 workload's single-key requests against the v2
//! store's semantics: sets, creates (`prevExist=false`), updates and TTL refreshes
//! (`prevExist=true`), compare-and-swaps and compare-and-deletes (`prevIndex` /
//! `prevValue`), deletes and quorum gets, each key on its own (as [`super::kv`] does
//! for v3), through the same search ([`super::linearizability`]).
//!
//! Per key, the model holds the node (its value, its modified index when an answer
//! showed it, whether it has a TTL) and `at`, the highest v2 index an operation
//! linearized on the key made or was answered at. Everything on the key goes
//! through raft, so the order the search picks must follow the indexes: a write
//! answers a new index above `at`, a read or a refused request one at or above it.
//!
//! What an answer says is checked against the model: the previous node a write
//! answers is the node the model holds (its absence when the model holds none), a
//! compare succeeds exactly when the held node passes it (when what it compares is
//! known), a create is refused only over a node, and a request is refused with
//! "Key not found" only when no node is held.
//!
//! Expiry: a node with a TTL may vanish at any point (a leader's sync expires it at
//! a time no client sees), so the model lets an answer showing its absence expire
//! it. A client sees an expiry itself when a wait reports the `expire` event; those
//! events enter the history as operations (at the index reported, with the node they
//! removed), so a node expired "early" by a read that later turns out to be still
//! there (its expire event, a refresh over it or a get of it at a higher index) is
//! a violation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use detcd_core::v2store::code;

use super::linearizability::{self, Call, Counterexample, Model, Verdict};

/// A v2 request on one key, as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum V2Input {
    /// `PUT` without conditions (`ttl`: with an expiry).
    Set {
        value: String,
        ttl: bool,
    },
    /// `PUT prevExist=false`.
    Create {
        value: String,
        ttl: bool,
    },
    /// `PUT prevExist=true`.
    Update {
        value: String,
        ttl: bool,
    },
    /// `PUT prevExist=true refresh=true` with a new expiry: the value stays.
    Refresh,
    /// `PUT` with `prevIndex` and/or `prevValue` (0 / empty: not compared).
    Cas {
        prev_index: u64,
        prev_value: String,
        value: String,
    },
    /// `DELETE` with `prevIndex` and/or `prevValue`.
    Cad {
        prev_index: u64,
        prev_value: String,
    },
    Delete,
    /// A quorum get.
    Get,
    /// An `expire` event a wait reported (the answer holds the node it removed).
    Expire,
}

/// A node as an answer showed it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Seen {
    pub value: String,
    pub modified: u64,
}

/// What a request answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum V2Output {
    /// Done at v2 index `index` (a write's own, a get's store index); `node` is the
    /// node after it (none for a delete or an expiry), `prev` the one before.
    Ok {
        index: u64,
        node: Option<Seen>,
        prev: Option<Seen>,
    },
    /// Refused with v2 error `code`, the store at `index`.
    Err { code: u32, index: u64 },
}

/// One recorded request.
#[derive(Clone, Debug)]
pub struct V2Op {
    pub client: u64,
    pub key: String,
    pub input: V2Input,
    pub invoked_at: u64,
    /// `None` while pending or when the outcome is unknown.
    pub output: Option<V2Output>,
    pub returned_at: Option<u64>,
    /// Refused before it could take effect: left out of the check.
    pub failed: bool,
}

/// The requests the v2 workload recorded for this check.
#[derive(Debug, Default)]
pub struct V2LinHistory {
    ops: Vec<V2Op>,
    /// Expire events already recorded, by index.
    expires: BTreeMap<u64, usize>,
}

impl V2LinHistory {
    /// Records a request invoked at `at`; the id answers [`Self::complete`] and [`Self::fail`].
    pub fn invoke(&mut self, client: u64, key: &str, input: V2Input, at: u64) -> usize {
        self.ops.push(V2Op {
            client,
            key: key.to_string(),
            input,
            invoked_at: at,
            output: None,
            returned_at: None,
            failed: false,
        });
        self.ops.len() - 1
    }

    pub fn complete(&mut self, id: usize, output: V2Output, at: u64) {
        let op = &mut self.ops[id];
        op.output = Some(output);
        op.returned_at = Some(at);
    }

    /// Refused with an error that proves it never took effect.
    pub fn fail(&mut self, id: usize) {
        self.ops[id].failed = true;
    }

    /// An `expire` event of `key` at `index`, removing `prev`, that a wait reported at
    /// `at` (recorded once per index; it happened before any wait reported it).
    pub fn expired(&mut self, key: &str, index: u64, prev: Seen, at: u64) {
        if self.expires.contains_key(&index) {
            return;
        }
        let id = self.invoke(u64::MAX, key, V2Input::Expire, 0);
        let output = V2Output::Ok {
            index,
            node: None,
            prev: Some(prev),
        };
        self.complete(id, output, at);
        self.expires.insert(index, id);
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks every key; the first violation (keys in order), rendered. A key whose
    /// search ran out of `steps_max` is reported in `unknown`, not as a violation.
    pub fn check(&self, steps_max: u64) -> V2CheckReport {
        let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, op) in self.ops.iter().enumerate() {
            let unknown_read = op.output.is_none() && matches!(op.input, V2Input::Get | V2Input::Expire);
            if !op.failed && !unknown_read {
                by_key.entry(&op.key).or_default().push(i);
            }
        }
        let mut report = V2CheckReport::default();
        for (key, ids) in by_key {
            let calls: Vec<Call<V2Input, V2Output>> = ids
                .iter()
                .map(|&i| {
                    let op = &self.ops[i];
                    Call {
                        input: op.input.clone(),
                        output: op.output.clone(),
                        invoked_at: op.invoked_at,
                        returned_at: op.returned_at,
                    }
                })
                .collect();
            report.ops_checked += calls.len();
            let result = linearizability::check(&V2Model, &calls, steps_max);
            report.search_steps += result.steps;
            match result.verdict {
                Verdict::Linearizable { .. } => {}
                Verdict::Unknown => report.unknown.push(key.to_string()),
                Verdict::NotLinearizable(c) => {
                    if report.violation.is_none() {
                        report.violation = Some(explain(key, &c, |i| self.render(ids[i])));
                    }
                }
            }
        }
        report
    }

    fn render(&self, id: usize) -> String {
        let op = &self.ops[id];
        let client = if op.client == u64::MAX {
            "a wait saw".to_string()
        } else {
            format!("client {}", op.client)
        };
        let end = op.returned_at.map_or("?".to_string(), |t| t.to_string());
        let output = op.output.as_ref().map_or("?".to_string(), |o| format!("{o:?}"));
        format!(
            "{client} [t={}..{end}] {:?} {} -> {output}",
            op.invoked_at, op.input, op.key
        )
    }
}

/// A counterexample of the search on `what`, for a human: the longest order the
/// model accepts, the request that had to take effect next, and the last requests
/// before it and those concurrent with it (`render` shows the call at an index).
pub(super) fn explain<S: std::fmt::Debug>(
    what: &str,
    c: &Counterexample<S>,
    render: impl Fn(usize) -> String,
) -> String {
    let mut why = format!(
        "v2 requests on {what} are not linearizable; the longest order the model accepts ({} requests) ends in state {:?} and then:",
        c.longest_prefix.len(),
        c.state_after_prefix
    );
    let _ = write!(why, "\n  must take effect: {}", render(c.deadline));
    for &i in c.longest_prefix.iter().rev().take(6).rev() {
        let _ = write!(why, "\n  after: {}", render(i));
    }
    for &i in c.candidates.iter().filter(|&&i| i != c.deadline).take(6) {
        let _ = write!(why, "\n  concurrent: {}", render(i));
    }
    why
}

/// The verdict on the recorded requests.
#[derive(Debug, Default)]
pub struct V2CheckReport {
    pub violation: Option<String>,
    /// Keys whose search ran out of budget.
    pub unknown: Vec<String>,
    pub ops_checked: usize,
    pub search_steps: u64,
}

/// The node the model holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Held {
    pub value: String,
    /// 0 when no answer showed it (a write with an unknown outcome made it).
    pub modified: u64,
    pub ttl: bool,
}

impl Held {
    fn is(&self, seen: &Seen) -> bool {
        self.value == seen.value && (self.modified == 0 || self.modified == seen.modified)
    }

    /// Whether a compare passes: `None` when it compares an index no answer showed.
    fn passes(&self, prev_index: u64, prev_value: &str) -> Option<bool> {
        if !prev_value.is_empty() && self.value != prev_value {
            return Some(false);
        }
        if prev_index == 0 {
            return Some(true);
        }
        (self.modified != 0).then_some(self.modified == prev_index)
    }
}

/// One key's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyState {
    pub node: Option<Held>,
    /// The highest v2 index an operation linearized on the key made or saw.
    pub at: u64,
}

impl KeyState {
    /// The node is absent, or may be (one with a TTL may have expired).
    fn may_be_absent(&self) -> bool {
        self.node.as_ref().is_none_or(|n| n.ttl)
    }

    /// The previous node a write answered is the one held.
    fn prev_is(&self, prev: Option<&Seen>) -> bool {
        match (prev, &self.node) {
            (None, _) => self.may_be_absent(),
            (Some(p), Some(held)) => held.is(p),
            (Some(_), None) => false,
        }
    }
}

struct V2Model;

impl Model for V2Model {
    type Input = V2Input;
    type Output = V2Output;
    type State = KeyState;

    fn init(&self) -> KeyState {
        KeyState::default()
    }

    fn step(&self, s: &KeyState, input: &V2Input, output: Option<&V2Output>) -> Option<KeyState> {
        match output {
            None => unknown_effect(s, input),
            Some(V2Output::Err { code, index }) => refused(s, input, *code, *index),
            Some(V2Output::Ok { index, node, prev }) => done(s, input, *index, node.as_ref(), prev.as_ref()),
        }
    }
}

fn held(value: &str, modified: u64, ttl: bool) -> Option<Held> {
    Some(Held {
        value: value.to_string(),
        modified,
        ttl,
    })
}

/// How a write whose answer was lost could have taken effect (doing nothing needs
/// no answer: the search may leave it out).
fn unknown_effect(s: &KeyState, input: &V2Input) -> Option<KeyState> {
    let node = match (input, &s.node) {
        (V2Input::Set { value, ttl }, _) => held(value, 0, *ttl),
        (V2Input::Create { value, ttl }, _) if s.may_be_absent() => held(value, 0, *ttl),
        (V2Input::Update { value, ttl }, Some(_)) => held(value, 0, *ttl),
        (V2Input::Refresh, Some(n)) => held(&n.value, 0, true),
        (
            V2Input::Cas {
                prev_index,
                prev_value,
                value,
            },
            Some(n),
        ) if n.passes(*prev_index, prev_value) != Some(false) => held(value, 0, false),
        (
            V2Input::Cad {
                prev_index,
                prev_value,
            },
            Some(n),
        ) if n.passes(*prev_index, prev_value) != Some(false) => None,
        (V2Input::Delete, Some(_)) => None,
        _ => return None,
    };
    Some(KeyState { node, at: s.at })
}

/// A request refused with `code`, the store at `index`.
fn refused(s: &KeyState, input: &V2Input, code: u32, index: u64) -> Option<KeyState> {
    if index < s.at {
        return None;
    }
    let mut next = KeyState {
        node: s.node.clone(),
        at: index,
    };
    match (input, code) {
        (V2Input::Create { .. }, code::NODE_EXIST) => {
            s.node.as_ref()?;
        }
        (
            V2Input::Cas {
                prev_index,
                prev_value,
                ..
            }
            | V2Input::Cad {
                prev_index,
                prev_value,
            },
            code::TEST_FAILED,
        ) => {
            if s.node.as_ref()?.passes(*prev_index, prev_value) == Some(true) {
                return None;
            }
        }
        (
            V2Input::Update { .. }
            | V2Input::Refresh
            | V2Input::Cas { .. }
            | V2Input::Cad { .. }
            | V2Input::Delete
            | V2Input::Get,
            code::KEY_NOT_FOUND,
        ) => {
            if !s.may_be_absent() {
                return None;
            }
            next.node = None;
        }
        _ => return None,
    }
    Some(next)
}

/// Whether the previous node a compare answered passes the compare.
fn compared(prev: &Seen, prev_index: u64, prev_value: &str) -> bool {
    let node = Held {
        value: prev.value.clone(),
        modified: prev.modified,
        ttl: false,
    };
    node.passes(prev_index, prev_value) == Some(true)
}

/// A request done at `index`, answering `node` (after) and `prev` (before).
fn done(
    s: &KeyState,
    input: &V2Input,
    index: u64,
    node: Option<&Seen>,
    prev: Option<&Seen>,
) -> Option<KeyState> {
    if let V2Input::Get = input {
        let seen = node?;
        let held = s.node.as_ref()?;
        if index < s.at || seen.modified > index || !held.is(seen) {
            return None;
        }
        let node = Some(Held {
            modified: seen.modified,
            ..held.clone()
        });
        return Some(KeyState { node, at: index });
    }
    if index <= s.at || !s.prev_is(prev) {
        return None;
    }
    // The node after the write, as it must be answered.
    let after = match input {
        V2Input::Set { value, ttl } => held(value, index, *ttl),
        V2Input::Create { value, ttl } if prev.is_none() => held(value, index, *ttl),
        V2Input::Update { value, ttl } if prev.is_some() => held(value, index, *ttl),
        V2Input::Refresh => held(&prev?.value, index, true),
        V2Input::Cas {
            prev_index,
            prev_value,
            value,
        } if compared(prev?, *prev_index, prev_value) => held(value, index, false),
        V2Input::Cad {
            prev_index,
            prev_value,
        } if compared(prev?, *prev_index, prev_value) => None,
        V2Input::Delete if prev.is_some() => None,
        V2Input::Expire if s.node.as_ref().is_some_and(|n| n.ttl) => None,
        _ => return None,
    };
    let answered = node.map(|n| (n.value.as_str(), n.modified));
    let expected = after.as_ref().map(|n| (n.value.as_str(), n.modified));
    if answered != expected {
        return None;
    }
    Some(KeyState {
        node: after,
        at: index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(value: &str, modified: u64) -> Seen {
        Seen {
            value: value.to_string(),
            modified,
        }
    }

    fn ok(index: u64, node: Option<Seen>, prev: Option<Seen>) -> V2Output {
        V2Output::Ok { index, node, prev }
    }

    fn record(h: &mut V2LinHistory, input: V2Input, output: V2Output, from: u64, to: u64) {
        let id = h.invoke(1, "/v2/t0", input, from);
        h.complete(id, output, to);
    }

    fn set(value: &str, ttl: bool) -> V2Input {
        V2Input::Set {
            value: value.to_string(),
            ttl,
        }
    }

    #[test]
    fn sequential_writes_and_reads_pass() {
        let mut h = V2LinHistory::default();
        record(&mut h, set("a", false), ok(5, Some(seen("a", 5)), None), 0, 1);
        record(&mut h, V2Input::Get, ok(7, Some(seen("a", 5)), None), 2, 3);
        let cas = V2Input::Cas {
            prev_index: 5,
            prev_value: String::new(),
            value: "b".to_string(),
        };
        record(&mut h, cas, ok(8, Some(seen("b", 8)), Some(seen("a", 5))), 4, 5);
        let stale = V2Input::Cas {
            prev_index: 5,
            prev_value: String::new(),
            value: "c".to_string(),
        };
        let refused = V2Output::Err {
            code: code::TEST_FAILED,
            index: 9,
        };
        record(&mut h, stale, refused, 6, 7);
        let report = h.check(10_000);
        assert_eq!(report.violation, None);
        assert_eq!(report.ops_checked, 4);
    }

    #[test]
    fn a_swap_over_a_newer_write_fails() {
        let mut h = V2LinHistory::default();
        record(&mut h, set("a", false), ok(5, Some(seen("a", 5)), None), 0, 1);
        record(
            &mut h,
            set("b", false),
            ok(6, Some(seen("b", 6)), Some(seen("a", 5))),
            2,
            3,
        );
        let cas = V2Input::Cas {
            prev_index: 5,
            prev_value: String::new(),
            value: "c".to_string(),
        };
        record(&mut h, cas, ok(7, Some(seen("c", 7)), Some(seen("b", 6))), 4, 5);
        assert!(h.check(10_000).violation.is_some());
    }

    #[test]
    fn an_early_expiry_contradicted_by_the_expire_event_fails() {
        let mut h = V2LinHistory::default();
        record(&mut h, set("a", true), ok(5, Some(seen("a", 5)), None), 0, 1);
        let gone = V2Output::Err {
            code: code::KEY_NOT_FOUND,
            index: 6,
        };
        record(&mut h, V2Input::Get, gone.clone(), 2, 3);
        // Expired at 7 (after the get at 6 found nothing): the get was wrong.
        let mut wrong = V2LinHistory::default();
        record(&mut wrong, set("a", true), ok(5, Some(seen("a", 5)), None), 0, 1);
        record(&mut wrong, V2Input::Get, gone, 2, 3);
        wrong.expired("/v2/t0", 7, seen("a", 5), 9);
        assert!(wrong.check(10_000).violation.is_some());
        // Expired at 6: the get at 6 is right.
        h.expired("/v2/t0", 6, seen("a", 5), 9);
        assert_eq!(h.check(10_000).violation, None);
        // A key without a TTL never vanishes.
        let mut plain = V2LinHistory::default();
        record(&mut plain, set("a", false), ok(5, Some(seen("a", 5)), None), 0, 1);
        let gone = V2Output::Err {
            code: code::KEY_NOT_FOUND,
            index: 6,
        };
        record(&mut plain, V2Input::Get, gone, 2, 3);
        assert!(plain.check(10_000).violation.is_some());
    }

    #[test]
    fn a_lost_write_may_take_effect_late() {
        let mut h = V2LinHistory::default();
        let lost = h.invoke(1, "/v2/t0", set("a", false), 0);
        let _ = lost;
        record(
            &mut h,
            V2Input::Get,
            V2Output::Err {
                code: code::KEY_NOT_FOUND,
                index: 3,
            },
            1,
            2,
        );
        record(&mut h, V2Input::Get, ok(9, Some(seen("a", 8)), None), 10, 11);
        assert_eq!(h.check(10_000).violation, None);
        // A read after it returned showing an older index breaks `at`.
        record(&mut h, V2Input::Get, ok(8, Some(seen("a", 8)), None), 12, 13);
        assert!(h.check(10_000).violation.is_some());
    }
}
