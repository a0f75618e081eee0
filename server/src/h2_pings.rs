//! `--grpc-keepalive-min-time`: the keepalive enforcement policy of etcd's gRPC server
//! (grpc-go's `keepalive.EnforcementPolicy{MinTime, PermitWithoutStream: false}`) on
//! each HTTP/2 client connection.
//!
//! grpc-go counts a strike for each client PING that comes sooner than `MinTime` after
//! the previous one (two hours while the connection has no open stream), and once a
//! connection has more than two strikes it sends GOAWAY with ENHANCE_YOUR_CALM and the
//! debug data `too_many_pings`, then closes it. The strikes start over when the server
//! sends HEADERS or DATA (the first PING after that is not checked). The HTTP/2 server
//! under tonic (h2) answers PINGs itself and has no hook for this, so [`PingPolicing`]
//! sits between the socket and h2: it follows the 9-byte frame headers both ways (after
//! the client's 24-byte preface), nothing of the payloads, and on a violation writes the
//! GOAWAY at a frame boundary of what h2 writes, then ends the connection.
//!
//! The frame-following part is the sans-I/O [`PingPolicy`]; a connection that does not
//! start with the HTTP/2 preface (HTTP/1) is left alone.

use std::collections::BTreeSet;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_BYTES: usize = 9;

const FRAME_DATA: u8 = 0x0;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_RST_STREAM: u8 = 0x3;
const FRAME_PING: u8 = 0x6;
const FRAME_GOAWAY: u8 = 0x7;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_ACK: u8 = 0x1;
/// HTTP/2's ENHANCE_YOUR_CALM error code.
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// grpc-go's `maxPingStrikes`: one more strike closes the connection.
const MAX_PING_STRIKES: u32 = 2;
/// grpc-go's `defaultPingTimeout`: the least time between pings without a stream.
const PING_WITHOUT_STREAM_MIN: Duration = Duration::from_secs(2 * 3600);

/// The 9-byte frame headers of one direction, followed across reads or writes.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; FRAME_HEADER_BYTES],
    have: usize,
    payload_left: usize,
}

/// One frame header: type, flags, stream.
#[derive(Clone, Copy, Debug)]
struct Header {
    kind: u8,
    flags: u8,
    stream: u32,
}

impl Frames {
    /// Follows `bytes`, calling `on` for each complete frame header.
    fn follow(&mut self, mut bytes: &[u8], mut on: impl FnMut(Header)) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER_BYTES - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == FRAME_HEADER_BYTES {
                let h = &self.header;
                self.payload_left = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                self.have = 0;
                on(Header {
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                });
            }
        }
    }

    /// Bytes that may pass before the next frame boundary (0: at one).
    fn to_boundary(&self) -> usize {
        if self.have > 0 {
            FRAME_HEADER_BYTES - self.have
        } else {
            self.payload_left
        }
    }
}

/// The policy of one connection, fed the bytes each way.
#[derive(Debug)]
pub struct PingPolicy {
    min_time: Duration,
    /// Preface bytes still to see (`None`: not HTTP/2, nothing is policed).
    preface_left: Option<usize>,
    client: Frames,
    server: Frames,
    open: BTreeSet<u32>,
    last_stream: u32,
    last_ping: Option<Instant>,
    strikes: u32,
    reset_strikes: bool,
    violated: bool,
}

impl PingPolicy {
    pub fn new(min_time: Duration) -> PingPolicy {
        PingPolicy {
            min_time,
            preface_left: Some(PREFACE.len()),
            client: Frames::default(),
            server: Frames::default(),
            open: BTreeSet::new(),
            last_stream: 0,
            last_ping: None,
            strikes: 0,
            reset_strikes: false,
            violated: false,
        }
    }

