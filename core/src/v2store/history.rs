//! The last events, for `wait=true` with a `waitIndex` (etcd's `EventHistory`).

use std::collections::VecDeque;

use super::{code, Action, Event, V2Error};

/// How many events the history keeps (etcd's watcher hub capacity).
pub const HISTORY_CAPACITY: usize = 1000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct History {
    pub(super) events: VecDeque<Event>,
}

/// Whether the last path segment below `watch_path` in `key` starts with `_`
/// (etcd's `isHidden`): a recursive watcher is not told of hidden keys.
fn is_hidden(watch_path: &str, key: &str) -> bool {
    if watch_path.len() > key.len() {
        return false;
    }
    let after = super::clean_path(&key[watch_path.len()..]);
    after.contains("/_")
}

impl History {
    pub(super) fn add(&mut self, event: Event) {
        if self.events.len() == HISTORY_CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn start_index(&self) -> u64 {
        self.events.front().map_or(0, Event::index)
    }

    /// The first event at or after `since` that a watcher of `key` sees; `None`
    /// when none happened yet; an error when `since` is older than the history.
    pub(super) fn scan(&self, key: &str, recursive: bool, since: u64) -> Result<Option<&Event>, V2Error> {
        let start = self.start_index();
        if since < start {
            return Err(V2Error::new(
                code::EVENT_INDEX_CLEARED,
                format!("the requested history has been cleared [{start}/{since}]"),
                0,
            ));
        }
        let prefix = if key.ends_with('/') {
            key.to_string()
        } else {
            format!("{key}/")
        };
        Ok(self.events.iter().filter(|e| e.index() >= since).find(|e| {
            if e.refresh {
                return false;
            }
            let exact = e.node.key == key;
            let below = recursive && e.node.key.starts_with(&prefix) && !is_hidden(key, &e.node.key);
            let parent_gone = matches!(e.action, Action::Delete | Action::Expire)
                && e.prev_node
                    .as_ref()
                    .is_some_and(|p| p.dir && key.starts_with(&p.key));
            exact || below || parent_gone
        }))
    }
}
