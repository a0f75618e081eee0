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

use std::collections::BTreeMap;

use detcd_core::error::EtcdError;
use detcd_core::node::{Credentials, Request, Response};
use detcd_core::rng::Rng;
use detcd_proto::etcdserverpb::{
    compare, request_op, CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchResponse,
};
use detcd_proto::mvccpb::event::EventType;

use crate::auth_workload::{AuthPending, AuthWorkload, Outcome};
use crate::check::history::{History, KvOp, KvResult, OpId};
use crate::cluster::{outcome_unknown, Cluster, Route};
use crate::options::{Options, WorkloadMix};
use crate::recipe_workload::RecipeWorkload;
use crate::v2_workload::{V2Pending, V2Workload};
use crate::watch_check::{WatchEvent, WatchSession};

/// What a client is waiting for.
#[derive(Clone, Debug)]
enum Pending {
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

#[derive(Clone, Debug)]
struct InFlight {
    request_id: u64,
    member: u64,
    pending: Pending,
}

#[derive(Clone, Debug, Default)]
struct Client {
    target: usize,
    inflight: Option<InFlight>,
    token: u64,
    seq: u64,
    mod_revs: BTreeMap<Vec<u8>, i64>,
    last_revision: i64,
    lease: Option<i64>,
    lease_key: Option<Vec<u8>>,
    watch: Option<(u64, usize)>,
    /// Keys still to read in the final phase (final client only).
    finals: Vec<Vec<u8>>,
    /// The liveness probe client.
    probe: bool,
}

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

#[derive(Clone, Debug, Default)]
pub struct ProbeState {
    pub started_us: u64,
    pub put_ok_us: Option<u64>,
    pub get_ok_us: Option<u64>,
}

const PREFIX: &[u8] = b"k";
const PREFIX_END: &[u8] = b"l";

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
            history: History::new(),
            sessions: Vec::new(),
            lease_failures: Vec::new(),
            active: true,
            ops_started: 0,
            ops_ok: 0,
            ops_unknown: 0,
            lost_writes: Default::default(),
            ops_failed: 0,
            probe: None,
            auth: opts.auth.then(AuthWorkload::new),
            v2: opts.v2.then(V2Workload::default),
            recipes: opts.recipes.then(RecipeWorkload::default),
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

    pub(crate) fn pending_watch_session(&self, client: usize) -> Option<usize> {
        match self.clients.get(client)?.inflight.as_ref()?.pending {
            Pending::WatchCreate { session } => Some(session),
            _ => None,
        }
    }

    pub(crate) fn member_crashed(&mut self, member: u64) {
        for c in &mut self.clients {
            if c.watch.is_some_and(|(m, _)| m == member) {
                c.watch = None;
            }
        }
    }

