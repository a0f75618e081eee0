//! Unary RPC throughput against a running server through the third-party etcd-client
//! crate: `put` (KV.Put of a 256-byte value over 1000 keys) or `status`
//! (Maintenance.Status), from 64 concurrent callers over 8 connections for a few seconds.
//! The load generator of ../shared/bench has no Status; this fills that gap.
//!
//! cargo run --release -p detcd-tests --example rpc_rate -- ENDPOINT put|status [SECONDS]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (endpoint, op) = (args[1].clone(), args[2].clone());
    let seconds: u64 = args.get(3).map_or(5, |s| s.parse().expect("seconds"));
    let (callers, conns) = (64, 8);
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(
            etcd_client::Client::connect([endpoint.as_str()], None)
                .await
                .expect("connect"),
        );
    }
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for i in 0..callers {
        let mut c = clients[i % conns].clone();
        let (op, done, errors) = (op.clone(), done.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let value = vec![b'v'; 256];
            let mut n = i;
            while Instant::now() < end {
                let ok = match op.as_str() {
                    "put" => c.put(format!("k{}", n % 1000), value.clone(), None).await.is_ok(),
                    "status" => c.status().await.is_ok(),
                    other => panic!("unknown op {other}"),
                };
                n += callers;
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("caller");
    }
    let ops = done.load(Ordering::Relaxed) as f64 / seconds as f64;
    println!("{op} {ops:.0} ops/s, {} errors", errors.load(Ordering::Relaxed));
}
