//! `check perf` and `check datascale`, as etcdctl 3.4 (`check.go`).
//!
//! - perf: puts of a 256-byte key and a 1 KiB value under `--prefix` from many
//!   concurrent clients at the `--load` model's rate for 60 s, then the verdict on
//!   throughput (above 90% of the rate), the slowest request (at most 0.5 s) and the
//!   standard deviation (at most 0.1 s). `--duration` (seconds, detcdctl only) shortens
//!   the run, for tests.
//! - datascale: the model's number of 512-byte keys with 512-byte values, as fast as its
//!   clients go, and the growth of the first endpoint's `process_resident_memory_bytes`
//!   (read from its `/metrics`, over plain http only in detcdctl). `--count` (detcdctl
//!   only) shortens the run, for tests.
//!
//! Both refuse a prefix that has keys, delete their keys afterwards, then compact and
//! defragment when asked (`--auto-compact`, `--auto-defrag`). etcdctl's progress bar is
//! not drawn.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use tokio::sync::mpsc;

use super::args::{bool_flag, value_flag, FlagSpec, Parsed};
use super::error::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT};
use super::kv::prefix_end;
use super::{out, Ctx};

/// The flags both checks share.
const AUTO_COMPACT: FlagSpec =
    bool_flag("auto-compact").about("Compact storage with last revision after test is finished.");
const AUTO_DEFRAG: FlagSpec = bool_flag("auto-defrag").about("Defragment storage after test is finished.");

pub const PERF_FLAGS: &[FlagSpec] = &[
    value_flag("load")
        .default_str("s")
        .about("The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"),
    value_flag("prefix")
        .default_str(PERF_PREFIX_DEFAULT)
        .about("The prefix for writing the performance check's keys."),
    AUTO_COMPACT,
    AUTO_DEFRAG,
    value_flag("duration")
        .default_plain("60")
        .about("How many seconds the check writes for (detcdctl's own flag)"),
];

pub const DATASCALE_FLAGS: &[FlagSpec] = &[
    value_flag("load").default_str("s").about(
        "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
    ),
    value_flag("prefix")
        .default_str(DATASCALE_PREFIX_DEFAULT)
        .about("The prefix for writing the datascale check's keys."),
    AUTO_COMPACT,
    AUTO_DEFRAG,
    value_flag("count")
        .default_plain("0")
        .about("How many keys to write; 0 is the load's own count (detcdctl's own flag)"),
];

const PERF_PREFIX_DEFAULT: &str = "/etcdctl-check-perf/";
const DATASCALE_PREFIX_DEFAULT: &str = "/etcdctl-check-datascale/";
const DATASCALE_KEY_BYTES: usize = 512;
const DATASCALE_VALUE_BYTES: usize = 512;
const PERF_SECONDS_DEFAULT: u64 = 60;
const KEY_BYTES: usize = 256;
const VALUE_BYTES: usize = 1024;
/// Concurrent callers share connections, this many callers to one.
const CALLERS_PER_CONNECTION: usize = 50;

/// One `--load` model: writes per second and concurrent clients.
struct Model {
    rate: u32,
    clients: usize,
}

fn model(load: &str) -> Option<Model> {
    let (rate, clients) = match load {
        "s" | "small" => (150, 50),
        "m" | "medium" => (1000, 200),
        "l" | "large" => (8000, 500),
        "xl" | "xLarge" => (15000, 1000),
        _ => return None,
    };
    Some(Model { rate, clients })
}

/// What the run measured: each request's latency and error.
#[derive(Default)]
struct Results {
    latencies: Vec<f64>,
    errors: BTreeMap<String, u64>,
    started: Option<Instant>,
    ended: Option<Instant>,
}

impl Results {
    /// etcd's `report.Stats`: requests per second over the whole run, the slowest
    /// request, the population standard deviation (all in seconds).
    fn stats(&self) -> (f64, f64, f64) {
        let n = self.latencies.len() as f64;
        let total = match (self.started, self.ended) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        if n == 0.0 || total == 0.0 {
            return (0.0, 0.0, 0.0);
        }
        let mean = self.latencies.iter().sum::<f64>() / n;
        let variance = self.latencies.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
        let slowest = self.latencies.iter().copied().fold(0.0, f64::max);
        (n / total, slowest, variance.sqrt())
    }
}

