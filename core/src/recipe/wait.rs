//! etcd's `waitDeletes`: read the newest key under a prefix created at or before a
//! revision; while there is one, wait for its deletion and read again.

use detcd_proto::etcdserverpb::{RangeResponse, ResponseHeader};

use super::{by_create, revision_of};
use crate::node::Request;

/// The wait for every key under `prefix` created at or before `max_create_rev`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WaitDeletes {
    prefix: Vec<u8>,
    max_create_rev: i64,
}

/// What a read of the newest older key found.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Found {
    /// None left: the header of the read.
    Clear(Option<ResponseHeader>),
    /// `key` remains: wait for its deletion from `revision`.
    Older { key: Vec<u8>, revision: i64 },
}

impl WaitDeletes {
    pub(super) fn new(prefix: &[u8], max_create_rev: i64) -> Self {
        Self {
            prefix: prefix.to_vec(),
            max_create_rev,
        }
    }

    /// The read of the newest older key.
    pub(super) fn read(&self) -> Request {
        Request::Range(by_create(&self.prefix, false, self.max_create_rev))
    }

    /// What the read found.
    pub(super) fn found(newest: RangeResponse) -> Found {
        let revision = revision_of(newest.header.as_ref());
        match newest.kvs.into_iter().next() {
            None => Found::Clear(newest.header),
            Some(kv) => Found::Older {
                key: kv.key,
                revision,
            },
        }
    }
}
