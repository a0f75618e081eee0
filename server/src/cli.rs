//! The `detcd` command: reads the configuration exactly as etcd would (flags, `ETCD_*`
//! variables, `--config-file`), starts the member, serves etcd's gRPC API and HTTP
//! endpoints on the client URLs, and shuts down cleanly on SIGTERM or SIGINT.
//!
//! Under systemd (`Type=notify`, `NOTIFY_SOCKET` set) it says `READY=1` once the member
//! answers a linearizable read, as etcd does once it has joined the cluster through raft
//! (so a unit's start waits for a quorum, as etcd's does), and `STOPPING=1` when shutdown
//! begins. Without `NOTIFY_SOCKET` nothing is sent.
//!
//! It lives in the library so that the end-to-end tests (crate detcd-tests) can build
//! the very same program as a binary of their own package.
//!
//! Exit status: 0 after a clean shutdown (or removal from the cluster), 1 when the
//! member cannot start or fails, 2 for a malformed command line.

use std::time::Duration;

use detcd_core::node::Request;
use detcd_io::driver::{MemberHandle, StopReason};
use detcd_io::log::{Field, Level};
use detcd_proto::etcdserverpb::RangeRequest;
use sd_notify::NotifyState;

use crate::auth_token::TokenProvider;
use crate::config::{Config, ConfigError, Invocation};
use crate::grpc::Services;
use crate::{log, member, serve};

/// Runs `detcd` with this process's arguments and environment; returns the exit status.
pub fn detcd_main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // etcd's two proxies are subcommands of the server binary, as in etcd.
    if let Some(which @ ("gateway" | "grpc-proxy")) = args.first().map(String::as_str) {
        return crate::proxy::proxy_main(which, &args[1..]);
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| e.to_string());
    let code = match Config::load(&args, &env, &read) {
        Ok(Invocation::Help) => {
            println!("usage: detcd [flags]\n       detcd gateway start [flags]\n       detcd grpc-proxy start [flags]\n\nflags, ETCD_* variables and --config-file as etcd's (see `etcd --help`).");
            0
        }
        Ok(Invocation::Version) => {
            println!("detcd Version: {}\nAPI version: 3.6", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Invocation::Run(config)) => run(*config),
        Err(ConfigError::Flag(msg)) => {
            eprintln!("{msg}\nusage: detcd [flags] (see `detcd --help`)");
            2
        }
        Err(e) => {
            eprintln!("detcd: error verifying flags, {e}. See 'detcd --help'.");
            1
        }
    };
    code
}

