//! A simulated in-memory cluster of `RawNode`s for raft tests: persistence is an
//! append to in-memory storage, the network is one queue per recipient, links can
//! be cut. Everything it does is rendered into a transcript so golden tests pin it,
//! and it checks cluster-wide safety (one leader per term, applied entries agree)
//! after every action.

#![allow(dead_code)]

pub mod datadriven;
pub mod random;
pub mod script;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;

use detcd_core::raft::conf_change::v1_to_v2;
use detcd_core::raft::describe;
use detcd_core::raft::{Config, RawNode, Ready, RecoveredState, Role, Start};
use detcd_proto::raftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, Snapshot,
};
use prost::Message as _;

/// What one node has made durable.
#[derive(Clone, Debug, Default)]
pub struct Storage {
    pub hard_state: HardState,
    pub snapshot: Snapshot,
    pub entries: Vec<Entry>,
    /// Applied index and the configuration as of it (what a real member keeps in
    /// its state machine snapshot and replays on restart).
    pub applied: u64,
    pub conf_state: ConfState,
}

impl Storage {
    fn persist(&mut self, rd: &Ready) {
        if let Some(s) = &rd.snapshot {
            self.snapshot = s.clone();
            self.entries.clear();
            let meta = s.metadata.clone().unwrap_or_default();
            self.conf_state = meta.conf_state.unwrap_or_default();
            self.applied = meta.index;
        }
        if let Some(first) = rd.entries.first() {
            let snap = self.snapshot.metadata.as_ref().map_or(0, |m| m.index);
            let keep = (first.index - snap - 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend(rd.entries.iter().cloned());
        }
        if let Some(hs) = &rd.hard_state {
            self.hard_state = *hs;
        }
    }

    fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
        let old = self.snapshot.metadata.as_ref().map_or(0, |m| m.index);
        let drop = (index - old) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = snapshot;
    }
}

/// One member of the simulated cluster.
#[derive(Debug)]
pub struct SimNode {
    pub raw: RawNode,
    pub config: Config,
    pub storage: Storage,
    /// Normal entries applied, in order: (index, term, data).
    pub applied: Vec<(u64, u64, Vec<u8>)>,
}

