//! The v2 API's requests on a member (etcd's `applierV2store` and v2 reads):
//! writes, quorum gets and syncs apply from the log; plain gets, waits and the
//! store's status are served from this member's store.

use detcd_proto::detcdpb::{raft_request, V2Request};

use super::io::{ClientRequestId, Response, V2Reply};
use super::requests::RECORD_OVERHEAD_BYTES;
use super::Node;
use crate::v2store::{code, Event, Op, Record, Ttl, V2Error};

/// `prevExist` as [`V2Request::prev_exist`] carries it.
pub const PREV_EXIST_TRUE: u32 = 1;
pub const PREV_EXIST_FALSE: u32 = 2;

impl Node {
    fn v2_reply(&self, result: Result<Option<Event>, V2Error>) -> V2Reply {
        V2Reply {
            result,
            since: 0,
            etcd_index: self.v2.index(),
            raft_index: self.commit,
            raft_term: self.term,
            has_ttl_keys: false,
            node_count: 0,
            stats: None,
        }
    }

    /// Proposes a v2 request (a write, a quorum get or a sync).
    pub(crate) fn propose_v2(&mut self, id: ClientRequestId, request: V2Request) {
        let cost = match request.method.as_str() {
            "PUT" | "POST" => (request.path.len() + request.val.len()) as u64 + RECORD_OVERHEAD_BYTES,
            _ => 0,
        };
        self.propose_write(id, raft_request::Request::V2(request), cost);
    }

    pub(crate) fn serve_v2_get(
        &mut self,
        id: ClientRequestId,
        path: &str,
        recursive: bool,
        now_unix_ms: u64,
    ) {
        let result = self.v2.get(path, recursive, now_unix_ms);
        self.v2_stats.record(Op::Get, &result);
        self.status.v2_gets_recursive += u64::from(recursive);
        let reply = self.v2_reply(result.map(Some));
        self.respond(id, Ok(Response::V2(reply)));
    }

    pub(crate) fn serve_v2_watch(&mut self, id: ClientRequestId, path: &str, recursive: bool, since: u64) {
        let reply = match self.v2.watch(path, recursive, since) {
            Ok((since, event)) => V2Reply {
                since,
                ..self.v2_reply(Ok(event))
            },
            Err(e) => self.v2_reply(Err(e)),
        };
        self.respond(id, Ok(Response::V2(reply)));
    }

    pub(crate) fn serve_v2_status(&mut self, id: ClientRequestId) {
        let reply = V2Reply {
            has_ttl_keys: self.v2.has_ttl_keys(),
            node_count: self.v2.node_count(),
            stats: Some(Box::new(self.v2_stats)),
            ..self.v2_reply(Ok(None))
        };
        self.respond(id, Ok(Response::V2(reply)));
    }

    /// etcd's failed get of its v2 auth switch (see [`super::Request::V2AuthLookup`]).
    pub(crate) fn serve_v2_auth_lookup(&mut self, id: ClientRequestId) {
        self.v2_stats.count(Op::Get, false);
        let reply = self.v2_reply(Ok(None));
        self.respond(id, Ok(Response::V2(reply)));
    }

    /// A change of the cluster's records, counted in the v2 store as etcd counts it.
    pub(crate) fn record_cluster_v2(&mut self, record: Record) {
        for op in self.v2.record_cluster(record) {
            self.v2_stats.count(op, true);
        }
    }

    /// Applies the cluster version the leader set (etcd's `/0/version`).
    pub(crate) fn apply_cluster_version(&mut self, version: &str) {
        let op = self.v2.set_cluster_version(version);
        self.v2_stats.count(op, true);
    }

    /// etcd's `applyV2Request`.
    pub(crate) fn apply_v2(&mut self, r: V2Request) -> Response {
        let ttl = Ttl {
            expire_unix_ms: (r.expiration_unix_ms != 0).then_some(r.expiration_unix_ms),
            refresh: r.refresh,
            now_unix_ms: r.time_unix_ms,
        };
        let now = r.time_unix_ms;
        let compare = r.prev_index > 0 || !r.prev_value.is_empty();
        let store = &mut self.v2;
        let (op, result) = match r.method.as_str() {
            "POST" => (
                Op::Create,
                store.create(&r.path, r.dir, &r.val, true, ttl).map(Some),
            ),
            "PUT" => {
                let (op, result) = match r.prev_exist {
                    PREV_EXIST_TRUE if !compare => (Op::Update, store.update(&r.path, &r.val, ttl)),
                    PREV_EXIST_TRUE => (
                        Op::CompareAndSwap,
                        store.compare_and_swap(&r.path, &r.prev_value, r.prev_index, &r.val, ttl),
                    ),
                    PREV_EXIST_FALSE => (Op::Create, store.create(&r.path, r.dir, &r.val, false, ttl)),
                    _ if compare => (
                        Op::CompareAndSwap,
                        store.compare_and_swap(&r.path, &r.prev_value, r.prev_index, &r.val, ttl),
                    ),
                    _ => (Op::Set, store.set(&r.path, r.dir, &r.val, ttl)),
                };
                (op, result.map(Some))
            }
            "DELETE" if compare => (
                Op::CompareAndDelete,
                store
                    .compare_and_delete(&r.path, &r.prev_value, r.prev_index, now)
                    .map(Some),
            ),
            "DELETE" => (
                Op::Delete,
                store.delete(&r.path, r.dir, r.recursive, now).map(Some),
            ),
            "QGET" => {
                self.status.v2_gets_recursive += u64::from(r.recursive);
                (Op::Get, store.get(&r.path, r.recursive, now).map(Some))
            }
            "SYNC" => {
                let expired = store.delete_expired(r.time_unix_ms);
                self.v2_stats.count_expired(expired.len());
                return Response::V2(self.v2_reply(Ok(None)));
            }
            other => {
                let e = V2Error::new(
                    code::RAFT_INTERNAL,
                    format!("unknown method {other}"),
                    store.index(),
                );
                return Response::V2(self.v2_reply(Err(e)));
            }
        };
        self.v2_stats.record(op, &result);
        Response::V2(self.v2_reply(result))
    }
}
