//! The client connection as the HTTP/2 server under tonic (h2) sees it: one wrapper
//! around the socket that walks the HTTP/2 frames once each way and hands them to two
//! observers.
//!
//! - Client to server: the frames are walked by the `:authority` repair
//!   ([`crate::h2_authority::Rewriter`]), which follows every frame, collects header
//!   blocks and rewrites the ones whose authority h2 would refuse; it reports each frame
//!   header it walks to the ping policy.
//! - Server to client: the frame headers of what h2 writes are followed here
//!   ([`FrameFollower`]) for the ping policy ([`crate::h2_pings::PingPolicy`]), which
//!   starts its strikes over when the server sends HEADERS or DATA.
//!
//! When the policy is violated, the wrapper writes GOAWAY at a frame boundary of what h2
//! writes, and the client's side ends. A connection that does not start with the HTTP/2
//! preface (HTTP/1) passes through untouched both ways.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

use crate::h2_authority::Rewriter;
use crate::h2_pings::PingPolicy;

/// The client connection preface of HTTP/2.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(crate) const FRAME_HEADER_BYTES: usize = 9;

pub(crate) const FRAME_DATA: u8 = 0x0;
pub(crate) const FRAME_HEADERS: u8 = 0x1;
pub(crate) const FRAME_RST_STREAM: u8 = 0x3;
pub(crate) const FRAME_PUSH_PROMISE: u8 = 0x5;
pub(crate) const FRAME_PING: u8 = 0x6;
pub(crate) const FRAME_GOAWAY: u8 = 0x7;
pub(crate) const FRAME_CONTINUATION: u8 = 0x9;

/// END_STREAM on DATA and HEADERS; ACK on PING and SETTINGS.
pub(crate) const FLAG_END_STREAM: u8 = 0x1;
pub(crate) const FLAG_ACK: u8 = 0x1;
pub(crate) const FLAG_END_HEADERS: u8 = 0x4;
pub(crate) const FLAG_PADDED: u8 = 0x8;
pub(crate) const FLAG_PRIORITY: u8 = 0x20;

/// How much the wrapper reads from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// One frame header: its payload length, type, flags and stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub length: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    /// Reads the 9 bytes of a frame header.
    pub(crate) fn parse(h: &[u8; FRAME_HEADER_BYTES]) -> FrameHeader {
        FrameHeader {
            length: (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        }
    }
}

/// What sees the client's frame headers as they are walked.
pub trait ClientFrames {
    fn client_frame(&mut self, header: FrameHeader);
}

/// Nobody: a walk without an observer.
impl ClientFrames for () {
    fn client_frame(&mut self, _: FrameHeader) {}
}

/// Follows the frame headers of a byte stream across reads or writes, starting at a
/// frame boundary; nothing of the payloads.
#[derive(Debug, Default)]
pub struct FrameFollower {
    header: [u8; FRAME_HEADER_BYTES],
    have: usize,
    payload_left: usize,
}

impl FrameFollower {
    /// Follows `bytes`, calling `on` for each complete frame header.
    pub fn follow(&mut self, mut bytes: &[u8], mut on: impl FnMut(FrameHeader)) {
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
                let header = FrameHeader::parse(&self.header);
                self.payload_left = header.length;
                self.have = 0;
                on(header);
            }
        }
    }

    /// Bytes that may pass before the next frame boundary (0: at one).
    pub fn to_boundary(&self) -> usize {
        if self.have > 0 {
            FRAME_HEADER_BYTES - self.have
        } else {
            self.payload_left
        }
    }
}

/// A client connection on its way to h2 (see the module docs): its `:authority` values
/// repaired on the way in, its pings policed (`--grpc-keepalive-min-time`).
#[derive(Debug)]
pub struct H2Conn<S> {
    inner: S,
    /// The client's bytes, walked and repaired; the ping policy observes the walk.
    rewriter: Rewriter<PingPolicy>,
    /// The frame headers of what h2 writes.
    server: FrameFollower,
    /// The client's side ended (or was ended after a GOAWAY): what is left of the
    /// rewriter's output goes to h2, then end of stream.
    read_closed: bool,
    /// The GOAWAY being written (once the policy is violated).
    goaway: Option<(Vec<u8>, usize)>,
    /// The GOAWAY is out: writes fail.
    goaway_sent: bool,
}

