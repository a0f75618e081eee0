//! What an answer does: it settles the client's request (in the history for a KV
//! operation, in its side workload otherwise), moves the client's lease and watch
//! on, and after a revoke sends the read that checks the lease's key is gone. An
//! error settles the request as an unknown outcome or a definite failure and
//! sends the client to the next member.

use detcd_core::error::EtcdError;
use detcd_core::node::{Request, Response};
use detcd_proto::etcdserverpb::RangeRequest;

use super::client::Pending;
use super::Workload;
use crate::auth_workload::Outcome;
use crate::check::history::{KvOp, KvResult};
use crate::cluster::{outcome_unknown, Cluster};

impl Workload {
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
            self.count(&result);
            if result.is_err() {
                self.rotate(client);
            }
            match self.recipe_answer(sim, client, result) {
                Some(at) => self.wake_at(sim, client, at),
                None => self.think(sim, client),
            }
            return;
        }
        if let (Pending::V2(p), Some(v2)) = (&pending, self.v2.as_mut()) {
            v2.settle(p, &result, sim.now_us());
            self.count(&result);
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
                self.probe_answered(&op, now);
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
                let credentials = sim.default_credentials();
                let check = (request, Pending::LeaseCheck { key }, false, credentials);
                self.send(sim, client, inflight.member, check);
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
