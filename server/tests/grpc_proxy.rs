//! `detcd grpc-proxy start` driven by the real etcdctl 3.4.
//!
//! - An etcdctl session (put, get, serializable get after a write, txn both ways, del,
//!   lease grant / keep-alive / timetolive / revoke, lock, a watch) through detcd's proxy
//!   in front of detcd, compared with the same session through etcd 3.4's own grpc-proxy
//!   in front of etcd 3.4 (lease IDs and remaining seconds masked), member list (the
//!   proxy itself, as etcd's lists itself) included; with an empty
//!   `--advertise-client-url` the cluster's members; endpoint status and health.
//! - Serializable reads from the proxy's cache, compared with etcd 3.4's proxy.
//! - `/health` with the cluster reachable (in the session) and unreachable, compared with
//!   etcd 3.4's proxy; `/metrics` relays a member's series (500 as etcd's proxy when
//!   none answers), `/proxy/metrics` has the proxy's own; the relay uses the proxy's
//!   upstream TLS (`--cacert`, `--cert`, `--key`) for a member requiring client
//!   certificates.
//! - Watch coalescing, measured: 20 etcdctl watchers of one key through detcd's proxy
//!   in front of etcd 3.4 add exactly one watcher to etcd's own
//!   `etcd_debugging_mvcc_watcher_total`, and every watcher sees the event.
//! - `--namespace`: keys prefixed on the way up and stripped on the way down (get,
//!   watch, txn compares, lease keys), keys outside the namespace invisible.
//! - Auth through the proxy: a user's token travels up; cached answers and shared
//!   watches are never given to a user the cluster would refuse.
//! - TLS: the proxy dials an https member with `--cacert` and serves TLS requiring client
//!   certificates (`--cert-file`, `--key-file`, `--trusted-ca-file`), or with `--auto-tls`.
//! - Answers over tonic's default 4 MiB message limit pass through.
//! - `--resolver-prefix`: the registration key and value are etcd's proxy's, and member
//!   list through the proxy lists the registered proxies.
//! - A 3-member detcd cluster loses the member the proxy talks to: puts, gets
//!   (serializable ones with `--experimental-serializable-ordering`), an open watch and
//!   lease keep-alives go on through the proxy, and through an L4 gateway in front of the
//!   same members.
//!
//! Skipped (with a notice) without `etcd` and `etcdctl` on PATH; a failure under CI.

#[path = "support/proxy_proc.rs"]
mod proxy_proc;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use detcd_testkit::{etcdctl, etcdctl_ok, free_port, member_command, start_server, Server};
use proxy_proc::{
    etcdctl_stdin, grpc_proxy, http_get, lines_of, metric, own_grpc_proxy, scrape, scrape_proxy, start_proxy,
    three_members, tools_present, wait_watchers, watch_for, DETCD,
};

