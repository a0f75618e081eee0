//! Watch guarantees, checked after the run against the acknowledged writes.
//!
//! Each watch session (one create on one member, until its stream dies or is
//! canceled) recorded every event in arrival order. Checked:
//! - Ordered and unique: revisions strictly increase within a session.
//! - At or after the requested start revision.
//! - Atomic and agreeing: one revision means one event (key, value, type) in every
//!   session, and the same as the acknowledged write that created it.
//! - Reliable (no gaps): from a session's start revision (its first event when it
//!   watched from "now") to its last event, every acknowledged write to a watched
//!   key appears. A watch from a past revision replays history from exactly that
//!   revision: that is what makes a watch resumable after a broken stream.
//! - A cancel for compaction carries a compact revision above the requested start.

use std::collections::BTreeMap;

/// One observed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub revision: i64,
    pub key: Vec<u8>,
    /// None for a delete.
    pub value: Option<Vec<u8>>,
}

/// One watch session.
#[derive(Clone, Debug, Default)]
pub struct WatchSession {
    pub member: u64,
    pub start_revision: i64,
    pub prefix: Vec<u8>,
    pub events: Vec<WatchEvent>,
    pub compact_revision: Option<i64>,
}

/// Checks every session; `writes` maps revision -> the acknowledged write
/// (key, value or None for delete) that created it.
pub fn check(
    sessions: &[WatchSession],
    writes: &BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)>,
) -> Result<(), String> {
    let mut seen: BTreeMap<i64, WatchEvent> = BTreeMap::new();
    for (n, s) in sessions.iter().enumerate() {
        let who = format!(
            "watch session {n} on member {:x} from revision {}",
            s.member, s.start_revision
        );
        if let Some(compact) = s.compact_revision {
            if s.start_revision > 0 && compact <= s.start_revision {
                return Err(format!(
                    "{who}: canceled with compact_revision {compact} not above its start"
                ));
            }
        }
        let mut last = 0;
        for e in &s.events {
            if e.revision <= last {
                return Err(format!(
                    "{who}: event at revision {} after revision {last}",
                    e.revision
                ));
            }
            if s.start_revision > 0 && e.revision < s.start_revision {
                return Err(format!(
                    "{who}: event at revision {} below the start revision",
                    e.revision
                ));
            }
            if !e.key.starts_with(&s.prefix) {
                return Err(format!("{who}: event for a key outside the watched prefix"));
            }
            last = e.revision;
            match seen.get(&e.revision) {
                Some(other) if other != e => {
                    return Err(format!(
                        "{who}: revision {} is {:?} here and {:?} elsewhere",
                        e.revision, e, other
                    ));
                }
                _ => {
                    seen.insert(e.revision, e.clone());
                }
            }
            if let Some((key, value)) = writes.get(&e.revision) {
                if *key != e.key || *value != e.value {
                    return Err(format!(
                        "{who}: revision {} delivered {e:?}, but the write was {key:?}={value:?}",
                        e.revision
                    ));
                }
            }
        }
        if let (Some(first), Some(last)) = (s.events.first(), s.events.last()) {
            // Events below the start were refused above, so the start bounds from below.
            let from = if s.start_revision > 0 {
                s.start_revision
            } else {
                first.revision
            };
            for (rev, (key, _)) in writes.range(from..=last.revision) {
                if key.starts_with(&s.prefix) && !s.events.iter().any(|e| e.revision == *rev) {
                    return Err(format!(
                        "{who}: gap: acknowledged write at revision {rev} missing between {from} and {}",
                        last.revision
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(revision: i64, key: &str, value: &str) -> WatchEvent {
        WatchEvent {
            revision,
            key: key.into(),
            value: Some(value.into()),
        }
    }

    #[test]
    fn finds_gaps_and_disorder() {
        let mut writes = BTreeMap::new();
        for (r, v) in [(2, "a"), (3, "b"), (4, "c")] {
            writes.insert(r, (b"k1".to_vec(), Some(v.as_bytes().to_vec())));
        }
        let ok = WatchSession {
            start_revision: 2,
            prefix: b"k".to_vec(),
            events: vec![ev(2, "k1", "a"), ev(3, "k1", "b"), ev(4, "k1", "c")],
            ..Default::default()
        };
        assert!(check(std::slice::from_ref(&ok), &writes).is_ok());
        let gap = WatchSession {
            events: vec![ev(2, "k1", "a"), ev(4, "k1", "c")],
            ..ok.clone()
        };
        assert!(check(&[gap], &writes).unwrap_err().contains("gap"));
        // A watch from revision 2 must start with revision 2's event.
        let late = WatchSession {
            events: vec![ev(3, "k1", "b"), ev(4, "k1", "c")],
            ..ok.clone()
        };
        assert!(check(&[late], &writes)
            .unwrap_err()
            .contains("revision 2 missing"));
        // Watching from "now" (start 0) promises nothing before the first event.
        let from_now = WatchSession {
            start_revision: 0,
            events: vec![ev(3, "k1", "b"), ev(4, "k1", "c")],
            ..ok.clone()
        };
        assert!(check(&[from_now], &writes).is_ok());
        let disorder = WatchSession {
            events: vec![ev(3, "k1", "b"), ev(2, "k1", "a")],
            ..ok.clone()
        };
        assert!(check(&[disorder], &writes).is_err());
        let wrong = WatchSession {
            events: vec![ev(2, "k1", "z")],
            ..ok
        };
        assert!(check(&[wrong], &writes).is_err());
    }
}
