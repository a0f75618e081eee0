//! Requests that end without an answer: a timeout or an Unavailable error is an
//! unknown outcome (the request may yet be applied, and the history keeps the
//! write open), any other error a definite failure (never applied); each side
//! workload learns which it was. And the counts of the three outcomes.

use detcd_core::error::EtcdError;
use detcd_core::node::Response;

use super::client::Pending;
use super::Workload;
use crate::auth_workload::Outcome;
use crate::cluster::{outcome_unknown, Cluster};

impl Workload {
    /// Counts an answer as ok, unknown or failed.
    pub(super) fn count(&mut self, result: &Result<Response, EtcdError>) {
        match result {
            Ok(_) => self.ops_ok += 1,
            Err(e) if outcome_unknown(e) => self.ops_unknown += 1,
            Err(_) => self.ops_failed += 1,
        }
    }

    /// A request timed out or failed as Unavailable: it may or may not have been applied.
    pub(super) fn settle_unknown(&mut self, sim: &mut impl Cluster, pending: &Pending) {
        self.ops_unknown += 1;
        self.settle_recipe(sim, pending);
        if let Pending::Kv(id) = pending {
            let at = sim.now_us();
            self.history.fail_unknown(*id, at);
        }
        self.settle_auth(sim, pending, Outcome::Unknown);
    }

    /// A request failed for sure (or was never sent).
    pub(super) fn settle_definite(&mut self, sim: &mut impl Cluster, pending: &Pending) {
        self.ops_failed += 1;
        self.settle_recipe(sim, pending);
        if let Pending::Kv(id) = pending {
            self.history.fail_definite(*id);
        }
        if let (Pending::V2(p), Some(v2)) = (pending, self.v2.as_mut()) {
            v2.not_sent(p);
        }
        self.settle_auth(sim, pending, Outcome::NotSent);
    }

    /// A recipe request timed out or was never sent: its recipe fails.
    fn settle_recipe(&mut self, sim: &mut impl Cluster, pending: &Pending) {
        if let Pending::Recipe { client } = *pending {
            let failed = detcd_core::error::TIMEOUT;
            let _ = self.recipe_answer(sim, client, Err(failed));
        }
    }

    fn settle_auth(&mut self, sim: &mut impl Cluster, pending: &Pending, outcome: Outcome<'_>) {
        if let (Pending::Auth(p), Some(auth)) = (pending, self.auth.as_mut()) {
            auth.settle(p, outcome, sim.now_us());
        }
    }
}
