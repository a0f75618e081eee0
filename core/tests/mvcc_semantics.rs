//! etcd's KV semantics, case by case (ETCD-API.md §1.1, §1.8), plus snapshot and
//! HashKV round trips.

use detcd_core::error::{self, Code};
use detcd_core::mvcc::{SnapshotError, Store, StoreConfig};
use detcd_proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op::Request,
    response_op::Response,
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

fn granted(id: i64) -> bool {
    id == 42
}

fn put(s: &mut Store, k: &str, v: &str) -> i64 {
    let r = s
        .put(
            &PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            },
            &granted,
        )
        .unwrap();
    r.response.header.unwrap().revision
}

fn get(s: &Store, k: &str, end: &str) -> Vec<(String, String)> {
    let r = s
        .range(&RangeRequest {
            key: k.into(),
            range_end: end.into(),
            ..Default::default()
        })
        .unwrap();
    r.kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key).unwrap(),
                String::from_utf8(kv.value).unwrap(),
            )
        })
        .collect()
}

fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })),
    }
}

fn op_del(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: false,
        })),
    }
}

#[test]
fn empty_store_is_at_revision_one_and_first_put_is_two() {
    let mut s = Store::default();
    let r = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.header.unwrap().revision, 1);
    assert_eq!(put(&mut s, "a", "1"), 2);
    let kv = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .unwrap()
        .kvs
        .remove(0);
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 2, 1));
    put(&mut s, "a", "2");
    let kv = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .unwrap()
        .kvs
        .remove(0);
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    s.delete_range(&DeleteRangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    })
    .unwrap();
    put(&mut s, "a", "3");
    let kv = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .unwrap()
        .kvs
        .remove(0);
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (5, 5, 1),
        "recreated key starts a new generation"
    );
}

#[test]
fn range_end_rules() {
    let mut s = Store::default();
    for k in ["a", "ab", "b", "\u{0}x"] {
        put(&mut s, k, "v");
    }
    assert_eq!(get(&s, "a", "").len(), 1);
    assert_eq!(get(&s, "a", "b").len(), 2, "prefix a");
    assert_eq!(get(&s, "ab", "\u{0}").len(), 2, "\\0 end: every key >= ab");
    assert_eq!(get(&s, "\u{0}", "\u{0}").len(), 4, "everything");
    assert_eq!(get(&s, "b", "a").len(), 0, "end before key");
}

#[test]
fn limit_more_and_count_and_sort() {
    let mut s = Store::default();
    put(&mut s, "c", "1");
    put(&mut s, "b", "3");
    put(&mut s, "a", "2");
    let r = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (2, true, 3));
    let r = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Value as i32,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        r.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![b"b".to_vec(), b"a".to_vec(), b"c".to_vec()]
    );
    let r = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            sort_target: SortTarget::Mod as i32,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.kvs[0].key, b"c", "non-KEY target with NONE sorts ascending");
    let r = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            count_only: true,
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 3, false));
    let r = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            min_mod_revision: 3,
            keys_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count), (2, 3), "filters do not change count");
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
}

