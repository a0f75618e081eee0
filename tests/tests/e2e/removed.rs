//! A member removed from the cluster while it was down never applies its removal: when
//! it comes back, its peers refuse it as removed and it shuts down by itself, as etcd's
//! member does on the 410 Gone of its peers.

use std::time::{Duration, Instant};

use super::harness::{read, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_while_down_shuts_down_by_itself_when_it_comes_back() {
    let mut cluster = Cluster::start("removed-while-down", 3).await;
    let leader = cluster.wait_leader().await;
    let gone = (leader + 1) % 3;
    let id = cluster.member_id(gone).await;
    assert!(cluster.members[gone].terminate().success());

    let mut c = cluster.client_all().await;
    // The strict reconfiguration check refuses until the members published their
    // names: retry for a while.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.member_remove(id).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("member remove: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("member remove: {e}\n{}", cluster.logs()),
        }
    }
    c.put("after-removal", "1", None).await.expect("put");

    cluster.members[gone].spawn();
    let status = cluster.members[gone].wait_exit(Duration::from_secs(30));
    let status = status.unwrap_or_else(|| panic!("the removed member still runs\n{}", cluster.logs()));
    assert!(status.success(), "{status}\n{}", cluster.logs());
    let log = read(&cluster.members[gone].log);
    assert!(
        log.contains("the member has been permanently removed from the cluster"),
        "{log}"
    );
    c.put("still-serving", "1", None).await.expect("put");
}
