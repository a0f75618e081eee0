//! The one layer every request of the client port passes, gRPC and HTTP alike.
//!
//! It does, in this order, what three middlewares did: etcd's access controller for HTTP
//! requests ([`crate::http_access`]), the gRPC series for gRPC requests
//! ([`crate::metrics::grpc`]), then the request's credentials in scope for the rest of the
//! stack ([`crate::grpc::serve_with_credentials`]). One layer rather than three because
//! each axum middleware clones its state and boxes the inner service and its future for
//! every request; the client port's throughput is bound by that per-request CPU.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::grpc::Services;
use crate::http_access::AccessRules;

/// What the layer needs for every request.
#[derive(Debug)]
pub struct ClientLayer {
    services: Services,
    access: AccessRules,
}

impl ClientLayer {
    pub fn new(services: Services, access: AccessRules) -> ClientLayer {
        ClientLayer { services, access }
    }
}

/// Whether a request is gRPC (its content type `application/grpc...`): gRPC requests are
/// counted and pass the access controller untouched, HTTP ones the other way round.
pub fn is_grpc(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The middleware: access control (HTTP) or the gRPC series (gRPC), around the rest of
/// the stack served with the request's credentials.
pub async fn per_request(State(layer): State<Arc<ClientLayer>>, request: Request, next: Next) -> Response {
    let services = &layer.services;
    let inner = |request| crate::grpc::serve_with_credentials(services, request, next);
    if is_grpc(request.headers()) {
        crate::metrics::grpc::count(&services.metrics().grpc, request, inner).await
    } else {
        crate::http_access::control(&layer.access, request, inner).await
    }
}
