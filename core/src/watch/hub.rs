//! The hub's state and its inputs and outputs; see the module docs for the driving order.

use std::collections::{BTreeMap, VecDeque};

use detcd_proto::etcdserverpb::{
    watch_create_request::FilterType, ResponseHeader, WatchCreateRequest, WatchResponse,
};
use detcd_proto::mvccpb::{event::EventType, Event};
use prost::Message;

use crate::error;
use crate::mutation::{is_active, Mutation};
use crate::mvcc::{in_range, Store};

/// The driver's name for one client watch stream.
pub type StreamId = u64;

/// Responses a stream may hold unsent before its watchers fall back to unsynced
/// (etcd's per-stream `chanBufLen`).
pub const STREAM_RESPONSES_MAX_DEFAULT: usize = 128;
/// Size at which a `fragment` watcher's response is split (etcd: `--max-request-bytes`).
pub const FRAGMENT_BYTES_MAX_DEFAULT: usize = 1_572_864;
/// Events one catch-up response may hold (whole revisions, so it may exceed this by
/// the rest of its last revision).
pub const SYNC_EVENTS_MAX_DEFAULT: usize = 1_000;
/// Unsynced watchers one [`Hub::sync`] call advances (etcd's `maxWatchersPerSync`).
pub const SYNC_WATCHERS_MAX_DEFAULT: usize = 512;
/// Watchers one stream may hold.
pub const WATCHERS_PER_STREAM_MAX_DEFAULT: usize = 10_000;

/// The hub's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubConfig {
    pub stream_responses_max: usize,
    pub fragment_bytes_max: usize,
    pub sync_events_max: usize,
    pub sync_watchers_max: usize,
    pub watchers_per_stream_max: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            stream_responses_max: STREAM_RESPONSES_MAX_DEFAULT,
            fragment_bytes_max: FRAGMENT_BYTES_MAX_DEFAULT,
            sync_events_max: SYNC_EVENTS_MAX_DEFAULT,
            sync_watchers_max: SYNC_WATCHERS_MAX_DEFAULT,
            watchers_per_stream_max: WATCHERS_PER_STREAM_MAX_DEFAULT,
        }
    }
}

#[derive(Clone, Debug)]
struct Watcher {
    key: Vec<u8>,
    range_end: Vec<u8>,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
    fragment: bool,
    /// The first revision this watcher has not been given yet.
    next_rev: i64,
    /// Synced: fed by `on_events`. Unsynced: catches up in `sync`.
    synced: bool,
    /// Whether events went out since the last progress tick (then no notify is due).
    sent_since_tick: bool,
}

impl Watcher {
    fn wants(&self, ev: &Event) -> bool {
        let Some(kv) = &ev.kv else { return false };
        if !in_range(&self.key, &self.range_end, &kv.key) {
            return false;
        }
        let delete = ev.r#type == EventType::Delete as i32;
        !(delete && self.no_delete || !delete && self.no_put)
    }

    fn shape(&self, ev: &Event) -> Event {
        let mut ev = ev.clone();
        if !self.prev_kv {
            ev.prev_kv = None;
        }
        ev
    }
}

#[derive(Clone, Debug, Default)]
struct Stream {
    queue: VecDeque<WatchResponse>,
    next_auto_id: i64,
    watchers: usize,
    /// A progress request waits here until every watcher of the stream is synced.
    progress_requested: bool,
}

/// Every watch stream's watchers and unsent responses.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    config: HubConfig,
    streams: BTreeMap<StreamId, Stream>,
    watchers: BTreeMap<(StreamId, i64), Watcher>,
    /// The store revision the hub has seen (through `create`, `on_events`, `sync`).
    current_rev: i64,
}

