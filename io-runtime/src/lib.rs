//! detcd-io: the I/O half of detcd. This crate owns everything that touches the
//! disk (and, later, the network and the clock): the memory-mapped write-ahead
//! log, snapshot files, and the recovery that reads them back. The decisions
//! about bytes (record framing, CRC chaining, torn-versus-corrupt) are made by
//! `detcd_core::wal`, which the simulator runs too; this crate maps files, orders
//! writes and syncs. It also holds the tokio driver of `core::node` ([`driver`])
//! and the peer transport ([`transport`]).
//!
//! The storage code itself (WAL, snapshot files, recovery, the data directory
//! layout) is `detcd-storage`'s, shared with the simulator; this crate runs it
//! over real files ([`fs::RealFs`]) and names the production types here.
//!
//! # Modules
//!
//! - [`driver`]: [`driver::start`] runs a member: the node's task, its
//!   [`driver::MemberHandle`] for the gRPC services, storage and transport work.
//! - [`transport`]: framed TCP between members (handshake, batching, backoff).
//! - [`metrics`]: the member's counters; [`mod@log`]: leveled stderr lines.
//! - [`fs`]: the storage code's file-system interface over real files.
//! - [`storage`], [`wal`], [`snap`], [`error`]: `detcd-storage`'s modules, with
//!   their types fixed to real files ([`Storage`], [`Wal`], [`Snapshotter`]).
//! - [`group_commit`]: many writers, one sync.
//! - [`fuzz_support`]: the decode body shared by the fuzz target and its corpus test.
//!
//! The durability rules are `detcd-storage`'s (see its crate documentation).

pub mod driver;
pub mod fs;
pub mod fuzz_support;
pub mod go_json;
pub mod group_commit;
pub mod log;
pub mod metrics;
pub mod time_text;
pub mod transport;

pub use detcd_storage::error;
pub use error::{StorageError, Warning};
pub use group_commit::{CommitAck, CommitError, GroupCommitOptions, GroupCommitStats, GroupCommitter};
pub use snap::Snapshotter;
pub use storage::{Recovered, Storage, StorageOptions};
pub use wal::{Wal, WalOptions, WalStats};

/// Snapshot files on real files (see `detcd_storage::snap`).
pub mod snap {
    pub use detcd_storage::snap::{decode, encode, snapshot_file_name, SnapshotFile, MAX_SNAPSHOTS_DEFAULT};
    /// The snapshot files of one directory on real files.
    pub type Snapshotter = detcd_storage::Snapshotter<crate::fs::RealFs>;
}

/// A member's durable state on real files (see `detcd_storage::storage`).
pub mod storage {
    pub use detcd_storage::storage::{Recovered, StorageOptions};
    /// The WAL and snapshot files of `<data-dir>/member/` on real files.
    pub type Storage = detcd_storage::Storage<crate::fs::RealFs>;
}

/// The write-ahead log on real files (see `detcd_storage::wal`).
pub mod wal {
    pub use detcd_storage::wal::{WalOptions, WalStats};
    /// The write-ahead log of one directory on real files.
    pub type Wal = detcd_storage::Wal<crate::fs::RealFs>;
}
