//! The lessor state machine: which leases exist, which keys each one holds, and,
//! on the primary (the raft leader), when each one expires.
//!
//! # Replicated and local state
//!
//! Every member applies the same replicated operations in log order: [`Lessor::grant`],
//! [`Lessor::revoke`], [`Lessor::attach`], [`Lessor::detach`] and
//! [`Lessor::apply_checkpoint`]. These change only replicated state (IDs, TTLs, keys,
//! checkpointed remaining TTLs), so all members agree on it and it is what
//! [`Lessor::to_bytes`] writes.
//!
//! Expiry is local to the primary, as in etcd: only the leader tracks deadlines and
//! answers keepalives ([`Lessor::renew`]). A follower's leases never expire; when it
//! becomes leader, [`Lessor::promote`] gives each lease a deadline.
//!
//! # Leader changes keep remaining TTLs (etcd issue 9395)
//!
//! etcd without checkpointing resets every lease to its full TTL on promote, so a
//! cluster that changes leader more often than a TTL keeps leases alive forever.
//! Here checkpointing is always on: the primary periodically reports
//! ([`Lessor::checkpoints_due`]) each lease's remaining TTL; the node replicates those
//! records and every member applies them ([`Lessor::apply_checkpoint`]); a new primary
//! restores each lease to its last checkpointed remaining TTL (plus the `extend_ms`
//! grace the node gives for the election). A keepalive that follows a partial
//! checkpoint returns a full-TTL checkpoint to replicate, so a renewal is not undone by
//! an older checkpoint at the next election.
//!
//! The bound: a lease never expires before its TTL since the last renew (checkpoints
//! round up), and a leader change extends it by at most the time since the last
//! applied checkpoint (at most `checkpoint_interval_ms` when checkpoints keep up), plus
//! `extend_ms`, plus one second of rounding, plus the time with no leader.
//!
//! # Driving it
//!
//! On every tick the node calls, on the primary only, [`Lessor::expired`] (propose a
//! revoke for each ID) and [`Lessor::checkpoints_due`] (propose the checkpoints). Both
//! are bounded per call by named limits, so a burst of expiries turns into a steady
//! stream of proposals rather than one huge one.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{self, EtcdError};
use crate::rng::Rng;

/// A lease's ID, as etcd's `LeaseID` (`int64`). Zero means "no lease".
pub type LeaseId = i64;

/// The ID that means "no lease" on a key (etcd's `NoLease`).
pub const NO_LEASE: LeaseId = 0;

/// The largest TTL a lease may be granted with (etcd's `MaxLeaseTTL`), in seconds.
pub const LEASE_TTL_MAX_S: i64 = 9_000_000_000;

/// etcd's default lease checkpoint interval: five minutes.
pub const CHECKPOINT_INTERVAL_MS_DEFAULT: u64 = 5 * 60 * 1000;

/// Expired leases reported per [`Lessor::expired`] call. etcd revokes at most 1000
/// leases a second from a loop that runs every 500 ms, half of that per round.
pub const EXPIRED_PER_CALL_MAX_DEFAULT: usize = 500;

/// Checkpoints reported per [`Lessor::checkpoints_due`] call (etcd's batch size).
pub const CHECKPOINTS_PER_CALL_MAX_DEFAULT: usize = 1000;

/// How long an expired lease that was reported but is not yet revoked waits before it
/// is reported again (etcd's `expiredLeaseRetryInterval`).
pub const EXPIRED_RETRY_MS_DEFAULT: u64 = 3000;

const MS_PER_S: u64 = 1000;

/// The smallest TTL a lease may have, in seconds: 1.5 election timeouts, rounded up
/// (2 s with etcd's 1000 ms election timeout), and at least one second. A shorter
/// lease could expire during the election that follows a leader failure, before any
/// client had a leader to renew it with.
pub fn ttl_min_s(election_timeout_ms: u64) -> i64 {
    let ms = election_timeout_ms.saturating_mul(3).div_ceil(2);
    i64::try_from(ms.div_ceil(MS_PER_S))
        .unwrap_or(LEASE_TTL_MAX_S)
        .clamp(1, LEASE_TTL_MAX_S)
}

