//! `etcdserverpb.Auth`: every Auth RPC, plus the two things etcd's server does
//! around them outside raft: bcrypt (hashing a new password before proposing, so
//! no clear password reaches the WAL; comparing a password on Authenticate), on
//! tokio's blocking pool so a burst of logins does not stall the member's event
//! loop; and the random prefix of a simple token.

use base64::Engine;
use detcd_core::error as etcd_error;
use detcd_core::node::{AuthResponse, Request, Response};
use detcd_proto::detcdpb::{auth_raft_request::Request as Auth, InternalAuthenticate};
use detcd_proto::etcdserverpb::auth_server::Auth as AuthService;
use detcd_proto::etcdserverpb::*;
use rand::Rng;
use tonic::{Request as Rpc, Response as Reply, Status};

use super::{mismatch, status, Services};

/// Letters in a simple token's random prefix (etcd's `defaultSimpleTokenLength`).
pub const SIMPLE_TOKEN_PREFIX_LETTERS: usize = 16;
/// Times Authenticate checks the password again when the auth store changed
/// between the check and the token's apply (etcd retries without bound).
const AUTHENTICATE_ATTEMPTS_MAX: usize = 5;

/// A random `[a-zA-Z]` token prefix.
fn token_prefix() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..SIMPLE_TOKEN_PREFIX_LETTERS)
        .map(|_| char::from(LETTERS[rng.random_range(0..LETTERS.len())]))
        .collect()
}

/// An internal error (a worker thread lost) as a gRPC status.
fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("detcd: {e}"))
}

impl Services {
    /// Runs an Auth RPC through the member and unwraps its response.
    async fn auth(&self, request: Auth) -> Result<AuthResponse, Status> {
        match self.call(Request::Auth(request)).await? {
            Response::Auth(r) => Ok(r),
            _ => Err(mismatch("Auth")),
        }
    }

    /// The bcrypt hash to store for `password`, or the client's own pre-hashed
    /// one (etcd's `hashedPassword`: base64 of a bcrypt hash).
    async fn hash_password(&self, password: String, hashed: &str) -> Result<String, Status> {
        if !hashed.is_empty() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(hashed)
                .map_err(|_| status(etcd_error::AUTH_FAILED))?;
            return String::from_utf8(raw).map_err(|_| status(etcd_error::AUTH_FAILED));
        }
        let cost = self.bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(internal)?
            .map_err(internal)
    }

    /// etcd's `Authenticate`: a linearizable read of the user's hash, the bcrypt
    /// comparison off the event loop, then a token proposal carrying no password;
    /// again if the auth store moved in between. The token and the header of the
    /// proposal's answer (a JWT, signed without one, gets [`Services::header`]).
    async fn authenticate_user(
        &self,
        name: String,
        password: String,
    ) -> Result<(String, Option<ResponseHeader>), Status> {
        let mut last = etcd_error::AUTH_OLD_REVISION;
        for _ in 0..AUTHENTICATE_ATTEMPTS_MAX {
            let check = match self
                .call(Request::AuthPasswordCheck { name: name.clone() })
                .await?
            {
                Response::AuthPasswordCheck(c) => c,
                _ => return Err(mismatch("AuthPasswordCheck")),
            };
            let hash = String::from_utf8(check.hash).unwrap_or_default();
            let pw = password.clone();
            let matches = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
                .await
                .map_err(internal)?;
            if !matches {
                return Err(status(etcd_error::AUTH_FAILED));
            }
            // A JWT needs no proposal: it carries the revision the password was
            // checked at, and a later auth change makes it stale on every member.
            if let Some(signed) = self.tokens.sign(&name, check.revision) {
                return signed.map(|t| (t, Some(self.header()))).map_err(internal);
            }
            let request = Auth::Authenticate(InternalAuthenticate {
                name: name.clone(),
                simple_token: token_prefix(),
                checked_revision: check.revision,
            });
            match self.handle.call(Request::Auth(request)).await {
                Ok(Response::Auth(AuthResponse::Authenticate(a))) => return Ok((a.token, a.header)),
                Ok(_) => return Err(mismatch("Authenticate")),
                Err(e) if e == etcd_error::AUTH_OLD_REVISION => last = e,
                Err(e) => return Err(status(e)),
            }
        }
        Err(status(last))
    }
}

/// `Ok(Reply)` of the [`AuthResponse`] variant `$variant`.
macro_rules! auth_reply {
    ($result:expr, $variant:ident) => {
        match $result? {
            AuthResponse::$variant(r) => Ok(Reply::new(r)),
            _ => Err(mismatch(stringify!($variant))),
        }
    };
}

#[tonic::async_trait]
impl AuthService for Services {
    async fn auth_enable(&self, r: Rpc<AuthEnableRequest>) -> Result<Reply<AuthEnableResponse>, Status> {
        auth_reply!(self.auth(Auth::Enable(r.into_inner())).await, Enable)
    }

