//! detcd-sim: the deterministic discrete-event simulator that drives whole clusters of
//! `core::node` through partitions, crashes and disk faults.
//!
//! - [`options`]: everything a run derives from its seed (swarm fault selection).
//! - [`queue`]: the virtual-time event queue.
//! - [`disk`]: a disk that separates written from durable bytes and tears on crash.
//! - [`trace`]: the trace hash that proves determinism.
//! - [`mutations`]: the catalogue of planted bugs.

pub mod disk;
pub mod mutations;
pub mod options;
pub mod queue;
pub mod storage;
pub mod trace;
