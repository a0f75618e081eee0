//! The lessor: grant, revoke, keepalive and expiry of leases, with time as a parameter.
//!
//! This module owns every decision about leases that etcd's `server/lease` package
//! takes, as one pure state machine ([`Lessor`]). It never reads a clock: every
//! method that depends on time takes `now_ms`, the driver's monotonic milliseconds.
//! It owns no I/O either: what must be replicated (a server-chosen lease ID, an
//! expired lease to revoke, a checkpoint of a remaining TTL) comes back to the
//! caller, which proposes it through raft and applies it on every member.
//!
//! Two parts:
//! - [`lessor`]: the state machine and its configuration.
//! - [`snapshot`]: the deterministic byte form of the replicated lease state, for
//!   member snapshots.

pub mod lessor;
pub mod snapshot;

pub use lessor::{
    ttl_min_s, Checkpoint, Granted, LeaseId, Lessor, LessorConfig, Renewal, TimeToLive,
    CHECKPOINTS_PER_CALL_MAX_DEFAULT, CHECKPOINT_INTERVAL_MS_DEFAULT, EXPIRED_PER_CALL_MAX_DEFAULT,
    EXPIRED_RETRY_MS_DEFAULT, LEASE_TTL_MAX_S, NO_LEASE,
};
pub use snapshot::{SnapshotError, SNAPSHOT_VERSION};