/// The lessor's bounds and intervals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LessorConfig {
    /// TTLs below this are raised to it (see [`ttl_min_s`]).
    pub ttl_min_s: i64,
    /// How often the primary checkpoints each lease's remaining TTL.
    pub checkpoint_interval_ms: u64,
    /// At most this many IDs per [`Lessor::expired`] call.
    pub expired_per_call_max: usize,
    /// At most this many records per [`Lessor::checkpoints_due`] call.
    pub checkpoints_per_call_max: usize,
    /// A reported, unrevoked expired lease is reported again after this long.
    pub expired_retry_ms: u64,
}

impl LessorConfig {
    /// etcd's defaults for a cluster with this election timeout.
    pub fn new(election_timeout_ms: u64) -> Self {
        LessorConfig {
            ttl_min_s: ttl_min_s(election_timeout_ms),
            checkpoint_interval_ms: CHECKPOINT_INTERVAL_MS_DEFAULT,
            expired_per_call_max: EXPIRED_PER_CALL_MAX_DEFAULT,
            checkpoints_per_call_max: CHECKPOINTS_PER_CALL_MAX_DEFAULT,
            expired_retry_ms: EXPIRED_RETRY_MS_DEFAULT,
        }
    }

    /// Checks the relations between the bounds; a bad configuration is an
    /// operator's error, reported before any lessor exists.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !(1..=LEASE_TTL_MAX_S).contains(&self.ttl_min_s) {
            return Err("ttl_min_s must be in 1..=LEASE_TTL_MAX_S");
        }
        if self.checkpoint_interval_ms == 0 {
            return Err("checkpoint_interval_ms must be positive");
        }
        if self.expired_per_call_max == 0 || self.checkpoints_per_call_max == 0 {
            return Err("per-call limits must be positive");
        }
        if self.expired_retry_ms == 0 {
            return Err("expired_retry_ms must be positive");
        }
        Ok(())
    }
}

/// A lease's remaining TTL as the primary saw it, to be replicated through raft
/// and applied on every member with [`Lessor::apply_checkpoint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Checkpoint {
    pub id: LeaseId,
    /// Whole seconds, rounded up, so a restore never shortens a lease.
    pub remaining_ttl_s: i64,
}

/// The answer to a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    pub id: LeaseId,
    /// The TTL actually granted (raised to the minimum if the request was lower).
    pub ttl_s: i64,
}

/// The answer to a keepalive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// The lease's TTL, which is now its remaining time.
    pub ttl_s: i64,
    /// A full-TTL checkpoint to replicate, present when an earlier partial checkpoint
    /// might otherwise shorten the lease at the next leader change. The node should
    /// answer the keepalive once this is committed to make the renewal survive an
    /// election.
    pub checkpoint: Option<Checkpoint>,
}

/// The answer to LeaseTimeToLive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeToLive {
    pub id: LeaseId,
    /// Remaining whole seconds (truncated, as etcd); 0 when expired but not yet
    /// revoked; -1 when the lease does not exist.
    pub ttl_s: i64,
    /// The TTL the lease was granted with; 0 when it does not exist.
    pub granted_ttl_s: i64,
    /// Attached keys, sorted; empty unless asked for.
    pub keys: Vec<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lease {
    // Replicated.
    pub(crate) ttl_s: i64,
    /// The last applied checkpoint; 0 when none since the grant.
    pub(crate) remaining_ttl_s: i64,
    pub(crate) keys: BTreeSet<Vec<u8>>,
    // Primary only.
    expiry_ms: Option<u64>,
    /// This lease's key in `expiry_queue` (the deadline, or a retry time once reported).
    expiry_queued_ms: Option<u64>,
    /// This lease's key in `checkpoint_queue`.
    checkpoint_due_ms: Option<u64>,
    /// A checkpoint shorter than the full TTL may be in the log since the last renew.
    partial_checkpoint: bool,
}

impl Lease {
    pub(crate) fn new(ttl_s: i64, remaining_ttl_s: i64, keys: BTreeSet<Vec<u8>>) -> Self {
        Lease {
            ttl_s,
            remaining_ttl_s,
            keys,
            expiry_ms: None,
            expiry_queued_ms: None,
            checkpoint_due_ms: None,
            partial_checkpoint: false,
        }
    }

    /// The TTL a new primary restores: the last checkpoint if one applies.
    fn restored_ttl_s(&self) -> i64 {
        if self.remaining_ttl_s > 0 {
            self.remaining_ttl_s.min(self.ttl_s)
        } else {
            self.ttl_s
        }
    }

    fn expired(&self, now_ms: u64) -> bool {
        self.expiry_ms.is_some_and(|expiry| now_ms >= expiry)
    }
}

