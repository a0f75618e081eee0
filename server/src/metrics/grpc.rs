//! go-grpc-prometheus's server series, counted around every gRPC request.
//!
//! The code a request ends with is the `grpc-status` of its response headers (tonic
//! sends an error as a trailers-only response), else OK. A stream is counted as
//! handled, and its handling time taken, when its response starts; messages are
//! counted for unary calls (one each way), not per stream message.

use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The `grpc_server_*` series.
#[allow(missing_debug_implementations)]
pub struct GrpcMetrics {
    started: IntCounterVec,
    handled: IntCounterVec,
    received: IntCounterVec,
    sent: IntCounterVec,
    handling: Option<HistogramVec>,
}

/// go-grpc-prometheus's default buckets (Prometheus' `DefBuckets`).
const HANDLING_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

const LABELS: &[&str] = &["grpc_type", "grpc_service", "grpc_method"];

/// grpc-go's code names, by number.
const CODES: &[&str] = &[
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

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

impl GrpcMetrics {
    pub fn new(extensive: bool) -> GrpcMetrics {
        let with_code = ["grpc_type", "grpc_service", "grpc_method", "grpc_code"];
        GrpcMetrics {
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
        }
    }

    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.started.clone()))?;
        registry.register(Box::new(self.handled.clone()))?;
        registry.register(Box::new(self.received.clone()))?;
        registry.register(Box::new(self.sent.clone()))?;
        if let Some(h) = &self.handling {
            registry.register(Box::new(h.clone()))?;
        }
        Ok(())
    }
}

/// The go-grpc-prometheus type of an etcd method.
fn grpc_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") | ("grpc.health.v1.Health", "Watch") => "server_stream",
        _ => "unary",
    }
}

/// Counts a gRPC request around the rest of the stack.
pub async fn count(
    axum::extract::State(services): axum::extract::State<crate::grpc::Services>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_grpc = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !is_grpc {
        return next.run(request).await;
    }
    let path = request.uri().path().trim_start_matches('/').to_string();
    let (service, method) = path.split_once('/').unwrap_or((path.as_str(), ""));
    let kind = grpc_type(service, method);
    let labels = [kind, service, method];
    let m = &services.metrics().grpc;
    m.started.with_label_values(&labels).inc();
    if kind == "unary" {
        m.received.with_label_values(&labels).inc();
    }
    let start = Instant::now();
    let response = next.run(request).await;
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .and_then(|c| CODES.get(c))
        .copied()
        .unwrap_or("OK");
    if kind == "unary" && code == "OK" {
        m.sent.with_label_values(&labels).inc();
    }
    m.handled.with_label_values(&[kind, service, method, code]).inc();
    if let Some(h) = &m.handling {
        h.with_label_values(&labels)
            .observe(start.elapsed().as_secs_f64());
    }
    response
}
