//! The simulator as its clients and its membership operator see it: the
//! [`Cluster`] interface, and lending them their own state while they act.

use detcd_core::auth::AuthStore;
use detcd_core::node::{Credentials, Input, Request};
use detcd_core::rng::Rng;
use detcd_proto::etcdserverpb::Member;

use super::{Event, Sim};
use crate::cluster::{Cluster, Route};
use crate::membership::Operator;
use crate::options::Options;
use crate::workload::Workload;

impl Sim {
    /// Lets the workload act on the simulator through [`Cluster`]; the watch
    /// streams it hung up are closed on their members once it is done.
    pub(super) fn with_workload<R>(&mut self, act: impl FnOnce(&mut Workload, &mut Sim) -> R) -> R {
        let mut workload = std::mem::replace(&mut self.workload, Workload::empty());
        let result = act(&mut workload, self);
        self.workload = workload;
        for (member, stream) in std::mem::take(&mut self.closed_streams) {
            self.feed(member, Input::StreamClosed { stream });
        }
        result
    }

    /// Lets the membership operator act on the simulator through [`Cluster`].
    pub(super) fn with_operator<R>(&mut self, act: impl FnOnce(&mut Operator, &mut Sim) -> R) -> R {
        let mut operator = std::mem::take(&mut self.operator);
        let result = act(&mut operator, self);
        self.operator = operator;
        result
    }

    /// The credentials of every request but the auth workload's own: root under
    /// `--auth` (auth never refuses it), none otherwise.
    pub(crate) fn default_credentials(&self) -> Credentials {
        if self.opts.auth {
            crate::auth_workload::root()
        } else {
            Credentials::None
        }
    }

    /// Starts every client.
    pub fn start_workload(&mut self) {
        self.with_workload(|w, sim| w.start_workload(sim));
    }

    /// Starts the liveness probe: a put then a linearizable read of `kprobe`,
    /// retried across members, which must both succeed within ten election timeouts.
    pub fn start_probe(&mut self) {
        self.with_workload(|w, sim| w.start_probe(sim));
    }

    /// Wakes `client` now (used to start the final reader).
    pub fn schedule_wake_now(&mut self, client: usize) {
        self.with_workload(|w, sim| w.schedule_wake_now(sim, client));
    }
}

impl Cluster for Sim {
    fn opts(&self) -> &Options {
        &self.opts
    }

    fn now_us(&self) -> u64 {
        self.now_us
    }

    fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    fn members(&self) -> Vec<u64> {
        self.member_ids()
    }

    fn is_up(&self, member: u64) -> bool {
        Sim::is_up(self, member)
    }

    fn has_member(&self, member: u64) -> bool {
        self.hosts.contains_key(&member)
    }

    fn is_removed(&self, member: u64) -> bool {
        self.hosts.get(&member).is_some_and(|h| h.removed)
    }

    fn wall_ms(&self, member: u64) -> u64 {
        Sim::wall_ms(self, member)
    }

    fn clock_offsets_ms(&self) -> u64 {
        let now = crate::v2_workload::EPOCH_UNIX_MS + self.now_ms();
        self.hosts.keys().map(|&id| Sim::wall_ms(self, id) - now).sum()
    }

    fn leader(&self) -> Option<u64> {
        Sim::leader(self)
    }

    fn auth_store(&self, member: u64) -> Option<&AuthStore> {
        self.node(member).map(|n| n.auth_store())
    }

    fn default_credentials(&self) -> Credentials {
        Sim::default_credentials(self)
    }

    fn submit(&mut self, member: u64, request: Request, route: Route, credentials: Credentials) -> u64 {
        self.submit_as(member, request, route, credentials)
    }

    fn forget(&mut self, request_id: u64) {
        self.routes.remove(&request_id);
    }

    fn new_stream(&mut self) -> u64 {
        self.next_stream += 1;
        self.next_stream
    }

    fn close_watch_stream(&mut self, member: u64, client: usize, session: usize) {
        let stream = self
            .streams
            .iter()
            .find(|(&(m, _), &(c, s))| m == member && c == client && s == session)
            .map(|(&(_, stream), _)| stream);
        if let Some(stream) = stream {
            self.streams.remove(&(member, stream));
            // Fed once the workload is done (`with_workload`): closing a stream
            // makes the member produce nothing, so nothing it does moves.
            self.closed_streams.push((member, stream));
        }
    }

    fn wake_client(&mut self, client: usize, at_us: u64, token: u64) {
        self.queue.push(at_us, Event::ClientWake { client, token });
    }

    fn wake_operator(&mut self, at_us: u64, token: u64) {
        self.queue.push(at_us, Event::OperatorWake { token });
    }

    fn faults_active(&self) -> bool {
        self.faults_on
    }

    fn add_joiner(&mut self, id: u64, name: &str, members: Vec<Member>) {
        Sim::add_joiner(self, id, name, members);
    }

    fn retire(&mut self, id: u64) {
        Sim::retire(self, id);
    }

    fn fail(&mut self, why: String) {
        Sim::fail(self, why);
    }

    fn failed(&self) -> bool {
        self.failure.is_some()
    }

    fn log(&self, line: std::fmt::Arguments<'_>) {
        Sim::log(self, line);
    }
}
