//! The linearizability check of a KV [`History`] against etcd's single-key semantics. It owns
//! the per-key sequential model, the partitioning of the history by key, two cheap cross-key
//! checks on revisions, and the rendering of a violation for a human.
//!
//! Each key is checked on its own (P-compositionality: a history is linearizable iff each
//! key's sub-history is, for single-key operations). Partitioning loses etcd's global revision
//! counter, so the per-key state keeps what one key can witness of it:
//!
//! - its value, `version`, and `mod_revision` (an interval, because an unknown-outcome write
//!   created a revision that nobody reported; a later read pins it);
//! - `revision_floor`, the highest revision any operation linearized on this key created or
//!   observed: a later write must create a higher one, a later read must report at least it.
//!
//! What partitioning cannot see, revisions across keys, is checked separately and cheaply:
//! revisions never go backwards in real time, and no two writes create the same revision.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use super::history::{Bytes, History, KvOp, KvResult, OpId, Operation, Outcome};
use super::linearizability::{self, Call, Counterexample, Model, Verdict};

/// Limits of the check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// Search steps one key may take before its verdict is `Unknown`. Typical histories need
    /// a few steps per operation; pathological ones (many overlapping unknown-outcome writes)
    /// grow exponentially, which is what the bound is for.
    pub search_steps_max_per_key: u64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            search_steps_max_per_key: 1_000_000,
        }
    }
}

/// The verdict on a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    Linearizable,
    /// The first violation found: cross-key revision checks first, then keys in byte order.
    Violation(Violation),
    /// No violation found, but these keys ran out of search budget, in byte order.
    Unknown {
        keys: Vec<Vec<u8>>,
    },
}

/// The verdict with the work it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    pub outcome: CheckOutcome,
    /// Operations that took part (definite failures and unknown-outcome reads are dropped).
    pub ops_checked: usize,
    pub keys_checked: usize,
    pub search_steps: u64,
}

impl CheckReport {
    pub fn is_linearizable(&self) -> bool {
        self.outcome == CheckOutcome::Linearizable
    }

    pub fn violation(&self) -> Option<&Violation> {
        match &self.outcome {
            CheckOutcome::Violation(v) => Some(v),
            _ => None,
        }
    }
}

/// A proof that the history is not linearizable, structured and rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    /// Multi-line, self-contained explanation naming the operations involved.
    pub explanation: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explanation)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// `later` was invoked after `earlier` completed, yet reports a lower revision (or, being a
    /// write, one not above it).
    RevisionWentBackwards { earlier: OpId, later: OpId },
    /// Two writes claim to have created the same revision.
    DuplicateWriteRevision {
        revision: i64,
        first: OpId,
        second: OpId,
    },
    /// No order of `key`'s operations is consistent with the model and real time.
    NotLinearizable {
        key: Vec<u8>,
        /// The longest order found that the model accepts, in order.
        longest_prefix: Vec<OpId>,
        /// The operation that had to take effect next and could not.
        deadline: OpId,
        /// Operations that could have gone next (deadline included); none could.
        candidates: Vec<OpId>,
    },
}

/// Checks `history`: cross-key revision order first, then each key's linearizability.
/// Deterministic: the same history gives the same report.
pub fn check_kv(history: &History, config: &CheckConfig) -> CheckReport {
    let ops = history.operations();
    let partitions = partition(ops);
    let mut report = CheckReport {
        outcome: CheckOutcome::Linearizable,
        ops_checked: partitions.values().map(Vec::len).sum(),
        keys_checked: partitions.len(),
        search_steps: 0,
    };
    if let Some(v) = check_revision_order(ops) {
        report.outcome = CheckOutcome::Violation(v);
        return report;
    }
    let mut undecided = Vec::new();
    for (key, ids) in &partitions {
        let (mut calls, values) = key_calls(ops, ids);
        tighten_by_revision(&mut calls);
        let result = linearizability::check(&KeyModel, &calls, config.search_steps_max_per_key);
        report.search_steps += result.steps;
        match result.verdict {
            Verdict::Linearizable { .. } => {}
            Verdict::Unknown => undecided.push(key.to_vec()),
            Verdict::NotLinearizable(c) => {
                report.outcome = CheckOutcome::Violation(explain(history, key, ids, &values, &c));
                return report;
            }
        }
    }
    if !undecided.is_empty() {
        report.outcome = CheckOutcome::Unknown { keys: undecided };
    }
    report
}

