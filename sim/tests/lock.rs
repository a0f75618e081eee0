//! Simulated lock clients run etcd's lock recipe (concurrency's Mutex: a lease, the key
//! `<lock>/<lease hex>` created in a transaction, the holder being the key of lowest
//! create revision, waiting until every older key is gone, then checking its own key
//! still exists) against a cluster under crashes and partitions, and
//! [`detcd_sim::lock_check`] confirms that no two tenures of one lock overlapped while
//! their leases were alive. Waiting polls (a read every 20 ms) instead of watching.

use detcd_core::error::EtcdError;
use detcd_core::mvcc::prefix_end;
use detcd_core::node::{Request, Response};
use detcd_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use detcd_proto::etcdserverpb::{
    request_op, response_op, Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use detcd_sim::lock_check::{check, Hold};
use detcd_sim::mutations::Mutations;
use detcd_sim::options::{FaultKind, FaultSet, Options};
use detcd_sim::sim::Sim;

const LOCK: &[u8] = b"lk/";
const TTL_S: i64 = 3;
const POLL_US: u64 = 20_000;
/// A client gives up on an unanswered request after this long (its context deadline).
const GIVE_UP_US: u64 = 3_000_000;

/// Where one client is in the recipe.
#[derive(Debug, Clone)]
enum Step {
    Grant,
    Create {
        lease: i64,
        granted_at: u64,
    },
    WaitOlder {
        lease: i64,
        granted_at: u64,
        my_rev: i64,
    },
    Verify {
        lease: i64,
        granted_at: u64,
    },
    Hold {
        lease: i64,
        granted_at: u64,
        from: u64,
        until: u64,
    },
    Release {
        key: Vec<u8>,
    },
}

struct Client {
    step: Step,
    in_flight: Option<u64>,
    /// Not before this virtual time (polling, holding).
    next_us: u64,
    sent_us: u64,
}

fn key_of(lease: i64) -> Vec<u8> {
    let mut key = LOCK.to_vec();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

fn by_create(first: bool, max_create_rev: i64) -> RangeRequest {
    RangeRequest {
        key: LOCK.to_vec(),
        range_end: prefix_end(LOCK),
        limit: 1,
        sort_order: if first {
            SortOrder::Ascend
        } else {
            SortOrder::Descend
        } as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision: max_create_rev,
        ..RangeRequest::default()
    }
}

fn request_for(step: &Step) -> Request {
    match step {
        Step::Grant => Request::LeaseGrant(LeaseGrantRequest { ttl: TTL_S, id: 0 }),
        Step::Create { lease, .. } => {
            let key = key_of(*lease);
            let range = |r| RequestOp {
                request: Some(request_op::Request::RequestRange(r)),
            };
            Request::Txn(TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Create as i32,
                    key: key.clone(),
                    range_end: Vec::new(),
                    target_union: Some(TargetUnion::CreateRevision(0)),
                }],
                success: vec![
                    RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: key.clone(),
                            lease: *lease,
                            ..PutRequest::default()
                        })),
                    },
                    range(by_create(true, 0)),
                ],
                failure: vec![
                    range(RangeRequest {
                        key,
                        ..RangeRequest::default()
                    }),
                    range(by_create(true, 0)),
                ],
            })
        }
        Step::WaitOlder { my_rev, .. } => Request::Range(by_create(false, my_rev - 1)),
        Step::Verify { lease, .. } => Request::Range(RangeRequest {
            key: key_of(*lease),
            ..RangeRequest::default()
        }),
        Step::Release { key } => Request::DeleteRange(DeleteRangeRequest {
            key: key.clone(),
            ..DeleteRangeRequest::default()
        }),
        Step::Hold { .. } => unreachable!("holding sends nothing"),
    }
}

fn first_kv(r: &response_op::Response) -> Option<&detcd_proto::mvccpb::KeyValue> {
    match r {
        response_op::Response::ResponseRange(r) => r.kvs.first(),
        _ => None,
    }
}

