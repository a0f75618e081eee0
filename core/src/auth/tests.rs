//! The auth store against a small model, and etcd's rules one by one.

use std::collections::BTreeMap;

use detcd_proto::authpb::{permission::Type as PermType, Permission};
use proptest::prelude::*;

use super::*;
use crate::error;

fn perm(kind: PermType, key: &str, range_end: &str) -> Permission {
    Permission {
        perm_type: kind as i32,
        key: key.as_bytes().to_vec(),
        range_end: range_end.as_bytes().to_vec(),
    }
}

fn info(user: &str, revision: u64) -> AuthInfo {
    AuthInfo {
        user: user.to_string(),
        revision,
    }
}

fn with_root() -> AuthStore {
    let mut s = AuthStore::default();
    s.user_add("root", b"hash".to_vec(), false).unwrap();
    s.user_grant_role("root", "root").unwrap();
    s.role_add("root").unwrap();
    s
}

#[test]
fn enable_needs_root_with_role_root() {
    let mut s = AuthStore::default();
    assert_eq!(s.enable(), Err(error::ROOT_USER_NOT_EXIST));
    s.user_add("root", b"h".to_vec(), false).unwrap();
    assert_eq!(s.enable(), Err(error::ROOT_ROLE_NOT_EXIST));
    s.user_grant_role("root", "root").unwrap();
    let rev = s.revision();
    assert_eq!(s.enable(), Ok(()));
    assert_eq!(s.revision(), rev, "etcd does not bump the revision on enable");
    assert!(s.disable());
    assert_eq!(s.revision(), rev + 1);
    assert!(!s.disable());
}

#[test]
fn root_is_protected_while_enabled() {
    let mut s = with_root();
    s.enable().unwrap();
    assert_eq!(s.user_delete("root"), Err(error::INVALID_AUTH_MGMT));
    assert_eq!(s.user_revoke_role("root", "root"), Err(error::INVALID_AUTH_MGMT));
    assert_eq!(s.role_delete("root"), Err(error::INVALID_AUTH_MGMT));
    s.disable();
    assert_eq!(s.role_delete("root"), Ok(()));
    assert_eq!(s.user_get("root"), Ok(vec![]));
}

#[test]
fn misuse_gets_etcds_errors() {
    let mut s = with_root();
    assert_eq!(s.user_add("", vec![], false), Err(error::USER_EMPTY));
    assert_eq!(s.user_add("root", vec![], false), Err(error::USER_ALREADY_EXIST));
    assert_eq!(s.role_add(""), Err(error::ROLE_EMPTY));
    assert_eq!(s.role_add("root"), Err(error::ROLE_ALREADY_EXIST));
    assert_eq!(s.user_grant_role("nobody", "root"), Err(error::USER_NOT_FOUND));
    assert_eq!(s.user_grant_role("root", "nope"), Err(error::ROLE_NOT_FOUND));
    assert_eq!(s.user_revoke_role("root", "nope"), Err(error::ROLE_NOT_GRANTED));
    assert_eq!(
        s.role_grant_permission("root", None),
        Err(error::PERMISSION_NOT_GIVEN)
    );
    let p = perm(PermType::Read, "b", "a");
    assert_eq!(
        s.role_grant_permission("root", Some(&p)),
        Err(error::INVALID_AUTH_MGMT)
    );
    let p = perm(PermType::Read, "a", "");
    assert_eq!(
        s.role_grant_permission("nope", Some(&p)),
        Err(error::ROLE_NOT_FOUND)
    );
    assert_eq!(
        s.role_revoke_permission("root", b"a", b""),
        Err(error::PERMISSION_NOT_GRANTED)
    );
    assert_eq!(s.password_check("root"), Err(error::AUTH_NOT_ENABLED));
    s.enable().unwrap();
    assert_eq!(s.password_check("ghost"), Err(error::AUTH_FAILED));
    s.user_add("cert-only", vec![], true).unwrap();
    assert_eq!(s.password_check("cert-only"), Err(error::AUTH_FAILED));
    assert_eq!(s.password_check("root").map(|c| c.hash), Ok(b"hash".to_vec()));
}

