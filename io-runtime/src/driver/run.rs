//! The driver task: one turn at a time, read the clock, feed, drain, act.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use detcd_core::error::{self as etcd_error, EtcdError};
use detcd_core::node::{
    ClientRequestId, ExportProgress, Input, MemberStatus, Node, Output, PeerMessage, PortableHead, Response,
};
use detcd_core::raft::Role;
use detcd_core::watch::StreamId;
use detcd_proto::raftpb::MessageType;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;

use super::persist::{Done, Job, Persister};
use super::tally::Tally;
use super::{Command, Internal, PortableSlice, StopReason, StreamSink, TURN_EVENTS_MAX};
use crate::log::Level;
use crate::metrics::{Metrics, SharedMetrics};
use crate::transport::{Report, Sent, Transport};

/// Inline writes one turn may make before handing the rest to the storage thread.
const INLINE_ROUNDS_MAX: usize = 4;

/// One thing that happened, before it becomes node input.
enum Event {
    Tick,
    Command(Command),
    Internal(Internal),
    Transport(Report),
    Peer(PeerMessage),
    /// Work the driver put off to the next turn (the next slice of an export).
    Continue,
}

/// Where the driver's events come from.
pub(crate) struct Channels {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) internal: mpsc::UnboundedReceiver<Internal>,
    pub(crate) reports: mpsc::UnboundedReceiver<Report>,
    pub(crate) peers: mpsc::Receiver<PeerMessage>,
    pub(crate) shutdown: oneshot::Receiver<()>,
}

/// A client waiting for its request's answer.
struct Waiter {
    reply: oneshot::Sender<Result<Response, EtcdError>>,
    write: bool,
    /// What the answer counts for in the member's series.
    tally: Tally,
}

/// etcd's `warnApplyDuration`: a turn that applied entries and took longer counts
/// as a slow apply.
const SLOW_APPLY: Duration = Duration::from_millis(100);

/// A caller waiting for the node's answer to a portable export question.
enum PortableAsk {
    Head(oneshot::Sender<PortableHead>),
    Records(oneshot::Sender<PortableSlice>),
}

pub(crate) struct Driver {
    node: Node,
    started: Instant,
    tick_ms: u64,
    persister: Option<Persister>,
    /// Disk work not yet handed to the storage thread, in node order.
    jobs: VecDeque<Job>,
    transport: Option<Transport>,
    waiters: BTreeMap<ClientRequestId, Waiter>,
    next_client_id: ClientRequestId,
    streams: BTreeMap<StreamId, StreamSink>,
    /// Inputs the driver itself produced while acting (transport drops), fed
    /// before the turn ends.
    deferred: Vec<Input>,
    /// Inputs put off to the next turn, after what else is waiting by then.
    next_turn: Vec<Input>,
    /// Maintenance snapshots being encoded by the node, by export number.
    exports: BTreeMap<u64, oneshot::Sender<Vec<u8>>>,
    next_export: u64,
    /// Portable export questions asked of the node, by ask number.
    portable_asks: BTreeMap<u64, PortableAsk>,
    next_ask: u64,
    metrics: Metrics,
    shared_metrics: SharedMetrics,
    /// The member's state as its last [`Output::Status`] told it.
    status: MemberStatus,
    /// When the turn under way started (a compaction applied in it is timed from here).
    turn_started: Instant,
    /// The v2 store's index, published each time a status moves it (v2 waits
    /// look again when it moves).
    v2_index: watch::Sender<u64>,
    stop: Option<StopReason>,
}

impl Driver {
    pub(crate) fn new(
        node: Node,
        persister: Persister,
        transport: Transport,
        shared_metrics: SharedMetrics,
        v2_index: watch::Sender<u64>,
        tick_ms: u64,
    ) -> Driver {
        Driver {
            node,
            started: Instant::now(),
            tick_ms,
            persister: Some(persister),
            jobs: VecDeque::new(),
            transport: Some(transport),
            waiters: BTreeMap::new(),
            next_client_id: 1,
            streams: BTreeMap::new(),
            deferred: Vec::new(),
            next_turn: Vec::new(),
            exports: BTreeMap::new(),
            next_export: 1,
            portable_asks: BTreeMap::new(),
            next_ask: 1,
            metrics: Metrics::default(),
            shared_metrics,
            status: MemberStatus::default(),
            turn_started: Instant::now(),
            v2_index,
            stop: None,
        }
    }

