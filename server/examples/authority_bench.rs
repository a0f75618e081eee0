//! What the `:authority` repair (server/src/h2_authority.rs) costs per request: a stream of
//! gRPC unary requests as a Go client sends them (HEADERS with the usual gRPC fields, HPACK
//! with a dynamic table, then a small DATA frame), pushed through the sans-I/O rewriter, once
//! with `127.0.0.1:2379` as the authority (blocks pass through after one decode each) and
//! once with `http://127.0.0.1:2379` (every block decoded and encoded again).
//!
//! cargo run --release -p detcd-server --example authority_bench

use std::time::Instant;

use detcd_server::h2_authority::Rewriter;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// `requests` unary calls on one connection, with `authority`.
fn connection(authority: &str, requests: u32) -> Vec<u8> {
    let mut encoder = loona_hpack::Encoder::new();
    let mut out = PREFACE.to_vec();
    frame(&mut out, 0x4, 0, 0, &[]);
    for i in 0..requests {
        let fields: [(&[u8], &[u8]); 8] = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/etcdserverpb.KV/Put"),
            (b":authority", authority.as_bytes()),
            (b"content-type", b"application/grpc"),
            (b"user-agent", b"grpc-go/1.26.0"),
            (b"te", b"trailers"),
            (b"grpc-timeout", b"4999896u"),
        ];
        let block = encoder.encode(fields);
        let stream = 2 * i + 1;
        frame(&mut out, 0x1, 0x4, stream, &block);
        frame(&mut out, 0x0, 0x1, stream, &[0u8; 5 + 24]);
    }
    out
}

fn run(bytes: &[u8], chunk: usize) -> (u64, usize) {
    let mut r = Rewriter::new();
    let mut total = 0;
    for piece in bytes.chunks(chunk) {
        r.feed(piece);
        loop {
            let n = r.output().len();
            if n == 0 {
                break;
            }
            total += n;
            r.consume(n);
        }
    }
    (r.repaired(), total)
}

fn main() {
    let requests = 200_000;
    for authority in ["127.0.0.1:2379", "http://127.0.0.1:2379"] {
        let bytes = connection(authority, requests);
        let _ = run(&bytes, 16 * 1024);
        let start = Instant::now();
        let rounds = 5;
        let mut repaired = 0;
        for _ in 0..rounds {
            repaired = run(&bytes, 16 * 1024).0;
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(rounds * requests);
        println!(
            "authority {authority:24} {ns:7.0} ns/request ({repaired} repaired per connection of {requests})"
        );
    }
}
