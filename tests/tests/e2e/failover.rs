//! Killing the leader of three members: writes continue once the other two elect a new
//! leader, and the old leader catches up after its restart.

use std::time::{Duration, Instant};

use etcd_client::GetOptions;

use super::harness::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_continue_after_the_leader_is_killed() {
    let mut cluster = Cluster::start("failover", 3).await;
    let leader = cluster.wait_leader().await;
    let mut c = cluster.client_all().await;
    c.put("before", "1", None).await.expect("put before");
    cluster.members[leader].kill();
    let killed_at = Instant::now();
    let mut survivors = cluster.client_all().await;
    let mut written = 0;
    while written < 20 {
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "no writes 20 s after the leader died\n{}",
            cluster.logs()
        );
        match survivors.put(format!("after/{written}"), "1", None).await {
            Ok(_) => written += 1,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let new_leader = cluster.wait_leader().await;
    assert_ne!(new_leader, leader);
    let after = survivors
        .get("after/", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .expect("get");
    assert_eq!(after.count(), 20);
    // The old leader rejoins as a follower and catches up.
    cluster.members[leader].spawn();
    let mut old = cluster.client(leader).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let g = old
            .get(
                "after/",
                Some(GetOptions::new().with_prefix().with_serializable()),
            )
            .await;
        if g.is_ok_and(|g| g.count() == 20) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted member did not catch up\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
