//! Times the KV linearizability check on a workload-shaped history: 10,000 operations from
//! 8 clients over 50 keys, each client sequential with random latencies, 5% of writes (by
//! default) losing their response. The history comes from a real sequential execution, so it must be
//! accepted; then one read is changed to return a value overwritten before it was sent, which
//! must be rejected (the failing key's search is exhaustive, so it is timed too).
//!
//! `cargo run -p detcd-sim --example lin_bench [ops] [clients] [keys] [seed] [lost_percent]
//! [resolve]`: with `resolve` = 1, lost writes are resolved as the simulator would from the
//! committed log (`History::resolve_unknown`).

use std::collections::BTreeMap;
use std::time::Instant;

use detcd_sim::check::{check_kv, CheckConfig, History, KvOp, KvResult, OpId, Outcome};

/// splitmix64: a named, fixed generator so the history is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Planned {
    client: u64,
    op: KvOp,
    invoked_at: u64,
    takes_effect_at: u64,
    returned_at: u64,
    response_lost: bool,
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map_or(default, |a| a.parse().expect("numeric argument"))
}

fn main() {
    let (ops, clients, keys, seed) = (arg(1, 10_000), arg(2, 8), arg(3, 50), arg(4, 1));
    let lost_percent = arg(5, 5);
    let resolve = arg(6, 0) == 1;
    let mut rng = Rng(seed);

    // Each client: invoke, take effect after 0..2 ms, answer after 0..2 ms more, think 0..1 ms
    // (times in microseconds).
    let mut planned = Vec::new();
    let mut clock = vec![0u64; clients as usize];
    for i in 0..ops {
        let client = i % clients;
        let invoked_at = clock[client as usize];
        let takes_effect_at = invoked_at + rng.below(2_000);
        let returned_at = takes_effect_at + rng.below(2_000);
        clock[client as usize] = returned_at + rng.below(1_000);
        let key = format!("key-{}", rng.below(keys)).into_bytes();
        let value = format!("value-{i}").into_bytes();
        let op = match rng.below(10) {
            0..=3 => KvOp::Get { key },
            4..=6 => KvOp::Put { key, value },
            7 => KvOp::Delete { key },
            _ => KvOp::CompareAndSwap {
                key,
                expected_mod_revision: -1,
                new_value: value,
            },
        };
        let response_lost = op.is_write() && rng.below(100) < lost_percent;
        planned.push(Planned {
            client,
            op,
            invoked_at,
            takes_effect_at,
            returned_at,
            response_lost,
        });
    }

    // Run them against a reference store in the order they took effect.
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| (planned[i].takes_effect_at, i));
    let mut store: BTreeMap<Vec<u8>, (Vec<u8>, i64, i64)> = BTreeMap::new();
    let mut revision = 1i64;
    let mut results: Vec<Option<KvResult>> = vec![None; planned.len()];
    for i in order {
        let p = &mut planned[i];
        let current = store.get(p.op.key()).cloned();
        let result = match &mut p.op {
            KvOp::Get { .. } => match current {
                Some((v, m, ver)) => KvResult::GetOk {
                    value: Some(v),
                    mod_revision: m,
                    version: ver,
                    revision,
                },
                None => KvResult::GetOk {
                    value: None,
                    mod_revision: 0,
                    version: 0,
                    revision,
                },
            },
            KvOp::Put { key, value } => {
                revision += 1;
                let version = current.map_or(1, |c| c.2 + 1);
                store.insert(key.clone(), (value.clone(), revision, version));
                KvResult::PutOk { revision }
            }
            KvOp::Delete { key } => {
                if store.remove(key.as_slice()).is_some() {
                    revision += 1;
                    KvResult::DeleteOk { deleted: 1, revision }
                } else {
                    KvResult::DeleteOk { deleted: 0, revision }
                }
            }
            KvOp::CompareAndSwap {
                key,
                expected_mod_revision,
                new_value,
            } => {
                // Half expect what the client would have read just before, half a stale guess.
                let actual = current.as_ref().map_or(0, |c| c.1);
                *expected_mod_revision = if rng.below(2) == 0 {
                    actual
                } else {
                    actual.saturating_sub(1)
                };
                if *expected_mod_revision == actual {
                    revision += 1;
                    let version = current.map_or(1, |c| c.2 + 1);
                    store.insert(key.clone(), (new_value.clone(), revision, version));
                    KvResult::TxnOk {
                        succeeded: true,
                        revision,
                    }
                } else {
                    KvResult::TxnOk {
                        succeeded: false,
                        revision,
                    }
                }
            }
        };
        results[i] = Some(result);
    }

    let mut history = History::new();
    let mut by_invocation: Vec<usize> = (0..planned.len()).collect();
    by_invocation.sort_by_key(|&i| (planned[i].invoked_at, i));
    for i in by_invocation {
        let p = &planned[i];
        let id = history.invoke(p.client, p.op.clone(), p.invoked_at);
        if p.response_lost {
            history.fail_unknown(id, p.returned_at);
            if resolve {
                let result = results[i].take().expect("every op ran");
                history.resolve_unknown(id, result.created_revision().then(|| result.revision()));
            }
        } else {
            history.complete(id, results[i].take().expect("every op ran"), p.returned_at);
        }
    }

    let config = CheckConfig::default();
    let started = Instant::now();
    let report = check_kv(&history, &config);
    let elapsed = started.elapsed();
    assert!(
        report.is_linearizable(),
        "valid history not accepted: {:?}",
        report.outcome
    );
    println!(
        "valid history: {ops} ops, {clients} clients, {keys} keys ({} checked on {} keys): linearizable, \
         {} search steps, {:.1} ms",
        report.ops_checked,
        report.keys_checked,
        report.search_steps,
        elapsed.as_secs_f64() * 1e3
    );

    let mutated = overwritten_read(&history).expect("some read follows a completed write on its key");
    let started = Instant::now();
    let report = check_kv(&mutated, &config);
    let elapsed = started.elapsed();
    let Some(violation) = report.violation() else {
        panic!("impossible read not rejected: {:?}", report.outcome);
    };
    println!(
        "one stale read injected: violation found, {} search steps, {:.1} ms\n{violation}",
        report.search_steps,
        elapsed.as_secs_f64() * 1e3
    );
}

