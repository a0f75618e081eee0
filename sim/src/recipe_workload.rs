//! The Lock and Election workload (`--recipes`, or drawn per seed): clients run
//! sessions of etcd's Lock and Election services through the very state machines
//! the server's services drive ([`detcd_core::recipe`]), each request of a machine
//! sent as the client's next request to its member. A wait for a key's deletion is
//! a linearizable read of the key repeated until it is gone (the server watches).
//!
//! A lock session: a lease grant (2 to 4 s, never renewed), Lock with it, a hold of
//! up to 300 ms, Unlock. An election session: a lease grant, Campaign, Proclaim,
//! Leader, Resign, then a Proclaim with the resigned key. A recipe that fails (an
//! error, a timeout) ends its session after deleting the key it left armed, as the
//! server does for an abandoned request. Every answer goes to
//! [`crate::recipe_check`].

use detcd_core::error::EtcdError;
use detcd_core::node::{Request, Response};
use detcd_core::recipe::election::{Campaign, Leader, Proclaim, Resign};
use detcd_core::recipe::lock::{Lock, Unlock};
use detcd_core::recipe::{Action, Recipe, RecipeError};
use detcd_proto::etcdserverpb::{DeleteRangeRequest, LeaseGrantRequest, RangeRequest};
use detcd_proto::v3electionpb::{CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest};
use detcd_proto::v3lockpb::{LockRequest, UnlockRequest};

use crate::cluster::Cluster;
use crate::recipe_check::{RecipeHistory, Tenure};
use crate::workload::Workload;

/// The lock's and the election's names.
pub const LOCK_NAME: &[u8] = b"rlock";
pub const ELECTION_NAME: &[u8] = b"relection";

/// How long a wait for a deletion sleeps between its reads of the key.
const POLL_US: u64 = 20_000;

/// The longest hold of a lock or leadership before its release.
const HOLD_US_MAX: u64 = 300_000;

/// One of the recipes a session drives.
#[derive(Debug, Clone)]
enum Machine {
    Lock(Lock),
    Unlock(Unlock),
    Campaign(Campaign),
    Proclaim(Proclaim),
    Leader(Leader),
    Resign(Resign),
}

/// A machine's action with its answer type erased.
enum Next {
    Call(Request),
    WaitDeleted(Vec<u8>),
    Done(Result<Answer, RecipeError>),
}

/// The part of a recipe's answer the workload uses.
enum Answer {
    Locked(Vec<u8>),
    Elected(LeaderKey),
    Leader(Option<Vec<u8>>),
    Other,
}

fn erase<T>(action: Action<T>, answer: impl FnOnce(T) -> Answer) -> Next {
    match action {
        Action::Call(request) => Next::Call(request),
        Action::WaitDeleted { key, .. } => Next::WaitDeleted(key),
        Action::Done(result) => Next::Done(result.map(answer)),
    }
}

/// Why a recipe ended without its answer.
enum Ended {
    /// etcd's error, from the machine.
    Recipe(RecipeError),
    /// A request of the recipe failed or was not answered.
    RequestFailed,
}

/// What feeds a machine next.
enum Feed {
    Start,
    Answer(Box<Response>),
    Deleted,
}

fn step<R: Recipe>(recipe: &mut R, feed: Feed) -> Action<R::Output> {
    match feed {
        Feed::Start => recipe.start(),
        Feed::Answer(answer) => recipe.on_answer(*answer),
        Feed::Deleted => recipe.on_deleted(),
    }
}

impl Machine {
    fn feed(&mut self, feed: Feed) -> Next {
        match self {
            Machine::Lock(m) => erase(step(m, feed), |r| Answer::Locked(r.key)),
            Machine::Unlock(m) => erase(step(m, feed), |_| Answer::Other),
            Machine::Campaign(m) => erase(step(m, feed), |r| r.leader.map_or(Answer::Other, Answer::Elected)),
            Machine::Proclaim(m) => erase(step(m, feed), |_| Answer::Other),
            Machine::Leader(m) => erase(step(m, feed), |r| Answer::Leader(r.kv.map(|kv| kv.key))),
            Machine::Resign(m) => erase(step(m, feed), |_| Answer::Other),
        }
    }

    fn cleanup_key(&self) -> Option<Vec<u8>> {
        match self {
            Machine::Lock(m) => m.cleanup_key().map(<[u8]>::to_vec),
            Machine::Campaign(m) => m.cleanup_key().map(<[u8]>::to_vec),
            _ => None,
        }
    }
}

