//! `v3lockpb.Lock`: Lock and Unlock, served as etcd's `v3lock` server does with
//! concurrency's `Mutex` ([`super::recipe`]).
//!
//! Lock: the session lease is the request's (a new 60 s lease when it has none);
//! the key `<name>/<lease hex>` is created with it unless it exists; the holder is the
//! key of lowest create revision; a waiter waits for every older key's deletion, then
//! checks that its own key still exists (a lease that expired while waiting lost its
//! place: `mutex: session is expired`). A Lock abandoned while waiting (the client
//! went away) deletes its key, as etcd's does. Unlock deletes the key it is given.

use detcd_core::node::Credentials;
use detcd_proto::etcdserverpb::{PutRequest, ResponseHeader, TxnRequest};
use detcd_proto::v3lockpb::lock_server::Lock;
use detcd_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request as Rpc, Response as Reply, Status};

use super::recipe::{created_at, get_op, owner_op, prefix_of, put_op, session_key, txn_kv};
use super::Services;

/// concurrency's `ErrSessionExpired`.
pub const SESSION_EXPIRED: &str = "mutex: session is expired";

#[tonic::async_trait]
impl Lock for Services {
    async fn lock(&self, r: Rpc<LockRequest>) -> Result<Reply<LockResponse>, Status> {
        let who = super::current_credentials();
        let request = r.into_inner();
        let lease = self.session_lease(request.lease, &who).await?;
        let (key, header) = self.acquire(&request.name, lease, &who).await?;
        Ok(Reply::new(LockResponse { header, key }))
    }

    async fn unlock(&self, r: Rpc<UnlockRequest>) -> Result<Reply<UnlockResponse>, Status> {
        let who = super::current_credentials();
        let header = self.delete_key(&r.into_inner().key, &who).await?;
        Ok(Reply::new(UnlockResponse { header }))
    }
}

impl Services {
    /// concurrency's `Mutex.Lock`: the held key and the header of the read that
    /// found it the owner.
    pub(super) async fn acquire(
        &self,
        name: &[u8],
        lease: i64,
        who: &Credentials,
    ) -> Result<(Vec<u8>, Option<ResponseHeader>), Status> {
        let prefix = prefix_of(name);
        let key = session_key(&prefix, lease);
        let txn = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![
                put_op(PutRequest {
                    key: key.clone(),
                    lease,
                    ..PutRequest::default()
                }),
                owner_op(&prefix),
            ],
            failure: vec![get_op(&key), owner_op(&prefix)],
        };
        let answer = self.txn(txn, who).await?;
        let mut my_rev = answer.header.as_ref().map_or(0, |h| h.revision);
        if !answer.succeeded {
            my_rev = txn_kv(&answer, 0).map_or(my_rev, |kv| kv.create_revision);
        }
        let owner = txn_kv(&answer, 1).map(|kv| kv.create_revision);
        if owner.is_none_or(|rev| rev == my_rev) {
            return Ok((key, answer.header));
        }
        // Dropped (the client went away) or failed: the key is deleted, as etcd's
        // Lock does on a failed wait.
        let mut guard = DeleteOnDrop::new(self.clone(), key.clone(), who.clone());
        let header = self.wait_deletes(&prefix, my_rev - 1, who).await?;
        let mine = self.range(get_key(&key), who).await?;
        if mine.kvs.is_empty() {
            return Err(Status::unknown(SESSION_EXPIRED));
        }
        guard.disarm();
        Ok((key, header))
    }
}

fn get_key(key: &[u8]) -> detcd_proto::etcdserverpb::RangeRequest {
    detcd_proto::etcdserverpb::RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

/// Deletes a session key when dropped armed: the cleanup of a Lock or Campaign that
/// did not complete.
pub(super) struct DeleteOnDrop {
    services: Services,
    key: Vec<u8>,
    who: Credentials,
    armed: bool,
}

impl std::fmt::Debug for DeleteOnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeleteOnDrop")
            .field("armed", &self.armed)
            .finish()
    }
}

impl DeleteOnDrop {
    pub(super) fn new(services: Services, key: Vec<u8>, who: Credentials) -> Self {
        Self {
            services,
            key,
            who,
            armed: true,
        }
    }

    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (services, key, who) = (
            self.services.clone(),
            std::mem::take(&mut self.key),
            self.who.clone(),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = services.delete_key(&key, &who).await;
            });
        }
    }
}