/// The history with its last completed read changed to return the value of the oldest
/// completed put on its key, when a later write on that key completed before the read began.
fn overwritten_read(history: &History) -> Option<History> {
    let ops = history.operations();
    let (read, old) = (0..ops.len()).rev().find_map(|r| {
        let KvOp::Get { key } = &ops[r].op else {
            return None;
        };
        ops[r].result()?;
        let writes = || {
            (0..ops.len()).filter(|&w| {
                ops[w].op.key() == key.as_slice()
                    && ops[w].result().is_some_and(KvResult::created_revision)
                    && ops[w].returned_at().is_some_and(|t| t < ops[r].invoked_at)
            })
        };
        let oldest_put = writes().find(|&w| matches!(ops[w].op, KvOp::Put { .. }))?;
        let revision = ops[oldest_put].result().map(KvResult::revision);
        writes()
            .any(|w| ops[w].result().map(KvResult::revision) > revision)
            .then_some((r, oldest_put))
    })?;
    let KvOp::Put { value, .. } = &ops[old].op else {
        unreachable!()
    };
    let mut mutated = History::new();
    for (i, op) in ops.iter().enumerate() {
        let id: OpId = mutated.invoke(op.client, op.op.clone(), op.invoked_at);
        match &op.outcome {
            Outcome::Completed {
                at,
                result: KvResult::GetOk { revision, .. },
            } if i == read => {
                let mod_revision = ops[old].result().map_or(0, KvResult::revision);
                let stale = KvResult::GetOk {
                    value: Some(value.clone()),
                    mod_revision,
                    version: 1,
                    revision: *revision,
                };
                mutated.complete(id, stale, *at);
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
