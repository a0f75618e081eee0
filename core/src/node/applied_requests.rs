//! The request IDs a member applied recently, per proposer, so that a request
//! appended twice is applied once.
//!
//! Why it exists: a follower forwards its proposals to the leader as `MsgProp`,
//! and a network that duplicates that message makes the leader append the same
//! client request twice. Raft cannot tell (both are valid proposals); the apply
//! step can, because every [`RaftRequest`](detcd_proto::detcdpb::RaftRequest)
//! carries a cluster-unique ID: the proposer's member ID (low 16 bits) on top and
//! a per-member sequence below (see `Node::next_request_id`).
//!
//! The window is replicated state: every member applies the same entries, so every
//! member skips the same duplicates. It is part of the application snapshot,
//! because a member that installs a snapshot between the two copies must skip the
//! second one as the others do.
//!
//! Bounds: [`APPLIED_REQUEST_IDS_PER_PROPOSER_MAX`] IDs per proposer (oldest
//! forgotten first) and [`APPLIED_REQUEST_PROPOSERS_MAX`] proposers (the one whose
//! last request applied earliest forgotten first). A duplicate arrives within a few
//! proposals of its original, far inside the window.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Applied request IDs remembered per proposer.
pub const APPLIED_REQUEST_IDS_PER_PROPOSER_MAX: usize = 1024;
/// Proposers whose applied request IDs are remembered.
pub const APPLIED_REQUEST_PROPOSERS_MAX: usize = 256;

/// Bits of a request ID below the proposer's part.
const PROPOSER_SHIFT: u32 = 48;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Window {
    /// In the order applied, oldest first.
    order: VecDeque<u64>,
    ids: BTreeSet<u64>,
    /// Raft index of the last request applied from this proposer.
    last_index: u64,
}

/// See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AppliedRequests {
    windows: BTreeMap<u64, Window>,
}

impl AppliedRequests {
    /// Records request `id` applied at raft `index`. False when it was applied
    /// before (a duplicate: skip it). ID 0 (none) is never a duplicate.
    pub(crate) fn insert(&mut self, id: u64, index: u64) -> bool {
        if id == 0 {
            return true;
        }
        let w = self.windows.entry(id >> PROPOSER_SHIFT).or_default();
        if !w.ids.insert(id) {
            return false;
        }
        w.order.push_back(id);
        w.last_index = index;
        if w.order.len() > APPLIED_REQUEST_IDS_PER_PROPOSER_MAX {
            let oldest = w.order.pop_front().expect("over the bound");
            w.ids.remove(&oldest);
        }
        if self.windows.len() > APPLIED_REQUEST_PROPOSERS_MAX {
            let idlest = self
                .windows
                .iter()
                .min_by_key(|(proposer, w)| (w.last_index, **proposer))
                .map(|(proposer, _)| *proposer)
                .expect("over the bound");
            self.windows.remove(&idlest);
        }
        true
    }

    /// IDs remembered, over all proposers.
    pub(crate) fn len(&self) -> usize {
        self.windows.values().map(|w| w.order.len()).sum()
    }

    /// Appends the codec form: a `u32` proposer count, then per proposer (ascending)
    /// its `u64` ID, its `u64` last index, a `u32` ID count and the IDs (`u64`,
    /// oldest first); little-endian.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.windows.len());
        for (proposer, w) in &self.windows {
            out.extend_from_slice(&proposer.to_le_bytes());
            out.extend_from_slice(&w.last_index.to_le_bytes());
            put_u32(out, w.order.len());
            for id in &w.order {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
    }

    /// Decodes [`encode`](Self::encode)'s form, checking every bound and that each
    /// ID belongs to its proposer.
    pub(crate) fn decode(bytes: &[u8]) -> Result<AppliedRequests, String> {
        let mut at = 0;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let s = bytes
                .get(at..at + n)
                .ok_or_else(|| format!("applied requests truncated at byte {at}"))?;
            at += n;
            Ok(s)
        };
        let u64_of = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
        let count = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        if count > APPLIED_REQUEST_PROPOSERS_MAX {
            return Err(format!("{count} proposers over the bound"));
        }
        let mut windows = BTreeMap::new();
        for _ in 0..count {
            let proposer = u64_of(take(8)?);
            let last_index = u64_of(take(8)?);
            let n = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
            if n > APPLIED_REQUEST_IDS_PER_PROPOSER_MAX {
                return Err(format!("{n} request IDs over the bound"));
            }
            let mut w = Window {
                last_index,
                ..Window::default()
            };
            for _ in 0..n {
                let id = u64_of(take(8)?);
                if id == 0 || id >> PROPOSER_SHIFT != proposer || !w.ids.insert(id) {
                    return Err(format!(
                        "request ID {id:x} out of place under proposer {proposer:x}"
                    ));
                }
                w.order.push_back(id);
            }
            if windows.insert(proposer, w).is_some() {
                return Err(format!("proposer {proposer:x} twice"));
            }
        }
        if at != bytes.len() {
            return Err("trailing bytes after applied requests".to_string());
        }
        Ok(AppliedRequests { windows })
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).expect("bounded count").to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(proposer: u64, seq: u64) -> u64 {
        proposer << PROPOSER_SHIFT | seq
    }

    #[test]
    fn a_repeat_is_refused_once_applied() {
        let mut a = AppliedRequests::default();
        assert!(a.insert(id(1, 7), 10));
        assert!(!a.insert(id(1, 7), 11), "the duplicate is refused");
        assert!(a.insert(id(2, 7), 12), "same sequence, other proposer");
        assert!(a.insert(0, 13) && a.insert(0, 14), "no ID is never a duplicate");
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn windows_are_bounded() {
        let mut a = AppliedRequests::default();
        let per = APPLIED_REQUEST_IDS_PER_PROPOSER_MAX as u64;
        for seq in 1..=per + 5 {
            assert!(a.insert(id(1, seq), seq));
        }
        assert_eq!(a.len(), APPLIED_REQUEST_IDS_PER_PROPOSER_MAX);
        assert!(a.insert(id(1, 1), 10_000), "forgotten past the window");
        assert!(!a.insert(id(1, per + 5), 10_001), "recent ones remembered");
        let mut b = AppliedRequests::default();
        for p in 1..=APPLIED_REQUEST_PROPOSERS_MAX as u64 + 1 {
            assert!(b.insert(id(p, 1), p));
        }
        assert_eq!(b.windows.len(), APPLIED_REQUEST_PROPOSERS_MAX);
        assert!(
            !b.windows.contains_key(&1),
            "the proposer applied earliest goes first"
        );
    }

    #[test]
    fn codec_round_trips_and_checks() {
        let mut a = AppliedRequests::default();
        for (p, seq, index) in [(1, 5, 3), (1, 6, 4), (3, 1, 5)] {
            a.insert(id(p, seq), index);
        }
        let mut bytes = Vec::new();
        a.encode(&mut bytes);
        assert_eq!(AppliedRequests::decode(&bytes), Ok(a.clone()));
        let mut empty = Vec::new();
        AppliedRequests::default().encode(&mut empty);
        assert_eq!(AppliedRequests::decode(&empty), Ok(AppliedRequests::default()));
        assert!(AppliedRequests::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(AppliedRequests::decode(&trailing).is_err());
        // An ID filed under the wrong proposer.
        let mut wrong = bytes.clone();
        wrong[4..12].copy_from_slice(&2u64.to_le_bytes());
        assert!(AppliedRequests::decode(&wrong).is_err());
    }
}