/// The lessor. See the module documentation for the replicated/local split and the
/// driving loop.
///
/// Methods, in the order a node uses them:
/// - `choose_id` (leader, before proposing a grant with ID 0),
/// - replicated, on every member in log order: `grant`, `revoke`, `attach`, `detach`,
///   `apply_checkpoint`,
/// - leadership: `promote`, `demote`,
/// - primary only: `renew`, `time_to_live`, `expired`, `checkpoints_due`,
/// - queries: `leases`, `contains`, `lease_of`, `is_primary`,
/// - snapshots: `to_bytes`, `from_bytes`.
#[derive(Clone, Debug)]
pub struct Lessor {
    config: LessorConfig,
    rng: Rng,
    pub(crate) leases: BTreeMap<LeaseId, Lease>,
    /// Which lease each attached key belongs to.
    pub(crate) key_leases: BTreeMap<Vec<u8>, LeaseId>,
    primary: bool,
    /// (time, id): when to look at a lease for expiry. Primary only.
    expiry_queue: BTreeSet<(u64, LeaseId)>,
    /// (time, id): when to checkpoint a lease. Primary only.
    checkpoint_queue: BTreeSet<(u64, LeaseId)>,
}

impl Lessor {
    /// An empty lessor that is not primary. `rng` draws server-chosen lease IDs.
    ///
    /// Panics if the configuration is invalid (validate it first).
    pub fn new(config: LessorConfig, rng: Rng) -> Self {
        if let Err(why) = config.validate() {
            panic!("invalid lessor config: {why}");
        }
        Lessor {
            config,
            rng,
            leases: BTreeMap::new(),
            key_leases: BTreeMap::new(),
            primary: false,
            expiry_queue: BTreeSet::new(),
            checkpoint_queue: BTreeSet::new(),
        }
    }

    /// Picks an ID for a grant that asked for ID 0: `candidate` if given (the node's
    /// request-ID generator, as etcd uses), else a draw from the lessor's PRNG; the
    /// sign bit is cleared as etcd does, and 0 or an existing ID is replaced by a
    /// fresh draw. The leader calls this before proposing, so that every member
    /// applies the same ID.
    pub fn choose_id(&mut self, candidate: Option<u64>) -> LeaseId {
        let mut next = candidate;
        loop {
            let raw = next.take().unwrap_or_else(|| self.rng.next_u64());
            let id = (raw & i64::MAX as u64) as LeaseId;
            if id != NO_LEASE && !self.leases.contains_key(&id) {
                return id;
            }
        }
    }

    /// Applies a committed grant. A TTL below the minimum is raised to it. On the
    /// primary the lease starts counting down at `now_ms`.
    ///
    /// Errors: ID 0 ⇒ LEASE_NOT_FOUND (as etcd; pick IDs with [`Lessor::choose_id`]),
    /// TTL above [`LEASE_TTL_MAX_S`] ⇒ LEASE_TTL_TOO_LARGE, existing ID ⇒ LEASE_EXISTS.
    pub fn grant(&mut self, id: LeaseId, ttl_s: i64, now_ms: u64) -> Result<Granted, EtcdError> {
        if id == NO_LEASE {
            return Err(error::LEASE_NOT_FOUND);
        }
        if ttl_s > LEASE_TTL_MAX_S {
            return Err(error::LEASE_TTL_TOO_LARGE);
        }
        if self.leases.contains_key(&id) {
            return Err(error::LEASE_EXISTS);
        }
        let ttl_s = ttl_s.max(self.config.ttl_min_s);
        self.leases.insert(id, Lease::new(ttl_s, 0, BTreeSet::new()));
        if self.primary {
            self.start_countdown(id, ttl_s, now_ms);
        }
        Ok(Granted { id, ttl_s })
    }

    /// Applies a committed revoke (from a client or from expiry). Returns the keys
    /// that were attached, sorted, for the caller to delete in one transaction at one
    /// revision, in the same order on every member.
    ///
    /// Errors: unknown ID ⇒ LEASE_NOT_FOUND.
    pub fn revoke(&mut self, id: LeaseId) -> Result<Vec<Vec<u8>>, EtcdError> {
        let lease = self.leases.remove(&id).ok_or(error::LEASE_NOT_FOUND)?;
        if let Some(at) = lease.expiry_queued_ms {
            self.expiry_queue.remove(&(at, id));
        }
        if let Some(at) = lease.checkpoint_due_ms {
            self.checkpoint_queue.remove(&(at, id));
        }
        for key in &lease.keys {
            self.key_leases.remove(key);
        }
        Ok(lease.keys.into_iter().collect())
    }

