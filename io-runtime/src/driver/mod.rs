//! The tokio driver of one etcd member: it owns a [`detcd_core::node::Node`] and
//! does the I/O the node asks for.
//!
//! # What it owns and why it exists
//!
//! Every decision is the node's; the driver is thin, in quinn's sense. One task
//! owns the node and runs turns: wait for something to happen (a tick, a peer
//! message, a client call, a finished disk write), read the monotonic clock
//! once, feed everything that is ready, then drain [`Node::poll`] completely and
//! carry out each output in the order it came out:
//!
//! - `Persist` goes to the storage thread (module `persist`) at the end of the
//!   turn: Persists that arrive while a write is in flight queue up there and go
//!   to disk together, one append pass and one sync started as soon as the
//!   previous sync returns, then one `Persisted { n }` for the newest (the node
//!   accepts a cumulative answer). That is the group commit: client proposals of
//!   one turn share a Ready, and Readies of the turns during a sync share the next
//!   sync.
//! - `Send` goes to the transport at once: the node only releases a message after
//!   the Persist it depends on was answered.
//! - `Respond` completes the caller's oneshot; `Watch` goes to the stream's
//!   bounded channel (see [`WatchStream`] for a full channel).
//! - `SaveSnapshot` and `ReleaseWal` are storage jobs, ordered with the Persists.
//! - `Removed` stops the member.
//!
//! # Public API
//!
//! [`start`] opens (or recovers) the data directory, binds the peer listeners and
//! spawns the driver; it returns a [`Member`] (lifecycle) and a [`MemberHandle`]
//! (cloneable; what the gRPC services call).
//!
//! [`Node::poll`]: detcd_core::node::Node::poll

mod metadata;
mod persist;
mod run;
mod tally;

pub use metadata::encode_metadata;
use metadata::{adopt_recorded_identity, encode_founding_metadata};

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use detcd_core::error::{self as etcd_error, EtcdError};
use detcd_core::mvcc::Revision;
use detcd_core::node::{
    Credentials, NodeConfig, NodeError, NodeStart, PortableBound, PortableError, PortableHead, Request,
    Response,
};
use detcd_core::watch::StreamId;
use detcd_proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
use detcd_proto::raftpb::{HardState, Snapshot};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::StorageError;
use crate::metrics::{Metrics, SharedMetrics};
use crate::storage::{Storage, StorageOptions};
use crate::transport::{self, Transport};

/// Client calls and stream registrations that may wait for the driver at once;
/// further callers wait for room (backpressure, not an error).
pub const COMMAND_QUEUE_MAX: usize = 4096;
/// Responses one watch stream's channel holds. When a stream's consumer falls
/// this far behind, the driver drops the stream (see [`WatchStream`]).
pub const WATCH_STREAM_RESPONSES_MAX: usize = 1024;
/// Events one turn takes from its queues before it drains the node, so a flood
/// of input cannot starve the outputs.
pub const TURN_EVENTS_MAX: usize = 1024;

/// How a member starts when its data directory is empty (etcd's
/// `--initial-cluster-state`). A directory with data always recovers from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartMode {
    /// Found a new cluster with `node.initial_members`.
    New,
    /// Join an existing cluster that already added this member.
    Existing,
}

