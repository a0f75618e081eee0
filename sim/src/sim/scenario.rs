//! The scenario API: what a test scenario asks of a run (send a request and
//! wait for its answer, who leads) and what the run reports about itself.

use std::collections::BTreeSet;

use detcd_core::error::EtcdError;
use detcd_core::node::{Request, Response};
use detcd_core::raft::Role;

use super::{Phase, Sim};
use crate::cluster::Route;
use crate::disk::Disk;
use crate::membership::MembershipCounters;

impl Sim {
    /// Scenario API: sends `request` to `member`; the answer appears in
    /// [`Sim::result`] under the returned id.
    pub fn request(&mut self, member: u64, request: Request) -> u64 {
        self.submit(member, request, Route::Scenario)
    }

    pub fn result(&self, request_id: u64) -> Option<&Result<Response, EtcdError>> {
        self.scenario_results.get(&request_id)
    }

    /// Runs until `request_id` is answered or `timeout_ms` passes.
    pub fn wait(&mut self, request_id: u64, timeout_ms: u64) -> Option<Result<Response, EtcdError>> {
        let deadline = self.now_us + timeout_ms * 1000;
        while self.failure.is_none() && self.now_us < deadline {
            if let Some(r) = self.scenario_results.remove(&request_id) {
                return Some(r);
            }
            let step = (self.now_us + 1000).min(deadline);
            self.run_until(step);
        }
        self.scenario_results.remove(&request_id)
    }

    /// The current leader that every running member agrees on, if any.
    pub fn leader(&self) -> Option<u64> {
        let leaders: BTreeSet<u64> = self
            .hosts
            .values()
            .filter_map(|h| h.node.as_ref())
            .filter(|n| n.soft_state().role == Role::Leader)
            .map(|n| n.member_id())
            .collect();
        if leaders.len() == 1 {
            leaders.into_iter().next()
        } else {
            None
        }
    }

    pub fn invariant_checks(&self) -> u64 {
        self.invariants.checks
    }

    pub fn disk_bytes(&self) -> usize {
        self.hosts
            .values()
            .map(|h| {
                h.storage
                    .as_ref()
                    .map(|s| s.wal().fs().disk().bytes())
                    .or(h.parked_disk.as_ref().map(Disk::bytes))
                    .unwrap_or(0)
            })
            .sum()
    }

    /// What the membership operator did.
    pub fn membership(&self) -> &MembershipCounters {
        &self.operator.counters
    }

    pub fn phase_is_done(&self) -> bool {
        self.phase == Phase::Done
    }
}
