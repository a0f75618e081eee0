//! The auth checker: no request of the auth workload's user was served without the
//! permissions it needs, and none was refused while they were certainly in force.
//!
//! The admin client changes one permission *slot* at a time (a READWRITE
//! permission of the user's role on one key, or on one prefix), one request at a
//! time; enabling auth takes every slot away at once. Permission changes and the
//! user's requests are all linearizable (writes are checked when they apply, reads
//! when they are served after their ReadIndex), so a request took effect at one
//! point between its invocation and its answer, seeing every change applied
//! before that point and none after it.
//!
//! A change acknowledged at `c` applied somewhere in `[invoke, c]`; one whose
//! answer never came (a timeout, a crash) applied in `[invoke, ∞)` or not at all;
//! one definitely refused never applied. From that:
//!
//! - a slot is *certainly revoked* at `t` when some acknowledged revoke finished by
//!   `t` and no grant invoked by `t` could have applied after that revoke began;
//! - it stays certainly revoked through `[a, b]` when it is at `a` and no grant is
//!   invoked in `(a, b]`. Certainly granted is the mirror image.
//!
//! A user request that succeeded while one slot it needs was certainly revoked
//! throughout its window is a violation (the planted bugs
//! `auth-txn-failure-branch-unchecked` and `auth-range-end-ignored` are of this
//! kind); so is one refused with PERMISSION_DENIED while every slot it needs was
//! certainly granted throughout. Serializable reads are not checked here (they see
//! their member's applied state, which no client-side window bounds).

use std::collections::BTreeMap;

/// A permission slot: an index the workload gives each key or prefix it grants.
pub type Slot = usize;

/// The slot no permission ever covers (a key range between the granted keys):
/// enabling auth revokes it and nothing grants it.
pub const UNCOVERED: Slot = usize::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Grant,
    Revoke,
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Acknowledged at this time (virtual microseconds).
    Ok(u64),
    /// No answer, or one that does not tell whether it applied.
    Unknown,
    /// Definitely not applied.
    Failed,
}

impl End {
    /// The latest time the change may have applied at (`None`: never).
    fn latest(self) -> Option<u64> {
        match self {
            End::Ok(at) => Some(at),
            End::Unknown => Some(u64::MAX),
            End::Failed => None,
        }
    }
}

#[derive(Clone, Debug)]
struct AdminOp {
    change: Change,
    invoke_us: u64,
    end: End,
}

/// A user request and what it needed.
#[derive(Clone, Debug)]
struct UserOp {
    what: String,
    slots: Vec<Slot>,
    invoke_us: u64,
    end: UserEnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UserEnd {
    Pending,
    Served(u64),
    Denied(u64),
    /// Anything else: not evidence either way.
    Other,
}

/// What the auth workload did, for [`AuthHistory::check`].
#[derive(Clone, Debug, Default)]
pub struct AuthHistory {
    admin: Vec<AdminOp>,
    user: Vec<UserOp>,
    /// Admin changes by slot (indexes into `admin`), so checks look at their own.
    by_slot: BTreeMap<Slot, Vec<usize>>,
}

/// Names an admin change in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminId(usize);

/// Names a user request in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserId(usize);

impl AuthHistory {
    /// A change of `slots` invoked at `invoke_us`; its end is unknown until
    /// [`AuthHistory::admin_end`] says otherwise.
    pub fn admin_invoke(&mut self, slots: Vec<Slot>, change: Change, invoke_us: u64) -> AdminId {
        let id = self.admin.len();
        for &slot in &slots {
            self.by_slot.entry(slot).or_default().push(id);
        }
        self.admin.push(AdminOp {
            change,
            invoke_us,
            end: End::Unknown,
        });
        AdminId(id)
    }

    pub fn admin_end(&mut self, id: AdminId, end: End) {
        self.admin[id.0].end = end;
    }

    pub fn user_invoke(&mut self, what: String, slots: Vec<Slot>, invoke_us: u64) -> UserId {
        self.user.push(UserOp {
            what,
            slots,
            invoke_us,
            end: UserEnd::Pending,
        });
        UserId(self.user.len() - 1)
    }

    pub fn user_served(&mut self, id: UserId, at_us: u64) {
        self.user[id.0].end = UserEnd::Served(at_us);
    }

    pub fn user_denied(&mut self, id: UserId, at_us: u64) {
        self.user[id.0].end = UserEnd::Denied(at_us);
    }

    pub fn user_other(&mut self, id: UserId) {
        self.user[id.0].end = UserEnd::Other;
    }

    pub fn user_ops(&self) -> usize {
        self.user.len()
    }

    /// (served, denied) user requests.
    pub fn user_outcomes(&self) -> (usize, usize) {
        let served = self
            .user
            .iter()
            .filter(|u| matches!(u.end, UserEnd::Served(_)))
            .count();
        let denied = self
            .user
            .iter()
            .filter(|u| matches!(u.end, UserEnd::Denied(_)))
            .count();
        (served, denied)
    }

    fn changes(&self, slot: Slot) -> impl Iterator<Item = &AdminOp> {
        self.by_slot
            .get(&slot)
            .into_iter()
            .flatten()
            .map(|&i| &self.admin[i])
    }

