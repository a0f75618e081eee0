//! `v3electionpb.Election`: Campaign, Proclaim, Leader, Resign and Observe, as
//! concurrency's `Election`.
//!
//! A candidate's key is `<name>/<lease hex>` holding its value; the leader is the
//! key of lowest create revision. Campaign waits until every older key is gone (a
//! Campaign abandoned while waiting resigns); Proclaim and Resign act only while the
//! leader key still has the create revision it was won with (else Proclaim answers
//! `election: not leader`); Leader answers `election: no leader` when nobody
//! campaigns; Observe streams the leader's value each time it changes, in order.
//! Requests without their `leader` field get etcd's `"leader" field must be provided`.

use std::collections::VecDeque;

use detcd_proto::etcdserverpb::{PutRequest, ResponseHeader, TxnRequest, WatchResponse};
use detcd_proto::mvccpb::event::EventType;
use detcd_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};

use super::wait::{Found, WaitDeletes};
use super::{
    by_create, created_at, delete_op, get, granted, prefix_of, put_op, range_op, revision_of, session_grant,
    session_key, txn_kv, Action, Recipe, RecipeError,
};
use crate::node::{Request, Response};

/// The transaction that puts `value` at the leader key won at create revision
/// `rev`, keeping its lease.
fn proclaim_txn(key: &[u8], rev: i64, value: &[u8]) -> Request {
    Request::Txn(TxnRequest {
        compare: vec![created_at(key, rev)],
        success: vec![put_op(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            ignore_lease: true,
            ..PutRequest::default()
        })],
        failure: Vec::new(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum CampaignStep {
    Grant,
    Create,
    Proclaim,
    Wait(WaitDeletes),
    Done,
}

/// One Campaign in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    name: Vec<u8>,
    value: Vec<u8>,
    prefix: Vec<u8>,
    lease: i64,
    key: Vec<u8>,
    /// The create revision of the key, once known.
    rev: i64,
    /// The header of the creating transaction (the answer's).
    header: Option<ResponseHeader>,
    step: CampaignStep,
    armed: bool,
}

impl Campaign {
    pub fn new(request: &CampaignRequest) -> Self {
        Self {
            name: request.name.clone(),
            value: request.value.clone(),
            prefix: prefix_of(&request.name),
            lease: request.lease,
            key: Vec::new(),
            rev: 0,
            header: None,
            step: CampaignStep::Grant,
            armed: false,
        }
    }

    fn create(&mut self) -> Action<CampaignResponse> {
        self.key = session_key(&self.prefix, self.lease);
        self.step = CampaignStep::Create;
        Action::Call(Request::Txn(TxnRequest {
            compare: vec![created_at(&self.key, 0)],
            success: vec![put_op(PutRequest {
                key: self.key.clone(),
                value: self.value.clone(),
                lease: self.lease,
                ..PutRequest::default()
            })],
            failure: vec![range_op(get(&self.key))],
        }))
    }

    fn wait(&mut self) -> Action<CampaignResponse> {
        let wait = WaitDeletes::new(&self.prefix, self.rev - 1);
        let read = wait.read();
        self.step = CampaignStep::Wait(wait);
        Action::Call(read)
    }

    fn done(&mut self, result: Result<CampaignResponse, RecipeError>) -> Action<CampaignResponse> {
        self.step = CampaignStep::Done;
        Action::Done(result)
    }
}

impl Recipe for Campaign {
    type Output = CampaignResponse;

    fn start(&mut self) -> Action<CampaignResponse> {
        if self.lease == 0 {
            self.step = CampaignStep::Grant;
            return Action::Call(session_grant());
        }
        self.create()
    }

    fn on_answer(&mut self, answer: Response) -> Action<CampaignResponse> {
        match (std::mem::replace(&mut self.step, CampaignStep::Done), answer) {
            (CampaignStep::Grant, answer) => match granted(answer) {
                Ok(lease) => {
                    self.lease = lease;
                    self.create()
                }
                Err(e) => self.done(Err(e)),
            },
            (CampaignStep::Create, Response::Txn(t)) => {
                self.armed = true;
                self.rev = revision_of(t.header.as_ref());
                let mut differs = false;
                if !t.succeeded {
                    if let Some(kv) = txn_kv(&t, 0) {
                        self.rev = kv.create_revision;
                        differs = kv.value != self.value;
                    }
                }
                self.header = t.header;
                if differs {
                    self.step = CampaignStep::Proclaim;
                    return Action::Call(proclaim_txn(&self.key, self.rev, &self.value));
                }
                self.wait()
            }
            (CampaignStep::Proclaim, Response::Txn(t)) => {
                if !t.succeeded {
                    return self.done(Err(RecipeError::NotLeader));
                }
                self.wait()
            }
            (CampaignStep::Wait(wait), Response::Range(r)) => match WaitDeletes::found(r) {
                Found::Clear(_) => {
                    self.armed = false;
                    let answer = CampaignResponse {
                        header: self.header,
                        leader: Some(LeaderKey {
                            name: self.name.clone(),
                            key: self.key.clone(),
                            rev: self.rev,
                            lease: self.lease,
                        }),
                    };
                    self.done(Ok(answer))
                }
                Found::Older { key, revision } => {
                    self.step = CampaignStep::Wait(wait);
                    Action::WaitDeleted { key, revision }
                }
            },
            (CampaignStep::Wait(_), _) => self.done(Err(RecipeError::Mismatch("Range"))),
            (_, _) => self.done(Err(RecipeError::Mismatch("Txn"))),
        }
    }

    fn on_deleted(&mut self) -> Action<CampaignResponse> {
        match &self.step {
            CampaignStep::Wait(wait) => Action::Call(wait.read()),
            _ => self.done(Err(RecipeError::Mismatch("a wait this recipe never asked for"))),
        }
    }

    fn cleanup_key(&self) -> Option<&[u8]> {
        self.armed.then_some(self.key.as_slice())
    }
}

/// One Proclaim: the put of the new value, only while the leader key is the one won.
#[derive(Debug, Clone, PartialEq)]
pub struct Proclaim {
    request: ProclaimRequest,
}

impl Proclaim {
    pub fn new(request: ProclaimRequest) -> Self {
        Self { request }
    }
}

impl Recipe for Proclaim {
    type Output = ProclaimResponse;

    fn start(&mut self) -> Action<ProclaimResponse> {
        match &self.request.leader {
            None => Action::Done(Err(RecipeError::MissingLeaderKey)),
            Some(leader) => Action::Call(proclaim_txn(&leader.key, leader.rev, &self.request.value)),
        }
    }

    fn on_answer(&mut self, answer: Response) -> Action<ProclaimResponse> {
        match answer {
            Response::Txn(t) if t.succeeded => Action::Done(Ok(ProclaimResponse { header: t.header })),
            Response::Txn(_) => Action::Done(Err(RecipeError::NotLeader)),
            _ => Action::Done(Err(RecipeError::Mismatch("Txn"))),
        }
    }
}

/// One Resign: the delete of the leader key if it is still the one won.
#[derive(Debug, Clone, PartialEq)]
pub struct Resign {
    request: ResignRequest,
}

impl Resign {
    pub fn new(request: ResignRequest) -> Self {
        Self { request }
    }
}

impl Recipe for Resign {
    type Output = ResignResponse;

    fn start(&mut self) -> Action<ResignResponse> {
        match &self.request.leader {
            None => Action::Done(Err(RecipeError::MissingLeaderKey)),
            Some(leader) => Action::Call(Request::Txn(TxnRequest {
                compare: vec![created_at(&leader.key, leader.rev)],
                success: vec![delete_op(&leader.key)],
                failure: Vec::new(),
            })),
        }
    }

    fn on_answer(&mut self, answer: Response) -> Action<ResignResponse> {
        match answer {
            Response::Txn(t) => Action::Done(Ok(ResignResponse { header: t.header })),
            _ => Action::Done(Err(RecipeError::Mismatch("Txn"))),
        }
    }
}

/// One Leader: the key of lowest create revision under the name.
#[derive(Debug, Clone, PartialEq)]
pub struct Leader {
    prefix: Vec<u8>,
}

impl Leader {
    pub fn new(request: &LeaderRequest) -> Self {
        Self {
            prefix: prefix_of(&request.name),
        }
    }
}

impl Recipe for Leader {
    type Output = LeaderResponse;

    fn start(&mut self) -> Action<LeaderResponse> {
        Action::Call(Request::Range(by_create(&self.prefix, true, 0)))
    }

    fn on_answer(&mut self, answer: Response) -> Action<LeaderResponse> {
        let Response::Range(found) = answer else {
            return Action::Done(Err(RecipeError::Mismatch("Range")));
        };
        match found.kvs.into_iter().next() {
            None => Action::Done(Err(RecipeError::NoLeader)),
            Some(kv) => Action::Done(Ok(LeaderResponse {
                header: found.header,
                kv: Some(kv),
            })),
        }
    }
}

/// What an Observe asks its driver to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum ObserveAction {
    /// Serve this read and feed the answer to [`Observe::on_answer`].
    Call(Request),
    /// Open this watch (closing any earlier one) and feed its responses, one at a
    /// time, to [`Observe::on_events`].
    Watch { key: Vec<u8>, prefix: bool, from: i64 },
    /// Feed the current watch's next response to [`Observe::on_events`].
    NextEvents,
    /// Send this to the observer, then call [`Observe::on_emitted`].
    Emit(LeaderResponse),
    /// The stream ends with this error.
    Failed(RecipeError),
}

#[derive(Debug, Clone, PartialEq)]
enum ObserveStep {
    /// Reading the current leader.
    Reading,
    /// Nobody campaigns: waiting for the first key put under the prefix.
    First,
    /// Following the leader's key until it is deleted; the last header seen.
    Following(ResponseHeader),
}

/// One Observe stream (concurrency's `Election.observe`): the current leader (or
/// the first key put under the prefix), then each new value of its key until it is
/// deleted; then again.
#[derive(Debug, Clone, PartialEq)]
pub struct Observe {
    prefix: Vec<u8>,
    step: ObserveStep,
    emits: VecDeque<LeaderResponse>,
    /// What follows once the queued emits are sent.
    then: Option<ObserveAction>,
}

impl Observe {
    pub fn new(request: &LeaderRequest) -> Self {
        Self {
            prefix: prefix_of(&request.name),
            step: ObserveStep::Reading,
            emits: VecDeque::new(),
            then: None,
        }
    }

    pub fn start(&mut self) -> ObserveAction {
        self.read()
    }

    fn read(&mut self) -> ObserveAction {
        self.step = ObserveStep::Reading;
        ObserveAction::Call(Request::Range(by_create(&self.prefix, true, 0)))
    }

    /// The next queued emit, else what was to follow.
    fn next(&mut self) -> ObserveAction {
        match self.emits.pop_front() {
            Some(emit) => ObserveAction::Emit(emit),
            None => self.then.take().unwrap_or(ObserveAction::NextEvents),
        }
    }

    /// Emits `kv` as the leader at `header`, then follows its key.
    fn lead(&mut self, header: ResponseHeader, kv: detcd_proto::mvccpb::KeyValue) -> ObserveAction {
        let follow = ObserveAction::Watch {
            key: kv.key.clone(),
            prefix: false,
            from: header.revision + 1,
        };
        self.step = ObserveStep::Following(header);
        self.emits.push_back(LeaderResponse {
            header: Some(header),
            kv: Some(kv),
        });
        self.then = Some(follow);
        self.next()
    }

    pub fn on_answer(&mut self, answer: Response) -> ObserveAction {
        let Response::Range(found) = answer else {
            return ObserveAction::Failed(RecipeError::Mismatch("Range"));
        };
        let header = found.header.unwrap_or_default();
        match found.kvs.into_iter().next() {
            Some(kv) => self.lead(header, kv),
            None => {
                self.step = ObserveStep::First;
                ObserveAction::Watch {
                    key: self.prefix.clone(),
                    prefix: true,
                    from: header.revision,
                }
            }
        }
    }

    pub fn on_events(&mut self, response: WatchResponse) -> ObserveAction {
        if response.canceled {
            return ObserveAction::Failed(RecipeError::WatchCanceled(response.cancel_reason));
        }
        match &mut self.step {
            ObserveStep::Reading => ObserveAction::Failed(RecipeError::Mismatch("a watch response")),
            ObserveStep::First => {
                let put = response
                    .events
                    .into_iter()
                    .find(|e| e.r#type == EventType::Put as i32)
                    .and_then(|e| e.kv);
                match put {
                    Some(kv) => {
                        let mut header = response.header.unwrap_or_default();
                        header.revision = kv.mod_revision;
                        self.lead(header, kv)
                    }
                    None => ObserveAction::NextEvents,
                }
            }
            ObserveStep::Following(header) => {
                if let Some(h) = response.header {
                    *header = h;
                }
                let header = *header;
                for event in response.events {
                    if event.r#type == EventType::Delete as i32 {
                        self.then = Some(self.read());
                        return self.next();
                    }
                    self.emits.push_back(LeaderResponse {
                        header: Some(header),
                        kv: event.kv,
                    });
                }
                self.next()
            }
        }
    }

    pub fn on_emitted(&mut self) -> ObserveAction {
        self.next()
    }
}