/// Everything [`start`] needs.
#[derive(Clone, Debug)]
pub struct MemberOptions {
    /// `--data-dir`: WAL and snapshots go under `<data_dir>/member/`.
    pub data_dir: PathBuf,
    pub node: NodeConfig,
    pub start: StartMode,
    /// Member ID -> peer URLs (`http://host:port`). Members missing here are
    /// reached through the peer URLs the node's member list holds.
    pub peers: BTreeMap<u64, Vec<String>>,
    /// `--listen-peer-urls`: `http://host:port` to accept peers on (port 0 picks
    /// a free port; see [`Member::peer_addrs`]).
    pub listen_peer_urls: Vec<String>,
    /// Milliseconds between ticks; must equal `node.tick_ms`.
    pub tick_ms: u64,
    /// WAL segment size (etcd: 64,000,000 bytes).
    pub segment_bytes: usize,
    /// Snapshot files kept (`--max-snapshots`).
    pub max_snapshots: usize,
    /// TLS for `https://` peer URLs (none: such URLs are refused).
    pub peer_tls: crate::transport::conn::SharedPeerTls,
    /// `--force-new-cluster`: restart from the data directory as the only member
    /// (see `detcd_core::node::force_new_cluster`); ignored without data.
    pub force_new_cluster: bool,
    /// `--wal-dir` (none: `<data_dir>/member/wal`).
    pub wal_dir: Option<PathBuf>,
    /// `--max-wals`: covered WAL files kept while there are at most this many
    /// (`Some(0)`: all kept; `None`: each deleted once a snapshot covers it).
    pub max_wals: Option<usize>,
}

impl MemberOptions {
    /// Options with the storage defaults, `tick_ms` from `node`, and the peer URLs
    /// of `node.initial_members`.
    pub fn new(data_dir: PathBuf, node: NodeConfig, start: StartMode) -> MemberOptions {
        let peers = node
            .initial_members
            .iter()
            .map(|m| (m.id, m.peer_ur_ls.clone()))
            .collect();
        let defaults = StorageOptions::default();
        MemberOptions {
            data_dir,
            tick_ms: node.tick_ms,
            node,
            start,
            peers,
            listen_peer_urls: Vec::new(),
            segment_bytes: defaults.segment_bytes,
            max_snapshots: defaults.max_snapshots,
            peer_tls: None,
            force_new_cluster: false,
            wal_dir: None,
            max_wals: None,
        }
    }
}

/// Why [`start`] failed.
#[derive(Debug)]
pub enum StartError {
    /// The options contradict each other.
    Config(String),
    /// The data directory could not be opened or recovered.
    Storage(StorageError),
    /// The node refused its config or recovered state.
    Node(NodeError),
    /// A peer URL is not `http://host:port`.
    BadUrl { url: String },
    /// A peer listener could not bind (port in use, address not local, ...).
    Bind { url: String, source: io::Error },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(why) => write!(f, "invalid member options: {why}"),
            StartError::Storage(e) => write!(f, "cannot open the data directory: {e}"),
            StartError::Node(e) => write!(f, "cannot start the member: {e}"),
            StartError::BadUrl { url } => write!(
                f,
                "peer URL {url:?} is not http(s)://host:port or unix(s)://socket (with TLS configured for https and unixs)"
            ),
            StartError::Bind { url, source } => write!(f, "cannot listen for peers on {url}: {source}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<transport::TransportError> for StartError {
    fn from(e: transport::TransportError) -> StartError {
        match e {
            transport::TransportError::BadUrl { url } => StartError::BadUrl { url },
            transport::TransportError::Bind { url, source } => StartError::Bind { url, source },
        }
    }
}

/// Why a member stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// [`Member::shutdown`] was called.
    Shutdown,
    /// The member applied its own removal from the cluster.
    Removed,
    /// Storage failed (a failed sync is never retried: restart and recover).
    Failed(String),
}

/// HashKVs (the corruption checks of other members) and member lists (v2 proxies)
/// asked for on the peer port become calls to this member, with the credentials
/// etcd's own checks have.
fn hashkv_calls(commands: mpsc::Sender<Command>) -> mpsc::Sender<transport::peer_http::PeerCall> {
    let (calls, mut asked) = mpsc::channel::<transport::peer_http::PeerCall>(HASHKV_CALLS_QUEUED_MAX);
    tokio::spawn(async move {
        while let Some(call) = asked.recv().await {
            let command = Command::Call {
                request: call.request,
                credentials: transport::peer_http::as_member(),
                reply: call.reply,
            };
            if commands.send(command).await.is_err() {
                return;
            }
        }
    });
    calls
}

