//! The `:authority` repair in front of h2 (server/src/h2_authority.rs), tested at its own
//! layer: a real h2 server reads a connection through [`H2Conn`] while the test
//! writes the client's side as raw HTTP/2 frames with hand-made HPACK, the way grpc-go
//! sends them (dynamic table, CONTINUATION frames, padding, priority). Each test also
//! checks that h2 alone refuses what the adapter lets through, so none can pass by the
//! adapter doing nothing.

use std::time::Duration;

use detcd_server::h2_authority::{repair_authority, Repair, Rewriter};
use detcd_server::h2_conn::H2Conn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const DATA: u8 = 0x0;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `mask`.
fn int(mask: u8, n: u32, mut v: usize) -> Vec<u8> {
    let max = (1usize << n) - 1;
    if v < max {
        return vec![mask | v as u8];
    }
    let mut out = vec![mask | max as u8];
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
    out
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut out = int(0, 7, s.len());
    out.extend_from_slice(s);
    out
}

/// Indexed field (static or dynamic table).
fn indexed(i: usize) -> Vec<u8> {
    int(0x80, 7, i)
}

/// Literal value with an indexed name; `insert` adds it to the dynamic table.
fn literal(name_index: usize, value: &[u8], insert: bool) -> Vec<u8> {
    let mut out = if insert {
        int(0x40, 6, name_index)
    } else {
        int(0, 4, name_index)
    };
    out.extend(string(value));
    out
}

/// Literal with a new name, added to the dynamic table.
fn literal_new(name: &[u8], value: &[u8]) -> Vec<u8> {
    literal_named(0x40, name, value)
}

/// Literal with a new name; `first` 0x40 inserts it, 0x00 does not.
fn literal_named(first: u8, name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(string(name));
    out.extend(string(value));
    out
}

/// `:method POST`, `:scheme http`, `:path /p` from the static table.
fn request_start() -> Vec<u8> {
    let mut b = indexed(3);
    b.extend(indexed(6));
    b.extend(literal(4, b"/p", false));
    b
}

/// A request's HEADERS frame (END_HEADERS | END_STREAM) with `block`.
fn request(stream: u32, block: &[u8]) -> Vec<u8> {
    frame(HEADERS, END_HEADERS | END_STREAM, stream, block)
}

/// One accepted request: stream, authority, `x-*` headers.
type Accepted = (u32, Option<String>, Vec<(String, String)>);

/// What the h2 server saw: each accepted request's stream, authority and the headers
/// named `x-*`, in order, or the error it closed the connection with.
#[derive(Debug, Default)]
struct Seen {
    requests: Vec<Accepted>,
    error: Option<String>,
}

/// Runs an h2 server over one end of a pipe (through the adapter when `fix`), writes
/// `bytes` into the other end after the preface and an empty SETTINGS, and returns what the
/// server accepted once the client closes its side.
async fn serve(bytes: &[u8], fix: bool) -> Seen {
    let (mut client, server) = tokio::io::duplex(1 << 22);
    let server = tokio::spawn(async move {
        if fix {
            accept_all(H2Conn::new(server, Duration::from_secs(5))).await
        } else {
            accept_all(server).await
        }
    });
    let mut all = PREFACE.to_vec();
    all.extend(frame(0x4, 0, 0, &[]));
    all.extend_from_slice(bytes);
    client.write_all(&all).await.expect("write");
    // Let the server answer, then close the client's side; read what the server sent so
    // the pipe never fills.
    let reader = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut sink)).await;
    });
    let seen = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server finished")
        .expect("server task");
    reader.abort();
    seen
}

async fn accept_all<T>(io: T) -> Seen
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut seen = Seen::default();
    let mut conn = match h2::server::handshake(io).await {
        Ok(c) => c,
        Err(e) => {
            seen.error = Some(e.to_string());
            return seen;
        }
    };
    loop {
        let next = tokio::time::timeout(Duration::from_millis(500), conn.accept()).await;
        match next {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => {
                seen.error = Some(e.to_string());
                break;
            }
            Ok(Some(Ok((req, mut respond)))) => {
                let x: Vec<(String, String)> = req
                    .headers()
                    .iter()
                    .filter(|(n, _)| n.as_str().starts_with("x-"))
                    .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                let authority = req.uri().authority().map(|a| a.to_string());
                let stream = respond.stream_id().as_u32();
                seen.requests.push((stream, authority, x));
                let _ = respond.send_response(http::Response::new(()), true);
            }
        }
    }
    seen
}

fn authorities(seen: &Seen) -> Vec<(u32, Option<&str>)> {
    seen.requests.iter().map(|(s, a, _)| (*s, a.as_deref())).collect()
}

