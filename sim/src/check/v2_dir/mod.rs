//! The linearizability check of the v2 workload's directory requests: every request
//! on the subtree [`DIR`] (directories made, set over, updated, listed and removed,
//! keys set, created and deleted in them, in-order keys POSTed into them, and keys
//! whose path crosses a file) is one partition, checked against a model of the
//! subtree through the same search as the single-key requests
//! ([`super::linearizability`]). A recursive delete or a listing spans many keys,
//! so the per-key partitions of [`super::v2`] cannot hold these.
//!
//! The model holds every node of the subtree by path (a key's value, whether it is
//! a directory, its created and modified indexes) and answers each request as
//! etcd's v2 store does: the same action, the node and previous node the answer
//! shows, or the same error code and cause ("Key not found" at the first missing
//! component, "Not a directory" 104 at the file a path crosses, "Not a file" 102,
//! "Key already exists" 105, "Directory not empty" 108). Every request goes
//! through raft, so as in [`super::v2`] the order the search picks follows the
//! indexes (`at`): a write answers a new index above it, a read or a refusal one
//! at or above it.
//!
//! Directories may carry an expiry (whether a node has one is part of what the
//! model holds and an answer shows); a leader's sync removes an expired one and
//! everything below it at an index of its own. No client asks for that: the
//! expiries come from the members' events ([`crate::v2_lost::add_expiries`]) as
//! requests with a known answer, pinned by their index. Hidden nodes (`_name`)
//! are read by their path and never listed, but still keep a directory from being
//! removed without `recursive`.
//!
//! A write whose answer was lost may have taken effect at an index nobody saw: the
//! nodes it made hold 0 for their unknown indexes until an answer shows them (then
//! the model takes them). An in-order key such a POST made has an unknown name (its
//! index): the model holds it as `parent/?value` (values are unique), and a
//! listing that shows a key of that value under that parent names it.

mod model;
#[cfg(test)]
mod tests;

use model::*;
pub use model::{DirInput, DirOutput, DirState, Entry, Shown, DIR};

use super::linearizability::{self, Call, Verdict};
use super::v2::{explain, V2CheckReport};

/// One recorded request.
#[derive(Clone, Debug)]
struct DirOp {
    client: u64,
    call: Call<PathInput, DirOutput>,
    /// Refused before it could take effect: left out of the check.
    failed: bool,
    /// Its answer was lost and the event log told what it did (see [`crate::v2_lost`]).
    resolved: bool,
}

/// A request whose answer was lost (see [`DirLinHistory::lost`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostDir {
    pub id: usize,
    pub path: String,
    pub input: DirInput,
    pub invoked_at: u64,
}

impl DirOutput {
    /// The store's index the answer shows (a write's own, a read's or refusal's).
    pub fn index(&self) -> u64 {
        match self {
            DirOutput::Ok { index, .. } | DirOutput::Err { index, .. } => *index,
        }
    }
}

/// The directory requests the v2 workload recorded.
#[derive(Debug, Default)]
pub struct DirLinHistory {
    ops: Vec<DirOp>,
}

impl DirLinHistory {
    /// Records a request on `path` invoked at `at`; the id answers
    /// [`Self::complete`] and [`Self::fail`].
    pub fn invoke(&mut self, client: u64, path: &str, input: DirInput, at: u64) -> usize {
        debug_assert!(
            path == DIR || path.starts_with(&below(DIR)),
            "{path} is outside {DIR}"
        );
        let input = PathInput {
            path: path.to_string(),
            input,
        };
        self.ops.push(DirOp {
            client,
            call: Call {
                input,
                output: None,
                invoked_at: at,
                returned_at: None,
            },
            failed: false,
            resolved: false,
        });
        self.ops.len() - 1
    }

    pub fn complete(&mut self, id: usize, output: DirOutput, at: u64) {
        let call = &mut self.ops[id].call;
        call.output = Some(output);
        call.returned_at = Some(at);
    }

    /// Refused with an error that proves it never took effect.
    pub fn fail(&mut self, id: usize) {
        self.ops[id].failed = true;
    }

    /// The writes whose answer was lost (not refused before they were proposed).
    pub fn lost(&self) -> Vec<LostDir> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, op)| {
                !op.failed && op.call.output.is_none() && !matches!(op.call.input.input, DirInput::Get { .. })
            })
            .map(|(id, op)| LostDir {
                id,
                path: op.call.input.path.clone(),
                input: op.call.input.input.clone(),
                invoked_at: op.call.invoked_at,
            })
            .collect()
    }

    /// Every answer: (when it came, the answer).
    pub fn answers(&self) -> impl Iterator<Item = (u64, &DirOutput)> {
        self.ops
            .iter()
            .filter_map(|op| Some((op.call.returned_at?, op.call.output.as_ref()?)))
    }

    /// The expiry of `path` (its node and everything below it) that the members'
    /// events show, first seen applied at `at`: a leader's sync, sent at no known
    /// time, that took effect at the index `output` shows.
    pub fn expired(&mut self, path: &str, output: DirOutput, at: u64) {
        let id = self.invoke(SYNC_CLIENT, path, DirInput::Expire, 0);
        self.complete(id, output, at);
    }

    /// What the event log told of lost request `id`: it did what `output` shows
    /// (as its answer would have) by time `at`, or (`None`) nothing at all.
    pub fn resolve_lost(&mut self, id: usize, outcome: Option<(DirOutput, u64)>) {
        let op = &mut self.ops[id];
        match outcome {
            Some((output, at)) => {
                op.call.output = Some(output);
                op.call.returned_at = Some(at.max(op.call.invoked_at));
            }
            None => op.failed = true,
        }
        op.resolved = true;
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks the subtree's requests as one partition (a search that ran out of
    /// `steps_max` is reported in `unknown`).
    pub fn check(&self, steps_max: u64) -> V2CheckReport {
        let ids: Vec<usize> = (0..self.ops.len())
            .filter(|&i| {
                let op = &self.ops[i];
                let unknown_read =
                    op.call.output.is_none() && matches!(op.call.input.input, DirInput::Get { .. });
                !op.failed && !unknown_read
            })
            .collect();
        let calls: Vec<Call<PathInput, DirOutput>> = ids.iter().map(|&i| self.ops[i].call.clone()).collect();
        let result = linearizability::check(&DirModel, &calls, steps_max);
        let mut report = V2CheckReport {
            ops_checked: calls.len(),
            search_steps: result.steps,
            ..V2CheckReport::default()
        };
        match result.verdict {
            Verdict::Linearizable { .. } => {}
            Verdict::Unknown => report.unknown.push(DIR.to_string()),
            Verdict::NotLinearizable(c) => {
                let render = |i: usize| self.render(ids[i]);
                report.violation = Some(explain(&format!("the subtree {DIR}"), &c, render));
            }
        }
        report
    }

    fn render(&self, id: usize) -> String {
        let op = &self.ops[id];
        let c = &op.call;
        let end = c.returned_at.map_or("?".to_string(), |t| t.to_string());
        let mut output = c.output.as_ref().map_or("?".to_string(), |o| format!("{o:?}"));
        if op.resolved {
            output.insert_str(0, "? (lost; per the event log) ");
        }
        let who = if op.client == SYNC_CLIENT {
            "a leader's sync".to_string()
        } else {
            format!("client {}", op.client)
        };
        format!(
            "{who} [t={}..{end}] {:?} {} -> {output}",
            c.invoked_at, c.input.input, c.input.path
        )
    }
}
