//! `etcdserverpb.Lease`: Grant, Revoke, the KeepAlive stream, TimeToLive, Leases.
//!
//! KeepAlive: each request on the stream is one renewal through the node (which forwards
//! it to the leader when this member follows). A lease the leader does not know is
//! answered with `TTL = 0` and the stream stays open, as etcd does; any other error ends
//! the stream with that error.

use std::pin::Pin;

use detcd_core::error as etcd_error;
use detcd_core::node::{Request, Response};
use detcd_proto::etcdserverpb::lease_server::Lease;
use detcd_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request as Rpc, Response as Reply, Status, Streaming};

use super::{mismatch, status, unwrap_response, Services};

/// Keepalive answers one stream buffers for a client that reads slowly.
pub const KEEPALIVE_RESPONSES_MAX: usize = 16;

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for Services {
    async fn lease_grant(&self, r: Rpc<LeaseGrantRequest>) -> Result<Reply<LeaseGrantResponse>, Status> {
        unwrap_response!(self.call(Request::LeaseGrant(r.into_inner())).await, LeaseGrant)
    }

    async fn lease_revoke(&self, r: Rpc<LeaseRevokeRequest>) -> Result<Reply<LeaseRevokeResponse>, Status> {
        unwrap_response!(self.call(Request::LeaseRevoke(r.into_inner())).await, LeaseRevoke)
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        r: Rpc<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Reply<KeepAliveStream>, Status> {
        self.check_require_leader(&r)?;
        let mut inbound = r.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(KEEPALIVE_RESPONSES_MAX);
        let services = self.clone();
        // The stream's task outlives this call's scope: it takes the credentials along.
        let credentials = super::current_credentials();
        tokio::spawn(async move {
            // Ends when the client closes its side or goes away, or on an error.
            while let Ok(Some(request)) = inbound.message().await {
                let id = request.id;
                let request = Request::LeaseKeepAlive(request);
                let answer = match services.handle.call_as(request, credentials.clone()).await {
                    Ok(Response::LeaseKeepAlive(r)) => Ok(r),
                    Ok(_) => Err(mismatch("LeaseKeepAlive")),
                    Err(e) if e == etcd_error::LEASE_NOT_FOUND => Ok(LeaseKeepAliveResponse {
                        header: Some(services.header()),
                        id,
                        ttl: 0,
                    }),
                    Err(e) => Err(status(e)),
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Reply::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        r: Rpc<LeaseTimeToLiveRequest>,
    ) -> Result<Reply<LeaseTimeToLiveResponse>, Status> {
        unwrap_response!(
            self.call(Request::LeaseTimeToLive(r.into_inner())).await,
            LeaseTimeToLive
        )
    }

    async fn lease_leases(&self, _r: Rpc<LeaseLeasesRequest>) -> Result<Reply<LeaseLeasesResponse>, Status> {
        unwrap_response!(self.call(Request::LeaseLeases).await, LeaseLeases)
    }
}
