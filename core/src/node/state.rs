//! The member's application state as snapshot bytes: what a raft snapshot's `data`
//! holds, what a restart loads and what a lagging member installs.
//!
//! Layout (little-endian): the magic `detcdsnp`, a `u32` format version, then
//! length-prefixed (`u32`) sections: metadata, the lessor (its own codec), the
//! applied request IDs (see `applied_requests`), the auth store (its own codec,
//! from version 4), the v2 store (its own codec, from version 5), the member's v2
//! store statistics (from version 7); then the MVCC store (its own
//! checksummed codec) up to the last four bytes, which are a CRC-32C of every byte
//! before them. The store comes last, unprefixed, so it can be encoded in steps
//! straight into the output ([`StateEncoder`]). Versions 1 and 2 (store second,
//! length-prefixed; version 1 without request IDs), 3 (no auth store: auth
//! disabled, no users), 4 (no v2 store: an empty one), 5 (a v2 store without
//! the cluster version, numbered without the membership events etcd counts) and
//! 6 (no statistics: the member keeps the counts it has) still decode.
//!
//! The v2 statistics are this member's, not replicated state (plain gets count
//! where they are served): they are the one member-local section, apart from the
//! replicated ones, and no checker's comparison of members reads it (the simulator
//! compares the v2 store's own encoding). They are here because etcd's v2 store
//! snapshot holds them: a restart starts from the counts at the snapshot (and
//! counts the entries it replays again), and a member installing its leader's
//! snapshot takes the leader's counts, as etcd's `Recovery` does.
//!
//! A version 5 v2 store keeps the old numbering (the cluster's records take no
//! index) until the cluster version is set, which every member applies at the
//! same log index; so members restored from version 5 snapshots taken at
//! different indexes hold equal stores, and no index goes back or names another
//! event than before the restart (see `v2store::internal`, which also names the
//! one mixed case left unsupported). The numbering flag travels in the v2 store's
//! own section from version 7.
//! Metadata: applied index, applied term, cluster ID, approximate database size,
//! the members (each a length-prefixed `etcdserverpb.Member`), the removed member
//! IDs and the active alarms. Decoding checks the magic, version and checksum
//! before it reads anything else, and each section's own codec checks it again.

use std::collections::{BTreeMap, BTreeSet};

use detcd_proto::etcdserverpb::Member;
use prost::Message;

use super::applied_requests::AppliedRequests;
use crate::auth::AuthStore;
use crate::crc32c;
use crate::lease::{Lessor, LessorConfig};
use crate::mvcc::snapshot::SnapshotEncoder;
use crate::mvcc::Store;
use crate::rng::Rng;
use crate::v2store::{Stats as V2Stats, Store as V2Store};

const MAGIC: &[u8; 8] = b"detcdsnp";
/// Version of this layout; bumped on any change.
pub const STATE_FORMAT_VERSION: u32 = 7;
/// The oldest version [`decode`] still reads.
const STATE_FORMAT_VERSION_MIN: u32 = 1;

/// The replicated state of a member at one applied index.
#[derive(Clone, Debug)]
pub(crate) struct State {
    pub(crate) applied_index: u64,
    pub(crate) applied_term: u64,
    pub(crate) cluster_id: u64,
    pub(crate) db_size_bytes: u64,
    pub(crate) members: BTreeMap<u64, Member>,
    pub(crate) removed: BTreeSet<u64>,
    /// (member ID, etcd `AlarmType` number).
    pub(crate) alarms: BTreeSet<(u64, i32)>,
    pub(crate) store: Store,
    pub(crate) lessor: Lessor,
    pub(crate) applied_requests: AppliedRequests,
    pub(crate) auth: AuthStore,
    pub(crate) v2: V2Store,
    /// This member's v2 store statistics when it wrote the snapshot (from
    /// version 7; member-local, see the module's notes).
    pub(crate) v2_stats: Option<V2Stats>,
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).expect("section under 4 GiB").to_le_bytes());
}

fn put_section(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Encodes a member's state a slice at a time: the small parts at once, the
/// store's records in steps (see [`crate::mvcc::snapshot::SnapshotEncoder`]).
#[derive(Debug)]
pub(crate) struct StateEncoder {
    store: SnapshotEncoder,
}

/// Starts encoding the parts of a member's state (borrowed, so nothing is cloned).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encoder(
    applied_index: u64,
    applied_term: u64,
    cluster_id: u64,
    db_size_bytes: u64,
    members: &BTreeMap<u64, Member>,
    removed: &BTreeSet<u64>,
    alarms: &BTreeSet<(u64, i32)>,
    store: &Store,
    lessor: &Lessor,
    applied_requests: &AppliedRequests,
    auth: &AuthStore,
    v2: &V2Store,
    v2_stats: &V2Stats,
) -> StateEncoder {
    let mut meta = Vec::new();
    for n in [applied_index, applied_term, cluster_id, db_size_bytes] {
        meta.extend_from_slice(&n.to_le_bytes());
    }
    put_u32(&mut meta, members.len());
    for m in members.values() {
        put_section(&mut meta, &m.encode_to_vec());
    }
    put_u32(&mut meta, removed.len());
    for id in removed {
        meta.extend_from_slice(&id.to_le_bytes());
    }
    put_u32(&mut meta, alarms.len());
    for (id, alarm) in alarms {
        meta.extend_from_slice(&id.to_le_bytes());
        meta.extend_from_slice(&alarm.to_le_bytes());
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&STATE_FORMAT_VERSION.to_le_bytes());
    put_section(&mut out, &meta);
    put_section(&mut out, &lessor.to_bytes());
    let mut requests = Vec::new();
    applied_requests.encode(&mut requests);
    put_section(&mut out, &requests);
    let mut auth_bytes = Vec::new();
    auth.encode(&mut auth_bytes);
    put_section(&mut out, &auth_bytes);
    let mut v2_bytes = Vec::new();
    v2.encode(&mut v2_bytes);
    put_section(&mut out, &v2_bytes);
    let mut stats_bytes = Vec::new();
    v2_stats.encode(&mut stats_bytes);
    put_section(&mut out, &stats_bytes);
    StateEncoder {
        store: store.snapshot_encoder_after(out),
    }
}

