//! Members run by the tokio driver on temp dirs and loopback ports: one member
//! (KV, txn, watch, restart recovery with and without snapshots), three members
//! (election, writes through a follower, linearizable reads, leader loss, catch
//! up after restart), and the transport (handshake refusal, reconnect).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use detcd_core::error;
use detcd_core::node::{NodeConfig, Request, Response};
use detcd_io::driver::{
    self, Member, MemberHandle, MemberOptions, StartError, StartMode, StopReason, WatchStreamRequest,
};
use detcd_io::transport::{wire, PEER_PROTOCOL_VERSION};
use detcd_proto::detcdpb::{PeerHello, PeerHelloReply};
use detcd_proto::etcdserverpb::{
    compare, request_op, Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest,
    Member as PbMember, MemberAddRequest, MemberListRequest, MemberRemoveRequest, MemberUpdateRequest,
    MoveLeaderRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
};
use tokio::io::AsyncWriteExt;
use tokio::time::{sleep, timeout, Instant};

const CLUSTER_ID: u64 = 0xc1;
const TICK_MS: u64 = 10;
/// How long a test waits for a condition before failing.
const WAIT_MS: u64 = 10_000;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Options for member `id` of a cluster whose members listen on `ports` (by ID).
fn options(dir: &Path, id: u64, ports: &BTreeMap<u64, u16>, snapshot_count: u64) -> MemberOptions {
    let initial: Vec<PbMember> = ports
        .iter()
        .map(|(&m, &p)| PbMember {
            id: m,
            name: format!("n{m}"),
            peer_ur_ls: vec![url(p)],
            client_ur_ls: Vec::new(),
            is_learner: false,
        })
        .collect();
    let mut node = NodeConfig::new(id, CLUSTER_ID, &format!("n{id}"), initial);
    node.tick_ms = TICK_MS;
    node.election_ticks = 10;
    node.request_timeout_ms = 3_000;
    node.snapshot_count = snapshot_count;
    let mut o = MemberOptions::new(dir.join(format!("n{id}")), node, StartMode::New);
    o.listen_peer_urls = vec![url(ports[&id])];
    o.segment_bytes = 64 * 1024;
    o
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(5)).await;
    }
}

async fn put(h: &MemberHandle, key: &str, value: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let request = Request::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        });
        match h.call(request).await {
            Ok(Response::Put(r)) => return r.header.expect("header").revision,
            Ok(other) => panic!("put answered {other:?}"),
            // Leader changes and elections in progress are retried, as a client would.
            Err(e) if e.code == error::Code::Unavailable && Instant::now() < deadline => {
                sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("put {key}: {e}"),
        }
    }
}

async fn get(h: &MemberHandle, key: &str, serializable: bool) -> Option<String> {
    let request = Request::Range(RangeRequest {
        key: key.into(),
        serializable,
        ..Default::default()
    });
    match h.call(request).await {
        Ok(Response::Range(r)) => r
            .kvs
            .first()
            .map(|kv| String::from_utf8(kv.value.clone()).expect("utf8")),
        other => panic!("get {key} answered {other:?}"),
    }
}

/// Calls `request` on `h`, again while it answers Unavailable (a membership change
/// waits for the previous one to apply), for up to [`WAIT_MS`].
async fn call_while_unavailable(h: &MemberHandle, request: Request) -> Response {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        match h.call(request.clone()).await {
            Ok(response) => return response,
            Err(e) if e.code == error::Code::Unavailable && Instant::now() < deadline => {
                sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{request:?} answered {e:?}"),
        }
    }
}

async fn start(o: MemberOptions) -> (Member, MemberHandle) {
    driver::start(o).await.expect("member starts")
}

async fn leader_of(handles: &[&MemberHandle]) -> u64 {
    let mut leader = 0;
    wait_until("a leader all live members agree on", || {
        let ids: Vec<u64> = handles.iter().map(|h| h.metrics().leader_id).collect();
        leader = ids[0];
        leader != 0
            && ids.iter().all(|&l| l == leader)
            && handles
                .iter()
                .any(|h| h.member_id() == leader && h.metrics().is_leader)
    })
    .await;
    leader
}

