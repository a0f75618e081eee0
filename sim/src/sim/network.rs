//! The simulated network: peer links with their delays, losses and
//! duplicates, partitions and leader isolation, and the client links.

use detcd_core::node::{Credentials, Input, PeerMessage, Request};
use detcd_core::raft::Role;
use detcd_proto::raftpb::MessageType;

use super::{Event, Sim, CLIENT_LATENCY_US_MAX, CLIENT_LATENCY_US_MIN};
use crate::cluster::Route;
use crate::options::FaultKind;

impl Sim {
    /// A peer message reaches `to` (unless a cut stands in the way now); a
    /// snapshot's sender hears whether it arrived.
    pub(super) fn deliver(&mut self, from: u64, to: u64, message: PeerMessage) {
        let snapshot = is_snapshot(&message);
        let delivered = !self.cuts.contains(&(from, to)) && self.is_up(to);
        if self.cuts.contains(&(from, to)) {
            self.counters.messages_partitioned += 1;
        } else if self.is_up(to) {
            self.counters.messages_delivered += 1;
            self.feed(to, Input::Peer(message));
        }
        if snapshot {
            match self.paused_until(from) {
                Some(until) => {
                    let report = Event::SnapshotReport { from, to, delivered };
                    self.queue.push(until, report);
                }
                None => self.feed(from, Input::SnapshotReport { peer: to, delivered }),
            }
        }
    }

    /// When an answer leaving member `id` now reaches its client: client
    /// connections are streams, so answers from one member arrive in order.
    pub(super) fn client_link_at(&mut self, id: u64) -> u64 {
        let at = self.now_us + self.rng.range(CLIENT_LATENCY_US_MIN, CLIENT_LATENCY_US_MAX);
        let link = self.client_links.entry(id).or_default();
        *link = (*link).max(at);
        *link
    }

    pub(super) fn send(&mut self, from: u64, to: u64, message: PeerMessage) {
        self.counters.messages_sent += 1;
        let f = self.opts.faults;
        let spread = 2 * self.opts.delay_mean_us.saturating_sub(self.opts.delay_min_us) + 1;
        let mut delay = self.opts.delay_min_us + self.rng.range(0, spread);
        if self.cuts.contains(&(from, to)) {
            self.counters.messages_partitioned += 1;
            self.report_lost_snapshot(from, to, &message, delay);
            return;
        }
        if self.faults_on && f.has(FaultKind::Drop) && self.rng.chance(self.opts.drop_per_mille, 1000) {
            self.counters.messages_dropped += 1;
            self.report_lost_snapshot(from, to, &message, delay);
            return;
        }
        if self.faults_on && f.has(FaultKind::Delay) && self.rng.chance(self.opts.delay_spike_per_mille, 1000)
        {
            delay += self.rng.range(0, self.opts.delay_spike_max_us + 1);
            self.counters.messages_delayed += 1;
        }
        // Raft's own messages are idempotent and may be replayed; a forwarded
        // proposal is not (etcd's stream transport never duplicates one, and a
        // replayed MsgProp would apply a client's write twice), so it never is.
        let replayable = match &message {
            PeerMessage::Raft(m) => m.r#type != MessageType::MsgProp as i32,
            _ => false,
        };
        if replayable
            && self.faults_on
            && f.has(FaultKind::Duplicate)
            && self.rng.chance(self.opts.duplicate_per_mille, 1000)
        {
            self.counters.messages_duplicated += 1;
            // Usually soon after the original; sometimes elections later, when the
            // sender may long be deposed (a stale packet a follower must refuse).
            let late_us = if self.rng.chance(1, 4) {
                2 * self.opts.election_timeout_ms() * 1000
            } else {
                10 * self.opts.delay_mean_us
            };
            let again = delay + self.rng.range(0, late_us + 1);
            self.queue.push(
                self.now_us + again,
                Event::Deliver {
                    from,
                    to,
                    message: message.clone(),
                },
            );
        }
        self.queue
            .push(self.now_us + delay, Event::Deliver { from, to, message });
    }

    /// A snapshot message that is lost is reported failed to its sender, as the
    /// transport does when the stream breaks: without the report the leader
    /// waits for that follower's snapshot for ever.
    pub(super) fn report_lost_snapshot(&mut self, from: u64, to: u64, message: &PeerMessage, after_us: u64) {
        if is_snapshot(message) {
            let event = Event::SnapshotReport {
                from,
                to,
                delivered: false,
            };
            self.queue.push(self.now_us + after_us, event);
        }
    }

