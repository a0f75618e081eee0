//! Planted bugs (`core::mutation`, feature `mutations`): each test here runs a
//! small scenario twice, without and with one mutation active, and asserts that
//! the correct code passes and the mutated code shows the violation. The
//! simulator proves the same at scale; these prove each plant is live and placed
//! where its name says.
//!
//! Run with `cargo test -p detcd-core --features mutations --test mutations`.

#![cfg(feature = "mutations")]

#[allow(dead_code)]
#[path = "support/mem_disk.rs"]
mod mem_disk;
mod support;

use detcd_core::mutation::{is_active, set_active, ActiveGuard, Mutation};
use detcd_core::mvcc::Store;
use detcd_core::node::{Input, Node, NodeConfig, NodeStart, Output, PeerMessage};
use detcd_core::raft::{RawNode, Role, Start};
use detcd_core::watch::Hub;
use detcd_proto::etcdserverpb::{Member, PutRequest, WatchCreateRequest};
use detcd_proto::raftpb::{Message, MessageType};
use mem_disk::MemDisk;
use support::script::run_script;
use support::{conf_state, test_config, Cluster, FIGURE8_SCRIPT};

/// Runs `f` with no mutation, then with `m`, returning both results.
fn without_and_with<T>(m: Mutation, f: impl Fn() -> T) -> (T, T) {
    set_active(None);
    let clean = f();
    let _guard = ActiveGuard::new(m);
    let mutated = f();
    (clean, mutated)
}

#[test]
fn the_active_mutation_is_per_thread() {
    let _guard = ActiveGuard::new(Mutation::CommitPreviousTerm);
    assert!(is_active(Mutation::CommitPreviousTerm));
    let seen_elsewhere = std::thread::spawn(|| Mutation::ALL.iter().any(|&m| is_active(m)))
        .join()
        .expect("thread ran");
    assert!(!seen_elsewhere, "another thread sees no mutation");
    assert!(is_active(Mutation::CommitPreviousTerm), "still active here");
}

/// commit-previous-term: the Raft paper's figure 8 commits the old-term entry at
/// index 3 by counting replicas.
#[test]
fn commit_previous_term_breaks_the_figure8_rule() {
    let (clean, mutated) = without_and_with(Mutation::CommitPreviousTerm, || {
        let mut c = Cluster::new();
        c.quiet = true;
        run_script(&mut c, FIGURE8_SCRIPT);
        let st = c.nodes[&1].raw.status();
        assert_eq!((st.role, st.term), (Role::Leader, 4));
        st.commit
    });
    assert_eq!(clean, 2, "correct code waits for a current-term entry");
    assert_eq!(
        mutated, 3,
        "the mutation commits the term-2 entry by counting replicas"
    );
}

/// commit-without-quorum: a leader cut off from everyone still commits a proposal.
#[test]
fn commit_without_quorum_commits_alone() {
    let (clean, mutated) = without_and_with(Mutation::CommitWithoutQuorum, || {
        let mut c = Cluster::new();
        c.quiet = true;
        run_script(
            &mut c,
            "add-nodes 3 voters=(1,2,3)
             campaign 1
             stabilize
             partition 1 / 2 3
             propose 1 lonely
             stabilize 1",
        );
        let st = c.nodes[&1].raw.status();
        (
            st.commit,
            c.nodes[&1].storage.entries.last().map(|e| e.index).unwrap_or(0),
        )
    });
    assert!(
        clean.0 < clean.1,
        "correct code leaves the cut-off proposal uncommitted: {clean:?}"
    );
    assert_eq!(
        mutated.0, mutated.1,
        "the mutation commits it without a quorum: {mutated:?}"
    );
}

