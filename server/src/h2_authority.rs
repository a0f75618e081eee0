//! Repairs the HTTP/2 `:authority` of client requests before hyper's HTTP/2 stack sees it.
//!
//! etcd's Go client dials an endpoint written `http://127.0.0.1:2379` through grpc-go's
//! passthrough resolver, which sends the whole string as the request's `:authority`. The
//! `h2` crate under hyper parses the authority as a URI authority and resets such a stream
//! with PROTOCOL_ERROR before any handler runs; it has no option to relax that, and etcd's
//! Go server accepts the request. So every client connection passes through
//! [`AuthorityFix`], which follows the client's HTTP/2 frames, decodes each header block
//! and repairs an authority h2 would refuse ([`repair_authority`]: scheme and path cut off,
//! or the field dropped when nothing valid is left). Every other byte, and every other
//! check of h2 (frame sizes, stream states, flow control, header list limits), stays as it
//! was.
//!
//! HPACK state. Header blocks are compressed against a table that the client's encoder and
//! the server's decoder keep in step. This adapter decodes every block the client sends
//! ([`crate::hpack`]), so its own decoder's table is the client's. Until the first repair
//! the blocks go to h2 byte for byte, so h2's table is the same one. The first repaired
//! block switches the connection to re-encoding: from then on the adapter writes every
//! block itself as plain literals, and that first block starts by setting h2's table size
//! to 0, which empties it for good, so nothing h2 decodes refers to a table again.
//! Connections that never need a repair (every client that writes a plain `host:port`) pay
//! one HPACK decode per request and no re-encoding.
//!
//! What the adapter cannot follow it hands to h2 as it came, and the rest of the connection
//! then passes through untouched: a connection that is not HTTP/2 (HTTP/1.1 requests for
//! `/health`), frames out of order (a CONTINUATION that does not follow its HEADERS, a
//! PUSH_PROMISE from a client), a header block over [`MAX_BLOCK_BYTES`], a block that does
//! not decode. h2 then answers with the error it would have given anyway; after a switch to
//! re-encoding, a block that does not decode is replaced by one that h2 is sure to refuse
//! (index 0), since h2's table no longer matches the client's.
//!
//! The frame-following part is the sans-I/O [`Rewriter`] (bytes in, bytes out); the
//! [`AuthorityFix`] stream only moves bytes between it and the socket.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

use crate::hpack::{self, Decoder};

/// The client connection preface of HTTP/2.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_BYTES: usize = 9;

const FRAME_HEADERS: u8 = 0x1;
const FRAME_PUSH_PROMISE: u8 = 0x5;
const FRAME_CONTINUATION: u8 = 0x9;

const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// The largest header block (all its frames, as sent) the adapter buffers to decode. Far
/// above any header list hyper accepts (16 KiB decoded by default); a larger block goes to
/// h2 as it came, and h2 refuses it.
pub const MAX_BLOCK_BYTES: usize = 1 << 20;

/// The HPACK dynamic table size both directions of the client's header compression use:
/// h2's SETTINGS_HEADER_TABLE_SIZE, which hyper leaves at the protocol's default. A client
/// may not grow its table beyond it; the adapter's decoder refuses that as h2 would.
const HEADER_TABLE_BYTES: usize = 4_096;

/// Frames the adapter writes are at most this long: the smallest SETTINGS_MAX_FRAME_SIZE a
/// peer may advertise, so h2 accepts them whatever it advertised.
const MAX_FRAME_PAYLOAD: usize = 16_384;

/// How much the adapter reads from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// What becomes of one `:authority` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// h2 accepts it as it is.
    Keep,
    /// h2 would refuse it; this is the same authority without scheme and path.
    Replace(Vec<u8>),
    /// h2 would refuse it and nothing valid is left: the field is dropped (HTTP/2 requests
    /// may come without `:authority`).
    Drop,
}

/// Decides what an `:authority` value becomes: kept when h2 parses it, otherwise cut to
/// what lies between an optional `scheme://` and the first `/`, `?` or `#`.
pub fn repair_authority(value: &[u8]) -> Repair {
    if accepted(value) {
        return Repair::Keep;
    }
    let rest = match value.windows(3).position(|w| w == b"://") {
        Some(i) if is_scheme(&value[..i]) => &value[i + 3..],
        _ => value,
    };
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let host = &rest[..end];
    if accepted(host) {
        Repair::Replace(host.to_vec())
    } else {
        Repair::Drop
    }
}

