//! The v2 proxy's own `/metrics` (etcd 3.4's `proxy/httpproxy` series, served by the
//! proxy's listeners as etcd's `startProxy` does): requests by method, the ones a
//! member answered by method and status with their handling time, and the ones
//! dropped by method and why, with the process series.

use prometheus::{Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Why a request was dropped (etcd's `proxying_error` label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// No endpoint was available (answered 503).
    ZeroEndpoints,
    /// One endpoint failed (counted for each endpoint tried).
    FailedSendingRequest,
    /// Every endpoint failed (answered 502).
    FailedGettingResponse,
}

impl Dropped {
    fn label(self) -> &'static str {
        match self {
            Dropped::ZeroEndpoints => "zero_endpoints",
            Dropped::FailedSendingRequest => "failed_sending_request",
            Dropped::FailedGettingResponse => "failed_getting_response",
        }
    }
}

/// The proxy's series.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    incoming: IntCounterVec,
    handled: IntCounterVec,
    dropped: IntCounterVec,
    handling: HistogramVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name");
    // Registration fails only for duplicate names, which this fixed set has none of.
    let _ = registry.register(Box::new(c.clone()));
    c
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        crate::metrics::register_process(&registry);
        // etcd's buckets: 0.5 ms doubling up to 2.048 s.
        let buckets = prometheus::exponential_buckets(0.0005, 2.0, 13).expect("valid buckets");
        let handling = HistogramVec::new(
            HistogramOpts::new(
                "etcd_proxy_handling_duration_seconds",
                "Bucketed histogram of handling time of successful events (non-watches), by method (GET/PUT etc.).",
            )
            .buckets(buckets),
            &["method"],
        )
        .expect("valid metric name");
        let _ = registry.register(Box::new(handling.clone()));
        Metrics {
            incoming: counters(
                &registry,
                "etcd_proxy_requests_total",
                "Counter requests incoming by method.",
                &["method"],
            ),
            handled: counters(
                &registry,
                "etcd_proxy_handled_total",
                "Counter of requests fully handled (by authoratitave servers)",
                &["method", "code"],
            ),
            dropped: counters(
                &registry,
                "etcd_proxy_dropped_total",
                "Counter of requests dropped on the proxy.",
                &["method", "proxying_error"],
            ),
            handling,
            registry,
        }
    }

    /// A request to forward arrived.
    pub fn incoming(&self, method: &str) {
        self.incoming.with_label_values(&[method]).inc();
    }

    /// A member answered `status` after `seconds`.
    pub fn handled(&self, method: &str, status: u16, seconds: f64) {
        self.handled
            .with_label_values(&[method, &status.to_string()])
            .inc();
        self.handling.with_label_values(&[method]).observe(seconds);
    }

    pub fn dropped(&self, method: &str, why: Dropped) {
        self.dropped.with_label_values(&[method, why.label()]).inc();
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_etcds_names_labels_and_buckets() {
        let m = Metrics::new();
        m.incoming("PUT");
        m.handled("PUT", 201, 0.001);
        m.dropped("GET", Dropped::FailedSendingRequest);
        let text = m.render();
        assert!(
            text.contains("# TYPE etcd_proxy_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("etcd_proxy_requests_total{method=\"PUT\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("etcd_proxy_handled_total{code=\"201\",method=\"PUT\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "etcd_proxy_dropped_total{method=\"GET\",proxying_error=\"failed_sending_request\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE etcd_proxy_handling_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("etcd_proxy_handling_duration_seconds_bucket{method=\"PUT\",le=\"0.0005\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("etcd_proxy_handling_duration_seconds_bucket{method=\"PUT\",le=\"2.048\"} 1\n"),
            "{text}"
        );
    }
}
