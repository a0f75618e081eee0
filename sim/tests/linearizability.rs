//! Hand-written KV histories with a known verdict, one claim per test: what the checker must
//! accept (concurrency, lost responses) and what it must reject (stale reads, lost writes,
//! phantom values, revision anomalies).

use detcd_sim::check::{
    check_kv, CheckConfig, CheckOutcome, CheckReport, History, KvOp, KvResult, OpId, ViolationKind,
};

fn k(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn put(h: &mut History, client: u64, key: &str, value: &str, span: (u64, u64), revision: i64) -> OpId {
    let id = h.invoke(
        client,
        KvOp::Put {
            key: k(key),
            value: k(value),
        },
        span.0,
    );
    h.complete(id, KvResult::PutOk { revision }, span.1);
    id
}

fn put_lost(h: &mut History, client: u64, key: &str, value: &str, invoked: u64, lost: u64) -> OpId {
    let id = h.invoke(
        client,
        KvOp::Put {
            key: k(key),
            value: k(value),
        },
        invoked,
    );
    h.fail_unknown(id, lost);
    id
}

/// `seen`: `(value, mod_revision, version)`, or `None` for an absent key.
fn get(
    h: &mut History,
    client: u64,
    key: &str,
    span: (u64, u64),
    seen: Option<(&str, i64, i64)>,
    revision: i64,
) -> OpId {
    let id = h.invoke(client, KvOp::Get { key: k(key) }, span.0);
    let (value, mod_revision, version) = match seen {
        Some((v, m, ver)) => (Some(k(v)), m, ver),
        None => (None, 0, 0),
    };
    h.complete(
        id,
        KvResult::GetOk {
            value,
            mod_revision,
            version,
            revision,
        },
        span.1,
    );
    id
}

fn delete(h: &mut History, client: u64, key: &str, span: (u64, u64), deleted: i64, revision: i64) -> OpId {
    let id = h.invoke(client, KvOp::Delete { key: k(key) }, span.0);
    h.complete(id, KvResult::DeleteOk { deleted, revision }, span.1);
    id
}

fn cas(
    h: &mut History,
    client: u64,
    key: &str,
    expected_mod_revision: i64,
    new_value: &str,
    span: (u64, u64),
    (succeeded, revision): (bool, i64),
) -> OpId {
    let op = KvOp::CompareAndSwap {
        key: k(key),
        expected_mod_revision,
        new_value: k(new_value),
    };
    let id = h.invoke(client, op, span.0);
    h.complete(id, KvResult::TxnOk { succeeded, revision }, span.1);
    id
}

fn check(h: &History) -> CheckReport {
    check_kv(h, &CheckConfig::default())
}

#[track_caller]
fn assert_linearizable(h: &History) {
    let report = check(h);
    if let Some(v) = report.violation() {
        panic!("expected linearizable, got:\n{v}");
    }
    assert_eq!(report.outcome, CheckOutcome::Linearizable);
}

/// Asserts a per-key linearizability failure on `key` whose blocked operation is `deadline`.
#[track_caller]
fn assert_not_linearizable(h: &History, key: &str, deadline: OpId) -> String {
    let report = check(h);
    let v = report
        .violation()
        .unwrap_or_else(|| panic!("expected a violation, got {:?}", report.outcome));
    match &v.kind {
        ViolationKind::NotLinearizable {
            key: bad,
            deadline: d,
            ..
        } => {
            assert_eq!((bad.as_slice(), *d), (key.as_bytes(), deadline), "{v}");
        }
        other => panic!("expected NotLinearizable, got {other:?}\n{v}"),
    }
    v.explanation.clone()
}

#[test]
fn sequential_history_is_linearizable() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    get(&mut h, 2, "k1", (20, 30), Some(("v1", 2, 1)), 2);
    put(&mut h, 1, "k1", "v2", (40, 50), 3);
    put(&mut h, 3, "k2", "w1", (60, 70), 4);
    get(&mut h, 2, "k1", (80, 90), Some(("v2", 3, 2)), 4);
    delete(&mut h, 1, "k1", (100, 110), 1, 5);
    delete(&mut h, 1, "k1", (120, 130), 0, 5);
    get(&mut h, 2, "k1", (140, 150), None, 5);
    put(&mut h, 1, "k1", "v3", (160, 170), 6);
    get(&mut h, 2, "k1", (180, 190), Some(("v3", 6, 1)), 6);
    let report = check(&h);
    assert_eq!(report.outcome, CheckOutcome::Linearizable);
    assert_eq!((report.ops_checked, report.keys_checked), (10, 2));
}

#[test]
fn overlapping_put_and_gets_may_go_either_way() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 100), 2);
    // Both reads overlap the put: one saw the state before it, one after.
    get(&mut h, 2, "k1", (10, 50), Some(("v1", 2, 1)), 2);
    get(&mut h, 3, "k1", (20, 120), None, 1);
    assert_linearizable(&h);
}

