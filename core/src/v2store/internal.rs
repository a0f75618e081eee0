//! The cluster's own records in the v2 store. etcd 3.4 keeps its membership and
//! cluster version in the v2 store under a prefix `/v2/keys` never shows (`/0`;
//! client keys live under `/1`): a member added creates
//! `/0/members/<id>/raftAttributes`, each publish at a member's start sets
//! `/0/members/<id>/attributes`, the leader sets `/0/version` once, an update or
//! promotion updates `raftAttributes`, and a removal deletes `/0/members/<id>`
//! and creates `/0/removed_members/<id>`. Each is a change of the store: it takes
//! the next index and a place in the history, so a client's first write on a
//! fresh single member is at index 4, as etcd's.
//!
//! detcd's membership lives elsewhere ([`crate::node`]); here only the events are
//! kept (their keys relative, `0/...`, so that no client path, always absolute,
//! and no watcher ever matches them), and the cluster version, which is the one
//! record whose presence decides something (whether the leader still sets it).

use super::{Action, Event, NodeView, Op, Store};

/// What a cluster record change did, as etcd's store counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// A member added (`raftAttributes` created).
    MemberAdded(u64),
    /// A member's name and client URLs published (`attributes` set).
    MemberPublished(u64),
    /// A member's peer URLs updated, or the member promoted (`raftAttributes` updated).
    MemberUpdated(u64),
    /// A member removed (its directory deleted; then `removed_members/<id>` created).
    MemberRemoved(u64),
}

impl Store {
    /// The cluster version the leader set (etcd's `/0/version`), if any.
    pub fn cluster_version(&self) -> Option<&str> {
        self.cluster_version.as_deref()
    }

    /// Records a change of the cluster's own records; the operations it counts
    /// as (for `/v2/stats/store`, which counts them as etcd's does).
    pub fn record_cluster(&mut self, record: Record) -> Vec<Op> {
        match record {
            Record::MemberAdded(id) => {
                self.internal(Action::Create, format!("0/members/{id:x}/raftAttributes"), false);
                vec![Op::Create]
            }
            Record::MemberPublished(id) => {
                self.internal(Action::Set, format!("0/members/{id:x}/attributes"), false);
                vec![Op::Set]
            }
            Record::MemberUpdated(id) => {
                self.internal(Action::Update, format!("0/members/{id:x}/raftAttributes"), false);
                vec![Op::Update]
            }
            Record::MemberRemoved(id) => {
                self.internal(Action::Delete, format!("0/members/{id:x}"), true);
                self.internal(Action::Create, format!("0/removed_members/{id:x}"), false);
                vec![Op::Delete, Op::Create]
            }
        }
    }

    /// Sets the cluster version (etcd's `/0/version`).
    pub fn set_cluster_version(&mut self, version: &str) -> Op {
        self.internal(Action::Set, "0/version".to_string(), false);
        self.cluster_version = Some(version.to_string());
        Op::Set
    }

    fn internal(&mut self, action: Action, key: String, dir: bool) {
        self.index += 1;
        let node = NodeView {
            key,
            dir,
            modified_index: self.index,
            created_index: self.index,
            ..NodeView::default()
        };
        self.history.add(Event {
            action,
            node,
            prev_node: None,
            etcd_index: self.index,
            refresh: false,
        });
    }
}
