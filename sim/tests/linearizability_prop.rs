//! Property tests of the KV linearizability check against histories built from a real
//! sequential execution, so the right verdict is known by construction:
//!
//! - run random operations one at a time against an obviously-correct store (a `BTreeMap` and
//!   a revision counter), each at its own instant; widen every operation's interval randomly
//!   around that instant, lose some responses, add writes that were lost before being applied:
//!   the history is linearizable (the execution order is a witness) and must be accepted;
//! - then change one read's result in a way no execution allows: it must be rejected.

use std::collections::BTreeMap;

use detcd_sim::check::{check_kv, CheckConfig, History, KvOp, KvResult, OpId, Outcome};
use proptest::prelude::*;

/// What a generated operation is, before it runs.
#[derive(Clone, Debug)]
struct Plan {
    kind: u8,
    key: u8,
    /// For a compare-and-swap: even = expect the current mod_revision, odd = expect `n / 2`.
    expect: u8,
    /// How far the interval reaches before and after the instant it took effect.
    widen_before: u8,
    widen_after: u8,
    /// 0..=6 completed, 7..=8 took effect but the response was lost (8: and the log
    /// resolved it), 9 never took effect.
    fate: u8,
    client: u8,
}

fn plan() -> impl Strategy<Value = Plan> {
    (0u8..4, 0u8..4, 0u8..8, 0u8..40, 0u8..40, 0u8..10, 0u8..8).prop_map(
        |(kind, key, expect, widen_before, widen_after, fate, client)| Plan {
            kind,
            key,
            expect,
            widen_before,
            widen_after,
            fate,
            client,
        },
    )
}

/// One key of the reference store.
#[derive(Clone, Debug)]
struct Stored {
    value: Vec<u8>,
    mod_revision: i64,
    version: i64,
}

/// A generated history and what the reference execution knows about it.
struct Built {
    history: History,
    /// Each write that took effect: its key and what it left there (None: deleted).
    applied_writes: BTreeMap<OpId, (Vec<u8>, Option<Stored>)>,
}

/// Instants are 10 apart so that widening by up to 40 overlaps a few neighbours each way.
const INSTANT_SPACING: u64 = 10;

fn build(plans: &[Plan]) -> Built {
    let mut store: BTreeMap<Vec<u8>, Stored> = BTreeMap::new();
    let mut revision: i64 = 1;
    let mut history = History::new();
    let mut applied_writes = BTreeMap::new();
    for (i, p) in plans.iter().enumerate() {
        let instant = 100 + i as u64 * INSTANT_SPACING;
        let key = format!("k{}", p.key).into_bytes();
        let value = format!("v{i}").into_bytes();
        let current = store.get(&key).cloned();
        let op = match p.kind {
            0 => KvOp::Put {
                key: key.clone(),
                value: value.clone(),
            },
            1 => KvOp::Get { key: key.clone() },
            2 => KvOp::Delete { key: key.clone() },
            _ => {
                let expected_mod_revision = if p.expect % 2 == 0 {
                    current.as_ref().map_or(0, |s| s.mod_revision)
                } else {
                    i64::from(p.expect / 2)
                };
                KvOp::CompareAndSwap {
                    key: key.clone(),
                    expected_mod_revision,
                    new_value: value.clone(),
                }
            }
        };
        let id = history.invoke(
            u64::from(p.client),
            op.clone(),
            instant - u64::from(p.widen_before),
        );
        let returned_at = instant + u64::from(p.widen_after);
        if p.fate == 9 {
            if op.is_write() && i % 2 == 0 {
                history.fail_definite(id);
            } else {
                history.fail_unknown(id, returned_at);
            }
            continue;
        }
        let next_stored = || Stored {
            value: value.clone(),
            mod_revision: revision + 1,
            version: current.as_ref().map_or(1, |s| s.version + 1),
        };
        // `Some(new)`: the operation writes and leaves the key as `new` (None: deleted).
        let (result, written) = match op {
            KvOp::Put { .. } => (
                KvResult::PutOk {
                    revision: revision + 1,
                },
                Some(Some(next_stored())),
            ),
            KvOp::Get { .. } => {
                let result = match &current {
                    Some(s) => KvResult::GetOk {
                        value: Some(s.value.clone()),
                        mod_revision: s.mod_revision,
                        version: s.version,
                        revision,
                    },
                    None => KvResult::GetOk {
                        value: None,
                        mod_revision: 0,
                        version: 0,
                        revision,
                    },
                };
                (result, None)
            }
            KvOp::Delete { .. } => match current {
                Some(_) => (
                    KvResult::DeleteOk {
                        deleted: 1,
                        revision: revision + 1,
                    },
                    Some(None),
                ),
                None => (KvResult::DeleteOk { deleted: 0, revision }, None),
            },
            KvOp::CompareAndSwap {
                expected_mod_revision,
                ..
            } => {
                if current.as_ref().map_or(0, |s| s.mod_revision) == expected_mod_revision {
                    (
                        KvResult::TxnOk {
                            succeeded: true,
                            revision: revision + 1,
                        },
                        Some(Some(next_stored())),
                    )
                } else {
                    (
                        KvResult::TxnOk {
                            succeeded: false,
                            revision,
                        },
                        None,
                    )
                }
            }
        };
        if let Some(new) = written {
            revision += 1;
            match &new {
                Some(s) => store.insert(key.clone(), s.clone()),
                None => store.remove(&key),
            };
            applied_writes.insert(id, (key.clone(), new));
        }
        if p.fate >= 7 {
            history.fail_unknown(id, returned_at);
            // As the simulator would, from the committed log.
            if p.fate == 8 && op.is_write() {
                history.resolve_unknown(id, result.created_revision().then(|| result.revision()));
            }
        } else {
            history.complete(id, result, returned_at);
        }
    }
    Built {
        history,
        applied_writes,
    }
}

