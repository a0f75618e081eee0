//! `--grpc-keepalive-min-time`: the keepalive enforcement policy of etcd's gRPC server
//! (grpc-go's `keepalive.EnforcementPolicy{MinTime, PermitWithoutStream: false}`) on
//! each HTTP/2 client connection.
//!
//! grpc-go counts a strike for each client PING that comes sooner than `MinTime` after
//! the previous one (two hours while the connection has no open stream), and once a
//! connection has more than two strikes it sends GOAWAY with ENHANCE_YOUR_CALM and the
//! debug data `too_many_pings`, then closes it. The strikes start over when the server
//! sends HEADERS or DATA (the first PING after that is not checked). The HTTP/2 server
//! under tonic (h2) answers PINGs itself and has no hook for this, so the policy observes
//! the frame headers the client connection's wrapper ([`crate::h2_conn::H2Conn`]) walks
//! both ways (nothing of the payloads), and on a violation the wrapper writes the GOAWAY
//! at a frame boundary of what h2 writes, then ends the connection. A connection that
//! does not start with the HTTP/2 preface (HTTP/1) is not walked, so not policed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::h2_conn::{
    ClientFrames, FrameHeader, FLAG_ACK, FLAG_END_STREAM, FRAME_DATA, FRAME_GOAWAY, FRAME_HEADERS,
    FRAME_HEADER_BYTES, FRAME_PING, FRAME_RST_STREAM,
};

/// HTTP/2's ENHANCE_YOUR_CALM error code.
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// grpc-go's `maxPingStrikes`: one more strike closes the connection.
const MAX_PING_STRIKES: u32 = 2;
/// grpc-go's `defaultPingTimeout`: the least time between pings without a stream.
const PING_WITHOUT_STREAM_MIN: Duration = Duration::from_secs(2 * 3600);