    /// Bytes the client sent, read at `now`.
    pub fn on_client_bytes(&mut self, mut bytes: &[u8], now: Instant) {
        let Some(left) = self.preface_left else { return };
        if left > 0 {
            let seen = PREFACE.len() - left;
            let n = left.min(bytes.len());
            if bytes[..n] != PREFACE[seen..seen + n] {
                self.preface_left = None;
                return;
            }
            self.preface_left = Some(left - n);
            bytes = &bytes[n..];
        }
        let mut frames = std::mem::take(&mut self.client);
        frames.follow(bytes, |h| match h.kind {
            FRAME_HEADERS if h.stream > self.last_stream => {
                self.last_stream = h.stream;
                self.open.insert(h.stream);
            }
            FRAME_RST_STREAM => {
                self.open.remove(&h.stream);
            }
            FRAME_PING if h.flags & FLAG_ACK == 0 => self.on_ping(now),
            _ => {}
        });
        self.client = frames;
    }

    /// grpc-go's `handlePing`.
    fn on_ping(&mut self, now: Instant) {
        let last = self.last_ping.replace(now);
        if std::mem::take(&mut self.reset_strikes) {
            self.strikes = 0;
            return;
        }
        let least = if self.open.is_empty() {
            PING_WITHOUT_STREAM_MIN
        } else {
            self.min_time
        };
        if last.is_some_and(|at| now.duration_since(at) < least) {
            self.strikes += 1;
        }
        if self.strikes > MAX_PING_STRIKES {
            self.violated = true;
        }
    }

    /// Bytes the server is writing to the client.
    pub fn on_server_bytes(&mut self, bytes: &[u8]) {
        if self.preface_left.is_none() {
            return;
        }
        let mut frames = std::mem::take(&mut self.server);
        frames.follow(bytes, |h| {
            if matches!(h.kind, FRAME_HEADERS | FRAME_DATA) {
                self.reset_strikes = true;
                if h.flags & FLAG_END_STREAM != 0 {
                    self.open.remove(&h.stream);
                }
            } else if h.kind == FRAME_RST_STREAM {
                self.open.remove(&h.stream);
            }
        });
        self.server = frames;
    }

    /// True once the client pinged too often: the connection gets [`Self::goaway`].
    pub fn violated(&self) -> bool {
        self.violated
    }

    /// Bytes of what the server writes that may pass before the next frame boundary.
    pub fn server_to_boundary(&self) -> usize {
        self.server.to_boundary()
    }

    /// grpc-go's answer: GOAWAY(last stream, ENHANCE_YOUR_CALM, "too_many_pings").
    pub fn goaway(&self) -> Vec<u8> {
        let debug = b"too_many_pings";
        let len = 8 + debug.len();
        let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + len);
        frame.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(&[FRAME_GOAWAY, 0, 0, 0, 0, 0]);
        frame.extend_from_slice(&self.last_stream.to_be_bytes());
        frame.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
        frame.extend_from_slice(debug);
        frame
    }
}

/// A client connection under the policy (see the module docs).
#[derive(Debug)]
pub struct PingPolicing<S> {
    inner: S,
    policy: PingPolicy,
    /// The GOAWAY being written (once the policy is violated).
    goaway: Option<(Vec<u8>, usize)>,
    /// The GOAWAY is out: reads end, writes fail.
    closed: bool,
}

