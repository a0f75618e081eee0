//! The trace hash: a 64-bit FNV-1a over every input delivered to a member and every
//! output it produced, in order. Two runs of one seed must print the same hash; a
//! different hash is the first sign of non-determinism. The algorithm is written out
//! here (not `std`'s `DefaultHasher`, whose algorithm is unspecified and may change
//! between releases) so that a hash recorded today still means something tomorrow.

use detcd_core::node::{Input, Output, PeerMessage, Persist};
use prost::Message as _;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceHash {
    state: u64,
    events: u64,
}

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash {
            state: FNV_OFFSET_BASIS,
            events: 0,
        }
    }
}

impl TraceHash {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.state ^= u64::from(b);
            self.state = self.state.wrapping_mul(FNV_PRIME);
        }
    }

    pub fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    /// Hashes one event: a tag naming its kind, then its rendering. Lengths are
    /// hashed too so that adjacent fields cannot run into each other.
    pub fn event(&mut self, tag: &str, rendering: &[u8]) {
        self.events += 1;
        self.u64(tag.len() as u64);
        self.bytes(tag.as_bytes());
        self.u64(rendering.len() as u64);
        self.bytes(rendering);
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.state
    }

    /// Events hashed so far.
    pub fn events(&self) -> u64 {
        self.events
    }
}

/// Hashes `input` as fed to member `id`.
pub(crate) fn hash_input(trace: &mut TraceHash, id: u64, input: &Input) {
    match input {
        Input::Tick { .. } => trace.event("tick", &id.to_le_bytes()),
        Input::Peer(PeerMessage::Raft(m)) => {
            let mut bytes = id.to_le_bytes().to_vec();
            bytes.extend_from_slice(&m.encode_to_vec());
            trace.event("raft", &bytes);
        }
        other => trace.event("input", format!("{id}:{other:?}").as_bytes()),
    }
}

/// Hashes `output` as member `id` produced it.
pub(crate) fn hash_output(trace: &mut TraceHash, id: u64, output: &Output) {
    match output {
        Output::Send {
            to,
            message: PeerMessage::Raft(m),
        } => {
            let mut bytes = id.to_le_bytes().to_vec();
            bytes.extend_from_slice(&to.to_le_bytes());
            bytes.extend_from_slice(&m.encode_to_vec());
            trace.event("send", &bytes);
        }
        Output::Persist(Persist {
            ready_number,
            entries,
            hard_state,
            snapshot,
            must_sync,
        }) => {
            let mut bytes = id.to_le_bytes().to_vec();
            bytes.extend_from_slice(&ready_number.to_le_bytes());
            bytes.push(u8::from(*must_sync));
            for e in entries {
                bytes.extend_from_slice(&e.encode_to_vec());
            }
            if let Some(hs) = hard_state {
                bytes.extend_from_slice(&hs.encode_to_vec());
            }
            if let Some(s) = snapshot {
                bytes.extend_from_slice(&s.encode_to_vec());
            }
            trace.event("persist", &bytes);
        }
        other => trace.event("output", format!("{id}:{other:?}").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_published_vectors() {
        let mut h = TraceHash::new();
        assert_eq!(h.value(), 0xcbf2_9ce4_8422_2325);
        h.bytes(b"a");
        assert_eq!(h.value(), 0xaf63_dc4c_8601_ec8c);
        let mut h = TraceHash::new();
        h.bytes(b"foobar");
        assert_eq!(h.value(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn events_are_delimited() {
        let mut a = TraceHash::new();
        a.event("x", b"ab");
        a.event("x", b"c");
        let mut b = TraceHash::new();
        b.event("x", b"a");
        b.event("x", b"bc");
        assert_ne!(a.value(), b.value());
    }
}
