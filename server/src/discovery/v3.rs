//! v3 discovery (etcd 3.6's `etcdserver/api/v3discovery`): an etcd (or detcd) cluster
//! reached with `--discovery-endpoints` and the `--discovery-*` client flags holds
//! `/_etcd/registry/<token>/_config/size` and one key per member,
//! `/_etcd/registry/<token>/members/<member id hex>` = `name=peerURL,...`; the first
//! `size` members by create revision form the cluster.

use std::sync::Arc;

use detcd_proto::etcdserverpb::auth_client::AuthClient;
use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::watch_client::WatchClient;
use detcd_proto::etcdserverpb::{
    watch_request, AuthenticateRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest,
};
use tonic::transport::Channel;

use crate::config::V3Discovery;
use crate::ctl::dial::{connect_with_keepalive, ClientTls};
use crate::tls::{client_config, ServerCheck, TlsInfo};

/// The prefix of every discovery key.
const DISCOVERY_PREFIX: &str = "/_etcd/registry";

/// Why joining failed, with etcd's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    SizeNotFound,
    BadSizeKey,
    FullCluster,
    InvalidUrl,
    /// The settings cannot be used (TLS files, user).
    Setup(String),
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = match self {
            JoinError::SizeNotFound => "discovery: size key not found",
            JoinError::BadSizeKey => "discovery: size key is bad",
            JoinError::FullCluster => "discovery: cluster is full",
            JoinError::InvalidUrl => "discovery: invalid peer URL",
            JoinError::Setup(e) => e,
        };
        write!(f, "discovery failed: failed to join discovery cluster ({e})")
    }
}

impl std::error::Error for JoinError {}

/// A registered member.
#[derive(Debug, Clone)]
struct Registered {
    key: String,
    value: String,
    create_revision: i64,
}

/// A request failed: the service is unreachable or refused (retried), or the answer
/// ends the bootstrap.
enum Failure {
    Retry(String),
    Fatal(JoinError),
}

struct Discovery {
    settings: V3Discovery,
    tls: ClientTls,
    channel: Option<Channel>,
    token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    self_key: String,
    backoff: super::Backoff,
}

/// Registers this member (`id`, `own` = `name=url,...`) and waits for the cluster to
/// fill; returns it as `name=url,...`.
pub async fn join_cluster(settings: &V3Discovery, id: u64, own: &str) -> Result<String, JoinError> {
    let mut d = Discovery {
        tls: client_tls(settings).map_err(JoinError::Setup)?,
        settings: settings.clone(),
        channel: None,
        token: None,
        self_key: format!("{}/{id:x}", members_prefix(&settings.token)),
        backoff: super::Backoff::default(),
    };
    crate::log(&format!(
        "joining v3 discovery cluster {} on {} as {id:x}",
        settings.token,
        settings.endpoints.join(",")
    ));
    d.check_cluster().await?;
    d.register_self(own).await?;
    let (mut members, size, rev) = d.check_cluster().await?;
    while members.len() < size {
        if let Err(why) = d.wait_peers(&mut members, size, rev).await {
            d.backoff("waiting for peers", &why).await;
        }
    }
    members.truncate(size);
    let joined = members
        .iter()
        .map(|m| m.value.as_str())
        .collect::<Vec<_>>()
        .join(",");
    crate::config::parse_initial_cluster(&joined).map_err(|_| JoinError::InvalidUrl)?;
    Ok(joined)
}

fn members_prefix(token: &str) -> String {
    format!("{DISCOVERY_PREFIX}/{token}/members")
}

