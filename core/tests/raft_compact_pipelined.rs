//! Compaction while persistence is pipelined: the application has applied the
//! committed entries of Readies it has not yet acknowledged with `advance`. Under
//! sustained load that is the normal state, so compaction must not wait for the
//! two to meet (it did once, and snapshots then only happened when load paused).

use detcd_core::raft::{CompactError, Config, RawNode, Start};
use detcd_proto::raftpb::ConfState;

fn single_voter() -> RawNode {
    let cs = ConfState {
        voters: vec![1],
        ..Default::default()
    };
    let mut node = RawNode::new(Config::new(1), Start::Bootstrap(cs)).expect("valid config");
    // Hand out and acknowledge the bootstrap Ready, then become leader.
    let rd = node.ready();
    node.advance(rd.number);
    node.campaign();
    while node.has_ready() {
        let rd = node.ready();
        node.advance(rd.number);
    }
    node
}

#[test]
fn compacts_entries_applied_from_unacknowledged_readies() {
    let mut node = single_voter();
    let mut applied = node.status().applied;
    node.propose(b"a".to_vec()).expect("leader accepts");
    node.propose(b"b".to_vec()).expect("leader accepts");
    // Persist (advance) Readies that carry new entries; keep the first Ready that
    // hands out committed entries unacknowledged, as a pipelined driver would.
    let mut last = 0;
    while node.has_ready() {
        let rd = node.ready();
        last = rd.number;
        if let Some(e) = rd.committed_entries.last() {
            applied = e.index;
            break;
        }
        node.advance(rd.number);
    }
    assert!(
        applied > node.status().applied,
        "the scenario needs applied entries not yet advanced"
    );
    node.compact(applied, b"state".to_vec())
        .expect("entries handed out to apply may be compacted");
    assert_eq!(node.snapshot().metadata.as_ref().map(|m| m.index), Some(applied));
    assert!(node.status().applied >= applied);
    node.advance(last);
    node.check_invariants();
}

#[test]
fn refuses_entries_not_yet_handed_out_to_apply() {
    let mut node = single_voter();
    node.propose(b"a".to_vec()).expect("leader accepts");
    let last = node.status().applied + 1;
    assert!(matches!(
        node.compact(last + 5, Vec::new()),
        Err(CompactError::NotApplied { .. })
    ));
}
