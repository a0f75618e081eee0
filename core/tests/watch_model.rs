//! Property test: random writes, compactions, watchers (random ranges, start
//! revisions, filters, prev_kv) and consumers that drain slowly or not at all. Every
//! watcher must receive exactly the model's events for it (all events of the history
//! in its range from its start revision, filtered) in order, each once, with a
//! revision never split across responses, or else a prefix of them followed by a
//! compaction cancel carrying a compaction revision the store really had.

use std::collections::BTreeMap;

use detcd_core::mvcc::{prefix_end, Store, StoreConfig};
use detcd_core::watch::{Hub, HubConfig};
use detcd_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, WatchCreateRequest, WatchResponse,
};
use detcd_proto::mvccpb::Event;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Delete(u8, bool),
    Compact(i64),
    Watch {
        stream: u64,
        key: u8,
        span: u8,
        start: i64,
        no_put: bool,
        no_delete: bool,
        prev_kv: bool,
    },
    Poll(u64, usize),
    Sync,
}

const KEYS: [&str; 4] = ["a", "ab", "b", "c"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, 0u8..3).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..4, any::<bool>()).prop_map(|(k, p)| Op::Delete(k, p)),
        1 => (0i64..30).prop_map(Op::Compact),
        2 => (0u64..3, 0u8..4, 0u8..3, prop_oneof![Just(0i64), 1i64..30], any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(stream, key, span, start, no_put, no_delete, prev_kv)| Op::Watch { stream, key, span, start, no_put: no_put && !no_delete, no_delete, prev_kv }),
        // stream 2 is the slow consumer: it is polled rarely.
        4 => (prop_oneof![3 => 0u64..2, 1 => Just(2u64)], 1usize..4).prop_map(|(s, n)| Op::Poll(s, n)),
        2 => Just(Op::Sync),
    ]
}

struct WatchSpec {
    key: Vec<u8>,
    range_end: Vec<u8>,
    start: i64,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
}

#[derive(Default)]
struct Seen {
    events: Vec<Event>,
    /// Revisions of the responses, to check none is split.
    response_revs: Vec<Vec<i64>>,
    compacted_at: Option<i64>,
    created: bool,
}

fn covers(key: &[u8], end: &[u8], k: &[u8]) -> bool {
    match end {
        [] => k == key,
        [0] => k >= key,
        e => k >= key && k < e,
    }
}

proptest! {
    #[test]
    fn every_watcher_sees_exactly_its_events(ops in prop::collection::vec(op(), 1..60)) {
        let mut store = Store::new(StoreConfig::default());
        let mut hub = Hub::new(HubConfig { stream_responses_max: 3, sync_events_max: 2, ..HubConfig::default() });
        let mut history: Vec<Event> = Vec::new();
        let mut compactions: Vec<i64> = Vec::new();
        let mut specs: BTreeMap<(u64, i64), WatchSpec> = BTreeMap::new();
        let mut seen: BTreeMap<(u64, i64), Seen> = BTreeMap::new();
        let no_lease = |_: i64| false;

        let handle = |stream: u64, r: WatchResponse, seen: &mut BTreeMap<(u64, i64), Seen>, compactions: &[i64]| -> Result<(), TestCaseError> {
            let s = seen.entry((stream, r.watch_id)).or_default();
            if r.created {
                prop_assert!(!s.created && s.events.is_empty(), "created comes first, once");
                s.created = true;
                return Ok(());
            }
            prop_assert!(s.created, "response before created");
            prop_assert!(s.compacted_at.is_none(), "response after a compaction cancel");
            if r.canceled {
                prop_assert!(compactions.contains(&r.compact_revision), "cancel with compact_revision {}", r.compact_revision);
                s.compacted_at = Some(r.compact_revision);
                return Ok(());
            }
            s.response_revs.push(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision).collect());
            s.events.extend(r.events);
            Ok(())
        };

        for op in &ops {
            match *op {
                Op::Put(k, v) => {
                    let req = PutRequest { key: KEYS[k as usize].into(), value: vec![v], ..Default::default() };
                    let applied = store.put(&req, &no_lease).unwrap();
                    hub.on_events(&applied.events);
                    history.extend(applied.events);
                }
                Op::Delete(k, prefix) => {
                    let key: Vec<u8> = KEYS[k as usize].into();
                    let range_end = if prefix { prefix_end(&key) } else { Vec::new() };
                    let applied = store.delete_range(&DeleteRangeRequest { key, range_end, prev_kv: false }).unwrap();
                    hub.on_events(&applied.events);
                    history.extend(applied.events);
                }
                Op::Compact(rev) => {
                    if store.compact(&CompactionRequest { revision: rev, physical: false }).is_ok() {
                        compactions.push(rev);
                    }
                }
                Op::Watch { stream, key, span, start, no_put, no_delete, prev_kv } => {
                    let key: Vec<u8> = KEYS[key as usize].into();
                    let range_end = match span { 0 => Vec::new(), 1 => prefix_end(&key), _ => vec![0] };
                    let start = start.min(store.revision() + 2);
                    let filters = [(no_put, 0), (no_delete, 1)].iter().filter(|f| f.0).map(|f| f.1).collect();
                    let req = WatchCreateRequest { key: key.clone(), range_end: range_end.clone(), start_revision: start, filters, prev_kv, ..Default::default() };
                    let id = hub.create(stream, &req, store.revision()).expect("valid create");
                    let start = if start == 0 { store.revision() + 1 } else { start };
                    specs.insert((stream, id), WatchSpec { key, range_end, start, no_put, no_delete, prev_kv });
                }
                Op::Poll(stream, n) => {
                    for _ in 0..n {
                        let Some(r) = hub.poll(stream) else { break };
                        handle(stream, r, &mut seen, &compactions)?;
                    }
                }
                Op::Sync => hub.sync(&store),
            }
        }
        // Everyone drains now; the hub must then deliver everything.
        for _ in 0..10_000 {
            hub.sync(&store);
            let mut any = false;
            while let Some((stream, r)) = hub.poll_any() {
                handle(stream, r, &mut seen, &compactions)?;
                any = true;
            }
            if !any && !hub.needs_sync() {
                break;
            }
        }
        prop_assert!(!hub.needs_sync());

        for (id, spec) in &specs {
            let want: Vec<&Event> = history
                .iter()
                .filter(|e| {
                    let kv = e.kv.as_ref().unwrap();
                    let delete = e.r#type == 1;
                    kv.mod_revision >= spec.start
                        && covers(&spec.key, &spec.range_end, &kv.key)
                        && !(delete && spec.no_delete || !delete && spec.no_put)
                })
                .collect();
            let s = seen.remove(id).unwrap_or_default();
            prop_assert!(s.created);
            if s.compacted_at.is_none() {
                prop_assert_eq!(s.events.len(), want.len(), "watcher {:?} got a different count", id);
            } else {
                prop_assert!(s.events.len() <= want.len());
            }
            for (got, want) in s.events.iter().zip(&want) {
                prop_assert_eq!(&got.kv, &want.kv);
                prop_assert_eq!(got.r#type, want.r#type);
                if !spec.prev_kv {
                    prop_assert!(got.prev_kv.is_none());
                } else if got.prev_kv.is_some() {
                    prop_assert_eq!(&got.prev_kv, &want.prev_kv);
                }
            }
            let mut last_rev = 0;
            for revs in &s.response_revs {
                prop_assert!(!revs.is_empty());
                prop_assert!(revs[0] > last_rev, "a revision split across responses, or out of order");
                last_rev = *revs.last().unwrap();
            }
        }
    }
}
