//! Which client URLs the proxy forwards to (etcd 3.4's `httpproxy` director): the
//! list is asked again every refresh interval (every second while it is empty and the
//! interval is 30 s or more), shuffled so connections spread, and an endpoint a
//! request failed on is left out for the failure wait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::seq::SliceRandom;

/// etcd's default refresh interval, from which on an empty list is asked every second.
const DEFAULT_REFRESH: Duration = Duration::from_millis(30_000);

#[derive(Debug)]
struct Endpoint {
    url: String,
    available: bool,
}

/// The endpoints, shared by the refresh task and the requests.
#[derive(Debug, Clone)]
pub struct Director {
    endpoints: Arc<Mutex<Vec<Endpoint>>>,
    failure_wait: Duration,
}

impl Director {
    pub fn new(failure_wait: Duration) -> Director {
        Director {
            endpoints: Arc::new(Mutex::new(Vec::new())),
            failure_wait,
        }
    }

    /// Replaces the endpoints (all available again), in a random order.
    pub fn set(&self, mut urls: Vec<String>) {
        urls.shuffle(&mut rand::rng());
        let endpoints = urls
            .into_iter()
            .map(|url| Endpoint { url, available: true })
            .collect();
        *self.lock() = endpoints;
    }

    /// The available endpoints, in order.
    pub fn available(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|e| e.available)
            .map(|e| e.url.clone())
            .collect()
    }

    /// A request to `url` failed: it is left out for the failure wait.
    pub fn failed(&self, url: &str) {
        let mut endpoints = self.lock();
        let Some(e) = endpoints.iter_mut().find(|e| e.url == url && e.available) else {
            return;
        };
        e.available = false;
        drop(endpoints);
        crate::log(&format!("proxy: marked endpoint {url} unavailable"));
        let (director, url) = (self.clone(), url.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(director.failure_wait).await;
            if let Some(e) = director.lock().iter_mut().find(|e| e.url == url) {
                e.available = true;
            }
            crate::log(&format!(
                "proxy: marked endpoint {url} available, to retest connectivity"
            ));
        });
    }

    /// How long to wait before asking for the endpoints again.
    pub fn next_refresh(&self, interval: Duration) -> Duration {
        if interval >= DEFAULT_REFRESH && self.available().is_empty() {
            Duration::from_secs(1)
        } else {
            interval
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Endpoint>> {
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_endpoint_is_left_out_for_the_failure_wait() {
        let d = Director::new(Duration::from_millis(300));
        d.set(vec!["http://a".into(), "http://b".into()]);
        let mut all = d.available();
        all.sort();
        assert_eq!(all, ["http://a", "http://b"]);
        d.failed("http://a");
        assert_eq!(d.available(), ["http://b"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(d.available(), ["http://b"]);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut all = d.available();
        all.sort();
        assert_eq!(all, ["http://a", "http://b"]);
    }

    #[test]
    fn an_empty_list_is_asked_again_every_second_at_long_intervals() {
        let d = Director::new(Duration::from_millis(1));
        assert_eq!(d.next_refresh(DEFAULT_REFRESH), Duration::from_secs(1));
        assert_eq!(
            d.next_refresh(Duration::from_millis(200)),
            Duration::from_millis(200)
        );
        d.set(vec!["http://a".into()]);
        assert_eq!(d.next_refresh(DEFAULT_REFRESH), DEFAULT_REFRESH);
    }
}
