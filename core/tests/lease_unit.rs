//! Every error the lessor returns, with the state left untouched, plus the
//! snapshot codec's rejections and the configuration rules.

use detcd_core::error;
use detcd_core::lease::{
    ttl_min_s, Checkpoint, Lessor, LessorConfig, SnapshotError, LEASE_TTL_MAX_S, NO_LEASE, SNAPSHOT_VERSION,
};
use detcd_core::rng::Rng;
use proptest::prelude::*;

fn config() -> LessorConfig {
    let mut c = LessorConfig::new(1000);
    c.checkpoint_interval_ms = 5000;
    c
}

fn primary() -> Lessor {
    let mut l = Lessor::new(config(), Rng::new(9));
    l.promote(0, 0);
    l
}

/// A lessor with two leases and keys, and its snapshot bytes.
fn populated() -> (Lessor, Vec<u8>) {
    let mut l = primary();
    l.grant(1, 10, 0).unwrap();
    l.grant(-4, 30, 0).unwrap();
    l.attach(1, b"b").unwrap();
    l.attach(1, b"a").unwrap();
    l.attach(-4, b"zz").unwrap();
    l.apply_checkpoint(Checkpoint {
        id: -4,
        remaining_ttl_s: 12,
    });
    let bytes = l.to_bytes();
    (l, bytes)
}

/// Calls `op` and asserts it failed with `expected` and left the state as it was.
fn assert_rejects<T: std::fmt::Debug>(
    l: &mut Lessor,
    expected: error::EtcdError,
    op: impl FnOnce(&mut Lessor) -> Result<T, error::EtcdError>,
) {
    let before = l.to_bytes();
    let leases_before = l.leases();
    assert_eq!(op(l).unwrap_err(), expected);
    assert_eq!(l.to_bytes(), before, "a failed call changed the state");
    assert_eq!(l.leases(), leases_before);
    l.check_invariants();
}

#[test]
fn min_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
    assert_eq!(ttl_min_s(1000), 2);
    assert_eq!(ttl_min_s(3000), 5);
    assert_eq!(ttl_min_s(2000), 3);
    assert_eq!(ttl_min_s(100), 1);
    assert_eq!(ttl_min_s(0), 1);
    assert_eq!(ttl_min_s(u64::MAX), LEASE_TTL_MAX_S);
}

#[test]
fn grant_id_zero_is_not_found() {
    let (mut l, _) = populated();
    assert_rejects(&mut l, error::LEASE_NOT_FOUND, |l| l.grant(NO_LEASE, 10, 0));
}

#[test]
fn grant_ttl_too_large() {
    let (mut l, _) = populated();
    assert_rejects(&mut l, error::LEASE_TTL_TOO_LARGE, |l| {
        l.grant(2, LEASE_TTL_MAX_S + 1, 0)
    });
    assert_eq!(l.grant(2, LEASE_TTL_MAX_S, 0).unwrap().ttl_s, LEASE_TTL_MAX_S);
}

#[test]
fn grant_duplicate_exists() {
    let (mut l, _) = populated();
    assert_rejects(&mut l, error::LEASE_EXISTS, |l| l.grant(1, 99, 0));
    assert_eq!(l.ttls_s(1), Some((10, 0)));
}

#[test]
fn revoke_attach_detach_unknown_are_not_found() {
    let (mut l, _) = populated();
    assert_rejects(&mut l, error::LEASE_NOT_FOUND, |l| l.revoke(77));
    assert_rejects(&mut l, error::LEASE_NOT_FOUND, |l| l.attach(77, b"a"));
    assert_rejects(&mut l, error::LEASE_NOT_FOUND, |l| l.detach(77, b"a"));
    assert_eq!(l.lease_of(b"a"), 1);
}

#[test]
fn renew_on_a_follower_is_not_leader() {
    let (mut l, _) = populated();
    l.demote();
    assert_rejects(&mut l, error::NOT_LEADER, |l| l.renew(1, 0));
    assert_rejects(&mut l, error::NOT_LEADER, |l| l.time_to_live(1, true, 0));
}

#[test]
fn renew_unknown_or_expired_is_not_found() {
    let (mut l, _) = populated();
    assert_rejects(&mut l, error::LEASE_NOT_FOUND, |l| l.renew(77, 0));
    assert_eq!(l.renew(1, 9_999).unwrap().ttl_s, 10);
    assert_rejects(&mut l, error::LEASE_NOT_FOUND, |l| l.renew(1, 19_999 + 1));
    // Still there until the revoke is applied.
    assert!(l.contains(1));
    assert_eq!(l.time_to_live(1, false, 20_000).unwrap().ttl_s, 0);
}

#[test]
fn time_to_live_of_unknown_is_minus_one() {
    let (l, _) = populated();
    let t = l.time_to_live(77, true, 0).unwrap();
    assert_eq!((t.ttl_s, t.granted_ttl_s, t.keys.len()), (-1, 0, 0));
}