fn one_member(name: &str) -> (PathBuf, BTreeMap<u64, u16>) {
    (common::fresh_dir(name), BTreeMap::from([(1, free_port())]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_serves_kv_txn_and_watch_and_recovers_every_acknowledged_write() {
    let (dir, ports) = one_member("driver-single");
    let (member, h) = start(options(&dir, 1, &ports, 10_000)).await;
    leader_of(&[&h]).await;
    assert_eq!(h.member_id(), 1);
    assert_eq!(h.cluster_id(), CLUSTER_ID);

    let mut watch = h.open_watch_stream().await;
    watch
        .send(WatchStreamRequest::Create(WatchCreateRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            ..Default::default()
        }))
        .await
        .expect("watch created");
    let created = timeout(Duration::from_secs(5), watch.recv())
        .await
        .expect("in time")
        .expect("created");
    assert!(created.created);

    let r1 = put(&h, "k1", "v1").await;
    let r2 = put(&h, "k2", "v2").await;
    assert!(r2 > r1);
    assert_eq!(get(&h, "k1", false).await.as_deref(), Some("v1"));
    assert_eq!(get(&h, "k2", true).await.as_deref(), Some("v2"));

    let deleted = h
        .call(Request::DeleteRange(DeleteRangeRequest {
            key: b"k1".to_vec(),
            ..Default::default()
        }))
        .await
        .expect("delete");
    assert!(matches!(deleted, Response::DeleteRange(d) if d.deleted == 1));
    assert_eq!(get(&h, "k1", false).await, None);

    // CAS: k2 == v2 -> put k3.
    let txn = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Value as i32,
            key: b"k2".to_vec(),
            target_union: Some(compare::TargetUnion::Value(b"v2".to_vec())),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k3".to_vec(),
                value: b"v3".to_vec(),
                ..Default::default()
            })),
        }],
        failure: Vec::new(),
    };
    let answered = h.call(Request::Txn(txn)).await.expect("txn");
    assert!(matches!(answered, Response::Txn(t) if t.succeeded));
    assert_eq!(get(&h, "k3", false).await.as_deref(), Some("v3"));

    // The watcher saw put k1, put k2, delete k1, put k3, in order.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let response = timeout(Duration::from_secs(5), watch.recv())
            .await
            .expect("events in time")
            .expect("stream open");
        for e in response.events {
            seen.push((e.r#type, String::from_utf8(e.kv.expect("kv").key).expect("utf8")));
        }
    }
    assert_eq!(
        seen,
        vec![
            (0, "k1".to_string()),
            (0, "k2".to_string()),
            (1, "k1".to_string()),
            (0, "k3".to_string())
        ]
    );

    let m = h.metrics();
    assert!(m.is_leader && m.has_leader);
    assert!(m.syncs > 0 && m.wal_fsync.count == m.syncs);
    assert!(m.proposals_applied >= 4);

    for i in 0..50 {
        put(&h, &format!("a{i}"), &format!("{i}")).await;
    }
    drop(watch);
    member.shutdown().await;
    assert_eq!(h.call(Request::Status).await.unwrap_err(), error::STOPPED);

    let (member, h) = start(options(&dir, 1, &ports, 10_000)).await;
    leader_of(&[&h]).await;
    for i in 0..50 {
        assert_eq!(get(&h, &format!("a{i}"), false).await, Some(i.to_string()));
    }
    assert_eq!(get(&h, "k1", false).await, None);
    assert_eq!(get(&h, "k3", false).await.as_deref(), Some("v3"));
    member.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_snapshots_recovers_every_acknowledged_write() {
    restart_after_snapshots("driver-snapshot", |_| {}, 25, 1).await;
}

/// Snapshots encoded over many turns (64 bytes a step) and spaced by size (the
/// state is over the 2 KiB floor), their files written by the snapshot thread
/// while writes go on: a restart still finds every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliced_snapshots_spaced_by_size_recover_every_acknowledged_write() {
    let tweak = |o: &mut MemberOptions| {
        o.node.snapshot_step_bytes = 64;
        o.node.snapshot_size_free_bytes = 2048;
    };
    restart_after_snapshots("driver-sliced", tweak, 60, 40).await;
}

