//! The revisions `detcd grpc-proxy` answers on shared watches: a watcher from "now"
//! that joins an upstream watch of a quiet key (other keys written since that watch
//! was made) is created at the cluster's current revision, not at the last revision
//! the shared watch saw; a progress request is answered with the cluster's current
//! revision; and the next event of the key reaches both watchers.
//!
//! Skipped (with a notice) without `etcd` and `etcdctl` on PATH; a failure under CI.

#[path = "support/proxy_proc.rs"]
mod proxy_proc;

use std::time::Duration;

use detcd_proto::etcdserverpb::watch_client::WatchClient;
use detcd_proto::etcdserverpb::watch_request::RequestUnion;
use detcd_proto::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse};
use detcd_testkit::{etcdctl_ok, start_server};
use proxy_proc::{grpc_proxy, tools_present, DETCD};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// The cluster's revision, by a linearizable get's header.
fn revision(endpoint: &str) -> i64 {
    let out = etcdctl_ok(endpoint, &["get", "nothing", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["header"]["revision"].as_i64().expect("revision")
}

struct Stream {
    requests: mpsc::Sender<WatchRequest>,
    answers: Streaming<WatchResponse>,
}

impl Stream {
    async fn open(addr: &str) -> Stream {
        let mut client = WatchClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        let (requests, rx) = mpsc::channel(4);
        let answers = client
            .watch(ReceiverStream::new(rx))
            .await
            .expect("watch stream")
            .into_inner();
        Stream { requests, answers }
    }

    async fn send(&self, request: RequestUnion) {
        let request = WatchRequest {
            request_union: Some(request),
        };
        self.requests.send(request).await.expect("send");
    }

    /// A watcher of `key` from now; its `created` answer.
    async fn watch(&mut self, key: &str) -> WatchResponse {
        let create = WatchCreateRequest {
            key: key.as_bytes().to_vec(),
            ..WatchCreateRequest::default()
        };
        self.send(RequestUnion::CreateRequest(create)).await;
        let created = self.next().await;
        assert!(created.created, "{created:?}");
        created
    }

    async fn next(&mut self) -> WatchResponse {
        tokio::time::timeout(Duration::from_secs(10), self.answers.message())
            .await
            .expect("an answer within 10 s")
            .expect("stream ok")
            .expect("stream open")
    }
}

fn header_revision(r: &WatchResponse) -> i64 {
    r.header.as_ref().map_or(0, |h| h.revision)
}

#[test]
fn a_watcher_joining_a_quiet_shared_watch_starts_at_the_clusters_revision() {
    if !tools_present("a_watcher_joining_a_quiet_shared_watch_starts_at_the_clusters_revision") {
        return;
    }
    let detcd = start_server(DETCD, "gp-watch-rev");
    let proxy = grpc_proxy(DETCD, &detcd.endpoint, &[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut first = Stream::open(&proxy.addr).await;
        let created = first.watch("quiet").await;
        let at_first = header_revision(&created);
        // Other keys move the cluster on; the shared watch of "quiet" sees nothing.
        for i in 0..5 {
            etcdctl_ok(&detcd.endpoint, &["put", &format!("other{i}"), "v"]);
        }
        let now = revision(&detcd.endpoint);
        assert_eq!(now, at_first + 5);
        let mut second = Stream::open(&proxy.addr).await;
        let created = second.watch("quiet").await;
        assert_eq!(
            header_revision(&created),
            now,
            "the joining watcher's created revision is the cluster's: {created:?}"
        );
        second
            .send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
            .await;
        let progress = second.next().await;
        assert_eq!(
            (progress.watch_id, header_revision(&progress)),
            (-1, now),
            "a progress request answers the cluster's revision: {progress:?}"
        );
        etcdctl_ok(&detcd.endpoint, &["put", "quiet", "v"]);
        for stream in [&mut first, &mut second] {
            let event = stream.next().await;
            let revisions: Vec<i64> = event
                .events
                .iter()
                .map(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision))
                .collect();
            assert_eq!(revisions, vec![now + 1], "{event:?}");
        }
    });
}
