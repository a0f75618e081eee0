//! Randomized runs of the simulated cluster, decided entirely by a seed: which
//! node ticks, which message is delivered, dropped or duplicated, who proposes.
//! Used by the paper tests and the property tests, with the Raft paper's safety
//! properties checked after every action.

use detcd_core::raft::{Role, Start};
use detcd_core::rng::Rng;
use detcd_proto::raftpb::Entry;

use super::{conf_state, test_config, Cluster};

/// How a random run is shaped.
#[derive(Clone, Copy, Debug)]
pub struct RunShape {
    pub nodes: u64,
    pub steps: u64,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Leader churn on top of the base schedule: the current leader is isolated
    /// now and then, nodes restart from their storage (volatile state lost), and
    /// nodes take bursts of ticks (election timeouts expire more often).
    pub churn: bool,
}

/// How busy a run was, to prove a test did not pass vacuously.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    /// Terms that had a leader.
    pub leaders: usize,
    /// Indexes seen committed.
    pub committed: usize,
    pub restarts: usize,
    pub leader_isolations: usize,
}

impl Activity {
    pub fn of(c: &Cluster, restarts: usize, leader_isolations: usize) -> Activity {
        Activity {
            leaders: c.leaders.len(),
            committed: c.committed_at.len(),
            restarts,
            leader_isolations,
        }
    }
}

/// Runs `shape` from `seed`; panics on any safety violation. Returns the cluster
/// (transcript in `out`).
pub fn random_run(seed: u64, shape: RunShape) -> Cluster {
    random_run_with_activity(seed, shape).0
}

/// [`random_run`], also saying how busy the run was.
pub fn random_run_with_activity(seed: u64, shape: RunShape) -> (Cluster, Activity) {
    let mut rng = Rng::new(seed);
    let mut c = Cluster::new();
    let ids: Vec<u64> = (1..=shape.nodes).collect();
    for &id in &ids {
        let mut cfg = test_config(id);
        cfg.seed = seed.wrapping_mul(31).wrapping_add(id);
        cfg.pre_vote = shape.pre_vote;
        cfg.check_quorum = shape.check_quorum;
        cfg.inflight_msgs_max = 4;
        c.add_node(cfg, Start::Bootstrap(conf_state(&ids, &[])));
    }
    let mut proposal = 0u64;
    let (mut restarts, mut isolations) = (0, 0);
    // With churn, a few more action slots (100..106) than the base schedule.
    let actions = if shape.churn { 106 } else { 100 };
    for _ in 0..shape.steps {
        let id = ids[rng.range(0, ids.len() as u64) as usize];
        match rng.range(0, actions) {
            100 if rng.chance(1, 2) => {
                // Cut the current leader off, forcing an election among the rest.
                let leader = c
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.raw.status().role == Role::Leader)
                    .max_by_key(|(_, n)| n.raw.status().term)
                    .map(|(&l, _)| l);
                if let Some(leader) = leader {
                    c.heal();
                    let others: Vec<u64> = ids.iter().copied().filter(|&o| o != leader).collect();
                    c.partition(&[leader], &others);
                    isolations += 1;
                }
            }
            101 => {
                // Crash and restart (rarely: each costs an election when it hits
                // the leader): only what the node persisted survives.
                if rng.chance(1, 8) {
                    c.restart(id);
                    restarts += 1;
                }
            }
            102..=105 => {
                let node = &mut c.nodes.get_mut(&id).expect("node").raw;
                for _ in 0..10 {
                    node.tick();
                }
            }
            0..=19 => c.nodes.get_mut(&id).expect("node").raw.tick(),
            20..=59 => {
                // Deliver one message to `id`, usually the oldest, sometimes a
                // later one (reordering).
                let Some(q) = c.queues.get_mut(&id) else { continue };
                if q.is_empty() {
                    continue;
                }
                let pos = if rng.chance(1, 4) {
                    rng.range(0, q.len() as u64) as usize
                } else {
                    0
                };
                let m = q.remove(pos).expect("in range");
                let _ = c.nodes.get_mut(&id).expect("node").raw.step(m);
                c.check_safety();
            }
            60..=62 => {
                if let Some(q) = c.queues.get_mut(&id) {
                    if !q.is_empty() {
                        let pos = rng.range(0, q.len() as u64) as usize;
                        q.remove(pos);
                    }
                }
            }
            63..=64 => {
                if let Some(q) = c.queues.get_mut(&id) {
                    if let Some(m) = q.front().cloned() {
                        q.push_back(m);
                    }
                }
            }
            65..=66 => {
                // Isolate one node for a while, or heal everything.
                if rng.chance(1, 2) {
                    let others: Vec<u64> = ids.iter().copied().filter(|&o| o != id).collect();
                    c.partition(&[id], &others);
                } else {
                    c.heal();
                }
            }
            67..=76 => {
                proposal += 1;
                let _ = c
                    .nodes
                    .get_mut(&id)
                    .expect("node")
                    .raw
                    .propose(format!("p{proposal}").into_bytes());
            }
            _ => {
                if c.nodes[&id].raw.has_ready() {
                    c.process_ready(id);
                }
            }
        }
        // Not every action above checks: record commits and leaders now.
        c.check_safety();
        check_log_matching(&c);
        check_leader_completeness(&c);
    }
    let activity = Activity::of(&c, restarts, isolations);
    (c, activity)
}

