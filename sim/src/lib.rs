//! detcd-sim: the deterministic discrete-event simulator that drives whole clusters of
//! `core::node` through partitions, crashes and disk faults. Filled by the simulator issue.

/// Client-history checkers: the history recorder and the linearizability check of KV histories.
pub mod check;
