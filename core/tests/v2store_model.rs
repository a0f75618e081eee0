//! Property test: the v2 store against a naive model that keeps every node in one
//! flat map by full path and every event in one list, answering each request by
//! scanning them. Same events, same errors (code, cause, index), same waits, and
//! the store survives its snapshot codec unchanged.

use std::collections::BTreeMap;

use detcd_core::v2store::{code, Action, Event, NodeView, Store, Ttl, V2Error, HISTORY_CAPACITY};
use proptest::prelude::*;

const Y2000_MS: u64 = 946_684_800_000;

#[derive(Clone, Debug)]
struct Entry {
    dir: bool,
    value: String,
    created: u64,
    modified: u64,
    expire: Option<u64>,
}

#[derive(Default)]
struct Model {
    nodes: BTreeMap<String, Entry>,
    index: u64,
    events: Vec<Event>,
    /// The time of the request being applied.
    now: u64,
}

fn ttl_at(expire: Option<u64>, now: u64) -> i64 {
    match expire {
        None => 0,
        Some(at) => {
            let left = at as i64 - now as i64;
            let whole = left / 1000;
            if left > whole * 1000 {
                whole + 1
            } else {
                whole
            }
        }
    }
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(at) => &path[..at],
    }
}

fn name_of(path: &str) -> &str {
    &path[path.rfind('/').map_or(0, |at| at + 1)..]
}

/// Every ancestor of a path below the root, outermost first, then the path.
fn prefixes(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = format!("{at}/{part}");
        out.push(at.clone());
    }
    out
}

impl Model {
    fn err(&self, code: u32, cause: &str) -> V2Error {
        V2Error::new(code, cause, self.index)
    }

    fn is_dir(&self, path: &str) -> bool {
        path == "/" || self.nodes.get(path).is_some_and(|e| e.dir)
    }

    fn lookup(&self, path: &str) -> Result<(), V2Error> {
        let mut parent = "/".to_string();
        for p in prefixes(path) {
            if !self.is_dir(&parent) {
                return Err(self.err(code::NOT_DIR, &parent));
            }
            if !self.nodes.contains_key(&p) {
                return Err(self.err(code::KEY_NOT_FOUND, &p));
            }
            parent = p;
        }
        Ok(())
    }

