//! `snapshot restore <file>`: a detcd data directory from a snapshot file (detcd's
//! or etcd's own `snapshot.db`), with etcdutl's flags. As etcd's restore does, the
//! membership comes from the flags (the snapshot's is dropped): every member of
//! the new cluster restores the same file with the same `--initial-cluster` and
//! `--initial-cluster-token`, then starts with those flags. The directory holds
//! one raft snapshot (index = number of members, term 1, as etcd's restore) and a
//! WAL that names it; detcd recovers from it like from any restart. The
//! snapshot's v2 store holds one `raftAttributes` record per new member, as the
//! v2 store etcd's restore writes, so v2 indexes go on from there as on etcd.
//! etcd's WAL also holds the members' configuration changes at indexes 1..N; they
//! are at or below the snapshot, never replayed, and detcd does not write them.

use std::path::{Path, PathBuf};

use detcd_core::node::{ImportTarget, Importer};
use detcd_io::storage::{Storage, StorageOptions};
use detcd_proto::etcdserverpb::Member;
use detcd_proto::mvccpb::KeyValue;
use detcd_proto::raftpb::{ConfState, HardState, Snapshot, SnapshotMetadata};
use detcd_storage::bolt::{BoltError, BoltReader};
use detcd_storage::etcd_db;
use prost::Message;

use super::args::{bool_flag, value_flag, FlagSpec, Parsed};
use super::error::{CtlError, EXIT_ERROR};
use super::snapshot::open_checked;
use crate::config::{cluster_id, member_id, parse_initial_cluster};

/// etcdutl's `snapshot restore` flags.
pub const RESTORE_FLAGS: &[FlagSpec] = &[
    value_flag("data-dir").about("Path to the data directory"),
    value_flag("wal-dir").about("Path to the WAL directory (use --data-dir if none given)"),
    value_flag("name")
        .default_str("default")
        .about("Human-readable name for this member"),
    value_flag("initial-cluster")
        .default_str("default=http://localhost:2380")
        .about("Initial cluster configuration for restore bootstrap"),
    value_flag("initial-cluster-token")
        .default_str("etcd-cluster")
        .about("Initial cluster token for the etcd cluster during restore bootstrap"),
    value_flag("initial-advertise-peer-urls")
        .default_str("http://localhost:2380")
        .about("List of this member's peer URLs to advertise to the rest of the cluster"),
    bool_flag("skip-hash-check")
        .about("Ignore snapshot integrity hash value (required if copied from data directory)"),
    value_flag("bump-revision")
        .default_plain("0")
        .about("How much to increase the latest revision after restore"),
    bool_flag("mark-compacted")
        .about("Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)"),
];

fn error(message: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_ERROR, message)
}

/// What the flags say, with etcdutl's defaults.
#[derive(Debug)]
struct RestoreOptions {
    data_dir: PathBuf,
    /// `--wal-dir`: the WAL outside the data directory (the member then runs with
    /// the same `--wal-dir`).
    wal_dir: Option<PathBuf>,
    name: String,
    initial_cluster: String,
    token: String,
    advertise: String,
    skip_hash_check: bool,
    bump_revision: i64,
    mark_compacted: bool,
}

fn options(p: &Parsed) -> Result<RestoreOptions, CtlError> {
    let name = p.value("name").unwrap_or("default").to_string();
    let data_dir = match p.value("data-dir") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(format!("{name}.etcd")),
    };
    let wal_dir = p.value("wal-dir").filter(|w| !w.is_empty()).map(PathBuf::from);
    let bump_revision = match p.value("bump-revision") {
        None | Some("") => 0,
        // etcdutl's flag is a uint64; revisions are int64.
        Some(_) => {
            let n = p.uint("bump-revision")?.unwrap_or(0);
            i64::try_from(n).map_err(|_| CtlError::bad_args(format!("--bump-revision {n} is too large")))?
        }
    };
    let mark_compacted = p.bool("mark-compacted")?;
    if mark_compacted && bump_revision == 0 {
        return Err(error("--mark-compacted requires --bump-revision"));
    }
    Ok(RestoreOptions {
        data_dir,
        wal_dir,
        initial_cluster: p
            .value("initial-cluster")
            .map_or_else(|| format!("{name}=http://localhost:2380"), str::to_string),
        name,
        token: p
            .value("initial-cluster-token")
            .unwrap_or("etcd-cluster")
            .to_string(),
        advertise: p
            .value("initial-advertise-peer-urls")
            .unwrap_or("http://localhost:2380")
            .to_string(),
        skip_hash_check: p.bool("skip-hash-check")?,
        bump_revision,
        mark_compacted,
    })
}

