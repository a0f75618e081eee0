//! etcd's v2 store statistics (`/v2/stats/store`, etcd's `v2store.Stats`): how many
//! of each operation succeeded and failed, and how many keys expired.
//!
//! As in etcd they belong to one member: writes, quorum gets and expiries count as
//! this member applies them, plain gets as it serves them. They are not replicated
//! state: they live beside the store, outside its encoding and its equality, so
//! members that applied the same log still have equal stores. As etcd's store
//! snapshot holds its `Stats`, the member's state snapshot carries them in a
//! member-local section of its own (state format 7): a member restarting from its
//! snapshot starts from the counts it had when it took it (then counts the entries
//! it replays again), and one installing its leader's snapshot takes the leader's,
//! as etcd's `Recovery` does. The `watchers` gauge is
//! the server's, which holds the waits, and so is the failed get etcd counts for
//! each `/v2/keys` request when it looks up whether v2 auth is enabled.
//!
//! etcd counts through a deferred check of a named error that some of its early
//! returns leave unset: those failures count as successes there, and
//! [`Stats::record`] does the same (see [`counts_as_failure`]).

use super::{code, V2Error};

/// The operations the statistics count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Set,
    Delete,
    Update,
    Create,
    CompareAndSwap,
    CompareAndDelete,
}

/// The counts, in etcd's JSON order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub gets_success: u64,
    pub gets_fail: u64,
    pub sets_success: u64,
    pub sets_fail: u64,
    pub delete_success: u64,
    pub delete_fail: u64,
    pub update_success: u64,
    pub update_fail: u64,
    pub create_success: u64,
    pub create_fail: u64,
    pub compare_and_swap_success: u64,
    pub compare_and_swap_fail: u64,
    pub compare_and_delete_success: u64,
    pub compare_and_delete_fail: u64,
    pub expire_count: u64,
}

impl Stats {
    /// Counts one `op` that succeeded (`ok`) or failed.
    pub fn count(&mut self, op: Op, ok: bool) {
        let (success, fail) = match op {
            Op::Get => (&mut self.gets_success, &mut self.gets_fail),
            Op::Set => (&mut self.sets_success, &mut self.sets_fail),
            Op::Delete => (&mut self.delete_success, &mut self.delete_fail),
            Op::Update => (&mut self.update_success, &mut self.update_fail),
            Op::Create => (&mut self.create_success, &mut self.create_fail),
            Op::CompareAndSwap => (
                &mut self.compare_and_swap_success,
                &mut self.compare_and_swap_fail,
            ),
            Op::CompareAndDelete => (
                &mut self.compare_and_delete_success,
                &mut self.compare_and_delete_fail,
            ),
        };
        let counter = if ok { success } else { fail };
        *counter += 1;
    }

    /// Counts one `op` with its outcome as etcd counts it; a create that failed on a
    /// file in its path also counts a failed set (etcd's `internalCreate`).
    pub fn record<T>(&mut self, op: Op, result: &Result<T, V2Error>) {
        let failed = result.as_ref().err().filter(|e| counts_as_failure(op, e));
        self.count(op, failed.is_none());
        if op == Op::Create && failed.is_some_and(|e| e.code == code::NOT_DIR) {
            self.count(Op::Set, false);
        }
    }

    /// Counts `n` expired keys.
    pub fn count_expired(&mut self, n: usize) {
        self.expire_count += n as u64;
    }

    /// The counts as snapshot bytes: each, in [`Stats::fields`] order, a
    /// little-endian `u64`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for (_, n) in self.fields() {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// Reads bytes written by [`Stats::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Stats, String> {
        const N: usize = 15;
        if bytes.len() != 8 * N {
            return Err(format!("v2 stats: {} bytes, not {}", bytes.len(), 8 * N));
        }
        let mut n = [0u64; N];
        for (i, chunk) in bytes.chunks_exact(8).enumerate() {
            n[i] = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        Ok(Stats {
            gets_success: n[0],
            gets_fail: n[1],
            sets_success: n[2],
            sets_fail: n[3],
            delete_success: n[4],
            delete_fail: n[5],
            update_success: n[6],
            update_fail: n[7],
            create_success: n[8],
            create_fail: n[9],
            compare_and_swap_success: n[10],
            compare_and_swap_fail: n[11],
            compare_and_delete_success: n[12],
            compare_and_delete_fail: n[13],
            expire_count: n[14],
        })
    }

