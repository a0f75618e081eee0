//! What the leader knows about one follower's log, and how fast it may send to it.
//!
//! A follower is in one of three states (as in etcd's tracker): `Probe` (one append
//! at a time until the match point is found), `Replicate` (optimistic pipelining,
//! bounded by the inflight window) or `Snapshot` (nothing is sent until the snapshot
//! is reported). The window bounds both messages and bytes so a slow follower cannot
//! make the leader buffer without limit.

use std::collections::VecDeque;

/// The flow-control state of one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProgressState {
    Probe,
    Replicate,
    Snapshot,
}

impl ProgressState {
    /// The name used in status output and transcripts.
    pub fn name(self) -> &'static str {
        match self {
            ProgressState::Probe => "StateProbe",
            ProgressState::Replicate => "StateReplicate",
            ProgressState::Snapshot => "StateSnapshot",
        }
    }
}

/// Appends sent but not yet acknowledged, each remembered by its last index and its
/// payload bytes, so an acknowledgement frees exactly what it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    sent: VecDeque<(u64, u64)>,
    bytes: u64,
    msgs_max: usize,
    bytes_max: u64,
}

impl Inflights {
    /// An empty window of `msgs_max` messages and `bytes_max` bytes (0: unbounded).
    pub fn new(msgs_max: usize, bytes_max: u64) -> Inflights {
        Inflights {
            sent: VecDeque::new(),
            bytes: 0,
            msgs_max,
            bytes_max,
        }
    }

    /// Records an append whose last entry is `last_index`.
    pub fn add(&mut self, last_index: u64, bytes: u64) {
        assert!(!self.full(), "inflight window overflow");
        if let Some(&(prev, _)) = self.sent.back() {
            assert!(
                last_index > prev,
                "inflight indexes must increase: {prev} then {last_index}"
            );
        }
        self.sent.push_back((last_index, bytes));
        self.bytes += bytes;
    }

    /// Frees every append whose last index is at or below `index`.
    pub fn free_le(&mut self, index: u64) {
        while let Some(&(last, bytes)) = self.sent.front() {
            if last > index {
                break;
            }
            self.bytes -= bytes;
            self.sent.pop_front();
        }
    }

    /// True when no further append may be sent.
    pub fn full(&self) -> bool {
        self.sent.len() >= self.msgs_max || (self.bytes_max > 0 && self.bytes >= self.bytes_max)
    }

    /// Messages in flight.
    pub fn count(&self) -> usize {
        self.sent.len()
    }

    /// Payload bytes in flight.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn reset(&mut self) {
        self.sent.clear();
        self.bytes = 0;
    }
}

/// The leader's view of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Highest index known to be in the peer's log (for the leader itself: persisted).
    pub matched: u64,
    /// Next index to send.
    pub next: u64,
    pub state: ProgressState,
    /// In `Snapshot` state, the index of the snapshot being sent.
    pub pending_snapshot: u64,
    /// Heard from within the current CheckQuorum period.
    pub recent_active: bool,
    /// In `Probe`: an append was sent and awaits an answer (or a heartbeat response).
    /// In `Replicate`: the window is full.
    pub msg_app_flow_paused: bool,
    pub inflights: Inflights,
    pub is_learner: bool,
}

impl Progress {
    /// A peer whose log is unknown: probe from `next`.
    pub fn new(next: u64, msgs_max: usize, bytes_max: u64, is_learner: bool) -> Progress {
        Progress {
            matched: 0,
            next: next.max(1),
            state: ProgressState::Probe,
            pending_snapshot: 0,
            // A new peer counts as active so that adding it cannot immediately make
            // CheckQuorum depose the leader.
            recent_active: true,
            msg_app_flow_paused: false,
            inflights: Inflights::new(msgs_max, bytes_max),
            is_learner,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.msg_app_flow_paused = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.inflights.reset();
    }

    /// Back to probing, resuming after a snapshot's index if one was in flight.
    pub fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next = (self.matched + 1).max(pending + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next = self.matched + 1;
        }
    }

    /// Start pipelining from just after the match point.
    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next = self.matched + 1;
    }

    /// Stop sending appends until the snapshot at `index` is reported.
    pub fn become_snapshot(&mut self, index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = index;
        self.next = index + 1;
    }

    /// Accounts for an append carrying `entries` entries of `bytes` payload bytes.
    pub fn sent_entries(&mut self, entries: usize, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if entries > 0 {
                    self.next += entries as u64;
                    self.inflights.add(self.next - 1, bytes);
                }
                self.msg_app_flow_paused = self.inflights.full();
            }
            ProgressState::Probe => {
                // One probe at a time: wait for its answer or the next heartbeat.
                if entries > 0 {
                    self.msg_app_flow_paused = true;
                }
            }
            ProgressState::Snapshot => panic!("sending entries to a peer in snapshot state"),
        }
    }

    /// The peer acknowledged `index`. Returns whether the match point advanced.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = self.matched < index;
        if updated {
            self.matched = index;
            self.msg_app_flow_paused = false;
        }
        self.next = self.next.max(index + 1);
        updated
    }

    /// The peer rejected an append at `rejected`; `match_hint` is the highest index
    /// that may match (from the peer's hint). Returns false for stale rejections.
    pub fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            // Everything at or below the match point is known good: a rejection
            // there is a duplicate from before the match was learned.
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched + 1;
            return true;
        }
        // In probe state only the answer to the outstanding probe counts.
        if self.next - 1 != rejected {
            return false;
        }
        self.next = rejected.min(match_hint + 1).max(self.matched + 1);
        self.msg_app_flow_paused = false;
        true
    }

    /// True when the leader must not send appends now.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe | ProgressState::Replicate => self.msg_app_flow_paused,
            ProgressState::Snapshot => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_limit_messages_and_bytes() {
        let mut w = Inflights::new(3, 100);
        w.add(1, 10);
        w.add(2, 10);
        assert!(!w.full());
        w.add(5, 90);
        assert!(w.full());
        w.free_le(2);
        assert_eq!((w.count(), w.bytes()), (1, 90));
        assert!(!w.full());
        w.free_le(5);
        assert_eq!((w.count(), w.bytes()), (0, 0));
    }

    #[test]
    fn probe_backtracks_only_on_the_outstanding_probe() {
        let mut p = Progress::new(10, 4, 0, false);
        assert!(!p.maybe_decr_to(5, 3), "stale rejection");
        assert!(p.maybe_decr_to(9, 3));
        assert_eq!(p.next, 4);
        p.maybe_update(3);
        p.become_replicate();
        assert_eq!(p.next, 4);
        assert!(!p.maybe_decr_to(2, 0), "below match");
    }
}
