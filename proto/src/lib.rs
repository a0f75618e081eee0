//! detcd-proto: the etcd v3 wire types and detcd's internal raft and WAL messages.
//!
//! Every package mirrors the protobuf package of the same name. Message types are
//! plain prost structs usable without tonic; the gRPC service traits and clients
//! appear with the `grpc` feature.

#![allow(missing_docs, clippy::all, missing_debug_implementations)]

/// Raft log entries, messages, hard state and configuration changes.
pub mod raftpb {
    include!(concat!(env!("OUT_DIR"), "/raftpb.rs"));
}

/// Payloads of write-ahead-log records.
pub mod walpb {
    include!(concat!(env!("OUT_DIR"), "/walpb.rs"));
}
