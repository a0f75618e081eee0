//! Quorum arithmetic: majority configurations, joint configurations, the committed
//! index they imply and the outcome of a vote.
//!
//! Kept apart from progress tracking so that the rules that decide safety (what is
//! committed, who won) are small enough to read in one sitting and test in isolation.

use std::collections::{BTreeMap, BTreeSet};

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Not enough votes either way yet.
    Pending,
    /// A quorum rejected.
    Lost,
    /// A quorum granted.
    Won,
}

/// A set of voters whose majority decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    pub voters: BTreeSet<u64>,
}

impl MajorityConfig {
    /// The largest index acknowledged by a majority, given each voter's acknowledged
    /// index. An empty config returns `u64::MAX` so that in a joint configuration
    /// with an empty half the other half alone decides.
    pub fn committed_index(&self, acked: &impl Fn(u64) -> Option<u64>) -> u64 {
        if self.voters.is_empty() {
            return u64::MAX;
        }
        let mut indexes: Vec<u64> = self.voters.iter().map(|&id| acked(id).unwrap_or(0)).collect();
        indexes.sort_unstable();
        // With n sorted ascending, the element at n - (n/2 + 1) is held by a majority.
        let quorum = indexes.len() / 2 + 1;
        indexes[indexes.len() - quorum]
    }

    /// Counts votes; a missing vote is pending. An empty config wins, by the same
    /// convention as `committed_index`.
    pub fn vote_result(&self, votes: &BTreeMap<u64, bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut granted, mut missing) = (0, 0);
        for id in &self.voters {
            match votes.get(id) {
                Some(true) => granted += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let quorum = self.voters.len() / 2 + 1;
        if granted >= quorum {
            VoteResult::Won
        } else if granted + missing >= quorum {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

/// Two majority configurations that must both agree: `incoming` is the configuration
/// being moved to, `outgoing` the one being left (empty outside joint consensus).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JointConfig {
    pub incoming: MajorityConfig,
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    /// All voters of either half, ascending.
    pub fn ids(&self) -> BTreeSet<u64> {
        self.incoming
            .voters
            .union(&self.outgoing.voters)
            .copied()
            .collect()
    }

    /// True when in joint consensus.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.voters.is_empty()
    }

    /// The index committed by both halves.
    pub fn committed_index(&self, acked: &impl Fn(u64) -> Option<u64>) -> u64 {
        self.incoming
            .committed_index(acked)
            .min(self.outgoing.committed_index(acked))
    }

    /// Won only if both halves won; lost if either lost.
    pub fn vote_result(&self, votes: &BTreeMap<u64, bool>) -> VoteResult {
        let a = self.incoming.vote_result(votes);
        let b = self.outgoing.vote_result(votes);
        match (a, b) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn majority(ids: &[u64]) -> MajorityConfig {
        MajorityConfig {
            voters: ids.iter().copied().collect(),
        }
    }

    #[test]
    fn committed_index_is_the_majority_floor() {
        let acked = |id: u64| Some([0, 5, 3, 9, 1, 7][id as usize]);
        assert_eq!(majority(&[1]).committed_index(&acked), 5);
        assert_eq!(majority(&[1, 2]).committed_index(&acked), 3);
        assert_eq!(majority(&[1, 2, 3]).committed_index(&acked), 5);
        assert_eq!(majority(&[1, 2, 3, 4]).committed_index(&acked), 3);
        assert_eq!(majority(&[1, 2, 3, 4, 5]).committed_index(&acked), 5);
        assert_eq!(majority(&[]).committed_index(&acked), u64::MAX);
        let joint = JointConfig {
            incoming: majority(&[1, 2, 3]),
            outgoing: majority(&[2, 4]),
        };
        assert_eq!(joint.committed_index(&acked), 1);
    }

    #[test]
    fn votes_need_every_half() {
        let votes: BTreeMap<u64, bool> = [(1, true), (2, true), (3, false)].into();
        assert_eq!(majority(&[1, 2, 3]).vote_result(&votes), VoteResult::Won);
        assert_eq!(majority(&[1, 3, 4]).vote_result(&votes), VoteResult::Pending);
        assert_eq!(majority(&[3, 4, 5]).vote_result(&votes), VoteResult::Pending);
        assert_eq!(majority(&[3]).vote_result(&votes), VoteResult::Lost);
        let joint = JointConfig {
            incoming: majority(&[1, 2]),
            outgoing: majority(&[3]),
        };
        assert_eq!(joint.vote_result(&votes), VoteResult::Lost);
    }
}
