//! The multi-version key-value store (etcd's `server/storage/mvcc` plus the KV apply
//! logic of `server/etcdserver/txn`), as a pure state machine.
//!
//! What each part owns:
//! * [`revision`]: the `(main, sub)` revision and its backend byte encoding.
//! * [`key_index`]: one key's history as generations (etcd's `keyIndex`): versions,
//!   create revisions, what compaction keeps.
//! * [`key_range`]: etcd's key-range rules (`range_end` empty, `"\0"`, or an end).
//! * [`store`]: the index of all keys plus the revision storage, and Range, Put,
//!   DeleteRange, Compact, history for watchers; the store's revision counters.
//! * [`txn`]: Txn validation (op limit, duplicate keys), compares, nested execution.
//! * [`hash`]: HashKV, bit-compatible with etcd's.
//! * [`snapshot`]: the store to checksummed bytes and back.
//!
//! Requests and responses are etcd's wire types. Responses carry only
//! `header.revision`; the member fills cluster, member ID and raft term. Writes return
//! the events they produced so the watch hub can be fed. Errors are
//! [`crate::error::EtcdError`] values with etcd's code and message, and a call that
//! returns one has changed nothing.

pub mod hash;
pub mod key_index;
pub mod key_range;
pub mod revision;
pub mod snapshot;
pub mod store;
pub mod txn;

pub use key_range::{in_range, prefix_end};
pub use revision::Revision;
pub use snapshot::SnapshotError;
pub use store::{Applied, Store, StoreConfig, TXN_OPS_MAX_DEFAULT};