/// Peer-port calls waiting for the driver (a few peers, one check at a time, and
/// the proxies' periodic member lists).
const HASHKV_CALLS_QUEUED_MAX: usize = 16;

/// What the handle asks of the driver task.
pub(crate) enum Command {
    Call {
        request: Request,
        credentials: Credentials,
        reply: oneshot::Sender<Result<Response, EtcdError>>,
    },
    OpenStream {
        stream: StreamId,
        sink: StreamSink,
    },
    SnapshotBytes {
        reply: oneshot::Sender<Vec<u8>>,
    },
    PortableHead {
        reply: oneshot::Sender<PortableHead>,
    },
    PortableRecords {
        bound: PortableBound,
        from: Revision,
        records_max: usize,
        reply: oneshot::Sender<PortableSlice>,
    },
}

/// A slice of an export's records and where the next starts, or why not.
pub type PortableSlice = Result<detcd_core::node::PortableSlice, PortableError>;

/// The driver's end of one watch stream.
pub(crate) struct StreamSink {
    pub(crate) responses: mpsc::Sender<WatchResponse>,
    pub(crate) overflowed: Arc<AtomicBool>,
    /// Events handed to the stream and not yet taken by its reader.
    pub(crate) pending_events: Arc<AtomicU64>,
}

/// Things that must reach the driver without waiting (from `Drop`, the storage
/// thread and the transport), so their channel is unbounded; each source bounds
/// itself (one report per storage pass, one per dropped message batch).
#[derive(Debug)]
pub(crate) enum Internal {
    StreamClosed(StreamId),
    Stored(persist::Done),
}

struct Shared {
    member_id: u64,
    cluster_id: u64,
    commands: mpsc::Sender<Command>,
    internal: mpsc::UnboundedSender<Internal>,
    metrics: SharedMetrics,
    /// What the peer transport counts, per peer.
    peer_metrics: transport::counters::PeerMetrics,
    next_stream: AtomicU64,
    v2_index: watch::Receiver<u64>,
}