/// read-index-without-quorum: a partitioned leader answers a read at once.
#[test]
fn read_index_without_quorum_answers_a_partitioned_leader() {
    let (clean, mutated) = without_and_with(Mutation::ReadIndexWithoutQuorum, || {
        let mut c = Cluster::new();
        c.quiet = true;
        run_script(
            &mut c,
            "add-nodes 3 voters=(1,2,3)
             campaign 1
             stabilize
             partition 1 / 2 3",
        );
        let raw = &mut c.nodes.get_mut(&1).expect("node 1").raw;
        raw.read_index(b"r1".to_vec()).expect("leader takes reads");
        let mut answered = 0;
        while raw.has_ready() {
            let rd = raw.ready();
            answered += rd.read_states.len();
            raw.advance(rd.number);
        }
        answered
    });
    assert_eq!(clean, 0, "correct code waits for a heartbeat quorum");
    assert_eq!(mutated, 1, "the mutation answers without one");
}

/// read-index-before-first-commit: a fresh leader serves a read before its
/// empty entry commits (its commit index may lag what earlier leaders committed).
#[test]
fn read_index_before_first_commit_serves_a_fresh_leader() {
    let (clean, mutated) = without_and_with(Mutation::ReadIndexBeforeFirstCommit, || {
        let mut c = Cluster::new();
        c.quiet = true;
        // 2 wins term 3 and has not yet committed its empty entry.
        run_script(
            &mut c,
            "add-nodes 3 voters=(1,2,3)
             campaign 1
             stabilize
             campaign 2
             process-ready 2
             deliver from=2 type=MsgVote
             process-ready 1 3
             deliver to=2 type=MsgVoteResp",
        );
        let raw = &mut c.nodes.get_mut(&2).expect("node 2").raw;
        assert_eq!(raw.status().role, Role::Leader);
        raw.read_index(b"r1".to_vec()).expect("leader takes reads");
        let mut heartbeats = 0;
        while raw.has_ready() {
            let rd = raw.ready();
            heartbeats += rd
                .messages
                .iter()
                .filter(|m| m.r#type() == MessageType::MsgHeartbeat && !m.context.is_empty())
                .count();
            raw.advance(rd.number);
        }
        heartbeats
    });
    assert_eq!(
        clean, 0,
        "correct code holds the read until the leader commits in its term"
    );
    assert!(mutated > 0, "the mutation starts the read round at once");
}

/// skip-must-sync-on-term-change: the Ready that carries a candidate's new term
/// and self-vote does not ask for a sync.
#[test]
fn skip_must_sync_on_term_change_leaves_the_vote_unsynced() {
    let (clean, mutated) = without_and_with(Mutation::SkipMustSyncOnTermChange, || {
        let mut raw =
            RawNode::new(test_config(1), Start::Bootstrap(conf_state(&[1, 2, 3], &[]))).expect("node");
        while raw.has_ready() {
            let rd = raw.ready();
            raw.advance(rd.number);
        }
        raw.campaign();
        let rd = raw.ready();
        let hs = rd.hard_state.expect("term and vote changed");
        assert_eq!((hs.term, hs.vote), (2, 1));
        assert!(rd.entries.is_empty() && rd.snapshot.is_none());
        rd.must_sync
    });
    assert!(clean, "a new term and vote must be synced");
    assert!(!mutated, "the mutation skips the sync");
}

fn member(id: u64) -> Member {
    Member {
        id,
        peer_ur_ls: vec![format!("http://n{id}:2380")],
        ..Default::default()
    }
}

/// vote-before-persist: a member's vote reply leaves before the Persist that
/// holds its vote is acknowledged.
#[test]
fn vote_before_persist_sends_the_vote_ahead_of_the_disk() {
    let (clean, mutated) = without_and_with(Mutation::VoteBeforePersist, || {
        let initial: Vec<Member> = (1..=3).map(member).collect();
        let config = NodeConfig::new(2, 0xc1, "n2", initial);
        let mut node = Node::new(config, NodeStart::Found).expect("node starts");
        // Settle the bootstrap Ready.
        MemDisk::default().drain(&mut node, false, |_, _| {});
        let mut vote = Message {
            from: 1,
            to: 2,
            term: 2,
            index: 1,
            log_term: 1,
            ..Default::default()
        };
        vote.set_type(MessageType::MsgVote);
        node.handle(Input::Peer(PeerMessage::Raft(vote)));
        // Everything out before any Persisted answer: no vote reply may be there.
        let mut early_votes = 0;
        while let Some(out) = node.poll() {
            if let Output::Send {
                message: PeerMessage::Raft(m),
                ..
            } = out
            {
                if m.r#type() == MessageType::MsgVoteResp && !m.reject {
                    early_votes += 1;
                }
            }
        }
        early_votes
    });
    assert_eq!(
        clean, 0,
        "correct code holds the vote reply until the vote is durable"
    );
    assert_eq!(mutated, 1, "the mutation sends it at once");
}