#[test]
fn stale_read_after_completed_put_is_rejected() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    put(&mut h, 1, "k1", "v2", (20, 30), 3);
    // Its revision is current, so only the per-key check can see that the value is old.
    let stale = get(&mut h, 3, "k1", (120, 180), Some(("v1", 2, 1)), 3);
    let text = assert_not_linearizable(&h, "k1", stale);
    assert_eq!(
        text,
        "not linearizable: key \"k1\" (3 operations)\n\
         longest linearizable prefix: 2 of 3 operations\n  \
         client 1 [t=0..10] Put(\"k1\", \"v1\") -> Ok@rev 2\n  \
         client 1 [t=20..30] Put(\"k1\", \"v2\") -> Ok@rev 3\n\
         state after it: \"v2\" (mod_rev 3, version 2), revisions seen up to 3\n\
         must take effect next, by t=180, and cannot: \
         client 3 [t=120..180] Get(\"k1\") -> Some(\"v1\")@rev 3 (mod_rev 2, version 1)\n"
    );
}

#[test]
fn lost_acknowledged_write_is_rejected() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    let lost = get(&mut h, 2, "k1", (20, 30), None, 2);
    assert_not_linearizable(&h, "k1", lost);
}

#[test]
fn unknown_outcome_put_may_appear_later() {
    let mut h = History::new();
    put_lost(&mut h, 1, "k1", "v1", 0, 10);
    get(&mut h, 2, "k1", (20, 30), None, 1);
    // It took effect long after its client gave up, after a read that did not see it.
    get(&mut h, 2, "k1", (40, 50), Some(("v1", 2, 1)), 2);
    put(&mut h, 3, "k1", "v2", (60, 70), 3);
    get(&mut h, 2, "k1", (80, 90), Some(("v2", 3, 2)), 3);
    assert_linearizable(&h);
}

#[test]
fn unknown_outcome_put_may_never_appear() {
    let mut h = History::new();
    put_lost(&mut h, 1, "k1", "v1", 0, 10);
    get(&mut h, 2, "k1", (20, 30), None, 1);
    put(&mut h, 3, "k1", "v2", (40, 50), 2);
    get(&mut h, 2, "k1", (60, 70), Some(("v2", 2, 1)), 2);
    assert_linearizable(&h);
}

#[test]
fn unknown_outcome_put_cannot_appear_before_its_invocation() {
    let mut h = History::new();
    let early = get(&mut h, 2, "k1", (0, 10), Some(("v1", 2, 1)), 2);
    put_lost(&mut h, 1, "k1", "v1", 20, 30);
    assert_not_linearizable(&h, "k1", early);
}

#[test]
fn unknown_outcome_put_cannot_be_seen_then_unseen() {
    let mut h = History::new();
    put_lost(&mut h, 1, "k1", "v1", 0, 10);
    get(&mut h, 2, "k1", (20, 30), Some(("v1", 2, 1)), 2);
    let unseen = get(&mut h, 2, "k1", (40, 50), None, 2);
    assert_not_linearizable(&h, "k1", unseen);
}

#[test]
fn in_flight_operation_at_the_end_counts_as_unknown() {
    let mut h = History::new();
    h.invoke(
        1,
        KvOp::Put {
            key: k("k1"),
            value: k("v1"),
        },
        0,
    );
    get(&mut h, 2, "k1", (20, 30), Some(("v1", 2, 1)), 2);
    assert_linearizable(&h);
}

#[test]
fn definitely_failed_put_is_dropped_and_cannot_be_read() {
    let mut h = History::new();
    let id = h.invoke(
        1,
        KvOp::Put {
            key: k("k1"),
            value: k("v1"),
        },
        0,
    );
    h.fail_definite(id);
    get(&mut h, 2, "k1", (20, 30), None, 1);
    assert_linearizable(&h);
    let phantom = get(&mut h, 2, "k1", (40, 50), Some(("v1", 2, 1)), 2);
    assert_not_linearizable(&h, "k1", phantom);
}

#[test]
fn read_of_a_value_never_written_is_rejected() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    let phantom = get(&mut h, 2, "k1", (20, 30), Some(("v9", 2, 1)), 2);
    assert_not_linearizable(&h, "k1", phantom);
}

#[test]
fn value_written_to_another_key_is_not_readable_here() {
    let mut h = History::new();
    put(&mut h, 1, "k2", "v1", (0, 10), 2);
    let crossed = get(&mut h, 2, "k1", (20, 30), Some(("v1", 2, 1)), 2);
    assert_not_linearizable(&h, "k1", crossed);
}

