//! etcd's Lock and Election services on detcd, and interoperation with etcd's own
//! client-side recipes (the real `etcdctl lock` and `etcdctl elect`, Go's
//! `concurrency.Mutex` and `concurrency.Election`), which use the same keys:
//!
//! - mutual exclusion under contention from several etcdctl processes and several
//!   clients of the Lock service (through the JSON gateway) at once;
//! - a holder killed mid-lock: its lease expires and the waiter gets the lock;
//! - Observe (etcdctl's `elect -l` and the gateway's stream) sees every leader change
//!   in order: etcdctl candidates resigning on SIGINT, a Campaign through the service,
//!   a Proclaim.
//!
//! Skipped (with a notice) without `etcdctl` or `curl` on PATH, a failure under CI.

#[path = "support/curl.rs"]
mod curl;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use curl::{curl, field, post};
use detcd_testkit::start_server;

/// The tests of this file run one at a time: each spawns many etcdctl processes, and
/// under a loaded machine their timing assumptions (a resign on SIGINT landing within
/// seconds) need the CPU.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn tools_present(test: &str) -> bool {
    detcd_testkit::require_tools(&["etcdctl", "curl"], test)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn etcdctl(endpoint: &str, args: &[&str]) -> Command {
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .args(args);
    c
}

/// A lease of `ttl` seconds granted through the gateway.
fn grant(endpoint: &str, ttl: i64) -> String {
    let (code, body) = post(
        endpoint,
        "/v3/lease/grant",
        &format!(r#"{{"TTL":"{ttl}"}}"#),
        None,
    );
    assert_eq!(code, 200, "{body}");
    field(&body, "ID")
}

/// Lock through the Lock service: the held key (base64).
fn lock(endpoint: &str, name: &str, lease: &str) -> String {
    let (code, body) = post(
        endpoint,
        "/v3/lock/lock",
        &format!(r#"{{"name":"{}","lease":"{lease}"}}"#, b64(name)),
        None,
    );
    assert_eq!(code, 200, "{body}");
    field(&body, "key")
}

fn append(path: &std::path::Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(format!("{line}\n").as_bytes()).expect("write log");
}

/// Sends SIGINT (etcdctl releases its lock or resigns, then exits).
fn interrupt(child: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

#[test]
fn lock_excludes_across_etcdctl_and_the_lock_service() {
    let _serial = serial();
    if !tools_present("lock_excludes_across_etcdctl_and_the_lock_service") {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "lock-mutex");
    let e = detcd.endpoint.clone();
    let log = detcd.dir.join("critical.log");
    let rounds = 3;
    let mut procs = Vec::new();
    for i in 0..rounds {
        let section = format!(
            "echo start ctl{i} >> {0}; sleep 0.3; echo end ctl{i} >> {0}",
            log.display()
        );
        let child = etcdctl(&e, &["lock", "critical", "--", "sh", "-c", &section])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl lock");
        procs.push(child);
    }
    let mut threads = Vec::new();
    for i in 0..rounds {
        let (e, log) = (e.clone(), log.clone());
        threads.push(std::thread::spawn(move || {
            let lease = grant(&e, 30);
            let key = lock(&e, "critical", &lease);
            append(&log, &format!("start svc{i}"));
            std::thread::sleep(Duration::from_millis(300));
            append(&log, &format!("end svc{i}"));
            let (code, body) = post(&e, "/v3/lock/unlock", &format!(r#"{{"key":"{key}"}}"#), None);
            assert_eq!(code, 200, "{body}");
            post(&e, "/v3/lease/revoke", &format!(r#"{{"ID":"{lease}"}}"#), None);
        }));
    }
    for t in threads {
        t.join().expect("service client");
    }
    for mut p in procs {
        assert!(p.wait().expect("wait").success(), "etcdctl lock failed");
    }
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4 * rounds, "{text}");
    for pair in lines.chunks(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            a.starts_with("start ") && b.strip_prefix("end ") == a.strip_prefix("start "),
            "critical sections overlap:\n{text}"
        );
    }
}

#[test]
fn a_killed_holder_loses_the_lock_when_its_lease_expires() {
    let _serial = serial();
    if !tools_present("a_killed_holder_loses_the_lock_when_its_lease_expires") {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "lock-killed");
    let e = detcd.endpoint.clone();
    let mut holder = etcdctl(&e, &["lock", "--ttl=2", "held"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcdctl lock");
    let mut first = String::new();
    BufReader::new(holder.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("key line");
    assert!(first.starts_with("held/"), "etcdctl lock printed {first:?}");
    let (done, waited) = mpsc::channel();
    let waiter = {
        let e = e.clone();
        std::thread::spawn(move || {
            let lease = grant(&e, 30);
            let key = lock(&e, "held", &lease);
            let _ = done.send(Instant::now());
            key
        })
    };
    assert!(
        waited.recv_timeout(Duration::from_millis(1500)).is_err(),
        "the waiter got a held lock"
    );
    let killed = Instant::now();
    holder.kill().expect("kill holder");
    let _ = holder.wait();
    let got = waited
        .recv_timeout(Duration::from_secs(15))
        .expect("the waiter never got the lock");
    let after = got.duration_since(killed);
    // The holder's 2 s lease expires (detcd's leader checks expiry every 500 ms).
    assert!(after <= Duration::from_secs(6), "took {after:?}");
    let key = waiter.join().expect("waiter");
    let leader = curl(
        &e,
        "POST",
        "/v3/kv/range",
        &format!(r#"{{"key":"{}","range_end":"{}"}}"#, b64("held/"), b64("held0")),
        None,
        None,
    );
    assert!(leader.1.contains(&key), "{leader:?}");
    assert!(leader.1.contains(r#""count":"1""#), "{leader:?}");
}

#[test]
fn election_observers_see_every_leader_in_order() {
    let _serial = serial();
    if !tools_present("election_observers_see_every_leader_in_order") {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "elect-observe");
    let e = detcd.endpoint.clone();
    let values = ["one", "two", "three", "four"];
    // etcdctl's observer, collecting the value lines it prints.
    let mut listener = etcdctl(&e, &["elect", "-l", "order"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcdctl elect -l");
    let (seen_tx, seen) = mpsc::channel::<String>();
    let out = listener.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = seen_tx.send(line);
        }
    });
    // The gateway's Observe stream, read until curl's timeout.
    let gateway_observer = {
        let e = e.clone();
        std::thread::spawn(move || {
            curl(
                &e,
                "POST",
                "/v3/election/observe",
                &format!(r#"{{"name":"{}"}}"#, b64("order")),
                None,
                Some(25.0),
            )
            .1
        })
    };
    let wait_for = |value: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match seen.recv_timeout(left) {
                Ok(line) if line == value => return,
                Ok(_) => {}
                Err(_) => panic!("the observer never saw {value}"),
            }
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    let spawn_candidate = |value: &str| {
        etcdctl(&e, &["elect", "order", value])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl elect")
    };
    // etcdctl's elect exits without resigning when SIGINT arrives after it won the
    // campaign but before it printed its key (its Get runs on the cancelled context), so
    // a candidate is interrupted only after it printed that it leads.
    let mut one = spawn_candidate("one");
    wait_for("one");
    assert!(first_line(&mut one).starts_with("order/"));
    let mut two = spawn_candidate("two");
    // Two's key exists before the Campaign through the service, which waits behind both.
    let candidates = format!(
        r#"{{"key":"{}","range_end":"{}","count_only":true}}"#,
        b64("order/"),
        b64("order0")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !post(&e, "/v3/kv/range", &candidates, None)
        .1
        .contains(r#""count":"2""#)
    {
        assert!(Instant::now() < deadline, "the second candidate never campaigned");
        std::thread::sleep(Duration::from_millis(50));
    }
    let campaign = {
        let e = e.clone();
        std::thread::spawn(move || {
            let lease = grant(&e, 30);
            let body = format!(
                r#"{{"name":"{}","lease":"{lease}","value":"{}"}}"#,
                b64("order"),
                b64("three")
            );
            post(&e, "/v3/election/campaign", &body, None)
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    interrupt(&one);
    let _ = one.wait();
    wait_for("two");
    assert!(first_line(&mut two).starts_with("order/"));
    interrupt(&two);
    let _ = two.wait();
    wait_for("three");
    let (code, won) = campaign.join().expect("campaign");
    assert_eq!(code, 200, "{won}");
    let leader: serde_json::Value = serde_json::from_str(&won).expect("json");
    let leader_key = leader["leader"].to_string();
    let (code, body) = post(
        &e,
        "/v3/election/proclaim",
        &format!(r#"{{"leader":{leader_key},"value":"{}"}}"#, b64("four")),
        None,
    );
    assert_eq!(code, 200, "{body}");
    wait_for("four");
    let (code, current) = post(
        &e,
        "/v3/election/leader",
        &format!(r#"{{"name":"{}"}}"#, b64("order")),
        None,
    );
    assert_eq!(code, 200);
    assert!(current.contains(&b64("four")), "{current}");
    let (code, body) = post(
        &e,
        "/v3/election/resign",
        &format!(r#"{{"leader":{leader_key}}}"#),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(
        &e,
        "/v3/election/leader",
        &format!(r#"{{"name":"{}"}}"#, b64("order")),
        None,
    );
    assert_eq!(
        (code, field(&body, "message").as_str()),
        (500, "election: no leader")
    );
    let _ = listener.kill();
    let _ = listener.wait();
    let streamed = gateway_observer.join().expect("gateway observer");
    let order: Vec<String> = streamed
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["result"]["kv"]["value"].as_str().map(str::to_string))
        .collect();
    let expected: Vec<String> = values.iter().map(|v| b64(v)).collect();
    assert_eq!(order, expected, "{streamed}");
}

fn detcdctl(endpoint: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_detcdctl"));
    c.env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .args(args);
    c
}

/// The first line `child` prints.
fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    line
}

#[test]
fn detcdctl_lock_and_elect_work_as_etcdctls() {
    let _serial = serial();
    if !tools_present("detcdctl_lock_and_elect_work_as_etcdctls") {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "ctl-lock");
    let e = detcd.endpoint.clone();
    let log = detcd.dir.join("critical.log");
    // detcdctl and etcdctl lock holders exclude each other; the command sees the key.
    let mut procs = Vec::new();
    for i in 0..2 {
        for tool in ["detcdctl", "etcdctl"] {
            let section = format!(
                "test -n \"$ETCD_LOCK_KEY\" || exit 3; echo start {tool}{i} >> {0}; sleep 0.3; echo end {tool}{i} >> {0}",
                log.display()
            );
            let args = ["lock", "critical", "--", "sh", "-c", &section];
            let mut c = if tool == "detcdctl" {
                detcdctl(&e, &args)
            } else {
                etcdctl(&e, &args)
            };
            procs.push(c.stdout(Stdio::null()).spawn().expect("lock"));
        }
    }
    for mut p in procs {
        assert!(p.wait().expect("wait").success(), "a lock command failed");
    }
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    for pair in lines.chunks(2) {
        assert!(
            pair[0].starts_with("start ") && pair[1].strip_prefix("end ") == pair[0].strip_prefix("start "),
            "critical sections overlap:\n{text}"
        );
    }
    // Without a command: the key is printed, held until SIGINT, then gone.
    let mut holder = detcdctl(&e, &["lock", "--ttl=5", "held"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("detcdctl lock");
    let key = first_line(&mut holder);
    assert!(key.starts_with("held/") && key.len() > "held/\n".len(), "{key:?}");
    let (_, held) = post(
        &e,
        "/v3/kv/range",
        &format!(r#"{{"key":"{}"}}"#, b64(key.trim())),
        None,
    );
    assert!(held.contains(r#""count":"1""#), "{held}");
    interrupt(&holder);
    assert!(holder.wait().expect("wait").success());
    let (_, gone) = post(
        &e,
        "/v3/kv/range",
        &format!(r#"{{"key":"{}"}}"#, b64(key.trim())),
        None,
    );
    assert!(!gone.contains("count"), "{gone}");
    // Elections: an observer sees each detcdctl candidate as it wins.
    let mut observer = detcdctl(&e, &["elect", "-l", "pick"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("detcdctl elect -l");
    let mut one = detcdctl(&e, &["elect", "pick", "one"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("detcdctl elect");
    assert!(first_line(&mut one).starts_with("pick/"));
    let mut two = detcdctl(&e, &["elect", "pick", "two"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("detcdctl elect");
    let mut watched = BufReader::new(observer.stdout.take().expect("stdout")).lines();
    assert!(watched
        .next()
        .and_then(Result::ok)
        .is_some_and(|k| k.starts_with("pick/")));
    assert_eq!(watched.next().and_then(Result::ok).as_deref(), Some("one"));
    std::thread::sleep(Duration::from_millis(700));
    interrupt(&one);
    assert!(one.wait().expect("wait").success());
    assert!(first_line(&mut two).starts_with("pick/"));
    assert!(watched
        .next()
        .and_then(Result::ok)
        .is_some_and(|k| k.starts_with("pick/")));
    assert_eq!(watched.next().and_then(Result::ok).as_deref(), Some("two"));
    interrupt(&two);
    interrupt(&observer);
    assert!(two.wait().expect("wait").success());
    let _ = observer.wait();
    // etcdctl's argument errors.
    for (args, message) in [
        (
            &["lock"][..],
            "lock takes a lock name argument and an optional command to execute",
        ),
        (&["elect", "pick"][..], "no proposal argument but -l not set"),
        (
            &["elect"][..],
            "elect takes one election name argument and an optional proposal argument",
        ),
    ] {
        let out = detcdctl(&e, args).output().expect("detcdctl");
        assert_eq!(out.status.code(), Some(128), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("Error: {message}\n")
        );
    }
}

/// The first `lines` lines `child` prints, with every number and every key (base64
/// or not) masked: IDs, revisions and lease IDs differ between two runs.
fn printed_masked(child: &mut Child, lines: usize) -> String {
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut text = String::new();
    for _ in 0..lines {
        reader.read_line(&mut text).expect("read");
    }
    let masked_keys: Vec<String> = text
        .split('"')
        .enumerate()
        .map(|(i, part)| {
            let after_key = text.split('"').nth(i.wrapping_sub(2)) == Some("key");
            let quoted_key = i % 2 == 1 && (part.starts_with("lk/") || part.starts_with("ek/"));
            if after_key || quoted_key {
                "<key>".to_string()
            } else {
                part.to_string()
            }
        })
        .collect();
    let joined = masked_keys.join("\"");
    let mut out = String::new();
    let mut in_number = false;
    for c in joined.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out.lines()
        .map(|l| {
            if l.starts_with("lk/") || l.starts_with("ek/") {
                "<key>"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn detcdctl_lock_and_elect_print_every_format_as_etcdctl() {
    let _serial = serial();
    if !tools_present("detcdctl_lock_and_elect_print_every_format_as_etcdctl") {
        return;
    }
    let detcd = start_server(env!("CARGO_BIN_EXE_detcd"), "ctl-lock-formats");
    let e = detcd.endpoint.clone();
    // (format, lines printed once held): simple is get's key and value lines.
    for (format, lines) in [("simple", 2), ("json", 1), ("fields", 12)] {
        for (what, args) in [("lock", vec!["lock", "lk"]), ("elect", vec!["elect", "ek", "v"])] {
            let mut outputs = Vec::new();
            for tool in ["etcdctl", "detcdctl"] {
                let mut full = vec!["-w", format];
                full.extend_from_slice(&args);
                let mut c = if tool == "etcdctl" {
                    etcdctl(&e, &full)
                } else {
                    detcdctl(&e, &full)
                };
                let mut child = c
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn");
                outputs.push(printed_masked(&mut child, lines));
                interrupt(&child);
                let _ = child.wait();
            }
            assert_eq!(outputs[1], outputs[0], "{what} -w {format}");
        }
    }
    // The observer prints each leader as a get answer without a count.
    let mut leader = etcdctl(&e, &["elect", "ek", "v"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("leader");
    assert!(first_line(&mut leader).starts_with("ek/"));
    let mut outputs = Vec::new();
    for tool in ["etcdctl", "detcdctl"] {
        let args = ["-w", "fields", "elect", "-l", "ek"];
        let mut c = if tool == "etcdctl" {
            etcdctl(&e, &args)
        } else {
            detcdctl(&e, &args)
        };
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        outputs.push(printed_masked(&mut child, 12));
        interrupt(&child);
        let _ = child.wait();
    }
    interrupt(&leader);
    let _ = leader.wait();
    assert!(outputs[0].contains("\"Count\" : #"), "{}", outputs[0]);
    assert_eq!(outputs[1], outputs[0], "elect -l -w fields");
}
