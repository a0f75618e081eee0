//! The v2 store on a member: writes go through raft and answer their client,
//! quorum gets and syncs too (a sync expires keys by the time it carries), waits
//! and gets read the member's store, and the store is in the member's snapshots,
//! so a restart from a compacted log has it all; the member counts what it applies
//! and serves (`/v2/stats/store`). The store's index counts the cluster's own
//! records as etcd 3.4's does: a fresh single member's first write is at 4
//! (member added, published, cluster version), and every start publishes again.

#[path = "support/mem_disk.rs"]
mod mem_disk;

use detcd_core::node::{
    Credentials, Input, Node, NodeStart, Output, Request, Response, V2Reply, PREV_EXIST_FALSE,
};
use detcd_core::v2store::{code, Action};
use detcd_proto::detcdpb::V2Request;
use mem_disk::MemDisk;

const NOW_MS: u64 = 1_800_000_000_000;

struct Member1 {
    node: Node,
    now_ms: u64,
    disk: MemDisk,
    next_client: u64,
    answers: Vec<(u64, Response)>,
}

impl Member1 {
    fn start(start: NodeStart) -> Member1 {
        let mut config = mem_disk::one_member_config(5);
        config.snapshot_count = 4;
        let mut m = Member1 {
            node: Node::new(config, start).expect("starts"),
            now_ms: 0,
            disk: MemDisk::default(),
            next_client: 1,
            answers: Vec::new(),
        };
        m.drain();
        while m.node.soft_state().leader == 0 {
            m.tick();
        }
        // Time to publish, and (the leader) to set the cluster version.
        for _ in 0..5 {
            m.tick();
        }
        m
    }

    fn tick(&mut self) {
        self.now_ms += 100;
        self.node.handle(Input::Tick { now_ms: self.now_ms });
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(output) = self.node.poll() {
            if let Some(Output::Respond { id, result }) = self.disk.serve(&mut self.node, output) {
                self.answers.push((id, result.expect("a member answer")));
            }
        }
    }

    fn call(&mut self, request: Request) -> V2Reply {
        let id = self.next_client;
        self.next_client += 1;
        self.node.handle(Input::Client {
            id,
            request,
            credentials: Credentials::None,
        });
        self.drain();
        let at = self.answers.iter().position(|(i, _)| *i == id).expect("answered");
        match self.answers.remove(at).1 {
            Response::V2(reply) => reply,
            other => panic!("not a v2 answer: {other:?}"),
        }
    }

    fn v2(&mut self, method: &str, path: &str, val: &str, tune: impl FnOnce(&mut V2Request)) -> V2Reply {
        let mut r = V2Request {
            method: method.to_string(),
            path: path.to_string(),
            val: val.to_string(),
            ..V2Request::default()
        };
        tune(&mut r);
        self.call(Request::V2(r))
    }

    fn get(&mut self, path: &str) -> V2Reply {
        self.call(Request::V2Get {
            path: path.to_string(),
            recursive: true,
            now_unix_ms: NOW_MS,
        })
    }
}

#[test]
fn v2_writes_apply_through_raft_and_survive_a_restart_from_a_snapshot() {
    let mut m = Member1::start(NodeStart::Found);
    // The member added, its publish and the cluster version.
    const BASE: u64 = 3;
    assert_eq!(m.call(Request::V2Status).etcd_index, BASE);
    for i in 0..6 {
        let r = m.v2("PUT", &format!("/dir/k{i}"), "v", |_| {});
        let e = r.result.expect("set").expect("an event");
        assert_eq!((e.action, e.node.modified_index), (Action::Set, BASE + i + 1));
        assert!(r.raft_index > 0 && r.raft_term > 0);
    }
    let r = m.v2("PUT", "/dir/k0", "w", |r| r.prev_exist = PREV_EXIST_FALSE);
    let err = r.result.expect_err("exists");
    assert_eq!(
        (err.code, err.cause.as_str(), err.index),
        (code::NODE_EXIST, "/dir/k0", BASE + 6)
    );
    let r = m.v2("PUT", "/tmp", "t", |r| {
        r.expiration_unix_ms = NOW_MS + 1_000;
        r.time_unix_ms = NOW_MS - 1_500;
    });
    assert_eq!(
        r.result.expect("set").expect("an event").node.ttl,
        3,
        "2.5 s rounded up"
    );
    let status = m.call(Request::V2Status);
    assert!(status.has_ttl_keys);
    assert_eq!(status.node_count, 8);
    // A wait for the next change, answered once it happened.
    let waiting = m.call(Request::V2Watch {
        path: "/dir".to_string(),
        recursive: true,
        since: 0,
    });
    assert_eq!((waiting.since, waiting.result.clone()), (BASE + 8, Ok(None)));
    m.v2("DELETE", "/dir/k5", "", |_| {});
    let found = m.call(Request::V2Watch {
        path: "/dir".to_string(),
        recursive: true,
        since: waiting.since,
    });
    let e = found.result.expect("scan").expect("the delete");
    assert_eq!((e.action, e.node.key.as_str()), (Action::Delete, "/dir/k5"));
    // A sync before the expiry keeps the key, one after removes it.
    m.v2("SYNC", "", "", |r| r.time_unix_ms = NOW_MS + 999);
    assert!(m.get("/tmp").result.is_ok());
    m.v2("SYNC", "", "", |r| r.time_unix_ms = NOW_MS + 1_000);
    let err = m.get("/tmp").result.expect_err("expired");
    assert_eq!((err.code, err.index), (code::KEY_NOT_FOUND, BASE + 9));
    let q = m.v2("QGET", "/dir", "", |r| r.recursive = true);
    let before = q.result.expect("qget").expect("an event");
    assert_eq!(before.node.nodes.len(), 5);
    // The member's statistics: writes, quorum gets and expiries as applied
    // (the cluster's records too: a create, two sets), gets as served.
    let stats = m
        .call(Request::V2Status)
        .stats
        .expect("a status carries the stats");
    assert_eq!(
        (
            stats.sets_success,
            stats.create_success,
            stats.create_fail,
            stats.delete_success
        ),
        (9, 1, 1, 1)
    );
    assert_eq!(
        (stats.gets_success, stats.gets_fail, stats.expire_count),
        (2, 1, 1)
    );
    assert_eq!(stats.fields().iter().map(|(_, n)| n).sum::<u64>(), 16);

    // Syncs that expire nothing count nothing: the snapshot taken among them
    // holds every count above, the entries replayed after it none.
    for _ in 0..5 {
        m.v2("SYNC", "", "", |r| r.time_unix_ms = NOW_MS + 2_000);
    }
    assert!(m.disk.snapshot_index() > 0, "snapshots were taken");
    let mut restarted = Member1::start(m.disk.recover());
    // The counts come back from the snapshot, as etcd's: plain gets (counted
    // only where served, never replayed) too; the restart's publish is one set more.
    let kept = restarted
        .call(Request::V2Status)
        .stats
        .expect("a status carries the stats");
    let mut expected = *stats;
    expected.sets_success += 1;
    assert_eq!(*kept, expected);
    let after = restarted.get("/dir").result.expect("get").expect("an event");
    assert_eq!(after.node, before.node);
    assert_eq!(after.etcd_index, BASE + 9 + 1, "the restart published again");
    let replay = restarted.call(Request::V2Watch {
        path: "/tmp".to_string(),
        recursive: false,
        since: BASE + 9,
    });
    let e = replay.result.expect("history kept").expect("the expiry");
    assert_eq!(e.action, Action::Expire);
}