    fn children(&self, path: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|k| parent_of(k) == path && k.as_str() != "/")
            .cloned()
            .collect()
    }

    fn view(&self, path: &str, recursive: bool, list: bool) -> NodeView {
        let (dir, value, created, modified, expire) = match self.nodes.get(path) {
            Some(e) => (e.dir, e.value.clone(), e.created, e.modified, e.expire),
            None => (true, String::new(), 0, 0, None),
        };
        let nodes = if dir && (recursive || list) {
            self.children(path)
                .iter()
                .filter(|c| !name_of(c).starts_with('_'))
                .map(|c| self.view(c, recursive, false))
                .collect()
        } else {
            Vec::new()
        };
        NodeView {
            key: path.to_string(),
            value: (!dir).then_some(value),
            dir,
            expire_unix_ms: expire,
            ttl: ttl_at(expire, self.now),
            nodes,
            modified_index: modified,
            created_index: created,
        }
    }

    fn record(&mut self, event: Event) -> Event {
        self.events.push(event.clone());
        event
    }

    fn get(&self, path: &str, recursive: bool) -> Result<Event, V2Error> {
        self.lookup(path)?;
        Ok(Event {
            action: Action::Get,
            node: self.view(path, recursive, true),
            prev_node: None,
            etcd_index: self.index,
            refresh: false,
        })
    }

    fn create_node(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        replace: bool,
        expire: Option<u64>,
        action: Action,
    ) -> Result<Event, V2Error> {
        if path == "/" {
            return Err(self.err(code::ROOT_READ_ONLY, "/"));
        }
        let ancestors = prefixes(parent_of(path));
        for a in &ancestors {
            match self.nodes.get(a) {
                Some(e) if !e.dir => return Err(self.err(code::NOT_DIR, a)),
                Some(_) => {}
                None => break,
            }
        }
        let mut prev_node = None;
        if let Some(e) = self.nodes.get(path) {
            if !replace {
                return Err(self.err(code::NODE_EXIST, path));
            }
            if e.dir {
                return Err(self.err(code::NOT_FILE, path));
            }
            prev_node = Some(self.view(path, false, false));
        }
        let next = self.index + 1;
        for a in ancestors {
            self.nodes.entry(a).or_insert(Entry {
                dir: true,
                value: String::new(),
                created: next,
                modified: next,
                expire: None,
            });
        }
        let expire = expire.filter(|&e| e >= Y2000_MS);
        self.nodes.insert(
            path.to_string(),
            Entry {
                dir,
                value: if dir { String::new() } else { value.to_string() },
                created: next,
                modified: next,
                expire,
            },
        );
        self.index = next;
        Ok(Event {
            action,
            node: self.view(path, false, false),
            prev_node,
            etcd_index: next,
            refresh: false,
        })
    }

    fn remove(&mut self, path: &str, action: Action) -> Event {
        self.index += 1;
        let prev = self.view(path, false, false);
        let below = format!("{path}/");
        self.nodes.retain(|k, _| k != path && !k.starts_with(&below));
        Event {
            action,
            node: NodeView {
                key: path.to_string(),
                dir: prev.dir,
                modified_index: self.index,
                created_index: prev.created_index,
                ..NodeView::default()
            },
            prev_node: Some(prev),
            etcd_index: self.index,
            refresh: false,
        }
    }

    fn compare(&self, path: &str, prev_value: &str, prev_index: u64) -> Result<(), V2Error> {
        let e = &self.nodes[path];
        let vo = prev_value.is_empty() || e.value == prev_value;
        let io = prev_index == 0 || e.modified == prev_index;
        let cause = match (vo, io) {
            (true, true) => return Ok(()),
            (false, true) => format!("[{prev_value} != {}]", e.value),
            (true, false) => format!("[{prev_index} != {}]", e.modified),
            (false, false) => format!("[{prev_value} != {}] [{prev_index} != {}]", e.value, e.modified),
        };
        Err(self.err(code::TEST_FAILED, &cause))
    }

    fn apply(&mut self, op: &Op, now: u64) -> Result<Option<Event>, V2Error> {
        self.now = now;
        match op.clone() {
            Op::Get(p, r) => self.get(&p, r).map(Some),
            Op::Set(p, dir, v, ttl) => {
                match self.lookup(&p) {
                    Err(e) if e.code != code::KEY_NOT_FOUND || ttl.refresh => return Err(e),
                    _ => {}
                }
                let exists = self.nodes.contains_key(&p);
                let v = if ttl.refresh {
                    self.nodes.get(&p).map(|e| e.value.clone()).unwrap_or_default()
                } else {
                    v
                };
                let mut e = self.create_node(&p, dir, &v, true, ttl.expire_unix_ms, Action::Set)?;
                e.refresh = ttl.refresh;
                assert_eq!(exists, e.prev_node.is_some());
                Ok(Some(self.record(e)))
            }
            Op::Create(p, dir, v, unique, ttl) => {
                let p = match (unique, p.as_str()) {
                    (true, "/") => format!("/{:020}", self.index + 1),
                    (true, _) => format!("{p}/{:020}", self.index + 1),
                    _ => p,
                };
                let e = self.create_node(&p, dir, &v, false, ttl.expire_unix_ms, Action::Create)?;
                Ok(Some(self.record(e)))
            }
            Op::Update(p, v, ttl) => {
                if p == "/" {
                    return Err(self.err(code::ROOT_READ_ONLY, "/"));
                }
                self.lookup(&p)?;
                let entry = self.nodes[&p].clone();
                if entry.dir && !v.is_empty() {
                    return Err(self.err(code::NOT_FILE, &p));
                }
                let v = if ttl.refresh { entry.value.clone() } else { v };
                let prev = self.view(&p, false, false);
                let next = self.index + 1;
                let e = self.nodes.get_mut(&p).expect("exists");
                if !e.dir {
                    e.value.clone_from(&v);
                    e.modified = next;
                }
                e.expire = ttl.expire_unix_ms;
                self.index = next;
                let mut node = self.view(&p, false, false);
                node.modified_index = next;
                let event = Event {
                    action: Action::Update,
                    node,
                    prev_node: Some(prev),
                    etcd_index: next,
                    refresh: ttl.refresh,
                };
                Ok(Some(self.record(event)))
            }
            Op::Cas(p, pv, pi, v, ttl) => {
                if p == "/" {
                    return Err(self.err(code::ROOT_READ_ONLY, "/"));
                }
                self.lookup(&p)?;
                if self.nodes[&p].dir {
                    return Err(self.err(code::NOT_FILE, &p));
                }
                self.compare(&p, &pv, pi)?;
                let prev = self.view(&p, false, false);
                self.index += 1;
                let index = self.index;
                let e = self.nodes.get_mut(&p).expect("exists");
                if !ttl.refresh {
                    e.value = v;
                }
                e.modified = index;
                e.expire = ttl.expire_unix_ms;
                let event = Event {
                    action: Action::CompareAndSwap,
                    node: self.view(&p, false, false),
                    prev_node: Some(prev),
                    etcd_index: index,
                    refresh: ttl.refresh,
                };
                Ok(Some(self.record(event)))
            }
            Op::Delete(p, dir, recursive) => {
                if p == "/" {
                    return Err(self.err(code::ROOT_READ_ONLY, "/"));
                }
                self.lookup(&p)?;
                if self.nodes[&p].dir {
                    if !(dir || recursive) {
                        return Err(self.err(code::NOT_FILE, &p));
                    }
                    if !recursive && !self.children(&p).is_empty() {
                        return Err(self.err(code::DIR_NOT_EMPTY, &p));
                    }
                }
                let e = self.remove(&p, Action::Delete);
                Ok(Some(self.record(e)))
            }
            Op::Cad(p, pv, pi) => {
                self.lookup(&p)?;
                if self.is_dir(&p) {
                    return Err(self.err(code::NOT_FILE, &p));
                }
                self.compare(&p, &pv, pi)?;
                let e = self.remove(&p, Action::CompareAndDelete);
                Ok(Some(self.record(e)))
            }
            Op::Sync(now) => {
                self.now = now;
                let mut due: Vec<(u64, String)> = self
                    .nodes
                    .iter()
                    .filter_map(|(k, e)| e.expire.filter(|&x| x <= now).map(|x| (x, k.clone())))
                    .collect();
                due.sort();
                for (_, p) in due {
                    if self.nodes.contains_key(&p) {
                        let e = self.remove(&p, Action::Expire);
                        self.record(e);
                    }
                }
                Ok(None)
            }
            Op::Watch(p, recursive, since) => self.watch(&p, recursive, since),
        }
    }

    fn watch(&self, path: &str, recursive: bool, since: u64) -> Result<Option<Event>, V2Error> {
        let since = if since == 0 { self.index + 1 } else { since };
        let kept = &self.events[self.events.len().saturating_sub(HISTORY_CAPACITY)..];
        let start = kept.first().map_or(0, |e| e.node.modified_index);
        if since < start {
            let cause = format!("the requested history has been cleared [{start}/{since}]");
            return Err(self.err(code::EVENT_INDEX_CLEARED, &cause));
        }
        let under = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let hidden_below = |key: &str| key[path.len()..].split('/').any(|s| s.starts_with('_'));
        let found = kept.iter().find(|e| {
            let k = &e.node.key;
            e.node.modified_index >= since
                && !e.refresh
                && (k == path
                    || (recursive && k.starts_with(&under) && !hidden_below(k))
                    || (matches!(e.action, Action::Delete | Action::Expire)
                        && e.prev_node
                            .as_ref()
                            .is_some_and(|p| p.dir && path.starts_with(&p.key))))
        });
        Ok(found.map(|e| Event {
            etcd_index: self.index,
            ..e.clone()
        }))
    }
}

