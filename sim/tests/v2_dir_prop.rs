//! Property tests of the directory tree's linearizability check
//! (`detcd_sim::check::v2_dir`) against core's real v2 store: the workload's
//! directory requests run one at a time on a `Store`, each at its own instant, and
//! the answers go to the check as the simulator records them.
//!
//! - Intervals widened around their instants, some answers lost (the request
//!   applied or not), some requests refused before they were proposed: the
//!   history is linearizable (the execution order is a witness) and must pass;
//!   a check that rejects it has a model that differs from the store. The lost
//!   answers are first resolved from the store's events (`detcd_sim::v2_lost`),
//!   as in a simulator run; a fixed history shows the search that cannot decide
//!   without them decides in a few steps with them.
//! - A sequential history with every answer known and one answer changed (another
//!   error code, another modified index) must be rejected.

use detcd_core::node::{PREV_EXIST_FALSE, PREV_EXIST_TRUE};
use detcd_core::rng::Rng;
use detcd_core::v2store::{code, Event, Store, Ttl, V2Error};
use detcd_proto::detcdpb::V2Request;
use detcd_sim::check::v2_dir::{DirLinHistory, DirOutput};
use detcd_sim::v2_dir_workload;
use detcd_sim::v2_lost::{add_expiries, resolve, Resolved, V2EventLog};
use proptest::prelude::*;

const NOW_UNIX_MS: u64 = 1_700_000_000_000;

/// The request on the store, as the member applies it (`node::v2`'s dispatch).
fn apply(store: &mut Store, r: &V2Request) -> Result<Option<Event>, V2Error> {
    let ttl = Ttl {
        expire_unix_ms: (r.expiration_unix_ms != 0).then_some(r.expiration_unix_ms),
        refresh: r.refresh,
        now_unix_ms: r.time_unix_ms,
    };
    let (path, now) = (r.path.as_str(), r.time_unix_ms);
    let event = match (r.method.as_str(), r.prev_exist) {
        ("POST", _) => store.create(path, r.dir, &r.val, true, ttl),
        ("PUT", PREV_EXIST_TRUE) => store.update(path, &r.val, ttl),
        ("PUT", PREV_EXIST_FALSE) => store.create(path, r.dir, &r.val, false, ttl),
        ("PUT", _) => store.set(path, r.dir, &r.val, ttl),
        ("DELETE", _) => store.delete(path, r.dir, r.recursive, now),
        ("QGET", _) => store.get(path, r.recursive, now),
        (other, _) => panic!("the workload sends no {other}"),
    };
    event.map(Some)
}

/// What happens to one request.
#[derive(Clone, Copy, Debug)]
struct Fate {
    /// 0..=6 answered, 7 applied with its answer lost, 8 lost before it applied,
    /// 9 refused before it was proposed.
    end: u8,
    widen_before: u8,
    widen_after: u8,
    client: u8,
}

fn fate() -> impl Strategy<Value = Fate> {
    (0u8..10, 0u8..40, 0u8..40, 0u8..4).prop_map(|(end, widen_before, widen_after, client)| Fate {
        end,
        widen_before,
        widen_after,
        client,
    })
}