#[test]
fn compare_and_swap_follows_mod_revision() {
    let mut h = History::new();
    cas(&mut h, 1, "k1", 0, "v1", (0, 10), (true, 2)); // create if absent
    cas(&mut h, 2, "k1", 0, "x", (20, 30), (false, 2)); // no longer absent
    cas(&mut h, 1, "k1", 2, "v2", (40, 50), (true, 3));
    cas(&mut h, 2, "k1", 2, "y", (60, 70), (false, 3)); // stale expectation
    get(&mut h, 3, "k1", (80, 90), Some(("v2", 3, 2)), 3);
    assert_linearizable(&h);

    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    put(&mut h, 1, "k1", "v2", (20, 30), 3);
    let wrong = cas(&mut h, 2, "k1", 2, "v3", (40, 50), (true, 4));
    assert_not_linearizable(&h, "k1", wrong);

    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    let wrong = cas(&mut h, 2, "k1", 2, "v3", (40, 50), (false, 2));
    assert_not_linearizable(&h, "k1", wrong);
}

#[test]
fn concurrent_compare_and_swaps_only_one_wins() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    cas(&mut h, 2, "k1", 2, "a", (20, 60), (true, 3));
    cas(&mut h, 3, "k1", 2, "b", (25, 65), (false, 3));
    get(&mut h, 1, "k1", (70, 80), Some(("a", 3, 2)), 3);
    assert_linearizable(&h);

    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    cas(&mut h, 2, "k1", 2, "a", (20, 60), (true, 3));
    let second = cas(&mut h, 3, "k1", 2, "b", (25, 65), (true, 4));
    // Whichever took effect first, the other's expectation was stale.
    let report = check(&h);
    let Some(v) = report.violation() else {
        panic!("both swaps won")
    };
    assert!(
        matches!(&v.kind, ViolationKind::NotLinearizable { candidates, .. } if candidates.contains(&second)),
        "{v}"
    );
}

#[test]
fn unknown_outcome_compare_and_swap_is_applied_only_if_its_compare_can_hold() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    put(&mut h, 1, "k1", "v2", (20, 30), 3);
    let op = KvOp::CompareAndSwap {
        key: k("k1"),
        expected_mod_revision: 3,
        new_value: k("v3"),
    };
    let id = h.invoke(2, op, 40);
    h.fail_unknown(id, 50);
    get(&mut h, 3, "k1", (60, 70), Some(("v3", 4, 3)), 4);
    assert_linearizable(&h);

    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    put(&mut h, 1, "k1", "v2", (20, 30), 3);
    let op = KvOp::CompareAndSwap {
        key: k("k1"),
        expected_mod_revision: 2,
        new_value: k("v3"),
    };
    let id = h.invoke(2, op, 40);
    h.fail_unknown(id, 50);
    let impossible = get(&mut h, 3, "k1", (60, 70), Some(("v3", 4, 3)), 4);
    assert_not_linearizable(&h, "k1", impossible);
}

#[test]
fn unknown_outcome_delete_may_take_effect() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    let id = h.invoke(1, KvOp::Delete { key: k("k1") }, 20);
    h.fail_unknown(id, 30);
    get(&mut h, 2, "k1", (40, 50), Some(("v1", 2, 1)), 2);
    get(&mut h, 2, "k1", (60, 70), None, 3);
    assert_linearizable(&h);
}

#[test]
fn mod_revision_mismatch_is_rejected() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 5);
    let wrong = get(&mut h, 2, "k1", (20, 30), Some(("v1", 4, 1)), 5);
    assert_not_linearizable(&h, "k1", wrong);
}

#[test]
fn mod_revision_of_an_unreported_write_is_pinned_by_the_first_read() {
    let mut h = History::new();
    put_lost(&mut h, 1, "k1", "v1", 0, 10);
    get(&mut h, 2, "k1", (20, 30), Some(("v1", 7, 1)), 7);
    let wrong = get(&mut h, 2, "k1", (40, 50), Some(("v1", 8, 1)), 8);
    assert_not_linearizable(&h, "k1", wrong);
}

#[test]
fn version_mismatch_is_rejected() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    put(&mut h, 1, "k1", "v2", (20, 30), 3);
    let wrong = get(&mut h, 2, "k1", (40, 50), Some(("v2", 3, 1)), 3);
    assert_not_linearizable(&h, "k1", wrong);
}

#[test]
fn revision_going_backwards_across_keys_is_rejected() {
    let mut h = History::new();
    let earlier = put(&mut h, 1, "k1", "v1", (0, 10), 5);
    let later = get(&mut h, 2, "k2", (20, 30), None, 3);
    let report = check(&h);
    let v = report.violation().expect("revision went backwards");
    assert_eq!(
        v.kind,
        ViolationKind::RevisionWentBackwards { earlier, later },
        "{v}"
    );
    assert!(v.explanation.starts_with("revision went backwards"), "{v}");
}