/// Whether h2 accepts `value` as an authority (it parses it with `http`'s `Authority`).
fn accepted(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// RFC 3986 scheme: a letter, then letters, digits, `+`, `-` and `.`.
fn is_scheme(s: &[u8]) -> bool {
    s.first().is_some_and(u8::is_ascii_alphabetic)
        && s.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Comparing the first bytes with the HTTP/2 preface.
    Preface,
    /// Following frames; header blocks pass through as sent.
    Following,
    /// Following frames; every header block is encoded by the adapter.
    Reencoding,
    /// Not following any more: every byte passes through.
    Passthrough,
}

/// A header block being collected: its frames lie in the buffer from the output boundary
/// (`Rewriter::ready`) on.
#[derive(Debug)]
struct PendingBlock {
    stream_id: u32,
    /// END_STREAM of the HEADERS frame.
    end_stream: bool,
    /// The HEADERS frame's priority fields, when it had the PRIORITY flag.
    priority: Option<[u8; 5]>,
    /// Where the HEADERS frame's fragment lies (without padding and priority), from the
    /// block's first byte.
    first: (usize, usize),
    /// Whether CONTINUATION frames followed; the whole fragment is then in `Rewriter::joined`.
    continued: bool,
    /// Bytes of the frames collected so far, as sent.
    frame_bytes: usize,
}

/// The sans-I/O part: the client's bytes go in with [`Rewriter::feed`] (or straight into
/// [`Rewriter::buffer`]), the bytes for h2 come out of [`Rewriter::output`].
pub struct Rewriter {
    mode: Mode,
    /// Whether the client's first bytes were the whole HTTP/2 preface.
    saw_preface: bool,
    /// Output made by the adapter (a re-encoded block); it goes before `buf[..ready]`.
    made: BytesMut,
    /// `buf[..ready]` is output; `buf[ready..]` is input not yet handled.
    buf: BytesMut,
    ready: usize,
    /// Payload bytes of the frame being passed through that are not yet output.
    passing: usize,
    pending: Option<PendingBlock>,
    decoder: Decoder,
    repaired: u64,
    /// Reused per block: a fragment spread over CONTINUATION frames, the decoded fields
    /// (names and values one after another, and where each ends), the re-encoded block.
    joined: Vec<u8>,
    fields: Vec<u8>,
    field_ends: Vec<[usize; 2]>,
    encoded: Vec<u8>,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewriter")
            .field("mode", &self.mode)
            .field("buffered", &self.buf.len())
            .field("ready", &self.ready)
            .field("repaired", &self.repaired)
            .finish()
    }
}

impl Default for Rewriter {
    fn default() -> Self {
        Rewriter::new()
    }
}

impl Rewriter {
    pub fn new() -> Rewriter {
        Rewriter {
            mode: Mode::Preface,
            saw_preface: false,
            made: BytesMut::new(),
            buf: BytesMut::new(),
            ready: 0,
            passing: 0,
            pending: None,
            decoder: Decoder::new(HEADER_TABLE_BYTES),
            repaired: 0,
            joined: Vec::new(),
            fields: Vec::new(),
            field_ends: Vec::new(),
            encoded: Vec::new(),
        }
    }