#[test]
fn every_error_message_is_etcds() {
    let mut s = Store::default();
    put(&mut s, "a", "1");
    let cases = [
        (
            s.clone().range(&RangeRequest::default()).unwrap_err(),
            "etcdserver: key is not provided",
            Code::InvalidArgument,
        ),
        (
            s.clone()
                .range(&RangeRequest {
                    key: b"a".to_vec(),
                    sort_order: 9,
                    ..Default::default()
                })
                .unwrap_err(),
            "etcdserver: invalid sort option",
            Code::InvalidArgument,
        ),
        (
            s.clone()
                .range(&RangeRequest {
                    key: b"a".to_vec(),
                    revision: 9,
                    ..Default::default()
                })
                .unwrap_err(),
            "etcdserver: mvcc: required revision is a future revision",
            Code::OutOfRange,
        ),
        (
            s.clone()
                .put(
                    &PutRequest {
                        key: b"a".to_vec(),
                        value: b"x".to_vec(),
                        ignore_value: true,
                        ..Default::default()
                    },
                    &granted,
                )
                .unwrap_err(),
            "etcdserver: value is provided",
            Code::InvalidArgument,
        ),
        (
            s.clone()
                .put(
                    &PutRequest {
                        key: b"a".to_vec(),
                        lease: 42,
                        ignore_lease: true,
                        ..Default::default()
                    },
                    &granted,
                )
                .unwrap_err(),
            "etcdserver: lease is provided",
            Code::InvalidArgument,
        ),
        (
            s.clone()
                .put(
                    &PutRequest {
                        key: b"zz".to_vec(),
                        ignore_value: true,
                        ..Default::default()
                    },
                    &granted,
                )
                .unwrap_err(),
            "etcdserver: key not found",
            Code::InvalidArgument,
        ),
        (
            s.clone()
                .put(
                    &PutRequest {
                        key: b"a".to_vec(),
                        lease: 7,
                        ..Default::default()
                    },
                    &granted,
                )
                .unwrap_err(),
            "etcdserver: requested lease not found",
            Code::NotFound,
        ),
        (
            s.clone()
                .txn(
                    &TxnRequest {
                        success: vec![op_put("a", "1"), op_put("a", "2")],
                        ..Default::default()
                    },
                    &granted,
                )
                .unwrap_err(),
            "etcdserver: duplicate key given in txn request",
            Code::InvalidArgument,
        ),
        (
            s.clone()
                .txn(
                    &TxnRequest {
                        success: vec![op_put("x", ""); 129],
                        ..Default::default()
                    },
                    &granted,
                )
                .unwrap_err(),
            "etcdserver: too many operations in txn request",
            Code::InvalidArgument,
        ),
        (
            s.clone()
                .compact(&CompactionRequest {
                    revision: 5,
                    physical: false,
                })
                .unwrap_err(),
            "etcdserver: mvcc: required revision is a future revision",
            Code::OutOfRange,
        ),
    ];
    for (got, message, code) in cases {
        assert_eq!((got.message, got.code), (message, code));
    }
    let mut c = s.clone();
    c.compact(&CompactionRequest {
        revision: 2,
        physical: false,
    })
    .unwrap();
    assert_eq!(
        c.compact(&CompactionRequest {
            revision: 2,
            physical: false
        })
        .unwrap_err(),
        error::COMPACTED
    );
    put(&mut c, "a", "2");
    assert_eq!(
        c.range(&RangeRequest {
            key: b"a".to_vec(),
            revision: 1,
            ..Default::default()
        })
        .unwrap_err()
        .message,
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert!(
        c.range(&RangeRequest {
            key: b"a".to_vec(),
            revision: 2,
            ..Default::default()
        })
        .is_ok(),
        "the compact revision itself is readable"
    );
}

#[test]
fn duplicate_key_rules_nested() {
    let s = Store::default();
    let nested = |success: Vec<RequestOp>, failure: Vec<RequestOp>| RequestOp {
        request: Some(Request::RequestTxn(TxnRequest {
            compare: vec![],
            success,
            failure,
        })),
    };
    let ok = |ops: Vec<RequestOp>| {
        s.clone().txn(
            &TxnRequest {
                success: ops,
                ..Default::default()
            },
            &granted,
        )
    };
    assert!(
        ok(vec![nested(vec![op_put("a", "")], vec![op_put("a", "")])]).is_ok(),
        "then/else of one nested txn may share a key"
    );
    assert_eq!(
        ok(vec![op_put("a", ""), nested(vec![op_put("a", "")], vec![])]).unwrap_err(),
        error::DUPLICATE_KEY
    );
    assert_eq!(
        ok(vec![op_del("a", "c"), op_put("b", "")]).unwrap_err(),
        error::DUPLICATE_KEY
    );
    assert_eq!(
        ok(vec![nested(vec![op_del("a", "")], vec![]), op_put("a", "")]).unwrap_err(),
        error::DUPLICATE_KEY
    );
    assert!(
        ok(vec![op_del("a", "c"), op_del("b", "")]).is_ok(),
        "overlapping deletes are fine"
    );
    assert!(
        ok(vec![op_del("a", "\u{0}"), op_put("b", "")]).is_ok(),
        "etcd's rule does not see a \\0 end"
    );
}

#[test]
fn txn_compares_revisions_and_missing_keys() {
    let mut s = Store::default();
    put(&mut s, "a", "1");
    let cmp = |target: CompareTarget, result: CompareResult, key: &str, u: TargetUnion| Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        range_end: vec![],
        target_union: Some(u),
    };
    let run = |s: &mut Store, c: Compare| {
        s.txn(
            &TxnRequest {
                compare: vec![c],
                ..Default::default()
            },
            &granted,
        )
        .unwrap()
    };
    assert!(
        run(
            &mut s,
            cmp(
                CompareTarget::Version,
                CompareResult::Equal,
                "a",
                TargetUnion::Version(1)
            )
        )
        .response
        .succeeded
    );
    assert!(
        run(
            &mut s,
            cmp(
                CompareTarget::Create,
                CompareResult::Equal,
                "zz",
                TargetUnion::CreateRevision(0)
            )
        )
        .response
        .succeeded
    );
    assert!(
        !run(
            &mut s,
            cmp(
                CompareTarget::Value,
                CompareResult::Equal,
                "zz",
                TargetUnion::Value(vec![])
            )
        )
        .response
        .succeeded
    );
    assert!(
        run(
            &mut s,
            cmp(
                CompareTarget::Mod,
                CompareResult::Less,
                "a",
                TargetUnion::ModRevision(3)
            )
        )
        .response
        .succeeded
    );
    assert!(
        run(
            &mut s,
            cmp(
                CompareTarget::Value,
                CompareResult::NotEqual,
                "a",
                TargetUnion::Value(b"2".to_vec())
            )
        )
        .response
        .succeeded
    );
    let read_only = run(
        &mut s,
        cmp(
            CompareTarget::Lease,
            CompareResult::Greater,
            "a",
            TargetUnion::Lease(0),
        ),
    );
    assert!(!read_only.response.succeeded);
    assert_eq!(
        read_only.response.header.unwrap().revision,
        2,
        "read-only txn keeps the revision"
    );
}

