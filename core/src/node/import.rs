//! A member's state built from an export in etcd's terms (the other direction of
//! [`super::portable`]): what `detcdctl snapshot restore` turns an etcd backend
//! into. Records are pushed one at a time in revision order; the key index is
//! rebuilt as etcd's restore rebuilds it (a generation's creation from the
//! record's `create_revision`, its version from the record's `version`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use detcd_proto::etcdserverpb::{CompactionRequest, Member};
use detcd_proto::mvccpb::KeyValue;

use super::applied_requests::AppliedRequests;
use super::portable::PortableHead;
use super::state;
use crate::auth::AuthStore;
use crate::lease::snapshot::encode_leases;
use crate::lease::{Lessor, LessorConfig};
use crate::mvcc::key_index::Generation;
use crate::mvcc::store::Record;
use crate::mvcc::{Revision, Store};
use crate::rng::Rng;

/// Election timeout assumed for the imported lessor: only its minimum TTL
/// depends on it, and the member applies its own on start.
const IMPORT_ELECTION_TIMEOUT_MS: u64 = 1000;

/// Builds a member's state from records pushed in revision order.
#[derive(Debug, Default)]
pub struct Importer {
    store: Store,
    db_size_bytes: u64,
}

/// How the imported state is placed in its new cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportTarget {
    pub applied_index: u64,
    pub applied_term: u64,
    pub cluster_id: u64,
    pub members: Vec<Member>,
    /// Added to the current revision (`--bump-revision`).
    pub bump_revision: i64,
    /// Compacts at the (bumped) current revision (`--mark-compacted`).
    pub mark_compacted: bool,
}

impl Importer {
    /// Adds the record at `rev` (a tombstone, or a put whose value is `kv`).
    pub fn push(&mut self, rev: Revision, tombstone: bool, kv: KeyValue) -> Result<(), String> {
        if self
            .store
            .records
            .last_key_value()
            .is_some_and(|(r, _)| *r >= rev)
        {
            return Err(format!(
                "revision {}_{} out of order or repeated",
                rev.main, rev.sub
            ));
        }
        if kv.key.is_empty() {
            return Err(format!("revision {}_{} has an empty key", rev.main, rev.sub));
        }
        let key: Arc<[u8]> = match self.store.index.get_key_value(kv.key.as_slice()) {
            Some((k, _)) => k.clone(),
            None => kv.key.as_slice().into(),
        };
        let ki = self.store.index.entry(key.clone()).or_default();
        let fresh = ki.generations.last().is_none_or(|g| g.revs.is_empty());
        ki.put(rev);
        let g = ki.generations.last_mut().expect("a key index has a generation");
        let record = if tombstone {
            ki.generations.push(Generation::default());
            Record {
                key,
                value: Box::default(),
                create_revision: 0,
                version: 0,
                lease: 0,
            }
        } else {
            if fresh && kv.create_revision != rev.main {
                g.created = Revision::new(kv.create_revision, 0);
            }
            g.version = g.version.max(kv.version);
            self.db_size_bytes += (kv.key.len() + kv.value.len()) as u64;
            Record {
                key,
                value: kv.value.into_boxed_slice(),
                create_revision: kv.create_revision,
                version: kv.version,
                lease: kv.lease,
            }
        };
        self.store.records.insert(rev, record);
        Ok(())
    }

    /// The member's state bytes (what a raft snapshot's data holds).
    pub fn finish(mut self, head: &PortableHead, target: &ImportTarget) -> Result<Vec<u8>, String> {
        let last = self.store.records.last_key_value().map_or(1, |(r, _)| r.main);
        self.store.current_rev = last.max(head.current_revision).max(1);
        self.store
            .check_invariants()
            .map_err(|e| format!("key space: {e}"))?;
        // The compaction again, over everything imported: a backend may hold
        // revisions it removes (etcd compacts in batches; a detcd export that a
        // compaction overtook keeps what it had written).
        let compact_to = head.compact_revision.min(self.store.current_rev);
        if compact_to > 0 {
            self.store
                .compact(&CompactionRequest {
                    revision: compact_to,
                    physical: false,
                })
                .map_err(|e| format!("compaction: {}", e.message))?;
            self.db_size_bytes = self
                .store
                .records
                .values()
                .map(|r| (r.key.len() + r.value.len()) as u64)
                .sum();
        }
        if target.bump_revision < 0 {
            return Err("--bump-revision must not be negative".to_string());
        }
        self.store.current_rev += target.bump_revision;
        if target.mark_compacted && self.store.current_rev > self.store.compact_rev {
            let at = self.store.current_rev;
            self.store
                .compact(&CompactionRequest {
                    revision: at,
                    physical: false,
                })
                .map_err(|e| format!("compaction: {}", e.message))?;
        }
        // Keys attached to leases: each live key's latest value names its lease;
        // a lease that no longer exists leaves its keys unattached, as in etcd.
        let mut lease_keys: BTreeMap<i64, BTreeSet<Vec<u8>>> = head
            .leases
            .iter()
            .map(|&(id, _, _)| (id, BTreeSet::new()))
            .collect();
        for (key, ki) in &self.store.index {
            let Some(rev) = ki.generations.last().and_then(|g| g.revs.last()) else {
                continue;
            };
            let lease = self.store.records.get(rev).map_or(0, |r| r.lease);
            if let Some(keys) = lease_keys.get_mut(&lease) {
                keys.insert(key.to_vec());
            }
        }
        let leases = head.leases.iter().map(|&(id, ttl, remaining)| {
            let keys = lease_keys.get(&id).expect("every lease has an entry");
            (id, ttl, remaining, keys)
        });
        let lessor_bytes = encode_leases(leases);
        let lessor = Lessor::from_bytes(
            LessorConfig::new(IMPORT_ELECTION_TIMEOUT_MS),
            Rng::new(0),
            &lessor_bytes,
        )
        .map_err(|e| e.to_string())?;
        let auth = AuthStore::from_parts(
            head.auth_enabled,
            head.auth_revision,
            head.users.clone(),
            head.roles.clone(),
        )?;
        let members: BTreeMap<u64, Member> = target.members.iter().map(|m| (m.id, m.clone())).collect();
        let alarms = head.alarms.iter().copied().collect();
        // etcd's restore writes a fresh v2 store holding each new member's
        // `raftAttributes` (in ID order), so its index starts at the member count;
        // the old cluster's v2 keys are not in a v3 backup.
        // Its statistics, saved with it, count those creates.
        let mut v2 = crate::v2store::Store::default();
        let mut v2_stats = crate::v2store::Stats::default();
        for id in members.keys() {
            for op in v2.record_cluster(crate::v2store::Record::MemberAdded(*id)) {
                v2_stats.count(op, true);
            }
        }
        let mut encoder = state::encoder(
            target.applied_index,
            target.applied_term,
            target.cluster_id,
            self.db_size_bytes,
            &members,
            &BTreeSet::new(),
            &alarms,
            &self.store,
            &lessor,
            &AppliedRequests::default(),
            &auth,
            &v2,
            &v2_stats,
        );
        while !encoder.step(&self.store, usize::MAX) {}
        Ok(encoder.finish())
    }
}
