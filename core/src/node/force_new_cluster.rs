//! `--force-new-cluster`: a member restarts as the only member of its cluster,
//! keeping every committed write (etcd's disaster recovery after a lost quorum).
//!
//! As etcd does, this rewrites the recovered raft log before the node starts:
//! entries after the commit index are dropped (they may never have committed),
//! and one committed removal per other voter or learner is appended, so the node
//! applies them on start like any membership change and then holds an election
//! it alone votes in. The caller persists the appended entries and hard state
//! before starting the node (they are part of the log from then on).
//!
//! A member that is not a voter of its own recovered membership (it applied its
//! removal, or it is a learner) cannot become a one-member cluster: that is an
//! error here. etcd 3.4 appends an addition of itself first, which its
//! membership check then ignores for a removed member, and panics on "removed
//! all voters" (a learner: on the unknown conf change type, or the same).

use std::collections::BTreeMap;

use detcd_proto::detcdpb::ConfChangeContext;
use detcd_proto::etcdserverpb::Member;
use detcd_proto::raftpb::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType, HardState, Snapshot,
};
use prost::Message;

/// The members raft knows after the snapshot and the committed entries (true
/// for a learner): the snapshot's configuration with the committed membership
/// changes replayed.
fn members_after(snapshot: &Snapshot, entries: &[Entry], commit: u64) -> BTreeMap<u64, bool> {
    let mut ids: BTreeMap<u64, bool> = snapshot
        .metadata
        .as_ref()
        .and_then(|m| m.conf_state.as_ref())
        .map(|c| {
            let voters = c.voters.iter().map(|&id| (id, false));
            voters.chain(c.learners.iter().map(|&id| (id, true))).collect()
        })
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
                ConfChangeType::ConfChangeAddNode => {
                    ids.insert(c.node_id, false);
                }
                ConfChangeType::ConfChangeAddLearnerNode => {
                    ids.insert(c.node_id, true);
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
/// (to persist with the new hard state), or why the member cannot restart alone
/// (nothing is changed then).
pub fn force_new_cluster(
    member_id: u64,
    snapshot: &Snapshot,
    hard_state: &mut HardState,
    entries: &mut Vec<Entry>,
) -> Result<Vec<Entry>, String> {
    let snapshot_index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
    let snapshot_term = snapshot.metadata.as_ref().map_or(0, |m| m.term);
    let commit = hard_state.commit.max(snapshot_index);
    let members = members_after(snapshot, entries, commit);
    match members.get(&member_id) {
        Some(false) => {}
        Some(true) => {
            return Err(format!(
                "--force-new-cluster: member {member_id:x} is a learner; only a voting member can restart as a one-member cluster"
            ))
        }
        None => {
            return Err(format!(
                "--force-new-cluster: member {member_id:x} is not a member of its cluster (it was removed); it cannot restart as a one-member cluster"
            ))
        }
    }
    entries.retain(|e| e.index <= commit);
    let last_index = entries.last().map_or(snapshot_index, |e| e.index);
    let last_term = entries.last().map_or(snapshot_term, |e| e.term);
    let term = hard_state.term.max(last_term);
    let others: Vec<u64> = members.into_keys().filter(|id| *id != member_id).collect();
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
    Ok(appended)
}

#[cfg(test)]
mod tests {
    use detcd_proto::raftpb::{ConfState, SnapshotMetadata};

    use super::*;

    fn snapshot(voters: &[u64], learners: &[u64]) -> Snapshot {
        Snapshot {
            data: Vec::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState {
                    voters: voters.to_vec(),
                    learners: learners.to_vec(),
                    ..ConfState::default()
                }),
                index: 3,
                term: 1,
            }),
        }
    }

    fn conf_change(index: u64, kind: ConfChangeType, node_id: u64) -> Entry {
        let mut single = ConfChangeSingle { r#type: 0, node_id };
        single.set_type(kind);
        let cc = ConfChangeV2 {
            changes: vec![single],
            ..ConfChangeV2::default()
        };
        let mut e = Entry {
            term: 2,
            index,
            r#type: 0,
            data: cc.encode_to_vec(),
        };
        e.set_type(EntryType::EntryConfChangeV2);
        e
    }

    #[test]
    fn removes_the_others_after_the_commit_index() {
        let mut hs = HardState {
            term: 2,
            vote: 1,
            commit: 4,
        };
        let mut entries = vec![
            Entry {
                term: 2,
                index: 4,
                ..Entry::default()
            },
            Entry {
                term: 2,
                index: 5,
                ..Entry::default()
            },
        ];
        let appended =
            force_new_cluster(1, &snapshot(&[1, 2, 3], &[]), &mut hs, &mut entries).expect("a voter");
        let indexes: Vec<u64> = appended.iter().map(|e| e.index).collect();
        assert_eq!(indexes, [5, 6], "the uncommitted entry 5 is replaced");
        assert_eq!((hs.term, hs.commit), (2, 6));
        assert_eq!(entries.len(), 3);
    }

    #[test]
    fn a_removed_member_or_a_learner_cannot_restart_alone() {
        let removed = vec![conf_change(4, ConfChangeType::ConfChangeRemoveNode, 1)];
        let mut hs = HardState {
            term: 2,
            vote: 1,
            commit: 4,
        };
        let mut entries = removed.clone();
        let err =
            force_new_cluster(1, &snapshot(&[1, 2, 3], &[]), &mut hs, &mut entries).expect_err("removed");
        assert!(err.contains("it was removed"), "{err}");
        assert_eq!((hs.commit, entries), (4, removed), "nothing changed");

        let mut entries = Vec::new();
        let err =
            force_new_cluster(4, &snapshot(&[1, 2, 3], &[4]), &mut hs, &mut entries).expect_err("learner");
        assert!(err.contains("is a learner"), "{err}");

        // A learner promoted by a committed entry is a voter.
        let mut entries = vec![conf_change(4, ConfChangeType::ConfChangeAddNode, 4)];
        let appended =
            force_new_cluster(4, &snapshot(&[1, 2, 3], &[4]), &mut hs, &mut entries).expect("promoted");
        assert_eq!(appended.len(), 3);
    }
}