/// The TLS the `--discovery-cert`, `-key`, `-cacert`, `-insecure-transport` and
/// `-insecure-skip-tls-verify` flags ask for (as etcdctl's global flags).
fn client_tls(s: &V3Discovery) -> Result<ClientTls, String> {
    if s.cert.is_empty() != s.key.is_empty() {
        return Err(format!(
            "KeyFile and CertFile must both be present[key: {}, cert: {}]",
            s.key, s.cert
        ));
    }
    if s.cert.is_empty() && s.cacert.is_empty() && s.insecure_transport {
        return Ok(ClientTls::default());
    }
    let info = TlsInfo {
        cert_file: s.cert.clone(),
        key_file: s.key.clone(),
        ..TlsInfo::default()
    };
    let check = if s.insecure_skip_tls_verify {
        ServerCheck::Skip
    } else if s.cacert.is_empty() {
        ServerCheck::System
    } else {
        ServerCheck::CaFile(s.cacert.clone())
    };
    Ok(ClientTls::from_config(Arc::new(client_config(
        &info,
        &check,
        &[b"h2"],
    )?)))
}

impl Discovery {
    /// A channel to the first endpoint that answers, authenticated when a user is set.
    async fn channel(&mut self) -> Result<Channel, Failure> {
        if let Some(c) = &self.channel {
            return Ok(c.clone());
        }
        let mut last = String::from("no endpoints");
        for endpoint in &self.settings.endpoints {
            let keepalive = Some((self.settings.keepalive_time, self.settings.keepalive_timeout));
            match connect_with_keepalive(endpoint, self.settings.dial_timeout, keepalive, &self.tls).await {
                Ok(channel) => {
                    if !self.settings.user.is_empty() {
                        self.token = Some(self.authenticate(channel.clone()).await?);
                    }
                    self.channel = Some(channel.clone());
                    return Ok(channel);
                }
                Err(e) => last = format!("{endpoint}: {e}"),
            }
        }
        Err(Failure::Retry(last))
    }