/// The policy of one connection, fed the frame headers each way.
#[derive(Debug)]
pub struct PingPolicy {
    min_time: Duration,
    /// When the client's bytes being walked were read.
    read_at: Instant,
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
            read_at: Instant::now(),
            open: BTreeSet::new(),
            last_stream: 0,
            last_ping: None,
            strikes: 0,
            reset_strikes: false,
            violated: false,
        }
    }

    /// The client frames walked next were read at `now`.
    pub fn read_at(&mut self, now: Instant) {
        self.read_at = now;
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

    /// A frame header of what the server writes to the client.
    pub fn server_frame(&mut self, h: FrameHeader) {
        if matches!(h.kind, FRAME_HEADERS | FRAME_DATA) {
            self.reset_strikes = true;
            if h.flags & FLAG_END_STREAM != 0 {
                self.open.remove(&h.stream);
            }
        } else if h.kind == FRAME_RST_STREAM {
            self.open.remove(&h.stream);
        }
    }

    /// True once the client pinged too often: the connection gets [`Self::goaway`].
    pub fn violated(&self) -> bool {
        self.violated
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

impl ClientFrames for PingPolicy {
    /// A frame header the client sent, read at the time [`PingPolicy::read_at`] said.
    fn client_frame(&mut self, h: FrameHeader) {
        match h.kind {
            FRAME_HEADERS if h.stream > self.last_stream => {
                self.last_stream = h.stream;
                self.open.insert(h.stream);
            }
            FRAME_RST_STREAM => {
                self.open.remove(&h.stream);
            }
            FRAME_PING if h.flags & FLAG_ACK == 0 => self.on_ping(self.read_at),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2_authority::Rewriter;
    use crate::h2_conn::{FrameFollower, PREFACE};

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

    /// The policy observing a connection's walks: the client's bytes through the
    /// rewriter, the server's through a follower.
    struct Conn {
        client: Rewriter<PingPolicy>,
        server: FrameFollower,
    }

    impl Conn {
        fn new(min_time: Duration) -> Conn {
            Conn {
                client: Rewriter::observed_by(PingPolicy::new(min_time)),
                server: FrameFollower::default(),
            }
        }

        fn client(&mut self, bytes: &[u8], at: Instant) {
            self.client.observer_mut().read_at(at);
            self.client.feed(bytes);
            while !self.client.output().is_empty() {
                let n = self.client.output().len();
                self.client.consume(n);
            }
        }

        fn server(&mut self, bytes: &[u8]) {
            let policy = self.client.observer_mut();
            self.server.follow(bytes, |h| policy.server_frame(h));
        }

        fn policy(&self) -> &PingPolicy {
            self.client.observer()
        }
    }

    fn started(min_time: Duration) -> Conn {
        let mut c = Conn::new(min_time);
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(0x4, 0, 0, 0));
        // HEADERS on stream 1: GET http / (static table entries), END_HEADERS.
        let mut headers = frame(FRAME_HEADERS, 0x4, 1, 0);
        headers[2] = 3;
        headers.extend([0x82, 0x86, 0x84]);
        hello.extend(headers);
        c.client(&hello, Instant::now());
        c
    }

    #[test]
    fn a_third_strike_is_allowed_and_a_fourth_fast_ping_violates() {
        let mut c = started(Duration::from_secs(5));
        let t0 = Instant::now();
        for i in 0..3 {
            // Split across reads, as a socket may.
            let bytes = ping();
            c.client(&bytes[..4], t0 + Duration::from_millis(i));
            c.client(&bytes[4..], t0 + Duration::from_millis(i));
        }
        assert!(!c.policy().violated(), "the first ping is free, then two strikes");
        c.client(&ping(), t0 + Duration::from_millis(3));
        assert!(c.policy().violated());
        let goaway = c.policy().goaway();
        assert_eq!(&goaway[3..5], &[FRAME_GOAWAY, 0]);
        assert_eq!(&goaway[9..13], &1u32.to_be_bytes(), "last stream");
        assert_eq!(&goaway[13..17], &ENHANCE_YOUR_CALM.to_be_bytes());
        assert_eq!(&goaway[17..], b"too_many_pings");
    }

    #[test]
    fn pings_spaced_by_min_time_and_acks_are_no_strikes() {
        let mut c = started(Duration::from_millis(10));
        let t0 = Instant::now();
        for i in 0..10 {
            c.client(&ping(), t0 + Duration::from_millis(10 * i));
            c.client(
                &frame(FRAME_PING, FLAG_ACK, 0, 8),
                t0 + Duration::from_millis(10 * i),
            );
        }
        assert!(!c.policy().violated());
    }

    #[test]
    fn server_headers_or_data_start_the_strikes_over() {
        let mut c = started(Duration::from_secs(5));
        let t0 = Instant::now();
        for i in 0..20 {
            c.client(&ping(), t0);
            if i % 2 == 0 {
                c.server(&frame(FRAME_DATA, 0, 1, 3));
            }
        }
        assert!(!c.policy().violated());
    }

    #[test]
    fn without_a_stream_pings_need_two_hours() {
        let mut c = started(Duration::from_millis(1));
        // The server ends stream 1: nothing is open any more.
        c.server(&frame(FRAME_HEADERS, FLAG_END_STREAM | 0x4, 1, 2));
        let t0 = Instant::now();
        c.client(&ping(), t0);
        for i in 1..=3 {
            c.client(&ping(), t0 + Duration::from_secs(60 * i));
        }
        assert!(
            c.policy().violated(),
            "a ping a minute without a stream is too many"
        );
    }

    #[test]
    fn pings_after_frames_the_authority_repair_gives_up_on_are_still_policed() {
        let mut c = started(Duration::from_secs(5));
        // A PUSH_PROMISE from a client: the repair passes the rest through untouched.
        c.client(&frame(0x5, 0x4, 1, 4), Instant::now());
        let t0 = Instant::now();
        for i in 0..4 {
            c.client(&ping(), t0 + Duration::from_millis(i));
        }
        assert!(c.policy().violated());
    }

    #[test]
    fn the_goaway_waits_for_the_servers_frame_boundary() {
        let mut server = FrameFollower::default();
        let data = frame(FRAME_DATA, 0, 1, 100);
        server.follow(&data[..20], |_| {});
        assert_eq!(server.to_boundary(), 89);
        server.follow(&data[20..], |_| {});
        assert_eq!(server.to_boundary(), 0);
    }

    #[test]
    fn http1_is_left_alone() {
        let mut c = Conn::new(Duration::from_secs(5));
        c.client(b"GET /health HTTP/1.1\r\n\r\n", Instant::now());
        for _ in 0..10 {
            c.client(&ping(), Instant::now());
        }
        assert!(!c.policy().violated());
    }
}
