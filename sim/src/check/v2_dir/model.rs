//! The model of the subtree: its nodes by path, answering each request as etcd's
//! v2 store does (see the parent module).

use std::collections::BTreeMap;

use detcd_core::v2store::{code, Action, Event, NodeView, V2Error};

use super::super::linearizability::Model;

/// The subtree the directory requests work in.
pub const DIR: &str = "/v2/d";
/// Its parent, made by the first v2 write and never removed.
pub(super) const PARENT: &str = "/v2";
/// How a placeholder's name starts: `parent/?value` (no real name holds `?`).
pub(super) const UNNAMED: char = '?';
/// How a hidden node's name starts: readable by its path, never listed.
pub(super) const HIDDEN: char = '_';

/// A request on the subtree, as the model sees it (its path recorded beside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirInput {
    /// `PUT value=`: a key made or replaced.
    Set { value: String },
    /// `PUT dir=true`: a directory made (with an expiry when `ttl`), or one
    /// replacing a key.
    SetDir { ttl: bool },
    /// `PUT prevExist=false value=`.
    Create { value: String },
    /// `PUT dir=true prevExist=false` (etcdctl mkdir, with `--ttl` when `ttl`).
    Mkdir { ttl: bool },
    /// `PUT prevExist=true value=` (an empty value on a directory: etcdctl updatedir).
    Update { value: String },
    /// `PUT dir=true prevExist=true` (etcdctl updatedir): a directory's expiry set
    /// (`ttl`) or removed, its value and index kept; on a key, an update to the
    /// empty value. With `refresh` (and a TTL), only the expiry changes.
    UpdateDir { ttl: bool, refresh: bool },
    /// `POST value=`: an in-order key, named by its index, under the path.
    Post { value: String },
    /// `DELETE`: a key (etcdctl rm).
    Delete,
    /// `DELETE dir=true`: a key or an empty directory (etcdctl rmdir).
    Rmdir,
    /// `DELETE recursive=true`: a node and everything below it (etcdctl rm --recursive).
    DeleteAll,
    /// A quorum get, listing a directory's children (all levels when `recursive`),
    /// sorted (etcdctl ls --recursive --sort); hidden ones (`_name`) left out.
    Get { recursive: bool },
    /// Not a client's request: the node's expiry removed it and everything below
    /// it, at a leader's sync (known from the members' events, see
    /// [`crate::v2_lost`]).
    Expire,
}

/// A node as an answer showed it (a get's with its listing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub key: String,
    pub dir: bool,
    pub value: Option<String>,
    /// Whether it has an expiry.
    pub ttl: bool,
    pub created: u64,
    pub modified: u64,
    pub nodes: Vec<Shown>,
}

impl Shown {
    pub fn of(view: &NodeView) -> Shown {
        Shown {
            key: view.key.clone(),
            dir: view.dir,
            value: view.value.clone(),
            ttl: view.expire_unix_ms.is_some(),
            created: view.created_index,
            modified: view.modified_index,
            nodes: view.nodes.iter().map(Shown::of).collect(),
        }
    }
}

/// What a request answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirOutput {
    /// Done: a write at its own index `index`, a get at the store's.
    Ok {
        index: u64,
        action: Action,
        node: Shown,
        prev: Option<Shown>,
    },
    /// Refused with v2 error `code` and `cause`, the store at `index`.
    Err { code: u32, cause: String, index: u64 },
}

impl DirOutput {
    /// The output of an answer (`None`: an answer with no event, which a request on
    /// the subtree never gets).
    pub fn of(result: &Result<Option<Event>, V2Error>) -> Option<DirOutput> {
        match result {
            Ok(Some(event)) => Some(DirOutput::Ok {
                index: event.etcd_index,
                action: event.action,
                node: Shown::of(&event.node),
                prev: event.prev_node.as_ref().map(Shown::of),
            }),
            Ok(None) => None,
            Err(e) => Some(DirOutput::Err {
                code: e.code,
                cause: e.cause.clone(),
                index: e.index,
            }),
        }
    }
}

/// A node the model holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub dir: bool,
    /// Empty for a directory.
    pub value: String,
    /// Whether it has an expiry.
    pub ttl: bool,
    /// 0 while unknown (an unanswered write made it). A directory's modified
    /// index is its created one (an update shows a new one but keeps it).
    pub created: u64,
    pub modified: u64,
}

