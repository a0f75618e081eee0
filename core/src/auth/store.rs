//! The replicated auth store: users, roles, the enabled flag and the auth
//! revision, changed only by applying committed requests (etcd's `authStore`).
//!
//! Every change that etcd commits a revision for bumps [`AuthStore::revision`]
//! (enabling does not, as in etcd); a failed change leaves the store untouched.
//! Passwords arrive already hashed (bcrypt, computed outside core): the store
//! keeps the hash bytes only.

use std::collections::BTreeMap;

use detcd_proto::authpb::{permission::Type as PermType, Permission, Role, User, UserAddOptions};
use prost::Message;

use super::perms::{covers, is_valid_permission_range};
use crate::error::{self, EtcdError};

/// etcd's `rootUser` and `rootRole`.
pub const ROOT_USER: &str = "root";
pub const ROOT_ROLE: &str = "root";

/// Who sent a request and under which auth revision it was authorised (etcd's
/// `AuthInfo`): a simple token's user at the receiving member's revision, a JWT's
/// claims, or a verified client certificate's common name.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuthInfo {
    pub user: String,
    pub revision: u64,
}

/// What a password check needs from the store (read locally, compared outside
/// core): the bcrypt hash and the revision the check was made at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordCheck {
    pub hash: Vec<u8>,
    pub revision: u64,
}

/// Users, roles, enabled flag and revision.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthStore {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

