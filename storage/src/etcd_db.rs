//! etcd's backend schema in a bbolt file (what `etcdctl snapshot save` stores and
//! `etcdctl snapshot restore` / etcd read): a member's state written as etcd lays
//! it out, and read back from files etcd wrote.
//!
//! Buckets and keys (integers big-endian unless said otherwise):
//! - `key`: revision `main u64 '_' sub u64` (+ `t` for a tombstone) to a
//!   `mvccpb.KeyValue` (only the key for a tombstone).
//! - `meta`: `consistent_index` and `term` (u64), `confState` (JSON, etcd 3.5+),
//!   `scheduledCompactRev` and `finishedCompactRev` (a 17-byte revision), once
//!   compacted.
//! - `lease`: the lease ID (u64) to a `leasepb.Lease`.
//! - `auth`: `authEnabled` (one byte), `authRevision` (u64); `authUsers` and
//!   `authRoles`: name to `authpb.User` / `authpb.Role`.
//! - `members`: member ID in lower-case hex to etcd's member JSON;
//!   `members_removed`: ID in hex to `removed`.
//! - `cluster`: `clusterVersion`. `alarm`: an encoded `AlarmMember` to nothing.

use std::collections::BTreeMap;
use std::io::{self, Seek, Write};

use detcd_core::crc32c::Crc32c;
use detcd_core::mvcc::Revision;
use detcd_core::node::{PortableHead, PortableRecord};
use detcd_proto::authpb::{Role, User};
use detcd_proto::etcdserverpb::{AlarmMember, Member};
use prost::Message;

use crate::bolt::{BoltError, BoltReader, BoltWriter};

pub const KEY_BUCKET: &[u8] = b"key";
pub const META_BUCKET: &[u8] = b"meta";
pub const LEASE_BUCKET: &[u8] = b"lease";
pub const AUTH_BUCKET: &[u8] = b"auth";
pub const AUTH_USERS_BUCKET: &[u8] = b"authUsers";
pub const AUTH_ROLES_BUCKET: &[u8] = b"authRoles";
pub const MEMBERS_BUCKET: &[u8] = b"members";
pub const MEMBERS_REMOVED_BUCKET: &[u8] = b"members_removed";
pub const CLUSTER_BUCKET: &[u8] = b"cluster";
pub const ALARM_BUCKET: &[u8] = b"alarm";

const CONSISTENT_INDEX: &[u8] = b"consistent_index";
const TERM: &[u8] = b"term";
const CONF_STATE: &[u8] = b"confState";
const SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
const FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";
const AUTH_ENABLED: &[u8] = b"authEnabled";
const AUTH_REVISION: &[u8] = b"authRevision";
const CLUSTER_VERSION: &[u8] = b"clusterVersion";
/// The cluster version written: etcd 3.4 does not read it, 3.5 accepts it, and 3.6
/// upgrades from it (a 3.6 version would stop a 3.5 member restoring the file).
const CLUSTER_VERSION_WRITTEN: &[u8] = b"3.5.0";

/// etcd's `leasepb.Lease` (not among the protos detcd compiles).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// Where the buckets of an export go: a bbolt file ([`BoltWriter`]) or etcd's
/// backend hash ([`BackendHasher`]). Keys come in ascending order in each bucket.
pub trait BucketSink {
    fn begin_bucket(&mut self, name: &[u8]) -> io::Result<()>;
    fn put(&mut self, key: &[u8], value: &[u8]) -> io::Result<()>;
    fn end_bucket(&mut self) -> io::Result<()>;
}

impl<W: Write + Seek> BucketSink for BoltWriter<W> {
    fn begin_bucket(&mut self, name: &[u8]) -> io::Result<()> {
        BoltWriter::begin_bucket(self, name)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        BoltWriter::put(self, key, value)
    }

    fn end_bucket(&mut self) -> io::Result<()> {
        BoltWriter::end_bucket(self)
    }
}

/// Writes the `meta` bucket: the head's raft position and membership, and
/// `compact_revision` (the last compaction, which may be newer than the head's
/// when one happened while the records were written; see `detcd_core::node::portable`).
pub fn write_meta<S: BucketSink>(bolt: &mut S, head: &PortableHead, compact_revision: i64) -> io::Result<()> {
    let mut meta: BTreeMap<&[u8], Vec<u8>> = BTreeMap::new();
    meta.insert(CONSISTENT_INDEX, head.applied_index.to_be_bytes().to_vec());
    meta.insert(TERM, head.applied_term.to_be_bytes().to_vec());
    meta.insert(CONF_STATE, conf_state_json(&head.members).into_bytes());
    if compact_revision > 0 {
        let rev = Revision::new(compact_revision, 0).to_bytes(false);
        meta.insert(SCHEDULED_COMPACT_REV, rev.clone());
        meta.insert(FINISHED_COMPACT_REV, rev);
    }
    put_map(bolt, META_BUCKET, &meta)
}