#[test]
fn write_after_a_read_must_create_a_higher_revision() {
    let mut h = History::new();
    let earlier = get(&mut h, 1, "k1", (0, 10), None, 5);
    let later = put(&mut h, 2, "k2", "v1", (20, 30), 5);
    let report = check(&h);
    let v = report.violation().expect("write reused a read revision");
    assert_eq!(
        v.kind,
        ViolationKind::RevisionWentBackwards { earlier, later },
        "{v}"
    );
}

#[test]
fn revision_going_backwards_within_a_key_is_rejected() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 100), 5);
    // Overlapping, so real time allows either order. The read cannot follow the put (it did
    // not see v1), nor precede it (a write after a read at revision 6 creates one above 6).
    let read = get(&mut h, 2, "k1", (10, 20), None, 6);
    assert_not_linearizable(&h, "k1", read);
}

#[test]
fn two_writes_cannot_create_the_same_revision() {
    let mut h = History::new();
    let first = put(&mut h, 1, "k1", "v1", (0, 10), 5);
    let second = put(&mut h, 2, "k2", "v2", (0, 10), 5);
    let report = check(&h);
    let v = report.violation().expect("duplicate revision");
    assert_eq!(
        v.kind,
        ViolationKind::DuplicateWriteRevision {
            revision: 5,
            first,
            second
        },
        "{v}"
    );
}

#[test]
fn exhausted_search_budget_is_unknown_not_a_verdict() {
    let mut h = History::new();
    put(&mut h, 1, "k1", "v1", (0, 10), 2);
    get(&mut h, 2, "k1", (20, 30), Some(("v1", 2, 1)), 2);
    let report = check_kv(
        &h,
        &CheckConfig {
            search_steps_max_per_key: 1,
        },
    );
    assert_eq!(report.outcome, CheckOutcome::Unknown { keys: vec![k("k1")] });
}

#[test]
fn same_history_gives_the_same_report() {
    let mut h = History::new();
    for i in 0..20u64 {
        let key = format!("k{}", i % 3);
        put(
            &mut h,
            i % 4,
            &key,
            &format!("v{i}"),
            (i * 10, i * 10 + 25),
            i as i64 + 2,
        );
    }
    get(&mut h, 9, "k0", (500, 510), Some(("v3", 5, 2)), 21);
    let first = check(&h);
    assert!(first.violation().is_some());
    assert_eq!(first, check(&h));
}

#[test]
fn lost_write_resolved_as_applied_must_take_effect_with_its_revision() {
    let mut h = History::new();
    let lost = put_lost(&mut h, 1, "k1", "v1", 0, 10);
    h.resolve_unknown(lost, Some(2));
    get(&mut h, 2, "k1", (20, 30), None, 1);
    get(&mut h, 2, "k1", (40, 50), Some(("v1", 2, 1)), 2);
    assert_linearizable(&h);

    // The log says it applied, so it cannot be missing for ever.
    let mut h = History::new();
    let lost = put_lost(&mut h, 1, "k1", "v1", 0, 10);
    h.resolve_unknown(lost, Some(2));
    get(&mut h, 2, "k1", (20, 30), None, 1);
    put(&mut h, 3, "k1", "v2", (40, 50), 3);
    let skipped = get(&mut h, 2, "k1", (60, 70), Some(("v2", 3, 1)), 3);
    assert_not_linearizable(&h, "k1", skipped);

    // And its revision is fixed: a read may not report another.
    let mut h = History::new();
    let lost = put_lost(&mut h, 1, "k1", "v1", 0, 10);
    h.resolve_unknown(lost, Some(2));
    let wrong = get(&mut h, 2, "k1", (20, 30), Some(("v1", 3, 1)), 3);
    assert_not_linearizable(&h, "k1", wrong);
}

#[test]
fn lost_write_resolved_as_not_applied_cannot_be_read() {
    let mut h = History::new();
    let lost = put_lost(&mut h, 1, "k1", "v1", 0, 10);
    h.resolve_unknown(lost, None);
    let phantom = get(&mut h, 2, "k1", (20, 30), Some(("v1", 2, 1)), 2);
    assert_not_linearizable(&h, "k1", phantom);
}

#[test]
fn resolved_write_revision_takes_part_in_cross_key_checks() {
    let mut h = History::new();
    let first = put(&mut h, 1, "k1", "v1", (0, 10), 2);
    let lost = put_lost(&mut h, 2, "k2", "w1", 20, 30);
    h.resolve_unknown(lost, Some(2));
    let report = check(&h);
    let v = report.violation().expect("duplicate revision");
    assert_eq!(
        v.kind,
        ViolationKind::DuplicateWriteRevision {
            revision: 2,
            first,
            second: lost
        },
        "{v}"
    );
}