#[test]
fn txn_writes_share_one_revision_with_sub_revisions() {
    let mut s = Store::default();
    put(&mut s, "a", "1");
    let t = TxnRequest {
        success: vec![op_put("b", "2"), op_del("a", ""), op_put("c", "3")],
        ..Default::default()
    };
    let applied = s.txn(&t, &granted).unwrap();
    assert_eq!(applied.response.header.unwrap().revision, 3);
    assert_eq!(applied.events.len(), 3);
    assert!(applied
        .events
        .iter()
        .all(|e| e.kv.as_ref().unwrap().mod_revision == 3));
    assert_eq!(applied.events[1].prev_kv.as_ref().unwrap().value, b"1");
    assert!(
        matches!(applied.response.responses[1].response, Some(Response::ResponseDeleteRange(ref d)) if d.deleted == 1)
    );
    let nothing = s
        .delete_range(&DeleteRangeRequest {
            key: b"zz".to_vec(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        nothing.response.header.unwrap().revision,
        3,
        "deleting nothing makes no revision"
    );
}

#[test]
fn compaction_keeps_latest_live_revision_per_key() {
    let mut s = Store::default();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    put(&mut s, "b", "1"); // 4
    s.delete_range(&DeleteRangeRequest {
        key: b"b".to_vec(),
        ..Default::default()
    })
    .unwrap(); // 5
    s.compact(&CompactionRequest {
        revision: 4,
        physical: false,
    })
    .unwrap();
    let r = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"c".to_vec(),
            revision: 4,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.kvs.len(), 2);
    assert_eq!((r.kvs[0].version, r.kvs[0].value.as_slice()), (2, &b"2"[..]));
    assert_eq!(
        s.events(b"a", b"c", 4, 5, 100, false).unwrap().len(),
        2,
        "history from the compact revision"
    );
    assert_eq!(
        s.events(b"a", b"c", 3, 5, 100, false).unwrap_err(),
        error::COMPACTED
    );
    s.compact(&CompactionRequest {
        revision: 5,
        physical: false,
    })
    .unwrap();
    assert_eq!(
        s.events(b"b", b"", 5, 5, 100, false).unwrap().len(),
        1,
        "a tombstone at the compact revision stays"
    );
    s.check_invariants().unwrap();
}

fn busy_store() -> Store {
    let mut s = Store::new(StoreConfig { txn_ops_max: 64 });
    for i in 0..50u32 {
        put(&mut s, &format!("k{}", i % 7), &format!("v{i}"));
        if i % 9 == 0 {
            s.delete_range(&DeleteRangeRequest {
                key: format!("k{}", i % 5).into(),
                ..Default::default()
            })
            .unwrap();
        }
    }
    s.compact(&CompactionRequest {
        revision: 30,
        physical: false,
    })
    .unwrap();
    s
}

#[test]
fn snapshot_round_trip_is_identical() {
    let s = busy_store();
    let bytes = s.to_snapshot();
    let back = Store::from_snapshot(&bytes).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.hash_kv(0).unwrap(), s.hash_kv(0).unwrap());
    assert_eq!(back.to_snapshot(), bytes);
}