/// Writes every bucket but `key` and `meta` from the export's head.
pub fn write_head<S: BucketSink>(bolt: &mut S, head: &PortableHead) -> io::Result<()> {
    let leases: BTreeMap<Vec<u8>, Vec<u8>> = head
        .leases
        .iter()
        .map(|&(id, ttl, remaining_ttl)| {
            let record = LeaseRecord {
                id,
                ttl,
                remaining_ttl,
            };
            ((id as u64).to_be_bytes().to_vec(), record.encode_to_vec())
        })
        .collect();
    put_map(bolt, LEASE_BUCKET, &leases)?;

    let auth: BTreeMap<&[u8], Vec<u8>> = [
        (AUTH_ENABLED, vec![u8::from(head.auth_enabled)]),
        (AUTH_REVISION, head.auth_revision.to_be_bytes().to_vec()),
    ]
    .into();
    put_map(bolt, AUTH_BUCKET, &auth)?;
    let users: BTreeMap<Vec<u8>, Vec<u8>> = head
        .users
        .iter()
        .map(|u| (u.name.clone(), u.encode_to_vec()))
        .collect();
    put_map(bolt, AUTH_USERS_BUCKET, &users)?;
    let roles: BTreeMap<Vec<u8>, Vec<u8>> = head
        .roles
        .iter()
        .map(|r| (r.name.clone(), r.encode_to_vec()))
        .collect();
    put_map(bolt, AUTH_ROLES_BUCKET, &roles)?;

    let members: BTreeMap<Vec<u8>, Vec<u8>> = head
        .members
        .iter()
        .map(|m| (format!("{:x}", m.id).into_bytes(), member_json(m).into_bytes()))
        .collect();
    put_map(bolt, MEMBERS_BUCKET, &members)?;
    let removed: BTreeMap<Vec<u8>, Vec<u8>> = head
        .removed_members
        .iter()
        .map(|id| (format!("{id:x}").into_bytes(), b"removed".to_vec()))
        .collect();
    put_map(bolt, MEMBERS_REMOVED_BUCKET, &removed)?;
    let cluster: BTreeMap<&[u8], Vec<u8>> = [(CLUSTER_VERSION, CLUSTER_VERSION_WRITTEN.to_vec())].into();
    put_map(bolt, CLUSTER_BUCKET, &cluster)?;
    let alarms: BTreeMap<Vec<u8>, Vec<u8>> = head
        .alarms
        .iter()
        .map(|&(member_id, alarm)| (AlarmMember { member_id, alarm }.encode_to_vec(), Vec::new()))
        .collect();
    put_map(bolt, ALARM_BUCKET, &alarms)
}

/// Writes a slice of the `key` bucket (opened by the caller with
/// `begin_bucket(KEY_BUCKET)`; records come in revision order).
pub fn write_records<S: BucketSink>(bolt: &mut S, records: &[PortableRecord]) -> io::Result<()> {
    for r in records {
        bolt.put(&r.backend_key, &r.value)?;
    }
    Ok(())
}

fn put_map<S: BucketSink, K: AsRef<[u8]>>(
    bolt: &mut S,
    name: &[u8],
    map: &BTreeMap<K, Vec<u8>>,
) -> io::Result<()> {
    bolt.begin_bucket(name)?;
    for (k, v) in map {
        bolt.put(k.as_ref(), v)?;
    }
    bolt.end_bucket()
}

/// A key and its value, as a bucket holds them.
type KeyValuePair = (Vec<u8>, Vec<u8>);

/// etcd's backend `Hash` (what Maintenance.Hash answers): a CRC-32C over each
/// bucket's name, then its keys and values, buckets in name order, leaving out
/// `meta`'s `consistent_index` (etcd's `DefaultIgnores`), computed from an
/// export as it is produced. Buckets may come in any order: each is held until
/// it can be hashed in its place, except `key`, the large one, which is hashed as
/// it streams (so every bucket named before `key` must come before it, as
/// [`write_head`] writes them).
#[derive(Debug, Default)]
pub struct BackendHasher {
    crc: Crc32c,
    held: BTreeMap<Vec<u8>, Vec<KeyValuePair>>,
    /// The last bucket hashed.
    hashed: Option<Vec<u8>>,
    /// The open bucket, and whether it streams into the hash.
    open: Option<(Vec<u8>, bool)>,
}