    /// Whether `slot` is certainly in the state `held` leaves it in at `t`:
    /// an acknowledged `held` change finished by `t`, and no opposite change
    /// invoked by `t` may have applied after it began.
    fn certainly(&self, slot: Slot, held: Change, t: u64) -> bool {
        self.changes(slot).any(|c| {
            c.change == held
                && matches!(c.end, End::Ok(done) if done <= t)
                && self.changes(slot).all(|o| {
                    o.change == held
                        || o.invoke_us > t
                        || o.end.latest().is_none_or(|latest| latest <= c.invoke_us)
                })
        })
    }

    /// Whether `slot` is certainly `held` through all of `[a, b]`.
    fn certainly_through(&self, slot: Slot, held: Change, a: u64, b: u64) -> bool {
        self.certainly(slot, held, a)
            && !self
                .changes(slot)
                .any(|o| o.change != held && o.invoke_us > a && o.invoke_us <= b && o.end != End::Failed)
    }

    /// Every violation, one line each.
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        for op in &self.user {
            match op.end {
                UserEnd::Served(b) => {
                    if let Some(&slot) = op
                        .slots
                        .iter()
                        .find(|&&s| self.certainly_through(s, Change::Revoke, op.invoke_us, b))
                    {
                        out.push(format!(
                            "{} served in [{}, {b}] us while its permission (slot {}) was revoked throughout",
                            op.what,
                            op.invoke_us,
                            slot_name(slot)
                        ));
                    }
                }
                UserEnd::Denied(b) => {
                    if op
                        .slots
                        .iter()
                        .all(|&s| self.certainly_through(s, Change::Grant, op.invoke_us, b))
                    {
                        out.push(format!(
                            "{} refused with permission denied in [{}, {b}] us while every permission it needs was granted throughout",
                            op.what, op.invoke_us
                        ));
                    }
                }
                UserEnd::Pending | UserEnd::Other => {}
            }
        }
        out
    }
}

fn slot_name(slot: Slot) -> String {
    if slot == UNCOVERED {
        "uncovered".to_string()
    } else {
        slot.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Auth enabled (every slot revoked) acknowledged at 10.
    fn enabled() -> AuthHistory {
        let mut h = AuthHistory::default();
        let id = h.admin_invoke(vec![0, 1, UNCOVERED], Change::Revoke, 5);
        h.admin_end(id, End::Ok(10));
        h
    }

    fn served(h: &mut AuthHistory, slots: Vec<Slot>, a: u64, b: u64) {
        let id = h.user_invoke("put".into(), slots, a);
        h.user_served(id, b);
    }

    fn denied(h: &mut AuthHistory, slots: Vec<Slot>, a: u64, b: u64) {
        let id = h.user_invoke("put".into(), slots, a);
        h.user_denied(id, b);
    }

    #[test]
    fn served_while_revoked_is_a_violation() {
        let mut h = enabled();
        served(&mut h, vec![0], 20, 30);
        assert_eq!(h.check().len(), 1, "{:?}", h.check());
    }

    #[test]
    fn served_before_enable_finished_is_fine() {
        let mut h = enabled();
        served(&mut h, vec![0], 8, 30);
        assert!(h.check().is_empty());
    }

    #[test]
    fn a_grant_overlapping_the_window_excuses_it() {
        let mut h = enabled();
        let g = h.admin_invoke(vec![0], Change::Grant, 25);
        h.admin_end(g, End::Ok(40));
        served(&mut h, vec![0], 20, 30);
        // Granted from 40 on, certainly.
        served(&mut h, vec![0], 41, 50);
        denied(&mut h, vec![0], 41, 50);
        assert_eq!(h.check().len(), 1, "{:?}", h.check());
        assert!(h.check()[0].contains("refused"));
    }

    #[test]
    fn an_unknown_grant_may_apply_any_time_later() {
        let mut h = enabled();
        let g = h.admin_invoke(vec![0], Change::Grant, 15);
        h.admin_end(g, End::Unknown);
        let r = h.admin_invoke(vec![0], Change::Revoke, 50);
        h.admin_end(r, End::Ok(60));
        // The unknown grant may land after the revoke: no verdict on slot 0.
        served(&mut h, vec![0], 70, 80);
        // A failed grant never applied: slot 1 stays revoked.
        let f = h.admin_invoke(vec![1], Change::Grant, 15);
        h.admin_end(f, End::Failed);
        served(&mut h, vec![1], 70, 80);
        let v = h.check();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("slot 1"), "{v:?}");
    }

    #[test]
    fn uncovered_ranges_are_never_allowed_and_never_wrongly_denied() {
        let mut h = enabled();
        let g = h.admin_invoke(vec![0], Change::Grant, 12);
        h.admin_end(g, End::Ok(14));
        denied(&mut h, vec![0, UNCOVERED], 20, 30);
        assert!(h.check().is_empty());
        served(&mut h, vec![0, UNCOVERED], 20, 30);
        assert!(h.check()[0].contains("uncovered"));
    }
}
