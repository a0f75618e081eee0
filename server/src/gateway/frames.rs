//! gRPC's message framing (a flag byte, a 4-byte big-endian length, the message), both
//! ways: the gateway speaks gRPC to the services in-process, so a JSON request becomes
//! a framed body and a framed response body becomes JSON again.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes before each message: the compressed flag and the length.
const PREFIX_BYTES: usize = 5;

/// `message` as one uncompressed gRPC frame.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(PREFIX_BYTES + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// Splits a gRPC body, fed in arbitrary chunks, back into messages.
#[derive(Debug, Default)]
pub struct Deframer {
    buffered: BytesMut,
}

impl Deframer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffered.extend_from_slice(chunk);
    }

    /// The next complete message, `Ok(None)` until one has fully arrived; an error
    /// for a compressed frame (the gateway never asks for compression).
    pub fn next_message(&mut self) -> Result<Option<Bytes>, String> {
        if self.buffered.len() < PREFIX_BYTES {
            return Ok(None);
        }
        let compressed = self.buffered[0];
        let len = u32::from_be_bytes([
            self.buffered[1],
            self.buffered[2],
            self.buffered[3],
            self.buffered[4],
        ]);
        let len = usize::try_from(len).map_err(|_| "gRPC frame too large".to_string())?;
        if compressed != 0 {
            return Err("compressed gRPC frame in a gateway response".to_string());
        }
        if self.buffered.len() < PREFIX_BYTES + len {
            return Ok(None);
        }
        self.buffered.advance(PREFIX_BYTES);
        Ok(Some(self.buffered.split_to(len).freeze()))
    }

    /// Whether bytes of an incomplete frame are left.
    pub fn has_partial(&self) -> bool {
        !self.buffered.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_whatever_the_chunking() {
        let mut body = Vec::new();
        for m in [&b"abc"[..], b"", b"0123456789"] {
            body.extend_from_slice(&frame(m));
        }
        for chunk in [1, 2, 5, 7, body.len()] {
            let mut d = Deframer::default();
            let mut got = Vec::new();
            for piece in body.chunks(chunk) {
                d.push(piece);
                while let Some(m) = d.next_message().expect("frame") {
                    got.push(m.to_vec());
                }
            }
            assert_eq!(got, vec![b"abc".to_vec(), Vec::new(), b"0123456789".to_vec()]);
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn a_compressed_frame_is_an_error() {
        let mut d = Deframer::default();
        d.push(&[1, 0, 0, 0, 0]);
        assert!(d.next_message().is_err());
    }
}
