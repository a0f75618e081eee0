//! etcd's corruption checks against a planted divergence (the debug-build fault switch
//! `DETCD_TEST_FAULT_CORRUPT_HASH`: the member reports a wrong hash): the initial check
//! refuses to start the member, the periodic check raises the CORRUPT alarm, and the
//! cluster then refuses writes as etcd's does, until the alarm is disarmed.

use std::time::{Duration, Instant};

use etcd_client::{AlarmAction, AlarmType};

use super::harness::Cluster;

const FAULT_ENV: &str = "DETCD_TEST_FAULT_CORRUPT_HASH";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_divergence_is_caught_by_the_initial_and_periodic_checks() {
    let mut cluster = Cluster::start_with("corrupt", 3, &["--experimental-corrupt-check-time=1s"]).await;
    let leader = cluster.wait_leader().await;
    let mut c = cluster.client(leader).await;
    c.put("k", "v", None).await.expect("put");
    let victim = (leader + 1) % 3;
    let victim_id = cluster.member_id(victim).await;

    // The initial check refuses it; the periodic check must find it.
    refused_by_the_initial_check_then_restarted(&mut cluster, victim);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alarms = c
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .expect("alarm list");
        if alarms
            .alarms()
            .iter()
            .any(|a| a.alarm() == AlarmType::Corrupt && a.member_id() == victim_id)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no CORRUPT alarm\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Under the alarm writes fail with etcd's error; reads are served.
    let e = c.put("k", "v2", None).await.expect_err("put under CORRUPT");
    assert!(e.to_string().contains("corrupt cluster"), "{e}");
    assert_eq!(c.get("k", None).await.expect("get").kvs().len(), 1);
    let (code, body) = super::harness::http_get(cluster.members[leader].client_port, "/health");
    assert_eq!(
        (code, body.as_str()),
        // (Go's http.Error ends etcd's refusal with a newline.)
        (503, "{\"health\":\"false\",\"reason\":\"ALARM CORRUPT\"}\n")
    );

    // Disarmed, with the fault gone, writes go through again.
    cluster.members[victim].terminate();
    cluster.members[victim].env.clear();
    cluster.members[victim].spawn();
    let mut only_victim = etcd_client::AlarmOptions::new();
    only_victim.with_member(victim_id);
    c.alarm(AlarmAction::Deactivate, AlarmType::Corrupt, Some(only_victim))
        .await
        .expect("disarm");
    c.put("k", "v3", None).await.expect("put after disarm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compaction_hash_check_compares_each_compaction_once_and_catches_a_divergence() {
    let flags = [
        "--experimental-compact-hash-check-enabled=true",
        "--experimental-compact-hash-check-time=1s",
    ];
    let mut cluster = Cluster::start_with("compact-hash", 3, &flags).await;
    let leader = cluster.wait_leader().await;
    let mut c = cluster.client(leader).await;
    for i in 0..5 {
        c.put("k", format!("v{i}"), None).await.expect("put");
    }
    let compacted = c
        .put("k", "v5", None)
        .await
        .expect("put")
        .header()
        .expect("header")
        .revision();
    c.compact(compacted - 2, None).await.expect("compact");
    // A healthy cluster: the compaction is checked on every peer, once.
    let wait_log = |cluster: &Cluster, needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logs = cluster.logs();
            if logs.contains(needle) {
                return logs;
            }
            assert!(Instant::now() < deadline, "never logged {needle:?}\n{logs}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let checked = format!(
        "successfully checked hash on whole cluster number-of-peers-checked=2 revision={}",
        compacted - 2
    );
    wait_log(&cluster, &checked);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(cluster.logs().matches(&checked).count(), 1, "checked again");

    // A follower that diverged (the planted fault) at the next compaction.
    let victim = (leader + 1) % 3;
    cluster.members[victim].terminate();
    cluster.members[victim].env.push((FAULT_ENV.into(), "1".into()));
    cluster.members[victim].spawn();
    c.put("k", "v6", None).await.expect("put");
    c.compact(compacted, None).await.expect("compact");
    wait_log(&cluster, "failed compaction hash check");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alarms = c
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .expect("alarm list");
        // etcd 3.5 cannot tell which member is wrong: the alarm names member 0.
        if alarms
            .alarms()
            .iter()
            .any(|a| a.alarm() == AlarmType::Corrupt && a.member_id() == 0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no CORRUPT alarm\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let e = c.put("k", "v7", None).await.expect_err("put under CORRUPT");
    assert!(e.to_string().contains("corrupt cluster"), "{e}");
}

/// The peers are asked on their peer URLs (`/members/hashkv`), which need no client
/// credentials: with auth enabled the initial and periodic checks still catch the
/// planted divergence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checks_ask_the_peer_port_and_work_while_auth_is_enabled() {
    let mut cluster = Cluster::start_with(
        "corrupt-auth",
        3,
        &["--experimental-corrupt-check-time=1s", "--bcrypt-cost", "4"],
    )
    .await;
    let leader = cluster.wait_leader().await;
    let mut admin = cluster.client(leader).await;
    admin.put("k", "v", None).await.expect("put");
    admin.user_add("root", "rootpw", None).await.expect("add root");
    admin.user_grant_role("root", "root").await.expect("grant root");
    admin.auth_enable().await.expect("enable");
    let options = etcd_client::ConnectOptions::new()
        .with_user("root", "rootpw")
        .with_timeout(Duration::from_secs(10));
    let mut root = etcd_client::Client::connect([cluster.members[leader].endpoint()], Some(options))
        .await
        .expect("root login");
    let victim = (leader + 1) % 3;
    let victim_id = cluster.member_id(victim).await;

    refused_by_the_initial_check_then_restarted(&mut cluster, victim);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alarms = root
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .expect("alarm list");
        if alarms
            .alarms()
            .iter()
            .any(|a| a.alarm() == AlarmType::Corrupt && a.member_id() == victim_id)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no CORRUPT alarm\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let e = root.put("k", "v2", None).await.expect_err("put under CORRUPT");
    assert!(e.to_string().contains("corrupt cluster"), "{e}");
}

/// Plants the divergence in `victim`, restarts it with the initial check (it must
/// refuse to start with etcd's message), then starts it again without that check.
fn refused_by_the_initial_check_then_restarted(cluster: &mut Cluster, victim: usize) {
    cluster.members[victim].terminate();
    cluster.members[victim].env.push((FAULT_ENV.into(), "1".into()));
    cluster.members[victim]
        .extra_args
        .push("--experimental-initial-corrupt-check=true".into());
    cluster.members[victim].spawn();
    let status = cluster.members[victim]
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the diverged member kept running\n{}", cluster.logs()));
    assert_eq!(status.code(), Some(1));
    let logs = cluster.logs();
    assert!(logs.contains("found data inconsistency with peers"), "{logs}");
    cluster.members[victim].extra_args.pop();
    cluster.members[victim].spawn();
}
