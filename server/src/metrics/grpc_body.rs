//! Counting gRPC messages and their bytes as they pass in a request or response
//! body: each message is a 5-byte prefix (compressed flag, 4-byte length) and that
//! many payload bytes, and a body chunk may end anywhere in either.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};

use super::grpc::{status_code, GrpcMetrics, MethodSeries, CANCELED, UNKNOWN};

/// Where a reader of gRPC frames stands.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    prefix: [u8; 5],
    prefix_len: usize,
    /// Payload bytes of the current message still to come.
    remaining: u64,
}

impl FrameReader {
    /// Reads `chunk`; returns the messages that began in it and the payload
    /// bytes it carried.
    pub(crate) fn read(&mut self, mut chunk: &[u8]) -> (u64, u64) {
        let (mut messages, mut bytes) = (0, 0);
        while !chunk.is_empty() {
            if self.remaining > 0 {
                let take = chunk
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= take as u64;
                bytes += take as u64;
                chunk = &chunk[take..];
                continue;
            }
            let take = (5 - self.prefix_len).min(chunk.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&chunk[..take]);
            self.prefix_len += take;
            chunk = &chunk[take..];
            if self.prefix_len == 5 {
                messages += 1;
                self.remaining = u64::from(u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]));
                self.prefix_len = 0;
            }
        }
        (messages, bytes)
    }
}

/// A request body that counts the messages and bytes the client sends.
pub(crate) struct RequestCounter {
    inner: Body,
    reader: FrameReader,
    series: Arc<MethodSeries>,
    metrics: Arc<GrpcMetrics>,
}

impl RequestCounter {
    pub(crate) fn new(inner: Body, series: Arc<MethodSeries>, metrics: Arc<GrpcMetrics>) -> RequestCounter {
        RequestCounter {
            inner,
            reader: FrameReader::default(),
            series,
            metrics,
        }
    }
}

impl HttpBody for RequestCounter {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let (messages, bytes) = this.reader.read(data);
                this.series.received.inc_by(messages);
                this.metrics.received_bytes.inc_by(bytes);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts the messages and bytes sent, and the call as
/// handled when the body ends (with its trailers' code) or is dropped unfinished.
pub(crate) struct ResponseCounter {
    inner: Body,
    reader: FrameReader,
    series: Arc<MethodSeries>,
    metrics: Arc<GrpcMetrics>,
    started: Instant,
    finished: bool,
}

impl ResponseCounter {
    pub(crate) fn new(
        inner: Body,
        series: Arc<MethodSeries>,
        metrics: Arc<GrpcMetrics>,
        started: Instant,
    ) -> ResponseCounter {
        ResponseCounter {
            inner,
            reader: FrameReader::default(),
            series,
            metrics,
            started,
            finished: false,
        }
    }

    fn finish(&mut self, code: usize) {
        if !self.finished {
            self.finished = true;
            self.series.finish(code, self.started);
        }
    }
}

impl HttpBody for ResponseCounter {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let (messages, bytes) = this.reader.read(data);
                    this.series.sent.inc_by(messages);
                    this.metrics.sent_bytes.inc_by(bytes);
                } else if let Some(trailers) = frame.trailers_ref() {
                    this.finish(status_code(trailers).unwrap_or(UNKNOWN));
                }
            }
            Poll::Ready(None) => this.finish(UNKNOWN),
            Poll::Ready(Some(Err(_))) => this.finish(CANCELED),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseCounter {
    fn drop(&mut self) {
        self.finish(CANCELED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_across_chunk_boundaries() {
        let mut r = FrameReader::default();
        // Two messages (3 and 0 payload bytes), split inside the first prefix and payload.
        let wire = [0u8, 0, 0, 0, 3, 7, 8, 9, 0, 0, 0, 0, 0];
        assert_eq!(r.read(&wire[..2]), (0, 0));
        assert_eq!(r.read(&wire[2..6]), (1, 1));
        assert_eq!(r.read(&wire[6..]), (1, 2));
        assert_eq!(r.read(&[0, 0, 0, 0, 1, 5]), (1, 1));
    }
}