    pub(crate) async fn run(mut self, channels: Channels, stopped: watch::Sender<Option<StopReason>>) {
        let Channels {
            mut commands,
            mut internal,
            mut reports,
            mut peers,
            mut shutdown,
        } = channels;
        let mut ticker = tokio::time::interval(Duration::from_millis(self.tick_ms));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Node::new may already have outputs (the bootstrap Persist).
        self.drain();
        self.after_turn();
        while self.stop.is_none() {
            let first = tokio::select! {
                biased;
                _ = &mut shutdown => {
                    self.stop = Some(StopReason::Shutdown);
                    break;
                }
                Some(event) = internal.recv() => Event::Internal(event),
                Some(report) = reports.recv() => Event::Transport(report),
                _ = ticker.tick() => Event::Tick,
                Some(message) = peers.recv() => Event::Peer(message),
                Some(command) = commands.recv() => Event::Command(command),
                () = std::future::ready(()), if !self.next_turn.is_empty() => Event::Continue,
            };
            // The clock read of this turn (a Persisted reads it afresh). The
            // node ticks itself first when it moved (`Node::handle_at`).
            let turn_started = Instant::now();
            self.turn_started = turn_started;
            let applied_before = self.status.applied_index;
            let now_ms = self.clock_ms(turn_started);
            self.feed(first, now_ms);
            // Take what else is ready now, so this turn's proposals share a Ready
            // and its Persist.
            for _ in 0..TURN_EVENTS_MAX {
                let event = if let Ok(e) = internal.try_recv() {
                    Event::Internal(e)
                } else if let Ok(r) = reports.try_recv() {
                    Event::Transport(r)
                } else if let Ok(m) = peers.try_recv() {
                    Event::Peer(m)
                } else if let Ok(c) = commands.try_recv() {
                    Event::Command(c)
                } else {
                    break;
                };
                self.feed(event, now_ms);
            }
            self.drain();
            if self.status.applied_index > applied_before && turn_started.elapsed() > SLOW_APPLY {
                self.metrics.slow_applies += 1;
            }
            self.after_turn();
        }
        self.finish(&stopped, &mut commands).await;
    }

    fn ask(&mut self, waiting: PortableAsk) -> u64 {
        let ask = self.next_ask;
        self.next_ask += 1;
        self.portable_asks.insert(ask, waiting);
        ask
    }

    fn client_id(&mut self) -> ClientRequestId {
        let id = self.next_client_id;
        self.next_client_id += 1;
        id
    }

