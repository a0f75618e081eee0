//! The services the proxy passes through unchanged: Cluster, Maintenance, Auth, Lock and
//! Election (etcd's `grpcproxy/{cluster,maintenance,auth,lock,election}.go`). Each call
//! goes to the current upstream endpoint ([`super::upstream`]); the server-streaming
//! calls (Snapshot, Observe) stream the upstream's answer back as it comes.
//!
//! As in etcd, `--namespace` does not apply to these: lock and election names are the
//! cluster's.

use std::pin::Pin;

use detcd_proto::etcdserverpb::auth_client::AuthClient;
use detcd_proto::etcdserverpb::auth_server::Auth;
use detcd_proto::etcdserverpb::cluster_client::ClusterClient;
use detcd_proto::etcdserverpb::cluster_server::Cluster;
use detcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd_proto::etcdserverpb::maintenance_server::Maintenance;
use detcd_proto::etcdserverpb::*;
use detcd_proto::v3electionpb::election_client::ElectionClient;
use detcd_proto::v3electionpb::election_server::Election;
use detcd_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse,
    ResignRequest, ResignResponse,
};
use detcd_proto::v3lockpb::lock_client::LockClient;
use detcd_proto::v3lockpb::lock_server::Lock;
use detcd_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request as Rpc, Response as Reply, Status};

use super::upstream::{client, Retry};
use super::Proxy;

/// `impl $service for Proxy`: each listed unary method passed through with `$client`'s
/// method of the same name (and `$retry` as [`Retry`] says), then the items in `extra`.
/// (One macro for the whole impl: `async_trait` must see the methods expanded.)
macro_rules! pass {
    ($service:ident, $client:ident, [$($method:ident($req:ty) -> $resp:ty, $retry:ident;)*] $($extra:tt)*) => {
        #[tonic::async_trait]
        impl $service for Proxy {
            $(
                async fn $method(&self, r: Rpc<$req>) -> Result<Reply<$resp>, Status> {
                    self.up
                        .unary(r, Retry::$retry, |ch, r| async move { client!($client, ch).$method(r).await })
                        .await
                }
            )*
            $($extra)*
        }
    };
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pass!(Cluster, ClusterClient, [
    member_add(MemberAddRequest) -> MemberAddResponse, Write;
    member_remove(MemberRemoveRequest) -> MemberRemoveResponse, Write;
    member_update(MemberUpdateRequest) -> MemberUpdateResponse, Write;
    member_promote(MemberPromoteRequest) -> MemberPromoteResponse, Write;
]
    /// etcd's proxy: with an advertised URL (`--advertise-client-url`, set by default) the
    /// proxy lists the proxies registered under `--resolver-prefix`, or else itself, named
    /// after the host, so clients that sync their endpoints from the member list keep
    /// talking to proxies; with an empty one, the cluster's members.
    async fn member_list(&self, r: Rpc<MemberListRequest>) -> Result<Reply<MemberListResponse>, Status> {
        if !self.advertise.is_empty() && !self.resolver_prefix.is_empty() {
            let members = super::register::registered(&self.up, &self.ns, &self.resolver_prefix).await?;
            if !members.is_empty() {
                return Ok(Reply::new(MemberListResponse {
                    members,
                    ..MemberListResponse::default()
                }));
            }
        }
        if !self.advertise.is_empty() {
            return Ok(Reply::new(MemberListResponse {
                members: vec![Member {
                    name: super::hostname(),
                    client_ur_ls: vec![self.advertise.clone()],
                    ..Member::default()
                }],
                ..MemberListResponse::default()
            }));
        }
        self.up
            .unary(r, Retry::Read, |ch, r| async move { client!(ClusterClient, ch).member_list(r).await })
            .await
    }
);

pass!(Maintenance, MaintenanceClient, [
    alarm(AlarmRequest) -> AlarmResponse, Write;
    status(StatusRequest) -> StatusResponse, Read;
    defragment(DefragmentRequest) -> DefragmentResponse, Write;
    hash(HashRequest) -> HashResponse, Read;
    hash_kv(HashKvRequest) -> HashKvResponse, Read;
    move_leader(MoveLeaderRequest) -> MoveLeaderResponse, Write;
    downgrade(DowngradeRequest) -> DowngradeResponse, Write;
]
    type SnapshotStream = Streamed<SnapshotResponse>;

    async fn snapshot(&self, r: Rpc<SnapshotRequest>) -> Result<Reply<Self::SnapshotStream>, Status> {
        let upstream = self
            .up
            .unary(r, Retry::Read, |ch, r| async move { client!(MaintenanceClient, ch).snapshot(r).await })
            .await?
            .into_inner();
        Ok(Reply::new(Box::pin(upstream)))
    }
);

pass!(Auth, AuthClient, [
    auth_enable(AuthEnableRequest) -> AuthEnableResponse, Write;
    auth_disable(AuthDisableRequest) -> AuthDisableResponse, Write;
    auth_status(AuthStatusRequest) -> AuthStatusResponse, Read;
    authenticate(AuthenticateRequest) -> AuthenticateResponse, Write;
    user_add(AuthUserAddRequest) -> AuthUserAddResponse, Write;
    user_get(AuthUserGetRequest) -> AuthUserGetResponse, Read;
    user_list(AuthUserListRequest) -> AuthUserListResponse, Read;
    user_delete(AuthUserDeleteRequest) -> AuthUserDeleteResponse, Write;
    user_change_password(AuthUserChangePasswordRequest) -> AuthUserChangePasswordResponse, Write;
    user_grant_role(AuthUserGrantRoleRequest) -> AuthUserGrantRoleResponse, Write;
    user_revoke_role(AuthUserRevokeRoleRequest) -> AuthUserRevokeRoleResponse, Write;
    role_add(AuthRoleAddRequest) -> AuthRoleAddResponse, Write;
    role_get(AuthRoleGetRequest) -> AuthRoleGetResponse, Read;
    role_list(AuthRoleListRequest) -> AuthRoleListResponse, Read;
    role_delete(AuthRoleDeleteRequest) -> AuthRoleDeleteResponse, Write;
    role_grant_permission(AuthRoleGrantPermissionRequest) -> AuthRoleGrantPermissionResponse, Write;
    role_revoke_permission(AuthRoleRevokePermissionRequest) -> AuthRoleRevokePermissionResponse, Write;
]);

pass!(Lock, LockClient, [
    lock(LockRequest) -> LockResponse, Write;
    unlock(UnlockRequest) -> UnlockResponse, Write;
]);

pass!(Election, ElectionClient, [
    campaign(CampaignRequest) -> CampaignResponse, Write;
    proclaim(ProclaimRequest) -> ProclaimResponse, Write;
    leader(LeaderRequest) -> LeaderResponse, Read;
    resign(ResignRequest) -> ResignResponse, Write;
]
    type ObserveStream = Streamed<LeaderResponse>;

    async fn observe(&self, r: Rpc<LeaderRequest>) -> Result<Reply<Self::ObserveStream>, Status> {
        let upstream = self
            .up
            .unary(r, Retry::Read, |ch, r| async move { client!(ElectionClient, ch).observe(r).await })
            .await?
            .into_inner();
        Ok(Reply::new(Box::pin(upstream)))
    }
);