    /// Attaches `key` to lease `id` (a put with this lease). A key held by another
    /// lease moves to this one, as a put that changes a key's lease does.
    ///
    /// Errors: unknown ID ⇒ LEASE_NOT_FOUND.
    pub fn attach(&mut self, id: LeaseId, key: &[u8]) -> Result<(), EtcdError> {
        if !self.leases.contains_key(&id) {
            return Err(error::LEASE_NOT_FOUND);
        }
        if let Some(previous) = self.key_leases.insert(key.to_vec(), id) {
            if previous != id {
                let held = self
                    .leases
                    .get_mut(&previous)
                    .expect("key index names a live lease");
                held.keys.remove(key);
            }
        }
        self.leases
            .get_mut(&id)
            .expect("checked above")
            .keys
            .insert(key.to_vec());
        Ok(())
    }

    /// Detaches `key` from lease `id` (a put that clears the lease, or a delete).
    /// A key not attached to this lease is left alone.
    ///
    /// Errors: unknown ID ⇒ LEASE_NOT_FOUND.
    pub fn detach(&mut self, id: LeaseId, key: &[u8]) -> Result<(), EtcdError> {
        let lease = self.leases.get_mut(&id).ok_or(error::LEASE_NOT_FOUND)?;
        if lease.keys.remove(key) {
            self.key_leases.remove(key);
        }
        Ok(())
    }

    /// Applies a committed checkpoint: the remaining TTL a future primary restores.
    /// A checkpoint for a lease revoked meanwhile is ignored, as in etcd: the revoke
    /// and the checkpoint may be ordered either way in the log.
    pub fn apply_checkpoint(&mut self, checkpoint: Checkpoint) {
        let Some(lease) = self.leases.get_mut(&checkpoint.id) else {
            return;
        };
        lease.remaining_ttl_s = checkpoint.remaining_ttl_s.clamp(0, lease.ttl_s);
        if lease.remaining_ttl_s > 0 && lease.remaining_ttl_s < lease.ttl_s {
            lease.partial_checkpoint = true;
        }
    }

    /// Becomes primary (this member became raft leader): every lease gets a deadline
    /// of `now_ms + extend_ms` plus its last checkpointed remaining TTL, or its full
    /// TTL when it has none. `extend_ms` is the grace the node gives clients to find
    /// the new leader (etcd uses about an election timeout).
    ///
    /// Panics if already primary: the node promotes once per leadership.
    pub fn promote(&mut self, now_ms: u64, extend_ms: u64) {
        assert!(!self.primary, "promote of a lessor that is already primary");
        self.primary = true;
        let ids: Vec<LeaseId> = self.leases.keys().copied().collect();
        for id in ids {
            let lease = self.leases.get_mut(&id).expect("listed above");
            lease.partial_checkpoint = lease.remaining_ttl_s > 0 && lease.remaining_ttl_s < lease.ttl_s;
            let ttl_s = lease.restored_ttl_s();
            self.start_countdown(id, ttl_s, now_ms.saturating_add(extend_ms));
        }
    }

    /// Stops being primary (this member lost leadership): no lease expires here
    /// until the next promote. Demoting a non-primary does nothing.
    pub fn demote(&mut self) {
        self.primary = false;
        self.expiry_queue.clear();
        self.checkpoint_queue.clear();
        for lease in self.leases.values_mut() {
            lease.expiry_ms = None;
            lease.expiry_queued_ms = None;
            lease.checkpoint_due_ms = None;
            lease.partial_checkpoint = false;
        }
    }

    /// A keepalive, on the primary: the lease's deadline becomes `now_ms` + TTL.
    ///
    /// Errors: not primary ⇒ NOT_LEADER (the node forwards it to the leader);
    /// unknown ⇒ LEASE_NOT_FOUND; expired but not yet revoked ⇒ LEASE_NOT_FOUND (etcd
    /// waits for the revoke and then answers the same; a keepalive stream answers
    /// TTL 0 either way).
    pub fn renew(&mut self, id: LeaseId, now_ms: u64) -> Result<Renewal, EtcdError> {
        if !self.primary {
            return Err(error::NOT_LEADER);
        }
        let lease = self.leases.get_mut(&id).ok_or(error::LEASE_NOT_FOUND)?;
        if lease.expired(now_ms) {
            return Err(error::LEASE_NOT_FOUND);
        }
        let ttl_s = lease.ttl_s;
        let checkpoint = if lease.partial_checkpoint {
            lease.partial_checkpoint = false;
            Some(Checkpoint {
                id,
                remaining_ttl_s: ttl_s,
            })
        } else {
            None
        };
        self.start_countdown(id, ttl_s, now_ms);
        Ok(Renewal { ttl_s, checkpoint })
    }

