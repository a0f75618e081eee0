//! `v3electionpb.Election`: Campaign, Proclaim, Leader, Observe, Resign, served as
//! etcd's `v3election` server does with concurrency's `Election`: the recipes are
//! [`detcd_core::recipe::election`], driven over this member by [`super::recipe`]
//! (Observe's stream by [`Services::observe_into`] here).

use std::pin::Pin;

use detcd_core::node::Credentials;
use detcd_core::recipe::election::{Campaign, Leader, Observe, ObserveAction, Proclaim, Resign};
use detcd_proto::v3electionpb::election_server::Election;
use detcd_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse,
    ResignRequest, ResignResponse,
};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request as Rpc, Response as Reply, Status};

use super::recipe::recipe_status;
use super::Services;

/// Leader changes an Observe stream buffers for a slow reader.
const OBSERVE_RESPONSES_MAX: usize = 16;

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for Services {
    async fn campaign(&self, r: Rpc<CampaignRequest>) -> Result<Reply<CampaignResponse>, Status> {
        let who = super::current_credentials();
        let answer = self.drive(Campaign::new(r.get_ref()), &who).await?;
        Ok(Reply::new(answer))
    }

    async fn proclaim(&self, r: Rpc<ProclaimRequest>) -> Result<Reply<ProclaimResponse>, Status> {
        let who = super::current_credentials();
        let answer = self.drive(Proclaim::new(r.into_inner()), &who).await?;
        Ok(Reply::new(answer))
    }

    async fn leader(&self, r: Rpc<LeaderRequest>) -> Result<Reply<LeaderResponse>, Status> {
        let who = super::current_credentials();
        let answer = self.drive(Leader::new(r.get_ref()), &who).await?;
        Ok(Reply::new(answer))
    }

    type ObserveStream = ObserveStream;

    async fn observe(&self, r: Rpc<LeaderRequest>) -> Result<Reply<ObserveStream>, Status> {
        let who = super::current_credentials();
        let observe = Observe::new(r.get_ref());
        let (tx, rx) = tokio::sync::mpsc::channel(OBSERVE_RESPONSES_MAX);
        let services = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                outcome = services.observe_into(observe, &who, &tx) => {
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
        let answer = self.drive(Resign::new(r.into_inner()), &who).await?;
        Ok(Reply::new(answer))
    }
}

impl Services {
    /// Drives `observe` until its observer goes away or it fails.
    async fn observe_into(
        &self,
        mut observe: Observe,
        who: &Credentials,
        tx: &tokio::sync::mpsc::Sender<Result<LeaderResponse, Status>>,
    ) -> Result<(), Status> {
        let stopped = || super::status(detcd_core::error::STOPPED);
        let mut watch = None;
        let mut action = observe.start();
        loop {
            action = match action {
                ObserveAction::Call(request) => observe.on_answer(self.call_with(request, who).await?),
                ObserveAction::Watch { key, prefix, from } => {
                    let opened = watch.insert(self.watch_key(&key, prefix, from, who).await?);
                    observe.on_events(opened.recv().await.ok_or_else(stopped)?)
                }
                ObserveAction::NextEvents => {
                    let current = watch.as_mut().ok_or_else(stopped)?;
                    observe.on_events(current.recv().await.ok_or_else(stopped)?)
                }
                ObserveAction::Emit(leader) => {
                    if tx.send(Ok(leader)).await.is_err() {
                        return Ok(());
                    }
                    observe.on_emitted()
                }
                ObserveAction::Failed(e) => return Err(recipe_status(&e)),
            };
        }
    }
}
