//! etcd's v2 key space (`/v2/keys`, etcd 3.4 with `--enable-v2`): a tree of
//! directories and keys, each with a created and a modified index, an optional
//! expiry, and a bounded history of the last [`HISTORY_CAPACITY`] events that a
//! `wait=true&waitIndex=N` request scans.
//!
//! It is replicated state: every write arrives through raft and is applied in log
//! order. Time never comes from a clock: an expiry is an absolute Unix time in
//! milliseconds the proposer computed, and keys expire only when the leader
//! proposes a sync with its time ([`Store::delete_expired`]), as etcd's SYNC
//! request does. The TTL a node shows is computed at the time its request
//! carries (a write's proposer's clock, a local get's reader's clock), so an
//! event in the history shows the TTL it had when it happened, as in etcd.

mod codec;
mod history;
mod internal;
mod stats;
mod store;

pub use history::HISTORY_CAPACITY;
pub use internal::Record;
pub use stats::{Op, Stats};
pub use store::Store;

/// The cluster version the leader sets (etcd's `/0/version`; detcd answers
/// `/version` with it too).
pub const CLUSTER_VERSION: &str = "3.6.0";

/// etcd's v2 error codes (`v2error`) that the store and the HTTP layer answer.
pub mod code {
    pub const KEY_NOT_FOUND: u32 = 100;
    pub const TEST_FAILED: u32 = 101;
    pub const NOT_FILE: u32 = 102;
    pub const NOT_DIR: u32 = 104;
    pub const NODE_EXIST: u32 = 105;
    pub const ROOT_READ_ONLY: u32 = 107;
    pub const DIR_NOT_EMPTY: u32 = 108;
    pub const UNAUTHORIZED: u32 = 110;
    pub const VALUE_REQUIRED: u32 = 200;
    pub const PREV_VALUE_REQUIRED: u32 = 201;
    pub const TTL_NAN: u32 = 202;
    pub const INDEX_NAN: u32 = 203;
    pub const INVALID_FIELD: u32 = 209;
    pub const INVALID_FORM: u32 = 210;
    pub const REFRESH_VALUE: u32 = 211;
    pub const REFRESH_TTL_REQUIRED: u32 = 212;
    pub const RAFT_INTERNAL: u32 = 300;
    pub const LEADER_ELECT: u32 = 301;
    pub const WATCHER_CLEARED: u32 = 400;
    pub const EVENT_INDEX_CLEARED: u32 = 401;
}

/// A v2 error as etcd's JSON body carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Error {
    pub code: u32,
    pub cause: String,
    /// The store's index when the error happened.
    pub index: u64,
}

impl V2Error {
    pub fn new(code: u32, cause: impl Into<String>, index: u64) -> V2Error {
        V2Error {
            code,
            cause: cause.into(),
            index,
        }
    }

    /// etcd's message for the code, word for word.
    pub fn message(&self) -> &'static str {
        match self.code {
            code::KEY_NOT_FOUND => "Key not found",
            code::TEST_FAILED => "Compare failed",
            code::NOT_FILE => "Not a file",
            code::NOT_DIR => "Not a directory",
            code::NODE_EXIST => "Key already exists",
            code::ROOT_READ_ONLY => "Root is read only",
            code::DIR_NOT_EMPTY => "Directory not empty",
            code::UNAUTHORIZED => "The request requires user authentication",
            code::VALUE_REQUIRED => "Value is Required in POST form",
            code::PREV_VALUE_REQUIRED => "PrevValue is Required in POST form",
            code::TTL_NAN => "The given TTL in POST form is not a number",
            code::INDEX_NAN => "The given index in POST form is not a number",
            code::INVALID_FIELD => "Invalid field",
            code::INVALID_FORM => "Invalid POST form",
            code::REFRESH_VALUE => "Value provided on refresh",
            code::REFRESH_TTL_REQUIRED => "A TTL must be provided on refresh",
            code::RAFT_INTERNAL => "Raft Internal Error",
            code::LEADER_ELECT => "During Leader Election",
            code::WATCHER_CLEARED => "watcher is cleared due to etcd recovery",
            code::EVENT_INDEX_CLEARED => "The event in requested index is outdated and cleared",
            _ => "",
        }
    }

    /// The HTTP status etcd answers the error with.
    pub fn http_status(&self) -> u16 {
        match self.code {
            code::KEY_NOT_FOUND => 404,
            code::NOT_FILE | code::DIR_NOT_EMPTY => 403,
            code::UNAUTHORIZED => 401,
            code::TEST_FAILED | code::NODE_EXIST => 412,
            code::RAFT_INTERNAL | code::LEADER_ELECT => 500,
            _ => 400,
        }
    }
}

impl std::fmt::Display for V2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.cause)
    }
}

/// What an event did (etcd's action names via [`Action::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Get,
    Create,
    Set,
    Update,
    Delete,
    CompareAndSwap,
    CompareAndDelete,
    Expire,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Create => "create",
            Action::Set => "set",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::CompareAndSwap => "compareAndSwap",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
        }
    }

    fn to_byte(self) -> u8 {
        self as u8
    }

    fn from_byte(b: u8) -> Option<Action> {
        const ALL: [Action; 8] = [
            Action::Get,
            Action::Create,
            Action::Set,
            Action::Update,
            Action::Delete,
            Action::CompareAndSwap,
            Action::CompareAndDelete,
            Action::Expire,
        ];
        ALL.get(usize::from(b)).copied()
    }
}

/// A node as clients see it (etcd's `NodeExtern`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeView {
    pub key: String,
    /// `None` for a directory (and for the node of a delete event).
    pub value: Option<String>,
    pub dir: bool,
    /// Absolute expiry, Unix milliseconds; `None` when permanent.
    pub expire_unix_ms: Option<u64>,
    /// Seconds left (rounded up) at the time of the request that produced the
    /// view (its proposer's clock, carried in the log); 0 when permanent.
    pub ttl: i64,
    /// A directory's listed children (hidden ones, `_name`, left out).
    pub nodes: Vec<NodeView>,
    pub modified_index: u64,
    pub created_index: u64,
}

/// One change (or a get's answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub action: Action,
    pub node: NodeView,
    pub prev_node: Option<NodeView>,
    /// The store's index when answered (the `X-Etcd-Index` header).
    pub etcd_index: u64,
    /// A TTL refresh: kept in the history but never reported to a watcher.
    pub refresh: bool,
}

impl Event {
    /// The index the event happened at.
    pub fn index(&self) -> u64 {
        self.node.modified_index
    }
}

/// How a write sets a node's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ttl {
    /// Absolute expiry in Unix milliseconds; `None` makes the node permanent.
    pub expire_unix_ms: Option<u64>,
    /// Only the expiry changes: the value stays, and watchers are not told.
    pub refresh: bool,
    /// The request's time (its proposer's clock), for the TTLs the answer shows.
    pub now_unix_ms: u64,
}

/// etcd's `path.Clean(path.Join("/", p))`.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}
