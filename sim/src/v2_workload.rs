//! The v2 workload (`--v2`, or drawn per seed): a third of the clients' requests
//! go to the v2 store as the `/v2/keys` API would send them, all through raft
//! except the waits (served from the member's own store, as `wait=true` is):
//! sets, creates, updates, compare-and-swaps and compare-and-deletes (on a
//! prevIndex the clients last saw, often stale, or a prevValue), deletes, a
//! directory made, filled and removed recursively, keys with a TTL and their
//! refreshes, quorum gets, and `waitIndex` waits. Expirations and the request
//! times come from the receiving member's clock (the simulator's time plus its
//! clock jumps), as a server's HTTP handler computes them; the leader proposes a
//! sync with its clock while keys have a TTL ([`crate::sim::Sim`]'s tick). Every
//! answer goes to [`crate::v2_check`].

use std::collections::BTreeMap;

use detcd_core::error::EtcdError;
use detcd_core::node::{Request, Response, PREV_EXIST_FALSE, PREV_EXIST_TRUE};
use detcd_core::rng::Rng;
use detcd_core::v2store::{code, Action};
use detcd_proto::detcdpb::V2Request;

use crate::v2_check::V2History;

/// The Unix time the simulator's clock 0 stands for (expiries before 2000 are
/// none to the v2 store).
pub const EPOCH_UNIX_MS: u64 = 1_700_000_000_000;

/// How often the leader proposes its clock while keys have a TTL (the server's
/// `SYNC_INTERVAL_MS`).
pub const SYNC_INTERVAL_MS: u64 = 500;

/// Keys the clients write, plain and with a TTL, and the directory's children.
const KEYS: u64 = 4;
const TTL_KEYS: u64 = 8;
const DIR: &str = "/v2/d";
const DIR_CHILDREN: u64 = 2;
/// Waits watch this prefix, recursively.
pub const PREFIX: &str = "/v2";

/// What a v2 client waits for.
#[derive(Clone, Debug)]
pub enum V2Pending {
    Write {
        prev_index: u64,
        prev_value: String,
        create: bool,
    },
    QGet {
        key: String,
        floor: u64,
    },
    Watch {
        since: u64,
    },
}

/// The v2 workload's state and history.
#[derive(Debug, Default)]
pub struct V2Workload {
    pub history: V2History,
    /// Per key, the modified index and value last seen in an answer.
    seen: BTreeMap<String, (u64, String)>,
    /// The highest v2 index any answer showed.
    index_seen: u64,
    seq: u64,
    pub writes_ok: u64,
    pub qgets_ok: u64,
    pub waits_with_event: u64,
    /// Expirations (by a leader's sync) that waits reported.
    pub expires_seen: u64,
    pub syncs: u64,
}

fn key(rng: &mut Rng) -> String {
    format!("/v2/k{}", rng.range(0, KEYS))
}

