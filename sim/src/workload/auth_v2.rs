//! The auth and v2 workloads' turns in a client's requests (`--auth`, `--v2`):
//! which requests they take, and what a member's answer to the auth user's
//! serializable read tells the auth checker.

use detcd_core::node::Request;

use super::client::{Outgoing, Pending};
use super::Workload;
use crate::auth_workload::AuthPending;
use crate::cluster::Cluster;

impl Workload {
    /// The auth workload's next request for `client`, if it has one: the admin's
    /// always, a third of the others' requests as the user.
    pub(super) fn auth_op(&mut self, sim: &mut impl Cluster, client: usize) -> Option<Outgoing> {
        self.auth.as_ref()?;
        let now = sim.now_us();
        let admin = client == 0;
        if !admin && !self.rng.chance(1, 3) {
            return None;
        }
        let w = &mut *self;
        let auth = w.auth.as_mut()?;
        let (request, pending, credentials) = if admin {
            auth.admin_op(&mut w.rng, now)
        } else {
            auth.user_op(&mut w.rng, now)
        };
        let serializable = matches!(&request, Request::Range(r) if r.serializable);
        Some((request, Pending::Auth(pending), serializable, credentials))
    }

    /// The v2 workload's next request for `client` to `member`, for a third of
    /// the requests (nothing drawn without `--v2`).
    pub(super) fn v2_op(
        &mut self,
        sim: &mut impl Cluster,
        client: usize,
        member: u64,
    ) -> Option<(Request, Pending)> {
        self.v2.as_ref()?;
        if !self.rng.chance(1, 3) {
            return None;
        }
        let (now, now_us) = (sim.wall_ms(member), sim.now_us());
        let w = &mut *self;
        let (request, pending) = w.v2.as_mut()?.op(&mut w.rng, client, now, now_us);
        Some((request, Pending::V2(pending)))
    }

    /// `member` answers `request_id`, a serializable read of `client`: if it is the
    /// auth workload user's, the checker learns what the member's auth state allowed.
    pub(crate) fn observe_auth_serve(
        &mut self,
        sim: &impl Cluster,
        client: usize,
        request_id: u64,
        member: u64,
    ) {
        let Some(auth) = self.auth.as_mut() else {
            return;
        };
        let Some(inflight) = self.clients[client]
            .inflight
            .as_ref()
            .filter(|f| f.request_id == request_id)
        else {
            return;
        };
        let Pending::Auth(AuthPending::User(user_op)) = inflight.pending else {
            return;
        };
        if let Some(store) = sim.auth_store(member) {
            auth.observe_serve(user_op, store);
        }
    }
}
