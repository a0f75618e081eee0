//! `Node::handle_at(now_ms, input)`: the member's clock moves with the input.
//! When `now_ms` is past the member's last tick, the member runs its tick at
//! `now_ms` before it handles the input (so the input sees the clock as it is
//! now), and if that tick stopped it, the input is not handled. An
//! `Input::Tick` at an unchanged time ticks raft no further. The drivers
//! (io-runtime's and the simulator's) feed every input this way and keep no
//! tick bookkeeping of their own.

#[path = "support/mem_disk.rs"]
mod mem_disk;

use std::collections::{BTreeMap, VecDeque};

use detcd_core::error::{EtcdError, STOPPED};
use detcd_core::node::{
    Credentials, Input, Node, NodeConfig, NodeStart, Output, PeerMessage, Request, Response,
};
use detcd_core::raft::Role;
use detcd_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseTimeToLiveRequest, Member, MemberRemoveRequest, RangeRequest,
};
use mem_disk::{Drained, MemDisk};

/// Members of an in-memory cluster on one clock, every input fed with
/// `handle_at` at that clock; the network is one FIFO queue the test delivers
/// (or drops) by hand.
struct Cluster {
    members: BTreeMap<u64, (Node, MemDisk)>,
    net: VecDeque<(u64, PeerMessage)>,
    now_ms: u64,
    next_client: u64,
    responses: BTreeMap<u64, Result<Response, EtcdError>>,
}

fn config(id: u64, size: u64) -> NodeConfig {
    let initial: Vec<Member> = (1..=size)
        .map(|id| Member {
            id,
            name: format!("n{id}"),
            peer_ur_ls: vec![format!("http://n{id}:2380")],
            ..Default::default()
        })
        .collect();
    let mut c = NodeConfig::new(id, 0xc1, &format!("n{id}"), initial);
    c.seed = id.wrapping_mul(7919);
    c
}

impl Cluster {
    /// `size` members, ticked every 100 ms until one leads and all know it.
    fn start(size: u64) -> Cluster {
        let mut c = Cluster {
            members: BTreeMap::new(),
            net: VecDeque::new(),
            now_ms: 0,
            next_client: 1,
            responses: BTreeMap::new(),
        };
        for id in 1..=size {
            let node = Node::new(config(id, size), NodeStart::Found).expect("starts");
            c.members.insert(id, (node, MemDisk::default()));
            c.drain(id);
        }
        for _ in 0..200 {
            if c.leader().is_some() {
                return c;
            }
            c.tick(100);
        }
        panic!("no leader after 20 s");
    }

    /// The leader, once every member knows it.
    fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .members
            .values()
            .map(|(n, _)| n.soft_state().leader)
            .collect();
        let first = *leaders.first()?;
        (first != 0 && leaders.iter().all(|l| *l == first)).then_some(first)
    }

    fn node(&self, id: u64) -> &Node {
        &self.members[&id].0
    }

    /// Feeds `input` to `id` at `now_ms` and drains it; returns what it output
    /// besides disk work (sends also go to the network).
    fn feed_at(&mut self, id: u64, now_ms: u64, input: Input) -> Vec<Output> {
        self.members
            .get_mut(&id)
            .expect("member")
            .0
            .handle_at(now_ms, input);
        self.drain(id)
    }

    fn drain(&mut self, id: u64) -> Vec<Output> {
        let (node, disk) = self.members.get_mut(&id).expect("member");
        let mut outputs = Vec::new();
        disk.drain(node, false, |_, drained| {
            if let Drained::Output(output) = drained {
                outputs.push(*output);
            }
        });
        for output in &outputs {
            match output {
                Output::Send { to, message } => self.net.push_back((*to, message.clone())),
                Output::Respond { id, result } => {
                    self.responses.insert(*id, result.clone());
                }
                _ => {}
            }
        }
        outputs
    }

    /// Delivers every message, and what they provoke, at the current clock.
    fn deliver(&mut self) {
        while let Some((to, message)) = self.net.pop_front() {
            if self.members.contains_key(&to) && !self.node(to).is_removed() {
                self.feed_at(to, self.now_ms, Input::Peer(message));
            }
        }
    }

    /// Moves the clock by `ms`, ticks every member and delivers.
    fn tick(&mut self, ms: u64) {
        self.now_ms += ms;
        let now_ms = self.now_ms;
        let ids: Vec<u64> = self.members.keys().copied().collect();
        for id in ids {
            if !self.node(id).is_removed() {
                self.feed_at(id, now_ms, Input::Tick { now_ms });
            }
        }
        self.deliver();
    }

    /// A client request to `id` at the current clock, delivered to the end.
    fn call(&mut self, id: u64, request: Request) -> Result<Response, EtcdError> {
        let client = self.next_client;
        self.next_client += 1;
        let input = Input::Client {
            id: client,
            request,
            credentials: Credentials::None,
        };
        self.feed_at(id, self.now_ms, input);
        self.deliver();
        self.responses.remove(&client).expect("answered")
    }
}

