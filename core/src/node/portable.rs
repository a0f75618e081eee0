//! The member's state in etcd's terms, for backups other tools can read: the
//! small parts at once ([`PortableHead`]), the key space's revisions a slice at a
//! time ([`Node::portable_records`]), so a large store is exported while the
//! member keeps serving, without a second full copy of it.
//!
//! Consistency: the head fixes the applied index and the newest revision
//! exported; records are immutable once written, so later slices read the same
//! history, and writes after the head (above its revision) are left out. Only a
//! compaction changes the records below it. One at a revision the head already
//! holds removes exactly what it would have removed from the head's state, so the
//! export goes on: each slice reports the compaction revision in force
//! ([`PortableSlice::compact_revision`]), the export records the last one, and
//! records written out before the compaction that it removed lie below that
//! revision, unreachable (an import drops them). A compaction beyond the head's
//! revision would remove history the head still needs (a key's value at the
//! head, overwritten since); a slice asked for after one is refused
//! ([`PortableError::Compacted`]) and the export starts over.

use std::fmt;

use detcd_proto::authpb::{Role, User};
use detcd_proto::etcdserverpb::Member;
use prost::Message;

use super::Node;
use crate::mvcc::Revision;

/// Everything of a member's state but its key space's records.
#[derive(Clone, Debug, PartialEq)]
pub struct PortableHead {
    pub applied_index: u64,
    pub applied_term: u64,
    pub cluster_id: u64,
    pub members: Vec<Member>,
    pub removed_members: Vec<u64>,
    /// (member ID, etcd `AlarmType` number).
    pub alarms: Vec<(u64, i32)>,
    /// (ID, granted TTL in seconds, last checkpointed remaining TTL or 0).
    pub leases: Vec<(i64, i64, i64)>,
    pub auth_enabled: bool,
    pub auth_revision: u64,
    pub users: Vec<User>,
    pub roles: Vec<Role>,
    pub current_revision: i64,
    /// The last compaction's revision, -1 before the first (etcd's value).
    pub compact_revision: i64,
    /// The newest record exported (None: the store holds none).
    pub last_record: Option<Revision>,
}

/// What a slice of records needs to know of its export's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortableBound {
    pub current_revision: i64,
    pub last_record: Option<Revision>,
}

/// A slice of an export's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortableSlice {
    pub records: Vec<PortableRecord>,
    /// Where the next slice starts (None once the last one is out).
    pub next: Option<Revision>,
    /// The store's compaction revision when the slice was read (-1 before the
    /// first): what the export's `meta` must say once its last slice is out.
    pub compact_revision: i64,
}

impl PortableHead {
    pub fn bound(&self) -> PortableBound {
        PortableBound {
            current_revision: self.current_revision,
            last_record: self.last_record,
        }
    }
}

/// One revision of the key space as etcd's backend stores it: the key is the
/// revision's 17 bytes (plus `t` for a tombstone), the value a `mvccpb.KeyValue`
/// (only the key, for a tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortableRecord {
    pub revision: Revision,
    pub backend_key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Why a slice of records could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortableError {
    /// The store was compacted after the head was taken.
    Compacted,
}

impl fmt::Display for PortableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortableError::Compacted => f.write_str(
                "the store was compacted beyond the snapshot's revision while it was taken; take it again",
            ),
        }
    }
}

impl std::error::Error for PortableError {}

impl Node {
    /// The head of an export as of the applied index.
    pub fn portable_head(&self) -> PortableHead {
        let leases = self
            .lessor
            .leases
            .iter()
            .map(|(id, l)| (*id, l.ttl_s, l.remaining_ttl_s))
            .collect();
        let (users, roles) = self.auth.users_and_roles();
        PortableHead {
            applied_index: self.applied_index,
            applied_term: self.applied_term,
            cluster_id: self.config.cluster_id,
            members: self.members.values().cloned().collect(),
            removed_members: self.removed_members.iter().copied().collect(),
            alarms: self.alarms.iter().copied().collect(),
            leases,
            auth_enabled: self.auth.is_enabled(),
            auth_revision: self.auth.revision(),
            users,
            roles,
            current_revision: self.store.current_rev,
            compact_revision: self.store.compact_rev,
            last_record: self.store.records.last_key_value().map(|(r, _)| *r),
        }
    }

    /// The records of the export bounded by `head` from revision `from` on (at most
    /// `records_max` of them, at least one if any is left).
    pub fn portable_records(
        &self,
        head: PortableBound,
        from: Revision,
        records_max: usize,
    ) -> Result<PortableSlice, PortableError> {
        if self.store.compact_rev > head.current_revision {
            return Err(PortableError::Compacted);
        }
        let empty = PortableSlice {
            records: Vec::new(),
            next: None,
            compact_revision: self.store.compact_rev,
        };
        let Some(last) = head.last_record else {
            return Ok(empty);
        };
        if from > last {
            return Ok(empty);
        }
        let mut out = Vec::new();
        let mut next = None;
        for (rev, rec) in self.store.records.range(from..=last) {
            if out.len() >= records_max.max(1) {
                next = Some(*rev);
                break;
            }
            let stored = if rec.is_tombstone() {
                detcd_proto::mvccpb::KeyValue {
                    key: rec.key.to_vec(),
                    ..Default::default()
                }
            } else {
                rec.to_kv(*rev)
            };
            out.push(PortableRecord {
                revision: *rev,
                backend_key: rev.to_bytes(rec.is_tombstone()),
                value: stored.encode_to_vec(),
            });
        }
        Ok(PortableSlice {
            records: out,
            next,
            compact_revision: self.store.compact_rev,
        })
    }
}
