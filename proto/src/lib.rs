//! detcd-proto: the etcd v3 wire types and detcd's internal raft and WAL messages.
//!
//! Every package mirrors the protobuf package of the same name. Message types are
//! plain prost structs usable without tonic; the gRPC service traits and clients
//! (`etcdserverpb::kv_server::KvServer`, `etcdserverpb::kv_client::KvClient`, ...)
//! appear with the `grpc` feature.
//!
//! The etcd packages (`mvccpb`, `authpb`, `etcdserverpb`, `v3lockpb`,
//! `v3electionpb`) sit side by side at the crate root because generated code names
//! other packages through `super::` paths (`super::mvccpb::KeyValue`). The standard
//! gRPC health package `grpc.health.v1` keeps its nesting and is re-exported as
//! [`health`].

#![allow(missing_docs, clippy::all, missing_debug_implementations)]

/// Raft log entries, messages, hard state and configuration changes.
pub mod raftpb {
    include!(concat!(env!("OUT_DIR"), "/raftpb.rs"));
}

/// Payloads of write-ahead-log records.
pub mod walpb {
    include!(concat!(env!("OUT_DIR"), "/walpb.rs"));
}

/// etcd's `mvccpb`: `KeyValue` and watch `Event`.
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// etcd's `authpb`: stored users, roles and permissions.
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// etcd's `etcdserverpb`: the KV, Watch, Lease, Cluster, Maintenance and Auth
/// services and their messages.
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// etcd's `v3lockpb`: the server-side Lock service.
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}

/// etcd's `v3electionpb`: the server-side Election service.
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}

/// detcd's internal formats: the replicated-request format (what members propose
/// through raft) and the peer wire format (what members send each other).
pub mod detcdpb {
    include!(concat!(env!("OUT_DIR"), "/detcdpb.rs"));
}

/// The `grpc` protobuf namespace; holds the standard health package.
pub mod grpc {
    /// The `grpc.health` namespace.
    pub mod health {
        /// The standard gRPC health-checking protocol, `grpc.health.v1`.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
        }
    }
}

/// `grpc.health.v1`, the standard gRPC health-checking protocol that etcd serves
/// on its client port.
pub use grpc::health::v1 as health;

/// The encoded `FileDescriptorSet` of every .proto file above (field names as written,
/// services, methods): what the JSON gateway maps JSON to and from messages with.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));
