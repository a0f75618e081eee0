//! A three-member cluster's series on `/metrics`: a follower counts the writes it
//! applies in `etcd_mvcc_put_total` (as etcd's mvcc layer does on every member), and
//! the peer transport's `etcd_network_*` series name their peers, move with the
//! traffic, and follow a peer going away; every member times its probes of every
//! peer in `etcd_network_peer_round_trip_time_seconds{To}`.

use std::time::{Duration, Instant};

use super::harness::{http_get, Cluster};

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn scrape(cluster: &Cluster, i: usize) -> String {
    let (code, text) = http_get(cluster.members[i].client_port, "/metrics");
    assert_eq!(code, 200, "{text}");
    text
}

/// Scrapes member `i` until `ok` holds for its text (10 s at most).
fn wait_for(cluster: &Cluster, i: usize, what: &str, ok: impl Fn(&str) -> bool) -> String {
    wait_within(cluster, i, what, Duration::from_secs(10), ok)
}

fn wait_within(
    cluster: &Cluster,
    i: usize,
    what: &str,
    within: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = scrape(cluster, i);
        if ok(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen on member {i} within {within:?}\n{text}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_counts_applied_puts_and_peer_series_follow_the_traffic() {
    let mut cluster = Cluster::start("cluster-metrics", 3).await;
    let leader = cluster.wait_leader().await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let leader_id = format!("{:x}", cluster.member_id(leader).await);
    let follower_id = format!("{:x}", cluster.member_id(follower).await);
    let other_id = format!("{:x}", cluster.member_id(other).await);

    let put_total = |text: &str| sample(text, "etcd_mvcc_put_total").unwrap_or(0.0);
    let before = scrape(&cluster, follower);
    let puts_before = put_total(&before);
    let received_before = sample(
        &before,
        &format!("etcd_network_peer_received_bytes_total{{From=\"{leader_id}\"}}"),
    )
    .unwrap_or(0.0);
    // Five puts through the leader's own client: none reaches the follower's API.
    let mut c = cluster.client(leader).await;
    for i in 0..5 {
        c.put(format!("k{i}"), "v", None).await.expect("put");
    }
    let text = wait_for(&cluster, follower, "the follower's put_total", |t| {
        put_total(t) >= puts_before + 5.0
    });
    assert_eq!(put_total(&text), puts_before + 5.0, "{text}");
    let received = sample(
        &text,
        &format!("etcd_network_peer_received_bytes_total{{From=\"{leader_id}\"}}"),
    )
    .expect("bytes received from the leader");
    assert!(received > received_before, "{received} after {received_before}");
    assert!(
        sample(
            &text,
            &format!("etcd_network_peer_sent_bytes_total{{To=\"{leader_id}\"}}")
        )
        .is_some_and(|v| v > 0.0),
        "{text}"
    );
    // Links are dialed when there is something to send: a follower talks to the
    // leader only, the leader to everyone.
    let active = |local: &str, remote: &str| {
        format!("etcd_network_active_peers{{Local=\"{local}\",Remote=\"{remote}\"}}")
    };
    assert_eq!(
        sample(&text, &active(&follower_id, &leader_id)),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE etcd_network_peer_sent_bytes_total counter")
            && text.contains("# TYPE etcd_network_active_peers gauge"),
        "{text}"
    );
    let text = scrape(&cluster, leader);
    for peer in [&follower_id, &other_id] {
        assert_eq!(sample(&text, &active(&leader_id, peer)), Some(1.0), "{text}");
    }

    // The peer port answers a probe as etcd's probing handler does.
    let (code, body) = http_get(cluster.members[follower].peer_port, "/raft/probing");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.starts_with("{\"OK\":true,\"Now\":\"") && body.ends_with("Z\"}\n"),
        "{body:?}"
    );
    // Each member probes each peer's /raft/probing and reports the smoothed round
    // trip (first 5 s after it starts, as etcd): one series per peer, none for itself.
    let ids = [&leader_id, &follower_id, &other_id];
    for (i, me) in [(leader, &leader_id), (follower, &follower_id)] {
        let peers: Vec<&String> = ids.iter().copied().filter(|id| *id != me).collect();
        let rtt = |t: &str, id: &str, part: &str| {
            sample(
                t,
                &format!("etcd_network_peer_round_trip_time_seconds_{part}{{To=\"{id}\"}}"),
            )
        };
        let text = wait_within(
            &cluster,
            i,
            "round trips to every peer",
            Duration::from_secs(20),
            |t| peers.iter().all(|id| rtt(t, id, "sum").is_some_and(|v| v > 0.0)),
        );
        assert!(
            text.contains("# TYPE etcd_network_peer_round_trip_time_seconds histogram"),
            "{text}"
        );
        for id in &peers {
            assert!(rtt(&text, id, "count").is_some_and(|n| n >= 1.0), "{text}");
            assert!(
                text.contains(&format!(
                    "etcd_network_peer_round_trip_time_seconds_bucket{{To=\"{id}\",le=\"3.2768\"}}"
                )),
                "{text}"
            );
        }
        assert!(rtt(&text, me, "count").is_none(), "{text}");
    }

    // A follower goes away: the leader sees it inactive, disconnected once, and
    // counts the messages it could not send it.
    cluster.members[other].kill();
    let disconnected =
        format!("etcd_network_disconnected_peers_total{{Local=\"{leader_id}\",Remote=\"{other_id}\"}}");
    let failures = format!("etcd_network_peer_sent_failures_total{{To=\"{other_id}\"}}");
    let text = wait_for(&cluster, leader, "the lost peer", |t| {
        sample(t, &active(&leader_id, &other_id)) == Some(0.0)
            && sample(t, &disconnected).is_some()
            && sample(t, &failures).is_some_and(|v| v > 0.0)
    });
    assert_eq!(sample(&text, &disconnected), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, &active(&leader_id, &follower_id)),
        Some(1.0),
        "{text}"
    );
}
