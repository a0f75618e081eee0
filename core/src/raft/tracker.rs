//! The leader's bookkeeping over the whole membership: the active configuration
//! (voters, possibly joint, and learners), one `Progress` per member and the votes
//! of the current election.
//!
//! It answers the three questions raft asks of a configuration: what is committed,
//! who won, and is a quorum still in contact.

use std::collections::{BTreeMap, BTreeSet};

use detcd_proto::raftpb::ConfState;

use super::progress::Progress;
use super::quorum::{JointConfig, VoteResult};
use crate::mutation::{is_active, Mutation};

/// A membership configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerConfig {
    pub voters: JointConfig,
    /// Learners: receive the log, never vote, never count toward commit.
    pub learners: BTreeSet<u64>,
    /// Voters of the outgoing half that become learners when the joint state is
    /// left (a node cannot be both voter and learner at once).
    pub learners_next: BTreeSet<u64>,
    /// Leave the joint configuration automatically once it is applied.
    pub auto_leave: bool,
}

impl TrackerConfig {
    /// The wire form.
    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming.voters.iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
            voters_outgoing: self.voters.outgoing.voters.iter().copied().collect(),
            learners_next: self.learners_next.iter().copied().collect(),
            auto_leave: self.auto_leave,
        }
    }

    /// Every member: voters of both halves, learners and future learners.
    pub fn members(&self) -> BTreeSet<u64> {
        let mut all = self.voters.ids();
        all.extend(self.learners.iter().copied());
        all.extend(self.learners_next.iter().copied());
        all
    }

    /// Structural invariants of a configuration, as a description of the first
    /// violation.
    pub fn check(&self) -> Result<(), String> {
        if let Some(id) = self.learners.iter().find(|id| self.voters.ids().contains(id)) {
            return Err(format!("{id} is both learner and voter"));
        }
        if let Some(id) = self
            .learners_next
            .iter()
            .find(|id| !self.voters.outgoing.voters.contains(id))
        {
            return Err(format!("{id} is in learners_next but not an outgoing voter"));
        }
        if let Some(id) = self.learners_next.iter().find(|id| self.learners.contains(id)) {
            return Err(format!("{id} is in learners and learners_next"));
        }
        if !self.voters.is_joint() && (self.auto_leave || !self.learners_next.is_empty()) {
            return Err("auto_leave or learners_next outside a joint config".to_string());
        }
        Ok(())
    }
}

/// Configuration, per-member progress and election votes.
#[derive(Clone, Debug)]
pub struct ProgressTracker {
    pub config: TrackerConfig,
    pub progress: BTreeMap<u64, Progress>,
    pub votes: BTreeMap<u64, bool>,
}

impl ProgressTracker {
    pub fn new() -> ProgressTracker {
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
        }
    }

    /// The highest index a quorum of voters holds.
    pub fn committed(&self) -> u64 {
        let progress = &self.progress;
        if is_active(Mutation::LearnerCountsTowardCommit)
            && !self.config.learners.is_empty()
            && !self.config.voters.is_joint()
        {
            // Planted bug: the quorum is sized by the voters but picked from every
            // tracked member's match, learners included, so a leader and a learner
            // can commit without a majority of voters.
            let mut matched: Vec<u64> = self
                .config
                .voters
                .incoming
                .voters
                .iter()
                .chain(self.config.learners.iter())
                .map(|id| progress.get(id).map_or(0, |p| p.matched))
                .collect();
            matched.sort_unstable();
            let quorum = self.config.voters.incoming.voters.len() / 2 + 1;
            return matched[matched.len() - quorum];
        }
        self.config
            .voters
            .committed_index(&|id| progress.get(&id).map(|p| p.matched))
    }

    /// True when exactly one voter and no joint state: that voter decides alone.
    pub fn is_singleton(&self) -> bool {
        self.config.voters.incoming.voters.len() == 1 && !self.config.voters.is_joint()
    }

    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records the first vote from `id` (later ones are duplicates and ignored).
    pub fn record_vote(&mut self, id: u64, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    pub fn tally(&self) -> VoteResult {
        self.config.voters.vote_result(&self.votes)
    }

    /// True when a quorum of voters (counting `self_id`) was recently active.
    pub fn quorum_active(&self, self_id: u64) -> bool {
        let active: BTreeMap<u64, bool> = self
            .progress
            .iter()
            .filter(|(id, p)| !p.is_learner || **id == self_id)
            .map(|(&id, p)| (id, id == self_id || p.recent_active))
            .collect();
        self.config.voters.vote_result(&active) == VoteResult::Won
    }
}

impl Default for ProgressTracker {
    fn default() -> Self {
        ProgressTracker::new()
    }
}
