//! Series the server's own handlers count: health checks, hashes, snapshots sent,
//! scrapes, and the process's file descriptors (etcd's `os_fd_*`).

use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// etcd's `ExponentialBuckets(.01, 2, 15)` (hash durations).
fn hash_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.01, 2.0, 15).expect("valid buckets")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric")
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid metric")
}

/// The handlers' series.
pub struct ServiceMetrics {
    pub(crate) health_success: IntCounter,
    pub(crate) health_failures: IntCounter,
    /// Maintenance/Hash.
    pub(crate) hash: Histogram,
    /// Maintenance/HashKV.
    pub(crate) hash_rev: Histogram,
    /// Maintenance/Snapshot: producing the database file it sends.
    pub(crate) snapshot: Histogram,
    scrapes_in_flight: IntGauge,
    scrapes: IntCounterVec,
}

impl ServiceMetrics {
    pub fn new() -> ServiceMetrics {
        ServiceMetrics {
            health_success: counter(
                "etcd_server_health_success",
                "The total number of successful health checks",
            ),
            health_failures: counter(
                "etcd_server_health_failures",
                "The total number of failed health checks",
            ),
            hash: histogram(
                "etcd_mvcc_hash_duration_seconds",
                "The latency distribution of storage hash operation.",
                hash_buckets(),
            ),
            hash_rev: histogram(
                "etcd_mvcc_hash_rev_duration_seconds",
                "The latency distribution of storage hash by revision operation.",
                hash_buckets(),
            ),
            snapshot: histogram(
                "etcd_disk_backend_snapshot_duration_seconds",
                "The latency distribution of backend snapshots.",
                prometheus::exponential_buckets(0.01, 2.0, 17).expect("valid buckets"),
            ),
            scrapes_in_flight: IntGauge::new(
                "promhttp_metric_handler_requests_in_flight",
                "Current number of scrapes being served.",
            )
            .expect("valid metric"),
            scrapes: IntCounterVec::new(
                Opts::new(
                    "promhttp_metric_handler_requests_total",
                    "Total number of scrapes by HTTP status code.",
                ),
                &["code"],
            )
            .expect("valid metric"),
        }
    }

    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.health_success.clone()))?;
        registry.register(Box::new(self.health_failures.clone()))?;
        registry.register(Box::new(self.hash.clone()))?;
        registry.register(Box::new(self.hash_rev.clone()))?;
        registry.register(Box::new(self.snapshot.clone()))?;
        registry.register(Box::new(self.scrapes_in_flight.clone()))?;
        registry.register(Box::new(self.scrapes.clone()))?;
        // promhttp shows the codes it can answer with from the start.
        for code in ["200", "500", "503"] {
            self.scrapes.with_label_values(&[code]);
        }
        registry.register(Box::new(ProcCollector::new()))?;
        Ok(())
    }

    /// Counts one scrape around `render`, as promhttp's handler does.
    pub(crate) fn scrape(&self, render: impl FnOnce() -> String) -> String {
        self.scrapes_in_flight.inc();
        let text = render();
        self.scrapes_in_flight.dec();
        self.scrapes.with_label_values(&["200"]).inc();
        text
    }
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        ServiceMetrics::new()
    }
}

/// Times one operation into `histogram` when dropped.
pub(crate) struct Timer<'a> {
    histogram: &'a Histogram,
    started: Instant,
}

impl<'a> Timer<'a> {
    pub(crate) fn start(histogram: &'a Histogram) -> Timer<'a> {
        Timer {
            histogram,
            started: Instant::now(),
        }
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

impl std::fmt::Debug for Timer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer").finish_non_exhaustive()
    }
}

/// What the `prometheus` crate's process collector leaves out: etcd's `os_fd_used`
/// and `os_fd_limit`, and Go's `process_virtual_memory_max_bytes`, read from /proc at
/// each scrape.
struct ProcCollector {
    fd_used: Gauge,
    fd_limit: Gauge,
    virtual_max: Gauge,
    descs: Vec<Desc>,
}

impl ProcCollector {
    fn new() -> ProcCollector {
        let gauge = |name: &str, help: &str| Gauge::new(name, help).expect("valid metric");
        let fd_used = gauge("os_fd_used", "The number of used file descriptors.");
        let fd_limit = gauge("os_fd_limit", "The file descriptor limit.");
        let virtual_max = gauge(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
        );
        let descs = [&fd_used, &fd_limit, &virtual_max]
            .iter()
            .flat_map(|g| g.desc())
            .cloned()
            .collect();
        ProcCollector {
            fd_used,
            fd_limit,
            virtual_max,
            descs,
        }
    }
}

/// The soft limit `name` of /proc/self/limits ("unlimited": the largest u64, as Go's
/// procfs reads it).
fn soft_limit(limits: &str, name: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    match line[name.len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX as f64),
        n => n.parse().ok(),
    }
}

impl Collector for ProcCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            self.fd_used.set(entries.count() as f64);
        }
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        if let Some(limit) = soft_limit(&limits, "Max open files") {
            self.fd_limit.set(limit);
        }
        if let Some(limit) = soft_limit(&limits, "Max address space") {
            self.virtual_max.set(limit);
        }
        [&self.fd_used, &self.fd_limit, &self.virtual_max]
            .iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}

impl std::fmt::Debug for ServiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMetrics").finish_non_exhaustive()
    }
}
