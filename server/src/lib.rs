//! detcd-server: the etcd v3 gRPC services, HTTP endpoints and configuration, and the
//! `detcd` and `detcdctl` binaries. Filled by the server issue.
