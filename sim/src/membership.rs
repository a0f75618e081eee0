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

use crate::cluster::{outcome_unknown, Cluster, Route};
use crate::options::FaultKind;

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
    /// What the operator did.
    pub(crate) counters: MembershipCounters,
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

impl Operator {
    /// Schedules the operator's first cycle (a seed with the `membership` fault).
    pub(crate) fn start_membership(&mut self, sim: &mut impl Cluster) {
        if sim.opts().faults.has(FaultKind::Membership) {
            let interval = sim.opts().membership_interval_ms;
            let at = sim.now_us() + sim.rng().range(1, interval + 1) * 1000;
            self.operator_wake_at(sim, at);
        }
    }

    fn operator_wake_at(&mut self, sim: &mut impl Cluster, at_us: u64) {
        self.token += 1;
        let token = self.token;
        sim.wake_operator(at_us, token);
    }

    /// A retry after an error: one to three election timeouts later.
    fn operator_retry(&mut self, sim: &mut impl Cluster) {
        self.counters.retries += 1;
        let et = sim.opts().election_timeout_ms() * 1000;
        let at = sim.now_us() + sim.rng().range(et, 3 * et + 1);
        self.operator_wake_at(sim, at);
    }

    pub(crate) fn operator_wake(&mut self, sim: &mut impl Cluster, token: u64) {
        if token != self.token || sim.failed() {
            return;
        }
        if let Some(request_id) = self.request.take() {
            // Timed out: the outcome is unknown.
            sim.forget(request_id);
            self.operator_result(sim, Err(error::TIMEOUT));
            return;
        }
        if self.step == Step::Idle {
            if !sim.faults_active() {
                return; // no new cycles after the heal
            }
            self.joiners += 1;
            let url = format!("http://j{}:2380", self.joiners);
            self.step = Step::Add { url };
        }
        let request = match &self.step {
            Step::Idle => return,
            Step::Add { url } => Request::MemberAdd(MemberAddRequest {
                peer_ur_ls: vec![url.clone()],
                is_learner: true,
            }),
            Step::FindAdded { .. } => Request::MemberList(MemberListRequest { linearizable: true }),
            Step::Promote { id } => Request::MemberPromote(MemberPromoteRequest { id: *id }),
            Step::Remove { id, .. } => Request::MemberRemove(MemberRemoveRequest { id: *id }),
        };
        let live: Vec<u64> = sim
            .members()
            .into_iter()
            .filter(|id| sim.is_up(*id) && !sim.is_removed(*id))
            .collect();
        if live.is_empty() {
            return self.operator_retry(sim);
        }
        let target = live[sim.rng().range(0, live.len() as u64) as usize];
        self.counters.requests += 1;
        let request_id = sim.submit(target, request, Route::Operator, sim.default_credentials());
        self.request = Some(request_id);
        let timeout = sim
            .opts()
            .request_timeout_ms
            .max(sim.opts().election_timeout_ms())
            * 2
            * 1000;
        self.operator_wake_at(sim, sim.now_us() + timeout);
    }

    /// The answer to the operator's request in flight.
    pub(crate) fn operator_response(
        &mut self,
        sim: &mut impl Cluster,
        request_id: u64,
        result: Result<Response, EtcdError>,
    ) {
        if self.request != Some(request_id) {
            return;
        }
        self.request = None;
        self.token += 1; // cancels the timeout
        self.operator_result(sim, result);
    }

