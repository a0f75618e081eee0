//! From a validated [`Config`] to a running member: the data directory, the member's
//! identity, the node's configuration and the driver's options.
//!
//! Identity, as etcd decides it:
//! - A data directory with data restarts from it, with the IDs (and founding members)
//!   its WAL metadata records, as etcd's restart: `--initial-cluster`,
//!   `--initial-cluster-token` and `--initial-cluster-state` are then ignored.
//! - An empty directory with `new` founds the cluster of `--initial-cluster`: IDs from
//!   the peer URLs and the cluster token, as etcd computes them.
//! - An empty directory with `existing` joins: see [`crate::join`].

use std::path::{Path, PathBuf};

use detcd_core::node::NodeConfig;
use detcd_io::driver::{self, MemberHandle, MemberOptions, StartError, StartMode};
use detcd_proto::etcdserverpb::Member as MemberInfo;

use crate::config::{ClusterState, Config};

/// WAL segment size (etcd's `SegmentSizeBytes`).
pub const WAL_SEGMENT_BYTES: usize = 64_000_000;
/// Environment variable that overrides [`WAL_SEGMENT_BYTES`] (a multiple of 8, at least
/// 4096). Not an etcd setting: the end-to-end tests use small segments, because every
/// member start writes and syncs two zero-filled segments.
pub const WAL_SEGMENT_BYTES_ENV: &str = "DETCD_WAL_SEGMENT_BYTES";

/// The WAL segment size: [`WAL_SEGMENT_BYTES_ENV`] when set and valid, else etcd's.
pub fn wal_segment_bytes() -> usize {
    std::env::var(WAL_SEGMENT_BYTES_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|b| b % 8 == 0 && *b >= 4096)
        .unwrap_or(WAL_SEGMENT_BYTES)
}

/// A member's place in its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
}

