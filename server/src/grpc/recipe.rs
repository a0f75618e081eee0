//! The driver of the Lock and Election services' recipes
//! ([`detcd_core::recipe`], the state machines the simulator drives too) over this
//! member's own KV, lease and watch (no client connection).
//!
//! Every request goes through [`Services::call_with`] with the caller's credentials,
//! so auth applies as for a client's own KV calls. Its errors come back as etcd's
//! server gets them from its in-process client: plain errors, so gRPC code Unknown
//! with etcd's message (`etcdserver: requested lease not found`, code 2). A wait for
//! a key's deletion is a watch from the revision the recipe names. A recipe stopped
//! with its session key still armed (an error, or the caller went away) deletes it,
//! as etcd's server does for an abandoned Lock or Campaign.

use detcd_core::node::{Credentials, Request, Response};
use detcd_core::recipe::{Action, Recipe, RecipeError};
use detcd_io::driver::WatchStreamRequest;
use detcd_proto::etcdserverpb::WatchCreateRequest;
use detcd_proto::mvccpb::event::EventType;
use tonic::Status;

use super::{status, Services};

impl Services {
    /// Serves `request` as `credentials` (a task outliving the request's scope).
    pub(super) async fn call_with(
        &self,
        request: Request,
        credentials: &Credentials,
    ) -> Result<Response, Status> {
        self.handle
            .call_as(request, credentials.clone())
            .await
            .map_err(|e| Status::unknown(e.message))
    }

    /// Runs `recipe` to its answer as `who`.
    pub(super) async fn drive<R: Recipe>(
        &self,
        mut recipe: R,
        who: &Credentials,
    ) -> Result<R::Output, Status> {
        let mut guard = DeleteOnDrop::new(self.clone(), who.clone());
        let mut action = recipe.start();
        loop {
            guard.key = recipe.cleanup_key().map(<[u8]>::to_vec);
            action = match action {
                Action::Call(request) => recipe.on_answer(self.call_with(request, who).await?),
                Action::WaitDeleted { key, revision } => {
                    self.wait_delete(&key, revision, who).await?;
                    recipe.on_deleted()
                }
                Action::Done(result) => {
                    guard.key = recipe.cleanup_key().map(<[u8]>::to_vec);
                    return result.map_err(|e| recipe_status(&e));
                }
            };
        }
    }

    /// Waits for a delete of `key` at or after `revision`.
    async fn wait_delete(&self, key: &[u8], revision: i64, who: &Credentials) -> Result<(), Status> {
        let mut watch = self.watch_key(key, false, revision, who).await?;
        loop {
            let Some(response) = watch.recv().await else {
                return Err(status(detcd_core::error::STOPPED));
            };
            if response.canceled {
                return Err(Status::unknown(response.cancel_reason));
            }
            if response
                .events
                .iter()
                .any(|e| e.r#type == EventType::Delete as i32)
            {
                return Ok(());
            }
        }
    }

    /// A watch on `key` (or the prefix `key` with `prefix`) from `revision`.
    pub(super) async fn watch_key(
        &self,
        key: &[u8],
        prefix: bool,
        revision: i64,
        who: &Credentials,
    ) -> Result<detcd_io::driver::WatchStream, Status> {
        let mut watch = self.handle.open_watch_stream().await;
        watch.set_credentials(who.clone());
        let create = WatchCreateRequest {
            key: key.to_vec(),
            range_end: if prefix {
                detcd_core::mvcc::prefix_end(key)
            } else {
                Vec::new()
            },
            start_revision: revision,
            ..WatchCreateRequest::default()
        };
        watch
            .send(WatchStreamRequest::Create(create))
            .await
            .map_err(|e| Status::unknown(e.message))?;
        Ok(watch)
    }
}

/// A recipe's error as etcd's server answers it: code Unknown with etcd's words
/// (an answer of the wrong kind is an internal mismatch).
pub(super) fn recipe_status(e: &RecipeError) -> Status {
    match e {
        RecipeError::Mismatch(what) => super::mismatch(what),
        e => Status::unknown(e.message()),
    }
}

/// Deletes a session key when dropped with one: the cleanup of a Lock or Campaign
/// that did not complete.
struct DeleteOnDrop {
    services: Services,
    key: Option<Vec<u8>>,
    who: Credentials,
}

impl DeleteOnDrop {
    fn new(services: Services, who: Credentials) -> Self {
        Self {
            services,
            key: None,
            who,
        }
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let (services, who) = (self.services.clone(), self.who.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let delete = Request::DeleteRange(detcd_proto::etcdserverpb::DeleteRangeRequest {
                    key,
                    ..Default::default()
                });
                let _ = services.call_with(delete, &who).await;
            });
        }
    }
}
