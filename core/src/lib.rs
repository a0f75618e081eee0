//! detcd-core: every decision detcd takes, as pure deterministic state machines.
//!
//! Nothing in this crate reads a clock, draws OS randomness, touches files, sockets
//! or threads, or lets hash-map iteration order reach an output. Time arrives as a
//! parameter (`now_ms`, raft ticks as counts) and randomness from a seeded
//! [`rng::Rng`] owned by each state machine. The tidy test (`tests/tidy.rs`) keeps it
//! that way. The same code runs under the production driver (`detcd-io`) and the simulator
//! (`detcd-sim`).

pub mod auth;
pub mod crc32c;
pub mod error;
pub mod lease;
pub mod mutation;
pub mod mvcc;
pub mod node;
pub mod raft;
pub mod recipe;
pub mod rng;
pub mod v2store;
pub mod wal;
pub mod watch;
