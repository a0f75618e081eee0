//! v2 discovery (`--discovery <url>`, etcd 3.4's `etcdserver/api/v2discovery`): a
//! directory on a v2 keys API (`https://discovery.etcd.io/<token>`, or an etcd's
//! `/v2/keys/discovery/<token>` prepared with `_config/size`) where each member
//! registers `name=peerURL` under its ID; the first `size` registered, by creation
//! index, form the cluster.

use std::time::Duration;

use serde::Deserialize;

use super::http::{form_escape, Client, HttpUrl, Response};
use crate::config::V2Discovery;

/// etcd's errors, with etcd's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    InvalidUrl,
    BadSizeKey,
    DuplicateId,
    DuplicateName,
    FullCluster,
    BadDiscoveryEndpoint,
    /// Anything else the service answered or the connection did.
    Other(String),
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            DiscoveryError::InvalidUrl => "discovery: invalid URL",
            DiscoveryError::BadSizeKey => "discovery: size key is bad",
            DiscoveryError::DuplicateId => "discovery: found duplicate id",
            DiscoveryError::DuplicateName => "discovery: found duplicate name",
            DiscoveryError::FullCluster => "discovery: cluster is full",
            DiscoveryError::BadDiscoveryEndpoint => "discovery: bad discovery endpoint",
            DiscoveryError::Other(e) => e,
        };
        f.write_str(text)
    }
}

/// A failed bootstrap through a discovery service: etcd's `DiscoveryError` text and the
/// advice etcd logs with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinError {
    pub error: DiscoveryError,
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "discovery failed: failed to join discovery cluster ({})",
            self.error
        )?;
        match self.error {
            DiscoveryError::DuplicateId => f.write_str(
                "; member has been registered with discovery service; but could not find valid cluster configuration; check data dir if previous bootstrap succeeded; or use a new discovery token if previous bootstrap failed",
            ),
            DiscoveryError::DuplicateName => f.write_str(
                "; member with duplicated name has already been registered: cURL the discovery token URL for details; do not reuse discovery token; generate a new one to bootstrap a cluster",
            ),
            _ => f.write_str(
                "; failed to bootstrap; discovery token was already used; do not reuse discovery token; generate a new one to bootstrap a cluster",
            ),
        }
    }
}

impl std::error::Error for JoinError {}

/// How long one plain request may take (`client.DefaultRequestTimeout`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A v2 keys API node as the discovery service answers it.
#[derive(Debug, Clone, Deserialize)]
struct Node {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    nodes: Vec<Node>,
    #[serde(rename = "createdIndex", default)]
    created_index: u64,
    #[serde(rename = "modifiedIndex", default)]
    modified_index: u64,
}

#[derive(Debug, Deserialize)]
struct KeysResponse {
    #[serde(default)]
    action: String,
    node: Option<Node>,
}

#[derive(Debug, Deserialize)]
struct KeysError {
    #[serde(rename = "errorCode")]
    error_code: u64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    cause: String,
    #[serde(default)]
    index: u64,
}

/// v2's "Key already exists".
const ERROR_NODE_EXIST: u64 = 105;

/// One answer: the response and the `X-Etcd-Index` header.
enum Answer {
    Ok(KeysResponse, u64),
    Error(KeysError),
}

/// Why a request failed: the service could not be reached (retried), or anything else.
enum Failure {
    Unreachable(String),
    Fatal(DiscoveryError),
}

struct Discovery {
    client: Client,
    base: HttpUrl,
    /// The token's path (`/v2/keys/discovery/<token>`).
    cluster: String,
    id: u64,
    backoff: super::Backoff,
}

/// Registers this member (`id`, `own` = `name=url,...`) with the discovery service and
/// waits until the cluster is complete; returns the cluster as `name=url,...`.
pub async fn join_cluster(settings: &V2Discovery, id: u64, own: &str) -> Result<String, JoinError> {
    let fail = |error| JoinError { error };
    let mut d = Discovery::new(settings, id).map_err(fail)?;
    crate::log(&format!(
        "joining v2 discovery cluster {} as {id:x}",
        settings.url
    ));
    d.check_cluster().await.map_err(fail)?;
    d.create_self(own).await.map_err(fail)?;
    let (nodes, size, index) = d.check_cluster().await.map_err(fail)?;
    let all = d.wait_nodes(nodes, size, index).await.map_err(fail)?;
    nodes_to_cluster(&all, size).map_err(fail)
}

