//! The learner walk-through: `member add --learner`, start the new member with
//! `--initial-cluster-state existing`, promote it once it caught up, and read through it
//! linearizably; a learner's health endpoints as etcd answers them.

use std::time::{Duration, Instant};

use etcd_client::{Error, GetOptions, MemberAddOptions};

use super::harness::{http_get, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_joins_catches_up_is_promoted_and_serves_linearizable_reads() {
    let mut cluster = Cluster::start("learner", 1).await;
    let mut c = cluster.client(0).await;
    for i in 0..50 {
        c.put(format!("k{i:02}"), format!("v{i}"), None)
            .await
            .expect("put");
    }
    let joiner = cluster.new_joiner("m1");
    let added = c
        .member_add(
            [cluster.members[joiner].peer_url()],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .expect("add learner");
    let id = added.member().expect("member").id();
    cluster.members[joiner].spawn();

    // A learner serves serializable reads once it caught up, and refuses linearizable ones.
    let mut l = cluster.client(joiner).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let g = l
            .get(
                "k",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_serializable()
                        .with_count_only(),
                ),
            )
            .await;
        if g.is_ok_and(|g| g.count() == 50) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "learner did not catch up\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match l.get("k00", None).await {
        Err(Error::GRpcStatus(s)) => assert_eq!(s.message(), "etcdserver: rpc not supported for learner"),
        other => panic!("linearizable read on a learner: {other:?}"),
    }
    // Its health as etcd reports a learner's: /health and /livez answer (etcd 3.5.1's
    // learner: 200 to /health and /health?serializable=true); /readyz fails only its
    // non_learner check (etcd 3.5.13+, 3.6).
    let port = cluster.members[joiner].client_port;
    let healthy = (200, r#"{"health":"true","reason":""}"#.to_string());
    assert_eq!(http_get(port, "/health"), healthy);
    assert_eq!(http_get(port, "/health?serializable=true"), healthy);
    assert_eq!(http_get(port, "/livez"), (200, "ok\n".to_string()));
    assert_eq!(
        http_get(port, "/readyz"),
        (
            503,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[-]non_learner failed: not supported for learner\n\n"
                .to_string()
        )
    );
    assert_eq!(
        http_get(port, "/readyz/non_learner"),
        (
            503,
            "[-]non_learner failed: not supported for learner\n\n".to_string()
        )
    );
    assert_eq!(
        http_get(port, "/readyz?exclude=non_learner"),
        (200, "ok\n".to_string())
    );
    // A learner is ready as etcd's is (READY=1 to systemd with it): it follows a leader and
    // its name is published, though it refuses linearizable reads.
    let log = super::harness::read(&cluster.members[joiner].log);
    assert!(
        log.contains("\"msg\":\"ready to serve client requests\""),
        "{log}"
    );

    // Promote (retrying while the leader still counts it behind).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.member_promote(id).await {
            Ok(r) => {
                assert!(r.members().iter().all(|m| !m.is_learner()));
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "promote failed: {e}\n{}",
                cluster.logs()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.put("after-promote", "1", None)
        .await
        .expect("write with two voters");
    let g = l
        .get("after-promote", None)
        .await
        .expect("linearizable read on the promoted member");
    assert_eq!(g.kvs()[0].value(), b"1");
    assert_eq!(http_get(port, "/readyz/non_learner"), (200, "ok\n".to_string()));
    let g = l
        .get("k", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .expect("read");
    assert_eq!(g.count(), 50);
}
