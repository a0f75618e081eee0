//! Normalising v2 API answers so that etcd's and detcd's can be compared: times,
//! member IDs and ports masked; v2 indexes are compared as they are (both count
//! the cluster's own records: members added and published, the cluster version),
//! once [`settle`] saw the store reach the index those records take.

#![allow(dead_code)]

use std::process::{Child, Command};

/// A member process of a test; killed on drop (its directory stays for a restart).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client write of `key`; the index it got.
pub fn write(endpoint: &str, key: &str) -> u64 {
    let (status, index, body) = exchange(
        &format!("http://{endpoint}/v2/keys/{key}"),
        "PUT",
        "value=v",
        false,
    );
    assert_eq!(status, 201, "{endpoint} {key}: {body}");
    index.expect("X-Etcd-Index")
}

/// One HTTP exchange with curl (`json`: the form is a JSON body): the status, the
/// X-Etcd-Index header (when sent) and the body.
pub fn exchange(url: &str, method: &str, form: &str, json: bool) -> (u16, Option<u64>, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-i", "--max-time", "10", "-X", method]);
    if !form.is_empty() {
        c.args(["--data-binary", form]);
        if json {
            c.args(["-H", "Content-Type: application/json"]);
        }
    }
    let out = c.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let index = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-etcd-index")
            .then(|| value.trim().parse().ok())
            .flatten()
    });
    (status, index, body.to_string())
}

/// Rewrites every number in `text` that follows `"field":` with `f`.
fn rewrite_field_numbers(text: &str, field: &str, f: &dyn Fn(u64) -> u64) -> String {
    let pat = format!("\"{field}\":");
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&pat) {
        out.push_str(&rest[..at + pat.len()]);
        rest = &rest[at + pat.len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            let n: u64 = rest[..digits].parse().expect("number");
            out.push_str(&f(n).to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// Replaces the string value of `"field":"..."` with `with`.
fn mask_field_string(text: &str, field: &str, with: &str) -> String {
    let pat = format!("\"{field}\":\"");
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&pat) {
        out.push_str(&rest[..at + pat.len()]);
        rest = &rest[at + pat.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push_str(with);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Rewrites each run of digits inside the string value of `"field":"..."`.
fn rewrite_digits_in_field(text: &str, field: &str, f: &dyn Fn(u64) -> u64) -> String {
    let pat = format!("\"{field}\":\"");
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&pat) {
        out.push_str(&rest[..at + pat.len()]);
        rest = &rest[at + pat.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push_str(&rewrite_digit_runs(&rest[..end], 1, f));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Rewrites every run of at least `min_len` digits (a 20-digit run keeps its width).
pub fn rewrite_digit_runs(text: &str, min_len: usize, f: &dyn Fn(u64) -> u64) -> String {
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            match run.parse::<u64>() {
                Ok(n) if run.len() >= min_len => {
                    let v = f(n);
                    if run.len() == 20 {
                        out.push_str(&format!("{v:020}"));
                    } else {
                        out.push_str(&v.to_string());
                    }
                }
                _ => out.push_str(&run),
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Masks every `127.0.0.1:<port>`.
pub fn mask_ports(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..at + 10]);
        rest = &rest[at + 10..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("<port>");
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// A v2 JSON body with indexes relative to `offset` and times, IDs and ports masked.
pub fn body(text: &str, offset: u64) -> String {
    let f = move |n: u64| if n > offset { n - offset } else { n };
    let mut t = text.to_string();
    for field in ["modifiedIndex", "createdIndex", "index"] {
        t = rewrite_field_numbers(&t, field, &f);
    }
    t = rewrite_digits_in_field(&t, "cause", &f);
    t = rewrite_digit_runs(&t, 20, &f);
    for field in ["expiration", "id", "leader", "startTime", "uptime"] {
        t = mask_field_string(&t, field, "<masked>");
    }
    mask_ports(&t)
}

/// Waits (up to 20 s) until the v2 store at `endpoint` shows at least `index`
/// (the cluster's own records, written by the members shortly after start); the
/// index it shows then (the caller asserts it is exactly `index`).
pub fn settle(endpoint: &str, index: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, shown, _) = exchange(&format!("http://{endpoint}/v2/keys/"), "GET", "", false);
        let shown = shown.unwrap_or(0);
        if shown >= index || std::time::Instant::now() > deadline {
            // A moment more, so a record still on its way shows as a wrong index.
            std::thread::sleep(std::time::Duration::from_millis(300));
            let (_, shown, _) = exchange(&format!("http://{endpoint}/v2/keys/"), "GET", "", false);
            return shown.unwrap_or(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The etcd 3.4 to compare with: `etcd` on PATH when it is 3.4, else Debian's
/// `/usr/bin/etcd` when that is (another etcd earlier on PATH, e.g. a 3.5 from pip,
/// answers v2 differently); `None` when neither is.
pub fn etcd34() -> Option<String> {
    ["etcd", "/usr/bin/etcd"].into_iter().find_map(|program| {
        let out = std::process::Command::new(program)
            .arg("--version")
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .contains("etcd Version: 3.4.")
            .then(|| program.to_string())
    })
}
