//! Every RPC detcd serves, through the third-party `etcd-client` crate, on a 1-member and
//! a 3-member cluster; plus the HTTP endpoints and grpc.health.v1 on the same port.

use std::time::Duration;

use etcd_client::{
    AlarmAction, AlarmType, Client, Compare, CompareOp, DeleteOptions, Error, EventType, GetOptions,
    LeaseTimeToLiveOptions, MemberAddOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};

use super::harness::{http_get, Cluster};

fn grpc_message(e: &Error) -> String {
    match e {
        Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => format!("not a gRPC status: {other}"),
    }
}

async fn kv(c: &mut Client) {
    c.put("k1", "v1", None).await.expect("put");
    c.put("k2", "v2", None).await.expect("put");
    let r = c
        .put("k1", "v1b", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put prev");
    assert_eq!(r.prev_key().map(|kv| kv.value()), Some(&b"v1"[..]));
    let g = c.get("k1", None).await.expect("get");
    assert_eq!(g.kvs()[0].value(), b"v1b");
    assert_eq!(g.kvs()[0].version(), 2);
    let g = c
        .get("k", Some(GetOptions::new().with_prefix()))
        .await
        .expect("prefix");
    assert_eq!(g.count(), 2);
    let g = c
        .get(
            "k",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_limit(1)
                    .with_sort(SortTarget::Key, SortOrder::Descend),
            ),
        )
        .await
        .expect("sorted");
    assert_eq!((g.kvs()[0].key(), g.more(), g.count()), (&b"k2"[..], true, 2));
    let g = c
        .get("k", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .expect("count");
    assert!(g.kvs().is_empty() && g.count() == 2);
    let g = c
        .get("k1", Some(GetOptions::new().with_serializable().with_keys_only()))
        .await
        .expect("ser");
    assert!(g.kvs()[0].value().is_empty());
    let rev = g.header().expect("header").revision();
    let old = c
        .get("k1", Some(GetOptions::new().with_revision(rev - 1)))
        .await
        .expect("old rev");
    assert_eq!(old.kvs()[0].value(), b"v1");

    let t = Txn::new()
        .when([Compare::value("k1", CompareOp::Equal, "v1b")])
        .and_then([TxnOp::put("k3", "v3", None), TxnOp::get("k1", None)])
        .or_else([TxnOp::put("k3", "wrong", None)]);
    let t = c.txn(t).await.expect("txn");
    assert!(t.succeeded());
    assert!(matches!(&t.op_responses()[1], TxnOpResponse::Get(g) if g.kvs()[0].value() == b"v1b"));
    let t = c
        .txn(
            Txn::new()
                .when([Compare::version("k2", CompareOp::Greater, 5)])
                .or_else([TxnOp::delete("k2", None)]),
        )
        .await
        .expect("txn failure branch");
    assert!(!t.succeeded());
    let d = c
        .delete("k", Some(DeleteOptions::new().with_prefix().with_prev_key()))
        .await
        .expect("delete");
    assert_eq!((d.deleted(), d.prev_kvs().len()), (2, 2));

    let e = c.get("", None).await.expect_err("empty key");
    assert_eq!(
        grpc_message(&e),
        "InvalidArgument: etcdserver: key is not provided"
    );
    let head = c
        .put("c", "1", None)
        .await
        .expect("put")
        .header()
        .expect("header")
        .revision();
    c.compact(head - 1, None).await.expect("compact");
    let e = c
        .get("c", Some(GetOptions::new().with_revision(head - 2)))
        .await
        .expect_err("compacted");
    assert_eq!(
        grpc_message(&e),
        "OutOfRange: etcdserver: mvcc: required revision has been compacted"
    );
    let e = c.compact(head + 100, None).await.expect_err("future");
    assert_eq!(
        grpc_message(&e),
        "OutOfRange: etcdserver: mvcc: required revision is a future revision"
    );
}

async fn watch(c: &mut Client) {
    let start = c
        .put("w/a", "0", None)
        .await
        .expect("put")
        .header()
        .expect("h")
        .revision();
    let mut stream = c
        .watch(
            "w/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_prev_key()
                    .with_start_revision(start),
            ),
        )
        .await
        .expect("watch");
    let created = stream.message().await.expect("created").expect("open");
    assert!(created.created());
    let id = created.watch_id();
    c.put("w/a", "1", None).await.expect("put");
    c.delete("w/a", None).await.expect("delete");
    let mut events = Vec::new();
    while events.len() < 3 {
        let r = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("events in time");
        let r = r.expect("stream").expect("open");
        events.extend(
            r.events()
                .iter()
                .map(|e| (e.event_type(), e.kv().map(|kv| kv.value().to_vec()))),
        );
    }
    assert_eq!(
        events[0],
        (EventType::Put, Some(b"0".to_vec())),
        "history from start_revision"
    );
    assert_eq!(events[1], (EventType::Put, Some(b"1".to_vec())));
    assert_eq!(events[2].0, EventType::Delete);
    stream.request_progress().await.expect("progress");
    let p = stream.message().await.expect("progress").expect("open");
    assert!(p.events().is_empty() && p.header().expect("h").revision() > start);
    // A second watcher on the same stream, with a filter, then cancels.
    stream
        .watch(
            "w/b",
            Some(WatchOptions::new().with_filters([etcd_client::WatchFilterType::NoPut])),
        )
        .await
        .expect("second watcher");
    let created = stream.message().await.expect("created").expect("open");
    assert!(created.created() && created.watch_id() != id);
    stream.cancel(id).await.expect("cancel");
    let canceled = stream.message().await.expect("canceled").expect("open");
    assert!(canceled.canceled() && canceled.watch_id() == id);
}