/// The cluster, its network and the transcript.
#[derive(Debug, Default)]
pub struct Cluster {
    pub nodes: BTreeMap<u64, SimNode>,
    pub queues: BTreeMap<u64, VecDeque<Message>>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(u64, u64)>,
    pub out: String,
    /// Suppress transcript output (for bulk operations in property tests).
    pub quiet: bool,
    /// Checks across the run: the leader of each term, the entry applied at each index.
    pub leaders: BTreeMap<u64, u64>,
    pub applied_at: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Highest committed entry seen per index (index -> term), to prove that a
    /// committed entry never changes.
    pub committed_at: BTreeMap<u64, u64>,
    /// For each index seen committed, the term it was committed in: the current
    /// term of the first node seen with a commit index covering it. Only a leader
    /// raises the highest commit index in the cluster, and `check_safety` looks
    /// after every input, so this is the committing leader's term. It can be later
    /// than the entry's own term (a leader commits earlier terms' entries together
    /// with one of its own).
    pub commit_terms: BTreeMap<u64, u64>,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster::default()
    }

    fn line(&mut self, s: impl AsRef<str>) {
        if !self.quiet {
            self.out.push_str(s.as_ref());
            self.out.push('\n');
        }
    }

    /// Writes one transcript line (for the command runners).
    pub fn line_pub(&mut self, s: String) {
        self.line(s);
    }

    /// Asks `id` to compact its log at `index`, with its applied data as snapshot data.
    pub fn compact(&mut self, id: u64, index: u64) {
        let node = self.nodes.get_mut(&id).expect("known node");
        let data = format!("applied through {index}").into_bytes();
        match node.raw.compact(index, data) {
            Ok(()) => {
                let snap = node.raw.snapshot().clone();
                node.storage.compact(snap);
                self.line(format!("{id} compacted to {index}"));
            }
            Err(e) => self.line(format!("{id} compact error: {e}")),
        }
    }

    /// Calls `check_invariants` on every node (also done internally in debug builds).
    pub fn check_all_invariants(&self) {
        for n in self.nodes.values() {
            n.raw.check_invariants();
        }
    }

    pub fn take_output(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    /// Adds a node and persists its bootstrap state.
    pub fn add_node(&mut self, config: Config, start: Start) {
        let id = config.id;
        let raw = RawNode::new(config.clone(), start).expect("valid node");
        self.nodes.insert(
            id,
            SimNode {
                raw,
                config,
                storage: Storage::default(),
                applied: Vec::new(),
            },
        );
        let was_quiet = self.quiet;
        self.quiet = true;
        while self.nodes[&id].raw.has_ready() {
            self.process_ready(id);
        }
        self.quiet = was_quiet;
    }

    /// Restarts a node from its storage (its volatile state is lost).
    pub fn restart(&mut self, id: u64) {
        let node = self.nodes.remove(&id).expect("known node");
        let st = node.storage.clone();
        let recovered = RecoveredState {
            hard_state: st.hard_state,
            snapshot: st.snapshot.clone(),
            entries: st.entries.clone(),
            conf_state: st.conf_state.clone(),
            applied: st.applied,
        };
        let raw = RawNode::new(node.config.clone(), Start::Recovered(recovered)).expect("recoverable");
        // Entries after the applied index are re-applied; forget them so that the
        // per-node applied record stays a prefix of the log.
        let applied: Vec<_> = node
            .applied
            .into_iter()
            .filter(|(i, _, _)| *i <= st.applied)
            .collect();
        self.nodes.insert(
            id,
            SimNode {
                raw,
                config: node.config,
                storage: node.storage,
                applied,
            },
        );
        self.line(format!(
            "restarted {id}: {}",
            describe::hard_state(&st.hard_state)
        ));
    }

    /// Handles one Ready of `id` the way a real member does: persist, send, apply,
    /// advance.
    pub fn process_ready(&mut self, id: u64) {
        let rd = self.nodes.get_mut(&id).expect("known node").raw.ready();
        self.render_ready(id, &rd);
        let node = self.nodes.get_mut(&id).expect("known node");
        node.storage.persist(&rd);
        for m in &rd.messages {
            if !self.cut.contains(&(m.from, m.to)) && self.nodes.contains_key(&m.to) {
                self.queues.entry(m.to).or_default().push_back(m.clone());
            }
        }
        let mut conf_lines = Vec::new();
        for e in &rd.committed_entries {
            self.record_commit(e);
            let node = self.nodes.get_mut(&id).expect("known node");
            match e.r#type() {
                EntryType::EntryNormal => {
                    if !e.data.is_empty() {
                        node.applied.push((e.index, e.term, e.data.clone()));
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let cc = if e.r#type() == EntryType::EntryConfChange {
                        v1_to_v2(&ConfChange::decode(e.data.as_slice()).expect("v1 conf change"))
                    } else {
                        ConfChangeV2::decode(e.data.as_slice()).expect("v2 conf change")
                    };
                    match node.raw.apply_conf_change(&cc) {
                        Ok(cs) => {
                            node.storage.conf_state = cs.clone();
                            conf_lines.push(format!(
                                "  INFO {id} applied {}: {}",
                                describe::conf_change(&cc),
                                describe::conf_state(&cs)
                            ));
                        }
                        Err(err) => conf_lines.push(format!("  INFO {id} conf change refused: {err}")),
                    }
                }
            }
            node.storage.applied = e.index;
            if !e.data.is_empty() && e.r#type() == EntryType::EntryNormal {
                let prev = self.applied_at.insert(e.index, (e.term, e.data.clone()));
                if let Some(prev) = prev {
                    assert_eq!(
                        prev,
                        (e.term, e.data.clone()),
                        "state machine safety: index {} applied differently",
                        e.index
                    );
                }
            }
        }
        for l in conf_lines {
            self.line(l);
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        node.raw.advance(rd.number);
        self.check_safety();
    }

    fn record_commit(&mut self, e: &Entry) {
        if let Some(&term) = self.committed_at.get(&e.index) {
            assert_eq!(term, e.term, "committed entry at {} changed term", e.index);
        }
        self.committed_at.insert(e.index, e.term);
    }

    fn render_ready(&mut self, id: u64, rd: &Ready) {
        if self.quiet {
            return;
        }
        let mut s = String::new();
        let _ = writeln!(s, "> {id} handling Ready");
        let _ = writeln!(s, "  Ready MustSync={}:", rd.must_sync);
        if let Some(ss) = &rd.soft_state {
            let _ = writeln!(s, "  Lead:{} State:{}", ss.leader, ss.role.name());
        }
        if let Some(hs) = &rd.hard_state {
            let _ = writeln!(s, "  HardState {}", describe::hard_state(hs));
        }
        if !rd.entries.is_empty() {
            s.push_str("  Entries:\n");
            for e in &rd.entries {
                let _ = writeln!(s, "  {}", describe::entry(e));
            }
        }
        if let Some(snap) = &rd.snapshot {
            let _ = writeln!(s, "  Snapshot {}", describe::snapshot(snap));
        }
        if !rd.committed_entries.is_empty() {
            s.push_str("  CommittedEntries:\n");
            for e in &rd.committed_entries {
                let _ = writeln!(s, "  {}", describe::entry(e));
            }
        }
        if !rd.messages.is_empty() {
            s.push_str("  Messages:\n");
            for m in &rd.messages {
                let dropped = if self.cut.contains(&(m.from, m.to)) {
                    " (dropped: partitioned)"
                } else {
                    ""
                };
                let _ = writeln!(s, "  {}{dropped}", describe::message(m));
            }
        }
        for r in &rd.read_states {
            let _ = writeln!(
                s,
                "  ReadState Index:{} Context:{:?}",
                r.index,
                String::from_utf8_lossy(&r.request_ctx)
            );
        }
        self.out.push_str(&s);
    }

    /// Delivers queued messages matching the filters, in queue order per recipient.
    /// Returns how many were delivered.
    pub fn deliver(&mut self, from: Option<u64>, to: Option<u64>, kind: Option<&str>) -> usize {
        self.deliver_where(to, |m| matches_filter(m, from, kind))
    }

    /// Delivers queued messages (to `to`, or everyone) that satisfy `pred`.
    pub fn deliver_where(&mut self, to: Option<u64>, pred: impl Fn(&Message) -> bool) -> usize {
        let mut count = 0;
        let recipients: Vec<u64> = self
            .queues
            .keys()
            .copied()
            .filter(|&r| to.is_none_or(|t| t == r))
            .collect();
        for r in recipients {
            let queue = self.queues.remove(&r).unwrap_or_default();
            let (take, keep): (Vec<Message>, Vec<Message>) = queue.into_iter().partition(|m| pred(m));
            if !keep.is_empty() {
                self.queues.insert(r, keep.into());
            }
            if take.is_empty() || !self.nodes.contains_key(&r) {
                continue;
            }
            self.line(format!("> {r} receiving messages"));
            for m in take {
                count += 1;
                self.line(format!("  {}", describe::message(&m)));
                let node = self.nodes.get_mut(&r).expect("checked");
                if let Err(e) = node.raw.step(m) {
                    self.line(format!("  INFO {r} step: {e}"));
                }
                self.check_safety();
            }
        }
        count
    }

    /// Drops queued messages matching the filters.
    pub fn drop_msgs(&mut self, from: Option<u64>, to: Option<u64>, kind: Option<&str>) -> usize {
        let mut count = 0;
        for (&r, queue) in self.queues.iter_mut() {
            if to.is_some_and(|t| t != r) {
                continue;
            }
            let before = queue.len();
            let mut dropped = Vec::new();
            queue.retain(|m| {
                let hit = matches_filter(m, from, kind);
                if hit {
                    dropped.push(describe::message(m));
                }
                !hit
            });
            count += before - queue.len();
            for d in dropped {
                if !self.quiet {
                    self.out.push_str(&format!("  dropped: {d}\n"));
                }
            }
        }
        count
    }

    /// Processes readies and delivers messages until nothing moves.
    pub fn stabilize(&mut self, ids: Option<&[u64]>) {
        let ids: Vec<u64> = match ids {
            Some(ids) => ids.to_vec(),
            None => self.nodes.keys().copied().collect(),
        };
        for _ in 0..10_000 {
            let mut moved = false;
            for &id in &ids {
                if self.nodes.get(&id).is_some_and(|n| n.raw.has_ready()) {
                    self.process_ready(id);
                    moved = true;
                }
            }
            for &id in &ids {
                let has_msgs = self
                    .queues
                    .get(&id)
                    .is_some_and(|q| q.iter().any(|m| ids.contains(&m.from)));
                if has_msgs {
                    self.deliver_where(Some(id), |m| ids.contains(&m.from));
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("stabilize did not converge");
    }

    /// Checks election safety: at most one leader per term, ever. Also records the
    /// term of every new commit (see `commit_terms`).
    pub fn check_safety(&mut self) {
        for (&id, n) in &self.nodes {
            let st = n.raw.status();
            if st.role == Role::Leader {
                let prev = *self.leaders.entry(st.term).or_insert(id);
                assert_eq!(prev, id, "election safety: two leaders in term {}", st.term);
            }
            let seen = self.commit_terms.last_key_value().map_or(0, |(&i, _)| i);
            for index in seen + 1..=st.commit {
                self.commit_terms.insert(index, st.term);
            }
        }
    }

    /// Cuts every link between `a` and `b` (both directions).
    pub fn partition(&mut self, a: &[u64], b: &[u64]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// One line per node: role, term, leader, commit, applied, last index.
    pub fn raft_state(&mut self) {
        let lines: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, n)| {
                let st = n.raw.status();
                let kind = if st.conf_state.voters.contains(id) || st.conf_state.voters_outgoing.contains(id)
                {
                    "Voter"
                } else if st.conf_state.learners.contains(id) {
                    "Learner"
                } else {
                    "NonMember"
                };
                format!(
                    "{id}: {} ({kind}) Term:{} Lead:{} Commit:{}",
                    st.role.name(),
                    st.term,
                    st.leader,
                    st.commit
                )
            })
            .collect();
        for l in lines {
            self.line(l);
        }
    }

    /// The durable log of `id`.
    pub fn render_log(&mut self, id: u64) {
        let st = &self.nodes[&id].storage;
        let mut lines = Vec::new();
        let meta = st.snapshot.metadata.clone().unwrap_or_default();
        if meta.index > 0 {
            lines.push(format!("snapshot {}", describe::snapshot(&st.snapshot)));
        }
        if st.entries.is_empty() {
            lines.push("log is empty".to_string());
        }
        for e in &st.entries {
            lines.push(describe::entry(e));
        }
        for l in lines {
            self.line(l);
        }
    }

    pub fn render_status(&mut self, id: u64) {
        let st = self.nodes[&id].raw.status();
        let mut lines = vec![format!(
            "{}: {} Term:{} Vote:{} Commit:{} Applied:{} Lead:{} Transferee:{}",
            st.id,
            st.role.name(),
            st.term,
            st.vote,
            st.commit,
            st.applied,
            st.leader,
            st.lead_transferee
        )];
        lines.push(format!("  {}", describe::conf_state(&st.conf_state)));
        for (pid, p) in &st.progress {
            lines.push(format!(
                "  {pid}: {} match={} next={}{} inflight={}{}",
                p.state.name(),
                p.matched,
                p.next,
                if p.is_learner { " learner" } else { "" },
                p.inflight_msgs,
                if p.recent_active { "" } else { " inactive" },
            ));
        }
        for l in lines {
            self.line(l);
        }
    }
}

fn matches_filter(m: &Message, from: Option<u64>, kind: Option<&str>) -> bool {
    from.is_none_or(|f| f == m.from) && kind.is_none_or(|k| format!("{:?}", m.r#type()) == k)
}

/// The Raft paper's figure 8 as a script (see `current_term_commit_rule_figure8`
/// in `raft_paper.rs`): at its end leader 1 (term 4) holds the term-2 entry at
/// index 3 on a majority (1, 2, 3) and must not have committed it.
pub const FIGURE8_SCRIPT: &str = "add-nodes 5 voters=(1,2,3,4,5) append-bytes-max=1 inflight-msgs-max=1
    campaign 1
    stabilize
    partition 1 2 / 3 4 5
    propose 1 old
    stabilize 1 2
    campaign 5
    process-ready 5
    deliver from=5
    process-ready 3 4
    deliver to=5
    process-ready 5
    drop from=5
    restart 1
    heal
    partition 5 / 1 2 3 4
    campaign 1
    stabilize 1 2 3 4
    campaign 1
    process-ready 1
    deliver from=1
    process-ready 2 3 4
    deliver to=1
    process-ready 1
    partition 4 / 1 2 3
    drop from=1 to=3
    drop from=1 to=4
    stabilize 1 2
    tick 1
    process-ready 1
    deliver from=1 to=3
    process-ready 3
    deliver from=3 to=1
    process-ready 1
    deliver from=1 to=3
    process-ready 3
    deliver from=3 to=1
    process-ready 1
    deliver from=1 to=3
    process-ready 3
    deliver from=3 to=1";

/// A test config: etcd's ratios, small windows so flow control shows in transcripts.
pub fn test_config(id: u64) -> Config {
    Config {
        id,
        election_ticks: 10,
        heartbeat_ticks: 1,
        pre_vote: false,
        check_quorum: false,
        inflight_msgs_max: 256,
        inflight_bytes_max: 0,
        append_bytes_max: u64::MAX,
        uncommitted_bytes_max: 0,
        seed: id,
    }
}

/// A founding ConfState with the given voters and learners.
pub fn conf_state(voters: &[u64], learners: &[u64]) -> ConfState {
    ConfState {
        voters: voters.to_vec(),
        learners: learners.to_vec(),
        ..Default::default()
    }
}
