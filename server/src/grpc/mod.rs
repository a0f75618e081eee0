//! etcd's gRPC services on top of a running member ([`MemberHandle`]).
//!
//! What it owns and why it exists: moving requests and responses between tonic and the
//! driver. Every decision about a request (checks, errors, learner rules, forwarding) is
//! taken by `core::node`; the services only pick the [`Request`] variant, unwrap the
//! matching [`Response`] variant and turn an [`EtcdError`] into a `tonic::Status` with the
//! same code and message. The streaming RPCs (Watch, LeaseKeepAlive, Snapshot) are the
//! only places with logic of their own: how a gRPC stream maps onto driver calls.
//!
//! One file per etcd service: [`kv`], [`watch`], [`lease`], [`cluster`], [`maintenance`],
//! [`auth`], the standard [`health`] service, and etcd's [`lock`] and [`election`]
//! services, built on [`recipe`] (concurrency's mutex and election over the member).
//!
//! Who a request comes from: [`serve_with_credentials`] (in the client port's
//! per-request layer, [`crate::client_layer`], and as [`with_credentials`] around the
//! HTTP gateway's calls) scopes the token of a request's `token` or `authorization`
//! header for the task serving it; [`Services::call`] hands it to the member with the
//! request.

pub mod auth;
pub mod cluster;
pub mod election;
pub mod health;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod recipe;
pub mod snapshot_export;
pub mod watch;

use detcd_core::error::{self as etcd_error, EtcdError};
use detcd_core::node::{Credentials, Request, Response};
use detcd_io::driver::MemberHandle;
use detcd_proto::etcdserverpb::ResponseHeader;

use crate::auth_token::TokenProvider;

/// Bytes a gRPC message may exceed `--max-request-bytes` by (etcd's `grpcOverheadBytes`).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// The services' shared state: the member they serve. Cloned for every request (each
/// service and the per-request layer hold one), so it is one `Arc`: a clone is one
/// reference count, not a clone of every field.
#[derive(Clone, Debug)]
pub struct Services(std::sync::Arc<Shared>);

/// What [`Services`] shares; read through `Deref`, set by the `with_*` builders.
#[derive(Clone, Debug)]
pub struct Shared {
    handle: MemberHandle,
    /// `--bcrypt-cost`.
    bcrypt_cost: u32,
    /// `--auth-token`.
    tokens: std::sync::Arc<TokenProvider>,
    /// The member's Prometheus registry (`/metrics`).
    metrics: crate::metrics::ServerMetrics,
    /// `--client-cert-auth`: a verified client certificate's common name is the
    /// user of a request that brings no token.
    client_cert_auth: bool,
    /// Where Snapshot writes its export file before streaming it: the data
    /// directory (the system's temporary directory when not set).
    scratch_dir: std::path::PathBuf,
}

