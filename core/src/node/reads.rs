//! Linearizable reads by ReadIndex, batched as etcd's `linearizableReadLoop` does:
//! reads that arrive while a round is in flight wait for the next round, so one
//! quorum round serves a whole batch. A confirmed read waits until the applied
//! index reaches the round's index, then is served from the local store.
//!
//! Failures, as etcd: a leader change while a round is in flight answers its reads
//! with LEADER_CHANGED; a round that got no answer is retried after
//! [`READ_INDEX_RETRY_MS`] with a fresh context; a read still waiting at its
//! deadline gets TIMEOUT.

use detcd_proto::etcdserverpb::{MemberListResponse, RangeRequest, TxnRequest};

use super::io::{ClientRequestId, Response};
use super::status::MvccCounts;
use super::Node;
use crate::auth::AuthInfo;
use crate::error::EtcdError;
use crate::raft::ReadState;

/// etcd's `readIndexRetryTime`: a round unanswered this long is sent again.
pub const READ_INDEX_RETRY_MS: u64 = 500;

/// What a linearizable read serves once confirmed.
#[derive(Clone, Debug)]
pub(crate) enum ReadKind {
    Range(RangeRequest),
    /// A txn without writes.
    Txn(TxnRequest),
    MemberList,
    /// Authenticate's password lookup (etcd puts a linearizable barrier first).
    PasswordCheck(String),
}

#[derive(Clone, Debug)]
struct PendingRead {
    client: ClientRequestId,
    kind: ReadKind,
    /// Who asked: checked when the read is served.
    auth: Option<AuthInfo>,
    deadline_ms: u64,
}

#[derive(Clone, Debug)]
struct Round {
    ctx: Vec<u8>,
    reads: Vec<PendingRead>,
    sent_ms: u64,
}

/// Reads in their three stages: queued for the next round, in a round, confirmed
/// at an index.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reads {
    queued: Vec<PendingRead>,
    round: Option<Round>,
    confirmed: Vec<(u64, PendingRead)>,
    next_ctx: u64,
}

impl Reads {
    pub(crate) fn len(&self) -> usize {
        self.queued.len() + self.round.as_ref().map_or(0, |r| r.reads.len()) + self.confirmed.len()
    }

    fn all(&self) -> impl Iterator<Item = &PendingRead> {
        self.queued
            .iter()
            .chain(self.round.iter().flat_map(|r| r.reads.iter()))
            .chain(self.confirmed.iter().map(|(_, r)| r))
    }

    pub(crate) fn any_deadline_before(&self, now_ms: u64) -> bool {
        self.all().any(|r| r.deadline_ms < now_ms)
    }

    /// Moves the reads of the round a ReadState answers to the confirmed stage.
    pub(crate) fn on_read_states(&mut self, states: Vec<ReadState>) {
        for rs in states {
            if self.round.as_ref().is_some_and(|r| r.ctx == rs.request_ctx) {
                let round = self.round.take().expect("checked");
                self.confirmed
                    .extend(round.reads.into_iter().map(|r| (rs.index, r)));
            }
        }
    }

    /// The leader changed: the round in flight fails (its reads are returned).
    pub(crate) fn on_leader_change(&mut self) -> Vec<ClientRequestId> {
        self.round
            .take()
            .map(|r| r.reads.into_iter().map(|r| r.client).collect())
            .unwrap_or_default()
    }

    /// Removes and returns the reads whose deadline has come.
    pub(crate) fn expire(&mut self, now_ms: u64) -> Vec<ClientRequestId> {
        let mut late = Vec::new();
        let mut keep = |r: &PendingRead| {
            if r.deadline_ms <= now_ms {
                late.push(r.client);
                false
            } else {
                true
            }
        };
        self.queued.retain(&mut keep);
        if let Some(round) = &mut self.round {
            round.reads.retain(&mut keep);
        }
        self.confirmed.retain(|(_, r)| keep(r));
        if self.round.as_ref().is_some_and(|r| r.reads.is_empty()) {
            self.round = None;
        }
        late
    }
}

impl Node {
    pub(crate) fn enqueue_read(&mut self, client: ClientRequestId, kind: ReadKind, auth: Option<AuthInfo>) {
        let deadline_ms = self.now_ms + self.config.request_timeout_ms;
        self.reads.queued.push(PendingRead {
            client,
            kind,
            auth,
            deadline_ms,
        });
        self.start_read_round();
    }

    /// Starts a round for the queued reads unless one is in flight.
    fn start_read_round(&mut self) {
        if self.reads.round.is_some() || self.reads.queued.is_empty() {
            return;
        }
        let ctx = self.reads.next_ctx.to_be_bytes().to_vec();
        self.reads.next_ctx += 1;
        if self.raft.read_index(ctx.clone()).is_ok() {
            let reads = std::mem::take(&mut self.reads.queued);
            self.reads.round = Some(Round {
                ctx,
                reads,
                sent_ms: self.now_ms,
            });
        }
    }

    /// On a tick: resend a round left unanswered, or start one that could not start.
    pub(crate) fn retry_reads(&mut self) {
        let stale = self
            .reads
            .round
            .as_ref()
            .is_some_and(|r| r.sent_ms + READ_INDEX_RETRY_MS <= self.now_ms);
        if stale {
            let ctx = self.reads.next_ctx.to_be_bytes().to_vec();
            if self.raft.read_index(ctx.clone()).is_ok() {
                self.reads.next_ctx += 1;
                let round = self.reads.round.as_mut().expect("checked");
                round.ctx = ctx;
                round.sent_ms = self.now_ms;
            }
        }
        self.start_read_round();
    }

    /// Serves every confirmed read whose index is applied, then starts the next round.
    pub(crate) fn serve_confirmed_reads(&mut self) {
        let applied = self.applied_index;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads.confirmed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.reads.confirmed = waiting;
        for (_, read) in ready {
            let result = self.serve_read_as(&read.kind, read.auth.as_ref());
            self.respond(read.client, result);
        }
        self.start_read_round();
    }

    /// Serves a read from the local state, if `auth`'s user may read it there.
    pub(crate) fn serve_read_as(
        &mut self,
        kind: &ReadKind,
        auth: Option<&AuthInfo>,
    ) -> Result<Response, EtcdError> {
        self.check_read(kind, auth)?;
        self.serve_read(kind)
    }

    /// Serves a read from the local state (serializable, or confirmed).
    pub(crate) fn serve_read(&mut self, kind: &ReadKind) -> Result<Response, EtcdError> {
        match kind {
            ReadKind::Range(r) => self.store.range(r).map(|mut resp| {
                self.count_mvcc(&MvccCounts {
                    ranges: 1,
                    ..MvccCounts::default()
                });
                resp.header = self.header(resp.header.map_or(0, |h| h.revision));
                Response::Range(resp)
            }),
            ReadKind::Txn(t) => {
                let lessor = &self.lessor;
                let applied = self.store.txn(t, &|id| lessor.contains(id))?;
                debug_assert!(applied.events.is_empty(), "a read-only txn wrote");
                self.count_mvcc(&MvccCounts::of_txn(t, &applied.response));
                let mut resp = applied.response;
                resp.header = self.header(resp.header.map_or(0, |h| h.revision));
                Ok(Response::Txn(resp))
            }
            ReadKind::MemberList => Ok(Response::MemberList(MemberListResponse {
                header: self.header(0),
                members: self.members.values().cloned().collect(),
            })),
            ReadKind::PasswordCheck(name) => self.auth.password_check(name).map(Response::AuthPasswordCheck),
        }
    }
}