/// The next step after `answer` to `step`, answered at `now`; `sent` is when the
/// request went out (a lease's life is counted from its grant's sending).
fn advance(client: usize, step: &Step, answer: Result<Response, EtcdError>, now: u64, sent: u64) -> Step {
    let Ok(answer) = answer else {
        // Failed, or an unknown outcome: the same step again (each one is idempotent).
        return step.clone();
    };
    match (step, answer) {
        (Step::Grant, Response::LeaseGrant(g)) => Step::Create {
            lease: g.id,
            granted_at: sent,
        },
        (Step::Create { lease, granted_at }, Response::Txn(t)) => {
            let mut my_rev = t.header.as_ref().map_or(0, |h| h.revision);
            if !t.succeeded {
                match t
                    .responses
                    .first()
                    .and_then(|r| r.response.as_ref())
                    .and_then(first_kv)
                {
                    Some(kv) => my_rev = kv.create_revision,
                    None => return Step::Grant,
                }
            }
            let owner = t
                .responses
                .get(1)
                .and_then(|r| r.response.as_ref())
                .and_then(first_kv);
            if owner.is_none_or(|kv| kv.create_revision == my_rev) {
                Step::Verify {
                    lease: *lease,
                    granted_at: *granted_at,
                }
            } else {
                Step::WaitOlder {
                    lease: *lease,
                    granted_at: *granted_at,
                    my_rev,
                }
            }
        }
        (
            Step::WaitOlder {
                lease, granted_at, ..
            },
            Response::Range(r),
        ) if r.kvs.is_empty() => Step::Verify {
            lease: *lease,
            granted_at: *granted_at,
        },
        (Step::WaitOlder { .. }, Response::Range(_)) => step.clone(),
        (Step::Verify { lease, granted_at }, Response::Range(r)) => {
            if r.kvs.is_empty() {
                Step::Grant // the session expired while waiting
            } else {
                let length = 50_000 + (now * 7919 + client as u64 * 104_729) % 250_000;
                Step::Hold {
                    lease: *lease,
                    granted_at: *granted_at,
                    from: now,
                    until: now + length,
                }
            }
        }
        (Step::Release { .. }, Response::DeleteRange(_)) => Step::Grant,
        (_, other) => panic!("client {client}: unexpected answer {other:?} to {step:?}"),
    }
}

/// Runs `clients` lock clients for `faulty_ms` of crashes and partitions and 5 s after;
/// the checker's verdict. `skip_wait` plants a bug: a client takes the lock at once.
fn run(seed: u64, clients: usize, faulty_ms: u64, skip_wait: bool) -> Result<usize, String> {
    let mut opts = Options::quiet(seed, 3);
    opts.tick_ms = 50;
    opts.election_ticks = 10;
    opts.request_timeout_ms = 2_000;
    opts.faults = FaultSet::NONE.with(FaultKind::Crash).with(FaultKind::Partition);
    let mut sim = Sim::new(opts, Mutations::NONE);
    // Fault times are drawn from time zero: the faults start with the run.
    sim.start_faults();
    let heal_at = faulty_ms * 1000;
    sim.schedule_heal(heal_at);
    let end = heal_at + 5_000_000;
    let mut all: Vec<Client> = (0..clients)
        .map(|_| Client {
            step: Step::Grant,
            in_flight: None,
            next_us: 0,
            sent_us: 0,
        })
        .collect();
    let mut holds = Vec::new();
    let mut turn = 0u64;
    while sim.now_us < end && sim.failure.is_none() {
        let now = sim.now_us;
        for (i, c) in all.iter_mut().enumerate() {
            if let Some(id) = c.in_flight {
                let Some(answer) = sim.wait(id, 0) else {
                    // A request its member dropped (crashed) is given up: the step again.
                    if now > c.sent_us + GIVE_UP_US {
                        c.in_flight = None;
                    }
                    continue;
                };
                c.in_flight = None;
                let before = c.step.clone();
                c.step = advance(i, &before, answer, now, c.sent_us);
                if skip_wait {
                    if let Step::WaitOlder {
                        lease, granted_at, ..
                    } = c.step
                    {
                        c.step = Step::Verify { lease, granted_at };
                    }
                }
                if matches!(
                    (&before, &c.step),
                    (Step::WaitOlder { .. }, Step::WaitOlder { .. })
                ) {
                    c.next_us = now + POLL_US;
                }
                continue;
            }
            if now < c.next_us {
                continue;
            }
            if let Step::Hold {
                lease,
                granted_at,
                from,
                until,
            } = c.step
            {
                if now < until {
                    continue;
                }
                holds.push(Hold {
                    client: i,
                    lock: LOCK.to_vec(),
                    from_us: from,
                    until_us: now,
                    lease_alive_until_us: granted_at + TTL_S as u64 * 1_000_000,
                });
                c.step = Step::Release { key: key_of(lease) };
            }
            let members = sim.member_ids();
            turn += 1;
            let member = members[(turn as usize + i) % members.len()];
            c.sent_us = now;
            c.in_flight = Some(sim.request(member, request_for(&c.step)));
        }
        let step = sim.now_us + 1_000;
        sim.run_until(step);
    }
    assert!(sim.failure.is_none(), "{:?}", sim.failure);
    check(&holds).map_err(|e| format!("seed {seed}: {e}"))
}

#[test]
fn lock_recipe_clients_never_overlap_under_crashes_and_partitions() {
    let mut tenures = 0;
    for seed in 1..=4 {
        let n = run(seed, 4, 15_000, false).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("seed {seed}: {n} tenures");
        tenures += n;
    }
    assert!(
        tenures >= 15,
        "only {tenures} tenures: the clients made too little progress"
    );
}

#[test]
fn the_checker_catches_clients_that_do_not_wait() {
    let caught = (1..=4)
        .filter(|&seed| run(seed, 4, 15_000, true).is_err())
        .count();
    assert!(caught > 0, "a recipe without the wait was never caught");
}
