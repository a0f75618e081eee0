//! etcd's watch semantics, case by case (ETCD-API.md §1.2).

use detcd_core::mvcc::Store;
use detcd_core::watch::{Hub, HubConfig, DUPLICATE_WATCH_ID_REASON, EMPTY_RANGE_REASON};
use detcd_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, WatchCreateRequest, WatchResponse,
};

fn put(s: &mut Store, hub: &mut Hub, k: &str, v: &str) {
    let a = s
        .put(
            &PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            },
            &|_| false,
        )
        .unwrap();
    hub.on_events(&a.events);
}

fn watch(key: &str, start_revision: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.into(),
        start_revision,
        ..Default::default()
    }
}

fn drain(hub: &mut Hub, stream: u64) -> Vec<WatchResponse> {
    std::iter::from_fn(|| hub.poll(stream)).collect()
}

#[test]
fn auto_ids_start_at_zero_and_client_ids_must_be_unique() {
    let mut hub = Hub::default();
    assert_eq!(hub.create(1, &watch("a", 0), 1), Some(0));
    assert_eq!(
        hub.create(
            1,
            &WatchCreateRequest {
                watch_id: 1,
                ..watch("a", 0)
            },
            1
        ),
        Some(1)
    );
    assert_eq!(
        hub.create(1, &watch("a", 0), 1),
        Some(2),
        "auto IDs skip IDs in use"
    );
    assert_eq!(
        hub.create(
            1,
            &WatchCreateRequest {
                watch_id: 1,
                ..watch("a", 0)
            },
            1
        ),
        None
    );
    assert_eq!(
        hub.create(
            2,
            &WatchCreateRequest {
                watch_id: 1,
                ..watch("a", 0)
            },
            1
        ),
        Some(1),
        "IDs are per stream"
    );
    let rs = drain(&mut hub, 1);
    assert!(rs[..3].iter().all(|r| r.created && !r.canceled));
    let refused = &rs[3];
    assert!(refused.created && refused.canceled);
    assert_eq!(
        (refused.watch_id, refused.cancel_reason.as_str()),
        (-1, DUPLICATE_WATCH_ID_REASON)
    );
}

#[test]
fn empty_range_is_refused_in_the_response() {
    let mut hub = Hub::default();
    assert_eq!(
        hub.create(
            1,
            &WatchCreateRequest {
                key: b"b".to_vec(),
                range_end: b"a".to_vec(),
                ..Default::default()
            },
            1
        ),
        None
    );
    assert_eq!(drain(&mut hub, 1)[0].cancel_reason, EMPTY_RANGE_REASON);
    assert!(hub
        .create(
            1,
            &WatchCreateRequest {
                key: b"b".to_vec(),
                range_end: vec![0],
                ..Default::default()
            },
            1
        )
        .is_some());
}

#[test]
fn start_zero_means_next_revision_and_history_is_replayed() {
    let mut s = Store::default();
    let mut hub = Hub::default();
    put(&mut s, &mut hub, "a", "1"); // 2
    let now = hub.create(1, &watch("a", 0), s.revision()).unwrap();
    let past = hub.create(1, &watch("a", 2), s.revision()).unwrap();
    put(&mut s, &mut hub, "a", "2"); // 3
    hub.sync(&s);
    let rs = drain(&mut hub, 1);
    let events_of = |id: i64| -> Vec<i64> {
        rs.iter()
            .filter(|r| r.watch_id == id)
            .flat_map(|r| r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision))
            .collect()
    };
    assert_eq!(events_of(now), vec![3]);
    assert_eq!(events_of(past), vec![2, 3]);
}

#[test]
fn compacted_start_revision_cancels_with_compact_revision() {
    let mut s = Store::default();
    let mut hub = Hub::default();
    for v in ["1", "2", "3"] {
        put(&mut s, &mut hub, "a", v);
    }
    s.compact(&CompactionRequest {
        revision: 3,
        physical: false,
    })
    .unwrap();
    let id = hub.create(1, &watch("a", 2), s.revision()).unwrap();
    hub.sync(&s);
    let rs = drain(&mut hub, 1);
    assert!(rs[0].created);
    assert_eq!(
        (rs[1].watch_id, rs[1].canceled, rs[1].compact_revision),
        (id, true, 3)
    );
    assert_eq!(hub.watchers(1), 0);
}

