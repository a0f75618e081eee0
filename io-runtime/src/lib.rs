//! detcd-io: the I/O half of detcd. This crate owns everything that touches the
//! disk (and, later, the network and the clock): the memory-mapped write-ahead
//! log, snapshot files, and the recovery that reads them back. The decisions
//! about bytes (record framing, CRC chaining, torn-versus-corrupt) are made by
//! `detcd_core::wal`, which the simulator runs too; this crate maps files, orders
//! writes and syncs. It also holds the tokio driver of `core::node` ([`driver`])
//! and the peer transport ([`transport`]).
//!
//! # Data directory layout
//!
//! ```text
//! <data-dir>/
//!   member/
//!     wal/
//!       LOCK                                    flock held by the running member
//!       0000000000000000-0000000000000000.wal   segments: <seq>-<first index>, hex,
//!       0000000000000001-00000000000003e9.wal   each preallocated to 64,000,000 bytes
//!       segment.wal.tmp                         the next segment, being zero-filled
//!     snap/
//!       0000000000000002-00000000000003e8.snap  snapshots: <term>-<index>, hex;
//!       0000000000000002-00000000000007d0.snap  the newest --max-snapshots kept
//!       ....snap.broken                         a snapshot that failed its checksum
//! ```
//!
//! # Modules
//!
//! - [`driver`]: [`driver::start`] runs a member: the node's task, its
//!   [`driver::MemberHandle`] for the gRPC services, storage and transport work.
//! - [`transport`]: framed TCP between members (handshake, batching, backoff).
//! - [`metrics`]: the member's counters; [`log`]: leveled stderr lines.
//! - [`storage`]: [`Storage::open`] (recovery of snapshot + WAL) and the write
//!   calls a node driver makes.
//! - [`wal`]: segments, appends, sync, cuts, release.
//! - [`group_commit`]: many writers, one sync.
//! - [`snap`]: snapshot files.
//! - [`error`]: typed errors (naming file and offset) and warnings.
//! - [`fuzz_support`]: the decode body shared by the fuzz target and its corpus test.
//!
//! # Durability rules this crate keeps
//!
//! - A record is acknowledged only after [`Wal::sync`] returns (msync(MS_SYNC) of
//!   the dirty range of the preallocated segment).
//! - A segment is durable before the next one exists; new files are written in a
//!   temp file, fsynced, renamed, and the directory fsynced.
//! - Only a torn tail of the last segment is repaired (zeroed); any other damage
//!   stops start-up with [`StorageError`] naming the file and offset.
//! - A failed sync poisons the WAL: restart and recover, never retry.

pub mod driver;
pub mod error;
pub mod fuzz_support;
pub mod group_commit;
pub mod log;
pub mod metrics;
pub mod snap;
pub mod storage;
pub mod transport;
pub mod wal;

mod fsutil;
mod segment;

pub use error::{StorageError, Warning};
pub use group_commit::{CommitAck, CommitError, GroupCommitOptions, GroupCommitStats, GroupCommitter};
pub use snap::Snapshotter;
pub use storage::{Recovered, Storage, StorageOptions};
pub use wal::{Wal, WalOptions, WalStats};
