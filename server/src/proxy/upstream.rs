//! The cluster behind the grpc-proxy: one lazily connected channel per `--endpoints`
//! entry, and the rule for which one a call goes to.
//!
//! Calls go to the current endpoint. A call that fails because the endpoint cannot be
//! reached (the connection could not be made: nothing was sent) moves the proxy on to the
//! next endpoint and is tried there, so a member going away costs clients nothing. A read
//! (Range, Status, MemberList, ...) is also tried again elsewhere when the member answered
//! `Unavailable`; a write that may have reached a member is not, as etcd's clientv3 does
//! not retry mutations whose outcome is unknown.
//!
//! The token of the client's request (`token` or `authorization` metadata) travels up
//! with every call, as etcd's proxy interceptors pass it, so auth works through the proxy.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Request, Response, Status};

use crate::ctl::dial::{host_of, ClientTls};

/// How long dialling one endpoint may take (etcd's proxy client: `DialTimeout: 5s`).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Metadata a client request carries that the upstream must see too.
const FORWARDED_METADATA: &[&str] = &["token", "authorization"];

/// The largest message the proxy sends to or takes from the cluster: etcd's proxy
/// client default (`--max-recv-bytes`, `math.MaxInt32`), not tonic's 4 MiB. What the
/// proxy's own clients may send and receive is bounded by `--max-send-bytes` and
/// `--max-recv-bytes` on the serving side.
pub const UPSTREAM_MESSAGE_BYTES_MAX: usize = i32::MAX as usize;

/// A generated gRPC client (`$client`) on `$channel`, with the proxy's message limits.
macro_rules! client {
    ($client:ident, $channel:expr) => {
        $client::new($channel)
            .max_decoding_message_size($crate::proxy::upstream::UPSTREAM_MESSAGE_BYTES_MAX)
            .max_encoding_message_size($crate::proxy::upstream::UPSTREAM_MESSAGE_BYTES_MAX)
    };
}
pub(crate) use client;

/// Whether a failed call may be tried at another endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads: again on any `Unavailable`.
    Read,
    /// Writes: again only when the request could not have been sent.
    Write,
}

/// The upstream endpoints and the one in use.
#[derive(Debug, Clone)]
pub struct Upstream {
    endpoints: Arc<Vec<(String, Channel)>>,
    metrics: Arc<Vec<MetricsTarget>>,
    current: Arc<AtomicUsize>,
}