#[derive(Clone, Debug)]
enum Op {
    Get(String, bool),
    Set(String, bool, String, Ttl),
    Create(String, bool, String, bool, Ttl),
    Update(String, String, Ttl),
    Cas(String, String, u64, String, Ttl),
    Delete(String, bool, bool),
    Cad(String, String, u64),
    Sync(u64),
    Watch(String, bool, u64),
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "_h"]), 0..=3).prop_map(|parts| {
        let mut p = String::new();
        for part in parts {
            p.push('/');
            p.push_str(part);
        }
        if p.is_empty() {
            "/".to_string()
        } else {
            p
        }
    })
}

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "x", "y"]).prop_map(str::to_string)
}

fn ttl() -> impl Strategy<Value = Ttl> {
    (
        prop::sample::select(vec![None, Some(5), Some(Y2000_MS + 1000), Some(Y2000_MS + 3000)]),
        any::<bool>(),
    )
        .prop_map(|(expire_unix_ms, refresh)| Ttl {
            expire_unix_ms,
            refresh: refresh && expire_unix_ms.is_some(),
            now_unix_ms: 0,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (path(), any::<bool>()).prop_map(|(p, r)| Op::Get(p, r)),
        3 => (path(), prop::bool::weighted(0.2), value(), ttl()).prop_map(|(p, d, v, t)| Op::Set(p, d, v, t)),
        2 => (path(), any::<bool>(), value(), any::<bool>(), ttl())
            .prop_map(|(p, d, v, u, t)| Op::Create(p, d, v, u, t)),
        1 => (path(), value(), ttl()).prop_map(|(p, v, t)| Op::Update(p, v, t)),
        1 => (path(), value(), 0u64..6, value(), ttl()).prop_map(|(p, pv, pi, v, t)| Op::Cas(p, pv, pi, v, t)),
        1 => (path(), any::<bool>(), any::<bool>()).prop_map(|(p, d, r)| Op::Delete(p, d, r)),
        1 => (path(), value(), 0u64..6).prop_map(|(p, pv, pi)| Op::Cad(p, pv, pi)),
        1 => prop::sample::select(vec![Y2000_MS, Y2000_MS + 1000, Y2000_MS + 5000]).prop_map(Op::Sync),
        1 => (path(), any::<bool>(), 0u64..12).prop_map(|(p, r, s)| Op::Watch(p, r, s)),
    ]
}

fn apply(store: &mut Store, op: &Op, now: u64) -> Result<Option<Event>, V2Error> {
    let at = |ttl: Ttl| Ttl {
        now_unix_ms: now,
        ..ttl
    };
    match op.clone() {
        Op::Get(p, r) => store.get(&p, r, now).map(Some),
        Op::Set(p, d, v, t) => store.set(&p, d, &v, at(t)).map(Some),
        Op::Create(p, d, v, u, t) => store.create(&p, d, &v, u, at(t)).map(Some),
        Op::Update(p, v, t) => store.update(&p, &v, at(t)).map(Some),
        Op::Cas(p, pv, pi, v, t) => store.compare_and_swap(&p, &pv, pi, &v, at(t)).map(Some),
        Op::Delete(p, d, r) => store.delete(&p, d, r, now).map(Some),
        Op::Cad(p, pv, pi) => store.compare_and_delete(&p, &pv, pi, now).map(Some),
        Op::Sync(now) => {
            store.delete_expired(now);
            Ok(None)
        }
        Op::Watch(p, r, s) => store.watch(&p, r, s).map(|(_, e)| e),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_matches_model(ops in prop::collection::vec((op(), prop::sample::select(vec![0, 999, 1_500, 4_000])), 1..60)) {
        let mut store = Store::default();
        let mut model = Model::default();
        for (i, (op, at)) in ops.iter().enumerate() {
            let now = Y2000_MS + at;
            let got = apply(&mut store, op, now);
            let want = model.apply(op, now);
            prop_assert_eq!(&got, &want, "op {} {:?}", i, op);
            prop_assert_eq!(store.index(), model.index);
        }
        prop_assert_eq!(store.has_ttl_keys(), model.nodes.values().any(|e| e.expire.is_some()));
        prop_assert_eq!(store.node_count(), model.nodes.len());
        let mut bytes = Vec::new();
        store.encode(&mut bytes);
        prop_assert_eq!(Store::decode(&bytes).expect("decodes"), store);
    }
}

#[test]
fn history_keeps_the_last_thousand_events() {
    let mut store = Store::default();
    for i in 0..1005 {
        store
            .set("/k", false, &i.to_string(), Ttl::default())
            .expect("set");
    }
    let err = store.watch("/k", false, 3).expect_err("cleared");
    assert_eq!(err.code, code::EVENT_INDEX_CLEARED);
    assert_eq!(
        err.message(),
        "The event in requested index is outdated and cleared"
    );
    assert_eq!(err.cause, "the requested history has been cleared [6/3]");
    assert_eq!(err.index, 1005);
    let (_, found) = store.watch("/k", false, 6).expect("kept");
    assert_eq!(found.expect("an event").node.value.as_deref(), Some("5"));
    let (since, found) = store.watch("/k", false, 0).expect("future");
    assert_eq!((since, found), (1006, None));
}

#[test]
fn in_order_keys_are_the_padded_index() {
    let mut store = Store::default();
    store.set("/q/x", false, "", Ttl::default()).expect("set");
    let e = store
        .create("/q", false, "job", true, Ttl::default())
        .expect("post");
    assert_eq!(e.node.key, "/q/00000000000000000002");
    assert_eq!(e.action.as_str(), "create");
}

#[test]
fn snapshots_reject_damaged_bytes() {
    let mut store = Store::default();
    store.set("/a/b", false, "v", Ttl::default()).expect("set");
    let mut bytes = Vec::new();
    store.encode(&mut bytes);
    for cut in 0..bytes.len() {
        assert!(Store::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}
