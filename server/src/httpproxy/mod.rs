//! etcd 3.4's v2 HTTP proxy (`--proxy on|readonly`, and `--discovery-fallback proxy`
//! for a member a v2 discovery service finds full): it learns the cluster's client
//! URLs from the members' peer ports (`GET /members`), asks again every
//! `--proxy-refresh-interval`, and forwards the HTTP/1 requests of
//! `--listen-client-urls` to a live one ([`forward`], [`director`]; kept connections:
//! `pool`; its own `/metrics`: `metrics`). https works on every side with the flags etcd's `startProxy` uses (see
//! [`run`]).
//!
//! As etcd, it keeps the peer URLs it last learned in `<data-dir>/proxy/cluster`
//! (`{"PeerURLs":[...]}`) and starts from them on a restart, the discovery flags then
//! ignored; a data directory with a `proxy` directory starts as a proxy again.

mod director;
mod forward;
mod metrics;
mod pool;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use crate::config::{Bootstrap, Config, ProxyMode};
use crate::tls::Reloading;
use director::Director;
use forward::{Proxy, Timeouts};

/// How long asking one peer for the member list may take (etcd's 10 s).
const MEMBERS_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest member list read.
const MEMBERS_BYTES_MAX: usize = 1024 * 1024;
/// The proxy speaks HTTP/1 on both sides (as etcd's, whose transports have no HTTP/2).
const HTTP1: &[&[u8]] = &[b"http/1.1"];

/// The proxy's directory under the data directory.
pub fn proxy_dir(config: &Config) -> PathBuf {
    Path::new(&config.data_dir).join("proxy")
}

/// etcd's cluster file.
#[derive(Debug, Serialize, Deserialize)]
struct ClusterFile {
    #[serde(rename = "PeerURLs")]
    peer_urls: Vec<String>,
}

/// One member as a peer's `GET /members` lists it.
#[derive(Debug, Deserialize)]
struct PeerMember {
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    client_urls: Vec<String>,
}