/// The cluster a discovery URL holds, without registering (etcd's `GetCluster`, for a
/// proxy): the first `size` members, waiting until that many registered.
pub async fn get_cluster(settings: &V2Discovery) -> Result<String, DiscoveryError> {
    let mut d = Discovery::new(settings, 0)?;
    let (nodes, size, index) = loop {
        match d.listing_once().await {
            Ok(found) => break found,
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Unreachable(why)) => d.backoff("cluster status check", &why).await,
        }
    };
    if nodes.len() as u64 >= size {
        return nodes_to_cluster(&nodes, size);
    }
    let all = d.wait_nodes(nodes, size, index).await?;
    nodes_to_cluster(&all, size)
}

impl Discovery {
    fn new(settings: &V2Discovery, id: u64) -> Result<Discovery, DiscoveryError> {
        let url = HttpUrl::parse(&settings.url).map_err(DiscoveryError::Other)?;
        let client = Client::new(&settings.proxy).map_err(DiscoveryError::Other)?;
        let cluster = url
            .path
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        Ok(Discovery {
            client,
            base: HttpUrl {
                path: String::new(),
                ..url
            },
            cluster,
            id,
            backoff: super::Backoff::default(),
        })
    }

    fn self_key(&self) -> String {
        format!("{}/{:x}", self.cluster, self.id)
    }

    fn url(&self, path_and_query: &str) -> HttpUrl {
        HttpUrl {
            path: path_and_query.to_string(),
            ..self.base.clone()
        }
    }