pub async fn perf(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let load = p.value("load").unwrap_or("s");
    let model =
        model(load).ok_or_else(|| CtlError::new(EXIT_BAD_FEATURE, format!("unknown load option {load}")))?;
    let seconds = p.uint("duration")?.unwrap_or(PERF_SECONDS_DEFAULT);
    let prefix = p.value("prefix").unwrap_or(PERF_PREFIX_DEFAULT).to_string();
    refuse_used_prefix(ctx, &prefix).await?;
    let load = Load {
        clients: model.clients,
        prefix: &prefix,
        key_bytes: KEY_BYTES,
        value_bytes: VALUE_BYTES,
        pace: Pace::Rate {
            rate: model.rate,
            duration: Duration::from_secs(seconds),
        },
    };
    let results = run_load(ctx, &load).await?;
    clean_up(ctx, p, &prefix).await?;
    verdict(&results, model.rate)
}

/// etcdctl refuses to write under a prefix that already has keys.
async fn refuse_used_prefix(ctx: &mut Ctx, prefix: &str) -> Result<(), CtlError> {
    let mut kv = KvClient::new(ctx.channel().await?);
    let existing = ctx
        .call(kv.range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            limit: 1,
            ..Default::default()
        }))
        .await?;
    if existing.kvs.is_empty() {
        return Ok(());
    }
    Err(CtlError::new(
        EXIT_INVALID_INPUT,
        format!(
            "prefix {} has keys. Delete with etcdctl del --prefix {prefix} first",
            super::format::go_quote(prefix.as_bytes())
        ),
    ))
}

/// Deletes the check's keys, then compacts and defragments when asked.
async fn clean_up(ctx: &mut Ctx, p: &Parsed, prefix: &str) -> Result<(), CtlError> {
    let mut kv = KvClient::new(ctx.channel().await?);
    let deleted = ctx
        .call(kv.delete_range(DeleteRangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            ..Default::default()
        }))
        .await?;
    if p.bool("auto-compact")? {
        let revision = deleted.header.map_or(0, |h| h.revision);
        let compact = Parsed {
            args: vec![revision.to_string()],
            ..Parsed::default()
        };
        super::kv::compaction(ctx, &compact).await?;
    }
    if p.bool("auto-defrag")? {
        super::defrag::defrag(ctx, &Parsed::default()).await?;
    }
    Ok(())
}

pub async fn datascale(ctx: &mut Ctx, p: &Parsed) -> Result<(), CtlError> {
    let load = p.value("load").unwrap_or("s");
    let (limit, clients) = match load {
        "s" | "small" => (10_000u64, 50),
        "m" | "medium" => (100_000, 200),
        "l" | "large" => (1_000_000, 500),
        "xl" | "xLarge" => (3_000_000, 1000),
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("unknown load option {load}"),
            ))
        }
    };
    let limit = p.uint("count")?.unwrap_or(limit);
    let prefix = p.value("prefix").unwrap_or(DATASCALE_PREFIX_DEFAULT).to_string();
    refuse_used_prefix(ctx, &prefix).await?;
    let endpoint = ctx.globals.endpoints.first().cloned().unwrap_or_default();
    let failed = |when: &str| {
        out(&format!(
            "FAIL: Could not read process_resident_memory_bytes {when} the put operations.\n"
        ));
        Err(CtlError::new(EXIT_ERROR, ""))
    };
    let before = resident_memory(&endpoint, &ctx.globals.tls).await;
    if before == 0.0 {
        return failed("before");
    }
    out(&format!(
        "Start data scale check for work load [{limit} key-value pairs, {} bytes per key-value, {clients} concurrent clients].\n",
        DATASCALE_KEY_BYTES + DATASCALE_VALUE_BYTES
    ));
    let run = Load {
        clients,
        prefix: &prefix,
        key_bytes: DATASCALE_KEY_BYTES,
        value_bytes: DATASCALE_VALUE_BYTES,
        pace: Pace::Count(limit),
    };
    let results = run_load(ctx, &run).await?;
    let after = resident_memory(&endpoint, &ctx.globals.tls).await;
    if after == 0.0 {
        return failed("after");
    }
    clean_up(ctx, p, &prefix).await?;
    if !results.errors.is_empty() {
        let mut s = String::from("FAIL: too many errors\n");
        for (error, count) in &results.errors {
            s.push_str(&format!("FAIL: ERROR({error}) -> {count}\n"));
        }
        out(&s);
        return Err(CtlError::new(EXIT_ERROR, ""));
    }
    let used_mb = (after - before) / (1024.0 * 1024.0);
    out(&format!(
        "PASS: Approximate system memory used : {used_mb:.2} MB.\n"
    ));
    Ok(())
}

