//! The v2 tree and its operations, each answering as etcd 3.4's `v2store` does
//! (same errors, causes and indexes; children always listed in key order).

use std::collections::BTreeMap;

use super::history::History;
use super::{clean_path, code, Action, Event, NodeView, Ttl, V2Error};

/// etcd treats an expiry before 2000-01-01T00:00:00Z as none.
const MIN_EXPIRE_UNIX_MS: u64 = 946_684_800_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    File(String),
    Dir(BTreeMap<String, Node>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Node {
    pub(super) created: u64,
    pub(super) modified: u64,
    pub(super) expire: Option<u64>,
    pub(super) kind: Kind,
}

impl Node {
    fn new(index: u64, expire: Option<u64>, kind: Kind) -> Node {
        Node {
            created: index,
            modified: index,
            expire,
            kind,
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    fn value(&self) -> &str {
        match &self.kind {
            Kind::File(v) => v,
            Kind::Dir(_) => "",
        }
    }
}

/// The v2 store: the tree, its index (bumped by every change) and the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    pub(super) root: Node,
    pub(super) index: u64,
    pub(super) history: History,
    /// The cluster version the leader set (see [`super::internal`]).
    pub(super) cluster_version: Option<String>,
    /// Restored from a state format 5 snapshot and no cluster version set since:
    /// the cluster's records take no index yet (see [`super::internal`]).
    pub(super) legacy_numbering: bool,
}

impl Default for Store {
    fn default() -> Store {
        Store {
            root: Node::new(0, None, Kind::Dir(BTreeMap::new())),
            index: 0,
            history: History::default(),
            cluster_version: None,
            legacy_numbering: false,
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

/// `(parent directory path, last component)` of a clean path other than `/`.
fn split(path: &str) -> (&str, &str) {
    let at = path.rfind('/').unwrap_or(0);
    (if at == 0 { "/" } else { &path[..at] }, &path[at + 1..])
}

/// etcd's `Repr`: a node, and below it (when `recursive`) its whole subtree.
fn view(node: &Node, key: &str, recursive: bool, now: u64) -> NodeView {
    let mut v = NodeView {
        key: key.to_string(),
        expire_unix_ms: node.expire,
        ttl: ttl_at(node.expire, now),
        modified_index: node.modified,
        created_index: node.created,
        ..NodeView::default()
    };
    match &node.kind {
        Kind::File(value) => v.value = Some(value.clone()),
        Kind::Dir(children) => {
            v.dir = true;
            if recursive {
                v.nodes = list(children, key, true, now);
            }
        }
    }
    v
}

fn list(children: &BTreeMap<String, Node>, key: &str, recursive: bool, now: u64) -> Vec<NodeView> {
    children
        .iter()
        .filter(|(name, _)| !name.starts_with('_'))
        .map(|(name, child)| view(child, &join(key, name), recursive, now))
        .collect()
}

/// etcd's `loadInternalNode`: a directory always lists its children.
fn load(node: &Node, key: &str, recursive: bool, now: u64) -> NodeView {
    let mut v = view(node, key, false, now);
    if let Kind::Dir(children) = &node.kind {
        v.nodes = list(children, key, recursive, now);
    }
    v
}

/// etcd's remaining TTL at `now`: whole seconds rounded up, 0 when permanent.
fn ttl_at(expire: Option<u64>, now: u64) -> i64 {
    let Some(at) = expire else { return 0 };
    let left = i128::from(at) - i128::from(now);
    let secs = left / 1000 + i128::from(left % 1000 > 0);
    i64::try_from(secs).unwrap_or(if secs > 0 { i64::MAX } else { i64::MIN })
}

/// etcd's compare-failure cause.
fn compare_cause(node: &Node, prev_value: &str, prev_index: u64) -> Option<String> {
    let index_ok = prev_index == 0 || node.modified == prev_index;
    let value_ok = prev_value.is_empty() || node.value() == prev_value;
    let (value, modified) = (node.value(), node.modified);
    match (value_ok, index_ok) {
        (true, true) => None,
        (false, true) => Some(format!("[{prev_value} != {value}]")),
        (true, false) => Some(format!("[{prev_index} != {modified}]")),
        (false, false) => Some(format!("[{prev_value} != {value}] [{prev_index} != {modified}]")),
    }
}

fn collect_expiring(node: &Node, key: &str, cutoff: u64, out: &mut Vec<(u64, String)>) {
    if let Some(at) = node.expire.filter(|&at| at <= cutoff) {
        out.push((at, key.to_string()));
    }
    if let Kind::Dir(children) = &node.kind {
        for (name, child) in children {
            collect_expiring(child, &join(key, name), cutoff, out);
        }
    }
}

fn has_ttl(node: &Node) -> bool {
    node.expire.is_some()
        || match &node.kind {
            Kind::Dir(children) => children.values().any(has_ttl),
            Kind::File(_) => false,
        }
}

impl Store {
    /// The index of the last change.
    pub fn index(&self) -> u64 {
        self.index
    }

    fn root_read_only(&self) -> V2Error {
        V2Error::new(code::ROOT_READ_ONLY, "/", self.index)
    }

    /// etcd's `internalGet` on a clean path.
    fn node(&self, path: &str) -> Result<&Node, V2Error> {
        let mut node = &self.root;
        let mut at = "/".to_string();
        for name in components(path) {
            let Kind::Dir(children) = &node.kind else {
                return Err(V2Error::new(code::NOT_DIR, at, self.index));
            };
            at = join(&at, name);
            node = children
                .get(name)
                .ok_or_else(|| V2Error::new(code::KEY_NOT_FOUND, at.clone(), self.index))?;
        }
        Ok(node)
    }

    /// The children of the directory at `path`, known to exist.
    fn children_mut(&mut self, path: &str) -> &mut BTreeMap<String, Node> {
        let mut node = &mut self.root;
        for name in components(path) {
            let Kind::Dir(children) = &mut node.kind else {
                unreachable!("a directory on the path")
            };
            node = children.get_mut(name).expect("the path exists");
        }
        match &mut node.kind {
            Kind::Dir(children) => children,
            Kind::File(_) => unreachable!("a directory"),
        }
    }

    fn node_mut(&mut self, path: &str) -> &mut Node {
        let (parent, name) = split(path);
        self.children_mut(parent).get_mut(name).expect("the node exists")
    }

    fn remove(&mut self, path: &str) -> Node {
        let (parent, name) = split(path);
        self.children_mut(parent).remove(name).expect("the node exists")
    }

    fn record(&mut self, event: Event) -> Event {
        self.history.add(event.clone());
        event
    }

    /// A get: the node, a directory with its children (all levels when `recursive`).
    pub fn get(&self, path: &str, recursive: bool, now_unix_ms: u64) -> Result<Event, V2Error> {
        let path = clean_path(path);
        let node = self.node(&path)?;
        if crate::mutation::is_active(crate::mutation::Mutation::V2ExpiryByLocalClock)
            && node.expire.is_some_and(|at| at <= now_unix_ms)
        {
            return Err(V2Error::new(code::KEY_NOT_FOUND, path, self.index));
        }
        Ok(Event {
            action: Action::Get,
            node: load(node, &path, recursive, now_unix_ms),
            prev_node: None,
            etcd_index: self.index,
            refresh: false,
        })
    }

    /// etcd's `internalCreate`: makes the missing parent directories.
    fn create_node(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        replace: bool,
        ttl: Ttl,
        action: Action,
    ) -> Result<Event, V2Error> {
        let now = ttl.now_unix_ms;
        let (current, next) = (self.index, self.index + 1);
        if path == "/" {
            return Err(self.root_read_only());
        }
        let expire = ttl.expire_unix_ms.filter(|&at| at >= MIN_EXPIRE_UNIX_MS);
        let (parent, name) = split(path);
        // Check the walk first, then make the missing directories.
        let mut at = "/".to_string();
        let mut node = &self.root;
        for part in components(parent) {
            at = join(&at, part);
            let Kind::Dir(children) = &node.kind else { break };
            match children.get(part) {
                Some(child) if !child.is_dir() => return Err(V2Error::new(code::NOT_DIR, at, current)),
                Some(child) => node = child,
                None => break,
            }
        }
        let mut node = &mut self.root;
        for part in components(parent) {
            let Kind::Dir(children) = &mut node.kind else {
                unreachable!("checked above")
            };
            node = children
                .entry(part.to_string())
                .or_insert_with(|| Node::new(next, None, Kind::Dir(BTreeMap::new())));
        }
        let Kind::Dir(children) = &mut node.kind else {
            unreachable!("checked above")
        };
        let mut prev_node = None;
        if let Some(existing) = children.get(name) {
            if !replace {
                return Err(V2Error::new(code::NODE_EXIST, path, current));
            }
            if existing.is_dir() {
                return Err(V2Error::new(code::NOT_FILE, path, current));
            }
            prev_node = Some(view(existing, path, false, now));
        }
        let kind = if dir {
            Kind::Dir(BTreeMap::new())
        } else {
            Kind::File(value.to_string())
        };
        let node = Node::new(next, expire, kind);
        let event_node = view(&node, path, false, now);
        children.insert(name.to_string(), node);
        self.index = next;
        Ok(Event {
            action,
            node: event_node,
            prev_node,
            etcd_index: next,
            refresh: false,
        })
    }

    /// A create (`prevExist=false`, or a POST with `unique`: the key is the new
    /// index, zero-padded to 20 digits, under `path`).
    pub fn create(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        unique: bool,
        ttl: Ttl,
    ) -> Result<Event, V2Error> {
        let mut path = path.to_string();
        if unique {
            path = format!("{path}/{:020}", self.index + 1);
        }
        let path = clean_path(&path);
        let event = self.create_node(&path, dir, value, false, ttl, Action::Create)?;
        Ok(self.record(event))
    }

    /// A set: creates or replaces a key (never a directory).
    pub fn set(&mut self, path: &str, dir: bool, value: &str, ttl: Ttl) -> Result<Event, V2Error> {
        let path = clean_path(path);
        let existing = match self.node(&path) {
            Ok(node) => Some(node),
            Err(e) if e.code == code::KEY_NOT_FOUND && !ttl.refresh => None,
            Err(e) => return Err(e),
        };
        let prev = existing.map(|n| load(n, &path, false, ttl.now_unix_ms));
        let value = match existing {
            Some(n) if ttl.refresh => n.value().to_string(),
            _ => value.to_string(),
        };
        let mut event = self.create_node(&path, dir, &value, true, ttl, Action::Set)?;
        if prev.is_some() {
            event.prev_node = prev;
        }
        event.refresh = ttl.refresh;
        Ok(self.record(event))
    }

    /// An update (`prevExist=true`): a key's value and expiry, or a directory's expiry.
    pub fn update(&mut self, path: &str, value: &str, ttl: Ttl) -> Result<Event, V2Error> {
        let path = clean_path(path);
        if path == "/" {
            return Err(self.root_read_only());
        }
        let next = self.index + 1;
        let node = self.node(&path)?;
        if node.is_dir() && !value.is_empty() {
            return Err(V2Error::new(code::NOT_FILE, path, self.index));
        }
        let value = if ttl.refresh {
            node.value().to_string()
        } else {
            value.to_string()
        };
        let prev = view(node, &path, false, ttl.now_unix_ms);
        let node = self.node_mut(&path);
        if let Kind::File(v) = &mut node.kind {
            v.clone_from(&value);
            node.modified = next;
        }
        node.expire = ttl.expire_unix_ms;
        let event_node = NodeView {
            key: path.clone(),
            value: (!node.is_dir()).then_some(value),
            dir: node.is_dir(),
            expire_unix_ms: node.expire,
            ttl: ttl_at(node.expire, ttl.now_unix_ms),
            nodes: Vec::new(),
            modified_index: next,
            created_index: node.created,
        };
        self.index = next;
        Ok(self.record(Event {
            action: Action::Update,
            node: event_node,
            prev_node: Some(prev),
            etcd_index: next,
            refresh: ttl.refresh,
        }))
    }

    /// A compare-and-swap on a key's value and/or modified index (empty / 0: not compared).
    pub fn compare_and_swap(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        value: &str,
        ttl: Ttl,
    ) -> Result<Event, V2Error> {
        let path = clean_path(path);
        if path == "/" {
            return Err(self.root_read_only());
        }
        let node = self.node(&path)?;
        if node.is_dir() {
            return Err(V2Error::new(code::NOT_FILE, path, self.index));
        }
        let prev_index = if crate::mutation::is_active(crate::mutation::Mutation::V2CasIgnoresPrevIndex) {
            0
        } else {
            prev_index
        };
        if let Some(cause) = compare_cause(node, prev_value, prev_index) {
            return Err(V2Error::new(code::TEST_FAILED, cause, self.index));
        }
        let value = if ttl.refresh {
            node.value().to_string()
        } else {
            value.to_string()
        };
        let prev = view(node, &path, false, ttl.now_unix_ms);
        self.index += 1;
        let index = self.index;
        let node = self.node_mut(&path);
        node.kind = Kind::File(value);
        node.modified = index;
        node.expire = ttl.expire_unix_ms;
        let event_node = view(node, &path, false, ttl.now_unix_ms);
        Ok(self.record(Event {
            action: Action::CompareAndSwap,
            node: event_node,
            prev_node: Some(prev),
            etcd_index: index,
            refresh: ttl.refresh,
        }))
    }

    /// A delete of a key, an empty directory (`dir`), or a whole subtree (`recursive`).
    pub fn delete(
        &mut self,
        path: &str,
        dir: bool,
        recursive: bool,
        now_unix_ms: u64,
    ) -> Result<Event, V2Error> {
        let path = clean_path(path);
        if path == "/" {
            return Err(self.root_read_only());
        }
        let dir = dir || recursive;
        let node = self.node(&path)?;
        if let Kind::Dir(children) = &node.kind {
            if !dir {
                return Err(V2Error::new(code::NOT_FILE, path, self.index));
            }
            let checked = !crate::mutation::is_active(crate::mutation::Mutation::V2RmdirIgnoresChildren);
            if !children.is_empty() && !recursive && checked {
                return Err(V2Error::new(code::DIR_NOT_EMPTY, path, self.index));
            }
        }
        let event = self.removal(&path, Action::Delete, now_unix_ms);
        Ok(self.record(event))
    }

    /// Removes the node at `path` (known to exist) as the next change.
    fn removal(&mut self, path: &str, action: Action, now: u64) -> Event {
        self.index += 1;
        let node = self.remove(path);
        Event {
            action,
            node: NodeView {
                key: path.to_string(),
                dir: node.is_dir(),
                modified_index: self.index,
                created_index: node.created,
                ..NodeView::default()
            },
            prev_node: Some(view(&node, path, false, now)),
            etcd_index: self.index,
            refresh: false,
        }
    }

    /// A compare-and-delete of a key.
    pub fn compare_and_delete(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        now_unix_ms: u64,
    ) -> Result<Event, V2Error> {
        let path = clean_path(path);
        let node = self.node(&path)?;
        if node.is_dir() {
            return Err(V2Error::new(code::NOT_FILE, path, self.index));
        }
        if let Some(cause) = compare_cause(node, prev_value, prev_index) {
            return Err(V2Error::new(code::TEST_FAILED, cause, self.index));
        }
        let event = self.removal(&path, Action::CompareAndDelete, now_unix_ms);
        Ok(self.record(event))
    }

    /// Removes every node that expires at or before `cutoff_unix_ms` (the leader's
    /// time in a sync), earliest first, each as an `expire` event.
    pub fn delete_expired(&mut self, cutoff_unix_ms: u64) -> Vec<Event> {
        let mut expiring = Vec::new();
        collect_expiring(&self.root, "/", cutoff_unix_ms, &mut expiring);
        expiring.sort();
        let mut events = Vec::new();
        for (_, path) in expiring {
            // Gone already when a directory above it expired first.
            if self.node(&path).is_ok() {
                let event = self.removal(&path, Action::Expire, cutoff_unix_ms);
                events.push(self.record(event));
            }
        }
        events
    }

    /// Whether any node has an expiry (the leader then proposes syncs).
    pub fn has_ttl_keys(&self) -> bool {
        has_ttl(&self.root)
    }

    /// A wait: the first event at or after `since` (0: the next index) that a
    /// watcher of `path` sees, or `None` yet; with the `since` used.
    pub fn watch(&self, path: &str, recursive: bool, since: u64) -> Result<(u64, Option<Event>), V2Error> {
        let path = clean_path(path);
        let since = if since == 0 { self.index + 1 } else { since };
        match self.history.scan(&path, recursive, since) {
            Err(mut e) => {
                e.index = self.index;
                Err(e)
            }
            Ok(found) => Ok((
                since,
                found.map(|e| Event {
                    etcd_index: self.index,
                    ..e.clone()
                }),
            )),
        }
    }

    /// The events the history still holds from index `from` on, oldest first, and
    /// the index of the oldest event it holds (0 when empty): checkers read what
    /// every change did from here.
    pub fn events_from(&self, from: u64) -> (u64, impl Iterator<Item = &Event>) {
        let oldest = self.history.events.front().map_or(0, Event::index);
        let start = self.history.events.partition_point(|e| e.index() < from);
        (oldest, self.history.events.range(start..))
    }

    /// How many keys and directories the store holds (the root not counted).
    pub fn node_count(&self) -> usize {
        fn count(node: &Node) -> usize {
            match &node.kind {
                Kind::Dir(children) => children.values().map(|c| 1 + count(c)).sum(),
                Kind::File(_) => 0,
            }
        }
        count(&self.root)
    }
}
