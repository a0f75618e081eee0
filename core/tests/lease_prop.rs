//! Property: whatever the sequence of grants, keepalives, revokes, passing time and
//! leader changes, a lease never expires before its TTL since its last keepalive,
//! and always expires within that TTL plus the documented slack per leader change
//! (checkpoint interval + driver step + election grace + 1 s rounding + the time
//! without a leader).

use std::collections::BTreeMap;

use detcd_core::lease::{LeaseId, Lessor, LessorConfig};
use detcd_core::rng::Rng;
use proptest::prelude::*;

const STEP_MS: u64 = 500;
const CHECKPOINT_INTERVAL_MS: u64 = 5000;
const EXTEND_MS: u64 = 1000;

#[derive(Clone, Debug)]
enum Op {
    Grant { ttl_s: i64 },
    Renew { pick: usize },
    Revoke { pick: usize },
    Advance { ms: u64 },
    LeaderChange { gap_ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..40).prop_map(|ttl_s| Op::Grant { ttl_s }),
        4 => any::<usize>().prop_map(|pick| Op::Renew { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Revoke { pick }),
        6 => (0u64..12_000).prop_map(|ms| Op::Advance { ms }),
        1 => (0u64..4000).prop_map(|gap_ms| Op::LeaderChange { gap_ms }),
    ]
}

/// What the model knows of one lease: the window its expiry must fall in.
struct Bounds {
    ttl_ms: u64,
    earliest_ms: u64,
    latest_ms: u64,
}

/// Two members sharing every replicated operation; one of them leads.
struct Pair {
    members: [Lessor; 2],
    leader: usize,
}

impl Pair {
    fn all(&mut self, f: impl Fn(&mut Lessor)) {
        for m in &mut self.members {
            f(m);
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut config = LessorConfig::new(1000);
    config.checkpoint_interval_ms = CHECKPOINT_INTERVAL_MS;
    let mut pair = Pair {
        members: [
            Lessor::new(config.clone(), Rng::new(1)),
            Lessor::new(config, Rng::new(2)),
        ],
        leader: 0,
    };
    let mut now: u64 = 0;
    pair.members[0].promote(now, EXTEND_MS);
    let mut model: BTreeMap<LeaseId, Bounds> = BTreeMap::new();
    let pick = |model: &BTreeMap<LeaseId, Bounds>, i: usize| {
        (!model.is_empty()).then(|| *model.keys().nth(i % model.len()).expect("in range"))
    };
    for op in ops {
        match op {
            Op::Grant { ttl_s } => {
                let id = pair.members[pair.leader].choose_id(None);
                pair.all(|m| {
                    let g = m.grant(id, ttl_s, now).expect("fresh ID, small TTL");
                    assert_eq!(g.ttl_s, ttl_s.max(2), "raised to the 2 s minimum");
                });
                let ttl_ms = ttl_s.max(2) as u64 * 1000;
                model.insert(
                    id,
                    Bounds {
                        ttl_ms,
                        earliest_ms: now + ttl_ms,
                        latest_ms: now + ttl_ms,
                    },
                );
            }
            Op::Renew { pick: i } => {
                let Some(id) = pick(&model, i) else { continue };
                let renewal = pair.members[pair.leader].renew(id, now);
                let renewal = renewal.map_err(|e| TestCaseError::fail(format!("renew {id}: {e}")))?;
                if let Some(cp) = renewal.checkpoint {
                    pair.all(|m| m.apply_checkpoint(cp));
                }
                let b = model.get_mut(&id).expect("picked");
                b.earliest_ms = now + b.ttl_ms;
                b.latest_ms = now + b.ttl_ms;
            }
            Op::Revoke { pick: i } => {
                let Some(id) = pick(&model, i) else { continue };
                pair.all(|m| {
                    m.revoke(id).expect("live lease");
                });
                model.remove(&id);
            }
            Op::Advance { ms } => {
                let end = now + ms;
                while now < end {
                    now = (now + STEP_MS).min(end);
                    let leader = &mut pair.members[pair.leader];
                    let checkpoints = leader.checkpoints_due(now);
                    let expired = leader.expired(now);
                    for cp in checkpoints {
                        pair.all(|m| m.apply_checkpoint(cp));
                    }
                    for id in expired {
                        let b = model.remove(&id).expect("an expired lease is live");
                        prop_assert!(
                            now >= b.earliest_ms,
                            "lease {id} expired at {now}, before {}",
                            b.earliest_ms
                        );
                        pair.all(|m| {
                            m.revoke(id).expect("live lease");
                        });
                    }
                    for (id, b) in &model {
                        prop_assert!(
                            now < b.latest_ms,
                            "lease {id} still alive at {now}, past {}",
                            b.latest_ms
                        );
                    }
                }
            }
            Op::LeaderChange { gap_ms } => {
                pair.members[pair.leader].demote();
                now += gap_ms;
                pair.leader = 1 - pair.leader;
                pair.members[pair.leader].promote(now, EXTEND_MS);
                let slack = CHECKPOINT_INTERVAL_MS + STEP_MS + EXTEND_MS + 1000 + gap_ms;
                for b in model.values_mut() {
                    b.latest_ms += slack;
                }
            }
        }
        for m in &pair.members {
            m.check_invariants();
        }
        prop_assert_eq!(pair.members[0].to_bytes(), pair.members[1].to_bytes());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn leases_expire_within_their_bounds(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