#[test]
fn filters_and_prev_kv() {
    let mut s = Store::default();
    let mut hub = Hub::default();
    put(&mut s, &mut hub, "a", "1");
    hub.create(
        1,
        &WatchCreateRequest {
            filters: vec![0],
            prev_kv: true,
            ..watch("a", 0)
        },
        s.revision(),
    );
    put(&mut s, &mut hub, "a", "2");
    let d = s
        .delete_range(&DeleteRangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .unwrap();
    hub.on_events(&d.events);
    let rs = drain(&mut hub, 1);
    assert_eq!(rs.len(), 2, "created, then only the delete");
    assert_eq!(rs[1].events[0].r#type, 1);
    assert_eq!(rs[1].events[0].prev_kv.as_ref().unwrap().value, b"2");
}

#[test]
fn progress_request_waits_for_sync_and_speaks_for_the_stream() {
    let mut s = Store::default();
    let mut hub = Hub::default();
    put(&mut s, &mut hub, "a", "1");
    hub.create(1, &watch("a", 1), s.revision());
    hub.request_progress(1);
    assert_eq!(
        drain(&mut hub, 1).len(),
        1,
        "only created: the watcher is not synced yet"
    );
    hub.sync(&s);
    let rs = drain(&mut hub, 1);
    let last = rs.last().unwrap();
    assert_eq!(
        (last.watch_id, last.events.len(), last.header.unwrap().revision),
        (-1, 0, 2)
    );
}

#[test]
fn slow_stream_falls_back_and_catches_up_without_loss() {
    let mut s = Store::default();
    let mut hub = Hub::new(HubConfig {
        stream_responses_max: 2,
        ..HubConfig::default()
    });
    hub.create(1, &watch("a", 0), s.revision());
    for i in 0..10 {
        put(&mut s, &mut hub, "a", &i.to_string());
    }
    assert!(hub.queued(1) <= 2, "the queue stays bounded");
    assert!(hub.needs_sync());
    let mut revs = Vec::new();
    while hub.needs_sync() || hub.queued(1) > 0 {
        hub.sync(&s);
        for r in drain(&mut hub, 1) {
            revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
        }
    }
    assert_eq!(revs, (2..12).collect::<Vec<_>>());
}

#[test]
fn fragment_splits_a_large_revision_only_when_asked() {
    let mut s = Store::default();
    let mut hub = Hub::new(HubConfig {
        fragment_bytes_max: 100,
        ..HubConfig::default()
    });
    let range = |fragment| WatchCreateRequest {
        key: b"k".to_vec(),
        range_end: b"l".to_vec(),
        fragment,
        ..Default::default()
    };
    let whole = hub.create(1, &range(false), s.revision()).unwrap();
    let parts = hub.create(1, &range(true), s.revision()).unwrap();
    let ops: Vec<_> = (0..5)
        .map(|i| detcd_proto::etcdserverpb::RequestOp {
            request: Some(detcd_proto::etcdserverpb::request_op::Request::RequestPut(
                PutRequest {
                    key: format!("k{i}").into(),
                    value: vec![b'x'; 40],
                    ..Default::default()
                },
            )),
        })
        .collect();
    let a = s
        .txn(
            &detcd_proto::etcdserverpb::TxnRequest {
                success: ops,
                ..Default::default()
            },
            &|_| false,
        )
        .unwrap();
    hub.on_events(&a.events);
    let rs: Vec<_> = drain(&mut hub, 1).into_iter().filter(|r| !r.created).collect();
    assert_eq!(rs.iter().filter(|r| r.watch_id == whole).count(), 1);
    let frags: Vec<_> = rs.iter().filter(|r| r.watch_id == parts).collect();
    assert!(frags.len() > 1);
    assert!(frags[..frags.len() - 1].iter().all(|r| r.fragment) && !frags.last().unwrap().fragment);
    assert_eq!(frags.iter().map(|r| r.events.len()).sum::<usize>(), 5);
}

#[test]
fn cancel_of_unknown_id_is_ignored_and_cancel_is_acknowledged() {
    let mut hub = Hub::default();
    hub.cancel(1, 5);
    assert_eq!(hub.queued(1), 0);
    let id = hub.create(1, &watch("a", 0), 1).unwrap();
    hub.cancel(1, id);
    let rs = drain(&mut hub, 1);
    assert!(rs[1].canceled && rs[1].watch_id == id);
}

/// A member's store replaced by the leader's snapshot (`Hub::restore`): a synced
/// watcher was fed up to the old revision and gets every revision in between from
/// the restored history, each once, then follows live writes; an unsynced one
/// catches up as before. (The simulator found the gap before `restore` existed:
/// seeds 5, 201, 301, 303, 304.)
#[test]
fn restore_replays_the_revisions_a_snapshot_skipped() {
    let (mut follower, mut leader) = (Store::default(), Store::default());
    let mut hub = Hub::default();
    let mut scratch = Hub::default();
    put(&mut follower, &mut hub, "a", "1"); // 2
    let live = hub.create(1, &watch("a", 0), follower.revision()).unwrap();
    let past = hub.create(2, &watch("a", 1), follower.revision()).unwrap();
    for (k, v) in [("a", "1"), ("b", "1"), ("a", "2"), ("a", "3")] {
        put(&mut leader, &mut scratch, k, v); // 2..=5
    }
    hub.restore(&leader);
    put(&mut leader, &mut hub, "a", "4"); // 6
    hub.sync(&leader);
    let revisions = |rs: &[WatchResponse], id: i64| -> Vec<i64> {
        rs.iter()
            .filter(|r| r.watch_id == id)
            .flat_map(|r| r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision))
            .collect()
    };
    assert_eq!(revisions(&drain(&mut hub, 1), live), vec![4, 5, 6]);
    assert_eq!(revisions(&drain(&mut hub, 2), past), vec![2, 4, 5, 6]);
}

/// The restored store is compacted past a synced watcher's next revision: the
/// watcher is canceled with `compact_revision`, never silently moved on.
#[test]
fn restore_past_a_compaction_cancels_with_compact_revision() {
    let (mut follower, mut leader) = (Store::default(), Store::default());
    let mut hub = Hub::default();
    let mut scratch = Hub::default();
    put(&mut follower, &mut hub, "a", "1"); // 2
    let id = hub.create(1, &watch("a", 0), follower.revision()).unwrap();
    for v in ["1", "2", "3", "4"] {
        put(&mut leader, &mut scratch, "a", v); // 2..=5
    }
    leader
        .compact(&CompactionRequest {
            revision: 4,
            physical: false,
        })
        .unwrap();
    hub.restore(&leader);
    let rs = drain(&mut hub, 1);
    assert!(rs[0].created);
    assert_eq!(
        (rs[1].watch_id, rs[1].canceled, rs[1].compact_revision),
        (id, true, 4)
    );
    assert_eq!(hub.watchers(1), 0);
}

#[test]
fn the_hub_counts_its_watchers_and_the_unsynced_ones_until_they_catch_up() {
    let mut s = Store::default();
    let mut hub = Hub::new(HubConfig {
        sync_events_max: 2,
        ..HubConfig::default()
    });
    for v in ["1", "2", "3", "4", "5"] {
        put(&mut s, &mut hub, "a", v);
    }
    hub.create(1, &watch("a", 0), s.revision());
    hub.create(2, &watch("a", 2), s.revision());
    assert_eq!((hub.watcher_count(), hub.unsynced_count()), (2, 1));
    // Two revisions of history per sync: 2-3, 4-5, then caught up.
    hub.sync(&s);
    hub.sync(&s);
    assert_eq!(hub.unsynced_count(), 1, "still behind after two pages");
    hub.sync(&s);
    assert_eq!((hub.watcher_count(), hub.unsynced_count()), (2, 0));
    hub.close_stream(2);
    assert_eq!(hub.watcher_count(), 1);
    drain(&mut hub, 1);
    hub.cancel(1, 0);
    assert_eq!(hub.watcher_count(), 0);
}
