//! The grpc-proxy's `/metrics`: etcd's cache series (`etcd_grpc_proxy_cache_*`) and
//! detcd's own counts of what coalescing saves (client watchers against upstream watches,
//! shared keepalives), with the process series.

use prometheus::{Encoder as _, IntCounter, IntGauge, Registry, TextEncoder};

use super::upstream::MetricsTarget;

/// The proxy's series.
#[derive(Clone)]
pub struct ProxyMetrics {
    registry: Registry,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    pub cache_keys: IntGauge,
    /// Client watchers being served.
    pub watchers: IntGauge,
    /// Upstream watches open (one per broadcast).
    pub upstream_watches: IntGauge,
    /// Client watchers that joined an upstream watch already open.
    pub watchers_coalesced: IntCounter,
    /// etcd's: client watchers beyond the first of each upstream watch.
    pub watchers_coalescing: IntGauge,
    /// etcd's: events sent to client watchers beyond the first of each upstream watch.
    pub events_coalescing: IntCounter,
    /// Client renewals answered by a renewal already in flight.
    pub keepalives_coalesced: IntCounter,
}

impl std::fmt::Debug for ProxyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyMetrics").finish_non_exhaustive()
    }
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric name");
    // Registration fails only for duplicate names, which this fixed set has none of.
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric name");
    let _ = registry.register(Box::new(g.clone()));
    g
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyMetrics {
    pub fn new() -> ProxyMetrics {
        let registry = Registry::new();
        crate::metrics::register_process(&registry);
        ProxyMetrics {
            cache_hits: counter(
                &registry,
                "etcd_grpc_proxy_cache_hits_total",
                "Total number of cache hits",
            ),
            cache_misses: counter(
                &registry,
                "etcd_grpc_proxy_cache_misses_total",
                "Total number of cache misses",
            ),
            cache_keys: gauge(
                &registry,
                "etcd_grpc_proxy_cache_keys_total",
                "Total number of keys/ranges cached",
            ),
            watchers: gauge(
                &registry,
                "detcd_grpc_proxy_watchers",
                "Client watchers the proxy serves",
            ),
            upstream_watches: gauge(
                &registry,
                "detcd_grpc_proxy_upstream_watches",
                "Watches the proxy holds open on the cluster for its client watchers",
            ),
            watchers_coalesced: counter(
                &registry,
                "detcd_grpc_proxy_watchers_coalesced_total",
                "Client watchers that joined an upstream watch already open",
            ),
            watchers_coalescing: gauge(
                &registry,
                "etcd_grpc_proxy_watchers_coalescing_total",
                "Total number of current watchers coalescing",
            ),
            events_coalescing: counter(
                &registry,
                "etcd_grpc_proxy_events_coalescing_total",
                "Total number of events coalescing",
            ),
            keepalives_coalesced: counter(
                &registry,
                "detcd_grpc_proxy_keepalives_coalesced_total",
                "Lease renewals answered by a renewal of the same lease already in flight",
            ),
            registry,
        }
    }

    /// Sets etcd's coalescing gauge from the watcher and upstream watch counts.
    pub fn watchers_changed(&self) {
        self.watchers_coalescing
            .set(self.watchers.get() - self.upstream_watches.get());
    }

    /// Every series in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// How long the relay waits for one endpoint's `/metrics`.
const RELAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// etcd's proxy `/metrics`: the upstream members' metrics, relayed from an
/// endpoint's `/metrics`, with the TLS the proxy's gRPC calls to it use (etcd's
/// proxy makes its HTTP client from the same `--cacert`, `--cert` and `--key`;
/// for a bare `host:port` it picks https when the request to the proxy came over
/// TLS, detcd when its upstream is TLS, which is where the member's port is). The
/// proxy's own series are at `/proxy/metrics`. etcd asks one endpoint, drawn at
/// start, and answers Go's 500 "Internal server error" when it fails; detcd asks
/// the endpoints in turn from the one calls go to now, and answers that 500 only
/// when none answers.
pub async fn relay(targets: &[MetricsTarget], first: usize) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let n = targets.len();
    for i in 0..n {
        let target = &targets[(first + i) % n];
        let Ok(url) = crate::discovery::http::HttpUrl::parse(&target.url) else {
            continue;
        };
        let mut client = crate::discovery::http::Client::new("").expect("no proxy");
        if let Some(config) = &target.tls {
            client = client.with_tls(config.clone());
        }
        if let Ok(Ok(answer)) = tokio::time::timeout(RELAY_TIMEOUT, client.send("GET", &url, None)).await {
            return ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], answer.body).into_response();
        }
    }
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
        ],
        "Internal server error\n",
    )
        .into_response()
}
