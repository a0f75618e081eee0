//! The leader of a two-voter cluster removes itself and the message that tells
//! the other voter the removal committed is lost (sweep seed 99 at b73e6bb: the
//! membership fault's removal of the then follower applied after it had become
//! leader). The survivor has no quorum of the old configuration on its own: it
//! needs the removed member's vote to elect itself and commit the removal, so the
//! removed member must not stop the moment it applies its own removal, and must
//! not step down from leading at once either (its log may be longer than the
//! survivor's, so it would refuse the survivor's vote: sweep seed 1912): it hands
//! its lead to the survivor, and keeps leading until it stops if that fails.

use detcd_core::error::EtcdError;
use detcd_core::node::{Request, Response};
use detcd_proto::etcdserverpb::{MemberRemoveRequest, PutRequest};
use detcd_sim::mutations::Mutations;
use detcd_sim::options::Options;
use detcd_sim::sim::Sim;

/// A quiet two-voter cluster (100 ms ticks, 1 s election timeout) after 5 s:
/// the simulation, its leader and the other voter. `edit` adjusts the options.
fn two_voters(seed: u64, edit: impl FnOnce(&mut Options)) -> (Sim, u64, u64) {
    let mut opts = Options::quiet(seed, 2);
    opts.tick_ms = 100;
    opts.election_ticks = 10;
    opts.request_timeout_ms = 3_000;
    edit(&mut opts);
    let mut sim = Sim::new(opts, Mutations::NONE);
    sim.run_until(5_000_000);
    let leader = sim.leader().expect("a leader within 5 s");
    let other = sim
        .member_ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("two members");
    (sim, leader, other)
}

/// Puts through `member` until one is answered OK or ten election timeouts
/// pass (one sent while it has no leader may time out); the last answer.
fn put_until_ok(sim: &mut Sim, member: u64, value: &[u8]) -> Option<Result<Response, EtcdError>> {
    let deadline_us = sim.now_us + 10_000_000;
    let mut answer = None;
    while sim.now_us < deadline_us && !matches!(answer, Some(Ok(Response::Put(_)))) {
        let put = Request::Put(PutRequest {
            key: b"after".to_vec(),
            value: value.to_vec(),
            ..Default::default()
        });
        let id = sim.request(member, put);
        answer = sim.wait(id, 5_000);
    }
    answer
}

#[test]
fn a_leader_that_removed_itself_lets_the_survivor_learn_it() {
    let (mut sim, leader, survivor) = two_voters(99, |_| {});

    let remove = sim.request(leader, Request::MemberRemove(MemberRemoveRequest { id: leader }));
    // Run until the leader has applied its own removal; what it sent in that same
    // step (the new commit index, the transfer of its lead) is still in flight:
    // cut it off.
    let deadline = sim.now_us + 5_000_000;
    while sim
        .node(leader)
        .is_some_and(|n| n.members().contains_key(&leader))
        && sim.now_us < deadline
    {
        let step = sim.now_us + 10;
        sim.run_until(step);
    }
    assert!(sim.failure.is_none(), "{:?}", sim.failure);
    assert!(
        sim.node(leader)
            .is_some_and(|n| !n.members().contains_key(&leader)),
        "the leader applied its removal"
    );
    assert!(
        sim.node(survivor)
            .is_some_and(|n| n.members().contains_key(&leader)),
        "the survivor has not applied the removal yet"
    );
    sim.isolate(survivor);
    let step = sim.now_us + 50_000;
    sim.run_until(step);
    sim.reconnect_all();
    assert!(
        matches!(sim.wait(remove, 10_000), Some(Ok(Response::MemberRemove(_)))),
        "the removal is acknowledged"
    );

    // Within ten election timeouts of the reconnect the survivor leads alone and
    // serves a write.
    let answer = put_until_ok(&mut sim, survivor, b"removal");
    assert!(matches!(answer, Some(Ok(Response::Put(_)))), "{answer:?}");
    assert_eq!(sim.leader(), Some(survivor));
    assert!(!sim.node(survivor).expect("up").members().contains_key(&leader));
    // It stops after its delay (three election timeouts here).
    let step = sim.now_us + 4_000_000;
    sim.run_until(step);
    assert!(!sim.is_up(leader), "the removed member stopped");
    assert!(sim.failure.is_none(), "{:?}", sim.failure);
}

/// A two-voter cluster shrinks to one: the leader removes the follower, answers,
/// the operator stops the removed member for good at once, and the survivor
/// crashes at that same moment (sweep seed 1025 at 3ad4257, with an aimed crash).
/// The survivor must restart knowing the removal committed: had it answered with
/// the removal applied but its commit index not yet durable, it would restart
/// under the two-voter configuration and wait for the stopped member's vote
/// forever. Slow fsyncs (20-30 ms) keep the answer well inside the sync window.
#[test]
fn a_survivor_crashing_as_it_answers_its_shrink_to_one_still_leads() {
    for seed in 1..=8 {
        let (mut sim, leader, removed) = two_voters(seed, |opts| {
            opts.fsync_min_us = 20_000;
            opts.fsync_max_us = 30_000;
        });
        let remove = sim.request(leader, Request::MemberRemove(MemberRemoveRequest { id: removed }));
        assert!(
            matches!(sim.wait(remove, 10_000), Some(Ok(Response::MemberRemove(_)))),
            "seed {seed}: the removal is acknowledged"
        );
        sim.crash(removed);
        sim.crash(leader);
        sim.restart(leader);

        let answer = put_until_ok(&mut sim, leader, b"shrink");
        assert!(
            matches!(answer, Some(Ok(Response::Put(_)))),
            "seed {seed}: the survivor serves alone within ten election timeouts: {answer:?}"
        );
        assert!(sim.failure.is_none(), "seed {seed}: {:?}", sim.failure);
    }
}