impl Entry {
    fn new(dir: bool, value: &str, index: u64) -> Entry {
        Entry {
            dir,
            value: if dir { String::new() } else { value.to_string() },
            ttl: false,
            created: index,
            modified: index,
        }
    }

    /// Whether `shown` (no listing looked at) may be this node; the unknown
    /// indexes then take its.
    fn adopt(&mut self, shown: &Shown) -> bool {
        let value = (!self.dir).then(|| self.value.clone());
        let same = shown.dir == self.dir
            && shown.value == value
            && shown.ttl == self.ttl
            && (self.created == 0 || self.created == shown.created)
            && (self.modified == 0 || self.modified == shown.modified)
            && shown.created <= shown.modified
            && (!shown.dir || shown.created == shown.modified);
        if same {
            self.created = shown.created;
            self.modified = shown.modified;
        }
        same
    }
}

/// The subtree's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DirState {
    /// Every node at and below [`DIR`], by path (placeholders `parent/?value`).
    pub nodes: BTreeMap<String, Entry>,
    /// The highest v2 index a request linearized here made or was answered at.
    pub at: u64,
    /// Whether [`PARENT`] is known to exist (before, "Key not found" may name it).
    pub rooted: bool,
}

/// A refusal: etcd's code and cause.
type Refusal = (u32, String);

pub(super) fn refusal(code: u32, cause: &str) -> Refusal {
    (code, cause.to_string())
}

pub(super) fn below(path: &str) -> String {
    format!("{path}/")
}

pub(super) fn parent_of(path: &str) -> &str {
    &path[..path.rfind('/').unwrap_or(0)]
}

/// The paths from [`DIR`] down to `path`'s parent (none for [`DIR`] itself).
pub(super) fn ancestors(path: &str) -> Vec<String> {
    let rest = path.strip_prefix(DIR).unwrap_or_default();
    let mut at = DIR.to_string();
    let mut out = Vec::new();
    for part in rest.split('/').filter(|p| !p.is_empty()) {
        out.push(at.clone());
        at = format!("{at}/{part}");
    }
    out
}

/// What a request does to the model: the nodes after it, the node its answer shows
/// (no listing) and the previous one.
pub(super) struct Applied {
    nodes: BTreeMap<String, Entry>,
    action: Action,
    key: String,
    node: Entry,
    prev: Option<Entry>,
}