/// Operations grouped by key, in invocation order within a key. Definite failures never took
/// effect and reads with unknown outcome constrain nothing: both are left out.
fn partition(ops: &[Operation]) -> BTreeMap<&[u8], Vec<OpId>> {
    let mut partitions: BTreeMap<&[u8], Vec<OpId>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        let keep = match op.outcome {
            Outcome::Completed { .. } | Outcome::AppliedUnanswered { .. } => true,
            Outcome::Unknown { .. } | Outcome::Pending => op.op.is_write(),
            Outcome::FailedDefinite => false,
        };
        if keep {
            partitions.entry(op.op.key()).or_default().push(OpId(i));
        }
    }
    partitions
}

/// A write's revision is fixed when it applies, so a response revision can never be below
/// that of a response the same or another client had already received when it sent its
/// request; a write's must be strictly above it. Also, one-key writes each create their own
/// revision.
fn check_revision_order(ops: &[Operation]) -> Option<Violation> {
    // (revision, whether the operation created it) for every operation whose revision is known.
    let revision_of = |op: &Operation| match &op.outcome {
        Outcome::Completed { result, .. } => Some((result.revision(), result.created_revision())),
        Outcome::AppliedUnanswered { revision, .. } => Some((*revision, true)),
        _ => None,
    };
    let mut completed: Vec<(u64, i64, OpId)> = Vec::new();
    let mut created: BTreeMap<i64, OpId> = BTreeMap::new();
    let mut by_invocation: Vec<OpId> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let Some((revision, creates)) = revision_of(op) else {
            continue;
        };
        by_invocation.push(OpId(i));
        if let Some(at) = op.returned_at() {
            completed.push((at, revision, OpId(i)));
        }
        if !creates {
            continue;
        }
        if let Some(&first) = created.get(&revision) {
            let kind = ViolationKind::DuplicateWriteRevision {
                revision,
                first,
                second: OpId(i),
            };
            let explanation = format!(
                "two writes created revision {revision}:\n  {}\n  {}\n",
                ops[first.0], op
            );
            return Some(Violation { kind, explanation });
        }
        created.insert(revision, OpId(i));
    }
    completed.sort_unstable();
    by_invocation.sort_by_key(|id| (ops[id.0].invoked_at, *id));
    // Sweep invocations in time order, folding in every response received strictly before.
    let mut seen_max: Option<(i64, OpId)> = None;
    let mut next_completed = 0;
    for later in by_invocation {
        let op = &ops[later.0];
        while let Some(&(at, revision, id)) = completed.get(next_completed) {
            if at >= op.invoked_at {
                break;
            }
            if seen_max.is_none_or(|(max, _)| revision > max) {
                seen_max = Some((revision, id));
            }
            next_completed += 1;
        }
        let Some((max, earlier)) = seen_max else { continue };
        let (revision, creates) = revision_of(op).expect("filtered to known revisions");
        let backwards = if creates { revision <= max } else { revision < max };
        if backwards {
            let explanation = format!(
                "revision went backwards: an operation reports revision {revision} but was invoked \
                 after another had returned revision {max}:\n  earlier: {}\n  later:   {}\n",
                ops[earlier.0], op
            );
            return Some(Violation {
                kind: ViolationKind::RevisionWentBackwards { earlier, later },
                explanation,
            });
        }
    }
    None
}

/// Identifies a written value within one key. Values are compared often and copied with every
/// state, so each distinct value of a partition becomes a small number.
type ValueId = u32;

/// What a read returned that no operation on this key ever wrote.
const VALUE_NEVER_WRITTEN: ValueId = ValueId::MAX;

#[derive(Debug)]
enum KeyInput {
    Put(ValueId),
    Get,
    Delete,
    CompareAndSwap {
        expected_mod_revision: i64,
        new_value: ValueId,
    },
}

#[derive(Debug)]
enum KeyOutput {
    Put {
        revision: i64,
    },
    Get {
        value: Option<ValueId>,
        mod_revision: i64,
        version: i64,
        revision: i64,
    },
    Delete {
        deleted: i64,
        revision: i64,
    },
    Txn {
        succeeded: bool,
        revision: i64,
    },
    /// A lost write the log shows applied at `revision`.
    Applied {
        revision: i64,
    },
}