/// The new cluster's members and ID, and this member's ID.
fn membership(o: &RestoreOptions) -> Result<(Vec<Member>, u64, u64), CtlError> {
    let cluster = parse_initial_cluster(&o.initial_cluster).map_err(|e| error(e.to_string()))?;
    let mine = cluster.get(&o.name).ok_or_else(|| {
        error(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            o.name
        ))
    })?;
    let advertised = crate::urls::parse_urls(&o.advertise).map_err(error)?;
    let strings = |u: &[crate::urls::Url]| {
        let mut v: Vec<String> = u.iter().map(ToString::to_string).collect();
        v.sort();
        v
    };
    if strings(&advertised) != strings(mine) {
        return Err(error(format!(
            "--initial-cluster must include {}={} given --initial-advertise-peer-urls={}",
            o.name, o.advertise, o.advertise
        )));
    }
    let members: Vec<Member> = cluster
        .iter()
        .map(|(name, urls)| Member {
            id: member_id(urls, &o.token),
            name: name.clone(),
            peer_ur_ls: strings(urls),
            client_ur_ls: Vec::new(),
            is_learner: false,
        })
        .collect();
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    Ok((members, cluster_id(&ids), member_id(mine, &o.token)))
}

pub fn restore(p: &Parsed) -> Result<(), CtlError> {
    let [path] = p.args.as_slice() else {
        return Err(CtlError::bad_args(
            "snapshot restore requires exactly one argument",
        ));
    };
    let o = options(p)?;
    if o.data_dir.exists() {
        return Err(error(format!(
            "data-dir {:?} exists",
            o.data_dir.display().to_string()
        )));
    }
    if let Some(wal) = o.wal_dir.as_ref().filter(|w| w.exists()) {
        return Err(error(format!("wal-dir {:?} exists", wal.display().to_string())));
    }
    let (members, cluster, me) = membership(&o)?;
    let db = open_checked(path, o.skip_hash_check)?;
    let index = members.len() as u64;
    let target = ImportTarget {
        applied_index: index,
        applied_term: 1,
        cluster_id: cluster,
        members: members.clone(),
        bump_revision: o.bump_revision,
        mark_compacted: o.mark_compacted,
    };
    let data = import_backend(db, &target)
        .map_err(|e| error(format!("snapshot file integrity check failed: {e}")))?;
    let identity = (me, cluster);
    write_data_dir(
        &o.data_dir,
        o.wal_dir.as_deref(),
        identity,
        &members,
        (index, 1),
        data,
    )
    .map_err(|e| {
        let _ = std::fs::remove_dir_all(&o.data_dir);
        if let Some(wal) = &o.wal_dir {
            let _ = std::fs::remove_dir_all(wal);
        }
        error(e)
    })
}

/// A member's state (as a raft snapshot's data) from etcd's backend `db`, at `target`.
/// The file is dropped once its records are read, before the state is encoded, so
/// the two are not in memory at once.
pub(crate) fn import_backend(db: BoltReader, target: &ImportTarget) -> Result<Vec<u8>, String> {
    let head = etcd_db::read_head(&db).map_err(|e| e.to_string())?;
    let mut importer = Importer::default();
    let mut failed = None;
    etcd_db::for_each_record(&db, &mut |rev, tombstone, value| {
        let kv = KeyValue::decode(value).map_err(|e| BoltError::Corrupt(format!("key bucket: {e}")))?;
        importer.push(rev, tombstone, kv).map_err(|e| {
            failed = Some(e.clone());
            BoltError::Corrupt(e)
        })
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = failed {
        return Err(e);
    }
    drop(db);
    importer.finish(&head, target)
}

/// Writes a new detcd data directory at `dir`: one raft snapshot of `data` at `index`
/// and `term` and a WAL that names it, under the member's identity.
pub(crate) fn write_data_dir(
    dir: &Path,
    wal_dir: Option<&Path>,
    (member_id, cluster_id): (u64, u64),
    members: &[Member],
    (index, term): (u64, u64),
    data: Vec<u8>,
) -> Result<(), String> {
    let options = StorageOptions {
        metadata: detcd_io::driver::encode_metadata(member_id, cluster_id),
        wal_dir: wal_dir.map(Path::to_path_buf),
        ..StorageOptions::default()
    };
    let (mut storage, _) = Storage::open(dir, &options).map_err(|e| e.to_string())?;
    let snapshot = Snapshot {
        data,
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: members.iter().map(|m| m.id).collect(),
                ..ConfState::default()
            }),
            index,
            term,
        }),
    };
    storage.save_snapshot(&snapshot).map_err(|e| e.to_string())?;
    let hard_state = HardState {
        term,
        vote: 0,
        commit: index,
    };
    storage
        .save(Some(&hard_state), &[], true)
        .map_err(|e| e.to_string())?;
    Ok(())
}