/// Opens `options.data_dir` (recovering what is there), binds the peer
/// listeners and spawns the driver task. Must be called inside a tokio runtime.
///
/// A directory with data restarts from it whatever `options.start` says, as etcd's
/// restart: the member and cluster IDs (and the founding members, where recorded)
/// come from its WAL metadata, whatever `options.node` derived from the flags.
pub async fn start(mut options: MemberOptions) -> Result<(Member, MemberHandle), StartError> {
    if options.tick_ms != options.node.tick_ms {
        return Err(StartError::Config(format!(
            "tick_ms {} differs from node.tick_ms {}",
            options.tick_ms, options.node.tick_ms
        )));
    }
    options.node.validate().map_err(StartError::Node)?;
    let storage_options = StorageOptions {
        segment_bytes: options.segment_bytes,
        max_snapshots: options.max_snapshots,
        metadata: encode_founding_metadata(
            options.node.member_id,
            options.node.cluster_id,
            &options.node.initial_members,
        ),
        wal_dir: options.wal_dir.clone(),
        max_wals: options.max_wals,
    };
    let data_dir = options.data_dir.clone();
    let (mut storage, mut recovered) =
        tokio::task::spawn_blocking(move || Storage::open(&data_dir, &storage_options))
            .await
            .map_err(|e| StartError::Config(format!("storage open panicked: {e}")))?
            .map_err(StartError::Storage)?;
    adopt_recorded_identity(&mut options, &recovered.metadata);
    let member_id = options.node.member_id;
    let cluster_id = options.node.cluster_id;
    for warning in &recovered.warnings {
        crate::log!(crate::log::Level::Warn, "storage", "{warning}");
    }
    let has_data =
        recovered.snapshot.is_some() || recovered.hard_state.is_some() || !recovered.entries.is_empty();
    if has_data && options.force_new_cluster {
        let snapshot = recovered.snapshot.clone().unwrap_or_default();
        let mut hard_state = recovered.hard_state.unwrap_or_default();
        let appended = detcd_core::node::force_new_cluster::force_new_cluster(
            member_id,
            &snapshot,
            &mut hard_state,
            &mut recovered.entries,
        )
        .map_err(StartError::Config)?;
        storage
            .save(Some(&hard_state), &appended, true)
            .map_err(StartError::Storage)?;
        recovered.hard_state = Some(hard_state);
        crate::log!(
            crate::log::Level::Warn,
            "driver",
            "--force-new-cluster: dropped uncommitted entries, removing {} other member(s); \
             this member restarts as a one-member cluster",
            appended.len()
        );
    }
    let node_start = if has_data {
        NodeStart::Recover {
            snapshot: recovered.snapshot.unwrap_or_else(Snapshot::default),
            hard_state: recovered.hard_state.unwrap_or_else(HardState::default),
            entries: recovered.entries,
        }
    } else {
        match options.start {
            StartMode::New => NodeStart::Found,
            StartMode::Existing => NodeStart::Join,
        }
    };
    let listeners = transport::bind(&options.listen_peer_urls, &options.peer_tls).await?;
    for urls in options.peers.values() {
        for url in urls {
            transport::parse_url(url)?;
        }
    }
    let node = detcd_core::node::Node::new(options.node.clone(), node_start).map_err(StartError::Node)?;

    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE_MAX);
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let (peer_tx, peer_rx) = mpsc::channel(transport::INBOUND_QUEUE_MSGS_MAX);
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let (stopped_tx, stopped_rx) = watch::channel(None);
    let metrics = SharedMetrics::default();
    let peer_metrics = transport::counters::PeerMetrics::default();
    let peer_addrs = listeners
        .iter()
        .filter_map(|l| match l.local {
            transport::socket::Local::Tcp(addr) => Some(addr),
            transport::socket::Local::Unix(_) => None,
        })
        .collect();
    let transport = Transport::start(
        transport::Identity {
            member_id,
            cluster_id,
        },
        listeners,
        options.peers.clone(),
        options.peer_tls.clone(),
        transport::Outlets {
            inbound: peer_tx,
            reports: reports_tx,
            hashkv_calls: hashkv_calls(commands_tx.clone()),
            counters: peer_metrics.clone(),
        },
    );
    let persister = persist::Persister::start(storage, internal_tx.clone());
    // The first status output (of the driver's first drain) sets it.
    let (v2_index_tx, v2_index) = watch::channel(0);
    let driver = run::Driver::new(
        node,
        persister,
        transport,
        metrics.clone(),
        v2_index_tx,
        options.tick_ms,
    );
    let channels = run::Channels {
        commands: commands_rx,
        internal: internal_rx,
        reports: reports_rx,
        peers: peer_rx,
        shutdown: shutdown_rx,
    };
    let task = tokio::spawn(driver.run(channels, stopped_tx));
    crate::log!(
        crate::log::Level::Info,
        "driver",
        "member {member_id:x} of cluster {cluster_id:x} started (recovered: {has_data})"
    );
    let handle = MemberHandle {
        shared: Arc::new(Shared {
            member_id,
            cluster_id,
            commands: commands_tx,
            internal: internal_tx,
            metrics,
            peer_metrics,
            next_stream: AtomicU64::new(1),
            v2_index,
        }),
    };
    let member = Member {
        shutdown: Some(shutdown_tx),
        task: Some(task),
        stopped: stopped_rx,
        peer_addrs,
    };
    Ok((member, handle))
}

/// The running member's lifecycle: stop it, or learn that it stopped.
pub struct Member {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    stopped: watch::Receiver<Option<StopReason>>,
    peer_addrs: Vec<std::net::SocketAddr>,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("peer_addrs", &self.peer_addrs)
            .field("stopped", &*self.stopped.borrow())
            .finish_non_exhaustive()
    }
}

