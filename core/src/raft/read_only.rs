//! Linearizable reads by ReadIndex (Raft thesis 6.4), safe mode only.
//!
//! The leader records its commit index when a read arrives, then confirms it is
//! still leader with a heartbeat round carrying the read's context. Once a quorum
//! answers that round, every read queued up to and including it may be served at
//! its recorded index. Reads are confirmed in arrival order, so one quorum answer
//! releases all earlier reads too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use detcd_proto::raftpb::Message;

/// A read the application may serve once its applied index reaches `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub index: u64,
    /// The context passed to `read_index`, returned unchanged to match the request.
    pub request_ctx: Vec<u8>,
}

/// One read waiting for its heartbeat round.
#[derive(Clone, Debug)]
pub struct ReadIndexStatus {
    /// The original request (its `from` says where to answer; 0 or self: locally).
    pub req: Message,
    pub index: u64,
    pub acks: BTreeSet<u64>,
}

/// Reads waiting for leadership confirmation, by context, in arrival order.
#[derive(Clone, Debug, Default)]
pub struct ReadOnly {
    pending: BTreeMap<Vec<u8>, ReadIndexStatus>,
    queue: VecDeque<Vec<u8>>,
}

impl ReadOnly {
    /// Queues a read at `index`. A duplicate context is ignored: the earlier
    /// request will answer it.
    pub fn add_request(&mut self, index: u64, req: Message) {
        let ctx = req.entries[0].data.clone();
        if self.pending.contains_key(&ctx) {
            return;
        }
        self.pending.insert(
            ctx.clone(),
            ReadIndexStatus {
                req,
                index,
                acks: BTreeSet::new(),
            },
        );
        self.queue.push_back(ctx);
    }

    /// Records that `id` answered the heartbeat round for `ctx`; returns the acks so
    /// far, or None for an unknown context.
    pub fn recv_ack(&mut self, id: u64, ctx: &[u8]) -> Option<&BTreeSet<u64>> {
        let status = self.pending.get_mut(ctx)?;
        status.acks.insert(id);
        Some(&status.acks)
    }

    /// Releases every read queued up to and including `ctx`.
    pub fn advance(&mut self, ctx: &[u8]) -> Vec<ReadIndexStatus> {
        let Some(pos) = self.queue.iter().position(|c| c.as_slice() == ctx) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(pos + 1);
        for c in self.queue.drain(..=pos) {
            out.push(self.pending.remove(&c).expect("queued read is pending"));
        }
        out
    }

    /// The context of the newest read, sent with heartbeats.
    pub fn last_pending_ctx(&self) -> Option<&[u8]> {
        self.queue.back().map(Vec::as_slice)
    }

    pub fn pending_count(&self) -> usize {
        self.queue.len()
    }
}