impl DirState {
    fn has_children(&self, path: &str) -> bool {
        let under = below(path);
        self.nodes
            .range(under.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&under))
    }

    /// etcd's lookup: "Not a directory" at a file the path crosses, "Key not found"
    /// at the first missing component.
    fn lookup(&self, path: &str) -> Result<&Entry, Refusal> {
        for at in ancestors(path).iter().map(String::as_str).chain([path]) {
            let parent = parent_of(at);
            if parent != PARENT && !self.nodes[parent].dir {
                return Err(refusal(code::NOT_DIR, parent));
            }
            if !self.nodes.contains_key(at) {
                return Err(refusal(code::KEY_NOT_FOUND, at));
            }
        }
        Ok(&self.nodes[path])
    }

    /// etcd's `internalCreate` at `index` (0: unknown): the missing directories on
    /// the way made, a key replaced only when `replace`, a directory never.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        path: &str,
        dir: bool,
        value: &str,
        ttl: bool,
        replace: bool,
        index: u64,
    ) -> Result<Applied, Refusal> {
        let ancestors = ancestors(path);
        for a in &ancestors {
            match self.nodes.get(a) {
                Some(e) if !e.dir => return Err(refusal(code::NOT_DIR, a)),
                Some(_) => {}
                None => break,
            }
        }
        let prev = self.nodes.get(path).cloned();
        match &prev {
            Some(_) if !replace => return Err(refusal(code::NODE_EXIST, path)),
            Some(e) if e.dir => return Err(refusal(code::NOT_FILE, path)),
            _ => {}
        }
        let mut nodes = self.nodes.clone();
        for a in ancestors {
            nodes.entry(a).or_insert_with(|| Entry::new(true, "", index));
        }
        let node = Entry {
            ttl,
            ..Entry::new(dir, value, index)
        };
        nodes.insert(path.to_string(), node.clone());
        let action = if replace { Action::Set } else { Action::Create };
        Ok(Applied {
            nodes,
            action,
            key: path.to_string(),
            node,
            prev,
        })
    }

    /// Removes `path` and everything below it (a delete, or an expiry).
    fn remove(&self, path: &str, index: u64, action: Action) -> Applied {
        let prev = self.nodes[path].clone();
        let under = below(path);
        let mut nodes = self.nodes.clone();
        nodes.retain(|k, _| k != path && !k.starts_with(&under));
        let node = Entry {
            value: String::new(),
            ttl: false,
            modified: index,
            ..prev.clone()
        };
        Applied {
            nodes,
            action,
            key: path.to_string(),
            node,
            prev: Some(prev),
        }
    }

    /// What `input` on `path` does at `index` (0: unknown). A get answers its own node.
    fn apply(&self, path: &str, input: &DirInput, index: u64) -> Result<Applied, Refusal> {
        match input {
            DirInput::Set { value } => self.create(path, false, value, false, true, index),
            DirInput::SetDir { ttl } => self.create(path, true, "", *ttl, true, index),
            DirInput::Create { value } => self.create(path, false, value, false, false, index),
            DirInput::Mkdir { ttl } => self.create(path, true, "", *ttl, false, index),
            DirInput::Post { value } => {
                let name = if index == 0 {
                    format!("{path}/{UNNAMED}{value}")
                } else {
                    format!("{path}/{index:020}")
                };
                self.create(&name, false, value, false, false, index)
            }
            DirInput::Update { .. } | DirInput::UpdateDir { .. } => {
                let (value, ttl, refresh) = match input {
                    DirInput::Update { value } => (value.as_str(), false, false),
                    DirInput::UpdateDir { ttl, refresh } => ("", *ttl, *refresh),
                    _ => unreachable!("an update"),
                };
                let held = self.lookup(path)?;
                if held.dir && !value.is_empty() {
                    return Err(refusal(code::NOT_FILE, path));
                }
                let mut nodes = self.nodes.clone();
                let entry = nodes.get_mut(path).expect("looked up");
                if !entry.dir {
                    if !refresh {
                        entry.value = value.to_string();
                    }
                    entry.modified = index;
                }
                entry.ttl = ttl;
                let node = Entry {
                    modified: index,
                    ..entry.clone()
                };
                Ok(Applied {
                    nodes,
                    action: Action::Update,
                    key: path.to_string(),
                    node,
                    prev: Some(held.clone()),
                })
            }
            DirInput::Expire => {
                let held = self.lookup(path)?;
                if !held.ttl {
                    return Err(refusal(0, "no expiry"));
                }
                Ok(self.remove(path, index, Action::Expire))
            }
            DirInput::Delete | DirInput::Rmdir | DirInput::DeleteAll => {
                let held = self.lookup(path)?;
                if held.dir {
                    if *input == DirInput::Delete {
                        return Err(refusal(code::NOT_FILE, path));
                    }
                    if *input == DirInput::Rmdir && self.has_children(path) {
                        return Err(refusal(code::DIR_NOT_EMPTY, path));
                    }
                }
                Ok(self.remove(path, index, Action::Delete))
            }
            DirInput::Get { .. } => {
                let held = self.lookup(path)?.clone();
                Ok(Applied {
                    nodes: self.nodes.clone(),
                    action: Action::Get,
                    key: path.to_string(),
                    node: held,
                    prev: None,
                })
            }
        }
    }

    /// Names the placeholder an unanswered POST left under `parent` that `shown`
    /// (an in-order key a listing showed) is.
    fn name_placeholder(&mut self, parent: &str, shown: &Shown) -> bool {
        let Some(value) = &shown.value else { return false };
        let placeholder = format!("{parent}/{UNNAMED}{value}");
        let in_order = format!("{parent}/{:020}", shown.created);
        if shown.key != in_order || !self.nodes.contains_key(&placeholder) {
            return false;
        }
        let entry = self.nodes.remove(&placeholder).expect("present");
        self.nodes.insert(in_order, entry);
        true
    }

    /// Whether a get's answer `shown` (a directory's children listed, all levels
    /// when `recursive`, in key order) is the held subtree; its indexes taken.
    fn listing(&mut self, shown: &Shown, recursive: bool, top: bool, index: u64) -> bool {
        if shown.modified > index {
            return false;
        }
        let Some(entry) = self.nodes.get_mut(&shown.key) else {
            return false;
        };
        if !entry.adopt(shown) {
            return false;
        }
        if !shown.dir || !(top || recursive) {
            return shown.nodes.is_empty();
        }
        let under = below(&shown.key);
        let sorted = shown.nodes.windows(2).all(|w| w[0].key < w[1].key);
        for child in &shown.nodes {
            let direct = child
                .key
                .strip_prefix(&under)
                .is_some_and(|n| !n.is_empty() && !n.contains('/') && !n.starts_with(HIDDEN));
            if !direct || (!self.nodes.contains_key(&child.key) && !self.name_placeholder(&shown.key, child))
            {
                return false;
            }
        }
        let held = self
            .nodes
            .range(under.clone()..)
            .take_while(|(k, _)| k.starts_with(&under))
            .filter(|(k, _)| !k[under.len()..].contains('/') && !k[under.len()..].starts_with(HIDDEN))
            .count();
        sorted
            && held == shown.nodes.len()
            && shown
                .nodes
                .iter()
                .all(|c| self.listing(c, recursive, false, index))
    }
}