/// One key's operations as calls of [`KeyModel`], and the values interned for them.
fn key_calls(ops: &[Operation], ids: &[OpId]) -> (Vec<Call<KeyInput, KeyOutput>>, Vec<Vec<u8>>) {
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut index: BTreeMap<&[u8], ValueId> = BTreeMap::new();
    for id in ids {
        if let KvOp::Put { value, .. } | KvOp::CompareAndSwap { new_value: value, .. } = &ops[id.0].op {
            index.entry(value).or_insert_with(|| {
                values.push(value.clone());
                ValueId::try_from(values.len() - 1).expect("fewer than 2^32 values per key")
            });
        }
    }
    let lookup = |v: &[u8]| index.get(v).copied().unwrap_or(VALUE_NEVER_WRITTEN);
    let calls = ids
        .iter()
        .map(|id| {
            let op = &ops[id.0];
            let input = match &op.op {
                KvOp::Put { value, .. } => KeyInput::Put(lookup(value)),
                KvOp::Get { .. } => KeyInput::Get,
                KvOp::Delete { .. } => KeyInput::Delete,
                KvOp::CompareAndSwap {
                    expected_mod_revision,
                    new_value,
                    ..
                } => KeyInput::CompareAndSwap {
                    expected_mod_revision: *expected_mod_revision,
                    new_value: lookup(new_value),
                },
            };
            if let Outcome::AppliedUnanswered { revision, .. } = op.outcome {
                // It must be linearized, but by no deadline: its return is at the end of time.
                let output = Some(KeyOutput::Applied { revision });
                return Call {
                    input,
                    output,
                    invoked_at: op.invoked_at,
                    returned_at: Some(u64::MAX),
                };
            }
            let output = op.result().map(|r| match r {
                KvResult::PutOk { revision } => KeyOutput::Put { revision: *revision },
                KvResult::GetOk {
                    value,
                    mod_revision,
                    version,
                    revision,
                } => KeyOutput::Get {
                    value: value.as_deref().map(lookup),
                    mod_revision: *mod_revision,
                    version: *version,
                    revision: *revision,
                },
                KvResult::DeleteOk { deleted, revision } => KeyOutput::Delete {
                    deleted: *deleted,
                    revision: *revision,
                },
                KvResult::TxnOk { succeeded, revision } => KeyOutput::Txn {
                    succeeded: *succeeded,
                    revision: *revision,
                },
            });
            Call {
                input,
                output,
                invoked_at: op.invoked_at,
                returned_at: op.returned_at(),
            }
        })
        .collect();
    (calls, values)
}

/// Where an operation with a known revision must sit in any order the model accepts: sorted
/// by revision, a write before the reads of its own revision, reads of one revision in any
/// order.
fn revision_rank(output: &KeyOutput) -> (i64, bool) {
    match *output {
        KeyOutput::Put { revision } | KeyOutput::Applied { revision } => (revision, false),
        KeyOutput::Get { revision, .. } => (revision, true),
        KeyOutput::Delete { deleted, revision } => (revision, deleted == 0),
        KeyOutput::Txn { succeeded, revision } => (revision, !succeeded),
    }
}

/// Narrows the intervals of operations with known revisions to what their revision order
/// implies: if `a` must precede `b`, `b` takes effect after `a` was invoked and `a` before
/// `b` returned. The model rejects every order that breaks revision order anyway, so this
/// removes no accepted linearization; it only stops the search from trying them. It matters
/// most for lost writes resolved from the log, which would otherwise have no deadline.
fn tighten_by_revision(calls: &mut [Call<KeyInput, KeyOutput>]) {
    let mut ranked: Vec<((i64, bool), usize)> = calls
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.output.as_ref().map(|o| (revision_rank(o), i)))
        .collect();
    ranked.sort_unstable();
    // Ranks group equal keys; a group is constrained only by groups strictly before/after it.
    let groups: Vec<&[((i64, bool), usize)]> = ranked.chunk_by(|a, b| a.0 == b.0).collect();
    let mut invoked_floor = 0;
    for group in &groups {
        let floor_before = invoked_floor;
        for &(_, i) in *group {
            invoked_floor = invoked_floor.max(calls[i].invoked_at);
            calls[i].invoked_at = calls[i].invoked_at.max(floor_before);
        }
    }
    let mut returned_ceiling = u64::MAX;
    for group in groups.iter().rev() {
        let ceiling_after = returned_ceiling;
        for &(_, i) in *group {
            let returned = calls[i].returned_at.expect("known outputs have return entries");
            returned_ceiling = returned_ceiling.min(returned);
            calls[i].returned_at = Some(returned.min(ceiling_after));
        }
    }
}

