//! The member tells its driver its state through outputs only: `Output::Status`
//! (at most one per drain, after the drain's other outputs, only when it changed,
//! with the store operations etcd's mvcc layer counts) and the answers to portable
//! export questions.

use detcd_core::mvcc::Revision;
use detcd_core::node::{
    Credentials, Input, MemberStatus, MvccCounts, Node, NodeConfig, NodeStart, Output, Persist, Request,
};
use detcd_proto::etcdserverpb::{
    request_op, CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest, Member,
    PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
};

/// A lone member whose persists are acknowledged at once; every drain's outputs
/// are kept apart.
struct Solo {
    node: Node,
    now_ms: u64,
    drains: Vec<Vec<Output>>,
}

impl Solo {
    fn new() -> Solo {
        let member = Member {
            id: 1,
            peer_ur_ls: vec!["http://n1:2380".to_string()],
            ..Default::default()
        };
        let mut config = NodeConfig::new(1, 0xc1, "n1", vec![member]);
        config.initial_election_tick_advance = true;
        let node = Node::new(config, NodeStart::Found).expect("node");
        let mut solo = Solo {
            node,
            now_ms: 0,
            drains: Vec::new(),
        };
        solo.drain();
        for _ in 0..50 {
            if solo.node.soft_state().leader == 1 {
                return solo;
            }
            solo.tick();
        }
        panic!("no leader");
    }

    fn input(&mut self, input: Input) {
        self.node.handle(input);
        self.drain();
    }

    fn tick(&mut self) {
        self.now_ms += self.node.config().tick_ms;
        self.input(Input::Tick { now_ms: self.now_ms });
    }

    /// Polls until `None`, answering persists after the drain as a driver does.
    fn drain(&mut self) {
        loop {
            let mut outputs = Vec::new();
            while let Some(output) = self.node.poll() {
                outputs.push(output);
            }
            let persisted: Vec<u64> = outputs
                .iter()
                .filter_map(|o| match o {
                    Output::Persist(Persist { ready_number, .. }) => Some(*ready_number),
                    _ => None,
                })
                .collect();
            self.drains.push(outputs);
            if persisted.is_empty() {
                return;
            }
            for ready_number in persisted {
                self.node.handle(Input::Persisted { ready_number });
            }
        }
    }

    fn call(&mut self, request: Request) {
        self.input(Input::Client {
            id: 7,
            request,
            credentials: Credentials::None,
        });
    }

    /// The last status told.
    fn status(&self) -> MemberStatus {
        self.drains
            .iter()
            .flatten()
            .filter_map(|o| match o {
                Output::Status(s) => Some(s.clone()),
                _ => None,
            })
            .next_back()
            .expect("a status was told")
    }
}

