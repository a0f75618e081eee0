//! The member's storage thread and the durability oracle: the node's disk work
//! goes through storage passes as on a server (`detcd_storage::pass`), and what
//! each member was told is durable is checked against what it sends (persist
//! before send) and what it recovers after a crash.

use detcd_core::node::{Input, NodeStart, Persist};
use detcd_proto::raftpb::{MessageType, Snapshot};
use detcd_storage::{save_in_line, PersistPass, Work};

use super::host::Host;
use super::{Event, Sim};

impl Sim {
    /// A Persist: the oracle notes what it will make durable (in the node's
    /// order), and it joins the member's storage queue (the server's storage
    /// thread's), to be written by the next pass.
    pub(super) fn persist(&mut self, id: u64, persist: Persist) {
        self.counters.persists += 1;
        let host = self.hosts.get_mut(&id).expect("host");
        if let Some(s) = &persist.snapshot {
            let index = s.metadata.as_ref().map_or(0, |m| m.index);
            host.mirror.reset(index);
            if index > 1 {
                self.counters.snapshots_installed += 1;
            }
        }
        if let Some(first) = persist
            .entries
            .first()
            .filter(|e| e.index <= host.durable_last_index)
        {
            host.overwrites_pending
                .push((persist.ready_number, first.index, first.term));
        }
        host.mirror.append(&persist.entries);
        if let Some(hs) = &persist.hard_state {
            host.latest_hs = *hs;
        }
        let last = host.mirror.last_index();
        let last_term = host.mirror.get(last).map_or(0, |(t, _)| t);
        host.persists
            .push_back((persist.ready_number, (last_term, last), host.latest_hs));
        host.storage_queue.push(Work::Persist(persist));
    }

    /// A ReleaseWal: storage work like a Persist, in the node's order.
    pub(super) fn release_wal(&mut self, id: u64, index: u64) {
        let host = self.hosts.get_mut(&id).expect("host");
        host.storage_queue.push(Work::ReleaseWal(index));
    }

    /// A SaveSnapshot: the server's snapshot writer, which saves the file while
    /// the member goes on (done after the simulated latency).
    pub(super) fn save_snapshot(&mut self, id: u64, snapshot: Snapshot) {
        self.counters.snapshots_saved += 1;
        let latency = self.fsync_latency_us();
        let done = self.disk_busy_for(id, latency);
        let inc = self.hosts[&id].inc;
        self.land_aimed_crash(id, done);
        let event = Event::SnapshotDone {
            member: id,
            inc,
            snapshot: Box::new(snapshot),
        };
        self.queue.push(done, event);
    }

    /// The snapshot writer is done: the file is saved (durably) now, and the
    /// storage thread hears so; its next pass writes the WAL marker.
    pub(super) fn snapshot_done(&mut self, member: u64, inc: u64, snapshot: Box<Snapshot>) {
        let Some(host) = self.running_host(member, inc) else {
            return;
        };
        let storage = host.storage.as_mut().expect("storage");
        let metadata = snapshot.metadata.clone().unwrap_or_default();
        if let Err(e) = storage.snapshotter().save(&snapshot) {
            self.fail(format!(
                "member {member:x} cannot save snapshot {}: {e}",
                metadata.index
            ));
            return;
        }
        host.storage_queue.push(Work::SnapshotFileSaved(metadata));
        self.start_pass(member);
    }