    async fn auth_disable(&self, r: Rpc<AuthDisableRequest>) -> Result<Reply<AuthDisableResponse>, Status> {
        auth_reply!(self.auth(Auth::Disable(r.into_inner())).await, Disable)
    }

    async fn auth_status(&self, r: Rpc<AuthStatusRequest>) -> Result<Reply<AuthStatusResponse>, Status> {
        auth_reply!(self.auth(Auth::Status(r.into_inner())).await, Status)
    }

    async fn authenticate(&self, r: Rpc<AuthenticateRequest>) -> Result<Reply<AuthenticateResponse>, Status> {
        let r = r.into_inner();
        let (token, header) = self.authenticate_user(r.name, r.password).await?;
        Ok(Reply::new(AuthenticateResponse { header, token }))
    }

    async fn user_add(&self, r: Rpc<AuthUserAddRequest>) -> Result<Reply<AuthUserAddResponse>, Status> {
        let mut r = r.into_inner();
        let no_password = r.options.is_some_and(|o| o.no_password);
        let password = std::mem::take(&mut r.password);
        r.hashed_password = if no_password {
            String::new()
        } else {
            self.hash_password(password, &r.hashed_password).await?
        };
        auth_reply!(self.auth(Auth::UserAdd(r)).await, UserAdd)
    }

    async fn user_get(&self, r: Rpc<AuthUserGetRequest>) -> Result<Reply<AuthUserGetResponse>, Status> {
        auth_reply!(self.auth(Auth::UserGet(r.into_inner())).await, UserGet)
    }

    async fn user_list(&self, r: Rpc<AuthUserListRequest>) -> Result<Reply<AuthUserListResponse>, Status> {
        auth_reply!(self.auth(Auth::UserList(r.into_inner())).await, UserList)
    }

    async fn user_delete(
        &self,
        r: Rpc<AuthUserDeleteRequest>,
    ) -> Result<Reply<AuthUserDeleteResponse>, Status> {
        auth_reply!(self.auth(Auth::UserDelete(r.into_inner())).await, UserDelete)
    }

    async fn user_change_password(
        &self,
        r: Rpc<AuthUserChangePasswordRequest>,
    ) -> Result<Reply<AuthUserChangePasswordResponse>, Status> {
        let mut r = r.into_inner();
        let password = std::mem::take(&mut r.password);
        r.hashed_password = self.hash_password(password, &r.hashed_password).await?;
        auth_reply!(self.auth(Auth::UserChangePassword(r)).await, UserChangePassword)
    }

    async fn user_grant_role(
        &self,
        r: Rpc<AuthUserGrantRoleRequest>,
    ) -> Result<Reply<AuthUserGrantRoleResponse>, Status> {
        auth_reply!(
            self.auth(Auth::UserGrantRole(r.into_inner())).await,
            UserGrantRole
        )
    }

    async fn user_revoke_role(
        &self,
        r: Rpc<AuthUserRevokeRoleRequest>,
    ) -> Result<Reply<AuthUserRevokeRoleResponse>, Status> {
        auth_reply!(
            self.auth(Auth::UserRevokeRole(r.into_inner())).await,
            UserRevokeRole
        )
    }

    async fn role_add(&self, r: Rpc<AuthRoleAddRequest>) -> Result<Reply<AuthRoleAddResponse>, Status> {
        auth_reply!(self.auth(Auth::RoleAdd(r.into_inner())).await, RoleAdd)
    }

    async fn role_get(&self, r: Rpc<AuthRoleGetRequest>) -> Result<Reply<AuthRoleGetResponse>, Status> {
        auth_reply!(self.auth(Auth::RoleGet(r.into_inner())).await, RoleGet)
    }

    async fn role_list(&self, r: Rpc<AuthRoleListRequest>) -> Result<Reply<AuthRoleListResponse>, Status> {
        auth_reply!(self.auth(Auth::RoleList(r.into_inner())).await, RoleList)
    }

    async fn role_delete(
        &self,
        r: Rpc<AuthRoleDeleteRequest>,
    ) -> Result<Reply<AuthRoleDeleteResponse>, Status> {
        auth_reply!(self.auth(Auth::RoleDelete(r.into_inner())).await, RoleDelete)
    }

    async fn role_grant_permission(
        &self,
        r: Rpc<AuthRoleGrantPermissionRequest>,
    ) -> Result<Reply<AuthRoleGrantPermissionResponse>, Status> {
        auth_reply!(
            self.auth(Auth::RoleGrantPermission(r.into_inner())).await,
            RoleGrantPermission
        )
    }

    async fn role_revoke_permission(
        &self,
        r: Rpc<AuthRoleRevokePermissionRequest>,
    ) -> Result<Reply<AuthRoleRevokePermissionResponse>, Status> {
        auth_reply!(
            self.auth(Auth::RoleRevokePermission(r.into_inner())).await,
            RoleRevokePermission
        )
    }
}
