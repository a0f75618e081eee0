//! What the simulated clients and the membership operator may ask of the
//! simulator: the few operations a real client or operator has (send a request
//! to a member, read the clock, pick among the members, set a timer), and no
//! access to its hosts, queue or network. The simulator implements [`Cluster`];
//! the workloads (`workload`, `auth_workload`, `recipe_workload`, `v2_workload`)
//! and the operator (`membership`) see only this trait, so they do not import
//! the simulator.

use detcd_core::auth::AuthStore;
use detcd_core::error::{Code, EtcdError};
use detcd_core::node::{Credentials, Request};
use detcd_core::rng::Rng;
use detcd_proto::etcdserverpb::Member;

use crate::options::Options;

/// Where a client request's answer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Client {
        client: usize,
        serializable: bool,
    },
    Scenario,
    /// The membership operator (the `membership` fault).
    Operator,
    /// A member's own v2 sync (its answer is dropped, as the server's sync task does).
    V2Sync,
}

/// Whether an error leaves the outcome of a request unknown (it may still apply).
pub fn outcome_unknown(e: &EtcdError) -> bool {
    matches!(
        e.code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Internal | Code::Cancelled
    )
}

/// The simulator as its clients and its operator see it.
pub(crate) trait Cluster {
    /// The run's options.
    fn opts(&self) -> &Options;
    /// Simulated time, in microseconds.
    fn now_us(&self) -> u64;
    /// The simulator's random source (draws here shape the whole run).
    fn rng(&mut self) -> &mut Rng;
    /// Every member the simulator has started, removed ones included.
    fn members(&self) -> Vec<u64>;
    /// Whether `member`'s process runs.
    fn is_up(&self, member: u64) -> bool;
    /// Whether `member` was ever started here.
    fn has_member(&self, member: u64) -> bool;
    /// Whether `member` was removed from the cluster (false for unknown ones).
    fn is_removed(&self, member: u64) -> bool;
    /// `member`'s wall clock as Unix milliseconds (clock jumps included).
    fn wall_ms(&self, member: u64) -> u64;
    /// The members' clock offsets summed (they only grow).
    fn clock_offsets_ms(&self) -> u64;
    /// The leader every running member agrees on, if any.
    fn leader(&self) -> Option<u64>;
    /// The auth state `member` serves from, if it runs.
    fn auth_store(&self, member: u64) -> Option<&AuthStore>;
    /// The credentials of every request but the auth workload's own.
    fn default_credentials(&self) -> Credentials;
    /// Sends `request` to `member`; its answer goes where `route` says. Returns
    /// the request's id.
    fn submit(&mut self, member: u64, request: Request, route: Route, credentials: Credentials) -> u64;
    /// Drops the answer to `request_id`, if it still comes (the caller timed out).
    fn forget(&mut self, request_id: u64);
    /// A new watch stream id.
    fn new_stream(&mut self) -> u64;
    /// `client` hangs up the stream of its watch `session` on `member`.
    fn close_watch_stream(&mut self, member: u64, client: usize, session: usize);
    /// Wakes `client` at `at_us` with `token`.
    fn wake_client(&mut self, client: usize, at_us: u64, token: u64);
    /// Wakes the membership operator at `at_us` with `token`.
    fn wake_operator(&mut self, at_us: u64, token: u64);
    /// Whether the faulty phase is under way.
    fn faults_active(&self) -> bool;
    /// Starts a member the cluster has just added, on a fresh disk.
    fn add_joiner(&mut self, id: u64, name: &str, members: Vec<Member>);
    /// A member the cluster removed: never restarted, and stopped after the
    /// delay a removed member keeps running in production.
    fn retire(&mut self, id: u64);
    /// Fails the run (the first failure wins).
    fn fail(&mut self, why: String);
    /// Whether the run has failed.
    fn failed(&self) -> bool;
    /// A line of the run's log (`DETCD_SIM_LOG`).
    fn log(&self, line: std::fmt::Arguments<'_>);
}
