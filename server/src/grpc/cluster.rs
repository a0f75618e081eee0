//! `etcdserverpb.Cluster`: MemberAdd (learners included), MemberRemove, MemberUpdate,
//! MemberList, MemberPromote.

use detcd_core::node::Request;
use detcd_proto::etcdserverpb::cluster_server::Cluster;
use detcd_proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest,
    MemberUpdateResponse,
};
use tonic::{Request as Rpc, Response as Reply, Status};

use super::{unwrap_response, Services};

#[tonic::async_trait]
impl Cluster for Services {
    async fn member_add(&self, r: Rpc<MemberAddRequest>) -> Result<Reply<MemberAddResponse>, Status> {
        unwrap_response!(self.call(Request::MemberAdd(r.into_inner())).await, MemberAdd)
    }

    async fn member_remove(
        &self,
        r: Rpc<MemberRemoveRequest>,
    ) -> Result<Reply<MemberRemoveResponse>, Status> {
        unwrap_response!(
            self.call(Request::MemberRemove(r.into_inner())).await,
            MemberRemove
        )
    }

    async fn member_update(
        &self,
        r: Rpc<MemberUpdateRequest>,
    ) -> Result<Reply<MemberUpdateResponse>, Status> {
        unwrap_response!(
            self.call(Request::MemberUpdate(r.into_inner())).await,
            MemberUpdate
        )
    }

    async fn member_list(&self, r: Rpc<MemberListRequest>) -> Result<Reply<MemberListResponse>, Status> {
        unwrap_response!(self.call(Request::MemberList(r.into_inner())).await, MemberList)
    }

    async fn member_promote(
        &self,
        r: Rpc<MemberPromoteRequest>,
    ) -> Result<Reply<MemberPromoteResponse>, Status> {
        unwrap_response!(
            self.call(Request::MemberPromote(r.into_inner())).await,
            MemberPromote
        )
    }
}
