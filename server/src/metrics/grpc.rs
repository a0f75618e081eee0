//! go-grpc-prometheus's server series and etcd's client gRPC series, counted by a
//! middleware around every gRPC request (a router layer, not the accept loop).
//!
//! Every method etcd's member registers is resolved once, at start-up, to its own
//! counters (go-grpc-prometheus pre-initializes them too, so they show at 0): a
//! request finds its method by a binary search of the sorted paths and touches only
//! atomics. Lock's and election's are resolved on their first use; other paths
//! (answered Unimplemented) are not counted.
//!
//! Messages and bytes are counted from the gRPC frames of the request and response
//! bodies ([`super::grpc_body`]); a call is handled, with the `grpc-status` it ends
//! with, when its response ends (a stream's trailers), and its handling time taken then.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

use super::grpc_body::{RequestCounter, ResponseCounter};

/// go-grpc-prometheus's default buckets (Prometheus' `DefBuckets`).
const HANDLING_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

const LABELS: &[&str] = &["grpc_type", "grpc_service", "grpc_method"];

/// grpc-go's code names, by number.
pub(crate) const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The code of a call that ended without a status (the client went away).
pub(crate) const CANCELED: usize = 1;
/// The code of a response that ended without `grpc-status`.
pub(crate) const UNKNOWN: usize = 2;

/// The methods etcd 3.4's member registers with go-grpc-prometheus: service,
/// method, and whether the client streams / the server streams.
const METHODS: &[(&str, &str, bool, bool)] = &[
    ("etcdserverpb.KV", "Range", false, false),
    ("etcdserverpb.KV", "Put", false, false),
    ("etcdserverpb.KV", "DeleteRange", false, false),
    ("etcdserverpb.KV", "Txn", false, false),
    ("etcdserverpb.KV", "Compact", false, false),
    ("etcdserverpb.Watch", "Watch", true, true),
    ("etcdserverpb.Lease", "LeaseGrant", false, false),
    ("etcdserverpb.Lease", "LeaseRevoke", false, false),
    ("etcdserverpb.Lease", "LeaseKeepAlive", true, true),
    ("etcdserverpb.Lease", "LeaseTimeToLive", false, false),
    ("etcdserverpb.Lease", "LeaseLeases", false, false),
    ("etcdserverpb.Cluster", "MemberAdd", false, false),
    ("etcdserverpb.Cluster", "MemberRemove", false, false),
    ("etcdserverpb.Cluster", "MemberUpdate", false, false),
    ("etcdserverpb.Cluster", "MemberList", false, false),
    ("etcdserverpb.Cluster", "MemberPromote", false, false),
    ("etcdserverpb.Maintenance", "Alarm", false, false),
    ("etcdserverpb.Maintenance", "Status", false, false),
    ("etcdserverpb.Maintenance", "Defragment", false, false),
    ("etcdserverpb.Maintenance", "Hash", false, false),
    ("etcdserverpb.Maintenance", "HashKV", false, false),
    ("etcdserverpb.Maintenance", "Snapshot", false, true),
    ("etcdserverpb.Maintenance", "MoveLeader", false, false),
    ("etcdserverpb.Auth", "AuthEnable", false, false),
    ("etcdserverpb.Auth", "AuthDisable", false, false),
    ("etcdserverpb.Auth", "Authenticate", false, false),
    ("etcdserverpb.Auth", "UserAdd", false, false),
    ("etcdserverpb.Auth", "UserGet", false, false),
    ("etcdserverpb.Auth", "UserList", false, false),
    ("etcdserverpb.Auth", "UserDelete", false, false),
    ("etcdserverpb.Auth", "UserChangePassword", false, false),
    ("etcdserverpb.Auth", "UserGrantRole", false, false),
    ("etcdserverpb.Auth", "UserRevokeRole", false, false),
    ("etcdserverpb.Auth", "RoleAdd", false, false),
    ("etcdserverpb.Auth", "RoleGet", false, false),
    ("etcdserverpb.Auth", "RoleList", false, false),
    ("etcdserverpb.Auth", "RoleDelete", false, false),
    ("etcdserverpb.Auth", "RoleGrantPermission", false, false),
    ("etcdserverpb.Auth", "RoleRevokePermission", false, false),
    ("grpc.health.v1.Health", "Check", false, false),
    ("grpc.health.v1.Health", "Watch", false, true),
];

