//! The auth workload (`--auth`): an admin client that sets up users and roles,
//! enables auth and then grants and revokes permissions one at a time, while the
//! other clients mix in requests as an ordinary user whose every answer goes to
//! the auth checker ([`crate::auth_check`]).
//!
//! Everything else the clients do runs as root (which auth never refuses), so
//! the KV, lease and watch checks stay as they are. The users `alice` and
//! `bob<n>` hold one role, `r`; each permission slot is a READWRITE permission of
//! `r` on one key (`a/k<slot>`) or on one prefix (`a/p<slot>/`). The admin toggles
//! the live slots; a slot whose change went unanswered (it may still apply, any
//! time later) no longer tells the checker anything, so the admin retires it for a
//! fresh one. Bob's membership is a slot too: the admin creates `bob<n>`, grants
//! it `r`, then deletes it and goes on with `bob<n+1>` (a fresh name, so an
//! unanswered step retires the generation the same way). Now and then the admin
//! turns auth off and on again (until one such change goes unanswered).

use std::collections::{BTreeMap, BTreeSet};

use detcd_core::auth::AuthStore;
use detcd_core::error::{self, Code, EtcdError};
use detcd_core::node::{Credentials, Request};
use detcd_core::rng::Rng;
use detcd_proto::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use detcd_proto::detcdpb::auth_raft_request::Request as Auth;
use detcd_proto::etcdserverpb::{
    compare, request_op, AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest,
    AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest, AuthUserAddRequest,
    AuthUserDeleteRequest, AuthUserGrantRoleRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};

use crate::auth_check::{AdminId, AuthHistory, Change, End, Slot, UserId, ENABLED, UNCOVERED};

const USER: &str = "alice";
const ROLE: &str = "r";
/// Key slots and prefix slots the admin keeps live at once.
const LIVE_KEYS: usize = 3;
const LIVE_PREFIXES: usize = 1;

/// The identity the admin (and every client request that is not the user's) runs as.
pub fn root() -> Credentials {
    Credentials::Verified {
        user: "root".to_string(),
        revision: None,
    }
}

/// What an auth client waits for.
#[derive(Clone, Debug)]
pub enum AuthPending {
    /// Setup step `n` (auth enabled at the last one: `enable` is its change).
    Setup { step: usize, enable: Option<AdminId> },
    /// Auth turned on (`Grant`) or off.
    Toggle { change: Change, id: AdminId },
    /// A step of bob generation `generation`; `id` when it changes bob's slot.
    Bob { generation: u64, id: Option<AdminId> },
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

/// Where the current bob generation is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum BobState {
    #[default]
    Absent,
    /// Created, without the role yet.
    Added,
    /// Holds the role.
    Member,
}

/// The current `bob<generation>` and his membership slot.
#[derive(Clone, Copy, Debug, Default)]
struct Bob {
    generation: u64,
    slot: Slot,
    state: BobState,
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
    bob: Bob,
    /// Whether auth is on, as the admin last learnt it.
    auth_on: bool,
    /// An enable or disable went unanswered: auth stays as it may be.
    toggles_frozen: bool,
    /// Per user request (by index): the user and the membership slot it needs.
    users: Vec<(String, Option<Slot>)>,
    /// Auth turned off or on again (acknowledged).
    pub toggles_ok: u64,
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

/// The slots `store` grants the user's role READ on, read back from the
/// permissions' keys (this workload's own naming, not the store's checks).
fn granted_slots(store: &AuthStore) -> BTreeSet<Slot> {
    let perms = store.role_get(ROLE).unwrap_or_default();
    perms
        .iter()
        .filter(|p| p.perm_type != PermType::Write as i32)
        .filter_map(|p| {
            let text = std::str::from_utf8(&p.key).ok()?;
            let (slot, kind) = if let Some(n) = text.strip_prefix("a/k") {
                (n.parse().ok()?, SlotKind::Key)
            } else {
                let n = text.strip_prefix("a/p")?.strip_suffix('/')?;
                (n.parse().ok()?, SlotKind::Prefix)
            };
            let expected_end = match kind {
                SlotKind::Key => Vec::new(),
                SlotKind::Prefix => prefix(slot).1,
            };
            (p.range_end == expected_end).then_some(slot)
        })
        .collect()
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
        w.bob.slot = w.fresh_slot();
        w
    }

    fn fresh_slot(&mut self) -> Slot {
        self.next_slot += 1;
        self.next_slot - 1
    }

    /// How many bob generations the run went through.
    pub fn bob_generations(&self) -> u64 {
        self.bob.generation + 1
    }

    fn bob_name(generation: u64) -> String {
        format!("bob{generation}")
    }

    /// The next bob generation, with a fresh name and slot.
    fn retire_bob(&mut self) {
        self.bob = Bob {
            generation: self.bob.generation + 1,
            slot: self.fresh_slot(),
            state: BobState::Absent,
        };
    }

