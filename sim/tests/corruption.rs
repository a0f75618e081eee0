//! etcd's periodic corruption check in the simulator: a planted divergence (the
//! `corrupt-applied-put` mutation: the member with the highest ID stores every value
//! with a byte more) is caught, the CORRUPT alarm raised for that member and seen by
//! the checker; the same cluster without the mutation raises nothing.
//!
//! The planted run needs the `mutations` feature (`cargo test -p detcd-sim --features
//! mutations --test corruption`); the clean run is in the default suite.

use detcd_core::node::Request;
use detcd_proto::etcdserverpb::PutRequest;
use detcd_sim::corruption_check;
use detcd_sim::mutations::Mutations;
use detcd_sim::options::Options;
use detcd_sim::sim::Sim;

fn cluster_with_writes(mutations: Mutations) -> Sim {
    let mut opts = Options::quiet(77, 3);
    opts.tick_ms = 100;
    opts.election_ticks = 10;
    opts.request_timeout_ms = 3_000;
    let mut sim = Sim::new(opts, mutations);
    sim.run_until(5_000_000);
    let leader = sim.leader().expect("a leader within 5 s");
    for i in 0..5 {
        let put = Request::Put(PutRequest {
            key: format!("k{i}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        });
        let id = sim.request(leader, put);
        sim.wait(id, 20_000).expect("answered").expect("put");
    }
    // Let every member apply the writes.
    let now = sim.now_us;
    sim.run_until(now + 2_000_000);
    sim
}

#[test]
fn a_cluster_that_agrees_raises_no_alarm() {
    let mut sim = cluster_with_writes(Mutations::NONE);
    assert_eq!(corruption_check::periodic(&mut sim), Vec::<u64>::new());
    assert_eq!(corruption_check::check(&mut sim), Ok(()));
}

#[cfg(feature = "mutations")]
#[test]
fn a_planted_divergence_raises_the_corrupt_alarm() {
    use detcd_core::mutation::{ActiveGuard, Mutation};
    let mutations = Mutations::select("corrupt-applied-put").expect("catalogued");
    let _planted = ActiveGuard::new(Mutation::CorruptAppliedPut);
    let mut sim = cluster_with_writes(mutations);
    let diverged = *sim.member_ids().iter().max().expect("members");
    assert_eq!(corruption_check::periodic(&mut sim), vec![diverged]);
    let why = corruption_check::check(&mut sim).expect_err("the alarm is seen");
    assert!(why.contains(&format!("{diverged:x}")), "{why}");
}