/// Lease IDs (16 hex digits) and remaining seconds masked.
fn mask(text: &str, lease: &str) -> String {
    let text = text.replace(lease, "<lease>");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("remaining(") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let end = after.find(')').map_or(after.len(), |e| e + 1);
        out.push_str("remaining(<s>)");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The everyday etcdctl session, each step's output (IDs masked).
fn session(endpoint: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut step = |name: &str, text: String| out.push((name.to_string(), text));
    let run = |args: &[&str]| {
        let o = etcdctl(endpoint, args);
        format!(
            "{}{}[{}]",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            o.status.code().unwrap_or(-1)
        )
    };
    step("put", run(&["put", "foo", "bar"]));
    step("/health", format!("{:?}", http_get(endpoint, "/health")));
    // etcd's proxy lists itself (the host's name, --advertise-client-url's default).
    step("member list", run(&["member", "list"]));
    step("get", run(&["get", "foo"]));
    step("serializable get", run(&["get", "foo", "--consistency=s"]));
    step("put again", run(&["put", "foo", "bar2", "--prev-kv"]));
    step(
        "serializable get after a write",
        run(&["get", "foo", "--consistency=s"]),
    );
    step(
        "txn success",
        etcdctl_stdin(
            endpoint,
            &["txn"],
            "value(\"foo\") = \"bar2\"\n\nput foo bar3\n\nget foo\n\n",
        ),
    );
    step(
        "txn failure",
        etcdctl_stdin(
            endpoint,
            &["txn"],
            "value(\"foo\") = \"nope\"\n\nput foo x\n\nget foo\n\n",
        ),
    );
    step("put a", run(&["put", "a", "1"]));
    step("get from key", run(&["get", "a", "--from-key"]));
    step("del", run(&["del", "foo", "--prev-kv"]));
    step("get deleted", run(&["get", "foo"]));
    let granted = run(&["lease", "grant", "60"]);
    let lease = granted.split_whitespace().nth(1).unwrap_or("").to_string();
    step("lease grant", mask(&granted, &lease));
    step(
        "put with lease",
        run(&["put", "k", "v", &format!("--lease={lease}")]),
    );
    step(
        "timetolive",
        mask(&run(&["lease", "timetolive", &lease, "--keys"]), &lease),
    );
    step(
        "keep-alive once",
        mask(&run(&["lease", "keep-alive", "--once", &lease]), &lease),
    );
    step("revoke", mask(&run(&["lease", "revoke", &lease]), &lease));
    step("get revoked key", run(&["get", "k"]));
    // etcdctl's lock: a lease with keepalives, a txn and a watch through the proxy.
    step("lock", run(&["lock", "mylock", "--", "echo", "locked"]));
    let watcher = watch_for(endpoint, &["--prefix", "w"], 4);
    wait_watchers(endpoint, 1);
    run(&["put", "w1", "x"]);
    run(&["put", "w2", "y"]);
    run(&["del", "w1"]);
    // Three events of three lines each (type, key, value).
    step("watch", lines_of(watcher, 9));
    out
}

#[test]
fn etcdctl_session_through_the_proxy_matches_etcds_proxy() {
    if !tools_present("etcdctl_session_through_the_proxy_matches_etcds_proxy") {
        return;
    }
    let etcd = start_server("etcd", "gp-etcd");
    let etcd_proxy = grpc_proxy("etcd", &etcd.endpoint, &[]);
    let expected = session(&etcd_proxy.addr);
    drop(etcd_proxy);
    drop(etcd);
    let detcd = start_server(DETCD, "gp-detcd");
    let proxy = grpc_proxy(DETCD, &detcd.endpoint, &[]);
    let got = session(&proxy.addr);
    let mut failures = Vec::new();
    for ((name, e), (_, g)) in expected.iter().zip(&got) {
        if e != g {
            failures.push(format!("{name}:\n  etcd:  {e:?}\n  detcd: {g:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nproxy log:\n{}",
        failures.join("\n"),
        proxy.log()
    );
    // With an empty --advertise-client-url, member list is the cluster's; endpoint
    // status answers about the member the proxy talks to.
    let forwarding = grpc_proxy(DETCD, &detcd.endpoint, &["--advertise-client-url="]);
    let members = etcdctl_ok(&forwarding.addr, &["member", "list"]);
    assert!(
        members.contains(&format!("http://{}", detcd.endpoint)),
        "{members}"
    );
    let id = members.split(',').next().unwrap_or("").trim().to_string();
    let status = etcdctl_ok(&proxy.addr, &["endpoint", "status"]);
    assert!(status.starts_with(&format!("{}, {id}, ", proxy.addr)), "{status}");
    let health = etcdctl(&proxy.addr, &["endpoint", "health"]);
    let said =
        String::from_utf8_lossy(&health.stderr).into_owned() + &String::from_utf8_lossy(&health.stdout);
    assert!(health.status.success() && said.contains("is healthy"), "{said}");
}

#[test]
fn an_unreachable_cluster_is_unhealthy_as_through_etcds_proxy() {
    if !tools_present("an_unreachable_cluster_is_unhealthy_as_through_etcds_proxy") {
        return;
    }
    let nowhere = format!("127.0.0.1:{}", free_port());
    let theirs = grpc_proxy("etcd", &nowhere, &[]);
    let ours = grpc_proxy(DETCD, &nowhere, &[]);
    let expected = http_get(&theirs.addr, "/health");
    assert_eq!(expected, (503, "{\"health\":\"false\"}\n".to_string()));
    assert_eq!(http_get(&ours.addr, "/health"), expected);
}

#[test]
fn metrics_are_the_members_relayed_and_the_proxys_own_at_proxy_metrics() {
    if !tools_present("metrics_are_the_members_relayed_and_the_proxys_own_at_proxy_metrics") {
        return;
    }
    let detcd = start_server(DETCD, "gp-metrics");
    etcdctl_ok(&detcd.endpoint, &["put", "m", "1"]);
    // A dead endpoint first: the relay moves on to the member that answers.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let proxy = grpc_proxy(DETCD, &format!("{nowhere},{}", detcd.endpoint), &[]);
    etcdctl_ok(&proxy.addr, &["get", "m", "--consistency=s"]);
    etcdctl_ok(&proxy.addr, &["get", "m", "--consistency=s"]);
    let relayed = scrape(&proxy.addr);
    // The member's own series: its puts, and its proxy series at 0.
    assert_eq!(metric(&relayed, "etcd_mvcc_put_total"), 1.0, "{relayed}");
    assert_eq!(metric(&relayed, "etcd_server_has_leader"), 1.0);
    assert!(!relayed.contains("detcd_grpc_proxy_"), "{relayed}");
    let own = scrape_proxy(&proxy.addr);
    assert!(own.contains("detcd_grpc_proxy_watchers"), "{own}");
    assert!(metric(&own, "etcd_grpc_proxy_cache_hits_total") >= 1.0, "{own}");
    assert!(!own.contains("etcd_mvcc_put_total"), "{own}");
    // No member answers: Go's 500, as etcd's proxy answers it.
    drop(detcd);
    let theirs = grpc_proxy("etcd", &nowhere, &[]);
    let expected = http_get(&theirs.addr, "/metrics");
    assert_eq!(expected, (500, "Internal server error\n".to_string()));
    assert_eq!(http_get(&proxy.addr, "/metrics"), expected);
}

#[test]
fn many_watchers_of_one_key_cost_one_upstream_watch() {
    if !tools_present("many_watchers_of_one_key_cost_one_upstream_watch") {
        return;
    }
    const WATCHERS: usize = 20;
    // The upstream is etcd 3.4: its own gauge counts the watches the proxy makes.
    let etcd = start_server("etcd", "gp-coalesce");
    let proxy = grpc_proxy(DETCD, &etcd.endpoint, &[]);
    let before = metric(&scrape(&etcd.endpoint), "etcd_debugging_mvcc_watcher_total");
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|_| watch_for(&proxy.addr, &["hot"], 6))
        .collect();
    wait_watchers(&proxy.addr, WATCHERS);
    let upstream = metric(&scrape(&etcd.endpoint), "etcd_debugging_mvcc_watcher_total") - before;
    let proxy_metrics = scrape_proxy(&proxy.addr);
    eprintln!(
        "MEASURED: {WATCHERS} client watchers of one key through the proxy -> {upstream} upstream watch(es) on etcd (etcd_debugging_mvcc_watcher_total), proxy says {} upstream",
        metric(&proxy_metrics, "detcd_grpc_proxy_upstream_watches")
    );
    assert_eq!(
        upstream, 1.0,
        "{WATCHERS} watchers cost {upstream} upstream watches"
    );
    assert_eq!(metric(&proxy_metrics, "detcd_grpc_proxy_upstream_watches"), 1.0);
    let coalescing = "etcd_grpc_proxy_watchers_coalescing_total";
    assert_eq!(metric(&proxy_metrics, coalescing), (WATCHERS - 1) as f64);
    etcdctl_ok(&proxy.addr, &["put", "hot", "v1"]);
    for w in watchers {
        assert_eq!(lines_of(w, 3), "PUT\nhot\nv1\n");
    }
    // One event from the cluster, sent to 20 watchers: 19 the cluster did not send.
    let events = "etcd_grpc_proxy_events_coalescing_total";
    assert_eq!(metric(&scrape_proxy(&proxy.addr), events), (WATCHERS - 1) as f64);
    // All gone: the upstream watch ends with the last of them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&scrape(&etcd.endpoint), "etcd_debugging_mvcc_watcher_total") > before {
        assert!(
            Instant::now() < deadline,
            "the upstream watch outlived its watchers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn namespace_isolates_the_proxys_clients() {
    if !tools_present("namespace_isolates_the_proxys_clients") {
        return;
    }
    let detcd = start_server(DETCD, "gp-ns");
    let proxy = grpc_proxy(DETCD, &detcd.endpoint, &["--namespace=app/"]);
    let (up, ns) = (detcd.endpoint.as_str(), proxy.addr.as_str());
    etcdctl_ok(up, &["put", "outside", "o"]);
    let watcher = watch_for(ns, &["--prefix", "k", "--prev-kv"], 4);
    wait_watchers(ns, 1);
    etcdctl_ok(ns, &["put", "k1", "v1"]);
    assert_eq!(etcdctl_ok(up, &["get", "app/k1"]), "app/k1\nv1\n");
    assert_eq!(etcdctl_ok(ns, &["get", "", "--prefix"]), "k1\nv1\n");
    assert_eq!(etcdctl_ok(ns, &["get", "outside"]), "");
    // A write outside the namespace, under the watched prefix's upstream name: unseen.
    etcdctl_ok(up, &["put", "k1", "unseen"]);
    let txn = etcdctl_stdin(ns, &["txn"], "value(\"k1\") = \"v1\"\n\nput k1 v2\n\n\n");
    assert_eq!(txn, "SUCCESS\n\nOK\n");
    assert_eq!(etcdctl_ok(up, &["get", "app/k1", "--print-value-only"]), "v2\n");
    let lease = etcdctl_ok(ns, &["lease", "grant", "60"]);
    let lease = lease.split_whitespace().nth(1).expect("lease id").to_string();
    etcdctl_ok(ns, &["put", "k2", "v", &format!("--lease={lease}")]);
    let ttl = etcdctl_ok(ns, &["lease", "timetolive", &lease, "--keys"]);
    assert!(ttl.ends_with("attached keys([k2])\n"), "{ttl}");
    assert_eq!(etcdctl_ok(ns, &["del", "", "--from-key"]), "2\n");
    assert_eq!(
        etcdctl_ok(up, &["get", "", "--from-key", "--keys-only"]),
        "k1\n\noutside\n\n"
    );
    // Keys stripped in events and their prev_kv (etcdctl prints the previous pair first);
    // the upstream's own "k1" never shows.
    let expected =
        "PUT\nk1\nv1\nPUT\nk1\nv1\nk1\nv2\nPUT\nk2\nv\nDELETE\nk1\nv2\nk1\n\nDELETE\nk2\nv\nk2\n\n";
    assert_eq!(lines_of(watcher, expected.lines().count()), expected);
}

/// Reads through `proxy` around writes that bypass it (to `upstream`) and go through it:
/// what each read answers.
fn cache_session(proxy: &str, upstream: &str) -> Vec<String> {
    let mut seen = Vec::new();
    etcdctl_ok(proxy, &["put", "c", "v1"]);
    seen.push(etcdctl_ok(proxy, &["get", "c"]));
    etcdctl_ok(upstream, &["put", "c", "v2"]);
    seen.push(etcdctl_ok(proxy, &["get", "c", "--consistency=s"]));
    seen.push(etcdctl_ok(proxy, &["get", "c"]));
    seen.push(etcdctl_ok(proxy, &["get", "c", "--consistency=s"]));
    etcdctl_ok(proxy, &["put", "c", "v3"]);
    seen.push(etcdctl_ok(proxy, &["get", "c", "--consistency=s"]));
    let txn = etcdctl_stdin(proxy, &["txn"], "\ndel c\n\n\n");
    seen.push(txn);
    seen.push(etcdctl_ok(proxy, &["get", "c", "--consistency=s"]));
    seen
}

#[test]
fn serializable_reads_are_cached_as_etcds_proxy_caches_them() {
    if !tools_present("serializable_reads_are_cached_as_etcds_proxy_caches_them") {
        return;
    }
    let etcd = start_server("etcd", "gp-cache-etcd");
    let etcd_proxy = grpc_proxy("etcd", &etcd.endpoint, &[]);
    let expected = cache_session(&etcd_proxy.addr, &etcd.endpoint);
    drop(etcd_proxy);
    drop(etcd);
    let detcd = start_server(DETCD, "gp-cache-detcd");
    let proxy = grpc_proxy(DETCD, &detcd.endpoint, &[]);
    let got = cache_session(&proxy.addr, &detcd.endpoint);
    // The write that bypassed the proxy is not seen by a serializable read until a
    // linearizable one refreshed the cache; writes through the proxy are.
    assert_eq!(got[1], "c\nv1\n");
    assert_eq!(got, expected);
    // Two reads came from the cache (etcd's proxy answers /metrics with its upstream's
    // series, so its own count cannot be compared).
    assert_eq!(
        metric(&scrape_proxy(&proxy.addr), "etcd_grpc_proxy_cache_hits_total"),
        2.0
    );
}

#[test]
fn auth_decides_for_each_client_through_the_shared_cache_and_watches() {
    if !tools_present("auth_decides_for_each_client_through_the_shared_cache_and_watches") {
        return;
    }
    let detcd = start_server(DETCD, "gp-auth");
    let up = detcd.endpoint.as_str();
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "bob:bobpw"],
        &["auth", "enable"],
    ] {
        etcdctl_ok(up, args);
    }
    let proxy = grpc_proxy(DETCD, up, &[]);
    let p = proxy.addr.as_str();
    etcdctl_ok(p, &["--user=root:rootpw", "put", "secret", "s"]);
    // Root's answer is cached; bob's serializable read is still the cluster's to decide.
    assert_eq!(
        etcdctl_ok(p, &["--user=root:rootpw", "get", "secret"]),
        "secret\ns\n"
    );
    let bob = etcdctl(p, &["--user=bob:bobpw", "get", "secret", "--consistency=s"]);
    assert!(!bob.status.success());
    assert!(String::from_utf8_lossy(&bob.stderr).contains("Error: etcdserver: permission denied"));
    // Root's watch does not let bob's join it.
    let root_watch = watch_for(p, &["--user=root:rootpw", "secret"], 4);
    wait_watchers(p, 1);
    let bob_watch = Command::new("timeout")
        .args([
            "4",
            "etcdctl",
            "--user=bob:bobpw",
            &format!("--endpoints={p}"),
            "watch",
            "secret",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("bob's watch");
    assert!(
        String::from_utf8_lossy(&bob_watch.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&bob_watch.stderr)
    );
    etcdctl_ok(p, &["--user=root:rootpw", "put", "secret", "s2"]);
    assert_eq!(lines_of(root_watch, 3), "PUT\nsecret\ns2\n");
}

/// A CA, a server and a client certificate (`ca.crt`, `server.crt`, `client.crt`
/// and their keys) in a fresh directory named by `tag`, and a member serving its
/// client URL over https with the server's (requiring client certificates signed by
/// the CA when `client_cert_auth`): the member (its directory removed on drop), the
/// directory, the client URL.
fn tls_member(tag: &str, client_cert_auth: bool) -> (Server, std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().expect("utf-8 path");
    let certs = env!("CARGO_BIN_EXE_detcd-certs");
    for args in [
        &["ca", d][..],
        &["cert", d, "server", "127.0.0.1"],
        &["cert", d, "client", "127.0.0.1"],
    ] {
        assert!(Command::new(certs)
            .args(args)
            .output()
            .expect("detcd-certs")
            .status
            .success());
    }
    let file = |name: &str| format!("{d}/{name}");
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = member_command(DETCD, "n1", &dir.join("data"), &client_url, &peer_url)
        .args(["--initial-cluster", &format!("n1={peer_url}")])
        .args([
            "--cert-file",
            &file("server.crt"),
            "--key-file",
            &file("server.key"),
        ])
        .args(if client_cert_auth {
            vec![
                "--trusted-ca-file".to_string(),
                file("ca.crt"),
                "--client-cert-auth".into(),
            ]
        } else {
            vec![]
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start detcd");
    let member = Server::new(child, dir.clone(), format!("127.0.0.1:{client}"));
    (member, dir, client_url)
}

#[test]
fn tls_to_the_cluster_and_to_the_clients() {
    if !tools_present("tls_to_the_cluster_and_to_the_clients") {
        return;
    }
    let (_member, dir, client_url) = tls_member("detcd-gp-tls", false);
    let d = dir.to_str().expect("utf-8 path");
    let file = |name: &str| format!("{d}/{name}");
    let proxy = grpc_proxy(
        DETCD,
        &client_url,
        &[
            &format!("--cacert={}", file("ca.crt")),
            &format!("--cert-file={}", file("server.crt")),
            &format!("--key-file={}", file("server.key")),
            &format!("--trusted-ca-file={}", file("ca.crt")),
        ],
    );
    let tls = |with_client_cert: bool| {
        let mut args = vec![format!("--cacert={}", file("ca.crt"))];
        if with_client_cert {
            args.push(format!("--cert={}", file("client.crt")));
            args.push(format!("--key={}", file("client.key")));
        }
        args
    };
    let ctl = |with_client_cert: bool, rest: &[&str]| {
        let mut args: Vec<String> = tls(with_client_cert);
        args.extend(rest.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        etcdctl(&format!("https://{}", proxy.addr), &args)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ctl(true, &["put", "t", "v"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "no TLS put through the proxy:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = ctl(true, &["get", "t", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "v\n");
    // --trusted-ca-file: a client without a certificate is turned away.
    assert!(
        !ctl(false, &["get", "t", "--dial-timeout=2s", "--command-timeout=2s"])
            .status
            .success()
    );
    // --auto-tls: a self-signed certificate under --data-dir/fixtures/proxy.
    let auto = grpc_proxy(
        DETCD,
        &client_url,
        &[
            &format!("--cacert={}", file("ca.crt")),
            "--auto-tls",
            &format!("--data-dir={d}/proxy-data"),
        ],
    );
    let got = etcdctl(
        &format!("https://{}", auto.addr),
        &[
            "--insecure-transport=false",
            "--insecure-skip-tls-verify",
            "get",
            "t",
            "--print-value-only",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&got.stdout), "v\n", "{}", auto.log());
    assert!(dir.join("proxy-data/fixtures/proxy/cert.pem").is_file());
}

/// `/metrics` is relayed with the proxy's upstream TLS (`--cacert`, `--cert`,
/// `--key`): from a member serving https and requiring client certificates, named
/// by a bare `host:port` (https, as the gRPC calls go) or by an `https://` URL;
/// without a client certificate the member turns the relay away (Go's 500).
#[test]
fn metrics_are_relayed_with_the_upstream_tls_settings() {
    if !tools_present("metrics_are_relayed_with_the_upstream_tls_settings") {
        return;
    }
    let (_member, dir, client_url) = tls_member("detcd-gp-metrics-tls", true);
    let d = dir.to_str().expect("utf-8 path");
    let file = |name: &str| format!("{d}/{name}");
    let upstream_tls = [
        format!("--cacert={}", file("ca.crt")),
        format!("--cert={}", file("client.crt")),
        format!("--key={}", file("client.key")),
    ];
    let upstream_tls: Vec<&str> = upstream_tls.iter().map(String::as_str).collect();
    let bare = client_url.trim_start_matches("https://").to_string();
    for endpoint in [bare.as_str(), client_url.as_str()] {
        let proxy = own_grpc_proxy(endpoint, &upstream_tls);
        // The member is up once a put through the proxy succeeds.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !etcdctl(&proxy.addr, &["put", "t", "v"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "{endpoint}: no put through the proxy:\n{}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The member's own series, relayed (a moment may pass before its
        // gauges show the leader it has).
        let deadline = Instant::now() + Duration::from_secs(10);
        let (status, relayed) = loop {
            let (status, relayed) = http_get(&proxy.addr, "/metrics");
            let settled = status == 200 && relayed.contains("\netcd_server_has_leader 1\n");
            if settled || Instant::now() > deadline {
                break (status, relayed);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(status, 200, "{endpoint}: {relayed}\n{}", proxy.log());
        assert_eq!(
            metric(&relayed, "etcd_server_has_leader"),
            1.0,
            "{endpoint}: {relayed}\n{}",
            proxy.log()
        );
        assert!(
            metric(&relayed, "etcd_mvcc_put_total") >= 1.0,
            "{endpoint}: {relayed}"
        );
    }
    let no_cert = format!("--cacert={}", file("ca.crt"));
    let proxy = own_grpc_proxy(&bare, &[no_cert.as_str()]);
    assert_eq!(
        http_get(&proxy.addr, "/metrics"),
        (500, "Internal server error\n".to_string())
    );
}

#[test]
fn answers_larger_than_tonics_default_limit_pass_through() {
    if !tools_present("answers_larger_than_tonics_default_limit_pass_through") {
        return;
    }
    let detcd = start_server(DETCD, "gp-large");
    let proxy = grpc_proxy(DETCD, &detcd.endpoint, &[]);
    let value = "x".repeat(1_000_000);
    for i in 0..5 {
        let out = etcdctl_stdin(&proxy.addr, &["put", &format!("big{i}")], &value);
        assert_eq!(out, "OK\n");
    }
    // 5 MB in one answer: over tonic's 4 MiB default, under etcd's MaxInt32.
    let got = etcdctl_ok(&proxy.addr, &["get", "big", "--prefix", "--print-value-only"]);
    assert_eq!(got.len(), 5 * (value.len() + 1));
}

#[test]
fn proxies_register_under_a_resolver_prefix_as_etcds_do() {
    if !tools_present("proxies_register_under_a_resolver_prefix_as_etcds_do") {
        return;
    }
    let detcd = start_server(DETCD, "gp-resolver");
    let up = detcd.endpoint.as_str();
    let with_prefix = |program: &str| {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let args = [
            format!("--endpoints={up}"),
            format!("--advertise-client-url={addr}"),
            "--resolver-prefix=proxies".to_string(),
            "--resolver-ttl=5".to_string(),
        ];
        (start_proxy(program, "grpc-proxy", &args), addr)
    };
    let (ours, ours_addr) = with_prefix(DETCD);
    let (theirs, theirs_addr) = with_prefix("etcd");
    let deadline = Instant::now() + Duration::from_secs(10);
    let registered = || etcdctl_ok(up, &["get", "proxies/", "--prefix"]);
    while registered().lines().count() < 4 {
        assert!(
            Instant::now() < deadline,
            "not registered: {}\n{}",
            registered(),
            ours.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The same key and value format as etcd's proxy (gRPC naming's update).
    let value_of = |addr: &str| {
        let kv = etcdctl_ok(up, &["get", &format!("proxies/{addr}"), "--print-value-only"]);
        kv.replace(addr, "<addr>")
    };
    assert_eq!(value_of(&ours_addr), value_of(&theirs_addr));
    assert!(value_of(&ours_addr).starts_with("{\"Op\":0,\"Addr\":\"<addr>\",\"Metadata\":"));
    // Member list through our proxy: both registered proxies.
    let members = etcdctl_ok(&ours.addr, &["member", "list"]);
    let mut urls: Vec<&str> = members.lines().filter_map(|l| l.split(", ").nth(4)).collect();
    urls.sort();
    let mut expected = vec![ours_addr.as_str(), theirs_addr.as_str()];
    expected.sort();
    assert_eq!(urls, expected, "{members}");
    drop(theirs);
}

#[test]
fn the_proxy_survives_a_member_going_away() {
    if !tools_present("the_proxy_survives_a_member_going_away") {
        return;
    }
    let mut members = three_members("gp-fail");
    let endpoints = members
        .iter()
        .map(|m| m.endpoint.clone())
        .collect::<Vec<_>>()
        .join(",");
    let proxy = grpc_proxy(DETCD, &endpoints, &["--experimental-serializable-ordering"]);
    let p = proxy.addr.as_str();
    // The L4 gateway in front of the same members.
    let gateway = start_proxy(DETCD, "gateway", &[format!("--endpoints={endpoints}")]);
    for i in 0..3 {
        etcdctl_ok(&gateway.addr, &["put", &format!("gw{i}"), "v"]);
    }
    etcdctl_ok(p, &["put", "before", "1"]);
    let lease = etcdctl_ok(p, &["lease", "grant", "60"]);
    let lease = lease.split_whitespace().nth(1).expect("lease id").to_string();
    let watcher = watch_for(p, &["--prefix", "x"], 8);
    wait_watchers(p, 1);
    etcdctl_ok(p, &["put", "x1", "a"]);
    // The member the proxy talks to (the first endpoint) goes away.
    drop(members.remove(0));
    std::thread::sleep(Duration::from_millis(500));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !etcdctl(p, &["put", "x2", "b"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "puts through the proxy never recovered:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(etcdctl_ok(p, &["get", "before", "--print-value-only"]), "1\n");
    // Serializable reads keep their order across the switch of member.
    assert_eq!(
        etcdctl_ok(p, &["get", "x", "--prefix", "--consistency=s", "--keys-only"]),
        "x1\n\nx2\n\n"
    );
    let kept = etcdctl_ok(p, &["lease", "keep-alive", "--once", &lease]);
    assert!(kept.contains("keepalived with TTL(60)"), "{kept}");
    assert_eq!(
        lines_of(watcher, 6),
        "PUT\nx1\na\nPUT\nx2\nb\n",
        "proxy log:\n{}",
        proxy.log()
    );
}