async fn restart_after_snapshots(
    name: &str,
    tweak: impl Fn(&mut MemberOptions),
    puts: usize,
    value_x: usize,
) {
    let (dir, ports) = one_member(name);
    let opts = || {
        let mut o = options(&dir, 1, &ports, 8);
        tweak(&mut o);
        o
    };
    let (member, h) = start(opts()).await;
    leader_of(&[&h]).await;
    // Concurrent writers: their proposals share syncs.
    let mut writers = Vec::new();
    for w in 0..4 {
        let h = h.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..puts {
                put(&h, &format!("w{w}-{i}"), &i.to_string().repeat(value_x)).await;
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let m = h.metrics();
    assert!(m.entries_synced >= 4 * puts as u64, "{m:?}");
    // The node snapshots once raft has acknowledged everything applied, which
    // under continuous load is when the load stops.
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    let snap_dir = dir.join("n1/member/snap");
    while std::fs::read_dir(&snap_dir).expect("snap dir").count() < 2 {
        assert!(Instant::now() < deadline, "no snapshot taken");
        sleep(Duration::from_millis(10)).await;
    }
    member.shutdown().await;

    let (member, h) = start(opts()).await;
    leader_of(&[&h]).await;
    for w in 0..4 {
        for i in 0..puts {
            assert_eq!(
                get(&h, &format!("w{w}-{i}"), true).await,
                Some(i.to_string().repeat(value_x))
            );
        }
    }
    member.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_a_port_in_use_and_restarts_with_the_data_dirs_identity() {
    let (dir, ports) = one_member("driver-refusals");
    let (member, h) = start(options(&dir, 1, &ports, 10_000)).await;
    leader_of(&[&h]).await;
    put(&h, "a", "1").await;
    // The same port while the member runs.
    let other = common::fresh_dir("driver-refusals-other");
    let e = driver::start(options(&other, 1, &ports, 10_000))
        .await
        .expect_err("port in use");
    assert!(matches!(e, StartError::Bind { .. }), "{e}");
    member.shutdown().await;

    // The data dir of member 1, opened with the IDs of member 2 of another cluster
    // (on a free port): as etcd's restart, the directory's IDs and founding members
    // are taken, the configured ones ignored.
    let mut o = options(&dir, 1, &BTreeMap::from([(1, free_port())]), 10_000);
    o.node.member_id = 2;
    o.node.cluster_id ^= 0xff;
    o.node.initial_members[0].id = 2;
    o.peers = BTreeMap::new();
    let (member, h) = driver::start(o).await.expect("restart from member 1's dir");
    assert_eq!((h.member_id(), h.cluster_id()), (1, CLUSTER_ID));
    leader_of(&[&h]).await;
    assert_eq!(get(&h, "a", true).await, Some("1".to_string()));
    let list = h
        .call(Request::MemberList(MemberListRequest { linearizable: false }))
        .await;
    match list {
        Ok(Response::MemberList(l)) => {
            let ids: Vec<u64> = l.members.iter().map(|m| m.id).collect();
            assert_eq!(ids, [1]);
            assert_eq!(
                l.members[0].peer_ur_ls,
                [format!("http://127.0.0.1:{}", ports[&1])]
            );
        }
        other => panic!("member list: {other:?}"),
    }
    member.shutdown().await;
}

fn three(name: &str) -> (PathBuf, BTreeMap<u64, u16>) {
    let ports = (1..=3).map(|id| (id, free_port())).collect();
    (common::fresh_dir(name), ports)
}

/// Three members (snapshot count 10 000) that agreed on a leader and wrote a=1,
/// and that member 1 saw publish their names (started, for the membership checks).
async fn three_started(name: &str) -> (PathBuf, BTreeMap<u64, u16>, [(Member, MemberHandle); 3]) {
    let (dir, ports) = three(name);
    let one = start(options(&dir, 1, &ports, 10_000)).await;
    let two = start(options(&dir, 2, &ports, 10_000)).await;
    let three = start(options(&dir, 3, &ports, 10_000)).await;
    leader_of(&[&one.1, &two.1, &three.1]).await;
    put(&one.1, "a", "1").await;
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let list = one
            .1
            .call(Request::MemberList(MemberListRequest { linearizable: false }))
            .await;
        match list {
            Ok(Response::MemberList(l)) if l.members.iter().all(|m| !m.name.is_empty()) => break,
            Ok(_) | Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(5)).await,
            other => panic!("the members did not all publish their names: {other:?}"),
        }
    }
    (dir, ports, [one, two, three])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_replicate_survive_leader_loss_and_catch_up() {
    let (dir, ports) = three("driver-three");
    let mut members = BTreeMap::new();
    let mut handles = BTreeMap::new();
    for id in 1..=3 {
        let (m, h) = start(options(&dir, id, &ports, 20)).await;
        members.insert(id, m);
        handles.insert(id, h);
    }
    let all: Vec<&MemberHandle> = handles.values().collect();
    let leader = leader_of(&all).await;
    let follower = *handles.keys().find(|&&id| id != leader).expect("a follower");

    // Writes through a follower are forwarded by raft; a linearizable read on
    // another member sees them at once.
    put(&handles[&follower], "x", "1").await;
    let reader = *handles.keys().find(|&&id| id != follower).expect("another");
    assert_eq!(get(&handles[&reader], "x", false).await.as_deref(), Some("1"));

    // A keepalive on a follower is forwarded to the leader over the peer wire
    // (PeerMessage::Forward and ForwardReply), and so is its error.
    let granted = handles[&follower]
        .call(Request::LeaseGrant(LeaseGrantRequest { ttl: 30, id: 0 }))
        .await
        .expect("lease granted");
    let Response::LeaseGrant(granted) = granted else {
        panic!("grant answered {granted:?}")
    };
    let renewed = handles[&follower]
        .call(Request::LeaseKeepAlive(LeaseKeepAliveRequest { id: granted.id }))
        .await
        .expect("keepalive forwarded");
    assert!(matches!(renewed, Response::LeaseKeepAlive(r) if r.id == granted.id && r.ttl > 0));
    let missing = handles[&follower]
        .call(Request::LeaseKeepAlive(LeaseKeepAliveRequest { id: 12345 }))
        .await;
    assert_eq!(missing.unwrap_err(), error::LEASE_NOT_FOUND);

    // Lose the leader: the other two elect a new one and keep serving writes.
    members.remove(&leader).expect("leader").shutdown().await;
    let survivors: Vec<&MemberHandle> = handles
        .iter()
        .filter(|(&id, _)| id != leader)
        .map(|(_, h)| h)
        .collect();
    let new_leader = leader_of(&survivors).await;
    assert_ne!(new_leader, leader);
    for i in 0..40 {
        put(survivors[i % 2], &format!("y{i}"), &i.to_string()).await;
    }
    assert!(handles[&new_leader].metrics().leader_changes_seen >= 1);

    // The old leader restarts from its data dir and catches up (by snapshot:
    // snapshot_count is 20 and 40 entries went by).
    let (m, h) = start(options(&dir, leader, &ports, 20)).await;
    members.insert(leader, m);
    handles.insert(leader, h);
    let caught_up = handles[&leader].clone();
    let target = handles[&new_leader].metrics().proposals_applied;
    wait_until("the restarted member to catch up", || {
        caught_up.metrics().proposals_applied >= target
    })
    .await;
    assert_eq!(get(&caught_up, "y39", true).await.as_deref(), Some("39"));
    // Its data dir holds a snapshot with data beyond the bootstrap one at index 1
    // (installed from the leader, which compacted past what the member had, or
    // taken after catching up: the test does not tell the two apart).
    let snaps: Vec<String> = std::fs::read_dir(dir.join(format!("n{leader}/member/snap")))
        .expect("snap dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".snap") && !n.ends_with("-0000000000000001.snap"))
        .collect();
    assert!(!snaps.is_empty(), "no snapshot saved: {snaps:?}");
    assert_eq!(get(&caught_up, "x", true).await.as_deref(), Some("1"));
    assert_eq!(get(&caught_up, "y0", false).await.as_deref(), Some("0"));

    for (_, m) in members {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_cluster_is_refused_and_a_restarted_peer_is_redialed() {
    let (dir, ports) = three("driver-transport");
    // Members 1 and 2 of cluster c1; "member 3" on port 3 belongs to another
    // cluster, so 1 and 2 must refuse it (and it them).
    let (m1, h1) = start(options(&dir, 1, &ports, 10_000)).await;
    let (m2, h2) = start(options(&dir, 2, &ports, 10_000)).await;
    let mut foreign = options(&dir, 3, &ports, 10_000);
    foreign.node.cluster_id = 0xbad;
    let (m3, h3) = start(foreign).await;
    let leader = leader_of(&[&h1, &h2]).await;
    put(&h1, "a", "1").await;
    sleep(Duration::from_millis(300)).await;
    let foreign_metrics = h3.metrics();
    assert!(
        !foreign_metrics.has_leader || foreign_metrics.leader_id == 3,
        "the foreign member joined no leader of ours: {foreign_metrics:?}"
    );
    assert_ne!(leader, 3);
    m3.shutdown().await;

    // Restart member 2: member 1 redials it and the two form a quorum again. It is
    // restarted with other IDs for every member and the cluster (as another
    // --initial-cluster-token gives): its data directory's IDs and founding members
    // are the ones used, as etcd's restart.
    m2.shutdown().await;
    sleep(Duration::from_millis(100)).await;
    let mut o = options(&dir, 2, &ports, 10_000);
    o.node.member_id += 100;
    o.node.cluster_id = 0xbad2;
    for m in &mut o.node.initial_members {
        m.id += 100;
    }
    o.peers = o
        .node
        .initial_members
        .iter()
        .map(|m| (m.id, m.peer_ur_ls.clone()))
        .collect();
    let (m2, h2) = start(o).await;
    assert_eq!((h2.member_id(), h2.cluster_id()), (2, CLUSTER_ID));
    leader_of(&[&h1, &h2]).await;
    put(&h2, "b", "2").await;
    assert_eq!(get(&h1, "b", false).await.as_deref(), Some("2"));
    m1.shutdown().await;
    m2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_while_cut_off_stops_when_its_peers_refuse_it() {
    let (dir, ports, [(m1, h1), (m2, h2), (m3, _)]) = three_started("driver-removed-cut-off").await;

    // Member 3 is down while the others remove it: it never applies its removal.
    m3.shutdown().await;
    let removed = call_while_unavailable(&h1, Request::MemberRemove(MemberRemoveRequest { id: 3 })).await;
    assert!(
        matches!(removed, Response::MemberRemove(_)),
        "member remove answered {removed:?}"
    );
    // Both survivors applied it (a linearizable read on member 2 waits for that).
    put(&h1, "b", "2").await;
    assert_eq!(get(&h2, "b", false).await.as_deref(), Some("2"));

    // It comes back: its peers refuse it as removed, and it stops by itself.
    let (m3, _h3) = start(options(&dir, 3, &ports, 10_000)).await;
    let stopped = timeout(Duration::from_millis(WAIT_MS), m3.stopped()).await;
    assert_eq!(stopped.expect("member 3 stopped by itself"), StopReason::Removed);
    m3.shutdown().await;

    // The two left serve on.
    put(&h2, "c", "3").await;
    assert_eq!(get(&h1, "c", false).await.as_deref(), Some("3"));
    m1.shutdown().await;
    m2.shutdown().await;
}

/// Dials a member's peer port by hand with `hello` and returns its reply.
async fn raw_hello(addr: std::net::SocketAddr, hello: PeerHello) -> PeerHelloReply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = Vec::new();
    assert!(wire::put_frame(&mut buf, &hello));
    stream.write_all(&buf).await.expect("write hello");
    wire::read_frame(&mut stream).await.expect("a reply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_refuses_another_cluster_member_or_version() {
    let (dir, ports) = one_member("driver-handshake");
    let (member, h) = start(options(&dir, 1, &ports, 10_000)).await;
    let addr = member.peer_addrs()[0];
    let good = PeerHello {
        protocol_version: PEER_PROTOCOL_VERSION,
        cluster_id: CLUSTER_ID,
        from: 9,
        to: 1,
        peer_urls: vec![url(free_port())],
    };
    // Member 9 is no member this one knows: its messages are taken (etcd's pipeline
    // takes an unknown sender's), and it is told it was not found.
    let reply = raw_hello(addr, good.clone()).await;
    assert!(reply.accepted, "{reply:?}");
    assert!(reply.sender_unknown, "{reply:?}");
    assert_eq!((reply.cluster_id, reply.member_id), (CLUSTER_ID, 1));
    for bad in [
        PeerHello {
            cluster_id: 0xbad,
            ..good.clone()
        },
        PeerHello {
            to: 2,
            ..good.clone()
        },
        PeerHello {
            protocol_version: PEER_PROTOCOL_VERSION + 1,
            ..good.clone()
        },
    ] {
        let reply = raw_hello(addr, bad.clone()).await;
        assert!(!reply.accepted, "{bad:?} accepted");
        assert!(!reply.reason.is_empty());
    }
    // The member is unharmed.
    leader_of(&[&h]).await;
    put(&h, "still", "fine").await;
    member.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_that_falls_behind_is_dropped_without_stalling_the_member() {
    let (dir, ports) = one_member("driver-slow-watch");
    let (member, h) = start(options(&dir, 1, &ports, 10_000)).await;
    leader_of(&[&h]).await;
    let mut slow = h.open_watch_stream().await;
    slow.send(WatchStreamRequest::Create(WatchCreateRequest {
        key: b"s".to_vec(),
        range_end: b"t".to_vec(),
        ..Default::default()
    }))
    .await
    .expect("watch created");
    // More responses than the stream's channel holds, never read meanwhile.
    let writers_n = 8;
    let per_writer = driver::WATCH_STREAM_RESPONSES_MAX / writers_n + 16;
    let mut writers = Vec::new();
    for w in 0..writers_n {
        let h = h.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..per_writer {
                put(&h, &format!("s{w}-{i}"), "v").await;
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    assert!(slow.overflowed());
    let mut received = 0;
    while timeout(Duration::from_secs(5), slow.recv())
        .await
        .expect("the dropped stream ends")
        .is_some()
    {
        received += 1;
    }
    assert_eq!(received, driver::WATCH_STREAM_RESPONSES_MAX);
    // The member kept serving, and new streams work.
    let mut fresh = h.open_watch_stream().await;
    fresh
        .send(WatchStreamRequest::Create(WatchCreateRequest {
            key: b"s0-0".to_vec(),
            ..Default::default()
        }))
        .await
        .expect("watch created");
    assert!(fresh.recv().await.expect("created").created);
    member.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_a_watch_stream_has_not_read_are_pending_and_its_watchers_counted() {
    let (dir, ports) = one_member("driver-pending-events");
    let (member, h) = start(options(&dir, 1, &ports, 10_000)).await;
    leader_of(&[&h]).await;
    let mut watch = h.open_watch_stream().await;
    for _ in 0..2 {
        watch
            .send(WatchStreamRequest::Create(WatchCreateRequest {
                key: b"p".to_vec(),
                ..Default::default()
            }))
            .await
            .expect("watch created");
    }
    wait_until("two watchers", || h.metrics().watchers == 2).await;
    for v in ["1", "2", "3"] {
        put(&h, "p", v).await;
    }
    // Three events to each of the two watchers, none read yet.
    wait_until("six pending events", || h.metrics().watch_pending_events == 6).await;
    let mut read = 0;
    while read < 6 {
        let response = timeout(Duration::from_secs(5), watch.recv())
            .await
            .expect("a response")
            .expect("the stream is open");
        read += response.events.len();
    }
    // The count is published at the end of the member's next turn (it ticks).
    wait_until("nothing pending", || h.metrics().watch_pending_events == 0).await;
    drop(watch);
    wait_until("no watchers", || h.metrics().watchers == 0).await;
    member.shutdown().await;
}

/// Adds a voting member through `h` (of a cluster listening on `ports`) and starts
/// it with start mode Existing: its ID, the member and its handle.
async fn add_and_join(
    h: &MemberHandle,
    dir: &Path,
    ports: &BTreeMap<u64, u16>,
) -> (u64, Member, MemberHandle) {
    let port = free_port();
    let add = Request::MemberAdd(MemberAddRequest {
        peer_ur_ls: vec![url(port)],
        is_learner: false,
    });
    let added = call_while_unavailable(h, add).await;
    let Response::MemberAdd(added) = added else {
        panic!("member add answered {added:?}")
    };
    let id = added.member.expect("the new member").id;
    let mut all_ports = ports.clone();
    all_ports.insert(id, port);
    let mut o = options(dir, id, &all_ports, 10_000);
    o.node.initial_members = added.members;
    o.start = StartMode::Existing;
    let (member, handle) = start(o).await;
    (id, member, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_at_runtime_joins_with_start_mode_existing() {
    let (dir, ports) = one_member("driver-join");
    let (m1, h1) = start(options(&dir, 1, &ports, 10_000)).await;
    leader_of(&[&h1]).await;
    put(&h1, "before", "1").await;
    // The new member knows the cluster from the member list; member 1 learns its
    // URL from its own applied member list (not from its options).
    let (_, m2, h2) = add_and_join(&h1, &dir, &ports).await;
    leader_of(&[&h1, &h2]).await;
    assert_eq!(get(&h2, "before", false).await.as_deref(), Some("1"));
    put(&h2, "after", "2").await;
    assert_eq!(get(&h1, "after", false).await.as_deref(), Some("2"));
    m2.shutdown().await;
    m1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_member_catches_up_from_a_leader_added_after_what_it_applied() {
    let (dir, ports, [(m1, h1), (m2, h2), (m3, h3)]) = three_started("driver-lagging").await;

    // Member 3 falls behind: it is down while member 4 is added.
    m3.shutdown().await;
    drop(h3);
    let (id4, m4, h4) = add_and_join(&h1, &dir, &ports).await;
    let live = [&h1, &h2, &h4];
    let leader = leader_of(&live).await;
    put(&h4, "b", "2").await;

    // Member 4 takes the lead.
    if leader != id4 {
        let on = live.iter().find(|h| h.member_id() == leader).expect("the leader");
        let moved =
            call_while_unavailable(on, Request::MoveLeader(MoveLeaderRequest { target_id: id4 })).await;
        assert!(
            matches!(moved, Response::MoveLeader(_)),
            "move leader answered {moved:?}"
        );
    }
    assert_eq!(leader_of(&live).await, id4);

    // Member 3 comes back knowing members 1 to 3 only. Its leader is a member it
    // does not know: it takes its messages and answers it at the URLs its hello
    // named, catches up, and learns member 4.
    let (m3, h3) = start(options(&dir, 3, &ports, 10_000)).await;
    put(&h4, "c", "3").await;
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    // A serializable read on member 3 sees only what it applied.
    while get(&h3, "c", true).await.as_deref() != Some("3") {
        assert!(
            Instant::now() < deadline,
            "member 3 did not catch up from member 4"
        );
        sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(leader_of(&[&h1, &h2, &h3, &h4]).await, id4);
    put(&h3, "d", "4").await;
    assert_eq!(get(&h4, "d", false).await.as_deref(), Some("4"));
    for m in [m1, m2, m3, m4] {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_moved_to_another_peer_port_is_reached_without_restarting_the_others() {
    let (dir, ports, [(m1, h1), (m2, _), (m3, h3)]) = three_started("driver-move").await;

    // Member 2 stops; the cluster is told its peer URL moves to a new port.
    m2.shutdown().await;
    let new_port = free_port();
    let update = Request::MemberUpdate(MemberUpdateRequest {
        id: 2,
        peer_ur_ls: vec![url(new_port)],
    });
    let updated = call_while_unavailable(&h1, update).await;
    assert!(
        matches!(updated, Response::MemberUpdate(_)),
        "member update answered {updated:?}"
    );
    put(&h1, "b", "2").await;

    // Member 2 comes back on the new port. Members 1 and 3 keep running with the
    // old port in their options: they must reach it from the updated member list.
    let mut moved = ports.clone();
    moved.insert(2, new_port);
    let (m2, h2) = start(options(&dir, 2, &moved, 10_000)).await;
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    // A serializable read on member 2 sees only what the leader replicated to it.
    while get(&h2, "b", true).await.as_deref() != Some("2") {
        assert!(
            Instant::now() < deadline,
            "member 2 was not reached at its new port"
        );
        sleep(Duration::from_millis(20)).await;
    }
    put(&h2, "c", "3").await;
    assert_eq!(get(&h3, "c", false).await.as_deref(), Some("3"));
    for m in [m1, m2, m3] {
        m.shutdown().await;
    }
}
