//! `v3lockpb.Lock`: Lock (concurrency's `Mutex.Lock`) and Unlock.
//!
//! Lock: the session lease is the request's (a new [`super::SESSION_TTL_S`] lease
//! when it has none); the key `<name>/<lease hex>` is created with it unless it
//! exists; the holder is the key of lowest create revision; a waiter waits for every
//! older key's deletion, then checks that its own key still exists (a lease that
//! expired while waiting lost its place: `mutex: session is expired`). Unlock deletes
//! the key it is given.

use detcd_proto::etcdserverpb::{PutRequest, ResponseHeader, TxnRequest};
use detcd_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

use super::wait::{Found, WaitDeletes};
use super::{
    by_create, created_at, get, granted, prefix_of, put_op, range_op, revision_of, session_grant,
    session_key, txn_kv, Action, Recipe, RecipeError,
};
use crate::mutation::{is_active, Mutation};
use crate::node::{Request, Response};

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Grant,
    Create,
    Wait(WaitDeletes),
    /// Reading its own key after the wait; the header to answer with.
    Verify(Option<ResponseHeader>),
    Done,
}

/// One Lock request in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    prefix: Vec<u8>,
    lease: i64,
    key: Vec<u8>,
    step: Step,
    /// The key exists and is not handed over: delete it if the driver stops.
    armed: bool,
}

impl Lock {
    pub fn new(request: &LockRequest) -> Self {
        Self {
            prefix: prefix_of(&request.name),
            lease: request.lease,
            key: Vec::new(),
            step: Step::Grant,
            armed: false,
        }
    }

    /// The lease the session uses (0 until granted when the request had none).
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// The transaction that creates the key unless it exists, and reads it and
    /// the owner.
    fn create(&mut self) -> Action<LockResponse> {
        self.key = session_key(&self.prefix, self.lease);
        self.step = Step::Create;
        Action::Call(Request::Txn(TxnRequest {
            compare: vec![created_at(&self.key, 0)],
            success: vec![
                put_op(PutRequest {
                    key: self.key.clone(),
                    lease: self.lease,
                    ..PutRequest::default()
                }),
                range_op(by_create(&self.prefix, true, 0)),
            ],
            failure: vec![
                range_op(get(&self.key)),
                range_op(by_create(&self.prefix, true, 0)),
            ],
        }))
    }

    fn done(&mut self, result: Result<LockResponse, RecipeError>) -> Action<LockResponse> {
        self.step = Step::Done;
        Action::Done(result)
    }

    fn verify(&mut self, header: Option<ResponseHeader>) -> Action<LockResponse> {
        self.step = Step::Verify(header);
        Action::Call(Request::Range(get(&self.key)))
    }

    fn waited(&mut self, found: Found) -> Action<LockResponse> {
        match found {
            Found::Clear(header) => self.verify(header),
            Found::Older { key, revision } => Action::WaitDeleted { key, revision },
        }
    }
}

impl Recipe for Lock {
    type Output = LockResponse;

    fn start(&mut self) -> Action<LockResponse> {
        if self.lease == 0 {
            self.step = Step::Grant;
            return Action::Call(session_grant());
        }
        self.create()
    }

    fn on_answer(&mut self, answer: Response) -> Action<LockResponse> {
        match (std::mem::replace(&mut self.step, Step::Done), answer) {
            (Step::Grant, answer) => match granted(answer) {
                Ok(lease) => {
                    self.lease = lease;
                    self.create()
                }
                Err(e) => self.done(Err(e)),
            },
            (Step::Create, Response::Txn(t)) => {
                self.armed = true;
                let mut my_rev = revision_of(t.header.as_ref());
                if !t.succeeded {
                    my_rev = txn_kv(&t, 0).map_or(my_rev, |kv| kv.create_revision);
                }
                let owner = txn_kv(&t, 1).map(|kv| kv.create_revision);
                if owner.is_none_or(|rev| rev == my_rev) {
                    self.armed = false;
                    let key = self.key.clone();
                    return self.done(Ok(LockResponse {
                        header: t.header,
                        key,
                    }));
                }
                if is_active(Mutation::LockIgnoresOlderWaiter) {
                    // Planted bug: the older waiter is not waited for.
                    return self.verify(t.header);
                }
                let wait = WaitDeletes::new(&self.prefix, my_rev - 1);
                let read = wait.read();
                self.step = Step::Wait(wait);
                Action::Call(read)
            }
            (Step::Wait(wait), Response::Range(r)) => {
                self.step = Step::Wait(wait);
                self.waited(WaitDeletes::found(r))
            }
            (Step::Verify(header), Response::Range(r)) => {
                if r.kvs.is_empty() {
                    return self.done(Err(RecipeError::SessionExpired));
                }
                self.armed = false;
                let key = self.key.clone();
                self.done(Ok(LockResponse { header, key }))
            }
            (Step::Create, _) => self.done(Err(RecipeError::Mismatch("Txn"))),
            (_, _) => self.done(Err(RecipeError::Mismatch("Range"))),
        }
    }

    fn on_deleted(&mut self) -> Action<LockResponse> {
        match &self.step {
            Step::Wait(wait) => Action::Call(wait.read()),
            _ => self.done(Err(RecipeError::Mismatch("a wait this recipe never asked for"))),
        }
    }

    fn cleanup_key(&self) -> Option<&[u8]> {
        self.armed.then_some(self.key.as_slice())
    }
}

/// One Unlock: the delete of its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Unlock {
    key: Vec<u8>,
}

impl Unlock {
    pub fn new(request: &UnlockRequest) -> Self {
        Self {
            key: request.key.clone(),
        }
    }
}

impl Recipe for Unlock {
    type Output = UnlockResponse;

    fn start(&mut self) -> Action<UnlockResponse> {
        Action::Call(Request::DeleteRange(super::delete(&self.key)))
    }

    fn on_answer(&mut self, answer: Response) -> Action<UnlockResponse> {
        match answer {
            Response::DeleteRange(r) => Action::Done(Ok(UnlockResponse { header: r.header })),
            _ => Action::Done(Err(RecipeError::Mismatch("DeleteRange"))),
        }
    }
}
