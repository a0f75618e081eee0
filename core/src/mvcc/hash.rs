//! HashKV: a CRC-32C over the key space up to a revision, computed exactly as etcd's
//! `kvHasher` does over its backend, so members (and etcd itself) can be compared:
//! the bucket name `key`, then for each kept revision in order its backend key
//! (revision bytes, `t` appended for a tombstone) and its protobuf-encoded `KeyValue`.

use std::collections::BTreeSet;

use detcd_proto::etcdserverpb::HashKvResponse;
use detcd_proto::mvccpb::KeyValue;
use prost::Message;

use super::revision::Revision;
use super::store::{header, Store};
use crate::crc32c::Crc32c;
use crate::error::{self, EtcdError};

/// Name of etcd's key bucket, the first bytes hashed.
const KEY_BUCKET_NAME: &[u8] = b"key";

impl Store {
    /// Serves `HashKV` at `revision` (0 or less: the current revision).
    pub fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, EtcdError> {
        if revision > 0 && revision < self.compact_rev {
            return Err(error::COMPACTED);
        }
        if revision > 0 && revision > self.current_rev {
            return Err(error::FUTURE_REV);
        }
        let rev = if revision <= 0 { self.current_rev } else { revision };
        let keep: BTreeSet<Revision> = self.index.values().filter_map(|ki| ki.keep(rev)).collect();
        let mut h = Crc32c::new();
        h.update(KEY_BUCKET_NAME);
        for (r, rec) in self.records.range(..Revision::new(rev + 1, 0)) {
            if r.main < self.compact_rev + 1 && !keep.is_empty() && !keep.contains(r) {
                continue;
            }
            if r.main == self.compact_rev && rec.is_tombstone() {
                continue;
            }
            h.update(&r.to_bytes(rec.is_tombstone()));
            let stored = if rec.is_tombstone() {
                KeyValue {
                    key: rec.key.to_vec(),
                    ..Default::default()
                }
            } else {
                rec.to_kv(*r)
            };
            h.update(&stored.encode_to_vec());
        }
        Ok(HashKvResponse {
            header: header(self.current_rev),
            hash: h.sum(),
            compact_revision: self.compact_rev,
            hash_revision: rev,
        })
    }
}
