//! One simulated client: what it is waiting for, and its loop. On each wake it
//! either times out its request (an unknown outcome, then the next member) or
//! picks its next request, from the probe, the final reads, the side workloads or
//! the request mix, and sends it to its member.

use std::collections::BTreeMap;

use detcd_core::node::{Credentials, Request};

use super::Workload;
use crate::auth_workload::AuthPending;
use crate::check::history::{KvOp, OpId};
use crate::cluster::{Cluster, Route};
use crate::v2_workload::V2Pending;

/// What a client is waiting for.
#[derive(Clone, Debug)]
pub(super) enum Pending {
    Kv(OpId),
    Serializable,
    LeaseGrant,
    LeasePut {
        lease: i64,
        key: Vec<u8>,
    },
    LeaseRevoke {
        key: Vec<u8>,
    },
    LeaseCheck {
        key: Vec<u8>,
    },
    Compact,
    WatchCreate {
        session: usize,
    },
    /// The auth workload's admin or user request (`--auth`).
    Auth(AuthPending),
    /// A v2 workload request (`--v2`).
    V2(V2Pending),
    /// A request of `client`'s Lock or Election session (`--recipes`).
    Recipe {
        client: usize,
    },
}

/// A request to send: what it asks, what the client then waits for, whether it
/// is a serializable read, and whose credentials it carries.
pub(super) type Outgoing = (Request, Pending, bool, Credentials);

#[derive(Clone, Debug)]
pub(super) struct InFlight {
    pub(super) request_id: u64,
    pub(super) member: u64,
    pub(super) pending: Pending,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Client {
    pub(super) target: usize,
    pub(super) inflight: Option<InFlight>,
    pub(super) token: u64,
    pub(super) seq: u64,
    pub(super) mod_revs: BTreeMap<Vec<u8>, i64>,
    pub(super) last_revision: i64,
    pub(super) lease: Option<i64>,
    pub(super) lease_key: Option<Vec<u8>>,
    pub(super) watch: Option<(u64, usize)>,
    /// Keys still to read in the final phase (final client only).
    pub(super) finals: Vec<Vec<u8>>,
    /// The liveness probe client.
    pub(super) probe: bool,
}

impl Workload {
    fn client_timeout_us(&self, sim: &impl Cluster, client: usize) -> u64 {
        if self.clients[client].probe {
            return 2 * sim.opts().election_timeout_ms() * 1000;
        }
        (sim.opts()
            .request_timeout_ms
            .max(sim.opts().election_timeout_ms())
            + 2 * sim.opts().election_timeout_ms())
            * 1000
    }

    /// Starts every client.
    pub(crate) fn start_workload(&mut self, sim: &mut impl Cluster) {
        for c in 0..self.clients() {
            let at = sim.now_us() + sim.rng().range(0, 10_000);
            sim.wake_client(c, at, 0);
        }
    }

    /// Wakes `client` at `at`; any wake scheduled before is void.
    pub(super) fn wake_at(&mut self, sim: &mut impl Cluster, client: usize, at: u64) {
        let c = &mut self.clients[client];
        c.token += 1;
        let token = c.token;
        sim.wake_client(client, at, token);
    }

    /// Wakes `client` now (used to start the final reader).
    pub(crate) fn schedule_wake_now(&mut self, sim: &mut impl Cluster, client: usize) {
        let now = sim.now_us();
        self.wake_at(sim, client, now);
    }

    /// Wakes `client` after a think time for its next request.
    pub(super) fn think(&mut self, sim: &mut impl Cluster, client: usize) {
        let think_max = sim.opts().think_ms_max * 1000 + 1;
        let think = sim.rng().range(0, think_max);
        let at = sim.now_us() + think;
        self.wake_at(sim, client, at);
    }

    /// Switches `client` to the next member.
    pub(super) fn rotate(&mut self, client: usize) {
        self.clients[client].target += 1;
    }

    pub(crate) fn client_wake(&mut self, sim: &mut impl Cluster, client: usize, token: u64) {
        if self.clients[client].token != token {
            return;
        }
        if let Some(inflight) = self.clients[client].inflight.take() {
            // Timed out.
            sim.forget(inflight.request_id);
            self.settle_unknown(sim, &inflight.pending);
            self.rotate(client);
            self.think(sim, client);
            return;
        }
        let is_final = !self.clients[client].finals.is_empty();
        let is_probe = self.clients[client].probe;
        if !self.active && !is_final && !is_probe {
            return;
        }
        let ids = sim.members();
        let live: Vec<u64> = ids.iter().copied().filter(|&id| !sim.is_removed(id)).collect();
        if live.is_empty() {
            return;
        }
        let member = live[self.clients[client].target % live.len()];
        let outgoing = if is_probe {
            match self.probe_op(sim, client) {
                Some((request, pending, serializable)) => {
                    (request, pending, serializable, sim.default_credentials())
                }
                None => return,
            }
        } else if is_final {
            let key = self.clients[client].finals[0].clone();
            let (request, pending, serializable) = self.invoke_kv(client, KvOp::Get { key }, sim.now_us());
            (request, pending, serializable, sim.default_credentials())
        } else if let Some(op) = self.auth_op(sim, client) {
            op
        } else if let Some(request) = self.recipe_op(sim, client) {
            (
                request,
                Pending::Recipe { client },
                false,
                sim.default_credentials(),
            )
        } else if let Some((request, pending)) = self.v2_op(sim, client, member) {
            (request, pending, false, sim.default_credentials())
        } else {
            let (request, pending, serializable) = self.next_op(sim, client);
            (request, pending, serializable, sim.default_credentials())
        };
        self.ops_started += 1;
        if !sim.is_up(member) {
            // Connection refused: the request never left the client.
            self.settle_definite(sim, &outgoing.1);
            self.rotate(client);
            self.think(sim, client);
            return;
        }
        self.send(sim, client, member, outgoing);
    }

    /// Sends `client`'s request to `member` and wakes the client at its timeout.
    pub(super) fn send(&mut self, sim: &mut impl Cluster, client: usize, member: u64, outgoing: Outgoing) {
        let (request, pending, serializable, credentials) = outgoing;
        let route = Route::Client { client, serializable };
        let request_id = sim.submit(member, request, route, credentials);
        let timeout = self.client_timeout_us(sim, client);
        self.clients[client].inflight = Some(InFlight {
            request_id,
            member,
            pending,
        });
        let at = sim.now_us() + timeout;
        self.wake_at(sim, client, at);
    }
}
