//! The drive step: after every input (and at start), each Ready raft has becomes
//! outputs, in a fixed order that the node's golden transcripts show:
//!
//! 1. the hard state's term and commit are taken; a changed term or vote, and a
//!    committed configuration change, mark the Ready as one the release policy
//!    (`release`) must see persisted before anything (or anything but disk work)
//!    leaves;
//! 2. a soft-state change: leader-change effects on reads, leases and a pending
//!    transfer, then [`Output::RoleChanged`];
//! 3. a snapshot from the leader is installed;
//! 4. [`Output::Persist`], then the leader's appends, heartbeats and snapshots
//!    that may leave before it is durable; the Ready's other messages are held;
//! 5. the committed entries are applied (a member that applies its own removal
//!    stops here);
//! 6. [`Output::PeerUrls`] when the members' peer URLs changed, then the reads the
//!    Ready's read states confirm are served.
//!
//! Once raft has no Ready left, the queued watch responses go out.

use std::collections::BTreeMap;

use detcd_proto::raftpb::Message;

use super::io::{Output, PeerMessage, Persist, Response};
use super::Node;
use crate::mutation::{is_active, Mutation};
use crate::raft::{Role, SoftState};

impl Node {
    /// Takes every Ready raft has, applies what it can, and queues the outputs.
    pub(super) fn drive(&mut self) {
        while !self.removed && self.raft.has_ready() {
            let rd = self.raft.ready();
            if let Some(hs) = &rd.hard_state {
                self.term = hs.term;
                self.commit = hs.commit;
                if (hs.term, hs.vote) != self.term_vote {
                    self.term_vote = (hs.term, hs.vote);
                    self.term_vote_unpersisted = Some(rd.number);
                }
            }
            let commits_conf_change = rd.committed_entries.iter().any(|e| {
                use detcd_proto::raftpb::EntryType::{EntryConfChange, EntryConfChangeV2};
                matches!(e.r#type(), EntryConfChange | EntryConfChangeV2)
            });
            if commits_conf_change {
                self.conf_commit_unpersisted = Some(rd.number);
            }
            if let Some(soft) = rd.soft_state {
                self.on_soft_state(soft);
            }
            if let Some(snapshot) = &rd.snapshot {
                let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
                if index > self.applied_index {
                    if let Err(e) = self.install_snapshot(snapshot) {
                        panic!(
                            "member {:x}: snapshot from the leader: {e}",
                            self.config.member_id
                        );
                    }
                }
            }
            let mut messages = rd.messages;
            if is_active(Mutation::VoteBeforePersist) {
                // Planted bug: a vote reply is taken for a plain reply and leaves
                // at once, before the hard state holding the vote is durable.
                let (votes, rest): (Vec<Message>, Vec<Message>) = messages
                    .into_iter()
                    .partition(|m| m.r#type() == detcd_proto::raftpb::MessageType::MsgVoteResp);
                for m in votes {
                    self.outputs.push_back(Output::Send {
                        to: m.to,
                        message: PeerMessage::Raft(m),
                    });
                }
                messages = rest;
            }
            let mut early = Vec::new();
            if self.term_vote_unpersisted.is_none() && self.conf_commit_unpersisted.is_none() {
                // A leader's appends, heartbeats and snapshots leave at once, in
                // parallel with its own write (Raft thesis 10.2.1, as etcd). Safe:
                // - They claim nothing about the leader's durable state. Its own log
                //   counts toward commit only once persisted (raft advances the
                //   leader's own match in `on_persisted`, after `advance`), so an
                //   entry commits only when a quorum holds it durably, whether or not
                //   the leader is part of that quorum.
                // - If the leader crashes before its write, the entries it sent may
                //   survive on followers only; that is the same as a leader crashing
                //   after sending, and they are entries of its term, which it owns.
                // - Not while a Ready that changed term or vote is unpersisted: after
                //   a crash the member could restart at the old term, win the new
                //   term again and send different entries under the same term and
                //   index. Then everything waits, as before. Nor while a Ready that
                //   commits a configuration change is unpersisted (its commit index
                //   must be durable here before a peer learns of it).
                // Everything else (vote requests and replies, append and heartbeat
                // responses, read-index replies) still waits for persistence.
                let (now, rest): (Vec<Message>, Vec<Message>) = messages.into_iter().partition(|m| {
                    use detcd_proto::raftpb::MessageType::{MsgApp, MsgHeartbeat, MsgSnap};
                    matches!(m.r#type(), MsgApp | MsgHeartbeat | MsgSnap)
                });
                early = now;
                messages = rest;
            }
            self.outputs.push_back(Output::Persist(Persist {
                ready_number: rd.number,
                snapshot: rd.snapshot,
                entries: rd.entries,
                hard_state: rd.hard_state,
                // A committed configuration change: see `conf_commit_unpersisted`.
                must_sync: rd.must_sync || commits_conf_change,
            }));
            for m in early {
                self.outputs.push_back(Output::Send {
                    to: m.to,
                    message: PeerMessage::Raft(m),
                });
            }
            if !messages.is_empty() {
                self.held.push_back((rd.number, messages));
            }
            for entry in rd.committed_entries {
                self.apply_entry(entry);
                if self.removed {
                    return;
                }
            }
            self.announce_peer_urls();
            self.reads.on_read_states(rd.read_states);
            self.serve_confirmed_reads();
        }
        self.flush_watch();
    }

    fn on_soft_state(&mut self, soft: SoftState) {
        let before = self.soft;
        self.soft = soft;
        if before.leader != soft.leader {
            self.leader_since_ms = self.now_ms;
            let failed = self.reads.on_leader_change();
            for id in failed {
                self.respond(id, Err(crate::error::LEADER_CHANGED));
            }
        }
        let was_leader = before.role == Role::Leader;
        let is_leader = soft.role == Role::Leader;
        if is_leader && !was_leader {
            self.lessor
                .promote(self.now_ms, self.config.election_timeout_ms());
        }
        if was_leader && !is_leader {
            self.lessor.demote();
            self.forget_expiring();
        }
        if let Some(ml) = &self.move_leader {
            if soft.leader == ml.target {
                let ml = self.move_leader.take().expect("checked");
                let header = self.header(self.store.revision());
                self.respond(
                    ml.client,
                    Ok(Response::MoveLeader(
                        detcd_proto::etcdserverpb::MoveLeaderResponse { header },
                    )),
                );
            }
        }
        self.outputs.push_back(Output::RoleChanged {
            leader: soft.leader,
            role: soft.role,
            term: self.term,
        });
    }

    /// Queues [`Output::PeerUrls`] when the members' peer URLs, or the removed
    /// members, differ from the ones last announced.
    pub(super) fn announce_peer_urls(&mut self) {
        let same = self
            .announced_peer_urls
            .as_ref()
            .is_some_and(|(announced, removed)| {
                announced.len() == self.members.len()
                    && announced
                        .iter()
                        .zip(self.members.values())
                        .all(|((id, urls), m)| *id == m.id && *urls == m.peer_ur_ls)
                    && *removed == self.removed_members
            });
        if same {
            return;
        }
        let urls: BTreeMap<u64, Vec<String>> = self
            .members
            .values()
            .map(|m| (m.id, m.peer_ur_ls.clone()))
            .collect();
        let removed = self.removed_members.clone();
        self.announced_peer_urls = Some((urls.clone(), removed.clone()));
        self.outputs.push_back(Output::PeerUrls { urls, removed });
    }

    /// Moves every queued watch response out, with the member's header.
    fn flush_watch(&mut self) {
        if self.hub.needs_sync() {
            self.hub.sync(&self.store);
        }
        while let Some((stream, mut response)) = self.hub.poll_any() {
            let revision = response.header.as_ref().map_or(0, |h| h.revision);
            response.header = self.header(revision);
            self.outputs.push_back(Output::Watch { stream, response });
        }
    }
}