impl BackendHasher {
    fn hash_bucket(&mut self, name: &[u8]) -> io::Result<()> {
        if self.hashed.as_deref().is_some_and(|h| h >= name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "bucket {:?} came after it could be hashed",
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        self.crc.update(name);
        self.hashed = Some(name.to_vec());
        Ok(())
    }

    fn hash_pair(&mut self, bucket: &[u8], key: &[u8], value: &[u8]) {
        if bucket == META_BUCKET && key == CONSISTENT_INDEX {
            return;
        }
        self.crc.update(key);
        self.crc.update(value);
    }

    /// Hashes the held buckets named before `name` (all of them for `None`).
    fn flush_before(&mut self, name: Option<&[u8]>) -> io::Result<()> {
        let ready: Vec<Vec<u8>> = self
            .held
            .keys()
            .filter(|held| name.is_none_or(|n| held.as_slice() < n))
            .cloned()
            .collect();
        for bucket in ready {
            let pairs = self.held.remove(&bucket).unwrap_or_default();
            self.hash_bucket(&bucket)?;
            for (k, v) in pairs {
                self.hash_pair(&bucket, &k, &v);
            }
        }
        Ok(())
    }

    /// The hash, once every bucket has been given.
    pub fn finish(mut self) -> io::Result<u32> {
        if self.open.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a bucket is still open",
            ));
        }
        self.flush_before(None)?;
        Ok(self.crc.sum())
    }
}

impl BucketSink for BackendHasher {
    fn begin_bucket(&mut self, name: &[u8]) -> io::Result<()> {
        let streams = name == KEY_BUCKET;
        if streams {
            self.flush_before(Some(name))?;
            self.hash_bucket(name)?;
        } else {
            self.held.insert(name.to_vec(), Vec::new());
        }
        self.open = Some((name.to_vec(), streams));
        Ok(())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        match self.open.take() {
            Some((name, true)) => {
                self.hash_pair(&name, key, value);
                self.open = Some((name, true));
            }
            Some((name, false)) => {
                self.held
                    .entry(name.clone())
                    .or_default()
                    .push((key.to_vec(), value.to_vec()));
                self.open = Some((name, false));
            }
            None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "no bucket is open")),
        }
        Ok(())
    }

    fn end_bucket(&mut self) -> io::Result<()> {
        self.open
            .take()
            .map(|_| ())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no bucket is open"))
    }
}

/// etcd's backend `Hash` of a database file (see [`BackendHasher`]).
pub fn backend_hash(db: &BoltReader) -> Result<u32, BoltError> {
    let mut h = Crc32c::new();
    for name in db.buckets()? {
        h.update(&name);
        let is_meta = name == META_BUCKET;
        db.for_each(&name, &mut |k, v| {
            if !(is_meta && k == CONSISTENT_INDEX) {
                h.update(k);
                h.update(v);
            }
            Ok(())
        })?;
    }
    Ok(h.sum())
}