/// Where the proxy's `/metrics` relay asks one endpoint, and with what TLS: as the
/// gRPC calls to it go (the endpoint's own scheme; a bare `host:port` over https
/// when the upstream TLS flags made a configuration), with the same client
/// certificate and CAs (`--cert`, `--key`, `--cacert`), offering http/1.1.
#[derive(Debug, Clone)]
pub struct MetricsTarget {
    pub url: String,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl MetricsTarget {
    fn new(endpoint: &str, tls: Option<Arc<rustls::ClientConfig>>) -> MetricsTarget {
        let base = endpoint.trim_end_matches('/');
        let url = if base.contains("://") {
            format!("{base}/metrics")
        } else if tls.is_some() {
            format!("https://{base}/metrics")
        } else {
            format!("http://{base}/metrics")
        };
        let tls = tls.map(|config| {
            let mut config = (*config).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        });
        MetricsTarget { url, tls }
    }
}

impl Upstream {
    /// Channels to `endpoints` (`host:port`, `http://...` or `https://...`), TLS as
    /// `tls` says for each; nothing is dialled until the first call.
    pub fn new(endpoints: &[String], tls: &ClientTls) -> Result<Upstream, String> {
        if endpoints.is_empty() {
            // clientv3's ErrNoAvailableEndpoints, what etcd's proxy exits with.
            return Err("etcdclient: no available endpoints".into());
        }
        let mut channels = Vec::new();
        let mut metrics = Vec::new();
        for endpoint in endpoints {
            let config = tls.for_endpoint(endpoint).map_err(|e| e.message)?;
            channels.push((endpoint.clone(), lazy_channel(endpoint, config.clone())?));
            metrics.push(MetricsTarget::new(endpoint, config));
        }
        Ok(Upstream {
            endpoints: Arc::new(channels),
            metrics: Arc::new(metrics),
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Where `/metrics` is relayed from, one target per endpoint in endpoint order.
    pub fn metrics_targets(&self) -> Arc<Vec<MetricsTarget>> {
        self.metrics.clone()
    }

    /// The endpoints, as given.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(|(e, _)| e.clone()).collect()
    }

    /// The endpoint calls go to now, and its channel.
    pub fn current(&self) -> (usize, Channel) {
        let i = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        (i, self.endpoints[i].1.clone())
    }

    /// Moves on from endpoint `failed` (unless another call did already).
    pub fn failed(&self, failed: usize) {
        let next = (failed + 1) % self.endpoints.len();
        if self
            .current
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            crate::log(&format!(
                "grpc-proxy: endpoint {} unreachable, switching to {}",
                self.endpoints[failed].0, self.endpoints[next].0
            ));
        }
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Makes the call `call` (a client method on a channel) with `request`, at the
    /// current endpoint and then, as `retry` allows, at the others in turn.
    pub async fn unary<Q, R, F, Fut>(
        &self,
        request: Request<Q>,
        retry: Retry,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        Q: Clone,
        F: Fn(Channel, Request<Q>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let metadata = forwarded(request.metadata());
        let message = request.into_inner();
        let mut last = None;
        for _ in 0..self.endpoints.len() {
            let (at, channel) = self.current();
            match call(channel, with_metadata(message.clone(), &metadata)).await {
                Ok(reply) => return Ok(reply),
                Err(status) if may_retry(&status, retry) => {
                    self.failed(at);
                    last = Some(status);
                }
                Err(status) => return Err(status),
            }
        }
        Err(last.unwrap_or_else(|| Status::unavailable("no endpoints available")))
    }
}

/// Whether `status` says the call can be tried at another endpoint.
pub fn may_retry(status: &Status, retry: Retry) -> bool {
    if status.code() != Code::Unavailable {
        return false;
    }
    retry == Retry::Read || not_sent(status)
}

/// A status tonic made because no connection could be made (the request never left).
fn not_sent(status: &Status) -> bool {
    let message = status.message();
    message.contains("tcp connect error")
        || message.contains("Connection refused")
        || message.contains("error trying to connect")
        || (message == "transport error" && std::error::Error::source(status).is_some())
}

/// The metadata of a client request that the upstream call carries.
pub fn forwarded(metadata: &MetadataMap) -> MetadataMap {
    let mut out = MetadataMap::new();
    for key in FORWARDED_METADATA {
        if let Some(value) = metadata.get(*key) {
            out.insert(*key, value.clone());
        }
    }
    out
}

/// Who a request's credentials say it comes from (its token or authorization header,
/// empty without): watchers and cached answers are shared only between requests with
/// the same credentials, so auth decides for each client as if it asked the cluster.
pub fn identity(metadata: &MetadataMap) -> Vec<u8> {
    let mut who = Vec::new();
    for key in FORWARDED_METADATA {
        if let Some(value) = metadata.get(*key) {
            who.extend_from_slice(key.as_bytes());
            who.push(b'=');
            who.extend_from_slice(value.as_bytes());
            who.push(0);
        }
    }
    who
}

/// `message` as a request carrying `metadata`.
pub fn with_metadata<Q>(message: Q, metadata: &MetadataMap) -> Request<Q> {
    let mut request = Request::new(message);
    *request.metadata_mut() = metadata.clone();
    request
}

/// A channel to `endpoint` (over TLS with `config` when given) that connects on
/// first use and again after a failure.
fn lazy_channel(endpoint: &str, config: Option<Arc<rustls::ClientConfig>>) -> Result<Channel, String> {
    let authority = match endpoint.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some(_) => return Err(format!("unsupported endpoint {endpoint:?} (http or https)")),
        None => endpoint,
    }
    .trim_end_matches('/')
    .to_string();
    let ep = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| format!("bad endpoint {endpoint:?}: {e}"))?
        .connect_timeout(DIAL_TIMEOUT)
        .tcp_nodelay(true);
    let Some(config) = config else {
        return Ok(ep.connect_lazy());
    };
    let host = host_of(&authority);
    let name = ServerName::try_from(host.clone())
        .map_err(|_| format!("bad endpoint {endpoint:?}: bad host {host:?}"))?;
    let connector = tower::service_fn(move |_: Uri| {
        let (config, name, authority) = (config.clone(), name.clone(), authority.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(authority.as_str()).await?;
            let _ = tcp.set_nodelay(true);
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Ok(ep.connect_with_connector_lazy(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unsent_writes_are_retried() {
        let refused = Status::unavailable("tcp connect error");
        assert!(may_retry(&refused, Retry::Write));
        assert!(may_retry(&refused, Retry::Read));
        let answered = Status::unavailable("etcdserver: request timed out");
        assert!(!may_retry(&answered, Retry::Write));
        assert!(may_retry(&answered, Retry::Read));
        assert!(!may_retry(&Status::not_found("x"), Retry::Read));
    }

    #[test]
    fn only_token_metadata_travels_up() {
        let mut m = MetadataMap::new();
        m.insert("token", "abc".parse().expect("ascii"));
        m.insert("x-other", "1".parse().expect("ascii"));
        let out = forwarded(&m);
        assert_eq!(out.get("token").map(|v| v.to_str().ok()), Some(Some("abc")));
        assert!(out.get("x-other").is_none());
    }
}
