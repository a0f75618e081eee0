//! Settings and alarms that change how a member starts and applies:
//! `--initial-election-tick-advance` (data in `NodeConfig`) and etcd's behaviour under
//! a CORRUPT alarm.

use detcd_core::error::{self, EtcdError};
use detcd_core::node::{Credentials, Input, Node, NodeConfig, NodeStart, Output, Persist, Request, Response};
use detcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, Member, PutRequest, RangeRequest,
};

/// A lone member whose persists are acknowledged at once.
struct Solo {
    node: Node,
    ticks: u64,
    answers: Vec<(u64, Result<Response, EtcdError>)>,
}

impl Solo {
    fn new(advance: bool, seed: u64) -> Solo {
        let member = Member {
            id: 1,
            peer_ur_ls: vec!["http://n1:2380".to_string()],
            ..Default::default()
        };
        let mut config = NodeConfig::new(1, 0xc1, "n1", vec![member]);
        config.initial_election_tick_advance = advance;
        config.seed = seed;
        let node = Node::new(config, NodeStart::Found).expect("node");
        Solo {
            node,
            ticks: 0,
            answers: Vec::new(),
        }
    }

    fn tick(&mut self) {
        self.ticks += 1;
        let now_ms = self.ticks * self.node.config().tick_ms;
        self.node.handle(Input::Tick { now_ms });
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(output) = self.node.poll() {
            match output {
                Output::Persist(Persist { ready_number, .. }) => {
                    self.node.handle(Input::Persisted { ready_number })
                }
                Output::Respond { id, result } => self.answers.push((id, result)),
                _ => {}
            }
        }
    }

    /// Ticks until it leads; returns the ticks that took.
    fn lead(&mut self) -> u64 {
        while self.node.soft_state().leader != 1 {
            assert!(self.ticks < 100, "no leader after 100 ticks");
            self.tick();
        }
        self.ticks
    }

    fn call(&mut self, request: Request) -> Result<Response, EtcdError> {
        let id = 1000 + self.ticks * 10 + self.answers.len() as u64;
        self.node.handle(Input::Client {
            id,
            request,
            credentials: Credentials::None,
        });
        self.drain();
        for _ in 0..100 {
            if let Some(at) = self.answers.iter().position(|(a, _)| *a == id) {
                return self.answers.remove(at).1;
            }
            self.tick();
        }
        panic!("request {id} unanswered");
    }
}

#[test]
fn initial_election_tick_advance_elects_within_an_election_timeout_of_ticks_less() {
    for seed in 1..20 {
        let (fast, slow) = (Solo::new(true, seed).lead(), Solo::new(false, seed).lead());
        // Without the advance a campaign needs at least one election timeout (10
        // ticks); with it, all but one of those ticks count as already elapsed.
        assert!(slow >= 10, "seed {seed}: {slow}");
        assert_eq!(fast + 9, slow, "seed {seed}: fast {fast}, slow {slow}");
    }
}

#[test]
fn a_corrupt_alarm_refuses_writes_but_not_reads_until_disarmed() {
    let mut m = Solo::new(true, 1);
    m.lead();
    let put = || {
        Request::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })
    };
    let alarm = |action: AlarmAction| {
        Request::Alarm(AlarmRequest {
            action: action as i32,
            member_id: 1,
            alarm: AlarmType::Corrupt as i32,
        })
    };
    assert!(m.call(put()).is_ok());
    assert!(m.call(alarm(AlarmAction::Activate)).is_ok());
    assert_eq!(m.call(put()).unwrap_err(), error::CORRUPT);
    let read = Request::Range(RangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    match m.call(read) {
        Ok(Response::Range(r)) => assert_eq!(r.count, 1),
        other => panic!("{other:?}"),
    }
    assert!(m.call(alarm(AlarmAction::Deactivate)).is_ok());
    assert!(m.call(put()).is_ok());
}
