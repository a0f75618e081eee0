//! Lock safety: no two clients hold one lock at the same time while their leases are
//! alive.
//!
//! Each [`Hold`] is one client's tenure as its recipe saw it: from the moment its
//! acquire completed until it sent its release, cut short at the moment its lease is
//! certainly alive until (when the grant or last renewal was sent, plus the TTL): after
//! that the lease may have expired and the key with it, and a successor is then
//! entitled to the lock. Virtual time has no clock drift, so these bounds are exact for
//! the simulation's members (etcd's leases, like any lease, assume bounded drift).

use std::collections::BTreeMap;

/// One client's tenure of one lock, in virtual microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub client: usize,
    pub lock: Vec<u8>,
    /// When the acquire completed (the client learned it holds the lock).
    pub from_us: u64,
    /// When the client sent its release (or stopped acting as the holder).
    pub until_us: u64,
    /// Until when the lease was certainly alive: renewal sent + TTL.
    pub lease_alive_until_us: u64,
}

impl Hold {
    /// The end of the tenure the checker holds the client to.
    pub fn end_us(&self) -> u64 {
        self.until_us.min(self.lease_alive_until_us)
    }
}

/// `Ok(number of tenures checked)`, or the first two that overlap, described.
pub fn check(holds: &[Hold]) -> Result<usize, String> {
    let mut by_lock: BTreeMap<&[u8], Vec<&Hold>> = BTreeMap::new();
    for h in holds {
        by_lock.entry(&h.lock).or_default().push(h);
    }
    for tenures in by_lock.values_mut() {
        tenures.sort_by_key(|h| (h.from_us, h.client));
        // Sorted by start: an overlap shows between a tenure and the latest-ending
        // tenure before it.
        let mut latest: Option<&Hold> = None;
        for &h in tenures.iter() {
            if let Some(prev) = latest {
                if h.from_us < prev.end_us() && h.from_us < h.end_us() {
                    return Err(format!(
                        "lock {:?}: client {} held it from {} us to {} us while client {} held it from {} us",
                        String::from_utf8_lossy(&h.lock),
                        prev.client,
                        prev.from_us,
                        prev.end_us(),
                        h.client,
                        h.from_us
                    ));
                }
            }
            if latest.is_none_or(|p| h.end_us() > p.end_us()) {
                latest = Some(h);
            }
        }
    }
    Ok(holds.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(client: usize, from_us: u64, until_us: u64, lease_alive_until_us: u64) -> Hold {
        Hold {
            client,
            lock: b"l".to_vec(),
            from_us,
            until_us,
            lease_alive_until_us,
        }
    }

    #[test]
    fn back_to_back_tenures_pass() {
        let holds = [hold(0, 0, 10, 100), hold(1, 10, 20, 100), hold(2, 20, 30, 100)];
        assert_eq!(check(&holds), Ok(3));
    }

    #[test]
    fn an_overlap_is_reported() {
        let holds = [hold(0, 0, 10, 100), hold(1, 5, 20, 100)];
        assert!(check(&holds).is_err());
        // Even behind a short tenure that ended in between.
        let holds = [hold(0, 0, 50, 100), hold(1, 10, 20, 100), hold(2, 30, 40, 100)];
        assert!(check(&holds).is_err());
    }

    #[test]
    fn a_lapsed_lease_ends_the_tenure() {
        // Client 0 never released, but its lease could expire at 10: client 1 may
        // take over at 12.
        assert_eq!(check(&[hold(0, 0, 50, 10), hold(1, 12, 20, 100)]), Ok(2));
        // Different locks never conflict.
        let mut other = hold(1, 5, 20, 100);
        other.lock = b"m".to_vec();
        assert_eq!(check(&[hold(0, 0, 10, 100), other]), Ok(2));
    }
}
