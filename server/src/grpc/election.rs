//! `v3electionpb.Election`: Campaign, Proclaim, Leader, Observe, Resign, served as
//! etcd's `v3election` server does with concurrency's `Election` ([`super::recipe`]).
//!
//! A candidate's key is `<name>/<lease hex>` holding its value; the leader is the key
//! of lowest create revision. Campaign waits until every older key is gone (a
//! Campaign abandoned while waiting resigns); Proclaim and Resign act only while the
//! leader key still has the create revision it was won with (else Proclaim answers
//! `election: not leader`); Leader answers `election: no leader` when nobody
//! campaigns; Observe streams the leader's value each time it changes, in order.
//! Requests without their `leader` field get etcd's `"leader" field must be provided`.

use std::pin::Pin;

use detcd_core::node::Credentials;
use detcd_proto::etcdserverpb::{PutRequest, TxnRequest};
use detcd_proto::mvccpb::event::EventType;
use detcd_proto::v3electionpb::election_server::Election;
use detcd_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request as Rpc, Response as Reply, Status};

use super::lock::DeleteOnDrop;
use super::recipe::{
    created_at, delete_op, get_op, prefix_of, put_op, session_key, txn_kv, NOT_LEADER, NO_LEADER,
};
use super::Services;

/// etcd's `ErrMissingLeaderKey`.
pub const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

/// Leader changes an Observe stream buffers for a slow reader.
const OBSERVE_RESPONSES_MAX: usize = 16;

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for Services {
    async fn campaign(&self, r: Rpc<CampaignRequest>) -> Result<Reply<CampaignResponse>, Status> {
        let who = super::current_credentials();
        let request = r.into_inner();
        let lease = self.session_lease(request.lease, &who).await?;
        let prefix = prefix_of(&request.name);
        let key = session_key(&prefix, lease);
        let txn = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![put_op(PutRequest {
                key: key.clone(),
                value: request.value.clone(),
                lease,
                ..PutRequest::default()
            })],
            failure: vec![get_op(&key)],
        };
        let answer = self.txn(txn, &who).await?;
        let mut rev = answer.header.as_ref().map_or(0, |h| h.revision);
        let mut guard = DeleteOnDrop::new(self.clone(), key.clone(), who.clone());
        if !answer.succeeded {
            if let Some(kv) = txn_kv(&answer, 0) {
                rev = kv.create_revision;
                if kv.value != request.value {
                    self.proclaim_as(&key, rev, &request.value, &who).await?;
                }
            }
        }
        self.wait_deletes(&prefix, rev - 1, &who).await?;
        guard.disarm();
        Ok(Reply::new(CampaignResponse {
            header: answer.header,
            leader: Some(LeaderKey {
                name: request.name,
                key,
                rev,
                lease,
            }),
        }))
    }

    async fn proclaim(&self, r: Rpc<ProclaimRequest>) -> Result<Reply<ProclaimResponse>, Status> {
        let who = super::current_credentials();
        let request = r.into_inner();
        let leader = request
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let header = self
            .proclaim_as(&leader.key, leader.rev, &request.value, &who)
            .await?;
        Ok(Reply::new(ProclaimResponse { header }))
    }

    async fn leader(&self, r: Rpc<LeaderRequest>) -> Result<Reply<LeaderResponse>, Status> {
        let who = super::current_credentials();
        let prefix = prefix_of(&r.into_inner().name);
        let found = self.owner(&prefix, true, 0, &who).await?;
        let Some(kv) = found.kvs.into_iter().next() else {
            return Err(Status::unknown(NO_LEADER));
        };
        Ok(Reply::new(LeaderResponse {
            header: found.header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(&self, r: Rpc<LeaderRequest>) -> Result<Reply<ObserveStream>, Status> {
        let who = super::current_credentials();
        let prefix = prefix_of(&r.into_inner().name);
        let (tx, rx) = tokio::sync::mpsc::channel(OBSERVE_RESPONSES_MAX);
        let services = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                outcome = services.observe_into(&prefix, &who, &tx) => {
                    if let Err(e) = outcome {
                        let _ = tx.send(Err(e)).await;
                    }
                }
                () = tx.closed() => {}
            }
        });
        Ok(Reply::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(&self, r: Rpc<ResignRequest>) -> Result<Reply<ResignResponse>, Status> {
        let who = super::current_credentials();
        let leader = r
            .into_inner()
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let txn = TxnRequest {
            compare: vec![created_at(&leader.key, leader.rev)],
            success: vec![delete_op(&leader.key)],
            failure: Vec::new(),
        };
        let answer = self.txn(txn, &who).await?;
        Ok(Reply::new(ResignResponse {
            header: answer.header,
        }))
    }
}

impl Services {
    /// Puts `value` at the leader key won at create revision `rev`, keeping its lease.
    async fn proclaim_as(
        &self,
        key: &[u8],
        rev: i64,
        value: &[u8],
        who: &Credentials,
    ) -> Result<Option<detcd_proto::etcdserverpb::ResponseHeader>, Status> {
        let txn = TxnRequest {
            compare: vec![created_at(key, rev)],
            success: vec![put_op(PutRequest {
                key: key.to_vec(),
                value: value.to_vec(),
                ignore_lease: true,
                ..PutRequest::default()
            })],
            failure: Vec::new(),
        };
        let answer = self.txn(txn, who).await?;
        if !answer.succeeded {
            return Err(Status::unknown(NOT_LEADER));
        }
        Ok(answer.header)
    }

    /// concurrency's `Election.observe`: the current leader (or the first key put
    /// under the prefix), then each new value of its key until it is deleted; again.
    async fn observe_into(
        &self,
        prefix: &[u8],
        who: &Credentials,
        tx: &tokio::sync::mpsc::Sender<Result<LeaderResponse, Status>>,
    ) -> Result<(), Status> {
        let stopped = || super::status(detcd_core::error::STOPPED);
        loop {
            let found = self.owner(prefix, true, 0, who).await?;
            let (mut header, kv) = match found.kvs.into_iter().next() {
                Some(kv) => (found.header.unwrap_or_default(), kv),
                None => {
                    let from = found.header.as_ref().map_or(0, |h| h.revision);
                    let mut watch = self.watch_key(prefix, true, from, who).await?;
                    loop {
                        let response = watch.recv().await.ok_or_else(stopped)?;
                        if response.canceled {
                            return Err(Status::unknown(response.cancel_reason));
                        }
                        let put = response
                            .events
                            .into_iter()
                            .find(|e| e.r#type == EventType::Put as i32)
                            .and_then(|e| e.kv);
                        if let Some(kv) = put {
                            let mut header = response.header.unwrap_or_default();
                            header.revision = kv.mod_revision;
                            break (header, kv);
                        }
                    }
                }
            };
            let key = kv.key.clone();
            let from = header.revision + 1;
            if tx
                .send(Ok(LeaderResponse {
                    header: Some(header),
                    kv: Some(kv),
                }))
                .await
                .is_err()
            {
                return Ok(());
            }
            let mut watch = self.watch_key(&key, false, from, who).await?;
            'leader: loop {
                let response = watch.recv().await.ok_or_else(stopped)?;
                if response.canceled {
                    return Err(Status::unknown(response.cancel_reason));
                }
                if let Some(h) = response.header {
                    header = h;
                }
                for event in response.events {
                    if event.r#type == EventType::Delete as i32 {
                        break 'leader;
                    }
                    let changed = LeaderResponse {
                        header: Some(header),
                        kv: event.kv,
                    };
                    if tx.send(Ok(changed)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