/// `GET /metrics` (HTTP/1.0) over `stream`; the whole answer.
async fn fetch_metrics<S>(mut stream: S, host: &str) -> std::io::Result<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut body = Vec::new();
    // A TLS server may close without close_notify after an HTTP/1.0 answer.
    match stream.read_to_end(&mut body).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !body.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The endpoint's `/metrics` over plain TCP (`host:port`, `http://`) or TLS
/// (`https://`, with the TLS flags etcdctl's `secureCfg` carries).
async fn metrics_text(endpoint: &str, tls: &super::dial::ClientTls) -> Result<String, String> {
    let host = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .trim_end_matches('/');
    let tcp = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    let config = if endpoint.starts_with("http://") || !endpoint.contains("://") {
        None
    } else if endpoint.starts_with("https://") {
        tls.for_endpoint(endpoint).map_err(|e| e.to_string())?
    } else {
        return Err(format!(
            "detcdctl reads {endpoint}/metrics over http or https only"
        ));
    };
    let Some(config) = config else {
        return fetch_metrics(tcp, host).await.map_err(|e| e.to_string());
    };
    // The gRPC configuration offers h2 alone; /metrics is read over HTTP/1.
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let name = name.trim_start_matches('[').trim_end_matches(']').to_string();
    let name = rustls_pki_types::ServerName::try_from(name).map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    fetch_metrics(stream, host).await.map_err(|e| e.to_string())
}

/// The endpoint's `process_resident_memory_bytes` from its `/metrics`, or 0 with
/// etcdctl's kind of message when it cannot be read.
async fn resident_memory(endpoint: &str, tls: &super::dial::ClientTls) -> f64 {
    const KEY: &str = "process_resident_memory_bytes";
    let fetched = metrics_text(endpoint, tls);
    let text = match tokio::time::timeout(Duration::from_secs(10), fetched).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => {
            out(&format!("fetch error: {e}\n"));
            return 0.0;
        }
        Err(_) => {
            out("fetch error: timed out\n");
            return 0.0;
        }
    };
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(KEY).filter(|rest| rest.starts_with(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok());
    match value {
        Some(v) => v,
        None => {
            out(&format!("could not find: {KEY}\n"));
            0.0
        }
    }
}

/// How a load's puts are paced.
#[derive(Clone, Copy)]
enum Pace {
    /// `rate` puts per second for `duration` (`check perf`).
    Rate { rate: u32, duration: Duration },
    /// `count` puts as fast as the callers take them (`check datascale`).
    Count(u64),
}

/// One load: concurrent callers, the size of each key (after the prefix) and value.
struct Load<'a> {
    clients: usize,
    prefix: &'a str,
    key_bytes: usize,
    value_bytes: usize,
    pace: Pace,
}

