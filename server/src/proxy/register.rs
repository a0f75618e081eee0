//! `--resolver-prefix` and `--resolver-ttl`: the proxy registers its advertised address
//! in the cluster, as etcd's `grpcproxy.Register` does, and lists the registered proxies
//! as the members of the cluster (etcd's `clusterProxy.MemberList`).
//!
//! The registration is the key `<prefix>/<advertise-client-url>` (under `--namespace`),
//! attached to a lease of `--resolver-ttl` seconds that the proxy keeps alive, holding
//! the JSON of gRPC naming's update: `{"Op":0,"Addr":"<url>","Metadata":"{\"name\":\"<host>\"}"}`.
//! When the lease is lost (the cluster restarted, a partition) the proxy registers
//! again.

use std::time::Duration;

use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::lease_client::LeaseClient;
use detcd_proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, Member, PutRequest, RangeRequest};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status};

use super::namespace::{prefix_end, Namespace};
use super::upstream::{client, Retry, Upstream};

/// Pause between registration attempts (etcd's `registerRetryRate`: one a second).
const REGISTER_RETRY: Duration = Duration::from_secs(1);

/// What a registered proxy's value holds (gRPC naming's `Update`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Update {
    #[serde(rename = "Op")]
    op: u8,
    #[serde(rename = "Addr")]
    addr: String,
    #[serde(rename = "Metadata", default)]
    metadata: String,
}

/// The metadata etcd's proxy registers with (`{"name":"<host>"}`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
}

/// The registration under `prefix`: the key and the upstream's name for it.
#[derive(Debug, Clone)]
pub struct Registration {
    pub up: Upstream,
    pub ns: Namespace,
    pub prefix: String,
    pub addr: String,
    pub ttl_s: i64,
    pub host: String,
}

impl Registration {
    /// Keeps the registration in the cluster until the task is dropped.
    pub async fn run(self) {
        loop {
            match self.register_once().await {
                Ok(()) => crate::log("grpc-proxy: registration session expired; registering again"),
                Err(e) => crate::log(&format!(
                    "grpc-proxy: cannot register under {:?}: {}",
                    self.prefix,
                    e.message()
                )),
            }
            tokio::time::sleep(REGISTER_RETRY).await;
        }
    }

    /// Grants a lease, puts the key with it and keeps it alive; returns when the lease
    /// is lost.
    async fn register_once(&self) -> Result<(), Status> {
        let grant = Request::new(LeaseGrantRequest {
            ttl: self.ttl_s,
            id: 0,
        });
        let lease = self
            .up
            .unary(grant, Retry::Write, |ch, r| async move {
                client!(LeaseClient, ch).lease_grant(r).await
            })
            .await?
            .into_inner();
        let value = serde_json::to_string(&Update {
            op: 0,
            addr: self.addr.clone(),
            metadata: serde_json::to_string(&Meta {
                name: self.host.clone(),
            })
            .unwrap_or_default(),
        })
        .unwrap_or_default();
        let put = Request::new(PutRequest {
            key: self.ns.key(format!("{}/{}", self.prefix, self.addr).as_bytes()),
            value: value.into_bytes(),
            lease: lease.id,
            ..PutRequest::default()
        });
        self.up
            .unary(put, Retry::Write, |ch, r| async move {
                client!(KvClient, ch).put(r).await
            })
            .await?;
        let (at, channel) = self.up.current();
        let (send, rx) = mpsc::channel(1);
        let mut answers = match client!(LeaseClient, channel)
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
        {
            Ok(a) => a.into_inner(),
            Err(e) => {
                self.up.failed(at);
                return Err(e);
            }
        };
        let every = Duration::from_millis((self.ttl_s.max(1) as u64 * 1000) / 3);
        loop {
            if send.send(LeaseKeepAliveRequest { id: lease.id }).await.is_err() {
                return Ok(());
            }
            match answers.message().await {
                Ok(Some(a)) if a.ttl > 0 => {}
                _ => return Ok(()),
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// The proxies registered under `prefix`, as members (name and client URL), by address.
pub async fn registered(up: &Upstream, ns: &Namespace, prefix: &str) -> Result<Vec<Member>, Status> {
    let dir = ns.key(format!("{prefix}/").as_bytes());
    let range = Request::new(RangeRequest {
        range_end: prefix_end(&dir),
        key: dir,
        ..RangeRequest::default()
    });
    let answer = up
        .unary(range, Retry::Read, |ch, r| async move {
            client!(KvClient, ch).range(r).await
        })
        .await?
        .into_inner();
    let mut members: Vec<Member> = answer
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Update>(&kv.value).ok())
        .map(|u| Member {
            name: serde_json::from_str::<Meta>(&u.metadata).unwrap_or_default().name,
            client_ur_ls: vec![u.addr],
            ..Member::default()
        })
        .collect();
    members.sort_by(|a, b| a.client_ur_ls.cmp(&b.client_ur_ls));
    Ok(members)
}