/// Lock and election, served on the same port: etcd registers them after
/// go-grpc-prometheus initialized its series, so theirs appear on first use.
const LATER_METHODS: &[(&str, &str, bool, bool)] = &[
    ("v3lockpb.Lock", "Lock", false, false),
    ("v3lockpb.Lock", "Unlock", false, false),
    ("v3electionpb.Election", "Campaign", false, false),
    ("v3electionpb.Election", "Proclaim", false, false),
    ("v3electionpb.Election", "Leader", false, false),
    ("v3electionpb.Election", "Observe", false, true),
    ("v3electionpb.Election", "Resign", false, false),
];

/// go-grpc-prometheus's `grpc_type` label.
fn grpc_type(client_stream: bool, server_stream: bool) -> &'static str {
    match (client_stream, server_stream) {
        (false, false) => "unary",
        (true, false) => "client_stream",
        (false, true) => "server_stream",
        (true, true) => "bidi_stream",
    }
}

/// The client API versions resolved ahead (etcd's `client_requests_total` label).
const CLIENT_VERSIONS: &[&str] = &["3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "unknown"];

/// One method's series, resolved to their label values once.
#[allow(missing_debug_implementations)]
pub(crate) struct MethodSeries {
    pub(crate) started: IntCounter,
    pub(crate) received: IntCounter,
    pub(crate) sent: IntCounter,
    /// By code number.
    pub(crate) handled: Vec<IntCounter>,
    pub(crate) handling: Option<Histogram>,
    /// etcd's `client_requests_total` `type`: "unary" or "stream".
    pub(crate) stream: bool,
}

impl MethodSeries {
    fn new(m: &GrpcMetrics, service: &str, method: &str, kind: &'static str) -> MethodSeries {
        let labels = [kind, service, method];
        MethodSeries {
            started: m.started.with_label_values(&labels),
            received: m.received.with_label_values(&labels),
            sent: m.sent.with_label_values(&labels),
            handled: CODES
                .iter()
                .map(|code| m.handled.with_label_values(&[kind, service, method, code]))
                .collect(),
            handling: m.handling.as_ref().map(|h| h.with_label_values(&labels)),
            stream: kind != "unary",
        }
    }

    /// The call ended with grpc code `code` after `started`.
    pub(crate) fn finish(&self, code: usize, started: Instant) {
        if let Some(counter) = self.handled.get(code) {
            counter.inc();
        }
        if let Some(h) = &self.handling {
            h.observe(started.elapsed().as_secs_f64());
        }
    }
}

/// The `grpc_server_*` and `etcd_network_client_grpc_*` series, and etcd's
/// `etcd_server_client_requests_total`.
#[allow(missing_debug_implementations)]
pub struct GrpcMetrics {
    started: IntCounterVec,
    handled: IntCounterVec,
    received: IntCounterVec,
    sent: IntCounterVec,
    handling: Option<HistogramVec>,
    client_requests: IntCounterVec,
    /// `(path, series)` sorted by path, for every method of [`METHODS`].
    methods: Vec<(String, Arc<MethodSeries>)>,
    /// `(path, index in LATER_METHODS, series once used)`, sorted by path.
    later: Vec<(String, usize, OnceLock<Arc<MethodSeries>>)>,
    /// Per entry of [`CLIENT_VERSIONS`]: the unary and the stream counter.
    client_versions: Vec<[IntCounter; 2]>,
    pub(crate) received_bytes: IntCounter,
    pub(crate) sent_bytes: IntCounter,
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid metric")
}

impl GrpcMetrics {
    pub fn new(extensive: bool) -> GrpcMetrics {
        let with_code = ["grpc_type", "grpc_service", "grpc_method", "grpc_code"];
        let client_requests = counter_vec(
            "etcd_server_client_requests_total",
            "The total number of client requests per client version.",
            &["type", "client_api_version"],
        );
        let client_versions = CLIENT_VERSIONS
            .iter()
            .map(|v| {
                [
                    client_requests.with_label_values(&["unary", v]),
                    client_requests.with_label_values(&["stream", v]),
                ]
            })
            .collect();
        let mut metrics = GrpcMetrics {
            started: counter_vec(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                LABELS,
            ),
            handled: counter_vec(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &with_code,
            ),
            received: counter_vec(
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
                LABELS,
            ),
            sent: counter_vec(
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
                LABELS,
            ),
            handling: extensive.then(|| {
                HistogramVec::new(
                    HistogramOpts::new(
                        "grpc_server_handling_seconds",
                        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                    )
                    .buckets(HANDLING_BUCKETS.to_vec()),
                    LABELS,
                )
                .expect("valid metric")
            }),
            client_requests,
            methods: Vec::new(),
            later: Vec::new(),
            client_versions,
            received_bytes: counter(
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
            sent_bytes: counter(
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
        };
        let mut methods: Vec<(String, Arc<MethodSeries>)> = METHODS
            .iter()
            .map(|(service, method, cs, ss)| {
                let series = MethodSeries::new(&metrics, service, method, grpc_type(*cs, *ss));
                (format!("/{service}/{method}"), Arc::new(series))
            })
            .collect();
        methods.sort_by(|a, b| a.0.cmp(&b.0));
        metrics.methods = methods;
        let mut later: Vec<_> = LATER_METHODS
            .iter()
            .enumerate()
            .map(|(i, (service, method, _, _))| (format!("/{service}/{method}"), i, OnceLock::new()))
            .collect();
        later.sort_by(|a, b| a.0.cmp(&b.0));
        metrics.later = later;
        metrics
    }

    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.started.clone()))?;
        registry.register(Box::new(self.handled.clone()))?;
        registry.register(Box::new(self.received.clone()))?;
        registry.register(Box::new(self.sent.clone()))?;
        if let Some(h) = &self.handling {
            registry.register(Box::new(h.clone()))?;
        }
        registry.register(Box::new(self.client_requests.clone()))?;
        registry.register(Box::new(self.received_bytes.clone()))?;
        registry.register(Box::new(self.sent_bytes.clone()))?;
        Ok(())
    }

    /// The series of the method at `path` (`/service/method`); none for a path etcd
    /// serves no method at (answered Unimplemented, and not counted, as grpc-go does).
    fn series(&self, path: &str) -> Option<Arc<MethodSeries>> {
        if let Ok(i) = self.methods.binary_search_by(|(p, _)| p.as_str().cmp(path)) {
            return Some(self.methods[i].1.clone());
        }
        let i = self
            .later
            .binary_search_by(|(p, _, _)| p.as_str().cmp(path))
            .ok()?;
        let (_, index, series) = &self.later[i];
        let series = series.get_or_init(|| {
            let (service, method, cs, ss) = LATER_METHODS[*index];
            Arc::new(MethodSeries::new(self, service, method, grpc_type(cs, ss)))
        });
        Some(series.clone())
    }

    fn count_client_version(&self, version: &str, stream: bool) {
        let which = usize::from(stream);
        match CLIENT_VERSIONS.iter().position(|v| *v == version) {
            Some(i) => self.client_versions[i][which].inc(),
            None => self
                .client_requests
                .with_label_values(&[["unary", "stream"][which], version])
                .inc(),
        }
    }
}

/// The `grpc-status` of a header map, as a code number.
pub(crate) fn status_code(headers: &axum::http::HeaderMap) -> Option<usize> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Counts a gRPC request (the caller checked its content type,
/// [`crate::client_layer::is_grpc`]) around the rest of the stack, `inner`.
pub async fn count<F>(
    metrics: &Arc<GrpcMetrics>,
    request: axum::extract::Request,
    inner: impl FnOnce(axum::extract::Request) -> F,
) -> axum::response::Response
where
    F: std::future::Future<Output = axum::response::Response>,
{
    let Some(series) = metrics.series(request.uri().path()) else {
        return inner(request).await;
    };
    series.started.inc();
    let version = request
        .headers()
        .get("client-api-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    metrics.count_client_version(version, series.stream);
    let started = Instant::now();
    let request =
        request.map(|body| axum::body::Body::new(RequestCounter::new(body, series.clone(), metrics.clone())));
    let response = inner(request).await;
    if let Some(code) = status_code(response.headers()) {
        // Trailers-only: the call ended with its headers.
        series.finish(code, started);
        return response;
    }
    let metrics = metrics.clone();
    response.map(|body| axum::body::Body::new(ResponseCounter::new(body, series, metrics, started)))
}