    /// Takes bytes the client sent.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.process();
    }

    /// The buffer a reader appends the client's bytes to; call [`Rewriter::process`] after.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes ready for h2, in order (possibly only the first part of them: take these with
    /// [`Rewriter::consume`], then ask again).
    pub fn output(&self) -> &[u8] {
        if self.made.is_empty() {
            &self.buf[..self.ready]
        } else {
            &self.made
        }
    }

    /// Marks the first `n` bytes of [`Rewriter::output`] as taken.
    pub fn consume(&mut self, n: usize) {
        if self.made.is_empty() {
            assert!(n <= self.ready, "consumed more than the output holds");
            self.buf.advance(n);
            self.ready -= n;
        } else {
            self.made.advance(n);
        }
    }

    /// Whether every further byte passes through as it comes (and nothing is buffered).
    pub fn is_transparent(&self) -> bool {
        self.mode == Mode::Passthrough && self.buf.is_empty() && self.made.is_empty()
    }

    /// How many `:authority` values were repaired on this connection.
    pub fn repaired(&self) -> u64 {
        self.repaired
    }

    /// The client closed its side: whatever is left goes to h2 as it came.
    pub fn finish(&mut self) {
        self.give_up();
    }

    /// Handles as much buffered input as possible.
    pub fn process(&mut self) {
        loop {
            let progressed = match self.mode {
                Mode::Passthrough => {
                    self.ready = self.buf.len();
                    false
                }
                Mode::Preface => self.step_preface(),
                Mode::Following | Mode::Reencoding => self.step_frames(),
            };
            if !progressed {
                return;
            }
        }
    }

    fn step_preface(&mut self) -> bool {
        let have = self.buf.len().min(PREFACE.len());
        if self.buf[..have] != PREFACE[..have] {
            self.give_up();
            return false;
        }
        if have < PREFACE.len() {
            return false;
        }
        self.ready = PREFACE.len();
        self.mode = Mode::Following;
        self.saw_preface = true;
        true
    }

    fn step_frames(&mut self) -> bool {
        if self.passing > 0 {
            let n = self.passing.min(self.buf.len() - self.ready);
            self.ready += n;
            self.passing -= n;
            return n > 0;
        }
        let at = self.ready + self.pending.as_ref().map_or(0, |p| p.frame_bytes);
        let Some(header) = self.buf.get(at..at + FRAME_HEADER_BYTES) else {
            return false;
        };
        let length = (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
        let (kind, flags) = (header[3], header[4]);
        let stream_id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let in_block = self.pending.is_some();
        match kind {
            FRAME_HEADERS if !in_block => {}
            FRAME_CONTINUATION if self.pending.as_ref().is_some_and(|p| p.stream_id == stream_id) => {}
            _ if in_block || matches!(kind, FRAME_CONTINUATION | FRAME_PUSH_PROMISE) => {
                // Out of order: h2 refuses this connection on its own.
                self.give_up();
                return false;
            }
            _ => {
                self.ready += FRAME_HEADER_BYTES;
                self.passing = length;
                return true;
            }
        }
        let frame_bytes = FRAME_HEADER_BYTES + length;
        if (at - self.ready) + frame_bytes > MAX_BLOCK_BYTES {
            self.abandon_block(stream_id, flags);
            return false;
        }
        let Some(frame) = self.buf.get(at..at + frame_bytes) else {
            return false;
        };
        let payload = &frame[FRAME_HEADER_BYTES..];
        if kind == FRAME_HEADERS {
            let Some((priority, start, end)) = headers_fragment(flags, payload) else {
                // Bad padding: h2 refuses it.
                self.give_up();
                return false;
            };
            let base = at - self.ready + FRAME_HEADER_BYTES;
            self.pending = Some(PendingBlock {
                stream_id,
                end_stream: flags & FLAG_END_STREAM != 0,
                priority,
                first: (base + start, base + end),
                continued: false,
                frame_bytes,
            });
        } else {
            let pending = self.pending.as_mut().expect("a block is being collected");
            if !pending.continued {
                self.joined.clear();
                let block = &self.buf[self.ready..];
                self.joined
                    .extend_from_slice(&block[pending.first.0..pending.first.1]);
                pending.continued = true;
            }
            self.joined.extend_from_slice(payload);
            pending.frame_bytes += frame_bytes;
        }
        if flags & FLAG_END_HEADERS != 0 {
            self.finish_block();
        }
        true
    }

    /// A whole header block is collected: decode it, then pass it on or re-encode it.
    fn finish_block(&mut self) {
        let block = self.pending.take().expect("a block is being collected");
        let fragment = if block.continued {
            &self.joined[..]
        } else {
            &self.buf[self.ready + block.first.0..self.ready + block.first.1]
        };
        let (fields, field_ends) = (&mut self.fields, &mut self.field_ends);
        fields.clear();
        field_ends.clear();
        let decoded = self.decoder.decode(fragment, |name, value| {
            fields.extend_from_slice(name);
            let name_end = fields.len();
            fields.extend_from_slice(value);
            field_ends.push([name_end, fields.len()]);
        });
        if decoded.is_err() {
            if self.mode == Mode::Reencoding {
                // h2's table is no longer the client's: make sure h2 refuses this block.
                self.replace_block(&block, &[0x80]);
            }
            self.give_up();
            return;
        }
        // The repair of each authority h2 would refuse, by field number.
        let mut repairs = Vec::new();
        let mut start = 0;
        for (i, &[name_end, end]) in self.field_ends.iter().enumerate() {
            if &self.fields[start..name_end] == b":authority" {
                match repair_authority(&self.fields[name_end..end]) {
                    Repair::Keep => {}
                    repair => repairs.push((i, repair)),
                }
            }
            start = end;
        }
        if !repairs.is_empty() {
            self.repaired += 1;
        }
        if self.mode == Mode::Following && repairs.is_empty() {
            self.ready += block.frame_bytes;
            return;
        }
        let mut encoded = std::mem::take(&mut self.encoded);
        encoded.clear();
        if self.mode == Mode::Following {
            // h2's table holds what the client's blocks put there: a size of 0 empties it
            // for good (the literals written from now on are never indexed).
            hpack::encode_size_update(&mut encoded, 0);
            self.mode = Mode::Reencoding;
        }
        let mut start = 0;
        for (i, &[name_end, end]) in self.field_ends.iter().enumerate() {
            let name = &self.fields[start..name_end];
            let value = match repairs.iter().find(|(r, _)| *r == i) {
                None => &self.fields[name_end..end],
                Some((_, Repair::Replace(fixed))) => &fixed[..],
                Some(_) => {
                    start = end;
                    continue;
                }
            };
            hpack::encode_literal(&mut encoded, name, value);
            start = end;
        }
        self.replace_block(&block, &encoded);
        self.encoded = encoded;
    }

    /// Replaces the collected frames of `block` with frames carrying `fragment`. Output not
    /// yet taken moves to `made` first, to stay in front of them (usually a DATA frame or
    /// two: the reader takes output as it comes).
    fn replace_block(&mut self, block: &PendingBlock, fragment: &[u8]) {
        if self.ready > 0 {
            let earlier = self.buf.split_to(self.ready);
            self.made.extend_from_slice(&earlier);
            self.ready = 0;
        }
        self.buf.advance(block.frame_bytes);
        header_frames(block, fragment, &mut self.made);
    }

    /// A header block too large to buffer: as it came when h2's table is the client's,
    /// otherwise preceded by a block h2 refuses.
    fn abandon_block(&mut self, stream_id: u32, flags: u8) {
        if self.mode == Mode::Reencoding {
            let block = self.pending.take().unwrap_or(PendingBlock {
                stream_id,
                end_stream: flags & FLAG_END_STREAM != 0,
                priority: None,
                first: (0, 0),
                continued: false,
                frame_bytes: 0,
            });
            self.replace_block(&block, &[0x80]);
        }
        self.give_up();
    }

    /// Stops following: everything buffered and everything after passes through.
    fn give_up(&mut self) {
        self.pending = None;
        self.passing = 0;
        self.mode = Mode::Passthrough;
        self.ready = self.buf.len();
    }
}

