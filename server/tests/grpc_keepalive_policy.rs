//! `--grpc-keepalive-min-time` (server/src/h2_pings.rs): a client that pings more
//! often than the minimum gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings", as from
//! etcd (grpc-go's enforcement policy); one that pings slowly keeps its connection.
//! The client is the `h2` crate speaking raw HTTP/2 with one Watch stream open.
//!
//! Skipped (with a notice) without `etcd` and `etcdctl` on PATH (the servers are
//! started and checked healthy with them), a failure under CI.

use std::time::Duration;

use detcd_testkit::{require_tools, start_server, start_server_with};

/// How a connection that pinged `pings` times, `interval` apart, ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// Still open after the last pong.
    Open,
    /// GOAWAY with this reason; whether its debug data said "too_many_pings".
    GoAway(h2::Reason, bool),
    Other(String),
}

async fn ping(endpoint: &str, interval: Duration, pings: usize) -> Ended {
    let tcp = tokio::net::TcpStream::connect(endpoint).await.expect("connect");
    let (client, mut connection) = h2::client::handshake(tcp).await.expect("handshake");
    let mut ping_pong = connection.ping_pong().expect("ping_pong");
    let driven = tokio::spawn(connection);
    // One open stream (a Watch whose request never ends): the minimum applies, not
    // the two hours of a connection without streams.
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::post(format!("http://{endpoint}/etcdserverpb.Watch/Watch"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (_response, _body) = client.send_request(request, false).expect("send");
    for _ in 0..pings {
        if ping_pong.ping(h2::Ping::opaque()).await.is_err() {
            break;
        }
        tokio::time::sleep(interval).await;
    }
    if !driven.is_finished() {
        // Give a GOAWAY in flight a moment to arrive.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if !driven.is_finished() {
        driven.abort();
        return Ended::Open;
    }
    match driven.await.expect("connection task") {
        // h2's error shows the GOAWAY's debug data in its Debug text only.
        Err(e) if e.is_go_away() => Ended::GoAway(
            e.reason().expect("a reason"),
            format!("{e:?}").contains("too_many_pings"),
        ),
        other => Ended::Other(format!("{other:?}")),
    }
}

fn too_many_pings() -> Ended {
    Ended::GoAway(h2::Reason::ENHANCE_YOUR_CALM, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_pings_get_goaway_enhance_your_calm_from_detcd_as_from_etcd() {
    if !require_tools(&["etcd", "etcdctl"], "grpc_keepalive_policy") {
        return;
    }
    // Both with the default minimum, 5 s.
    let etcd = start_server("etcd", "keepalive-etcd");
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "keepalive-detcd");
    let fast = Duration::from_millis(10);
    assert_eq!(ping(&etcd.endpoint, fast, 20).await, too_many_pings(), "etcd");
    assert_eq!(ping(&detcd.endpoint, fast, 20).await, too_many_pings(), "detcd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_spaced_by_the_minimum_keep_the_connection() {
    if !require_tools(&["etcd", "etcdctl"], "grpc_keepalive_policy") {
        return;
    }
    let detcd = start_server_with(
        env!("CARGO_BIN_EXE_detcd"),
        "keepalive-slow",
        &["--grpc-keepalive-min-time=100ms"],
    );
    assert_eq!(
        ping(&detcd.endpoint, Duration::from_millis(150), 6).await,
        Ended::Open
    );
    // The same minimum, pinged faster: refused.
    assert_eq!(
        ping(&detcd.endpoint, Duration::from_millis(5), 20).await,
        too_many_pings()
    );
}
