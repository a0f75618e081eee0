//! First start on a data directory that etcd's own restore wrote (`etcdctl snapshot
//! restore` 3.4, `etcdutl snapshot restore` 3.5+): `member/snap/db` (etcd's bbolt
//! backend) and `member/wal/*.wal` (etcd's WAL holding the member's identity, one
//! configuration-change entry per member and the hard state), plus a raft snapshot
//! file with etcd's v2 store, which names the same members and is not needed.
//!
//! The import reads both, builds the member's state exactly as `detcdctl snapshot
//! restore` does from the same backend (members, IDs and cluster ID from etcd's WAL,
//! so they stay what etcd gave them), and writes a detcd data directory beside it.
//! Then, in this order, each step durable before the next:
//! 1. `<data-dir>/.detcd-import/` holds the complete detcd member directory;
//! 2. etcd's `member/` is renamed to `member.etcd` (kept for the operator);
//! 3. `.detcd-import/member` is renamed to `member`; `.detcd-import` is removed.
//!
//! A crash between 2 and 3 is finished on the next start; a crash before 2 leaves
//! etcd's directory as it was and the import runs again.
//!
//! What is refused, with a message: an etcd data directory whose WAL holds more than
//! a restore writes (an etcd member's own running data: its writes past the backend
//! would need etcd's request format applied), a WAL kept elsewhere (`--wal-dir`),
//! and anything damaged.

use std::path::{Path, PathBuf};

use detcd_core::node::ImportTarget;
use detcd_proto::etcdserverpb::Member;
use detcd_proto::raftpb::{ConfChange, ConfChangeType, EntryType};
use detcd_storage::bolt::BoltReader;
use detcd_storage::etcd_wal::{self, EtcdWal};
use prost::Message;

use crate::ctl::restore::{import_backend, write_data_dir};

/// Where the detcd directory is built before it replaces etcd's.
const STAGING: &str = ".detcd-import";
/// What etcd's `member` directory is renamed to once imported.
const ETCD_KEPT: &str = "member.etcd";

/// Whether `dir` is (still) an etcd data directory.
pub fn is_etcd_data_dir(dir: &Path) -> bool {
    dir.join("member").join("snap").join("db").exists()
}

/// Finishes an import a crash interrupted between its two renames. Returns whether
/// there was one.
pub fn finish_interrupted(dir: &Path) -> Result<bool, String> {
    let staged = dir.join(STAGING).join("member");
    if dir.join("member").exists() || !staged.exists() || !dir.join(ETCD_KEPT).exists() {
        return Ok(false);
    }
    std::fs::rename(&staged, dir.join("member"))
        .map_err(|e| format!("finish the import of {}: {e}", dir.display()))?;
    sync_dir(dir)?;
    let _ = std::fs::remove_dir_all(dir.join(STAGING));
    Ok(true)
}

/// Imports the etcd data directory `dir` in place (see the module documentation);
/// `wal_dir_flag` is `--wal-dir` as given (empty when not).
pub fn import(dir: &Path, wal_dir_flag: &str) -> Result<ImportedMember, String> {
    let refuse = |why: String| {
        format!(
            "{} is an etcd data directory (member/snap/db) that detcd cannot import: {why}. \
             Move the data with a snapshot instead: `etcdctl snapshot save snapshot.db` on the \
             etcd member, then `detcdctl snapshot restore snapshot.db --data-dir <new dir> ...`",
            dir.display()
        )
    };
    if !wal_dir_flag.is_empty() {
        return Err(refuse(
            "--wal-dir is set; the import reads etcd's WAL from <data-dir>/member/wal only".into(),
        ));
    }
    let member_dir = dir.join("member");
    let wal = read_etcd_wal(&member_dir.join("wal")).map_err(&refuse)?;
    let imported = bootstrap_members(&wal).map_err(&refuse)?;
    let db = std::fs::read(member_dir.join("snap").join("db"))
        .map_err(|e| refuse(format!("cannot read member/snap/db: {e}")))?;
    let db = BoltReader::open(db).map_err(|e| refuse(format!("member/snap/db: {e}")))?;
    let target = ImportTarget {
        applied_index: imported.index,
        applied_term: imported.term,
        cluster_id: imported.cluster_id,
        members: imported.members.clone(),
        bump_revision: 0,
        mark_compacted: false,
    };
    let data = import_backend(db, &target).map_err(|e| refuse(format!("member/snap/db: {e}")))?;

    let staging = dir.join(STAGING);
    let _ = std::fs::remove_dir_all(&staging);
    let identity = (imported.member_id, imported.cluster_id);
    let position = (imported.index, imported.term);
    write_data_dir(&staging, None, identity, &imported.members, position, data)
        .map_err(|e| format!("import of {}: write {}: {e}", dir.display(), staging.display()))?;
    sync_dir(&staging)?;
    std::fs::rename(&member_dir, dir.join(ETCD_KEPT))
        .map_err(|e| format!("import of {}: keep etcd's member directory: {e}", dir.display()))?;
    sync_dir(dir)?;
    if !finish_interrupted(dir)? {
        return Err(format!(
            "import of {}: the staged member directory vanished",
            dir.display()
        ));
    }
    Ok(imported)
}

