//! The auth workload (`--auth`): an admin client that sets up users and roles,
//! enables auth and then grants and revokes permissions one at a time, while the
//! other clients mix in requests as an ordinary user whose every answer goes to
//! the auth checker ([`crate::auth_check`]).
//!
//! Everything else the clients do runs as root (which auth never refuses), so
//! the KV, lease and watch checks stay as they are. The user `alice` holds one
//! role, `r`; each permission slot is a READWRITE permission of `r` on one key
//! (`a/k<slot>`) or on one prefix (`a/p<slot>/`). The admin toggles the live slots;
//! a slot whose change went unanswered (it may still apply, any time later) no
//! longer tells the checker anything, so the admin retires it for a fresh one.

use std::collections::BTreeMap;

use detcd_core::error::{self, Code, EtcdError};
use detcd_core::node::{Credentials, Request};
use detcd_core::rng::Rng;
use detcd_proto::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use detcd_proto::detcdpb::auth_raft_request::Request as Auth;
use detcd_proto::etcdserverpb::{
    compare, request_op, AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest,
    AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserGrantRoleRequest, Compare,
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use crate::auth_check::{AdminId, AuthHistory, Change, End, Slot, UserId, UNCOVERED};

const USER: &str = "alice";
const ROLE: &str = "r";
/// Key slots and prefix slots the admin keeps live at once.
const LIVE_KEYS: usize = 3;
const LIVE_PREFIXES: usize = 1;
/// Slots the enable change counts as revoked (fresh slots past these start
/// with no certain state until the admin grants and revokes them).
const ENABLE_COVERS_SLOTS: Slot = 64;

/// The identity the admin (and every client request that is not the user's) runs as.
pub fn root() -> Credentials {
    Credentials::Verified {
        user: "root".to_string(),
        revision: None,
    }
}

fn user() -> Credentials {
    Credentials::Verified {
        user: USER.to_string(),
        revision: None,
    }
}

/// What an auth client waits for.
#[derive(Clone, Debug)]
pub enum AuthPending {
    /// Setup step `n` (auth enabled at the last one: `enable` is its change).
    Setup { step: usize, enable: Option<AdminId> },
    /// A grant or revoke of `slot`.
    Change { slot: Slot, change: Change, id: AdminId },
    /// A request as the user.
    User(UserId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotKind {
    Key,
    Prefix,
}

/// The auth workload's state and history.
#[derive(Debug, Default)]
pub struct AuthWorkload {
    pub history: AuthHistory,
    setup_done: usize,
    /// The live slots and whether the admin last granted each.
    live: BTreeMap<Slot, (SlotKind, bool)>,
    next_slot: Slot,
    pub changes_ok: u64,
}

/// The setup, in order; each step is retried until it is done.
fn setup_step(step: usize) -> Option<Auth> {
    let user_add = |name: &str| {
        Auth::UserAdd(AuthUserAddRequest {
            name: name.to_string(),
            options: Some(UserAddOptions { no_password: true }),
            ..Default::default()
        })
    };
    let grant = |user: &str, role: &str| {
        Auth::UserGrantRole(AuthUserGrantRoleRequest {
            user: user.to_string(),
            role: role.to_string(),
        })
    };
    Some(match step {
        0 => user_add("root"),
        1 => grant("root", "root"),
        2 => user_add(USER),
        3 => Auth::RoleAdd(AuthRoleAddRequest {
            name: ROLE.to_string(),
        }),
        4 => grant(USER, ROLE),
        5 => Auth::Enable(AuthEnableRequest {}),
        _ => return None,
    })
}

fn key(slot: Slot) -> Vec<u8> {
    format!("a/k{slot}").into_bytes()
}

fn prefix(slot: Slot) -> (Vec<u8>, Vec<u8>) {
    (
        format!("a/p{slot}/").into_bytes(),
        format!("a/p{slot}0").into_bytes(),
    )
}

impl AuthWorkload {
    pub fn new() -> AuthWorkload {
        let mut w = AuthWorkload::default();
        for _ in 0..LIVE_KEYS {
            w.add_slot(SlotKind::Key);
        }
        for _ in 0..LIVE_PREFIXES {
            w.add_slot(SlotKind::Prefix);
        }
        w
    }

    fn add_slot(&mut self, kind: SlotKind) {
        self.live.insert(self.next_slot, (kind, false));
        self.next_slot += 1;
    }

    fn live_of(&self, kind: SlotKind) -> Vec<Slot> {
        self.live
            .iter()
            .filter(|(_, (k, _))| *k == kind)
            .map(|(&s, _)| s)
            .collect()
    }

    /// The admin's next request.
    pub fn admin_op(&mut self, rng: &mut Rng, now_us: u64) -> (Request, AuthPending, Credentials) {
        if let Some(request) = setup_step(self.setup_done) {
            let enable = matches!(request, Auth::Enable(_)).then(|| {
                // Nothing was granted before: enabling revokes every slot the
                // run will use (fresh ones included) and the uncovered ranges.
                let mut every: Vec<Slot> = (0..ENABLE_COVERS_SLOTS).collect();
                every.push(UNCOVERED);
                self.history.admin_invoke(every, Change::Revoke, now_us)
            });
            let pending = AuthPending::Setup {
                step: self.setup_done,
                enable,
            };
            return (Request::Auth(request), pending, root());
        }
        let slots: Vec<Slot> = self.live.keys().copied().collect();
        let slot = slots[rng.range(0, slots.len() as u64) as usize];
        let (kind, granted) = self.live[&slot];
        let (perm_key, range_end) = match kind {
            SlotKind::Key => (key(slot), Vec::new()),
            SlotKind::Prefix => prefix(slot),
        };
        let (change, request) = if granted {
            let revoke = AuthRoleRevokePermissionRequest {
                role: ROLE.to_string(),
                key: perm_key,
                range_end,
            };
            (Change::Revoke, Auth::RoleRevokePermission(revoke))
        } else {
            let grant = AuthRoleGrantPermissionRequest {
                name: ROLE.to_string(),
                perm: Some(Permission {
                    perm_type: PermType::Readwrite as i32,
                    key: perm_key,
                    range_end,
                }),
            };
            (Change::Grant, Auth::RoleGrantPermission(grant))
        };
        let id = self.history.admin_invoke(vec![slot], change, now_us);
        (
            Request::Auth(request),
            AuthPending::Change { slot, change, id },
            root(),
        )
    }

    /// A request as the user, on the live slots.
    pub fn user_op(&mut self, rng: &mut Rng, now_us: u64) -> (Request, AuthPending, Credentials) {
        let keys = self.live_of(SlotKind::Key);
        let prefixes = self.live_of(SlotKind::Prefix);
        let mut pick = |from: &[Slot]| from[rng.range(0, from.len() as u64) as usize];
        let (i, j, m, p) = (pick(&keys), pick(&keys), pick(&keys), pick(&prefixes));
        let value = b"v".to_vec();
        let put = |key: Vec<u8>| PutRequest {
            key,
            value: value.clone(),
            ..Default::default()
        };
        let (what, slots, request) = match rng.range(0, 7) {
            0 => ("put", vec![i], Request::Put(put(key(i)))),
            1 => (
                "get",
                vec![i],
                Request::Range(RangeRequest {
                    key: key(i),
                    ..Default::default()
                }),
            ),
            2 => (
                "delete",
                vec![i],
                Request::DeleteRange(DeleteRangeRequest {
                    key: key(i),
                    ..Default::default()
                }),
            ),
            3 => {
                let (start, end) = prefix(p);
                let range = RangeRequest {
                    key: start,
                    range_end: end,
                    ..Default::default()
                };
                ("get prefix", vec![p], Request::Range(range))
            }
            4 => {
                let (mut start, _) = prefix(p);
                start.extend_from_slice(b"x");
                ("put under prefix", vec![p], Request::Put(put(start)))
            }
            5 => {
                // From a granted key to just past it: keys no permission covers.
                let mut end = key(i);
                end.extend_from_slice(b"~");
                let range = RangeRequest {
                    key: key(i),
                    range_end: end,
                    ..Default::default()
                };
                ("get range past a key", vec![i, UNCOVERED], Request::Range(range))
            }
            _ => {
                let op = |key: Vec<u8>| RequestOp {
                    request: Some(request_op::Request::RequestPut(put(key))),
                };
                let txn = TxnRequest {
                    compare: vec![Compare {
                        result: compare::CompareResult::Greater as i32,
                        target: compare::CompareTarget::Version as i32,
                        key: key(i),
                        target_union: Some(compare::TargetUnion::Version(0)),
                        ..Default::default()
                    }],
                    success: vec![op(key(j))],
                    failure: vec![op(key(m))],
                };
                ("txn", vec![i, j, m], Request::Txn(txn))
            }
        };
        let what = format!("{what} as {USER} ({request:?})");
        let id = self.history.user_invoke(what, slots, now_us);
        (request, AuthPending::User(id), user())
    }

    /// How an auth client's request ended.
    pub fn settle(&mut self, pending: &AuthPending, outcome: Outcome<'_>, now_us: u64) {
        match pending {
            AuthPending::Setup { step, enable } => {
                if let Some(id) = enable {
                    self.history.admin_end(*id, outcome.end(now_us));
                }
                let done = match outcome {
                    Outcome::Ok => true,
                    Outcome::Refused(e) => [error::USER_ALREADY_EXIST, error::ROLE_ALREADY_EXIST].contains(e),
                    Outcome::NotSent | Outcome::Unknown => false,
                };
                if done {
                    self.setup_done = self.setup_done.max(step + 1);
                }
            }
            AuthPending::Change { slot, change, id } => {
                self.history.admin_end(*id, outcome.end(now_us));
                match outcome {
                    Outcome::Ok => {
                        self.changes_ok += 1;
                        if let Some(entry) = self.live.get_mut(slot) {
                            entry.1 = *change == Change::Grant;
                        }
                    }
                    // Revoking what is not granted: follow the member's word.
                    Outcome::Refused(e) if e.code == Code::FailedPrecondition => {
                        if let Some(entry) = self.live.get_mut(slot) {
                            entry.1 = false;
                        }
                    }
                    Outcome::Refused(_) | Outcome::NotSent => {}
                    Outcome::Unknown => {
                        // It may apply any time from now on: retire the slot.
                        if let Some((kind, _)) = self.live.remove(slot) {
                            self.add_slot(kind);
                        }
                    }
                }
            }
            AuthPending::User(id) => match outcome {
                Outcome::Ok => self.history.user_served(*id, now_us),
                Outcome::Refused(e) if *e == error::PERMISSION_DENIED => {
                    self.history.user_denied(*id, now_us)
                }
                Outcome::Refused(_) | Outcome::NotSent | Outcome::Unknown => self.history.user_other(*id),
            },
        }
    }
}

/// How a request ended, as far as its client knows.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    Ok,
    /// Answered with an error that says it did not apply.
    Refused(&'a EtcdError),
    /// Never reached a member (connection refused).
    NotSent,
    /// Timed out, or an error that leaves it open.
    Unknown,
}

impl Outcome<'_> {
    pub fn of<T>(result: &Result<T, EtcdError>) -> Outcome<'_> {
        match result {
            Ok(_) => Outcome::Ok,
            Err(e) if crate::sim::outcome_unknown(e) => Outcome::Unknown,
            Err(e) => Outcome::Refused(e),
        }
    }

    fn end(self, now_us: u64) -> End {
        match self {
            Outcome::Ok => End::Ok(now_us),
            Outcome::Refused(_) | Outcome::NotSent => End::Failed,
            Outcome::Unknown => End::Unknown,
        }
    }
}
