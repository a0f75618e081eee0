//! The checks of the Lock and Election workload ([`crate::recipe_workload`]):
//!
//! - no two tenures of one lock overlap while their leases live, and no two
//!   leaderships of one election ([`crate::lock_check`] on both);
//! - Leader answers the candidate whose Campaign completed before it was asked and
//!   who neither resigned nor could have lost its lease before the answer;
//! - a leader's Proclaim is refused (`election: not leader`) only once its lease may
//!   have expired; a Proclaim with the key of an acknowledged Resign is refused.
//!
//! A lease is certainly alive until its grant was sent plus its TTL, less every
//! forward clock jump of any member since (a leader whose clock jumps expires its
//! leases early by as much), less a slack: a member applies a grant with its
//! clock as it is then (`Node::handle_at` ticks it before it handles anything
//! when its clock moved), which reads whole milliseconds, so up to one behind.

use crate::lock_check::{self, Hold};

/// One client's tenure of a lock or leadership of an election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenure {
    pub client: usize,
    /// The lock's or election's name.
    pub name: Vec<u8>,
    /// The session key held.
    pub key: Vec<u8>,
    /// When the Lock or Campaign answer arrived.
    pub from_us: u64,
    /// When the client sent its Unlock or Resign (or stopped acting as holder);
    /// `u64::MAX` while it holds.
    pub until_us: u64,
    /// When the lease's grant was sent, and its TTL.
    pub grant_sent_us: u64,
    pub ttl_us: u64,
    /// The members' summed clock offsets when the grant was sent.
    pub offsets_at_grant_ms: u64,
    /// How much earlier than its TTL a lease may expire besides clock jumps.
    pub slack_us: u64,
}

impl Tenure {
    /// Until when the lease was certainly alive, given the members' summed clock
    /// offsets `offsets_now_ms` (offsets only grow).
    pub fn lease_alive_until_us(&self, offsets_now_ms: u64) -> u64 {
        let jumped_us = offsets_now_ms.saturating_sub(self.offsets_at_grant_ms) * 1000;
        (self.grant_sent_us + self.ttl_us).saturating_sub(jumped_us + self.slack_us)
    }

    /// Whether the holder still certainly holds at `at_us`.
    fn holds_at(&self, at_us: u64, offsets_now_ms: u64) -> bool {
        at_us < self.until_us && at_us < self.lease_alive_until_us(offsets_now_ms)
    }
}

/// What the workload's requests showed.
#[derive(Debug, Default)]
pub struct RecipeHistory {
    pub tenures: Vec<Tenure>,
    pub violations: Vec<String>,
    pub leader_checks: u64,
    pub proclaims_ok: u64,
    pub stale_proclaims_refused: u64,
}

impl RecipeHistory {
    /// A Leader request on `name` sent at `sent_us` answered `key` (None: no
    /// leader) at `now_us`.
    pub fn leader_answered(
        &mut self,
        name: &[u8],
        sent_us: u64,
        now_us: u64,
        key: Option<&[u8]>,
        offsets_ms: u64,
    ) {
        self.leader_checks += 1;
        let current = self
            .tenures
            .iter()
            .find(|t| t.name == name && t.from_us <= sent_us && t.holds_at(now_us, offsets_ms));
        if let Some(t) = current {
            if key != Some(t.key.as_slice()) {
                self.violations.push(format!(
                    "Leader on {:?} sent at {sent_us} us answered {:?} at {now_us} us while client {} led with {:?} since {} us",
                    String::from_utf8_lossy(name),
                    key.map(String::from_utf8_lossy),
                    t.client,
                    String::from_utf8_lossy(&t.key),
                    t.from_us
                ));
            }
        }
    }

    /// Tenure `index`'s holder proclaimed; `refused`: `election: not leader`.
    pub fn proclaimed(&mut self, index: usize, refused: bool, now_us: u64, offsets_ms: u64) {
        let t = &self.tenures[index];
        if !refused {
            self.proclaims_ok += 1;
        } else if t.holds_at(now_us, offsets_ms) {
            self.violations.push(format!(
                "client {}'s Proclaim as the leader {:?} refused at {now_us} us while its lease lived (until {} us)",
                t.client,
                String::from_utf8_lossy(&t.key),
                t.lease_alive_until_us(offsets_ms)
            ));
        }
    }

    /// A Proclaim with tenure `index`'s key after its acknowledged Resign.
    pub fn stale_proclaimed(&mut self, index: usize, refused: bool) {
        if refused {
            self.stale_proclaims_refused += 1;
            return;
        }
        let t = &self.tenures[index];
        self.violations.push(format!(
            "client {}'s Proclaim with {:?} succeeded after its Resign was acknowledged",
            t.client,
            String::from_utf8_lossy(&t.key)
        ));
    }

    /// The overlap check over every tenure; the first violation found otherwise.
    pub fn check(&self, offsets_ms: u64) -> Result<usize, String> {
        if let Some(first) = self.violations.first() {
            return Err(format!(
                "{} violation(s); the first: {first}",
                self.violations.len()
            ));
        }
        let holds: Vec<Hold> = self
            .tenures
            .iter()
            .map(|t| Hold {
                client: t.client,
                lock: t.name.clone(),
                from_us: t.from_us,
                until_us: t.until_us,
                lease_alive_until_us: t.lease_alive_until_us(offsets_ms),
            })
            .collect();
        lock_check::check(&holds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenure(client: usize, from_us: u64, until_us: u64) -> Tenure {
        Tenure {
            client,
            name: b"e".to_vec(),
            key: format!("e/{client}").into_bytes(),
            from_us,
            until_us,
            grant_sent_us: 0,
            ttl_us: 1_000_000,
            offsets_at_grant_ms: 0,
            slack_us: 0,
        }
    }

    #[test]
    fn a_clock_jump_shortens_the_lease() {
        let t = tenure(0, 0, u64::MAX);
        assert_eq!(t.lease_alive_until_us(0), 1_000_000);
        assert_eq!(t.lease_alive_until_us(300), 700_000);
    }

    #[test]
    fn leader_must_name_the_current_leader() {
        let mut h = RecipeHistory::default();
        h.tenures.push(tenure(0, 10, u64::MAX));
        h.leader_answered(b"e", 20, 30, Some(b"e/0"), 0);
        assert!(h.violations.is_empty());
        // Asked before the Campaign completed: anything goes.
        h.leader_answered(b"e", 5, 30, None, 0);
        assert!(h.violations.is_empty());
        h.leader_answered(b"e", 20, 30, Some(b"e/1"), 0);
        assert_eq!(h.violations.len(), 1);
    }

    #[test]
    fn overlapping_leaderships_fail() {
        let mut h = RecipeHistory::default();
        h.tenures.push(tenure(0, 10, 100));
        h.tenures.push(tenure(1, 100, 200));
        assert_eq!(h.check(0), Ok(2));
        h.tenures.push(tenure(2, 150, 160));
        assert!(h.check(0).is_err());
    }
}