/// Log Matching: if two logs hold an entry with the same index and term, they are
/// identical up to it. Checked on durable logs.
pub fn check_log_matching(c: &Cluster) {
    let logs: Vec<(u64, &Vec<Entry>)> = c.nodes.iter().map(|(&id, n)| (id, &n.storage.entries)).collect();
    for (i, (a_id, a)) in logs.iter().enumerate() {
        for (b_id, b) in &logs[i + 1..] {
            // Highest index where both have an entry with the same term.
            let mut same_at = None;
            for ea in a.iter().rev() {
                if let Some(eb) = b.iter().find(|e| e.index == ea.index) {
                    if eb.term == ea.term {
                        same_at = Some(ea.index);
                        break;
                    }
                }
            }
            let Some(top) = same_at else { continue };
            for ea in a.iter().filter(|e| e.index <= top) {
                if let Some(eb) = b.iter().find(|e| e.index == ea.index) {
                    assert_eq!(
                        ea, eb,
                        "log matching broken between {a_id} and {b_id} at {}",
                        ea.index
                    );
                }
            }
        }
    }
}

/// Leader Completeness (Raft 5.4.3): an entry committed in term T is in the log
/// of every leader of a term after T. T is the term of the leader that committed
/// the entry, not the entry's own term: a leader of term 5 commits a term-2 entry
/// by committing its own after it, and a leader of term 4 that never heard of
/// term 5 (isolated, without CheckQuorum) may lack it.
pub fn check_leader_completeness(c: &Cluster) {
    for (&id, n) in &c.nodes {
        let st = n.raw.status();
        if st.role != Role::Leader {
            continue;
        }
        let snap = n.storage.snapshot.metadata.as_ref().map_or(0, |m| m.index);
        for (&index, &term) in &c.committed_at {
            if index <= snap {
                continue;
            }
            // Recorded when the commit index first covered it, before any apply.
            let commit_term = c.commit_terms[&index];
            // A leader of the commit term itself may not have it durable yet (a
            // quorum of followers can commit it first); a later leader's vote
            // requests left after its log was durable, so its durable log holds it.
            if st.term <= commit_term {
                continue;
            }
            let held = n
                .storage
                .entries
                .iter()
                .find(|e| e.index == index)
                .map(|e| e.term);
            assert_eq!(
                held,
                Some(term),
                "leader {id} (term {}) lacks entry {index} committed in term {commit_term}",
                st.term
            );
        }
    }
}