/// One key of an etcd store, as far as one key can tell.
struct KeyModel;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct KeyState {
    value: Option<ValueId>,
    /// The key's `mod_revision` lies in `mod_revision_min..=mod_revision_max`; the two are
    /// equal unless the value was written by an operation whose response was lost.
    mod_revision_min: i64,
    mod_revision_max: i64,
    version: i64,
    /// Highest revision created or observed by the operations linearized so far.
    revision_floor: i64,
}

impl KeyState {
    fn written(&self, value: ValueId, revision: i64) -> KeyState {
        KeyState {
            value: Some(value),
            mod_revision_min: revision,
            mod_revision_max: revision,
            version: if self.value.is_some() { self.version + 1 } else { 1 },
            revision_floor: revision,
        }
    }

    /// A write whose revision nobody reported: it is above every revision seen so far.
    fn written_unreported(&self, value: ValueId) -> KeyState {
        let least = self.revision_floor + 1;
        KeyState {
            mod_revision_max: i64::MAX,
            ..self.written(value, least)
        }
    }

    fn deleted(&self, revision: i64) -> KeyState {
        KeyState {
            value: None,
            mod_revision_min: 0,
            mod_revision_max: 0,
            version: 0,
            revision_floor: revision,
        }
    }

    fn observed(&self, revision: i64) -> KeyState {
        KeyState {
            revision_floor: revision,
            ..self.clone()
        }
    }

    fn compare_may_hold(&self, expected_mod_revision: i64) -> bool {
        match self.value {
            None => expected_mod_revision == 0,
            Some(_) => (self.mod_revision_min..=self.mod_revision_max).contains(&expected_mod_revision),
        }
    }

    fn compare_may_fail(&self, expected_mod_revision: i64) -> bool {
        match self.value {
            None => expected_mod_revision != 0,
            Some(_) => {
                self.mod_revision_min != self.mod_revision_max
                    || self.mod_revision_min != expected_mod_revision
            }
        }
    }
}

impl Model for KeyModel {
    type Input = KeyInput;
    type Output = KeyOutput;
    type State = KeyState;

    fn init(&self) -> KeyState {
        KeyState {
            value: None,
            mod_revision_min: 0,
            mod_revision_max: 0,
            version: 0,
            revision_floor: 0,
        }
    }

    fn step(&self, s: &KeyState, input: &KeyInput, output: Option<&KeyOutput>) -> Option<KeyState> {
        let floor = s.revision_floor;
        match (input, output) {
            (KeyInput::Put(v), Some(&KeyOutput::Put { revision })) => {
                (revision > floor).then(|| s.written(*v, revision))
            }
            (KeyInput::Put(v), None) => Some(s.written_unreported(*v)),
            (KeyInput::Put(v), Some(&KeyOutput::Applied { revision })) => {
                (revision > floor).then(|| s.written(*v, revision))
            }
            (
                KeyInput::Get,
                Some(&KeyOutput::Get {
                    value,
                    mod_revision,
                    version,
                    revision,
                }),
            ) => {
                if revision < floor || value != s.value {
                    return None;
                }
                if value.is_none() {
                    return (mod_revision == 0 && version == 0).then(|| s.observed(revision));
                }
                let mod_revision_possible = (s.mod_revision_min..=s.mod_revision_max).contains(&mod_revision)
                    && mod_revision <= revision;
                (mod_revision_possible && version == s.version).then(|| KeyState {
                    mod_revision_min: mod_revision,
                    mod_revision_max: mod_revision,
                    ..s.observed(revision)
                })
            }
            // Dropped before the search (it constrains nothing); harmless if it arrives.
            (KeyInput::Get, None) => Some(s.clone()),
            (KeyInput::Delete, Some(&KeyOutput::Delete { deleted, revision })) => match deleted {
                1 if s.value.is_some() && revision > floor => Some(s.deleted(revision)),
                0 if s.value.is_none() && revision >= floor => Some(s.observed(revision)),
                _ => None,
            },
            (KeyInput::Delete, None) => s.value.is_some().then(|| s.deleted(floor + 1)),
            (KeyInput::Delete, Some(&KeyOutput::Applied { revision })) => {
                (s.value.is_some() && revision > floor).then(|| s.deleted(revision))
            }
            (
                &KeyInput::CompareAndSwap {
                    expected_mod_revision,
                    new_value,
                },
                Some(&KeyOutput::Applied { revision }),
            ) => (s.compare_may_hold(expected_mod_revision) && revision > floor)
                .then(|| s.written(new_value, revision)),
            (
                &KeyInput::CompareAndSwap {
                    expected_mod_revision,
                    new_value,
                },
                Some(&KeyOutput::Txn { succeeded, revision }),
            ) => {
                if succeeded {
                    (s.compare_may_hold(expected_mod_revision) && revision > floor)
                        .then(|| s.written(new_value, revision))
                } else {
                    (s.compare_may_fail(expected_mod_revision) && revision >= floor)
                        .then(|| s.observed(revision))
                }
            }
            // A failed swap changes nothing, the same as leaving the operation out.
            (
                &KeyInput::CompareAndSwap {
                    expected_mod_revision,
                    new_value,
                },
                None,
            ) => s
                .compare_may_hold(expected_mod_revision)
                .then(|| s.written_unreported(new_value)),
            // `History::complete` rejects a result of the wrong kind.
            (_, Some(_)) => None,
        }
    }
}

