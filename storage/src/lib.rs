//! detcd-storage: a member's durable state, written once for production and the
//! simulator: the write-ahead log's segment files, the snapshot files, and the
//! start-up that puts them back together.
//!
//! The code is written against the small file-system interface [`Fs`]; the
//! server runs it over real files (`detcd-io`), the simulator over its simulated
//! disk (`detcd-sim`), so the recovery a server runs is the recovery the
//! simulator crashes. The decisions about bytes (record framing, CRC chaining,
//! torn versus corrupt) are `detcd_core::wal`'s.
//!
//! # Data directory layout
//!
//! ```text
//! <data-dir>/
//!   member/
//!     wal/
//!       LOCK                                    lock held by the running member
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
//! - [`fs`]: the interface both file systems implement.
//! - [`storage`]: [`Storage::open`] (recovery of snapshot + WAL) and the write
//!   calls a Persist and a snapshot need.
//! - [`pass`]: the storage pass: how the disk work a storage thread takes in one
//!   go becomes records, one write and at most one sync, and what is then
//!   durable (the server's storage thread and the simulator both run it).
//! - [`wal`]: segments, appends, sync, cuts, release.
//! - [`snap`]: snapshot files: format, names, choice, purge.
//! - [`error`]: typed errors (naming file and offset) and warnings.
//! - [`bolt`]: a bbolt database writer and reader (etcd's snapshot file format).
//! - [`etcd_db`]: etcd's backend schema in such a file (buckets, keys, values).
//!
//! # Durability rules this crate keeps
//!
//! - A record is acknowledged only after [`Wal::sync`] returns.
//! - A segment is durable before the next one exists; new files are written in a
//!   temp file, synced, renamed, and the directory synced.
//! - A snapshot file is durable before the WAL marker that names it is written;
//!   WAL segments and older snapshot files are released only after that marker is
//!   durable.
//! - Only a torn tail of the last segment is repaired (zeroed); any other damage
//!   stops start-up with [`StorageError`] naming the file and offset.
//! - A failed sync poisons the WAL: restart and recover, never retry.

pub mod bolt;
pub mod error;
pub mod etcd_db;
pub mod etcd_wal;
pub mod fs;
pub mod pass;
pub mod snap;
pub mod storage;
pub mod wal;

mod segment;

pub use error::{io_err, StorageError, Warning};
pub use fs::Fs;
pub use pass::{save_in_line, PassReport, PersistPass, Work, WrittenPass};
pub use snap::Snapshotter;
pub use storage::{Recovered, Storage, StorageOptions};
pub use wal::{Wal, WalOptions, WalStats};
