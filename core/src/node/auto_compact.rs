//! Auto-compaction's schedule (`--auto-compaction-mode`,
//! `--auto-compaction-retention`), etcd 3.4's, as a pure part of the member: time
//! and the member's state are parameters (the node polls it on each Tick), so the
//! simulator runs it like the rest of the member. Only the leader compacts; the
//! compaction is an ordinary Compact request through raft, so every member
//! compacts at the same revision.
//!
//! - Periodic, retention `P`: the current revision is sampled every `P/10` (every
//!   6 minutes once `P` is over an hour), and the last `P`'s worth of samples kept.
//!   The first compaction comes `P` after start, the next ones every `min(P, 1h)`
//!   after the last success, each to the oldest sample: the revision of about `P`
//!   ago, so the newest `P` of history stays readable.
//! - Revision, retention `N`: every 5 minutes, compact to `current - N` unless
//!   that is where the last compaction went.

use std::collections::VecDeque;

use detcd_proto::detcdpb::raft_request;
use detcd_proto::etcdserverpb::CompactionRequest;

use super::requests::Origin;
use super::{Node, Output};
use crate::raft::Role;

/// `--auto-compaction-mode` with its retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoCompaction {
    #[default]
    Off,
    /// Keep this much history (a duration; a bare number means hours).
    Periodic { retention_ms: u64 },
    /// Keep this many revisions.
    Revision { retention_revs: u64 },
}

const HOUR_MS: u64 = 3_600_000;
/// Periodic mode samples the revision this many times per compaction interval.
const SAMPLES_PER_INTERVAL: u64 = 10;
/// How often revision mode checks (etcd's `revInterval`).
pub const REVISION_CHECK_MS: u64 = 5 * 60 * 1000;

/// The auto-compaction schedule.
#[derive(Debug)]
pub struct Compactor {
    mode: AutoCompaction,
    /// Periodic: revision samples, oldest first, at most `retained` of them.
    samples: VecDeque<i64>,
    retained: usize,
    next_sample_ms: u64,
    /// When the next compaction may be tried.
    next_compact_ms: u64,
    /// Revision mode: where the last compaction went.
    last_compacted: i64,
}

/// A compaction the schedule asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    pub revision: i64,
}

impl Compactor {
    /// `None` when auto-compaction is off.
    pub fn new(mode: AutoCompaction, now_ms: u64) -> Option<Compactor> {
        let (next_compact_ms, retained) = match mode {
            AutoCompaction::Off => return None,
            AutoCompaction::Periodic { retention_ms } => {
                let sample_ms = Self::sample_interval_ms(retention_ms);
                (now_ms + retention_ms, (retention_ms / sample_ms) as usize + 1)
            }
            AutoCompaction::Revision { .. } => (now_ms + REVISION_CHECK_MS, 0),
        };
        Some(Compactor {
            mode,
            samples: VecDeque::new(),
            retained,
            next_sample_ms: now_ms,
            next_compact_ms,
            last_compacted: 0,
        })
    }

    fn sample_interval_ms(retention_ms: u64) -> u64 {
        (retention_ms.min(HOUR_MS) / SAMPLES_PER_INTERVAL).max(1)
    }

    /// When [`Compactor::poll`] next has something to do.
    pub fn next_wakeup_ms(&self) -> u64 {
        match self.mode {
            AutoCompaction::Periodic { .. } => self.next_sample_ms.min(self.next_compact_ms),
            _ => self.next_compact_ms,
        }
    }

    /// Advances the schedule to `now_ms`, with the member's current revision and
    /// whether it leads; returns the compaction to make now, if any. A member that
    /// does not lead keeps sampling but never compacts (etcd pauses it).
    pub fn poll(&mut self, now_ms: u64, leader: bool, current_rev: i64) -> Option<Due> {
        match self.mode {
            AutoCompaction::Off => None,
            AutoCompaction::Periodic { retention_ms } => {
                let sample_ms = Self::sample_interval_ms(retention_ms);
                if now_ms >= self.next_sample_ms {
                    self.samples.push_back(current_rev);
                    while self.samples.len() > self.retained {
                        self.samples.pop_front();
                    }
                    self.next_sample_ms = now_ms + sample_ms;
                }
                if !leader || now_ms < self.next_compact_ms {
                    return None;
                }
                // Retried at the next sample until it succeeds.
                self.next_compact_ms = now_ms + sample_ms;
                let revision = *self.samples.front()?;
                (revision > self.last_compacted).then_some(Due { revision })
            }
            AutoCompaction::Revision { retention_revs } => {
                if now_ms < self.next_compact_ms {
                    return None;
                }
                self.next_compact_ms = now_ms + REVISION_CHECK_MS;
                let revision = current_rev.saturating_sub(i64::try_from(retention_revs).unwrap_or(i64::MAX));
                (leader && revision > 0 && revision != self.last_compacted).then_some(Due { revision })
            }
        }
    }

    /// The compaction to `revision` succeeded (or that revision was compacted
    /// already), at `now_ms`.
    pub fn compacted(&mut self, now_ms: u64, revision: i64) {
        self.last_compacted = revision;
        if let AutoCompaction::Periodic { retention_ms } = self.mode {
            self.next_compact_ms = now_ms + retention_ms.min(HOUR_MS);
        }
    }
}

/// The member's side of auto-compaction: the schedule, started at the first
/// Tick, and the compaction proposed and not yet seen applied.
#[derive(Debug, Default)]
pub(crate) struct AutoCompactDuty {
    started: bool,
    compactor: Option<Compactor>,
    /// (revision, deadline): proposed; given up at the deadline (lost with a
    /// leader change), and the schedule retries.
    pending: Option<(i64, u64)>,
}