/// Runs the workload's requests drawn from `seed`, one per fate, at instants 100
/// apart (and as many milliseconds apart on the members' clock), each followed by
/// a leader's sync that expires what is due; the history, the answers (`None`:
/// not answered) and the store's events (each seen at the instant it applied).
fn build(seed: u64, fates: &[Fate]) -> (DirLinHistory, Vec<(usize, Option<DirOutput>)>, V2EventLog) {
    let mut rng = Rng::new(seed);
    let mut store = Store::default();
    let mut h = DirLinHistory::default();
    let mut log = V2EventLog::default();
    let mut answers = Vec::new();
    for (i, f) in fates.iter().enumerate() {
        let instant = 1_000 + 100 * i as u64;
        let now_ms = NOW_UNIX_MS + 100 * i as u64;
        let (request, input) = v2_dir_workload::request(&mut rng, format!("v{i}"), now_ms);
        let id = h.invoke(
            u64::from(f.client),
            &request.path,
            input.clone(),
            instant - u64::from(f.widen_before),
        );
        let output = match f.end {
            8 => None,
            9 => {
                h.fail(id);
                None
            }
            _ => {
                let result = apply(&mut store, &request);
                log.observe(&store, instant);
                DirOutput::of(&result).filter(|_| f.end < 7)
            }
        };
        if let Some(output) = &output {
            h.complete(id, output.clone(), instant + u64::from(f.widen_after));
        }
        answers.push((id, output));
        // The leader's sync, after every interval widened around this instant.
        store.delete_expired(now_ms);
        log.observe(&store, instant + 50);
    }
    (h, answers, log)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn histories_of_the_real_store_pass(seed in any::<u64>(), fates in prop::collection::vec(fate(), 1..120)) {
        let (mut h, _, log) = build(seed, &fates);
        prop_assert!(add_expiries(&mut h, &log));
        resolve(&mut h, &log);
        let report = h.check(1_000_000);
        // The lost answers resolved from the store's events, as a simulator
        // run does. A search that still runs out of its step budget leaves the
        // history undecided (`report.unknown`), as in a simulator run: only a
        // violation fails.
        prop_assert_eq!(report.violation, None);
    }

    #[test]
    fn a_changed_answer_is_rejected(seed in any::<u64>(), len in 1usize..120, pick in any::<prop::sample::Index>()) {
        let sequential = Fate { end: 0, widen_before: 0, widen_after: 0, client: 0 };
        let (_, answers, _) = build(seed, &vec![sequential; len]);
        let (mut h_ok, _, log) = build(seed, &vec![sequential; len]);
        prop_assert!(add_expiries(&mut h_ok, &log));
        prop_assert_eq!(h_ok.check(1_000_000).violation, None);
        // The same history with the answer of request `changed` changed.
        let changed = pick.index(len);
        let mut h = DirLinHistory::default();
        let mut rng = Rng::new(seed);
        for (i, (_, output)) in answers.iter().enumerate() {
            let now_ms = NOW_UNIX_MS + 100 * i as u64;
            let (request, input) = v2_dir_workload::request(&mut rng, format!("v{i}"), now_ms);
            let instant = 1_000 + 100 * i as u64;
            let id = h.invoke(0, &request.path, input, instant);
            let mut output = output.clone().expect("answered");
            if i == changed {
                match &mut output {
                    DirOutput::Err { code: c, .. } => {
                        *c = if *c == code::KEY_NOT_FOUND { code::DIR_NOT_EMPTY } else { code::KEY_NOT_FOUND };
                    }
                    DirOutput::Ok { node, .. } => node.modified += 1,
                }
            }
            h.complete(id, output, instant);
        }
        // The expiries, as the store's events show them.
        prop_assert!(add_expiries(&mut h, &log));
        prop_assert!(h.check(1_000_000).violation.is_some(), "request {} changed", changed);
    }
}

/// A history the unresolved search cannot decide: 116 requests drawn as the
/// property tests draw them (from seed 3, which a scan found), 19 of them lost
/// (refused and lost ones, three applied); each lost request may take effect at
/// any point after it was sent, and the search runs past 300,000 steps (100,000
/// here, to stay fast). The store's events tell what each did, and then a few
/// hundred steps decide it.
#[test]
fn lost_answers_resolved_from_the_event_history_keep_the_search_small() {
    let seed = 3;
    let mut r = Rng::new(seed ^ 0xabc);
    let len = 1 + r.range(0, 119) as usize;
    let fates: Vec<Fate> = (0..len)
        .map(|_| Fate {
            end: r.range(0, 10) as u8,
            widen_before: r.range(0, 40) as u8,
            widen_after: r.range(0, 40) as u8,
            client: r.range(0, 4) as u8,
        })
        .collect();
    let (mut h, _, log) = build(seed, &fates);
    assert!(add_expiries(&mut h, &log));
    let unresolved = h.check(100_000);
    assert_eq!(unresolved.violation, None);
    assert_eq!(unresolved.unknown.len(), 1, "the unresolved search decided it");
    let resolved = resolve(&mut h, &log);
    assert_eq!(
        resolved,
        Resolved {
            applied: 3,
            not_applied: 16,
            left: 0
        }
    );
    let report = h.check(100_000);
    assert_eq!((report.violation, report.unknown.len()), (None, 0));
    assert!(report.search_steps < 1_000, "{} steps", report.search_steps);
}