async fn lease(c: &mut Client) {
    let g = c.lease_grant(60, None).await.expect("grant");
    let id = g.id();
    c.put("l/k", "v", Some(PutOptions::new().with_lease(id)))
        .await
        .expect("put with lease");
    let ttl = c
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("ttl");
    assert_eq!((ttl.granted_ttl(), ttl.keys().len()), (60, 1));
    assert!(c
        .leases()
        .await
        .expect("leases")
        .leases()
        .iter()
        .any(|l| l.id() == id));
    let (mut keeper, mut responses) = c.lease_keep_alive(id).await.expect("keepalive");
    keeper.keep_alive().await.expect("send");
    let r = responses.message().await.expect("answer").expect("open");
    assert!(r.ttl() > 0 && r.id() == id);
    c.lease_revoke(id).await.expect("revoke");
    assert_eq!(
        c.get("l/k", None).await.expect("get").count(),
        0,
        "revoke deletes attached keys"
    );
    // An unknown lease: TTL 0 and the stream stays open.
    keeper.keep_alive().await.expect("send");
    let r = responses.message().await.expect("answer").expect("open");
    assert_eq!(r.ttl(), 0);
    let e = c.lease_revoke(id).await.expect_err("revoked twice");
    assert_eq!(
        grpc_message(&e),
        "NotFound: etcdserver: requested lease not found"
    );
}

