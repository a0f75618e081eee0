//! The v2 workload (`--v2`, or drawn per seed): a third of the clients' requests
//! go to the v2 store as the `/v2/keys` API would send them, all through raft
//! except the waits (served from the member's own store, as `wait=true` is):
//! sets, creates, updates, compare-and-swaps and compare-and-deletes (on a
//! prevIndex the clients last saw, often stale, or a prevValue), deletes, keys
//! with a TTL and their refreshes, quorum gets, `waitIndex` waits, and (a quarter
//! of the requests) a directory tree's ([`crate::v2_dir_workload`]). Expirations
//! and the request times come from the receiving member's clock (the simulator's
//! time plus its clock jumps), as a server's HTTP handler computes them; the
//! leader proposes a sync with its clock while keys have a TTL
//! ([`crate::sim::Sim`]'s tick). Every answer goes to [`crate::v2_check`]; the
//! single-key requests and the `expire` events waits report are recorded, with
//! their simulated times, for the per-key linearizability check
//! ([`crate::check::v2`]), the tree's requests for the subtree's
//! ([`crate::check::v2_dir`]).

use std::collections::BTreeMap;

use detcd_core::error::EtcdError;
use detcd_core::node::{Request, Response, PREV_EXIST_FALSE, PREV_EXIST_TRUE};
use detcd_core::rng::Rng;
use detcd_core::v2store::{code, Action, Event, NodeView};
use detcd_proto::detcdpb::V2Request;

use crate::check::v2::{Seen, V2Input, V2LinHistory, V2Output};
use crate::check::v2_dir::{DirInput, DirLinHistory, DirOutput, DIR};
use crate::cluster::outcome_unknown;
use crate::v2_check::V2History;
use crate::v2_dir_workload;
use crate::v2_lost::{Resolved, V2EventLog};

/// The Unix time the simulator's clock 0 stands for (expiries before 2000 are
/// none to the v2 store).
pub const EPOCH_UNIX_MS: u64 = 1_700_000_000_000;

/// How often the leader proposes its clock while keys have a TTL (the server's
/// `SYNC_INTERVAL_MS`).
pub const SYNC_INTERVAL_MS: u64 = 500;

/// Keys the clients write, plain and with a TTL.
const KEYS: u64 = 4;
const TTL_KEYS: u64 = 8;
/// Waits watch this prefix, recursively.
pub const PREFIX: &str = "/v2";

/// What a v2 client waits for.
#[derive(Clone, Debug)]
pub enum V2Pending {
    Write {
        /// Its id in the linearizability history.
        lin: Option<usize>,
    },
    /// A request on the directory tree (`read`: a get).
    Dir {
        lin: usize,
        read: bool,
    },
    QGet {
        lin: usize,
    },
    Watch {
        since: u64,
    },
}

/// The v2 workload's state and history.
#[derive(Debug, Default)]
pub struct V2Workload {
    pub history: V2History,
    /// The single-key requests, for the linearizability check.
    pub lin: V2LinHistory,
    /// The directory tree's requests, for its linearizability check.
    pub dir_lin: DirLinHistory,
    /// The tree's events the members applied, to resolve its lost answers.
    pub events: V2EventLog,
    /// What resolving them did.
    pub lost: Resolved,
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
    /// Steps the linearizability search took.
    pub lin_steps: u64,
}

fn key(rng: &mut Rng) -> String {
    format!("/v2/k{}", rng.range(0, KEYS))
}

