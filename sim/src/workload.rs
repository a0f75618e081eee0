//! Simulated clients: each issues one request at a time, waits for the answer or
//! its own timeout, and on an error or timeout switches to another member, as
//! etcd's clientv3 balancer does. Every single-key KV operation is recorded in the
//! checker's [`History`] with its invoke and complete times (virtual
//! microseconds); timeouts and Unavailable errors are unknown outcomes, other
//! errors definite failures.
//!
//! Lease keys (`lease/...`) and watches are kept out of the KV history (a revoke
//! deletes keys the single-key model cannot see) and checked on their own: a key
//! put with a lease that was then revoked must be gone on a linearizable read;
//! watch sessions go to the watch checker.
//!
//! - [`client`]: one client's state and its loop (pick a member, send, time out, rotate).
//! - [`mix`]: the request mix a client draws its next KV, lease or compaction request from.
//! - [`watch`]: watch sessions: their creation, their events, their end.
//! - [`answer`]: what an answer does to the client, the history and the lease check.
//! - [`outcome`]: requests without an answer: unknown outcomes, definite failures, the counts.
//! - [`probe`]: the liveness probe.
//! - [`auth_v2`]: the auth and v2 workloads' turns in a client's requests.

mod answer;
mod auth_v2;
mod client;
mod mix;
mod outcome;
mod probe;
mod watch;

use detcd_core::rng::Rng;

use crate::auth_workload::AuthWorkload;
use crate::check::history::History;
use crate::options::Options;
use crate::recipe_workload::RecipeWorkload;
use crate::v2_workload::V2Workload;
use crate::watch_check::WatchSession;

use client::Client;
pub use probe::ProbeState;

/// All clients and what they recorded.
#[derive(Debug)]
pub struct Workload {
    pub(crate) rng: Rng,
    clients: Vec<Client>,
    pub history: History,
    pub sessions: Vec<WatchSession>,
    pub lease_failures: Vec<String>,
    /// Whether clients start new operations.
    pub active: bool,
    pub ops_started: u64,
    pub ops_ok: u64,
    pub ops_unknown: u64,
    /// Lost writes resolved from the store before the check.
    pub lost_writes: crate::lost_writes::Resolved,
    pub ops_failed: u64,
    /// The liveness probe: (put acknowledged at, read acknowledged at).
    pub probe: Option<ProbeState>,
    /// The auth workload, with `--auth`: client 0 is its admin.
    pub auth: Option<AuthWorkload>,
    /// The v2 workload, with `--v2`.
    pub v2: Option<V2Workload>,
    /// The Lock and Election workload, with `--recipes`.
    pub recipes: Option<RecipeWorkload>,
}

impl Workload {
    pub fn new(opts: &Options, rng: Rng) -> Workload {
        Workload {
            rng,
            clients: (0..opts.clients)
                .map(|i| Client {
                    target: i,
                    ..Default::default()
                })
                .collect(),
            active: true,
            auth: opts.auth.then(AuthWorkload::new),
            v2: opts.v2.then(V2Workload::default),
            recipes: opts.recipes.then(RecipeWorkload::default),
            ..Workload::empty()
        }
    }

    /// A workload with no clients, standing in while the real one acts.
    pub(crate) fn empty() -> Workload {
        Workload {
            rng: Rng::new(0),
            clients: Vec::new(),
            history: History::new(),
            sessions: Vec::new(),
            lease_failures: Vec::new(),
            active: false,
            ops_started: 0,
            ops_ok: 0,
            ops_unknown: 0,
            lost_writes: Default::default(),
            ops_failed: 0,
            probe: None,
            auth: None,
            v2: None,
            recipes: None,
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Adds a final client that reads every key linearizably (with retries).
    pub fn add_final_reader(&mut self, keys: usize) -> usize {
        let finals = (0..keys)
            .map(|k| format!("k{k}").into_bytes())
            .chain([b"kprobe".to_vec()])
            .collect();
        self.clients.push(Client {
            target: self.clients.len(),
            finals,
            ..Default::default()
        });
        self.clients.len() - 1
    }

    pub fn finals_left(&self) -> usize {
        self.clients.iter().map(|c| c.finals.len()).sum()
    }

    pub fn inflight(&self) -> usize {
        self.clients.iter().filter(|c| c.inflight.is_some()).count()
    }
}