/// The member the import made.
#[derive(Clone, Debug)]
pub struct ImportedMember {
    pub member_id: u64,
    pub cluster_id: u64,
    pub members: Vec<Member>,
    /// The raft position the state is taken at: the WAL's commit index and its term.
    pub index: u64,
    pub term: u64,
}

fn read_etcd_wal(wal_dir: &Path) -> Result<EtcdWal, String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(wal_dir)
        .map_err(|e| format!("cannot read member/wal: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err("member/wal holds no WAL".into());
    }
    let segments = names
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let slices: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
    etcd_wal::read(&slices).map_err(|e| e.to_string())
}

/// The members a restore's WAL bootstraps: every entry must be one of its
/// configuration changes adding a member (or an empty entry), all committed.
fn bootstrap_members(wal: &EtcdWal) -> Result<ImportedMember, String> {
    let mut members: Vec<Member> = Vec::new();
    for e in &wal.entries {
        match e.r#type() {
            EntryType::EntryNormal if e.data.is_empty() => continue,
            EntryType::EntryConfChange => {}
            _ => {
                return Err(format!(
                    "its WAL holds entry {} that is not a restore's bootstrap (it is an etcd \
                     member's own log, whose writes past the backend detcd does not replay)",
                    e.index
                ))
            }
        }
        let cc =
            ConfChange::decode(e.data.as_slice()).map_err(|err| format!("WAL entry {}: {err}", e.index))?;
        if cc.r#type() != ConfChangeType::ConfChangeAddNode {
            return Err(format!(
                "its WAL holds a membership change other than adding a member (entry {})",
                e.index
            ));
        }
        let mut member =
            member_from_json(&cc.context).map_err(|err| format!("WAL entry {}: {err}", e.index))?;
        if member.id != cc.node_id {
            return Err(format!(
                "WAL entry {}: member ID differs from the change's",
                e.index
            ));
        }
        member.peer_ur_ls.sort();
        members.push(member);
    }
    let last = wal.entries.last().map_or(0, |e| e.index);
    let index = wal.hard_state.commit.max(wal.snapshot.index);
    if members.is_empty() || index < last {
        return Err("its WAL does not commit a bootstrapped membership".into());
    }
    let me = wal.metadata.node_id;
    if !members.iter().any(|m| m.id == me) {
        return Err(format!(
            "member {me:x} of its WAL metadata is not among its members"
        ));
    }
    members.sort_by_key(|m| m.id);
    Ok(ImportedMember {
        member_id: me,
        cluster_id: wal.metadata.cluster_id,
        members,
        index,
        term: wal.hard_state.term.max(1),
    })
}

/// etcd's member JSON in a configuration change's context:
/// `{"id":N,"peerURLs":[..],"isLearner":b,"name":"..","clientURLs":[..]}`.
fn member_from_json(context: &[u8]) -> Result<Member, String> {
    let v: serde_json::Value = serde_json::from_slice(context).map_err(|e| format!("member JSON: {e}"))?;
    let strings = |field: &str| -> Vec<String> {
        v[field]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    Ok(Member {
        id: v["id"].as_u64().ok_or("member JSON without a numeric id")?,
        name: v["name"].as_str().unwrap_or_default().to_string(),
        peer_ur_ls: strings("peerURLs"),
        client_ur_ls: strings("clientURLs"),
        is_learner: v["isLearner"].as_bool().unwrap_or(false),
    })
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("sync {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_etcds_member_json() {
        let m = member_from_json(
            br#"{"id":7234835788977491870,"peerURLs":["http://127.0.0.1:24001"],"name":"n1"}"#,
        )
        .expect("member");
        assert_eq!(m.id, 7_234_835_788_977_491_870);
        assert_eq!(m.name, "n1");
        assert_eq!(m.peer_ur_ls, vec!["http://127.0.0.1:24001".to_string()]);
        assert!(!m.is_learner && m.client_ur_ls.is_empty());
        assert!(member_from_json(br#"{"name":"x"}"#).is_err());
        assert!(member_from_json(b"not json").is_err());
    }

    #[test]
    fn an_import_interrupted_between_its_renames_is_finished() {
        let dir = std::env::temp_dir().join(format!("detcd-import-finish-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let staged = dir.join(STAGING).join("member").join("wal");
        std::fs::create_dir_all(&staged).expect("staged");
        std::fs::write(staged.join("x.wal"), b"detcd").expect("wal");
        // Before etcd's directory was set aside: nothing to finish (the import reruns).
        std::fs::create_dir_all(dir.join("member").join("snap")).expect("etcd member");
        assert!(!finish_interrupted(&dir).expect("check"));
        // After it: the staged member directory takes its place.
        std::fs::rename(dir.join("member"), dir.join(ETCD_KEPT)).expect("set aside");
        assert!(finish_interrupted(&dir).expect("finish"));
        assert_eq!(
            std::fs::read(dir.join("member").join("wal").join("x.wal")).expect("moved"),
            b"detcd"
        );
        assert!(!dir.join(STAGING).exists());
        assert!(!finish_interrupted(&dir).expect("nothing left"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