/// The priority fields of a HEADERS payload and where its block fragment lies in it, or
/// `None` when its padding does not fit.
fn headers_fragment(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, usize, usize)> {
    let (pad, mut start) = if flags & FLAG_PADDED != 0 {
        (usize::from(*payload.first()?), 1)
    } else {
        (0, 0)
    };
    let end = payload.len().checked_sub(pad)?;
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        priority = Some(payload.get(start..start + 5)?.try_into().ok()?);
        start += 5;
    }
    (start <= end).then_some((priority, start, end))
}

/// Appends to `out` a HEADERS frame (with the block's END_STREAM and priority, no padding)
/// and as many CONTINUATION frames as `fragment` needs, END_HEADERS on the last.
fn header_frames(block: &PendingBlock, fragment: &[u8], out: &mut BytesMut) {
    let priority = block.priority.as_ref().map_or(&[][..], |p| &p[..]);
    let first_room = MAX_FRAME_PAYLOAD - priority.len();
    let (first, mut rest) = fragment.split_at(fragment.len().min(first_room));
    let mut flags = if block.end_stream { FLAG_END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    let length = priority.len() + first.len();
    frame_header(out, length, FRAME_HEADERS, flags, block.stream_id);
    out.extend_from_slice(priority);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, more) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
        let flags = if more.is_empty() { FLAG_END_HEADERS } else { 0 };
        frame_header(out, chunk.len(), FRAME_CONTINUATION, flags, block.stream_id);
        out.extend_from_slice(chunk);
        rest = more;
    }
}

fn frame_header(out: &mut BytesMut, length: usize, kind: u8, flags: u8, stream_id: u32) {
    let length = u32::try_from(length).expect("frame length fits 24 bits");
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

/// A client connection whose HTTP/2 `:authority` values are repaired on the way in;
/// writes go to the client unchanged.
#[derive(Debug)]
pub struct AuthorityFix<S> {
    inner: S,
    rewriter: Rewriter,
    closed: bool,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> AuthorityFix<S> {
        AuthorityFix {
            inner,
            rewriter: Rewriter::new(),
            closed: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Reads until the connection's first bytes tell whether it speaks HTTP/2 (they are
    /// the preface) or not (an HTTP/1 request, or a connection closed before the preface
    /// was complete). What was read stays here for the reads that follow, so the server
    /// that takes the connection sees every byte.
    pub async fn starts_with_preface(&mut self) -> io::Result<bool>
    where
        S: AsyncRead + Unpin,
    {
        while self.rewriter.mode == Mode::Preface && !self.closed {
            let buf = self.rewriter.buffer();
            buf.reserve(READ_CHUNK);
            if self.inner.read_buf(buf).await? == 0 {
                self.closed = true;
                self.rewriter.finish();
            } else {
                self.rewriter.process();
            }
        }
        Ok(self.rewriter.saw_preface)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
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
            if this.closed {
                return Poll::Ready(Ok(()));
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
                this.closed = true;
                this.rewriter.finish();
            } else {
                this.rewriter.process();
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