impl Node {
    /// On each Tick: notices a proposed compaction applied, then polls the
    /// schedule and proposes the compaction it asks for. Both are reported as
    /// [`Output::AutoCompaction`] for the log.
    pub(crate) fn auto_compact(&mut self) {
        let now_ms = self.now_ms;
        let duty = &mut self.auto_compaction;
        if !duty.started {
            duty.started = true;
            duty.compactor = Compactor::new(self.config.auto_compaction, now_ms);
        }
        let Some(compactor) = duty.compactor.as_mut() else {
            return;
        };
        if let Some((revision, deadline_ms)) = duty.pending {
            if self.store.compact_revision() >= revision {
                // Compacted (by this proposal or another one to the same point).
                compactor.compacted(now_ms, revision);
                duty.pending = None;
                self.outputs.push_back(Output::AutoCompaction {
                    revision,
                    completed: true,
                });
            } else if now_ms < deadline_ms {
                return;
            } else {
                duty.pending = None;
            }
        }
        let leader = self.soft.role == Role::Leader;
        let Some(due) = compactor.poll(now_ms, leader, self.store.revision()) else {
            return;
        };
        duty.pending = Some((due.revision, now_ms + self.config.request_timeout_ms));
        self.outputs.push_back(Output::AutoCompaction {
            revision: due.revision,
            completed: false,
        });
        let request = CompactionRequest {
            revision: due.revision,
            physical: false,
        };
        self.propose_request(Origin::Internal, raft_request::Request::Compaction(request));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    /// Runs the schedule every second from 0 to `until_ms` with the revision
    /// growing by one per second, compacting successfully whenever asked; returns
    /// (time, revision) of each compaction.
    fn simulate(mode: AutoCompaction, until_ms: u64, leader: impl Fn(u64) -> bool) -> Vec<(u64, i64)> {
        let mut c = Compactor::new(mode, 0).unwrap();
        let mut done = Vec::new();
        let mut now = 0;
        while now <= until_ms {
            let rev = 1 + (now / 1000) as i64;
            if let Some(due) = c.poll(now, leader(now), rev) {
                c.compacted(now, due.revision);
                done.push((now, due.revision));
            }
            now += 1000;
        }
        done
    }

    #[test]
    fn off_means_no_compactor() {
        assert!(Compactor::new(AutoCompaction::Off, 0).is_none());
    }

    #[test]
    fn periodic_under_an_hour_keeps_the_retention_window() {
        // 10 minutes: samples every minute, first compaction 10 min in, then every
        // 10 min, each to the revision of 10 min before.
        let done = simulate(
            AutoCompaction::Periodic {
                retention_ms: 10 * MIN,
            },
            35 * MIN,
            |_| true,
        );
        assert_eq!(done, vec![(10 * MIN, 1), (20 * MIN, 601), (30 * MIN, 1201)]);
    }

    #[test]
    fn periodic_over_an_hour_compacts_hourly_keeping_the_window() {
        let done = simulate(
            AutoCompaction::Periodic {
                retention_ms: 180 * MIN,
            },
            300 * MIN,
            |_| true,
        );
        // Sampled every 6 min; first at 3 h to the revision at start, then hourly,
        // each to the revision of 3 h earlier.
        assert_eq!(
            done,
            vec![
                (180 * MIN, 1),
                (240 * MIN, 1 + 60 * 60),
                (300 * MIN, 1 + 120 * 60)
            ]
        );
    }

    #[test]
    fn periodic_pauses_when_not_leading_and_resumes_with_the_window() {
        let leader = |now: u64| !(9 * MIN..25 * MIN).contains(&now);
        let done = simulate(
            AutoCompaction::Periodic {
                retention_ms: 10 * MIN,
            },
            31 * MIN,
            leader,
        );
        // Due at 10 min but a follower then; leading again at 25 min it compacts to
        // the revision of 10 min before (sampling went on meanwhile).
        assert_eq!(done, vec![(25 * MIN, 1 + 15 * 60)]);
    }

    #[test]
    fn periodic_retries_a_failed_compaction_at_the_next_sample() {
        let mut c = Compactor::new(
            AutoCompaction::Periodic {
                retention_ms: 10 * MIN,
            },
            0,
        )
        .unwrap();
        let mut asked = Vec::new();
        for s in 0..=(12 * 60) {
            let now = s * 1000;
            if let Some(due) = c.poll(now, true, 1 + s as i64) {
                asked.push((now, due.revision));
            }
        }
        // Never acknowledged: asked at 10 min, then again at each sample.
        assert_eq!(asked, vec![(10 * MIN, 1), (11 * MIN, 61), (12 * MIN, 121)]);
    }

    #[test]
    fn revision_mode_keeps_the_newest_revisions() {
        let done = simulate(AutoCompaction::Revision { retention_revs: 100 }, 16 * MIN, |_| {
            true
        });
        assert_eq!(done, vec![(5 * MIN, 201), (10 * MIN, 501), (15 * MIN, 801)]);
        // Nothing new to compact: no request.
        let mut c = Compactor::new(AutoCompaction::Revision { retention_revs: 100 }, 0).unwrap();
        assert_eq!(c.poll(5 * MIN, true, 150), Some(Due { revision: 50 }));
        c.compacted(5 * MIN, 50);
        assert_eq!(c.poll(10 * MIN, true, 150), None);
        assert_eq!(
            c.poll(15 * MIN, true, 90),
            None,
            "below the retention: nothing to compact"
        );
        assert_eq!(c.poll(20 * MIN, false, 500), None, "followers do not compact");
    }
}
