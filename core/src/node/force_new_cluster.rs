//! `--force-new-cluster`: a member restarts as the only member of its cluster,
//! keeping every committed write (etcd's disaster recovery after a lost quorum).
//!
//! As etcd does, this rewrites the recovered raft log before the node starts:
//! entries after the commit index are dropped (they may never have committed),
//! and one committed removal per other voter or learner is appended, so the node
//! applies them on start like any membership change and then holds an election
//! it alone votes in. The caller persists the appended entries and hard state
//! before starting the node (they are part of the log from then on).

use detcd_proto::detcdpb::ConfChangeContext;
use detcd_proto::etcdserverpb::Member;
use detcd_proto::raftpb::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType, HardState, Snapshot,
};
use prost::Message;

/// The members raft knows after the snapshot and the committed entries: the
/// snapshot's configuration with the committed membership changes replayed.
fn members_after(snapshot: &Snapshot, entries: &[Entry], commit: u64) -> std::collections::BTreeSet<u64> {
    let mut ids: std::collections::BTreeSet<u64> = snapshot
        .metadata
        .as_ref()
        .and_then(|m| m.conf_state.as_ref())
        .map(|c| c.voters.iter().chain(&c.learners).copied().collect())
        .unwrap_or_default();
    for e in entries.iter().filter(|e| e.index <= commit) {
        let changes = match e.r#type() {
            EntryType::EntryConfChangeV2 => ConfChangeV2::decode(e.data.as_slice())
                .map(|cc| cc.changes)
                .unwrap_or_default(),
            EntryType::EntryConfChange => detcd_proto::raftpb::ConfChange::decode(e.data.as_slice())
                .map(|cc| {
                    vec![ConfChangeSingle {
                        r#type: cc.r#type,
                        node_id: cc.node_id,
                    }]
                })
                .unwrap_or_default(),
            EntryType::EntryNormal => continue,
        };
        for c in changes {
            match c.r#type() {
                ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode => {
                    ids.insert(c.node_id);
                }
                ConfChangeType::ConfChangeRemoveNode => {
                    ids.remove(&c.node_id);
                }
                ConfChangeType::ConfChangeUpdateNode => {}
            }
        }
    }
    ids
}

/// Rewrites a recovered log for `member_id` to restart alone: drops uncommitted
/// entries, appends the removals and commits them. Returns the appended entries
/// (to persist with the new hard state).
pub fn force_new_cluster(
    member_id: u64,
    snapshot: &Snapshot,
    hard_state: &mut HardState,
    entries: &mut Vec<Entry>,
) -> Vec<Entry> {
    let snapshot_index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
    let snapshot_term = snapshot.metadata.as_ref().map_or(0, |m| m.term);
    let commit = hard_state.commit.max(snapshot_index);
    entries.retain(|e| e.index <= commit);
    let last_index = entries.last().map_or(snapshot_index, |e| e.index);
    let last_term = entries.last().map_or(snapshot_term, |e| e.term);
    let term = hard_state.term.max(last_term);
    let others: Vec<u64> = members_after(snapshot, entries, commit)
        .into_iter()
        .filter(|id| *id != member_id)
        .collect();
    let appended: Vec<Entry> = others
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let context = ConfChangeContext {
                request_id: 0,
                member: Some(Member {
                    id,
                    ..Member::default()
                }),
            };
            let mut single = ConfChangeSingle {
                r#type: 0,
                node_id: id,
            };
            single.set_type(ConfChangeType::ConfChangeRemoveNode);
            let cc = ConfChangeV2 {
                transition: 0,
                changes: vec![single],
                context: context.encode_to_vec(),
            };
            let mut e = Entry {
                term,
                index: last_index + 1 + i as u64,
                r#type: 0,
                data: cc.encode_to_vec(),
            };
            e.set_type(EntryType::EntryConfChangeV2);
            e
        })
        .collect();
    entries.extend(appended.iter().cloned());
    hard_state.term = term;
    hard_state.commit = last_index + appended.len() as u64;
    appended
}