impl Member {
    /// Stops the member and waits until it is down: pending calls answered
    /// `STOPPED`, watch streams ended, the last storage write finished and the WAL
    /// lock released, the peer listeners closed (so the same directory and ports
    /// can be opened again at once).
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Resolves when the member stopped on its own (removed from the cluster, or
    /// storage failed) or was shut down, with the reason.
    pub async fn stopped(&self) -> StopReason {
        let mut stopped = self.stopped.clone();
        let reason = match stopped.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().expect("waited for Some"),
            Err(_) => StopReason::Shutdown,
        };
        reason
    }

    /// The addresses the TCP peer listeners are bound to, in `listen_peer_urls` order
    /// (unix sockets are where their URLs say).
    pub fn peer_addrs(&self) -> &[std::net::SocketAddr] {
        &self.peer_addrs
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// What the gRPC services call: cloneable, cheap, usable from any task.
#[derive(Clone)]
pub struct MemberHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for MemberHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberHandle")
            .field("member_id", &self.shared.member_id)
            .field("cluster_id", &self.shared.cluster_id)
            .finish_non_exhaustive()
    }
}

impl MemberHandle {
    /// Serves one client request; every error is etcd's (code and message),
    /// `STOPPED` once the member is down. The node answers every request by its
    /// `request_timeout_ms` at the latest.
    pub async fn call(&self, request: Request) -> Result<Response, EtcdError> {
        self.call_as(request, Credentials::None).await
    }

    /// [`MemberHandle::call`] for the user `credentials` identify (checked by the
    /// node while auth is enabled).
    pub async fn call_as(&self, request: Request, credentials: Credentials) -> Result<Response, EtcdError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Call {
                request,
                credentials,
                reply,
            })
            .await
            .map_err(|_| etcd_error::STOPPED)?;
        answer.await.unwrap_or(Err(etcd_error::STOPPED))
    }

    /// Opens one etcd Watch gRPC stream. The stream ID is allocated here.
    pub async fn open_watch_stream(&self) -> WatchStream {
        let id = self.shared.next_stream.fetch_add(1, Ordering::Relaxed);
        let (responses_tx, responses) = mpsc::channel(WATCH_STREAM_RESPONSES_MAX);
        let overflowed = Arc::new(AtomicBool::new(false));
        let pending_events = Arc::new(AtomicU64::new(0));
        let sink = StreamSink {
            responses: responses_tx,
            overflowed: Arc::clone(&overflowed),
            pending_events: Arc::clone(&pending_events),
        };
        // A stopped member drops the sink, and recv() then ends at once.
        let _ = self
            .shared
            .commands
            .send(Command::OpenStream { stream: id, sink })
            .await;
        WatchStream {
            id,
            handle: self.clone(),
            credentials: Credentials::None,
            responses,
            overflowed,
            pending_events,
        }
    }

    /// The member's v2 store index, told each time it moves (a v2 wait looks at the
    /// history again then, instead of polling).
    pub fn v2_index(&self) -> watch::Receiver<u64> {
        self.shared.v2_index.clone()
    }

    /// A copy of the member's counters.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.get()
    }

    /// A copy of the peer transport's counters, by peer member ID.
    pub fn peer_metrics(&self) -> BTreeMap<u64, transport::counters::PeerCounters> {
        self.shared.peer_metrics.snapshot()
    }

    pub fn member_id(&self) -> u64 {
        self.shared.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.shared.cluster_id
    }

    /// The member's application state as of its applied index, in the node's
    /// versioned, checksummed snapshot encoding, for the Maintenance Snapshot
    /// stream.
    pub async fn snapshot_bytes(&self) -> Result<Vec<u8>, EtcdError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .commands
            .send(Command::SnapshotBytes { reply })
            .await
            .map_err(|_| etcd_error::STOPPED)?;
        answer.await.map_err(|_| etcd_error::STOPPED)
    }
}