impl V2Workload {
    /// The next request, with the receiving member's Unix time `now_ms`.
    pub fn op(&mut self, rng: &mut Rng, client: usize, now_ms: u64) -> (Request, V2Pending) {
        self.seq += 1;
        let value = format!("c{client}-{}", self.seq);
        let mut r = V2Request {
            method: "PUT".to_string(),
            val: value,
            time_unix_ms: now_ms,
            ..V2Request::default()
        };
        let mut create = false;
        let pick = rng.range(0, 100);
        match pick {
            0..=14 => r.path = key(rng),
            15..=24 => {
                r.path = key(rng);
                r.prev_exist = PREV_EXIST_FALSE;
                create = true;
            }
            25..=31 => {
                r.path = key(rng);
                r.prev_exist = PREV_EXIST_TRUE;
            }
            32..=51 => {
                // Compare-and-swap / -delete on what a client saw last (often stale).
                r.path = key(rng);
                let (index, value) = self.seen.get(&r.path).cloned().unwrap_or((1, String::new()));
                if rng.chance(1, 4) && !value.is_empty() {
                    r.prev_value = value;
                } else {
                    r.prev_index = index;
                }
                if pick >= 46 {
                    r.method = "DELETE".to_string();
                    r.val.clear();
                }
            }
            52..=56 => {
                r.method = "DELETE".to_string();
                r.path = key(rng);
                r.val.clear();
            }
            57..=61 => match rng.range(0, 3) {
                0 => {
                    r.path = DIR.to_string();
                    r.dir = true;
                    r.val.clear();
                }
                1 => r.path = format!("{DIR}/c{}", rng.range(0, DIR_CHILDREN)),
                _ => {
                    r.method = "DELETE".to_string();
                    r.path = DIR.to_string();
                    r.dir = true;
                    r.recursive = true;
                    r.val.clear();
                }
            },
            62..=77 => {
                // A key with a TTL of up to two sync intervals (so that many
                // expire between writes), or its refresh.
                r.path = format!("/v2/t{}", rng.range(0, TTL_KEYS));
                r.expiration_unix_ms = now_ms + rng.range(100, 2 * SYNC_INTERVAL_MS);
                if pick >= 72 {
                    r.prev_exist = PREV_EXIST_TRUE;
                    r.refresh = true;
                    r.val.clear();
                }
            }
            78..=89 => {
                let key = if rng.chance(1, 3) {
                    format!("/v2/t{}", rng.range(0, TTL_KEYS))
                } else {
                    key(rng)
                };
                let floor = self.history.floor(&key);
                let request = V2Request {
                    method: "QGET".to_string(),
                    path: key.clone(),
                    time_unix_ms: now_ms,
                    ..V2Request::default()
                };
                return (Request::V2(request), V2Pending::QGet { key, floor });
            }
            _ => {
                let since = self.index_seen.saturating_sub(rng.range(0, 6)).max(1);
                let request = Request::V2Watch {
                    path: PREFIX.to_string(),
                    recursive: true,
                    since,
                };
                return (request, V2Pending::Watch { since });
            }
        }
        let pending = V2Pending::Write {
            prev_index: r.prev_index,
            prev_value: r.prev_value.clone(),
            create,
        };
        (Request::V2(r), pending)
    }

    /// The counts a report shows.
    pub fn summary(&self) -> String {
        format!(
            "{} writes acknowledged, {} quorum gets, {} waits answered with an event ({} expirations), {} syncs proposed, {} stores compared at equal applied indexes",
            self.writes_ok,
            self.qgets_ok,
            self.waits_with_event,
            self.expires_seen,
            self.syncs,
            self.history.state_matches
        )
    }

    /// An answer to `pending`; errors and timeouts teach nothing (an unanswered
    /// write may apply any time later, which the checks allow).
    pub fn settle(&mut self, pending: &V2Pending, result: &Result<Response, EtcdError>) {
        let Ok(Response::V2(reply)) = result else { return };
        self.index_seen = self.index_seen.max(reply.etcd_index);
        if let Ok(Some(event)) = &reply.result {
            if let Some(value) = &event.node.value {
                self.seen
                    .insert(event.node.key.clone(), (event.node.modified_index, value.clone()));
            } else if !event.node.dir {
                self.seen.remove(&event.node.key);
            }
        }
        match pending {
            V2Pending::Write {
                prev_index,
                prev_value,
                create,
            } => {
                if let Ok(Some(event)) = &reply.result {
                    self.writes_ok += 1;
                    self.history.write_acked(*prev_index, prev_value, *create, event);
                }
            }
            V2Pending::QGet { key, floor } => {
                self.qgets_ok += 1;
                self.history.qget_answered(key, *floor, &reply.result);
            }
            V2Pending::Watch { since } => match &reply.result {
                Ok(event) => {
                    if let Some(e) = event {
                        self.waits_with_event += 1;
                        self.expires_seen += u64::from(e.action == Action::Expire);
                    }
                    self.history.watch_answered(PREFIX, *since, event.as_ref());
                }
                Err(e) if e.code == code::EVENT_INDEX_CLEARED => {}
                Err(e) => self
                    .history
                    .violations
                    .push(format!("wait from {since} failed: {e}")),
            },
        }
    }
}
