//! The v2 store's counts as etcd 3.4's `etcd_debugging_store_*` series (the same
//! counts `/v2/stats/store` shows): reads and writes by action, expired keys, wait
//! requests and the waits held.
//!
//! etcd's labelled counters show an action once it was counted; here every action
//! is shown from the start, at 0 until counted, so the families are there on a
//! member that has served no v2 request (etcd's own member writes its membership
//! to its v2 store, so etcd shows some at once).

use detcd_io::metrics::V2Counts;
use prometheus::proto::{MetricFamily, MetricType};

use super::member::{counter, family, gauge, metric};

/// What the v2 HTTP handlers count beside the node (see `v2::stats::LocalStats`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Local {
    /// Waits held now.
    pub watchers: u64,
    /// Waits asked for.
    pub watch_requests: u64,
}

fn by_action(name: &str, help: &str, counts: &[(&str, u64)]) -> MetricFamily {
    family(
        name,
        help,
        MetricType::COUNTER,
        counts
            .iter()
            .map(|(action, n)| metric(&[("action", action)], *n as f64, MetricType::COUNTER))
            .collect(),
    )
}

/// etcd's `etcd_debugging_store_*` series.
pub fn families(v2: &V2Counts, local: &Local) -> Vec<MetricFamily> {
    let s = &v2.stats;
    let gets = s.gets_success + s.gets_fail;
    vec![
        by_action(
            "etcd_debugging_store_reads_total",
            "Total number of reads action by (get/getRecursive), local to this member.",
            &[
                ("get", gets.saturating_sub(v2.gets_recursive)),
                ("getRecursive", v2.gets_recursive),
            ],
        ),
        by_action(
            "etcd_debugging_store_writes_total",
            "Total number of writes (e.g. set/compareAndDelete) seen by this member.",
            &[
                ("set", s.sets_success + s.sets_fail),
                ("delete", s.delete_success + s.delete_fail),
                ("update", s.update_success + s.update_fail),
                ("create", s.create_success + s.create_fail),
                (
                    "compareAndSwap",
                    s.compare_and_swap_success + s.compare_and_swap_fail,
                ),
                (
                    "compareAndDelete",
                    s.compare_and_delete_success + s.compare_and_delete_fail,
                ),
            ],
        ),
        counter(
            "etcd_debugging_store_expires_total",
            "Total number of expired keys.",
            s.expire_count,
        ),
        counter(
            "etcd_debugging_store_watch_requests_total",
            "Total number of incoming watch requests (new or reestablished).",
            local.watch_requests,
        ),
        gauge(
            "etcd_debugging_store_watchers",
            "Count of currently active watchers.",
            local.watchers as f64,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder as _, TextEncoder};

    use super::*;

    #[test]
    fn reads_split_by_recursion_and_writes_count_failures_too() {
        let mut v2 = V2Counts::default();
        v2.stats.gets_success = 3;
        v2.stats.gets_fail = 1;
        v2.gets_recursive = 2;
        v2.stats.sets_success = 4;
        v2.stats.sets_fail = 1;
        v2.stats.expire_count = 7;
        let local = Local {
            watchers: 2,
            watch_requests: 5,
        };
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families(&v2, &local), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        for want in [
            "etcd_debugging_store_reads_total{action=\"get\"} 2",
            "etcd_debugging_store_reads_total{action=\"getRecursive\"} 2",
            "etcd_debugging_store_writes_total{action=\"set\"} 5",
            "etcd_debugging_store_writes_total{action=\"compareAndDelete\"} 0",
            "etcd_debugging_store_expires_total 7",
            "etcd_debugging_store_watch_requests_total 5",
            "etcd_debugging_store_watchers 2",
        ] {
            assert!(text.lines().any(|l| l == want), "{want} missing from\n{text}");
        }
    }
}
