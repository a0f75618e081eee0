//! The request mix: a client's next KV, lease, watch or compaction request, drawn
//! by the weights of [`WorkloadMix`] (reader clients draw reads only). KV requests
//! are recorded in the history as they are drawn; a lease runs grant, put with it,
//! revoke, and the revoke's check.

use detcd_core::node::Request;
use detcd_proto::etcdserverpb::{
    compare, request_op, CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use super::client::Pending;
use super::Workload;
use crate::check::history::KvOp;
use crate::cluster::Cluster;
use crate::options::WorkloadMix;

impl Workload {
    fn key(&mut self, keys: usize) -> Vec<u8> {
        format!("k{}", self.rng.range(0, keys as u64)).into_bytes()
    }

    pub(super) fn next_op(&mut self, sim: &mut impl Cluster, client: usize) -> (Request, Pending, bool) {
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
            return w.invoke_kv(client, KvOp::Put { key, value }, now);
        }
        if take(mix.get_linearizable) {
            let key = w.key(keys);
            return w.invoke_kv(client, KvOp::Get { key }, now);
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
            return w.invoke_kv(client, KvOp::Delete { key }, now);
        }
        if take(mix.txn_cas) {
            let key = w.key(keys);
            let expected = w.clients[client].mod_revs.get(&key).copied().unwrap_or(0);
            let op = KvOp::CompareAndSwap {
                key,
                expected_mod_revision: expected,
                new_value: value,
            };
            return w.invoke_kv(client, op, now);
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
            return self.watch_op(sim, client);
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

    /// Records `op` of `client` as invoked at `now` and returns its request.
    pub(super) fn invoke_kv(&mut self, client: usize, op: KvOp, now: u64) -> (Request, Pending, bool) {
        let request = kv_request(&op);
        let id = self.history.invoke(client as u64, op, now);
        (request, Pending::Kv(id), false)
    }
}

/// The request of a single-key KV operation.
fn kv_request(op: &KvOp) -> Request {
    match op.clone() {
        KvOp::Put { key, value } => Request::Put(PutRequest {
            key,
            value,
            ..Default::default()
        }),
        KvOp::Get { key } => Request::Range(RangeRequest {
            key,
            ..Default::default()
        }),
        KvOp::Delete { key } => Request::DeleteRange(DeleteRangeRequest {
            key,
            ..Default::default()
        }),
        KvOp::CompareAndSwap {
            key,
            expected_mod_revision,
            new_value,
        } => Request::Txn(TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Mod as i32,
                key: key.clone(),
                target_union: Some(compare::TargetUnion::ModRevision(expected_mod_revision)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key,
                    value: new_value,
                    ..Default::default()
                })),
            }],
            failure: Vec::new(),
        }),
    }
}
