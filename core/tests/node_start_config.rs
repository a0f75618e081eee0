//! Start-up settings that are data in `NodeConfig`: `--initial-election-tick-advance`.

use detcd_core::node::{Input, Node, NodeConfig, NodeStart, Output};
use detcd_proto::etcdserverpb::Member;

/// Ticks a lone member one tick at a time until it leads; returns the tick count.
fn ticks_to_lead(advance: bool, seed: u64) -> u64 {
    let member = Member {
        id: 1,
        peer_ur_ls: vec!["http://n1:2380".to_string()],
        ..Default::default()
    };
    let mut config = NodeConfig::new(1, 0xc1, "n1", vec![member]);
    config.initial_election_tick_advance = advance;
    config.seed = seed;
    let tick_ms = config.tick_ms;
    let mut node = Node::new(config, NodeStart::Found).expect("node");
    for tick in 1..=100u64 {
        node.handle(Input::Tick {
            now_ms: tick * tick_ms,
        });
        while let Some(output) = node.poll() {
            if let Output::Persist { ready_number, .. } = output {
                node.handle(Input::Persisted { ready_number });
            }
        }
        if node.soft_state().leader == 1 {
            return tick;
        }
    }
    panic!("no leader after 100 ticks");
}

#[test]
fn initial_election_tick_advance_elects_within_an_election_timeout_of_ticks_less() {
    for seed in 1..20 {
        let (fast, slow) = (ticks_to_lead(true, seed), ticks_to_lead(false, seed));
        // Without the advance a campaign needs at least one election timeout (10
        // ticks); with it, all but one of those ticks count as already elapsed.
        assert!(slow >= 10, "seed {seed}: {slow}");
        assert_eq!(fast + 9, slow, "seed {seed}: fast {fast}, slow {slow}");
    }
}