/// Where a session is.
#[derive(Debug, Clone)]
enum Phase {
    /// The session lease's grant.
    Grant,
    /// A recipe runs: `send` is its next request; `polling`, the key its wait
    /// reads until it is gone.
    Run {
        machine: Box<Machine>,
        send: Option<Box<Request>>,
        polling: Option<Vec<u8>>,
    },
    /// Holding (a lock or a leadership) until the next step.
    Hold,
    /// Deleting the key an abandoned recipe left.
    Cleanup(Vec<u8>),
}

/// What a session does next once it holds, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Unlock,
    Proclaim,
    Leader,
    Resign,
    StaleProclaim,
    End,
}

#[derive(Debug, Clone)]
struct Session {
    lease: i64,
    grant_sent_us: u64,
    offsets_at_grant_ms: u64,
    ttl_us: u64,
    election: bool,
    phase: Phase,
    /// When the last request was sent.
    sent_us: u64,
    /// The tenure (index in the history) once won.
    tenure: Option<usize>,
    /// The lock key or leader key won.
    key: Vec<u8>,
    leader: Option<LeaderKey>,
    then: Then,
}

/// The workload's state and history.
#[derive(Debug, Default)]
pub struct RecipeWorkload {
    sessions: Vec<Option<Session>>,
    pub history: RecipeHistory,
    pub locks_won: u64,
    pub campaigns_won: u64,
    pub recipes_failed: u64,
    pub polls: u64,
}

impl RecipeWorkload {
    /// The counts a report shows.
    pub fn summary(&self) -> String {
        format!(
            "{} locks and {} leaderships won, {} recipes failed, {} deletion polls, {} Leader checks, {} proclaims, {} stale proclaims refused",
            self.locks_won,
            self.campaigns_won,
            self.recipes_failed,
            self.polls,
            self.history.leader_checks,
            self.history.proclaims_ok,
            self.history.stale_proclaims_refused
        )
    }

    fn session(&mut self, client: usize) -> &mut Option<Session> {
        if self.sessions.len() <= client {
            self.sessions.resize(client + 1, None);
        }
        &mut self.sessions[client]
    }

    /// The tenure of `client`'s session ends at `now_us` (a release sent, or the
    /// client gave up acting as the holder).
    fn release(&mut self, client: usize, now_us: u64) {
        let tenure = self.session(client).as_ref().and_then(|s| s.tenure);
        end_tenure(&mut self.history, tenure, now_us);
    }
}

/// A recipe's first request, or (for one refused at once) its end.
fn started(mut machine: Machine) -> (Phase, Option<Result<Answer, RecipeError>>) {
    match machine.feed(Feed::Start) {
        Next::Call(request) => (
            Phase::Run {
                machine: Box::new(machine),
                send: Some(Box::new(request)),
                polling: None,
            },
            None,
        ),
        Next::WaitDeleted(key) => (
            Phase::Run {
                machine: Box::new(machine),
                send: None,
                polling: Some(key),
            },
            None,
        ),
        Next::Done(result) => (Phase::Hold, Some(result)),
    }
}

/// How much earlier than its TTL a member may expire a lease, clock jumps
/// aside: a member applies a grant with its clock as it is then (the member
/// ticks itself before it handles an input at a later clock; see
/// `Node::handle_at`), which reads whole milliseconds, so up to one
/// millisecond behind.
const LEASE_SLACK_US: u64 = 1000;