/// watch-resumes-late: a watcher from a past revision misses that revision.
#[test]
fn watch_resumes_late_skips_the_start_revision() {
    let (clean, mutated) = without_and_with(Mutation::WatchResumesLate, || {
        let mut store = Store::default();
        let mut hub = Hub::default();
        for v in ["1", "2", "3"] {
            let put = PutRequest {
                key: b"a".to_vec(),
                value: v.into(),
                ..Default::default()
            };
            let applied = store.put(&put, &|_| false).expect("put");
            hub.on_events(&applied.events);
        }
        let req = WatchCreateRequest {
            key: b"a".to_vec(),
            start_revision: 2,
            ..Default::default()
        };
        let id = hub.create(1, &req, store.revision()).expect("created");
        hub.sync(&store);
        std::iter::from_fn(|| hub.poll(1))
            .filter(|r| r.watch_id == id)
            .flat_map(|r| r.events.into_iter().map(|e| e.kv.expect("kv").mod_revision))
            .collect::<Vec<i64>>()
    });
    assert_eq!(clean, vec![2, 3, 4]);
    assert_eq!(mutated, vec![3, 4], "the mutation starts one revision late");
}

#[test]
fn v2_cas_ignores_prev_index_swaps_over_a_newer_write() {
    use detcd_core::v2store::{Store as V2Store, Ttl};
    let (clean, mutated) = without_and_with(Mutation::V2CasIgnoresPrevIndex, || {
        let mut store = V2Store::default();
        let first = store.set("/k", false, "a", Ttl::default()).expect("set");
        store.set("/k", false, "b", Ttl::default()).expect("set");
        store
            .compare_and_swap("/k", "", first.index(), "c", Ttl::default())
            .map(|e| e.node.value)
            .map_err(|e| e.code)
    });
    assert_eq!(clean, Err(detcd_core::v2store::code::TEST_FAILED));
    assert_eq!(mutated, Ok(Some("c".to_string())));
}

#[test]
fn v2_rmdir_ignores_children_removes_a_non_empty_directory() {
    use detcd_core::v2store::{Store as V2Store, Ttl};
    let (clean, mutated) = without_and_with(Mutation::V2RmdirIgnoresChildren, || {
        let mut store = V2Store::default();
        store.set("/d/k", false, "a", Ttl::default()).expect("set");
        let rmdir = store
            .delete("/d", true, false, 0)
            .map(|e| e.index())
            .map_err(|e| e.code);
        (rmdir, store.get("/d/k", false, 0).is_ok())
    });
    assert_eq!(clean, (Err(detcd_core::v2store::code::DIR_NOT_EMPTY), true));
    assert_eq!(mutated, (Ok(2), false));
}

#[test]
fn v2_expiry_by_local_clock_hides_a_key_raft_still_holds() {
    use detcd_core::v2store::{Store as V2Store, Ttl};
    const NOW: u64 = 1_700_000_000_000;
    let (clean, mutated) = without_and_with(Mutation::V2ExpiryByLocalClock, || {
        let mut store = V2Store::default();
        let ttl = Ttl {
            expire_unix_ms: Some(NOW + 1_000),
            refresh: false,
            now_unix_ms: NOW,
        };
        store.set("/k", false, "a", ttl).expect("set");
        // Past the expiry by this member's clock, before any sync expired it.
        store
            .get("/k", false, NOW + 2_000)
            .map(|e| e.node.value)
            .map_err(|e| e.code)
    });
    assert_eq!(clean, Ok(Some("a".to_string())));
    assert_eq!(mutated, Err(detcd_core::v2store::code::KEY_NOT_FOUND));
}