fn portable_head(ask: u64) -> Input {
    Input::PortableHead { ask }
}

fn answered_head(outputs: &[Output], ask: u64) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::PortableHead { ask: a, .. } if *a == ask))
}

#[test]
fn a_grant_handled_at_a_later_clock_counts_its_ttl_from_that_clock() {
    const TTL_S: i64 = 60;
    const GAP_MS: u64 = 15_000;
    let mut c = Cluster::start(1);
    // No Tick for GAP_MS; the grant itself arrives at the later clock.
    c.now_ms += GAP_MS;
    let granted = c.call(1, Request::LeaseGrant(LeaseGrantRequest { ttl: TTL_S, id: 7 }));
    assert!(granted.is_ok(), "grant answered {granted:?}");
    c.tick(10_000);
    let ttl = match c.call(
        1,
        Request::LeaseTimeToLive(LeaseTimeToLiveRequest { id: 7, keys: false }),
    ) {
        Ok(Response::LeaseTimeToLive(r)) => r.ttl,
        other => panic!("time-to-live answered {other:?}"),
    };
    // Counted from the last Tick instead, it would have lost the gap too.
    assert_eq!(ttl, TTL_S - 10, "the lease counts from the grant's clock");
}

#[test]
fn an_input_at_the_stop_time_finds_the_member_stopped_and_is_not_handled() {
    let mut c = Cluster::start(3);
    let leader = c.leader().expect("leader");
    let gone = (1..=3).find(|id| *id != leader).expect("a follower");
    // The leader removes a voter only once the rest have been active a while.
    for _ in 0..100 {
        c.tick(100);
    }
    let removed = c.call(leader, Request::MemberRemove(MemberRemoveRequest { id: gone }));
    assert!(removed.is_ok(), "remove answered {removed:?}");
    // The removed member applied its removal: it refuses clients at once and
    // stops a while later (at least a second; see the golden `membership`).
    let refused = c.call(gone, Request::Range(RangeRequest::default()));
    assert_eq!(refused, Err(STOPPED), "a removed member serves no client");
    assert!(!c.node(gone).is_removed());

    let soon = c.now_ms + 1;
    let outputs = c.feed_at(gone, soon, portable_head(1));
    assert!(
        answered_head(&outputs, 1),
        "before its stop time the member still handles inputs"
    );

    let late = soon + 600_000;
    // At its own clock (no time passed) the member is not stopped yet...
    let outputs = c.feed_at(gone, soon, portable_head(2));
    assert!(answered_head(&outputs, 2));
    assert!(!c.node(gone).is_removed());
    // ...but an input at a clock past the stop time ticks it first: it stops,
    // and the input is left unhandled.
    let outputs = c.feed_at(gone, late, portable_head(3));
    assert!(
        c.node(gone).is_removed(),
        "the tick ahead of the input stopped the member"
    );
    assert!(outputs.contains(&Output::Removed), "outputs {outputs:?}");
    assert!(
        !answered_head(&outputs, 3),
        "the input after the stop was handled: {outputs:?}"
    );
    // A client request after the stop is answered STOPPED, never served.
    let client = Input::Client {
        id: 99,
        request: Request::Range(RangeRequest::default()),
        credentials: Credentials::None,
    };
    let outputs = c.feed_at(gone, late + 1, client);
    let answers: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Respond { id: 99, result } => Some(result.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(answers, vec![Err(STOPPED)]);
}

#[test]
fn raft_ticks_follow_the_clock_not_the_number_of_inputs() {
    let mut c = Cluster::start(3);
    let leader = c.leader().expect("leader");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let term = c.node(follower).raft_status().term;
    // Many Ticks and other inputs at one unchanged time, with the leader's
    // heartbeats lost: no election timeout passes (a raft tick per Tick would
    // have passed several).
    let now_ms = c.now_ms + 50;
    for ask in 0..100 {
        c.feed_at(follower, now_ms, Input::Tick { now_ms });
        c.feed_at(follower, now_ms, portable_head(ask));
    }
    c.net.clear();
    assert_eq!(c.node(follower).soft_state().role, Role::Follower);
    assert_eq!(c.node(follower).raft_status().term, term);
    // Inputs that are not Ticks, at clocks two election timeouts on, tick it
    // first: its randomized election timeout (under two timeouts) passes.
    let timeout_ms = c.node(follower).config().election_timeout_ms();
    c.feed_at(follower, now_ms + timeout_ms, portable_head(1000));
    c.feed_at(follower, now_ms + 2 * timeout_ms, portable_head(1001));
    let role = c.node(follower).soft_state().role;
    assert!(
        matches!(role, Role::PreCandidate | Role::Candidate),
        "the follower should campaign, is {role:?}"
    );
}
