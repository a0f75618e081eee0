//! The watcher hub: every watcher of every watch stream, as a pure state machine.
//!
//! It owns the watchers (key range, filters, `prev_kv`, `progress_notify`,
//! `fragment`, the next revision each one needs), the per-stream queues of
//! responses waiting to be sent, and the split between **synced** watchers (they
//! have seen everything up to the store's revision and are fed each write's events
//! as it happens) and **unsynced** ones (behind: a start revision in the past, or a
//! client that stopped draining; they catch up from the store's history in
//! [`Hub::sync`]), as etcd's `watchable_store` does.
//!
//! Driving it (after any input, drain outputs with [`Hub::poll`]):
//! 1. [`Hub::create`], [`Hub::cancel`], [`Hub::request_progress`],
//!    [`Hub::close_stream`] for client requests;
//! 2. [`Hub::on_events`] after every store write, with the events it returned;
//! 3. [`Hub::sync`] with the store whenever [`Hub::needs_sync`] (after creates of
//!    past revisions, after a stream drained, after compactions);
//! 4. [`Hub::progress_tick`] every `--watch-progress-notify-interval`;
//! 5. [`Hub::poll`] hands out the next response of a stream when its transport can
//!    take one; a stream that is not polled fills its queue, and its watchers fall
//!    back to unsynced instead of growing memory.
//!
//! Guarantees by construction: a watcher's events leave in revision order, each
//! once (its next revision only moves forward), none is skipped (a watcher that
//! cannot take a revision goes unsynced at exactly that revision and catches up
//! from the store), a revision is never split across responses unless the watcher
//! asked for `fragment`, and a watcher that falls behind a compaction is canceled
//! with `compact_revision` set.

mod hub;

pub use hub::{
    Hub, HubConfig, StreamId, FRAGMENT_BYTES_MAX_DEFAULT, STREAM_RESPONSES_MAX_DEFAULT,
    SYNC_EVENTS_MAX_DEFAULT, SYNC_WATCHERS_MAX_DEFAULT, WATCHERS_PER_STREAM_MAX_DEFAULT,
};

/// `cancel_reason` of a create whose `watch_id` is already used on its stream.
pub const DUPLICATE_WATCH_ID_REASON: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// `cancel_reason` of a create whose range is empty (`range_end <= key`).
pub const EMPTY_RANGE_REASON: &str = "mvcc: watcher range is empty";
/// `cancel_reason` of a create over the per-stream watcher limit (detcd's own bound).
pub const TOO_MANY_WATCHERS_REASON: &str = "detcd: too many watchers on this stream";