#[test]
fn permission_checks_follow_etcds_order() {
    let mut s = with_root();
    s.user_add("alice", b"h".to_vec(), false).unwrap();
    s.role_add("reader").unwrap();
    s.role_grant_permission("reader", Some(&perm(PermType::Read, "foo", "fop")))
        .unwrap();
    s.user_grant_role("alice", "reader").unwrap();
    let rev = s.revision();
    // Disabled: everything goes.
    assert_eq!(s.check_op(None, b"x", b"", PermType::Write), Ok(()));
    s.enable().unwrap();
    assert_eq!(
        s.check_op(None, b"foo", b"", PermType::Read),
        Err(error::USER_EMPTY)
    );
    assert_eq!(
        s.check_op(Some(&info("alice", rev - 1)), b"foo", b"", PermType::Read),
        Err(error::AUTH_OLD_REVISION)
    );
    assert_eq!(
        s.check_op(Some(&info("ghost", rev)), b"foo", b"", PermType::Read),
        Err(error::PERMISSION_DENIED)
    );
    assert_eq!(
        s.check_op(Some(&info("alice", rev)), b"foo1", b"", PermType::Read),
        Ok(())
    );
    assert_eq!(
        s.check_op(Some(&info("alice", rev)), b"foo", b"fop", PermType::Read),
        Ok(())
    );
    assert_eq!(
        s.check_op(Some(&info("alice", rev)), b"foo", b"", PermType::Write),
        Err(error::PERMISSION_DENIED)
    );
    assert_eq!(
        s.check_op(Some(&info("root", rev)), b"any", b"\0", PermType::Write),
        Ok(())
    );
    assert_eq!(
        s.check_admin(Some(&info("alice", rev))),
        Err(error::PERMISSION_DENIED)
    );
    assert_eq!(
        s.check_admin(Some(&info("ghost", rev))),
        Err(error::USER_NOT_FOUND)
    );
    assert_eq!(s.check_admin(None), Err(error::USER_EMPTY));
    assert_eq!(s.check_admin(Some(&info("root", 1))), Ok(()));
}

#[test]
fn role_get_of_root_reports_readwrite_on_everything() {
    let s = with_root();
    assert_eq!(s.role_get("root"), Ok(vec![perm(PermType::Readwrite, "", "\0")]));
}

#[test]
fn a_granted_permission_on_the_same_range_replaces_the_old_type() {
    let mut s = with_root();
    s.role_add("r").unwrap();
    s.role_grant_permission("r", Some(&perm(PermType::Read, "k", "")))
        .unwrap();
    s.role_grant_permission("r", Some(&perm(PermType::Read, "a", "c")))
        .unwrap();
    s.role_grant_permission("r", Some(&perm(PermType::Write, "k", "")))
        .unwrap();
    assert_eq!(
        s.role_get("r"),
        Ok(vec![
            perm(PermType::Read, "a", "c"),
            perm(PermType::Write, "k", "")
        ])
    );
}

/// Operations of the model test.
#[derive(Clone, Debug)]
enum Op {
    UserAdd(u8),
    UserDelete(u8),
    RoleAdd(u8),
    RoleDelete(u8),
    Grant(u8, u8),
    Revoke(u8, u8),
    Enable,
    Disable,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3u8).prop_map(Op::UserAdd),
        (0..3u8).prop_map(Op::UserDelete),
        (0..3u8).prop_map(Op::RoleAdd),
        (0..3u8).prop_map(Op::RoleDelete),
        (0..3u8, 0..3u8).prop_map(|(u, r)| Op::Grant(u, r)),
        (0..3u8, 0..3u8).prop_map(|(u, r)| Op::Revoke(u, r)),
        Just(Op::Enable),
        Just(Op::Disable),
    ]
}

/// Name 0 is root, so the root rules are exercised.
fn name(n: u8) -> &'static str {
    ["root", "u1", "u2"][n as usize]
}

#[derive(Default)]
struct Model {
    enabled: bool,
    revision: u64,
    users: BTreeMap<&'static str, Vec<&'static str>>,
    roles: Vec<&'static str>,
}

