//! `/metrics`: etcd's Prometheus series, through the `prometheus` crate.
//!
//! - The member's own counters ([`detcd_io::metrics::Metrics`], a snapshot the driver
//!   publishes) become etcd's `etcd_server_*`, `etcd_mvcc_*`, `etcd_disk_*` and
//!   `etcd_network_*` series at each scrape ([`member`]).
//! - The peer transport's per-peer counters become etcd's `etcd_network_peer_*`,
//!   `etcd_network_*_peers*` and `etcd_network_snapshot_*` series ([`network`]).
//! - The gRPC series (`grpc_server_*`, as go-grpc-prometheus names them) are counted by
//!   a middleware around every gRPC request ([`grpc`]); the handling-time histogram only
//!   with `--metrics extensive`, as etcd.
//! - The handlers' own series (health checks, hashes, snapshots, scrapes) and
//!   `os_fd_*` ([`service`]).
//! - `process_*` comes from the crate's process collector.
//!
//! The README lists the etcd series detcd does not provide and why.

pub mod grpc;
mod grpc_body;
pub mod member;
pub mod network;
pub mod service;
pub mod v2store;

use std::sync::Arc;

use detcd_io::driver::MemberHandle;
use prometheus::{Encoder as _, Registry, TextEncoder};

/// Adds the `process_*` series (the crate's process collector, on Linux) to `registry`.
pub fn register_process(registry: &Registry) {
    #[cfg(target_os = "linux")]
    let _ = registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ));
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}

/// One member's registry.
#[derive(Clone)]
pub struct ServerMetrics {
    registry: Registry,
    pub(crate) grpc: Arc<grpc::GrpcMetrics>,
    pub(crate) service: Arc<service::ServiceMetrics>,
    /// What the v2 HTTP handlers count (waits, auth-switch lookups).
    v2_local: crate::v2::LocalStats,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetrics").finish_non_exhaustive()
    }
}

impl ServerMetrics {
    /// The registry for the member behind `handle`; `extensive` adds the gRPC
    /// handling-time histogram (`--metrics extensive`); `quota_bytes` is the backend
    /// quota in force.
    pub fn new(handle: MemberHandle, extensive: bool, quota_bytes: u64) -> ServerMetrics {
        let registry = Registry::new();
        let grpc = Arc::new(grpc::GrpcMetrics::new(extensive));
        // Registration fails only for duplicate names, which this fixed set has none of.
        let _ = grpc.register(&registry);
        let service = Arc::new(service::ServiceMetrics::new());
        let _ = service.register(&registry);
        let v2_local = crate::v2::LocalStats::default();
        let _ = registry.register(Box::new(member::MemberCollector::new(
            handle,
            quota_bytes,
            v2_local.clone(),
        )));
        register_process(&registry);
        ServerMetrics {
            registry,
            grpc,
            service,
            v2_local,
        }
    }

    /// The v2 handlers' own counts, shown by `/v2/stats/store` and as series.
    pub fn v2_local(&self) -> &crate::v2::LocalStats {
        &self.v2_local
    }

    /// Every series in the Prometheus text format.
    pub fn render(&self) -> String {
        self.service.scrape(|| {
            let mut out = Vec::new();
            let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
            String::from_utf8(out).unwrap_or_default()
        })
    }
}
