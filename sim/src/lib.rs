//! detcd-sim: the deterministic discrete-event simulator that drives whole clusters of
//! `core::node` through partitions, crashes and disk faults.
//!
//! - [`options`]: everything a run derives from its seed (swarm fault selection).
//! - [`sim`]: the cluster driver: members, network, disks, faults, in virtual time.
//! - [`workload`]: simulated clients recording into the checker's history.
//! - [`run`]: one seeded run through its phases and checks, and its report.
//! - [`storage`]: the server's storage code (`detcd-storage`) on the simulated disk.
//! - [`disk`]: a disk that separates written from durable bytes (and names) and tears on crash.
//! - [`invariants`]: raft invariants across the cluster after every step.
//! - [`watch_check`]: watch guarantees against the acknowledged writes.
//! - [`check`]: the history recorder and the linearizability checker.
//! - [`lock_check`]: lock safety (no overlapping tenures while leases live) for lock clients.
//! - [`lost_writes`]: lost writes resolved from a member's MVCC history before the check.
//! - [`queue`]: the virtual-time event queue.
//! - [`trace`]: the trace hash that proves determinism.
//! - [`mutations`]: the catalogue of planted bugs.
//! - [`v2_workload`], [`v2_dir_workload`], [`v2_check`]: v2 store requests (keys
//!   and a directory tree) and their checks (`--v2`); [`v2_lost`]: the tree's lost
//!   answers resolved from the members' v2 events before its check.
//! - [`recipe_workload`], [`recipe_check`]: Lock and Election sessions through core's
//!   recipe machines and their checks (`--recipes`).
//! - [`membership`]: the membership fault's operator (add learner, promote, remove).

/// Client-history checkers: the history recorder and the linearizability check of KV histories.
pub mod auth_check;
pub mod auth_workload;
pub mod check;
pub mod cluster;
pub mod corruption_check;
pub mod disk;
pub mod invariants;
pub mod lock_check;
pub mod lost_writes;
pub mod membership;
pub mod mutations;
pub mod options;
pub mod queue;
pub mod recipe_check;
pub mod recipe_workload;
pub mod run;
pub mod sim;
pub mod storage;
pub mod trace;
pub mod v2_check;
pub mod v2_dir_workload;
pub mod v2_lost;
pub mod v2_workload;
pub mod watch_check;
pub mod workload;