    fn add_slot(&mut self, kind: SlotKind) {
        let slot = self.fresh_slot();
        self.live.insert(slot, (kind, false));
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
            let enable = matches!(request, Auth::Enable(_))
                .then(|| self.history.admin_invoke(vec![ENABLED], Change::Grant, now_us));
            let pending = AuthPending::Setup {
                step: self.setup_done,
                enable,
            };
            return (Request::Auth(request), pending, root());
        }
        if !self.toggles_frozen && rng.chance(1, 12) {
            let (change, request) = if self.auth_on {
                (Change::Revoke, Auth::Disable(AuthDisableRequest {}))
            } else {
                (Change::Grant, Auth::Enable(AuthEnableRequest {}))
            };
            let id = self.history.admin_invoke(vec![ENABLED], change, now_us);
            return (Request::Auth(request), AuthPending::Toggle { change, id }, root());
        }
        if rng.chance(1, 6) {
            return self.bob_op(now_us);
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

    /// The next step of bob's cycle: create, grant the role, delete.
    fn bob_op(&mut self, now_us: u64) -> (Request, AuthPending, Credentials) {
        let Bob {
            generation,
            slot,
            state,
        } = self.bob;
        let name = Self::bob_name(generation);
        let (request, id) = match state {
            BobState::Absent => (
                Auth::UserAdd(AuthUserAddRequest {
                    name,
                    options: Some(UserAddOptions { no_password: true }),
                    ..Default::default()
                }),
                None,
            ),
            BobState::Added => (
                Auth::UserGrantRole(AuthUserGrantRoleRequest {
                    user: name,
                    role: ROLE.to_string(),
                }),
                Some(self.history.admin_invoke(vec![slot], Change::Grant, now_us)),
            ),
            BobState::Member => (
                Auth::UserDelete(AuthUserDeleteRequest { name }),
                Some(self.history.admin_invoke(vec![slot], Change::Revoke, now_us)),
            ),
        };
        (
            Request::Auth(request),
            AuthPending::Bob { generation, id },
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
        // A third of the reads are serializable: served from the member's applied
        // state, checked against the serving member's auth store.
        let serializable = rng.chance(1, 3);
        let (what, slots, request) = match rng.range(0, 7) {
            0 => ("put", vec![i], Request::Put(put(key(i)))),
            1 => (
                "get",
                vec![i],
                Request::Range(RangeRequest {
                    key: key(i),
                    serializable,
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
                    serializable,
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
                    serializable,
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
        let serializable = matches!(&request, Request::Range(r) if r.serializable);
        // A third as the current bob, who needs his membership too.
        let (name, member_slot) = if rng.chance(1, 3) {
            (Self::bob_name(self.bob.generation), Some(self.bob.slot))
        } else {
            (USER.to_string(), None)
        };
        let mut slots = slots;
        slots.extend(member_slot);
        let what = format!("{what} as {name} ({request:?})");
        let id = self.history.user_invoke(what, slots, serializable, now_us);
        self.users.push((name.clone(), member_slot));
        let credentials = Credentials::Verified {
            user: name,
            revision: None,
        };
        (request, AuthPending::User(id), credentials)
    }

    /// A member answers the user's serializable read `id` with `store` as its auth
    /// state: records whether that state allowed the read (every slot it needs
    /// granted to the user's role, or auth off).
    pub fn observe_serve(&mut self, id: UserId, store: &AuthStore) {
        let (user, member_slot) = &self.users[id.index()];
        let allowed = !store.is_enabled() || {
            let granted = granted_slots(store);
            store.has_role(user, ROLE)
                && self
                    .history
                    .user_slots(id)
                    .iter()
                    .filter(|&s| Some(*s) != *member_slot)
                    .all(|s| granted.contains(s))
        };
        self.history.user_view(id, allowed);
    }

    /// How an auth client's request ended.
    pub fn settle(&mut self, pending: &AuthPending, outcome: Outcome<'_>, now_us: u64) {
        match pending {
            AuthPending::Toggle { change, id } => {
                self.history.admin_end(*id, outcome.end(now_us));
                match outcome {
                    Outcome::Ok => {
                        self.auth_on = *change == Change::Grant;
                        self.toggles_ok += 1;
                    }
                    Outcome::Unknown => self.toggles_frozen = true,
                    Outcome::Refused(_) | Outcome::NotSent => {}
                }
            }
            AuthPending::Bob { generation, id } => {
                if let Some(id) = id {
                    self.history.admin_end(*id, outcome.end(now_us));
                }
                if *generation != self.bob.generation {
                    return;
                }
                match outcome {
                    Outcome::Ok => match self.bob.state {
                        BobState::Absent => self.bob.state = BobState::Added,
                        BobState::Added => self.bob.state = BobState::Member,
                        BobState::Member => self.retire_bob(),
                    },
                    Outcome::Refused(e)
                        if self.bob.state == BobState::Absent && *e == error::USER_ALREADY_EXIST =>
                    {
                        self.bob.state = BobState::Added
                    }
                    Outcome::Refused(_) | Outcome::NotSent => {}
                    Outcome::Unknown => self.retire_bob(),
                }
            }
            AuthPending::Setup { step, enable } => {
                if let Some(id) = enable {
                    self.history.admin_end(*id, outcome.end(now_us));
                    if matches!(outcome, Outcome::Ok) {
                        self.auth_on = true;
                    }
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
            Err(e) if crate::cluster::outcome_unknown(e) => Outcome::Unknown,
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
