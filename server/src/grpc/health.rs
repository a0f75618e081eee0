//! `grpc.health.v1.Health`, which etcd registers on its client port: the overall
//! service (`""`) and each etcd service are SERVING while the member runs; other names
//! are NOT_FOUND, as grpc-go's health server answers.

use std::pin::Pin;

use detcd_proto::health::health_check_response::ServingStatus;
use detcd_proto::health::health_server::Health;
use detcd_proto::health::{HealthCheckRequest, HealthCheckResponse};
use tonic::codegen::tokio_stream::{self, Stream, StreamExt};
use tonic::{Request as Rpc, Response as Reply, Status};

use super::Services;

/// The service names the health service knows.
pub const SERVICE_NAMES: &[&str] = &[
    "",
    "etcdserverpb.KV",
    "etcdserverpb.Watch",
    "etcdserverpb.Lease",
    "etcdserverpb.Cluster",
    "etcdserverpb.Maintenance",
];

type HealthStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

fn check(service: &str) -> Result<HealthCheckResponse, Status> {
    if !SERVICE_NAMES.contains(&service) {
        return Err(Status::not_found("unknown service"));
    }
    Ok(HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    })
}

#[tonic::async_trait]
impl Health for Services {
    async fn check(&self, r: Rpc<HealthCheckRequest>) -> Result<Reply<HealthCheckResponse>, Status> {
        check(&r.into_inner().service).map(Reply::new)
    }

    type WatchStream = HealthStream;

    async fn watch(&self, r: Rpc<HealthCheckRequest>) -> Result<Reply<HealthStream>, Status> {
        let first = check(&r.into_inner().service).unwrap_or(HealthCheckResponse {
            status: ServingStatus::ServiceUnknown as i32,
        });
        // The status never changes while the member runs: one answer, then silence.
        let stream = tokio_stream::iter([Ok(first)]).chain(tokio_stream::pending());
        Ok(Reply::new(Box::pin(stream)))
    }
}