#[test]
fn apply_checkpoint_of_unknown_lease_is_ignored() {
    let (mut l, bytes) = populated();
    l.apply_checkpoint(Checkpoint {
        id: 77,
        remaining_ttl_s: 5,
    });
    assert_eq!(l.to_bytes(), bytes);
}

#[test]
#[should_panic(expected = "already primary")]
fn promote_twice_is_a_bug() {
    let mut l = primary();
    l.promote(0, 0);
}

#[test]
fn expired_is_bounded_per_call_and_retried() {
    let mut c = config();
    c.expired_per_call_max = 3;
    let mut l = Lessor::new(c, Rng::new(1));
    l.promote(0, 0);
    for id in 1..=5 {
        l.grant(id, 2, 0).unwrap();
    }
    assert_eq!(l.expired(1_999), Vec::<i64>::new());
    assert_eq!(l.expired(2_000), vec![1, 2, 3]);
    assert_eq!(l.expired(2_000), vec![4, 5]);
    assert!(l.expired(4_999).is_empty());
    assert_eq!(l.expired(5_000), vec![1, 2, 3]);
    l.check_invariants();
}

#[test]
fn followers_report_nothing() {
    let (mut l, _) = populated();
    l.demote();
    assert!(l.expired(u64::MAX).is_empty());
    assert!(l.checkpoints_due(u64::MAX).is_empty());
    l.check_invariants();
}

#[test]
fn choose_id_clears_the_sign_and_avoids_zero_and_duplicates() {
    let (mut l, _) = populated();
    assert_eq!(l.choose_id(Some(u64::MAX)), i64::MAX);
    assert_eq!(l.choose_id(Some(1 << 63 | 12)), 12);
    let from_zero = l.choose_id(Some(0));
    assert!(from_zero > 0);
    let from_duplicate = l.choose_id(Some(1));
    assert!(from_duplicate > 0 && from_duplicate != 1);
    // Deterministic: the same seed draws the same IDs.
    let mut a = Lessor::new(config(), Rng::new(5));
    let mut b = Lessor::new(config(), Rng::new(5));
    assert_eq!(a.choose_id(None), b.choose_id(None));
}

#[test]
fn config_validation() {
    assert_eq!(LessorConfig::new(1000).validate(), Ok(()));
    let broken = [
        LessorConfig {
            ttl_min_s: 0,
            ..config()
        },
        LessorConfig {
            checkpoint_interval_ms: 0,
            ..config()
        },
        LessorConfig {
            expired_per_call_max: 0,
            ..config()
        },
        LessorConfig {
            checkpoints_per_call_max: 0,
            ..config()
        },
        LessorConfig {
            expired_retry_ms: 0,
            ..config()
        },
    ];
    for c in broken {
        assert!(c.validate().is_err(), "{c:?}");
    }
}

#[test]
fn snapshot_round_trip_keeps_replicated_state_only() {
    let (l, bytes) = populated();
    assert_eq!(bytes[0], SNAPSHOT_VERSION);
    let restored = Lessor::from_bytes(config(), Rng::new(1), &bytes).unwrap();
    restored.check_invariants();
    assert!(!restored.is_primary());
    assert_eq!(restored.to_bytes(), bytes);
    assert_eq!(restored.leases(), l.leases());
    assert_eq!(restored.lease_of(b"zz"), -4);
    assert_eq!(restored.ttls_s(-4), Some((30, 12)));
    assert_eq!(restored.expiry_ms(1), None);
}

#[test]
fn snapshot_raises_ttls_to_the_configured_minimum() {
    let (_, bytes) = populated();
    let restored = Lessor::from_bytes(LessorConfig::new(10_000), Rng::new(1), &bytes).unwrap();
    assert_eq!(restored.ttls_s(1), Some((15, 0)));
}

#[test]
fn snapshot_truncated_anywhere_is_an_error() {
    let (_, bytes) = populated();
    for len in 0..bytes.len() {
        let err = Lessor::from_bytes(config(), Rng::new(1), &bytes[..len]).unwrap_err();
        assert!(err.offset <= len, "{err}");
    }
}

fn decode_error(bytes: &[u8]) -> SnapshotError {
    Lessor::from_bytes(config(), Rng::new(1), bytes).unwrap_err()
}