    fn operator_result(&mut self, sim: &mut impl Cluster, result: Result<Response, EtcdError>) {
        let et = sim.opts().election_timeout_ms() * 1000;
        match (self.step.clone(), result) {
            (Step::Idle, _) => {}
            (Step::Add { .. }, Ok(Response::MemberAdd(r))) => {
                let Some(member) = r.member else {
                    return sim.fail("member add answered without the member".to_string());
                };
                self.learner_added(sim, &member, &r.members);
            }
            (Step::Add { url }, Err(e)) if outcome_unknown(&e) || e == error::PEER_URL_EXISTS => {
                self.step = Step::FindAdded { url };
                self.operator_retry(sim);
            }
            (Step::FindAdded { url }, Ok(Response::MemberList(r))) => {
                match r.members.iter().find(|m| m.peer_ur_ls.contains(&url)) {
                    Some(member) => {
                        let member = member.clone();
                        self.learner_added(sim, &member, &r.members);
                    }
                    None => {
                        self.step = Step::Add { url };
                        self.operator_retry(sim);
                    }
                }
            }
            (Step::Promote { id }, Ok(Response::MemberPromote(r))) => {
                self.counters.promoted += 1;
                self.voters = voters(&r.members);
                self.choose_removal(sim, id);
            }
            (Step::Promote { id }, Err(e)) if e == error::MEMBER_NOT_LEARNER => {
                // An earlier promote whose answer was lost went through.
                self.counters.promoted += 1;
                self.choose_removal(sim, id);
            }
            (Step::Promote { .. }, Err(e)) if e == error::MEMBER_NOT_FOUND => {
                sim.fail("member promote: the learner the operator added is not a member".to_string());
            }
            (Step::Remove { id, leader }, Ok(Response::MemberRemove(_))) => {
                self.member_removed(sim, id, leader)
            }
            (Step::Remove { id, leader }, Err(e)) if e == error::MEMBER_NOT_FOUND => {
                self.member_removed(sim, id, leader);
            }
            (
                Step::Promote { .. } | Step::Remove { .. } | Step::Add { .. } | Step::FindAdded { .. },
                Err(_),
            ) => {
                // Not ready, no leader, not enough started members, timed out:
                // the same step again a little later.
                self.operator_retry(sim);
            }
            (step, Ok(other)) => {
                sim.fail(format!(
                    "operator step {step:?} got an answer of the wrong kind: {other:?}"
                ));
            }
        }
        if self.step == Step::Idle && !sim.failed() {
            let interval = sim.opts().membership_interval_ms;
            let next = sim.rng().range(1, 2 * interval + 1) * 1000;
            self.operator_wake_at(sim, sim.now_us() + next.max(et));
        }
    }

    /// A learner was added (or found added): start its member and plan the promote.
    fn learner_added(&mut self, sim: &mut impl Cluster, member: &Member, members: &[Member]) {
        let id = member.id;
        if !sim.has_member(id) {
            self.counters.learners_added += 1;
            let name = member.peer_ur_ls.first().map_or("joiner", |u| {
                u.trim_start_matches("http://").trim_end_matches(":2380")
            });
            let name = name.to_string();
            sim.add_joiner(id, &name, members.to_vec());
            sim.log(format_args!("operator: learner {id:x} added and started"));
        }
        self.voters = voters(members);
        self.step = Step::Promote { id };
        // Give it time to catch up (sometimes long, so learners live through faults).
        let et = sim.opts().election_timeout_ms() * 1000;
        let hold = sim.opts().membership_interval_ms * 1000;
        let at = sim.now_us() + sim.rng().range(2 * et, 2 * et + hold);
        self.operator_wake_at(sim, at);
    }

    fn choose_removal(&mut self, sim: &mut impl Cluster, promoted: u64) {
        if !self.voters.contains(&promoted) {
            self.voters.push(promoted);
        }
        let mut candidates: Vec<u64> = self
            .voters
            .iter()
            .copied()
            .filter(|&v| v != promoted && sim.has_member(v) && !sim.is_removed(v))
            .collect();
        if candidates.is_empty() {
            self.step = Step::Idle;
            return;
        }
        let leader = sim.leader();
        if self.voters.len() <= 2 {
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
                self.step = Step::Promote { id: promoted };
                return self.operator_retry(sim);
            }
        }
        // Half the time the leader, if it is a candidate.
        let id = match leader {
            Some(l) if candidates.contains(&l) && sim.rng().chance(1, 2) => l,
            _ => candidates[sim.rng().range(0, candidates.len() as u64) as usize],
        };
        self.step = Step::Remove {
            id,
            leader: leader == Some(id),
        };
        self.operator_wake_at(sim, sim.now_us());
    }

    /// The removal is committed: the operator retires that member (its process stops
    /// after the delay a removed member keeps running in production).
    fn member_removed(&mut self, sim: &mut impl Cluster, id: u64, leader: bool) {
        self.counters.removed += 1;
        if leader {
            self.counters.leaders_removed += 1;
        }
        sim.log(format_args!("operator: member {id:x} removed, retired"));
        sim.retire(id);
        self.step = Step::Idle;
    }
}

fn voters(members: &[Member]) -> Vec<u64> {
    members.iter().filter(|m| !m.is_learner).map(|m| m.id).collect()
}
