//! Replacing the application state: the bootstrap membership, and installing a
//! snapshot (the leader's, or the one a restart recovers from).

use std::collections::BTreeMap;

use detcd_proto::etcdserverpb::Member;
use detcd_proto::raftpb::{ConfState, Snapshot};

use super::applied_requests::AppliedRequests;
use super::config::NodeError;
use super::{state, Node};
use crate::auth::AuthStore;
use crate::lease::Lessor;
use crate::mvcc::{Store, StoreConfig};
use crate::raft::Role;
use crate::v2store::Store as V2Store;

impl Node {
    /// The membership of an empty-data snapshot (the bootstrap snapshot at index N):
    /// the members its configuration names, described by `initial_members` where
    /// they appear there. Names and client URLs come later, published through raft.
    pub(super) fn reset_members(&mut self, conf: Option<&ConfState>) {
        let initial: BTreeMap<u64, Member> = self
            .config
            .initial_members
            .iter()
            .map(|m| (m.id, m.clone()))
            .collect();
        self.members = match conf {
            None => initial,
            Some(cs) => {
                let mut members = BTreeMap::new();
                for (&id, learner) in cs
                    .voters
                    .iter()
                    .map(|id| (id, false))
                    .chain(cs.learners.iter().map(|id| (id, true)))
                {
                    let mut m = initial.get(&id).cloned().unwrap_or(Member {
                        id,
                        ..Default::default()
                    });
                    m.is_learner = learner;
                    members.insert(id, m);
                }
                members
            }
        };
        for m in self.members.values_mut() {
            m.name.clear();
            m.client_ur_ls.clear();
        }
    }

    /// Replaces the application state by a snapshot's (from the leader, or at restart).
    pub(super) fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), NodeError> {
        // Exports in progress still read the store this replaces.
        self.exports.finish_all(&self.store);
        let meta = snapshot.metadata.clone().unwrap_or_default();
        if snapshot.data.is_empty() {
            self.store = Store::new(self.store.config());
            self.lessor = Lessor::new(self.lessor.config().clone(), self.rng.fork());
            self.auth = AuthStore::default();
            self.reset_members(meta.conf_state.as_ref());
            // etcd's bootstrap conf changes each add a member to its v2 store.
            self.v2 = V2Store::default();
            self.v2_stats = crate::v2store::Stats::default();
            let ids: Vec<u64> = self.members.keys().copied().collect();
            for id in ids {
                self.record_cluster_v2(crate::v2store::Record::MemberAdded(id));
            }
            self.removed_members.clear();
            self.alarms.clear();
            self.applied_requests = AppliedRequests::default();
            self.db_size_bytes = 0;
        } else {
            let s = state::decode(&snapshot.data, self.lessor.config().clone(), self.rng.fork())
                .map_err(NodeError::Snapshot)?;
            if s.applied_index != meta.index {
                return Err(NodeError::Snapshot(format!(
                    "state applied index {} differs from snapshot index {}",
                    s.applied_index, meta.index
                )));
            }
            if s.cluster_id != self.config.cluster_id {
                return Err(NodeError::Snapshot(format!(
                    "snapshot of cluster {:x}, member of cluster {:x}",
                    s.cluster_id, self.config.cluster_id
                )));
            }
            debug_assert_eq!(
                s.applied_term, meta.term,
                "state and snapshot metadata agree on the term"
            );
            self.store = s.store;
            self.store.config = StoreConfig {
                txn_ops_max: self.config.txn_ops_max,
            };
            self.lessor = s.lessor;
            self.auth = s.auth;
            self.v2 = s.v2;
            // etcd's `Recovery` takes the snapshot's counts (older formats have none).
            self.v2_stats = s.v2_stats.unwrap_or(self.v2_stats);
            self.members = s.members;
            self.removed_members = s.removed;
            self.alarms = s.alarms;
            self.applied_requests = s.applied_requests;
            self.db_size_bytes = s.db_size_bytes;
        }
        if self.soft.role == Role::Leader {
            self.lessor
                .promote(self.now_ms, self.config.election_timeout_ms());
        }
        self.applied_index = meta.index;
        self.applied_term = meta.term;
        self.snapshot_index = meta.index;
        self.snapshot_bytes = snapshot.data.len() as u64;
        self.applied_bytes_since_snapshot = 0;
        // A snapshot being encoded describes a state this one replaces.
        self.snapshot_job = None;
        // Synced watchers were fed up to the old store's revision: they catch up
        // from the restored store's history (or are canceled if it is compacted).
        self.hub.restore(&self.store);
        Ok(())
    }
}
