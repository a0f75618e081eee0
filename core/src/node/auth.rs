//! Auth in the member: who a client request comes from, the permission checks
//! and where each runs, and applying the Auth RPCs.
//!
//! Where checks run (as etcd): writes and Auth RPCs carry the user and the auth
//! revision they were authorised under in their raft entry ([`AuthHeader`]) and
//! are checked when the entry applies, against the auth state of that moment, on
//! every member alike. Reads (serializable, or linearizable once confirmed) are
//! checked against the member's applied auth state when served. Requests that
//! never reach raft (membership, MoveLeader, HashKV, alarms, lease keepalives,
//! TTL and lists, watch creates) are checked when they arrive.

use detcd_proto::authpb::permission::Type as PermType;
use detcd_proto::detcdpb::{auth_raft_request, raft_request, AuthHeader, InternalAuthenticate};
use detcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, request_op, AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse,
    AuthRoleDeleteResponse, AuthRoleGetResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionResponse, AuthStatusResponse, AuthUserAddResponse,
    AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGetResponse, AuthUserGrantRoleResponse,
    AuthUserListResponse, AuthUserRevokeRoleResponse, AuthenticateResponse, TxnRequest,
};

use super::io::{AuthResponse, Credentials, Request, Response};
use super::reads::ReadKind;
use super::Node;
use crate::auth::AuthInfo;
use crate::error::{self, EtcdError};

/// etcd's cancel reason for a watch create without READ permission.
pub const WATCH_PERMISSION_DENIED_REASON: &str =
    "rpc error: code = PermissionDenied desc = etcdserver: permission denied";

/// The header a client proposal carries (no user: the empty header, which a
/// store with auth enabled refuses as USER_EMPTY).
pub(crate) fn header_of(info: Option<&AuthInfo>) -> AuthHeader {
    info.map_or_else(AuthHeader::default, |i| AuthHeader {
        username: i.user.clone(),
        auth_revision: i.revision,
    })
}

impl Node {
    /// etcd's `AuthInfoFromCtx`: nothing while auth is off; a simple token must
    /// be installed here (its use renews it), else INVALID_AUTH_TOKEN.
    pub(crate) fn resolve_credentials(
        &mut self,
        credentials: &Credentials,
    ) -> Result<Option<AuthInfo>, EtcdError> {
        if !self.auth.is_enabled() {
            return Ok(None);
        }
        let revision = self.auth.revision();
        match credentials {
            Credentials::None => Ok(None),
            Credentials::Invalid => Err(error::INVALID_AUTH_TOKEN),
            Credentials::Token(token) => {
                let user = self
                    .tokens
                    .use_token(token, self.now_ms)
                    .ok_or(error::INVALID_AUTH_TOKEN)?;
                Ok(Some(AuthInfo { user, revision }))
            }
            Credentials::Verified { user, revision: r } => Ok(Some(AuthInfo {
                user: user.clone(),
                revision: r.unwrap_or(revision),
            })),
        }
    }

    /// The checks made when a request arrives (for requests that are not
    /// checked when applied or served).
    pub(crate) fn check_on_receipt(
        &self,
        request: &Request,
        info: Option<&AuthInfo>,
    ) -> Result<(), EtcdError> {
        if !self.auth.is_enabled() {
            return Ok(());
        }
        match request {
            Request::MemberAdd(_)
            | Request::MemberRemove(_)
            | Request::MemberUpdate(_)
            | Request::MemberPromote(_)
            | Request::HashKv(_)
            | Request::MoveLeader(_)
            | Request::AdminCheck => self.auth.check_admin(info),
            Request::Alarm(a) if a.action() != AlarmAction::Get => self.auth.check_admin(info),
            Request::LeaseTimeToLive(t) => self.check_lease_keys(info, &[t.id], PermType::Read),
            Request::LeaseLeases => self.check_lease_keys(info, &self.lessor.leases(), PermType::Read),
            Request::LeaseKeepAlive(k) => self.check_lease_keys(info, &[k.id], PermType::Write),
            _ => Ok(()),
        }
    }

    /// etcd's `checkLeaseTimeToLive` (READ) and `checkLeaseRenew` (WRITE): a
    /// user, who is admin or may access every key of the leases.
    fn check_lease_keys(
        &self,
        info: Option<&AuthInfo>,
        leases: &[i64],
        wanted: PermType,
    ) -> Result<(), EtcdError> {
        if info.is_none() {
            return Err(error::USER_EMPTY);
        }
        if self.auth.check_admin(info).is_ok() {
            return Ok(());
        }
        for &id in leases {
            for key in self.lessor.keys(id) {
                self.auth.check_op(info, &key, &[], wanted)?;
            }
        }
        Ok(())
    }

