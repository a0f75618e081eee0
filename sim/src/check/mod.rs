//! Checkers that judge a finished simulation run from the outside, as a client would: they
//! read what the workload recorded and never look inside the nodes.
//!
//! - [`history`]: the recorder the workload writes each KV request and its outcome into.
//! - [`linearizability`]: the generic Wing & Gong / Lowe search (Porcupine's algorithm) over
//!   any sequential [`linearizability::Model`].
//! - [`kv`]: etcd's single-key semantics as such a model, per-key partitioning, cross-key
//!   revision checks and readable violation reports. [`check_kv`] is the entry point.
//! - [`v2`]: the v2 store's single-key semantics as such a model, with the v2 workload's
//!   recorder ([`v2::V2LinHistory`]).
//! - [`v2_dir`]: the v2 store's directory semantics (a subtree as one partition) as
//!   such a model, with its recorder ([`v2_dir::DirLinHistory`]).

pub mod history;
pub mod kv;
pub mod linearizability;
pub mod v2;
pub mod v2_dir;

pub use history::{ClientId, History, KvOp, KvResult, OpId, Operation, Outcome};
pub use kv::{check_kv, CheckConfig, CheckOutcome, CheckReport, Violation, ViolationKind};