    pub(crate) fn watch_response(&mut self, client: usize, session: usize, response: &WatchResponse) {
        let s = &mut self.sessions[session];
        for e in &response.events {
            let kv = e.kv.clone().unwrap_or_default();
            let value = (e.r#type() == EventType::Put).then_some(kv.value);
            s.events.push(WatchEvent {
                revision: kv.mod_revision,
                key: kv.key,
                value,
            });
        }
        if response.canceled {
            if response.compact_revision > 0 {
                s.compact_revision = Some(response.compact_revision);
            }
            if let Some(c) = self.clients.get_mut(client) {
                if c.watch.is_some_and(|(_, sess)| sess == session) {
                    c.watch = None;
                }
            }
        }
    }

    fn key(&mut self, keys: usize) -> Vec<u8> {
        format!("k{}", self.rng.range(0, keys as u64)).into_bytes()
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

    fn think(&mut self, sim: &mut impl Cluster, client: usize) {
        let think_max = sim.opts().think_ms_max * 1000 + 1;
        let think = sim.rng().range(0, think_max);
        let c = &mut self.clients[client];
        c.token += 1;
        let token = c.token;
        sim.wake_client(client, sim.now_us() + think, token);
    }

    fn rotate(&mut self, client: usize) {
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
        let (request, pending, serializable, credentials) = if is_probe {
            match self.probe_op(sim, client) {
                Some((request, pending, serializable)) => {
                    (request, pending, serializable, sim.default_credentials())
                }
                None => return,
            }
        } else if is_final {
            let key = self.clients[client].finals[0].clone();
            let id = self
                .history
                .invoke(client as u64, KvOp::Get { key: key.clone() }, sim.now_us());
            (
                Request::Range(RangeRequest {
                    key,
                    ..Default::default()
                }),
                Pending::Kv(id),
                false,
                sim.default_credentials(),
            )
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
            self.settle_definite(sim, &pending);
            self.rotate(client);
            self.think(sim, client);
            return;
        }
        let route = Route::Client { client, serializable };
        let request_id = sim.submit(member, request, route, credentials);
        let timeout = self.client_timeout_us(sim, client);
        let c = &mut self.clients[client];
        c.inflight = Some(InFlight {
            request_id,
            member,
            pending,
        });
        c.token += 1;
        let token = c.token;
        sim.wake_client(client, sim.now_us() + timeout, token);
    }

    fn next_op(&mut self, sim: &mut impl Cluster, client: usize) -> (Request, Pending, bool) {
        let mix = if client + sim.opts().reader_clients >= sim.opts().clients {
            WorkloadMix::READS
        } else {
            sim.opts().mix
        };
        let keys = sim.opts().keys;
        let w = &mut *self;
        let c_seq = {
            let c = &mut w.clients[client];
            c.seq += 1;
            c.seq
        };
        let mut value = format!("c{client}-{c_seq}").into_bytes();
        // Values of several disk sectors make WAL writes that a crash can tear.
        let padding = w.rng.range(0, sim.opts().value_bytes_max as u64 + 1) as usize;
        value.resize(value.len() + padding, b'.');
        let mut pick = w.rng.range(0, u64::from(mix.total().max(1))) as u32;
        let mut take = |weight: u32| {
            if pick < weight {
                true
            } else {
                pick -= weight;
                false
            }
        };
        let now = sim.now_us();
        if take(mix.put) {
            let key = w.key(keys);
            let id = w.history.invoke(
                client as u64,
                KvOp::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                now,
            );
            return (
                Request::Put(PutRequest {
                    key,
                    value,
                    ..Default::default()
                }),
                Pending::Kv(id),
                false,
            );
        }
        if take(mix.get_linearizable) {
            let key = w.key(keys);
            let id = w
                .history
                .invoke(client as u64, KvOp::Get { key: key.clone() }, now);
            return (
                Request::Range(RangeRequest {
                    key,
                    ..Default::default()
                }),
                Pending::Kv(id),
                false,
            );
        }
        if take(mix.get_serializable) {
            let key = w.key(keys);
            let req = RangeRequest {
                key,
                serializable: true,
                ..Default::default()
            };
            return (Request::Range(req), Pending::Serializable, true);
        }
        if take(mix.delete) {
            let key = w.key(keys);
            let id = w
                .history
                .invoke(client as u64, KvOp::Delete { key: key.clone() }, now);
            return (
                Request::DeleteRange(DeleteRangeRequest {
                    key,
                    ..Default::default()
                }),
                Pending::Kv(id),
                false,
            );
        }
        if take(mix.txn_cas) {
            let key = w.key(keys);
            let expected = w.clients[client].mod_revs.get(&key).copied().unwrap_or(0);
            let op = KvOp::CompareAndSwap {
                key: key.clone(),
                expected_mod_revision: expected,
                new_value: value.clone(),
            };
            let id = w.history.invoke(client as u64, op, now);
            let txn = TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Mod as i32,
                    key: key.clone(),
                    target_union: Some(compare::TargetUnion::ModRevision(expected)),
                    ..Default::default()
                }],
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key,
                        value,
                        ..Default::default()
                    })),
                }],
                failure: Vec::new(),
            };
            return (Request::Txn(txn), Pending::Kv(id), false);
        }
        if take(mix.lease) {
            let c = &mut w.clients[client];
            if let Some(key) = c.lease_key.take() {
                let lease = c.lease.take().unwrap_or(0);
                return (
                    Request::LeaseRevoke(LeaseRevokeRequest { id: lease }),
                    Pending::LeaseRevoke { key },
                    false,
                );
            }
            if let Some(lease) = c.lease {
                let key = format!("lease/{client}-{c_seq}").into_bytes();
                let put = PutRequest {
                    key: key.clone(),
                    value,
                    lease,
                    ..Default::default()
                };
                return (Request::Put(put), Pending::LeasePut { lease, key }, false);
            }
            let ttl = w.rng.range(2, 20) as i64;
            return (
                Request::LeaseGrant(LeaseGrantRequest { ttl, id: 0 }),
                Pending::LeaseGrant,
                false,
            );
        }
        if take(mix.watch) {
            // A client already watching drops its stream and resumes after the last
            // event it got, as clientv3 does when a watch stream breaks; without one
            // it watches from now or from a recent past revision.
            let previous = w.clients[client].watch.take();
            let resume_from = previous
                .and_then(|(_, session)| w.sessions[session].events.last())
                .map(|e| e.revision + 1);
            let last = w.clients[client].last_revision;
            let start_revision = match resume_from {
                Some(from) => from,
                None if last > 0 && w.rng.chance(1, 2) => (last - w.rng.range(0, 10) as i64).max(1),
                None => 0,
            };
            if let Some((member, session)) = previous {
                sim.close_watch_stream(member, client, session);
            }
            let w = &mut *self;
            w.sessions.push(WatchSession {
                start_revision,
                prefix: PREFIX.to_vec(),
                ..Default::default()
            });
            let session = w.sessions.len() - 1;
            let stream = sim.new_stream();
            let request = WatchCreateRequest {
                key: PREFIX.to_vec(),
                range_end: PREFIX_END.to_vec(),
                start_revision,
                ..Default::default()
            };
            return (
                Request::WatchCreate { stream, request },
                Pending::WatchCreate { session },
                false,
            );
        }
        let last = self.clients[client].last_revision;
        let revision = (last - self.rng.range(0, 20) as i64).max(1);
        (
            Request::Compact(CompactionRequest {
                revision,
                physical: false,
            }),
            Pending::Compact,
            false,
        )
    }

    fn settle_unknown(&mut self, sim: &mut impl Cluster, pending: &Pending) {
        self.ops_unknown += 1;
        self.settle_recipe(sim, pending);
        if let Pending::Kv(id) = pending {
            let at = sim.now_us();
            self.history.fail_unknown(*id, at);
        }
        self.settle_auth(sim, pending, Outcome::Unknown);
    }

    fn settle_definite(&mut self, sim: &mut impl Cluster, pending: &Pending) {
        self.ops_failed += 1;
        self.settle_recipe(sim, pending);
        if let Pending::Kv(id) = pending {
            self.history.fail_definite(*id);
        }
        if let (Pending::V2(p), Some(v2)) = (pending, self.v2.as_mut()) {
            v2.not_sent(p);
        }
        self.settle_auth(sim, pending, Outcome::NotSent);
    }

    /// A recipe request timed out or was never sent: its recipe fails.
    fn settle_recipe(&mut self, sim: &mut impl Cluster, pending: &Pending) {
        if let Pending::Recipe { client } = *pending {
            let failed = detcd_core::error::TIMEOUT;
            let _ = self.recipe_answer(sim, client, Err(failed));
        }
    }

    fn settle_auth(&mut self, sim: &mut impl Cluster, pending: &Pending, outcome: Outcome<'_>) {
        if let (Pending::Auth(p), Some(auth)) = (pending, self.auth.as_mut()) {
            auth.settle(p, outcome, sim.now_us());
        }
    }

    /// The auth workload's next request for `client`, if it has one: the admin's
    /// always, a third of the others' requests as the user.
    fn auth_op(
        &mut self,
        sim: &mut impl Cluster,
        client: usize,
    ) -> Option<(Request, Pending, bool, Credentials)> {
        self.auth.as_ref()?;
        let now = sim.now_us();
        let admin = client == 0;
        if !admin && !self.rng.chance(1, 3) {
            return None;
        }
        let w = &mut *self;
        let auth = w.auth.as_mut()?;
        let (request, pending, credentials) = if admin {
            auth.admin_op(&mut w.rng, now)
        } else {
            auth.user_op(&mut w.rng, now)
        };
        let serializable = matches!(&request, Request::Range(r) if r.serializable);
        Some((request, Pending::Auth(pending), serializable, credentials))
    }

    /// The v2 workload's next request for `client` to `member`, for a third of
    /// the requests (nothing drawn without `--v2`).
    fn v2_op(&mut self, sim: &mut impl Cluster, client: usize, member: u64) -> Option<(Request, Pending)> {
        self.v2.as_ref()?;
        if !self.rng.chance(1, 3) {
            return None;
        }
        let (now, now_us) = (sim.wall_ms(member), sim.now_us());
        let w = &mut *self;
        let (request, pending) = w.v2.as_mut()?.op(&mut w.rng, client, now, now_us);
        Some((request, Pending::V2(pending)))
    }

    /// `member` answers `request_id`, a serializable read of `client`: if it is the
    /// auth workload user's, the checker learns what the member's auth state allowed.
    pub(crate) fn observe_auth_serve(
        &mut self,
        sim: &impl Cluster,
        client: usize,
        request_id: u64,
        member: u64,
    ) {
        let Some(auth) = self.auth.as_mut() else {
            return;
        };
        let Some(inflight) = self.clients[client]
            .inflight
            .as_ref()
            .filter(|f| f.request_id == request_id)
        else {
            return;
        };
        let Pending::Auth(AuthPending::User(user_op)) = inflight.pending else {
            return;
        };
        if let Some(store) = sim.auth_store(member) {
            auth.observe_serve(user_op, store);
        }
    }

    pub(crate) fn client_response(
        &mut self,
        sim: &mut impl Cluster,
        client: usize,
        request_id: u64,
        result: Result<Response, EtcdError>,
    ) {
        let Some(inflight) = self.clients[client]
            .inflight
            .take_if(|f| f.request_id == request_id)
        else {
            return;
        };
        let pending = inflight.pending.clone();
        if let Pending::Recipe { .. } = pending {
            match &result {
                Ok(_) => self.ops_ok += 1,
                Err(e) if outcome_unknown(e) => self.ops_unknown += 1,
                Err(_) => self.ops_failed += 1,
            }
            if result.is_err() {
                self.rotate(client);
            }
            match self.recipe_answer(sim, client, result) {
                Some(at) => {
                    let c = &mut self.clients[client];
                    c.token += 1;
                    let token = c.token;
                    sim.wake_client(client, at, token);
                }
                None => self.think(sim, client),
            }
            return;
        }
        if let (Pending::V2(p), Some(v2)) = (&pending, self.v2.as_mut()) {
            v2.settle(p, &result, sim.now_us());
            match &result {
                Ok(_) => self.ops_ok += 1,
                Err(e) if outcome_unknown(e) => self.ops_unknown += 1,
                Err(_) => self.ops_failed += 1,
            }
            if result.is_err() {
                self.rotate(client);
            }
            self.think(sim, client);
            return;
        }
        if let Pending::Auth(p) = &pending {
            let outcome = Outcome::of(&result);
            match outcome {
                Outcome::Ok => self.ops_ok += 1,
                Outcome::Unknown => self.ops_unknown += 1,
                Outcome::Refused(_) | Outcome::NotSent => self.ops_failed += 1,
            }
            if let Some(auth) = self.auth.as_mut() {
                auth.settle(p, outcome, sim.now_us());
            }
            if !matches!(outcome, Outcome::Ok) {
                self.rotate(client);
            }
            self.think(sim, client);
            return;
        }
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                if outcome_unknown(&e) {
                    self.settle_unknown(sim, &pending);
                } else {
                    self.settle_definite(sim, &pending);
                }
                if let Pending::WatchCreate { session } = pending {
                    self.sessions[session].events.clear();
                }
                if let Pending::LeasePut { .. } = pending {
                    self.clients[client].lease = None;
                }
                self.rotate(client);
                self.think(sim, client);
                return;
            }
        };
        self.ops_ok += 1;
        let now = sim.now_us();
        let revision = header_revision(&response);
        let c = &mut self.clients[client];
        c.last_revision = c.last_revision.max(revision);
        match (pending, response) {
            (Pending::Kv(id), response) => {
                let op = self.history.operation(id).op.clone();
                let result = match (&op, response) {
                    (KvOp::Put { .. }, Response::Put(_)) => KvResult::PutOk { revision },
                    (KvOp::Get { key }, Response::Range(r)) => {
                        let kv = r.kvs.first();
                        let c = &mut self.clients[client];
                        c.mod_revs.insert(key.clone(), kv.map_or(0, |kv| kv.mod_revision));
                        if c.finals.first() == Some(key) {
                            c.finals.remove(0);
                        }
                        KvResult::GetOk {
                            value: kv.map(|kv| kv.value.clone()),
                            mod_revision: kv.map_or(0, |kv| kv.mod_revision),
                            version: kv.map_or(0, |kv| kv.version),
                            revision,
                        }
                    }
                    (KvOp::Delete { .. }, Response::DeleteRange(r)) => KvResult::DeleteOk {
                        deleted: r.deleted,
                        revision,
                    },
                    (KvOp::CompareAndSwap { .. }, Response::Txn(r)) => KvResult::TxnOk {
                        succeeded: r.succeeded,
                        revision,
                    },
                    (op, other) => {
                        sim.fail(format!("response {other:?} does not answer {op:?}"));
                        return;
                    }
                };
                self.history.complete(id, result, now);
                if let Some(p) = self.probe.as_mut() {
                    if op.key() == b"kprobe" {
                        if op.is_write() {
                            p.put_ok_us.get_or_insert(now);
                        } else if p.put_ok_us.is_some() {
                            p.get_ok_us.get_or_insert(now);
                        }
                    }
                }
            }
            (Pending::Serializable, _) => {}
            (Pending::LeaseGrant, Response::LeaseGrant(r)) => self.clients[client].lease = Some(r.id),
            (Pending::LeasePut { lease, key }, _) => {
                let c = &mut self.clients[client];
                c.lease = Some(lease);
                c.lease_key = Some(key);
            }
            (Pending::LeaseRevoke { key }, _) => {
                // Revoked: the key must be gone for every later linearizable read.
                let request = Request::Range(RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                });
                let route = Route::Client {
                    client,
                    serializable: false,
                };
                let credentials = sim.default_credentials();
                let request_id = sim.submit(inflight.member, request, route, credentials);
                let timeout = self.client_timeout_us(sim, client);
                let c = &mut self.clients[client];
                c.inflight = Some(InFlight {
                    request_id,
                    member: inflight.member,
                    pending: Pending::LeaseCheck { key },
                });
                c.token += 1;
                let token = c.token;
                sim.wake_client(client, sim.now_us() + timeout, token);
                return;
            }
            (Pending::LeaseCheck { key }, Response::Range(r)) => {
                if !r.kvs.is_empty() {
                    let why = format!(
                        "key {} of a revoked lease still present at revision {revision}",
                        String::from_utf8_lossy(&key)
                    );
                    self.lease_failures.push(why.clone());
                    sim.fail(why);
                }
            }
            (Pending::Compact, _) => {}
            (Pending::WatchCreate { session }, _) => {
                self.sessions[session].member = inflight.member;
                self.clients[client].watch = Some((inflight.member, session));
            }
            (pending, response) => sim.fail(format!("response {response:?} does not answer {pending:?}")),
        }
        self.think(sim, client);
    }

    /// Starts the liveness probe: a put then a linearizable read of `kprobe`,
    /// retried across members, which must both succeed within ten election timeouts.
    pub(crate) fn start_probe(&mut self, sim: &mut impl Cluster) {
        self.probe = Some(ProbeState {
            started_us: sim.now_us(),
            ..Default::default()
        });
        self.clients.push(Client {
            probe: true,
            ..Default::default()
        });
        let client = self.clients.len() - 1;
        sim.wake_client(client, sim.now_us(), 0);
    }

    /// The probe's next request, or None when it is done.
    fn probe_op(&mut self, sim: &mut impl Cluster, client: usize) -> Option<(Request, Pending, bool)> {
        let probe = self.probe.clone().unwrap_or_default();
        let key = b"kprobe".to_vec();
        let now = sim.now_us();
        let c = &mut self.clients[client];
        c.seq += 1;
        if probe.put_ok_us.is_none() {
            let value = format!("probe-{}", c.seq).into_bytes();
            let op = KvOp::Put {
                key: key.clone(),
                value: value.clone(),
            };
            let id = self.history.invoke(client as u64, op, now);
            return Some((
                Request::Put(PutRequest {
                    key,
                    value,
                    ..Default::default()
                }),
                Pending::Kv(id),
                false,
            ));
        }
        if probe.get_ok_us.is_none() {
            let id = self
                .history
                .invoke(client as u64, KvOp::Get { key: key.clone() }, now);
            return Some((
                Request::Range(RangeRequest {
                    key,
                    ..Default::default()
                }),
                Pending::Kv(id),
                false,
            ));
        }
        None
    }
}

fn header_revision(response: &Response) -> i64 {
    let header = match response {
        Response::Range(r) => &r.header,
        Response::Put(r) => &r.header,
        Response::DeleteRange(r) => &r.header,
        Response::Txn(r) => &r.header,
        Response::Compact(r) => &r.header,
        Response::LeaseGrant(r) => &r.header,
        Response::LeaseRevoke(r) => &r.header,
        _ => return 0,
    };
    header.as_ref().map_or(0, |h| h.revision)
}

impl Workload {
    /// Wakes `client` now (used to start the final reader).
    pub(crate) fn schedule_wake_now(&mut self, sim: &mut impl Cluster, client: usize) {
        let c = &mut self.clients[client];
        c.token += 1;
        let token = c.token;
        sim.wake_client(client, sim.now_us(), token);
    }
}
