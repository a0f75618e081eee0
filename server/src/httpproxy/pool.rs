//! The proxy's connections to the members, kept for later requests as Go's transport
//! keeps them (etcd's proxy up to 128 idle ones per member): a request takes one that
//! is free now, or dials a new one; one still streaming an answer (a v2 watch) is
//! left alone, one the member closed is dropped.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Full;

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The most connections kept per endpoint (etcd's `DefaultMaxIdleConnsPerHost`).
const PER_ENDPOINT_MAX: usize = 128;

#[derive(Debug, Default)]
pub struct Pool {
    conns: Mutex<BTreeMap<String, Vec<Sender>>>,
}

impl Pool {
    /// A connection to `endpoint` free for a request now.
    pub fn take(&self, endpoint: &str) -> Option<Sender> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let list = conns.get_mut(endpoint)?;
        list.retain(|s| !s.is_closed());
        let free = list.iter().position(|s| s.is_ready());
        let taken = free.map(|i| list.swap_remove(i));
        if list.is_empty() {
            conns.remove(endpoint);
        }
        taken
    }

    /// Keeps a connection whose request was sent (free again once its answer is read).
    pub fn put(&self, endpoint: &str, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let list = conns.entry(endpoint.to_string()).or_default();
        list.retain(|s| !s.is_closed());
        if list.len() < PER_ENDPOINT_MAX {
            list.push(sender);
        }
    }

    /// Drops the connections to endpoints no longer in the cluster.
    pub fn keep_only(&self, endpoints: &[String]) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|e, _| endpoints.contains(e));
    }
}