fn run(config: Config) -> i32 {
    if let Err(e) = crate::process::apply(&config) {
        eprintln!("detcd: {e}");
        return 1;
    }
    for w in &config.warnings {
        detcd_io::log!(detcd_io::log::Level::Warn, "detcd", "{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("detcd: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve_member(config)) {
        Ok(()) => 0,
        Err(e) => {
            detcd_io::log!(detcd_io::log::Level::Error, "detcd", "{e}");
            eprintln!("detcd: {e}");
            1
        }
    }
}

/// The `--auth-token` provider, its key files read.
fn token_provider(spec: &crate::config::AuthToken) -> Result<TokenProvider, String> {
    match spec {
        crate::config::AuthToken::Simple => Ok(TokenProvider::Simple),
        crate::config::AuthToken::Jwt {
            sign_method,
            pub_key,
            priv_key,
            ttl_ms,
        } => TokenProvider::jwt(
            sign_method,
            pub_key.as_deref(),
            priv_key.as_deref(),
            std::time::Duration::from_millis(*ttl_ms),
            &|path| std::fs::read(path).map_err(|e| e.to_string()),
        ),
    }
}

async fn serve_member(mut config: Config) -> Result<(), String> {
    let fixtures = std::path::Path::new(&config.data_dir).join("fixtures");
    let validity = config.self_signed_cert_validity_years;
    crate::tls::auto::apply(
        &mut config.client_tls,
        config.auto_tls,
        &fixtures.join("client"),
        &config.listen_client_urls,
        validity,
        "client",
    )?;
    crate::tls::auto::apply(
        &mut config.peer_tls,
        config.peer_auto_tls,
        &fixtures.join("peer"),
        &config.listen_peer_urls,
        validity,
        "peer",
    )?;
    let has_data = member::has_data(&member::wal_dir(&config));
    // As etcd 3.4: a data directory a proxy made starts the proxy again; `--proxy`
    // asks for one; a v2 discovery service that finds the cluster full falls back to one.
    if !has_data && (config.proxy.is_on() || crate::httpproxy::proxy_dir(&config).is_dir()) {
        return crate::httpproxy::run(&config).await;
    }
    if crate::discovery::resolve_initial_cluster(&mut config, has_data).await?
        == crate::discovery::Resolved::Proxy
    {
        return crate::httpproxy::run(&config).await;
    }
    let urls = |v: &[crate::urls::Url]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    log(&format!(
        "starting detcd {} as member {:?}: data dir {}, client URLs {}, peer URLs {}, initial cluster {}",
        env!("CARGO_PKG_VERSION"),
        config.name,
        config.data_dir,
        urls(&config.listen_client_urls),
        urls(&config.listen_peer_urls),
        config.initial_cluster_string()
    ));
    let all_urls: Vec<_> = config
        .listen_client_urls
        .iter()
        .chain(&config.listen_client_http_urls)
        .cloned()
        .collect();
    let tls = serve::client_tls(&all_urls, &config.client_tls)?;
    let listeners = serve::bind_client_urls(&config.listen_client_urls, tls.clone()).await?;
    let http_listeners = serve::bind_client_urls(&config.listen_client_http_urls, tls).await?;
    let (member, handle) = member::start(&config).await.map_err(|e| e.to_string())?;
    let tokens = token_provider(&config.auth_token)?;
    let services = Services::new(handle.clone())
        .with_bcrypt_cost(config.bcrypt_cost)
        .with_tokens(tokens)
        .with_client_cert_auth(config.client_tls.client_cert_auth)
        .with_scratch_dir(std::path::PathBuf::from(&config.data_dir))
        .with_metrics(config.ops.metrics_extensive, crate::member::quota_bytes(&config));
    let http = serve::HttpOptions {
        serve: if http_listeners.is_empty() {
            serve::Serve::Both
        } else {
            serve::Serve::GrpcOnly
        },
        gateway: config.enable_grpc_gateway,
        v2: config.enable_v2,
        access: crate::http_access::AccessRules {
            host_whitelist: config.host_whitelist.clone(),
            cors: config.cors.clone(),
        },
    };
    let routes = serve::routes(services.clone(), config.max_request_bytes, &http);
    let http_only = serve::HttpOptions {
        serve: serve::Serve::HttpOnly,
        ..http
    };
    let http_routes = serve::routes(services.clone(), config.max_request_bytes, &http_only);
    let addrs: Vec<String> = listeners
        .iter()
        .chain(&http_listeners)
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    // What etcd's "serving client traffic" lines name: each bound address, and whether TLS.
    let serving: Vec<(bool, String)> = listeners
        .iter()
        .chain(&http_listeners)
        .filter_map(|l| l.local_addr().ok().map(|a| (l.tls.is_some(), a.to_string())))
        .collect();
    let checker = crate::corruption::Checker::new(&config, handle.clone())?;
    if config.ops.initial_corrupt_check {
        if let Err(e) = checker.initial().await {
            member.shutdown().await;
            return Err(e);
        }
    }
    let compaction_check = (config.ops.compact_hash_check && !config.ops.compact_hash_check_time.is_zero())
        .then(|| tokio::spawn(checker.clone().compaction(config.ops.compact_hash_check_time)));
    let periodic = (!config.ops.corrupt_check_time.is_zero())
        .then(|| tokio::spawn(checker.periodic(config.ops.corrupt_check_time)));
    let http2 = serve::Http2Settings {
        max_concurrent_streams: config.ops.max_concurrent_streams,
        keepalive_min_time: config.ops.grpc_keepalive_min_time,
        keepalive_interval: config.ops.grpc_keepalive_interval,
        keepalive_timeout: config.ops.grpc_keepalive_timeout,
    };
    let servers = serve::ClientServers::start_with(listeners, routes, http2);
    let http_servers = serve::ClientServers::start_with(http_listeners, http_routes, http2);
    crate::process::log_serving(&serving);
    let metrics_servers = crate::process::serve_metrics(&config, services).await?;
    log(&format!(
        "member {:x} of cluster {:x} serving client requests on {}",
        handle.member_id(),
        handle.cluster_id(),
        addrs.join(", ")
    ));
    crate::v2::spawn_sync(handle.clone());
    let ready = tokio::spawn(announce_ready(handle.clone(), Publish::of(&config)));
    let outcome = tokio::select! {
        signal = termination() => {
            // etcd's line, with Go's name of the signal.
            let go_name = if signal == "SIGINT" { "interrupt" } else { "terminated" };
            detcd_io::log::event_with(
                Level::Info,
                "received signal; shutting down",
                &[("signal", Field::Str(go_name))],
            );
            Ok(())
        }
        reason = member.stopped() => match reason {
            StopReason::Removed => {
                log("this member was removed from the cluster, shutting down");
                Ok(())
            }
            StopReason::Shutdown => Ok(()),
            StopReason::Failed(why) => Err(format!("the member failed: {why}")),
        },
    };
    ready.abort();
    for task in [periodic, compaction_check].into_iter().flatten() {
        task.abort();
    }
    let urls = |v: &[crate::urls::Url]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    let (peer_urls, client_urls) = (
        urls(&config.initial_advertise_peer_urls),
        urls(&config.advertise_client_urls),
    );
    let server_fields = [
        ("name", Field::Str(&config.name)),
        ("data-dir", Field::Str(&config.data_dir)),
        ("advertise-peer-urls", Field::List(&peer_urls)),
        ("advertise-client-urls", Field::List(&client_urls)),
    ];
    detcd_io::log::event_with(Level::Info, "closing etcd server", &server_fields);
    notify(NotifyState::Stopping);
    http_servers.shutdown(async {}).await;
    if let Some(m) = metrics_servers {
        m.shutdown(async {}).await;
    }
    servers.shutdown(member.shutdown()).await;
    detcd_io::log::event_with(Level::Info, "closed etcd server", &server_fields);
    log("shutdown complete");
    outcome
}

/// What etcd's "published local member to cluster through raft" line says.
struct Publish {
    name: String,
    client_urls: Vec<String>,
    /// etcd's request timeout: 5 s and two election timeouts.
    timeout_ms: u64,
}

impl Publish {
    fn of(config: &Config) -> Publish {
        Publish {
            name: config.name.clone(),
            client_urls: config
                .advertise_client_urls
                .iter()
                .map(ToString::to_string)
                .collect(),
            timeout_ms: 5_000 + 2 * config.election_timeout_ms,
        }
    }
}

/// A whole number of milliseconds as Go prints a `time.Duration` (`7s`, `6.5s`, `750ms`).
fn go_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let fraction = format!("{:03}", ms % 1000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{fraction}s", ms / 1000)
    }
}