impl<S> PingPolicing<S> {
    pub fn new(inner: S, min_time: Duration) -> PingPolicing<S> {
        PingPolicing {
            inner,
            policy: PingPolicy::new(min_time),
            goaway: None,
            closed: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncWrite + Unpin> PingPolicing<S> {
    /// Writes the GOAWAY once what the server wrote is at a frame boundary; ready once
    /// it is out and flushed (or there is none to write).
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed || !self.policy.violated() {
            return Poll::Ready(Ok(()));
        }
        if self.policy.server_to_boundary() > 0 {
            // h2 finishes its frame at its next write; look again then.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let (frame, written) = self.goaway.get_or_insert_with(|| (self.policy.goaway(), 0));
        while *written < frame.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &frame[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

fn too_many_pings() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "too many pings from the client")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PingPolicing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.policy.violated() {
            ready!(this.poll_goaway(cx))?;
            // End of stream: h2 closes the connection.
            return Poll::Ready(Ok(()));
        }
        let before = out.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
        this.policy
            .on_client_bytes(&out.filled()[before..], Instant::now());
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PingPolicing<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut buf = buf;
        if this.policy.violated() {
            let boundary = this.policy.server_to_boundary();
            if boundary == 0 {
                ready!(this.poll_goaway(cx))?;
                return Poll::Ready(Err(too_many_pings()));
            }
            buf = &buf[..boundary.min(buf.len())];
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.policy.on_server_bytes(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for PingPolicing<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: usize) -> Vec<u8> {
        let mut f = (payload as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend(std::iter::repeat_n(0u8, payload));
        f
    }

    fn ping() -> Vec<u8> {
        frame(FRAME_PING, 0, 0, 8)
    }

    fn started(min_time: Duration) -> PingPolicy {
        let mut p = PingPolicy::new(min_time);
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(0x4, 0, 0, 0));
        hello.extend(frame(FRAME_HEADERS, 0x4, 1, 5));
        p.on_client_bytes(&hello, Instant::now());
        p
    }

    #[test]
    fn a_third_strike_is_allowed_and_a_fourth_fast_ping_violates() {
        let mut p = started(Duration::from_secs(5));
        let t0 = Instant::now();
        for i in 0..3 {
            // Split across reads, as a socket may.
            let bytes = ping();
            p.on_client_bytes(&bytes[..4], t0 + Duration::from_millis(i));
            p.on_client_bytes(&bytes[4..], t0 + Duration::from_millis(i));
        }
        assert!(!p.violated(), "the first ping is free, then two strikes");
        p.on_client_bytes(&ping(), t0 + Duration::from_millis(3));
        assert!(p.violated());
        let goaway = p.goaway();
        assert_eq!(&goaway[3..5], &[FRAME_GOAWAY, 0]);
        assert_eq!(&goaway[9..13], &1u32.to_be_bytes(), "last stream");
        assert_eq!(&goaway[13..17], &ENHANCE_YOUR_CALM.to_be_bytes());
        assert_eq!(&goaway[17..], b"too_many_pings");
    }

    #[test]
    fn pings_spaced_by_min_time_and_acks_are_no_strikes() {
        let mut p = started(Duration::from_millis(10));
        let t0 = Instant::now();
        for i in 0..10 {
            p.on_client_bytes(&ping(), t0 + Duration::from_millis(10 * i));
            p.on_client_bytes(
                &frame(FRAME_PING, FLAG_ACK, 0, 8),
                t0 + Duration::from_millis(10 * i),
            );
        }
        assert!(!p.violated());
    }

    #[test]
    fn server_headers_or_data_start_the_strikes_over() {
        let mut p = started(Duration::from_secs(5));
        let t0 = Instant::now();
        for i in 0..20 {
            p.on_client_bytes(&ping(), t0);
            if i % 2 == 0 {
                p.on_server_bytes(&frame(FRAME_DATA, 0, 1, 3));
            }
        }
        assert!(!p.violated());
    }

    #[test]
    fn without_a_stream_pings_need_two_hours() {
        let mut p = started(Duration::from_millis(1));
        // The server ends stream 1: nothing is open any more.
        p.on_server_bytes(&frame(FRAME_HEADERS, FLAG_END_STREAM | 0x4, 1, 2));
        let t0 = Instant::now();
        p.on_client_bytes(&ping(), t0);
        for i in 1..=3 {
            p.on_client_bytes(&ping(), t0 + Duration::from_secs(60 * i));
        }
        assert!(p.violated(), "a ping a minute without a stream is too many");
    }

    #[test]
    fn the_goaway_waits_for_the_servers_frame_boundary() {
        let mut p = started(Duration::from_secs(5));
        let data = frame(FRAME_DATA, 0, 1, 100);
        p.on_server_bytes(&data[..20]);
        assert_eq!(p.server_to_boundary(), 89);
        p.on_server_bytes(&data[20..]);
        assert_eq!(p.server_to_boundary(), 0);
    }

    #[test]
    fn http1_is_left_alone() {
        let mut p = PingPolicy::new(Duration::from_secs(5));
        p.on_client_bytes(b"GET /health HTTP/1.1\r\n\r\n", Instant::now());
        for _ in 0..10 {
            p.on_client_bytes(&ping(), Instant::now());
        }
        assert!(!p.violated());
    }
}