/// Encoding in small steps while writes (new keys, overwrites, deletes) land in
/// between gives exactly the snapshot of the store when the encoding started.
#[test]
fn stepped_snapshot_is_the_store_at_its_start() {
    let mut s = busy_store();
    let at_start = s.clone();
    let whole = at_start.to_snapshot();
    let mut encoder = s.snapshot_encoder();
    let mut steps = 0;
    let mut i = 0u32;
    while !encoder.step(&s, 40) {
        steps += 1;
        put(&mut s, &format!("k{}", i % 9), &format!("later{i}"));
        if i % 4 == 0 {
            s.delete_range(&DeleteRangeRequest {
                key: format!("k{}", i % 3).into(),
                ..Default::default()
            })
            .unwrap();
        }
        i += 1;
    }
    assert!(
        steps > 5,
        "the budget should have split the encoding: {steps} steps"
    );
    assert_ne!(s.to_snapshot(), whole, "the writes changed the store");
    assert_eq!(encoder.finish(), whole);
    // With a prefix, the store's bytes follow it unchanged.
    let mut e = at_start.snapshot_encoder_after(b"pre".to_vec());
    while !e.step(&at_start, usize::MAX) {}
    let (bytes, outer) = e.finish_with_outer_crc();
    assert_eq!(&bytes[..3], b"pre");
    assert_eq!(&bytes[3..], &whole[..]);
    assert_eq!(outer, detcd_core::crc32c::checksum(&bytes));
}

#[test]
fn corrupted_snapshots_are_refused_without_panicking() {
    let bytes = busy_store().to_snapshot();
    for i in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x20;
        assert!(Store::from_snapshot(&bad).is_err(), "flipped byte {i} accepted");
    }
    for n in [0, 5, bytes.len() / 2, bytes.len() - 1] {
        assert!(Store::from_snapshot(&bytes[..n]).is_err());
    }
    let mut bad = bytes.clone();
    bad[8] = 9;
    let n = bad.len() - 4;
    let crc = detcd_core::crc32c::checksum(&bad[..n]);
    bad[n..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        Store::from_snapshot(&bad).unwrap_err(),
        SnapshotError::UnsupportedVersion(9)
    );
}

#[test]
fn hash_kv_tracks_content_and_compaction() {
    let mut a = Store::default();
    let mut b = Store::default();
    put(&mut a, "x", "1");
    put(&mut b, "x", "1");
    assert_eq!(a.hash_kv(0).unwrap(), b.hash_kv(0).unwrap());
    let h = a.hash_kv(0).unwrap();
    assert_eq!(
        (h.compact_revision, h.hash_revision, h.header.unwrap().revision),
        (-1, 2, 2)
    );
    put(&mut b, "x", "2");
    assert_ne!(a.hash_kv(0).unwrap().hash, b.hash_kv(0).unwrap().hash);
    assert_eq!(
        a.hash_kv(2).unwrap().hash,
        b.hash_kv(2).unwrap().hash,
        "hash at a past revision ignores later writes"
    );
    assert_eq!(a.hash_kv(9).unwrap_err(), error::FUTURE_REV);
    put(&mut a, "x", "2");
    a.compact(&CompactionRequest {
        revision: 3,
        physical: false,
    })
    .unwrap();
    assert_eq!(a.hash_kv(1).unwrap_err(), error::COMPACTED);
    assert_ne!(
        a.hash_kv(3).unwrap().hash,
        b.hash_kv(3).unwrap().hash,
        "the hash covers what compaction dropped"
    );
    b.compact(&CompactionRequest {
        revision: 3,
        physical: false,
    })
    .unwrap();
    assert_eq!(
        a.hash_kv(0).unwrap(),
        b.hash_kv(0).unwrap(),
        "same writes, same compaction, same hash"
    );
}