    /// The counts by etcd's JSON names, in etcd's order (`watchers` excluded).
    pub fn fields(&self) -> [(&'static str, u64); 15] {
        [
            ("getsSuccess", self.gets_success),
            ("getsFail", self.gets_fail),
            ("setsSuccess", self.sets_success),
            ("setsFail", self.sets_fail),
            ("deleteSuccess", self.delete_success),
            ("deleteFail", self.delete_fail),
            ("updateSuccess", self.update_success),
            ("updateFail", self.update_fail),
            ("createSuccess", self.create_success),
            ("createFail", self.create_fail),
            ("compareAndSwapSuccess", self.compare_and_swap_success),
            ("compareAndSwapFail", self.compare_and_swap_fail),
            ("compareAndDeleteSuccess", self.compare_and_delete_success),
            ("compareAndDeleteFail", self.compare_and_delete_fail),
            ("expireCount", self.expire_count),
        ]
    }
}

/// Whether etcd 3.4 counts `error` of `op` as a failure. Its update, delete,
/// compare-and-swap and compare-and-delete return some errors without setting the
/// error their deferred count reads: the root being read only; for an update and a
/// compare-and-delete, the node being a directory; for a compare-and-delete, the
/// comparison failing. Only a missing node or a file in the path (the lookup's
/// errors) and, for a delete, the removal's errors count as failures there.
pub fn counts_as_failure(op: Op, error: &V2Error) -> bool {
    let lookup = matches!(error.code, code::KEY_NOT_FOUND | code::NOT_DIR);
    match op {
        Op::Get | Op::Set | Op::Create => true,
        Op::Delete | Op::CompareAndSwap => error.code != code::ROOT_READ_ONLY,
        Op::Update | Op::CompareAndDelete => lookup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcds_uncounted_failures() {
        let mut s = Stats::default();
        let err = |c: u32| Err::<(), _>(V2Error::new(c, "", 0));
        s.record(Op::CompareAndDelete, &err(code::TEST_FAILED));
        s.record(Op::CompareAndDelete, &err(code::KEY_NOT_FOUND));
        s.record(Op::Update, &err(code::NOT_FILE));
        s.record(Op::Create, &err(code::NOT_DIR));
        s.record(Op::Set, &err(code::NOT_DIR));
        assert_eq!((s.compare_and_delete_success, s.compare_and_delete_fail), (1, 1));
        assert_eq!((s.update_success, s.update_fail), (1, 0));
        assert_eq!((s.create_fail, s.sets_fail), (1, 2));
    }

    #[test]
    fn counts_round_trip_through_their_bytes() {
        let mut s = Stats::default();
        for (i, op) in [Op::Get, Op::Set, Op::CompareAndDelete].into_iter().enumerate() {
            for _ in 0..=i {
                s.count(op, i % 2 == 0);
            }
        }
        s.count_expired(7);
        let mut bytes = Vec::new();
        s.encode(&mut bytes);
        assert_eq!(Stats::decode(&bytes), Ok(s));
        assert!(Stats::decode(&bytes[1..]).is_err());
    }

    #[test]
    fn counts_land_in_their_fields() {
        let mut s = Stats::default();
        s.count(Op::Get, true);
        s.count(Op::CompareAndDelete, false);
        s.count(Op::CompareAndDelete, false);
        s.count_expired(3);
        let f = s.fields();
        assert_eq!(f[0], ("getsSuccess", 1));
        assert_eq!(f[13], ("compareAndDeleteFail", 2));
        assert_eq!(f[14], ("expireCount", 3));
        assert_eq!(f.iter().map(|(_, n)| n).sum::<u64>(), 6);
    }
}
