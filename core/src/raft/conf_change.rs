//! Membership changes: turning a `ConfChangeV2` into a new configuration and
//! progress map, by the rules of joint consensus (Raft thesis ch. 4 and etcd's
//! `confchange.Changer`).
//!
//! The changer works on copies and returns them, so a refused change leaves the
//! tracker untouched; the caller installs the result.

use std::collections::{BTreeMap, BTreeSet};

use detcd_proto::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
};

use super::errors::ConfChangeError;
use super::progress::Progress;
use super::quorum::MajorityConfig;
use super::tracker::TrackerConfig;

/// What a `ConfChangeV2` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChangeKind {
    /// One voter change at most, applied directly.
    Simple,
    /// Enter joint consensus; leave automatically once applied when `auto_leave`.
    EnterJoint { auto_leave: bool },
    /// Leave joint consensus (an empty change with the automatic transition).
    LeaveJoint,
}

/// Classifies a conf change as etcd does: no changes with the automatic transition
/// leaves a joint state; an explicit transition or more than one change enters one.
pub fn classify(cc: &ConfChangeV2) -> ConfChangeKind {
    let transition = cc.transition();
    if cc.changes.is_empty() && transition == ConfChangeTransition::Auto {
        return ConfChangeKind::LeaveJoint;
    }
    if transition != ConfChangeTransition::Auto || cc.changes.len() > 1 {
        let auto_leave = matches!(
            transition,
            ConfChangeTransition::Auto | ConfChangeTransition::JointImplicit
        );
        return ConfChangeKind::EnterJoint { auto_leave };
    }
    ConfChangeKind::Simple
}