fn put(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

#[test]
fn a_status_comes_last_in_a_drain_at_most_once_and_only_when_it_changed() {
    let mut m = Solo::new();
    for drain in &m.drains {
        let statuses = drain.iter().filter(|o| matches!(o, Output::Status(_))).count();
        assert!(statuses <= 1, "{drain:?}");
        if statuses == 1 {
            assert!(matches!(drain.last(), Some(Output::Status(_))), "{drain:?}");
        }
    }
    let before = m.status();
    m.drains.clear();
    m.input(Input::PeerUnreachable { peer: 9 });
    assert!(
        m.drains.iter().flatten().all(|o| !matches!(o, Output::Status(_))),
        "nothing changed, nothing told: {:?}",
        m.drains
    );
    m.call(Request::Put(put("k", "vv")));
    let after = m.status();
    assert_eq!(after.applied_index, before.applied_index + 1);
    assert_eq!(after.commit_index, after.applied_index);
    assert_eq!(after.revision, before.revision + 1);
    assert_eq!(after.pending_requests, 0);
}

#[test]
fn the_status_counts_store_operations_as_etcds_mvcc_layer() {
    let mut m = Solo::new();
    m.call(Request::Put(put("a", "12")));
    m.call(Request::Put(put("b", "345")));
    m.call(Request::Range(RangeRequest {
        key: b"a".to_vec(),
        serializable: true,
        ..Default::default()
    }));
    m.call(Request::DeleteRange(DeleteRangeRequest {
        key: b"b".to_vec(),
        ..Default::default()
    }));
    let op = |r: request_op::Request| RequestOp { request: Some(r) };
    m.call(Request::Txn(TxnRequest {
        success: vec![
            op(request_op::Request::RequestPut(put("c", "6"))),
            op(request_op::Request::RequestRange(RangeRequest {
                key: b"c".to_vec(),
                ..Default::default()
            })),
        ],
        ..Default::default()
    }));
    assert_eq!(
        m.status().mvcc,
        MvccCounts {
            puts: 3,
            ranges: 2,
            deletes: 1,
            txns: 1,
            put_bytes: 3 + 4 + 2,
        }
    );
    // The live key count (a walk of the index) is taken again once a second of
    // the node's clock has passed.
    let counted_at = m.now_ms;
    while m.now_ms < counted_at + detcd_core::node::KEYS_RECOUNT_MS {
        m.tick();
    }
    assert_eq!(m.status().keys, 2);
}

#[test]
fn the_status_tells_what_compactions_removed() {
    let mut m = Solo::new();
    for v in ["1", "2", "3"] {
        m.call(Request::Put(put("k", v)));
    }
    m.call(Request::Put(put("j", "1")));
    let rev = m.status().revision;
    // k's first two revisions go; its last and j's stay.
    m.call(Request::Compact(CompactionRequest {
        revision: rev,
        ..Default::default()
    }));
    let c = m.status().compaction;
    assert_eq!((c.compactions, c.revisions_removed), (1, 2));
    m.call(Request::DeleteRange(DeleteRangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    }));
    m.call(Request::Put(put("j", "2")));
    let rev = m.status().revision;
    // k's last put and its delete, j's first put.
    m.call(Request::Compact(CompactionRequest {
        revision: rev,
        ..Default::default()
    }));
    let c = m.status().compaction;
    assert_eq!((c.compactions, c.revisions_removed), (2, 5));
}

#[test]
fn the_status_counts_watchers_as_streams_open_and_close_them() {
    let mut m = Solo::new();
    let create = |stream| Request::WatchCreate {
        stream,
        request: WatchCreateRequest {
            key: b"a".to_vec(),
            ..Default::default()
        },
    };
    m.call(create(1));
    m.call(create(1));
    m.call(create(2));
    assert_eq!(m.status().watchers.watchers, 3);
    assert_eq!(m.status().watchers.unsynced, 0);
    m.input(Input::StreamClosed { stream: 1 });
    assert_eq!(m.status().watchers.watchers, 1);
}

#[test]
fn the_status_counts_leases_revoked_because_they_expired_not_revoked_by_clients() {
    let mut m = Solo::new();
    m.call(Request::LeaseGrant(LeaseGrantRequest { ttl: 1, id: 5 }));
    m.call(Request::LeaseGrant(LeaseGrantRequest { ttl: 1000, id: 6 }));
    m.call(Request::LeaseRevoke(LeaseRevokeRequest { id: 6 }));
    let granted_at = m.now_ms;
    while m.status().leases_expired == 0 {
        assert!(m.now_ms < granted_at + 30_000, "lease 5 never expired");
        m.tick();
    }
    for _ in 0..50 {
        m.tick();
    }
    assert_eq!(m.status().leases_expired, 1);
}

#[test]
fn portable_questions_are_answered_by_outputs_with_their_ask() {
    let mut m = Solo::new();
    m.call(Request::Put(put("a", "1")));
    m.drains.clear();
    m.input(Input::PortableHead { ask: 4 });
    let head = m
        .drains
        .iter()
        .flatten()
        .find_map(|o| match o {
            Output::PortableHead { ask: 4, head } => Some(head.clone()),
            _ => None,
        })
        .expect("the head");
    assert_eq!(head.current_revision, 2);
    m.input(Input::PortableRecords {
        ask: 5,
        bound: head.bound(),
        from: Revision::new(i64::MIN, i64::MIN),
        records_max: 10,
    });
    let slice = m
        .drains
        .iter()
        .flatten()
        .find_map(|o| match o {
            Output::PortableRecords { ask: 5, slice } => Some(slice.clone()),
            _ => None,
        })
        .expect("the slice")
        .expect("not compacted");
    assert_eq!(slice.records.len(), 1);
    assert_eq!(slice.next, None);
}