    /// One request, parsed as the v2 keys API answers.
    async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        form: Option<String>,
        timeout: Option<Duration>,
    ) -> Result<Answer, Failure> {
        let url = self.url(path_and_query);
        let send = self.client.send(method, &url, form);
        let response: Response = match timeout {
            Some(t) => tokio::time::timeout(t, send)
                .await
                .map_err(|_| Failure::Unreachable(format!("{method} {}: timed out", url.to_url())))?,
            None => send.await,
        }
        .map_err(|e| Failure::Unreachable(format!("{method} {}: {e}", url.to_url())))?;
        if response.status >= 500 {
            return Err(Failure::Unreachable(format!(
                "{method} {}: server answered {}",
                url.to_url(),
                response.status
            )));
        }
        if let Ok(error) = serde_json::from_slice::<KeysError>(&response.body) {
            return Ok(Answer::Error(error));
        }
        let parsed: KeysResponse = serde_json::from_slice(&response.body)
            .map_err(|_| Failure::Fatal(DiscoveryError::BadDiscoveryEndpoint))?;
        let index = response
            .headers
            .get("X-Etcd-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Answer::Ok(parsed, index))
    }

    /// Waits before asking again ([`super::Backoff`]; etcd's v2 client never resets it).
    async fn backoff(&mut self, step: &str, why: &str) {
        let service = self.base.to_url();
        self.backoff.wait(&service, step, why).await;
    }

    /// The registered members (first `size` when full), the size and the index to wait
    /// from (`checkCluster`), retrying while the service is unreachable.
    async fn check_cluster(&mut self) -> Result<(Vec<Node>, u64, u64), DiscoveryError> {
        loop {
            match self.check_cluster_once().await {
                Ok(found) => return Ok(found),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Unreachable(why)) => self.backoff("cluster status check", &why).await,
            }
        }
    }

    async fn check_cluster_once(&self) -> Result<(Vec<Node>, u64, u64), Failure> {
        let (nodes, size, index) = self.listing_once().await?;
        let me = self.self_key();
        for (i, n) in nodes.iter().enumerate() {
            if base_name(&n.key) == base_name(&me) {
                break;
            }
            if i as u64 >= size.saturating_sub(1) {
                return Err(Failure::Fatal(DiscoveryError::FullCluster));
            }
        }
        Ok((nodes, size, index))
    }

    /// The size and the registered members by creation index, with the index to
    /// wait from.
    async fn listing_once(&self) -> Result<(Vec<Node>, u64, u64), Failure> {
        let size_key = format!("{}/_config/size", self.cluster);
        let size = match self
            .request("GET", &size_key, None, Some(REQUEST_TIMEOUT))
            .await?
        {
            // etcd 3.4 means to answer a missing size with "discovery: size key not
            // found", but its check asserts a pointer type its v2 client never returns,
            // so the service's own error comes out: "100: Key not found (<the first
            // missing part of the path>) [index]". Reproduced as etcd shows it.
            Answer::Error(e) => return Err(Failure::Fatal(keys_error(&e))),
            Answer::Ok(r, _) => r
                .node
                .and_then(|n| n.value.parse::<u64>().ok())
                .ok_or(Failure::Fatal(DiscoveryError::BadSizeKey))?,
        };
        let (listing, index) = match self
            .request("GET", &self.cluster, None, Some(REQUEST_TIMEOUT))
            .await?
        {
            Answer::Error(e) => return Err(Failure::Fatal(keys_error(&e))),
            Answer::Ok(r, index) => (r.node.map(|n| n.nodes).unwrap_or_default(), index),
        };
        let mut nodes: Vec<Node> = listing
            .into_iter()
            .filter(|n| base_name(&n.key) != "_config")
            .collect();
        nodes.sort_by_key(|n| n.created_index);
        Ok((nodes, size, index))
    }

    /// Registers this member (`createSelf`).
    async fn create_self(&mut self, contents: &str) -> Result<(), DiscoveryError> {
        let path = format!("{}?prevExist=false", self.self_key());
        let form = format!("value={}", form_escape(contents));
        loop {
            match self
                .request("PUT", &path, Some(form.clone()), Some(REQUEST_TIMEOUT))
                .await
            {
                Ok(Answer::Ok(..)) => return Ok(()),
                Ok(Answer::Error(e)) if e.error_code == ERROR_NODE_EXIST => {
                    return Err(DiscoveryError::DuplicateId)
                }
                Ok(Answer::Error(e)) => return Err(keys_error(&e)),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Unreachable(why)) => self.backoff("registering self", &why).await,
            }
        }
    }

    /// Waits until `size` members have registered (`waitNodes`).
    async fn wait_nodes(
        &mut self,
        mut nodes: Vec<Node>,
        mut size: u64,
        mut index: u64,
    ) -> Result<Vec<Node>, DiscoveryError> {
        loop {
            nodes.truncate(size as usize);
            let me = base_name(&self.self_key()).to_string();
            for n in &nodes {
                if base_name(&n.key) == me {
                    crate::log(&format!("found self {me} in the discovery cluster"));
                } else {
                    crate::log(&format!(
                        "found peer {} in the discovery cluster",
                        base_name(&n.key)
                    ));
                }
            }
            match self.wait_more(&mut nodes, size, index).await {
                Ok(()) => {
                    crate::log(&format!("found {} needed peer(s)", nodes.len()));
                    return Ok(nodes);
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Unreachable(why)) => {
                    self.backoff("waiting for other nodes", &why).await;
                    (nodes, size, index) = self.check_cluster().await?;
                }
            }
        }
    }

    async fn wait_more(&self, nodes: &mut Vec<Node>, size: u64, mut index: u64) -> Result<(), Failure> {
        while (nodes.len() as u64) < size {
            crate::log(&format!(
                "found {} peer(s), waiting for {} more",
                nodes.len(),
                size - nodes.len() as u64
            ));
            let path = format!(
                "{}?wait=true&recursive=true&waitIndex={}",
                self.cluster,
                index + 1
            );
            match self.request("GET", &path, None, None).await? {
                Answer::Error(e) => return Err(Failure::Fatal(keys_error(&e))),
                Answer::Ok(r, _) => {
                    let Some(node) = r.node else { continue };
                    index = index.max(node.modified_index);
                    let created = matches!(r.action.as_str(), "create" | "set" | "update" | "compareAndSwap");
                    let member = !node.key.contains("/_config");
                    if created && member && !nodes.iter().any(|n| n.key == node.key) {
                        crate::log(&format!(
                            "found peer {} in the discovery cluster",
                            base_name(&node.key)
                        ));
                        nodes.push(node);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The last element of a key.
fn base_name(key: &str) -> &str {
    key.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
}

/// A v2 error answer in the v2 client's words (`code: message (cause) [index]`).
fn keys_error(e: &KeysError) -> DiscoveryError {
    DiscoveryError::Other(format!(
        "{}: {} ({}) [{}]",
        e.error_code, e.message, e.cause, e.index
    ))
}

/// The registered values as one `name=url,...` list (`nodesToCluster`).
fn nodes_to_cluster(nodes: &[Node], size: u64) -> Result<String, DiscoveryError> {
    let joined = nodes
        .iter()
        .map(|n| n.value.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let map = crate::config::parse_initial_cluster(&joined).map_err(|_| DiscoveryError::InvalidUrl)?;
    if map.len() as u64 != size {
        return Err(DiscoveryError::DuplicateName);
    }
    Ok(joined)
}
