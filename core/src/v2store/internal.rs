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
//!
//! Stores written before these records were counted (state format 5) hold an
//! index without them, and nothing tells how many there were. Counting them from
//! the snapshot on would number each member by where its own snapshot was taken:
//! members restored from snapshots at different indexes would hold different
//! stores at the same applied index, a follower installing its leader's snapshot
//! could see its index go back, and the events replayed after the snapshot would
//! take other indexes than the ones clients saw before the restart. So such a
//! store keeps the old numbering (the records take no index: the count of client
//! changes is the same on every member at a given applied index, and the same as
//! before the restart) until a cluster version is set. That is a log entry every
//! member applies at the same index, and the leader proposes it once it finds no
//! cluster version, which a format 5 store never has: from there on every member
//! counts the records. A member that instead replays the whole log of a format 5
//! era cluster from its start (it never took a snapshot) counts every record and
//! numbers higher than the ones restored from snapshots: that mixed case stays
//! unsupported (remove and re-add such a member, which then installs a snapshot).

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
        self.legacy_numbering = false;
        self.internal(Action::Set, "0/version".to_string(), false);
        self.cluster_version = Some(version.to_string());
        Op::Set
    }

    fn internal(&mut self, action: Action, key: String, dir: bool) {
        if self.legacy_numbering {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v2store::Ttl;

    /// A store as a state format 5 snapshot held it: its encoding without the
    /// cluster version and numbering flag at the end.
    fn format_5(store: &Store) -> Vec<u8> {
        let mut bytes = Vec::new();
        store.encode(&mut bytes);
        bytes.truncate(bytes.len() - 2);
        bytes
    }

    #[test]
    fn a_format_5_store_numbers_as_before_until_a_cluster_version_is_set() {
        let ttl = Ttl::default();
        let mut old = Store::default();
        old.set("/a", false, "1", ttl).expect("set");
        let at_snapshot = old.index();
        let mut restored = Store::decode_without_cluster_version(&format_5(&old)).expect("decode");
        assert_eq!(restored.index(), at_snapshot);
        // The records replayed after the snapshot take no index, as before.
        restored.record_cluster(Record::MemberPublished(1));
        restored.record_cluster(Record::MemberRemoved(2));
        restored.set("/b", false, "2", ttl).expect("set");
        assert_eq!(restored.index(), at_snapshot + 1);
        // Kept across a later snapshot (format 7), equal on every member.
        let mut bytes = Vec::new();
        restored.encode(&mut bytes);
        let mut again = Store::decode(&bytes).expect("decode");
        assert_eq!(again, restored);
        // The cluster version ends it: it and every record after it count.
        again.set_cluster_version("3.6.0");
        assert_eq!(again.index(), at_snapshot + 2);
        again.record_cluster(Record::MemberPublished(1));
        assert_eq!(again.index(), at_snapshot + 3);
        let mut bytes = Vec::new();
        again.encode(&mut bytes);
        assert_eq!(Store::decode(&bytes).expect("decode"), again);
    }

    #[test]
    fn a_format_6_store_counts_records_from_its_snapshot_on() {
        let mut s = Store::default();
        s.record_cluster(Record::MemberAdded(1));
        s.set_cluster_version("3.6.0");
        let mut bytes = Vec::new();
        s.encode(&mut bytes);
        // Format 6: no numbering flag at the end.
        bytes.pop();
        let mut restored = Store::decode_format_6(&bytes).expect("decode");
        assert_eq!(restored, s);
        restored.record_cluster(Record::MemberPublished(1));
        assert_eq!(restored.index(), 3);
        assert!(Store::decode(&bytes).is_err(), "format 7 wants the flag");
    }

    #[test]
    fn a_fresh_store_counts_every_record() {
        let mut s = Store::default();
        s.record_cluster(Record::MemberAdded(1));
        s.record_cluster(Record::MemberPublished(1));
        s.set_cluster_version("3.6.0");
        assert_eq!(s.index(), 3);
    }
}
