//! detcd-tests: end-to-end tests that run real `detcd` processes on loopback ports and
//! drive them with third-party clients (the `etcd-client` crate, the real etcdctl):
//! every RPC on 1- and 3-member clusters, etcdctl output against Debian's etcd, leader
//! failover, a learner walk-through, and SIGKILL of every member during writes.
//!
//! The tests are one integration binary (`tests/e2e.rs`, one link on small machines);
//! the server they start is this package's `detcd-e2e` binary, which runs the same
//! `detcd_server::cli::detcd_main` as `detcd`, so `cargo test` always runs a fresh build.
