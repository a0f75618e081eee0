//! `v3lockpb.Lock`: Lock and Unlock, served as etcd's `v3lock` server does with
//! concurrency's `Mutex`: the recipe is [`detcd_core::recipe::lock`], driven over
//! this member by [`super::recipe`].

use detcd_core::recipe::lock::{Lock as LockRecipe, Unlock as UnlockRecipe};
use detcd_proto::v3lockpb::lock_server::Lock;
use detcd_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request as Rpc, Response as Reply, Status};

use super::Services;

#[tonic::async_trait]
impl Lock for Services {
    async fn lock(&self, r: Rpc<LockRequest>) -> Result<Reply<LockResponse>, Status> {
        let who = super::current_credentials();
        let answer = self.drive(LockRecipe::new(r.get_ref()), &who).await?;
        Ok(Reply::new(answer))
    }

    async fn unlock(&self, r: Rpc<UnlockRequest>) -> Result<Reply<UnlockResponse>, Status> {
        let who = super::current_credentials();
        let answer = self.drive(UnlockRecipe::new(r.get_ref()), &who).await?;
        Ok(Reply::new(answer))
    }
}