impl MemberHandle {
    /// The head of an export of the member's state in etcd's terms, as of its
    /// applied index (see `detcd_core::node::portable`).
    pub async fn portable_head(&self) -> Result<PortableHead, EtcdError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .commands
            .send(Command::PortableHead { reply })
            .await
            .map_err(|_| etcd_error::STOPPED)?;
        answer.await.map_err(|_| etcd_error::STOPPED)
    }

    /// The next slice of the export bounded by `bound`, from revision `from`.
    pub async fn portable_records(
        &self,
        bound: PortableBound,
        from: Revision,
        records_max: usize,
    ) -> Result<PortableSlice, EtcdError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .commands
            .send(Command::PortableRecords {
                bound,
                from,
                records_max,
                reply,
            })
            .await
            .map_err(|_| etcd_error::STOPPED)?;
        answer.await.map_err(|_| etcd_error::STOPPED)
    }
}

/// A request on a watch stream (etcd's `WatchRequest` oneof).
#[derive(Clone, Debug, PartialEq)]
pub enum WatchStreamRequest {
    Create(WatchCreateRequest),
    Cancel(i64),
    Progress,
}

/// One etcd Watch gRPC stream: requests go in with [`WatchStream::send`], the
/// created/canceled answers, events and progress notifications come out of
/// [`WatchStream::recv`] in stream order. Dropping it closes the stream in the
/// node (its watchers go).
///
/// A slow consumer: the node's watch hub does not let the driver pause one
/// stream (it drains every stream into its outputs), so the driver cannot hold
/// responses back. When this stream's channel ([`WATCH_STREAM_RESPONSES_MAX`])
/// is full, the driver drops the stream rather than block the member: `recv`
/// returns the responses already queued, then `None`, and
/// [`WatchStream::overflowed`] is true. The server should end the gRPC stream
/// with an error then; the client re-creates its watchers from the last
/// revision it saw, as etcd clients do after a broken stream.
pub struct WatchStream {
    id: StreamId,
    handle: MemberHandle,
    credentials: Credentials,
    responses: mpsc::Receiver<WatchResponse>,
    overflowed: Arc<AtomicBool>,
    /// Events the driver handed to this stream that `recv` has not returned yet
    /// (etcd's `pending_events_total`, summed over the streams by the driver).
    pending_events: Arc<AtomicU64>,
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream")
            .field("id", &self.id)
            .field("overflowed", &self.overflowed())
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends one request; an error is etcd's (a refused create, `STOPPED`). The
    /// answer itself (created, canceled, progress) arrives through `recv`.
    pub async fn send(&self, request: WatchStreamRequest) -> Result<(), EtcdError> {
        let stream = self.id;
        let request = match request {
            WatchStreamRequest::Create(request) => Request::WatchCreate { stream, request },
            WatchStreamRequest::Cancel(watch_id) => Request::WatchCancel { stream, watch_id },
            WatchStreamRequest::Progress => Request::WatchProgress { stream },
        };
        self.handle
            .call_as(request, self.credentials.clone())
            .await
            .map(|_| ())
    }

    /// Who the stream's requests come from (the gRPC stream's metadata).
    pub fn set_credentials(&mut self, credentials: Credentials) {
        self.credentials = credentials;
    }

    /// The next response; `None` once the member stopped or the stream was dropped
    /// for overflow.
    pub async fn recv(&mut self) -> Option<WatchResponse> {
        let response = self.responses.recv().await?;
        self.pending_events
            .fetch_sub(response.events.len() as u64, Ordering::Relaxed);
        Some(response)
    }

    /// True when the driver dropped this stream because its consumer fell behind.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        let _ = self.handle.shared.internal.send(Internal::StreamClosed(self.id));
    }
}
