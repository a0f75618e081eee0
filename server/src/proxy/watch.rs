//! The proxy's `etcdserverpb.Watch`: clients' watchers coalesced onto shared upstream
//! watches (etcd's `grpcproxy/watch_broadcast*.go`).
//!
//! A *broadcast* is one upstream watch of one key range, with every client watcher of
//! that range that can share it. A new watcher joins a broadcast of the same range when
//! it would see exactly the events it asked for:
//! - a watcher from "now" (start revision 0) joins a broadcast that is established (the
//!   upstream has answered): it starts after the upstream's current revision (asked with
//!   a `Status` call, as the broadcast's next revision may lag when its range is quiet),
//!   and gets a `created` answer from the proxy at that revision;
//! - a watcher from revision `r` joins an established broadcast whose next revision is
//!   at most `r` (it then skips the events below `r`);
//! - either joins a broadcast still being created when it asks for the same start, and
//!   gets the upstream's own `created` answer.
//!
//! Only watchers with the same credentials share a broadcast (with auth on, each user's
//! watches are checked by the cluster). Otherwise a new broadcast is made: its upstream watch always asks for `prev_kv` and
//! progress notifications, and each watcher gets what it asked for (its filters, its
//! `prev_kv`, progress only if wanted, events from its own next revision). So N clients
//! watching one key cost one upstream watch, whatever N is.
//!
//! When the upstream watch breaks (its member went away) it is made again at the next
//! endpoint from the broadcast's next revision; clients see nothing but, at worst, a
//! delay. A compaction or cancel from upstream cancels every watcher of the broadcast
//! with the same answer. A client stream whose reader falls behind by more than
//! [`WATCH_RESPONSES_BUFFERED_MAX`] answers is dropped with `Unavailable`, as detcd's own
//! watch streams are (clients then watch again from their last revision). A progress
//! request is answered with the upstream's current header (a `Status` call).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use detcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd_proto::etcdserverpb::watch_client::WatchClient;
use detcd_proto::etcdserverpb::watch_create_request::FilterType;
use detcd_proto::etcdserverpb::watch_request::RequestUnion;
use detcd_proto::etcdserverpb::watch_server::Watch;
use detcd_proto::etcdserverpb::{
    ResponseHeader, StatusRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use detcd_proto::mvccpb::event::EventType;
use tokio::sync::{mpsc, Notify};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::metadata::MetadataMap;
use tonic::{Request as Rpc, Response as Reply, Status, Streaming};

use super::metrics::ProxyMetrics;
use super::namespace::Namespace;
use super::upstream::{client, forwarded, identity, with_metadata, Retry, Upstream};
use super::Proxy;

/// Answers one client stream buffers (as detcd's own watch streams).
pub const WATCH_RESPONSES_BUFFERED_MAX: usize = crate::grpc::watch::WATCH_RESPONSES_BUFFERED_MAX;
/// Pause before a broken upstream watch is made again.
const REWATCH_DELAY: Duration = Duration::from_millis(100);
/// The longest pause between attempts while no upstream watch can be made.
const REWATCH_DELAY_MAX: Duration = Duration::from_secs(2);

type Out = mpsc::Sender<Result<WatchResponse, Status>>;

/// One client watcher inside a broadcast.
#[derive(Debug)]
struct Receiver {
    out: Out,
    /// Told when `out` is full: the client stream is dropped.
    overflow: Arc<Notify>,
    /// The first revision of an event this watcher has not seen (0: not yet known).
    nextrev: i64,
    progress: bool,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
}

/// One upstream watch and the watchers it serves.
#[derive(Debug)]
struct Broadcast {
    key: Vec<u8>,
    end: Vec<u8>,
    /// The credentials the upstream watch was made with ([`identity`]): only watchers
    /// with the same ones join, so the cluster's permission check holds for each.
    who: Vec<u8>,
    /// The first revision the upstream has not reported yet (0: not yet known).
    nextrev: i64,
    /// Answers received from the upstream.
    responses: u64,
    last_header: ResponseHeader,
    /// By (client stream, watch ID).
    receivers: BTreeMap<(u64, i64), Receiver>,
    task: Option<tokio::task::AbortHandle>,
}

#[derive(Debug, Default)]
struct Hub {
    next_broadcast: u64,
    next_stream: u64,
    broadcasts: BTreeMap<u64, Broadcast>,
    /// The last header any upstream watch answered with (for progress requests).
    last_header: ResponseHeader,
}

/// All broadcasts of the proxy.
#[derive(Debug, Clone)]
pub struct WatchHub {
    hub: Arc<Mutex<Hub>>,
    up: Upstream,
    ns: Namespace,
    metrics: ProxyMetrics,
}

/// What a client asked for when creating a watcher.
struct Wanted {
    stream: u64,
    id: i64,
    create: WatchCreateRequest,
    out: Out,
    overflow: Arc<Notify>,
    metadata: MetadataMap,
    /// For a watcher from "now": the upstream's header when it asked (if known).
    now: Option<ResponseHeader>,
}

impl WatchHub {
    pub fn new(up: Upstream, ns: Namespace, metrics: ProxyMetrics) -> WatchHub {
        WatchHub {
            hub: Arc::new(Mutex::new(Hub::default())),
            up,
            ns,
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_stream(&self) -> u64 {
        let mut hub = self.lock();
        hub.next_stream += 1;
        hub.next_stream
    }

    /// Adds a watcher to a broadcast it can share, or to a new one.
    fn add(&self, w: Wanted) {
        let c = &w.create;
        let has = |f: FilterType| c.filters.contains(&(f as i32));
        let mut receiver = Receiver {
            out: w.out.clone(),
            overflow: w.overflow.clone(),
            nextrev: c.start_revision,
            progress: c.progress_notify,
            prev_kv: c.prev_kv,
            no_put: has(FilterType::Noput),
            no_delete: has(FilterType::Nodelete),
        };
        let who = identity(&w.metadata);
        let mut hub = self.lock();
        let joinable = hub.broadcasts.iter().find_map(|(id, b)| {
            let same_range = b.key == c.key && b.end == c.range_end && b.who == who;
            let established = b.responses > 0;
            let fits = if established {
                c.start_revision == 0 || b.nextrev <= c.start_revision
            } else {
                b.nextrev == c.start_revision
            };
            (same_range && fits).then_some(*id)
        });
        self.metrics.watchers.inc();
        if let Some(id) = joinable {
            let b = hub.broadcasts.get_mut(&id).expect("found above");
            if b.responses > 0 {
                let mut header = b.last_header;
                if receiver.nextrev == 0 {
                    // From now: after what the broadcast saw and what the cluster has.
                    let now = w.now.unwrap_or_default();
                    receiver.nextrev = b.nextrev.max(now.revision + 1);
                    if now.revision + 1 >= b.nextrev {
                        header = now;
                    }
                }
                let created = WatchResponse {
                    header: Some(ResponseHeader {
                        revision: receiver.nextrev - 1,
                        ..header
                    }),
                    watch_id: w.id,
                    created: true,
                    ..WatchResponse::default()
                };
                if w.out.try_send(Ok(created)).is_err() {
                    w.overflow.notify_one();
                }
            }
            b.receivers.insert((w.stream, w.id), receiver);
            self.metrics.watchers_coalesced.inc();
            self.metrics.watchers_changed();
            detcd_io::log!(
                detcd_io::log::Level::Debug,
                "grpc-proxy",
                "watcher {} of stream {} joins upstream watch {id} ({} watchers)",
                w.id,
                w.stream,
                b.receivers.len()
            );
            return;
        }
        hub.next_broadcast += 1;
        let id = hub.next_broadcast;
        let mut upstream = WatchCreateRequest {
            key: c.key.clone(),
            range_end: c.range_end.clone(),
            start_revision: c.start_revision,
            progress_notify: true,
            prev_kv: true,
            ..WatchCreateRequest::default()
        };
        self.ns.watch_up(&mut upstream);
        let mut receivers = BTreeMap::new();
        receivers.insert((w.stream, w.id), receiver);
        let task = tokio::spawn(self.clone().upstream_watch(id, upstream, w.metadata));
        hub.broadcasts.insert(
            id,
            Broadcast {
                key: c.key.clone(),
                end: c.range_end.clone(),
                who,
                nextrev: c.start_revision,
                responses: 0,
                last_header: ResponseHeader::default(),
                receivers,
                task: Some(task.abort_handle()),
            },
        );
        self.metrics.upstream_watches.inc();
        self.metrics.watchers_changed();
        detcd_io::log!(
            detcd_io::log::Level::Debug,
            "grpc-proxy",
            "upstream watch {id} made for watcher {} of stream {} (start revision {})",
            w.id,
            w.stream,
            c.start_revision
        );
    }

    /// Removes watcher `id` of client stream `stream`; a broadcast left without
    /// watchers ends its upstream watch. Whether it was there.
    fn remove(&self, stream: u64, id: i64) -> bool {
        let mut hub = self.lock();
        let found = hub
            .broadcasts
            .iter()
            .find(|(_, b)| b.receivers.contains_key(&(stream, id)))
            .map(|(k, _)| *k);
        let Some(bid) = found else { return false };
        let b = hub.broadcasts.get_mut(&bid).expect("found above");
        b.receivers.remove(&(stream, id));
        self.metrics.watchers.dec();
        if b.receivers.is_empty() {
            if let Some(task) = b.task.take() {
                task.abort();
            }
            hub.broadcasts.remove(&bid);
            self.metrics.upstream_watches.dec();
            detcd_io::log!(
                detcd_io::log::Level::Debug,
                "grpc-proxy",
                "upstream watch {bid} ended: no watcher left"
            );
        }
        self.metrics.watchers_changed();
        true
    }

    /// Removes every watcher of a client stream that ended.
    fn remove_stream(&self, stream: u64) {
        let ids: Vec<i64> = self
            .lock()
            .broadcasts
            .values()
            .flat_map(|b| b.receivers.keys())
            .filter(|(s, _)| *s == stream)
            .map(|(_, id)| *id)
            .collect();
        for id in ids {
            self.remove(stream, id);
        }
    }

    /// Gives an upstream answer to every watcher of broadcast `bid`. `reconnected`:
    /// the `created` answer of a watch made again, which the watchers have had already.
    /// Returns false when the broadcast is over (canceled upstream, or gone).
    fn dispatch(&self, bid: u64, mut answer: WatchResponse, reconnected: bool) -> bool {
        for e in &mut answer.events {
            self.ns.event_down(e);
        }
        let header = answer.header.unwrap_or_default();
        let mut hub = self.lock();
        hub.last_header = header;
        let Some(b) = hub.broadcasts.get_mut(&bid) else {
            return false;
        };
        if answer.created && reconnected {
            return true;
        }
        if b.responses > 0 || b.nextrev == 0 {
            b.nextrev = header.revision + 1;
        }
        b.responses += 1;
        b.last_header = header;
        let mut events_sent = 0;
        for ((_, id), r) in b.receivers.iter_mut() {
            if let Some(out) = deliver(r, *id, &answer) {
                events_sent += out.events.len() as u64;
                if r.out.try_send(Ok(out)).is_err() {
                    r.overflow.notify_one();
                }
            }
        }
        // What the cluster would have sent again without coalescing.
        self.metrics
            .events_coalescing
            .inc_by(events_sent.saturating_sub(answer.events.len() as u64));
        if answer.canceled {
            let n = b.receivers.len() as i64;
            hub.broadcasts.remove(&bid);
            self.metrics.upstream_watches.dec();
            self.metrics.watchers.sub(n);
            self.metrics.watchers_changed();
            return false;
        }
        true
    }

    /// The upstream side of broadcast `bid`: makes the watch, passes its answers on,
    /// makes it again from where it stopped when it breaks.
    async fn upstream_watch(self, bid: u64, mut create: WatchCreateRequest, metadata: MetadataMap) {
        let mut reconnected = false;
        let mut delay = REWATCH_DELAY;
        loop {
            let (at, channel) = self.up.current();
            let (send, rx) = mpsc::channel(1);
            let _ = send
                .send(WatchRequest {
                    request_union: Some(RequestUnion::CreateRequest(create.clone())),
                })
                .await;
            let mut request = with_metadata(ReceiverStream::new(rx), &metadata);
            request
                .metadata_mut()
                .insert("hasleader", "true".parse().expect("ascii"));
            let mut answered = false;
            if let Ok(answers) = client!(WatchClient, channel).watch(request).await {
                let mut answers = answers.into_inner();
                while let Ok(Some(answer)) = answers.message().await {
                    answered = true;
                    if !self.dispatch(bid, answer, reconnected) {
                        return;
                    }
                }
                drop(send);
            }
            self.up.failed(at);
            // Again from the first revision no watcher has seen.
            let Some((nextrev, responses)) =
                self.lock().broadcasts.get(&bid).map(|b| (b.nextrev, b.responses))
            else {
                return;
            };
            create.start_revision = nextrev;
            // Watchers that had their `created` must not get another.
            reconnected = responses > 0;
            // Quickly after a break; backing off while the cluster refuses the watch.
            delay = if answered {
                REWATCH_DELAY
            } else {
                (delay * 2).min(REWATCH_DELAY_MAX)
            };
            tokio::time::sleep(delay).await;
        }
    }

    /// The header of the last upstream answer.
    fn last_header(&self) -> ResponseHeader {
        self.lock().last_header
    }

    /// Whether a watcher of `create` with `metadata` would join an established
    /// broadcast from "now" (it then needs the upstream's current revision).
    fn joins_from_now(&self, create: &WatchCreateRequest, metadata: &MetadataMap) -> bool {
        if create.start_revision != 0 {
            return false;
        }
        let who = identity(metadata);
        self.lock()
            .broadcasts
            .values()
            .any(|b| b.key == create.key && b.end == create.range_end && b.who == who && b.responses > 0)
    }

    /// The upstream's current header (a `Status` call with the client's credentials);
    /// the last one seen when the upstream does not answer.
    async fn upstream_header(&self, metadata: &MetadataMap) -> Option<ResponseHeader> {
        let answer = self
            .up
            .unary(
                with_metadata(StatusRequest::default(), metadata),
                Retry::Read,
                |ch, r| async move { client!(MaintenanceClient, ch).status(r).await },
            )
            .await
            .ok()?;
        answer.into_inner().header
    }
}

/// What watcher `r` (ID `id`) gets of an upstream `answer` (etcd's `watcher.send`).
fn deliver(r: &mut Receiver, id: i64, answer: &WatchResponse) -> Option<WatchResponse> {
    let header = answer.header.unwrap_or_default();
    let progress =
        answer.events.is_empty() && !answer.created && !answer.canceled && answer.compact_revision == 0;
    // Progress below where the watcher starts would take it backwards.
    if progress && (!r.progress || r.nextrev > header.revision + 1) {
        return None;
    }
    if r.nextrev > header.revision && !answer.events.is_empty() {
        return None;
    }
    if r.nextrev == 0 {
        r.nextrev = header.revision + 1;
    }
    let mut last = 0;
    let mut events = Vec::new();
    for e in &answer.events {
        let rev = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
        if rev < r.nextrev {
            continue;
        }
        last = rev;
        let put = e.r#type == EventType::Put as i32;
        if (put && r.no_put) || (!put && r.no_delete) {
            continue;
        }
        let mut e = e.clone();
        if !r.prev_kv {
            e.prev_kv = None;
        }
        events.push(e);
    }
    if last >= r.nextrev {
        r.nextrev = last + 1;
    }
    if !progress && !answer.created && events.is_empty() && answer.compact_revision == 0 && !answer.canceled {
        return None;
    }
    Some(WatchResponse {
        header: Some(header),
        watch_id: id,
        created: answer.created,
        canceled: answer.canceled,
        compact_revision: answer.compact_revision,
        cancel_reason: answer.cancel_reason.clone(),
        events,
        ..WatchResponse::default()
    })
}

/// etcd's `watchRange.valid`: an empty end, an end after the key, or `"\0"`.
fn valid_range(key: &[u8], end: &[u8]) -> bool {
    end.is_empty() || end > key || end == [0]
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for Proxy {
    type WatchStream = WatchStream;

    async fn watch(&self, r: Rpc<Streaming<WatchRequest>>) -> Result<Reply<WatchStream>, Status> {
        let metadata = forwarded(r.metadata());
        let mut inbound = r.into_inner();
        let hub = self.watches.clone();
        let stream = hub.new_stream();
        let (tx, rx) = mpsc::channel(WATCH_RESPONSES_BUFFERED_MAX);
        let overflow = Arc::new(Notify::new());
        tokio::spawn(async move {
            let mut next_id = 0i64;
            loop {
                tokio::select! {
                    request = inbound.message() => {
                        let Ok(Some(request)) = request else { break };
                        match request.request_union {
                            Some(RequestUnion::CreateRequest(create)) => {
                                if !valid_range(&create.key, &create.range_end) {
                                    let refused = WatchResponse {
                                        watch_id: -1,
                                        created: true,
                                        canceled: true,
                                        ..WatchResponse::default()
                                    };
                                    if tx.send(Ok(refused)).await.is_err() {
                                        break;
                                    }
                                    continue;
                                }
                                let id = next_id;
                                next_id += 1;
                                let now = if hub.joins_from_now(&create, &metadata) {
                                    hub.upstream_header(&metadata).await
                                } else {
                                    None
                                };
                                hub.add(Wanted {
                                    stream,
                                    id,
                                    create,
                                    out: tx.clone(),
                                    overflow: overflow.clone(),
                                    metadata: metadata.clone(),
                                    now,
                                });
                            }
                            Some(RequestUnion::CancelRequest(c)) if hub.remove(stream, c.watch_id) => {
                                let canceled = WatchResponse {
                                    header: Some(hub.last_header()),
                                    watch_id: c.watch_id,
                                    canceled: true,
                                    ..WatchResponse::default()
                                };
                                if tx.send(Ok(canceled)).await.is_err() {
                                    break;
                                }
                            }
                            Some(RequestUnion::ProgressRequest(_)) => {
                                let header = match hub.upstream_header(&metadata).await {
                                    Some(header) => header,
                                    None => hub.last_header(),
                                };
                                let progress = WatchResponse {
                                    header: Some(header),
                                    watch_id: -1,
                                    ..WatchResponse::default()
                                };
                                if tx.send(Ok(progress)).await.is_err() {
                                    break;
                                }
                            }
                            Some(RequestUnion::CancelRequest(_)) | None => {}
                        }
                    }
                    () = overflow.notified() => {
                        hub.remove_stream(stream);
                        let _ = tx.try_send(Err(Status::unavailable(
                            "detcd: watch stream dropped: the client read too slowly",
                        )));
                        break;
                    }
                    () = tx.closed() => break,
                }
            }
            hub.remove_stream(stream);
        });
        Ok(Reply::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use detcd_proto::mvccpb::{Event, KeyValue};

    fn receiver(nextrev: i64) -> (Receiver, mpsc::Receiver<Result<WatchResponse, Status>>) {
        let (out, rx) = mpsc::channel(4);
        (
            Receiver {
                out,
                overflow: Arc::new(Notify::new()),
                nextrev,
                progress: false,
                prev_kv: false,
                no_put: false,
                no_delete: false,
            },
            rx,
        )
    }

    fn put_at(rev: i64) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: b"k".to_vec(),
                mod_revision: rev,
                ..KeyValue::default()
            }),
            prev_kv: Some(KeyValue::default()),
        }
    }

    fn answer(header_rev: i64, events: Vec<Event>) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader {
                revision: header_rev,
                ..ResponseHeader::default()
            }),
            events,
            ..WatchResponse::default()
        }
    }

    #[test]
    fn watchers_get_events_from_their_own_revision_without_prev_kv_unless_asked() {
        let (mut r, _rx) = receiver(6);
        let out = deliver(&mut r, 3, &answer(7, vec![put_at(5), put_at(6), put_at(7)])).expect("events");
        assert_eq!(out.watch_id, 3);
        let revs: Vec<i64> = out
            .events
            .iter()
            .map(|e| e.kv.as_ref().expect("kv").mod_revision)
            .collect();
        assert_eq!(revs, vec![6, 7]);
        assert!(out.events.iter().all(|e| e.prev_kv.is_none()));
        assert_eq!(r.nextrev, 8);
        // Already seen: nothing.
        assert!(deliver(&mut r, 3, &answer(7, vec![put_at(7)])).is_none());
    }

    #[test]
    fn progress_only_to_those_who_asked_and_filters_apply() {
        let (mut r, _rx) = receiver(0);
        assert!(deliver(&mut r, 0, &answer(9, vec![])).is_none());
        r.progress = true;
        assert!(deliver(&mut r, 0, &answer(9, vec![])).is_some());
        r.no_put = true;
        assert!(deliver(&mut r, 0, &answer(11, vec![put_at(11)])).is_none());
    }

    #[test]
    fn ranges_as_etcd_checks_them() {
        assert!(valid_range(b"a", b""));
        assert!(valid_range(b"a", b"b"));
        assert!(valid_range(b"a", b"\0"));
        assert!(!valid_range(b"b", b"a"));
    }
}