async fn cluster(c: &mut Client, members: usize) {
    // Members publish their name and client URLs through raft once they have a
    // leader (etcd lists a member that has not published yet with an empty name), so
    // a freshly started cluster may need a moment before every member shows both.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let list = loop {
        let list = c.member_list().await.expect("list");
        let published = list
            .members()
            .iter()
            .all(|m| !m.name().is_empty() && !m.client_urls().is_empty());
        if published || std::time::Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(list.members().len(), members);
    assert!(list
        .members()
        .iter()
        .all(|m| !m.name().is_empty() && !m.client_urls().is_empty()));
    let added = c
        .member_add(
            ["http://127.0.0.1:1"],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .expect("add learner");
    let learner = added.member().expect("member").id();
    assert!(added.member().expect("member").is_learner());
    assert_eq!(added.member_list().len(), members + 1);
    c.member_update(learner, ["http://127.0.0.1:2".to_string()])
        .await
        .expect("update");
    let e = c.member_promote(learner).await.expect_err("not in sync");
    assert_eq!(
        grpc_message(&e),
        "FailedPrecondition: etcdserver: can only promote a learner member which is in sync with leader"
    );
    c.member_remove(learner).await.expect("remove");
    let e = c.member_remove(learner).await.expect_err("removed twice");
    assert_eq!(grpc_message(&e), "NotFound: etcdserver: member not found");
}

async fn maintenance(c: &mut Client) {
    let s = c.status().await.expect("status");
    assert!(s.leader() != 0 && !s.version().is_empty() && s.raft_index() > 0);
    let a = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("alarm");
    assert!(a.alarms().is_empty());
    let h = c.hash_kv(0).await.expect("hashkv");
    assert!(h.hash() != 0);
    c.hash().await.expect("hash");
    c.defragment().await.expect("defragment");
    let mut snapshot = c.snapshot().await.expect("snapshot");
    let mut bytes = Vec::new();
    while let Some(chunk) = snapshot.message().await.expect("chunk") {
        bytes.extend_from_slice(chunk.blob());
        if chunk.remaining_bytes() == 0 {
            break;
        }
    }
    assert!(bytes.len() >= 32, "at least the SHA-256 trailer");
}

async fn every_rpc(cluster_: &Cluster, members: usize) {
    let mut c = cluster_.client_all().await;
    kv(&mut c).await;
    watch(&mut c).await;
    lease(&mut c).await;
    cluster(&mut c, members).await;
    maintenance(&mut c).await;
    let port = cluster_.members[0].client_port;
    assert_eq!(
        http_get(port, "/health"),
        (200, r#"{"health":"true","reason":""}"#.to_string())
    );
    let (code, version) = http_get(port, "/version");
    assert!(
        code == 200 && version.contains("\"etcdserver\":\"3.6.0\""),
        "{version}"
    );
    let (code, metrics) = http_get(port, "/metrics");
    assert!(
        code == 200 && metrics.contains("\netcd_server_has_leader 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("etcd_disk_wal_fsync_duration_seconds_bucket"));
    // Nothing else answers 200: unknown paths 404 (Go's text), a gateway route GET 405
    // (it takes POST), an unknown gateway path grpc-gateway's 404.
    assert_eq!(http_get(port, "/nope"), (404, "404 page not found\n".to_string()));
    assert_eq!(http_get(port, "/health/x").0, 404);
    assert_eq!(http_get(port, "/v3/kv/range").0, 405);
    assert_eq!(http_get(port, "/v3/kv/nope"), (404, "Not Found\n".to_string()));
    health(port).await;
}

async fn health(port: u16) {
    use detcd_proto::health::health_client::HealthClient;
    use detcd_proto::health::HealthCheckRequest;
    let mut h = HealthClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect");
    let r = h
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("check");
    assert_eq!(r.into_inner().status, 1, "SERVING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_on_one_member() {
    let cluster = Cluster::start("rpcs1", 1).await;
    every_rpc(&cluster, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_on_three_members_and_move_leader() {
    let cluster = Cluster::start("rpcs3", 3).await;
    every_rpc(&cluster, 3).await;
    // Through a follower too: its answers come from the leader's replication.
    let leader = cluster.wait_leader().await;
    let follower = (leader + 1) % 3;
    let mut f = cluster.client(follower).await;
    f.put("via-follower", "1", None).await.expect("put via follower");
    assert_eq!(f.get("via-follower", None).await.expect("get").count(), 1);
    let e = f
        .move_leader(cluster.member_id(leader).await)
        .await
        .expect_err("not leader");
    assert_eq!(grpc_message(&e), "FailedPrecondition: etcdserver: not leader");
    let target = cluster.member_id(follower).await;
    let mut l = cluster.client(leader).await;
    l.move_leader(target).await.expect("move leader");
    assert_eq!(cluster.wait_leader().await, follower);
}

/// `--auto-compaction-mode periodic --auto-compaction-retention 2s`: the leader
/// compacts on etcd's schedule (first after one retention, to the revision of a
/// retention ago), so old revisions become unreadable while the newest stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_auto_compaction() {
    let args = [
        "--auto-compaction-mode",
        "periodic",
        "--auto-compaction-retention",
        "2s",
    ];
    let cluster = Cluster::start_with("autocompact", 1, &args).await;
    let mut c = cluster.client(0).await;
    let first = c
        .put("ac", "0", None)
        .await
        .expect("put")
        .header()
        .expect("header")
        .revision();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut i = 1;
    let compacted = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no auto compaction in 20 s:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.put("ac", i.to_string(), None).await.expect("put");
        i += 1;
        let status = c.get("ac", Some(GetOptions::new().with_revision(first))).await;
        if let Err(e) = status {
            assert_eq!(
                grpc_message(&e),
                "OutOfRange: etcdserver: mvcc: required revision has been compacted"
            );
            break i;
        }
    };
    // Not everything: the last retention's revisions are still readable.
    let head = c
        .get("ac", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();
    let recent = c
        .get("ac", Some(GetOptions::new().with_revision(head - 3)))
        .await
        .expect("recent revision");
    assert_eq!(recent.count(), 1);
    assert!(
        compacted > 5,
        "compacted after {compacted} puts: the first retention was not kept"
    );
    assert!(
        cluster.logs().contains("completed auto compaction at revision"),
        "{}",
        cluster.logs()
    );
}
