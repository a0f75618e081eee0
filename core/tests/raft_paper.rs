//! Tests named after the safety claims of the Raft paper (Ongaro and Ousterhout,
//! 2014, figure 3 and section 5.4), each checked on the simulated cluster.

mod support;

use detcd_core::raft::Role;
use support::random::{check_leader_completeness, check_log_matching, random_run, RunShape};
use support::script::run_script;
use support::{Cluster, FIGURE8_SCRIPT};

fn shape(nodes: u64) -> RunShape {
    RunShape {
        nodes,
        steps: 3000,
        pre_vote: false,
        check_quorum: false,
        churn: false,
    }
}

/// Election Safety: at most one leader can be elected in a given term.
#[test]
fn election_safety() {
    let mut terms_with_leader = 0;
    for seed in 0..12 {
        let c = random_run(
            seed,
            RunShape {
                pre_vote: seed % 2 == 0,
                check_quorum: seed % 3 == 0,
                ..shape(3 + seed % 3)
            },
        );
        // `random_run` asserts one leader per term after every action.
        terms_with_leader += c.leaders.len();
    }
    // Make sure the runs actually exercised elections.
    assert!(
        terms_with_leader >= 12,
        "only {terms_with_leader} terms had a leader"
    );
}

/// Log Matching: if two logs contain an entry with the same index and term, the
/// logs are identical in all entries up through that index.
#[test]
fn log_matching() {
    for seed in 100..110 {
        let c = random_run(seed, shape(5));
        check_log_matching(&c);
    }
}

/// Leader Completeness: if an entry is committed in a term, it is present in the
/// logs of the leaders of all higher terms.
#[test]
fn leader_completeness() {
    for seed in 200..210 {
        let c = random_run(seed, shape(3));
        check_leader_completeness(&c);
        assert!(!c.committed_at.is_empty(), "seed {seed}: nothing committed");
    }
}

/// State Machine Safety: if a server has applied an entry at an index, no other
/// server ever applies a different entry at that index.
#[test]
fn state_machine_safety() {
    for seed in 300..310 {
        let c = random_run(seed, shape(5));
        let sequences: Vec<&Vec<(u64, u64, Vec<u8>)>> = c.nodes.values().map(|n| &n.applied).collect();
        for a in &sequences {
            for b in &sequences {
                let n = a.len().min(b.len());
                assert_eq!(a[..n], b[..n], "seed {seed}: applied sequences diverge");
            }
        }
    }
}

/// 5.4.2: a leader commits by counting replicas only entries of its current term;
/// an older entry on a majority commits only together with a current-term entry
/// (figure 8). Scripted as in `testdata/raft/commit_rule_figure8.txt`.
#[test]
fn current_term_commit_rule_figure8() {
    let mut c = Cluster::new();
    c.quiet = true;
    run_script(&mut c, FIGURE8_SCRIPT);
    let leader = c.nodes[&1].raw.status();
    assert_eq!((leader.role, leader.term), (Role::Leader, 4));
    // "old" (index 3, term 2) is on 1, 2 and 3: a majority of five.
    for id in [1, 2, 3] {
        let e = c.nodes[&id]
            .storage
            .entries
            .iter()
            .find(|e| e.index == 3)
            .expect("index 3");
        assert_eq!((e.term, e.data.as_slice()), (2, b"old".as_slice()), "node {id}");
    }
    assert_eq!(leader.progress[&3].matched, 3);
    assert_eq!(
        leader.commit, 2,
        "an old-term entry must not commit by counting replicas"
    );

    run_script(&mut c, "stabilize 1 2 3");
    let leader = c.nodes[&1].raw.status();
    assert_eq!(
        leader.commit, 4,
        "the current-term entry commits, and the old one with it"
    );
}

/// 5.4.1 Election restriction: a candidate whose log is behind a majority cannot
/// win; here the lagging node times out repeatedly but never leads.
#[test]
fn election_restriction_lagging_node_never_leads() {
    let mut c = Cluster::new();
    c.quiet = true;
    run_script(
        &mut c,
        "add-nodes 3 voters=(1,2,3)
         campaign 1
         stabilize
         partition 3 / 1 2
         propose 1 x
         stabilize 1 2
         heal
         partition 1 / 2 3
         campaign 3
         stabilize 2 3",
    );
    assert_ne!(c.nodes[&3].raw.status().role, Role::Leader);
    run_script(&mut c, "campaign 2\nstabilize 2 3");
    assert_eq!(c.nodes[&2].raw.status().role, Role::Leader);
}

/// Leader Completeness binds the leaders of terms after the one an entry was
/// committed in, which can be later than the entry's own term (raft_props found
/// the check using the entry's term, seed 15484396867939114727). 2 leads term 2
/// and takes "x" (2/3) while cut off; 1 wins term 3 with 3's vote and is cut off
/// before its 3/3 reaches anyone (without CheckQuorum it keeps leading); 2 wins
/// term 4 with 3 and commits "x" in term 4. Leader 1 of term 3 never held "x",
/// and that is allowed.
#[test]
fn leader_completeness_counts_from_the_commit_term() {
    let mut c = Cluster::new();
    c.quiet = true;
    run_script(
        &mut c,
        "add-nodes 3 voters=(1,2,3)
         campaign 2
         stabilize
         partition 2 / 1 3
         propose 2 x
         stabilize 2
         heal
         campaign 1
         process-ready 1
         deliver from=1
         process-ready 2 3
         deliver to=1
         partition 1 / 2 3
         process-ready 1
         campaign 2
         stabilize 2 3",
    );
    let (one, two) = (c.nodes[&1].raw.status(), c.nodes[&2].raw.status());
    assert_eq!((one.role, one.term), (Role::Leader, 3));
    assert_eq!((two.role, two.term), (Role::Leader, 4));
    assert_eq!(c.committed_at.get(&3), Some(&2), "x (2/3) is committed");
    assert_eq!(c.commit_terms.get(&3), Some(&4), "in term 4");
    let held = c.nodes[&1].storage.entries.iter().find(|e| e.index == 3);
    assert_eq!(held.map(|e| e.term), Some(3), "leader 1 holds its own 3/3 there");
    check_leader_completeness(&c);

    // Had "x" been committed in term 2, leader 1 would break the property.
    c.commit_terms.insert(3, 2);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_leader_completeness(&c)));
    assert!(caught.is_err(), "leader 1 lacks an entry of term 2");
}