    /// LeaseTimeToLive, on the primary (the one member that knows deadlines). An
    /// unknown lease answers TTL -1 as etcd's gRPC layer does; `with_keys` adds the
    /// attached keys.
    ///
    /// Errors: not primary ⇒ NOT_LEADER (the node forwards it to the leader).
    pub fn time_to_live(&self, id: LeaseId, with_keys: bool, now_ms: u64) -> Result<TimeToLive, EtcdError> {
        if !self.primary {
            return Err(error::NOT_LEADER);
        }
        let Some(lease) = self.leases.get(&id) else {
            return Ok(TimeToLive {
                id,
                ttl_s: -1,
                granted_ttl_s: 0,
                keys: Vec::new(),
            });
        };
        let expiry = lease
            .expiry_ms
            .expect("the primary has a deadline for every lease");
        let remaining_s = expiry.saturating_sub(now_ms) / MS_PER_S;
        Ok(TimeToLive {
            id,
            ttl_s: i64::try_from(remaining_s).unwrap_or(LEASE_TTL_MAX_S),
            granted_ttl_s: lease.ttl_s,
            keys: if with_keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// On the primary, the leases whose deadline has passed, at most
    /// `expired_per_call_max`, earliest first. The node proposes a revoke for each.
    /// A lease stays until that revoke is applied; if it is still here
    /// `expired_retry_ms` later (the proposal was lost), it is reported again.
    /// Empty on a non-primary.
    pub fn expired(&mut self, now_ms: u64) -> Vec<LeaseId> {
        let mut found = Vec::new();
        while found.len() < self.config.expired_per_call_max {
            let Some(&(at, id)) = self.expiry_queue.first() else {
                break;
            };
            if at > now_ms {
                break;
            }
            self.expiry_queue.pop_first();
            let lease = self.leases.get_mut(&id).expect("expiry queue names a live lease");
            debug_assert!(lease.expired(now_ms), "queued at or after the deadline");
            let retry_ms = now_ms.saturating_add(self.config.expired_retry_ms);
            lease.expiry_queued_ms = Some(retry_ms);
            self.expiry_queue.insert((retry_ms, id));
            found.push(id);
        }
        found
    }

    /// On the primary, the checkpoints due at `now_ms`, at most
    /// `checkpoints_per_call_max`. A lease is looked at every
    /// `checkpoint_interval_ms` and reported when it has lost at least a second.
    /// The node replicates them; every member applies them with
    /// [`Lessor::apply_checkpoint`]. Empty on a non-primary.
    pub fn checkpoints_due(&mut self, now_ms: u64) -> Vec<Checkpoint> {
        let mut due = Vec::new();
        while due.len() < self.config.checkpoints_per_call_max {
            let Some(&(at, id)) = self.checkpoint_queue.first() else {
                break;
            };
            if at > now_ms {
                break;
            }
            self.checkpoint_queue.pop_first();
            let lease = self
                .leases
                .get_mut(&id)
                .expect("checkpoint queue names a live lease");
            lease.checkpoint_due_ms = None;
            let expiry = lease
                .expiry_ms
                .expect("the primary has a deadline for every lease");
            if now_ms >= expiry {
                // Expired: its revoke is on the way; nothing to preserve.
                continue;
            }
            let remaining_s = i64::try_from((expiry - now_ms).div_ceil(MS_PER_S)).unwrap_or(LEASE_TTL_MAX_S);
            if remaining_s < lease.ttl_s {
                lease.partial_checkpoint = true;
                due.push(Checkpoint {
                    id,
                    remaining_ttl_s: remaining_s,
                });
            }
            let next = now_ms.saturating_add(self.config.checkpoint_interval_ms);
            lease.checkpoint_due_ms = Some(next);
            self.checkpoint_queue.insert((next, id));
        }
        due
    }

    /// All lease IDs, ascending (LeaseLeases).
    pub fn leases(&self) -> Vec<LeaseId> {
        self.leases.keys().copied().collect()
    }

    /// Whether lease `id` exists (a put naming a lease checks this before proposing).
    /// The keys attached to lease `id` (none for an unknown lease), in key order.
    pub fn keys(&self, id: LeaseId) -> Vec<Vec<u8>> {
        self.leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn contains(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    /// The lease `key` is attached to, or [`NO_LEASE`].
    pub fn lease_of(&self, key: &[u8]) -> LeaseId {
        self.key_leases.get(key).copied().unwrap_or(NO_LEASE)
    }

    /// Whether this lessor tracks expiry (its member is the raft leader).
    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// The granted TTL and last checkpointed remaining TTL (0 = none) of a lease,
    /// for diagnostics and tests.
    pub fn ttls_s(&self, id: LeaseId) -> Option<(i64, i64)> {
        self.leases.get(&id).map(|l| (l.ttl_s, l.remaining_ttl_s))
    }

    /// The primary's deadline for a lease, for diagnostics and tests.
    pub fn expiry_ms(&self, id: LeaseId) -> Option<u64> {
        self.leases.get(&id).and_then(|l| l.expiry_ms)
    }

    /// The configuration this lessor runs with.
    pub fn config(&self) -> &LessorConfig {
        &self.config
    }

    /// Asserts the internal invariants; tests and the simulator call it after every
    /// input.
    pub fn check_invariants(&self) {
        for (key, id) in &self.key_leases {
            let lease = self.leases.get(id).expect("key index names a live lease");
            assert!(lease.keys.contains(key), "key index and lease disagree");
        }
        let attached: usize = self.leases.values().map(|l| l.keys.len()).sum();
        assert_eq!(attached, self.key_leases.len(), "a key is attached twice");
        for (&id, lease) in &self.leases {
            assert_ne!(id, NO_LEASE);
            assert!((self.config.ttl_min_s..=LEASE_TTL_MAX_S).contains(&lease.ttl_s));
            assert!((0..=lease.ttl_s).contains(&lease.remaining_ttl_s));
            assert_eq!(
                lease.expiry_ms.is_some(),
                self.primary,
                "deadlines only on the primary"
            );
            if let Some(at) = lease.expiry_queued_ms {
                assert!(self.expiry_queue.contains(&(at, id)));
            }
            if let Some(at) = lease.checkpoint_due_ms {
                assert!(self.checkpoint_queue.contains(&(at, id)));
            }
            if self.primary {
                assert!(
                    lease.expiry_queued_ms.is_some(),
                    "every lease is watched for expiry"
                );
            }
        }
        for (at, id) in &self.expiry_queue {
            assert_eq!(self.leases[id].expiry_queued_ms, Some(*at));
        }
        for (at, id) in &self.checkpoint_queue {
            assert_eq!(self.leases[id].checkpoint_due_ms, Some(*at));
        }
    }

    /// Restarts a lease's countdown on the primary: deadline `from_ms + ttl_s`, next
    /// checkpoint one interval after `from_ms`.
    fn start_countdown(&mut self, id: LeaseId, ttl_s: i64, from_ms: u64) {
        debug_assert!(self.primary);
        let lease = self.leases.get_mut(&id).expect("countdown of a live lease");
        let ttl_ms = u64::try_from(ttl_s)
            .expect("TTLs are positive")
            .saturating_mul(MS_PER_S);
        let expiry = from_ms.saturating_add(ttl_ms);
        lease.expiry_ms = Some(expiry);
        if let Some(old) = lease.expiry_queued_ms.replace(expiry) {
            self.expiry_queue.remove(&(old, id));
        }
        self.expiry_queue.insert((expiry, id));
        let due = from_ms.saturating_add(self.config.checkpoint_interval_ms);
        if let Some(old) = lease.checkpoint_due_ms.replace(due) {
            self.checkpoint_queue.remove(&(old, id));
        }
        self.checkpoint_queue.insert((due, id));
    }

    pub(crate) fn from_parts(
        config: LessorConfig,
        rng: Rng,
        leases: BTreeMap<LeaseId, Lease>,
        key_leases: BTreeMap<Vec<u8>, LeaseId>,
    ) -> Self {
        let mut lessor = Lessor::new(config, rng);
        lessor.leases = leases;
        lessor.key_leases = key_leases;
        lessor
    }
}