#[test]
fn authority_repairs() {
    let keep = [
        "127.0.0.1:2379",
        "localhost",
        "[::1]:2379",
        "etcd-0.etcd.svc:2379",
        "u@h:1",
    ];
    for a in keep {
        assert_eq!(repair_authority(a.as_bytes()), Repair::Keep, "{a}");
    }
    let fixed = [
        ("http://127.0.0.1:2379", "127.0.0.1:2379"),
        ("https://[::1]:2379/", "[::1]:2379"),
        ("http://localhost:2379/v3?x#y", "localhost:2379"),
        ("127.0.0.1:2379/", "127.0.0.1:2379"),
        ("unixs://host:1", "host:1"),
    ];
    for (from, to) in fixed {
        assert_eq!(
            repair_authority(from.as_bytes()),
            Repair::Replace(to.as_bytes().to_vec()),
            "{from}"
        );
    }
    for gone in ["", "unix:///tmp/etcd.sock", "http://", "a b"] {
        assert_eq!(repair_authority(gone.as_bytes()), Repair::Drop, "{gone:?}");
    }
}

#[tokio::test]
async fn a_scheme_in_the_authority_is_refused_by_h2_alone_and_repaired_through_the_adapter() {
    let mut block = request_start();
    block.extend(literal(1, b"http://127.0.0.1:2379", false));
    let bytes = request(1, &block);
    let plain = serve(&bytes, false).await;
    assert!(plain.requests.is_empty(), "h2 alone accepted {plain:?}");
    let fixed = serve(&bytes, true).await;
    assert_eq!(
        authorities(&fixed),
        vec![(1, Some("127.0.0.1:2379"))],
        "{fixed:?}"
    );
}

#[tokio::test]
async fn dynamic_table_entries_stay_paired_across_the_switch_to_reencoding() {
    let mut bytes = Vec::new();
    // Dynamic table after each request, newest first (index 62 first).
    // 1: [x-client, good]: both inserted, passed through as sent.
    let mut b = request_start();
    b.extend(literal(1, b"127.0.0.1:2379", true));
    b.extend(literal_new(b"x-client", b"go"));
    bytes.extend(request(1, &b));
    // 3: [bad, x-client, good]: the grpc-go spelling inserted (the first repair).
    let mut b = request_start();
    b.extend(literal(1, b"http://127.0.0.1:2379", true));
    b.extend(indexed(63));
    bytes.extend(request(3, &b));
    // 5: the bad authority and x-client by index.
    let mut b = request_start();
    b.extend(indexed(62));
    b.extend(indexed(63));
    bytes.extend(request(5, &b));
    // 7: [x-late, bad, x-client, good]: the good authority by index.
    let mut b = request_start();
    b.extend(indexed(64));
    b.extend(literal_new(b"x-late", b"after"));
    bytes.extend(request(7, &b));
    // 9: everything by index.
    let mut b = request_start();
    b.extend(indexed(65));
    b.extend(indexed(64));
    b.extend(indexed(62));
    bytes.extend(request(9, &b));

    let plain = serve(&bytes, false).await;
    // h2 alone resets 3 and 5 (the grpc-go spelling) and accepts the others.
    assert_eq!(
        authorities(&plain),
        vec![
            (1, Some("127.0.0.1:2379")),
            (7, Some("127.0.0.1:2379")),
            (9, Some("127.0.0.1:2379"))
        ],
        "h2 alone: {plain:?}"
    );

    let seen = serve(&bytes, true).await;
    assert!(seen.error.is_none(), "{seen:?}");
    let want_auth = vec![
        (1, Some("127.0.0.1:2379")),
        (3, Some("127.0.0.1:2379")),
        (5, Some("127.0.0.1:2379")),
        (7, Some("127.0.0.1:2379")),
        (9, Some("127.0.0.1:2379")),
    ];
    assert_eq!(authorities(&seen), want_auth, "{seen:?}");
    let x = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(seen.requests[0].2, x(&[("x-client", "go")]));
    assert_eq!(seen.requests[1].2, x(&[("x-client", "go")]));
    assert_eq!(seen.requests[2].2, x(&[("x-client", "go")]));
    assert_eq!(seen.requests[3].2, x(&[("x-late", "after")]));
    assert_eq!(seen.requests[4].2, x(&[("x-client", "go"), ("x-late", "after")]));
}

