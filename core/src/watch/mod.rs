//! The watcher hub: synced and unsynced watchers, filters, prev_kv, progress and compaction.