impl Workload {
    /// `client`'s next request of a Lock or Election session: the one its session
    /// is at, or for a quarter of the other requests a new session's grant. Only
    /// the first two clients (and one more per four) run sessions, so that the
    /// others keep the KV workload going.
    pub(crate) fn recipe_op(&mut self, sim: &mut impl Cluster, client: usize) -> Option<Request> {
        self.recipes.as_ref()?;
        if client >= 2 + sim.opts().clients / 4 {
            return None;
        }
        let now = sim.now_us();
        let offsets = sim.clock_offsets_ms();
        let w = &mut *self;
        let rng = &mut w.rng;
        let recipes = w.recipes.as_mut()?;
        if recipes.session(client).is_none() {
            if !rng.chance(1, 4) {
                return None;
            }
            *recipes.session(client) = Some(Session {
                lease: 0,
                grant_sent_us: 0,
                offsets_at_grant_ms: 0,
                ttl_us: 0,
                election: rng.chance(1, 3),
                phase: Phase::Grant,
                sent_us: 0,
                tenure: None,
                key: Vec::new(),
                leader: None,
                then: Then::End,
            });
        }
        if matches!(recipes.session(client).as_ref()?.phase, Phase::Hold) {
            let then = recipes.session(client).as_ref()?.then;
            if matches!(then, Then::Unlock | Then::Resign) {
                recipes.release(client, now);
            }
            let s = recipes.session(client).as_mut()?;
            let leader = s.leader.clone();
            let value = format!("c{client}-{now}").into_bytes();
            let machine = match then {
                Then::Unlock => Machine::Unlock(Unlock::new(&UnlockRequest { key: s.key.clone() })),
                Then::Proclaim | Then::StaleProclaim => {
                    Machine::Proclaim(Proclaim::new(ProclaimRequest { leader, value }))
                }
                Then::Leader => Machine::Leader(Leader::new(&LeaderRequest {
                    name: ELECTION_NAME.to_vec(),
                })),
                Then::Resign => Machine::Resign(Resign::new(ResignRequest { leader })),
                Then::End => {
                    *recipes.session(client) = None;
                    return None;
                }
            };
            let (phase, refused) = started(machine);
            s.phase = phase;
            if let Some(result) = refused {
                self.recipe_done(sim, client, result.map_err(Ended::Recipe));
                return None;
            }
        }
        let s = recipes_session(self, client)?;
        s.sent_us = now;
        match &mut s.phase {
            Phase::Grant => {
                s.grant_sent_us = now;
                s.offsets_at_grant_ms = offsets;
                let ttl = self.rng.range(2, 5) as i64;
                Some(Request::LeaseGrant(LeaseGrantRequest { ttl, id: 0 }))
            }
            Phase::Cleanup(key) => Some(Request::DeleteRange(DeleteRangeRequest {
                key: key.clone(),
                ..DeleteRangeRequest::default()
            })),
            Phase::Run {
                polling: Some(key), ..
            } => {
                let read = Request::Range(RangeRequest {
                    key: key.clone(),
                    ..RangeRequest::default()
                });
                if let Some(r) = self.recipes.as_mut() {
                    r.polls += 1;
                }
                Some(read)
            }
            Phase::Run { send, .. } => send.take().map(|request| *request),
            Phase::Hold => None,
        }
    }

    /// The answer (or failure) of `client`'s recipe request; when to wake it next
    /// (None: after the usual think time).
    pub(crate) fn recipe_answer(
        &mut self,
        sim: &mut impl Cluster,
        client: usize,
        result: Result<Response, EtcdError>,
    ) -> Option<u64> {
        let now = sim.now_us();
        let s = recipes_session(self, client)?;
        let answer = match result {
            Ok(answer) => answer,
            Err(_) => {
                return match &s.phase {
                    Phase::Run { .. } => self.recipe_done(sim, client, Err(Ended::RequestFailed)),
                    _ => {
                        self.recipe_end(sim, client);
                        None
                    }
                };
            }
        };
        match &mut s.phase {
            Phase::Grant => {
                let Response::LeaseGrant(g) = answer else {
                    self.recipe_end(sim, client);
                    return None;
                };
                if !g.error.is_empty() {
                    self.recipe_end(sim, client);
                    return None;
                }
                s.lease = g.id;
                s.ttl_us = g.ttl.max(0) as u64 * 1_000_000;
                let machine = if s.election {
                    s.then = Then::Proclaim;
                    Machine::Campaign(Campaign::new(&CampaignRequest {
                        name: ELECTION_NAME.to_vec(),
                        lease: g.id,
                        value: format!("c{client}").into_bytes(),
                    }))
                } else {
                    s.then = Then::Unlock;
                    Machine::Lock(Lock::new(&LockRequest {
                        name: LOCK_NAME.to_vec(),
                        lease: g.id,
                    }))
                };
                let (phase, refused) = started(machine);
                s.phase = phase;
                match refused {
                    Some(result) => self.recipe_done(sim, client, result.map_err(Ended::Recipe)),
                    None => None,
                }
            }
            Phase::Cleanup(_) | Phase::Hold => {
                self.recipe_end(sim, client);
                None
            }
            Phase::Run {
                machine,
                send,
                polling,
            } => {
                let next = if polling.is_some() {
                    let Response::Range(r) = answer else { return None };
                    if !r.kvs.is_empty() {
                        return Some(now + POLL_US); // Still there: read again.
                    }
                    *polling = None;
                    machine.feed(Feed::Deleted)
                } else {
                    machine.feed(Feed::Answer(Box::new(answer)))
                };
                match next {
                    Next::Call(request) => {
                        *send = Some(Box::new(request));
                        None
                    }
                    Next::WaitDeleted(key) => {
                        *polling = Some(key);
                        None
                    }
                    Next::Done(result) => self.recipe_done(sim, client, result.map_err(Ended::Recipe)),
                }
            }
        }
    }

    /// `client`'s session is over.
    fn recipe_end(&mut self, sim: &mut impl Cluster, client: usize) {
        let now = sim.now_us();
        if let Some(recipes) = self.recipes.as_mut() {
            recipes.release(client, now);
            *recipes.session(client) = None;
        }
    }