/// The client [`DirLinHistory::expired`] records expiries as.
pub(super) const SYNC_CLIENT: u64 = u64::MAX;

/// The model.
pub(super) struct DirModel;

/// A request on a path of the subtree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PathInput {
    pub(super) path: String,
    pub(super) input: DirInput,
}

impl Model for DirModel {
    type Input = PathInput;
    type Output = DirOutput;
    type State = DirState;

    fn init(&self) -> DirState {
        DirState::default()
    }

    fn step(&self, s: &DirState, op: &PathInput, output: Option<&DirOutput>) -> Option<DirState> {
        let (path, input) = (op.path.as_str(), &op.input);
        match output {
            // A lost answer: the effect it may have had, its indexes unknown.
            None => {
                let applied = s.apply(path, input, 0).ok()?;
                Some(DirState {
                    nodes: applied.nodes,
                    ..s.clone()
                })
            }
            Some(DirOutput::Err { code, cause, index }) => {
                let (want, want_cause) = s.apply(path, input, *index).err()?;
                let unrooted =
                    want == code::KEY_NOT_FOUND && want_cause == DIR && !s.rooted && cause == PARENT;
                if *index < s.at || want != *code || (want_cause != *cause && !unrooted) {
                    return None;
                }
                Some(DirState {
                    at: *index,
                    rooted: !unrooted,
                    ..s.clone()
                })
            }
            Some(DirOutput::Ok {
                index,
                action,
                node,
                prev,
            }) => done(s, path, input, *index, *action, node, prev.as_ref()),
        }
    }
}

/// A request done at `index`, answering `action`, `node` and `prev`.
pub(super) fn done(
    s: &DirState,
    path: &str,
    input: &DirInput,
    index: u64,
    action: Action,
    node: &Shown,
    prev: Option<&Shown>,
) -> Option<DirState> {
    if let DirInput::Get { recursive } = input {
        let mut next = DirState {
            at: index,
            rooted: true,
            ..s.clone()
        };
        s.lookup(path).ok()?;
        let fits = index >= s.at && action == Action::Get && node.key == path && prev.is_none();
        return (fits && next.listing(node, *recursive, true, index)).then_some(next);
    }
    if index <= s.at {
        return None;
    }
    let mut applied = s.apply(path, input, index).ok()?;
    let mut held_prev = applied.prev.clone();
    let prev_fits = match (prev, held_prev.as_mut()) {
        (None, None) => true,
        (Some(p), Some(h)) => p.key == applied.key && p.nodes.is_empty() && h.adopt(p),
        _ => false,
    };
    // The node answered: a node the request made shows `index` as both
    // indexes; one it updated or removed shows the created index it had.
    let mut expected = applied.node.clone();
    if expected.created == 0 {
        expected.created = held_prev.as_ref().map_or(0, |h| h.created);
    }
    let removed = matches!(action, Action::Delete | Action::Expire);
    let value = (!expected.dir && !removed).then(|| expected.value.clone());
    let node_fits = action == applied.action
        && node.key == applied.key
        && node.dir == expected.dir
        && node.value == value
        && node.ttl == expected.ttl
        && node.created == expected.created
        && node.modified == index
        && node.nodes.is_empty();
    if !prev_fits || !node_fits {
        return None;
    }
    // An updated node keeps what its previous node showed.
    if let (Some(kept), Some(h)) = (applied.nodes.get_mut(&applied.key), &held_prev) {
        if kept.created == 0 {
            kept.created = h.created;
        }
        if kept.modified == 0 {
            kept.modified = h.modified;
        }
    }
    Some(DirState {
        nodes: applied.nodes,
        at: index,
        rooted: true,
    })
}
