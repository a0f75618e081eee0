//! The linearizability check of the v2 workload's directory requests: every request
//! on the subtree [`DIR`] (directories made, set over, updated, listed and removed,
//! keys set, created and deleted in them, in-order keys POSTed into them, and keys
//! whose path crosses a file) is one partition, checked against a model of the
//! subtree through the same search as the single-key requests
//! ([`super::linearizability`]). A recursive delete or a listing spans many keys,
//! so the per-key partitions of [`super::v2`] cannot hold these.
//!
//! The model holds every node of the subtree by path (a key's value, whether it is
//! a directory, its created and modified indexes) and answers each request as
//! etcd's v2 store does: the same action, the node and previous node the answer
//! shows, or the same error code and cause ("Key not found" at the first missing
//! component, "Not a directory" 104 at the file a path crosses, "Not a file" 102,
//! "Key already exists" 105, "Directory not empty" 108). Every request goes
//! through raft, so as in [`super::v2`] the order the search picks follows the
//! indexes (`at`): a write answers a new index above it, a read or a refusal one
//! at or above it.
//!
//! Directories may carry an expiry (whether a node has one is part of what the
//! model holds and an answer shows); a leader's sync removes an expired one and
//! everything below it at an index of its own. No client asks for that: the
//! expiries come from the members' events ([`crate::v2_lost::add_expiries`]) as
//! requests with a known answer, pinned by their index. Hidden nodes (`_name`)
//! are read by their path and never listed, but still keep a directory from being
//! removed without `recursive`.
//!
//! A write whose answer was lost may have taken effect at an index nobody saw: the
//! nodes it made hold 0 for their unknown indexes until an answer shows them (then
//! the model takes them). An in-order key such a POST made has an unknown name (its
//! index): the model holds it as `parent/?value` (values are unique), and a
//! listing that shows a key of that value under that parent names it.

use std::collections::BTreeMap;

use detcd_core::v2store::{code, Action, Event, NodeView, V2Error};

use super::linearizability::{self, Call, Model, Verdict};
use super::v2::{explain, V2CheckReport};

/// The subtree the directory requests work in.
pub const DIR: &str = "/v2/d";
/// Its parent, made by the first v2 write and never removed.
const PARENT: &str = "/v2";
/// How a placeholder's name starts: `parent/?value` (no real name holds `?`).
const UNNAMED: char = '?';
/// How a hidden node's name starts: readable by its path, never listed.
const HIDDEN: char = '_';

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

fn refusal(code: u32, cause: &str) -> Refusal {
    (code, cause.to_string())
}

fn below(path: &str) -> String {
    format!("{path}/")
}

fn parent_of(path: &str) -> &str {
    &path[..path.rfind('/').unwrap_or(0)]
}

