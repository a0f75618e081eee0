//! The `membership` fault: an operator changing the cluster while it is faulty.
//!
//! In a seed with the `membership` kind, an operator client runs cycles of etcd's
//! runtime reconfiguration, as a human with `etcdctl member` would:
//!
//! 1. `member add --learner` with a fresh peer URL, then starts the new member
//!    (`NodeStart::Join`, `--initial-cluster-state existing`) with the member list
//!    the add returned;
//! 2. waits, then `member promote` until the learner has caught up (etcd refuses
//!    with "learner not ready" before; the operator retries);
//! 3. `member remove` of a voter other than the new one, often the leader, then
//!    stops that member's process for good.
//!
//! Each request is retried the way an operator would: after an error or a timeout
//! the same step again, against another member; an add whose outcome is unknown
//! is looked up with a linearizable `member list` (by its peer URL) before being
//! sent again, so a member is never added twice. New cycles start only during the
//! faulty phase; a cycle under way at the heal is finished during liveness, so the
//! final cluster has as many voters as it started with (or one more), all live.

use detcd_core::error::{self, EtcdError};
use detcd_core::node::{Request, Response};
use detcd_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
};

use crate::options::FaultKind;
use crate::sim::{outcome_unknown, Event, Route, Sim};

/// Where the operator is in its cycle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Step {
    #[default]
    Idle,
    Add {
        url: String,
    },
    /// The add's outcome is unknown: look the URL up before adding again.
    FindAdded {
        url: String,
    },
    Promote {
        id: u64,
    },
    Remove {
        id: u64,
        /// Whether it was the leader when the operator chose it.
        leader: bool,
    },
}

/// The operator's state (one per run).
#[derive(Clone, Debug, Default)]
pub(crate) struct Operator {
    step: Step,
    /// The request in flight, if any.
    request: Option<u64>,
    /// Invalidates timeouts of answered requests.
    token: u64,
    /// How many members the operator has added (names the next peer URL).
    joiners: u64,
    /// The voters as the last member answer listed them.
    voters: Vec<u64>,
}

/// What the operator did, for the run's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipCounters {
    pub requests: u64,
    pub retries: u64,
    pub learners_added: u64,
    pub promoted: u64,
    pub removed: u64,
    pub leaders_removed: u64,
}

impl Sim {
    /// Schedules the operator's first cycle (a seed with the `membership` fault).
    pub(crate) fn start_membership(&mut self) {
        if self.opts.faults.has(FaultKind::Membership) {
            let interval = self.opts.membership_interval_ms;
            let at = self.now_us + self.rng().range(1, interval + 1) * 1000;
            self.operator_wake_at(at);
        }
    }

    fn operator_wake_at(&mut self, at_us: u64) {
        self.operator.token += 1;
        let token = self.operator.token;
        self.queue_push(at_us, Event::OperatorWake { token });
    }

    /// A retry after an error: one to three election timeouts later.
    fn operator_retry(&mut self) {
        self.membership.retries += 1;
        let et = self.opts.election_timeout_ms() * 1000;
        let at = self.now_us + self.rng().range(et, 3 * et + 1);
        self.operator_wake_at(at);
    }

    pub(crate) fn operator_wake(&mut self, token: u64) {
        if token != self.operator.token || self.failure.is_some() {
            return;
        }
        if let Some(request_id) = self.operator.request.take() {
            // Timed out: the outcome is unknown.
            self.routes.remove(&request_id);
            self.operator_result(Err(error::TIMEOUT));
            return;
        }
        if self.operator.step == Step::Idle {
            if !self.faults_active() {
                return; // no new cycles after the heal
            }
            self.operator.joiners += 1;
            let url = format!("http://j{}:2380", self.operator.joiners);
            self.operator.step = Step::Add { url };
        }
        let request = match &self.operator.step {
            Step::Idle => return,
            Step::Add { url } => Request::MemberAdd(MemberAddRequest {
                peer_ur_ls: vec![url.clone()],
                is_learner: true,
            }),
            Step::FindAdded { .. } => Request::MemberList(MemberListRequest { linearizable: true }),
            Step::Promote { id } => Request::MemberPromote(MemberPromoteRequest { id: *id }),
            Step::Remove { id, .. } => Request::MemberRemove(MemberRemoveRequest { id: *id }),
        };
        let live: Vec<u64> = self
            .member_ids()
            .into_iter()
            .filter(|id| self.is_up(*id) && !self.hosts[id].removed)
            .collect();
        if live.is_empty() {
            return self.operator_retry();
        }
        let target = live[self.rng().range(0, live.len() as u64) as usize];
        self.membership.requests += 1;
        let request_id = self.submit(target, request, Route::Operator);
        self.operator.request = Some(request_id);
        let timeout = self.opts.request_timeout_ms.max(self.opts.election_timeout_ms()) * 2 * 1000;
        self.operator_wake_at(self.now_us + timeout);
    }

    /// The answer to the operator's request in flight.
    pub(crate) fn operator_response(&mut self, request_id: u64, result: Result<Response, EtcdError>) {
        if self.operator.request != Some(request_id) {
            return;
        }
        self.operator.request = None;
        self.operator.token += 1; // cancels the timeout
        self.operator_result(result);
    }