/// Waits until this member's name and client URLs are applied (etcd's publish through
/// raft) and it answers a linearizable read, then says so in the log with etcd's lines
/// ("published local member to cluster through raft", "enabled capabilities for
/// version", "ready to serve client requests") and to systemd.
async fn announce_ready(handle: MemberHandle, publish: Publish) {
    use detcd_core::node::Response as NodeResponse;
    use detcd_proto::etcdserverpb::MemberListRequest;
    let read = RangeRequest {
        key: b"health".to_vec(),
        keys_only: true,
        limit: 1,
        ..RangeRequest::default()
    };
    loop {
        match handle.call(Request::Range(read.clone())).await {
            Ok(_) => break,
            // A learner refuses linearizable reads (as the API must) but is ready once it
            // follows a leader and has applied its own publish (below), as etcd's learner.
            Err(e) if e == detcd_core::error::LEARNER_RPC_NOT_SUPPORTED && handle.metrics().has_leader => {
                break
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let me = handle.member_id();
    loop {
        let mut list = handle
            .call(Request::MemberList(MemberListRequest { linearizable: false }))
            .await;
        if matches!(&list, Err(e) if *e == detcd_core::error::LEARNER_RPC_NOT_SUPPORTED) {
            // A learner refuses MemberList (etcd 3.4's gRPC rule) but reads its own
            // member list for the v2 API.
            list = handle.call(Request::V2Members).await;
        }
        if let Ok(NodeResponse::MemberList(list)) = list {
            if list.members.iter().any(|m| m.id == me && !m.name.is_empty()) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (id, cluster) = (format!("{me:x}"), format!("{:x}", handle.cluster_id()));
    let attributes = format!(
        "{{Name:{} ClientURLs:[{}]}}",
        publish.name,
        publish.client_urls.join(" ")
    );
    detcd_io::log::event_with(
        Level::Info,
        "published local member to cluster through raft",
        &[
            ("local-member-id", Field::Str(&id)),
            ("local-member-attributes", Field::Str(&attributes)),
            ("request-path", Field::Str(&format!("/0/members/{id}/attributes"))),
            ("cluster-id", Field::Str(&cluster)),
            ("publish-timeout", Field::Str(&go_duration(publish.timeout_ms))),
        ],
    );
    // The cluster version's major.minor, as etcd's capability line names it.
    let version: Vec<&str> = crate::http::CLUSTER_VERSION.split('.').take(2).collect();
    detcd_io::log::event_with(
        Level::Info,
        "enabled capabilities for version",
        &[("cluster-version", Field::Str(&version.join(".")))],
    );
    detcd_io::log::event_with(Level::Info, "ready to serve client requests", &[]);
    notify(NotifyState::Ready);
}

/// Tells systemd `state` when it asked to be told (`NOTIFY_SOCKET`).
pub(crate) fn notify(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        log(&format!("cannot notify systemd: {e}"));
    }
}

/// Resolves with the name of the first SIGTERM or SIGINT.
pub(crate) async fn termination() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        // Without signal handlers the process still ends on the default action.
        std::future::pending::<()>().await;
        unreachable!()
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(super::go_duration(7_000), "7s");
        assert_eq!(super::go_duration(6_500), "6.5s");
        assert_eq!(super::go_duration(5_050), "5.05s");
        assert_eq!(super::go_duration(750), "750ms");
    }
}