/// etcd's answer to a refused watch create: created and canceled at once.
fn refusal(rev: i64, reason: &str) -> WatchResponse {
    WatchResponse {
        header: header(rev),
        watch_id: -1,
        created: true,
        canceled: true,
        cancel_reason: reason.to_string(),
        ..Default::default()
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        Hub {
            config,
            streams: BTreeMap::new(),
            watchers: BTreeMap::new(),
            current_rev: 1,
        }
    }

    /// Refuses a watch create on `stream` with `reason` (created and canceled,
    /// `watch_id = -1`), as etcd answers a create it does not permit.
    pub fn refuse(&mut self, stream: StreamId, reason: &str, current_rev: i64) {
        self.current_rev = self.current_rev.max(current_rev);
        let cur = self.current_rev;
        self.streams
            .entry(stream)
            .or_default()
            .queue
            .push_back(refusal(cur, reason));
    }

    /// A watch create request on `stream`, with the store at `current_rev`. Answers
    /// (through `poll`) with `created` (and the watch ID), or with `created` and
    /// `canceled`, `watch_id = -1` and a `cancel_reason` when refused, as etcd does.
    /// Returns the watch ID, or `None` when refused.
    pub fn create(&mut self, stream: StreamId, req: &WatchCreateRequest, current_rev: i64) -> Option<i64> {
        self.current_rev = self.current_rev.max(current_rev);
        let cur = self.current_rev;
        let s = self.streams.entry(stream).or_default();
        let refuse = |s: &mut Stream, reason: &str| {
            s.queue.push_back(refusal(cur, reason));
            None
        };
        let bounded = req.range_end.len() > 1 || req.range_end.first().is_some_and(|&b| b != 0);
        if bounded && req.key.as_slice() >= req.range_end.as_slice() {
            return refuse(s, super::EMPTY_RANGE_REASON);
        }
        if s.watchers >= self.config.watchers_per_stream_max {
            return refuse(s, super::TOO_MANY_WATCHERS_REASON);
        }
        let id = if req.watch_id == 0 {
            while self.watchers.contains_key(&(stream, s.next_auto_id)) {
                s.next_auto_id += 1;
            }
            s.next_auto_id += 1;
            s.next_auto_id - 1
        } else {
            if self.watchers.contains_key(&(stream, req.watch_id)) {
                return refuse(s, super::DUPLICATE_WATCH_ID_REASON);
            }
            req.watch_id
        };
        let mut start = if req.start_revision == 0 {
            cur + 1
        } else {
            req.start_revision
        };
        if start <= cur && is_active(Mutation::WatchResumesLate) {
            // Planted bug: catching up from history "after" the start revision.
            start += 1;
        }
        let w = Watcher {
            key: req.key.clone(),
            range_end: req.range_end.clone(),
            no_put: req.filters.contains(&(FilterType::Noput as i32)),
            no_delete: req.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: req.prev_kv,
            progress_notify: req.progress_notify,
            fragment: req.fragment,
            next_rev: start,
            synced: start > cur,
            sent_since_tick: false,
        };
        s.watchers += 1;
        s.queue.push_back(WatchResponse {
            header: header(cur),
            watch_id: id,
            created: true,
            ..Default::default()
        });
        self.watchers.insert((stream, id), w);
        Some(id)
    }

    /// A cancel request: the watcher goes, and a `canceled` response follows whatever
    /// it had queued. Unknown IDs are ignored, as etcd does.
    pub fn cancel(&mut self, stream: StreamId, watch_id: i64) {
        if self.watchers.remove(&(stream, watch_id)).is_none() {
            return;
        }
        let s = self.streams.get_mut(&stream).expect("a watcher's stream exists");
        s.watchers -= 1;
        s.queue.push_back(WatchResponse {
            header: header(self.current_rev),
            watch_id,
            canceled: true,
            ..Default::default()
        });
        self.answer_progress_if_synced(stream);
    }

    /// The stream is gone: its watchers and unsent responses are dropped.
    pub fn close_stream(&mut self, stream: StreamId) {
        self.streams.remove(&stream);
        let ids: Vec<(StreamId, i64)> = self
            .watchers
            .range((stream, i64::MIN)..=(stream, i64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for id in ids {
            self.watchers.remove(&id);
        }
    }

    /// A progress request: answered (`watch_id = -1`, no events, `header.revision`
    /// the store revision) once every watcher of the stream is synced, so that every
    /// event at or below that revision has been queued before it.
    pub fn request_progress(&mut self, stream: StreamId) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        s.progress_requested = true;
        self.answer_progress_if_synced(stream);
    }

    /// The periodic progress notification: each synced `progress_notify` watcher that
    /// sent no events since the last tick gets an empty response at the current revision.
    pub fn progress_tick(&mut self) {
        let cur = self.current_rev;
        for (&(stream, id), w) in self.watchers.iter_mut() {
            if w.progress_notify && w.synced && !w.sent_since_tick {
                let s = self.streams.get_mut(&stream).expect("a watcher's stream exists");
                s.queue.push_back(WatchResponse {
                    header: header(cur),
                    watch_id: id,
                    ..Default::default()
                });
            }
            w.sent_since_tick = false;
        }
    }

    /// The events of one store write (all of one revision), as the store returned
    /// them. Synced watchers get them now; one whose stream is full goes unsynced at
    /// this revision instead.
    pub fn on_events(&mut self, events: &[Event]) {
        let Some(rev) = events
            .iter()
            .filter_map(|e| e.kv.as_ref())
            .map(|kv| kv.mod_revision)
            .max()
        else {
            return;
        };
        self.current_rev = self.current_rev.max(rev);
        let limit = self.config.stream_responses_max;
        let fragment_max = self.config.fragment_bytes_max;
        for (&(stream, id), w) in self.watchers.iter_mut() {
            if !w.synced || rev < w.next_rev {
                continue;
            }
            let evs: Vec<Event> = events.iter().filter(|e| w.wants(e)).map(|e| w.shape(e)).collect();
            if evs.is_empty() {
                w.next_rev = rev + 1;
                continue;
            }
            let s = self.streams.get_mut(&stream).expect("a watcher's stream exists");
            if s.queue.len() >= limit {
                w.synced = false;
                w.next_rev = rev;
                continue;
            }
            push_events(s, id, rev, evs, w.fragment, fragment_max);
            w.next_rev = rev + 1;
            w.sent_since_tick = true;
        }
    }

    /// The store was replaced by a snapshot's (a member installing the leader's
    /// snapshot): synced watchers were fed up to the old store's revision and would
    /// miss every revision between it and the restored one. Each whose next
    /// revision the restored store holds goes unsynced there, so [`Hub::sync`]
    /// replays it from the restored history, or cancels it with `compact_revision`
    /// when that revision is compacted. Then syncs.
    pub fn restore(&mut self, store: &Store) {
        let rev = store.revision();
        for w in self.watchers.values_mut() {
            if w.synced && w.next_rev <= rev {
                w.synced = false;
            }
        }
        self.sync(store);
    }

    /// True when some watcher is behind and [`Hub::sync`] has work.
    pub fn needs_sync(&self) -> bool {
        self.watchers.values().any(|w| !w.synced)
    }

    /// Advances up to `sync_watchers_max` unsynced watchers whose stream has room:
    /// each gets one response of history (whole revisions, at most about
    /// `sync_events_max` events) and is synced once it reaches the store revision.
    /// A watcher whose next revision was compacted is canceled with `compact_revision`.
    pub fn sync(&mut self, store: &Store) {
        self.current_rev = self.current_rev.max(store.revision());
        let cur = self.current_rev;
        let mut done = 0;
        let keys: Vec<(StreamId, i64)> = self
            .watchers
            .iter()
            .filter(|(_, w)| !w.synced)
            .map(|(k, _)| *k)
            .collect();
        let mut canceled = Vec::new();
        for key @ (stream, id) in keys {
            if done >= self.config.sync_watchers_max {
                break;
            }
            let s = self.streams.get_mut(&stream).expect("a watcher's stream exists");
            if s.queue.len() >= self.config.stream_responses_max {
                continue;
            }
            done += 1;
            let w = self.watchers.get_mut(&key).expect("listed above");
            let page = store.events(
                &w.key,
                &w.range_end,
                w.next_rev,
                cur,
                self.config.sync_events_max,
                w.prev_kv,
            );
            let events = match page {
                Ok(events) => events,
                Err(e) => {
                    debug_assert_eq!(e, error::COMPACTED);
                    s.queue.push_back(WatchResponse {
                        header: header(cur),
                        watch_id: id,
                        canceled: true,
                        compact_revision: store.compact_revision(),
                        ..Default::default()
                    });
                    canceled.push(key);
                    continue;
                }
            };
            let full = events.len() >= self.config.sync_events_max;
            let last = events
                .last()
                .and_then(|e| e.kv.as_ref())
                .map(|kv| kv.mod_revision);
            let evs: Vec<Event> = events.iter().filter(|e| w.wants(e)).map(|e| w.shape(e)).collect();
            if !evs.is_empty() {
                push_events(s, id, cur, evs, w.fragment, self.config.fragment_bytes_max);
                w.sent_since_tick = true;
            }
            match (full, last) {
                (true, Some(last)) => w.next_rev = last + 1,
                _ => {
                    w.next_rev = cur + 1;
                    w.synced = true;
                }
            }
        }
        for key in canceled {
            self.watchers.remove(&key);
            if let Some(s) = self.streams.get_mut(&key.0) {
                s.watchers -= 1;
            }
        }
        let streams: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.progress_requested)
            .map(|(k, _)| *k)
            .collect();
        for stream in streams {
            self.answer_progress_if_synced(stream);
        }
    }

    /// The next response for `stream`, oldest first, when its transport can take one.
    pub fn poll(&mut self, stream: StreamId) -> Option<WatchResponse> {
        self.streams.get_mut(&stream)?.queue.pop_front()
    }

    /// The next response of any stream (lowest stream ID first), for drivers whose
    /// transports never push back.
    pub fn poll_any(&mut self) -> Option<(StreamId, WatchResponse)> {
        for (&id, s) in self.streams.iter_mut() {
            if let Some(r) = s.queue.pop_front() {
                return Some((id, r));
            }
        }
        None
    }

    /// Responses queued for `stream`.
    pub fn queued(&self, stream: StreamId) -> usize {
        self.streams.get(&stream).map_or(0, |s| s.queue.len())
    }

    /// Watchers currently on `stream`.
    pub fn watchers(&self, stream: StreamId) -> usize {
        self.streams.get(&stream).map_or(0, |s| s.watchers)
    }

    /// Watchers on every stream (etcd's `watcher_total`).
    pub fn watcher_count(&self) -> usize {
        self.watchers.len()
    }

    /// Watchers behind the store that catch up in [`Hub::sync`] (etcd's unsynced
    /// watchers, its `slow_watcher_total`).
    pub fn unsynced_count(&self) -> usize {
        self.watchers.values().filter(|w| !w.synced).count()
    }

    /// The store revision the hub has seen.
    pub fn revision(&self) -> i64 {
        self.current_rev
    }

    fn answer_progress_if_synced(&mut self, stream: StreamId) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        if !s.progress_requested {
            return;
        }
        let mut watchers = self
            .watchers
            .range((stream, i64::MIN)..=(stream, i64::MAX))
            .peekable();
        if watchers.peek().is_none() {
            // etcd answers nothing for a stream without watchers.
            s.progress_requested = false;
            return;
        }
        if watchers.all(|(_, w)| w.synced) {
            s.progress_requested = false;
            s.queue.push_back(WatchResponse {
                header: header(self.current_rev),
                watch_id: -1,
                ..Default::default()
            });
        }
    }
}

/// Queues one watcher's events, split by size only if it asked for `fragment`
/// (etcd's `sendFragments`: every part but the last carries `fragment = true`).
fn push_events(s: &mut Stream, id: i64, rev: i64, events: Vec<Event>, fragment: bool, fragment_max: usize) {
    let whole = WatchResponse {
        header: header(rev),
        watch_id: id,
        events,
        ..Default::default()
    };
    if !fragment || whole.events.len() < 2 || whole.encoded_len() < fragment_max {
        s.queue.push_back(whole);
        return;
    }
    let mut part = WatchResponse {
        events: Vec::new(),
        fragment: true,
        ..whole.clone()
    };
    for ev in whole.events {
        part.events.push(ev);
        if part.events.len() > 1 && part.encoded_len() >= fragment_max {
            let ev = part.events.pop().expect("just pushed");
            let next = WatchResponse {
                events: vec![ev],
                ..part.clone()
            };
            s.queue.push_back(std::mem::replace(&mut part, next));
        }
    }
    part.fragment = false;
    s.queue.push_back(part);
}