    /// Starts the member's next storage pass if its storage thread is idle and
    /// has work: everything queued goes into one pass (`detcd_storage::pass`,
    /// as on a server), written now; its sync is done after the simulated fsync
    /// latency ([`Sim::pass_done`]), and a crash before then loses what the
    /// disk had not made durable.
    pub(super) fn start_pass(&mut self, id: u64) {
        let Some(host) = self
            .hosts
            .get_mut(&id)
            .filter(|h| h.node.is_some() && !h.storage_busy && !h.storage_queue.is_empty())
        else {
            return;
        };
        let work = std::mem::take(&mut host.storage_queue);
        let storage = host.storage.as_mut().expect("running member has storage");
        let mut pass = PersistPass::new();
        let written = work
            .into_iter()
            .try_for_each(|item| pass.add(storage, item, &mut save_in_line))
            .and_then(|()| pass.write(storage));
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                self.fail(format!("member {id:x} cannot persist: {e}"));
                return;
            }
        };
        let must_sync = written.needs_sync();
        let early = written
            .report()
            .persisted
            .filter(|_| self.mutations.is("persisted-before-sync"));
        let latency = if must_sync { self.fsync_latency_us() } else { 0 };
        let done = self.disk_busy_for(id, latency);
        let host = self.hosts.get_mut(&id).expect("host");
        host.pass = Some(written);
        host.storage_busy = true;
        let inc = host.inc;
        if must_sync {
            self.land_aimed_crash(id, done);
        }
        if let Some(ready_number) = early {
            // The planted bug: the Persists are acknowledged as soon as written.
            self.queue.push(
                self.now_us,
                Event::PersistedEarly {
                    member: id,
                    inc,
                    ready_number,
                },
            );
        }
        self.queue.push(done, Event::PassDone { member: id, inc });
    }

    /// A pass's sync latency is over: the WAL is synced (if a Persist asked),
    /// and what the pass made durable is acknowledged.
    pub(super) fn pass_done(&mut self, member: u64, inc: u64) {
        let Some(host) = self.running_host(member, inc) else {
            return;
        };
        let written = host.pass.take().expect("a pass in flight");
        let storage = host.storage.as_mut().expect("storage");
        // The sync covers what was written before this moment, the pass's
        // records among them (a real disk may make them durable at any time;
        // this is the latest). The storage thread stays busy until the
        // acknowledgements are handled, so that what they make the member do
        // joins the next pass, as on a server.
        let mut report = match written.sync(storage) {
            Ok(report) => report,
            Err(e) => {
                self.fail(format!("member {member:x} cannot sync its WAL: {e}"));
                return;
            }
        };
        if self.mutations.is("persisted-before-sync") {
            report.persisted = None; // acknowledged already
        }
        self.acknowledge(member, inc, report.persisted, &report.snapshots_marked);
        if let Some(host) = self.hosts.get_mut(&member).filter(|h| h.inc == inc) {
            host.storage_busy = false;
            self.start_pass(member);
        }
    }

    /// The one acknowledgement path: the Persists up to `persisted` are durable
    /// (the oracle moves the member's durable state, then the member hears
    /// `Persisted`), and so are the snapshots `snapshots` (`SnapshotSaved`).
    pub(super) fn acknowledge(&mut self, member: u64, inc: u64, persisted: Option<u64>, snapshots: &[u64]) {
        if let Some(ready_number) = persisted {
            let Some(host) = self.running_host(member, inc) else {
                return;
            };
            host.overwrites_pending
                .retain(|&(ready, _, _)| ready > ready_number);
            while host.persists.front().is_some_and(|p| p.0 <= ready_number) {
                let (_, (last_term, last), hs) = host.persists.pop_front().expect("front");
                host.durable_last_index = last;
                host.durable_last_term = last_term;
                host.durable_hs = hs;
                let by_term = host.durable_by_term.entry(hs.term).or_default();
                *by_term = (*by_term).max(last);
            }
            self.feed(member, Input::Persisted { ready_number });
        }
        for &index in snapshots {
            if self.hosts.get(&member).is_none_or(|h| h.inc != inc) {
                return;
            }
            self.feed(member, Input::SnapshotSaved { index });
        }
    }

    /// The member of incarnation `inc`, if it is still the one running.
    fn running_host(&mut self, member: u64, inc: u64) -> Option<&mut Host> {
        self.hosts
            .get_mut(&member)
            .filter(|h| h.inc == inc && h.node.is_some())
    }

    /// Takes the member's disk for `latency` after the work already on it:
    /// returns when the new work is done.
    fn disk_busy_for(&mut self, id: u64, latency: u64) -> u64 {
        let host = self.hosts.get_mut(&id).expect("host");
        let done = host.disk_free_at_us.max(self.now_us + latency);
        host.disk_free_at_us = done;
        done
    }

    pub(super) fn check_persist_before_send(&mut self, id: u64, m: &detcd_proto::raftpb::Message) {
        let host = &self.hosts[&id];
        let kind = MessageType::try_from(m.r#type).unwrap_or(MessageType::MsgHup);
        let broken = match kind {
            MessageType::MsgVoteResp if !m.reject => {
                host.durable_hs.term < m.term
                    || (host.durable_hs.term == m.term && host.durable_hs.vote != m.to)
            }
            MessageType::MsgAppResp if !m.reject => {
                host.durable_last_index < m.index
                    && host
                        .durable_by_term
                        .get(&m.term)
                        .is_none_or(|&last| last < m.index)
            }
            _ => false,
        };
        if broken {
            let (hs, last) = (host.durable_hs, host.durable_last_index);
            self.fail(format!(
                "persist before send: member {id:x} sent {kind:?} (term {}, index {}) to {:x} ahead of its durable state (term {}, vote {:x}, last index {last})",
                m.term, m.index, m.to, hs.term, hs.vote
            ));
        }
    }

    /// Whether a planted bug is allowed to lose acknowledged writes (the sim's own
    /// durability self-check then stands aside and lets the cluster checks find it).
    pub(super) fn mutations_lose_durability(&self) -> bool {
        [
            "disk-sync-lies",
            "persisted-before-sync",
            "restart-forgets-unsynced-entries-late",
        ]
        .iter()
        .any(|m| self.mutations.is(m))
    }

    /// Whether a restarted member recovered at least the log it acknowledged
    /// durable before its crash; fails the run if not.
    pub(super) fn recovered_durably(&mut self, id: u64, start: Option<&NodeStart>, torn_tail: bool) -> bool {
        let Some(NodeStart::Recover {
            snapshot,
            hard_state,
            entries,
        }) = start
        else {
            return true;
        };
        let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
        let last = entries.last().map_or(index, |e| e.index);
        let last_term = entries
            .last()
            .map_or_else(|| snapshot.metadata.as_ref().map_or(0, |m| m.term), |e| e.term);
        let (durable_term, durable) = self.hosts[&id].durable_at_crash;
        let overwrites = &self.hosts[&id].overwrites_at_crash;
        // The recovered log must be at least as up to date (Raft's
        // comparison: last term, then last index) as the log the member
        // acknowledged, unless an unacknowledged write that replaced part
        // of it (a conflicting tail, replaced by the leader's entries)
        // survived: those entries were not in the leader's log, so never
        // committed (leader completeness), and the member held the new
        // log in memory already. The replacement may even carry older
        // terms than the tail it replaced (a leader's entries from before
        // the term of a deposed leader's tail). One survived if the
        // recovered log holds its first entry.
        let replaced = overwrites.iter().any(|&(first, first_term)| {
            first > index
                && entries
                    .get((first - index - 1) as usize)
                    .is_some_and(|e| e.index == first && e.term == first_term)
        });
        if (last_term, last) < (durable_term, durable) && !replaced && !self.mutations_lose_durability() {
            self.fail(format!(
                "member {id:x} recovered its log to {last_term}/{last}, but {durable_term}/{durable} was acknowledged durable before the crash"
            ));
            return false;
        }
        self.log(format_args!(
            "restart member {id:x}: snapshot {index}, hard state term {} commit {}, entries to {last}, torn tail {}",
            hard_state.term, hard_state.commit, torn_tail
        ));
        true
    }
}
