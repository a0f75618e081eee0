//! detcd-server: the etcd v3 gRPC services, HTTP endpoints and configuration, and the
//! `detcd` and `detcdctl` binaries.
//!
//! So far it holds the configuration (`config`: etcd's flags, `ETCD_*` variables and YAML
//! file, validated and turned into member and cluster IDs) and the client (`ctl`:
//! detcdctl). The services arrive with `core::node`.

pub mod config;
pub mod ctl;
pub mod sha1;
pub mod sha256;
pub mod urls;