    /// `client`'s recipe ended with `result`: the checks, then the session's next
    /// phase; when to wake the client (None: after the usual think time).
    fn recipe_done(
        &mut self,
        sim: &mut impl Cluster,
        client: usize,
        result: Result<Answer, Ended>,
    ) -> Option<u64> {
        let now = sim.now_us();
        let offsets = sim.clock_offsets_ms();
        let hold_us = self.rng.range(0, HOLD_US_MAX);
        let slack_us = LEASE_SLACK_US;
        let recipes = self.recipes.as_mut()?;
        recipes.session(client);
        let RecipeWorkload {
            sessions,
            history,
            locks_won,
            campaigns_won,
            recipes_failed,
            ..
        } = recipes;
        let slot = sessions.get_mut(client)?;
        let s = slot.as_mut()?;
        let cleanup = match &s.phase {
            Phase::Run { machine, .. } => machine.cleanup_key(),
            _ => None,
        };
        let sent_us = s.sent_us;
        let then = s.then;
        let tenure = s.tenure;
        let refused = matches!(result, Err(Ended::Recipe(RecipeError::NotLeader)));
        match (then, result) {
            (Then::Unlock, Ok(Answer::Locked(key))) => {
                s.key = key.clone();
                s.tenure = Some(history.tenures.len());
                let t = Tenure {
                    client,
                    name: LOCK_NAME.to_vec(),
                    key,
                    from_us: now,
                    until_us: u64::MAX,
                    grant_sent_us: s.grant_sent_us,
                    ttl_us: s.ttl_us,
                    offsets_at_grant_ms: s.offsets_at_grant_ms,
                    slack_us,
                };
                s.phase = Phase::Hold;
                history.tenures.push(t);
                *locks_won += 1;
                Some(now + hold_us)
            }
            (Then::Proclaim, Ok(Answer::Elected(leader))) if tenure.is_none() => {
                s.key = leader.key.clone();
                s.tenure = Some(history.tenures.len());
                let t = Tenure {
                    client,
                    name: ELECTION_NAME.to_vec(),
                    key: leader.key.clone(),
                    from_us: now,
                    until_us: u64::MAX,
                    grant_sent_us: s.grant_sent_us,
                    ttl_us: s.ttl_us,
                    offsets_at_grant_ms: s.offsets_at_grant_ms,
                    slack_us,
                };
                s.leader = Some(leader);
                s.phase = Phase::Hold;
                history.tenures.push(t);
                *campaigns_won += 1;
                Some(now + hold_us / 3)
            }
            (Then::Proclaim, result) if tenure.is_some() && (result.is_ok() || refused) => {
                history.proclaimed(tenure?, refused, now, offsets);
                if refused {
                    end_tenure(history, tenure, now);
                    *slot = None;
                    return None;
                }
                s.then = Then::Leader;
                s.phase = Phase::Hold;
                Some(now + hold_us / 3)
            }
            (Then::Leader, Ok(Answer::Leader(key))) => {
                history.leader_answered(ELECTION_NAME, sent_us, now, key.as_deref(), offsets);
                s.then = Then::Resign;
                s.phase = Phase::Hold;
                Some(now + hold_us / 3)
            }
            (Then::Leader, Err(Ended::Recipe(RecipeError::NoLeader))) => {
                history.leader_answered(ELECTION_NAME, sent_us, now, None, offsets);
                s.then = Then::Resign;
                s.phase = Phase::Hold;
                Some(now + hold_us / 3)
            }
            (Then::Resign, Ok(_)) => {
                s.then = Then::StaleProclaim;
                s.phase = Phase::Hold;
                None
            }
            (Then::StaleProclaim, result) if result.is_ok() || refused => {
                history.stale_proclaimed(tenure?, refused);
                *slot = None;
                None
            }
            (_, Ok(_)) => {
                // An Unlock answered, or nothing more to do.
                end_tenure(history, tenure, now);
                *slot = None;
                None
            }
            (_, Err(_)) => {
                *recipes_failed += 1;
                end_tenure(history, tenure, now);
                match cleanup {
                    Some(key) => s.phase = Phase::Cleanup(key),
                    None => *recipes.session(client) = None,
                }
                None
            }
        }
    }
}

/// Tenure `index` (if any) ends at `now_us`.
fn end_tenure(history: &mut RecipeHistory, index: Option<usize>, now_us: u64) {
    if let Some(t) = index.and_then(|i| history.tenures.get_mut(i)) {
        t.until_us = t.until_us.min(now_us);
    }
}

/// `client`'s session, if the workload runs and it has one.
fn recipes_session(workload: &mut Workload, client: usize) -> Option<&mut Session> {
    workload.recipes.as_mut()?.session(client).as_mut()
}