impl Model {
    /// Returns whether the op succeeded.
    fn apply(&mut self, op: &Op) -> bool {
        let changed = match *op {
            Op::UserAdd(u) => {
                let fresh = !self.users.contains_key(name(u));
                if fresh {
                    self.users.insert(name(u), vec![]);
                }
                fresh
            }
            Op::UserDelete(u) => !(self.enabled && u == 0) && self.users.remove(name(u)).is_some(),
            Op::RoleAdd(r) => {
                let fresh = !self.roles.contains(&name(r));
                if fresh {
                    self.roles.push(name(r));
                }
                fresh
            }
            Op::RoleDelete(r) => {
                if (self.enabled && r == 0) || !self.roles.contains(&name(r)) {
                    false
                } else {
                    self.roles.retain(|x| *x != name(r));
                    self.users
                        .values_mut()
                        .for_each(|rs| rs.retain(|x| *x != name(r)));
                    true
                }
            }
            Op::Grant(u, r) => {
                let role_ok = r == 0 || self.roles.contains(&name(r));
                match self.users.get_mut(name(u)) {
                    Some(rs) if role_ok => {
                        if !rs.contains(&name(r)) {
                            rs.push(name(r));
                            self.revision += 1;
                        }
                        return true;
                    }
                    _ => false,
                }
            }
            Op::Revoke(u, r) => {
                if self.enabled && u == 0 && r == 0 {
                    false
                } else {
                    match self.users.get_mut(name(u)) {
                        Some(rs) if rs.contains(&name(r)) => {
                            rs.retain(|x| *x != name(r));
                            true
                        }
                        _ => false,
                    }
                }
            }
            Op::Enable => {
                if !self.enabled && !self.users.get("root").is_some_and(|rs| rs.contains(&"root")) {
                    return false;
                }
                self.enabled = true;
                return true;
            }
            Op::Disable => {
                if self.enabled {
                    self.enabled = false;
                    self.revision += 1;
                }
                return true;
            }
        };
        if changed {
            self.revision += 1;
        }
        changed
    }
}

proptest! {
    #[test]
    fn the_store_matches_a_model_and_survives_encoding(ops in prop::collection::vec(op(), 0..40)) {
        let mut store = AuthStore::default();
        let mut model = Model { revision: 1, ..Model::default() };
        for op in &ops {
            let before = store.clone();
            let ok = match *op {
                Op::UserAdd(u) => store.user_add(name(u), b"h".to_vec(), false).is_ok(),
                Op::UserDelete(u) => store.user_delete(name(u)).is_ok(),
                Op::RoleAdd(r) => store.role_add(name(r)).is_ok(),
                Op::RoleDelete(r) => store.role_delete(name(r)).is_ok(),
                Op::Grant(u, r) => store.user_grant_role(name(u), name(r)).is_ok(),
                Op::Revoke(u, r) => store.user_revoke_role(name(u), name(r)).is_ok(),
                Op::Enable => store.enable().is_ok(),
                Op::Disable => { store.disable(); true }
            };
            prop_assert_eq!(ok, model.apply(op), "{:?}", op);
            if !ok {
                prop_assert_eq!(&store, &before, "a failed change left the store untouched");
            }
            prop_assert_eq!(store.revision(), model.revision);
            prop_assert_eq!(store.is_enabled(), model.enabled);
            let users: Vec<String> = model.users.keys().map(|u| u.to_string()).collect();
            prop_assert_eq!(store.user_list(), users);
            for (u, roles) in &model.users {
                let mut roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
                roles.sort();
                prop_assert_eq!(store.user_get(u), Ok(roles));
            }
        }
        let mut bytes = Vec::new();
        store.encode(&mut bytes);
        prop_assert_eq!(AuthStore::decode(&bytes), Ok(store));
    }
}

#[test]
fn decoding_bad_bytes_is_an_error_not_a_panic() {
    let mut bytes = Vec::new();
    with_root().encode(&mut bytes);
    for cut in 0..bytes.len() {
        assert!(AuthStore::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut flag = bytes.clone();
    flag[0] = 7;
    assert!(AuthStore::decode(&flag).is_err());
}
