//! Throughput of the JSON gateway: put + range pairs per second over HTTP/1.1
//! keep-alive connections, the same load against any server with etcd's gateway.
//!
//! ```text
//! cargo run --release -p detcd-server --example gateway_bench -- 127.0.0.1:2379 [connections] [seconds]
//! ```
//!
//! Each connection puts `bench/<conn>/<n>` then reads it back, one request at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// One POST on a kept-alive connection: the HTTP status.
fn post(conn: &mut BufReader<TcpStream>, host: &str, path: &str, body: &str) -> std::io::Result<u16> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.get_mut().write_all(request.as_bytes())?;
    let mut status = String::new();
    conn.read_line(&mut status)?;
    let code = status.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body)?;
    Ok(code)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let host = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:2379".to_string());
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let host = host.clone();
            std::thread::spawn(move || {
                let stream = TcpStream::connect(&host).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let mut conn = BufReader::new(stream);
                let mut pairs = 0u64;
                while Instant::now() < deadline {
                    let key = b64(&format!("bench/{c}/{pairs}"));
                    let put = format!(r#"{{"key":"{key}","value":"{}"}}"#, b64("value"));
                    let range = format!(r#"{{"key":"{key}"}}"#);
                    let ok = post(&mut conn, &host, "/v3/kv/put", &put).expect("put") == 200
                        && post(&mut conn, &host, "/v3/kv/range", &range).expect("range") == 200;
                    assert!(ok, "a request failed");
                    pairs += 1;
                }
                pairs
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    println!(
        "{host}: {total} put+range pairs in {seconds} s over {connections} connections: {:.0} pairs/s",
        total as f64 / seconds as f64
    );
}