    fn operator_result(&mut self, result: Result<Response, EtcdError>) {
        let et = self.opts.election_timeout_ms() * 1000;
        match (self.operator.step.clone(), result) {
            (Step::Idle, _) => {}
            (Step::Add { .. }, Ok(Response::MemberAdd(r))) => {
                let Some(member) = r.member else {
                    return self.fail("member add answered without the member".to_string());
                };
                self.learner_added(&member, &r.members);
            }
            (Step::Add { url }, Err(e)) if outcome_unknown(&e) || e == error::PEER_URL_EXISTS => {
                self.operator.step = Step::FindAdded { url };
                self.operator_retry();
            }
            (Step::FindAdded { url }, Ok(Response::MemberList(r))) => {
                match r.members.iter().find(|m| m.peer_ur_ls.contains(&url)) {
                    Some(member) => {
                        let member = member.clone();
                        self.learner_added(&member, &r.members);
                    }
                    None => {
                        self.operator.step = Step::Add { url };
                        self.operator_retry();
                    }
                }
            }
            (Step::Promote { id }, Ok(Response::MemberPromote(r))) => {
                self.membership.promoted += 1;
                self.operator.voters = voters(&r.members);
                self.choose_removal(id);
            }
            (Step::Promote { id }, Err(e)) if e == error::MEMBER_NOT_LEARNER => {
                // An earlier promote whose answer was lost went through.
                self.membership.promoted += 1;
                self.choose_removal(id);
            }
            (Step::Promote { .. }, Err(e)) if e == error::MEMBER_NOT_FOUND => {
                self.fail("member promote: the learner the operator added is not a member".to_string());
            }
            (Step::Remove { id, leader }, Ok(Response::MemberRemove(_))) => self.member_removed(id, leader),
            (Step::Remove { id, leader }, Err(e)) if e == error::MEMBER_NOT_FOUND => {
                self.member_removed(id, leader);
            }
            (
                Step::Promote { .. } | Step::Remove { .. } | Step::Add { .. } | Step::FindAdded { .. },
                Err(_),
            ) => {
                // Not ready, no leader, not enough started members, timed out:
                // the same step again a little later.
                self.operator_retry();
            }
            (step, Ok(other)) => {
                self.fail(format!(
                    "operator step {step:?} got an answer of the wrong kind: {other:?}"
                ));
            }
        }
        if self.operator.step == Step::Idle && self.failure.is_none() {
            let interval = self.opts.membership_interval_ms;
            let next = self.rng().range(1, 2 * interval + 1) * 1000;
            self.operator_wake_at(self.now_us + next.max(et));
        }
    }

    /// A learner was added (or found added): start its member and plan the promote.
    fn learner_added(&mut self, member: &Member, members: &[Member]) {
        let id = member.id;
        if !self.hosts.contains_key(&id) {
            self.membership.learners_added += 1;
            let name = member.peer_ur_ls.first().map_or("joiner", |u| {
                u.trim_start_matches("http://").trim_end_matches(":2380")
            });
            let name = name.to_string();
            self.add_joiner(id, &name, members.to_vec());
            self.log(format_args!("operator: learner {id:x} added and started"));
        }
        self.operator.voters = voters(members);
        self.operator.step = Step::Promote { id };
        // Give it time to catch up (sometimes long, so learners live through faults).
        let et = self.opts.election_timeout_ms() * 1000;
        let hold = self.opts.membership_interval_ms * 1000;
        let at = self.now_us + self.rng().range(2 * et, 2 * et + hold);
        self.operator_wake_at(at);
    }

    fn choose_removal(&mut self, promoted: u64) {
        if !self.operator.voters.contains(&promoted) {
            self.operator.voters.push(promoted);
        }
        let mut candidates: Vec<u64> = self
            .operator
            .voters
            .iter()
            .copied()
            .filter(|&v| v != promoted && self.hosts.get(&v).is_some_and(|h| !h.removed))
            .collect();
        if candidates.is_empty() {
            self.operator.step = Step::Idle;
            return;
        }
        let leader = self.leader();
        if self.operator.voters.len() <= 2 {
            // Two voters: removing the leader can leave the other unable to ever
            // learn that the removal committed (etcd's config changes take effect
            // when applied), with a two-member configuration and one member:
            // etcd's docs warn against it, so the operator removes the follower,
            // and waits until there is a leader to tell which one that is.
            match leader {
                Some(l) => candidates.retain(|&c| c != l),
                None => candidates.clear(),
            }
            if candidates.is_empty() {
                self.operator.step = Step::Promote { id: promoted };
                return self.operator_retry();
            }
        }
        // Half the time the leader, if it is a candidate.
        let id = match leader {
            Some(l) if candidates.contains(&l) && self.rng().chance(1, 2) => l,
            _ => candidates[self.rng().range(0, candidates.len() as u64) as usize],
        };
        self.operator.step = Step::Remove {
            id,
            leader: leader == Some(id),
        };
        self.operator_wake_at(self.now_us);
    }

    /// The removal is committed: the operator stops that member's process for good.
    fn member_removed(&mut self, id: u64, leader: bool) {
        self.membership.removed += 1;
        if leader {
            self.membership.leaders_removed += 1;
        }
        self.log(format_args!("operator: member {id:x} removed and stopped"));
        self.retire(id);
        self.operator.step = Step::Idle;
    }
}

fn voters(members: &[Member]) -> Vec<u64> {
    members.iter().filter(|m| !m.is_learner).map(|m| m.id).collect()
}