    /// READ on a watch's range.
    pub(crate) fn check_watch(
        &self,
        key: &[u8],
        range_end: &[u8],
        info: Option<&AuthInfo>,
    ) -> Result<(), EtcdError> {
        self.auth.check_op(info, key, range_end, PermType::Read)
    }

    /// The check of a read when it is served.
    pub(crate) fn check_read(&self, kind: &ReadKind, info: Option<&AuthInfo>) -> Result<(), EtcdError> {
        match kind {
            ReadKind::Range(r) => {
                let range_end: &[u8] =
                    if crate::mutation::is_active(crate::mutation::Mutation::AuthRangeEndIgnored) {
                        &[]
                    } else {
                        &r.range_end
                    };
                self.auth.check_op(info, &r.key, range_end, PermType::Read)
            }
            ReadKind::Txn(t) => self.check_txn(t, info),
            ReadKind::MemberList | ReadKind::PasswordCheck(_) => Ok(()),
        }
    }

    /// etcd's `CheckTxnAuth`: READ on every compare, and every op of both
    /// branches, nested txns included.
    fn check_txn(&self, txn: &TxnRequest, info: Option<&AuthInfo>) -> Result<(), EtcdError> {
        if !self.auth.is_enabled() {
            return Ok(());
        }
        for c in &txn.compare {
            self.auth.check_op(info, &c.key, &c.range_end, PermType::Read)?;
        }
        let failure: &[_] =
            if crate::mutation::is_active(crate::mutation::Mutation::AuthTxnFailureBranchUnchecked) {
                &[]
            } else {
                &txn.failure
            };
        for op in txn.success.iter().chain(failure) {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    self.auth.check_op(info, &r.key, &r.range_end, PermType::Read)?
                }
                Some(request_op::Request::RequestPut(p)) => {
                    self.check_put(p.key.as_slice(), p.prev_kv, p.lease, info)?
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    self.check_delete(&d.key, &d.range_end, d.prev_kv, info)?
                }
                Some(request_op::Request::RequestTxn(t)) => self.check_txn(t, info)?,
                None => {}
            }
        }
        Ok(())
    }

    /// Put: WRITE on the key, READ for prev_kv, WRITE on the keys already on
    /// the lease (etcd's `checkLeasePuts`).
    fn check_put(
        &self,
        key: &[u8],
        prev_kv: bool,
        lease: i64,
        info: Option<&AuthInfo>,
    ) -> Result<(), EtcdError> {
        self.auth.check_op(info, key, &[], PermType::Write)?;
        if prev_kv {
            self.auth.check_op(info, key, &[], PermType::Read)?;
        }
        if lease != 0 {
            self.check_lease_writes(lease, info)?;
        }
        Ok(())
    }

    fn check_lease_writes(&self, lease: i64, info: Option<&AuthInfo>) -> Result<(), EtcdError> {
        for key in self.lessor.keys(lease) {
            self.auth.check_op(info, &key, &[], PermType::Write)?;
        }
        Ok(())
    }

    fn check_delete(
        &self,
        key: &[u8],
        range_end: &[u8],
        prev_kv: bool,
        info: Option<&AuthInfo>,
    ) -> Result<(), EtcdError> {
        if prev_kv {
            self.auth.check_op(info, key, range_end, PermType::Read)?;
        }
        self.auth.check_op(info, key, range_end, PermType::Write)
    }

    /// The check of a replicated request when it applies. `header` is `None` for
    /// the member's own requests, which act as root.
    pub(crate) fn check_applied(
        &self,
        header: Option<&AuthHeader>,
        request: &raft_request::Request,
    ) -> Result<(), EtcdError> {
        let Some(header) = header else { return Ok(()) };
        if !self.auth.is_enabled() {
            return Ok(());
        }
        let info = AuthInfo {
            user: header.username.clone(),
            revision: header.auth_revision,
        };
        let info = Some(&info);
        match request {
            raft_request::Request::Put(p) => self.check_put(&p.key, p.prev_kv, p.lease, info),
            raft_request::Request::DeleteRange(d) => self.check_delete(&d.key, &d.range_end, d.prev_kv, info),
            raft_request::Request::Txn(t) => self.check_txn(t, info),
            raft_request::Request::LeaseRevoke(r) => self.check_lease_writes(r.id, info),
            raft_request::Request::Alarm(a) if a.action() != AlarmAction::Get => self.auth.check_admin(info),
            raft_request::Request::Auth(a) => match &a.request {
                Some(auth_raft_request::Request::Authenticate(_)) | None => Ok(()),
                // A user may read itself, and the roles it holds.
                Some(auth_raft_request::Request::UserGet(g)) if g.name == header.username => Ok(()),
                Some(auth_raft_request::Request::RoleGet(g))
                    if self.auth.has_role(&header.username, &g.role) =>
                {
                    Ok(())
                }
                Some(_) => self.auth.check_admin(info),
            },
            _ => Ok(()),
        }
    }

    /// Applies an Auth RPC at raft `index` (checked already).
    pub(crate) fn apply_auth(
        &mut self,
        request: auth_raft_request::Request,
        index: u64,
    ) -> Result<Response, EtcdError> {
        use auth_raft_request::Request as A;
        let header = self.header(self.store.revision());
        let auth = &mut self.auth;
        let response = match request {
            A::Enable(_) => {
                auth.enable()?;
                AuthResponse::Enable(AuthEnableResponse { header })
            }
            A::Disable(_) => {
                if auth.disable() {
                    self.tokens.clear();
                }
                AuthResponse::Disable(AuthDisableResponse { header })
            }
            A::Status(_) => AuthResponse::Status(AuthStatusResponse {
                header,
                enabled: auth.is_enabled(),
                auth_revision: auth.revision(),
            }),
            A::Authenticate(a) => {
                let token = self.install_token(&a, index)?;
                AuthResponse::Authenticate(AuthenticateResponse { header, token })
            }
            A::UserAdd(u) => {
                let no_password = u.options.is_some_and(|o| o.no_password);
                auth.user_add(&u.name, u.hashed_password.into_bytes(), no_password)?;
                AuthResponse::UserAdd(AuthUserAddResponse { header })
            }
            A::UserGet(g) => AuthResponse::UserGet(AuthUserGetResponse {
                header,
                roles: auth.user_get(&g.name)?,
            }),
            A::UserList(_) => AuthResponse::UserList(AuthUserListResponse {
                header,
                users: auth.user_list(),
            }),
            A::UserDelete(d) => {
                auth.user_delete(&d.name)?;
                self.tokens.invalidate_user(&d.name);
                AuthResponse::UserDelete(AuthUserDeleteResponse { header })
            }
            A::UserChangePassword(c) => {
                auth.user_change_password(&c.name, c.hashed_password.into_bytes())?;
                self.tokens.invalidate_user(&c.name);
                AuthResponse::UserChangePassword(AuthUserChangePasswordResponse { header })
            }
            A::UserGrantRole(g) => {
                auth.user_grant_role(&g.user, &g.role)?;
                AuthResponse::UserGrantRole(AuthUserGrantRoleResponse { header })
            }
            A::UserRevokeRole(r) => {
                auth.user_revoke_role(&r.name, &r.role)?;
                AuthResponse::UserRevokeRole(AuthUserRevokeRoleResponse { header })
            }
            A::RoleAdd(r) => {
                auth.role_add(&r.name)?;
                AuthResponse::RoleAdd(AuthRoleAddResponse { header })
            }
            A::RoleGet(g) => AuthResponse::RoleGet(AuthRoleGetResponse {
                header,
                perm: auth.role_get(&g.role)?,
            }),
            A::RoleList(_) => AuthResponse::RoleList(AuthRoleListResponse {
                header,
                roles: auth.role_list(),
            }),
            A::RoleDelete(d) => {
                auth.role_delete(&d.role)?;
                AuthResponse::RoleDelete(AuthRoleDeleteResponse { header })
            }
            A::RoleGrantPermission(g) => {
                auth.role_grant_permission(&g.name, g.perm.as_ref())?;
                AuthResponse::RoleGrantPermission(AuthRoleGrantPermissionResponse { header })
            }
            A::RoleRevokePermission(r) => {
                auth.role_revoke_permission(&r.role, &r.key, &r.range_end)?;
                AuthResponse::RoleRevokePermission(AuthRoleRevokePermissionResponse { header })
            }
        };
        Ok(Response::Auth(response))
    }

    /// etcd's apply of Authenticate: the user must still exist and the store be
    /// where the password was checked (else the driver checks again); every
    /// member installs `<prefix>.<index>`.
    fn install_token(&mut self, a: &InternalAuthenticate, index: u64) -> Result<String, EtcdError> {
        if !self.auth.is_enabled() {
            return Err(error::AUTH_NOT_ENABLED);
        }
        if self.auth.user(&a.name).is_none() {
            return Err(error::AUTH_FAILED);
        }
        if a.checked_revision != self.auth.revision() {
            return Err(error::AUTH_OLD_REVISION);
        }
        let token = format!("{}.{index}", a.simple_token);
        self.tokens.assign(&token, &a.name, self.now_ms);
        Ok(token)
    }
}