/// Why the member could not start.
#[derive(Debug)]
pub enum StartupError {
    /// The data directory cannot be created, written or read.
    DataDir(String),
    /// A joining member could not learn its identity from the cluster.
    Join(String),
    /// The peer TLS files cannot be used.
    Tls(String),
    /// The driver refused to start (storage, bind, another cluster's data, ...).
    Start(StartError),
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartupError::DataDir(why) | StartupError::Join(why) | StartupError::Tls(why) => f.write_str(why),
            StartupError::Start(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartupError {}

/// The members of `--initial-cluster`, with the IDs etcd derives for them.
pub fn initial_members(config: &Config) -> Vec<MemberInfo> {
    let ids = config.initial_member_ids();
    config
        .initial_cluster
        .iter()
        .map(|(name, urls)| MemberInfo {
            id: ids[name],
            name: name.clone(),
            peer_ur_ls: urls.iter().map(ToString::to_string).collect(),
            client_ur_ls: Vec::new(),
            is_learner: false,
        })
        .collect()
}

/// The node's configuration from the flags.
pub fn node_config(config: &Config, identity: Identity, initial_members: Vec<MemberInfo>) -> NodeConfig {
    let mut node = NodeConfig::new(
        identity.member_id,
        identity.cluster_id,
        &config.name,
        initial_members,
    );
    node.client_urls = config
        .advertise_client_urls
        .iter()
        .map(ToString::to_string)
        .collect();
    node.tick_ms = config.heartbeat_interval_ms;
    node.election_ticks = (config.election_timeout_ms / config.heartbeat_interval_ms).max(1);
    node.request_timeout_ms = 5_000 + 2 * config.election_timeout_ms;
    node.snapshot_count = config.snapshot_count;
    node.txn_ops_max = config.max_txn_ops as usize;
    node.request_bytes_max = config.max_request_bytes;
    node.quota_backend_bytes = quota_bytes(config);
    node.learners_max = config.max_learners as usize;
    node.strict_reconfig_check = config.strict_reconfig_check;
    node.auth_token_ttl_ms = config.auth_token_ttl_s.saturating_mul(1_000);
    node.auto_compaction = config.auto_compaction;
    node.pre_vote = config.ops.pre_vote;
    node.initial_election_tick_advance = config.ops.initial_election_tick_advance;
    node.watch_progress_notify_interval_ms =
        u64::try_from(config.ops.watch_progress_notify_interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
    // Election jitter and lease IDs must differ between runs of the same member (a
    // restarted member must not replay the lease IDs it handed out before), so the
    // seed comes from the OS; only the node itself must be deterministic.
    node.seed = os_seed();
    node
}

/// The backend quota in force: `--quota-backend-bytes`, or etcd's default when 0 or less.
pub fn quota_bytes(config: &Config) -> u64 {
    u64::try_from(config.quota_backend_bytes)
        .ok()
        .filter(|q| *q > 0)
        .unwrap_or(detcd_core::node::config::QUOTA_BACKEND_BYTES_DEFAULT)
}

/// 64 random bits from the OS (std's hash keys are drawn from it).
fn os_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish() | 1
}

/// Creates the data directory (mode 0700, as etcd) and checks that it is writable.
fn prepare_data_dir(dir: &Path) -> Result<(), StartupError> {
    let fail = |what: &str, e: std::io::Error| {
        StartupError::DataDir(format!(
            "cannot use data directory {}: {what}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("create", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let probe = dir.join(".detcd-write-test");
    std::fs::write(&probe, b"").map_err(|e| fail("write", e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// A data directory etcd's restore wrote becomes detcd's on first start
/// ([`crate::etcd_import`]); an import a crash interrupted is finished.
fn import_etcd_data_dir(dir: &Path, config: &Config) -> Result<(), StartupError> {
    if crate::etcd_import::finish_interrupted(dir).map_err(StartupError::DataDir)? {
        crate::log(&format!(
            "finished the interrupted import of etcd data in {}",
            dir.display()
        ));
    }
    if !crate::etcd_import::is_etcd_data_dir(dir) {
        return Ok(());
    }
    let m = crate::etcd_import::import(dir, &config.wal_dir).map_err(StartupError::DataDir)?;
    crate::log(&format!(
        "imported etcd data directory {}: member {:x} of cluster {:x} ({} members) at index {}; \
         etcd's files are kept in {}",
        dir.display(),
        m.member_id,
        m.cluster_id,
        m.members.len(),
        m.index,
        dir.join("member.etcd").display()
    ));
    Ok(())
}

/// The WAL's directory: `--wal-dir`, or `<data-dir>/member/wal`.
pub fn wal_dir(config: &Config) -> PathBuf {
    if config.wal_dir.is_empty() {
        Path::new(&config.data_dir).join("member").join("wal")
    } else {
        PathBuf::from(&config.wal_dir)
    }
}

/// Whether `wal_dir` holds a member's WAL.
pub fn has_data(wal_dir: &Path) -> bool {
    std::fs::read_dir(wal_dir)
        .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".wal"))))
}

/// The IDs a data directory was written by (the WAL metadata the driver writes: member
/// ID then cluster ID, 8 bytes little-endian each).
fn recorded_identity(dir: &Path, wal_dir: &Path) -> Result<Identity, StartupError> {
    let options = detcd_io::StorageOptions {
        segment_bytes: wal_segment_bytes(),
        wal_dir: Some(wal_dir.to_path_buf()),
        ..detcd_io::StorageOptions::default()
    };
    let (storage, recovered) = detcd_io::Storage::open(dir, &options)
        .map_err(|e| StartupError::DataDir(format!("cannot read data directory {}: {e}", dir.display())))?;
    drop(storage);
    let m = &recovered.metadata;
    if m.len() < 16 {
        return Err(StartupError::DataDir(format!(
            "data directory {} has no member identity in its WAL",
            dir.display()
        )));
    }
    let word = |i: usize| u64::from_le_bytes(m[i..i + 8].try_into().expect("8 bytes"));
    Ok(Identity {
        member_id: word(0),
        cluster_id: word(8),
    })
}

/// The member's peer TLS (`--peer-*` files), none without them.
pub fn peer_tls(config: &Config) -> Result<detcd_io::transport::conn::SharedPeerTls, StartupError> {
    if config.peer_tls.is_empty() {
        return Ok(None);
    }
    let tls =
        crate::tls::peer::MemberPeerTls::new(&config.peer_tls, config.peer_skip_client_san_verification)
            .map_err(StartupError::Tls)?;
    Ok(Some(std::sync::Arc::new(tls)))
}

/// Starts the member the configuration describes.
pub async fn start(config: &Config) -> Result<(driver::Member, MemberHandle), StartupError> {
    let peer_tls = peer_tls(config)?;
    let data_dir = PathBuf::from(&config.data_dir);
    prepare_data_dir(&data_dir)?;
    import_etcd_data_dir(&data_dir, config)?;
    let founding = Identity {
        member_id: config.member_id(),
        cluster_id: config.cluster_id(),
    };
    let wal_dir = wal_dir(config);
    if !config.wal_dir.is_empty() {
        prepare_data_dir(&wal_dir)?;
    }
    let existing = config.initial_cluster_state == ClusterState::Existing;
    let (identity, members, mode) = if has_data(&wal_dir) {
        // As etcd's restart, the data directory's IDs are the member's: the initial
        // cluster flags (and a discovery) only decide a first start.
        let identity = recorded_identity(&data_dir, &wal_dir)?;
        if identity != founding && !existing && !config.bootstrap.registers() {
            crate::log(&format!(
                "data directory {} belongs to member {:x} of cluster {:x}; ignoring member {:x} \
                 of cluster {:x} derived from --initial-cluster and --initial-cluster-token",
                data_dir.display(),
                identity.member_id,
                identity.cluster_id,
                founding.member_id,
                founding.cluster_id
            ));
        }
        crate::log(&format!(
            "restarting member {:x} of cluster {:x} from {}",
            identity.member_id,
            identity.cluster_id,
            data_dir.display()
        ));
        (identity, initial_members(config), StartMode::Existing)
    } else if existing {
        let joined = crate::join::discover(config, &peer_tls).await?;
        (joined.identity, joined.members, StartMode::Existing)
    } else {
        crate::log(&format!(
            "founding member {:x} of new cluster {:x} ({} members) in {}",
            founding.member_id,
            founding.cluster_id,
            config.initial_cluster.len(),
            data_dir.display()
        ));
        (founding, initial_members(config), StartMode::New)
    };
    let node = node_config(config, identity, members);
    let mut options = MemberOptions::new(data_dir, node, mode);
    options.listen_peer_urls = config.listen_peer_urls.iter().map(ToString::to_string).collect();
    options.segment_bytes = wal_segment_bytes();
    options.max_snapshots = config.max_snapshots as usize;
    options.peer_tls = peer_tls;
    options.force_new_cluster = config.force_new_cluster;
    options.wal_dir = Some(wal_dir);
    options.max_wals = Some(config.max_wals as usize);
    driver::start(options).await.map_err(StartupError::Start)
}
