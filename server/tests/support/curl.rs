//! HTTP requests with curl, for the JSON gateway's tests.

#![allow(dead_code)]

use std::process::Command;

/// `curl -X POST` of `body` to `path`: the HTTP status and the body.
pub fn post(endpoint: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    curl(endpoint, "POST", path, body, token, None)
}

pub fn curl(
    endpoint: &str,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
    max_time_s: Option<f64>,
) -> (u16, String) {
    let headers: Vec<String> = token.iter().map(|t| format!("Authorization: {t}")).collect();
    curl_with(endpoint, method, path, body, &headers, max_time_s)
}

/// `curl -X POST` of `body` to `path` with extra request `headers` (`Name: value`).
pub fn post_with(endpoint: &str, path: &str, body: &str, headers: &[String]) -> (u16, String) {
    curl_with(endpoint, "POST", path, body, headers, None)
}

pub fn curl_with(
    endpoint: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[String],
    max_time_s: Option<f64>,
) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-N", "-X", method, "-w", "\n%{http_code}"]);
    if !body.is_empty() {
        c.args(["-d", body]);
    }
    for h in headers {
        c.args(["-H", h]);
    }
    if let Some(s) = max_time_s {
        c.args(["--max-time", &s.to_string()]);
    }
    let out = c
        .arg(format!("http://{endpoint}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A string field of a JSON answer (`""` when absent).
pub fn field(body: &str, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let f = &v[name];
    f.as_str().map_or_else(|| f.to_string(), str::to_string)
}

/// curl of a full `url` with `options` before it (`--cacert`, `--cert`...), at most 10 s:
/// the status (0 with no HTTP answer) and the body.
pub fn curl_url(options: &[&str], method: &str, url: &str, form: &str) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "10", "-X", method, "-w", "\n%{http_code}"]);
    c.args(options);
    if !form.is_empty() {
        c.args(["-d", form]);
    }
    let out = c.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}
