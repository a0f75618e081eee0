//! The JSON gateway against etcd's: the curl session of etcd's gateway guide (put,
//! range by prefix, a watch streaming while another client writes, txn, lease grant,
//! keepalive and time-to-live, member list, errors, auth with a token) run with curl
//! against a real etcd (Debian's 3.4) and against detcd, the answers compared after
//! masking what differs between any two clusters (IDs, terms, ports, tokens).
//!
//! Then detcd alone: every gateway path under `/v3/` and `/v3beta/` answers POST and
//! refuses GET with 405; unknown paths 404; bad input etcd's code, never a panic.
//!
//! Skipped (with a notice) without `etcd`, `etcdctl` or `curl` on PATH, a failure under CI.

#[path = "support/curl.rs"]
mod curl;
#[path = "support/gateway_mask.rs"]
mod gateway_mask;

use std::time::Duration;

use curl::{curl, field, post};
use gateway_mask::mask;

use detcd_testkit::start_server;

/// The guide's session against one server: each step's label, status and masked body.
fn session(endpoint: &str) -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    let mut step = |label: &str, (code, body): (u16, String)| {
        out.push((label.to_string(), code, mask(&body)));
        body
    };
    // foo=bar, foo2=baz; the prefix foo.
    step(
        "put",
        post(endpoint, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#, None),
    );
    step(
        "put2",
        post(
            endpoint,
            "/v3/kv/put",
            r#"{"key":"Zm9vMg==","value":"YmF6"}"#,
            None,
        ),
    );
    step(
        "range prefix",
        post(
            endpoint,
            "/v3/kv/range",
            r#"{"key":"Zm9v","range_end":"Zm9w"}"#,
            None,
        ),
    );
    step(
        "range camelCase, sorted, keys only",
        post(
            endpoint,
            "/v3beta/kv/range",
            r#"{"key":"Zm9v","rangeEnd":"Zm9w","sortOrder":"DESCEND","keys_only":true,"unknown":1}"#,
            None,
        ),
    );
    // A watch streams while another client writes.
    let watcher = {
        let endpoint = endpoint.to_string();
        std::thread::spawn(move || {
            curl(
                &endpoint,
                "POST",
                "/v3/watch",
                r#"{"create_request":{"key":"Zm9v"}}"#,
                None,
                Some(2.5),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1000));
    step(
        "put during watch",
        post(endpoint, "/v3/kv/put", r#"{"key":"Zm9v","value":"cXV4"}"#, None),
    );
    step(
        "delete during watch",
        post(
            endpoint,
            "/v3/kv/deleterange",
            r#"{"key":"Zm9v","prev_kv":true}"#,
            None,
        ),
    );
    let (_, watched) = watcher.join().expect("watch thread");
    // curl's timeout ends the stream: the status is curl's, the lines are the server's.
    step("watch stream", (200, watched));
    let txn = r#"{"compare":[{"key":"Zm9vMg==","result":"EQUAL","target":"VALUE","value":"YmF6"}],
        "success":[{"request_put":{"key":"Zm9vMw==","value":"MQ=="}},{"request_range":{"key":"Zm9vMg=="}}],
        "failure":[{"request_delete_range":{"key":"Zm9vMg=="}}]}"#;
    step("txn", post(endpoint, "/v3/kv/txn", txn, None));
    let granted = step(
        "lease grant",
        post(endpoint, "/v3/lease/grant", r#"{"TTL":"60"}"#, None),
    );
    let id = field(&granted, "ID");
    step(
        "put with lease",
        post(
            endpoint,
            "/v3/kv/put",
            &format!(r#"{{"key":"bGs=","lease":"{id}"}}"#),
            None,
        ),
    );
    step(
        "keepalive",
        post(
            endpoint,
            "/v3/lease/keepalive",
            &format!(r#"{{"ID":"{id}"}}"#),
            None,
        ),
    );
    let (code, ttl) = post(
        endpoint,
        "/v3/kv/lease/timetolive",
        &format!(r#"{{"ID":"{id}","keys":true}}"#),
        None,
    );
    let remaining: i64 = field(&ttl, "TTL").parse().unwrap_or(-1);
    assert!((55..=60).contains(&remaining), "TTL left {remaining}: {ttl}");
    let mut without_ttl: serde_json::Value = serde_json::from_str(&ttl).unwrap_or_default();
    if let Some(o) = without_ttl.as_object_mut() {
        o.remove("TTL");
    }
    step("timetolive (TTL checked above)", (code, without_ttl.to_string()));
    step("leases", post(endpoint, "/v3/lease/leases", "{}", None));
    step(
        "revoke",
        post(
            endpoint,
            "/v3/kv/lease/revoke",
            &format!(r#"{{"ID":"{id}"}}"#),
            None,
        ),
    );
    step(
        "member list",
        post(endpoint, "/v3/cluster/member/list", "{}", None),
    );
    // Errors: etcd's code and message with grpc-gateway's HTTP status.
    step(
        "put without key",
        post(endpoint, "/v3/kv/put", r#"{"value":"YmFy"}"#, None),
    );
    step(
        "put with unknown lease",
        post(endpoint, "/v3/kv/put", r#"{"key":"eA==","lease":"1"}"#, None),
    );
    step(
        "future compaction",
        post(endpoint, "/v3/kv/compaction", r#"{"revision":"1000"}"#, None),
    );
    step(
        "missing user",
        post(endpoint, "/v3/auth/user/get", r#"{"name":"nobody"}"#, None),
    );
    step(
        "wrong method",
        curl(endpoint, "GET", "/v3/kv/range", "", None, None),
    );
    step("unknown gateway path", post(endpoint, "/v3/kv/nope", "{}", None));
    step("unknown path", post(endpoint, "/nope", "{}", None));
    // Lock and Election: etcd's errors (plain errors on etcd's side: code 2, Unknown).
    step(
        "proclaim without leader",
        post(endpoint, "/v3/election/proclaim", "{}", None),
    );
    step(
        "leader of nobody",
        post(endpoint, "/v3/election/leader", r#"{"name":"bm9uZQ=="}"#, None),
    );
    let stale = r#"{"leader":{"name":"eA==","key":"eC8x","rev":"99","lease":"1"},"value":"dg=="}"#;
    step(
        "proclaim not leader",
        post(endpoint, "/v3/election/proclaim", stale, None),
    );
    step(
        "resign not leader",
        post(endpoint, "/v3/election/resign", stale, None),
    );
    step(
        "lock unknown lease",
        post(endpoint, "/v3/lock/lock", r#"{"name":"eA==","lease":"5"}"#, None),
    );
    step(
        "unlock absent key",
        post(endpoint, "/v3/lock/unlock", r#"{"key":"eA=="}"#, None),
    );
    // Auth: root, enable, authenticate, use the token, disable.
    step(
        "role add",
        post(endpoint, "/v3/auth/role/add", r#"{"name":"root"}"#, None),
    );
    step(
        "user add",
        post(
            endpoint,
            "/v3/auth/user/add",
            r#"{"name":"root","password":"pw"}"#,
            None,
        ),
    );
    step(
        "user grant",
        post(
            endpoint,
            "/v3/auth/user/grant",
            r#"{"user":"root","role":"root"}"#,
            None,
        ),
    );
    step("auth enable", post(endpoint, "/v3/auth/enable", "{}", None));
    step(
        "range without token",
        post(endpoint, "/v3/kv/range", r#"{"key":"Zm9vMg=="}"#, None),
    );
    step(
        "wrong password",
        post(
            endpoint,
            "/v3/auth/authenticate",
            r#"{"name":"root","password":"no"}"#,
            None,
        ),
    );
    let auth = step(
        "authenticate",
        post(
            endpoint,
            "/v3/auth/authenticate",
            r#"{"name":"root","password":"pw"}"#,
            None,
        ),
    );
    let token = field(&auth, "token");
    step(
        "range with token",
        post(endpoint, "/v3/kv/range", r#"{"key":"Zm9vMg=="}"#, Some(&token)),
    );
    step(
        "range with the token in Grpc-Metadata-Token (grpc-gateway's metadata headers)",
        curl::post_with(
            endpoint,
            "/v3/kv/range",
            r#"{"key":"Zm9vMg=="}"#,
            &[format!("Grpc-Metadata-Token: {token}")],
        ),
    );
    step(
        "user list with token",
        post(endpoint, "/v3/auth/user/list", "{}", Some(&token)),
    );
    step(
        "auth disable",
        post(endpoint, "/v3/auth/disable", "{}", Some(&token)),
    );
    step(
        "range after disable",
        post(endpoint, "/v3/kv/range", r#"{"key":"Zm9vMg=="}"#, None),
    );
    out
}

fn tools_present(test: &str) -> bool {
    detcd_testkit::require_tools(&["etcd", "etcdctl", "curl"], test)
}

#[test]
fn gateway_session_matches_etcd() {
    if !tools_present("gateway_session_matches_etcd") {
        return;
    }
    let etcd = start_server("etcd", "gw-etcd");
    let expected = session(&etcd.endpoint);
    drop(etcd);
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "gw-detcd");
    let got = session(&detcd.endpoint);
    let mut failures = Vec::new();
    for (e, g) in expected.iter().zip(&got) {
        if e != g {
            failures.push(format!(
                "{}:\n  etcd:  {} {}\n  detcd: {} {}",
                e.0, e.1, e.2, g.1, g.2
            ));
        }
    }
    assert_eq!(expected.len(), got.len());
    assert!(
        failures.is_empty(),
        "{} steps differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Bodies that do not parse, and their answers (status and body), on one server.
fn bad_bodies(endpoint: &str) -> Vec<(String, u16, String)> {
    [
        "garbage",
        r#"{"key":"Zm9v",}"#,
        r#"{"key" "Zm9v"}"#,
        r#"{"key":"Zm9v" "x":1}"#,
        "{key:1}",
        r#"{"key":"Zm9v""#,
        r#"{"key":true}"#,
        r#"{"key":1}"#,
        r#"{"key":"Zm9v","limit":true}"#,
        r#"{"key":"Zm9v","limit":1.5}"#,
        r#"{"key":"Zm9v","serializable":"yes"}"#,
        "[1]",
        r#""str""#,
        r#"{"key":"Zm9v====="}"#,
    ]
    .iter()
    .map(|body| {
        let (code, answer) = post(endpoint, "/v3/kv/range", body, None);
        (body.to_string(), code, answer)
    })
    .collect()
}

#[test]
fn unparsable_bodies_get_etcds_words() {
    if !tools_present("unparsable_bodies_get_etcds_words") {
        return;
    }
    let etcd = start_server("etcd", "gw-bad-etcd");
    let expected = bad_bodies(&etcd.endpoint);
    drop(etcd);
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "gw-bad-detcd");
    let got = bad_bodies(&detcd.endpoint);
    let differ: Vec<String> = expected
        .iter()
        .zip(&got)
        .filter(|(e, g)| e != g)
        .map(|(e, g)| format!("{}\n  etcd:  {} {}\n  detcd: {} {}", e.0, e.1, e.2, g.1, g.2))
        .collect();
    assert!(
        differ.is_empty(),
        "{} bodies differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

#[test]
fn every_route_answers_post_and_refuses_other_methods() {
    if !tools_present("every_route_answers_post_and_refuses_other_methods") {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "gw-routes");
    let e = &detcd.endpoint;
    // Streams with a body that ends are cut by curl's timeout: their status is in the headers.
    let streams = ["watch", "election/observe"];
    for path in detcd_server::gateway::paths() {
        let (code, _) = curl(e, "GET", &path, "", None, None);
        assert_eq!(code, 405, "GET {path}");
        if streams.iter().any(|s| path.ends_with(s))
            || path.ends_with("lock/lock")
            || path.ends_with("campaign")
        {
            continue;
        }
        let (code, body) = curl(e, "POST", &path, "{}", None, Some(5.0));
        assert_ne!(code, 0, "POST {path}: no answer");
        // Served (an etcd error for an empty request is fine): JSON, never the router's
        // 404/405 text or a server error.
        // (Election's missing-leader error is code 2, Unknown, 500 as on etcd.)
        assert!(
            code != 405 && (code < 500 || body.contains(r#""code":2"#)),
            "POST {path}: {code} {body}"
        );
        assert!(body.starts_with('{'), "POST {path}: {code} {body}");
    }
    for (method, path, code, body) in [
        ("POST", "/v3/kv/nope", 404, "Not Found"),
        ("POST", "/v3beta/nope", 404, "Not Found"),
        ("POST", "/v3alpha/kv/range", 404, "404 page not found"),
        ("POST", "/v2/keys/foo", 404, "404 page not found"),
        ("GET", "/", 404, "404 page not found"),
        ("PUT", "/health", 405, "Method Not Allowed"),
        ("POST", "/version", 405, "Method Not Allowed"),
        ("DELETE", "/v3/kv/put", 405, "Method Not Allowed"),
    ] {
        let got = curl(e, method, path, "", None, None);
        assert_eq!((got.0, got.1.trim()), (code, body), "{method} {path}");
    }
    // Bad input: the gateway's InvalidArgument, never a panic (the server still answers).
    for body in [
        "garbage",
        r#"{"key":123}"#,
        r#"{"key":"!!"}"#,
        "[1]",
        r#"{"limit":"x"}"#,
    ] {
        let (code, text) = post(e, "/v3/kv/range", body, None);
        assert_eq!(code, 400, "{body}: {text}");
        assert!(text.contains(r#""code":3"#), "{body}: {text}");
    }
    let (code, _) = post(e, "/v3/kv/range", "", None);
    assert_eq!(
        code, 400,
        "an empty body is an empty request: etcd's 'key is not provided'"
    );
}
