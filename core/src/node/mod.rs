//! The etcd member: raft plus apply, pending client requests, reads and snapshots.
