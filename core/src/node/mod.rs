//! The etcd member: raft plus apply, pending client requests, reads and snapshots,
//! as one deterministic state machine ([`Node`]).
//!
//! What it owns and why it exists: every decision etcd's `etcdserver` takes (what to
//! propose, when a client is answered and with which error, which reads are safe,
//! when to snapshot, which member may lead, when a lease expires) lives here, so
//! the production driver (`detcd-io`) and the simulator (`detcd-sim`) run the same
//! decisions and the simulator can check them.
//!
//! Parts, one concept per file:
//! - [`io`]: the [`Input`] and [`Output`] enums, client [`Request`]/[`Response`],
//!   [`PeerMessage`].
//! - [`config`]: [`NodeConfig`], [`NodeStart`], [`NodeError`].

pub mod config;
pub mod io;

use std::collections::VecDeque;

pub use config::{NodeConfig, NodeError, NodeStart};
pub use io::{ClientRequestId, ForwardRequest, Input, Output, PeerMessage, Request, Response};

/// One etcd member.
///
/// # Driving it
///
/// After [`Node::new`] and after every [`Node::handle`], the driver calls
/// [`Node::poll`] until it returns `None`, and carries out each [`Output`] in the
/// order it came out. The order is binding:
///
/// 1. [`Output::Persist`] numbered `n` must be durable (synced when `must_sync`)
///    before the driver answers [`Input::Persisted`]` { ready_number: n }`. Outputs
///    that depend on it (the raft messages of the same Ready) only come out after
///    that answer, so a driver that sends every [`Output::Send`] as soon as it sees
///    it never sends ahead of its disk. Persists may be pipelined: answering `n`
///    acknowledges every Persist numbered `<= n`.
/// 2. [`Output::Send`], [`Output::Respond`], [`Output::Watch`]: in order per
///    destination (watch responses of one stream in order).
/// 3. [`Output::SaveSnapshot`]: saved durably, then answered with
///    [`Input::SnapshotSaved`]; [`Output::ReleaseWal`] follows.
/// 4. [`Output::Removed`]: the driver stops the member.
///
/// Time enters only as [`Input::Tick`]`{ now_ms }`. Given the same config (seed
/// included) and the same inputs, a node produces the same outputs, byte for byte.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    outputs: VecDeque<Output>,
}

impl Node {
    /// Builds a member from a valid config and how it starts.
    pub fn new(config: NodeConfig, start: NodeStart) -> Result<Node, NodeError> {
        config.validate()?;
        let _ = start;
        Ok(Node { config, outputs: VecDeque::new() })
    }

    /// Handles one input; then drain [`Node::poll`].
    pub fn handle(&mut self, input: Input) {
        let _ = input;
    }

    /// The next output, or `None` when there is nothing left to do.
    pub fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// This member's ID.
    pub fn member_id(&self) -> u64 {
        self.config.member_id
    }
}