    /// Milliseconds since the driver started, at `at`.
    fn clock_ms(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// Milliseconds since the driver started, now.
    fn now_ms(&self) -> u64 {
        self.clock_ms(Instant::now())
    }

    fn feed(&mut self, event: Event, now_ms: u64) {
        match event {
            Event::Tick => self.node.handle_at(now_ms, Input::Tick { now_ms }),
            Event::Peer(message) => self.node.handle_at(now_ms, Input::Peer(message)),
            Event::Command(Command::Call {
                request,
                credentials,
                reply,
            }) => {
                let id = self.client_id();
                let write = request.is_write();
                let tally = Tally::of(&request);
                self.waiters.insert(id, Waiter { reply, write, tally });
                self.node.handle_at(
                    now_ms,
                    Input::Client {
                        id,
                        request,
                        credentials,
                    },
                );
            }
            Event::Command(Command::OpenStream { stream, sink }) => {
                self.streams.insert(stream, sink);
            }
            Event::Command(Command::SnapshotBytes { reply }) => {
                let export = self.next_export;
                self.next_export += 1;
                self.exports.insert(export, reply);
                self.node.handle_at(now_ms, Input::ExportSnapshot { export });
            }
            Event::Continue => {
                for input in std::mem::take(&mut self.next_turn) {
                    self.node.handle_at(now_ms, input);
                }
            }
            Event::Command(Command::PortableHead { reply }) => {
                let ask = self.ask(PortableAsk::Head(reply));
                self.node.handle_at(now_ms, Input::PortableHead { ask });
            }
            Event::Command(Command::PortableRecords {
                bound,
                from,
                records_max,
                reply,
            }) => {
                let ask = self.ask(PortableAsk::Records(reply));
                self.node.handle_at(
                    now_ms,
                    Input::PortableRecords {
                        ask,
                        bound,
                        from,
                        records_max,
                    },
                );
            }
            Event::Internal(Internal::StreamClosed(stream)) => {
                self.streams.remove(&stream);
                self.node.handle_at(now_ms, Input::StreamClosed { stream });
            }
            Event::Internal(Internal::Stored(done)) => self.on_stored(done),
            Event::Transport(Report::PeerUnreachable(peer)) => {
                self.node.handle_at(now_ms, Input::PeerUnreachable { peer });
            }
            Event::Transport(Report::SnapshotReport { peer, delivered }) => {
                self.node
                    .handle_at(now_ms, Input::SnapshotReport { peer, delivered });
            }
            Event::Transport(Report::RemovedFromCluster { peer }) => {
                // A member cut off when it was removed never applies its removal:
                // the peers refusing it are how it learns, and, as etcd's member
                // does on the 410 Gone, it stops.
                crate::log!(
                    Level::Warn,
                    "driver",
                    "member {:x}: peer {peer:x} says {}; stopping (the data dir used by this member must be removed)",
                    self.node.member_id(),
                    crate::transport::handshake::MEMBER_REMOVED
                );
                self.stop = Some(StopReason::Removed);
            }
        }
    }

    fn on_stored(&mut self, done: Done) {
        if let Some(error) = done.error {
            crate::log!(
                Level::Error,
                "driver",
                "member {:x}: storage failed, stopping: {error}",
                self.node.member_id()
            );
            self.stop = Some(StopReason::Failed(error));
            return;
        }
        if let Some(seconds) = done.commit_seconds {
            self.metrics.backend_commit.observe(seconds);
        }
        if let Some(bytes) = done.wal_bytes_synced {
            self.metrics.wal_write_bytes = bytes;
        }
        for seconds in &done.snapshot_save_seconds {
            self.metrics.snap_save.observe(*seconds);
        }
        if let Some(seconds) = done.sync_seconds {
            self.metrics.wal_fsync.observe(seconds);
            self.metrics.syncs += 1;
            self.metrics.entries_synced += done.entries;
            if seconds > 1.0 {
                // etcd's warnSyncDuration.
                crate::log!(Level::Warn, "driver", "slow WAL sync: {seconds:.3} s");
            }
        }
        self.metrics.persists += done.persists;
        // What this makes durable may be applied now: with the clock as it is
        // now, however long the write took.
        let now_ms = self.now_ms();
        if let Some(ready_number) = done.persisted {
            self.node.handle_at(now_ms, Input::Persisted { ready_number });
        }
        for index in done.snapshots_saved {
            self.node.handle_at(now_ms, Input::SnapshotSaved { index });
        }
    }

    /// Drains the node completely and carries out each output in order; inputs
    /// the acting produced are fed and drained in turn.
    fn drain(&mut self) {
        loop {
            while let Some(output) = self.node.poll() {
                self.act(output);
            }
            if self.deferred.is_empty() {
                break;
            }
            let now_ms = self.now_ms();
            for input in std::mem::take(&mut self.deferred) {
                self.node.handle_at(now_ms, input);
            }
        }
    }

    fn act(&mut self, output: Output) {
        match output {
            Output::Persist(persist) => self.jobs.push_back(Job::Persist(persist)),
            Output::Send { to, message } => self.send(to, message),
            Output::Respond { id, result } => self.respond(id, result),
            Output::Watch { stream, response } => {
                let Some(sink) = self.streams.get(&stream) else {
                    return;
                };
                let events = response.events.len() as u64;
                self.metrics.watch_events += events;
                // Counted before the send, so the reader never takes more than was added.
                sink.pending_events.fetch_add(events, Ordering::Relaxed);
                if sink.responses.try_send(response).is_err() {
                    sink.pending_events.fetch_sub(events, Ordering::Relaxed);
                    // Full (or the receiver is gone): drop the stream rather than
                    // block the member. See `WatchStream`.
                    sink.overflowed.store(true, Ordering::Relaxed);
                    crate::log!(
                        Level::Warn,
                        "driver",
                        "watch stream {stream} fell behind; dropping it"
                    );
                    self.streams.remove(&stream);
                    self.deferred.push(Input::StreamClosed { stream });
                }
            }
            Output::SaveSnapshot { snapshot } => self.jobs.push_back(Job::SaveSnapshot(snapshot)),
            Output::ReleaseWal { index } => self.jobs.push_back(Job::ReleaseWal(index)),
            Output::RoleChanged { leader, role, term } => {
                if leader != self.metrics.leader_id && leader != 0 {
                    self.metrics.leader_changes_seen += 1;
                }
                self.metrics.leader_id = leader;
                self.metrics.has_leader = leader != 0;
                self.metrics.is_leader = role == Role::Leader;
                self.metrics.term = term;
                crate::log!(
                    Level::Info,
                    "driver",
                    "member {:x}: {} at term {term}, leader {leader:x}",
                    self.node.member_id(),
                    role.name()
                );
            }
            Output::AutoCompaction { revision, completed } => {
                let what = if completed { "completed" } else { "starting" };
                crate::log!(
                    Level::Info,
                    "detcd",
                    "{what} auto compaction at revision {revision}"
                );
            }
            Output::PeerUrls { urls, removed } => {
                if let Some(transport) = self.transport.as_mut() {
                    transport.set_peer_urls(urls, removed);
                }
            }
            Output::SnapshotExport { export, progress } => match progress {
                // The next slice waits for the next turn: what queued meanwhile
                // (client requests, raft messages) goes first.
                ExportProgress::Pending => self.next_turn.push(Input::ExportSnapshot { export }),
                ExportProgress::Done(data) => {
                    if let Some(reply) = self.exports.remove(&export) {
                        let _ = reply.send(data);
                    }
                }
            },
            Output::PortableHead { ask, head } => {
                if let Some(PortableAsk::Head(reply)) = self.portable_asks.remove(&ask) {
                    let _ = reply.send(head);
                }
            }
            Output::PortableRecords { ask, slice } => {
                if let Some(PortableAsk::Records(reply)) = self.portable_asks.remove(&ask) {
                    let _ = reply.send(slice);
                }
            }
            Output::Status(status) => self.on_status(status),
            Output::Removed => {
                crate::log!(
                    Level::Warn,
                    "driver",
                    "member {:x} was removed from the cluster; stopping",
                    self.node.member_id()
                );
                self.stop = Some(StopReason::Removed);
            }
        }
    }

    fn send(&mut self, to: u64, message: PeerMessage) {
        let Some(transport) = self.transport.as_mut() else {
            return;
        };
        let heartbeat =
            matches!(&message, PeerMessage::Raft(m) if m.r#type == MessageType::MsgHeartbeat as i32);
        if let Sent::Dropped { snapshot } = transport.send(to, message) {
            if heartbeat {
                self.metrics.heartbeat_send_failures += 1;
            }
            if snapshot {
                self.deferred.push(Input::SnapshotReport {
                    peer: to,
                    delivered: false,
                });
            }
            let unreachable = Input::PeerUnreachable { peer: to };
            if !self.deferred.contains(&unreachable) {
                self.deferred.push(unreachable);
            }
        }
    }

    fn respond(&mut self, id: ClientRequestId, result: Result<Response, EtcdError>) {
        if let Some(Waiter { reply, write, tally }) = self.waiters.remove(&id) {
            if write && result.is_err() {
                self.metrics.proposals_failed += 1;
            }
            tally.count(&result, &mut self.metrics);
            let _ = reply.send(result);
        }
    }

    /// Hands this turn's disk work to the storage thread (which joins it to its
    /// next pass) and publishes the counters.
    fn after_turn(&mut self) {
        // A small batch with the storage thread idle is written here, and what it
        // releases (answers, messages, the next small batch) is carried out at
        // once, a few rounds at most before the rest goes to the thread.
        for _ in 0..INLINE_ROUNDS_MAX {
            if self.jobs.is_empty() || self.stop.is_some() {
                break;
            }
            let Some(persister) = self.persister.as_ref() else {
                break;
            };
            let batch: Vec<Job> = self.jobs.drain(..).collect();
            match persister.write_inline(batch) {
                Ok(done) => {
                    self.on_stored(done);
                    self.drain();
                }
                Err(batch) => {
                    self.jobs.extend(batch);
                    break;
                }
            }
        }
        if !self.jobs.is_empty() {
            let batch: Vec<Job> = self.jobs.drain(..).collect();
            let submitted = self.persister.as_ref().is_some_and(|p| p.submit(batch));
            if !submitted && self.stop.is_none() {
                self.stop = Some(StopReason::Failed("the storage thread is gone".into()));
            }
        }
        self.metrics.watch_streams = self.streams.len() as u64;
        self.metrics.watch_pending_events = self
            .streams
            .values()
            .map(|s| s.pending_events.load(Ordering::Relaxed))
            .sum();
        self.shared_metrics.set(&self.metrics);
    }

    /// What the member told of its state goes to the counters and the v2 waiters.
    fn on_status(&mut self, status: MemberStatus) {
        let m = &mut self.metrics;
        m.proposals_committed = status.commit_index;
        m.proposals_applied = status.applied_index;
        m.proposals_pending = status.pending_requests;
        m.db_size_bytes = status.db_size_bytes;
        m.is_learner = status.is_learner;
        m.current_revision = status.revision;
        m.compact_revision = status.compact_revision;
        m.keys_total = status.keys;
        m.auth_revision = status.auth_revision;
        m.mvcc = status.mvcc;
        // A compaction is one step of the node inside this turn: nothing else runs
        // while it does, so the turn so far stands for its pauses and its total.
        let compacted = status
            .compaction
            .compactions
            .saturating_sub(self.status.compaction.compactions);
        if compacted > 0 {
            let ms = self.turn_started.elapsed().as_secs_f64() * 1000.0;
            for _ in 0..compacted {
                m.db_compaction_total_ms.observe(ms);
                m.db_compaction_pause_ms.observe(ms);
                m.index_compaction_pause_ms.observe(ms);
            }
        }
        m.compaction_keys = status.compaction.revisions_removed;
        m.watchers = status.watchers.watchers;
        m.slow_watchers = status.watchers.unsynced;
        m.leases_expired = status.leases_expired;
        m.v2 = status.v2;
        let v2_index = status.v2_index;
        self.v2_index.send_if_modified(|known| {
            let moved = *known != v2_index;
            *known = v2_index;
            moved
        });
        self.status = status;
    }

    /// Stops everything the driver started: callers answered STOPPED, streams
    /// ended, the transport closed, the storage thread joined (after its batch).
    async fn finish(
        mut self,
        stopped: &watch::Sender<Option<StopReason>>,
        commands: &mut mpsc::Receiver<Command>,
    ) {
        commands.close();
        while let Ok(command) = commands.try_recv() {
            if let Command::Call { reply, .. } = command {
                let _ = reply.send(Err(etcd_error::STOPPED));
            }
        }
        for (_, waiter) in std::mem::take(&mut self.waiters) {
            let _ = waiter.reply.send(Err(etcd_error::STOPPED));
        }
        self.streams.clear();
        if let Some(transport) = self.transport.take() {
            transport.stop().await;
        }
        if let Some(persister) = self.persister.take() {
            persister.stop().await;
        }
        let reason = self.stop.take().unwrap_or(StopReason::Shutdown);
        crate::log!(
            Level::Info,
            "driver",
            "member {:x} stopped: {reason:?}",
            self.node.member_id()
        );
        let _ = stopped.send(Some(reason));
    }
}
