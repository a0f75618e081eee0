//! The durability oracle: what each member was told is durable, checked
//! against what it sends (persist before send) and what it recovers after a
//! crash.

use detcd_core::node::{Input, NodeStart, Persist};
use detcd_proto::raftpb::{MessageType, Snapshot};

use super::{Event, Sim};

impl Sim {
    /// Carries out a Persist: written through the WAL now, acknowledged
    /// (`Persisted`) once its sync is done after the simulated fsync latency.
    pub(super) fn persist(&mut self, id: u64, persist: Persist) {
        let Persist {
            ready_number,
            snapshot,
            entries,
            hard_state,
            must_sync,
        } = persist;
        self.counters.persists += 1;
        let host = self.hosts.get_mut(&id).expect("host");
        let storage = host.storage.as_mut().expect("running member has storage");
        // The order a server's storage thread follows: a snapshot's file
        // (durable), its marker (synced), then entries and hard state.
        let mut written = Ok(());
        if let Some(s) = &snapshot {
            let index = s.metadata.as_ref().map_or(0, |m| m.index);
            host.mirror.reset(index);
            host.wal_snapshot_index = host.wal_snapshot_index.max(index);
            written = storage.save_snapshot(s);
            if index > 1 {
                self.counters.snapshots_installed += 1;
            }
        }
        if let Some(first) = entries.first().filter(|e| e.index <= host.durable_last_index) {
            host.overwrites_pending
                .push((ready_number, first.index, first.term));
        }
        host.mirror.append(&entries);
        written = written.and_then(|()| storage.save(hard_state.as_ref(), &entries, false));
        if let Some(hs) = &hard_state {
            host.latest_hs = *hs;
        }
        let last = host.mirror.last_index();
        let last_term = host.mirror.get(last).map_or(0, |(t, _)| t);
        host.persists
            .push_back((ready_number, (last_term, last), host.latest_hs));
        if let Err(e) = written {
            self.fail(format!("member {id:x} cannot persist: {e}"));
            return;
        }
        let latency = if must_sync { self.fsync_latency_us() } else { 0 };
        let host = self.hosts.get_mut(&id).expect("host");
        let done = host.disk_free_at_us.max(self.now_us + latency);
        host.disk_free_at_us = done;
        let inc = host.inc;
        if must_sync {
            self.land_aimed_crash(id, done);
        }
        if self.mutations.is("persisted-before-sync") {
            self.queue.push(done, Event::SyncDone { member: id, inc });
            self.queue.push(
                self.now_us,
                Event::PersistDone {
                    member: id,
                    inc,
                    ready_number,
                    sync: false,
                },
            );
        } else {
            self.queue.push(
                done,
                Event::PersistDone {
                    member: id,
                    inc,
                    ready_number,
                    sync: must_sync,
                },
            );
        }
    }

    /// A SaveSnapshot: the server's snapshot writer.
    pub(super) fn save_snapshot(&mut self, id: u64, snapshot: Snapshot) {
        // A server's snapshot writer saves the file (durably) while the
        // member goes on; it is done after the simulated latency, and only
        // then is its WAL marker written.
        self.counters.snapshots_saved += 1;
        let latency = self.fsync_latency_us();
        let host = self.hosts.get_mut(&id).expect("host");
        let inc = host.inc;
        let done = host.disk_free_at_us.max(self.now_us + latency);
        host.disk_free_at_us = done;
        self.land_aimed_crash(id, done);
        let event = Event::SnapshotDone {
            member: id,
            inc,
            snapshot: Box::new(snapshot),
        };
        self.queue.push(done, event);
    }

    /// A Persist's sync is done: what it wrote is durable; the member hears so.
    pub(super) fn persist_done(&mut self, member: u64, inc: u64, ready_number: u64, sync: bool) {
        let Some(host) = self
            .hosts
            .get_mut(&member)
            .filter(|h| h.inc == inc && h.node.is_some())
        else {
            return;
        };
        let storage = host.storage.as_mut().expect("storage");
        if sync {
            // The sync covers what was written before this moment, this
            // Persist's records among them (a real disk may make them
            // durable at any time; this is the latest).
            if let Err(e) = storage.wal_mut().sync() {
                self.fail(format!("member {member:x} cannot sync its WAL: {e}"));
                return;
            }
        }
        host.overwrites_pending
            .retain(|&(ready, _, _)| ready > ready_number);
        while host.persists.front().is_some_and(|p| p.0 <= ready_number) {
            let (_, (last_term, last), hs) = host.persists.pop_front().expect("front");
            host.durable_last_index = last;
            host.durable_last_term = last_term;
            host.durable_hs = hs;
        }
        self.feed(member, Input::Persisted { ready_number });
    }

    pub(super) fn sync_done(&mut self, member: u64, inc: u64) {
        if let Some(host) = self.hosts.get_mut(&member).filter(|h| h.inc == inc) {
            if let Some(storage) = host.storage.as_mut() {
                // The planted bug's sync; a failure is not reported.
                let _ = storage.wal_mut().sync();
            }
        }
    }

    /// A snapshot file is durable: its WAL marker goes in, the member hears so.
    pub(super) fn snapshot_done(&mut self, member: u64, inc: u64, snapshot: Box<Snapshot>) {
        let Some(host) = self
            .hosts
            .get_mut(&member)
            .filter(|h| h.inc == inc && h.node.is_some())
        else {
            return;
        };
        let storage = host.storage.as_mut().expect("storage");
        // The marker goes into the WAL only once the file is durable, and
        // only if no newer snapshot (one installed from the leader while
        // this file was being written) is in the WAL already: entries after
        // that one do not follow this marker.
        let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
        let mut saved = storage.snapshotter().save(&snapshot).map(|_| ());
        if saved.is_ok() && index > host.wal_snapshot_index {
            saved = storage.mark_snapshot(&snapshot.metadata.clone().unwrap_or_default());
            host.wal_snapshot_index = index;
        }
        if let Err(e) = saved {
            self.fail(format!("member {member:x} cannot save snapshot {index}: {e}"));
            return;
        }
        self.feed(member, Input::SnapshotSaved { index });
    }

    pub(super) fn check_persist_before_send(&mut self, id: u64, m: &detcd_proto::raftpb::Message) {
        let host = &self.hosts[&id];
        let kind = MessageType::try_from(m.r#type).unwrap_or(MessageType::MsgHup);
        let broken = match kind {
            MessageType::MsgVoteResp if !m.reject => {
                host.durable_hs.term < m.term
                    || (host.durable_hs.term == m.term && host.durable_hs.vote != m.to)
            }
            MessageType::MsgAppResp if !m.reject => host.durable_last_index < m.index,
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