    async fn authenticate(
        &self,
        channel: Channel,
    ) -> Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>, Failure> {
        let (name, password) = match self.settings.user.split_once(':') {
            Some((n, p)) if self.settings.password.is_empty() => (n.to_string(), p.to_string()),
            _ => (self.settings.user.clone(), self.settings.password.clone()),
        };
        let reply = AuthClient::new(channel)
            .authenticate(AuthenticateRequest { name, password })
            .await
            .map_err(|s| Failure::Retry(format!("authenticate: {}", s.message())))?;
        reply
            .into_inner()
            .token
            .parse()
            .map_err(|_| Failure::Fatal(JoinError::Setup("bad token from the discovery service".into())))
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.settings.request_timeout);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("token", token.clone());
        }
        request
    }

    /// Forgets the connection after a failure, so the next try dials again.
    fn failed(&mut self, what: &str, status: &tonic::Status) -> Failure {
        self.channel = None;
        Failure::Retry(format!("{what}: {}", status.message()))
    }

    async fn backoff(&mut self, step: &str, why: &str) {
        let service = self.settings.endpoints.join(",");
        self.backoff.wait(&service, step, why).await;
    }

    async fn check_cluster(&mut self) -> Result<(Vec<Registered>, usize, i64), JoinError> {
        loop {
            match self.check_cluster_once().await {
                Ok(found) => {
                    self.backoff.reset();
                    return Ok(found);
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(why)) => self.backoff("cluster status check", &why).await,
            }
        }
    }

    async fn check_cluster_once(&mut self) -> Result<(Vec<Registered>, usize, i64), Failure> {
        let channel = self.channel().await?;
        let mut kv = KvClient::new(channel);
        let size_key = format!("{DISCOVERY_PREFIX}/{}/_config/size", self.settings.token);
        let reply = kv
            .range(self.request(RangeRequest {
                key: size_key.into_bytes(),
                ..RangeRequest::default()
            }))
            .await
            .map_err(|s| self.failed("get cluster size", &s))?
            .into_inner();
        let size = match reply.kvs.first() {
            None => return Err(Failure::Fatal(JoinError::SizeNotFound)),
            Some(kv) => String::from_utf8_lossy(&kv.value)
                .parse::<i64>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or(Failure::Fatal(JoinError::BadSizeKey))? as usize,
        };
        let prefix = members_prefix(&self.settings.token);
        let reply = kv
            .range(self.request(RangeRequest {
                key: prefix.clone().into_bytes(),
                range_end: prefix_end(prefix.as_bytes()),
                ..RangeRequest::default()
            }))
            .await
            .map_err(|s| self.failed("get cluster members", &s))?
            .into_inner();
        let mut members = Vec::new();
        for kv in &reply.kvs {
            add(&mut members, &prefix, kv);
        }
        for (i, m) in members.iter().enumerate() {
            if m.key == self.self_key {
                break;
            }
            if i + 1 >= size {
                return Err(Failure::Fatal(JoinError::FullCluster));
            }
        }
        let rev = reply.header.map(|h| h.revision).unwrap_or(0);
        Ok((members, size, rev))
    }

    async fn register_self(&mut self, contents: &str) -> Result<(), JoinError> {
        loop {
            let attempt = async {
                let channel = self.channel().await?;
                KvClient::new(channel)
                    .put(self.request(PutRequest {
                        key: self.self_key.clone().into_bytes(),
                        value: contents.as_bytes().to_vec(),
                        ..PutRequest::default()
                    }))
                    .await
                    .map_err(|s| Failure::Retry(format!("register member itself: {}", s.message())))
            };
            match attempt.await {
                Ok(_) => {
                    crate::log(&format!(
                        "registered with the discovery service: {} = {contents}",
                        self.self_key
                    ));
                    self.backoff.reset();
                    return Ok(());
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(why)) => {
                    self.channel = None;
                    self.backoff("register member itself", &why).await;
                }
            }
        }
    }

    /// Watches the members' keys from `rev + 1` until `size` are known.
    async fn wait_peers(
        &mut self,
        members: &mut Vec<Registered>,
        size: usize,
        rev: i64,
    ) -> Result<(), String> {
        let channel = self.channel().await.map_err(|f| match f {
            Failure::Retry(w) => w,
            Failure::Fatal(e) => e.to_string(),
        })?;
        let prefix = members_prefix(&self.settings.token);
        crate::log(&format!(
            "waiting for peers from discovery service: cluster size {size}, found {}",
            members.len()
        ));
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
                key: prefix.clone().into_bytes(),
                range_end: prefix_end(prefix.as_bytes()),
                start_revision: rev + 1,
                ..WatchCreateRequest::default()
            })),
        };
        let mut request =
            tonic::Request::new(tokio_stream::iter(vec![create]).chain(tokio_stream::pending()));
        if let Some(token) = &self.token {
            request.metadata_mut().insert("token", token.clone());
        }
        let mut stream = WatchClient::new(channel)
            .watch(request)
            .await
            .map_err(|s| {
                self.channel = None;
                s.message().to_string()
            })?
            .into_inner();
        while members.len() < size {
            let Some(reply) = stream.message().await.map_err(|s| s.message().to_string())? else {
                self.channel = None;
                return Err("watch stream ended".into());
            };
            if reply.canceled {
                return Err(format!("watch canceled: {}", reply.cancel_reason));
            }
            for event in &reply.events {
                if let Some(kv) = &event.kv {
                    add(members, &prefix, kv);
                }
            }
        }
        crate::log(&format!(
            "found all needed peers from discovery service: cluster size {size}, found {}",
            members.len()
        ));
        Ok(())
    }
}

use tokio_stream::StreamExt as _;

/// Adds a registration (`clusterInfo.add`), keeping the list by create revision.
fn add(members: &mut Vec<Registered>, prefix: &str, kv: &detcd_proto::mvccpb::KeyValue) {
    let key = String::from_utf8_lossy(&kv.key).trim().to_string();
    let value = String::from_utf8_lossy(&kv.value).trim().to_string();
    let problem = if !key.starts_with(prefix) {
        Some("invalid peer registry key")
    } else if !value.contains('=') {
        Some("invalid peer info returned from discovery service")
    } else if members.iter().any(|m| m.key == key) {
        Some("found duplicate peer from discovery service")
    } else {
        None
    };
    if let Some(p) = problem {
        crate::log(&format!("{p}: {key} = {value}"));
        return;
    }
    crate::log(&format!("found peer from discovery service: {key} = {value}"));
    members.push(Registered {
        key,
        value,
        create_revision: kv.create_revision,
    });
    members.sort_by_key(|m| m.create_revision);
}

/// The end of the range of every key with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
