//! Fault injection: crashes (random and aimed), slow fsyncs, clock jumps,
//! pauses, and the heal that ends the faulty phase.

use super::host::Host;
use super::{Event, Phase, Sim};
use crate::options::FaultKind;

impl Sim {
    pub(super) fn fsync_latency_us(&mut self) -> u64 {
        let mut us = self.rng.range(self.opts.fsync_min_us, self.opts.fsync_max_us + 1);
        if self.faults_on
            && self.opts.faults.has(FaultKind::SlowFsync)
            && self.rng.chance(self.opts.slow_fsync_per_mille, 1000)
        {
            us += self.rng.range(0, self.opts.slow_fsync_max_us);
            self.counters.slow_fsyncs += 1;
        }
        us
    }

    /// Whether a crash may damage a snapshot file now (the snapshot-loss fault): one
    /// member at a time, and none after a refusal, whose refusal to start the cluster survives (three
    /// members or more, and no membership changes that could leave it without a
    /// quorum).
    pub(super) fn snapshot_loss_allowed(&self) -> bool {
        self.faults_on
            && self.opts.faults.has(FaultKind::SnapshotLoss)
            && self.opts.nodes >= 3
            && !self.opts.faults.has(FaultKind::Membership)
            && !self.hosts.values().any(|h| h.snapshot_damaged || h.refused)
    }

    pub(super) fn crash_random(&mut self) {
        if !self.faults_on {
            return; // healed: no more crashes (nor a next one scheduled)
        }
        if let Some(id) = self.pick_running(|_| true) {
            let aimed = self.opts.crash_aimed_per_mille;
            if aimed > 0 && self.rng.chance(aimed, 1000) {
                self.hosts.get_mut(&id).expect("host").crash_armed = true;
            } else {
                self.crash_and_schedule_restart(id);
            }
        }
        let next = self.rng.range(1, 2 * self.opts.crash_interval_ms + 1) * 1000;
        self.queue.push(self.now_us + next, Event::Crash);
    }

    /// A member drawn at random among those running that `also` accepts.
    pub(super) fn pick_running(&mut self, also: impl Fn(&Host) -> bool) -> Option<u64> {
        let candidates: Vec<u64> = self
            .hosts
            .values()
            .filter(|h| h.node.is_some() && also(h))
            .map(|h| h.id)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.range(0, candidates.len() as u64) as usize])
    }

    pub(super) fn crash_and_schedule_restart(&mut self, id: u64) {
        self.crash(id);
        let down = self.rng.range(1, self.opts.down_ms_max + 1) * 1000;
        self.queue.push(self.now_us + down, Event::Restart { member: id });
    }

    /// If an aimed crash waits for `id`, it lands while the write that just
    /// started (done at `done_us`) is in flight: before it is durable, or just as
    /// it becomes so.
    pub(super) fn land_aimed_crash(&mut self, id: u64, done_us: u64) {
        let Some(host) = self.hosts.get_mut(&id).filter(|h| h.crash_armed) else {
            return;
        };
        host.crash_armed = false;
        let inc = host.inc;
        let at = self.rng.range(self.now_us, done_us + 1);
        self.queue.push(at, Event::CrashAimed { member: id, inc });
    }

    pub(super) fn clock_jump(&mut self) {
        if !self.faults_on {
            return;
        }
        let ids = self.member_ids();
        let id = ids[self.rng.range(0, ids.len() as u64) as usize];
        let jump = self.rng.range(1, self.opts.clock_jump_ms_max + 1);
        self.hosts.get_mut(&id).expect("host").clock_offset_ms += jump;
        self.counters.clock_jumps += 1;
        let next = self.rng.range(1, 2 * self.opts.clock_jump_interval_ms + 1) * 1000;
        self.queue.push(self.now_us + next, Event::ClockJump);
    }

    /// Pauses a random running member's process for up to `pause_ms_max`.
    pub(super) fn pause_random(&mut self) {
        if !self.faults_on {
            return;
        }
        let now_us = self.now_us;
        if let Some(id) = self.pick_running(|h| h.paused_until_us <= now_us) {
            let length_ms = self.rng.range(1, self.opts.pause_ms_max + 1);
            self.pause(id, length_ms);
        }
        let next = self.rng.range(1, 2 * self.opts.pause_interval_ms + 1) * 1000;
        self.queue.push(self.now_us + next, Event::Pause);
    }

    /// Pauses `id`'s process for `length_ms` from now: its ticks, messages, disk
    /// completions and client requests wait, in order, until it resumes.
    pub fn pause(&mut self, id: u64, length_ms: u64) {
        let until = self.now_us + length_ms * 1000;
        let Some(host) = self.hosts.get_mut(&id).filter(|h| h.node.is_some()) else {
            return;
        };
        host.paused_until_us = host.paused_until_us.max(until);
        self.counters.pauses += 1;
        self.trace.event("pause", &id.to_le_bytes());
        self.log(format_args!("pause member {id:x} for {length_ms} ms"));
    }

    /// Schedules the faults the options enable; they stop at the heal.
    pub fn start_faults(&mut self) {
        self.faults_on = true;
        let f = self.opts.faults;
        if f.has(FaultKind::Crash) {
            let at = self.rng.range(1, 2 * self.opts.crash_interval_ms + 1) * 1000;
            self.queue.push(at, Event::Crash);
        }
        if f.has(FaultKind::Partition) || f.has(FaultKind::OneWay) {
            let at = self.rng.range(1, 2 * self.opts.partition_interval_ms + 1) * 1000;
            self.queue.push(at, Event::PartitionChange);
        }
        if f.has(FaultKind::ClockJump) {
            let at = self.rng.range(1, 2 * self.opts.clock_jump_interval_ms + 1) * 1000;
            self.queue.push(at, Event::ClockJump);
        }
        self.with_operator(|o, sim| o.start_membership(sim));
        if f.has(FaultKind::Pause) {
            // After the others, so seeds without pauses draw as they did before.
            let at = self.rng.range(1, 2 * self.opts.pause_interval_ms + 1) * 1000;
            self.queue.push(at, Event::Pause);
        }
    }

    /// Ends the faulty phase: links healed, every member up, no more faults.
    pub fn heal(&mut self) {
        self.faults_on = false;
        self.phase = Phase::Liveness;
        self.cuts.clear();
        for host in self.hosts.values_mut() {
            host.paused_until_us = 0;
            host.crash_armed = false;
        }
        for id in self.member_ids() {
            self.restart(id);
        }
    }

    pub fn schedule_heal(&mut self, at_us: u64) {
        self.queue.push(at_us, Event::Heal);
    }
}