#[tokio::test]
async fn eviction_from_a_full_table_follows_the_client() {
    // Each request inserts a 500-byte header and refers to the previous request's by
    // index; the 4096-byte table evicts old entries on both sides of the adapter.
    let mut bytes = Vec::new();
    for i in 0..30u32 {
        let mut b = request_start();
        let authority: &[u8] = if i % 3 == 0 {
            b"http://10.0.0.1:2379"
        } else {
            b"10.0.0.1:2379"
        };
        b.extend(literal(1, authority, i % 2 == 0));
        let value = vec![b'a' + (i % 26) as u8; 500];
        b.extend(literal_new(b"x-big", &value));
        if i > 0 {
            // This request's x-big is 62; an even request also inserted its authority,
            // which pushes the previous x-big from 63 to 64.
            let previous = if i % 2 == 0 { 64 } else { 63 };
            b.extend(indexed(previous));
        }
        bytes.extend(request(2 * i + 1, &b));
    }
    let seen = serve(&bytes, true).await;
    assert!(seen.error.is_none(), "{seen:?}");
    assert_eq!(seen.requests.len(), 30, "{seen:?}");
    for (i, (stream, authority, x)) in seen.requests.iter().enumerate() {
        assert_eq!(*stream, 2 * i as u32 + 1);
        assert_eq!(authority.as_deref(), Some("10.0.0.1:2379"));
        let mine = String::from_utf8(vec![b'a' + (i % 26) as u8; 500]).expect("ascii");
        let mut want = vec![("x-big".to_string(), mine)];
        if i > 0 {
            want.push((
                "x-big".to_string(),
                String::from_utf8(vec![b'a' + ((i - 1) % 26) as u8; 500]).expect("ascii"),
            ));
        }
        assert_eq!(x, &want, "request {i}");
    }
}

#[tokio::test]
async fn continuation_frames_padding_and_priority() {
    let mut block = request_start();
    block.extend(literal(1, b"http://127.0.0.1:2379", true));
    // Too large for the table: not inserted (inserting it would empty the table).
    block.extend(literal_named(0, b"x-long", &[b'z'; 40_000]));
    // HEADERS with padding and priority carrying the first 10 bytes, then CONTINUATION
    // frames of at most 16,000 bytes.
    let mut payload = vec![7u8]; // pad length
    payload.extend_from_slice(&[0x80, 0, 0, 3, 15]); // exclusive dependency on 3, weight 15
    payload.extend_from_slice(&block[..10]);
    payload.extend_from_slice(&[0; 7]);
    let mut bytes = frame(HEADERS, PADDED | PRIORITY | END_STREAM, 1, &payload);
    let rest = &block[10..];
    let chunks: Vec<&[u8]> = rest.chunks(16_000).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let flags = if i + 1 == chunks.len() { END_HEADERS } else { 0 };
        bytes.extend(frame(CONTINUATION, flags, 1, chunk));
    }
    // A second request refers to the inserted authority by index.
    let mut b = request_start();
    b.extend(indexed(62));
    bytes.extend(request(3, &b));

    assert!(serve(&bytes, false).await.requests.is_empty());
    let seen = serve(&bytes, true).await;
    assert!(seen.error.is_none(), "{seen:?}");
    assert_eq!(
        authorities(&seen),
        vec![(1, Some("127.0.0.1:2379")), (3, Some("127.0.0.1:2379"))]
    );
    assert_eq!(
        seen.requests[0].2,
        vec![("x-long".to_string(), "z".repeat(40_000))]
    );
}

#[tokio::test]
async fn a_block_that_does_not_decode_is_refused_by_h2_with_or_without_the_adapter() {
    for first_repaired in [false, true] {
        let mut bytes = Vec::new();
        if first_repaired {
            let mut b = request_start();
            b.extend(literal(1, b"http://127.0.0.1:2379", false));
            bytes.extend(request(1, &b));
        }
        let mut b = request_start();
        b.extend(indexed(200)); // no such entry
        bytes.extend(request(3, &b));
        let seen = serve(&bytes, true).await;
        assert!(seen.error.is_some(), "accepted a broken block: {seen:?}");
        assert!(seen.requests.iter().all(|r| r.0 != 3), "{seen:?}");
    }
}

#[test]
fn a_connection_without_repairs_passes_byte_for_byte_even_a_byte_at_a_time() {
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
    let mut b = request_start();
    b.extend(literal(1, b"127.0.0.1:2379", true));
    input.extend(frame(HEADERS, END_HEADERS, 1, &b));
    input.extend(frame(DATA, 0, 1, &[1; 300]));
    input.extend(frame(DATA, END_STREAM, 1, &[2; 10]));
    let mut b = request_start();
    b.extend(indexed(62));
    input.extend(frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 3, &{
        let mut p = vec![2];
        p.extend(&b);
        p.extend([0, 0]);
        p
    }));
    let mut r = Rewriter::new();
    let mut out = Vec::new();
    for byte in &input {
        r.feed(std::slice::from_ref(byte));
        drain(&mut r, &mut out);
    }
    assert_eq!(out, input);
    assert_eq!(r.repaired(), 0);
}

/// Takes every output byte (output comes in parts: the adapter's own, then the input's).
fn drain(r: &mut Rewriter, out: &mut Vec<u8>) {
    loop {
        let n = r.output().len();
        if n == 0 {
            return;
        }
        out.extend_from_slice(r.output());
        r.consume(n);
    }
}

#[test]
fn http1_passes_through_untouched() {
    let input = b"GET /health HTTP/1.1\r\nHost: http://x\r\n\r\n";
    let mut r = Rewriter::new();
    r.feed(input);
    assert_eq!(r.output(), input);
    let n = r.output().len();
    r.consume(n);
    assert!(r.is_transparent());
}