/// raftpb.ConfState as etcd 3.5 stores it (`json.Marshal`).
fn conf_state_json(members: &[Member]) -> String {
    let ids = |learner: bool| {
        members
            .iter()
            .filter(|m| m.is_learner == learner)
            .map(|m| m.id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let learners = ids(true);
    if learners.is_empty() {
        format!("{{\"voters\":[{}],\"auto_leave\":false}}", ids(false))
    } else {
        format!(
            "{{\"voters\":[{}],\"learners\":[{learners}],\"auto_leave\":false}}",
            ids(false)
        )
    }
}

/// A member as etcd's membership store writes it (`json.Marshal(Member)`).
fn member_json(m: &Member) -> String {
    let list = |urls: &[String]| urls.iter().map(|u| json_string(u)).collect::<Vec<_>>().join(",");
    let mut out = format!("{{\"id\":{},\"peerURLs\":[{}]", m.id, list(&m.peer_ur_ls));
    if !m.name.is_empty() {
        out.push_str(&format!(",\"name\":{}", json_string(&m.name)));
    }
    if !m.client_ur_ls.is_empty() {
        out.push_str(&format!(",\"clientURLs\":[{}]", list(&m.client_ur_ls)));
    }
    if m.is_learner {
        out.push_str(",\"isLearner\":true");
    }
    out.push('}');
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What `etcdctl snapshot status` reports about a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbStatus {
    /// CRC-32C over every bucket's name, then its keys and values, in order.
    pub hash: u32,
    /// The main revision of the last key in the `key` bucket.
    pub revision: i64,
    /// Keys in all buckets.
    pub total_keys: u64,
    /// The file's size as bbolt reports it.
    pub total_size: u64,
}

/// Computes [`DbStatus`] as etcd does.
pub fn db_status(db: &BoltReader) -> Result<DbStatus, BoltError> {
    let mut h = Crc32c::new();
    let mut revision = 0;
    let mut total_keys = 0;
    for name in db.buckets()? {
        h.update(&name);
        let is_key = name == KEY_BUCKET;
        db.for_each(&name, &mut |k, v| {
            h.update(k);
            h.update(v);
            if is_key {
                revision = parse_revision(k)?.0.main;
            }
            total_keys += 1;
            Ok(())
        })?;
    }
    Ok(DbStatus {
        hash: h.sum(),
        revision,
        total_keys,
        total_size: db.size_bytes(),
    })
}

/// A `key` bucket key: the revision and whether it marks a tombstone.
pub fn parse_revision(k: &[u8]) -> Result<(Revision, bool), BoltError> {
    let bad = || BoltError::Corrupt(format!("key bucket: bad revision key of {} bytes", k.len()));
    if (k.len() != 17 && k.len() != 18) || k[8] != b'_' || (k.len() == 18 && k[17] != b't') {
        return Err(bad());
    }
    let main = i64::from_be_bytes(k[0..8].try_into().expect("8 bytes"));
    let sub = i64::from_be_bytes(k[9..17].try_into().expect("8 bytes"));
    Ok((Revision::new(main, sub), k.len() == 18))
}

/// The state of an etcd database but its key space (read with [`for_each_record`]).
pub fn read_head(db: &BoltReader) -> Result<PortableHead, BoltError> {
    let corrupt = |what: &str| BoltError::Corrupt(what.to_string());
    let be_u64 = |v: Vec<u8>, what: &str| -> Result<u64, BoltError> {
        let bytes: [u8; 8] = v.try_into().map_err(|_| corrupt(what))?;
        Ok(u64::from_be_bytes(bytes))
    };
    let applied_index = match db.get(META_BUCKET, CONSISTENT_INDEX)? {
        Some(v) => be_u64(v, "meta: consistent_index")?,
        None => 0,
    };
    let applied_term = match db.get(META_BUCKET, TERM)? {
        Some(v) => be_u64(v, "meta: term")?,
        None => 0,
    };
    let compact_revision = match db.get(META_BUCKET, FINISHED_COMPACT_REV)? {
        Some(v) => parse_revision(&v)?.0.main,
        None => -1,
    };
    let mut leases = Vec::new();
    db.for_each(LEASE_BUCKET, &mut |_, v| {
        let l = LeaseRecord::decode(v).map_err(|e| corrupt(&format!("lease: {e}")))?;
        leases.push((l.id, l.ttl, l.remaining_ttl));
        Ok(())
    })?;
    leases.sort_unstable();
    let auth_enabled = db.get(AUTH_BUCKET, AUTH_ENABLED)?.is_some_and(|v| v == [1]);
    let auth_revision = match db.get(AUTH_BUCKET, AUTH_REVISION)? {
        Some(v) => be_u64(v, "auth: authRevision")?,
        None => 1,
    };
    let mut users = Vec::new();
    db.for_each(AUTH_USERS_BUCKET, &mut |_, v| {
        users.push(User::decode(v).map_err(|e| corrupt(&format!("authUsers: {e}")))?);
        Ok(())
    })?;
    let mut roles = Vec::new();
    db.for_each(AUTH_ROLES_BUCKET, &mut |_, v| {
        roles.push(Role::decode(v).map_err(|e| corrupt(&format!("authRoles: {e}")))?);
        Ok(())
    })?;
    let mut alarms = Vec::new();
    db.for_each(ALARM_BUCKET, &mut |k, _| {
        let a = AlarmMember::decode(k).map_err(|e| corrupt(&format!("alarm: {e}")))?;
        alarms.push((a.member_id, a.alarm));
        Ok(())
    })?;
    let mut last_record = None;
    db.for_each(KEY_BUCKET, &mut |k, _| {
        last_record = Some(parse_revision(k)?.0);
        Ok(())
    })?;
    let current_revision = last_record.map_or(1, |r| r.main).max(compact_revision).max(1);
    Ok(PortableHead {
        applied_index,
        applied_term,
        cluster_id: 0,
        // Membership comes from the restore's flags, as etcd's restore does.
        members: Vec::new(),
        removed_members: Vec::new(),
        alarms,
        leases,
        auth_enabled,
        auth_revision,
        users,
        roles,
        current_revision,
        compact_revision,
        last_record,
    })
}

/// Called with a record's revision, whether it is a tombstone, and its `KeyValue` bytes.
pub type RecordVisitor<'a> = dyn FnMut(Revision, bool, &[u8]) -> Result<(), BoltError> + 'a;

/// Calls `f` with each record of the `key` bucket, in revision order.
pub fn for_each_record(db: &BoltReader, f: &mut RecordVisitor<'_>) -> Result<(), BoltError> {
    db.for_each(KEY_BUCKET, &mut |k, v| {
        let (rev, tombstone) = parse_revision(k)?;
        f(rev, tombstone, v)
    })?;
    Ok(())
}