/// The single-change v1 form as a v2 change.
pub fn v1_to_v2(cc: &ConfChange) -> ConfChangeV2 {
    let mut single = ConfChangeSingle {
        r#type: 0,
        node_id: cc.node_id,
    };
    single.set_type(cc.r#type());
    ConfChangeV2 {
        transition: ConfChangeTransition::Auto as i32,
        changes: vec![single],
        context: cc.context.clone(),
    }
}

/// Parameters for the progress of members a change adds.
#[derive(Clone, Copy, Debug)]
pub struct Changer {
    /// The leader's last index: new peers are probed from there.
    pub last_index: u64,
    pub inflight_msgs_max: usize,
    pub inflight_bytes_max: u64,
}

type Outcome = Result<(TrackerConfig, BTreeMap<u64, Progress>), ConfChangeError>;

impl Changer {
    /// Applies `cc` to copies of `config` and `progress`.
    pub fn apply(
        &self,
        config: &TrackerConfig,
        progress: &BTreeMap<u64, Progress>,
        cc: &ConfChangeV2,
    ) -> Outcome {
        let mut cfg = config.clone();
        let mut prs = progress.clone();
        match classify(cc) {
            ConfChangeKind::LeaveJoint => self.leave_joint(&mut cfg, &mut prs)?,
            ConfChangeKind::EnterJoint { auto_leave } => {
                if cfg.voters.is_joint() {
                    return Err(ConfChangeError::AlreadyJoint);
                }
                if cfg.voters.incoming.voters.is_empty() {
                    return Err(ConfChangeError::ZeroVoterJoint);
                }
                cfg.voters.outgoing = cfg.voters.incoming.clone();
                self.apply_changes(&mut cfg, &mut prs, &cc.changes)?;
                cfg.auto_leave = auto_leave;
            }
            ConfChangeKind::Simple => {
                if cfg.voters.is_joint() {
                    return Err(ConfChangeError::AlreadyJoint);
                }
                let before = cfg.voters.incoming.voters.clone();
                self.apply_changes(&mut cfg, &mut prs, &cc.changes)?;
                let changed = before.symmetric_difference(&cfg.voters.incoming.voters).count();
                if changed > 1 {
                    return Err(ConfChangeError::MoreThanOneVoterChanged);
                }
            }
        }
        check_consistent(&cfg, &prs);
        Ok((cfg, prs))
    }

    /// Builds the configuration a snapshot or a recovered node describes, by
    /// replaying it as changes (outgoing first, then a joint entry) so the result
    /// obeys the same rules as any other configuration.
    pub fn restore(&self, cs: &ConfState) -> Outcome {
        let empty_cfg = TrackerConfig::default();
        let empty_prs = BTreeMap::new();
        let adds = |voters: &[u64], learners: &[u64]| -> Vec<ConfChangeSingle> {
            let mut out = Vec::new();
            for &id in voters {
                out.push(single(ConfChangeType::ConfChangeAddNode, id));
            }
            for &id in learners {
                out.push(single(ConfChangeType::ConfChangeAddLearnerNode, id));
            }
            out
        };
        if cs.voters_outgoing.is_empty() {
            let mut cfg = empty_cfg;
            let mut prs = empty_prs;
            self.apply_changes_unchecked(&mut cfg, &mut prs, &adds(&cs.voters, &cs.learners))?;
            check_consistent(&cfg, &prs);
            return Ok((cfg, prs));
        }
        // Outgoing voters first, as a plain configuration.
        let mut cfg = empty_cfg;
        let mut prs = empty_prs;
        self.apply_changes_unchecked(&mut cfg, &mut prs, &adds(&cs.voters_outgoing, &[]))?;
        // Then enter the joint state with the incoming side expressed as changes.
        cfg.voters.outgoing = cfg.voters.incoming.clone();
        let mut changes = Vec::new();
        for &id in &cs.voters_outgoing {
            changes.push(single(ConfChangeType::ConfChangeRemoveNode, id));
        }
        changes.extend(adds(&cs.voters, &cs.learners));
        for &id in &cs.learners_next {
            changes.push(single(ConfChangeType::ConfChangeAddLearnerNode, id));
        }
        // Removing every outgoing voter first may briefly leave the incoming half
        // empty; only the final state has to be valid.
        self.apply_changes_unchecked(&mut cfg, &mut prs, &changes)?;
        if cfg.voters.incoming.voters.is_empty() {
            return Err(ConfChangeError::RemovedAllVoters);
        }
        cfg.auto_leave = cs.auto_leave;
        check_consistent(&cfg, &prs);
        Ok((cfg, prs))
    }

    fn leave_joint(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut BTreeMap<u64, Progress>,
    ) -> Result<(), ConfChangeError> {
        if !cfg.voters.is_joint() {
            return Err(ConfChangeError::NotJoint);
        }
        for id in std::mem::take(&mut cfg.learners_next) {
            cfg.learners.insert(id);
            prs.get_mut(&id).expect("learner_next has progress").is_learner = true;
        }
        let outgoing = std::mem::take(&mut cfg.voters.outgoing.voters);
        for id in outgoing {
            if !cfg.voters.incoming.voters.contains(&id) && !cfg.learners.contains(&id) {
                prs.remove(&id);
            }
        }
        cfg.auto_leave = false;
        Ok(())
    }

    fn apply_changes(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut BTreeMap<u64, Progress>,
        changes: &[ConfChangeSingle],
    ) -> Result<(), ConfChangeError> {
        self.apply_changes_unchecked(cfg, prs, changes)?;
        if cfg.voters.incoming.voters.is_empty() {
            return Err(ConfChangeError::RemovedAllVoters);
        }
        Ok(())
    }

    fn apply_changes_unchecked(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut BTreeMap<u64, Progress>,
        changes: &[ConfChangeSingle],
    ) -> Result<(), ConfChangeError> {
        for cc in changes {
            if cc.node_id == 0 {
                return Err(ConfChangeError::ZeroNodeId);
            }
            match cc.r#type() {
                ConfChangeType::ConfChangeAddNode => self.make_voter(cfg, prs, cc.node_id),
                ConfChangeType::ConfChangeAddLearnerNode => self.make_learner(cfg, prs, cc.node_id),
                ConfChangeType::ConfChangeRemoveNode => remove(cfg, prs, cc.node_id),
                ConfChangeType::ConfChangeUpdateNode => {}
            }
        }
        Ok(())
    }

    fn new_progress(&self, is_learner: bool) -> Progress {
        Progress::new(
            self.last_index,
            self.inflight_msgs_max,
            self.inflight_bytes_max,
            is_learner,
        )
    }

    fn make_voter(&self, cfg: &mut TrackerConfig, prs: &mut BTreeMap<u64, Progress>, id: u64) {
        match prs.get_mut(&id) {
            Some(pr) => pr.is_learner = false,
            None => {
                prs.insert(id, self.new_progress(false));
            }
        }
        cfg.learners.remove(&id);
        cfg.learners_next.remove(&id);
        cfg.voters.incoming.voters.insert(id);
    }

    fn make_learner(&self, cfg: &mut TrackerConfig, prs: &mut BTreeMap<u64, Progress>, id: u64) {
        let pr = match prs.get(&id) {
            None => self.new_progress(true),
            Some(pr) if pr.is_learner => return,
            Some(pr) => pr.clone(),
        };
        // Demotion: drop it as a voter first, keeping its progress.
        remove(cfg, prs, id);
        if cfg.voters.outgoing.voters.contains(&id) {
            // Still an outgoing voter: it may only become a learner on leaving.
            cfg.learners_next.insert(id);
            prs.insert(id, pr);
        } else {
            let mut pr = pr;
            pr.is_learner = true;
            cfg.learners.insert(id);
            prs.insert(id, pr);
        }
    }
}

fn remove(cfg: &mut TrackerConfig, prs: &mut BTreeMap<u64, Progress>, id: u64) {
    if !prs.contains_key(&id) {
        return;
    }
    cfg.voters.incoming.voters.remove(&id);
    cfg.learners.remove(&id);
    cfg.learners_next.remove(&id);
    // An outgoing voter keeps its progress until the joint state is left.
    if !cfg.voters.outgoing.voters.contains(&id) {
        prs.remove(&id);
    }
}

fn single(kind: ConfChangeType, node_id: u64) -> ConfChangeSingle {
    let mut cc = ConfChangeSingle { r#type: 0, node_id };
    cc.set_type(kind);
    cc
}

/// Every member has progress, every progress belongs to a member, and the learner
/// flags agree. A failure here is a bug in the changer, not in the input.
fn check_consistent(cfg: &TrackerConfig, prs: &BTreeMap<u64, Progress>) {
    if let Err(e) = cfg.check() {
        panic!("conf change produced an invalid config: {e}");
    }
    let members: BTreeSet<u64> = cfg.members();
    let tracked: BTreeSet<u64> = prs.keys().copied().collect();
    assert_eq!(members, tracked, "members and progress disagree");
    for (id, pr) in prs {
        assert_eq!(pr.is_learner, cfg.learners.contains(id), "learner flag of {id}");
    }
}

/// The voters of a majority config as a sorted list, for rendering.
pub fn voter_list(m: &MajorityConfig) -> Vec<u64> {
    m.voters.iter().copied().collect()
}