/// Runs the proxy until the process ends.
pub async fn run(config: &Config) -> Result<(), String> {
    crate::log("proxy: this proxy supports v2 API only!");
    for u in &config.listen_client_urls {
        if u.scheme != "http" && u.scheme != "https" {
            return Err(format!(
                "--proxy serving {u} is not supported by detcd: its v2 proxy serves http and https client URLs only"
            ));
        }
    }
    // As etcd: the https listeners serve the client certificate (`--cert-file`...); the
    // members' client URLs are dialed with it too, or with the peer one when no client
    // one is given (etcd's old proxy behaviour); the peers' `/members` with the peer one.
    let listen_tls = crate::serve::client_tls(&config.listen_client_urls, &config.client_tls)?;
    let endpoint_info = if config.client_tls.is_empty() {
        &config.peer_tls
    } else {
        &config.client_tls
    };
    let endpoint_tls = crate::tls::reloading_client(
        "proxy TLS (dialing members)",
        endpoint_info,
        crate::tls::ServerCheck::dialing(endpoint_info),
        HTTP1,
    )?;
    let peer_tls = crate::tls::reloading_client(
        "proxy peer TLS (dialing)",
        &config.peer_tls,
        crate::tls::ServerCheck::dialing(&config.peer_tls),
        HTTP1,
    )?;
    let dir = proxy_dir(config);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let cluster_file = dir.join("cluster");
    let peer_urls = initial_peer_urls(config, &cluster_file).await?;
    let director = Director::new(config.proxy.failure_wait);
    let proxy = Arc::new(Proxy {
        director: director.clone(),
        readonly: config.proxy.mode == ProxyMode::Readonly,
        timeouts: Timeouts {
            dial: config.proxy.dial_timeout,
            read: config.proxy.read_timeout,
            write: config.proxy.write_timeout,
        },
        cors: config.cors.clone(),
        tls: endpoint_tls,
        pool: pool::Pool::default(),
        metrics: metrics::Metrics::new(),
    });
    let mut listeners = Vec::new();
    for u in &config.listen_client_urls {
        let tls = if u.scheme == "https" {
            listen_tls.clone()
        } else {
            None
        };
        let l = tokio::net::TcpListener::bind(&u.host)
            .await
            .map_err(|e| format!("listen tcp {}: {e}", u.host))?;
        crate::log(&format!("proxy: listening for client requests on {u}"));
        listeners.push((l, tls));
    }
    // As etcd, systemd (`Type=notify`) hears `READY=1` once the proxy listens.
    crate::cli::notify(sd_notify::NotifyState::Ready);
    let mut refresher = Refresher {
        peer_urls,
        cluster_file,
        tls: peer_tls,
    };
    director.set(refresher.client_urls().await);
    let interval = config.proxy.refresh_interval;
    let refreshed = proxy.clone();
    tokio::spawn(async move {
        let mut announced = false;
        loop {
            let found = director.available();
            if !found.is_empty() && !announced {
                announced = true;
                crate::log(&format!("proxy: endpoints found {found:?}"));
            }
            tokio::time::sleep(director.next_refresh(interval)).await;
            let urls = refresher.client_urls().await;
            if !urls.is_empty() {
                refreshed.pool.keep_only(&urls);
            }
            director.set(urls);
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, tls) in listeners {
        tasks.spawn(accept_loop(listener, tls, proxy.clone()));
    }
    match tasks.join_next().await {
        Some(Ok(Err(e))) => Err(e),
        _ => Err("proxy: a listener stopped".to_string()),
    }
}

/// The peer URLs to ask first: the cluster file's, or the discovery URL's cluster,
/// or the DNS SRV records', or `--initial-cluster`'s.
async fn initial_peer_urls(config: &Config, cluster_file: &Path) -> Result<Vec<String>, String> {
    match std::fs::read(cluster_file) {
        Ok(bytes) => {
            if !matches!(config.bootstrap, Bootstrap::Static) {
                crate::log(&format!(
                    "discovery ignored since the proxy has already been initialized. Valid cluster file found at {:?}",
                    cluster_file.display().to_string()
                ));
            }
            let file: ClusterFile =
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", cluster_file.display()))?;
            crate::log(&format!(
                "proxy: using peer urls {:?} from cluster file {:?}",
                file.peer_urls,
                cluster_file.display().to_string()
            ));
            Ok(file.peer_urls)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster = match &config.bootstrap {
                Bootstrap::Static => config.initial_cluster.clone(),
                Bootstrap::V2(v2) => {
                    let text = crate::discovery::v2::get_cluster(v2).await.map_err(|e| e.to_string())?;
                    crate::config::parse_initial_cluster(&text).map_err(|e| e.to_string())?
                }
                // As etcd's `PeerURLsMapAndToken("proxy")`: the `_etcd-server[-ssl]`
                // records' members (the proxy need not be among them). etcd sets the
                // peer TLS server name to the SRV domain only after the proxy built its
                // transports, so it is left as it is here too.
                Bootstrap::Srv(srv) => {
                    let dns = crate::discovery::dns::Dns::from_env()?;
                    let parts = crate::discovery::srv::cluster_from_dns(
                        &dns,
                        &srv.domain,
                        &srv.service_name,
                        &config.name,
                        &config.initial_advertise_peer_urls,
                    )
                    .await?;
                    for p in &parts {
                        crate::log(&format!("got bootstrap from DNS for etcd-server: {p}"));
                    }
                    crate::config::parse_initial_cluster(&parts.join(",")).map_err(|e| e.to_string())?
                }
                Bootstrap::V3(_) => {
                    return Err("--proxy with --discovery-endpoints is not supported by detcd: etcd 3.6's v3 discovery has no v2 proxy".to_string())
                }
            };
            let mut urls: Vec<String> = cluster.values().flatten().map(ToString::to_string).collect();
            urls.sort();
            crate::log(&format!("proxy: using peer urls {urls:?}"));
            Ok(urls)
        }
        Err(e) => Err(format!("{}: {e}", cluster_file.display())),
    }
}

/// Asks the peers for the cluster, keeping the cluster file up to date.
struct Refresher {
    peer_urls: Vec<String>,
    cluster_file: PathBuf,
    /// The peer TLS, for https peer URLs.
    tls: Arc<Reloading<rustls::ClientConfig>>,
}

impl Refresher {
    /// The cluster's client URLs (none when no peer answered).
    async fn client_urls(&mut self) -> Vec<String> {
        let Some(members) = self.members().await else {
            crate::log(&format!(
                "proxy: could not retrieve cluster information from the given URLs {:?}",
                self.peer_urls
            ));
            return Vec::new();
        };
        let mut clients: Vec<String> = members.iter().flat_map(|m| m.client_urls.clone()).collect();
        clients.sort();
        let mut peers: Vec<String> = members.iter().flat_map(|m| m.peer_urls.clone()).collect();
        peers.sort();
        if let Err(e) = self.write_cluster_file(&peers) {
            crate::log(&format!("proxy: error on writing urls {e}"));
            return clients;
        }
        if peers != self.peer_urls {
            crate::log(&format!(
                "proxy: updated peer urls in cluster file from {:?} to {peers:?}",
                self.peer_urls
            ));
        }
        self.peer_urls = peers;
        clients
    }

    /// The member list of the first peer that answers it.
    async fn members(&self) -> Option<Vec<PeerMember>> {
        let client = crate::discovery::http::Client::new("")
            .ok()?
            .with_tls(self.tls.get());
        for peer in &self.peer_urls {
            let Ok(url) =
                crate::discovery::http::HttpUrl::parse(&format!("{}/members", peer.trim_end_matches('/')))
            else {
                continue;
            };
            let answer = match tokio::time::timeout(MEMBERS_TIMEOUT, client.send("GET", &url, None)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    crate::log(&format!("proxy: could not get cluster response from {peer}: {e}"));
                    continue;
                }
                Err(_) => {
                    crate::log(&format!(
                        "proxy: could not get cluster response from {peer}: timed out"
                    ));
                    continue;
                }
            };
            if answer.status != 200 || answer.body.len() > MEMBERS_BYTES_MAX {
                crate::log(&format!(
                    "proxy: peer {peer} answered {} to GET /members",
                    answer.status
                ));
                continue;
            }
            if !answer.headers.contains_key("x-etcd-cluster-id") {
                crate::log(&format!(
                    "proxy: could not parse the cluster ID from cluster res from {peer}"
                ));
                continue;
            }
            match serde_json::from_slice::<Vec<PeerMember>>(&answer.body) {
                Ok(members) => return Some(members),
                Err(e) => crate::log(&format!(
                    "proxy: could not unmarshal cluster response from {peer}: {e}"
                )),
            }
        }
        None
    }

    /// Writes the peer URLs to the cluster file (a new file renamed over the old).
    fn write_cluster_file(&self, peers: &[String]) -> Result<(), String> {
        let text = serde_json::to_string(&ClusterFile {
            peer_urls: peers.to_vec(),
        })
        .map_err(|e| e.to_string())?;
        let bak = self.cluster_file.with_extension("bak");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&bak)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&bak, &self.cluster_file)
        };
        write().map_err(|e| e.to_string())
    }
}

/// Serves one listener's connections (after a TLS handshake for an https one).
async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<Reloading<rustls::ServerConfig>>>,
    proxy: Arc<Proxy>,
) -> Result<(), String> {
    loop {
        let (stream, remote) = listener
            .accept()
            .await
            .map_err(|e| format!("proxy: accept: {e}"))?;
        let proxy = proxy.clone();
        let tls = tls.as_ref().map(|t| t.get());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let proxy = proxy.clone();
                async move { Ok::<_, std::convert::Infallible>(forward::handle(proxy, request, remote).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(config) => {
                    // The server's configuration offers h2 too; the proxy serves HTTP/1 only.
                    let mut config = (*config).clone();
                    config.alpn_protocols = HTTP1.iter().map(|p| p.to_vec()).collect();
                    match tokio_rustls::TlsAcceptor::from(Arc::new(config))
                        .accept(stream)
                        .await
                    {
                        Ok(stream) => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Err(e) => crate::log(&format!("proxy: TLS handshake from {remote}: {e}")),
                    }
                }
            }
        });
    }
}