impl std::ops::Deref for Services {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

tokio::task_local! {
    /// The credentials of the request the current task serves.
    static CREDENTIALS: Credentials;
}

/// The credentials of the request being served (none outside [`with_credentials`]).
pub fn current_credentials() -> Credentials {
    CREDENTIALS.try_with(Credentials::clone).unwrap_or_default()
}

/// etcd's token lookup: metadata `token`, else `authorization` without a
/// `Bearer ` prefix; what it says is the provider's to decide.
pub fn credentials_from(headers: &axum::http::HeaderMap, tokens: &TokenProvider) -> Credentials {
    let token = headers
        .get("token")
        .or_else(|| headers.get(axum::http::header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok());
    match token {
        Some(t) => tokens.credentials(t.strip_prefix("Bearer ").unwrap_or(t)),
        None => Credentials::None,
    }
}

/// Middleware: serves the request with its credentials in scope.
pub async fn with_credentials(
    axum::extract::State(services): axum::extract::State<Services>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    serve_with_credentials(&services, request, next).await
}

/// Runs the rest of the stack (`next`) for `request` with its credentials in scope
/// (what [`with_credentials`] does, for the client port's one per-request layer).
pub async fn serve_with_credentials(
    services: &Services,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut credentials = credentials_from(request.headers(), &services.tokens);
    if credentials == Credentials::None && services.client_cert_auth {
        credentials = certificate_credentials(request.extensions());
    }
    CREDENTIALS.scope(credentials, next.run(request)).await
}

/// etcd's `AuthInfoFromTLS`: the common name of the connection's verified client
/// certificate is the user, at the member's current auth revision.
fn certificate_credentials(extensions: &axum::http::Extensions) -> Credentials {
    match extensions
        .get::<crate::serve::ClientConnInfo>()
        .and_then(|info| info.cert_common_name.clone())
    {
        Some(user) => Credentials::Verified { user, revision: None },
        None => Credentials::None,
    }
}

impl Services {
    pub fn new(handle: MemberHandle) -> Services {
        Services(std::sync::Arc::new(Shared {
            bcrypt_cost: crate::config::BCRYPT_COST_DEFAULT,
            tokens: std::sync::Arc::new(TokenProvider::Simple),
            metrics: crate::metrics::ServerMetrics::new(
                handle.clone(),
                false,
                detcd_core::node::config::QUOTA_BACKEND_BYTES_DEFAULT,
            ),
            client_cert_auth: false,
            scratch_dir: std::env::temp_dir(),
            handle,
        }))
    }

    /// The shared state to set (the builders run before any clone is taken).
    fn shared_mut(&mut self) -> &mut Shared {
        std::sync::Arc::make_mut(&mut self.0)
    }

    /// With the metrics of `--metrics` (`extensive`: the gRPC handling-time histogram)
    /// and the backend quota in force.
    pub fn with_metrics(mut self, extensive: bool, quota_bytes: u64) -> Services {
        self.shared_mut().metrics =
            crate::metrics::ServerMetrics::new(self.handle.clone(), extensive, quota_bytes);
        self
    }

    /// The member's Prometheus registry.
    pub fn metrics(&self) -> &crate::metrics::ServerMetrics {
        &self.metrics
    }

    /// `--client-cert-auth`: requests without a token are served as the common
    /// name of their verified client certificate (etcd's certificate auth).
    pub fn with_client_cert_auth(mut self, on: bool) -> Services {
        self.shared_mut().client_cert_auth = on;
        self
    }

    /// Snapshot exports go to `dir` (the member's data directory, so that a large
    /// one needs no room elsewhere); files a stopped process left there are removed.
    pub fn with_scratch_dir(mut self, dir: std::path::PathBuf) -> Services {
        let removed = snapshot_export::remove_stale_exports(&dir);
        if removed > 0 {
            crate::log(&format!(
                "removed {removed} unfinished snapshot export file(s) from {}",
                dir.display()
            ));
        }
        self.shared_mut().scratch_dir = dir;
        self
    }

    /// The `--auth-token` provider.
    pub fn with_tokens(mut self, tokens: TokenProvider) -> Services {
        self.shared_mut().tokens = std::sync::Arc::new(tokens);
        self
    }

    /// The bcrypt cost new password hashes use (`--bcrypt-cost`).
    pub fn with_bcrypt_cost(mut self, cost: u32) -> Services {
        self.shared_mut().bcrypt_cost = cost;
        self
    }

    pub fn handle(&self) -> &MemberHandle {
        &self.handle
    }

    /// Serves `request` as the current request's user, turning an etcd error
    /// into its gRPC status.
    async fn call(&self, request: Request) -> Result<Response, tonic::Status> {
        self.handle
            .call_as(request, current_credentials())
            .await
            .map_err(status)
    }

    /// A header for answers the node does not make itself (keepalive of an unknown
    /// lease, Defragment): this member, the last term it saw, no revision.
    fn header(&self) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.handle.cluster_id(),
            member_id: self.handle.member_id(),
            revision: 0,
            raft_term: self.handle.metrics().term,
        }
    }

    /// etcd's `hasleader` check (clients' `WithRequireLeader`, which etcdctl's watch
    /// uses): a stream that asks for a leader fails at once without one.
    fn check_require_leader<T>(&self, request: &tonic::Request<T>) -> Result<(), tonic::Status> {
        let wants_leader = request
            .metadata()
            .get(REQUIRE_LEADER_KEY)
            .is_some_and(|v| v.as_bytes() == b"true");
        if wants_leader && !self.handle.metrics().has_leader {
            return Err(status(etcd_error::NO_LEADER));
        }
        Ok(())
    }
}

/// gRPC metadata key of etcd's `WithRequireLeader` (`rpctypes.MetadataRequireLeaderKey`).
const REQUIRE_LEADER_KEY: &str = "hasleader";

/// An etcd error as the gRPC status etcd sends: same code, same message.
pub fn status(e: EtcdError) -> tonic::Status {
    tonic::Status::new(tonic::Code::from_i32(e.code as i32), e.message)
}

/// The status for a response variant that does not match its request: a broken
/// invariant between the driver and the node, reported instead of panicking a task.
fn mismatch(rpc: &str) -> tonic::Status {
    tonic::Status::internal(format!(
        "detcd: the member answered {rpc} with another response type"
    ))
}

/// `Ok(tonic::Response)` of variant `$variant` of a node [`Response`].
macro_rules! unwrap_response {
    ($result:expr, $variant:ident) => {
        match $result? {
            detcd_core::node::Response::$variant(r) => Ok(tonic::Response::new(r)),
            _ => Err($crate::grpc::mismatch(stringify!($variant))),
        }
    };
}
pub(crate) use unwrap_response;