/// Puts random keys under the load's prefix from its callers, paced as it says.
async fn run_load(ctx: &mut Ctx, load: &Load<'_>) -> Result<Results, CtlError> {
    let connections = load.clients.div_ceil(CALLERS_PER_CONNECTION).max(1);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let endpoint = ctx.globals.endpoints.first().cloned().unwrap_or_default();
        channels.push(ctx.endpoint_channel(&endpoint).await?);
    }
    let (requests, queue) = async_channel(load.clients);
    let (done, mut measured) = mpsc::unbounded_channel();
    let mut callers = Vec::with_capacity(load.clients);
    for i in 0..load.clients {
        let mut kv = KvClient::new(channels[i % connections].clone());
        let queue = queue.clone();
        let done = done.clone();
        callers.push(tokio::spawn(async move {
            while let Some(put) = next(&queue).await {
                let start = Instant::now();
                let result = kv.put(put).await.map(|_| ()).map_err(|s| s.message().to_string());
                let _ = done.send((start, Instant::now(), result));
            }
        }));
    }
    drop(done);
    let value = vec![0u8; load.value_bytes];
    let (interval, deadline, count) = match load.pace {
        Pace::Rate { rate, duration } => (
            Duration::from_secs_f64(1.0 / f64::from(rate)),
            tokio::time::Instant::now() + duration,
            u64::MAX,
        ),
        Pace::Count(n) => (
            Duration::from_nanos(1),
            tokio::time::Instant::now() + Duration::from_secs(86_400),
            n,
        ),
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..count {
        if let Pace::Rate { .. } = load.pace {
            tokio::select! {
                _ = ticks.tick() => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        let mut key = vec![0u8; load.key_bytes];
        put_varint(&mut key, rand::random::<i64>().rem_euclid(i64::MAX));
        let put = PutRequest {
            key: [load.prefix.as_bytes(), &key].concat(),
            value: value.clone(),
            ..Default::default()
        };
        if requests.send(put).await.is_err() {
            break;
        }
    }
    drop(requests);
    let mut results = Results::default();
    while let Some((start, end, result)) = measured.recv().await {
        results.started = Some(results.started.map_or(start, |s| s.min(start)));
        results.ended = Some(results.ended.map_or(end, |e| e.max(end)));
        results.latencies.push(end.duration_since(start).as_secs_f64());
        if let Err(e) = result {
            *results.errors.entry(e).or_default() += 1;
        }
    }
    for caller in callers {
        let _ = caller.await;
    }
    Ok(results)
}

type Queue = std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<PutRequest>>>;

/// A bounded queue many callers take from.
fn async_channel(capacity: usize) -> (mpsc::Sender<PutRequest>, Queue) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (tx, std::sync::Arc::new(tokio::sync::Mutex::new(rx)))
}

async fn next(queue: &Queue) -> Option<PutRequest> {
    queue.lock().await.recv().await
}

/// Go's `binary.PutVarint` (zig-zag, then 7 bits a byte) into the key's first bytes.
fn put_varint(buf: &mut [u8], value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut i = 0;
    while zigzag >= 0x80 && i < buf.len() {
        buf[i] = (zigzag as u8) | 0x80;
        zigzag >>= 7;
        i += 1;
    }
    if i < buf.len() {
        buf[i] = zigzag as u8;
    }
}

/// etcdctl's verdict lines; any failure makes the exit status 1.
fn verdict(results: &Results, rate: u32) -> Result<(), CtlError> {
    let (rps, slowest, stddev) = results.stats();
    let mut ok = true;
    let mut s = String::new();
    if !results.errors.is_empty() {
        s.push_str("FAIL: too many errors\n");
        for (error, count) in &results.errors {
            s.push_str(&format!("FAIL: ERROR({error}) -> {count}\n"));
        }
        ok = false;
    }
    if rps / f64::from(rate) <= 0.9 {
        s.push_str(&format!(
            "FAIL: Throughput too low: {} writes/s\n",
            rps as i64 + 1
        ));
        ok = false;
    } else {
        s.push_str(&format!("PASS: Throughput is {} writes/s\n", rps as i64 + 1));
    }
    if slowest > 0.5 {
        s.push_str(&format!("Slowest request took too long: {slowest:.6}s\n"));
        ok = false;
    } else {
        s.push_str(&format!("PASS: Slowest request took {slowest:.6}s\n"));
    }
    if stddev > 0.1 {
        s.push_str(&format!("Stddev too high: {stddev:.6}s\n"));
        ok = false;
    } else {
        s.push_str(&format!("PASS: Stddev is {stddev:.6}s\n"));
    }
    s.push_str(if ok { "PASS\n" } else { "FAIL\n" });
    out(&s);
    if ok {
        Ok(())
    } else {
        Err(CtlError::new(EXIT_ERROR, ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_as_go_writes_them() {
        let mut buf = [0u8; 4];
        put_varint(&mut buf, 1);
        assert_eq!(buf, [2, 0, 0, 0]);
        put_varint(&mut buf, -1);
        assert_eq!(buf[0], 1);
        put_varint(&mut buf, 64);
        assert_eq!(buf[..2], [0x80, 0x01]);
    }

    #[test]
    fn unknown_loads_are_refused() {
        assert!(model("xLarge").is_some());
        assert!(model("huge").is_none());
    }
}