impl Default for AuthStore {
    fn default() -> AuthStore {
        // etcd commits revision 1 when it creates the store.
        AuthStore {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

fn has_root_role(user: &User) -> bool {
    user.roles.iter().any(|r| r == ROOT_ROLE)
}

/// The permission etcd reports for role root: READWRITE on every key.
fn root_permission() -> Permission {
    Permission {
        perm_type: PermType::Readwrite as i32,
        key: Vec::new(),
        range_end: vec![0],
    }
}

impl AuthStore {
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    fn commit_revision(&mut self) {
        self.revision += 1;
    }

    /// etcd's `AuthEnable`: needs user root holding role root; enabling an
    /// enabled store does nothing.
    pub fn enable(&mut self) -> Result<(), EtcdError> {
        if self.enabled {
            return Ok(());
        }
        let root = self.users.get(ROOT_USER).ok_or(error::ROOT_USER_NOT_EXIST)?;
        if !has_root_role(root) {
            return Err(error::ROOT_ROLE_NOT_EXIST);
        }
        self.enabled = true;
        Ok(())
    }

    /// etcd's `AuthDisable`. True when it changed something (tokens are dropped then).
    pub fn disable(&mut self) -> bool {
        if !self.enabled {
            return false;
        }
        self.enabled = false;
        self.commit_revision();
        true
    }

    /// etcd's `UserAdd`; `hash` is the bcrypt hash (ignored for a no-password user).
    pub fn user_add(&mut self, name: &str, hash: Vec<u8>, no_password: bool) -> Result<(), EtcdError> {
        if name.is_empty() {
            return Err(error::USER_EMPTY);
        }
        if self.users.contains_key(name) {
            return Err(error::USER_ALREADY_EXIST);
        }
        let user = User {
            name: name.as_bytes().to_vec(),
            password: if no_password { Vec::new() } else { hash },
            roles: Vec::new(),
            options: Some(UserAddOptions { no_password }),
        };
        self.users.insert(name.to_string(), user);
        self.commit_revision();
        Ok(())
    }

    /// etcd's `UserDelete`; root cannot go while auth is on.
    pub fn user_delete(&mut self, name: &str) -> Result<(), EtcdError> {
        if self.enabled && name == ROOT_USER {
            return Err(error::INVALID_AUTH_MGMT);
        }
        self.users.remove(name).ok_or(error::USER_NOT_FOUND)?;
        self.commit_revision();
        Ok(())
    }

    /// etcd's `UserChangePassword` (a no-password user keeps no hash).
    pub fn user_change_password(&mut self, name: &str, hash: Vec<u8>) -> Result<(), EtcdError> {
        let user = self.users.get_mut(name).ok_or(error::USER_NOT_FOUND)?;
        let no_password = user.options.as_ref().is_some_and(|o| o.no_password);
        user.password = if no_password { Vec::new() } else { hash };
        self.commit_revision();
        Ok(())
    }

    /// etcd's `UserGrantRole`: the role must exist (root always does); granting a
    /// held role changes nothing.
    pub fn user_grant_role(&mut self, name: &str, role: &str) -> Result<(), EtcdError> {
        if !self.users.contains_key(name) {
            return Err(error::USER_NOT_FOUND);
        }
        if role != ROOT_ROLE && !self.roles.contains_key(role) {
            return Err(error::ROLE_NOT_FOUND);
        }
        let user = self.users.get_mut(name).expect("checked");
        if let Err(at) = user.roles.binary_search_by(|r| r.as_str().cmp(role)) {
            user.roles.insert(at, role.to_string());
            self.commit_revision();
        }
        Ok(())
    }

    /// etcd's `UserRevokeRole`; root keeps role root while auth is on.
    pub fn user_revoke_role(&mut self, name: &str, role: &str) -> Result<(), EtcdError> {
        if self.enabled && name == ROOT_USER && role == ROOT_ROLE {
            return Err(error::INVALID_AUTH_MGMT);
        }
        let user = self.users.get_mut(name).ok_or(error::USER_NOT_FOUND)?;
        let at = user
            .roles
            .iter()
            .position(|r| r == role)
            .ok_or(error::ROLE_NOT_GRANTED)?;
        user.roles.remove(at);
        self.commit_revision();
        Ok(())
    }

    /// etcd's `UserGet`: the user's roles.
    pub fn user_get(&self, name: &str) -> Result<Vec<String>, EtcdError> {
        Ok(self.users.get(name).ok_or(error::USER_NOT_FOUND)?.roles.clone())
    }

    /// etcd's `UserList`, sorted by name.
    pub fn user_list(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// etcd's `RoleAdd`.
    pub fn role_add(&mut self, name: &str) -> Result<(), EtcdError> {
        if name.is_empty() {
            return Err(error::ROLE_EMPTY);
        }
        if self.roles.contains_key(name) {
            return Err(error::ROLE_ALREADY_EXIST);
        }
        let role = Role {
            name: name.as_bytes().to_vec(),
            key_permission: Vec::new(),
        };
        self.roles.insert(name.to_string(), role);
        self.commit_revision();
        Ok(())
    }

    /// etcd's `RoleGet`: role root reports READWRITE on everything.
    pub fn role_get(&self, name: &str) -> Result<Vec<Permission>, EtcdError> {
        let role = self.roles.get(name).ok_or(error::ROLE_NOT_FOUND)?;
        if name == ROOT_ROLE {
            return Ok(vec![root_permission()]);
        }
        Ok(role.key_permission.clone())
    }

    /// etcd's `RoleList`, sorted by name.
    pub fn role_list(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    /// etcd's `RoleDelete`: the role also leaves every user holding it; role root
    /// cannot go while auth is on.
    pub fn role_delete(&mut self, name: &str) -> Result<(), EtcdError> {
        if self.enabled && name == ROOT_ROLE {
            return Err(error::INVALID_AUTH_MGMT);
        }
        self.roles.remove(name).ok_or(error::ROLE_NOT_FOUND)?;
        for user in self.users.values_mut() {
            user.roles.retain(|r| r != name);
        }
        self.commit_revision();
        Ok(())
    }

    /// etcd's `RoleGrantPermission`: a permission on the same key and range end
    /// replaces the old one's type; permissions stay sorted by key.
    pub fn role_grant_permission(&mut self, name: &str, perm: Option<&Permission>) -> Result<(), EtcdError> {
        let perm = perm.ok_or(error::PERMISSION_NOT_GIVEN)?;
        if !is_valid_permission_range(&perm.key, &perm.range_end) {
            return Err(error::INVALID_AUTH_MGMT);
        }
        let role = self.roles.get_mut(name).ok_or(error::ROLE_NOT_FOUND)?;
        let same = |p: &Permission| p.key == perm.key && p.range_end == perm.range_end;
        match role.key_permission.iter_mut().find(|p| same(p)) {
            Some(existing) => existing.perm_type = perm.perm_type,
            None => {
                let at = role.key_permission.partition_point(|p| p.key <= perm.key);
                role.key_permission.insert(at, perm.clone());
            }
        }
        self.commit_revision();
        Ok(())
    }

    /// etcd's `RoleRevokePermission`: removes the permission with exactly this key
    /// and range end.
    pub fn role_revoke_permission(
        &mut self,
        name: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError> {
        let role = self.roles.get_mut(name).ok_or(error::ROLE_NOT_FOUND)?;
        let before = role.key_permission.len();
        role.key_permission
            .retain(|p| p.key != key || p.range_end != range_end);
        if role.key_permission.len() == before {
            return Err(error::PERMISSION_NOT_GRANTED);
        }
        self.commit_revision();
        Ok(())
    }

    /// etcd's `CheckPassword` up to the hash comparison (done outside core).
    pub fn password_check(&self, name: &str) -> Result<PasswordCheck, EtcdError> {
        if !self.enabled {
            return Err(error::AUTH_NOT_ENABLED);
        }
        let user = self.users.get(name).ok_or(error::AUTH_FAILED)?;
        if user.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(error::AUTH_FAILED);
        }
        Ok(PasswordCheck {
            hash: user.password.clone(),
            revision: self.revision,
        })
    }

    /// etcd's `IsAdminPermitted`.
    pub fn check_admin(&self, info: Option<&AuthInfo>) -> Result<(), EtcdError> {
        if !self.enabled {
            return Ok(());
        }
        let info = info.filter(|i| !i.user.is_empty()).ok_or(error::USER_EMPTY)?;
        let user = self.users.get(&info.user).ok_or(error::USER_NOT_FOUND)?;
        if has_root_role(user) {
            Ok(())
        } else {
            Err(error::PERMISSION_DENIED)
        }
    }

    /// etcd's `isOpPermitted`: `wanted` access to `key` (`range_end` empty) or to
    /// `[key, range_end)`.
    pub fn check_op(
        &self,
        info: Option<&AuthInfo>,
        key: &[u8],
        range_end: &[u8],
        wanted: PermType,
    ) -> Result<(), EtcdError> {
        if !self.enabled {
            return Ok(());
        }
        let info = info.filter(|i| i.revision != 0).ok_or(error::USER_EMPTY)?;
        if info.revision < self.revision {
            return Err(error::AUTH_OLD_REVISION);
        }
        let user = self.users.get(&info.user).ok_or(error::PERMISSION_DENIED)?;
        if has_root_role(user) {
            return Ok(());
        }
        let perms = user
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.key_permission.iter());
        if covers(perms, wanted, key, range_end) {
            Ok(())
        } else {
            Err(error::PERMISSION_DENIED)
        }
    }

    /// Whether `user` holds `role` (a user may read its own roles).
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// A store holding `users` and `roles` (imported from etcd's backend); names
    /// that are not UTF-8 are refused.
    pub fn from_parts(
        enabled: bool,
        revision: u64,
        users: Vec<User>,
        roles: Vec<Role>,
    ) -> Result<AuthStore, String> {
        let name = |n: &[u8]| String::from_utf8(n.to_vec()).map_err(|_| "auth: name not UTF-8".to_string());
        let mut store = AuthStore {
            enabled,
            revision,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        };
        for u in users {
            store.users.insert(name(&u.name)?, u);
        }
        for r in roles {
            store.roles.insert(name(&r.name)?, r);
        }
        Ok(store)
    }

    /// Every user and role, in name order (for exports in etcd's format).
    pub fn users_and_roles(&self) -> (Vec<User>, Vec<Role>) {
        (
            self.users.values().cloned().collect(),
            self.roles.values().cloned().collect(),
        )
    }

    /// The store as bytes for the member's state snapshot: enabled flag, revision,
    /// then the users and roles (each a length-prefixed protobuf), in name order.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.enabled));
        out.extend_from_slice(&self.revision.to_le_bytes());
        let put = |out: &mut Vec<u8>, bytes: Vec<u8>| {
            out.extend_from_slice(
                &u32::try_from(bytes.len())
                    .expect("record under 4 GiB")
                    .to_le_bytes(),
            );
            out.extend_from_slice(&bytes);
        };
        out.extend_from_slice(
            &u32::try_from(self.users.len())
                .expect("users fit u32")
                .to_le_bytes(),
        );
        for u in self.users.values() {
            put(out, u.encode_to_vec());
        }
        out.extend_from_slice(
            &u32::try_from(self.roles.len())
                .expect("roles fit u32")
                .to_le_bytes(),
        );
        for r in self.roles.values() {
            put(out, r.encode_to_vec());
        }
    }

    /// Decodes what [`AuthStore::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<AuthStore, String> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let end = at
                .checked_add(n)
                .filter(|&e| e <= bytes.len())
                .ok_or("auth: truncated")?;
            let s = &bytes[at..end];
            at = end;
            Ok(s)
        };
        let enabled = match take(1)? {
            [0] => false,
            [1] => true,
            _ => return Err("auth: bad enabled flag".to_string()),
        };
        let revision = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let mut store = AuthStore {
            enabled,
            revision,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        };
        let count = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes")) as usize;
        for _ in 0..count(take(4)?) {
            let n = count(take(4)?);
            let user = User::decode(take(n)?).map_err(|e| format!("auth user: {e}"))?;
            let name = String::from_utf8(user.name.clone()).map_err(|_| "auth: user name not UTF-8")?;
            store.users.insert(name, user);
        }
        for _ in 0..count(take(4)?) {
            let n = count(take(4)?);
            let role = Role::decode(take(n)?).map_err(|e| format!("auth role: {e}"))?;
            let name = String::from_utf8(role.name.clone()).map_err(|_| "auth: role name not UTF-8")?;
            store.roles.insert(name, role);
        }
        if at != bytes.len() {
            return Err("auth: trailing bytes".to_string());
        }
        Ok(store)
    }
}