/// How many operations of the longest prefix the explanation shows, counting back from its end.
const PREFIX_SHOWN_MAX: usize = 12;
/// How many candidates the explanation lists.
const CANDIDATES_SHOWN_MAX: usize = 24;

fn explain(
    history: &History,
    key: &[u8],
    ids: &[OpId],
    values: &[Vec<u8>],
    c: &Counterexample<KeyState>,
) -> Violation {
    let longest_prefix: Vec<OpId> = c.longest_prefix.iter().map(|&i| ids[i]).collect();
    let deadline = ids[c.deadline];
    let candidates: Vec<OpId> = c.candidates.iter().map(|&i| ids[i]).collect();
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        text,
        "not linearizable: key {} ({} operations)",
        Bytes(key),
        ids.len()
    );
    let _ = writeln!(
        text,
        "longest linearizable prefix: {} of {} operations{}",
        longest_prefix.len(),
        ids.len(),
        if longest_prefix.len() > PREFIX_SHOWN_MAX {
            ", last ones shown"
        } else {
            ""
        },
    );
    for id in &longest_prefix[longest_prefix.len().saturating_sub(PREFIX_SHOWN_MAX)..] {
        let _ = writeln!(text, "  {}", history.operation(*id));
    }
    let _ = writeln!(
        text,
        "state after it: {}",
        describe_state(&c.state_after_prefix, values)
    );
    let _ = writeln!(
        text,
        "must take effect next, by {}, and cannot: {}",
        history
            .operation(deadline)
            .returned_at()
            .map_or("the end".to_string(), |t| format!("t={t}")),
        history.operation(deadline)
    );
    let others: Vec<&OpId> = candidates.iter().filter(|id| **id != deadline).collect();
    if !others.is_empty() {
        let _ = writeln!(
            text,
            "no order of the other operations that could go first helps:"
        );
        for id in others.iter().take(CANDIDATES_SHOWN_MAX) {
            let _ = writeln!(text, "  {}", history.operation(**id));
        }
        if others.len() > CANDIDATES_SHOWN_MAX {
            let _ = writeln!(text, "  ... and {} more", others.len() - CANDIDATES_SHOWN_MAX);
        }
    }
    let kind = ViolationKind::NotLinearizable {
        key: key.to_vec(),
        longest_prefix,
        deadline,
        candidates,
    };
    Violation {
        kind,
        explanation: text,
    }
}

fn describe_state(s: &KeyState, values: &[Vec<u8>]) -> String {
    let Some(v) = s.value else {
        return format!("absent, revisions seen up to {}", s.revision_floor);
    };
    let value = Bytes(&values[v as usize]);
    let mod_revision = if s.mod_revision_min == s.mod_revision_max {
        s.mod_revision_min.to_string()
    } else {
        format!("unreported, at least {}", s.mod_revision_min)
    };
    format!(
        "{value} (mod_rev {mod_revision}, version {}), revisions seen up to {}",
        s.version, s.revision_floor
    )
}