/// The paths from [`DIR`] down to `path`'s parent (none for [`DIR`] itself).
fn ancestors(path: &str) -> Vec<String> {
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
struct Applied {
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
const SYNC_CLIENT: u64 = u64::MAX;

/// The model.
struct DirModel;

/// A request on a path of the subtree.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PathInput {
    path: String,
    input: DirInput,
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
fn done(
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

/// One recorded request.
#[derive(Clone, Debug)]
struct DirOp {
    client: u64,
    call: Call<PathInput, DirOutput>,
    /// Refused before it could take effect: left out of the check.
    failed: bool,
    /// Its answer was lost and the event log told what it did (see [`crate::v2_lost`]).
    resolved: bool,
}

/// A request whose answer was lost (see [`DirLinHistory::lost`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostDir {
    pub id: usize,
    pub path: String,
    pub input: DirInput,
    pub invoked_at: u64,
}

impl DirOutput {
    /// The store's index the answer shows (a write's own, a read's or refusal's).
    pub fn index(&self) -> u64 {
        match self {
            DirOutput::Ok { index, .. } | DirOutput::Err { index, .. } => *index,
        }
    }
}

/// The directory requests the v2 workload recorded.
#[derive(Debug, Default)]
pub struct DirLinHistory {
    ops: Vec<DirOp>,
}

impl DirLinHistory {
    /// Records a request on `path` invoked at `at`; the id answers
    /// [`Self::complete`] and [`Self::fail`].
    pub fn invoke(&mut self, client: u64, path: &str, input: DirInput, at: u64) -> usize {
        debug_assert!(
            path == DIR || path.starts_with(&below(DIR)),
            "{path} is outside {DIR}"
        );
        let input = PathInput {
            path: path.to_string(),
            input,
        };
        self.ops.push(DirOp {
            client,
            call: Call {
                input,
                output: None,
                invoked_at: at,
                returned_at: None,
            },
            failed: false,
            resolved: false,
        });
        self.ops.len() - 1
    }

    pub fn complete(&mut self, id: usize, output: DirOutput, at: u64) {
        let call = &mut self.ops[id].call;
        call.output = Some(output);
        call.returned_at = Some(at);
    }

    /// Refused with an error that proves it never took effect.
    pub fn fail(&mut self, id: usize) {
        self.ops[id].failed = true;
    }

    /// The writes whose answer was lost (not refused before they were proposed).
    pub fn lost(&self) -> Vec<LostDir> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, op)| {
                !op.failed && op.call.output.is_none() && !matches!(op.call.input.input, DirInput::Get { .. })
            })
            .map(|(id, op)| LostDir {
                id,
                path: op.call.input.path.clone(),
                input: op.call.input.input.clone(),
                invoked_at: op.call.invoked_at,
            })
            .collect()
    }

    /// Every answer: (when it came, the answer).
    pub fn answers(&self) -> impl Iterator<Item = (u64, &DirOutput)> {
        self.ops
            .iter()
            .filter_map(|op| Some((op.call.returned_at?, op.call.output.as_ref()?)))
    }

    /// The expiry of `path` (its node and everything below it) that the members'
    /// events show, first seen applied at `at`: a leader's sync, sent at no known
    /// time, that took effect at the index `output` shows.
    pub fn expired(&mut self, path: &str, output: DirOutput, at: u64) {
        let id = self.invoke(SYNC_CLIENT, path, DirInput::Expire, 0);
        self.complete(id, output, at);
    }

    /// What the event log told of lost request `id`: it did what `output` shows
    /// (as its answer would have) by time `at`, or (`None`) nothing at all.
    pub fn resolve_lost(&mut self, id: usize, outcome: Option<(DirOutput, u64)>) {
        let op = &mut self.ops[id];
        match outcome {
            Some((output, at)) => {
                op.call.output = Some(output);
                op.call.returned_at = Some(at.max(op.call.invoked_at));
            }
            None => op.failed = true,
        }
        op.resolved = true;
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks the subtree's requests as one partition (a search that ran out of
    /// `steps_max` is reported in `unknown`).
    pub fn check(&self, steps_max: u64) -> V2CheckReport {
        let ids: Vec<usize> = (0..self.ops.len())
            .filter(|&i| {
                let op = &self.ops[i];
                let unknown_read =
                    op.call.output.is_none() && matches!(op.call.input.input, DirInput::Get { .. });
                !op.failed && !unknown_read
            })
            .collect();
        let calls: Vec<Call<PathInput, DirOutput>> = ids.iter().map(|&i| self.ops[i].call.clone()).collect();
        let result = linearizability::check(&DirModel, &calls, steps_max);
        let mut report = V2CheckReport {
            ops_checked: calls.len(),
            search_steps: result.steps,
            ..V2CheckReport::default()
        };
        match result.verdict {
            Verdict::Linearizable { .. } => {}
            Verdict::Unknown => report.unknown.push(DIR.to_string()),
            Verdict::NotLinearizable(c) => {
                let render = |i: usize| self.render(ids[i]);
                report.violation = Some(explain(&format!("the subtree {DIR}"), &c, render));
            }
        }
        report
    }

    fn render(&self, id: usize) -> String {
        let op = &self.ops[id];
        let c = &op.call;
        let end = c.returned_at.map_or("?".to_string(), |t| t.to_string());
        let mut output = c.output.as_ref().map_or("?".to_string(), |o| format!("{o:?}"));
        if op.resolved {
            output.insert_str(0, "? (lost; per the event log) ");
        }
        let who = if op.client == SYNC_CLIENT {
            "a leader's sync".to_string()
        } else {
            format!("client {}", op.client)
        };
        format!(
            "{who} [t={}..{end}] {:?} {} -> {output}",
            c.invoked_at, c.input.input, c.input.path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(key: &str, value: Option<&str>, created: u64, modified: u64) -> Shown {
        Shown {
            key: key.to_string(),
            dir: value.is_none(),
            value: value.map(str::to_string),
            ttl: false,
            created,
            modified,
            nodes: Vec::new(),
        }
    }

    fn expiring(shown: Shown) -> Shown {
        Shown { ttl: true, ..shown }
    }

    /// `mkdir --ttl /v2/d/s` at 5, a key set in it at 6.
    fn ttl_dir() -> DirLinHistory {
        let mut h = DirLinHistory::default();
        let s = expiring(shown("/v2/d/s", None, 5, 5));
        let mkdir = DirInput::Mkdir { ttl: true };
        record(&mut h, "/v2/d/s", mkdir, ok(5, Action::Create, s, None), 0);
        let c0 = shown("/v2/d/s/c0", Some("a"), 6, 6);
        record(&mut h, "/v2/d/s/c0", set("a"), ok(6, Action::Set, c0, None), 10);
        h
    }

    #[test]
    fn an_expiry_removes_the_directory_and_what_is_below_it() {
        let mut h = ttl_dir();
        let gone = ok(
            7,
            Action::Expire,
            shown("/v2/d/s", None, 5, 7),
            Some(expiring(shown("/v2/d/s", None, 5, 5))),
        );
        h.expired("/v2/d/s", gone, 25);
        let get = DirInput::Get { recursive: false };
        record(
            &mut h,
            "/v2/d/s/c0",
            get,
            err(code::KEY_NOT_FOUND, "/v2/d/s", 7),
            30,
        );
        assert_eq!(h.check(10_000).violation, None);
        // A key below it still read after the expiry is not.
        let c0 = shown("/v2/d/s/c0", Some("a"), 6, 6);
        let get = DirInput::Get { recursive: false };
        record(&mut h, "/v2/d/s/c0", get, ok(7, Action::Get, c0, None), 40);
        assert!(h.check(10_000).violation.is_some());
    }

    #[test]
    fn a_directory_whose_ttl_an_update_removed_never_expires() {
        let mut h = ttl_dir();
        let update = DirInput::UpdateDir {
            ttl: false,
            refresh: false,
        };
        let now = shown("/v2/d/s", None, 5, 7);
        let before = expiring(shown("/v2/d/s", None, 5, 5));
        record(
            &mut h,
            "/v2/d/s",
            update,
            ok(7, Action::Update, now, Some(before)),
            20,
        );
        let gone = ok(
            8,
            Action::Expire,
            shown("/v2/d/s", None, 5, 8),
            Some(shown("/v2/d/s", None, 5, 5)),
        );
        h.expired("/v2/d/s", gone, 35);
        let why = h.check(10_000).violation.expect("a violation");
        assert!(why.contains("a leader's sync"), "{why}");
    }

    #[test]
    fn a_hidden_key_is_read_by_its_path_and_never_listed() {
        let mut h = DirLinHistory::default();
        let d = shown(DIR, None, 5, 5);
        record(
            &mut h,
            DIR,
            DirInput::Mkdir { ttl: false },
            ok(5, Action::Create, d.clone(), None),
            0,
        );
        let hidden = shown("/v2/d/_h", Some("a"), 6, 6);
        record(
            &mut h,
            "/v2/d/_h",
            set("a"),
            ok(6, Action::Set, hidden.clone(), None),
            10,
        );
        let get = DirInput::Get { recursive: false };
        record(
            &mut h,
            "/v2/d/_h",
            get,
            ok(6, Action::Get, hidden.clone(), None),
            20,
        );
        let get = DirInput::Get { recursive: true };
        record(&mut h, DIR, get.clone(), ok(6, Action::Get, d.clone(), None), 30);
        assert_eq!(h.check(10_000).violation, None);
        let listed = Shown {
            nodes: vec![hidden],
            ..d
        };
        record(&mut h, DIR, get, ok(6, Action::Get, listed, None), 40);
        assert!(h.check(10_000).violation.is_some());
    }

    fn ok(index: u64, action: Action, node: Shown, prev: Option<Shown>) -> DirOutput {
        DirOutput::Ok {
            index,
            action,
            node,
            prev,
        }
    }

    fn err(code: u32, cause: &str, index: u64) -> DirOutput {
        DirOutput::Err {
            code,
            cause: cause.to_string(),
            index,
        }
    }

    fn record(h: &mut DirLinHistory, path: &str, input: DirInput, output: DirOutput, t: u64) {
        let id = h.invoke(1, path, input, t);
        h.complete(id, output, t + 1);
    }

    fn set(value: &str) -> DirInput {
        DirInput::Set {
            value: value.to_string(),
        }
    }

    /// mkdir /v2/d at 5, set /v2/d/c0 at 6, then a recursive listing at 6.
    fn filled() -> DirLinHistory {
        let mut h = DirLinHistory::default();
        record(
            &mut h,
            DIR,
            DirInput::Mkdir { ttl: false },
            ok(5, Action::Create, shown(DIR, None, 5, 5), None),
            0,
        );
        let c0 = shown("/v2/d/c0", Some("a"), 6, 6);
        record(
            &mut h,
            "/v2/d/c0",
            set("a"),
            ok(6, Action::Set, c0.clone(), None),
            10,
        );
        let listing = Shown {
            nodes: vec![c0],
            ..shown(DIR, None, 5, 5)
        };
        record(
            &mut h,
            DIR,
            DirInput::Get { recursive: true },
            ok(6, Action::Get, listing, None),
            20,
        );
        h
    }

    #[test]
    fn a_directory_filled_listed_and_removed_passes() {
        let mut h = filled();
        record(&mut h, DIR, DirInput::Rmdir, err(code::DIR_NOT_EMPTY, DIR, 6), 30);
        let crossing = "/v2/d/c0/x";
        record(&mut h, crossing, set("b"), err(code::NOT_DIR, "/v2/d/c0", 6), 40);
        let gone = ok(
            7,
            Action::Delete,
            shown(DIR, None, 5, 7),
            Some(shown(DIR, None, 5, 5)),
        );
        record(&mut h, DIR, DirInput::DeleteAll, gone, 50);
        record(
            &mut h,
            "/v2/d/c0",
            DirInput::Get { recursive: false },
            err(code::KEY_NOT_FOUND, DIR, 7),
            60,
        );
        let report = h.check(10_000);
        assert_eq!(report.violation, None);
        assert_eq!(report.ops_checked, 7);
    }

    #[test]
    fn removing_a_non_empty_directory_without_recursive_fails() {
        let mut h = filled();
        let gone = ok(
            7,
            Action::Delete,
            shown(DIR, None, 5, 7),
            Some(shown(DIR, None, 5, 5)),
        );
        record(&mut h, DIR, DirInput::Rmdir, gone, 30);
        let why = h.check(10_000).violation.expect("a violation");
        assert!(why.contains("Rmdir"), "{why}");
    }

    #[test]
    fn a_listing_missing_a_child_fails() {
        let mut h = filled();
        let empty = shown(DIR, None, 5, 5);
        record(
            &mut h,
            DIR,
            DirInput::Get { recursive: true },
            ok(6, Action::Get, empty, None),
            30,
        );
        assert!(h.check(10_000).violation.is_some());
    }

    /// A POST to the queue whose answer was lost, then a recursive listing of the
    /// queue at 12 showing one in-order key made at 9 holding `listed`.
    fn lost_post_then_listing(listed: &str) -> DirLinHistory {
        let mut h = DirLinHistory::default();
        let q = "/v2/d/q";
        let post = DirInput::Post {
            value: "p".to_string(),
        };
        h.invoke(2, q, post, 0);
        let key = format!("{q}/{:020}", 9);
        let listing = Shown {
            nodes: vec![shown(&key, Some(listed), 9, 9)],
            ..shown(q, None, 9, 9)
        };
        let get = DirInput::Get { recursive: true };
        record(&mut h, q, get, ok(12, Action::Get, listing, None), 20);
        h
    }

    #[test]
    fn a_lost_post_is_named_by_a_listing() {
        let mut h = lost_post_then_listing("p");
        let q = "/v2/d/q";
        record(&mut h, q, DirInput::Rmdir, err(code::DIR_NOT_EMPTY, q, 12), 30);
        assert_eq!(h.check(10_000).violation, None);
        // A key it could not have made (another value) is not it.
        let wrong = lost_post_then_listing("other");
        assert!(wrong.check(10_000).violation.is_some());
    }

    #[test]
    fn a_crossing_error_must_name_the_file() {
        let mut h = DirLinHistory::default();
        let c0 = shown("/v2/d/c0", Some("a"), 6, 6);
        record(&mut h, "/v2/d/c0", set("a"), ok(6, Action::Set, c0, None), 0);
        record(
            &mut h,
            "/v2/d/c0/x",
            set("b"),
            err(code::KEY_NOT_FOUND, "/v2/d/c0/x", 6),
            10,
        );
        assert!(h.check(10_000).violation.is_some());
    }
}
