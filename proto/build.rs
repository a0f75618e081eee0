//! Compiles the .proto files under `proto/` with protox (a pure-Rust protobuf
//! compiler, so no `protoc` is needed) and generates Rust with tonic-prost-build.
//! gRPC service code is generated only with the `grpc` feature.
//!
//! The etcd files sit at the same relative paths that etcd's own imports use
//! (`etcd/api/mvccpb/kv.proto`, ...), so file names in the descriptors match etcd's.

use std::path::PathBuf;

use prost::Message as _;

const PROTO_FILES: &[&str] = &[
    "raftpb.proto",
    "walpb.proto",
    "etcd/api/mvccpb/kv.proto",
    "etcd/api/authpb/auth.proto",
    "etcd/api/etcdserverpb/rpc.proto",
    "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
    "grpc/health/v1/health.proto",
    "detcd/raft_request.proto",
    "detcd/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    println!("cargo:rerun-if-changed={}", root.display());
    let files: Vec<PathBuf> = PROTO_FILES.iter().map(|f| root.join(f)).collect();
    let descriptors = protox::compile(&files, [&root])?;
    // The descriptors themselves, for the JSON gateway's reflection-driven mapping.
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("file_descriptor_set.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        .compile_fds(descriptors)?;
    Ok(())
}