impl<S> H2Conn<S> {
    /// `ping_min_time`: `--grpc-keepalive-min-time`.
    pub fn new(inner: S, ping_min_time: Duration) -> H2Conn<S> {
        H2Conn {
            inner,
            rewriter: Rewriter::observed_by(PingPolicy::new(ping_min_time)),
            server: FrameFollower::default(),
            read_closed: false,
            goaway: None,
            goaway_sent: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// How many `:authority` values were repaired on this connection.
    pub fn repaired(&self) -> u64 {
        self.rewriter.repaired()
    }

    fn policy(&self) -> &PingPolicy {
        self.rewriter.observer()
    }

    /// The client's bytes read at `now` are in the rewriter's buffer: walk them.
    fn process(&mut self, now: Instant) {
        self.rewriter.observer_mut().read_at(now);
        self.rewriter.process();
    }

    /// The client's side ended: what is buffered goes to h2 as it came.
    fn close_read(&mut self) {
        self.read_closed = true;
        self.rewriter.finish();
    }

    /// Reads until the connection's first bytes tell whether it speaks HTTP/2 (they are
    /// the preface) or not (an HTTP/1 request, or a connection closed before the preface
    /// was complete). What was read stays here for the reads that follow, so the server
    /// that takes the connection sees every byte.
    pub async fn starts_with_preface(&mut self) -> io::Result<bool>
    where
        S: AsyncRead + Unpin,
    {
        while self.rewriter.is_http2().is_none() && !self.read_closed {
            let buf = self.rewriter.buffer();
            buf.reserve(READ_CHUNK);
            if self.inner.read_buf(buf).await? == 0 {
                self.close_read();
            } else {
                self.process(Instant::now());
            }
        }
        Ok(self.rewriter.is_http2() == Some(true))
    }
}

impl<S: AsyncWrite + Unpin> H2Conn<S> {
    /// Writes the GOAWAY once what the server wrote is at a frame boundary; ready once
    /// it is out and flushed (or there is none to write).
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.goaway_sent || !self.policy().violated() {
            return Poll::Ready(Ok(()));
        }
        if self.server.to_boundary() > 0 {
            // h2 finishes its frame at its next write; look again then.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let policy = self.rewriter.observer();
        let (frame, written) = self.goaway.get_or_insert_with(|| (policy.goaway(), 0));
        while *written < frame.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &frame[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.goaway_sent = true;
        Poll::Ready(Ok(()))
    }
}

fn too_many_pings() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "too many pings from the client")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for H2Conn<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let ready = this.rewriter.output();
            if !ready.is_empty() {
                let n = ready.len().min(out.remaining());
                out.put_slice(&ready[..n]);
                this.rewriter.consume(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            if this.policy().violated() {
                // The GOAWAY goes out, then the client's side ends: h2 closes the
                // connection.
                ready!(this.poll_goaway(cx))?;
                this.close_read();
                continue;
            }
            if this.rewriter.is_transparent() {
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            this.rewriter.process();
            if !this.rewriter.output().is_empty() {
                continue;
            }
            let buf = this.rewriter.buffer();
            buf.reserve(READ_CHUNK);
            let n = ready!(tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, buf))?;
            if n == 0 {
                this.close_read();
            } else {
                this.process(Instant::now());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H2Conn<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut buf = buf;
        if this.policy().violated() {
            let boundary = this.server.to_boundary();
            if boundary == 0 {
                ready!(this.poll_goaway(cx))?;
                return Poll::Ready(Err(too_many_pings()));
            }
            buf = &buf[..boundary.min(buf.len())];
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if this.rewriter.is_http2() != Some(false) {
            let policy = this.rewriter.observer_mut();
            this.server
                .follow(&buf[..n], |header| policy.server_frame(header));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for H2Conn<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
