//! A lease's expiry counts from the clock of the member that applies its grant.
//! The drivers (io-runtime's and the simulator's) feed every input with
//! `Node::handle_at(now_ms, ..)`, their clock as it reads when the input goes
//! in, and the member ticks itself first when that moved past its last tick; so
//! a grant applied by a `Persisted` after the ticks stalled (a slow write, a
//! paused process) counts from the time it is applied, not from the stale tick.
//! These pin that contract: `Persisted` handled at `t + gap` counts the TTL from
//! `t + gap`; handled at a clock still reading `t`, from `t`. The drivers' side
//! is checked by the simulator's recipe check, whose lease slack is one
//! millisecond (`recipe_workload::LEASE_SLACK_US`).

#[path = "support/mem_disk.rs"]
mod mem_disk;

use detcd_core::node::{Credentials, Input, Node, NodeStart, Output, Request, Response};
use detcd_proto::etcdserverpb::{LeaseGrantRequest, LeaseTimeToLiveRequest};
use mem_disk::{Drained, MemDisk};

const LEASE: i64 = 0x1234;
const TTL_S: i64 = 60;
const GAP_MS: u64 = 5_000;

struct Member1 {
    node: Node,
    disk: MemDisk,
    now_ms: u64,
    next_client: u64,
    /// Persists written and not yet acknowledged.
    held: Vec<u64>,
    responses: Vec<(u64, Response)>,
}

impl Member1 {
    fn start() -> Member1 {
        let mut m = Member1 {
            node: Node::new(mem_disk::one_member_config(5), NodeStart::Found).expect("starts"),
            disk: MemDisk::default(),
            now_ms: 0,
            next_client: 1,
            held: Vec::new(),
            responses: Vec::new(),
        };
        m.drain(false);
        while m.node.soft_state().leader == 0 {
            m.tick(m.now_ms + 100);
        }
        m
    }

    /// Drains the member; with `hold`, its Persists are written but not
    /// acknowledged (the disk write is still under way).
    fn drain(&mut self, hold: bool) {
        let (held, responses) = (&mut self.held, &mut self.responses);
        self.disk.drain(&mut self.node, hold, |_, drained| match drained {
            Drained::Persisted {
                ready_number,
                acknowledged: false,
                ..
            } => held.push(ready_number),
            Drained::Output(output) => {
                if let Output::Respond { id, result } = *output {
                    responses.push((id, result.expect("request succeeds")));
                }
            }
            _ => {}
        });
    }

    fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.node.handle_at(now_ms, Input::Tick { now_ms });
        self.drain(false);
    }

    /// A client request at the member's current clock.
    fn call(&mut self, request: Request, hold: bool) -> u64 {
        let id = self.next_client;
        self.next_client += 1;
        self.node.handle_at(
            self.now_ms,
            Input::Client {
                id,
                request,
                credentials: Credentials::None,
            },
        );
        self.drain(hold);
        id
    }

    /// Acknowledges the held Persists at the driver's clock `now_ms`, as a
    /// driver does when the write is done.
    fn persisted_at(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        for ready_number in std::mem::take(&mut self.held) {
            self.node.handle_at(now_ms, Input::Persisted { ready_number });
            self.drain(false);
        }
    }

    fn response(&self, id: u64) -> &Response {
        &self.responses.iter().find(|(i, _)| *i == id).expect("answered").1
    }

    fn remaining_ttl(&mut self) -> i64 {
        let id = self.call(
            Request::LeaseTimeToLive(LeaseTimeToLiveRequest {
                id: LEASE,
                keys: false,
            }),
            false,
        );
        match self.response(id) {
            Response::LeaseTimeToLive(r) => r.ttl,
            other => panic!("time-to-live answered {other:?}"),
        }
    }
}

/// Ticks stop at `t`, a grant is proposed and written; the write takes `GAP_MS`.
/// Returns the member with the grant's Persist held, and the grant's client ID.
fn grant_while_the_write_is_slow() -> (Member1, u64, u64) {
    let mut m = Member1::start();
    let t = m.now_ms;
    let grant = m.call(
        Request::LeaseGrant(LeaseGrantRequest {
            ttl: TTL_S,
            id: LEASE,
        }),
        true,
    );
    assert!(!m.held.is_empty(), "the grant waits for its write");
    assert!(
        !m.responses.iter().any(|(id, _)| *id == grant),
        "the grant is not applied before its write is durable"
    );
    (m, grant, t)
}

#[test]
fn a_grant_made_durable_at_t_plus_gap_counts_its_ttl_from_then() {
    let (mut m, grant, t) = grant_while_the_write_is_slow();
    // No Tick since `t`: the write's completion itself carries the clock, and
    // the member ticks to it before it applies the grant.
    m.persisted_at(t + GAP_MS);
    match m.response(grant) {
        Response::LeaseGrant(r) => assert_eq!((r.id, r.ttl), (LEASE, TTL_S)),
        other => panic!("grant answered {other:?}"),
    }
    assert_eq!(m.remaining_ttl(), TTL_S, "the lease counts from t + gap");
    m.tick(t + GAP_MS + 10_000);
    assert_eq!(m.remaining_ttl(), TTL_S - 10);
}

#[test]
fn a_grant_made_durable_on_a_stale_clock_counts_from_that_clock() {
    // A driver whose clock still reads `t` when the write completes applies
    // the grant at `t`: the lease has lost the gap once time moves. (Why the
    // drivers read the clock afresh for each Persisted.)
    let (mut m, _, t) = grant_while_the_write_is_slow();
    m.persisted_at(t);
    m.tick(t + GAP_MS);
    assert_eq!(m.remaining_ttl(), TTL_S - (GAP_MS / 1000) as i64);
}