/// A completed read changed to return a value no execution lets it return, if the history has
/// the ingredients for one. Two impossibilities, each provable from real time alone:
///
/// - `future`: the value of a write invoked only after the read completed;
/// - `overwritten`: a value older (by revision) than a write that completed before the read
///   was invoked; values are unique per write, so the old value cannot come back.
fn mutate(built: &Built, pick: usize, future: bool) -> Option<History> {
    let ops = built.history.operations();
    let reads: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].op, KvOp::Get { .. }) && ops[i].result().is_some())
        .collect();
    let read = *reads.get(pick % reads.len().max(1))?;
    let key = ops[read].op.key();
    let (read_from, read_to) = (ops[read].invoked_at, ops[read].returned_at()?);
    let Some(KvResult::GetOk { revision, .. }) = ops[read].result().cloned() else {
        unreachable!()
    };
    let writes_here = || {
        built
            .applied_writes
            .iter()
            .filter(|(_, (k, _))| k.as_slice() == key)
    };
    let replacement: Stored = if future {
        // Unapplied and unknown writes qualify too: they were not even sent yet.
        let later = (0..ops.len()).find(|&i| {
            ops[i].invoked_at > read_to
                && ops[i].op.key() == key
                && matches!(ops[i].op, KvOp::Put { .. } | KvOp::CompareAndSwap { .. })
        })?;
        let (KvOp::Put { value, .. } | KvOp::CompareAndSwap { new_value: value, .. }) = &ops[later].op else {
            unreachable!()
        };
        let applied = built
            .applied_writes
            .get(&OpId(later))
            .and_then(|(_, s)| s.clone());
        applied.unwrap_or(Stored {
            value: value.clone(),
            mod_revision: revision,
            version: 1,
        })
    } else {
        let newest_before = writes_here()
            .filter(|(id, _)| ops[id.0].returned_at().is_some_and(|t| t < read_from))
            .map(|(id, _)| ops[id.0].result().map(KvResult::revision))
            .max()??;
        writes_here()
            .filter_map(|(_, (_, s))| s.clone())
            .filter(|s| s.mod_revision < newest_before)
            .max_by_key(|s| s.mod_revision)?
    };
    let mut mutated = History::new();
    for (i, op) in ops.iter().enumerate() {
        let id = mutated.invoke(op.client, op.op.clone(), op.invoked_at);
        match &op.outcome {
            Outcome::Completed { at, .. } if i == read => {
                let result = KvResult::GetOk {
                    value: Some(replacement.value.clone()),
                    mod_revision: replacement.mod_revision,
                    version: replacement.version,
                    revision,
                };
                mutated.complete(id, result, *at);
            }
            Outcome::Completed { result, at } => mutated.complete(id, result.clone(), *at),
            Outcome::Unknown { at } => mutated.fail_unknown(id, *at),
            Outcome::AppliedUnanswered { at, revision } => {
                mutated.fail_unknown(id, *at);
                mutated.resolve_unknown(id, Some(*revision));
            }
            Outcome::FailedDefinite => mutated.fail_definite(id),
            Outcome::Pending => {}
        }
    }
    Some(mutated)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn histories_of_a_real_execution_are_accepted(plans in prop::collection::vec(plan(), 1..80)) {
        let built = build(&plans);
        let report = check_kv(&built.history, &CheckConfig::default());
        if let Some(v) = report.violation() {
            panic!("valid history rejected:\n{v}");
        }
        prop_assert!(report.is_linearizable(), "{:?}", report.outcome);
    }

    #[test]
    fn a_read_of_a_future_write_is_rejected(
        plans in prop::collection::vec(plan(), 10..80),
        pick in any::<usize>(),
    ) {
        let built = build(&plans);
        if let Some(mutated) = mutate(&built, pick, true) {
            let report = check_kv(&mutated, &CheckConfig::default());
            prop_assert!(report.violation().is_some(), "accepted: {:?}", report.outcome);
        }
    }

    #[test]
    fn a_read_of_an_overwritten_value_is_rejected(
        plans in prop::collection::vec(plan(), 10..80),
        pick in any::<usize>(),
    ) {
        let built = build(&plans);
        if let Some(mutated) = mutate(&built, pick, false) {
            let report = check_kv(&mutated, &CheckConfig::default());
            prop_assert!(report.violation().is_some(), "accepted: {:?}", report.outcome);
        }
    }
}