impl StateEncoder {
    /// Encodes about `budget_bytes` more; true when done. `store` is the store the
    /// encoder started from, uncompacted since.
    pub(crate) fn step(&mut self, store: &Store, budget_bytes: usize) -> bool {
        self.store.step(store, budget_bytes)
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        let (mut out, sum) = self.store.finish_with_outer_crc();
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!("truncated at byte {}", self.at));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn section(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()?;
        self.take(n)
    }
}

/// Decodes state bytes written by [`encode`].
pub(crate) fn decode(bytes: &[u8], lessor_config: LessorConfig, rng: Rng) -> Result<State, String> {
    if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a detcd state snapshot (bad magic)".to_string());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 4);
    let sum = u32::from_le_bytes(sum.try_into().expect("4 bytes"));
    if crc32c::checksum(body) != sum {
        return Err("checksum mismatch".to_string());
    }
    let mut r = Reader {
        bytes: body,
        at: MAGIC.len(),
    };
    let version = r.u32()? as u32;
    if !(STATE_FORMAT_VERSION_MIN..=STATE_FORMAT_VERSION).contains(&version) {
        return Err(format!("unknown format version {version}"));
    }
    let meta = r.section()?;
    let mut auth_bytes = None;
    let mut v2_bytes = None;
    let mut stats_bytes = None;
    let (store_bytes, lessor_bytes, requests_bytes) = if version >= 3 {
        let lessor_bytes = r.section()?;
        let requests_bytes = r.section()?;
        if version >= 4 {
            auth_bytes = Some(r.section()?);
        }
        if version >= 5 {
            v2_bytes = Some(r.section()?);
        }
        if version >= 7 {
            stats_bytes = Some(r.section()?);
        }
        (&body[r.at..], lessor_bytes, Some(requests_bytes))
    } else {
        let store_bytes = r.section()?;
        let lessor_bytes = r.section()?;
        let requests_bytes = if version >= 2 { Some(r.section()?) } else { None };
        if r.at != body.len() {
            return Err("trailing bytes".to_string());
        }
        (store_bytes, lessor_bytes, requests_bytes)
    };
    let mut m = Reader { bytes: meta, at: 0 };
    let applied_index = m.u64()?;
    let applied_term = m.u64()?;
    let cluster_id = m.u64()?;
    let db_size_bytes = m.u64()?;
    let mut members = BTreeMap::new();
    for _ in 0..m.u32()? {
        let member = Member::decode(m.section()?).map_err(|e| format!("member: {e}"))?;
        members.insert(member.id, member);
    }
    let mut removed = BTreeSet::new();
    for _ in 0..m.u32()? {
        removed.insert(m.u64()?);
    }
    let mut alarms = BTreeSet::new();
    for _ in 0..m.u32()? {
        let id = m.u64()?;
        alarms.insert((id, m.i32()?));
    }
    let store = Store::from_snapshot(store_bytes).map_err(|e| format!("mvcc: {e}"))?;
    let lessor = Lessor::from_bytes(lessor_config, rng, lessor_bytes).map_err(|e| format!("lease: {e}"))?;
    let applied_requests = match requests_bytes {
        Some(bytes) => AppliedRequests::decode(bytes)?,
        None => AppliedRequests::default(),
    };
    let auth = match auth_bytes {
        Some(bytes) => AuthStore::decode(bytes)?,
        None => AuthStore::default(),
    };
    let v2 = match v2_bytes {
        Some(bytes) if version >= 7 => V2Store::decode(bytes)?,
        Some(bytes) if version == 6 => V2Store::decode_format_6(bytes)?,
        Some(bytes) => V2Store::decode_without_cluster_version(bytes)?,
        None => V2Store::default(),
    };
    let v2_stats = stats_bytes.map(V2Stats::decode).transpose()?;
    Ok(State {
        applied_index,
        applied_term,
        cluster_id,
        db_size_bytes,
        members,
        removed,
        alarms,
        store,
        lessor,
        applied_requests,
        auth,
        v2,
        v2_stats,
    })
}