    /// Sends a request to `member` on behalf of a client or scenario; returns its id.
    pub(crate) fn submit(&mut self, member: u64, request: Request, route: Route) -> u64 {
        let credentials = self.default_credentials();
        self.submit_as(member, request, route, credentials)
    }

    /// Sends `request` to `member` as `credentials` say.
    pub(crate) fn submit_as(
        &mut self,
        member: u64,
        request: Request,
        route: Route,
        credentials: Credentials,
    ) -> u64 {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.routes.insert(request_id, route);
        let at = self.now_us + self.rng.range(CLIENT_LATENCY_US_MIN, CLIENT_LATENCY_US_MAX);
        self.queue.push(
            at,
            Event::ToMember {
                member,
                request_id,
                request,
                credentials,
            },
        );
        request_id
    }

    pub(super) fn partition_change(&mut self) {
        if !self.faults_on {
            return;
        }
        let f = self.opts.faults;
        self.cuts_epoch += 1;
        if !self.cuts.is_empty() {
            self.cuts.clear();
            let next = self.rng.range(1, 2 * self.opts.partition_interval_ms + 1) * 1000;
            self.queue.push(self.now_us + next, Event::PartitionChange);
            return;
        }
        let ids = self.member_ids();
        let symmetric = f.has(FaultKind::Partition) && (!f.has(FaultKind::OneWay) || self.rng.chance(1, 2));
        if symmetric {
            self.counters.partitions += 1;
            let side: Vec<u64> = ids.iter().copied().filter(|_| self.rng.chance(1, 2)).collect();
            for &a in &side {
                for &b in ids.iter().filter(|b| !side.contains(b)) {
                    self.cuts.insert((a, b));
                    self.cuts.insert((b, a));
                }
            }
        } else {
            for &a in &ids {
                for &b in &ids {
                    if a != b && self.rng.chance(1, 4) {
                        self.cuts.insert((a, b));
                        self.counters.one_way_cuts += 1;
                    }
                }
            }
        }
        let length = self.rng.range(100, self.opts.partition_length_ms_max + 101) * 1000;
        self.queue.push(self.now_us + length, Event::PartitionChange);
    }

    /// The leader-isolation fault, drawn when `id` becomes leader of `term`: soon
    /// (often before its first appends land, sometimes after a round trip or two)
    /// it is cut off from every other member, replacing whatever partition holds.
    pub(super) fn maybe_isolate_new_leader(&mut self, id: u64, term: u64) {
        if !self.faults_on
            || !self.opts.faults.has(FaultKind::Partition)
            || !self.rng.chance(self.opts.leader_isolation_per_mille, 1000)
        {
            return;
        }
        let after = self.rng.range(0, 6 * self.opts.delay_mean_us + 1);
        self.queue
            .push(self.now_us + after, Event::IsolateLeader { member: id, term });
    }

    pub(super) fn isolate_leader(&mut self, id: u64, term: u64) {
        let leads = self.node(id).is_some_and(|n| {
            let status = n.raft_status();
            status.role == Role::Leader && status.term == term
        });
        if !self.faults_on || !leads {
            return;
        }
        self.counters.leader_isolations += 1;
        self.cuts.clear();
        self.isolate(id);
        self.cuts_epoch += 1;
        // At least an election timeout, so the others may elect a leader of their
        // own; often shorter than the two after which the isolated one notices
        // (CheckQuorum), so it returns still leading and sends appends of its term.
        let election_ms = self.opts.election_timeout_ms();
        let length_ms = election_ms + self.rng.range(0, election_ms + self.opts.partition_length_ms_max);
        let epoch = self.cuts_epoch;
        self.queue
            .push(self.now_us + length_ms * 1000, Event::IsolationEnd { epoch });
    }

    /// Cuts every link to and from `id` (both directions).
    pub fn isolate(&mut self, id: u64) {
        for other in self.member_ids() {
            if other != id {
                self.cuts.insert((id, other));
                self.cuts.insert((other, id));
            }
        }
    }

    pub fn reconnect_all(&mut self) {
        self.cuts.clear();
    }
}

fn is_snapshot(message: &PeerMessage) -> bool {
    matches!(message, PeerMessage::Raft(m) if m.r#type == MessageType::MsgSnap as i32)
}