impl V2Workload {
    /// The next request, with the receiving member's Unix time `now_ms`, invoked at
    /// simulated time `now_us`.
    pub fn op(&mut self, rng: &mut Rng, client: usize, now_ms: u64, now_us: u64) -> (Request, V2Pending) {
        self.seq += 1;
        let value = format!("c{client}-{}", self.seq);
        let mut r = V2Request {
            method: "PUT".to_string(),
            val: value,
            time_unix_ms: now_ms,
            ..V2Request::default()
        };
        let pick = rng.range(0, 100);
        if (57..=61).contains(&pick) || rng.chance(1, 5) {
            let (request, input) = v2_dir_workload::request(rng, r.val, now_ms);
            let read = matches!(input, DirInput::Get { .. });
            let lin = self.dir_lin.invoke(client as u64, &request.path, input, now_us);
            return (Request::V2(request), V2Pending::Dir { lin, read });
        }
        match pick {
            0..=14 => r.path = key(rng),
            15..=24 => {
                r.path = key(rng);
                r.prev_exist = PREV_EXIST_FALSE;
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
                let request = V2Request {
                    method: "QGET".to_string(),
                    path: key.clone(),
                    time_unix_ms: now_ms,
                    ..V2Request::default()
                };
                let lin = self.lin.invoke(client as u64, &key, V2Input::Get, now_us);
                return (Request::V2(request), V2Pending::QGet { lin });
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
        let lin = input_of(&r).map(|input| self.lin.invoke(client as u64, &r.path, input, now_us));
        let pending = V2Pending::Write { lin };
        (Request::V2(r), pending)
    }

    /// The counts a report shows.
    pub fn summary(&self) -> String {
        format!(
            "{} writes acknowledged, {} quorum gets, {} waits answered with an event ({} expirations), {} syncs proposed, {} stores compared at equal applied indexes, {} requests checked for linearizability ({} on the directory tree; of its lost answers {} found applied, {} not, {} unknown) in {} steps",
            self.writes_ok,
            self.qgets_ok,
            self.waits_with_event,
            self.expires_seen,
            self.syncs,
            self.history.state_matches,
            self.lin.len() + self.dir_lin.len(),
            self.dir_lin.len(),
            self.lost.applied,
            self.lost.not_applied,
            self.lost.left,
            self.lin_steps
        )
    }

    /// `pending` never left its client (connection refused).
    pub fn not_sent(&mut self, pending: &V2Pending) {
        if let V2Pending::Dir { lin, .. } = pending {
            self.dir_lin.fail(*lin);
        } else if let Some(id) = lin_id(pending) {
            self.lin.fail(id);
        }
    }

    /// An answer to `pending` at simulated time `now_us`. A request refused before
    /// it was proposed leaves the linearizability check; an unanswered write may
    /// apply any time later, which the checks allow.
    pub fn settle(&mut self, pending: &V2Pending, result: &Result<Response, EtcdError>, now_us: u64) {
        if let V2Pending::Dir { lin, .. } = pending {
            match result {
                Ok(Response::V2(reply)) => {
                    if let Some(output) = DirOutput::of(&reply.result) {
                        self.dir_lin.complete(*lin, output, now_us);
                    }
                }
                Err(e) if !outcome_unknown(e) => self.dir_lin.fail(*lin),
                _ => {}
            }
        } else if let Some(id) = lin_id(pending) {
            match result {
                Ok(Response::V2(reply)) => match &reply.result {
                    Ok(Some(event)) => self.lin.complete(id, output_of(event), now_us),
                    Ok(None) => {}
                    Err(e) => {
                        let refused = V2Output::Err {
                            code: e.code,
                            index: e.index,
                        };
                        self.lin.complete(id, refused, now_us);
                    }
                },
                Err(e) if !outcome_unknown(e) => self.lin.fail(id),
                _ => {}
            }
        }
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
            V2Pending::Write { .. } | V2Pending::Dir { read: false, .. } => {
                if let Ok(Some(event)) = &reply.result {
                    self.writes_ok += 1;
                    self.history.write_acked(event);
                }
            }
            V2Pending::QGet { .. } | V2Pending::Dir { read: true, .. } => self.qgets_ok += 1,
            V2Pending::Watch { since } => match &reply.result {
                Ok(event) => {
                    if let Some(e) = event {
                        self.waits_with_event += 1;
                        self.expires_seen += u64::from(e.action == Action::Expire);
                        if let (Action::Expire, Some(prev)) = (e.action, &e.prev_node) {
                            if let Some(prev) = seen(prev).filter(|_| !e.node.key.starts_with(DIR)) {
                                self.lin.expired(&e.node.key, e.index(), prev, now_us);
                            }
                        }
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

fn lin_id(pending: &V2Pending) -> Option<usize> {
    match pending {
        V2Pending::Write { lin, .. } => *lin,
        V2Pending::QGet { lin } => Some(*lin),
        V2Pending::Dir { .. } | V2Pending::Watch { .. } => None,
    }
}

/// The model's view of a single-key request.
fn input_of(r: &V2Request) -> Option<V2Input> {
    let compare = r.prev_index != 0 || !r.prev_value.is_empty();
    let (value, ttl) = (r.val.clone(), r.expiration_unix_ms != 0);
    let input = match (r.method.as_str(), r.prev_exist) {
        ("DELETE", _) if compare => V2Input::Cad {
            prev_index: r.prev_index,
            prev_value: r.prev_value.clone(),
        },
        ("DELETE", _) => V2Input::Delete,
        ("PUT", PREV_EXIST_TRUE) if r.refresh => V2Input::Refresh,
        ("PUT", PREV_EXIST_FALSE) => V2Input::Create { value, ttl },
        ("PUT", _) if compare => V2Input::Cas {
            prev_index: r.prev_index,
            prev_value: r.prev_value.clone(),
            value,
        },
        ("PUT", PREV_EXIST_TRUE) => V2Input::Update { value, ttl },
        ("PUT", _) => V2Input::Set { value, ttl },
        _ => return None,
    };
    Some(input)
}

/// A key's node as an answer shows it (`None` for a directory or a removal).
fn seen(node: &NodeView) -> Option<Seen> {
    node.value.as_ref().map(|value| Seen {
        value: value.clone(),
        modified: node.modified_index,
    })
}

fn output_of(event: &Event) -> V2Output {
    V2Output::Ok {
        index: event.etcd_index,
        node: seen(&event.node),
        prev: event.prev_node.as_ref().and_then(seen),
    }
}
