//! `check perf`, as etcdctl 3.4 (`check.go`): puts of a 256-byte key and a 1 KiB value
//! under `--prefix` from many concurrent clients at the `--load` model's rate for 60 s,
//! then the verdict on throughput (above 90% of the rate), the slowest request (at most
//! 0.5 s) and the standard deviation (at most 0.1 s); the keys are deleted afterwards
//! (`--auto-compact`, `--auto-defrag` then clean up). `--duration` (seconds, detcdctl
//! only) shortens the run, for tests. etcdctl's progress bar is not drawn.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use detcd_proto::etcdserverpb::kv_client::KvClient;
use detcd_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use tokio::sync::mpsc;

use super::args::{bool_flag, value_flag, FlagSpec, Parsed};
use super::error::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT};
use super::kv::prefix_end;
use super::{out, Ctx};

pub const PERF_FLAGS: &[FlagSpec] = &[
    value_flag("load"),
    value_flag("prefix"),
    bool_flag("auto-compact"),
    bool_flag("auto-defrag"),
    value_flag("duration"),
];

const PERF_PREFIX_DEFAULT: &str = "/etcdctl-check-perf/";
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
    let seconds = match p.value("duration") {
        None => PERF_SECONDS_DEFAULT,
        Some(v) => v
            .parse()
            .map_err(|_| CtlError::bad_args(format!("invalid argument {v:?} for \"--duration\" flag")))?,
    };
    let prefix = p.value("prefix").unwrap_or(PERF_PREFIX_DEFAULT).to_string();
    let mut kv = KvClient::new(ctx.channel().await?);
    let existing = ctx
        .call(kv.range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            limit: 1,
            ..Default::default()
        }))
        .await?;
    if !existing.kvs.is_empty() {
        return Err(CtlError::new(
            EXIT_INVALID_INPUT,
            format!(
                "prefix {} has keys. Delete with 'etcdctl del --prefix {prefix}' first",
                super::format::go_quote(prefix.as_bytes())
            ),
        ));
    }
    let results = run_load(ctx, &model, &prefix, Duration::from_secs(seconds)).await?;
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
        super::admin::defrag(ctx, &Parsed::default()).await?;
    }
    verdict(&results, model.rate)
}

/// Puts at `model.rate` per second from `model.clients` callers for `duration`.
async fn run_load(
    ctx: &mut Ctx,
    model: &Model,
    prefix: &str,
    duration: Duration,
) -> Result<Results, CtlError> {
    let connections = model.clients.div_ceil(CALLERS_PER_CONNECTION).max(1);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let endpoint = ctx.globals.endpoints.first().cloned().unwrap_or_default();
        channels.push(ctx.endpoint_channel(&endpoint).await?);
    }
    let (requests, queue) = async_channel(model.clients);
    let (done, mut measured) = mpsc::unbounded_channel();
    let mut callers = Vec::with_capacity(model.clients);
    for i in 0..model.clients {
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
    let value = vec![0u8; VALUE_BYTES];
    let interval = Duration::from_secs_f64(1.0 / f64::from(model.rate));
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::Instant::now() + duration;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = tokio::time::sleep_until(deadline) => break,
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let mut key = vec![0u8; KEY_BYTES];
        put_varint(&mut key, rand::random::<i64>().rem_euclid(i64::MAX));
        let put = PutRequest {
            key: [prefix.as_bytes(), &key].concat(),
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
