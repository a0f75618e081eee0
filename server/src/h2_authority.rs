//! Repairs the HTTP/2 `:authority` of client requests before hyper's HTTP/2 stack sees it.
//!
//! etcd's Go client dials an endpoint written `http://127.0.0.1:2379` through grpc-go's
//! passthrough resolver, which sends the whole string as the request's `:authority`. The
//! `h2` crate under hyper parses the authority as a URI authority and resets such a stream
//! with PROTOCOL_ERROR before any handler runs; it has no option to relax that, and etcd's
//! Go server accepts the request. So every client connection passes through the
//! [`Rewriter`] (in [`crate::h2_conn::H2Conn`]), which follows the client's HTTP/2 frames, decodes each header block
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
//! The [`Rewriter`] is sans-I/O (bytes in, bytes out) and is the one walk of the client's
//! frames: it reports every frame header it walks to an observer ([`ClientFrames`]; the
//! ping policy in [`crate::h2_conn::H2Conn`]), those it hands to h2 untouched after giving
//! up included.

use bytes::{Buf, BytesMut};

use crate::h2_conn::{
    ClientFrames, FrameFollower, FrameHeader, FLAG_END_HEADERS, FLAG_END_STREAM, FLAG_PADDED, FLAG_PRIORITY,
    FRAME_CONTINUATION, FRAME_HEADERS, FRAME_HEADER_BYTES, FRAME_PUSH_PROMISE, PREFACE,
};
use crate::hpack::{self, Decoder};

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
/// [`Rewriter::buffer`]), the bytes for h2 come out of [`Rewriter::output`]; each client
/// frame header walked goes to the observer `O`.
pub struct Rewriter<O = ()> {
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
    observer: O,
    /// Client bytes that left `buf` (taken as output, or replaced): `buf[0]` is byte
    /// number `buf_start` of the connection.
    buf_start: u64,
    /// The frame headers up to this byte of the connection were reported.
    walked_to: u64,
    /// After giving up on an HTTP/2 connection: the frames passing through untouched,
    /// still followed for the observer.
    follower: Option<FrameFollower>,
}

impl<O> std::fmt::Debug for Rewriter<O> {
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
    /// A rewriter nobody observes.
    pub fn new() -> Rewriter {
        Rewriter::observed_by(())
    }
}

impl<O: ClientFrames> Rewriter<O> {
    /// A rewriter that reports each client frame header it walks to `observer`.
    pub fn observed_by(observer: O) -> Rewriter<O> {
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
            observer,
            buf_start: 0,
            walked_to: 0,
            follower: None,
        }
    }

    pub fn observer(&self) -> &O {
        &self.observer
    }

    pub fn observer_mut(&mut self) -> &mut O {
        &mut self.observer
    }

    /// Whether the client speaks HTTP/2: `None` until its first bytes tell.
    pub fn is_http2(&self) -> Option<bool> {
        match self.mode {
            Mode::Preface => None,
            _ => Some(self.saw_preface),
        }
    }

    /// Reports `header` to the observer: the frame that ends at `end` in `buf` was walked.
    fn walked(&mut self, header: FrameHeader, end: usize) {
        self.observer.client_frame(header);
        self.walked_to = self.buf_start + end as u64;
    }

    /// After giving up: follows the frames in `buf` not walked yet, for the observer.
    fn follow_passthrough(&mut self) {
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        let end = self.buf_start + self.buf.len() as u64;
        if self.walked_to >= end {
            return;
        }
        let from = usize::try_from(self.walked_to.saturating_sub(self.buf_start)).unwrap_or(usize::MAX);
        let observer = &mut self.observer;
        follower.follow(&self.buf[from.min(self.buf.len())..], |header| {
            observer.client_frame(header)
        });
        self.walked_to = end;
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
            self.buf_start += n as u64;
            self.ready -= n;
        } else {
            self.made.advance(n);
        }
    }

    /// Whether every further byte passes through as it comes, unobserved (and nothing is
    /// buffered): a connection that is not HTTP/2.
    pub fn is_transparent(&self) -> bool {
        self.mode == Mode::Passthrough
            && self.follower.is_none()
            && self.buf.is_empty()
            && self.made.is_empty()
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
                    self.follow_passthrough();
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
        let header = FrameHeader::parse(header.try_into().expect("9 bytes"));
        let FrameHeader {
            length,
            kind,
            flags,
            stream: stream_id,
        } = header;
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
                self.walked(header, at + FRAME_HEADER_BYTES + length);
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
        self.walked(header, at + frame_bytes);
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
            self.buf_start += self.ready as u64;
            self.ready = 0;
        }
        self.buf.advance(block.frame_bytes);
        self.buf_start += block.frame_bytes as u64;
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

    /// Stops following: everything buffered and everything after passes through (its
    /// frames still followed for the observer on an HTTP/2 connection).
    fn give_up(&mut self) {
        self.pending = None;
        self.passing = 0;
        if self.saw_preface && self.follower.is_none() {
            self.follower = Some(FrameFollower::default());
        }
        self.mode = Mode::Passthrough;
        self.ready = self.buf.len();
        self.follow_passthrough();
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