#[test]
fn snapshot_rejections() {
    let (_, bytes) = populated();
    let mut version = bytes.clone();
    version[0] = 9;
    assert_eq!(decode_error(&version).reason, "unknown version");

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(decode_error(&trailing).reason, "trailing bytes");

    let mut huge = bytes.clone();
    huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode_error(&huge),
        SnapshotError {
            offset: 1,
            reason: "count larger than the remaining bytes"
        }
    );

    // Leases are written -4 then 1; the first ID is at byte 5.
    let mut unordered = bytes.clone();
    unordered[5..13].copy_from_slice(&7i64.to_le_bytes());
    assert_eq!(
        decode_error(&unordered).reason,
        "lease IDs not strictly ascending"
    );

    let mut zero = bytes.clone();
    zero[5..13].copy_from_slice(&0i64.to_le_bytes());
    assert_eq!(
        decode_error(&zero),
        SnapshotError {
            offset: 5,
            reason: "lease ID 0"
        }
    );

    let mut ttl = bytes.clone();
    ttl[13..21].copy_from_slice(&0i64.to_le_bytes());
    assert_eq!(
        decode_error(&ttl),
        SnapshotError {
            offset: 13,
            reason: "TTL out of range"
        }
    );

    let mut remaining = bytes.clone();
    remaining[21..29].copy_from_slice(&31i64.to_le_bytes());
    assert_eq!(decode_error(&remaining).reason, "remaining TTL out of range");
}

#[test]
fn snapshot_rejects_a_key_held_twice_and_unsorted_keys() {
    let mut l = primary();
    l.grant(1, 10, 0).unwrap();
    l.grant(2, 10, 0).unwrap();
    l.attach(1, b"k").unwrap();
    l.attach(2, b"l").unwrap();
    let mut bytes = l.to_bytes();
    // The last byte is lease 2's key; make it lease 1's.
    *bytes.last_mut().unwrap() = b'k';
    assert_eq!(decode_error(&bytes).reason, "key attached to two leases");

    l.attach(2, b"m").unwrap();
    let mut bytes = l.to_bytes();
    let n = bytes.len();
    bytes.swap(n - 1, n - 6);
    assert_eq!(decode_error(&bytes).reason, "keys not strictly ascending");
}

proptest! {
    #[test]
    fn snapshot_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Lessor::from_bytes(config(), Rng::new(1), &bytes);
    }

    #[test]
    fn snapshot_decoding_survives_any_single_byte_change(at in any::<usize>(), value in any::<u8>()) {
        let (_, mut bytes) = populated();
        let at = at % bytes.len();
        bytes[at] = value;
        if let Ok(l) = Lessor::from_bytes(config(), Rng::new(1), &bytes) {
            l.check_invariants();
        }
    }
}

#[test]
fn checkpoints_are_bounded_per_call_and_skip_fresh_leases() {
    let mut c = config();
    c.checkpoints_per_call_max = 2;
    let mut l = Lessor::new(c, Rng::new(1));
    l.promote(0, 0);
    for id in 1..=3 {
        l.grant(id, 60, 0).unwrap();
    }
    let first = l.checkpoints_due(5_000);
    assert_eq!(
        first,
        vec![
            Checkpoint {
                id: 1,
                remaining_ttl_s: 55
            },
            Checkpoint {
                id: 2,
                remaining_ttl_s: 55
            }
        ]
    );
    assert_eq!(
        l.checkpoints_due(5_000),
        vec![Checkpoint {
            id: 3,
            remaining_ttl_s: 55
        }]
    );
    assert!(l.checkpoints_due(5_000).is_empty());
    // A lease renewed just before its check has lost nothing worth recording.
    l.renew(1, 9_999).unwrap();
    l.renew(2, 9_000).unwrap();
    let due = l.checkpoints_due(14_999);
    // Earliest due first: lease 3 was due at 10 s, lease 2 at 14 s.
    assert_eq!(
        due,
        vec![
            Checkpoint {
                id: 3,
                remaining_ttl_s: 46
            },
            Checkpoint {
                id: 2,
                remaining_ttl_s: 55
            }
        ]
    );
    l.check_invariants();
}

#[test]
fn a_renewal_asks_for_a_full_checkpoint_only_after_a_partial_one() {
    let mut l = primary();
    l.grant(1, 60, 0).unwrap();
    assert_eq!(l.renew(1, 1_000).unwrap().checkpoint, None);
    let cp = l.checkpoints_due(6_000);
    assert_eq!(
        cp,
        vec![Checkpoint {
            id: 1,
            remaining_ttl_s: 55
        }]
    );
    // Proposed but not yet applied: the renewal must still override it.
    let renewal = l.renew(1, 7_000).unwrap();
    assert_eq!(
        renewal.checkpoint,
        Some(Checkpoint {
            id: 1,
            remaining_ttl_s: 60
        })
    );
    // The older checkpoint commits first, then the renewal's.
    l.apply_checkpoint(cp[0]);
    l.apply_checkpoint(renewal.checkpoint.unwrap());
    assert_eq!(l.ttls_s(1), Some((60, 60)));
    // Applying the stale one made the next renewal ask again; after that, none.
    assert!(l.renew(1, 8_000).unwrap().checkpoint.is_some());
    assert_eq!(l.renew(1, 9_000).unwrap().checkpoint, None);
}
